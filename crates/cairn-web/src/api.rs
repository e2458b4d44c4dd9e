//! The worker's message API: one JSON request in, one JSON response out.
//!
//! This half has no browser in it (it runs natively too, over redb's in-memory backend, which
//! is how its unit and property tests run); `worker.rs` hands it the messages the page posts.
//!
//! A request is a JSON object with an `"op"` and that op's fields; an optional `"id"` (any
//! JSON value) is echoed back. `insert` also carries its nodes as bytes (see
//! [`frames`](crate::frames)) beside the JSON. Every request gets exactly one response:
//!
//! ```text
//! {"id": …, "ok": <result>}
//! {"id": …, "error": {"kind": "<RequestError::kind>", "message": "…"}}
//! ```
//!
//! | op | fields | result |
//! |---|---|---|
//! | `append` | `value`: string | `{change, key}` |
//! | `append_many` | `values`: [string] (a chain, one atomic commit) | `{first, last, count}` |
//! | `insert` | nodes as frames in the bytes | `{inserted, len}` |
//! | `get` | `key`: hex | the node or `null` |
//! | `changes` | `since` (0), `limit` (100, at most 1000) | `[node]` after change `since` |
//! | `heads` | | `[hex]` |
//! | `len` | | number of nodes |
//! | `kv_put` | `key`, `value`: any JSON | hex hash of the node |
//! | `kv_del` | `key` | hex hash |
//! | `kv_get` | `key` | `{hash: {"value": v} \| {"deleted": true}}` |
//! | `kv_list` | `limit` (100, at most 1000), `after`: key | `[{key, links, values}]` |
//! | `identity` | | `{public}` |
//! | `identity_export` | `passphrase`: string (optional) | `{public, key_file, sealed}` |
//! | `identity_import` | `key_file`, `passphrase` (for a sealed file) | `{public}` |
//!
//! A key file is the CLI's text ([`cairn_log::core::keyfile`]); with a passphrase its secret
//! is sealed (argon2id, XChaCha20-Poly1305; about half a second in the browser). An import
//! with a wrong passphrase (`wrong_passphrase`), none for a sealed file
//! (`needs_passphrase`) or a malformed file (`bad_input`) changes nothing.
//!
//! The wiki's ops (`wiki_list`, `wiki_page`, `wiki_save`, …) are in
//! [`wiki_api`](crate::wiki_api); the blob ops (`blob_add`, `blob_get`, …) in
//! [`blob_api`](crate::blob_api).
//!
//! A node is `{change, key, author, links, value}` with `value` as a string when it is
//! UTF-8, otherwise `null` and `value_hex`.
//!
//! Writes are durable when they are acknowledged: each is one redb commit whose
//! `sync_data` flushes the OPFS access handle.

use cairn_kv::{GetError, Kv, ListOptions, WriteError};
use cairn_log::core::keyfile::KeyFileError;
use cairn_log::core::{Hash, KeygenError, Keypair};
use cairn_log::{
    AddError, ChangesQuery, Entry, Log, LogOptions, ReadError, StorageBackend, StorageError,
};
use cairn_view::IndexerOptions;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::blob_api::{self, BlobOpError};
use crate::frames::{self, FramesError};
use crate::identity::{self, IdentityError, SignerCell};
use crate::wiki_api;
use cairn_wiki::Wiki;

