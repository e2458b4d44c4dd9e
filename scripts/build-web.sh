#!/usr/bin/env bash
# Builds the browser peer: cairn-web for wasm32 (release) and its wasm-bindgen JS bindings
# (--target web, ES modules) into crates/cairn-web/www/pkg. With --opt, also runs wasm-opt
# (npm binaryen, installed by scripts/setup-browser.sh) over the module.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --target wasm32-unknown-unknown -p cairn-web --locked
wasm-bindgen --target web --out-dir crates/cairn-web/www/pkg \
  "$target/wasm32-unknown-unknown/release/cairn_web.wasm"
if [ "${1:-}" = "--opt" ]; then
  crates/cairn-web/node_modules/.bin/wasm-opt -O3 --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
    crates/cairn-web/www/pkg/cairn_web_bg.wasm -o crates/cairn-web/www/pkg/cairn_web_bg.wasm
fi
