//! Values returned by the store, with their JSON forms (the CLI's output).

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};

use cairn_log::core::Hash;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value, json};

/// One current head of a key: a value, a tombstone, or a broken node.
#[derive(Debug, Clone, PartialEq)]
pub enum Head<T = Value> {
    /// The value put by this head. JSON form: `{"value": v}`.
    Value(T),
    /// This head deleted the key. JSON form: `{"deleted": true}`.
    Deleted,
    /// A kv node whose document is not well-formed (see the crate docs, "Well-formed
    /// documents"): it takes part in the supersede rule like any kv node, but has no value.
    /// JSON form: `{"broken": reason}`.
    Broken {
        /// Why the document is not well-formed (the same text on every replica).
        reason: String,
    },
}

impl<T> Head<T> {
    /// The value, unless this head is a tombstone.
    pub fn value(&self) -> Option<&T> {
        match self {
            Head::Value(v) => Some(v),
            Head::Deleted | Head::Broken { .. } => None,
        }
    }
    /// Whether this head is a tombstone.
    pub fn is_deleted(&self) -> bool {
        matches!(self, Head::Deleted)
    }
    /// Why this head is broken, if it is.
    pub fn broken(&self) -> Option<&str> {
        match self {
            Head::Broken { reason } => Some(reason),
            Head::Value(_) | Head::Deleted => None,
        }
    }
    /// This head with its value mapped by `f` (tombstones and broken heads are kept).
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Head<U> {
        match self {
            Head::Value(v) => Head::Value(f(v)),
            Head::Deleted => Head::Deleted,
            Head::Broken { reason } => Head::Broken { reason },
        }
    }
}

impl<T: Serialize> Serialize for Head<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        match self {
            Head::Value(v) => m.serialize_entry("value", v)?,
            Head::Deleted => m.serialize_entry("deleted", &true)?,
            Head::Broken { reason } => m.serialize_entry("broken", reason)?,
        }
        m.end()
    }
}

/// Every current head of a key, by node hash: what [`Kv::get`](crate::Kv::get) returns.
/// Empty when the key has no heads. Serializes as a JSON object keyed by hex hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Values<T = Value>(pub BTreeMap<Hash, Head<T>>);

impl<T> Default for Values<T> {
    fn default() -> Self {
        Values(BTreeMap::new())
    }
}

impl<T> Deref for Values<T> {
    type Target = BTreeMap<Hash, Head<T>>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<T> DerefMut for Values<T> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<T: Serialize> Serialize for Values<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (h, v) in &self.0 {
            m.serialize_entry(&h.to_hex(), v)?;
        }
        m.end()
    }
}

impl Values<Value> {
    /// The JSON object `{hash: {"value": v} | {"deleted": true} | {"broken": reason}, …}`
    /// (`{}` when empty).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        for (h, v) in &self.0 {
            m.insert(
                h.to_hex(),
                match v {
                    Head::Value(v) => json!({ "value": v }),
                    Head::Deleted => json!({ "deleted": true }),
                    Head::Broken { reason } => json!({ "broken": reason }),
                },
            );
        }
        Value::Object(m)
    }
}

/// One key of [`Kv::list`](crate::Kv::list): its current heads and their values.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The key.
    pub key: String,
    /// The current heads, ascending.
    pub links: Vec<Hash>,
    /// Their values.
    pub values: Values,
}

impl Row {
    /// `{"key": k, "links": [hex…], "values": {…}}`, as hyperkv's read stream.
    pub fn to_json(&self) -> Value {
        json!({
            "key": self.key,
            "links": self.links.iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
            "values": self.values.to_json(),
        })
    }
}

/// One node of [`Kv::history`](crate::Kv::history).
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    /// The key.
    pub key: String,
    /// The node's hash.
    pub link: Hash,
    /// Everything the node links to.
    pub links: Vec<Hash>,
    /// The value put, [`Head::Deleted`] for a delete, or [`Head::Broken`].
    pub value: Head,
    /// The local change number of the node.
    pub change: u64,
}

