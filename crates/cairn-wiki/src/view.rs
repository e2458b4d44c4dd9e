//! The wiki's view: current heads of every page and, derived from them, the page list,
//! backlinks and the search index; recent changes, each author's edits and display names.
//!
//! Every table is a function of the *set* of wiki nodes in the log (not of their order), so
//! two peers holding the same nodes hold the same tables, and a rebuild gives them again:
//!
//! - heads follow cairn-kv's supersede rule on the page keys (a page version is a current
//!   head iff no version of the same page links to it; change order is topological);
//! - backlinks and search rows are kept per current head and removed with it;
//! - changes and author rows are one per version, keyed by (claimed time, hash);
//! - names keep the current heads among the owner's own name records.
//!
//! It is one [`View`] with several tables rather than one view per list: the lists derived
//! from current heads need the heads table in the same transaction, and one pass over the
//! log feeds them all.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use cairn_kv::KvHeadsAt;
use cairn_log::Entry;
use cairn_log::core::Hash;
use cairn_view::View;
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::doc::{Body, WikiNode, decode};
use crate::text::{MAX_INDEXED_BYTES, MAX_LINKS, head_of, terms};
use crate::title::wiki_links;

/// The view's name (tables `view.wiki.*`).
pub const VIEW_NAME: &str = "wiki";
/// The name of the kv store whose keys the pages are (tables `view.kv.*`, same database).
pub(crate) const KV_NAME: &str = "kv";

/// `(title, head)` → [`HeadRec`] as JSON.
pub(crate) const HEADS: TableDefinition<(&str, &[u8; 32]), &[u8]> =
    TableDefinition::new("view.wiki.heads");
/// `title` → [`TitleRec`] as JSON: the page list.
pub(crate) const TITLES: TableDefinition<&str, &[u8]> = TableDefinition::new("view.wiki.titles");
/// `(target, source, head of source)` → `()`: backlinks.
pub(crate) const LINKS: TableDefinition<(&str, &str, &[u8; 32]), ()> =
    TableDefinition::new("view.wiki.links");
/// `(word, title, head)` → weight: the inverted index.
pub(crate) const TERMS: TableDefinition<(&str, &str, &[u8; 32]), u32> =
    TableDefinition::new("view.wiki.terms");
/// `(claimed time, version)` → [`ChangeRec`] as JSON: recent changes.
pub(crate) const CHANGES: TableDefinition<(u64, &[u8; 32]), &[u8]> =
    TableDefinition::new("view.wiki.changes");
/// `(author, claimed time, version)` → `()`: an author's edits.
pub(crate) const AUTHORS: TableDefinition<(&[u8; 32], u64, &[u8; 32]), ()> =
    TableDefinition::new("view.wiki.authors");
/// `(owner, record)` → [`NameRec`] as JSON: the current heads of each owner's name records.
pub(crate) const NAMES: TableDefinition<(&[u8; 32], &[u8; 32]), &[u8]> =
    TableDefinition::new("view.wiki.names");

/// What the view keeps about a current head.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct HeadRec {
    /// `text`, `redirect`, `deleted` or `broken`.
    pub(crate) kind: String,
    /// Author key, hex.
    pub(crate) author: Option<String>,
    /// Link targets (for removing its backlink rows).
    pub(crate) targets: Vec<String>,
    /// Indexed words and weights (for removing its search rows).
    pub(crate) terms: Vec<(String, u32)>,
}

/// The kind of a [`HeadRec`] alone (its other fields skipped, not decoded).
#[derive(Deserialize)]
struct HeadKind {
    kind: String,
}

/// A page of the page list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct TitleRec {
    /// Number of current heads.
    pub(crate) heads: u32,
    /// Number of heads of each kind.
    pub(crate) text: u32,
    pub(crate) redirect: u32,
    pub(crate) deleted: u32,
    pub(crate) broken: u32,
}

/// One version in recent changes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct ChangeRec {
    pub(crate) title: String,
    pub(crate) kind: String,
    pub(crate) author: Option<String>,
    pub(crate) summary: String,
    pub(crate) from: Option<String>,
}

