//! The node: its fields, canonical encoding and key.
//!
//! See `docs/FORMAT.md` for the byte layout. In short, with varints as in [`crate::varint`]:
//!
//! ```text
//! body = version:u8 (=1)
//!        author_kind:u8 (0 = none, 1 = ed25519) [author:32 if kind = 1]
//!        link_count:varint  links:32×link_count (strictly ascending)
//!        value_len:varint   value:value_len
//! node = body [signature:64, present exactly when author_kind = 1]
//! key  = BLAKE3 derive_key(HASH_CONTEXT, body)
//! signature = ed25519(author, key)
//! ```

use crate::{
    BuildError, DecodeError, Hash, PublicKey, Signature, Signer,
    varint::{self, VarintError},
};

/// The node format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// The BLAKE3 key-derivation context of node keys. Because of it a node key can never equal
/// the plain BLAKE3 hash of any byte string (a blob, say), so a signature over a node key
/// cannot be replayed as a statement about other content.
pub const HASH_CONTEXT: &str = "cairn 2026-11 node v1";

const AUTHOR_NONE: u8 = 0;
const AUTHOR_ED25519: u8 = 1;

/// Size limits applied when building and decoding nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest value, in bytes.
    pub max_value_len: usize,
    /// Most links per node.
    pub max_links: usize,
}

impl Limits {
    /// The hard ceiling of the format: no node over these sizes is valid anywhere.
    pub const FORMAT: Limits = Limits {
        max_value_len: 16 << 20,
        max_links: 4096,
    };
}

impl Default for Limits {
    /// 4 MiB values, 1024 links: roomy for documents; large binaries belong in blobs.
    fn default() -> Self {
        Limits {
            max_value_len: 4 << 20,
            max_links: 1024,
        }
    }
}

/// A node's fields and key, before it is signed.
///
/// Building a node is two steps so that the key (cheap, sequential: later nodes of a batch
/// link to earlier ones by key) can be computed apart from the signature (costly, done in
/// parallel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    key: Hash,
    links: Vec<Hash>,
    author: Option<PublicKey>,
    value: Vec<u8>,
}

impl Draft {
    /// Lays out a node: sorts and de-duplicates `links`, checks the limits, computes the key.
    pub fn new(
        links: impl IntoIterator<Item = Hash>,
        author: Option<PublicKey>,
        value: impl Into<Vec<u8>>,
        limits: &Limits,
    ) -> Result<Draft, BuildError> {
        let value = value.into();
        let mut links: Vec<Hash> = links.into_iter().collect();
        links.sort_unstable();
        links.dedup();
        let max_links = limits.max_links.min(Limits::FORMAT.max_links);
        if links.len() > max_links {
            return Err(BuildError::TooManyLinks {
                count: links.len(),
                max: max_links,
            });
        }
        let max_value = limits.max_value_len.min(Limits::FORMAT.max_value_len);
        if value.len() > max_value {
            return Err(BuildError::ValueTooLarge {
                len: value.len(),
                max: max_value,
            });
        }
        let key = hash_body(&encode_body(&links, author.as_ref(), &value));
        Ok(Draft {
            key,
            links,
            author,
            value,
        })
    }

    /// The key the finished node will have.
    pub fn key(&self) -> Hash {
        self.key
    }

    /// The links, strictly ascending.
    pub fn links(&self) -> &[Hash] {
        &self.links
    }

    /// Signs with `signer` (whose identity must be the draft's author).
    pub fn sign(self, signer: &dyn Signer) -> Result<Node, BuildError> {
        if self.author != Some(signer.identity()) {
            return Err(BuildError::SignatureMismatch);
        }
        let signature = signer.sign(&self.key);
        self.finish(Some(signature))
    }

    /// Finishes the node with `signature`, which must be present exactly when the draft has
    /// an author. The signature is not checked here; [`Verify`](crate::Verify) does that.
    pub fn finish(self, signature: Option<Signature>) -> Result<Node, BuildError> {
        if self.author.is_some() != signature.is_some() {
            return Err(BuildError::SignatureMismatch);
        }
        Ok(Node {
            key: self.key,
            links: self.links,
            author: self.author,
            value: self.value,
            signature,
        })
    }
}

/// A node of the merkle DAG: links to earlier nodes, a value, and optionally an author and
/// the author's signature over the node's key.
///
/// A `Node` always holds a key that matches its fields: it is made only by [`Draft`] or
/// [`Node::decode`], both of which compute the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    key: Hash,
    links: Vec<Hash>,
    author: Option<PublicKey>,
    value: Vec<u8>,
    signature: Option<Signature>,
}

