#!/usr/bin/env bash
# `cairn serve` under hostile load and after crashes, real processes on 127.0.0.1:
# (a) 20,000 connection attempts (idle TCP, stalled WebSocket upgrades, garbage) from 100
#     loopback addresses while a real sync is retried until it succeeds: server alive, its
#     peak memory and its RSS after; (b) a push of 200 nodes of 4 MiB: the server's peak
#     memory for that one session; (c) the share of a 200k-node clone kept after kill -9 of
#     the receiving `cairn sync --connect` at 1, 2 and 4 s.
# Usage: scripts/bench-hostile.sh [cairn-bench hostile flags, e.g. --phases flood --attempts 2000]
# Needs `ulimit -n` above the attempts (raised here; as root the hard limit can be raised too).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-release}
if [ "$profile" = release ]; then
  cargo build --release -p cairn-cli -p cairn-bench >&2
else
  cargo build -p cairn-cli -p cairn-bench >&2
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
bin="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/$profile"
mkdir -p bench/results
"$bin/cairn-bench" hostile --n 200000 --dir "${BENCH_TMP:-/tmp/cairn-bench-hostile}" "$@" \
  | tee bench/results/hostile.md
