//! The blob ops of the worker's message API (every op named `blob_…`), over the peer's
//! [`BlobStore`] (in the browser: kept in the store's database, see cairn-blob's
//! `dbstore.rs`). [`api`](crate::api) hands them here by their prefix.
//!
//! | op | fields | result |
//! |---|---|---|
//! | `blob_add` | the blob's bytes, posted like `insert`'s (`{json, bytes}`) | `{hash, size}` |
//! | `blob_get` | `hash`, `start`?, `end`? — posted as `{json, channel}` with a transferred `MessagePort` | `{hash, size, start, end, type}`; the bytes `start..end` go on the port as one transferred `ArrayBuffer` |
//! | `blob_has` | `hash` | `{hash, size}` when stored whole, `null` otherwise (`partial`: bytes present, if a download is kept) |
//! | `blob_ls` | | `[{hash, size, state, present?}]` |
//! | `blob_fetch` | `hash` | `{asked}`: how many live connections were asked for it (worker only) |
//!
//! A blob is at most [`MAX_BLOB`] bytes here (an image in a wiki page); a `blob_get` answers
//! at most that much. `type` is the content type sniffed from the first bytes (the same
//! rules as `cairn serve`'s `/blob/`).

use std::io::Read;

use cairn_blob::{BlobHash, BlobState, BlobStore};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::RequestError;

/// The largest blob the worker stores or hands out in one answer.
pub const MAX_BLOB: u64 = 16 << 20;

#[allow(clippy::enum_variant_names)]
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum BlobRequest {
    BlobAdd,
    BlobHas {
        hash: String,
    },
    BlobLs,
    /// Answered by the worker (it needs the port): see [`get`].
    BlobGet,
}

