//! The worker's entry points, called from `www/worker.js` (a module worker that loads the
//! wasm-bindgen output): [`open_peer`] once, then [`WebPeer::handle`] for every message.

use cairn_log::StorageBackend;
use cairn_log::core::Keypair;
use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

use crate::api::{Peer, not_a_request};
use crate::net::Net;
use crate::opfs::{OpfsBackend, js_text};
use crate::swarm::Swarm;

/// The store of this worker, opened on an OPFS file, and its connections.
#[wasm_bindgen]
#[derive(Debug)]
pub struct WebPeer {
    peer: Peer,
    net: std::rc::Rc<Net>,
    swarm: Swarm,
}

#[wasm_bindgen]
impl WebPeer {
    /// Handles one message from the page: a JSON request as a string, or an object
    /// `{json: string, bytes: Uint8Array}` (for `insert`). Returns the JSON response; anything
    /// else gets a `bad_request` response. Never throws.
    pub fn handle(&self, msg: JsValue) -> String {
        if let Some(text) = msg.as_string() {
            if let Some(answer) = self.transport_op(&text, None) {
                return answer;
            }
            if let Some(answer) = self.blob_op(&text, None) {
                return answer;
            }
            return self.peer.handle(&text, None);
        }
        if msg.is_object() {
            // `blob_get`: `{json, channel}` with a transferred MessagePort for the bytes.
            if let Some(json) = Reflect::get(&msg, &JsValue::from_str("json"))
                .ok()
                .and_then(|v| v.as_string())
                && let Some(answer) = self.blob_op(
                    &json,
                    Reflect::get(&msg, &JsValue::from_str("channel")).ok(),
                )
            {
                return answer;
            }
            // `attach`: `{json, channel}` with a transferred RTCDataChannel.
            if let Ok(channel) = Reflect::get(&msg, &JsValue::from_str("channel"))
                && channel.is_object()
                && let Some(json) = Reflect::get(&msg, &JsValue::from_str("json"))
                    .ok()
                    .and_then(|v| v.as_string())
                && let Some(answer) = self.transport_op(&json, Some(channel))
            {
                return answer;
            }
            let json = Reflect::get(&msg, &JsValue::from_str("json"))
                .ok()
                .and_then(|v| v.as_string());
            let bytes = Reflect::get(&msg, &JsValue::from_str("bytes"))
                .ok()
                .and_then(|v| v.dyn_into::<Uint8Array>().ok())
                .map(|b| b.to_vec());
            if let Some(json) = json {
                return self.peer.handle(&json, bytes.as_deref());
            }
        }
        not_a_request(&describe(&msg))
    }

    /// The transport ops (`connect`, `attach`, `disconnect`, `peers`: see `net.rs`; `swarm_join`,
    /// `swarm_leave`, `swarm`, `swarm_signal`: see `swarm.rs`), or `None` for any other
    /// request.
    fn transport_op(&self, text: &str, channel: Option<JsValue>) -> Option<String> {
        let req: serde_json::Value = serde_json::from_str(text).ok()?;
        let op = req.get("op")?.as_str()?;
        if !matches!(
            op,
            "connect"
                | "attach"
                | "disconnect"
                | "peers"
                | "swarm_join"
                | "swarm_leave"
                | "swarm"
                | "swarm_signal"
        ) {
            return None;
        }
        let text_field = |name: &str| req.get(name).and_then(|v| v.as_str());
        let id = req.get("id").cloned().unwrap_or(serde_json::Value::Null);
        let bad = |m: &str| Err(("bad_request", m.to_owned()));
        let r: Result<serde_json::Value, (&str, String)> = match op {
            "connect" => match req.get("url").and_then(|u| u.as_str()) {
                // A URL already connected (not closed): that connection. Every tab of a
                // profile may ask the owner for the same server (see www/worker.js).
                Some(url) => match existing_connection(&self.net.peers(), url) {
                    Some(conn) => Ok(conn),
                    None => self.net.connect(url).map_err(|e| ("bad_input", e)),
                },
                None => bad("connect needs a url"),
            },
            "attach" => match channel {
                Some(ch) => {
                    let initiator = req
                        .get("initiator")
                        .and_then(|v| v.as_bool())
                        .unwrap_or(false);
                    match text_field("expect").map(cairn_log::core::PublicKey::from_hex) {
                        Some(Err(e)) => bad(&format!("expect is not a public key: {e}")),
                        expect => {
                            let expect = expect.and_then(Result::ok);
                            self.net
                                .attach(ch, initiator, expect)
                                .map(|conn| {
                                    if let Some(k) = &expect {
                                        self.swarm.attached(k, &conn);
                                    }
                                    conn.json()
                                })
                                .map_err(|e| ("bad_input", e))
                        }
                    }
                }
                None => bad("attach is posted as {json, channel} with a transferred channel"),
            },
            "disconnect" => match req.get("conn").and_then(|v| v.as_u64()) {
                Some(c) => self
                    .net
                    .disconnect(u32::try_from(c).unwrap_or(u32::MAX))
                    .map_err(|e| ("bad_input", e)),
                None => bad("disconnect needs conn (a connection id)"),
            },
            "swarm_join" => match (text_field("url"), text_field("swarm")) {
                (Some(url), Some(name)) => self
                    .swarm
                    .join(url, name, req.get("max_peers").and_then(|v| v.as_u64()))
                    .map_err(|e| ("bad_input", e)),
                _ => bad("swarm_join needs url (ws://…/hub) and swarm (a name)"),
            },
            "swarm_leave" => self.swarm.leave().map_err(|e| ("bad_input", e)),
            "swarm" => Ok(self.swarm.state()),
            "swarm_signal" => match (text_field("peer"), text_field("kind"), text_field("sdp")) {
                (Some(peer), Some(kind), Some(sdp)) => self
                    .swarm
                    .signal(peer, kind, sdp)
                    .map_err(|e| ("bad_input", e)),
                _ => bad("swarm_signal needs peer, kind and sdp"),
            },
            _ => Ok(self.net.peers()),
        };
        Some(answer(id, r))
    }

