//! Typed errors of the protocol. Every error that is the peer's fault is also sent to the peer
//! as an error frame (its [`SyncError::code`] and text), so neither side ends unaware.

use std::sync::Arc;

use cairn_core::{BuildError, Hash, VerifyError};

use crate::Mode;

/// Why bytes from the peer could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A frame's length prefix declares more than the limit (checked before allocating).
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// Declared length.
        len: u64,
        /// The limit in force.
        max: usize,
    },
    /// A message ended before one of its fields.
    #[error("message truncated")]
    Truncated,
    /// A varint that is not minimal or overflows.
    #[error("bad varint")]
    BadVarint,
    /// Bytes left after the end of a message.
    #[error("{0} unexpected bytes after a message")]
    TrailingBytes(usize),
    /// An unknown frame kind.
    #[error("unknown frame kind {0}")]
    UnknownFrameKind(u8),
    /// An unknown message tag.
    #[error("unknown message tag {0}")]
    UnknownMessage(u8),
    /// An unknown range item tag.
    #[error("unknown range item tag {0}")]
    UnknownItem(u8),
    /// An unknown mode byte in the handshake.
    #[error("unknown mode {0}")]
    UnknownMode(u8),
    /// A range bound that is malformed, out of order or not ending the key space.
    #[error("bad range bound")]
    BadBound,
    /// More ids, items, nodes or links than a message may carry.
    #[error("too many entries in a message: {count} > {max}")]
    TooMany {
        /// Entries declared.
        count: u64,
        /// The limit.
        max: usize,
    },
    /// A node refers to an author index that was never defined.
    #[error("unknown author index {0}")]
    UnknownAuthor(u64),
    /// A node refers to a link by a back-reference outside the window.
    #[error("bad link back-reference {0}")]
    BadBackRef(u64),
    /// A node's links are not strictly ascending.
    #[error("node links are not strictly ascending")]
    LinksNotSorted,
    /// A node could not be built from its fields (over the limits).
    #[error("bad node: {0}")]
    Node(#[from] BuildError),
    /// Handshake metadata over its limit, or error text over its limit.
    #[error("field of {len} bytes exceeds its limit of {max}")]
    FieldTooLong {
        /// Declared length.
        len: u64,
        /// The limit.
        max: usize,
    },
}

