//! Unsigned LEB128 varints, minimal form only.
//!
//! Seven bits per byte, least significant group first; the high bit of a byte says another
//! byte follows. A value has exactly one valid encoding: the decoder rejects a trailing zero
//! group (`0x80 0x00` for 0), so two encodings of one node cannot hash differently.

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VarintError {
    /// The input ended inside the varint.
    #[error("input ended inside a varint")]
    Truncated,
    /// More than 64 bits, or a longer encoding than the value needs.
    #[error("varint is not in minimal form or exceeds 64 bits")]
    NonCanonical,
}

/// Appends the encoding of `v` to `out`.
pub fn encode(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// How many bytes [`encode`] writes for `v`.
pub fn encoded_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Reads a varint from the front of `input`; returns it and the number of bytes used.
pub fn decode(input: &[u8]) -> Result<(u64, usize), VarintError> {
    let mut v: u64 = 0;
    for (i, &b) in input.iter().enumerate() {
        if i == 9 && b > 1 {
            return Err(VarintError::NonCanonical); // would overflow 64 bits
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if b == 0 && i > 0 {
                return Err(VarintError::NonCanonical);
            }
            return Ok((v, i + 1));
        }
        if i == 9 {
            return Err(VarintError::NonCanonical);
        }
    }
    Err(VarintError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        let cases: &[(u64, &[u8])] = &[
            (0, &[0]),
            (1, &[1]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (
                u64::MAX,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ];
        for (v, bytes) in cases {
            let mut out = Vec::new();
            encode(*v, &mut out);
            assert_eq!(&out, bytes);
            assert_eq!(encoded_len(*v), bytes.len());
            assert_eq!(decode(bytes), Ok((*v, bytes.len())));
        }
    }

    #[test]
    fn rejects_bad_forms() {
        assert_eq!(decode(&[]), Err(VarintError::Truncated));
        assert_eq!(decode(&[0x80]), Err(VarintError::Truncated));
        assert_eq!(decode(&[0x80, 0x00]), Err(VarintError::NonCanonical));
        assert_eq!(decode(&[0xff; 10]), Err(VarintError::NonCanonical));
        let mut over = vec![0xff; 9];
        over.push(0x02);
        assert_eq!(decode(&over), Err(VarintError::NonCanonical));
    }

    proptest! {
        #[test]
        fn round_trip(v: u64, tail in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut out = Vec::new();
            encode(v, &mut out);
            let n = out.len();
            out.extend_from_slice(&tail);
            prop_assert_eq!(decode(&out), Ok((v, n)));
        }

        #[test]
        fn decode_never_panics_and_is_unique(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            if let Ok((v, n)) = decode(&bytes) {
                let mut out = Vec::new();
                encode(v, &mut out);
                prop_assert_eq!(&out[..], &bytes[..n]);
            }
        }
    }
}
