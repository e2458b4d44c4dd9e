//! The WebRTC swarm from the worker (wasm32 only): the ops `swarm_join`, `swarm_leave`,
//! `swarm` and `swarm_signal`.
//!
//! The worker is the swarm's signalling client: it holds the key, so it signs every message
//! to the hub (`cairn serve`'s `/hub`, cairn-signal's format) and checks every relayed one.
//! `RTCPeerConnection` exists only on the page, so the page (`www/swarm.js`) does what the
//! worker asks through `{event: "rtc", do, peer, sdp?}` events:
//!
//! - `offer`: make a peer connection and a data channel, hand the channel over at once
//!   (`attach {initiator: true, expect: peer}`), and send the offer back (`swarm_signal`);
//! - `answer`: make a peer connection from the offer in `sdp`, hand over the channel it
//!   announces (`attach {initiator: false, expect: peer}`), and send the answer back;
//! - `accept`: set the answer in `sdp` on the connection of `offer`;
//! - `close`: close the peer connection with `peer`.
//!
//! SDPs are sent whole, after ICE gathering (no trickled candidates). A signal's payload is
//! JSON: `{"sdp": "…"}`, or `{"busy": true}` for an answer that refuses the offer (the
//! answerer has `max_peers` connections).
//!
//! **Which members.** At most `max_peers` connections (negotiating or attached). When fewer,
//! the worker offers to members it has no connection with and that are not backing off,
//! chosen at random; both sides may offer, and when two offers cross, the one from the
//! smaller key wins (the larger key drops its own and answers). A connection that ends puts
//! its peer on a backoff (1 s doubling to 60 s; back to 1 s after a session that reached
//! live), so another member gets the slot meanwhile; a negotiation that has no open channel
//! within 20 s ends the same way. Data reaches every member through the others: every
//! session is live and sends on what the log receives from any peer.
//!
//! **Replacing a peer that makes no progress.** Every second: a live swarm connection that
//! has received no message at all — no nodes and no keep-alive, which a quiet live session
//! sends every 15 s — for 45 s, while another connection received messages in that time, is
//! ended and its peer backs off, so the slot goes to another member.
//!
//! The hub connection is re-dialled after a drop (0.5 s doubling to 30 s, back to 0.5 s after
//! a join that was answered); peer connections do not depend on it once open.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use cairn_log::core::PublicKey;
use cairn_net::MessageSource;
use cairn_signal::{
    Action, Challenge, ClientMessage, ErrorCode, HubMessage, MAX_HUB_MESSAGE, MAX_PAYLOAD,
    SignalKind, Topic,
};
use futures_lite::future;
use serde_json::{Value, json};
use wasm_bindgen::JsValue;

use crate::net::{ChannelTx, Conn, JsSleep, Net, open_channel, post_event, within};
use crate::opfs::js_text;

/// `max_peers` when the join names none.
pub const DEFAULT_MAX_PEERS: usize = 4;
/// The largest `max_peers` a join may ask for.
pub const MAX_MAX_PEERS: usize = 16;
const HUB_BACKOFF_MIN: Duration = Duration::from_millis(500);
const HUB_BACKOFF_MAX: Duration = Duration::from_secs(30);
const HUB_TIMEOUT: Duration = Duration::from_secs(10);
/// Milliseconds.
const PEER_BACKOFF_MIN: f64 = 1_000.0;
const PEER_BACKOFF_MAX: f64 = 60_000.0;
/// A negotiation without an attached channel after this many ms is given up.
const NEGOTIATE_TIMEOUT: f64 = 20_000.0;
/// A live connection silent this many ms (three keep-alive periods) while others are not is
/// replaced.
const STALL: f64 = 45_000.0;
const TICK: Duration = Duration::from_secs(1);

fn now() -> f64 {
    js_sys::Date::now()
}

/// One member this peer is negotiating with or connected to.
struct Slot {
    /// This side sent the offer.
    offerer: bool,
    /// The answer arrived (offerer) or was asked for (answerer).
    answered: bool,
    /// The handed-over channel's connection, once attached.
    conn: Option<Rc<Conn>>,
    /// When the negotiation started (ms).
    since: f64,
}

