//! The view trait.

use cairn_log::Entry;
use redb::WriteTransaction;

/// A materialized view: a deterministic function of the log, kept in the view's own tables.
///
/// The indexer calls [`View::apply`] with consecutive batches of entries in change order and
/// commits the transaction together with the view's progress. A view must be *deterministic*
/// (the same nodes in the same order give the same tables) and must keep all of its durable
/// state in the transaction it is given; anything kept in memory is a cache that must follow
/// [`View::committed`] / [`View::rolled_back`].
pub trait View: Send + 'static {
    /// The view's own error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// A name unique among the views of one database; it keys the view's progress and should
    /// prefix its table names (`view.<name>.…`).
    fn name(&self) -> &str;

    /// The version of the view's logic and table layout. When it differs from the version
    /// that built the stored state, the view is cleared and rebuilt from the start.
    fn version(&self) -> u64;

    /// Applies `entries` (consecutive change numbers, ascending) by writing the view's tables
    /// in `txn`. On error nothing of the batch is kept.
    fn apply(&mut self, txn: &WriteTransaction, entries: &[Entry]) -> Result<(), Self::Error>;

    /// Removes all of the view's state (for example by deleting its tables) in `txn`.
    fn clear(&mut self, txn: &WriteTransaction) -> Result<(), Self::Error>;

    /// The transaction of the preceding `apply`/`clear` calls has committed.
    fn committed(&mut self) {}

    /// The transaction of the preceding `apply`/`clear` calls was rolled back: forget any
    /// in-memory state derived from them.
    fn rolled_back(&mut self) {}
}
