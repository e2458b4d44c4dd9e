//! Group commit: concurrent writers share one storage commit.
//!
//! A writer queues its request and waits. If no commit is running, it becomes the leader:
//! it takes every queued request, writes them all in one redb transaction (each request
//! checked and applied all-or-nothing on its own), commits once (one `fsync` for the whole
//! group), posts every request's result, and hands leadership on. Writers that queued while
//! it committed form the next group. Signing and verification happen before queueing, in
//! each writer's own thread, so they run in parallel with each other and with the commit.
//!
//! With one thread (the browser) every writer is its own leader and nothing ever waits.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};
use std::task::{Poll, Waker};

use cairn_core::{Hash, Node};
use redb::ReadableTable;

use crate::error::{AddError, StorageError};
use crate::log::{Entry, Log};
use crate::tables::{HEADS, KEYS, META, META_LEN, NODES};

#[derive(Default)]
pub(crate) struct Committer {
    queue: Mutex<Queue>,
    /// Storage commits made, and write requests they carried (for [`Log::commit_stats`]).
    pub(crate) commits: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) commit_nanos: AtomicU64,
    /// Commits that were not made durable, and how many of those a later durable commit
    /// covers for sure (every commit before a durable one is durable with it).
    pub(crate) deferred: AtomicU64,
    pub(crate) synced: AtomicU64,
}

#[derive(Default)]
struct Queue {
    pending: Vec<Request>,
    /// Whether a writer is committing (or has been handed the lead and is about to).
    leader: bool,
}

struct Request {
    payload: Payload,
    slot: Arc<Slot>,
    /// Whether the caller returns only once the commit is on disk ([`Log::insert_deferred`]
    /// callers don't). A group is committed durably if any of its requests is.
    durable: bool,
}

/// What a write request stores.
#[cfg_attr(target_family = "wasm", allow(dead_code))] // no signing threads in the browser
pub(crate) enum Payload {
    /// Finished nodes.
    Nodes(Vec<Node>),
    /// Nodes still being signed on other threads: their keys and links are known (so the
    /// request can be checked at once), and the signed nodes arrive in chunks, tagged with
    /// the chunk's index, while the commit is already writing earlier ones.
    Streamed {
        plan: Vec<(Hash, Vec<Hash>)>,
        chunks: mpsc::Receiver<(usize, Vec<Node>)>,
    },
}

impl Payload {
    fn len(&self) -> usize {
        match self {
            Payload::Nodes(n) => n.len(),
            Payload::Streamed { plan, .. } => plan.len(),
        }
    }
    fn key_and_links(&self, i: usize) -> (Hash, &[Hash]) {
        match self {
            Payload::Nodes(n) => (n[i].key(), n[i].links()),
            Payload::Streamed { plan, .. } => (plan[i].0, &plan[i].1),
        }
    }
    /// The nodes in order, waiting for streamed chunks as needed.
    fn into_nodes(self) -> Box<dyn Iterator<Item = Result<Node, StorageError>>> {
        match self {
            Payload::Nodes(n) => Box::new(n.into_iter().map(Ok)),
            Payload::Streamed { plan, chunks } => {
                let mut pending: std::collections::BTreeMap<usize, Vec<Node>> = Default::default();
                let mut next = 0usize;
                let mut current = Vec::new().into_iter();
                let mut left = plan.len();
                Box::new(std::iter::from_fn(move || {
                    if left == 0 {
                        return None;
                    }
                    loop {
                        if let Some(n) = current.next() {
                            left -= 1;
                            return Some(Ok(n));
                        }
                        if let Some(c) = pending.remove(&next) {
                            next += 1;
                            current = c.into_iter();
                            continue;
                        }
                        match chunks.recv() {
                            Ok((i, c)) => {
                                pending.insert(i, c);
                            }
                            Err(_) => {
                                left = 0;
                                let e = std::io::Error::other("a signing thread stopped early");
                                return Some(Err(StorageError(redb::Error::Io(e))));
                            }
                        }
                    }
                }))
            }
        }
    }
}

