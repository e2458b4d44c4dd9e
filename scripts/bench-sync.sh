#!/usr/bin/env bash
# A write in one browser visible in another through `cairn serve` on loopback (issue 9's
# "≤ 200 ms" figure): two headless Chromium contexts, each a browser peer connected live to
# one `cairn serve --ws-listen` over WebSocket (Noise); N sequential writes in one, the time
# until each is readable in the other; prints the median and p99 as JSON.
#   scripts/bench-sync.sh [N=200]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200}
target="${CARGO_TARGET_DIR:-target}"
bash scripts/setup-browser.sh
bash scripts/build-web.sh
cargo build --release -p cairn-cli --bin cairn --locked
node crates/cairn-web/tests/browser/bench-sync.mjs "$target/www" "$target/release/cairn" "$n"