    /// `blob_get` (its bytes posted on the `MessagePort` that came with it, as one transferred
    /// ArrayBuffer) and `blob_fetch` (asks the live connections), or `None` for any other
    /// request. See `blob_api.rs`.
    fn blob_op(&self, text: &str, channel: Option<JsValue>) -> Option<String> {
        let req: serde_json::Value = serde_json::from_str(text).ok()?;
        let op = req.get("op")?.as_str()?;
        if !matches!(op, "blob_get" | "blob_fetch") {
            return None;
        }
        let id = req.get("id").cloned().unwrap_or(serde_json::Value::Null);
        let hash = req.get("hash").and_then(|h| h.as_str()).unwrap_or_default();
        let num = |k: &str| req.get(k).and_then(|v| v.as_u64());
        let r: Result<serde_json::Value, (&str, String)> = match op {
            "blob_fetch" => match hash.parse::<cairn_blob::BlobHash>() {
                Ok(h) => Ok(serde_json::json!({"asked": self.net.fetch_blob(h)})),
                Err(_) => Err(("bad_input", format!("{hash:?} is not a blob hash"))),
            },
            _ => match channel.and_then(|c| c.dyn_into::<web_sys::MessagePort>().ok()) {
                None => Err((
                    "bad_request",
                    "blob_get is posted as {json, channel} with a MessagePort".to_owned(),
                )),
                Some(port) => {
                    let r = match crate::blob_api::get(
                        self.peer.blobs(),
                        hash,
                        num("start"),
                        num("end"),
                    ) {
                        Ok(got) => {
                            let buf = Uint8Array::from(got.bytes.as_slice()).buffer();
                            port.post_message_with_transferable(&buf, &js_sys::Array::of1(&buf))
                                .map(|()| got.json)
                                .map_err(|e| ("storage", js_text(&e)))
                        }
                        Err(e) => Err((e.kind(), e.to_string())),
                    };
                    // The page closes its end once it has the answer (closing ours now
                    // could drop the message in flight).
                    r
                }
            },
        };
        Some(answer(id, r))
    }

    /// This peer's public key, hex.
    #[wasm_bindgen(js_name = publicKey)]
    pub fn public_key(&self) -> String {
        self.peer.public_hex()
    }

    /// The number of nodes in the log.
    pub fn len(&self) -> f64 {
        self.peer.log().len() as f64
    }
}

/// The connection to `url` in the `peers` list that is not closed, if any.
fn existing_connection(peers: &serde_json::Value, url: &str) -> Option<serde_json::Value> {
    peers.as_array()?.iter().find_map(|c| {
        (c.get("url").and_then(|u| u.as_str()) == Some(url)
            && c.get("state").and_then(|s| s.as_str()) != Some("closed"))
        .then(|| c.clone())
    })
}

fn describe(v: &JsValue) -> String {
    if v.is_null() {
        "null".into()
    } else if v.is_undefined() {
        "undefined".into()
    } else {
        v.js_typeof()
            .as_string()
            .unwrap_or_else(|| "something else".into())
    }
}

fn err(e: impl std::fmt::Display) -> JsValue {
    js_sys::Error::new(&e.to_string()).into()
}

