//! Typed errors of the core: each names what went wrong.

use crate::{Hash, PublicKey, varint::VarintError};

/// Why bytes could not be decoded into a [`Node`](crate::Node).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before the node did.
    #[error("node encoding ends early: needed {needed} more bytes at offset {offset}")]
    Truncated {
        /// Where the missing part starts.
        offset: usize,
        /// How many bytes were missing (at least).
        needed: usize,
    },
    /// A format version this build does not know.
    #[error("unknown node format version {0}")]
    UnknownVersion(u8),
    /// An author kind other than 0 (none) or 1 (ed25519).
    #[error("unknown author kind {0}")]
    UnknownAuthorKind(u8),
    /// A varint that is not minimal or overflows.
    #[error("bad varint at offset {offset}: {source}")]
    Varint {
        /// Where the varint starts.
        offset: usize,
        /// What was wrong with it.
        source: VarintError,
    },
    /// More links than the limit allows.
    #[error("{count} links exceed the limit of {max}")]
    TooManyLinks {
        /// Links in the node.
        count: u64,
        /// The limit in force.
        max: usize,
    },
    /// Links must be strictly ascending (sorted, no duplicates).
    #[error("links are not strictly ascending at link {index}")]
    LinksNotSorted {
        /// Index of the first link out of order.
        index: usize,
    },
    /// A value longer than the limit allows.
    #[error("value of {len} bytes exceeds the limit of {max}")]
    ValueTooLarge {
        /// Declared value length.
        len: u64,
        /// The limit in force.
        max: usize,
    },
    /// Bytes after the end of the node.
    #[error("{0} unexpected bytes after the node")]
    TrailingBytes(usize),
    /// The node's hash is not the key it was sent or stored under.
    #[error("node hashes to {actual}, expected {expected}")]
    WrongHash {
        /// The key the node was claimed to have.
        expected: Hash,
        /// The key its bytes hash to.
        actual: Hash,
    },
}

/// Why a node could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// More links than the limit allows.
    #[error("{count} links exceed the limit of {max}")]
    TooManyLinks {
        /// Links given (after removing duplicates).
        count: usize,
        /// The limit in force.
        max: usize,
    },
    /// A value longer than the limit allows.
    #[error("value of {len} bytes exceeds the limit of {max}")]
    ValueTooLarge {
        /// Value length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// A signature given for a node without an author, or none for a node with one.
    #[error("a node carries a signature exactly when it names an author")]
    SignatureMismatch,
}

/// Why a node was refused by a [`Verify`](crate::Verify) policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The policy requires signed nodes and this one has no author.
    #[error("node {0} is not signed")]
    Unsigned(Hash),
    /// The signature does not verify for the node's author and key.
    #[error("bad signature on node {key} by {author}")]
    BadSignature {
        /// The node.
        key: Hash,
        /// The author it names.
        author: PublicKey,
    },
    /// The author's bytes are not a valid (or are a weak) ed25519 public key.
    #[error("node {key} names an invalid or weak public key {author}")]
    BadPublicKey {
        /// The node.
        key: Hash,
        /// The author it names.
        author: PublicKey,
    },
    /// A batch check could not draw its random coefficients, so it did not decide; nothing
    /// is known about the nodes (a local failure, not the sender's fault): retry later.
    #[error("signatures not checked: {0}")]
    Randomness(RandomSourceError),
    /// The author is not on the policy's allow-list.
    #[error("node {key} is by {author}, who is not allowed here")]
    UnknownAuthor {
        /// The node.
        key: Hash,
        /// The author it names.
        author: PublicKey,
    },
}

/// The operating system's (or the browser's) random source failed.
///
/// cairn draws randomness for key generation ([`Keypair::generate`](crate::Keypair::generate))
/// and for the coefficients of a batch signature check
/// ([`Verify::verify_batch`](crate::Verify::verify_batch)); either reports this error
/// instead of going on without.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the OS random source failed: {0}")]
pub struct RandomSourceError(getrandom::Error);

impl RandomSourceError {
    /// Fills `buf` from the OS random source.
    pub(crate) fn fill(buf: &mut [u8]) -> Result<(), RandomSourceError> {
        getrandom::fill(buf).map_err(RandomSourceError)
    }

    /// The error of a random source stand-in that always fails (tests only).
    #[cfg(test)]
    pub(crate) fn unsupported() -> RandomSourceError {
        RandomSourceError(getrandom::Error::UNSUPPORTED)
    }
}
