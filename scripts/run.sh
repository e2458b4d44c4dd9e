#!/usr/bin/env bash
# cairn's main job: the wiki server on the embedded default storage (redb in ./cairn-data, or
# $CAIRN_DATA). It installs what the browser build needs (the wasm32 target and
# wasm-bindgen-cli, idempotently), builds the browser peer and the wiki app into
# target/www and the `cairn` command, creates the store and an identity if they are missing,
# imports the example wiki on first start (its image becomes a blob), and runs `cairn serve`:
#   http://127.0.0.1:8080/   the wiki app (a full peer in your browser: its own key and store,
#                            synced live with this server), /sync, the signalling hub /hub,
#                            blobs at /blob/HASH
#   127.0.0.1:7340           replication for native peers (cairn sync --connect tcp://…)
# While it runs, `cairn wiki …` and the other commands on the same store go through it.
# Ctrl-C stops it cleanly. CAIRN_HTTP and CAIRN_LISTEN change the addresses.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-browser.sh --build-only
bash scripts/build-web.sh
cargo build --release -p cairn-cli --locked
export CAIRN_DATA=${CAIRN_DATA:-$PWD/cairn-data}
target="${CARGO_TARGET_DIR:-target}"
bin="$target/release/cairn"
cairn() { echo "\$ cairn $*" >&2; "$bin" "$@"; }

cairn init
if ! "$bin" wiki show Home >/dev/null 2>&1; then
  cairn wiki import examples/wiki
fi
http=${CAIRN_HTTP:-127.0.0.1:8080}
echo "the wiki: http://$http/ (open it in a browser; Ctrl-C stops the server)" >&2
exec "$bin" serve --listen "${CAIRN_LISTEN:-127.0.0.1:7340}" --http "$http" --web "$target/www"
