#!/usr/bin/env bash
# The signalling hub of `cairn serve --http` holding N concurrent clients (default 1,000),
# each joined to one of T topics (default 10), then one signed offer relayed per client:
# join times, relays, and `cairn serve`'s RSS while all clients are held (real processes on
# 127.0.0.1; the server's caps are raised above N).
# Usage: scripts/bench-hub.sh [--clients N] [--topics T] [--hold SECS]
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-release}
if [ "$profile" = release ]; then
  cargo build --release -p cairn-cli --bin cairn --example hub_load >&2
else
  cargo build -p cairn-cli --bin cairn --example hub_load >&2
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
bin="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/$profile"
dir=${BENCH_TMP:-/tmp/cairn-bench-hub}
rm -rf "$dir"
"$bin/cairn" --data "$dir" init >/dev/null
out=$(mktemp)
"$bin/cairn" --data "$dir" serve --listen 127.0.0.1:0 --http 127.0.0.1:0 \
  --max-connections 20000 --max-per-ip 20000 --hub-max-clients 20000 --hub-max-per-ip 20000 \
  --log-level warn >"$out" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 100); do [ "$(wc -l <"$out")" -ge 2 ] && break; sleep 0.1; done
addr=$(sed -n 2p "$out" | sed -e 's|^http://||' -e 's|/$||')
mkdir -p bench/results
"$bin/examples/hub_load" "$addr" --pid "$pid" "$@" | tee bench/results/hub.json
