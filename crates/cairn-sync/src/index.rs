//! [`LogStore`]: a cairn [`Log`] as a [`SyncStore`], with the reconciliation index kept as a
//! cairn-view view (`sync`) in the log's own redb database.
//!
//! Tables (all maintained by the view, in change order, exactly once across crashes):
//!
//! | table | key | value |
//! |---|---|---|
//! | `view.sync.height` | change number `u64` | height `u64` |
//! | `view.sync.order` | height (big-endian u64) ‖ hash, `[u8; 40]` | change number `u64` |
//! | `view.sync.buckets` | `(level: u8, height >> 4·level: u64)` | count u64 LE ‖ hash sum 32 B LE |
//! | `view.sync.meta` | `"top"` | greatest height + 1 |
//!
//! Heights are keyed by change number, not by hash: change numbers only grow, so the table is
//! written at its right edge (a random-keyed table costs a page rewrite per node once it
//! outgrows the cache). A link's height is found through the log's own key index
//! ([`cairn_log::KeyIndex`]: hash → change number), then this table.
//!
//! A bucket at level L holds the additive fingerprint of all nodes whose height lies in one
//! aligned block of 16^L heights; level 15 has one bucket, the whole set. The fingerprint of
//! any run of whole heights is then a sum of at most 2 × 15 bucket rows per level, read with
//! two short range scans per level; a range that starts or ends inside a height adds a scan
//! of that one height's nodes.

use std::collections::HashMap;
use std::sync::Arc;

use cairn_core::{Hash, Node};
use cairn_log::{AddError, Entry, Inserted, KeyIndex, Log, ReadError, StorageError};
use cairn_view::{Indexer, IndexerOptions, View};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use crate::error::InsertError;
use crate::store::{Agg, Key, Summary, SyncStore};

const HEIGHTS: TableDefinition<u64, u64> = TableDefinition::new("view.sync.height");
const ORDER: TableDefinition<&[u8; 40], u64> = TableDefinition::new("view.sync.order");
const BUCKETS: TableDefinition<(u8, u64), &[u8; 40]> = TableDefinition::new("view.sync.buckets");
const META: TableDefinition<&str, u64> = TableDefinition::new("view.sync.meta");
const TOP: &str = "top";
/// Bucket levels: level L groups 16^L heights; the last level is the whole set.
const LEVELS: u8 = 16;

/// Why the sync index could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogStoreError {
    /// The storage engine failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Reading the log failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The index view failed or could not catch up.
    #[error("sync index: {0}")]
    Index(Arc<dyn std::error::Error + Send + Sync>),
    /// The log refused a write for a reason this crate does not know.
    #[error("log: {0}")]
    Log(String),
}

/// Why the index view failed on a node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexViewError {
    /// The storage engine failed.
    #[error("storage: {0}")]
    Storage(#[from] redb::Error),
    /// A node links to a node the index has no height for: the log and index disagree.
    #[error("node {node} links to {link}, which has no height")]
    MissingHeight {
        /// The node.
        node: Hash,
        /// Its link.
        link: Hash,
    },
}

fn ve(e: impl Into<redb::Error>) -> IndexViewError {
    IndexViewError::Storage(e.into())
}

fn se(e: impl Into<redb::Error>) -> LogStoreError {
    LogStoreError::Storage(StorageError(e.into()))
}

/// The `sync` view: heights, order and bucket fingerprints of every node.
#[derive(Debug, Default)]
pub struct SyncIndexView;

impl View for SyncIndexView {
    type Error = IndexViewError;

    fn name(&self) -> &str {
        "sync"
    }

    fn version(&self) -> u64 {
        3
    }

