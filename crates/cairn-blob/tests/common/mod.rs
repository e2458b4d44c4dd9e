//! Helpers shared by cairn-blob's tests.
#![allow(dead_code)] // each test binary uses its own subset

use cairn_blob::tree::{self, ResponseEncoder};
use cairn_blob::{BlobHash, BlobStore};

/// `len` bytes that differ with `seed` (and do not repeat within a group).
pub(crate) fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

/// The whole bao-tree response for `groups` of stored blob `h`: its size and bytes.
pub(crate) fn response(
    store: &BlobStore,
    h: &BlobHash,
    groups: &[std::ops::Range<u64>],
) -> (u64, Vec<u8>) {
    let (size, src) = store.source(h).unwrap().unwrap();
    let mut enc = ResponseEncoder::new(h, size, tree::chunk_ranges(groups, size));
    let mut out = Vec::new();
    enc.fill(&src, &mut out, usize::MAX).unwrap();
    assert!(enc.is_done());
    (size, out)
}