/// Most entries a `changes` or `kv_list` request returns.
pub const MAX_PAGE: u64 = 1000;
const DEFAULT_PAGE: u64 = 100;

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The log could not be opened.
    #[error(transparent)]
    Log(#[from] cairn_log::OpenError),
    /// The kv store could not be opened.
    #[error(transparent)]
    Kv(#[from] cairn_kv::OpenError),
    /// The identity could not be loaded or made.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// No randomness for a new identity.
    #[error(transparent)]
    Keygen(#[from] KeygenError),
    /// The wiki (its view or block list) could not be opened.
    #[error(transparent)]
    Wiki(#[from] cairn_wiki::OpenError),
    /// The blob store could not be opened.
    #[error(transparent)]
    Blobs(#[from] cairn_blob::OpenError),
}

/// Why a request failed. Nothing of a failed write was stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The message is not JSON.
    #[error("not JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// The message is not a request: not an object, unknown op, missing or mistyped field.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A field has a bad value (a hash that is not 64 hex digits, …).
    #[error("bad input: {0}")]
    BadInput(String),
    /// The nodes of an `insert` do not decode.
    #[error(transparent)]
    Frames(#[from] FramesError),
    /// The log refused the write (missing link, bad signature, too large, storage).
    #[error(transparent)]
    Add(#[from] AddError),
    /// Reading the log failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The storage engine failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A kv write failed.
    #[error(transparent)]
    KvWrite(#[from] WriteError),
    /// A kv read failed.
    #[error(transparent)]
    KvRead(#[from] GetError),
    /// The identity could not be stored or parsed.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// A wiki read failed (a version asked for is not in the page's history: `not_found`).
    #[error(transparent)]
    WikiRead(#[from] cairn_wiki::ReadError),
    /// A wiki write stored nothing (refused: `wiki_refused`; a version asked for is not in
    /// the page's history: `not_found`).
    #[error(transparent)]
    WikiWrite(#[from] cairn_wiki::WriteError),
    /// The local block list could not be read or changed.
    #[error(transparent)]
    WikiBlock(#[from] cairn_wiki::BlockError),
    /// A blob op failed in the store.
    #[error(transparent)]
    Blob(#[from] BlobOpError),
    /// What was asked for is not stored here.
    #[error("not found: {0}")]
    NotFound(String),
}

impl RequestError {
    /// A short stable name for the error's kind, the `"kind"` of the response.
    pub fn kind(&self) -> &'static str {
        match self {
            RequestError::Json(_) => "bad_json",
            RequestError::BadRequest(_) => "bad_request",
            RequestError::BadInput(_) => "bad_input",
            RequestError::Frames(_) => "bad_nodes",
            RequestError::Add(AddError::Storage(_)) => "storage",
            RequestError::Add(_) => "refused",
            RequestError::Read(_) => "read",
            RequestError::Storage(_) => "storage",
            RequestError::KvWrite(_) => "kv_write",
            RequestError::KvRead(_) => "kv_read",
            RequestError::Identity(IdentityError::KeyFile(k)) => match k {
                KeyFileError::WrongPassphrase => "wrong_passphrase",
                KeyFileError::NeedsPassphrase => "needs_passphrase",
                KeyFileError::Random(_) => "identity",
                _ => "bad_input",
            },
            RequestError::Identity(_) => "identity",
            RequestError::WikiRead(cairn_wiki::ReadError::NoVersion { .. })
            | RequestError::WikiWrite(cairn_wiki::WriteError::Read(
                cairn_wiki::ReadError::NoVersion { .. },
            )) => "not_found",
            RequestError::WikiRead(_) => "wiki_read",
            RequestError::WikiWrite(
                cairn_wiki::WriteError::Read(_) | cairn_wiki::WriteError::Kv(_),
            ) => "wiki_write",
            RequestError::WikiWrite(_) => "wiki_refused",
            RequestError::WikiBlock(_) => "storage",
            RequestError::Blob(_) => "storage",
            RequestError::NotFound(_) => "not_found",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Request {
    Append {
        value: String,
    },
    AppendMany {
        values: Vec<String>,
    },
    Insert,
    Get {
        key: String,
    },
    Changes {
        #[serde(default)]
        since: u64,
        limit: Option<u64>,
    },
    Heads,
    Len,
    KvPut {
        key: String,
        value: Value,
    },
    KvDel {
        key: String,
    },
    KvGet {
        key: String,
    },
    KvList {
        limit: Option<u64>,
        after: Option<String>,
    },
    Identity,
    IdentityExport {
        passphrase: Option<String>,
    },
    IdentityImport {
        key_file: String,
        passphrase: Option<String>,
    },
}

/// A cairn peer's store: the log, its kv store, the wiki over it and its identity, all in
/// one redb database.
#[derive(Debug, Clone)]
pub struct Peer {
    log: Log,
    kv: Kv,
    wiki: Wiki,
    blobs: cairn_blob::BlobStore,
    signer: SignerCell,
}

impl Peer {
    /// Opens the store on `backend`: the log (signed with the stored identity, or a new one
    /// stored now), the kv store and the wiki (their views indexed in the caller's thread,
    /// when a request needs them: no background thread).
    pub fn open(backend: impl StorageBackend) -> Result<Peer, OpenError> {
        let signer = SignerCell::new(Keypair::generate()?);
        let log = Log::with_backend(
            backend,
            LogOptions::default()
                .signer(signer.clone())
                .cache_bytes(96 << 20),
        )?;
        identity::load_or_store(log.database(), &signer)?;
        // The wiki opens the kv store (`kv`) it keeps its pages in; the peer's kv ops use that
        // same one, so one indexer keeps the kv view.
        let wiki = Wiki::open_with(&log, IndexerOptions::default().background(false))?;
        let kv = wiki.kv().clone();
        // No directory: large blobs are kept in the database too (OPFS in the browser).
        let blobs = cairn_blob::BlobStore::open(&log, None)?;
        Ok(Peer {
            log,
            kv,
            wiki,
            blobs,
            signer,
        })
    }

    /// The log.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The kv store.
    pub fn kv(&self) -> &Kv {
        &self.kv
    }

    /// The identity's key pair (the one in use now: an import replaces it).
    pub fn keypair(&self) -> Keypair {
        self.signer.keypair()
    }

    /// The blobs (images of the wiki).
    pub fn blobs(&self) -> &cairn_blob::BlobStore {
        &self.blobs
    }

    /// The wiki.
    pub fn wiki(&self) -> &Wiki {
        &self.wiki
    }

    /// The identity's public key, hex.
    pub fn public_hex(&self) -> String {
        self.signer.keypair().public().to_hex()
    }

    /// Handles one request given as JSON text (and, for `insert`, its nodes as bytes);
    /// returns the response as JSON text. Never panics on any input.
    pub fn handle(&self, text: &str, bytes: Option<&[u8]>) -> String {
        let (id, result) = match serde_json::from_str::<Value>(text) {
            Err(e) => (Value::Null, Err(RequestError::Json(e))),
            Ok(Value::Object(mut obj)) => {
                let id = obj.remove("id").unwrap_or(Value::Null);
                (id, self.dispatch(obj, bytes))
            }
            Ok(_) => (
                Value::Null,
                Err(RequestError::BadRequest(
                    "a request is a JSON object".into(),
                )),
            ),
        };
        respond(id, result)
    }

    fn dispatch(
        &self,
        obj: Map<String, Value>,
        bytes: Option<&[u8]>,
    ) -> Result<Value, RequestError> {
        if obj
            .get("op")
            .and_then(Value::as_str)
            .is_some_and(|op| op.starts_with("wiki_"))
        {
            return wiki_api::dispatch(&self.wiki, self.signer.keypair().public(), obj);
        }
        if obj
            .get("op")
            .and_then(Value::as_str)
            .is_some_and(|op| op.starts_with("blob_"))
        {
            return blob_api::dispatch(&self.blobs, obj, bytes);
        }
        let req: Request = serde_json::from_value(Value::Object(obj))
            .map_err(|e| RequestError::BadRequest(e.to_string()))?;
        Ok(match req {
            Request::Append { value } => {
                let e = self.log.append(value.into_bytes())?;
                json!({"change": e.change, "key": e.node.key().to_hex()})
            }
            Request::AppendMany { values } => {
                if values.is_empty() {
                    return Err(RequestError::BadInput("no values".into()));
                }
                let out = self
                    .log
                    .append_all(values.into_iter().map(String::into_bytes).collect())?;
                json!({
                    "first": out.first().map(|e| e.change),
                    "last": out.last().map(|e| e.change),
                    "count": out.len(),
                })
            }
            Request::Insert => {
                let bytes = bytes.ok_or_else(|| {
                    RequestError::BadRequest("insert carries its nodes as bytes".into())
                })?;
                let nodes = frames::decode(bytes, self.log.limits())?;
                let n = nodes.len();
                self.log.insert_checked(self.log.check(nodes)?)?;
                json!({"inserted": n, "len": self.log.len()})
            }
            Request::Get { key } => match self.log.get(&parse_hash(&key)?)? {
                Some(e) => entry_json(&e),
                None => Value::Null,
            },
            Request::Changes { since, limit } => {
                let limit = page(limit)?;
                let mut out = Vec::new();
                for e in self
                    .log
                    .changes(ChangesQuery::all().since(since).limit(limit))
                {
                    out.push(entry_json(&e?));
                }
                Value::Array(out)
            }
            Request::Heads => json!(
                self.log
                    .heads()?
                    .iter()
                    .map(Hash::to_hex)
                    .collect::<Vec<_>>()
            ),
            Request::Len => json!(self.log.len()),
            Request::KvPut { key, value } => json!(self.kv.put(&key, &value)?.to_hex()),
            Request::KvDel { key } => json!(self.kv.del(&key)?.to_hex()),
            Request::KvGet { key } => self.kv.get(&key)?.to_json(),
            Request::KvList { limit, after } => {
                let limit = page(limit)?;
                let mut out = Vec::new();
                // `after` skips the keys up to and including it (for paging). The kv store
                // lists from its first key, so a page deep in a large store costs a scan of
                // the keys before it.
                let opts = ListOptions {
                    limit: after.is_none().then_some(limit),
                    ..ListOptions::default()
                };
                for row in self.kv.list(opts)? {
                    let row = row?;
                    if after.as_deref().is_some_and(|a| row.key.as_str() <= a) {
                        continue;
                    }
                    if out.len() as u64 == limit {
                        break;
                    }
                    out.push(row.to_json());
                }
                Value::Array(out)
            }
            Request::Identity => json!({"public": self.public_hex()}),
            Request::IdentityExport { passphrase } => {
                let kp = self.signer.keypair();
                json!({
                    "public": kp.public().to_hex(),
                    "key_file": identity::export(&kp, passphrase.as_deref())?,
                    "sealed": passphrase.is_some(),
                })
            }
            Request::IdentityImport {
                key_file,
                passphrase,
            } => {
                let kp = identity::parse(&key_file, passphrase.as_deref())?;
                identity::replace(self.log.database(), &self.signer, kp)?;
                json!({"public": self.public_hex()})
            }
        })
    }
}

fn page(limit: Option<u64>) -> Result<u64, RequestError> {
    match limit.unwrap_or(DEFAULT_PAGE) {
        0 => Err(RequestError::BadInput("limit must be at least 1".into())),
        l if l > MAX_PAGE => Err(RequestError::BadInput(format!(
            "limit {l} is over {MAX_PAGE}"
        ))),
        l => Ok(l),
    }
}

fn parse_hash(s: &str) -> Result<Hash, RequestError> {
    Hash::from_hex(s).map_err(|e| RequestError::BadInput(format!("key: {e}")))
}

/// The JSON form of a stored node.
pub fn entry_json(e: &Entry) -> Value {
    let mut m = Map::new();
    m.insert("change".into(), json!(e.change));
    m.insert("key".into(), json!(e.node.key().to_hex()));
    m.insert("author".into(), json!(e.node.author().map(|a| a.to_hex())));
    m.insert(
        "links".into(),
        json!(e.node.links().iter().map(Hash::to_hex).collect::<Vec<_>>()),
    );
    match std::str::from_utf8(e.node.value()) {
        Ok(s) => {
            m.insert("value".into(), json!(s));
        }
        Err(_) => {
            m.insert("value".into(), Value::Null);
            m.insert("value_hex".into(), json!(hex::encode(e.node.value())));
        }
    }
    Value::Object(m)
}

fn respond(id: Value, result: Result<Value, RequestError>) -> String {
    let v = match result {
        Ok(ok) => json!({"id": id, "ok": ok}),
        Err(e) => json!({"id": id, "error": {"kind": e.kind(), "message": e.to_string()}}),
    };
    v.to_string()
}

/// The response to a message that is neither text nor `{json, bytes}` (it never reaches
/// [`Peer::handle`]).
pub fn not_a_request(what: &str) -> String {
    respond(
        Value::Null,
        Err(RequestError::BadRequest(format!(
            "a message is a JSON string or {{json, bytes}}, not {what}"
        ))),
    )
}
