//! The wiki's API over a log.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use cairn_kv::{BatchOp, Kv, WriteOptions};
use cairn_log::core::{Hash, PublicKey};
use cairn_log::{Entry, Log};
use cairn_view::{Indexer, IndexerOptions};
use redb::{
    ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, TableError,
};
use serde::Serialize;
use serde_json::json;

use crate::doc::{Body, MAX_NAME_CHARS, PERSON_PREFIX, WikiNode, clean, decode};
use crate::error::{BlockError, OpenError, ReadError, WriteError, storage};
use crate::merge::{Merged, diff, merge};
use crate::text::words;
use crate::title::Title;
use crate::view::{
    AUTHORS, CHANGES, ChangeRec, HEADS, HeadRec, LINKS, NAMES, NameRec, TERMS, TITLES, TitleRec,
    WikiView,
};

/// The local block list: authors whose edits this peer hides. A table of the database but not
/// of the log, so it is never replicated.
const BLOCKED: TableDefinition<&[u8; 32], ()> = TableDefinition::new("wiki.local.blocked");

/// Most words of a search query used.
const MAX_QUERY_WORDS: usize = 8;
/// Most index rows read per query word (a one-letter prefix in a huge wiki stops there).
const MAX_ROWS_PER_WORD: usize = 200_000;

/// The peer-to-peer wiki over a [`Log`]: pages are keys `page/<Title>` of the log's kv store
/// (cairn-kv, named `kv`), every save a signed kv write. Cheap to clone.
#[derive(Clone)]
pub struct Wiki {
    inner: Arc<Inner>,
}

struct Inner {
    log: Log,
    kv: Kv,
    index: Indexer<WikiView>,
    write: Mutex<()>,
}

impl std::fmt::Debug for Wiki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wiki")
            .field("index", &self.inner.index)
            .finish_non_exhaustive()
    }
}

/// How a save is made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaveOptions {
    /// The edit summary.
    pub summary: String,
    /// The time of the edit, milliseconds since the Unix epoch, as the editor claims it
    /// (the caller's clock: the crate reads no clock, for wasm's sake).
    pub time: Option<u64>,
    /// The versions this save supersedes. `None`: every current version of the page (so a
    /// save over a fork merges it), up to the log's link limit.
    pub links: Option<Vec<Hash>>,
}

impl SaveOptions {
    /// A save with this summary and time.
    pub fn new(summary: impl Into<String>, time: Option<u64>) -> SaveOptions {
        SaveOptions {
            summary: summary.into(),
            time,
            links: None,
        }
    }
}

/// One version of a page: a node of the log on the page's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The node's hash (the version's name).
    pub hash: Hash,
    /// The page it is a version of.
    pub title: Title,
    /// Who signed it (the log verified the signature when it stored the node).
    pub author: Option<PublicKey>,
    /// When, as the author claims (milliseconds since the Unix epoch).
    pub time: Option<u64>,
    /// The edit summary.
    pub summary: String,
    /// What it holds.
    pub body: Body,
    /// The earlier versions it supersedes (links to versions of this page, or of the page it
    /// was renamed from).
    pub parents: Vec<Hash>,
    /// A rename: the page this one was renamed from.
    pub from: Option<Title>,
    /// The node's local change number.
    pub change: u64,
}

impl Version {
    /// JSON form: `{hash, title, author, time, summary, kind, text?, redirect?, broken?,
    /// parents, from?, change}`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut o = json!({
            "hash": self.hash.to_hex(),
            "title": self.title.as_str(),
            "author": self.author.map(|a| a.to_hex()),
            "time": self.time,
            "summary": self.summary,
            "kind": self.body.kind(),
            "parents": self.parents.iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
            "change": self.change,
        });
        match &self.body {
            Body::Text(t) => o["text"] = t.as_str().into(),
            Body::Redirect(r) => o["redirect"] = r.as_str().into(),
            Body::Broken(why) => o["broken"] = why.as_str().into(),
            Body::Deleted => {}
        }
        if let Some(f) = &self.from {
            o["from"] = f.as_str().into();
        }
        o
    }
}

