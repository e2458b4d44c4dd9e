//! Typed errors of the indexer.

use std::sync::Arc;

use cairn_log::{ReadError, StorageError};

/// Why a view stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError<E> {
    /// The view's own logic failed on the node with change number `change`. Every node before
    /// it is applied; it and the later ones are not.
    #[error("view failed at change {change}: {source}")]
    View {
        /// Change number of the node the view could not apply.
        change: u64,
        /// The view's error.
        source: E,
    },
    /// The view's logic panicked on the node with change number `change` (caught, so the
    /// view stops like a failing view instead of taking its thread down).
    #[error("view panicked at change {change}: {message}")]
    Panicked {
        /// Change number of the node the view panicked on.
        change: u64,
        /// The panic message.
        message: String,
    },
    /// Reading the log failed.
    #[error("reading the log: {0}")]
    Read(#[source] ReadError),
    /// Committing the view's transaction failed.
    #[error("committing the view: {0}")]
    Storage(#[source] StorageError),
    /// Another indexer of a different version (or none) now owns the view's stored state.
    #[error("the view's stored state now belongs to version {version:?}")]
    Replaced {
        /// The version found in the progress table.
        version: Option<u64>,
    },
}

/// Why an indexer could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError<E> {
    /// The storage engine failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The view failed to clear its state for a rebuild (new version).
    #[error("clearing the view: {0}")]
    Clear(#[source] E),
}

/// Why a view could not be rebuilt.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RebuildError<E> {
    /// The storage engine failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The view failed to clear its state.
    #[error("clearing the view: {0}")]
    Clear(#[source] E),
}

/// Why a view is not caught up (returned by `catch_up`, `ready`, `ready_blocking`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatchUpError<E> {
    /// The view has stopped on this error (now, or earlier).
    #[error("view stopped: {0}")]
    Stopped(#[source] Arc<IndexError<E>>),
}

pub(crate) fn storage(e: impl Into<redb::Error>) -> StorageError {
    StorageError(e.into())
}
