//! The indexer: runs one view over one log.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use cairn_log::{ChangesQuery, Entry, Log, StorageError};
use event_listener::Event;
#[cfg(not(target_family = "wasm"))]
use event_listener::Listener;
use redb::{Durability, ReadableTable, TableDefinition};

use crate::error::{CatchUpError, IndexError, OpenError, RebuildError, storage};
use crate::view::View;

/// Most bytes of nodes in one batch (besides [`IndexerOptions::batch`] nodes).
const BATCH_BYTES: usize = 4 << 20;

/// The indexer's table: view name → (view version, last change number applied).
pub const PROGRESS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("view.progress");

/// How an indexer runs.
#[derive(Debug, Clone)]
pub struct IndexerOptions {
    batch: u64,
    sync_every: u64,
    background: bool,
    quick_repair: bool,
}

impl Default for IndexerOptions {
    /// Batches of 16 384 nodes, a synced view commit once 131 072 nodes were applied since
    /// the last one, and (natively) a background thread.
    fn default() -> Self {
        IndexerOptions {
            batch: 16_384,
            sync_every: 131_072,
            background: cfg!(not(target_family = "wasm")),
            quick_repair: false,
        }
    }
}

impl IndexerOptions {
    /// Most nodes applied per transaction (at least 1).
    pub fn batch(mut self, nodes: u64) -> Self {
        self.batch = nodes.max(1);
        self
    }
    /// Sync the view commit that brings the nodes applied since the last synced one to `n` or
    /// more (1: every view commit is durable on its own). Unsynced commits are made durable by
    /// the next synced commit of anyone on the database — the log's commits always are, so
    /// while the log is being written the view costs no `fsync` of its own; a crash before
    /// that only loses view progress, which is redone. The bound keeps what redb holds in
    /// memory for unsynced commits small during a long rebuild.
    pub fn sync_every(mut self, n: u64) -> Self {
        self.sync_every = n.max(1);
        self
    }
    /// Whether the indexer's synced commits use redb's quick repair (two-phase commit and a
    /// saved allocator state). Set it as the log's `LogOptions::quick_repair` (off by default
    /// in both), so that the last durable commit on the database keeps the log's choice.
    pub fn quick_repair(mut self, on: bool) -> Self {
        self.quick_repair = on;
        self
    }
    /// Whether to run a background thread that keeps the view up to date (ignored, and off,
    /// on wasm). Without it the view advances only when `catch_up`/`ready` are called.
    pub fn background(mut self, on: bool) -> Self {
        self.background = on && cfg!(not(target_family = "wasm"));
        self
    }
}

struct Applier<V> {
    view: V,
    /// Nodes applied by view commits since the last synced one.
    unsynced: u64,
}

struct Control<E> {
    paused: bool,
    failed: Option<Arc<IndexError<E>>>,
}

pub(crate) struct Shared<V: View> {
    log: Log,
    name: String,
    version: u64,
    opts: IndexerOptions,
    applier: Mutex<Applier<V>>,
    applied: AtomicU64,
    control: Mutex<Control<V::Error>>,
    /// Notified whenever `applied` or `control` changes.
    event: Event,
    stop: AtomicBool,
    #[cfg(not(target_family = "wasm"))]
    worker: Mutex<Option<std::thread::Thread>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic inside a view leaves at worst an uncommitted transaction, which redb drops.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

enum BatchFailure<E> {
    View(E),
    Storage(StorageError),
    /// The stored progress is not where this indexer left it: another indexer of the same
    /// view moved it (version, change), or removed it.
    Moved(Option<(u64, u64)>),
    /// The view panicked.
    Panicked(String),
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".to_owned())
}

impl<V: View> Shared<V> {
    fn fail(&self, e: IndexError<V::Error>) -> Arc<IndexError<V::Error>> {
        let e = Arc::new(e);
        lock(&self.control).failed = Some(e.clone());
        self.event.notify(usize::MAX);
        e
    }

    fn failed(&self) -> Option<Arc<IndexError<V::Error>>> {
        lock(&self.control).failed.clone()
    }

    fn paused(&self) -> bool {
        lock(&self.control).paused
    }