/// Where a waiting writer learns its outcome, or that it is to lead the next commit. Each
/// writer waits on its own slot, so a commit wakes exactly the writers it served plus the
/// next leader — not every writer in the queue.
struct Slot {
    state: Mutex<SlotState>,
    /// Wakes a blocked (thread) writer.
    wake: Condvar,
    /// Wakes an async writer; `Some` once its future has been polled.
    waker: Mutex<Option<Waker>>,
    /// The writer is a future, not a thread: it cannot be handed the lead (natively).
    #[cfg_attr(target_family = "wasm", allow(dead_code))]
    is_async: bool,
}

#[derive(Default)]
enum SlotState {
    #[default]
    Waiting,
    Lead,
    Done(Result<Written, AddError>),
}

impl Slot {
    fn new(is_async: bool) -> Slot {
        Slot {
            state: Mutex::default(),
            wake: Condvar::new(),
            waker: Mutex::new(None),
            is_async,
        }
    }

    fn set(&self, new: SlotState) {
        *lock(&self.state) = new;
        self.wake.notify_one();
        if let Some(w) = lock(&self.waker).take() {
            w.wake();
        }
    }
}

/// Locks a mutex whose data no panicking thread can leave half-updated.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A request's entries (one per node, in order), and how many of its nodes were new.
pub(crate) type Written = (Vec<Entry>, usize);

type Outcome = (Arc<Slot>, Result<Written, AddError>);

impl Committer {
    /// Stores `nodes` atomically (in order, each linking only to stored or earlier nodes) and
    /// returns once the commit that holds them is durable.
    pub(crate) fn submit(&self, log: &Log, nodes: Vec<Node>) -> Result<Vec<Entry>, AddError> {
        self.submit_payload(log, Payload::Nodes(nodes))
    }

    /// Like [`Committer::submit`], and says how many of the nodes were new.
    pub(crate) fn submit_counted(&self, log: &Log, nodes: Vec<Node>) -> Result<Written, AddError> {
        self.submit_request(log, Payload::Nodes(nodes), true)
    }

    /// Like [`Committer::submit`], but returns once the commit is visible, before it is
    /// durable (see [`Log::insert_deferred`]).
    pub(crate) fn submit_deferred(&self, log: &Log, nodes: Vec<Node>) -> Result<Written, AddError> {
        self.submit_request(log, Payload::Nodes(nodes), false)
    }

    /// Like [`Committer::submit`], for any payload.
    pub(crate) fn submit_payload(
        &self,
        log: &Log,
        payload: Payload,
    ) -> Result<Vec<Entry>, AddError> {
        self.submit_request(log, payload, true).map(|(e, _)| e)
    }

    fn submit_request(
        &self,
        log: &Log,
        payload: Payload,
        durable: bool,
    ) -> Result<Written, AddError> {
        let slot = Arc::new(Slot::new(false));
        let mut lead = {
            let mut q = lock(&self.queue);
            q.pending.push(Request {
                payload,
                slot: slot.clone(),
                durable,
            });
            !std::mem::replace(&mut q.leader, true)
        };
        loop {
            if lead {
                self.lead(log);
            }
            let mut st = lock(&slot.state);
            loop {
                match std::mem::take(&mut *st) {
                    SlotState::Waiting => {
                        st = slot.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
                    }
                    SlotState::Lead => {
                        lead = true;
                        break;
                    }
                    SlotState::Done(result) => return result,
                }
            }
        }
    }

