//! Live replication from the worker (wasm32 only): the `connect`, `attach`, `disconnect`
//! and `peers` ops.
//!
//! A connection is any JS message channel with `send`, `binaryType`, `onmessage`,
//! `onclose` (a `WebSocket`, or an `RTCDataChannel` handed over by the page): cairn-net's
//! handshake (Noise XX + identity proofs, the bytes `cairn serve` speaks) runs over it, then
//! cairn-sync's driver runs a live session on one end of an in-memory pipe and cairn-net's
//! pumps join the pipe to the encrypted messages. Everything runs as `spawn_local` tasks on
//! the worker's one thread, between the page's requests: a request is answered as soon as
//! the current step of any session yields (the driver yields after every 64 KiB of input).
//! A `connect`ed URL is dialled again after a drop, 0.5 s doubling to 30 s (back to 0.5 s
//! after a session that completed its initial sync); an `attach`ed channel is not (the page
//! owns the peer connection behind it). An `attach` may name the key the channel must prove
//! (`expect`, hex): the swarm's channels do (the key the signed signalling named), and a
//! channel whose Noise handshake proves another key is dropped with
//! [`AttachError::KeyMismatch`].

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use cairn_blob::proto::BlobPeer;
use cairn_blob::{BlobHash, BlobStore};
use cairn_log::Log;
use cairn_log::core::{Keypair, PublicKey};
use cairn_net::link::{handshake, pump};
use cairn_net::{Established, LinkError, MessageSink, MessageSource, PumpError, Role};
use cairn_sync::{LogStore, Mode, Session, SessionOptions, Timer, duplex};
use futures_lite::future;
use js_sys::{Function, Reflect, Uint8Array};
use serde_json::{Value, json};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use crate::opfs::js_text;

/// A handshake (or a channel's opening) that takes longer fails.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// An attached channel that does not open within this fails (it is handed over as soon as
/// it is created, before the WebRTC offer and answer are exchanged).
const ATTACH_OPEN_TIMEOUT: Duration = Duration::from_secs(20);
/// A peer silent this long before the initial sync is complete fails the session.
const IDLE: Duration = Duration::from_secs(60);
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Ended attached connections kept for `peers` to report.
const KEEP_ENDED: usize = 16;
/// Above this many bytes buffered by the channel, the outbound pump waits.
const SEND_BUFFER: f64 = (1 << 20) as f64;
/// The pipe between a session and its pumps.
const PIPE: usize = 256 << 10;

// ---------------------------------------------------------------------------------------
// Timers

#[derive(Default)]
struct SleepState {
    done: bool,
    waker: Option<Waker>,
}

/// A `setTimeout` as a future; cleared when dropped.
pub struct JsSleep {
    state: Rc<RefCell<SleepState>>,
    handle: Option<i32>,
    _callback: Option<Closure<dyn FnMut()>>,
}

impl JsSleep {
    /// Resolves after `d` (never, for durations beyond what `setTimeout` takes).
    pub fn new(d: Duration) -> JsSleep {
        let state = Rc::new(RefCell::new(SleepState::default()));
        let ms = d.as_millis();
        if ms > i32::MAX as u128 {
            return JsSleep {
                state,
                handle: None,
                _callback: None,
            };
        }
        let s = state.clone();
        let callback = Closure::<dyn FnMut()>::new(move || {
            let mut s = s.borrow_mut();
            s.done = true;
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        });
        let handle = js_sys::global()
            .unchecked_into::<web_sys::WorkerGlobalScope>()
            .set_timeout_with_callback_and_timeout_and_arguments_0(
                callback.as_ref().unchecked_ref(),
                ms as i32,
            )
            .ok();
        JsSleep {
            state,
            handle,
            _callback: Some(callback),
        }
    }
}

impl Future for JsSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.state.borrow_mut();
        if s.done {
            Poll::Ready(())
        } else {
            s.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

impl Drop for JsSleep {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            js_sys::global()
                .unchecked_into::<web_sys::WorkerGlobalScope>()
                .clear_timeout_with_handle(h);
        }
    }
}

/// The browser's clock for cairn-sync's driver.
#[derive(Debug, Clone, Copy)]
pub struct JsTimer;