    fn apply(&mut self, txn: &WriteTransaction, entries: &[Entry]) -> Result<(), IndexViewError> {
        let mut heights = txn.open_table(HEIGHTS).map_err(ve)?;
        let mut order = txn.open_table(ORDER).map_err(ve)?;
        let mut buckets = txn.open_table(BUCKETS).map_err(ve)?;
        let mut meta = txn.open_table(META).map_err(ve)?;
        let mut top = meta.get(TOP).map_err(ve)?.map_or(0, |v| v.value());
        let mut batch: HashMap<Hash, u64> = HashMap::with_capacity(entries.len());
        let mut sums: HashMap<(u8, u64), Agg> = HashMap::new();
        let keys = KeyIndex::open(txn).map_err(|e| ve(e.0))?;
        let missing = |node: Hash, link: Hash| IndexViewError::MissingHeight { node, link };
        for e in entries {
            let key = e.node.key();
            let mut height = 0u64;
            for l in e.node.links() {
                let h = match batch.get(l) {
                    Some(h) => *h,
                    None => {
                        let change = keys
                            .change_of(l)
                            .map_err(|e| ve(e.0))?
                            .ok_or_else(|| missing(key, *l))?;
                        heights
                            .get(change)
                            .map_err(ve)?
                            .map(|v| v.value())
                            .ok_or_else(|| missing(key, *l))?
                    }
                };
                height = height.max(h + 1);
            }
            batch.insert(key, height);
            heights.insert(e.change, height).map_err(ve)?;
            order
                .insert(&Key { height, hash: key }.to_bytes(), e.change)
                .map_err(ve)?;
            for level in 0..LEVELS {
                let idx = height.checked_shr(4 * u32::from(level)).unwrap_or(0);
                sums.entry((level, idx)).or_default().add_hash(&key);
            }
            top = top.max(height + 1);
        }
        for ((level, idx), add) in sums {
            let mut agg = buckets
                .get((level, idx))
                .map_err(ve)?
                .map_or_else(Agg::default, |v| Agg::from_bytes(v.value()));
            agg.add(&add);
            buckets.insert((level, idx), &agg.to_bytes()).map_err(ve)?;
        }
        meta.insert(TOP, top).map_err(ve)?;
        Ok(())
    }

    fn clear(&mut self, txn: &WriteTransaction) -> Result<(), IndexViewError> {
        txn.delete_table(HEIGHTS).map_err(ve)?;
        txn.delete_table(ORDER).map_err(ve)?;
        txn.delete_table(BUCKETS).map_err(ve)?;
        txn.delete_table(META).map_err(ve)?;
        Ok(())
    }
}

type Registry = Vec<(usize, std::sync::Weak<Indexer<SyncIndexView>>)>;

/// The live indexers of this process, by database address. An entry's address cannot be
/// reused while its indexer lives, since the indexer keeps the database open.
static INDEXERS: std::sync::Mutex<Registry> = std::sync::Mutex::new(Vec::new());

fn shared_indexer(
    log: &Log,
    opts: IndexerOptions,
) -> Result<Arc<Indexer<SyncIndexView>>, LogStoreError> {
    let id = log.database() as *const redb::Database as usize;
    let mut reg = INDEXERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    reg.retain(|(_, w)| w.strong_count() > 0);
    if let Some(ix) = reg
        .iter()
        .find(|(a, _)| *a == id)
        .and_then(|(_, w)| w.upgrade())
    {
        return Ok(ix);
    }
    let ix = Arc::new(
        Indexer::open(log, SyncIndexView, opts).map_err(|e| LogStoreError::Index(Arc::new(e)))?,
    );
    reg.push((id, Arc::downgrade(&ix)));
    Ok(ix)
}

/// A [`Log`] as a [`SyncStore`]. Received nodes go through [`Log::insert`] (the log's
/// verification policy, batch signature checks on all cores); the reconciliation index is
/// the [`SyncIndexView`], rebuilt from the log if missing or stale.
///
/// Natively, inserts are **pipelined**: [`SyncStore::insert`] hands the batch to a worker
/// and returns, so the session decodes the next batch while one thread checks a batch
/// ([`Log::check`], signatures on all cores) and another commits the batch before it
/// ([`Log::insert_deferred`]: visible at once, made durable by one `fsync` every 2^18 nodes,
/// 0.5 s after the oldest commit not yet durable ([`LogStore::set_durable_after`]) and at
/// every [`SyncStore::flush`]). At most two batches are in flight; their nodes count as present
/// for [`SyncStore::has`]; their outcomes are collected in order by later `insert`s or by
/// [`SyncStore::flush`], which the session calls before it reports anything complete.
pub struct LogStore {
    log: Log,
    index: Arc<Indexer<SyncIndexView>>,
    /// Change numbers of the nodes this store inserted, as sorted disjoint ranges.
    inserted: Vec<(u64, u64)>,
    #[cfg(not(target_family = "wasm"))]
    worker: Option<pipeline::Worker>,
    /// Keys of the batches in flight, oldest first, and all of them as one set.
    #[cfg(not(target_family = "wasm"))]
    pending: std::collections::VecDeque<Vec<Hash>>,
    in_flight: std::collections::HashSet<Hash>,
    /// The log's length at the last `summary`: `keys` lists only nodes up to it.
    snapshot: u64,
    /// Longest time received nodes stay committed but not durable (natively).
    #[cfg(not(target_family = "wasm"))]
    durable_after: std::time::Duration,
    /// New nodes stored by collected batches, not yet reported by `insert` or `flush`.
    new_nodes: u64,
}