/// A display name record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct NameRec {
    pub(crate) name: String,
    pub(crate) time: Option<u64>,
}

/// Backlink and search rows gathered while applying a batch, written in key order: random
/// keys into B-trees larger than the page cache cost a page miss each, sorted ones touch
/// each leaf once (the index of 10k pages is ~600k rows; a rebuild writes millions).
#[derive(Default)]
struct Rows {
    link_del: Vec<RowKey>,
    link_add: Vec<RowKey>,
    term_del: Vec<RowKey>,
    term_add: Vec<(RowKey, u32)>,
}

/// A backlink row's key (target, source, version) or a search row's (word, title, version).
type RowKey = (String, String, [u8; 32]);

/// Rows gathered before they are written (bounds the memory of a batch: ~100 bytes each).
const MAX_PENDING_ROWS: usize = 1 << 18;

impl Rows {
    fn len(&self) -> usize {
        self.link_del.len() + self.link_add.len() + self.term_del.len() + self.term_add.len()
    }

    /// Writes the rows in key order and empties the buffers. Removed and added rows never
    /// share a key (a row's key holds its version, and a version's rows are either added or
    /// removed in a batch), so the order between the two does not matter.
    fn write(
        &mut self,
        links: &mut redb::Table<'_, (&'static str, &'static str, &'static [u8; 32]), ()>,
        index: &mut redb::Table<'_, (&'static str, &'static str, &'static [u8; 32]), u32>,
    ) -> Result<(), WikiViewError> {
        self.link_del.sort_unstable();
        for (t, s, h) in self.link_del.drain(..) {
            links.remove((t.as_str(), s.as_str(), &h)).map_err(se)?;
        }
        self.link_add.sort_unstable();
        for (t, s, h) in self.link_add.drain(..) {
            links.insert((t.as_str(), s.as_str(), &h), ()).map_err(se)?;
        }
        self.term_del.sort_unstable();
        for (w, s, h) in self.term_del.drain(..) {
            index.remove((w.as_str(), s.as_str(), &h)).map_err(se)?;
        }
        self.term_add.sort_unstable();
        for ((w, s, h), n) in self.term_add.drain(..) {
            index.insert((w.as_str(), s.as_str(), &h), n).map_err(se)?;
        }
        Ok(())
    }
}

/// The view behind [`Wiki`](crate::Wiki); see the module docs. Version 1.
#[derive(Debug, Default)]
pub struct WikiView;

