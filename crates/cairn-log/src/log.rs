//! The log handle and its operations.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cairn_core::{Draft, Ed25519Verifier, Hash, Limits, Node, Signer, Verify};
use event_listener::Event;
use redb::{Database, ReadableDatabase, ReadableTable, StorageBackend};

use crate::commit::Committer;
#[cfg(not(target_family = "wasm"))]
use crate::commit::Payload;
use crate::error::{AddError, OpenError, ReadError, StorageError};
use crate::tables::{HEADS, KEYS, META, META_FORMAT, META_LEN, NODES, STORE_FORMAT};

/// What an insert stored: an entry per node given (in order; a node already present is
/// returned as stored), and how many of them were new to the log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Inserted {
    /// One entry per node given, in order.
    pub entries: Vec<Entry>,
    /// How many of the nodes this insert added (the others were already stored).
    pub new: usize,
}

/// A stored node and its local change number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The node's place in this log's changes feed (1 for the first node).
    pub change: u64,
    /// The node.
    pub node: Node,
}

/// How a log is set up.
#[derive(Clone)]
pub struct LogOptions {
    signer: Option<Arc<dyn Signer>>,
    verifier: Arc<dyn Verify>,
    limits: Limits,
    cache_bytes: usize,
    pub(crate) quick_repair: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            signer: None,
            verifier: Arc::new(Ed25519Verifier::permissive()),
            limits: Limits::default(),
            cache_bytes: 64 << 20,
            quick_repair: false,
        }
    }
}

impl fmt::Debug for LogOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogOptions")
            .field("identity", &self.signer.as_ref().map(|s| s.identity()))
            .field("limits", &self.limits)
            .field("cache_bytes", &self.cache_bytes)
            .field("quick_repair", &self.quick_repair)
            .finish_non_exhaustive()
    }
}

impl LogOptions {
    /// Signs every node this log writes with `signer` (without one, writes are unsigned).
    pub fn signer(mut self, signer: impl Signer + 'static) -> Self {
        self.signer = Some(Arc::new(signer));
        self
    }
    /// The policy received nodes must pass (default: [`Ed25519Verifier::permissive`]).
    pub fn verifier(mut self, verifier: impl Verify + 'static) -> Self {
        self.verifier = Arc::new(verifier);
        self
    }
    /// Size limits for nodes written and received.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
    /// Whether each commit saves redb's allocator state and commits in two phases (two
    /// `fsync`s), so that the first open after a crash needs no repair at all. Off (the
    /// default), a commit is one `fsync` and just as crash-safe (checksummed commit slots), and
    /// the first open after a crash walks the store to rebuild the allocator state: measured
    /// 65 ms at 200 k nodes and 0.46 s at 1 M nodes (`cairn-bench recovery`).
    pub fn quick_repair(mut self, on: bool) -> Self {
        self.quick_repair = on;
        self
    }
    /// The storage engine's page cache size (default 64 MiB); it bounds the log's memory.
    pub fn cache_bytes(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }
}

/// A link of a [`BatchEntry`]: a node already in the log, or an earlier entry of the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// A node by key.
    Node(Hash),
    /// The entry at this index in the same batch; it must come before the linking entry.
    Earlier(usize),
}

impl From<Hash> for Link {
    fn from(h: Hash) -> Self {
        Link::Node(h)
    }
}

/// One node to write in a [`Log::batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchEntry {
    /// What the node links to.
    pub links: Vec<Link>,
    /// Its value.
    pub value: Vec<u8>,
}

impl BatchEntry {
    /// An entry with `links` and `value`.
    pub fn new(links: impl IntoIterator<Item = Link>, value: impl Into<Vec<u8>>) -> Self {
        BatchEntry {
            links: links.into_iter().collect(),
            value: value.into(),
        }
    }
}

/// An open log. Cheap to clone; clones share the store.
#[derive(Clone)]
pub struct Log {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) db: Database,
    pub(crate) opts: LogOptions,
    /// Number of committed nodes, published after each commit.
    pub(crate) len: AtomicU64,
    /// Notified after each commit that added nodes.
    pub(crate) added: Event,
    pub(crate) committer: Committer,
}

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Log")
            .field("len", &self.len())
            .field("opts", &self.inner.opts)
            .finish_non_exhaustive()
    }
}

