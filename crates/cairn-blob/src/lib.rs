//! # cairn-blob
//!
//! Content-addressed binary content beside a cairn log: a blob's name is its BLAKE3 hash
//! (the root of BLAKE3's tree), and it moves between peers **verified chunk group by chunk
//! group** (16 KiB) as it arrives, on its own channel of the connection the log replicates
//! over.
//!
//! - [`BlobStore`]: `add` (bytes or a reader) → [`BlobHash`], `reader` (streaming, seekable,
//!   byte ranges), `has`, `list` (complete and partial, with sizes), `gc` (blobs no node of
//!   the log names). Blobs of at most one chunk group live in a redb table of the log's own
//!   database; larger ones as files beside it (data + pre-order outboard), written under a
//!   temporary name, fsynced and renamed when complete. A download in progress is a
//!   [`Partial`]: sparse files plus a bitfield of verified groups that is only ever written
//!   after the bytes it covers are durable, so `kill -9` loses at most the groups since the
//!   last checkpoint and never leaves a corrupt blob.
//! - [`tree`]: bao-tree's geometry and response format, with a sans-IO
//!   [`ResponseVerifier`](tree::ResponseVerifier) (receiving) and a verifying
//!   [`ResponseEncoder`](tree::ResponseEncoder) (sending).
//! - [`proto`]: the blob protocol, sans-IO: requests, answers and verified data on a channel
//!   of a cairn-sync session; every decoder bounded.
//! - [`http`]: the answer to `GET /blob/HASH` (ranges, sniffed content type).
//!
//! The choice of bao-tree over a home-made BLAKE3 tree is argued in the README.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod http;
pub mod proto;
mod store;
pub mod tree;

pub use store::{
    AddError, BlobInfo, BlobReader, BlobState, BlobStore, DB_CHECKPOINT_BYTES, GcReport, OpenError,
    Partial, PartialError, SMALL_MAX, StoreError, StoredSource, blob_refs, referenced_blobs,
};

/// A blob's name: the BLAKE3 hash of its bytes (the root of BLAKE3's tree).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobHash(pub [u8; 32]);

impl BlobHash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> BlobHash {
        BlobHash(*blake3::hash(bytes).as_bytes())
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Display for BlobHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlobHash({})", self.to_hex())
    }
}

/// A string that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a blob hash is 64 hex digits")]
pub struct ParseHashError;

impl std::str::FromStr for BlobHash {
    type Err = ParseHashError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.strip_prefix("blob:").unwrap_or(s);
        if s.len() != 64 {
            return Err(ParseHashError);
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| ParseHashError)?;
        Ok(BlobHash(out))
    }
}