impl HistoryEntry {
    /// `{"key", "link", "links", "value"}` for a put, `{"key", "link", "links", "deleted": true}`
    /// for a delete, `{"key", "link", "links", "broken": reason}` for a broken node.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("key".into(), Value::String(self.key.clone()));
        m.insert("link".into(), Value::String(self.link.to_hex()));
        m.insert(
            "links".into(),
            Value::Array(
                self.links
                    .iter()
                    .map(|h| Value::String(h.to_hex()))
                    .collect(),
            ),
        );
        match &self.value {
            Head::Value(v) => m.insert("value".into(), v.clone()),
            Head::Deleted => m.insert("deleted".into(), Value::Bool(true)),
            Head::Broken { reason } => m.insert("broken".into(), Value::String(reason.clone())),
        };
        Value::Object(m)
    }
}

/// A kv node the view has applied, as seen by [`Kv::updates`](crate::Kv::updates).
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// The local change number of the node.
    pub change: u64,
    /// The node's hash.
    pub link: Hash,
    /// The key.
    pub key: String,
    /// What the node links to.
    pub links: Vec<Hash>,
    /// The value put, [`Head::Deleted`], or [`Head::Broken`].
    pub value: Head,
}

/// Links and extra document fields of a write.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteOptions {
    /// The nodes this write supersedes. `None`: the key's current heads (merging any fork).
    /// `Some(vec![])`: nothing (a new root, concurrent with the existing heads).
    pub links: Option<Vec<Hash>>,
    /// Extra fields stored in the document next to `k`/`v`/`d` (hyperkv's `fields`).
    pub fields: Option<Map<String, Value>>,
}

impl WriteOptions {
    /// Supersede exactly `links`.
    pub fn links(mut self, links: impl IntoIterator<Item = Hash>) -> Self {
        self.links = Some(links.into_iter().collect());
        self
    }
    /// Add a document field.
    pub fn field(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.fields
            .get_or_insert_with(Map::new)
            .insert(name.into(), value.into());
        self
    }
}

/// One write of a [`Kv::batch`](crate::Kv::batch).
#[derive(Debug, Clone, PartialEq)]
pub enum BatchOp {
    /// Put `value` at `key`.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: Value,
        /// Links and fields.
        opts: WriteOptions,
    },
    /// Delete `key`.
    Del {
        /// The key.
        key: String,
        /// Links and fields.
        opts: WriteOptions,
    },
}

impl BatchOp {
    /// A put with default options.
    pub fn put(key: impl Into<String>, value: impl Into<Value>) -> Self {
        BatchOp::Put {
            key: key.into(),
            value: value.into(),
            opts: WriteOptions::default(),
        }
    }
    /// A delete with default options.
    pub fn del(key: impl Into<String>) -> Self {
        BatchOp::Del {
            key: key.into(),
            opts: WriteOptions::default(),
        }
    }
    /// Sets the options.
    pub fn with(mut self, o: WriteOptions) -> Self {
        match &mut self {
            BatchOp::Put { opts, .. } | BatchOp::Del { opts, .. } => *opts = o,
        }
        self
    }
    pub(crate) fn key(&self) -> &str {
        match self {
            BatchOp::Put { key, .. } | BatchOp::Del { key, .. } => key,
        }
    }
    pub(crate) fn opts(&self) -> &WriteOptions {
        match self {
            BatchOp::Put { opts, .. } | BatchOp::Del { opts, .. } => opts,
        }
    }
}

/// What [`Kv::list`](crate::Kv::list) returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// At most this many rows.
    pub limit: Option<u64>,
    /// After the keys as they are, go on with a row for each key updated from then on (the
    /// key's heads at the time the update is read). Blocks in `next` while waiting.
    pub live: bool,
    /// Skip the current keys (with `live`: only updates).
    pub skip_old: bool,
}
