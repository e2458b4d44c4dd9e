//! Typed errors of the log.

use cairn_core::{BuildError, DecodeError, Hash, VerifyError};

/// The storage engine failed (I/O error, corruption detected by its checksums, …).
#[derive(Debug, thiserror::Error)]
#[error("storage: {0}")]
pub struct StorageError(#[from] pub redb::Error);

macro_rules! storage_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StorageError {
            fn from(e: $t) -> Self {
                StorageError(e.into())
            }
        }
    )*};
}
storage_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Why a log could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The storage engine failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The store was written by a newer or unknown version of cairn.
    #[error("store format {found} is not supported (this build reads format {supported})")]
    UnsupportedFormat {
        /// Format found in the store.
        found: u64,
        /// Format this build reads and writes.
        supported: u64,
    },
    /// The file could not be created or opened.
    #[error("cannot open {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Why nodes were not added. Nothing of the failed call was stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddError {
    /// The node could not be built (too large, too many links).
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A node links to a node the log does not have (and that comes no earlier in the batch).
    #[error("node {node} links to {link}, which is not in the log")]
    MissingLink {
        /// The node.
        node: Hash,
        /// Its missing link.
        link: Hash,
    },
    /// A batch entry links to a later or non-existent entry of the same batch.
    #[error("batch entry {entry} links to entry {target}, which does not come before it")]
    BadBatchLink {
        /// Index of the entry.
        entry: usize,
        /// Index it links to.
        target: usize,
    },
    /// A received node was refused by the log's verification policy.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// The log has no signer, so it cannot write signed nodes.
    #[error("this log has no identity to sign with")]
    NoSigner,
    /// The storage engine failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The storage engine failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A stored node does not decode: the store is corrupt.
    #[error("stored node at change {change} is corrupt: {source}")]
    Corrupt {
        /// Its change number.
        change: u64,
        /// The decoding error.
        source: DecodeError,
    },
}
