//! The kv view: applies the supersede rule to the heads table, and records each key's nodes.

use cairn_log::Entry;
use cairn_view::View;
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::doc::check_doc;
use crate::types::Head;

/// Head record tag: a put, followed by the value's JSON.
pub(crate) const TAG_PUT: u8 = 0;
/// Head record tag: a delete (nothing follows).
pub(crate) const TAG_DEL: u8 = 1;
/// Head record tag: a broken kv node, followed by the reason (UTF-8).
pub(crate) const TAG_BROKEN: u8 = 2;

/// Names of a kv store's tables (`view.<name>.heads`; `view.<name>.history` was version 1's).
#[derive(Debug, Clone)]
pub(crate) struct Tables {
    heads: String,
    history: String,
}

/// `(key, head node hash)` → tag byte, then the value's JSON for a put.
pub(crate) type HeadsDef<'a> =
    TableDefinition<'a, (&'static str, &'static [u8; 32]), &'static [u8]>;
/// Version 1's `(key, change number)` → node hash; deleted when clearing.
pub(crate) type HistoryDef<'a> = TableDefinition<'a, (&'static str, u64), &'static [u8; 32]>;

impl Tables {
    pub(crate) fn new(name: &str) -> Tables {
        Tables {
            heads: format!("view.{name}.heads"),
            history: format!("view.{name}.history"),
        }
    }
    pub(crate) fn heads(&self) -> HeadsDef<'_> {
        TableDefinition::new(&self.heads)
    }
    pub(crate) fn history(&self) -> HistoryDef<'_> {
        TableDefinition::new(&self.history)
    }
}

/// The view behind [`Kv`](crate::Kv). Version 3 of its table:
///
/// - `view.<name>.heads`: `(key: &str, node: [u8; 32])` → record (`0` + value JSON for a put,
///   `1` for a delete, `2` + reason for a broken kv node): exactly the current heads of each
///   key, so `get` is one short range read and `list` one scan.
///
/// Applying a node `n` with document key `k` and links `L`: remove `(k, l)` from the heads for
/// every `l` in `L` (a no-op for links that are not heads of `k`) and insert `(k, n)`. Nodes
/// are classified by [`check_doc`](crate::check_doc), as every read path does: broken kv nodes
/// are applied like the others (recorded with their reason), nodes that are not kv documents
/// are skipped. One B-tree insert per node keeps rebuilds fast;
/// history is read from the log by walking links back from the heads (as hyperkv does), which
/// reaches every kv node of the key: each one that is not a head is linked by a later kv node
/// of the same key. (Version 1 also kept a `(key, change)` history table; version 2 had no
/// broken records: it stored a malformed value as a put, and skipped a node whose `"v"` was
/// not UTF-8.)
#[derive(Debug)]
pub struct KvView {
    name: String,
    tables: Tables,
    record: Vec<u8>,
}

impl KvView {
    /// The view of a kv store named `name` (its tables are `view.<name>.*`).
    pub fn new(name: &str) -> KvView {
        KvView {
            name: name.to_owned(),
            tables: Tables::new(name),
            record: Vec::new(),
        }
    }
}

/// The kv view of a store, as committed in the database of a write transaction: how far it
/// has applied the log, and its current heads. Another view applying a batch in the same
/// database can use it to skip work for nodes that the kv view has already seen superseded
/// (the wiki's view does: [`KvHeadsAt::superseded`]).
pub struct KvHeadsAt<'t> {
    applied: u64,
    heads: redb::Table<'t, (&'static str, &'static [u8; 32]), &'static [u8]>,
}

impl std::fmt::Debug for KvHeadsAt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvHeadsAt")
            .field("applied", &self.applied)
            .finish_non_exhaustive()
    }
}

impl<'t> KvHeadsAt<'t> {
    /// The kv store `name`'s view in `txn`, if it has applied anything at its current
    /// version (`None` otherwise: nothing can be concluded from it).
    pub fn open(txn: &'t WriteTransaction, name: &str) -> Result<Option<Self>, redb::Error> {
        let applied = {
            let progress = txn.open_table(cairn_view::PROGRESS)?;
            match progress.get(name)? {
                Some(v) if v.value().0 == KV_VIEW_VERSION => v.value().1,
                _ => return Ok(None),
            }
        };
        let tables = Tables::new(name);
        let heads = txn.open_table(tables.heads())?;
        Ok(Some(KvHeadsAt { applied, heads }))
    }

    /// Whether the node `e` is a kv node of `key` that a later kv node of the same key, among
    /// those the kv view has applied, links (so it is not a current head there and never will
    /// be again). `false` when it cannot tell (the view has not reached `e`).
    pub fn superseded(&self, e: &Entry, key: &str) -> Result<bool, redb::Error> {
        if e.change > self.applied || self.heads.get((key, &e.node.key().0))?.is_some() {
            return Ok(false);
        }
        // Applied and not a head: if it is a kv node of `key` (checked only now: a current
        // version, the usual case outside a catch-up, costs one lookup), it was inserted as
        // a head, and only a later node of the key linking it removed it.
        Ok(check_doc(e.node.value()).is_some_and(|d| d.key == key))
    }
}

/// The kv view's version (its table layout and rules).
const KV_VIEW_VERSION: u64 = 3;

/// The kv view failed to write its tables.
#[derive(Debug, thiserror::Error)]
#[error("kv view storage: {0}")]
pub struct KvViewError(#[from] pub redb::Error);

fn se(e: impl Into<redb::Error>) -> KvViewError {
    KvViewError(e.into())
}

impl View for KvView {
    type Error = KvViewError;

    fn name(&self) -> &str {
        &self.name
    }

    fn version(&self) -> u64 {
        KV_VIEW_VERSION
    }

    fn apply(&mut self, txn: &WriteTransaction, entries: &[Entry]) -> Result<(), KvViewError> {
        let mut heads = txn.open_table(self.tables.heads()).map_err(se)?;
        for e in entries {
            let Some(doc) = check_doc(e.node.value()) else {
                continue;
            };
            let key: &str = &doc.key;
            for link in e.node.links() {
                heads.remove((key, &link.0)).map_err(se)?;
            }
            self.record.clear();
            match doc.head {
                Head::Value(v) => {
                    self.record.push(TAG_PUT);
                    self.record.extend_from_slice(v.get().as_bytes());
                }
                Head::Deleted => self.record.push(TAG_DEL),
                Head::Broken { reason } => {
                    self.record.push(TAG_BROKEN);
                    self.record.extend_from_slice(reason.as_bytes());
                }
            }
            let hash = e.node.key();
            heads
                .insert((key, &hash.0), self.record.as_slice())
                .map_err(se)?;
        }
        Ok(())
    }

    fn clear(&mut self, txn: &WriteTransaction) -> Result<(), KvViewError> {
        txn.delete_table(self.tables.heads()).map_err(se)?;
        txn.delete_table(self.tables.history()).map_err(se)?;
        Ok(())
    }
}