impl Log {
    /// Opens the log stored in the file at `path`, creating it if needed.
    #[cfg(not(target_family = "wasm"))]
    pub fn open(path: impl AsRef<std::path::Path>, opts: LogOptions) -> Result<Log, OpenError> {
        let db = redb::Builder::new()
            .set_cache_size(opts.cache_bytes)
            .create(path.as_ref())
            .map_err(StorageError::from)?;
        Log::from_db(db, opts)
    }

    /// A log kept in memory only.
    pub fn memory(opts: LogOptions) -> Result<Log, OpenError> {
        Log::with_backend(redb::backends::InMemoryBackend::new(), opts)
    }

    /// A log over any redb storage backend.
    pub fn with_backend(backend: impl StorageBackend, opts: LogOptions) -> Result<Log, OpenError> {
        let db = redb::Builder::new()
            .set_cache_size(opts.cache_bytes)
            .create_with_backend(backend)
            .map_err(StorageError::from)?;
        Log::from_db(db, opts)
    }

    fn from_db(db: Database, opts: LogOptions) -> Result<Log, OpenError> {
        let txn = db.begin_write().map_err(StorageError::from)?;
        let len = {
            let mut meta = txn.open_table(META).map_err(StorageError::from)?;
            let format = meta
                .get(META_FORMAT)
                .map_err(StorageError::from)?
                .map(|v| v.value());
            match format {
                None => {
                    meta.insert(META_FORMAT, STORE_FORMAT)
                        .map_err(StorageError::from)?;
                }
                Some(STORE_FORMAT) => {}
                Some(found) => {
                    return Err(OpenError::UnsupportedFormat {
                        found,
                        supported: STORE_FORMAT,
                    });
                }
            }
            let len = meta
                .get(META_LEN)
                .map_err(StorageError::from)?
                .map(|v| v.value())
                .unwrap_or(0);
            txn.open_table(NODES).map_err(StorageError::from)?;
            txn.open_table(KEYS).map_err(StorageError::from)?;
            txn.open_table(HEADS).map_err(StorageError::from)?;
            len
        };
        txn.commit().map_err(StorageError::from)?;
        Ok(Log {
            inner: Arc::new(Inner {
                db,
                opts,
                len: AtomicU64::new(len),
                added: Event::new(),
                committer: Committer::default(),
            }),
        })
    }

    /// The public key this log signs with, if it has one.
    pub fn identity(&self) -> Option<cairn_core::PublicKey> {
        self.inner.opts.signer.as_ref().map(|s| s.identity())
    }

    /// The size limits in force.
    pub fn limits(&self) -> &Limits {
        &self.inner.opts.limits
    }

    /// Number of nodes in the log, which is also the last change number.
    pub fn len(&self) -> u64 {
        self.inner.len.load(Ordering::Acquire)
    }

    /// Whether the log has no nodes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many storage commits this handle's writes took, and how many write calls they
    /// carried: the ratio is the average group-commit size.
    pub fn commit_stats(&self) -> (u64, u64) {
        let c = &self.inner.committer;
        (
            c.commits.load(Ordering::Relaxed),
            c.requests.load(Ordering::Relaxed),
        )
    }