#[derive(Clone, Copy)]
struct Backoff {
    retry_at: f64,
    delay: f64,
}

/// The open hub connection.
struct HubLink {
    tx: ChannelTx,
    challenge: Challenge,
    counter: Cell<u64>,
}

/// A joined swarm.
struct Joined {
    url: String,
    name: String,
    topic: Topic,
    max_peers: usize,
    me: PublicKey,
    net: Rc<Net>,
    stopped: Cell<bool>,
    stop_wakers: RefCell<Vec<Waker>>,
    hub_state: Cell<&'static str>,
    hub_error: RefCell<Option<String>>,
    hub: RefCell<Option<HubLink>>,
    members: RefCell<BTreeSet<PublicKey>>,
    slots: RefCell<HashMap<PublicKey, Slot>>,
    backoff: RefCell<HashMap<PublicKey, Backoff>>,
    /// The last counter seen per (sender, sender's challenge): relays must grow it.
    seen: RefCell<HashMap<(PublicKey, [u8; 32]), u64>>,
    /// Relayed signals refused (bad signature, replayed, malformed payload).
    refused: Cell<u64>,
    /// Connections ended by the progress rule.
    replaced: Cell<u64>,
    /// Offers refused because all slots were taken.
    busy: Cell<u64>,
}

/// The worker's swarm membership (one swarm at a time).
pub struct Swarm {
    net: Rc<Net>,
    joined: RefCell<Option<Rc<Joined>>>,
}

impl std::fmt::Debug for Swarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Swarm")
            .field(
                "joined",
                &self.joined.borrow().as_ref().map(|j| j.name.clone()),
            )
            .finish_non_exhaustive()
    }
}

fn rtc(what: &str, peer: &PublicKey, sdp: Option<&str>) {
    let mut ev = json!({"event": "rtc", "do": what, "peer": peer.to_hex()});
    if let Some(sdp) = sdp {
        ev["sdp"] = Value::from(sdp);
    }
    post_event(&ev);
}

fn parse_key(hex: &str) -> Result<PublicKey, String> {
    PublicKey::from_hex(hex).map_err(|e| format!("not a public key: {e}"))
}

impl Swarm {
    /// No swarm joined yet.
    pub fn new(net: Rc<Net>) -> Swarm {
        Swarm {
            net,
            joined: RefCell::new(None),
        }
    }