impl Node {
    /// An unsigned node (no author).
    pub fn unsigned(
        links: impl IntoIterator<Item = Hash>,
        value: impl Into<Vec<u8>>,
        limits: &Limits,
    ) -> Result<Node, BuildError> {
        Draft::new(links, None, value, limits)?.finish(None)
    }

    /// A node signed by `signer`.
    pub fn signed(
        links: impl IntoIterator<Item = Hash>,
        value: impl Into<Vec<u8>>,
        signer: &dyn Signer,
        limits: &Limits,
    ) -> Result<Node, BuildError> {
        Draft::new(links, Some(signer.identity()), value, limits)?.sign(signer)
    }

    /// The node's key: the hash of its body.
    pub fn key(&self) -> Hash {
        self.key
    }
    pub(crate) fn key_ref(&self) -> &Hash {
        &self.key
    }
    /// The keys this node links to, strictly ascending.
    pub fn links(&self) -> &[Hash] {
        &self.links
    }
    /// The author's public key, for a signed node.
    pub fn author(&self) -> Option<&PublicKey> {
        self.author.as_ref()
    }
    /// The value bytes.
    pub fn value(&self) -> &[u8] {
        &self.value
    }
    /// Takes the value out of the node.
    pub fn into_value(self) -> Vec<u8> {
        self.value
    }
    /// The signature, for a signed node.
    pub fn signature(&self) -> Option<&Signature> {
        self.signature.as_ref()
    }

    /// Length of [`Node::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        body_len(&self.links, self.author.is_some(), self.value.len())
            + if self.signature.is_some() { 64 } else { 0 }
    }

    /// The canonical encoding: body, then the signature if any.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Appends the canonical encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        write_body(&self.links, self.author.as_ref(), &self.value, out);
        if let Some(sig) = &self.signature {
            out.extend_from_slice(&sig.0);
        }
    }

    /// Decodes a whole node from `bytes` and computes its key. Every byte must belong to the
    /// node; anything malformed, over `limits`, or not in canonical form is an error.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Node, DecodeError> {
        Node::decode_inner(bytes, limits, None)
    }

    fn decode_inner(bytes: &[u8], limits: &Limits, key: Option<Hash>) -> Result<Node, DecodeError> {
        let mut r = Reader { bytes, pos: 0 };
        let version = r.u8()?;
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnknownVersion(version));
        }
        let author = match r.u8()? {
            AUTHOR_NONE => None,
            AUTHOR_ED25519 => Some(PublicKey(r.array()?)),
            other => return Err(DecodeError::UnknownAuthorKind(other)),
        };
        let count = r.varint()?;
        let max_links = limits.max_links.min(Limits::FORMAT.max_links);
        if count > max_links as u64 {
            return Err(DecodeError::TooManyLinks {
                count,
                max: max_links,
            });
        }
        // `count` is bounded by the limit, so this allocation is too.
        let mut links = Vec::with_capacity(count as usize);
        for index in 0..count as usize {
            let link = Hash(r.array()?);
            if links.last().is_some_and(|prev| *prev >= link) {
                return Err(DecodeError::LinksNotSorted { index });
            }
            links.push(link);
        }
        let len = r.varint()?;
        let max_value = limits.max_value_len.min(Limits::FORMAT.max_value_len);
        if len > max_value as u64 {
            return Err(DecodeError::ValueTooLarge {
                len,
                max: max_value,
            });
        }
        let value = r.take(len as usize)?.to_vec();
        let body_end = r.pos;
        let signature = match author {
            Some(_) => Some(Signature(r.array()?)),
            None => None,
        };
        if r.pos != bytes.len() {
            return Err(DecodeError::TrailingBytes(bytes.len() - r.pos));
        }
        Ok(Node {
            key: key.unwrap_or_else(|| hash_body(&bytes[..body_end])),
            links,
            author,
            value,
            signature,
        })
    }

    /// Decodes bytes that a trusted store holds under `key`, without recomputing the hash:
    /// for reads of nodes that were checked when they were stored (and that the storage
    /// engine's checksums protect since). Everything else is checked as in [`Node::decode`].
    /// Never use it for bytes from a peer.
    pub fn decode_stored(bytes: &[u8], key: Hash, limits: &Limits) -> Result<Node, DecodeError> {
        Node::decode_inner(bytes, limits, Some(key))
    }

    /// Decodes like [`Node::decode`] and checks that the node's key is `expected`.
    pub fn decode_expecting(
        bytes: &[u8],
        expected: &Hash,
        limits: &Limits,
    ) -> Result<Node, DecodeError> {
        let node = Node::decode(bytes, limits)?;
        if node.key != *expected {
            return Err(DecodeError::WrongHash {
                expected: *expected,
                actual: node.key,
            });
        }
        Ok(node)
    }
}

