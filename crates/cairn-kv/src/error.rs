//! Typed errors of the kv store, one per operation.

use cairn_log::core::Hash;
use cairn_log::{AddError, StorageError};
use cairn_view::CatchUpError;

use crate::view::KvViewError;

/// The kv view has stopped (see [`Indexer::error`](cairn_view::Indexer::error)).
pub type IndexStopped = CatchUpError<KvViewError>;

/// Why a kv store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Opening the view failed.
    #[error(transparent)]
    Index(#[from] cairn_view::OpenError<KvViewError>),
}

/// Why a put, delete or batch stored nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The value could not be encoded as JSON.
    #[error("encoding the value: {0}")]
    Encode(#[source] serde_json::Error),
    /// The encoded document would not be well-formed (too deep or too large: see the crate
    /// docs, "Well-formed documents"), so it could not be read back as a value.
    #[error("the document is not well-formed: {reason}")]
    Malformed {
        /// Why.
        reason: String,
    },
    /// The log refused the node (missing link, too large, storage).
    #[error(transparent)]
    Add(#[from] AddError),
    /// The key's current heads could not be read because the view has stopped.
    #[error(transparent)]
    Index(#[from] IndexStopped),
    /// Reading the key's current heads failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why a `get` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GetError {
    /// The view has stopped.
    #[error(transparent)]
    Index(#[from] IndexStopped),
    /// The storage engine failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A stored value does not decode as the requested type.
    #[error("value of {link} does not decode: {source}")]
    Decode {
        /// The head whose value failed.
        link: Hash,
        /// The decoding error.
        source: serde_json::Error,
    },
    /// A head's node could not be read from the log.
    #[error(transparent)]
    Read(#[from] cairn_log::ReadError),
    /// A head names a node the log does not have (the view does not match the log).
    #[error("head {0} is not in the log")]
    MissingNode(Hash),
}

/// Why `list` failed.
pub type ListError = GetError;

/// Why `history` failed.
pub type HistoryError = GetError;

/// Why reading updates failed.
pub type UpdatesError = GetError;

pub(crate) fn storage(e: impl Into<redb::Error>) -> StorageError {
    StorageError(e.into())
}
