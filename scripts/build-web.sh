#!/usr/bin/env bash
# Builds everything the browser needs into one served directory, ${CARGO_TARGET_DIR:-target}/www/:
#   /index.html, /wiki/…       the wiki app (crates/cairn-wiki-app: Leptos, wasm32)
#   /peer.html, /app.js        the browser peer's harness page (crates/cairn-web/www/index.html)
#   /worker.js, /cairn.js      the worker script and the page side of its message API
#   /socket.js                 the worker's WebSocket, on a thread of its own
#   /swarm.js                  the page's half of the WebRTC swarm (peer connections)
#   /pkg/…                     the browser peer (crates/cairn-web, wasm32) and its bindings
# Both wasm modules are built with the `wasm` profile (release with LTO, one codegen unit, no
# debug info; Cargo.toml) with wasm-bindgen's JS bindings (--target web, ES
# modules); the peer's bindings also stay in crates/cairn-web/www/pkg as before. With --opt,
# wasm-opt (npm binaryen, installed by scripts/setup-browser.sh) runs over both modules.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
wasm="$target/wasm32-unknown-unknown/wasm"
cargo build --profile wasm --target wasm32-unknown-unknown -p cairn-web -p cairn-wiki-app --locked
wasm-bindgen --target web --out-dir crates/cairn-web/www/pkg "$wasm/cairn_web.wasm"

www="$target/www"
rm -rf "$www"
mkdir -p "$www/wiki"
wasm-bindgen --target web --out-dir "$www/wiki" "$wasm/cairn_wiki_app.wasm"
cp -r crates/cairn-web/www/pkg "$www/pkg"
cp crates/cairn-web/www/worker.js crates/cairn-web/www/cairn.js crates/cairn-web/www/app.js \
  crates/cairn-web/www/swarm.js crates/cairn-web/www/socket.js "$www/"
cp crates/cairn-web/www/index.html "$www/peer.html"
cp crates/cairn-wiki-app/www/index.html "$www/index.html"

if [ "${1:-}" = "--opt" ]; then
  for m in "$www/pkg/cairn_web_bg.wasm" "$www/wiki/cairn_wiki_app_bg.wasm"; do
    crates/cairn-web/node_modules/.bin/wasm-opt -O3 --enable-bulk-memory --enable-nontrapping-float-to-int \
      --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
      "$m" -o "$m"
  done
  cp "$www/pkg/cairn_web_bg.wasm" crates/cairn-web/www/pkg/cairn_web_bg.wasm
fi