/// Opens the peer's store on the OPFS file `file` (created on first use, with a new identity).
/// Rejects if another worker holds the file or the store cannot be opened.
#[wasm_bindgen(js_name = openPeer)]
pub async fn open_peer(file: String) -> Result<WebPeer, JsValue> {
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&JsValue::from_str(&format!("cairn-web panicked: {info}")));
    }));
    let backend = OpfsBackend::open(&file).await?;
    let peer = Peer::open(backend).map_err(err)?;
    let signer = peer.clone();
    let net = Net::new(peer.log().clone(), move || signer.keypair());
    net.serve_blobs(peer.blobs().clone());
    let swarm = Swarm::new(net.clone());
    Ok(WebPeer { peer, net, swarm })
}

/// Exercises the OPFS backend on the file `file` (erased first): sizes, writes and reads at
/// offsets (the gap reads as zeros), reads past the end refused, truncation and growth with
/// zeros, flush; then a redb store on it closed and reopened on a new handle. Resolves with a
/// summary, rejects with the first mismatch.
#[wasm_bindgen(js_name = backendSelftest)]
pub async fn backend_selftest(file: String) -> Result<String, JsValue> {
    let b = OpfsBackend::open(&file).await?;
    check_backend(&b).map_err(err)?;
    drop(b);
    // The handle was closed by `close`: the store is written, closed, and reopened.
    let b = OpfsBackend::open(&file).await?;
    b.set_len(0).map_err(err)?;
    let peer = Peer::open(b).map_err(err)?;
    let public = peer.public_hex();
    let values: Vec<Vec<u8>> = (0..100).map(|i| format!("node {i}").into_bytes()).collect();
    peer.log().append_all(values).map_err(err)?;
    let heads = peer.log().heads().map_err(err)?;
    drop(peer);
    let peer = Peer::open(OpfsBackend::open(&file).await?).map_err(err)?;
    let len = peer.log().len();
    let heads2 = peer.log().heads().map_err(err)?;
    if len != 100 || heads2 != heads || peer.public_hex() != public {
        return Err(err(format!(
            "after reopen: len {len} (want 100), heads equal {}, identity kept {}",
            heads2 == heads,
            peer.public_hex() == public
        )));
    }
    Ok(format!("backend ok; store reopened with {len} nodes"))
}

fn check_backend(b: &OpfsBackend) -> Result<(), String> {
    let fail = |what: &str| Err(what.to_owned());
    let io = |e: std::io::Error| e.to_string();
    b.set_len(0).map_err(io)?;
    if b.len().map_err(io)? != 0 {
        return fail("set_len(0) left bytes");
    }
    b.write(0, b"cairn").map_err(io)?;
    let far = 3 * 4096 + 17;
    let block: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    b.write(far, &block).map_err(io)?;
    if b.len().map_err(io)? != far + block.len() as u64 {
        return fail("length after writes");
    }
    let mut out = vec![0u8; block.len()];
    b.read(far, &mut out).map_err(io)?;
    if out != block {
        return fail("read back of the far block");
    }
    let mut gap = vec![1u8; 4096];
    b.read(5, &mut gap).map_err(io)?;
    if gap.iter().any(|&x| x != 0) {
        return fail("the gap between writes is not zeros");
    }
    let mut past = [0u8; 8];
    if b.read(far + block.len() as u64 - 4, &mut past).is_ok() {
        return fail("a read past the end succeeded");
    }
    b.set_len(3).map_err(io)?;
    b.set_len(8).map_err(io)?;
    let mut head = [9u8; 8];
    b.read(0, &mut head).map_err(io)?;
    if &head != b"cai\0\0\0\0\0" {
        return fail("truncate then grow does not give zeros");
    }
    b.sync_data().map_err(io)?;
    b.close().map_err(io)?;
    Ok(())
}

/// A new random identity's key file text, without touching any store (for the page's tests
/// of `identity_import`).
#[wasm_bindgen(js_name = newKeyFile)]
pub fn new_key_file() -> Result<String, JsValue> {
    crate::identity::export(&Keypair::generate().map_err(err)?, None).map_err(err)
}

/// Reports a JS error's text (for the worker script's messages).
#[wasm_bindgen(js_name = errorText)]
pub fn error_text(e: JsValue) -> String {
    js_text(&e)
}

/// The JSON answer to request `id`: `{id, ok}` or `{id, error: {kind, message}}`.
fn answer(id: serde_json::Value, r: Result<serde_json::Value, (&str, String)>) -> String {
    match r {
        Ok(ok) => serde_json::json!({"id": id, "ok": ok}),
        Err((kind, message)) => {
            serde_json::json!({"id": id, "error": {"kind": kind, "message": message}})
        }
    }
    .to_string()
}