    fn wake_worker(&self) {
        #[cfg(not(target_family = "wasm"))]
        if let Some(t) = lock(&self.worker).as_ref() {
            t.unpark();
        }
    }

    /// Writes one batch and the progress in one transaction.
    fn commit_batch(
        &self,
        a: &mut Applier<V>,
        entries: &[Entry],
    ) -> Result<(), BatchFailure<V::Error>> {
        let Some(last) = entries.last().map(|e| e.change) else {
            return Ok(());
        };
        let mut txn = self
            .log
            .database()
            .begin_write()
            .map_err(|e| BatchFailure::Storage(storage(e)))?;
        let applied = entries.len() as u64;
        let sync = a.unsynced + applied >= self.opts.sync_every;
        if sync {
            txn.set_quick_repair(self.opts.quick_repair);
        } else if txn.set_durability(Durability::None).is_err() {
            // Not allowed in this database mode: commit durably instead.
        }
        // Check-and-set of the progress: another indexer of this view (a second handle on
        // the same database) may have applied these nodes already.
        let expected = entries[0].change - 1;
        let stored = txn
            .open_table(PROGRESS)
            .map_err(storage)
            .and_then(|t| {
                t.get(self.name.as_str())
                    .map(|g| g.map(|v| v.value()))
                    .map_err(storage)
            })
            .map_err(BatchFailure::Storage)?;
        if stored != Some((self.version, expected)) {
            drop(txn);
            return Err(BatchFailure::Moved(stored));
        }
        let view = &mut a.view;
        match std::panic::catch_unwind(AssertUnwindSafe(|| view.apply(&txn, entries))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                drop(txn);
                a.view.rolled_back();
                return Err(BatchFailure::View(e));
            }
            Err(panic) => {
                drop(txn);
                a.view.rolled_back();
                return Err(BatchFailure::Panicked(panic_message(&*panic)));
            }
        }
        let written = txn
            .open_table(PROGRESS)
            .map_err(storage)
            .and_then(|mut t| {
                t.insert(self.name.as_str(), (self.version, last))
                    .map(drop)
                    .map_err(storage)
            })
            .and_then(|()| txn.commit().map_err(storage));
        if let Err(e) = written {
            a.view.rolled_back();
            return Err(BatchFailure::Storage(e));
        }
        a.unsynced = if sync { 0 } else { a.unsynced + applied };
        self.applied.store(last, Ordering::Release);
        a.view.committed();
        self.event.notify(usize::MAX);
        Ok(())
    }

    /// Applies one batch towards `target`. `Ok(true)` if it applied something.
    fn step(&self, target: u64) -> Result<bool, Arc<IndexError<V::Error>>> {
        let mut a = lock(&self.applier);
        if self.paused_or_stopped()? {
            return Ok(false);
        }
        let from = self.applied.load(Ordering::Acquire);
        if from >= target {
            return Ok(false);
        }
        let until = target.min(from.saturating_add(self.opts.batch));
        // A batch ends at `batch` nodes or once it holds BATCH_BYTES of them (at least one
        // node), so big nodes never pile up in memory: 16,384 nodes of 4 MiB would be 64 GiB.
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        for e in self
            .log
            .changes(ChangesQuery::all().since(from).until(until))
        {
            match e {
                Ok(e) => {
                    bytes += e.node.encoded_len();
                    entries.push(e);
                    if bytes >= BATCH_BYTES {
                        break;
                    }
                }
                Err(e) => return Err(self.fail(IndexError::Read(e))),
            }
        }
        if entries.is_empty() {
            // Nothing readable yet (cannot happen with a committed length): do not spin.
            return Ok(false);
        }
        self.apply_batch(&mut a, &entries)
    }

    /// Whether the view is paused; its error if it stopped.
    fn paused_or_stopped(&self) -> Result<bool, Arc<IndexError<V::Error>>> {
        let c = lock(&self.control);
        match &c.failed {
            Some(e) => Err(e.clone()),
            None => Ok(c.paused),
        }
    }

