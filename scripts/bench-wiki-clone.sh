#!/usr/bin/env bash
# A new browser receives a large wiki from `cairn serve` (release builds): the wiki (PAGES
# pages, EDITS edits) is written natively into the server's store by `cairn-bench wiki`, then
# crates/cairn-web/tests/browser/wiki-clone.mjs times a fresh browser profile until it holds
# every node and shows a page, and then opening pages and searching in it through the UI.
#   scripts/bench-wiki-clone.sh [PAGES=10000] [EDITS=100000]
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
bash scripts/setup-browser.sh
cargo build --release --locked -p cairn-cli -p cairn-bench
bash scripts/build-web.sh
CAIRN="$target/release/cairn" CAIRN_BENCH="$target/release/cairn-bench" \
  node crates/cairn-web/tests/browser/wiki-clone.mjs "$target/www" "${1:-10000}" "${2:-100000}"