/// Why a blob op failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobOpError {
    /// Adding failed (nothing stored).
    #[error(transparent)]
    Add(#[from] cairn_blob::AddError),
    /// Reading failed.
    #[error(transparent)]
    Store(#[from] cairn_blob::StoreError),
    /// Reading a stored blob's bytes failed.
    #[error("reading the blob: {0}")]
    Io(#[from] std::io::Error),
}

fn parse(hash: &str) -> Result<BlobHash, RequestError> {
    hash.parse()
        .map_err(|_| RequestError::BadInput(format!("{hash:?} is not a blob hash (64 hex digits)")))
}

/// The answer to `blob_get` and the bytes it carries.
#[derive(Debug)]
pub struct Got {
    /// `{hash, size, start, end, type}`.
    pub json: Value,
    /// Bytes `start..end`.
    pub bytes: Vec<u8>,
}

/// `blob_get`: bytes `start..end` (default: all) of a stored blob; `not_found` when it is not
/// stored whole.
pub fn get(
    store: &BlobStore,
    hash: &str,
    start: Option<u64>,
    end: Option<u64>,
) -> Result<Got, RequestError> {
    let h = parse(hash)?;
    let Some(size) = store.size(&h).map_err(BlobOpError::from)? else {
        return Err(RequestError::NotFound(format!(
            "blob {h} is not stored here"
        )));
    };
    let start = start.unwrap_or(0);
    let end = end.unwrap_or(size).min(size);
    if start > end {
        return Err(RequestError::BadInput(format!(
            "range {start}..{end} of a blob of {size} bytes"
        )));
    }
    if end - start > MAX_BLOB {
        return Err(RequestError::BadInput(format!(
            "{} bytes asked; at most {MAX_BLOB} per answer",
            end - start
        )));
    }
    let mut bytes = Vec::with_capacity((end - start) as usize);
    if let Some(mut r) = store
        .read_range(&h, start..end)
        .map_err(BlobOpError::from)?
    {
        r.read_to_end(&mut bytes).map_err(BlobOpError::from)?;
    }
    let head = &bytes[..bytes.len().min(512)];
    let kind = if start == 0 {
        cairn_blob::http::sniff(head).0
    } else {
        "application/octet-stream"
    };
    Ok(Got {
        json: json!({"hash": h.to_hex(), "size": size, "start": start, "end": end, "type": kind}),
        bytes,
    })
}

/// The `blob_…` ops other than `blob_get` (which needs a port) and `blob_fetch` (which
/// needs the worker's connections).
pub fn dispatch(
    store: &BlobStore,
    obj: Map<String, Value>,
    bytes: Option<&[u8]>,
) -> Result<Value, RequestError> {
    let req: BlobRequest = serde_json::from_value(Value::Object(obj))
        .map_err(|e| RequestError::BadRequest(e.to_string()))?;
    Ok(match req {
        BlobRequest::BlobAdd => {
            let bytes = bytes.ok_or_else(|| {
                RequestError::BadRequest("blob_add carries the blob as bytes".into())
            })?;
            if bytes.len() as u64 > MAX_BLOB {
                return Err(RequestError::BadInput(format!(
                    "a blob of {} bytes is over the limit of {MAX_BLOB}",
                    bytes.len()
                )));
            }
            let h = store.add_bytes(bytes).map_err(BlobOpError::from)?;
            json!({"hash": h.to_hex(), "size": bytes.len()})
        }
        BlobRequest::BlobHas { hash } => {
            let h = parse(&hash)?;
            match store.size(&h).map_err(BlobOpError::from)? {
                Some(size) => json!({"hash": h.to_hex(), "size": size}),
                None => Value::Null,
            }
        }
        BlobRequest::BlobLs => Value::Array(
            store
                .list()
                .map_err(BlobOpError::from)?
                .into_iter()
                .map(|b| match b.state {
                    BlobState::Complete => {
                        json!({"hash": b.hash.to_hex(), "size": b.size, "state": "complete"})
                    }
                    BlobState::Partial { present } => json!({
                        "hash": b.hash.to_hex(), "size": b.size, "state": "partial", "present": present
                    }),
                })
                .collect(),
        ),
        BlobRequest::BlobGet => {
            return Err(RequestError::BadRequest(
                "blob_get is posted as {json, channel} with a MessagePort for the bytes".into(),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Peer;

    fn peer() -> Peer {
        Peer::open(redb::backends::InMemoryBackend::new()).unwrap()
    }

    fn call(p: &Peer, req: Value, bytes: Option<&[u8]>) -> Value {
        serde_json::from_str(&p.handle(&req.to_string(), bytes)).unwrap()
    }

    #[test]
    fn add_has_ls_get_small_and_large() {
        let p = peer();
        let png: Vec<u8> = b"\x89PNG\r\n\x1a\n"
            .iter()
            .copied()
            .chain((0..200_000u32).map(|i| (i % 251) as u8))
            .collect();
        let a = call(&p, json!({"op": "blob_add", "id": 1}), Some(&png));
        let hash = a["ok"]["hash"].as_str().unwrap().to_owned();
        assert_eq!(hash, BlobHash::of(&png).to_hex());
        assert_eq!(a["ok"]["size"], png.len());
        let small = call(&p, json!({"op": "blob_add"}), Some(b"tiny"));
        assert_eq!(small["ok"]["size"], 4);
        let has = call(&p, json!({"op": "blob_has", "hash": hash}), None);
        assert_eq!(has["ok"]["size"], png.len());
        let none = call(
            &p,
            json!({"op": "blob_has", "hash": BlobHash::of(b"x").to_hex()}),
            None,
        );
        assert!(none["ok"].is_null());
        let ls = call(&p, json!({"op": "blob_ls"}), None);
        assert_eq!(ls["ok"].as_array().unwrap().len(), 2);
        let got = get(p.blobs(), &hash, None, None).unwrap();
        assert_eq!(got.bytes, png);
        assert_eq!(got.json["type"], "image/png");
        let part = get(p.blobs(), &hash, Some(100_000), Some(100_010)).unwrap();
        assert_eq!(part.bytes, &png[100_000..100_010]);
        // Errors: typed, nothing stored.
        let e = get(p.blobs(), &BlobHash::of(b"x").to_hex(), None, None).unwrap_err();
        assert_eq!(e.kind(), "not_found");
        let e = get(p.blobs(), "zz", None, None).unwrap_err();
        assert_eq!(e.kind(), "bad_input");
        let e = get(p.blobs(), &hash, Some(10), Some(5)).unwrap_err();
        assert_eq!(e.kind(), "bad_input");
        let no_bytes = call(&p, json!({"op": "blob_add"}), None);
        assert_eq!(no_bytes["error"]["kind"], "bad_request");
        let too_big = vec![0u8; MAX_BLOB as usize + 1];
        let e = call(&p, json!({"op": "blob_add"}), Some(&too_big));
        assert_eq!(e["error"]["kind"], "bad_input");
        let ls = call(&p, json!({"op": "blob_ls"}), None);
        assert_eq!(ls["ok"].as_array().unwrap().len(), 2);
        let no_port = call(&p, json!({"op": "blob_get", "hash": hash}), None);
        assert_eq!(no_port["error"]["kind"], "bad_request");
    }
}
