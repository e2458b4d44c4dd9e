//! The store's API.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use cairn_log::core::Hash;
use cairn_log::{BatchEntry, ChangesQuery, Link, Log};
use cairn_view::{Indexer, IndexerOptions};
use redb::{ReadOnlyTable, ReadableDatabase, TableError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::doc::{check_doc, encode_del, encode_put, well_formed};
use crate::error::{
    GetError, HistoryError, IndexStopped, ListError, OpenError, UpdatesError, WriteError, storage,
};
use crate::types::{BatchOp, Head, HistoryEntry, ListOptions, Row, Update, Values, WriteOptions};
use crate::view::{HeadsDef, KvView, TAG_BROKEN, TAG_DEL, TAG_PUT, Tables};

/// Writes without explicit links to keys in the same stripe are serialized, so that local
/// writes to one key never fork (as hyperkv's lock); writes to other keys run concurrently.
const STRIPES: usize = 4096;

/// Keys listed per read transaction.
const LIST_PAGE: usize = 256;

/// A multi-value-register key/value store over a [`Log`] (hyperkv). Cheap to clone.
#[derive(Clone)]
pub struct Kv {
    inner: Arc<Inner>,
}

struct Inner {
    log: Log,
    index: Indexer<KvView>,
    tables: Tables,
    stripes: Vec<Mutex<()>>,
}

impl std::fmt::Debug for Kv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kv")
            .field("index", &self.inner.index)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn head_of(link: Hash, record: &[u8]) -> Result<Head, GetError> {
    head_as(link, record)
}

fn head_as<T: DeserializeOwned>(link: Hash, record: &[u8]) -> Result<Head<T>, GetError> {
    match record.split_first() {
        Some((&TAG_PUT, json)) => serde_json::from_slice(json)
            .map(Head::Value)
            .map_err(|source| GetError::Decode { link, source }),
        Some((&TAG_DEL, _)) => Ok(Head::Deleted),
        Some((&TAG_BROKEN, reason)) => Ok(Head::Broken {
            reason: String::from_utf8_lossy(reason).into_owned(),
        }),
        _ => Err(GetError::Decode {
            link,
            source: serde::de::Error::custom("unknown head record"),
        }),
    }
}

impl Kv {
    /// Opens the kv store named `"kv"` over `log`, with a background indexer (natively).
    pub fn open(log: &Log) -> Result<Kv, OpenError> {
        Kv::open_with(log, "kv", IndexerOptions::default())
    }

    /// Opens the kv store `name` (tables `view.<name>.*`) over `log`.
    pub fn open_with(log: &Log, name: &str, opts: IndexerOptions) -> Result<Kv, OpenError> {
        let index = Indexer::open(log, KvView::new(name), opts)?;
        Ok(Kv {
            inner: Arc::new(Inner {
                log: log.clone(),
                index,
                tables: Tables::new(name),
                stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            }),
        })
    }

    /// The log under the store.
    pub fn log(&self) -> &Log {
        &self.inner.log
    }

    /// The indexer of the store's view (pause, resume, ready, rebuild, errors).
    pub fn indexer(&self) -> &Indexer<KvView> {
        &self.inner.index
    }

    /// Brings the view up to the log's current length (unless paused).
    fn current(&self) -> Result<(), IndexStopped> {
        let ix = &self.inner.index;
        if ix.applied() < self.inner.log.len() {
            ix.catch_up()?;
        }
        Ok(())
    }

    fn stripe(&self, key: &str) -> usize {
        BuildHasherDefault::<DefaultHasher>::default().hash_one(key) as usize % STRIPES
    }

    fn read_heads<R>(&self, f: impl FnOnce(Option<&HeadsTable>) -> R) -> Result<R, GetError> {
        let txn = self.inner.log.database().begin_read().map_err(storage)?;
        let def: HeadsDef<'_> = self.inner.tables.heads();
        match txn.open_table(def) {
            Ok(t) => Ok(f(Some(&t))),
            Err(TableError::TableDoesNotExist(_)) => Ok(f(None)),
            Err(e) => Err(storage(e).into()),
        }
    }

    /// The current heads of `key`, ascending (what a write without links supersedes).
    pub fn heads(&self, key: &str) -> Result<Vec<Hash>, GetError> {
        self.current()?;
        self.heads_now(key)
    }

    fn heads_now(&self, key: &str) -> Result<Vec<Hash>, GetError> {
        self.read_heads(|t| heads_in(t, key))?
    }

    /// Every current head of `key` with its value or tombstone; empty when the key has none.
    /// Brings the view up to date first (unless it is paused).
    pub fn get(&self, key: &str) -> Result<Values, GetError> {
        self.get_as(key)
    }

    /// [`Kv::get`] decoding the values as `T`. A broken head is [`Head::Broken`], as in `get`;
    /// a well-formed value that does not decode as `T` is [`GetError::Decode`].
    pub fn get_as<T: DeserializeOwned>(&self, key: &str) -> Result<Values<T>, GetError> {
        self.current()?;
        self.read_heads(|t| -> Result<Values<T>, GetError> {
            let mut out = BTreeMap::new();
            if let Some(t) = t {
                for row in t
                    .range((key, &[0u8; 32])..=(key, &[0xffu8; 32]))
                    .map_err(storage)?
                {
                    let (k, v) = row.map_err(storage)?;
                    let link = Hash(*k.value().1);
                    out.insert(link, head_as(link, v.value())?);
                }
            }
            Ok(Values(out))
        })?
    }

    /// The whole stored document of each current head of `key` (hyperkv's `fields: true`):
    /// `{"k", "v", …fields}` or `{"d", …fields}`; for a broken head (see [`Head::Broken`]),
    /// `{"broken": reason}` (it has neither `"k"` nor `"d"`, which every document has).
    pub fn get_fields(&self, key: &str) -> Result<BTreeMap<Hash, Value>, GetError> {
        let mut out = BTreeMap::new();
        for link in self.heads(key)? {
            out.insert(link, self.document(link)?);
        }
        Ok(out)
    }

    fn document(&self, link: Hash) -> Result<Value, GetError> {
        let entry = self
            .inner
            .log
            .get(&link)?
            .ok_or(GetError::MissingNode(link))?;
        let bytes = entry.node.value();
        let broken = |reason: &str| serde_json::json!({ "broken": reason });
        match check_doc(bytes).map(|d| d.head) {
            Some(Head::Broken { reason }) => Ok(broken(&reason)),
            // Well-formed: decodes (the fallback is never taken, but a read never fails).
            Some(Head::Value(_) | Head::Deleted) => {
                Ok(serde_json::from_slice(bytes).unwrap_or_else(|e| broken(&e.to_string())))
            }
            None => Err(GetError::Decode {
                link,
                source: serde::de::Error::custom("a head that is not a kv document"),
            }),
        }
    }

    /// Puts `value` at `key`, superseding the key's current heads. Returns the node's hash.
    pub fn put<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<Hash, WriteError> {
        self.put_with(key, value, &WriteOptions::default())
    }

    /// Puts `value` at `key` with explicit links and/or extra fields.
    pub fn put_with<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        opts: &WriteOptions,
    ) -> Result<Hash, WriteError> {
        let doc = encode_put(key, value, opts.fields.as_ref()).map_err(WriteError::Encode)?;
        self.write(key, doc, opts.links.as_deref())
    }

    /// Deletes `key`: writes a tombstone superseding the key's current heads.
    pub fn del(&self, key: &str) -> Result<Hash, WriteError> {
        self.del_with(key, &WriteOptions::default())
    }

    /// Deletes with explicit links (only those are removed) and/or extra fields.
    pub fn del_with(&self, key: &str, opts: &WriteOptions) -> Result<Hash, WriteError> {
        let doc = encode_del(key, opts.fields.as_ref()).map_err(WriteError::Encode)?;
        self.write(key, doc, opts.links.as_deref())
    }

    fn write(&self, key: &str, doc: Vec<u8>, links: Option<&[Hash]>) -> Result<Hash, WriteError> {
        well_formed(&doc).map_err(|reason| WriteError::Malformed { reason })?;
        if let Some(links) = links {
            return Ok(self.inner.log.add(links.iter().copied(), doc)?.node.key());
        }
        let _guard = lock(&self.inner.stripes[self.stripe(key)]);
        self.current()?;
        let heads = self.heads_now(key).map_err(get_to_write)?;
        Ok(self.inner.log.add(heads, doc)?.node.key())
    }

    /// Writes all `ops` atomically (one log batch). A write without links supersedes the
    /// key's current heads *including earlier writes to the same key in this batch*.
    pub fn batch(&self, ops: Vec<BatchOp>) -> Result<Vec<Hash>, WriteError> {
        let mut docs = Vec::with_capacity(ops.len());
        for op in &ops {
            docs.push(
                match op {
                    BatchOp::Put { key, value, opts } => {
                        encode_put(key, value, opts.fields.as_ref())
                    }
                    BatchOp::Del { key, opts } => encode_del(key, opts.fields.as_ref()),
                }
                .map_err(WriteError::Encode)?,
            );
        }
        for doc in &docs {
            well_formed(doc).map_err(|reason| WriteError::Malformed { reason })?;
        }
        let mut stripes: Vec<usize> = ops
            .iter()
            .filter(|op| op.opts().links.is_none())
            .map(|op| self.stripe(op.key()))
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        // Locked in ascending order, so batches never deadlock each other.
        let _guards: Vec<_> = stripes
            .iter()
            .map(|&s| lock(&self.inner.stripes[s]))
            .collect();
        if !stripes.is_empty() {
            self.current()?;
        }
        // The heads of each key written without links, as the batch goes on (rows with
        // explicit links to such a key count too), read in one transaction.
        let need: HashSet<&str> = ops
            .iter()
            .filter(|op| op.opts().links.is_none())
            .map(BatchOp::key)
            .collect();
        let mut heads: HashMap<&str, Vec<Link>> = HashMap::with_capacity(need.len());
        if !need.is_empty() {
            self.read_heads(|t| -> Result<(), GetError> {
                for key in need {
                    let stored = heads_in(t, key)?;
                    heads.insert(key, stored.into_iter().map(Link::Node).collect());
                }
                Ok(())
            })
            .and_then(|r| r)
            .map_err(get_to_write)?;
        }
        let mut entries = Vec::with_capacity(ops.len());
        for (i, (op, doc)) in ops.iter().zip(docs).enumerate() {
            let key = op.key();
            let links: Vec<Link> = match &op.opts().links {
                Some(l) => l.iter().copied().map(Link::Node).collect(),
                None => heads.get(key).cloned().unwrap_or_default(),
            };
            if let Some(h) = heads.get_mut(key) {
                h.retain(|x| !links.contains(x));
                h.push(Link::Earlier(i));
            }
            entries.push(BatchEntry::new(links, doc));
        }
        Ok(self
            .inner
            .log
            .batch(entries)?
            .into_iter()
            .map(|e| e.node.key())
            .collect())
    }

    /// Every key with its current heads, in key order (as hyperkv's read stream); see
    /// [`ListOptions`] for `limit` and `live`.
    pub fn list(&self, opts: ListOptions) -> Result<List, ListError> {
        self.current()?;
        let since = self.inner.index.applied();
        Ok(List {
            kv: self.clone(),
            opts,
            after: None,
            old_done: opts.skip_old,
            buf: VecDeque::new(),
            emitted: 0,
            updates: None,
            since,
            failed: false,
        })
    }

    fn list_page(&self, after: Option<&str>) -> Result<Vec<Row>, ListError> {
        self.read_heads(|t| -> Result<Vec<Row>, ListError> {
            let Some(t) = t else {
                return Ok(Vec::new());
            };
            let start = match after {
                Some(k) => Bound::Excluded((k, &[0xffu8; 32])),
                None => Bound::Unbounded,
            };
            let mut rows: Vec<Row> = Vec::new();
            for row in t
                .range::<(&str, &[u8; 32])>((start, Bound::Unbounded))
                .map_err(storage)?
            {
                let (k, v) = row.map_err(storage)?;
                let (key, link) = k.value();
                let link = Hash(*link);
                let head = head_of(link, v.value())?;
                match rows.last_mut() {
                    Some(r) if r.key == key => {
                        r.links.push(link);
                        r.values.insert(link, head);
                    }
                    _ => {
                        if rows.len() == LIST_PAGE {
                            break;
                        }
                        let mut values = Values::default();
                        values.insert(link, head);
                        rows.push(Row {
                            key: key.to_owned(),
                            links: vec![link],
                            values,
                        });
                    }
                }
            }
            Ok(rows)
        })?
    }

    /// The row of one key as it is now (empty `links` when the key has no heads).
    pub fn row(&self, key: &str) -> Result<Row, GetError> {
        let values = self.get(key)?;
        Ok(Row {
            key: key.to_owned(),
            links: values.keys().copied().collect(),
            values,
        })
    }

    /// Every kv node of `key` (puts and deletes), newest first: a node always comes before the
    /// nodes it links to. Empty for an unknown key.
    pub fn history(&self, key: &str) -> Result<Vec<HistoryEntry>, HistoryError> {
        // Walk back from the heads through links to kv nodes of the same key.
        let mut queue = self.heads(key)?;
        let mut seen: HashSet<Hash> = queue.iter().copied().collect();
        let mut out = Vec::new();
        while let Some(link) = queue.pop() {
            let entry = self
                .inner
                .log
                .get(&link)?
                .ok_or(GetError::MissingNode(link))?;
            let Some(u) = update_of(entry.change, link, &entry.node) else {
                continue;
            };
            if u.key != key {
                continue;
            }
            for l in &u.links {
                if seen.insert(*l) {
                    queue.push(*l);
                }
            }
            out.push(HistoryEntry {
                key: u.key,
                link,
                links: u.links,
                value: u.value,
                change: entry.change,
            });
        }
        out.sort_unstable_by_key(|e| std::cmp::Reverse(e.change));
        Ok(out)
    }

    /// The kv nodes applied by the view after change `since`, as an iterator; `live` keeps it
    /// waiting for new ones (it then needs the background indexer, or another thread writing
    /// or reading the store, to make progress; on wasm, where nothing may block, a live
    /// iterator ends where the log ends — use [`Kv::next_updates`] there).
    pub fn updates(&self, since: u64, live: bool) -> Updates {
        Updates {
            kv: self.clone(),
            pos: since,
            live,
            buf: VecDeque::new(),
            failed: false,
        }
    }

    /// Waits (async, any runtime) until the view has applied something after change `since`,
    /// then returns the kv nodes applied after `since` (possibly none, for non-kv nodes).
    /// Without a background indexer (wasm) it applies pending nodes itself first.
    pub async fn next_updates(&self, since: u64) -> Result<Vec<Update>, UpdatesError> {
        self.current()?;
        let upto = self.inner.index.applied_async(since + 1).await?;
        self.read_updates(since, upto)
    }

    fn read_updates(&self, since: u64, upto: u64) -> Result<Vec<Update>, UpdatesError> {
        let mut out = Vec::new();
        for e in self
            .inner
            .log
            .changes(ChangesQuery::all().since(since).until(upto))
        {
            let e = e?;
            if let Some(u) = update_of(e.change, e.node.key(), &e.node) {
                out.push(u);
            }
        }
        Ok(out)
    }
}