#[cfg(not(target_family = "wasm"))]
mod pipeline {
    use std::sync::mpsc::{self, RecvTimeoutError};
    use std::time::Instant;

    use cairn_core::Node;
    use cairn_log::{AddError, Checked, Inserted, Log};

    pub(super) type Outcome = Result<Inserted, AddError>;

    /// Most batches handed to the pipeline and not yet collected: one being checked, one
    /// being committed.
    pub(super) const DEPTH: usize = 2;

    /// Batches are committed without `fsync` ([`Log::insert_deferred`]); every this many
    /// nodes, [`super::LogStore::set_durable_after`] (default [`DURABLE_AFTER`]) after the
    /// first commit not yet durable, and when the session flushes, one `fsync` makes them
    /// durable.
    const SYNC_EVERY: usize = 1 << 18;

    /// Default time bound on progress that is not yet durable: a receiver killed mid-clone
    /// keeps everything it had committed this long before.
    pub(super) const DURABLE_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

    /// Two threads: one checks a batch ([`Log::check`], signatures on all cores) while the
    /// other commits the batch before it ([`Log::insert_checked`]). Outcomes come back in
    /// order.
    pub(super) struct Worker {
        pub(super) tx: Option<mpsc::SyncSender<Vec<Node>>>,
        pub(super) rx: mpsc::Receiver<Outcome>,
        threads: Vec<std::thread::JoinHandle<()>>,
    }

    impl Worker {
        pub(super) fn start(
            log: &Log,
            durable_after: std::time::Duration,
        ) -> std::io::Result<Worker> {
            let (tx, jobs) = mpsc::sync_channel::<Vec<Node>>(0);
            let (to_commit, checked) = mpsc::sync_channel::<Result<Checked, AddError>>(0);
            let (done, rx) = mpsc::sync_channel::<Outcome>(DEPTH);
            let checker = {
                let log = log.clone();
                std::thread::Builder::new()
                    .name("cairn-sync check".into())
                    .spawn(move || {
                        for batch in jobs {
                            if to_commit.send(log.check(batch)).is_err() {
                                return;
                            }
                        }
                    })?
            };
            let log = log.clone();
            let committer = std::thread::Builder::new()
                .name("cairn-sync commit".into())
                .spawn(move || {
                    let mut unsynced = 0usize;
                    // When the oldest commit not yet durable was made.
                    let mut since: Option<Instant> = None;
                    loop {
                        let next = match since {
                            None => checked.recv().map_err(|_| RecvTimeoutError::Disconnected),
                            Some(t) => {
                                checked.recv_timeout(durable_after.saturating_sub(t.elapsed()))
                            }
                        };
                        let c = match next {
                            Ok(c) => c,
                            Err(RecvTimeoutError::Timeout) => {
                                // Quiet for a while with commits not yet durable: make them
                                // so. A failure here is reported by the next batch's
                                // outcome or the session's flush (`Log::sync` again).
                                if log.sync().is_ok() {
                                    unsynced = 0;
                                    since = None;
                                }
                                continue;
                            }
                            Err(RecvTimeoutError::Disconnected) => return,
                        };
                        let mut outcome = c.and_then(|c| log.insert_deferred(c));
                        if let Ok(ins) = &outcome {
                            unsynced += ins.new;
                            if ins.new > 0 && since.is_none() {
                                since = Some(Instant::now());
                            }
                            let late = since.is_some_and(|t| t.elapsed() >= durable_after);
                            if unsynced >= SYNC_EVERY || late {
                                unsynced = 0;
                                since = None;
                                if let Err(e) = log.sync() {
                                    outcome = Err(e.into());
                                }
                            }
                        }
                        if done.send(outcome).is_err() {
                            return;
                        }
                    }
                });
            let committer = match committer {
                Ok(t) => t,
                Err(e) => {
                    drop(tx);
                    let _ = checker.join();
                    return Err(e);
                }
            };
            Ok(Worker {
                tx: Some(tx),
                rx,
                threads: vec![checker, committer],
            })
        }
    }

