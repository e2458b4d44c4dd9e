//! The sync protocol's frame decoder and state machine on arbitrary peer bytes: never a
//! panic, never a completion after a failure, output and memory bounded, the store only ever
//! gains verified nodes. Crash inputs are kept in `crates/cairn-sync/tests/fuzz-crashers/`
//! and replayed by `cargo test -p cairn-sync --test fuzz_crashers`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cairn_sync::fuzzing::frame_input(data);
    let _ = cairn_sync::fuzzing::session_input(data);
});