    /// Commits everything queued as one group, posts the outcomes, hands the lead on.
    fn lead(&self, log: &Log) {
        let group = std::mem::take(&mut lock(&self.queue).pending);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.requests
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        let slots: Vec<Arc<Slot>> = group.iter().map(|r| r.slot.clone()).collect();
        #[cfg(not(target_family = "wasm"))]
        let started = std::time::Instant::now();
        // A panic inside the storage engine must not leave the group's writers waiting forever.
        let outcomes =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| commit_group(log, group)))
                .unwrap_or_else(|_| {
                    slots
                        .iter()
                        .map(|s| {
                            let e = std::io::Error::other("the storage commit panicked");
                            (
                                s.clone(),
                                Err(AddError::Storage(StorageError(redb::Error::Io(e)))),
                            )
                        })
                        .collect()
                });
        #[cfg(not(target_family = "wasm"))]
        self.commit_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        for (slot, result) in outcomes {
            slot.set(SlotState::Done(result));
        }
        let mut q = lock(&self.queue);
        match q.pending.first() {
            #[cfg(not(target_family = "wasm"))]
            Some(next) if next.slot.is_async => {
                drop(q);
                spawn_leader(log);
            }
            Some(next) => next.slot.set(SlotState::Lead),
            None => q.leader = false,
        }
    }

    /// Like [`Committer::submit_payload`], for async callers: the future never blocks its
    /// thread. Natively the commit runs on a short-lived leader thread (an async writer
    /// cannot be handed the lead while its task is parked); in the browser the future leads
    /// the commit itself when polled.
    pub(crate) async fn submit_async(
        &self,
        log: &Log,
        payload: Payload,
    ) -> Result<Vec<Entry>, AddError> {
        let slot = Arc::new(Slot::new(true));
        let lead = {
            let mut q = lock(&self.queue);
            q.pending.push(Request {
                payload,
                slot: slot.clone(),
                durable: true,
            });
            !std::mem::replace(&mut q.leader, true)
        };
        if lead {
            #[cfg(not(target_family = "wasm"))]
            spawn_leader(log);
            #[cfg(target_family = "wasm")]
            self.lead(log);
        }
        std::future::poll_fn(|cx| {
            loop {
                let mut st = lock(&slot.state);
                match std::mem::take(&mut *st) {
                    SlotState::Waiting => {
                        // Registered under the state lock: a `set` that follows sees it.
                        *lock(&slot.waker) = Some(cx.waker().clone());
                        return Poll::Pending;
                    }
                    SlotState::Lead => {
                        drop(st);
                        self.lead(log);
                    }
                    SlotState::Done(result) => return Poll::Ready(result.map(|(e, _)| e)),
                }
            }
        })
        .await
    }
}

/// Starts a thread that leads one group commit (and hands the lead on).
#[cfg(not(target_family = "wasm"))]
fn spawn_leader(log: &Log) {
    let leader = log.clone();
    let spawned = std::thread::Builder::new()
        .name("cairn-commit".into())
        .spawn(move || leader.inner.committer.lead(&leader));
    if let Err(e) = spawned {
        // No thread to commit with: fail the queued writers rather than leave them waiting.
        let mut q = lock(&log.inner.committer.queue);
        for r in q.pending.drain(..) {
            let err = std::io::Error::other(format!("cannot start a commit thread: {e}"));
            r.slot
                .set(SlotState::Done(Err(AddError::Storage(StorageError(
                    redb::Error::Io(err),
                )))));
        }
        q.leader = false;
    }
}

fn commit_group(log: &Log, group: Vec<Request>) -> Vec<Outcome> {
    let tickets: Vec<Arc<Slot>> = group.iter().map(|r| r.slot.clone()).collect();
    match write_group(log, group) {
        Ok((outcomes, new_len)) => {
            if let Some(len) = new_len {
                log.inner.len.store(len, Ordering::Release);
                log.inner.added.notify(usize::MAX);
            }
            outcomes
        }
        Err(e) => {
            // The transaction did not commit: no request of the group was stored.
            let msg = e.to_string();
            let mut first = Some(e);
            tickets
                .into_iter()
                .map(|t| {
                    let err = first.take().unwrap_or_else(|| {
                        StorageError(redb::Error::Io(std::io::Error::other(msg.clone())))
                    });
                    (t, Err(AddError::Storage(err)))
                })
                .collect()
        }
    }
}

