//! The kv view: applies the supersede rule to the heads table, and records each key's nodes.

use cairn_log::Entry;
use cairn_view::View;
use redb::{TableDefinition, WriteTransaction};

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
        3
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
