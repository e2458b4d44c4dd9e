//! Images (wasm32 only): adding a file as a blob of the worker's store, and showing the
//! `<img data-blob="<hex>">` elements [`render`](crate::markdown::render) writes.
//!
//! An image is shown from the worker's store first: `blob_get` posts the bytes on a
//! `MessagePort` as one transferred `ArrayBuffer`, which becomes an object URL (kept for the
//! page's life, one per blob, so re-renders of the live preview do not ask again). When the
//! worker does not have it, the image is shown from `/blob/<hex>` meanwhile (what `cairn serve`
//! answers; a 404 anywhere else) and the worker is asked to fetch it from its live peers
//! (`blob_fetch`, verified as it arrives), and asked again until it has it, for at most
//! [`WAIT`] rounds.

use std::cell::RefCell;
use std::collections::HashMap;

use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, BlobPropertyBag, File, HtmlImageElement, MessageChannel, Url};

/// The largest file added as an image (the worker's limit too).
pub(crate) const MAX_IMAGE: f64 = (16 << 20) as f64;
/// How many times (every [`POLL_MS`]) a missing blob is looked for before giving up.
const WAIT: u32 = 120;
const POLL_MS: i32 = 500;
/// Peers are asked again every this many rounds (a peer that lacked it may have it now).
const ASK_EVERY: u32 = 10;

#[wasm_bindgen]
extern "C" {
    /// `cairn.call(op, fields, bytes)` of cairn.js.
    #[wasm_bindgen(js_namespace = cairn, js_name = call)]
    fn cairn_call_bytes(op: &str, fields: JsValue, bytes: JsValue) -> js_sys::Promise;
    #[wasm_bindgen(js_namespace = cairn, js_name = call)]
    fn cairn_call_obj(op: &str, fields: JsValue) -> js_sys::Promise;
}

enum State {
    /// Being looked for; `fallback`: shown from `/blob/<hex>` meanwhile.
    Loading { fallback: bool },
    /// An object URL of the blob's bytes.
    Ready(String),
}

thread_local! {
    static SHOWN: RefCell<HashMap<String, State>> = RefCell::new(HashMap::new());
}

fn get(o: &JsValue, k: &str) -> JsValue {
    Reflect::get(o, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED)
}

fn text(v: &JsValue) -> String {
    v.as_string()
        .or_else(|| js_sys::JSON::stringify(v).ok().and_then(|s| s.as_string()))
        .unwrap_or_else(|| "?".into())
}

/// The `ok` of a worker's answer, or `(kind, message)`.
async fn answer(p: js_sys::Promise) -> Result<JsValue, (String, String)> {
    let a = JsFuture::from(p)
        .await
        .map_err(|e| ("worker".to_owned(), text(&e)))?;
    let e = get(&a, "error");
    if e.is_object() {
        return Err((text(&get(&e, "kind")), text(&get(&e, "message"))));
    }
    Ok(get(&a, "ok"))
}

async fn sleep(ms: i32) {
    let p = js_sys::Promise::new(&mut |res, _| {
        let _ = web_sys::window()
            .map(|w| w.set_timeout_with_callback_and_timeout_and_arguments_0(&res, ms));
    });
    let _ = JsFuture::from(p).await;
}

/// Stores `file` in the worker's blob store; returns the Markdown that shows it.
pub(crate) async fn add_file(file: &File) -> Result<String, String> {
    if file.size() > MAX_IMAGE {
        return Err(format!(
            "{} is {:.1} MiB; an image can be at most 16 MiB",
            file.name(),
            file.size() / (1 << 20) as f64
        ));
    }
    let buf = JsFuture::from(file.array_buffer())
        .await
        .map_err(|e| format!("reading {}: {}", file.name(), text(&e)))?;
    let bytes = Uint8Array::new(&buf);
    let ok = answer(cairn_call_bytes(
        "blob_add",
        Object::new().into(),
        bytes.into(),
    ))
    .await
    .map_err(|(_, m)| format!("storing {}: {m}", file.name()))?;
    let hash = get(&ok, "hash").as_string().unwrap_or_default();
    Ok(crate::markdown::image_markdown(&file.name(), &hash))
}