    impl Drop for Worker {
        fn drop(&mut self) {
            // Closing the job channel ends the checker, which ends the committer. Neither
            // blocks meanwhile: at most DEPTH outcomes are ever outstanding, and `rx` holds
            // DEPTH.
            self.tx = None;
            for t in self.threads.drain(..) {
                // A panic in a worker has been reported by the panic hook already.
                let _ = t.join();
            }
        }
    }
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl LogStore {
    /// A store over `log`, for one session. The index view is shared by every `LogStore` of
    /// the same log in this process (natively a background thread keeps it up to date), so
    /// any number of concurrent sessions may each open their own store at the cost of one
    /// indexer (and one background thread) per log.
    pub fn open(log: &Log) -> Result<LogStore, LogStoreError> {
        Self::with_options(log, IndexerOptions::default())
    }

    /// Like [`LogStore::open`], with explicit indexer options (used only when this call
    /// starts the log's indexer).
    pub fn with_options(log: &Log, opts: IndexerOptions) -> Result<LogStore, LogStoreError> {
        Ok(LogStore {
            log: log.clone(),
            index: shared_indexer(log, opts)?,
            inserted: Vec::new(),
            #[cfg(not(target_family = "wasm"))]
            worker: None,
            #[cfg(not(target_family = "wasm"))]
            pending: std::collections::VecDeque::new(),
            in_flight: std::collections::HashSet::new(),
            snapshot: u64::MAX,
            #[cfg(not(target_family = "wasm"))]
            durable_after: pipeline::DURABLE_AFTER,
            new_nodes: 0,
        })
    }

    /// The log.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Bounds how long received nodes stay committed but not yet durable (default 0.5 s,
    /// natively; in the browser every insert is durable at once): a receiver killed
    /// mid-clone then keeps everything it had stored this long before, and the next sync
    /// moves only the rest. Takes effect when the first batch is inserted.
    #[cfg(not(target_family = "wasm"))]
    pub fn set_durable_after(&mut self, d: std::time::Duration) {
        self.durable_after = d;
    }

    /// Brings the index up to date with the log.
    pub fn catch_up(&self) -> Result<(), LogStoreError> {
        self.index
            .catch_up()
            .map(drop)
            .map_err(|e| LogStoreError::Index(Arc::new(e)))
    }

    /// Whether the node with change number `change` was stored by this store's
    /// [`SyncStore::insert`] (used by live forwarding not to echo received nodes back).
    pub fn inserted(&self, change: u64) -> bool {
        let i = self.inserted.partition_point(|(_, end)| *end < change);
        self.inserted
            .get(i)
            .is_some_and(|(start, end)| *start <= change && change <= *end)
    }

    /// Forgets inserted change numbers below `change`.
    pub fn forget_inserted_below(&mut self, change: u64) {
        self.inserted.retain(|(_, end)| *end >= change);
    }

    fn note_inserted(&mut self, change: u64) {
        match self.inserted.last_mut() {
            Some((_, end)) if *end + 1 == change => *end = change,
            Some((_, end)) if *end >= change => {}
            _ => self.inserted.push((change, change)),
        }
    }

    fn scan(&self, lo: &Key, hi: &Key, agg: &mut Agg) -> Result<(), LogStoreError> {
        if lo >= hi {
            return Ok(());
        }
        let txn = self.log.database().begin_read().map_err(se)?;
        let Some(order) = open_read(&txn, ORDER)? else {
            return Ok(());
        };
        let (a, b) = (lo.to_bytes(), hi.to_bytes());
        for row in order.range::<&[u8; 40]>(&a..&b).map_err(se)? {
            let (k, _) = row.map_err(se)?;
            agg.add_hash(&Key::from_bytes(k.value()).hash);
        }
        Ok(())
    }

    /// Sum of the buckets of whole heights `[a, b)`.
    fn full_heights(&self, mut a: u64, mut b: u64, agg: &mut Agg) -> Result<(), LogStoreError> {
        let txn = self.log.database().begin_read().map_err(se)?;
        let Some(buckets) = open_read(&txn, BUCKETS)? else {
            return Ok(());
        };
        let mut add_rows = |level: u8, from: u64, to: u64| -> Result<(), LogStoreError> {
            if from >= to {
                return Ok(());
            }
            for row in buckets.range((level, from)..(level, to)).map_err(se)? {
                let (_, v) = row.map_err(se)?;
                agg.add(&Agg::from_bytes(v.value()));
            }
            Ok(())
        };
        let mut level = 0u8;
        while a < b {
            if level == LEVELS - 1 {
                add_rows(level, a, b)?;
                break;
            }
            let a_up = a.div_ceil(16).saturating_mul(16).min(b);
            add_rows(level, a, a_up)?;
            let b_down = (b / 16 * 16).max(a_up);
            add_rows(level, b_down, b)?;
            if a_up >= b_down {
                break;
            }
            a = a_up / 16;
            b = b_down / 16;
            level += 1;
        }
        Ok(())
    }

    fn top(&self) -> Result<u64, LogStoreError> {
        let txn = self.log.database().begin_read().map_err(se)?;
        let Some(meta) = open_read(&txn, META)? else {
            return Ok(0);
        };
        Ok(meta.get(TOP).map_err(se)?.map_or(0, |v| v.value()))
    }
}

impl LogStore {
    /// Records what a `Log::insert` stored (entries with change numbers above `before` are
    /// new; with `before = 0` every returned entry counts, which only matters for echo
    /// suppression) and maps its error.
    fn collect(
        &mut self,
        before: u64,
        outcome: Result<Inserted, AddError>,
    ) -> Result<(), InsertError<LogStoreError>> {
        match outcome {
            Ok(ins) => {
                for e in ins.entries {
                    if e.change > before {
                        self.note_inserted(e.change);
                    }
                }
                self.new_nodes += ins.new as u64;
                Ok(())
            }
            Err(AddError::Verify(v)) => Err(InsertError::Verify(v)),
            Err(AddError::Build(b)) => Err(InsertError::Limits(b)),
            Err(AddError::MissingLink { node, link }) => {
                Err(InsertError::MissingLink { node, link })
            }
            Err(AddError::Storage(s)) => Err(InsertError::Storage(LogStoreError::Storage(s))),
            Err(other) => Err(InsertError::Storage(LogStoreError::Log(other.to_string()))),
        }
    }
}

impl LogStore {
    /// Keys in `[lo, hi)` of the session's snapshot, with their change numbers.
    fn keys_and_changes(
        &self,
        lo: &Key,
        hi: &Key,
        limit: usize,
    ) -> Result<Vec<(Key, u64)>, LogStoreError> {
        if lo >= hi {
            return Ok(Vec::new());
        }
        let txn = self.log.database().begin_read().map_err(se)?;
        let Some(order) = open_read(&txn, ORDER)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let (a, b) = (lo.to_bytes(), hi.to_bytes());
        for row in order.range::<&[u8; 40]>(&a..&b).map_err(se)? {
            if out.len() >= limit {
                break;
            }
            let (k, change) = row.map_err(se)?;
            // Only the session's snapshot: nodes stored since (by other sessions, local
            // writes, or this session) are not offered, so every node sent has its links
            // sent too or already at the peer.
            if change.value() <= self.snapshot {
                out.push((Key::from_bytes(k.value()), change.value()));
            }
        }
        Ok(out)
    }
}

fn open_read<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, LogStoreError> {
    match txn.open_table(def) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(se(e)),
    }
}

