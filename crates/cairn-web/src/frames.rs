//! The binary form of a list of nodes handed to the worker (`insert`): each node as its
//! canonical encoding ([`Node::encode`]) behind a 4-byte little-endian length.
//!
//! ```text
//! repeat { len: u32 LE, node: [u8; len] }
//! ```
//!
//! Decoding checks each length against what is left and against the format's largest node
//! before it allocates, and each node with [`Node::decode`] (which recomputes its key).

use cairn_log::core::{DecodeError, Limits, Node};

/// Why a frame list does not decode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FramesError {
    /// The bytes end inside a length or a node.
    #[error("frames end early at offset {offset}")]
    Truncated {
        /// Where the cut frame starts.
        offset: usize,
    },
    /// A length larger than any node of the format can be.
    #[error("frame at offset {offset} declares {len} bytes, over the largest node ({max})")]
    TooLarge {
        /// Where the frame starts.
        offset: usize,
        /// Its declared length.
        len: usize,
        /// The largest node the format allows.
        max: usize,
    },
    /// A frame is not a valid node.
    #[error("frame {index} is not a valid node: {source}")]
    Node {
        /// Its index in the list.
        index: usize,
        /// Why it does not decode.
        source: DecodeError,
    },
}

/// The largest encoded node of the format: value, links, author, signature and headers.
fn max_frame(limits: &Limits) -> usize {
    limits.max_value_len + limits.max_links * 32 + 32 + 64 + 32
}

/// Encodes `nodes` as frames.
pub fn encode(nodes: &[Node]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nodes.iter().map(|n| 4 + n.encoded_len()).sum());
    for n in nodes {
        out.extend_from_slice(&(n.encoded_len() as u32).to_le_bytes());
        n.encode_into(&mut out);
    }
    out
}

/// Decodes frames into nodes, each within `limits`.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Vec<Node>, FramesError> {
    let max = max_frame(limits);
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let Some(head) = bytes.get(at..at + 4) else {
            return Err(FramesError::Truncated { offset: at });
        };
        let mut len = [0u8; 4];
        len.copy_from_slice(head);
        let len = u32::from_le_bytes(len) as usize;
        if len > max {
            return Err(FramesError::TooLarge {
                offset: at,
                len,
                max,
            });
        }
        let Some(body) = bytes.get(at + 4..at + 4 + len) else {
            return Err(FramesError::Truncated { offset: at });
        };
        let index = out.len();
        out.push(Node::decode(body, limits).map_err(|source| FramesError::Node { index, source })?);
        at += 4 + len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_log::core::{Draft, Keypair};
    use proptest::prelude::*;

    fn nodes(n: usize) -> Vec<Node> {
        let kp = Keypair::from_seed([3; 32]);
        let mut out: Vec<Node> = Vec::new();
        for i in 0..n {
            let links = out.last().map(|p: &Node| vec![p.key()]).unwrap_or_default();
            let d = Draft::new(
                links,
                Some(kp.public()),
                vec![i as u8; i],
                &Limits::default(),
            )
            .unwrap();
            out.push(d.sign(&kp).unwrap());
        }
        out
    }

    #[test]
    fn round_trip() {
        let ns = nodes(5);
        assert_eq!(decode(&encode(&ns), &Limits::default()).unwrap(), ns);
        assert!(decode(&[], &Limits::default()).unwrap().is_empty());
    }

    #[test]
    fn cut_and_oversized_frames_are_refused() {
        let ns = nodes(3);
        let bytes = encode(&ns);
        // A cut at a frame boundary is a shorter valid list; anywhere else it is refused.
        let mut boundaries = vec![0];
        for n in &ns {
            boundaries.push(boundaries.last().unwrap() + 4 + n.encoded_len());
        }
        for cut in 1..bytes.len() {
            let r = decode(&bytes[..cut], &Limits::default());
            match boundaries.iter().position(|&b| b == cut) {
                Some(i) => assert_eq!(r.unwrap(), ns[..i]),
                None => assert!(
                    matches!(r, Err(FramesError::Truncated { .. })),
                    "cut at {cut}"
                ),
            }
        }
        let mut big = bytes.clone();
        big[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode(&big, &Limits::default()),
            Err(FramesError::TooLarge { offset: 0, .. })
        ));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode(&bytes, &Limits::default());
        }

        #[test]
        fn flipped_bytes_decode_or_fail_cleanly(flip in 0usize..400, bit in 0u8..8) {
            let mut bytes = encode(&nodes(3));
            let i = flip % bytes.len();
            bytes[i] ^= 1 << bit;
            if let Ok(ns) = decode(&bytes, &Limits::default()) {
                // A flip that still decodes yields nodes whose keys match their bytes.
                for n in ns {
                    prop_assert_eq!(Node::decode(&n.encode(), &Limits::default()).unwrap().key(), n.key());
                }
            }
        }
    }
}