/// Writes the group in one transaction. Returns each request's outcome and the new length if
/// anything was added.
fn write_group(
    log: &Log,
    group: Vec<Request>,
) -> Result<(Vec<Outcome>, Option<u64>), StorageError> {
    let mut txn = log.inner.db.begin_write()?;
    let committer = &log.inner.committer;
    let durable = group.iter().any(|r| r.durable);
    // Deferred commits made before this one, which a durable commit makes durable too.
    let deferred_before = committer.deferred.load(Ordering::Acquire);
    if durable {
        // See LogOptions::quick_repair.
        txn.set_quick_repair(log.inner.opts.quick_repair);
    } else if txn.set_durability(redb::Durability::None).is_err() {
        // Not allowed in this database mode: commit durably.
    }
    let mut outcomes = Vec::with_capacity(group.len());
    let start_len;
    let mut len;
    {
        let mut nodes_t = txn.open_table(NODES)?;
        let mut keys_t = txn.open_table(KEYS)?;
        let mut heads_t = txn.open_table(HEADS)?;
        let mut meta_t = txn.open_table(META)?;
        start_len = meta_t.get(META_LEN)?.map(|v| v.value()).unwrap_or(0);
        len = start_len;
        // Keys added by earlier requests of this group.
        let mut group_keys: HashMap<Hash, u64> = HashMap::new();
        let mut buf = Vec::new();
        // Nodes written by this transaction that none of its nodes links to, and earlier
        // nodes its nodes link to.
        let mut new_heads: HashSet<Hash> = HashSet::new();
        let mut linked: HashSet<Hash> = HashSet::new();
        for req in group {
            // Check the whole request before writing any of it.
            let mut req_keys: HashMap<Hash, u64> = HashMap::new();
            let count = req.payload.len();
            let mut changes = Vec::with_capacity(count);
            let mut next = len;
            let mut failure = None;
            'nodes: for i in 0..count {
                let (key, links) = req.payload.key_and_links(i);
                let known = match req_keys.get(&key).or_else(|| group_keys.get(&key)) {
                    Some(c) => Some(*c),
                    None => keys_t.get(&key.0)?.map(|v| v.value()),
                };
                if let Some(c) = known {
                    changes.push((c, false));
                    continue;
                }
                for link in links {
                    let present = req_keys.contains_key(link)
                        || group_keys.contains_key(link)
                        || keys_t.get(&link.0)?.is_some();
                    if !present {
                        failure = Some(AddError::MissingLink {
                            node: key,
                            link: *link,
                        });
                        break 'nodes;
                    }
                }
                next += 1;
                req_keys.insert(key, next);
                changes.push((next, true));
            }
            if let Some(e) = failure {
                outcomes.push((req.slot.clone(), Err(e)));
                continue;
            }
            let mut entries = Vec::with_capacity(count);
            let mut added = 0usize;
            let slot = req.slot.clone();
            for (node, (change, new)) in req.payload.into_nodes().zip(changes) {
                let node = node?;
                if new {
                    buf.clear();
                    node.encode_into(&mut buf);
                    nodes_t.insert(change, buf.as_slice())?;
                    keys_t.insert(&node.key().0, change)?;
                    for link in node.links() {
                        if !new_heads.remove(link) {
                            linked.insert(*link);
                        }
                    }
                    new_heads.insert(node.key());
                    added += 1;
                }
                entries.push(Entry { change, node });
            }
            len = next;
            group_keys.extend(req_keys);
            outcomes.push((slot, Ok((entries, added))));
        }
        // The heads table changes once per transaction, not once per node: in a chain of n
        // new nodes only the last is a head, and only heads linked from outside the
        // transaction's own nodes are removed.
        for key in &linked {
            heads_t.remove(&key.0)?;
        }
        for key in &new_heads {
            heads_t.insert(&key.0, ())?;
        }
        if len != start_len {
            meta_t.insert(META_LEN, len)?;
        }
    }
    if len == start_len {
        if !durable || committer.synced.load(Ordering::Acquire) >= deferred_before {
            txn.abort()?;
            return Ok((outcomes, None));
        }
        // Nothing new, but some of these nodes may be stored only by deferred commits not
        // yet on disk: a durable write's Ok means durable, so this empty commit makes them
        // so.
        txn.commit()?;
        committer
            .synced
            .fetch_max(deferred_before, Ordering::AcqRel);
        return Ok((outcomes, None));
    }
    txn.commit()?;
    if durable {
        committer
            .synced
            .fetch_max(deferred_before, Ordering::AcqRel);
    } else {
        committer.deferred.fetch_add(1, Ordering::AcqRel);
    }
    Ok((outcomes, Some(len)))
}
