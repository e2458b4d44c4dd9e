#!/usr/bin/env bash
# The wiki app's figures: its first-load size (gzip -9 of what the browser fetches for the
# first page: the app's wasm + JS, index.html with its CSS, and the peer's worker wasm + JS,
# after wasm-opt -O3), then in headless Chromium: first page shown on a fresh profile,
# a wiki of PAGES pages written through the worker, opening pages and searching through the
# UI and as bare worker requests (crates/cairn-web/tests/browser/wiki-bench.mjs).
#   scripts/bench-wiki-browser.sh [PAGES=1000]
set -euo pipefail
cd "$(dirname "$0")/.."
pages=${1:-1000}
www="${CARGO_TARGET_DIR:-target}/www"
bash scripts/setup-browser.sh
bash scripts/build-web.sh --opt
gz() { cat "$@" | gzip -9 -c | wc -c; }
app_wasm=$(gz "$www/wiki/cairn_wiki_app_bg.wasm")
app_js=$(gz "$www/wiki/cairn_wiki_app.js" "$www/index.html")
peer_wasm=$(gz "$www/pkg/cairn_web_bg.wasm")
peer_js=$(gz "$www/pkg/cairn_web.js" "$www/cairn.js" "$www/worker.js")
echo "first load, gzip -9: app wasm $app_wasm B + app JS/HTML/CSS $app_js B; peer (worker) wasm $peer_wasm B + JS $peer_js B; total $((app_wasm + app_js + peer_wasm + peer_js)) B"
echo "raw: app wasm $(stat -c %s "$www/wiki/cairn_wiki_app_bg.wasm") B, peer wasm $(stat -c %s "$www/pkg/cairn_web_bg.wasm") B"
node crates/cairn-web/tests/browser/wiki-bench.mjs "$www" "$pages"