fn body_len(links: &[Hash], has_author: bool, value_len: usize) -> usize {
    2 + if has_author { 32 } else { 0 }
        + varint::encoded_len(links.len() as u64)
        + 32 * links.len()
        + varint::encoded_len(value_len as u64)
        + value_len
}

fn write_body(links: &[Hash], author: Option<&PublicKey>, value: &[u8], out: &mut Vec<u8>) {
    out.push(FORMAT_VERSION);
    match author {
        None => out.push(AUTHOR_NONE),
        Some(a) => {
            out.push(AUTHOR_ED25519);
            out.extend_from_slice(&a.0);
        }
    }
    varint::encode(links.len() as u64, out);
    for l in links {
        out.extend_from_slice(&l.0);
    }
    varint::encode(value.len() as u64, out);
    out.extend_from_slice(value);
}

fn encode_body(links: &[Hash], author: Option<&PublicKey>, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body_len(links, author.is_some(), value.len()));
    write_body(links, author, value, &mut out);
    out
}

fn hash_body(body: &[u8]) -> Hash {
    // The context is hashed once; each node clones the keyed state (saves one compression).
    static KEYED: std::sync::LazyLock<blake3::Hasher> =
        std::sync::LazyLock::new(|| blake3::Hasher::new_derive_key(HASH_CONTEXT));
    let mut h = KEYED.clone();
    h.update(body);
    Hash(*h.finalize().as_bytes())
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let rest = &self.bytes[self.pos..];
        if rest.len() < n {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                needed: n - rest.len(),
            });
        }
        self.pos += n;
        Ok(&rest[..n])
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let offset = self.pos;
        match varint::decode(&self.bytes[self.pos..]) {
            Ok((v, n)) => {
                self.pos += n;
                Ok(v)
            }
            Err(VarintError::Truncated) => Err(DecodeError::Truncated { offset, needed: 1 }),
            Err(source) => Err(DecodeError::Varint { offset, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Ed25519Verifier, Keypair, Verify};
    use proptest::prelude::*;

    fn lim() -> Limits {
        Limits::default()
    }

    #[test]
    fn unsigned_layout_is_as_documented() {
        let link = Hash([7; 32]);
        let n = Node::unsigned([link], b"hi".to_vec(), &lim()).unwrap();
        let bytes = n.encode();
        let mut expected = vec![1u8, 0, 1];
        expected.extend_from_slice(&[7; 32]);
        expected.extend_from_slice(&[2, b'h', b'i']);
        assert_eq!(bytes, expected);
        assert_eq!(n.encoded_len(), bytes.len());
        assert_eq!(
            n.key().0,
            blake3::derive_key(HASH_CONTEXT, &expected),
            "key is BLAKE3 derive_key over the body"
        );
        assert_eq!(Node::decode(&bytes, &lim()), Ok(n));
    }

    #[test]
    fn signed_round_trip_and_key_covers_author() {
        let a = Keypair::from_seed([1; 32]);
        let b = Keypair::from_seed([2; 32]);
        let na = Node::signed([], b"v".to_vec(), &a, &lim()).unwrap();
        let nb = Node::signed([], b"v".to_vec(), &b, &lim()).unwrap();
        assert_ne!(na.key(), nb.key(), "the author is part of the key");
        let bytes = na.encode();
        assert_eq!(bytes.len(), 2 + 32 + 1 + 1 + 1 + 64);
        let back = Node::decode(&bytes, &lim()).unwrap();
        assert_eq!(back, na);
        Ed25519Verifier::strict().verify(&back).unwrap();
    }

    #[test]
    fn decode_stored_trusts_the_key_but_checks_the_rest() {
        let n = Node::unsigned([Hash([1; 32])], b"v".to_vec(), &lim()).unwrap();
        let bytes = n.encode();
        assert_eq!(Node::decode_stored(&bytes, n.key(), &lim()), Ok(n));
        assert!(Node::decode_stored(&bytes[..3], Hash([0; 32]), &lim()).is_err());
    }

    #[test]
    fn links_are_sorted_and_deduplicated() {
        let (x, y) = (Hash([9; 32]), Hash([3; 32]));
        let n = Node::unsigned([x, y, x], Vec::new(), &lim()).unwrap();
        assert_eq!(n.links(), &[y, x]);
    }

    #[test]
    fn decoder_rejects_non_canonical_input() {
        let l = lim();
        let n = Node::unsigned([Hash([1; 32]), Hash([2; 32])], b"x".to_vec(), &l).unwrap();
        let good = n.encode();
        // swap the two links: not ascending
        let mut swapped = good.clone();
        swapped[3..35].copy_from_slice(&[2; 32]);
        swapped[35..67].copy_from_slice(&[1; 32]);
        assert_eq!(
            Node::decode(&swapped, &l),
            Err(DecodeError::LinksNotSorted { index: 1 })
        );
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            Node::decode(&trailing, &l),
            Err(DecodeError::TrailingBytes(1))
        );
        assert!(matches!(
            Node::decode(&good[..good.len() - 1], &l),
            Err(DecodeError::Truncated { .. })
        ));
        let mut v2 = good.clone();
        v2[0] = 2;
        assert_eq!(Node::decode(&v2, &l), Err(DecodeError::UnknownVersion(2)));
        let mut kind = good;
        kind[1] = 7;
        assert_eq!(
            Node::decode(&kind, &l),
            Err(DecodeError::UnknownAuthorKind(7))
        );
        assert!(matches!(
            Node::decode_expecting(&n.encode(), &Hash([0; 32]), &l),
            Err(DecodeError::WrongHash { .. })
        ));
    }

    #[test]
    fn limits_are_enforced_both_ways() {
        let small = Limits {
            max_value_len: 4,
            max_links: 1,
        };
        assert!(matches!(
            Node::unsigned([], vec![0; 5], &small),
            Err(BuildError::ValueTooLarge { len: 5, max: 4 })
        ));
        assert!(matches!(
            Node::unsigned([Hash([1; 32]), Hash([2; 32])], vec![], &small),
            Err(BuildError::TooManyLinks { count: 2, max: 1 })
        ));
        let big = Node::unsigned([], vec![0; 5], &lim()).unwrap().encode();
        assert!(matches!(
            Node::decode(&big, &small),
            Err(DecodeError::ValueTooLarge { len: 5, max: 4 })
        ));
        // A declared length of 2^60 is refused before any allocation.
        let mut huge = vec![1u8, 0, 0];
        varint::encode(1 << 60, &mut huge);
        assert!(matches!(
            Node::decode(&huge, &lim()),
            Err(DecodeError::ValueTooLarge { .. })
        ));
    }

    #[test]
    fn signature_presence_must_match_author() {
        let d = Draft::new([], None, b"x".to_vec(), &lim()).unwrap();
        assert_eq!(
            d.finish(Some(Signature([0; 64]))),
            Err(BuildError::SignatureMismatch)
        );
    }

    fn arb_node() -> impl Strategy<Value = Node> {
        (
            proptest::collection::vec(any::<[u8; 32]>(), 0..5),
            proptest::collection::vec(any::<u8>(), 0..200),
            proptest::option::of(any::<[u8; 32]>()),
        )
            .prop_map(|(links, value, seed)| {
                let links = links.into_iter().map(Hash);
                match seed {
                    None => Node::unsigned(links, value, &lim()).unwrap(),
                    Some(s) => Node::signed(links, value, &Keypair::from_seed(s), &lim()).unwrap(),
                }
            })
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(n in arb_node()) {
            let bytes = n.encode();
            prop_assert_eq!(bytes.len(), n.encoded_len());
            prop_assert_eq!(Node::decode(&bytes, &lim()), Ok(n));
        }

        #[test]
        fn any_accepted_bytes_re_encode_identically(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(n) = Node::decode(&bytes, &lim()) {
                prop_assert_eq!(n.encode(), bytes);
            }
        }

        #[test]
        fn every_single_bit_flip_is_caught(n in arb_node(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut bytes = n.encode();
            let i = pos.index(bytes.len());
            bytes[i] ^= 1 << bit;
            // A flipped node either fails to decode, or decodes to a different key, or (flip in the
            // signature) fails verification.
            if let Ok(m) = Node::decode(&bytes, &lim()) {
                let changed_key = m.key() != n.key();
                let bad_sig = Ed25519Verifier::permissive().verify(&m).is_err();
                prop_assert!(changed_key || bad_sig);
            }
        }
    }
}
