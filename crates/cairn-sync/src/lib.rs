//! # cairn-sync
//!
//! Replication for cairn logs — hyperlog's `replicate()`, rebuilt around set reconciliation
//! whose cost follows the *difference* between two logs, not their size.
//!
//! - [`Session`]: a **sans-IO** state machine (bytes in, bytes out, events out; no sockets,
//!   timers or runtime; builds for `wasm32-unknown-unknown`) over a [`SyncStore`].
//! - [`LogStore`]: a cairn [`Log`](cairn_log::Log) as a [`SyncStore`], its reconciliation
//!   index kept as a cairn-view view beside the log's tables.
//! - [`run`] / [`sync_log`]: the async driver over any `futures_io::AsyncRead + AsyncWrite`,
//!   and [`duplex`], an in-memory pipe for tests.
//! - [`mux`]: the frame and channel layer (per-channel credit flow control).
//! - [`wire`]: the messages and the compact node encoding, byte by byte.
//!
//! The design, with byte counts, is in `crates/cairn-sync/DESIGN.md`.
//!
//! ## The session contract (as in str0m)
//!
//! A [`Session`] does nothing on its own. The driver:
//!
//! 1. creates it ([`Session::new`]; the handshake is queued at once);
//! 2. **after creating it and after every input** ([`Session::handle_input`],
//!    [`Session::handle_eof`], [`Session::offer`], [`Session::close`]) **drains it
//!    completely**: calls [`Session::poll_transmit`] until `None`, writing every buffer to the
//!    stream in order, and [`Session::poll_event`] until `None`;
//! 3. reads more input only while [`Session::wants_input`] (so a peer that does not read
//!    cannot make this side queue output without bound);
//! 4. on [`Event::Complete`] of a one-shot session (or when a live one is to stop) calls
//!    [`Session::close`], which sends CLOSE; leaves on [`Event::Closed`] (the peer's CLOSE,
//!    answered automatically, or its end of stream) or [`Event::Failed`], after writing what
//!    `poll_transmit` still gives (the answering CLOSE, or the error frame for the peer).
//!    The CLOSE exchange means no transport needs a half-close (stdio pipes work), and no
//!    side writes into a stream the other has already left;
//! 5. in a quiet live session, calls [`Session::ping`] now and then (a keep-alive the peer
//!    takes as proof of life), and treats a long silence of a peer that does the same
//!    ([`Session::peer_keep_alive`]) as a vanished peer ([`Session::timeout`]). The session
//!    has no clock; [`run_with_timeout`] does this with the caller's [`Timer`];
//! 6. in a live session, offers local nodes ([`Session::offer`]) only while
//!    [`Session::wants_feed`], and fails a peer that leaves output waiting for credit too
//!    long ([`Session::blocked_on_credit`], [`Session::stalled`]).
//!
//! `poll_transmit` produces bulk data (nodes) lazily, within the channel's flow-control
//! credit, so a full clone of a million nodes never sits in memory.
//!
//! ## Guarantees
//!
//! - Nothing unverified reaches the store: every received node's hash is computed here from
//!   its fields (never taken from the wire), its signature is checked by the store's policy
//!   inside [`SyncStore::insert`] (for a log: [`Log::insert`](cairn_log::Log::insert), batch
//!   verification on all cores), and it is inserted only once all its links are stored.
//! - A one-shot session ends [`Event::Complete`] only after it has checked the sync (or
//!   the handshakes were equal, which both sides see): each round's DONE carries the number
//!   of nodes sent, checked by the receiver ([`SyncError::Incomplete`]); each side makes
//!   every received node durable before it sends SYNCED (its set's count and fingerprint);
//!   a side completes only on the peer's SYNCED — so a sender never reports success for
//!   nodes the receiver has not made durable; sync↔sync also requires equal sets unless a
//!   side was written meanwhile ([`SyncError::NotConverged`] after [`MAX_ROUNDS`]). An end
//!   of stream before that is [`SyncError::UnexpectedEof`], mid-frame
//!   [`SyncError::Truncated`].
//! - Hard limits everywhere: frames ([`SessionOptions::max_frame`]: 1 MiB plus one maximal
//!   node, checked on the length prefix before allocating), ids, items, nodes per message,
//!   metadata, buffered nodes waiting for links; every count is checked before it sizes an
//!   allocation. Buffers of nodes are bounded by bytes ([`SessionOptions::ready_bytes`],
//!   [`SessionOptions::max_pending_bytes`], [`LIVE_QUEUE_BYTES`], [`MAX_JOB_BYTES`]); a
//!   peer that grants no credit for long is failed ([`SyncError::Stalled`], by a driver
//!   with a timer).
//! - Every error is typed ([`SyncError`]) and, when it is ours, sent to the peer as an
//!   ERROR frame so it does not end unaware.
//!
//! ## Example: two in-memory stores
//!
//! ```
//! use cairn_core::{Limits, Node};
//! use cairn_sync::{MemStore, Session, SessionOptions};
//!
//! let mut a = MemStore::new();
//! let root = Node::unsigned([], b"root".to_vec(), &Limits::default()).unwrap();
//! a.add(root.clone()).unwrap();
//! a.add(Node::unsigned([root.key()], b"a".to_vec(), &Limits::default()).unwrap()).unwrap();
//! let mut b = MemStore::new();
//! b.add(root).unwrap();
//!
//! let mut sa = Session::new(a, SessionOptions::default()).unwrap();
//! let mut sb = Session::new(b, SessionOptions::default()).unwrap();
//! // Loop until both are quiet: every input is followed by a full drain.
//! loop {
//!     let mut moved = false;
//!     while let Some(bytes) = sa.poll_transmit() { sb.handle_input(&bytes).unwrap(); moved = true; }
//!     while let Some(bytes) = sb.poll_transmit() { sa.handle_input(&bytes).unwrap(); moved = true; }
//!     if !moved { break; }
//! }
//! assert!(sa.is_complete() && sb.is_complete());
//! assert_eq!(sa.store().hashes(), sb.store().hashes());
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod driver;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod index;
pub mod mux;
mod session;
mod store;
pub mod wire;

pub use driver::{
    DriverError, DuplexStream, Feed, LogFeed, NoFeed, NoTimer, SyncSummary, Timer, duplex, run,
    run_with_progress, run_with_timeout, sync_log, sync_log_with_extension, sync_log_with_progress,
    sync_log_with_timeout,
};
pub use error::{InsertError, SyncError, WireError};
pub use index::{IndexViewError, LogStore, LogStoreError, SyncIndexView};
pub use session::{
    EXTENSION_CHANNEL, Event, Extension, LIVE_QUEUE_BYTES, LOG_CHANNEL, MAX_JOB_BYTES, MAX_ROUNDS,
    READY_BYTES, Session, SessionOptions, Stats,
};
pub use store::{Agg, Key, MemStore, Summary, SyncStore};
pub use wire::Mode;
