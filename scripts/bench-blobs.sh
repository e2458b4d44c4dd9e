#!/usr/bin/env bash
# Blob figures (issue 10). Builds in release, then:
#  1. in one process (crates/cairn-blob/examples/blob_bench.rs): BLAKE3 alone, `add` of a
#     large file, a verified transfer over an in-memory pipe, and the delivery time of a log
#     node with and without a concurrent transfer on the same live session;
#  2. with real processes: `cairn blob add` of the file, then `cairn blob get --connect` of it
#     from a `cairn serve` over loopback TCP with Noise and verification, with the peak RSS
#     (VmHWM) of both processes.
# Usage: scripts/bench-blobs.sh [MB]   (default 100)
set -euo pipefail
MB=${1:-100}
cd "$(dirname "$0")/.."
T=${CARGO_TARGET_DIR:-target}/release
cargo build --release -q -p cairn-cli --bin cairn
cargo build --release -q -p cairn-blob --example blob_bench
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
SERVER=
echo "== in process =="
"$T/examples/blob_bench" "$MB" "$WORK/inproc"
echo "== real processes =="
head -c $((MB << 20)) /dev/urandom > "$WORK/input.bin"
"$T/cairn" --data "$WORK/s" init > /dev/null
"$T/cairn" --data "$WORK/c" init > /dev/null
sync
START=$(date +%s.%N)
HASH=$("$T/cairn" --data "$WORK/s" blob add "$WORK/input.bin")
END=$(date +%s.%N)
echo "cairn blob add ($MB MiB, process included): $(echo "$MB * 1.048576 / ($END - $START)" | bc -l | cut -d. -f1) MB/s"
"$T/cairn" --data "$WORK/s" serve --listen 127.0.0.1:0 > "$WORK/addr" 2> /dev/null &
SERVER=$!
for _ in $(seq 100); do [ -s "$WORK/addr" ] && break; sleep 0.1; done
ADDR=$(head -1 "$WORK/addr")
START=$(date +%s.%N)
# To /dev/null: the figure is the transfer into the store (verified, written, fsynced at
# its checkpoints), not a copy of the blob to an output file afterwards.
/usr/bin/time -f "%M" -o "$WORK/client_rss" \
  "$T/cairn" --data "$WORK/c" blob get "$HASH" --connect "tcp://$ADDR" > /dev/null 2> /dev/null
END=$(date +%s.%N)
SERVER_RSS=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER/status")
"$T/cairn" --data "$WORK/c" blob get "$HASH" -o "$WORK/out.bin"
cmp "$WORK/input.bin" "$WORK/out.bin"
echo "cairn blob get over TCP + Noise ($MB MiB, connection and log sync included): $(echo "$MB * 1.048576 / ($END - $START)" | bc -l | cut -d. -f1) MB/s"
echo "peak RSS: client $(( $(cat "$WORK/client_rss") / 1024 )) MB, server $(( SERVER_RSS / 1024 )) MB"
echo "== two peers at once (swarm) =="
"$T/cairn" --data "$WORK/s2" init > /dev/null
"$T/cairn" --data "$WORK/s2" blob add "$WORK/input.bin" > /dev/null
"$T/cairn" --data "$WORK/s2" serve --listen 127.0.0.1:0 > "$WORK/addr2" 2> /dev/null &
SERVER2=$!
trap 'kill $SERVER $SERVER2 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do [ -s "$WORK/addr2" ] && break; sleep 0.1; done
ADDR2=$(head -1 "$WORK/addr2")
"$T/cairn" --data "$WORK/c2" init > /dev/null
START=$(date +%s.%N)
"$T/cairn" --data "$WORK/c2" blob get "$HASH" --connect "tcp://$ADDR" --connect "tcp://$ADDR2" > /dev/null 2> /dev/null
END=$(date +%s.%N)
"$T/cairn" --data "$WORK/c2" blob get "$HASH" -o "$WORK/out2.bin"
cmp "$WORK/input.bin" "$WORK/out2.bin"
echo "cairn blob get from two peers over TCP + Noise ($MB MiB): $(echo "$MB * 1.048576 / ($END - $START)" | bc -l | cut -d. -f1) MB/s"
