#!/usr/bin/env bash
# The browser peer's figures, in one run: the wasm bundle's size (raw and gzip, after
# wasm-opt -O3), the first-load time of the harness page on a fresh profile, and the ingest
# rate of verified nodes (check + durable insert, batches of BATCH) in the worker on OPFS
# against the native rate of the same work on the same nodes (cairn-web's ingest_native
# example, on disk), measured in the same run.
#   scripts/bench-browser.sh [NODES=20000] [BATCH=1000]
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=${1:-20000}
batch=${2:-1000}
target="${CARGO_TARGET_DIR:-target}"
out="$target/browser-bench"
mkdir -p "$out"

bash scripts/setup-browser.sh
bash scripts/build-web.sh --opt
pkg=crates/cairn-web/www/pkg
wasm_raw=$(stat -c %s "$pkg/cairn_web_bg.wasm")
wasm_gz=$(gzip -9 -c "$pkg/cairn_web_bg.wasm" | wc -c)
js_gz=$(cat "$pkg/cairn_web.js" crates/cairn-web/www/*.js | gzip -9 -c | wc -c)
echo "bundle: wasm $wasm_raw B raw, $wasm_gz B gzip; JS (bindings + page + worker) $js_gz B gzip"

cargo build --release -p cairn-web --example ingest_native --locked
native=$("$target/release/examples/ingest_native" "$nodes" "$batch" "$out/nodes.bin")
echo "native: $native"
browser=$(node crates/cairn-web/tests/browser/bench.mjs "$target/www" "$out" "$batch")
echo "browser: $browser"
python3 - "$native" "$browser" <<'PY'
import json, sys
n, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"ingest: browser {b['browser_nodes_per_s']} nodes/s vs native {n['native_nodes_per_s']} nodes/s "
      f"({100 * b['browser_nodes_per_s'] / n['native_nodes_per_s']:.0f} %; native on {n['threads']} threads)")
PY
