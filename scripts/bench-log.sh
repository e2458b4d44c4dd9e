#!/usr/bin/env bash
# The log store's figures, cairn and the JS seed stack (hyperlog 4.12.1 on LevelDB) side by
# side in the same run, with ratios. Usage: scripts/bench-log.sh [N ...]  (default: 100000)
# Needs node/npm for the JS side (the anchor's README: ../shared/anchors/js); set
# SKIP_JS=1 to measure cairn alone. Results: bench/results/log-N.md
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(100000)
tmp=${BENCH_TMP:-/tmp/cairn-bench}
mkdir -p "$tmp" bench/results

cargo build --release -p cairn-bench >&2

anchor_src=${JS_ANCHOR:-$root/../shared/anchors/js}
js="$tmp/js-anchor"
if [ -z "${SKIP_JS:-}" ]; then
  if [ ! -d "$js/node_modules" ]; then
    rm -rf "$js"; cp -r "$anchor_src" "$js"
    (cd "$js" && npm ci --no-audit --no-fund >&2)
  fi
fi

for n in "${sizes[@]}"; do
  jsjson=""
  if [ -z "${SKIP_JS:-}" ]; then
    echo "[bench-log] JS anchor, N=$n ..." >&2
    (cd "$js" && node bench.js "$n" --skip-robustness --only chain-level-signed,batch-level >&2)
    jsjson="$js/results/results-$n-chain-level-signed+batch-level.json"
  fi
  echo "[bench-log] cairn, N=$n ..." >&2
  "${CARGO_TARGET_DIR:-target}/release/cairn-bench" log --n "$n" --dir "$tmp/cairn-$n" | tee "$tmp/cairn-$n.txt" >&2
  python3 scripts/bench_table.py "$n" "$tmp/cairn-$n.txt" "$jsjson" | tee "bench/results/log-$n.md"
done
