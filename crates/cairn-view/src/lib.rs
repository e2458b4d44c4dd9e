//! # cairn-view
//!
//! Materialized views over a cairn [`Log`](cairn_log::Log) — hyperlog-index, in Rust.
//!
//! A **view** ([`View`]) is a deterministic function applied to every node of the log, in
//! change-feed order, that keeps its state in its own redb tables, next to the log's tables
//! in the same database ([`Log::database`](cairn_log::Log::database)). An [`Indexer`] runs one
//! view over one log; many indexers (many views) can run over the same log.
//!
//! ## The contract
//!
//! - **Exactly once, across crashes.** The indexer hands the view a batch of entries and a
//!   redb [`WriteTransaction`](redb::WriteTransaction); the view writes its tables in that
//!   transaction, and the indexer records the view's progress (the last change number applied)
//!   in the *same* transaction (table `view.progress`). The batch and the progress commit
//!   together or not at all, so after a crash at any instant the view resumes right after the
//!   last node it durably applied: no node is skipped, none is applied twice. The progress
//!   is checked-and-set in that transaction, so even two indexers of the same view over one
//!   database (two handles by mistake) never apply a node twice: the one that finds the
//!   progress moved follows it (and stops with [`IndexError::Replaced`] if the view now
//!   belongs to another version). One indexer per view is still the intended use.
//! - **Batching.** Many nodes go into one transaction ([`IndexerOptions::batch`]), and most
//!   view commits are not synced on their own ([`IndexerOptions::sync_every`]): they become
//!   durable with the next synced commit on the database (every log commit is one). A crash
//!   can lose view progress, which is then simply redone, never log data, because redb
//!   commits are ordered and the log's own commits are durable.
//! - **Live.** Views follow the log as it grows, from local writes and from replication
//!   ([`Log::insert`](cairn_log::Log::insert)) alike. Natively each indexer has a background
//!   thread that tails the changes feed; [`Indexer::catch_up`] drives the view synchronously
//!   in the caller's thread (the way to run on single-threaded targets such as
//!   `wasm32-unknown-unknown`, and what reads that need an up-to-date view call first). Both
//!   can be used together: one lock serializes appliers, so each node is applied once.
//! - **Commit protocol.** Synced view commits use redb's quick repair only when asked
//!   ([`IndexerOptions::quick_repair`]); set it as the log's `LogOptions::quick_repair`.
//! - **Ready.** [`Indexer::ready`] (async) and [`Indexer::ready_blocking`] return once the
//!   view has applied every node that was in the log when they were called.
//! - **Pause/resume.** [`Indexer::pause`] stops applying after the current batch;
//!   [`Indexer::resume`] goes on. `ready` waits while paused.
//! - **Versions and rebuilds.** A view declares a [`View::version`]. When the stored progress
//!   was made by another version, the indexer clears the view ([`View::clear`]) and rebuilds
//!   it from the first change. [`Indexer::rebuild`] does the same on demand (hyperlog-index's
//!   "delete the index directory").
//! - **Failures stop one view only.** When [`View::apply`] returns an error the batch is
//!   rolled back, the nodes before the failing one are applied, and the view stops with an
//!   [`IndexError::View`] naming the change number that failed. The log and other views are
//!   unaffected; [`Indexer::error`] reports it, `ready`/`catch_up` return it, and
//!   [`Indexer::retry`] or [`Indexer::rebuild`] start the view again. A view that panics is
//!   caught and stops the same way ([`IndexError::Panicked`]).
//!
//! ## Example
//!
//! ```
//! use cairn_log::{Entry, Log, LogOptions};
//! use cairn_view::redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
//! use cairn_view::{Indexer, IndexerOptions, View};
//!
//! const SIZES: TableDefinition<&str, u64> = TableDefinition::new("view.bytes.total");
//!
//! /// Total value bytes in the log.
//! struct Bytes;
//!
//! impl View for Bytes {
//!     type Error = cairn_view::redb::Error;
//!     fn name(&self) -> &str { "bytes" }
//!     fn version(&self) -> u64 { 1 }
//!     fn apply(&mut self, txn: &WriteTransaction, entries: &[Entry]) -> Result<(), Self::Error> {
//!         let mut t = txn.open_table(SIZES)?;
//!         let old = t.get("total")?.map_or(0, |v| v.value());
//!         let add: u64 = entries.iter().map(|e| e.node.value().len() as u64).sum();
//!         t.insert("total", old + add)?;
//!         Ok(())
//!     }
//!     fn clear(&mut self, txn: &WriteTransaction) -> Result<(), Self::Error> {
//!         txn.delete_table(SIZES)?;
//!         Ok(())
//!     }
//! }
//!
//! let log = Log::memory(LogOptions::default())?;
//! let bytes = Indexer::open(&log, Bytes, IndexerOptions::default())?;
//! log.append(b"hello".to_vec())?;
//! log.append(b"world!".to_vec())?;
//! bytes.ready_blocking()?;
//! let txn = log.database().begin_read()?;
//! assert_eq!(txn.open_table(SIZES)?.get("total")?.map(|v| v.value()), Some(11));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Table names
//!
//! A view's tables should be named `view.<name>.<table>`; `view.progress` belongs to the
//! indexer and `log.*` to the log.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod error;
mod indexer;
mod view;

pub use error::{CatchUpError, IndexError, OpenError, RebuildError};
pub use indexer::{Indexer, IndexerOptions, PROGRESS};
pub use view::View;

pub use cairn_log;
pub use redb;
