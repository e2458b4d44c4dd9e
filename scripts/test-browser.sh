#!/usr/bin/env bash
# cairn-web's tests in a real browser: installs what they need (scripts/setup-browser.sh),
# builds the wasm peer (release) and its JS bindings into crates/cairn-web/www/pkg, and runs
# crates/cairn-web/tests/browser/test.mjs in headless Debian Chromium, then
# crates/cairn-web/tests/browser/sync.mjs (browser peers syncing live with a release
# `cairn serve`, built here). Screenshots go to
# $CARGO_TARGET_DIR/browser (target/browser). Prints the whole run's duration.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

bash scripts/setup-browser.sh
bash scripts/build-web.sh

out="${CARGO_TARGET_DIR:-target}/browser"
www="${CARGO_TARGET_DIR:-target}/www"
node crates/cairn-web/tests/browser/test.mjs "$www" "$out"
node crates/cairn-web/tests/browser/wiki.mjs "$www" "$out"
cargo build --release -p cairn-cli --bin cairn --locked
node crates/cairn-web/tests/browser/sync.mjs "$www" "$out" "${CARGO_TARGET_DIR:-target}/release/cairn"
node crates/cairn-web/tests/browser/wiki-serve.mjs "$www" "$out" "${CARGO_TARGET_DIR:-target}/release/cairn"
node crates/cairn-web/tests/browser/images.mjs "$www" "$out" "${CARGO_TARGET_DIR:-target}/release/cairn"
echo "test-browser: $(( $(date +%s) - start )) s in all (install check, build, tests)"