    /// `swarm_join {url, swarm, max_peers}`: joins the swarm `swarm` through the hub at `url`
    /// (`ws://…/hub`); joining the swarm it is in already, through the same hub, returns it.
    pub fn join(&self, url: &str, name: &str, max_peers: Option<u64>) -> Result<Value, String> {
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            return Err(format!(
                "cannot join through {url:?}: use ws://HOST:PORT/hub"
            ));
        }
        if let Some(j) = self.joined.borrow().as_ref() {
            // Another tab of this profile (or a new owner replaying its tabs' joins) asking
            // for the swarm this worker is in already: nothing to do.
            if j.name == name && j.url == url {
                return Ok(j.json());
            }
            return Err(format!("already in the swarm {:?}: leave it first", j.name));
        }
        let max_peers = match max_peers {
            None => DEFAULT_MAX_PEERS,
            Some(n) if (1..=MAX_MAX_PEERS as u64).contains(&n) => n as usize,
            Some(n) => return Err(format!("max_peers {n}: use 1 to {MAX_MAX_PEERS}")),
        };
        let j = Rc::new(Joined {
            url: url.to_owned(),
            name: name.to_owned(),
            topic: Topic::of_swarm(name),
            max_peers,
            me: self.net.keypair().public(),
            net: self.net.clone(),
            stopped: Cell::new(false),
            stop_wakers: RefCell::new(Vec::new()),
            hub_state: Cell::new("connecting"),
            hub_error: RefCell::new(None),
            hub: RefCell::new(None),
            members: RefCell::new(BTreeSet::new()),
            slots: RefCell::new(HashMap::new()),
            backoff: RefCell::new(HashMap::new()),
            seen: RefCell::new(HashMap::new()),
            refused: Cell::new(0),
            replaced: Cell::new(0),
            busy: Cell::new(0),
        });
        *self.joined.borrow_mut() = Some(j.clone());
        wasm_bindgen_futures::spawn_local(j.clone().hub_loop());
        wasm_bindgen_futures::spawn_local(j.clone().tick_loop());
        Ok(j.json())
    }

    /// `swarm_leave`: leaves the swarm, ends its connections and closes the page's peer
    /// connections.
    pub fn leave(&self) -> Result<Value, String> {
        let j = self.joined.borrow_mut().take().ok_or("not in a swarm")?;
        j.stop();
        Ok(j.json())
    }

    /// `swarm`: the hub's state, the members and the connections.
    pub fn state(&self) -> Value {
        match self.joined.borrow().as_ref() {
            Some(j) => j.json(),
            None => json!({"joined": false}),
        }
    }

    /// `swarm_signal {peer, kind: "offer" | "answer", sdp}`: the page's SDP for `peer`,
    /// signed and sent through the hub.
    pub fn signal(&self, peer: &str, kind: &str, sdp: &str) -> Result<Value, String> {
        let j = self.joined.borrow().clone().ok_or("not in a swarm")?;
        let peer = parse_key(peer)?;
        let kind = match kind {
            "offer" => SignalKind::Offer,
            "answer" => SignalKind::Answer,
            k => return Err(format!("signal kind {k:?}: use offer or answer")),
        };
        if !j.slots.borrow().contains_key(&peer) {
            return Err("no negotiation with that peer (it ended)".into());
        }
        let payload = json!({"sdp": sdp}).to_string().into_bytes();
        if payload.len() > MAX_PAYLOAD {
            return Err(format!(
                "an SDP of {} bytes (at most {MAX_PAYLOAD})",
                payload.len()
            ));
        }
        j.send(Action::Signal {
            to: peer,
            kind,
            payload,
        })?;
        Ok(json!({"sent": true}))
    }

    /// Links a channel the page attached with `expect` to its swarm slot, if it has one.
    pub(crate) fn attached(&self, expect: &PublicKey, conn: &Rc<Conn>) {
        let Some(j) = self.joined.borrow().clone() else {
            return;
        };
        let mut slots = j.slots.borrow_mut();
        if let Some(slot) = slots.get_mut(expect)
            && slot.conn.is_none()
        {
            slot.conn = Some(conn.clone());
        }
    }
}

impl Joined {
    fn json(&self) -> Value {
        let slots = self.slots.borrow();
        let peers: Vec<Value> = slots
            .iter()
            .map(|(k, s)| {
                let state = match &s.conn {
                    Some(c) if c.live_since.get() > 0.0 => "live",
                    Some(_) => "connecting",
                    None => "negotiating",
                };
                json!({
                    "key": k.to_hex(),
                    "state": state,
                    "offerer": s.offerer,
                    "conn": s.conn.as_ref().map(|c| c.id),
                })
            })
            .collect();
        json!({
            "joined": !self.stopped.get(),
            "swarm": self.name,
            "url": self.url,
            "public": self.me.to_hex(),
            "max_peers": self.max_peers,
            "hub": self.hub_state.get(),
            "hub_error": self.hub_error.borrow().clone(),
            "members": self.members.borrow().iter().map(|k| k.to_hex()).collect::<Vec<_>>(),
            "peers": peers,
            "connected": slots.values().filter(|s| s.conn.as_ref().is_some_and(|c| c.live_since.get() > 0.0)).count(),
            "refused": self.refused.get(),
            "replaced": self.replaced.get(),
            "busy": self.busy.get(),
        })
    }

    fn changed(&self) {
        post_event(&json!({"event": "swarm", "swarm": self.json()}));
    }

    fn stop(&self) {
        self.stopped.set(true);
        for w in self.stop_wakers.borrow_mut().drain(..) {
            w.wake();
        }
        let slots: Vec<(PublicKey, Slot)> = self.slots.borrow_mut().drain().collect();
        for (k, s) in slots {
            if let Some(c) = s.conn {
                c.stop();
            }
            rtc("close", &k, None);
        }
        self.hub_state.set("left");
        self.changed();
    }

