//! # cairn-log
//!
//! An append-only, content-addressed, signed merkle DAG — hyperlog, in Rust — kept in
//! [redb](https://docs.rs/redb), an embedded crash-safe B-tree store.
//!
//! - [`Log::add`], [`Log::append`], [`Log::batch`] write nodes signed by the log's
//!   [`Signer`](cairn_core::Signer); [`Log::insert`] stores nodes received from elsewhere after
//!   checking them with the log's [`Verify`](cairn_core::Verify) policy.
//! - [`Log::get`], [`Log::has`], [`Log::heads`], [`Log::len`] read it.
//! - [`Log::changes`] reads the **changes feed**: every stored node has a gap-free local
//!   change number (1, 2, 3, …) in insertion order, which is a topological order since a node
//!   is stored only after all it links to. The feed can be read by range and tailed live, as a
//!   blocking iterator ([`Changes`]) or an async stream ([`ChangesStream`]).
//!
//! ## Durability
//!
//! A write that has returned `Ok` is on disk (redb commit with `fsync`); a write that returned
//! an error stored nothing. Concurrent writers share commits (group commit): each caller still
//! gets its own all-or-nothing result, and returns only once its commit is durable.
//!
//! ## Storage
//!
//! All state lives in one redb database. The byte store under it is redb's
//! [`StorageBackend`] trait (len / read / write / set_len / sync_data): a file natively
//! ([`Log::open`]), memory for tests ([`Log::memory`]), the fault-injecting
//! [`testing::CrashBackend`], and later the browser's storage — one log implementation on all.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod changes;
mod commit;
mod error;
#[cfg(not(target_family = "wasm"))]
pub mod identity;
mod log;
mod tables;
pub mod testing;

pub use changes::{Changes, ChangesQuery, ChangesStream};
pub use error::{AddError, OpenError, ReadError, StorageError};
pub use log::{BatchEntry, Checked, Entry, Inserted, KeyIndex, Link, Log, LogOptions};
pub use redb::{self, StorageBackend};

pub use cairn_core as core;
