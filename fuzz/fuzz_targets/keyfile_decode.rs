//! The key file reader on arbitrary text, and on a real sealed file with bytes changed: it
//! must never panic, and a changed sealed file must never be accepted (every byte is checked:
//! the canonical form, then the AEAD tag over the other lines).
#![no_main]

use std::sync::OnceLock;

use cairn_core::Keypair;
use cairn_core::keyfile::{self, KdfParams};
use libfuzzer_sys::fuzz_target;

const PASS: &str = "fuzz";

/// A sealed file with the cheapest parameters (so that each run is fast).
fn sample() -> &'static String {
    static S: OnceLock<String> = OnceLock::new();
    S.get_or_init(|| {
        let p = KdfParams {
            memory_kib: 8,
            passes: 1,
            lanes: 1,
        };
        keyfile::encode_sealed(&Keypair::from_seed([5; 32]), PASS, p).expect("seals")
    })
}

/// Whether the text asks for more than a cheap KDF (bounded by the reader, but slow).
fn costly(text: &str) -> bool {
    text.lines()
        .find_map(|l| l.strip_prefix("kdf: argon2id m="))
        .is_some_and(|rest| {
            let mut it = rest
                .split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty());
            let m: u64 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let t: u64 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            m > 1024 || t > 2
        })
}

fuzz_target!(|data: &[u8]| {
    // As text of its own.
    if let Ok(text) = std::str::from_utf8(data)
        && !costly(text)
    {
        let _ = keyfile::decode(text, Some(PASS));
        let _ = keyfile::decode(text, None);
    }
    // As edits of the sample: pairs (position, xor mask); any real change is refused.
    let mut bytes = sample().clone().into_bytes();
    for pair in data.chunks_exact(2) {
        let i = pair[0] as usize * 7 % bytes.len();
        bytes[i] ^= pair[1];
    }
    if bytes != sample().as_bytes()
        && let Ok(text) = String::from_utf8(bytes)
        && !costly(&text)
    {
        assert!(
            keyfile::decode(&text, Some(PASS)).is_err(),
            "a changed sealed file was accepted:\n{text}"
        );
    }
});
