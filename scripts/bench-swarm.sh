#!/usr/bin/env bash
# 10k nodes between two browser peers over WebRTC (issue 9's "≤ 5 s" figure): `cairn serve
# --http` as the signalling hub only, two headless Chromium contexts; A holds N nodes
# (appended in batches), then both join one swarm; the time from B's join until B holds all
# N (the WebRTC negotiation, the Noise handshake in the channel and the sync), and the sync
# alone (from B's channel turning live). Prints one JSON line.
#   scripts/bench-swarm.sh [N=10000]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
target="${CARGO_TARGET_DIR:-target}"
bash scripts/setup-browser.sh
bash scripts/build-web.sh
cargo build --release -p cairn-cli --bin cairn --locked
node crates/cairn-web/tests/browser/bench-swarm.mjs "$target/www" "$target/release/cairn" "$n"
