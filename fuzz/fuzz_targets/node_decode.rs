//! The node decoder on arbitrary bytes: it must never panic, never allocate by a declared
//! length over the limits, and whatever it accepts must re-encode to the same bytes (one node,
//! one encoding) and decode again to the same key.
#![no_main]

use cairn_core::{Limits, Node};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for limits in [
        Limits::default(),
        Limits {
            max_value_len: 64,
            max_links: 2,
        },
    ] {
        if let Ok(node) = Node::decode(data, &limits) {
            assert_eq!(node.encode(), data, "accepted bytes re-encode identically");
            let again = Node::decode_expecting(data, &node.key(), &limits).expect("decodes twice");
            assert_eq!(again, node);
        }
    }
});
