//! The blob protocol's message decoder and the response verifier on arbitrary peer bytes:
//! never a panic; a verifier fed any bytes for a real blob's response yields only items that
//! are the blob's own (nothing unverified comes out).
#![no_main]

use cairn_blob::BlobHash;
use cairn_blob::proto::Message;
use cairn_blob::tree::{self, ResponseVerifier, Verified};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::decode(data) {
        let mut back = Vec::new();
        m.encode(&mut back);
        assert_eq!(Message::decode(&back).as_ref(), Ok(&m));
    }
    // A 40 KiB blob (3 groups): the fuzzer's bytes as its response, cut where it says.
    let blob: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    let h = BlobHash::of(&blob);
    let size = blob.len() as u64;
    let all = std::iter::once(0..u64::MAX).collect::<Vec<_>>();
    let mut v = ResponseVerifier::new(&h, size, tree::chunk_ranges(&all, size));
    let mut items = Vec::new();
    for piece in data.chunks(data.first().map_or(1, |&b| b as usize + 1)) {
        if v.push(piece, &mut items).is_err() {
            break;
        }
    }
    for it in items {
        if let Verified::Group { offset, data } = it {
            let o = offset as usize;
            assert_eq!(&blob[o..o + data.len()], &data[..]);
        }
    }
});