    fn stopping(self: &Rc<Self>) -> impl std::future::Future<Output = ()> + use<> {
        let me = self.clone();
        std::future::poll_fn(move |cx| {
            if me.stopped.get() {
                Poll::Ready(())
            } else {
                me.stop_wakers.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
    }

    /// Signs `action` and sends it to the hub.
    fn send(&self, action: Action) -> Result<(), String> {
        let hub = self.hub.borrow();
        let hub = hub.as_ref().ok_or("not connected to the hub")?;
        let counter = hub.counter.get() + 1;
        hub.counter.set(counter);
        let msg = ClientMessage::sign(
            &self.net.keypair(),
            &hub.challenge,
            counter,
            self.topic,
            action,
        );
        hub.tx.send_now(&msg.encode()).map_err(|e| e.to_string())
    }

    async fn hub_loop(self: Rc<Self>) {
        let mut backoff = HUB_BACKOFF_MIN;
        while !self.stopped.get() {
            self.hub_state.set("connecting");
            self.changed();
            let r = self.hub_session().await;
            self.hub.borrow_mut().take();
            self.members.borrow_mut().clear();
            match r {
                Ok(true) => backoff = HUB_BACKOFF_MIN,
                Ok(false) => {}
                Err(e) => *self.hub_error.borrow_mut() = Some(e),
            }
            if self.stopped.get() {
                break;
            }
            self.hub_state.set("waiting");
            self.changed();
            future::or(JsSleep::new(backoff), self.stopping()).await;
            backoff = (backoff * 2).min(HUB_BACKOFF_MAX);
        }
    }

    /// One hub connection: welcome, join, then its messages until it ends. `Ok(true)` when
    /// the join was answered.
    async fn hub_session(self: &Rc<Self>) -> Result<bool, String> {
        let ws: JsValue = web_sys::WebSocket::new(&self.url)
            .map_err(|e| js_text(&e))?
            .into();
        let (tx, mut rx, handlers) = open_channel(ws, Rc::new(Cell::new(0.0)))?;
        let opened = future::or(
            async { Some(within(HUB_TIMEOUT, "opening the hub", rx.opened()).await) },
            async {
                self.stopping().await;
                None
            },
        )
        .await;
        match opened {
            None => return Ok(false),
            Some(r) => r
                .and_then(|r| r)
                .map_err(|e| format!("{}: {e}", self.url))?,
        }
        let mut buf = Vec::new();
        let got = within(
            HUB_TIMEOUT,
            "the hub's welcome",
            rx.recv(&mut buf, MAX_HUB_MESSAGE),
        )
        .await?
        .map_err(|e| e.to_string())?;
        if !got {
            return Err("the hub closed the connection before its welcome".into());
        }
        let HubMessage::Welcome { challenge } =
            HubMessage::decode(&buf).map_err(|e| format!("from the hub: {e}"))?
        else {
            return Err("the hub's first message is not a welcome".into());
        };
        *self.hub.borrow_mut() = Some(HubLink {
            tx,
            challenge,
            counter: Cell::new(0),
        });
        self.send(Action::Join)?;
        let mut answered = false;
        let r = loop {
            let next = future::or(
                async { Some(rx.recv(&mut buf, MAX_HUB_MESSAGE).await) },
                async {
                    self.stopping().await;
                    None
                },
            )
            .await;
            let msg = match next {
                None => {
                    let _ = self.send(Action::Leave);
                    break Ok(answered);
                }
                Some(Err(e)) => break Err(format!("the hub: {e}")),
                Some(Ok(false)) => break Err("the hub closed the connection".into()),
                Some(Ok(true)) => match HubMessage::decode(&buf) {
                    Ok(m) => m,
                    Err(e) => break Err(format!("from the hub: {e}")),
                },
            };
            if matches!(msg, HubMessage::Members { .. }) {
                answered = true;
                self.hub_state.set("joined");
                *self.hub_error.borrow_mut() = None;
            }
            if let Err(e) = self.on_hub(msg) {
                break Err(e);
            }
        };
        drop(handlers);
        r
    }

    fn on_hub(self: &Rc<Self>, msg: HubMessage) -> Result<(), String> {
        match msg {
            HubMessage::Members { topic, peers } if topic == self.topic => {
                *self.members.borrow_mut() = peers.into_iter().filter(|k| *k != self.me).collect();
                self.maintain();
                self.changed();
            }
            HubMessage::PeerJoined { topic, peer } if topic == self.topic && peer != self.me => {
                self.members.borrow_mut().insert(peer);
                self.maintain();
                self.changed();
            }
            HubMessage::PeerLeft { topic, peer } if topic == self.topic => {
                self.members.borrow_mut().remove(&peer);
                self.seen.borrow_mut().retain(|(k, _), _| *k != peer);
                // A negotiation with it cannot finish; an open channel lives on by itself.
                let drop_it = self
                    .slots
                    .borrow()
                    .get(&peer)
                    .is_some_and(|s| s.conn.is_none());
                if drop_it {
                    self.end_slot(&peer, false);
                }
                self.maintain();
                self.changed();
            }
            HubMessage::Relay(relay) => match relay.verify(&self.me) {
                Err(_) => self.refused.set(self.refused.get() + 1),
                Ok((from, kind, payload)) => {
                    let counter = relay.message.counter;
                    let mut seen = self.seen.borrow_mut();
                    let last = seen.entry((from, relay.challenge.0)).or_insert(0);
                    if counter <= *last {
                        drop(seen);
                        self.refused.set(self.refused.get() + 1);
                    } else {
                        *last = counter;
                        drop(seen);
                        self.on_signal(from, kind, payload);
                    }
                }
            },
            HubMessage::Error { code, text, .. } => match code {
                ErrorCode::NoSuchPeer | ErrorCode::NotMember => {
                    *self.hub_error.borrow_mut() = Some(format!("the hub: {text}"));
                }
                _ => return Err(format!("the hub refused: {text} ({code:?})")),
            },
            _ => {}
        }
        Ok(())
    }

    fn on_signal(self: &Rc<Self>, from: PublicKey, kind: SignalKind, payload: &[u8]) {
        #[derive(serde::Deserialize)]
        struct Payload {
            sdp: Option<String>,
            #[serde(default)]
            busy: bool,
        }
        let Ok(p) = serde_json::from_slice::<Payload>(payload) else {
            self.refused.set(self.refused.get() + 1);
            return;
        };
        match kind {
            SignalKind::Offer => {
                let Some(sdp) = p.sdp else {
                    self.refused.set(self.refused.get() + 1);
                    return;
                };
                let existing = self
                    .slots
                    .borrow()
                    .get(&from)
                    .map(|s| (s.offerer, s.answered));
                match existing {
                    // Crossed offers: the smaller key's wins.
                    Some((true, false)) if self.me < from => return,
                    // Ours loses, or the peer starts again (its side of ours has ended).
                    Some(_) => self.end_slot(&from, true),
                    None if self.slots.borrow().len() >= self.max_peers => {
                        self.busy.set(self.busy.get() + 1);
                        let _ = self.send(Action::Signal {
                            to: from,
                            kind: SignalKind::Answer,
                            payload: br#"{"busy":true}"#.to_vec(),
                        });
                        return;
                    }
                    None => {}
                }
                self.slots.borrow_mut().insert(
                    from,
                    Slot {
                        offerer: false,
                        answered: true,
                        conn: None,
                        since: now(),
                    },
                );
                rtc("answer", &from, Some(&sdp));
                self.changed();
            }
            SignalKind::Answer => {
                let waiting = self
                    .slots
                    .borrow()
                    .get(&from)
                    .is_some_and(|s| s.offerer && !s.answered);
                if !waiting {
                    return;
                }
                match p.sdp {
                    Some(sdp) if !p.busy => {
                        if let Some(s) = self.slots.borrow_mut().get_mut(&from) {
                            s.answered = true;
                        }
                        rtc("accept", &from, Some(&sdp));
                    }
                    _ => {
                        self.end_slot(&from, false);
                        self.maintain();
                    }
                }
                self.changed();
            }
            // SDPs carry their candidates; nothing is trickled.
            _ => {}
        }
    }

    /// Ends the negotiation or connection with `peer`; it backs off before this side offers
    /// to it again (briefly when its session had reached live).
    fn end_slot(&self, peer: &PublicKey, was_fine: bool) {
        let Some(slot) = self.slots.borrow_mut().remove(peer) else {
            return;
        };
        let live = slot.conn.as_ref().is_some_and(|c| c.was_live.get());
        if let Some(c) = &slot.conn {
            c.stop();
        }
        rtc("close", peer, None);
        let mut backoff = self.backoff.borrow_mut();
        let prev = backoff
            .get(peer)
            .map_or(PEER_BACKOFF_MIN / 2.0, |b| b.delay);
        let delay = if live || was_fine {
            PEER_BACKOFF_MIN
        } else {
            (prev * 2.0).clamp(PEER_BACKOFF_MIN, PEER_BACKOFF_MAX)
        };
        backoff.insert(
            *peer,
            Backoff {
                retry_at: now() + delay,
                delay,
            },
        );
    }

    /// Offers to members while there are free slots.
    fn maintain(self: &Rc<Self>) {
        if self.stopped.get() || self.hub_state.get() != "joined" {
            return;
        }
        let t = now();
        let free = self.max_peers.saturating_sub(self.slots.borrow().len());
        if free == 0 {
            return;
        }
        let mut candidates: Vec<PublicKey> = {
            let slots = self.slots.borrow();
            let backoff = self.backoff.borrow();
            self.members
                .borrow()
                .iter()
                .filter(|k| !slots.contains_key(k))
                .filter(|k| backoff.get(k).is_none_or(|b| b.retry_at <= t))
                .copied()
                .collect()
        };
        // A random choice: each member's connections spread over the swarm.
        for i in (1..candidates.len()).rev() {
            let j = (js_sys::Math::random() * (i + 1) as f64) as usize;
            candidates.swap(i, j.min(i));
        }
        for k in candidates.into_iter().take(free) {
            self.slots.borrow_mut().insert(
                k,
                Slot {
                    offerer: true,
                    answered: false,
                    conn: None,
                    since: t,
                },
            );
            rtc("offer", &k, None);
        }
        self.changed();
    }

    async fn tick_loop(self: Rc<Self>) {
        while !self.stopped.get() {
            future::or(JsSleep::new(TICK), self.stopping()).await;
            if self.stopped.get() {
                break;
            }
            self.tick();
        }
    }

    /// Ends what ended or stalled, then fills free slots.
    fn tick(self: &Rc<Self>) {
        let t = now();
        let mut ended = Vec::new();
        let mut stalled = Vec::new();
        {
            let slots = self.slots.borrow();
            // Whether a connection other than `k`'s received anything within STALL.
            let others_active = |k: &PublicKey| {
                slots.iter().any(|(o, s)| {
                    o != k && s.conn.as_ref().is_some_and(|c| t - c.last_in.get() < STALL)
                })
            };
            for (k, s) in slots.iter() {
                match &s.conn {
                    Some(c) if c.ended() => ended.push(*k),
                    Some(c) => {
                        let live = c.live_since.get();
                        if live > 0.0
                            && t - live > STALL
                            && t - c.last_in.get() > STALL
                            && others_active(k)
                        {
                            stalled.push(*k);
                        }
                    }
                    None if t - s.since > NEGOTIATE_TIMEOUT => ended.push(*k),
                    None => {}
                }
            }
        }
        let changed = !ended.is_empty() || !stalled.is_empty();
        for k in ended {
            self.end_slot(&k, false);
        }
        for k in stalled {
            self.replaced.set(self.replaced.get() + 1);
            self.end_slot(&k, false);
        }
        let members = self.members.borrow();
        self.backoff
            .borrow_mut()
            .retain(|k, b| b.retry_at > t || members.contains(k));
        drop(members);
        self.maintain();
        if changed {
            self.changed();
        }
    }
}