    /// Applies `entries` (the next ones: consecutive from the applied change on) in one
    /// batch, or node by node to find the one a view refuses.
    fn apply_batch(
        &self,
        a: &mut Applier<V>,
        entries: &[Entry],
    ) -> Result<bool, Arc<IndexError<V::Error>>> {
        match self.commit_batch(a, entries) {
            Ok(()) => Ok(true),
            Err(BatchFailure::Moved(stored)) => self.moved(a, stored),
            Err(BatchFailure::Storage(e)) => Err(self.fail(IndexError::Storage(e))),
            Err(BatchFailure::Panicked(message)) if entries.len() == 1 => {
                Err(self.fail(IndexError::Panicked {
                    change: entries[0].change,
                    message,
                }))
            }
            Err(BatchFailure::View(e)) if entries.len() == 1 => Err(self.fail(IndexError::View {
                change: entries[0].change,
                source: e,
            })),
            Err(BatchFailure::View(_) | BatchFailure::Panicked(_)) => {
                // Find the failing node: apply the batch one node at a time.
                for entry in entries.chunks(1) {
                    match self.commit_batch(a, entry) {
                        Ok(()) => {}
                        Err(BatchFailure::Moved(stored)) => return self.moved(a, stored),
                        Err(BatchFailure::Storage(e)) => {
                            return Err(self.fail(IndexError::Storage(e)));
                        }
                        Err(BatchFailure::View(e)) => {
                            return Err(self.fail(IndexError::View {
                                change: entry[0].change,
                                source: e,
                            }));
                        }
                        Err(BatchFailure::Panicked(message)) => {
                            return Err(self.fail(IndexError::Panicked {
                                change: entry[0].change,
                                message,
                            }));
                        }
                    }
                }
                // Deterministic views fail again; one that did not has now applied all.
                Ok(true)
            }
        }
    }

    /// Follows progress moved by another indexer of the same view, or stops if it now
    /// belongs to another version.
    fn moved(
        &self,
        a: &mut Applier<V>,
        stored: Option<(u64, u64)>,
    ) -> Result<bool, Arc<IndexError<V::Error>>> {
        match stored {
            Some((v, change)) if v == self.version && change <= self.log.len() => {
                // The view's tables are as that indexer left them: drop any cached state.
                a.view.rolled_back();
                self.applied.store(change, Ordering::Release);
                self.event.notify(usize::MAX);
                Ok(true)
            }
            other => Err(self.fail(IndexError::Replaced {
                version: other.map(|(v, _)| v),
            })),
        }
    }

    fn catch_up_to(&self, target: u64) -> Result<u64, CatchUpError<V::Error>> {
        while self.step(target).map_err(CatchUpError::Stopped)? {}
        Ok(self.applied.load(Ordering::Acquire))
    }

    /// Commits an empty synced transaction if view commits are pending a sync.
    fn flush(&self) -> Result<(), StorageError> {
        let mut a = lock(&self.applier);
        if a.unsynced == 0 {
            return Ok(());
        }
        let mut txn = self.log.database().begin_write().map_err(storage)?;
        txn.set_quick_repair(self.opts.quick_repair);
        txn.commit().map_err(storage)?;
        a.unsynced = 0;
        Ok(())
    }
}

/// Runs one [`View`] over one [`Log`]; see the [crate docs](crate) for the contract.
///
/// Cheap to clone; clones share the view. When the last clone is dropped the background
/// thread (if any) stops and pending view commits are synced.
pub struct Indexer<V: View> {
    handle: Arc<Handle<V>>,
}

impl<V: View> Clone for Indexer<V> {
    fn clone(&self) -> Self {
        Indexer {
            handle: self.handle.clone(),
        }
    }
}

impl<V: View> fmt::Debug for Indexer<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.handle.shared;
        f.debug_struct("Indexer")
            .field("view", &s.name)
            .field("version", &s.version)
            .field("applied", &s.applied.load(Ordering::Relaxed))
            .field("log_len", &s.log.len())
            .finish_non_exhaustive()
    }
}

struct Handle<V: View> {
    shared: Arc<Shared<V>>,
    #[cfg(not(target_family = "wasm"))]
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<V: View> Drop for Handle<V> {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        #[cfg(not(target_family = "wasm"))]
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            // A panic in the worker has already been reported by the panic hook.
            let _ = t.join();
        }
        // Best effort: a failure here loses only view progress, which is redone on open.
        let _ = self.shared.flush();
    }
}

