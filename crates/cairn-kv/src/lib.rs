//! # cairn-kv
//!
//! A peer-to-peer key/value store with a **multi-value register** conflict strategy —
//! hyperkv, in Rust — kept as a [view](cairn_view) over a cairn [`Log`](cairn_log::Log).
//!
//! Every write is a log node whose value is a JSON document in hyperkv's shape:
//!
//! ```text
//! put:    {...fields, "k": key, "v": value}
//! delete: {...fields, "d": key}
//! ```
//!
//! and whose links name the versions of the key it supersedes. [`Kv::get`] returns every
//! current head of the key — a map from node hash to `{"value": v}` or `{"deleted": true}` —
//! so concurrent writes made on different peers are all kept and shown.
//!
//! ## The supersede rule
//!
//! A *kv node* is a log node whose value [`check_doc`] classifies as one: a JSON object with a
//! string `"k"` (a put; `"k"` wins if `"d"` is also there; a missing `"v"` puts `null`) or a
//! string `"d"` (a delete), with no repeated `"k"`, `"v"` or `"d"` member. Only the shape
//! decides: the values inside are checked for JSON syntax only, at any depth. Other nodes are
//! ignored by the store. For a kv node `n`, `key(n)` is that string (escapes decoded) and
//! `links(n)` the node's links.
//!
//! > **A kv node `n` is a current head of `key(n)` if and only if the log holds no kv node
//! > `m` with `key(m) = key(n)` and `n ∈ links(m)`.**
//!
//! So: only *direct* links supersede; a link supersedes only a node **of the same key** (a
//! link to another key's node, or to a non-kv node, supersedes nothing); a delete is a node
//! like any other — it becomes a head itself (a tombstone, shown as `{"deleted": true}`) and
//! removes exactly what it links, so a write concurrent with a delete survives it and the key
//! shows both (the deleted key "reappears", by design, as in hyperkv); a later write without
//! explicit links links every head, tombstones included, and so merges them all.
//!
//! The rule depends only on the *set* of nodes a log holds, not on their order, so any two
//! replicas holding the same nodes show the same heads. The view computes it incrementally in
//! change order (a topological order): applying `n` removes `(key(n), l)` for each
//! `l ∈ links(n)` from the heads table and adds `(key(n), n)`; since every `m` that links `n`
//! is applied after `n`, the result is the rule above. `tests/model.rs` checks it against a
//! direct evaluation of the rule on random DAGs replicated in random orders.
//!
//! ## Well-formed documents
//!
//! A peer can sign and replicate any bytes, so a kv node's document may be valid JSON that
//! does not decode as a value: a number that does not fit an `f64` (`1e400`), a lone
//! surrogate escape (`"\ud800"`), bytes that are not UTF-8, nesting deeper than any decoder
//! allows. The store checks each kv node's document once, where it is applied, and treats it
//! alike on every read path. A kv node's document is **well-formed** when, as a whole:
//!
//! - it is at most [`MAX_DOC_BYTES`] (4 MiB, the log's default value limit) long;
//! - it decodes as a `serde_json::Value` (built without `arbitrary_precision`): UTF-8, strings
//!   without lone surrogate escapes, every number within `f64` range (integers beyond `u64`
//!   become floats; a repeated member name other than `k`/`v`/`d` keeps its last value);
//! - `"v"` and every other member's value nest at most [`MAX_VALUE_DEPTH`] (64) levels of
//!   arrays and objects, counted on the text (a repeated member's dropped value counts too) —
//!   half of serde_json's limit, so the JSON the CLI prints around a
//!   value still decodes.
//!
//! A kv node that is not well-formed is **broken**. It is a kv node all the same, for the
//! supersede rule too (so the rule stays a function of the node set, and replicas agree): it
//! supersedes what it links and a later write supersedes it. Every read shows it, with its
//! hash, as [`Head::Broken`] with the reason (JSON `{"broken": reason}`): [`Kv::get`] and
//! [`Kv::get_as`], [`Kv::list`], [`Kv::history`], [`Kv::updates`], [`Kv::get_fields`] (whose
//! document for it is `{"broken": reason}`) — never an error for the key or the listing. A
//! `put` or `del` without links repairs the key. The writers run the same check on what they
//! encode: [`Kv::put`] and [`Kv::batch`] refuse ([`WriteError::Malformed`]) a document too
//! deep or too large, so what they write always reads back. The view stores a broken head's
//! reason, not its document.
//!
//! Writes: [`Kv::put`] / [`Kv::del`] without links link the key's current heads (read after
//! bringing the view up to date; writes to one key through one [`Kv`] and its clones are
//! serialized so they never fork — unless the indexer is paused, when the heads read may be
//! stale);
//! [`WriteOptions::links`] gives explicit links; [`WriteOptions::fields`] adds document fields.
//! [`Kv::batch`] writes many atomically.
//!
//! Reads bring the view up to date with the log first (unless the indexer is paused), so a
//! read sees every write that returned before it. `get` is one short range read of the
//! `(key, head)` table: a point lookup whatever the number of keys.
//!
//! ## Example
//!
//! ```
//! use cairn_kv::{Head, Kv, WriteOptions};
//! use cairn_log::{Log, LogOptions};
//! use serde_json::json;
//!
//! let log = Log::memory(LogOptions::default())?;
//! let kv = Kv::open(&log)?;
//! let first = kv.put("greeting", "hello")?;
//! // A concurrent version (as if from another peer): it links nothing, so both are heads.
//! let fork = kv.put_with("greeting", "hi", &WriteOptions::default().links([]))?;
//! assert_eq!(kv.get("greeting")?.len(), 2);
//! // A write without links supersedes every current head: the fork is merged.
//! let merged = kv.put("greeting", &json!({"text": "hello, hi"}))?;
//! let values = kv.get("greeting")?;
//! assert_eq!(values.get(&merged), Some(&Head::Value(json!({"text": "hello, hi"}))));
//! assert_eq!(values.to_json(), json!({ merged.to_hex(): {"value": {"text": "hello, hi"}} }));
//! assert_eq!(kv.history("greeting")?.len(), 3);
//! # let _ = (first, fork);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod doc;
mod error;
mod kv;
mod types;
mod view;

pub use doc::{Checked, Doc, DocOp, MAX_DOC_BYTES, MAX_VALUE_DEPTH, check_doc, parse_doc};
pub use error::{
    GetError, HistoryError, IndexStopped, ListError, OpenError, UpdatesError, WriteError,
};
pub use kv::{Kv, List, Updates};
pub use types::{BatchOp, Head, HistoryEntry, ListOptions, Row, Update, Values, WriteOptions};
pub use view::{KvHeadsAt, KvView, KvViewError};

pub use cairn_log;
pub use cairn_view;