impl Timer for JsTimer {
    type Sleep = JsSleep;
    fn sleep(&self, d: Duration) -> JsSleep {
        JsSleep::new(d)
    }
}

/// `fut`, or `Err(what)` after `d`.
pub(crate) async fn within<T>(
    d: Duration,
    what: &str,
    fut: impl Future<Output = T>,
) -> Result<T, String> {
    future::or(async { Ok(fut.await) }, async {
        JsSleep::new(d).await;
        Err(format!("{what} took longer than {d:?}"))
    })
    .await
}

// ---------------------------------------------------------------------------------------
// A JS message channel

#[derive(Default)]
struct Inbox {
    msgs: VecDeque<Result<Vec<u8>, LinkError>>,
    /// When the last message arrived (ms since the epoch), shared with the connection.
    last_in: Rc<Cell<f64>>,
    open: bool,
    /// Why the channel ended (`Some` once it did).
    closed: Option<String>,
    waker: Option<Waker>,
}

impl Inbox {
    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// The JS handlers installed on a channel; removed (and the channel closed) when dropped.
pub(crate) struct Handlers {
    obj: JsValue,
    _closures: Vec<Closure<dyn FnMut(JsValue)>>,
}

impl Drop for Handlers {
    fn drop(&mut self) {
        for h in ["onmessage", "onclose", "onerror", "onopen"] {
            let _ = Reflect::set(&self.obj, &JsValue::from_str(h), &JsValue::NULL);
        }
        close_channel(&self.obj);
    }
}

/// A WebSocket to `url`: through the worker script's `cairnSocket` (its socket on a thread of
/// its own, `www/socket.js` says why) when there is one, else on this thread.
fn dial(url: &str) -> Result<JsValue, JsValue> {
    let relay = Reflect::get(&js_sys::global(), &JsValue::from_str("cairnSocket"))?;
    match relay.dyn_into::<Function>() {
        Ok(f) => f.call1(&JsValue::NULL, &JsValue::from_str(url)),
        Err(_) => web_sys::WebSocket::new(url).map(JsValue::from),
    }
}

fn close_channel(obj: &JsValue) {
    if let Ok(f) = Reflect::get(obj, &JsValue::from_str("close"))
        && let Ok(f) = f.dyn_into::<Function>()
    {
        let _ = f.call0(obj);
    }
}

/// The sending half: `channel.send(bytes)`, waiting while `bufferedAmount` is high.
pub(crate) struct ChannelTx {
    obj: JsValue,
    inbox: Rc<RefCell<Inbox>>,
}

/// The receiving half: what `onmessage` queued.
pub(crate) struct ChannelRx {
    inbox: Rc<RefCell<Inbox>>,
}

/// Takes over `obj` (a WebSocket or an RTCDataChannel): binary messages as ArrayBuffers.
/// `last_in` is set to the time of each message that arrives.
pub(crate) fn open_channel(
    obj: JsValue,
    last_in: Rc<Cell<f64>>,
) -> Result<(ChannelTx, ChannelRx, Handlers), String> {
    let send = Reflect::get(&obj, &JsValue::from_str("send")).map_err(|e| js_text(&e))?;
    if !send.is_function() {
        return Err("not a message channel: it has no send()".into());
    }
    Reflect::set(
        &obj,
        &JsValue::from_str("binaryType"),
        &JsValue::from_str("arraybuffer"),
    )
    .map_err(|e| js_text(&e))?;
    let inbox = Rc::new(RefCell::new(Inbox {
        last_in,
        ..Inbox::default()
    }));
    let state = Reflect::get(&obj, &JsValue::from_str("readyState")).unwrap_or(JsValue::NULL);
    // WebSocket: 1 is OPEN; RTCDataChannel: "open".
    inbox.borrow_mut().open =
        state.as_f64() == Some(1.0) || state.as_string().as_deref() == Some("open");
    let mut closures = Vec::new();
    let mut on = |name: &str, f: Box<dyn FnMut(JsValue)>| -> Result<(), String> {
        let c = Closure::<dyn FnMut(JsValue)>::wrap(f);
        Reflect::set(&obj, &JsValue::from_str(name), c.as_ref()).map_err(|e| js_text(&e))?;
        closures.push(c);
        Ok(())
    };
    let i = inbox.clone();
    on(
        "onmessage",
        Box::new(move |e: JsValue| {
            let data = Reflect::get(&e, &JsValue::from_str("data")).unwrap_or(JsValue::NULL);
            let msg = if data.is_instance_of::<js_sys::ArrayBuffer>() {
                Ok(Uint8Array::new(&data).to_vec())
            } else {
                Err(LinkError::NotBinary)
            };
            let mut i = i.borrow_mut();
            i.last_in.set(js_sys::Date::now());
            i.msgs.push_back(msg);
            i.wake();
        }),
    )?;
    let i = inbox.clone();
    on(
        "onopen",
        Box::new(move |_| {
            let mut i = i.borrow_mut();
            i.open = true;
            i.wake();
        }),
    )?;
    let i = inbox.clone();
    on(
        "onclose",
        Box::new(move |e: JsValue| {
            let code = Reflect::get(&e, &JsValue::from_str("code"))
                .ok()
                .and_then(|c| c.as_f64());
            let mut i = i.borrow_mut();
            if i.closed.is_none() {
                i.closed = Some(match code {
                    Some(c) => format!("the channel closed (code {c})"),
                    None => "the channel closed".into(),
                });
            }
            i.wake();
        }),
    )?;
    let i = inbox.clone();
    on(
        "onerror",
        Box::new(move |_| {
            let mut i = i.borrow_mut();
            if i.closed.is_none() {
                i.closed = Some("the channel failed (error event)".into());
            }
            i.wake();
        }),
    )?;
    Ok((
        ChannelTx {
            obj: obj.clone(),
            inbox: inbox.clone(),
        },
        ChannelRx {
            inbox: inbox.clone(),
        },
        Handlers {
            obj,
            _closures: closures,
        },
    ))
}

impl ChannelRx {
    /// Resolves once the channel is open; an error if it closed first.
    pub(crate) async fn opened(&self) -> Result<(), String> {
        std::future::poll_fn(|cx| {
            let mut i = self.inbox.borrow_mut();
            if i.open {
                Poll::Ready(Ok(()))
            } else if let Some(why) = &i.closed {
                Poll::Ready(Err(why.clone()))
            } else {
                i.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

impl ChannelTx {
    /// Sends one message now, whatever the channel has buffered (for small messages).
    pub(crate) fn send_now(&self, msg: &[u8]) -> Result<(), LinkError> {
        if let Some(why) = &self.inbox.borrow().closed {
            return Err(LinkError::channel(why.clone()));
        }
        let send = Reflect::get(&self.obj, &JsValue::from_str("send"))
            .and_then(|f| f.dyn_into::<Function>())
            .map_err(|e| LinkError::channel(js_text(&e)))?;
        send.call1(&self.obj, &Uint8Array::from(msg))
            .map_err(|e| LinkError::channel(js_text(&e)))?;
        Ok(())
    }
}

impl MessageSink for ChannelTx {
    async fn send(&mut self, msg: &[u8]) -> Result<(), LinkError> {
        self.send_now(msg)?;
        // Backpressure: the channel buffers without bound; wait while it holds much.
        loop {
            let buffered = Reflect::get(&self.obj, &JsValue::from_str("bufferedAmount"))
                .ok()
                .and_then(|b| b.as_f64())
                .unwrap_or(0.0);
            if buffered <= SEND_BUFFER {
                return Ok(());
            }
            if let Some(why) = &self.inbox.borrow().closed {
                return Err(LinkError::channel(why.clone()));
            }
            JsSleep::new(Duration::from_millis(5)).await;
        }
    }

    async fn close(&mut self) -> Result<(), LinkError> {
        close_channel(&self.obj);
        Ok(())
    }
}

impl MessageSource for ChannelRx {
    async fn recv(&mut self, buf: &mut Vec<u8>, max: usize) -> Result<bool, LinkError> {
        std::future::poll_fn(|cx| {
            let mut i = self.inbox.borrow_mut();
            match i.msgs.pop_front() {
                Some(Ok(m)) if m.len() > max => {
                    Poll::Ready(Err(LinkError::TooLarge { len: m.len(), max }))
                }
                Some(Ok(m)) => {
                    *buf = m;
                    Poll::Ready(Ok(true))
                }
                Some(Err(e)) => Poll::Ready(Err(e)),
                None if i.closed.is_some() => Poll::Ready(Ok(false)),
                None => {
                    i.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------
// Connections

/// Where a connection comes from.
#[derive(Debug, Clone)]
enum Origin {
    /// Dialled (and re-dialled after drops) by the worker.
    Url(String),
    /// A channel handed over by the page.
    Attached,
}

/// Why an attached channel was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttachError {
    /// The channel's Noise handshake proved another key than the one the signalling named.
    #[error("key mismatch: the signalling named {expected}, the channel proved {proved}")]
    KeyMismatch {
        /// The key the page (from the signed signalling) said the channel leads to.
        expected: PublicKey,
        /// The key the remote proved in the handshake.
        proved: PublicKey,
    },
}

/// One connection's state, as `peers` reports it.
pub(crate) struct Conn {
    pub(crate) id: u32,
    origin: Origin,
    state: Cell<&'static str>,
    /// The key an attached channel must prove (the swarm's channels).
    expect: Option<PublicKey>,
    /// When the last message arrived (ms since the epoch; 0: none yet).
    pub(crate) last_in: Rc<Cell<f64>>,
    /// When the current session reached live (0: it has not).
    pub(crate) live_since: Cell<f64>,
    /// Whether any session of this connection reached live.
    pub(crate) was_live: Cell<bool>,
    remote: RefCell<Option<String>>,
    /// Totals over every session of this connection.
    sent: Cell<u64>,
    received: Cell<u64>,
    /// The current session's counts (added to the totals when it ends).
    cur_sent: Cell<u64>,
    cur_received: Cell<u64>,
    sessions: Cell<u32>,
    last_error: RefCell<Option<String>>,
    stopped: Cell<bool>,
    stop_waker: RefCell<Option<Waker>>,
    /// The open channel, closed by `disconnect`.
    channel: RefCell<Option<JsValue>>,
}

impl Conn {
    pub(crate) fn json(&self) -> Value {
        json!({
            "id": self.id,
            "expect": self.expect.map(|k| k.to_hex()),
            "url": match &self.origin { Origin::Url(u) => Value::from(u.as_str()), Origin::Attached => Value::Null },
            "kind": match self.origin { Origin::Url(_) => "websocket", Origin::Attached => "attached" },
            "state": self.state.get(),
            "remote": self.remote.borrow().clone(),
            "nodes_sent": self.sent.get() + self.cur_sent.get(),
            "nodes_received": self.received.get() + self.cur_received.get(),
            "sessions": self.sessions.get(),
            "last_error": self.last_error.borrow().clone(),
            // When the current session's first sync completed (ms since the epoch), if it has.
            "live_since": (self.live_since.get() > 0.0).then(|| self.live_since.get()),
        })
    }

    /// Whether the connection has ended for good (an attached channel is never re-opened).
    pub(crate) fn ended(&self) -> bool {
        self.state.get() == "closed"
    }

    /// Ends the connection (a live session says goodbye).
    pub(crate) fn stop(&self) {
        self.stopped.set(true);
        if let Some(w) = self.stop_waker.borrow_mut().take() {
            w.wake();
        }
        if let Some(ch) = self.channel.borrow_mut().take() {
            close_channel(&ch);
        }
    }

    /// Resolves when the connection is stopped.
    fn stopping(self: &Rc<Self>) -> impl Future<Output = ()> + use<> {
        let me = self.clone();
        std::future::poll_fn(move |cx| {
            if me.stopped.get() {
                Poll::Ready(())
            } else {
                *me.stop_waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }
}

/// The worker's connections.
pub struct Net {
    log: Log,
    keypair: Box<dyn Fn() -> Keypair>,
    conns: RefCell<Vec<Rc<Conn>>>,
    next_id: Cell<u32>,
    /// The blob store every session serves from and fetches into (see [`Net::serve_blobs`]).
    blobs: RefCell<Option<BlobStore>>,
    /// The blob protocol of each session running now.
    live_blobs: RefCell<Vec<LiveBlobs>>,
}

/// A running session's blob peer, and the waker of its driver (to send a new request at
/// once instead of at the session's next step).
struct LiveBlobs {
    peer: std::sync::Arc<std::sync::Mutex<BlobPeer>>,
    kick: Rc<RefCell<Option<Waker>>>,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net")
            .field("connections", &self.conns.borrow().len())
            .finish_non_exhaustive()
    }
}

/// Posts an event (`{event: …}`) to the page.
pub(crate) fn post_event(event: &Value) {
    if let Ok(scope) = js_sys::global().dyn_into::<web_sys::DedicatedWorkerGlobalScope>() {
        let _ = scope.post_message(&JsValue::from_str(&event.to_string()));
    }
}

/// Tells the page (an `{event: "peers", …}` message) that a connection changed.
fn notify(conn: &Conn, what: &str) {
    post_event(&json!({"event": "peers", "what": what, "peer": conn.json()}));
}

impl Net {
    /// Connections of the store `log`, authenticated as the key `keypair` returns (read at
    /// each handshake, so an imported identity is used from the next one).
    pub fn new(log: Log, keypair: impl Fn() -> Keypair + 'static) -> Rc<Net> {
        Rc::new(Net {
            log,
            keypair: Box::new(keypair),
            conns: RefCell::new(Vec::new()),
            next_id: Cell::new(1),
            blobs: RefCell::new(None),
            live_blobs: RefCell::new(Vec::new()),
        })
    }

    /// This peer's key pair (as the next handshake will use it).
    pub(crate) fn keypair(&self) -> Keypair {
        (self.keypair)()
    }

    /// Runs the blob protocol on every session from now on: serves `store`'s blobs to the
    /// peer and fetches from it the blobs named by nodes the session brings in (cairn-blob's
    /// `BlobPeer::fetch_referenced`), verified as they arrive.
    pub fn serve_blobs(&self, store: BlobStore) {
        *self.blobs.borrow_mut() = Some(store);
    }

    /// `blob_fetch`: asks every live session's peer for blob `hash` (one after the other: once
    /// it is stored, the next ones are answered from the store). Returns how many were asked.
    pub fn fetch_blob(&self, hash: BlobHash) -> usize {
        let live = self.live_blobs.borrow();
        for l in live.iter() {
            {
                let mut p = l
                    .peer
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if !p.is_fetching(&hash) {
                    p.fetch(hash);
                }
            }
            if let Some(w) = l.kick.borrow_mut().take() {
                w.wake();
            }
        }
        live.len()
    }

    fn add(
        self: &Rc<Self>,
        origin: Origin,
        expect: Option<PublicKey>,
        last_in: Rc<Cell<f64>>,
    ) -> Rc<Conn> {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let conn = Rc::new(Conn {
            id,
            origin,
            state: Cell::new("connecting"),
            expect,
            last_in,
            live_since: Cell::new(0.0),
            was_live: Cell::new(false),
            remote: RefCell::new(None),
            sent: Cell::new(0),
            received: Cell::new(0),
            cur_sent: Cell::new(0),
            cur_received: Cell::new(0),
            sessions: Cell::new(0),
            last_error: RefCell::new(None),
            stopped: Cell::new(false),
            stop_waker: RefCell::new(None),
            channel: RefCell::new(None),
        });
        let mut conns = self.conns.borrow_mut();
        // Ended attached channels are kept for `peers` to show, the newest few only (a swarm
        // makes new ones as peers come and go).
        let ended = |c: &Rc<Conn>| c.ended() && matches!(c.origin, Origin::Attached);
        let mut surplus = conns
            .iter()
            .filter(|c| ended(c))
            .count()
            .saturating_sub(KEEP_ENDED);
        conns.retain(|c| {
            if surplus > 0 && ended(c) {
                surplus -= 1;
                false
            } else {
                true
            }
        });
        conns.push(conn.clone());
        conn
    }

    /// `connect {url}`: dials a `ws://` or `wss://` URL and keeps a live session with it.
    pub fn connect(self: &Rc<Self>, url: &str) -> Result<Value, String> {
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            return Err(format!(
                "cannot connect to {url:?}: use ws://HOST:PORT/PATH"
            ));
        }
        let conn = self.add(Origin::Url(url.to_owned()), None, Rc::new(Cell::new(0.0)));
        let net = self.clone();
        let c = conn.clone();
        wasm_bindgen_futures::spawn_local(async move { net.dial_loop(c).await });
        Ok(conn.json())
    }

    /// `attach`: runs a live session (as the responder when `initiator` is false) over a
    /// channel the page handed over (a transferred RTCDataChannel, open or not yet open).
    /// With `expect`, the channel must prove that key in its handshake.
    pub(crate) fn attach(
        self: &Rc<Self>,
        channel: JsValue,
        initiator: bool,
        expect: Option<PublicKey>,
    ) -> Result<Rc<Conn>, String> {
        let last_in = Rc::new(Cell::new(0.0));
        let (tx, rx, handlers) = open_channel(channel.clone(), last_in.clone())?;
        let conn = self.add(Origin::Attached, expect, last_in);
        *conn.channel.borrow_mut() = Some(channel);
        let net = self.clone();
        let c = conn.clone();
        let role = if initiator {
            Role::Initiator
        } else {
            Role::Responder
        };
        wasm_bindgen_futures::spawn_local(async move {
            let opened = future::or(
                async {
                    within(ATTACH_OPEN_TIMEOUT, "opening the channel", rx.opened())
                        .await
                        .and_then(|r| r)
                },
                async {
                    c.stopping().await;
                    Err("stopped before the channel opened".to_owned())
                },
            )
            .await;
            let r = match opened {
                Ok(()) => net.session(&c, tx, rx, role).await,
                Err(e) => Err(e),
            };
            drop(handlers);
            c.record(r.map(drop));
            c.state.set("closed");
            notify(&c, "closed");
        });
        Ok(conn)
    }

    /// `disconnect {id}`: ends a connection (a live session says goodbye) and stops
    /// re-dialling it.
    pub fn disconnect(&self, id: u32) -> Result<Value, String> {
        let conns = self.conns.borrow();
        let conn = conns
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| format!("no connection {id}"))?;
        conn.stop();
        Ok(conn.json())
    }

    /// `peers`: every connection's state.
    pub fn peers(&self) -> Value {
        Value::Array(self.conns.borrow().iter().map(|c| c.json()).collect())
    }

    async fn dial_loop(self: Rc<Self>, conn: Rc<Conn>) {
        let Origin::Url(url) = conn.origin.clone() else {
            return;
        };
        let mut backoff = BACKOFF_MIN;
        while !conn.stopped.get() {
            conn.state.set("connecting");
            notify(&conn, "connecting");
            let mut completed = false;
            match dial(&url) {
                Err(e) => conn.record(Err(js_text(&e))),
                Ok(ws) => match open_channel(ws.clone(), conn.last_in.clone()) {
                    Err(e) => conn.record(Err(e)),
                    Ok((tx, rx, handlers)) => {
                        *conn.channel.borrow_mut() = Some(ws);
                        let opened =
                            within(HANDSHAKE_TIMEOUT, "opening the websocket", rx.opened())
                                .await
                                .and_then(|r| r);
                        let r = match opened {
                            Err(e) => Err(format!("connecting to {url}: {e}")),
                            Ok(()) => self.session(&conn, tx, rx, Role::Initiator).await,
                        };
                        completed = r.as_ref().is_ok_and(|done| *done);
                        conn.channel.borrow_mut().take();
                        drop(handlers);
                        conn.record(r.map(drop));
                    }
                },
            }
            if conn.stopped.get() {
                break;
            }
            if completed {
                backoff = BACKOFF_MIN;
            }
            conn.state.set("waiting");
            notify(&conn, "waiting");
            future::or(JsSleep::new(backoff), conn.stopping()).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        conn.state.set("closed");
        notify(&conn, "closed");
    }

    /// One session on an open channel: handshake, then a live sync until it ends. `Ok(true)`
    /// when its initial sync completed.
    async fn session(
        &self,
        conn: &Rc<Conn>,
        mut tx: ChannelTx,
        mut rx: ChannelRx,
        role: Role,
    ) -> Result<bool, String> {
        conn.state.set("handshake");
        notify(conn, "handshake");
        let me = (self.keypair)();
        let Established { peer, transport } = within(
            HANDSHAKE_TIMEOUT,
            "the handshake",
            handshake(&mut tx, &mut rx, &me, role),
        )
        .await?
        .map_err(|e| format!("handshake: {e}"))?;
        *conn.remote.borrow_mut() = Some(peer.to_hex());
        if let Some(expected) = conn.expect
            && expected != peer
        {
            return Err(AttachError::KeyMismatch {
                expected,
                proved: peer,
            }
            .to_string());
        }
        conn.sessions.set(conn.sessions.get() + 1);
        conn.state.set("syncing");
        notify(conn, "syncing");
        let (mut app, net) = duplex(PIPE);
        // Receiving and committing share this one thread: batches of 16 MiB make a fourth
        // of the commits (each rewrites the pages of the log's random-keyed index it touches),
        // and an 8 MiB window lets the peer send the next half batch meanwhile (the socket is
        // read on its own thread, `www/socket.js`). A 10k-page wiki of 100k edits cloned in
        // 12.1 s with the defaults, 8.5 s with these (README).
        let opts = SessionOptions {
            mode: Mode::Sync,
            live: true,
            insert_batch: 32_768,
            ready_bytes: 16 << 20,
            recv_window: 8 << 20,
            ..SessionOptions::default()
        };
        let log = self.log.clone();
        let complete = Cell::new(false);
        let c = conn.clone();
        // The blob protocol beside the log's, when the worker has a blob store.
        let blob_peer = self.blobs.borrow().clone().map(|b| {
            // Eager, a blob at most as large as `blob_add` takes, 512 MiB in all (OPFS).
            BlobPeer::new(b, true)
                .with_policy(cairn_blob::proto::FetchPolicy {
                    mode: cairn_blob::proto::FetchMode::Eager,
                    max_blob: crate::blob_api::MAX_BLOB,
                    max_total: 512 << 20,
                })
                .fetch_referenced(self.log.len())
                .shared()
        });
        let kick: Rc<RefCell<Option<Waker>>> = Rc::default();
        let ext = blob_peer.map(|(peer, ext)| {
            self.live_blobs.borrow_mut().push(LiveBlobs {
                peer,
                kick: kick.clone(),
            });
            ext
        });
        // The driver polls its stop future at every step: this one never resolves, and
        // keeps the waker `fetch_blob` wakes.
        let k = kick.clone();
        let kicked = std::future::poll_fn(move |cx| {
            *k.borrow_mut() = Some(cx.waker().clone());
            Poll::<()>::Pending
        });
        let stop = future::or(conn.stopping(), kicked);
        let work = async {
            let progress = |s: &Session<LogStore>| {
                let st = s.stats();
                let changed = st.nodes_received != c.cur_received.get()
                    || st.nodes_sent != c.cur_sent.get()
                    || (s.is_complete() && !complete.get());
                c.cur_sent.set(st.nodes_sent);
                c.cur_received.set(st.nodes_received);
                if s.is_complete() && !complete.get() {
                    complete.set(true);
                    c.state.set("live");
                    c.live_since.set(js_sys::Date::now());
                    c.was_live.set(true);
                }
                if changed {
                    notify(&c, "progress");
                }
            };
            cairn_sync::sync_log_with_extension(
                &log, &mut app, opts, stop, JsTimer, IDLE, progress, ext,
            )
            .await
        };
        let r = pump(transport, &mut tx, &mut rx, net, work).await;
        conn.live_since.set(0.0);
        self.live_blobs
            .borrow_mut()
            .retain(|l| !Rc::ptr_eq(&l.kick, &kick));
        conn.sent.set(conn.sent.get() + conn.cur_sent.replace(0));
        conn.received
            .set(conn.received.get() + conn.cur_received.replace(0));
        match r {
            Ok(_) => Ok(complete.get()),
            Err(PumpError::Link(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl Conn {
    fn record(&self, r: Result<(), String>) {
        if let Err(e) = r {
            *self.last_error.borrow_mut() = Some(e);
            self.state.set("failed");
            notify(self, "error");
        }
    }
}