impl<V: View> Indexer<V> {
    /// Opens `view` over `log`: resumes from the stored progress, or clears and rebuilds the
    /// view when it is new or its version changed. With the background option (the default
    /// natively) a thread starts applying right away.
    pub fn open(log: &Log, mut view: V, opts: IndexerOptions) -> Result<Self, OpenError<V::Error>> {
        let name = view.name().to_owned();
        let version = view.version();
        let mut txn = log.database().begin_write().map_err(storage)?;
        txn.set_quick_repair(opts.quick_repair);
        let stored = {
            let t = txn.open_table(PROGRESS).map_err(storage)?;
            t.get(name.as_str()).map_err(storage)?.map(|v| v.value())
        };
        let applied = match stored {
            // Progress beyond the log cannot come from this log: rebuild.
            Some((v, applied)) if v == version && applied <= log.len() => applied,
            _ => {
                if let Err(e) = view.clear(&txn) {
                    drop(txn);
                    view.rolled_back();
                    return Err(OpenError::Clear(e));
                }
                txn.open_table(PROGRESS)
                    .map_err(storage)?
                    .insert(name.as_str(), (version, 0))
                    .map_err(storage)?;
                0
            }
        };
        if let Err(e) = txn.commit() {
            view.rolled_back();
            return Err(OpenError::Storage(storage(e)));
        }
        view.committed();
        let background = opts.background;
        let shared = Arc::new(Shared {
            log: log.clone(),
            name,
            version,
            opts,
            applier: Mutex::new(Applier { view, unsynced: 0 }),
            applied: AtomicU64::new(applied),
            control: Mutex::new(Control {
                paused: false,
                failed: None,
            }),
            event: Event::new(),
            stop: AtomicBool::new(false),
            #[cfg(not(target_family = "wasm"))]
            worker: Mutex::new(None),
        });
        #[cfg(not(target_family = "wasm"))]
        let thread = if background {
            let s = shared.clone();
            let t = std::thread::Builder::new()
                .name(format!("cairn-view {}", shared.name))
                .spawn(move || worker::run(s))
                .map_err(|e| OpenError::Storage(StorageError(redb::Error::Io(e))))?;
            *lock(&shared.worker) = Some(t.thread().clone());
            Some(t)
        } else {
            None
        };
        #[cfg(target_family = "wasm")]
        let _ = background;
        Ok(Indexer {
            handle: Arc::new(Handle {
                shared,
                #[cfg(not(target_family = "wasm"))]
                thread,
            }),
        })
    }

    fn shared(&self) -> &Shared<V> {
        &self.handle.shared
    }

    fn has_worker(&self) -> bool {
        #[cfg(not(target_family = "wasm"))]
        {
            self.handle.thread.is_some()
        }
        #[cfg(target_family = "wasm")]
        {
            false
        }
    }

    /// The log the view follows.
    pub fn log(&self) -> &Log {
        &self.shared().log
    }

    /// The view's name.
    pub fn name(&self) -> &str {
        &self.shared().name
    }

    /// The view's version.
    pub fn version(&self) -> u64 {
        self.shared().version
    }

    /// The last change number the view has applied (and committed).
    pub fn applied(&self) -> u64 {
        self.shared().applied.load(Ordering::Acquire)
    }

    /// Whether the view has applied the whole log as it is now.
    pub fn is_current(&self) -> bool {
        self.applied() >= self.shared().log.len()
    }

    /// The error the view stopped on, if it has.
    pub fn error(&self) -> Option<Arc<IndexError<V::Error>>> {
        self.shared().failed()
    }

    /// Whether the view is paused.
    pub fn is_paused(&self) -> bool {
        self.shared().paused()
    }

    /// Applies, in the caller's thread, every node in the log at the time of the call
    /// (unless paused: then it returns at once). Returns the change number applied up to.
    pub fn catch_up(&self) -> Result<u64, CatchUpError<V::Error>> {
        self.shared().catch_up_to(self.shared().log.len())
    }

