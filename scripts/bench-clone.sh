#!/usr/bin/env bash
# Full clone over TCP loopback between two cairn processes (`cairn serve` and
# `cairn sync --connect tcp://`, Noise-encrypted), with each side's peak RSS, then an
# already-equal re-sync. Usage: scripts/bench-clone.sh [N ...]  (default: 100000 1000000)
# Results: bench/results/clone.md. The JS figures beside them in the README come from
# ../shared/anchors/js (`node bench.js 100000 --only chain-level-signed`), step 4.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(100000 1000000)
tmp=${BENCH_TMP:-/tmp/cairn-bench}
mkdir -p "$tmp" bench/results
cargo build --release -p cairn-cli >&2
python3 scripts/bench_clone.py "$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/cairn" "$tmp" "${sizes[@]}" | tee bench/results/clone.md