    /// Total time spent inside storage commits (native only; zero in wasm).
    pub fn commit_busy(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.inner.committer.commit_nanos.load(Ordering::Relaxed))
    }

    /// The underlying redb database, for views that keep their tables next to the log's (so
    /// that their writes and the log's can share transactions). Do not write the log's own
    /// tables (`log.*`).
    pub fn database(&self) -> &Database {
        &self.inner.db
    }

    /// Builds a node with the log's signer (or unsigned without one), before storing it.
    fn draft(&self, links: Vec<Hash>, value: Vec<u8>) -> Result<Draft, AddError> {
        let author = self.inner.opts.signer.as_ref().map(|s| s.identity());
        Ok(Draft::new(links, author, value, &self.inner.opts.limits)?)
    }

    /// A finished node of this log's: drafted, then signed (if the log has a signer).
    fn build(&self, links: Vec<Hash>, value: Vec<u8>) -> Result<Node, AddError> {
        let draft = self.draft(links, value)?;
        Ok(match &self.inner.opts.signer {
            Some(s) => draft.sign(s.as_ref())?,
            None => draft.finish(None)?,
        })
    }

    /// Adds a node linking `links` with `value`; returns it with its change number. Every link
    /// must already be in the log. Adding a node that is already there returns the stored one.
    pub fn add(
        &self,
        links: impl IntoIterator<Item = Hash>,
        value: impl Into<Vec<u8>>,
    ) -> Result<Entry, AddError> {
        let node = self.build(links.into_iter().collect(), value.into())?;
        let mut out = self.inner.committer.submit(self, vec![node])?;
        Ok(out.remove(0))
    }

    /// [`Log::add`] for async callers: the future waits for the durable commit without
    /// blocking its thread, so many concurrent writers cost no thread each. Not tied to any
    /// async runtime.
    pub async fn add_async(
        &self,
        links: impl IntoIterator<Item = Hash>,
        value: impl Into<Vec<u8>>,
    ) -> Result<Entry, AddError> {
        let node = self.build(links.into_iter().collect(), value.into())?;
        let mut out = self
            .inner
            .committer
            .submit_async(self, crate::commit::Payload::Nodes(vec![node]))
            .await?;
        Ok(out.remove(0))
    }

    /// [`Log::append`] for async callers (see [`Log::add_async`]).
    pub async fn append_async(&self, value: impl Into<Vec<u8>>) -> Result<Entry, AddError> {
        let heads = self.heads_to_link()?;
        self.add_async(heads, value).await
    }

    /// The heads an append links: all of them, up to the link limit.
    fn heads_to_link(&self) -> Result<Vec<Hash>, StorageError> {
        let mut heads = self.heads()?;
        heads.truncate(
            self.inner
                .opts
                .limits
                .max_links
                .min(Limits::FORMAT.max_links),
        );
        Ok(heads)
    }

    /// [`Log::insert`] for async callers (see [`Log::add_async`]).
    pub async fn insert_async(&self, nodes: Vec<Node>) -> Result<Vec<Entry>, AddError> {
        self.check_received(&nodes)?;
        self.inner
            .committer
            .submit_async(self, crate::commit::Payload::Nodes(nodes))
            .await
    }

    /// Adds a node linking every current head (hyperlog's `append`). Concurrent appends may
    /// read the same heads and so fork; the next append merges them again. With more heads
    /// than a node may link ([`Limits::max_links`]), it links the first `max_links` in key
    /// order and the rest stay heads for the next append to take.
    pub fn append(&self, value: impl Into<Vec<u8>>) -> Result<Entry, AddError> {
        let heads = self.heads_to_link()?;
        self.add(heads, value)
    }

    /// Appends `values` as a chain in one atomic batch: the first links every current head
    /// (as [`Log::append`]), each next one the one before. The same nodes as appending them
    /// one by one, with one commit and signing on all cores.
    pub fn append_all(&self, values: Vec<Vec<u8>>) -> Result<Vec<Entry>, AddError> {
        let heads: Vec<Link> = self.heads_to_link()?.into_iter().map(Link::Node).collect();
        let entries = values
            .into_iter()
            .enumerate()
            .map(|(i, v)| match i {
                0 => BatchEntry::new(heads.clone(), v),
                _ => BatchEntry::new([Link::Earlier(i - 1)], v),
            })
            .collect();
        self.batch(entries)
    }

    /// Adds all `entries` atomically: all are stored, or none. An entry may link to an earlier
    /// entry of the batch ([`Link::Earlier`]). Signing runs on all cores.
    pub fn batch(&self, entries: Vec<BatchEntry>) -> Result<Vec<Entry>, AddError> {
        let mut drafts: Vec<Draft> = Vec::with_capacity(entries.len());
        for (i, e) in entries.into_iter().enumerate() {
            let mut links = Vec::with_capacity(e.links.len());
            for l in e.links {
                links.push(match l {
                    Link::Node(h) => h,
                    Link::Earlier(j) if j < i => drafts[j].key(),
                    Link::Earlier(j) => {
                        return Err(AddError::BadBatchLink {
                            entry: i,
                            target: j,
                        });
                    }
                });
            }
            drafts.push(self.draft(links, e.value)?);
        }
        let nodes = match &self.inner.opts.signer {
            #[cfg(not(target_family = "wasm"))]
            Some(s) if threads() > 1 && drafts.len() >= PARALLEL_MIN => {
                return self.batch_streamed(drafts, s.as_ref());
            }
            Some(s) => drafts
                .into_iter()
                .map(|d| d.sign(s.as_ref()))
                .collect::<Result<_, _>>()?,
            None => drafts
                .into_iter()
                .map(|d| d.finish(None))
                .collect::<Result<_, _>>()?,
        };
        self.inner.committer.submit(self, nodes)
    }

    /// A large signed batch: signing threads sign chunks of the batch while the commit, which
    /// can check the batch from its keys and links alone, already writes the chunks signed so
    /// far. Signing (≈ 18 µs a node) and writing (≈ 10 µs a node) overlap on all cores.
    #[cfg(not(target_family = "wasm"))]
    fn batch_streamed(
        &self,
        drafts: Vec<Draft>,
        signer: &dyn Signer,
    ) -> Result<Vec<Entry>, AddError> {
        const CHUNK: usize = 64;
        let plan = drafts
            .iter()
            .map(|d| (d.key(), d.links().to_vec()))
            .collect();
        let workers = threads();
        let mut work: Vec<Vec<(usize, Vec<Draft>)>> = (0..workers).map(|_| Vec::new()).collect();
        let mut it = drafts.into_iter();
        for i in 0.. {
            let chunk: Vec<Draft> = it.by_ref().take(CHUNK).collect();
            if chunk.is_empty() {
                break;
            }
            work[i % workers].push((i, chunk));
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            for mine in work {
                let tx = tx.clone();
                scope.spawn(move || {
                    for (i, chunk) in mine {
                        // A draft's author is the signer's identity, so signing cannot fail;
                        // if it ever did, the commit would see the chunk missing and fail.
                        let Ok(nodes) = chunk
                            .into_iter()
                            .map(|d| d.sign(signer))
                            .collect::<Result<Vec<_>, _>>()
                        else {
                            return;
                        };
                        if tx.send((i, nodes)).is_err() {
                            return; // the commit gave up on this batch
                        }
                    }
                });
            }
            drop(tx);
            self.inner
                .committer
                .submit_payload(self, Payload::Streamed { plan, chunks: rx })
        })
    }

    /// Stores nodes received from elsewhere (replication, import), atomically: each is checked
    /// against the limits and the verification policy, and must link only to nodes already in
    /// the log or earlier in `nodes`. Nodes already present are returned as stored.
    pub fn insert(&self, nodes: Vec<Node>) -> Result<Vec<Entry>, AddError> {
        self.insert_checked(self.check(nodes)?)
    }

    /// The first half of [`Log::insert`]: checks `nodes` against this log's limits and
    /// verification policy (on all cores) without storing them. Pass the result to
    /// [`Log::insert_checked`] — so a receiver can verify one batch while the previous one
    /// commits.
    pub fn check(&self, nodes: Vec<Node>) -> Result<Checked, AddError> {
        self.check_received(&nodes)?;
        Ok(Checked {
            nodes,
            log: Arc::downgrade(&self.inner),
        })
    }

    /// The second half of [`Log::insert`]: stores nodes this log has [checked](Log::check),
    /// atomically, each linking only to nodes already in the log or earlier in the batch.
    /// Nodes checked by another log are checked again here, by this log's policy.
    pub fn insert_checked(&self, checked: Checked) -> Result<Vec<Entry>, AddError> {
        let nodes = self.own_checked(checked)?;
        self.inner.committer.submit(self, nodes)
    }

    /// Like [`Log::insert_checked`], and says how many nodes were new to the log (exactly:
    /// a node another writer stored first is not new).
    pub fn insert_checked_counted(&self, checked: Checked) -> Result<Inserted, AddError> {
        let nodes = self.own_checked(checked)?;
        let (entries, new) = self.inner.committer.submit_counted(self, nodes)?;
        Ok(Inserted { entries, new })
    }

    /// Like [`Log::insert_checked`], but returns as soon as the nodes are stored and visible
    /// (to reads, the changes feed and views), **before** they are durable: they become
    /// durable with the next durable commit on the log's database, or [`Log::sync`]. A crash
    /// before that loses them (and only them, with every later deferred insert: the store
    /// stays consistent). For bulk imports such as a replication session, which calls
    /// [`Log::sync`] before it reports success: one `fsync` per session instead of one per
    /// batch. The result says how many of the nodes were new to the log.
    pub fn insert_deferred(&self, checked: Checked) -> Result<Inserted, AddError> {
        let nodes = self.own_checked(checked)?;
        let (entries, new) = self.inner.committer.submit_deferred(self, nodes)?;
        Ok(Inserted { entries, new })
    }

    /// Makes every deferred insert durable now (nothing to do if there is none).
    pub fn sync(&self) -> Result<(), StorageError> {
        let committer = &self.inner.committer;
        let deferred = committer.deferred.load(Ordering::Acquire);
        if committer.synced.load(Ordering::Acquire) >= deferred {
            return Ok(());
        }
        // An empty durable commit: every commit before it becomes durable.
        let mut txn = self.inner.db.begin_write()?;
        txn.set_quick_repair(self.inner.opts.quick_repair);
        txn.commit()?;
        committer.synced.fetch_max(deferred, Ordering::AcqRel);
        Ok(())
    }

    /// The nodes of `checked`, checked again if another log checked them.
    fn own_checked(&self, checked: Checked) -> Result<Vec<Node>, AddError> {
        if !std::ptr::eq(checked.log.as_ptr(), Arc::as_ptr(&self.inner)) {
            self.check_received(&checked.nodes)?;
        }
        Ok(checked.nodes)
    }

    /// Limits and verification policy for received nodes (before any commit).
    fn check_received(&self, nodes: &[Node]) -> Result<(), AddError> {
        let limits = &self.inner.opts.limits;
        for n in nodes {
            if n.value().len() > limits.max_value_len {
                return Err(cairn_core::BuildError::ValueTooLarge {
                    len: n.value().len(),
                    max: limits.max_value_len,
                }
                .into());
            }
            if n.links().len() > limits.max_links {
                return Err(cairn_core::BuildError::TooManyLinks {
                    count: n.links().len(),
                    max: limits.max_links,
                }
                .into());
            }
        }
        verify_parallel(nodes, self.inner.opts.verifier.as_ref())
    }

    /// The node with key `key` and its change number, if the log has it.
    pub fn get(&self, key: &Hash) -> Result<Option<Entry>, ReadError> {
        let txn = self.inner.db.begin_read().map_err(StorageError::from)?;
        let keys = txn.open_table(KEYS).map_err(StorageError::from)?;
        let Some(change) = keys.get(&key.0).map_err(StorageError::from)? else {
            return Ok(None);
        };
        let change = change.value();
        let nodes = txn.open_table(NODES).map_err(StorageError::from)?;
        let bytes = nodes
            .get(change)
            .map_err(StorageError::from)?
            .ok_or(ReadError::Corrupt {
                change,
                source: cairn_core::DecodeError::Truncated {
                    offset: 0,
                    needed: 1,
                },
            })?;
        let node = decode_stored(change, bytes.value(), key)?;
        Ok(Some(Entry { change, node }))
    }

    /// The nodes at the given change numbers, whose keys the caller knows (from an index
    /// kept beside the log), read in one transaction; `None` for a change number past the
    /// log's end. The stored bytes are decoded without recomputing the key, as by
    /// [`Log::get`]; a key that does not match the change number's node is not detected here.
    pub fn get_changes(&self, wanted: &[(u64, Hash)]) -> Result<Vec<Option<Node>>, ReadError> {
        let txn = self.inner.db.begin_read().map_err(StorageError::from)?;
        let nodes = txn.open_table(NODES).map_err(StorageError::from)?;
        wanted
            .iter()
            .map(
                |(change, key)| match nodes.get(change).map_err(StorageError::from)? {
                    Some(bytes) => decode_stored(*change, bytes.value(), key).map(Some),
                    None => Ok(None),
                },
            )
            .collect()
    }

    /// Whether the log has the node `key`.
    pub fn has(&self, key: &Hash) -> Result<bool, ReadError> {
        let txn = self.inner.db.begin_read().map_err(StorageError::from)?;
        let keys = txn.open_table(KEYS).map_err(StorageError::from)?;
        Ok(keys.get(&key.0).map_err(StorageError::from)?.is_some())
    }

    /// The change number of node `key`, if the log has it.
    pub fn change_of(&self, key: &Hash) -> Result<Option<u64>, ReadError> {
        let txn = self.inner.db.begin_read().map_err(StorageError::from)?;
        let keys = txn.open_table(KEYS).map_err(StorageError::from)?;
        Ok(keys
            .get(&key.0)
            .map_err(StorageError::from)?
            .map(|v| v.value()))
    }

    /// The keys of the nodes that no node links to, in key order. Read from an index of
    /// heads, not by scanning the log.
    pub fn heads(&self) -> Result<Vec<Hash>, StorageError> {
        let txn = self.inner.db.begin_read()?;
        let heads = txn.open_table(HEADS)?;
        let mut out = Vec::new();
        for row in heads.iter()? {
            let (k, _) = row?;
            out.push(Hash(*k.value()));
        }
        Ok(out)
    }
}

