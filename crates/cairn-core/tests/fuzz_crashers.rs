//! Replays the inputs kept from fuzzing (`tests/fuzz-crashers/`, found by
//! `fuzz/fuzz_targets/node_decode.rs`, plus hand-made edge cases) through the same checks
//! the fuzz target makes, so a fixed crash stays fixed in every normal test run.

use cairn_core::{Limits, Node};

#[test]
fn kept_fuzz_inputs_do_not_crash_the_decoder() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz-crashers");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        for limits in [
            Limits::default(),
            Limits {
                max_value_len: 64,
                max_links: 2,
            },
        ] {
            if let Ok(node) = Node::decode(&data, &limits) {
                assert_eq!(node.encode(), data, "{}", path.display());
            }
        }
        count += 1;
    }
    assert!(count > 0, "no fixtures found in {dir}");
}
