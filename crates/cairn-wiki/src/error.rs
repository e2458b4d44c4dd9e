//! Typed errors of the wiki, one per kind of operation.

use cairn_log::StorageError;
use cairn_log::core::Hash;
use cairn_view::CatchUpError;

use crate::title::Title;
use crate::view::WikiViewError;

/// The wiki view has stopped (see [`Indexer::error`](cairn_view::Indexer::error)).
pub type IndexStopped = CatchUpError<WikiViewError>;

/// Why a wiki could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Opening the wiki view failed.
    #[error(transparent)]
    Index(#[from] cairn_view::OpenError<WikiViewError>),
    /// Opening the kv store failed.
    #[error(transparent)]
    Kv(#[from] cairn_kv::OpenError),
    /// Opening the local block list failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why a read (page, history, list, search, …) failed. Hostile or malformed values never
/// cause one: they are shown as broken versions or left out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The wiki view has stopped.
    #[error(transparent)]
    Index(#[from] IndexStopped),
    /// The storage engine failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Reading a node from the log failed.
    #[error(transparent)]
    Log(#[from] cairn_log::ReadError),
    /// A record of the view does not decode (the view's tables are damaged: rebuild it).
    #[error("wiki view record: {0}")]
    Record(#[from] serde_json::Error),
    /// No version `version` in the history of `title`.
    #[error("{title} has no version {version}")]
    NoVersion {
        /// The page.
        title: Title,
        /// The version asked for.
        version: Hash,
    },
}

/// Why a save, delete, revert, rename or name change stored nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// Reading what the write depends on failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The kv store (the log under it) refused the write.
    #[error(transparent)]
    Kv(#[from] cairn_kv::WriteError),
    /// The version asked for holds no text (a delete, redirect or broken version).
    #[error("version {0} of the page holds no text")]
    NotText(Hash),
    /// Undelete: the page has no earlier text version.
    #[error("{0} has no earlier text to restore")]
    NothingToRestore(Title),
    /// Rename: the page has no current text version to move.
    #[error("{0} has no text to rename")]
    NoText(Title),
    /// Rename: the page is forked; merge it first.
    #[error("{0} is forked: merge it before renaming")]
    Forked(Title),
    /// Rename: the new title is a page with text already.
    #[error("{0} already exists")]
    Exists(Title),
    /// Rename to the same title.
    #[error("a page cannot be renamed to its own title")]
    SameTitle,
    /// Setting a display name needs a log that signs (it has no identity).
    #[error("the log has no identity to sign with")]
    NoIdentity,
    /// A display name that is empty once cleaned.
    #[error("a display name cannot be empty")]
    EmptyName,
}

/// Why the local block list could not be changed or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlockError {
    /// The storage engine failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub(crate) fn storage(e: impl Into<redb::Error>) -> StorageError {
    StorageError(e.into())
}