type HeadsTable = ReadOnlyTable<(&'static str, &'static [u8; 32]), &'static [u8]>;

/// The heads of `key` in the heads table (none if it does not exist yet).
fn heads_in(t: Option<&HeadsTable>, key: &str) -> Result<Vec<Hash>, GetError> {
    let mut out = Vec::new();
    if let Some(t) = t {
        for row in t
            .range((key, &[0u8; 32])..=(key, &[0xffu8; 32]))
            .map_err(storage)?
        {
            let (k, _) = row.map_err(storage)?;
            out.push(Hash(*k.value().1));
        }
    }
    Ok(out)
}

fn get_to_write(e: GetError) -> WriteError {
    match e {
        GetError::Index(e) => WriteError::Index(e),
        GetError::Storage(e) => WriteError::Storage(e),
        other => WriteError::Storage(cairn_log::StorageError(redb::Error::Corrupted(
            other.to_string(),
        ))),
    }
}

/// The kv node `node` as history and updates show it (`None`: not a kv node).
fn update_of(change: u64, link: Hash, node: &cairn_log::core::Node) -> Option<Update> {
    let doc = check_doc(node.value())?;
    let value = match doc.head {
        // Well-formed: decodes (the fallback is never taken, but a read never fails).
        Head::Value(v) => serde_json::from_str(v.get()).map_or_else(
            |e| Head::Broken {
                reason: e.to_string(),
            },
            Head::Value,
        ),
        Head::Deleted => Head::Deleted,
        Head::Broken { reason } => Head::Broken { reason },
    };
    Some(Update {
        change,
        link,
        key: doc.key.into_owned(),
        links: node.links().to_vec(),
        value,
    })
}

