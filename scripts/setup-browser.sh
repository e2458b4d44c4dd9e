#!/usr/bin/env bash
# Installs what cairn's browser tests need, on top of scripts/setup.sh: the wasm32 target,
# wasm-bindgen-cli at the exact version of the `wasm-bindgen` crate pinned in
# crates/cairn-web/Cargo.toml, Debian's chromium, and playwright-core + binaryen (wasm-opt)
# from npm into crates/cairn-web/node_modules (gitignored).
# Idempotent: each step checks first and installs only what is missing. With --build-only,
# only what building the browser peer and the wiki app needs (the target, wasm-bindgen-cli).
set -euo pipefail
cd "$(dirname "$0")/.."

# Keep in step with `wasm-bindgen = "=…"` in crates/cairn-web/Cargo.toml.
WASM_BINDGEN_VERSION=0.2.130
PLAYWRIGHT_VERSION=1.65.1
BINARYEN_VERSION=132.0.0

rustup target list --installed | grep -q '^wasm32-unknown-unknown$' \
  || rustup target add wasm32-unknown-unknown

if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  # No --locked: one of the CLI's locked dependencies is not served by the registry.
  cargo install wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION" --force
fi

if [ "${1:-}" = "--build-only" ]; then
  exit 0
fi

if [ ! -x /usr/bin/chromium ]; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

WEB=crates/cairn-web
if [ ! -f "$WEB/node_modules/playwright-core/package.json" ] \
  || [ ! -f "$WEB/node_modules/binaryen/package.json" ]; then
  (cd "$WEB" && npm install --no-audit --no-fund --no-save \
    "playwright-core@$PLAYWRIGHT_VERSION" "binaryen@$BINARYEN_VERSION")
fi
