#!/usr/bin/env bash
# Every test cairn has, the way CI runs them: formatting, lints (native and wasm32), the
# wasm32 build of the core crates, all unit/property/crash/CLI tests, a timed fuzz run, and
# the browser peer's tests in headless Chromium.
# Set FUZZ_SECONDS (default 30) to fuzz longer, or 0 to skip fuzzing.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

# Crates that must build for the browser (no I/O of their own, no tokio).
WASM_CRATES=(-p cairn-core -p cairn-log)
for c in crates/cairn-view crates/cairn-kv crates/cairn-sync crates/cairn-blob crates/cairn-net crates/cairn-signal crates/cairn-wiki crates/cairn-web crates/cairn-wiki-app; do
  [ -f "$c/Cargo.toml" ] && WASM_CRATES+=(-p "$(basename "$c")")
done

echo "== fmt"
cargo fmt --all --check
cargo fmt --manifest-path fuzz/Cargo.toml --check

echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy --target wasm32-unknown-unknown "${WASM_CRATES[@]}" --locked -- -D warnings

# The browser tests below build the browser's wasm modules (`wasm` profile) and run them; without
# them, build every wasm crate here so that a link error still shows.
if [ "${BROWSER_TESTS:-1}" = 0 ]; then
  echo "== wasm32 build"
  cargo build --target wasm32-unknown-unknown "${WASM_CRATES[@]}" --locked
fi

echo "== tests"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
CI=${CI:-} cargo test --workspace --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] || exit "$status"

fuzz_seconds=${FUZZ_SECONDS:-30}
if [ "$fuzz_seconds" -gt 0 ]; then
  echo "== fuzz (${fuzz_seconds}s per target)"
  # cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
  # No sanitizer: the targets are safe Rust, and the sanitizer runtimes need nightly.
  # Each target starts from the committed seeds (fuzz/seeds/<target>: real session
  # transcripts and node encodings, so a short run gets past the handshake) plus what earlier
  # runs found (fuzz/corpus/<target>, not committed; new inputs go there).
  for target in $(cd fuzz && cargo fuzz list); do
    mkdir -p "fuzz/corpus/$target"
    seeds=()
    [ -d "fuzz/seeds/$target" ] && seeds=("seeds/$target")
    (cd fuzz && RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=../target/fuzz \
      cargo fuzz run "$target" --sanitizer none "corpus/$target" "${seeds[@]}" -- \
      -max_total_time="$fuzz_seconds" 2>&1 | tail -n 2)
  done
fi

# The browser peer in real headless Chromium (installs chromium, wasm-bindgen-cli and
# playwright-core itself; builds cairn-web for wasm32). BROWSER_TESTS=0 skips it.
if [ "${BROWSER_TESTS:-1}" != 0 ]; then
  echo "== browser tests (headless Chromium)"
  # The `cairn` the cargo tests above built (debug, dependencies optimized) serves the
  # browser tests: a release build of it would add minutes and test nothing more.
  CAIRN_BIN="${CARGO_TARGET_DIR:-target}/debug/cairn" bash scripts/test-browser.sh 2>&1 | tee -a "$log"
  status=${PIPESTATUS[0]}
  [ "$status" -eq 0 ] || exit "$status"
fi

# One closing line over all the cargo test runs and the browser run above.
awk '/^test result:/ { p += $4; f += $6; i += $8 }
     /^[a-z-]+: [0-9]+ passed, [0-9]+ failed$/ { p += $2; f += $4 }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, i }' "$log"
