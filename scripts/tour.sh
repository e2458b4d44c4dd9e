#!/usr/bin/env bash
# A tour of the `cairn` command on its embedded default storage (redb in ./cairn-data, or
# $CAIRN_DATA): it builds the command, creates the store and an identity if they are
# missing, writes a small DAG with a fork and a merge, and shows it, then the kv store, a
# sync, and the wiki (the example wiki imported and read). Every command it runs is printed.
# Run it with the server (scripts/run.sh) stopped: its sync step opens the store itself.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p cairn-cli
export CAIRN_DATA=${CAIRN_DATA:-$PWD/cairn-data}
bin="${CARGO_TARGET_DIR:-target}/release/cairn"
cairn() { echo "\$ cairn $*" >&2; "$bin" "$@"; }

cairn init
root=$(cairn log append "root: a page about cairns")
left=$(cairn log add --link "$root" "left: stones piled by hikers")
right=$(cairn log add --link "$root" "right: markers on a trail")
echo "a fork: two heads" >&2
cairn log heads
merge=$(cairn log append "merge: stones piled by hikers to mark a trail")
echo "a merge: one head, linking both" >&2
cairn log heads
cairn log get "$merge"
echo "the changes feed (topological order):" >&2
cairn log changes --since "$(( $("$bin" log changes | wc -l) - 4 ))"
echo "store: $CAIRN_DATA (run again to add more; 'cairn log changes --live' tails it)" >&2

echo "the key/value store over the same log (a fork, then a merge):" >&2
v1=$(cairn kv put page '"cairns mark trails"')
cairn kv put page '"cairns mark mountain trails"' --link "$v1" >/dev/null
cairn kv put page '"cairns are stone piles"' --link "$v1" >/dev/null
cairn kv get page
cairn kv put page '"cairns are stone piles that mark mountain trails"' >/dev/null
cairn kv get page

echo "replication: a second store, synced over a pipe (verified node by node):" >&2
peer=$(mktemp -d)
CAIRN_DATA=$peer "$bin" init >/dev/null
CAIRN_DATA=$peer "$bin" log append "a node written on the peer" >/dev/null
fifo="$peer/pipe"; mkfifo "$fifo"
echo "\$ cairn sync < pipe | cairn --data PEER sync > pipe" >&2
"$bin" sync < "$fifo" | CAIRN_DATA=$peer "$bin" sync > "$fifo"
echo "both stores now hold $("$bin" log changes | wc -l) nodes and the same heads:" >&2
cairn log heads
rm -rf "$peer"
echo "the wiki model over the same log: the example wiki imported (once), listed, searched:" >&2
if ! "$bin" wiki show Home >/dev/null 2>&1; then
  cairn wiki import examples/wiki
fi
cairn wiki list
cairn wiki search "trail marker"
cairn wiki backlinks Cairn
cairn wiki history Home
echo "serve it (the wiki in the browser, peers, the hub) with: bash scripts/run.sh" >&2
