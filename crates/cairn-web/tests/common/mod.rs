//! Helpers shared by the worker API's native tests.
#![allow(dead_code)] // each test binary uses its own subset

use cairn_web::api::Peer;
use serde_json::Value;

/// A peer on redb's in-memory backend.
pub(crate) fn peer() -> Peer {
    Peer::open(cairn_log::redb::backends::InMemoryBackend::new()).unwrap()
}

/// The answer to `req`, as JSON.
pub(crate) fn call(p: &Peer, req: Value) -> Value {
    serde_json::from_str(&p.handle(&req.to_string(), None)).unwrap()
}

/// The `ok` part of the answer to `req`, which must not be an error.
pub(crate) fn ok(p: &Peer, req: Value) -> Value {
    let r = call(p, req.clone());
    assert!(r.get("error").is_none(), "{req} → {r}");
    r["ok"].clone()
}

/// The error kind of an answer, or "OK".
pub(crate) fn kind(r: &Value) -> &str {
    r["error"]["kind"].as_str().unwrap_or("OK")
}