/// Nodes that passed a log's limits and verification policy ([`Log::check`]), for
/// [`Log::insert_checked`] on the same log.
pub struct Checked {
    nodes: Vec<Node>,
    /// The log that checked them (a weak reference keeps its address from being reused).
    log: std::sync::Weak<Inner>,
}

impl Checked {
    /// The checked nodes.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }
}

impl fmt::Debug for Checked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checked")
            .field("nodes", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

/// Read access to the log's key index (node key → change number) from inside another write
/// transaction on the log's database: for views that, while applying, need the change number
/// of a node's links (a view can then keep per-node data in a table keyed by change number,
/// which grows at its end, instead of a second table keyed by random hashes).
pub struct KeyIndex<'t> {
    table: redb::Table<'t, &'static [u8; 32], u64>,
}

impl<'t> KeyIndex<'t> {
    /// Opens the key index in `txn`. Nothing is written to it.
    pub fn open(txn: &'t redb::WriteTransaction) -> Result<KeyIndex<'t>, StorageError> {
        Ok(KeyIndex {
            table: txn.open_table(KEYS)?,
        })
    }

    /// The change number of node `key`, if the log has it.
    pub fn change_of(&self, key: &Hash) -> Result<Option<u64>, StorageError> {
        Ok(self.table.get(&key.0)?.map(|v| v.value()))
    }
}

pub(crate) fn decode_stored(change: u64, bytes: &[u8], key: &Hash) -> Result<Node, ReadError> {
    // Stored nodes were checked on the way in and redb checksums its pages, so the key found
    // in the index is not recomputed (a BLAKE3 pass per read). Decode with the format's
    // ceiling so a log opened with smaller limits still reads what it holds.
    Node::decode_stored(bytes, *key, &Limits::FORMAT)
        .map_err(|source| ReadError::Corrupt { change, source })
}

pub(crate) fn decode_stored_any(change: u64, bytes: &[u8]) -> Result<Node, ReadError> {
    Node::decode(bytes, &Limits::FORMAT).map_err(|source| ReadError::Corrupt { change, source })
}

/// Below this many nodes, threads cost more than they save.
const PARALLEL_MIN: usize = 256;

fn threads() -> usize {
    #[cfg(target_family = "wasm")]
    {
        1
    }
    #[cfg(not(target_family = "wasm"))]
    {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

fn verify_parallel(nodes: &[Node], verifier: &dyn Verify) -> Result<(), AddError> {
    let threads = threads();
    if threads == 1 || nodes.len() < PARALLEL_MIN {
        return Ok(verifier.verify_batch(nodes)?);
    }
    let chunk = nodes.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .chunks(chunk)
            .map(|c| s.spawn(move || verifier.verify_batch(c)))
            .collect();
        // Join all, then report the first failure in node order.
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect();
        results
            .into_iter()
            .try_for_each(|r| r.map_err(AddError::from))
    })
}
