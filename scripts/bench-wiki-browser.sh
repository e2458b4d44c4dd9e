#!/usr/bin/env bash
# The wiki app's figures: its first load as a browser gets it from `cairn serve` (bytes over
# the wire until the first page shows, the server sending its brotli copies; run.sh's build,
# or with --opt here wasm-opt -O3 first; crates/cairn-web/tests/browser/first-load.mjs),
# then in headless Chromium: first page shown on a fresh profile, a wiki of PAGES pages written
# through the worker, opening pages and searching through the UI and as bare worker requests
# (crates/cairn-web/tests/browser/wiki-bench.mjs).
#   scripts/bench-wiki-browser.sh [PAGES=1000] [--opt]
set -euo pipefail
cd "$(dirname "$0")/.."
pages=${1:-1000}
target="${CARGO_TARGET_DIR:-target}"
www="$target/www"
bash scripts/setup-browser.sh
bash scripts/build-web.sh ${2:-}
cargo build --release -p cairn-cli --locked
echo "raw: app wasm $(stat -c %s "$www/wiki/cairn_wiki_app_bg.wasm") B, peer wasm $(stat -c %s "$www/pkg/cairn_web_bg.wasm") B"
node crates/cairn-web/tests/browser/first-load.mjs "$www" "$target/release/cairn"
node crates/cairn-web/tests/browser/wiki-bench.mjs "$www" "$pages"