/// The blob from the worker's store as an object URL; `Err(kind, message)` otherwise
/// (`not_found`: the worker does not have it whole).
async fn from_worker(hex: &str) -> Result<String, (String, String)> {
    let js = |e: JsValue| ("page".to_owned(), text(&e));
    let ch = MessageChannel::new().map_err(js)?;
    let port = ch.port1();
    let bytes = js_sys::Promise::new(&mut |res, _| port.set_onmessage(Some(&res)));
    let fields = Object::new();
    Reflect::set(&fields, &"hash".into(), &hex.into()).map_err(js)?;
    Reflect::set(&fields, &"channel".into(), &ch.port2()).map_err(js)?;
    let got = answer(cairn_call_obj("blob_get", fields.into())).await;
    let got = match got {
        Ok(g) => g,
        Err(e) => {
            port.close();
            return Err(e);
        }
    };
    let ev = JsFuture::from(bytes).await.map_err(js)?;
    port.close();
    let bag = BlobPropertyBag::new();
    bag.set_type(&get(&got, "type").as_string().unwrap_or_default());
    let blob =
        Blob::new_with_buffer_source_sequence_and_options(&Array::of1(&get(&ev, "data")), &bag)
            .map_err(js)?;
    Url::create_object_url_with_blob(&blob).map_err(js)
}

/// Sets `src` on every `<img data-blob="<hex>">` of the page (all of them, or only those
/// without one).
fn set_src(hex: &str, url: &str, all: bool) {
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    let sel = if all {
        format!("img[data-blob=\"{hex}\"]")
    } else {
        format!("img[data-blob=\"{hex}\"]:not([src])")
    };
    let Ok(list) = doc.query_selector_all(&sel) else {
        return;
    };
    for i in 0..list.length() {
        if let Some(img) = list
            .get(i)
            .and_then(|n| n.dyn_into::<HtmlImageElement>().ok())
        {
            img.set_src(url);
        }
    }
}

async fn load(hex: String) {
    for round in 0..WAIT {
        match from_worker(&hex).await {
            Ok(url) => {
                set_src(&hex, &url, true);
                SHOWN.with(|s| s.borrow_mut().insert(hex, State::Ready(url)));
                return;
            }
            Err((kind, _)) if kind == "not_found" => {
                if round == 0 {
                    SHOWN.with(|s| {
                        s.borrow_mut()
                            .insert(hex.clone(), State::Loading { fallback: true })
                    });
                    set_src(&hex, &format!("/blob/{hex}"), false);
                }
                if round % ASK_EVERY == 0 {
                    let fields = Object::new();
                    let _ = Reflect::set(&fields, &"hash".into(), &hex.as_str().into());
                    let _ = answer(cairn_call_obj("blob_fetch", fields.into())).await;
                }
            }
            Err((kind, message)) => {
                web_sys::console::warn_1(&format!("image {hex}: {kind}: {message}").into());
                break;
            }
        }
        sleep(POLL_MS).await;
    }
    // Given up for now: a later render of the image tries again.
    SHOWN.with(|s| s.borrow_mut().remove(&hex));
}

/// Gives every `<img data-blob>` without a `src` one (see the module's text).
fn show_pending() {
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    let Ok(list) = doc.query_selector_all("img[data-blob]:not([src])") else {
        return;
    };
    for i in 0..list.length() {
        let Some(img) = list
            .get(i)
            .and_then(|n| n.dyn_into::<HtmlImageElement>().ok())
        else {
            continue;
        };
        let Some(hex) = img.get_attribute("data-blob") else {
            continue;
        };
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let start = SHOWN.with(|s| {
            let mut s = s.borrow_mut();
            match s.get(&hex) {
                Some(State::Ready(url)) => {
                    img.set_src(url);
                    false
                }
                Some(State::Loading { fallback }) => {
                    if *fallback {
                        img.set_src(&format!("/blob/{hex}"));
                    }
                    false
                }
                None => {
                    s.insert(hex.clone(), State::Loading { fallback: false });
                    true
                }
            }
        });
        if start {
            wasm_bindgen_futures::spawn_local(load(hex));
        }
    }
}

/// Watches the page for new `<img data-blob>` elements (every screen and the live preview
/// set their HTML as they load) and shows them.
pub(crate) fn watch() {
    let Some(body) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.body())
    else {
        return;
    };
    let cb = Closure::<dyn FnMut(JsValue, JsValue)>::new(|_: JsValue, _: JsValue| show_pending());
    let Ok(obs) = web_sys::MutationObserver::new(cb.as_ref().unchecked_ref()) else {
        return;
    };
    let init = web_sys::MutationObserverInit::new();
    init.set_child_list(true);
    init.set_subtree(true);
    let _ = obs.observe_with_options(&body, &init);
    // Both live as long as the page.
    cb.forget();
    std::mem::forget(obs);
    show_pending();
}
