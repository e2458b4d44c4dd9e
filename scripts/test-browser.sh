#!/usr/bin/env bash
# cairn-web's tests in a real browser: installs what they need (scripts/setup-browser.sh),
# builds the wasm peer (release) and its JS bindings into crates/cairn-web/www/pkg, and runs
# crates/cairn-web/tests/browser/*.mjs below in headless Debian Chromium: the peer harness, tabs
# of one profile sharing a store, the wiki app, live sync with `cairn serve` ($CAIRN_BIN, else a
# release build made here), the served wiki, the WebRTC swarm, images in the wiki. Screenshots go to
# $CARGO_TARGET_DIR/browser (target/browser). Prints the whole run's duration.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

bash scripts/setup-browser.sh
bash scripts/build-web.sh

out="${CARGO_TARGET_DIR:-target}/browser"
www="${CARGO_TARGET_DIR:-target}/www"
node crates/cairn-web/tests/browser/test.mjs "$www" "$out"
node crates/cairn-web/tests/browser/tabs.mjs "$www" "$out"
node crates/cairn-web/tests/browser/wiki.mjs "$www" "$out"
# The native peer the browsers sync with: $CAIRN_BIN if set (scripts/test.sh passes the debug
# build its cargo tests made), else a release build.
cairn=${CAIRN_BIN:-}
if [ -z "$cairn" ]; then
  cargo build --release -p cairn-cli --bin cairn --locked
  cairn="${CARGO_TARGET_DIR:-target}/release/cairn"
fi
node crates/cairn-web/tests/browser/sync.mjs "$www" "$out" "$cairn"
node crates/cairn-web/tests/browser/wiki-serve.mjs "$www" "$out" "$cairn"
node crates/cairn-web/tests/browser/swarm.mjs "$www" "$out" "$cairn"
node crates/cairn-web/tests/browser/images.mjs "$www" "$out" "$cairn"
echo "test-browser: $(( $(date +%s) - start )) s in all (install check, build, tests)"