/// A page as it is now: its current versions (more than one: a fork).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The title.
    pub title: Title,
    /// The current versions shown, ascending by hash (those by blocked authors left out).
    pub versions: Vec<Version>,
    /// Current versions by blocked authors, not shown.
    pub hidden: usize,
}

impl Page {
    /// Whether the page has any current version (shown or hidden).
    pub fn exists(&self) -> bool {
        !self.versions.is_empty() || self.hidden > 0
    }
    /// Whether peers edited it concurrently: more than one current version.
    pub fn is_forked(&self) -> bool {
        self.versions.len() + self.hidden > 1
    }
    /// Whether every shown version is a deletion (a visible tombstone).
    pub fn is_deleted(&self) -> bool {
        !self.versions.is_empty() && self.versions.iter().all(|v| v.body == Body::Deleted)
    }
    /// The text when the page has exactly one shown version and it is text.
    pub fn text(&self) -> Option<&str> {
        match self.versions.as_slice() {
            [v] => v.body.text(),
            _ => None,
        }
    }
}

/// A page of the page list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PageInfo {
    /// The title.
    pub title: Title,
    /// Current versions (more than one: forked).
    pub heads: u32,
    /// Of which text versions,
    pub text: u32,
    /// redirects,
    pub redirect: u32,
    /// deletions,
    pub deleted: u32,
    /// and broken values.
    pub broken: u32,
}

impl PageInfo {
    /// `ok`, `forked`, `deleted`, `redirect` or `broken`: what the page list shows.
    pub fn state(&self) -> &'static str {
        if self.heads > 1 {
            "forked"
        } else if self.deleted == self.heads {
            "deleted"
        } else if self.redirect == self.heads {
            "redirect"
        } else if self.broken == self.heads {
            "broken"
        } else {
            "ok"
        }
    }
}

/// One version in recent changes or an author's edits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The version.
    pub hash: Hash,
    /// The page.
    pub title: Title,
    /// `text`, `redirect` or `deleted`.
    pub kind: String,
    /// Its author.
    pub author: Option<PublicKey>,
    /// The claimed time (0 when none was given).
    pub time: u64,
    /// The edit summary.
    pub summary: String,
    /// A rename: the old title.
    pub from: Option<Title>,
}

impl Change {
    /// JSON form: `{hash, title, kind, author, time, summary, from}`.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "hash": self.hash.to_hex(),
            "title": self.title.as_str(),
            "kind": self.kind,
            "author": self.author.map(|a| a.to_hex()),
            "time": self.time,
            "summary": self.summary,
            "from": self.from.as_ref().map(Title::as_str),
        })
    }
}

/// A search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// The page.
    pub title: Title,
    /// Its score (higher first).
    pub score: f64,
}