/// The wiki view failed to write its tables.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WikiViewError {
    /// The storage engine failed.
    #[error("wiki view storage: {0}")]
    Storage(#[from] redb::Error),
    /// A record the view wrote itself does not decode (the tables are damaged).
    #[error("wiki view record: {0}")]
    Record(#[from] serde_json::Error),
}

fn se(e: impl Into<redb::Error>) -> WikiViewError {
    WikiViewError::Storage(e.into())
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>, WikiViewError> {
    Ok(serde_json::to_vec(v)?)
}

impl View for WikiView {
    type Error = WikiViewError;

    fn name(&self) -> &str {
        VIEW_NAME
    }

    fn version(&self) -> u64 {
        1
    }

    fn apply(&mut self, txn: &WriteTransaction, entries: &[Entry]) -> Result<(), WikiViewError> {
        let mut heads = txn.open_table(HEADS).map_err(se)?;
        let mut titles = txn.open_table(TITLES).map_err(se)?;
        let mut links = txn.open_table(LINKS).map_err(se)?;
        let mut index = txn.open_table(TERMS).map_err(se)?;
        let mut changes = txn.open_table(CHANGES).map_err(se)?;
        let mut authors = txn.open_table(AUTHORS).map_err(se)?;
        let mut names = txn.open_table(NAMES).map_err(se)?;
        // The batch's page versions first: a version that a later version of the same page
        // in this batch supersedes never becomes a head at the end of the batch, so its
        // head, backlink and search rows are neither written nor removed (how many depends
        // on how often a page is edited within one batch of 4 MiB of nodes). The tables end
        // as if every node were applied one by one: they are a function of the set of nodes.
        let decoded: Vec<(usize, Hash, WikiNode)> = entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| decode(&e.node).map(|w| (i, e.node.key(), w)))
            .collect();
        let title_of: HashMap<Hash, String> = decoded
            .iter()
            .filter_map(|(_, h, w)| match w {
                WikiNode::Page(p) => Some((*h, p.title.as_str().to_owned())),
                WikiNode::Name { .. } => None,
            })
            .collect();
        let mut superseded: HashSet<Hash> = HashSet::new();
        for (i, _, w) in &decoded {
            if let WikiNode::Page(p) = w {
                for l in entries[*i].node.links() {
                    if title_of.get(l).map(String::as_str) == Some(p.title.as_str()) {
                        superseded.insert(*l);
                    }
                }
            }
        }
        // Versions that the kv view (the pages' kv store, in this database) has already seen
        // superseded by a later version of the page: like those superseded within the batch,
        // they get no head, backlink or search rows, and the later version that supersedes
        // them finds nothing to remove. A new peer catching up with a long history then
        // indexes each page's current text once instead of every version of it (Wiki
        // catches the kv view up first). The tables still end as a function of the set of
        // nodes; in between, a version superseded in the kv view's part of the log ahead of
        // this view is missing here until this view reaches the superseding version.
        let kv = KvHeadsAt::open(txn, KV_NAME).map_err(se)?;
        // Pages whose heads changed: their page-list entry is recounted once, at the end.
        let mut touched: BTreeSet<String> = BTreeSet::new();
        let mut rows = Rows::default();
        for (i, hash, w) in decoded {
            if rows.len() >= MAX_PENDING_ROWS {
                rows.write(&mut links, &mut index)?;
            }
            let e = &entries[i];
            match w {
                WikiNode::Name { owner, name, time } => {
                    for l in e.node.links() {
                        names.remove((&owner.0, &l.0)).map_err(se)?;
                    }
                    names
                        .insert(
                            (&owner.0, &hash.0),
                            json(&NameRec { name, time })?.as_slice(),
                        )
                        .map_err(se)?;
                }
                WikiNode::Page(p) => {
                    let title = p.title.as_str();
                    // Supersede the linked heads of the same page, with their rows (those
                    // of this batch have none).
                    for l in e.node.links() {
                        if title_of.get(l).map(String::as_str) == Some(title) {
                            continue;
                        }
                        let Some(old) = heads.remove((title, &l.0)).map_err(se)? else {
                            continue;
                        };
                        let old: HeadRec = serde_json::from_slice(old.value())?;
                        for t in &old.targets {
                            rows.link_del.push((t.clone(), title.to_owned(), l.0));
                        }
                        for (w, _) in &old.terms {
                            rows.term_del.push((w.clone(), title.to_owned(), l.0));
                        }
                    }
                    touched.insert(title.to_owned());
                    let author = e.node.author().map(|a| a.to_hex());
                    let gone = superseded.contains(&hash)
                        || match &kv {
                            Some(kv) => kv.superseded(e, &p.title.key()).map_err(se)?,
                            None => false,
                        };
                    if !gone {
                        let (targets, words): (Vec<String>, Vec<(String, u32)>) = match &p.body {
                            Body::Text(t) => (
                                wiki_links(head_of(t, MAX_INDEXED_BYTES), MAX_LINKS)
                                    .into_iter()
                                    .map(|t| t.as_str().to_owned())
                                    .collect(),
                                terms(title, t).into_iter().collect(),
                            ),
                            Body::Redirect(to) => (vec![to.as_str().to_owned()], Vec::new()),
                            Body::Deleted | Body::Broken(_) => (Vec::new(), Vec::new()),
                        };
                        for t in &targets {
                            rows.link_add.push((t.clone(), title.to_owned(), hash.0));
                        }
                        for (w, n) in &words {
                            rows.term_add
                                .push(((w.clone(), title.to_owned(), hash.0), *n));
                        }
                        let rec = HeadRec {
                            kind: p.body.kind().to_owned(),
                            author: author.clone(),
                            targets,
                            terms: words,
                        };
                        heads
                            .insert((title, &hash.0), json(&rec)?.as_slice())
                            .map_err(se)?;
                    }
                    if matches!(p.body, Body::Broken(_)) {
                        continue;
                    }
                    let time = p.time.unwrap_or(0);
                    let change = ChangeRec {
                        title: title.to_owned(),
                        kind: p.body.kind().to_owned(),
                        author,
                        summary: p.summary,
                        from: p.from.map(|f| f.as_str().to_owned()),
                    };
                    changes
                        .insert((time, &hash.0), json(&change)?.as_slice())
                        .map_err(se)?;
                    if let Some(a) = e.node.author() {
                        authors.insert((&a.0, time, &hash.0), ()).map_err(se)?;
                    }
                }
            }
        }
        rows.write(&mut links, &mut index)?;
        // Each touched page's entry in the page list, from its heads now.
        for title in &touched {
            let title = title.as_str();
            let mut t = TitleRec {
                heads: 0,
                text: 0,
                redirect: 0,
                deleted: 0,
                broken: 0,
            };
            for row in heads
                .range((title, &[0u8; 32])..=(title, &[0xffu8; 32]))
                .map_err(se)?
            {
                let (_, v) = row.map_err(se)?;
                let h: HeadKind = serde_json::from_slice(v.value())?;
                t.heads += 1;
                match h.kind.as_str() {
                    "text" => t.text += 1,
                    "redirect" => t.redirect += 1,
                    "deleted" => t.deleted += 1,
                    _ => t.broken += 1,
                }
            }
            titles.insert(title, json(&t)?.as_slice()).map_err(se)?;
        }
        Ok(())
    }

    fn clear(&mut self, txn: &WriteTransaction) -> Result<(), WikiViewError> {
        txn.delete_table(HEADS).map_err(se)?;
        txn.delete_table(TITLES).map_err(se)?;
        txn.delete_table(LINKS).map_err(se)?;
        txn.delete_table(TERMS).map_err(se)?;
        txn.delete_table(CHANGES).map_err(se)?;
        txn.delete_table(AUTHORS).map_err(se)?;
        txn.delete_table(NAMES).map_err(se)?;
        Ok(())
    }
}

/// Reads every row of the view's tables as text lines, for comparing replicas in tests.
#[doc(hidden)]
pub fn dump(db: &redb::Database) -> Result<Vec<String>, redb::Error> {
    use redb::ReadableDatabase;
    let txn = db.begin_read()?;
    let mut out = Vec::new();
    macro_rules! table {
        ($def:expr, $fmt:expr) => {
            match txn.open_table($def) {
                Ok(t) => {
                    for row in t.iter()? {
                        let (k, v) = row?;
                        out.push($fmt(k.value(), v.value()));
                    }
                }
                Err(redb::TableError::TableDoesNotExist(_)) => {}
                Err(e) => return Err(e.into()),
            }
        };
    }
    let hx = |b: &[u8; 32]| Hash(*b).to_hex();
    let txt = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    table!(HEADS, |k: (&str, &[u8; 32]), v: &[u8]| format!(
        "head {} {} {}",
        k.0,
        hx(k.1),
        txt(v)
    ));
    table!(TITLES, |k: &str, v: &[u8]| format!("title {k} {}", txt(v)));
    table!(LINKS, |k: (&str, &str, &[u8; 32]), _v: ()| format!(
        "link {} {} {}",
        k.0,
        k.1,
        hx(k.2)
    ));
    table!(TERMS, |k: (&str, &str, &[u8; 32]), v: u32| format!(
        "term {} {} {} {v}",
        k.0,
        k.1,
        hx(k.2)
    ));
    table!(CHANGES, |k: (u64, &[u8; 32]), v: &[u8]| format!(
        "change {} {} {}",
        k.0,
        hx(k.1),
        txt(v)
    ));
    table!(AUTHORS, |k: (&[u8; 32], u64, &[u8; 32]), _v: ()| format!(
        "author {} {} {}",
        hx(k.0),
        k.1,
        hx(k.2)
    ));
    table!(NAMES, |k: (&[u8; 32], &[u8; 32]), v: &[u8]| format!(
        "name {} {} {}",
        hx(k.0),
        hx(k.1),
        txt(v)
    ));
    Ok(out)
}