    /// Applies `entries` — nodes just stored, in hand — without reading them back from the
    /// log, if they are the next ones for the view: those above its applied change must be
    /// consecutive from it (entries at or below it are skipped). Otherwise, or while the view
    /// is paused, it does nothing and returns `Ok(false)`; a later catch-up applies them from
    /// the log. For a writer with no background indexer (the browser's bulk inserts), so that
    /// the view keeps up without a second read of every node.
    pub fn apply_next(&self, entries: &[Entry]) -> Result<bool, CatchUpError<V::Error>> {
        let s = self.shared();
        let mut a = lock(&s.applier);
        if s.paused_or_stopped().map_err(CatchUpError::Stopped)? {
            return Ok(false);
        }
        let from = s.applied.load(Ordering::Acquire);
        let follows = |es: &[Entry]| {
            !es.is_empty()
                && es.last().is_some_and(|e| e.change <= s.log.len())
                && es
                    .iter()
                    .enumerate()
                    .all(|(i, e)| e.change == from + 1 + i as u64)
        };
        // Usually exactly the next ones, in order (a batch of new nodes): applied as given.
        if follows(entries) {
            return s
                .apply_batch(&mut a, entries)
                .map_err(CatchUpError::Stopped);
        }
        let mut next: Vec<Entry> = entries
            .iter()
            .filter(|e| e.change > from)
            .cloned()
            .collect();
        next.sort_by_key(|e| e.change);
        if !follows(&next) {
            return Ok(false);
        }
        s.apply_batch(&mut a, &next).map_err(CatchUpError::Stopped)
    }

    /// Applies at most one batch in the caller's thread; `Ok(true)` if it applied anything.
    /// For cooperative schedulers that want to yield between batches.
    pub fn step(&self) -> Result<bool, CatchUpError<V::Error>> {
        self.shared()
            .step(self.shared().log.len())
            .map_err(CatchUpError::Stopped)
    }

    /// Blocks until the view has applied every node that was in the log when called. It
    /// applies nodes in the caller's thread as needed, and waits while the view is paused.
    /// Not on wasm, where nothing may block: use [`Indexer::catch_up`] or [`Indexer::ready`].
    #[cfg(not(target_family = "wasm"))]
    pub fn ready_blocking(&self) -> Result<(), CatchUpError<V::Error>> {
        let s = self.shared();
        let target = s.log.len();
        loop {
            s.catch_up_to(target)?;
            if s.applied.load(Ordering::Acquire) >= target {
                return Ok(());
            }
            let listener = s.event.listen();
            if s.applied.load(Ordering::Acquire) >= target || !s.paused() {
                continue;
            }
            listener.wait();
        }
    }

    /// Resolves once the view has applied every node that was in the log when called. With a
    /// background thread it waits for it; without one (wasm) it applies the nodes itself,
    /// synchronously, when polled. Waits while the view is paused. Runtime-independent.
    pub async fn ready(&self) -> Result<(), CatchUpError<V::Error>> {
        let s = self.shared();
        let target = s.log.len();
        loop {
            if !self.has_worker() {
                s.catch_up_to(target)?;
            } else if let Some(e) = s.failed() {
                return Err(CatchUpError::Stopped(e));
            }
            if s.applied.load(Ordering::Acquire) >= target {
                return Ok(());
            }
            let listener = s.event.listen();
            if s.applied.load(Ordering::Acquire) >= target || s.failed().is_some() {
                continue;
            }
            if !self.has_worker() && !s.paused() {
                continue;
            }
            listener.await;
        }
    }

    /// Waits (blocking) until the view has applied change `change` or stopped; returns the
    /// change number applied. Unlike [`Indexer::ready_blocking`] it does not apply anything
    /// itself, so it needs the background thread or another caller of `catch_up`. Not on wasm.
    #[cfg(not(target_family = "wasm"))]
    pub fn wait_applied(&self, change: u64) -> Result<u64, CatchUpError<V::Error>> {
        let s = self.shared();
        loop {
            let applied = s.applied.load(Ordering::Acquire);
            if applied >= change {
                return Ok(applied);
            }
            if let Some(e) = s.failed() {
                return Err(CatchUpError::Stopped(e));
            }
            let listener = s.event.listen();
            if s.applied.load(Ordering::Acquire) >= change || s.failed().is_some() {
                continue;
            }
            listener.wait();
        }
    }