impl SyncStore for LogStore {
    type Error = LogStoreError;

    fn summary(&mut self) -> Result<Summary, LogStoreError> {
        self.settle()
            .map_err(|e| LogStoreError::Log(e.to_string()))?;
        self.snapshot = self.log.len();
        self.catch_up()?;
        let top = self.top()?;
        let mut agg = Agg::default();
        self.full_heights(0, top, &mut agg)?;
        Ok(Summary {
            agg,
            max_height: top.checked_sub(1),
        })
    }

    fn aggregate(&self, lo: &Key, hi: &Key) -> Result<Agg, LogStoreError> {
        let mut agg = Agg::default();
        if lo >= hi {
            return Ok(agg);
        }
        let mut a = lo.height;
        if lo.hash != Hash([0; 32]) {
            let next = Key::at_height(lo.height.saturating_add(1));
            self.scan(lo, &(*hi).min(next), &mut agg)?;
            if *hi <= next {
                return Ok(agg);
            }
            a = lo.height + 1;
        }
        let b = if *hi == Key::END {
            self.top()?
        } else {
            hi.height
        };
        self.full_heights(a, b, &mut agg)?;
        if *hi != Key::END && hi.hash != Hash([0; 32]) && hi.height >= a {
            self.scan(&Key::at_height(hi.height), hi, &mut agg)?;
        }
        Ok(agg)
    }