impl Serialize for Title {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

fn parse_hash(b: &[u8; 32]) -> Hash {
    Hash(*b)
}

fn key_of_hex(s: &str) -> Option<PublicKey> {
    s.parse().ok()
}

/// Opens a view table for reading; `None` when it does not exist yet (nothing indexed).
fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<Option<ReadOnlyTable<K, V>>, ReadError> {
    match txn.open_table(def) {
        Ok(t) => Ok(Some(t)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(storage(e).into()),
    }
}

impl Wiki {
    /// Opens the wiki over `log` with a background indexer (natively).
    pub fn open(log: &Log) -> Result<Wiki, OpenError> {
        Wiki::open_with(log, IndexerOptions::default())
    }

    /// Opens the wiki over `log`; `opts` apply to the wiki view's indexer and the kv store's.
    pub fn open_with(log: &Log, opts: IndexerOptions) -> Result<Wiki, OpenError> {
        let kv = Kv::open_with(log, crate::view::KV_NAME, opts.clone())?;
        let index = Indexer::open(log, WikiView, opts)?;
        Ok(Wiki {
            inner: Arc::new(Inner {
                log: log.clone(),
                kv,
                index,
                write: Mutex::new(()),
            }),
        })
    }

    /// The log under the wiki.
    pub fn log(&self) -> &Log {
        &self.inner.log
    }

    /// The indexer of the wiki view (ready, pause, rebuild, errors).
    pub fn indexer(&self) -> &Indexer<WikiView> {
        &self.inner.index
    }

    /// The kv store the pages are keys of.
    pub fn kv(&self) -> &Kv {
        &self.inner.kv
    }

    /// Brings the view up to the log (unless paused).
    fn current(&self) -> Result<(), ReadError> {
        let len = self.inner.log.len();
        if self.inner.index.applied() < len {
            // The kv view first (two B-tree writes per node): the wiki view then skips the
            // rows of every version it shows superseded. Only a speed-up: if the kv view
            // cannot catch up, its own reads report why, and the wiki view indexes as before.
            let kv = self.inner.kv.indexer();
            if kv.applied() < len && !kv.is_paused() {
                let _ = kv.catch_up();
            }
            self.inner.index.catch_up()?;
        }
        Ok(())
    }

    fn read(&self) -> Result<ReadTransaction, ReadError> {
        self.current()?;
        self.inner
            .log
            .database()
            .begin_read()
            .map_err(|e| storage(e).into())
    }

    /// The current versions of `title` (every one, blocked authors' too), ascending.
    pub fn heads(&self, title: &Title) -> Result<Vec<Hash>, ReadError> {
        let txn = self.read()?;
        heads_in(&txn, title)
    }

    /// A version by hash, if it is a node of the log that is a page version (of any page).
    pub fn version(&self, hash: &Hash) -> Result<Option<Version>, ReadError> {
        Ok(self.inner.log.get(hash)?.and_then(|e| version_of(&e)))
    }

    /// The page as it is now: its current versions (a fork when there are several).
    pub fn page(&self, title: &Title) -> Result<Page, ReadError> {
        let blocked = self.blocked_set()?;
        let mut page = Page {
            title: title.clone(),
            versions: Vec::new(),
            hidden: 0,
        };
        for h in self.heads(title)? {
            let Some(v) = self.version(&h)? else { continue };
            if v.author.is_some_and(|a| blocked.contains(&a)) {
                page.hidden += 1;
            } else {
                page.versions.push(v);
            }
        }
        Ok(page)
    }

    fn links_for(&self, title: &Title, opts: &SaveOptions) -> Result<Vec<Hash>, ReadError> {
        let mut links = match &opts.links {
            Some(l) => l.clone(),
            None => self.heads(title)?,
        };
        links.truncate(self.inner.log.limits().max_links);
        Ok(links)
    }

    fn write_options(links: Vec<Hash>, opts: &SaveOptions) -> WriteOptions {
        let mut w = WriteOptions::default()
            .links(links)
            .field("summary", opts.summary.as_str());
        if let Some(t) = opts.time {
            w = w.field("time", t);
        }
        w
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner
            .write
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Saves `text` as the new version of `title`, superseding `opts.links` (by default every
    /// current version: saving over a fork merges it). Returns the new version's hash.
    pub fn save(&self, title: &Title, text: &str, opts: &SaveOptions) -> Result<Hash, WriteError> {
        let _g = self.lock();
        let links = self.links_for(title, opts)?;
        Ok(self.inner.kv.put_with(
            &title.key(),
            &json!({ "text": text }),
            &Self::write_options(links, opts),
        )?)
    }

    /// Deletes `title`: a tombstone version superseding the current ones (shown as deleted,
    /// undone by [`Wiki::undelete`] or any save).
    pub fn delete(&self, title: &Title, opts: &SaveOptions) -> Result<Hash, WriteError> {
        let _g = self.lock();
        let links = self.links_for(title, opts)?;
        Ok(self
            .inner
            .kv
            .del_with(&title.key(), &Self::write_options(links, opts))?)
    }

    /// Saves the text of version `to` of `title` again (a new version; history is kept).
    pub fn revert(&self, title: &Title, to: &Hash, opts: &SaveOptions) -> Result<Hash, WriteError> {
        let history = self.history(title)?;
        let v = history
            .iter()
            .find(|v| v.hash == *to)
            .ok_or_else(|| ReadError::NoVersion {
                title: title.clone(),
                version: *to,
            })?;
        let text = v.body.text().ok_or(WriteError::NotText(*to))?.to_owned();
        self.save(title, &text, opts)
    }

    /// Restores the newest text version of a deleted page (a new version).
    pub fn undelete(&self, title: &Title, opts: &SaveOptions) -> Result<Hash, WriteError> {
        let history = self.history(title)?;
        let v = history
            .iter()
            .find(|v| v.title == *title && v.body.text().is_some())
            .ok_or_else(|| WriteError::NothingToRestore(title.clone()))?;
        let text = v.body.text().unwrap_or_default().to_owned();
        self.save(title, &text, opts)
    }

    /// Renames `from` to `to`, atomically: `to` gets `from`'s text in a version that links
    /// `from`'s current version (so `to`'s history goes on into `from`'s), and `from` becomes
    /// a redirect to `to`. Returns (new version of `to`, redirect version of `from`).
    pub fn rename(
        &self,
        from: &Title,
        to: &Title,
        opts: &SaveOptions,
    ) -> Result<(Hash, Hash), WriteError> {
        if from == to {
            return Err(WriteError::SameTitle);
        }
        let _g = self.lock();
        let page = self.page(from)?;
        if page.is_forked() {
            return Err(WriteError::Forked(from.clone()));
        }
        let text = page
            .text()
            .ok_or_else(|| WriteError::NoText(from.clone()))?
            .to_owned();
        let target = self.page(to)?;
        if target.versions.iter().any(|v| v.body.text().is_some()) {
            return Err(WriteError::Exists(to.clone()));
        }
        let from_heads = self.heads(from)?;
        let mut to_links = self.heads(to)?;
        to_links.extend(from_heads.iter().copied());
        let mut to_opts = Self::write_options(to_links, opts);
        to_opts = to_opts.field("from", from.as_str());
        let ops = vec![
            BatchOp::Put {
                key: to.key(),
                value: json!({ "text": text }),
                opts: to_opts,
            },
            BatchOp::Put {
                key: from.key(),
                value: json!({ "redirect": to.as_str() }),
                opts: Self::write_options(from_heads, opts),
            },
        ];
        let out = self.inner.kv.batch(ops)?;
        match out.as_slice() {
            [a, b] => Ok((*a, *b)),
            _ => Err(WriteError::Kv(cairn_kv::WriteError::Storage(
                cairn_log::StorageError(redb::Error::Corrupted("batch size".into())),
            ))),
        }
    }

    /// Every version of `title`, newest first (by local change number): the DAG from its
    /// current versions back through their parents, on into the page it was renamed from.
    pub fn history(&self, title: &Title) -> Result<Vec<Version>, ReadError> {
        let heads = self.heads(title)?;
        let mut seen: HashSet<Hash> = heads.iter().copied().collect();
        // (hash, titles a version may have to belong here)
        let mut queue: Vec<(Hash, Vec<Title>)> = heads
            .into_iter()
            .map(|h| (h, vec![title.clone()]))
            .collect();
        let mut out = Vec::new();
        while let Some((h, allowed)) = queue.pop() {
            let Some(v) = self.version(&h)? else { continue };
            if !allowed.contains(&v.title) {
                continue;
            }
            let mut next = vec![v.title.clone()];
            if let Some(f) = &v.from {
                next.push(f.clone());
            }
            for p in &v.parents {
                if seen.insert(*p) {
                    queue.push((*p, next.clone()));
                }
            }
            out.push(v);
        }
        out.sort_unstable_by_key(|v| std::cmp::Reverse(v.change));
        Ok(out)
    }

    /// A unified diff of `title` from version `a` to version `b` (non-text versions count as
    /// empty text).
    pub fn diff(&self, title: &Title, a: &Hash, b: &Hash) -> Result<String, ReadError> {
        let text = |h: &Hash| -> Result<String, ReadError> {
            let v = self
                .version(h)?
                .filter(|v| v.title == *title || self.in_history(title, h))
                .ok_or_else(|| ReadError::NoVersion {
                    title: title.clone(),
                    version: *h,
                })?;
            Ok(v.body.text().unwrap_or_default().to_owned())
        };
        Ok(diff(&text(a)?, &text(b)?, &a.to_hex(), &b.to_hex()))
    }

    fn in_history(&self, title: &Title, h: &Hash) -> bool {
        self.history(title)
            .map(|hs| hs.iter().any(|v| v.hash == *h))
            .unwrap_or(false)
    }

    /// The three-way merge of the current versions of `title` (see [`merge`](crate::merge())).
    /// Save its text with `links: Some(merged.heads)` (or with default links) to join them.
    pub fn merge(&self, title: &Title) -> Result<Merged, ReadError> {
        let history = self.history(title)?;
        let heads: Vec<Version> = self
            .heads(title)?
            .into_iter()
            .filter_map(|h| history.iter().find(|v| v.hash == h).cloned())
            .collect();
        Ok(merge(&heads, &history))
    }

    /// Every page with its state, in title order.
    pub fn list(&self) -> Result<Vec<PageInfo>, ReadError> {
        let txn = self.read()?;
        let mut out = Vec::new();
        if let Some(t) = table(&txn, TITLES)? {
            for row in t.iter().map_err(storage)? {
                let (k, v) = row.map_err(storage)?;
                let Some(title) = Title::exact(k.value()) else {
                    continue;
                };
                let r: TitleRec = serde_json::from_slice(v.value())?;
                out.push(PageInfo {
                    title,
                    heads: r.heads,
                    text: r.text,
                    redirect: r.redirect,
                    deleted: r.deleted,
                    broken: r.broken,
                });
            }
        }
        Ok(out)
    }

    /// The pages whose current versions link to `title` ("what links here"), in title order.
    pub fn backlinks(&self, title: &Title) -> Result<Vec<Title>, ReadError> {
        let txn = self.read()?;
        let mut out: BTreeSet<Title> = BTreeSet::new();
        if let Some(t) = table(&txn, LINKS)? {
            let t0 = title.as_str();
            for row in t
                .range((t0, "", &[0u8; 32])..=(t0, "\u{10ffff}", &[0xffu8; 32]))
                .map_err(storage)?
            {
                let (k, _) = row.map_err(storage)?;
                if let Some(src) = Title::exact(k.value().1) {
                    out.insert(src);
                }
            }
        }
        self.drop_hidden(&txn, out.into_iter().collect())
    }

    /// Leaves out the pages whose every current version is by a blocked author.
    fn drop_hidden(
        &self,
        txn: &ReadTransaction,
        titles: Vec<Title>,
    ) -> Result<Vec<Title>, ReadError> {
        let blocked = self.blocked_set()?;
        if blocked.is_empty() {
            return Ok(titles);
        }
        let Some(heads) = table(txn, HEADS)? else {
            return Ok(titles);
        };
        let mut out = Vec::new();
        for t in titles {
            let s = t.as_str();
            let mut visible = false;
            for row in heads
                .range((s, &[0u8; 32])..=(s, &[0xffu8; 32]))
                .map_err(storage)?
            {
                let (_, v) = row.map_err(storage)?;
                let r: HeadRec = serde_json::from_slice(v.value())?;
                if !r
                    .author
                    .as_deref()
                    .and_then(key_of_hex)
                    .is_some_and(|a| blocked.contains(&a))
                {
                    visible = true;
                    break;
                }
            }
            if visible {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Recent changes across the wiki, newest claimed time first, at most `limit`; edits by
    /// blocked authors left out.
    pub fn changes(&self, limit: usize) -> Result<Vec<Change>, ReadError> {
        let txn = self.read()?;
        let blocked = self.blocked_set()?;
        let mut out = Vec::new();
        if let Some(t) = table(&txn, CHANGES)? {
            for row in t.iter().map_err(storage)?.rev() {
                if out.len() >= limit {
                    break;
                }
                let (k, v) = row.map_err(storage)?;
                let (time, hash) = k.value();
                let Some(c) = change_of(time, parse_hash(hash), v.value())? else {
                    continue;
                };
                if c.author.is_some_and(|a| blocked.contains(&a)) {
                    continue;
                }
                out.push(c);
            }
        }
        Ok(out)
    }

    /// The edits of `author`, newest claimed time first, at most `limit`.
    pub fn edits_by(&self, author: &PublicKey, limit: usize) -> Result<Vec<Change>, ReadError> {
        let txn = self.read()?;
        let mut out = Vec::new();
        let (Some(a), Some(c)) = (table(&txn, AUTHORS)?, table(&txn, CHANGES)?) else {
            return Ok(out);
        };
        let k = &author.0;
        for row in a
            .range((k, 0u64, &[0u8; 32])..=(k, u64::MAX, &[0xffu8; 32]))
            .map_err(storage)?
            .rev()
        {
            if out.len() >= limit {
                break;
            }
            let (key, _) = row.map_err(storage)?;
            let (_, time, hash) = key.value();
            if let Some(v) = c.get((time, hash)).map_err(storage)?
                && let Some(ch) = change_of(time, parse_hash(hash), v.value())?
            {
                out.push(ch);
            }
        }
        Ok(out)
    }

    /// Full-text search over the current versions: every word of `query` must match a word
    /// of the page (as a prefix: `cai` finds `cairn`; an exact word counts twice as much as
    /// a longer one). Pages are ranked by the sum over the query's words of
    /// `idf · w / (w + 1.2)` (`w`: the word's weight in the page, title words counting 5;
    /// `idf = ln(1 + pages / pages matching)`), best first, then by title. At most `limit`.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<Hit>, ReadError> {
        let mut qwords: Vec<String> = Vec::new();
        for w in words(query) {
            if !qwords.contains(&w) && qwords.len() < MAX_QUERY_WORDS {
                qwords.push(w);
            }
        }
        let txn = self.read()?;
        let (Some(terms), Some(titles)) = (table(&txn, TERMS)?, table(&txn, TITLES)?) else {
            return Ok(Vec::new());
        };
        if qwords.is_empty() {
            return Ok(Vec::new());
        }
        let pages = titles.len().map_err(storage)? as f64;
        // Hash maps: the hits are sorted by score and title at the end, so no order is kept
        // here; a title is copied once per word, not once per matching row.
        let mut acc: HashMap<String, (usize, f64)> = HashMap::new();
        for q in &qwords {
            let mut best: HashMap<String, f64> = HashMap::new();
            for (n, row) in terms
                .range((q.as_str(), "", &[0u8; 32])..)
                .map_err(storage)?
                .enumerate()
            {
                if n >= MAX_ROWS_PER_WORD {
                    break;
                }
                let (k, v) = row.map_err(storage)?;
                let (term, title, _) = k.value();
                if !term.starts_with(q.as_str()) {
                    break;
                }
                let w = f64::from(v.value()) * if term == q { 1.0 } else { 0.5 };
                match best.get_mut(title) {
                    Some(b) => *b = b.max(w),
                    None => {
                        best.insert(title.to_owned(), w);
                    }
                }
            }
            let idf = (1.0 + pages / best.len().max(1) as f64).ln();
            for (title, w) in best {
                let a = acc.entry(title).or_insert((0, 0.0));
                a.0 += 1;
                a.1 += idf * w / (w + 1.2);
            }
        }
        let mut hits: Vec<(Title, f64)> = acc
            .into_iter()
            .filter(|(_, (n, _))| *n == qwords.len())
            .filter_map(|(t, (_, s))| Title::exact(&t).map(|t| (t, s)))
            .collect();
        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let shown = self.drop_hidden(&txn, hits.iter().map(|h| h.0.clone()).collect())?;
        let shown: HashSet<Title> = shown.into_iter().collect();
        Ok(hits
            .into_iter()
            .filter(|h| shown.contains(&h.0))
            .take(limit)
            .map(|(title, score)| Hit { title, score })
            .collect())
    }

    /// Sets this peer's display name (a record only its owner's writes count for).
    pub fn set_name(&self, name: &str, time: Option<u64>) -> Result<Hash, WriteError> {
        let name = clean(name, MAX_NAME_CHARS).trim().to_owned();
        if name.is_empty() {
            return Err(WriteError::EmptyName);
        }
        let Some(me) = self.inner.log.identity() else {
            return Err(WriteError::NoIdentity);
        };
        let _g = self.lock();
        let links = self.name_heads(&me)?;
        let mut opts = WriteOptions::default().links(links);
        if let Some(t) = time {
            opts = opts.field("time", t);
        }
        Ok(self.inner.kv.put_with(
            &format!("{PERSON_PREFIX}{}", me.to_hex()),
            &json!({ "name": name }),
            &opts,
        )?)
    }

    fn name_heads(&self, owner: &PublicKey) -> Result<Vec<Hash>, ReadError> {
        Ok(self.names(owner)?.into_iter().map(|(h, _)| h).collect())
    }

    fn names(&self, owner: &PublicKey) -> Result<Vec<(Hash, NameRec)>, ReadError> {
        let txn = self.read()?;
        let mut out = Vec::new();
        if let Some(t) = table(&txn, NAMES)? {
            let k = &owner.0;
            for row in t
                .range((k, &[0u8; 32])..=(k, &[0xffu8; 32]))
                .map_err(storage)?
            {
                let (key, v) = row.map_err(storage)?;
                out.push((
                    parse_hash(key.value().1),
                    serde_json::from_slice(v.value())?,
                ));
            }
        }
        Ok(out)
    }

    /// The display name `owner` gave themself, if any (of concurrent ones, the latest claimed
    /// time, then the highest hash).
    pub fn name_of(&self, owner: &PublicKey) -> Result<Option<String>, ReadError> {
        Ok(self
            .names(owner)?
            .into_iter()
            .max_by_key(|(h, r)| (r.time, *h))
            .map(|(_, r)| r.name))
    }

    /// Hides `author`'s edits in this peer's views (page, changes, search, backlinks). Local:
    /// never replicated.
    pub fn block(&self, author: &PublicKey) -> Result<(), BlockError> {
        let txn = self.inner.log.database().begin_write().map_err(storage)?;
        {
            let mut t = txn.open_table(BLOCKED).map_err(storage)?;
            t.insert(&author.0, ()).map_err(storage)?;
        }
        txn.commit().map_err(storage)?;
        Ok(())
    }

    /// Shows `author`'s edits again.
    pub fn unblock(&self, author: &PublicKey) -> Result<(), BlockError> {
        let txn = self.inner.log.database().begin_write().map_err(storage)?;
        {
            let mut t = txn.open_table(BLOCKED).map_err(storage)?;
            t.remove(&author.0).map_err(storage)?;
        }
        txn.commit().map_err(storage)?;
        Ok(())
    }

    /// The blocked authors.
    pub fn blocked(&self) -> Result<Vec<PublicKey>, BlockError> {
        Ok(self.blocked_set()?.into_iter().collect())
    }

    fn blocked_set(&self) -> Result<BTreeSet<PublicKey>, cairn_log::StorageError> {
        let txn = self.inner.log.database().begin_read().map_err(storage)?;
        let mut out = BTreeSet::new();
        match txn.open_table(BLOCKED) {
            Ok(t) => {
                for row in t.iter().map_err(storage)? {
                    let (k, _) = row.map_err(storage)?;
                    out.insert(PublicKey(*k.value()));
                }
            }
            Err(TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(storage(e)),
        }
        Ok(out)
    }
}

fn heads_in(txn: &ReadTransaction, title: &Title) -> Result<Vec<Hash>, ReadError> {
    let mut out = Vec::new();
    if let Some(t) = table(txn, HEADS)? {
        let s = title.as_str();
        for row in t
            .range((s, &[0u8; 32])..=(s, &[0xffu8; 32]))
            .map_err(storage)?
        {
            let (k, _) = row.map_err(storage)?;
            out.push(parse_hash(k.value().1));
        }
    }
    Ok(out)
}

fn change_of(time: u64, hash: Hash, rec: &[u8]) -> Result<Option<Change>, ReadError> {
    let r: ChangeRec = serde_json::from_slice(rec)?;
    let Some(title) = Title::exact(&r.title) else {
        return Ok(None);
    };
    Ok(Some(Change {
        hash,
        title,
        kind: r.kind,
        author: r.author.as_deref().and_then(key_of_hex),
        time,
        summary: r.summary,
        from: r.from.as_deref().and_then(Title::exact),
    }))
}

/// A log entry as a page version; `None` when it is not one.
pub(crate) fn version_of(e: &Entry) -> Option<Version> {
    let WikiNode::Page(p) = decode(&e.node)? else {
        return None;
    };
    Some(Version {
        hash: e.node.key(),
        title: p.title,
        author: e.node.author().copied(),
        time: p.time,
        summary: p.summary,
        body: p.body,
        parents: e.node.links().to_vec(),
        from: p.from,
        change: e.change,
    })
}