/// Why a sync session failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The peer sent bytes that do not decode.
    #[error("malformed input: {0}")]
    Wire(#[from] WireError),
    /// The peer speaks another protocol version.
    #[error("protocol version {theirs} is not supported (this side speaks {ours})")]
    Version {
        /// Our version.
        ours: u8,
        /// Theirs.
        theirs: u8,
    },
    /// The two modes cannot work together (push↔push, pull↔pull).
    #[error("mode {ours:?} cannot sync with mode {theirs:?}")]
    IncompatibleModes {
        /// Our mode.
        ours: Mode,
        /// Theirs.
        theirs: Mode,
    },
    /// A message arrived that is not allowed at this point of the protocol.
    #[error("unexpected {0} message")]
    Unexpected(&'static str),
    /// A channel the session does not know.
    #[error("data on unknown channel {0}")]
    UnknownChannel(u64),
    /// The peer sent more than the credit it was given on a channel.
    #[error("peer exceeded its flow-control credit on channel {0}")]
    FlowControl(u64),
    /// A received node failed the log's verification policy.
    #[error("node rejected: {0}")]
    Verify(#[from] VerifyError),
    /// A received node is over the log's size limits.
    #[error("node rejected: {0}")]
    Limits(BuildError),
    /// Received nodes whose links never arrived.
    #[error("{count} received nodes link to nodes never received, e.g. {node} → {link}")]
    MissingLinks {
        /// Nodes still waiting.
        count: usize,
        /// One of them.
        node: Hash,
        /// A link it misses.
        link: Hash,
    },
    /// Nodes that were asked for and announced but never sent.
    #[error("{count} requested nodes were not received, e.g. {example}")]
    NotReceived {
        /// How many.
        count: usize,
        /// One of them.
        example: Hash,
    },
    /// Too many received nodes are waiting for their links (a flood).
    #[error("more than {max} received nodes are waiting for their links")]
    PendingOverflow {
        /// The limit.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("the stream ended inside a frame")]
    Truncated,
    /// The stream ended before the sync was complete.
    #[error("the stream ended before the sync was complete")]
    UnexpectedEof,
    /// The peer sent nothing for too long (reported by a driver's idle timeout).
    #[error("the peer sent nothing for {idle_ms} ms")]
    Timeout {
        /// The idle time allowed.
        idle_ms: u64,
    },
    /// The peer reported an error and ended the session.
    #[error("peer error {code}: {message}")]
    Remote {
        /// The peer's error code ([`SyncError::code`]).
        code: u8,
        /// The peer's description.
        message: String,
    },
    /// The local store failed.
    #[error("store: {0}")]
    Store(Arc<dyn std::error::Error + Send + Sync>),
    /// The peer's DONE says it sent `sent` nodes this round, but `received` arrived (frames
    /// lost or repeated, or a broken peer): the sync is not complete.
    #[error("the peer sent {sent} nodes this round but {received} arrived")]
    Incomplete {
        /// Nodes the peer says it sent.
        sent: u64,
        /// Nodes that arrived.
        received: u64,
    },
    /// A sync↔sync session still had different sets after its last allowed round (the
    /// sets kept changing, or a peer that misreports its set).
    #[error("the sets still differ after {rounds} rounds ({ours} nodes here, {theirs} there)")]
    NotConverged {
        /// Rounds run.
        rounds: u32,
        /// Nodes held here at the end.
        ours: u64,
        /// Nodes the peer said it held.
        theirs: u64,
    },
    /// The peer granted no flow-control credit for too long while nodes waited to go out
    /// (reported by a driver's timer): it keeps the session open without taking anything.
    #[error("the peer granted no credit for {idle_ms} ms while nodes waited")]
    Stalled {
        /// How long output waited.
        idle_ms: u64,
    },
    /// The extension channel's protocol (blobs) failed: a bad message, or a peer that
    /// sent data that does not verify. The session — and so the peer — is dropped.
    #[error("extension channel: {0}")]
    Extension(String),
    /// The peer made this side queue more send work than allowed (it keeps reconciling
    /// while granting no credit for the nodes it asked for).
    #[error("{bytes} bytes of send work queued for a peer that does not take it")]
    Backlog {
        /// Estimated bytes queued.
        bytes: u64,
    },
}

impl SyncError {
    /// The code sent to the peer in an error frame.
    pub fn code(&self) -> u8 {
        match self {
            SyncError::Wire(_) => 1,
            SyncError::Version { .. } => 2,
            SyncError::IncompatibleModes { .. } => 3,
            SyncError::Unexpected(_) => 4,
            SyncError::UnknownChannel(_) => 5,
            SyncError::FlowControl(_) => 6,
            SyncError::Verify(_) => 7,
            SyncError::Limits(_) => 8,
            SyncError::MissingLinks { .. } => 9,
            SyncError::NotReceived { .. } => 10,
            SyncError::PendingOverflow { .. } => 11,
            SyncError::Truncated => 12,
            SyncError::UnexpectedEof => 13,
            SyncError::Remote { code, .. } => *code,
            SyncError::Store(_) => 14,
            SyncError::Timeout { .. } => 15,
            SyncError::Incomplete { .. } => 16,
            SyncError::NotConverged { .. } => 17,
            SyncError::Stalled { .. } => 18,
            SyncError::Backlog { .. } => 19,
            SyncError::Extension(_) => 20,
        }
    }

    /// Whether this error is worth telling the peer (all but the peer's own error).
    pub(crate) fn is_local(&self) -> bool {
        !matches!(self, SyncError::Remote { .. })
    }

    pub(crate) fn store(e: impl std::error::Error + Send + Sync + 'static) -> SyncError {
        SyncError::Store(Arc::new(e))
    }
}

/// Why a [`SyncStore::insert`](crate::SyncStore::insert) refused nodes. Nothing of the
/// refused batch was stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InsertError<E> {
    /// A node failed the verification policy.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// A node is over the size limits.
    #[error(transparent)]
    Limits(BuildError),
    /// A node links to a node that is neither stored nor earlier in the batch.
    #[error("node {node} links to {link}, which is not stored")]
    MissingLink {
        /// The node.
        node: Hash,
        /// The missing link.
        link: Hash,
    },
    /// The store failed.
    #[error(transparent)]
    Storage(E),
}

impl<E: std::error::Error + Send + Sync + 'static> From<InsertError<E>> for SyncError {
    fn from(e: InsertError<E>) -> SyncError {
        match e {
            // Our own random source failed while checking a batch: a local failure (sent
            // to the peer as a store error), not a verdict on the peer's nodes.
            InsertError::Verify(v @ VerifyError::Randomness(_)) => SyncError::store(v),
            InsertError::Verify(v) => SyncError::Verify(v),
            InsertError::Limits(b) => SyncError::Limits(b),
            InsertError::MissingLink { node, link } => SyncError::MissingLinks {
                count: 1,
                node,
                link,
            },
            InsertError::Storage(s) => SyncError::store(s),
        }
    }
}
