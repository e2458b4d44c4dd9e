#!/usr/bin/env bash
# Installs what cairn's build and tests need, on a machine with only Rust (rustup + cargo).
# Idempotent: each step checks first, so a second run does nothing.
set -euo pipefail

have_component() { rustup component list --installed 2>/dev/null | grep -q "^$1"; }
for c in rustfmt clippy; do
  have_component "$c" || rustup component add "$c"
done
rustup target list --installed | grep -q '^wasm32-unknown-unknown$' \
  || rustup target add wasm32-unknown-unknown

# The fuzzer driver (runs on the stable toolchain, see scripts/test.sh).
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --version 0.13.2
fi
