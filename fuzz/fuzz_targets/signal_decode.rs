//! The signalling decoders on arbitrary bytes (a client's message as the hub reads it, a
//! hub's message as a client reads it): they must never panic nor allocate by a declared
//! length over the limits, and whatever they accept must re-encode to the same bytes.
#![no_main]

use cairn_signal::{Challenge, ClientMessage, HubMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ClientMessage::decode(data) {
        assert_eq!(m.encode(), data, "accepted bytes re-encode identically");
        // Checking a signature of anything decoded never panics.
        let _ = m.verify(&Challenge([0; 32]));
    }
    if let Ok(m) = HubMessage::decode(data) {
        assert_eq!(m.encode(), data, "accepted bytes re-encode identically");
    }
});