    /// Async form of [`Indexer::wait_applied`]: resolves once change `change` is applied.
    pub async fn applied_async(&self, change: u64) -> Result<u64, CatchUpError<V::Error>> {
        let s = self.shared();
        loop {
            let applied = s.applied.load(Ordering::Acquire);
            if applied >= change {
                return Ok(applied);
            }
            if let Some(e) = s.failed() {
                return Err(CatchUpError::Stopped(e));
            }
            let listener = s.event.listen();
            if s.applied.load(Ordering::Acquire) >= change || s.failed().is_some() {
                continue;
            }
            listener.await;
        }
    }

    /// Stops applying after the batch in progress.
    pub fn pause(&self) {
        lock(&self.shared().control).paused = true;
        self.shared().event.notify(usize::MAX);
    }

    /// Goes on after [`Indexer::pause`].
    pub fn resume(&self) {
        lock(&self.shared().control).paused = false;
        self.shared().event.notify(usize::MAX);
        self.shared().wake_worker();
    }

    /// Clears the view and applies the log again from the start (also after a failure).
    /// Returns once the view is cleared; the nodes are applied by the background thread or
    /// the next `catch_up`/`ready`.
    pub fn rebuild(&self) -> Result<(), RebuildError<V::Error>> {
        let s = self.shared();
        let mut a = lock(&s.applier);
        let mut txn = s.log.database().begin_write().map_err(storage)?;
        txn.set_quick_repair(s.opts.quick_repair);
        if let Err(e) = a.view.clear(&txn) {
            drop(txn);
            a.view.rolled_back();
            return Err(RebuildError::Clear(e));
        }
        let written = txn
            .open_table(PROGRESS)
            .map_err(storage)
            .and_then(|mut t| {
                t.insert(s.name.as_str(), (s.version, 0))
                    .map(drop)
                    .map_err(storage)
            })
            .and_then(|()| txn.commit().map_err(storage));
        if let Err(e) = written {
            a.view.rolled_back();
            return Err(RebuildError::Storage(e));
        }
        a.unsynced = 0;
        s.applied.store(0, Ordering::Release);
        a.view.committed();
        lock(&s.control).failed = None;
        drop(a);
        s.event.notify(usize::MAX);
        s.wake_worker();
        Ok(())
    }

    /// Clears a failure and goes on from the last applied node (for failures that may not
    /// happen again, such as a storage error).
    pub fn retry(&self) {
        let s = self.shared();
        let mut a = lock(&s.applier);
        a.view.rolled_back();
        lock(&s.control).failed = None;
        drop(a);
        s.event.notify(usize::MAX);
        s.wake_worker();
    }

    /// Makes every committed view transaction durable now.
    pub fn sync(&self) -> Result<(), StorageError> {
        self.shared().flush()
    }

    /// Runs `f` on the view (for views that answer queries from memory). Waits for the batch
    /// being applied, if any. `f` must not call back into this indexer (`catch_up`, `ready`,
    /// or reads of a store that catch up, such as `Kv::get`): the view is locked while it runs.
    pub fn with_view<R>(&self, f: impl FnOnce(&mut V) -> R) -> R {
        f(&mut lock(&self.shared().applier).view)
    }
}

#[cfg(not(target_family = "wasm"))]
mod worker {
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::task::{Context, Wake, Waker};
    use std::thread::Thread;

    use cairn_log::ChangesQuery;
    use futures_core::Stream;

    use super::Shared;
    use crate::view::View;

    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }

    /// The background loop: apply batches while there is work; otherwise sleep until the log
    /// grows (a live changes feed wakes the thread) or the indexer's state changes (unpark).
    pub(super) fn run<V: View>(s: Arc<Shared<V>>) {
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        loop {
            if s.stop.load(Ordering::Acquire) {
                return;
            }
            if let Ok(true) = s.step(s.log.len()) {
                continue;
            }
            let seen = s.log.len();
            let runnable = !s.paused() && s.failed().is_none();
            if runnable && seen > s.applied.load(Ordering::Acquire) {
                continue;
            }
            let mut feed = s
                .log
                .changes_stream(ChangesQuery::all().since(seen).limit(1).live());
            if Pin::new(&mut feed).poll_next(&mut cx).is_ready() {
                continue;
            }
            if s.stop.load(Ordering::Acquire) {
                return;
            }
            std::thread::park();
        }
    }
}