    fn keys(&self, lo: &Key, hi: &Key, limit: usize) -> Result<Vec<Key>, LogStoreError> {
        Ok(self
            .keys_and_changes(lo, hi, limit)?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    /// One scan of the order index for the keys and change numbers, then one read of the
    /// log for the nodes: no key-index lookup per node.
    fn nodes(&self, lo: &Key, hi: &Key, limit: usize) -> Result<Vec<(Key, Node)>, LogStoreError> {
        let found = self.keys_and_changes(lo, hi, limit)?;
        let wanted: Vec<(u64, Hash)> = found.iter().map(|(k, c)| (*c, k.hash)).collect();
        let nodes = self.log.get_changes(&wanted)?;
        Ok(found
            .into_iter()
            .zip(nodes)
            .filter_map(|((k, _), n)| n.map(|n| (k, n)))
            .collect())
    }

    fn get(&self, hash: &Hash) -> Result<Option<Node>, LogStoreError> {
        Ok(self.log.get(hash)?.map(|e| e.node))
    }

    fn has(&self, hash: &Hash) -> Result<bool, LogStoreError> {
        Ok(self.in_flight.contains(hash) || self.log.has(hash)?)
    }

    fn insert(&mut self, nodes: Vec<Node>) -> Result<u64, InsertError<LogStoreError>> {
        #[cfg(not(target_family = "wasm"))]
        {
            while self.pending.len() >= pipeline::DEPTH {
                self.collect_oldest()?;
            }
            if self.worker.is_none() {
                self.worker = Some(
                    pipeline::Worker::start(&self.log, self.durable_after)
                        .map_err(|e| InsertError::Storage(LogStoreError::Log(e.to_string())))?,
                );
            }
            if let Some(w) = &mut self.worker
                && let Some(tx) = &w.tx
            {
                let keys: Vec<Hash> = nodes.iter().map(|n| n.key()).collect();
                if tx.send(nodes).is_ok() {
                    self.in_flight.extend(keys.iter().copied());
                    self.pending.push_back(keys);
                    return Ok(std::mem::take(&mut self.new_nodes));
                }
            }
            Err(worker_stopped())
        }
        #[cfg(target_family = "wasm")]
        {
            let before = self.log.len();
            let outcome = self
                .log
                .check(nodes)
                .and_then(|c| self.log.insert_checked_counted(c));
            // No background thread keeps the sync index here: apply the new nodes now, from
            // memory. Left to `summary`'s catch-up, the index would read every received node
            // back from the store at the end of a clone (a new browser's last second of 100k).
            if let Ok(ins) = &outcome
                && let Err(e) = self.index.apply_next(&ins.entries)
            {
                return Err(InsertError::Storage(LogStoreError::Index(Arc::new(e))));
            }
            self.collect(before, outcome)?;
            Ok(std::mem::take(&mut self.new_nodes))
        }
    }

    fn flush(&mut self) -> Result<u64, InsertError<LogStoreError>> {
        self.settle()?;
        Ok(std::mem::take(&mut self.new_nodes))
    }
}

impl LogStore {
    /// Waits for every batch in flight and makes them durable (counting new nodes).
    fn settle(&mut self) -> Result<(), InsertError<LogStoreError>> {
        #[cfg(not(target_family = "wasm"))]
        {
            while !self.pending.is_empty() {
                self.collect_oldest()?;
            }
            // Deferred commits become durable before the session counts them as received
            // (nothing to do, two atomic loads, when every commit is durable already).
            self.log
                .sync()
                .map_err(|e| InsertError::Storage(LogStoreError::Storage(e)))?;
        }
        Ok(())
    }
}

#[cfg(not(target_family = "wasm"))]
fn worker_stopped() -> InsertError<LogStoreError> {
    InsertError::Storage(LogStoreError::Log("the insert worker stopped".into()))
}

#[cfg(not(target_family = "wasm"))]
impl LogStore {
    /// Waits for the outcome of the oldest batch in flight and records it.
    fn collect_oldest(&mut self) -> Result<(), InsertError<LogStoreError>> {
        let Some(keys) = self.pending.pop_front() else {
            return Ok(());
        };
        for k in &keys {
            self.in_flight.remove(k);
        }
        let outcome = match &self.worker {
            Some(w) => w.rx.recv().map_err(|_| worker_stopped())?,
            None => return Err(worker_stopped()),
        };
        // Every entry returned counts as this store's (only echo suppression uses it).
        self.collect(0, outcome)
    }
}