/// The rows of [`Kv::list`]; blocks in `next` while waiting in live mode. Ends after returning
/// an error.
pub struct List {
    kv: Kv,
    opts: ListOptions,
    after: Option<String>,
    old_done: bool,
    buf: VecDeque<Row>,
    emitted: u64,
    updates: Option<Updates>,
    since: u64,
    /// An error was returned: the iterator has ended (it would return the same one forever).
    failed: bool,
}

impl std::fmt::Debug for List {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("List")
            .field("opts", &self.opts)
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

impl Iterator for List {
    type Item = Result<Row, ListError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.opts.limit.is_some_and(|l| self.emitted >= l) {
            return None;
        }
        let r = self.next_row();
        self.failed = matches!(r, Some(Err(_)));
        r
    }
}

impl List {
    fn next_row(&mut self) -> Option<Result<Row, ListError>> {
        loop {
            if let Some(r) = self.buf.pop_front() {
                self.emitted += 1;
                return Some(Ok(r));
            }
            if !self.old_done {
                match self.kv.list_page(self.after.as_deref()) {
                    Ok(rows) if rows.is_empty() => self.old_done = true,
                    Ok(rows) => {
                        self.after = rows.last().map(|r| r.key.clone());
                        self.buf.extend(rows);
                    }
                    Err(e) => return Some(Err(e)),
                }
                continue;
            }
            if !self.opts.live {
                return None;
            }
            let updates = self
                .updates
                .get_or_insert_with(|| self.kv.updates(self.since, true));
            match updates.next()? {
                Ok(u) => match self.kv.row(&u.key) {
                    Ok(r) => self.buf.push_back(r),
                    Err(e) => return Some(Err(e)),
                },
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// Kv nodes as the view applies them (see [`Kv::updates`]). Ends after returning an error.
pub struct Updates {
    kv: Kv,
    pos: u64,
    live: bool,
    buf: VecDeque<Update>,
    /// An error was returned: the iterator has ended.
    failed: bool,
}

impl std::fmt::Debug for Updates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Updates")
            .field("pos", &self.pos)
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

impl Updates {
    /// The change number read up to.
    pub fn position(&self) -> u64 {
        self.pos
    }
}

impl Iterator for Updates {
    type Item = Result<Update, UpdatesError>;

    /// Ends after returning an error.
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let r = self.next_update();
        self.failed = matches!(r, Some(Err(_)));
        r
    }
}

impl Updates {
    fn next_update(&mut self) -> Option<Result<Update, UpdatesError>> {
        loop {
            if let Some(u) = self.buf.pop_front() {
                return Some(Ok(u));
            }
            if let Err(e) = self.kv.current() {
                return Some(Err(e.into()));
            }
            let ix = &self.kv.inner.index;
            let upto = if ix.applied() > self.pos {
                ix.applied()
            } else if self.live {
                #[cfg(not(target_family = "wasm"))]
                match ix.wait_applied(self.pos + 1) {
                    Ok(a) => a,
                    Err(e) => return Some(Err(e.into())),
                }
                // Nothing may block on wasm: a live iterator ends where the log ends (use
                // `Kv::next_updates` to wait).
                #[cfg(target_family = "wasm")]
                return None;
            } else {
                return None;
            };
            match self.kv.read_updates(self.pos, upto) {
                Ok(u) => self.buf.extend(u),
                Err(e) => return Some(Err(e)),
            }
            self.pos = upto;
        }
    }
}
