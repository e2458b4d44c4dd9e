//! The signalling hub at `/hub` of `cairn serve --http`: browsers (and any client) of one
//! swarm find each other and exchange WebRTC offers, answers and ICE candidates through it.
//! Messages are cairn-signal's (`docs/FORMAT.md`, "Signalling messages").
//!
//! - On connecting, a client gets a fresh random challenge. Every message it sends is signed
//!   by its key over that challenge and a counter that must grow; its first message (a join)
//!   proves the key, and every later one must be by the same key.
//! - The hub relays a signal only to the named member of the same topic, and only from a
//!   member of that topic; it announces joins and leaves (a connection's end leaves all its
//!   topics).
//! - Caps: clients in all and per source address (besides `cairn serve`'s connection caps,
//!   which every HTTP connection counts against), topics per client, members per topic,
//!   message size (tungstenite refuses a larger message or frame as its header arrives,
//!   before buffering it) and rate (a token bucket per client).
//! - A client that breaks a rule — an undecodable, oversize or text message, a forged
//!   signature, another key than its own, a replayed (not growing) counter, too many
//!   messages, or not reading what it is sent — gets an error naming the rule and is
//!   dropped; drops are counted and summed up in the log every 10 s, each at debug level.
//!   Refusals that are not a client's fault (a recipient that just left, a full topic) are
//!   answered with an error and the client stays.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::Result;
use cairn_core::PublicKey;
use cairn_signal::{
    Action, Challenge, ClientMessage, ErrorCode, HubMessage, MAX_CLIENT_MESSAGE, Relay, Topic,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The hub's caps.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Limits {
    /// Signalling clients connected to the hub at once, in all.
    #[arg(
        id = "hub_max_clients",
        long = "hub-max-clients",
        value_name = "N",
        default_value_t = 4096
    )]
    pub max_clients: usize,
    /// Signalling clients from one source address.
    #[arg(
        id = "hub_max_per_ip",
        long = "hub-max-per-ip",
        value_name = "N",
        default_value_t = 64
    )]
    pub max_per_ip: usize,
    /// Topics (swarms) one client may join.
    #[arg(
        id = "hub_topics_per_client",
        long = "hub-topics-per-client",
        value_name = "N",
        default_value_t = 8
    )]
    pub topics_per_client: usize,
    /// Members of one topic.
    #[arg(
        id = "hub_members_per_topic",
        long = "hub-members-per-topic",
        value_name = "N",
        default_value_t = 1024
    )]
    pub members_per_topic: usize,
    /// Messages a client may send per second, on average.
    #[arg(
        id = "hub_rate",
        long = "hub-rate",
        value_name = "PER_SEC",
        default_value_t = 20.0
    )]
    pub rate: f64,
    /// Messages a client may send in a burst (the token bucket's size).
    #[arg(
        id = "hub_burst",
        long = "hub-burst",
        value_name = "N",
        default_value_t = 100
    )]
    pub burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_clients: 4096,
            max_per_ip: 64,
            topics_per_client: 8,
            members_per_topic: 1024,
            rate: 20.0,
            burst: 100,
        }
    }
}

/// Messages queued for one client; a client that lets its queue fill is not reading and is
/// dropped.
const QUEUE: usize = 64;
/// Time a new client has to join a topic.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// A ping after this long without a message from the client…
const PING_EVERY: Duration = Duration::from_secs(30);
/// …and the client is gone after this long without one (browsers answer pings by
/// themselves).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Longest a message to a client may take to be written.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How often drops and refusals are summed up in the log.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// tungstenite's limits for a hub connection: no message or frame over the largest client
/// message (refused as the header arrives), small buffers.
pub(crate) fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_CLIENT_MESSAGE))
        .max_frame_size(Some(MAX_CLIENT_MESSAGE))
        .read_buffer_size(4 << 10)
        .write_buffer_size(4 << 10)
        .max_write_buffer_size(256 << 10)
}

/// Why a client was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Breach {
    /// Undecodable, or a text message.
    Malformed,
    /// Over the message size limit.
    Oversize,
    /// A signature that is not the named key's.
    Forged,
    /// A message by another key than the connection's.
    WrongKey,
    /// A counter that did not grow.
    Replayed,
    /// More messages than the rate allows.
    TooFast,
    /// Its queue filled: it does not read what it is sent.
    NotReading,
    /// No join within [`JOIN_TIMEOUT`], or silent for [`IDLE_TIMEOUT`].
    Idle,
}

impl Breach {
    const ALL: [Breach; 8] = [
        Breach::Malformed,
        Breach::Oversize,
        Breach::Forged,
        Breach::WrongKey,
        Breach::Replayed,
        Breach::TooFast,
        Breach::NotReading,
        Breach::Idle,
    ];

    fn name(self) -> &'static str {
        match self {
            Breach::Malformed => "malformed",
            Breach::Oversize => "oversize",
            Breach::Forged => "forged",
            Breach::WrongKey => "wrong key",
            Breach::Replayed => "replayed",
            Breach::TooFast => "too fast",
            Breach::NotReading => "not reading",
            Breach::Idle => "idle",
        }
    }
}

/// One connected client, as the hub's state holds it.
struct Client {
    ip: IpAddr,
    /// Its queue of encoded messages.
    tx: mpsc::Sender<Vec<u8>>,
    /// Wakes its task to drop it (its queue filled).
    kick: Arc<Notify>,
    /// Joins and leaves not yet sent to it, coalesced (see [`Events`]).
    events: Arc<Events>,
    /// The topics it is a member of.
    topics: HashSet<Topic>,
}

#[derive(Default)]
struct State {
    clients: HashMap<u64, Client>,
    per_ip: HashMap<IpAddr, usize>,
    /// Each topic's members: key → client.
    topics: HashMap<Topic, HashMap<PublicKey, u64>>,
}

/// The joins and leaves a client has not been sent yet, at most one per (topic, key): the
/// latest. A join storm in a topic of n members makes n² announcements, far more than a
/// message queue should hold, but what each member needs is only the latest state of each
/// other member, so this is bounded by its topics × members per topic however fast members
/// come and go. (A client may then hear that a key joined again without having heard it
/// leave: that key reconnected.)
/// The order in which (topic, key) pairs became pending, and the latest event of each
/// (`true`: joined).
type Pending = (
    std::collections::VecDeque<(Topic, PublicKey)>,
    HashMap<(Topic, PublicKey), bool>,
);

#[derive(Default)]
struct Events {
    pending: std::sync::Mutex<Pending>,
    /// Wakes the client's task when something is pending.
    wake: Notify,
}

impl Events {
    fn note(&self, topic: Topic, peer: PublicKey, joined: bool) {
        let mut p = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (order, latest) = &mut *p;
        if latest.insert((topic, peer), joined).is_none() {
            order.push_back((topic, peer));
        }
        drop(p);
        self.wake.notify_one();
    }

    /// Takes everything pending, oldest first, encoded.
    fn take(&self) -> Vec<Vec<u8>> {
        let mut p = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (order, latest) = &mut *p;
        let out = order
            .drain(..)
            .filter_map(|(topic, peer)| {
                let joined = latest.remove(&(topic, peer))?;
                Some(if joined {
                    HubMessage::PeerJoined { topic, peer }.encode()
                } else {
                    HubMessage::PeerLeft { topic, peer }.encode()
                })
            })
            .collect();
        *latest = HashMap::new();
        out
    }
}

/// The hub: its caps, its clients and topics, its counters.
pub(crate) struct Hub {
    limits: Limits,
    state: std::sync::Mutex<State>,
    next_id: AtomicU64,
    /// Clients dropped since the last report, by [`Breach`] (in `Breach::ALL`'s order).
    dropped: [AtomicU64; 8],
    /// Clients refused over the hub's caps since the last report.
    refused: AtomicU64,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("limits", &self.limits).finish()
    }
}

impl Hub {
    /// A hub with `limits`; its report loop runs on the current runtime.
    pub(crate) fn new(limits: Limits) -> Arc<Hub> {
        let hub = Arc::new(Hub {
            limits,
            state: std::sync::Mutex::default(),
            next_id: AtomicU64::new(1),
            dropped: Default::default(),
            refused: AtomicU64::new(0),
        });
        tokio::spawn(report(Arc::downgrade(&hub)));
        hub
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn count(&self, why: Breach) {
        let i = Breach::ALL.iter().position(|d| *d == why).unwrap_or(0);
        self.dropped[i].fetch_add(1, Relaxed);
    }

    /// Queues `msg` for client `id`; a client whose queue is full is kicked. Returns
    /// whether it was queued.
    fn send_to(&self, state: &State, id: u64, msg: &HubMessage) -> bool {
        let Some(c) = state.clients.get(&id) else {
            return false;
        };
        match c.tx.try_send(msg.encode()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                c.kick.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Tells every member of `topic` but `except` that `peer` joined or left.
    fn announce(&self, state: &State, topic: &Topic, except: u64, peer: PublicKey, joined: bool) {
        if let Some(members) = state.topics.get(topic) {
            for id in members.values().filter(|id| **id != except) {
                if let Some(c) = state.clients.get(id) {
                    c.events.note(*topic, peer, joined);
                }
            }
        }
    }

    /// Removes client `id` (its connection ended): it leaves its topics, announced.
    fn remove(&self, id: u64, key: Option<PublicKey>) {
        let mut state = self.state();
        let Some(c) = state.clients.remove(&id) else {
            return;
        };
        if let Some(n) = state.per_ip.get_mut(&c.ip) {
            *n -= 1;
            if *n == 0 {
                state.per_ip.remove(&c.ip);
            }
        }
        let Some(key) = key else { return };
        for topic in c.topics {
            leave(&mut state, &topic, &key, id);
            self.announce(&state, &topic, id, key, false);
        }
    }
}

/// Removes `key` of client `id` from `topic` (and the topic when it empties).
fn leave(state: &mut State, topic: &Topic, key: &PublicKey, id: u64) {
    if let Some(members) = state.topics.get_mut(topic) {
        if members.get(key) == Some(&id) {
            members.remove(key);
        }
        if members.is_empty() {
            state.topics.remove(topic);
        }
    }
}

/// Sums up drops and refusals, a line per [`REPORT_EVERY`] at most; ends with the hub.
async fn report(hub: std::sync::Weak<Hub>) {
    let mut every = tokio::time::interval(REPORT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        let Some(hub) = hub.upgrade() else { return };
        let counts: Vec<String> = Breach::ALL
            .iter()
            .zip(&hub.dropped)
            .filter_map(|(d, n)| match n.swap(0, Relaxed) {
                0 => None,
                n => Some(format!("{} {n}", d.name())),
            })
            .collect();
        if !counts.is_empty() {
            tracing::warn!(
                "hub: dropped clients that broke its rules in the last {REPORT_EVERY:?}: {}",
                counts.join(", ")
            );
        }
        let n = hub.refused.swap(0, Relaxed);
        if n > 0 {
            let Limits {
                max_clients,
                max_per_ip,
                ..
            } = hub.limits;
            tracing::warn!(
                "hub: refused {n} clients in the last {REPORT_EVERY:?} (caps: {max_clients} in all, {max_per_ip} per address)"
            );
        }
    }
}

/// The per-client token bucket.
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self, limits: &Limits) -> bool {
        let now = Instant::now();
        let burst = f64::from(limits.burst.max(1));
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * limits.rate).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One connection's part of the protocol: its key once proven, its last counter.
struct Conn {
    id: u64,
    from: SocketAddr,
    challenge: Challenge,
    key: Option<PublicKey>,
    counter: Option<u64>,
    bucket: Bucket,
}

/// What to do after a client's message.
enum Next {
    /// Go on; maybe with an answer for the client itself (encoded).
    Reply(Option<Vec<u8>>),
    /// Drop the client for breaking a rule.
    Breach(Breach, u64),
}

impl Hub {
    /// Handles one binary message of connection `c`.
    fn on_message(&self, c: &mut Conn, bytes: &[u8]) -> Next {
        if !c.bucket.take(&self.limits) {
            return Next::Breach(Breach::TooFast, 0);
        }
        let m = match ClientMessage::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!("{}: hub: {e}", c.from);
                return Next::Breach(Breach::Malformed, 0);
            }
        };
        if c.key.is_some_and(|k| k != m.from) {
            return Next::Breach(Breach::WrongKey, m.counter);
        }
        if c.counter.is_some_and(|last| m.counter <= last) {
            return Next::Breach(Breach::Replayed, m.counter);
        }
        if m.verify(&c.challenge).is_err() {
            return Next::Breach(Breach::Forged, m.counter);
        }
        c.key = Some(m.from);
        c.counter = Some(m.counter);
        let counter = m.counter;
        let error = |code, text: &str| {
            Next::Reply(Some(
                HubMessage::Error {
                    code,
                    counter,
                    text: text.to_owned(),
                }
                .encode(),
            ))
        };
        let topic = m.topic;
        let mut state = self.state();
        let state = &mut *state;
        let member = state
            .clients
            .get(&c.id)
            .is_some_and(|me| me.topics.contains(&topic));
        match m.action {
            Action::Join => {
                if !member {
                    let joined = state.clients.get(&c.id).map_or(0, |me| me.topics.len());
                    if joined >= self.limits.topics_per_client {
                        return error(ErrorCode::TooManyTopics, "too many topics joined");
                    }
                    let members = state.topics.get(&topic).map_or(0, HashMap::len);
                    let replaces = state
                        .topics
                        .get(&topic)
                        .and_then(|ms| ms.get(&m.from))
                        .copied();
                    if replaces.is_none() && members >= self.limits.members_per_topic {
                        return error(ErrorCode::TopicFull, "the topic is full");
                    }
                    // The same key from another connection (a reconnect): the new one,
                    // which proved the key as well, takes its place.
                    if let Some(old) = replaces {
                        self.send_to(
                            state,
                            old,
                            &HubMessage::Error {
                                code: ErrorCode::Replaced,
                                counter: 0,
                                text: "joined from another connection".into(),
                            },
                        );
                        if let Some(o) = state.clients.get_mut(&old) {
                            o.topics.remove(&topic);
                        }
                    }
                    state.topics.entry(topic).or_default().insert(m.from, c.id);
                    if let Some(me) = state.clients.get_mut(&c.id) {
                        me.topics.insert(topic);
                    }
                    self.announce(state, &topic, c.id, m.from, true);
                }
                let peers = state
                    .topics
                    .get(&topic)
                    .map(|ms| ms.keys().filter(|k| **k != m.from).copied().collect())
                    .unwrap_or_default();
                Next::Reply(Some(HubMessage::Members { topic, peers }.encode()))
            }
            Action::Leave => {
                if !member {
                    return error(ErrorCode::NotMember, "not a member of that topic");
                }
                leave(state, &topic, &m.from, c.id);
                if let Some(me) = state.clients.get_mut(&c.id) {
                    me.topics.remove(&topic);
                }
                self.announce(state, &topic, c.id, m.from, false);
                Next::Reply(None)
            }
            Action::Signal { to, .. } => {
                if !member {
                    return error(ErrorCode::NotMember, "not a member of that topic");
                }
                let Some(id) = state.topics.get(&topic).and_then(|ms| ms.get(&to)).copied() else {
                    return error(ErrorCode::NoSuchPeer, "no such member of the topic");
                };
                let relay = HubMessage::Relay(Relay {
                    challenge: c.challenge,
                    message: m,
                });
                if self.send_to(state, id, &relay) {
                    Next::Reply(None)
                } else {
                    error(ErrorCode::NoSuchPeer, "the member is not reading")
                }
            }
            _ => Next::Breach(Breach::Malformed, m.counter),
        }
    }
}

/// A random challenge from the OS.
fn challenge() -> Result<Challenge> {
    let mut c = [0u8; 32];
    getrandom::fill(&mut c).map_err(|e| anyhow::anyhow!("no randomness for a challenge: {e}"))?;
    Ok(Challenge(c))
}

/// Serves one hub client on `ws` until it leaves, breaks a rule, goes idle or the server
/// stops.
pub(crate) async fn serve_client(
    hub: Arc<Hub>,
    mut ws: WebSocketStream<TcpStream>,
    from: SocketAddr,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let ip = from.ip();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE);
    let kick = Arc::new(Notify::new());
    let events = Arc::new(Events::default());
    let id = hub.next_id.fetch_add(1, Relaxed);
    let admitted = {
        let mut state = hub.state();
        let from_ip = state.per_ip.get(&ip).copied().unwrap_or(0);
        let admitted =
            state.clients.len() < hub.limits.max_clients && from_ip < hub.limits.max_per_ip;
        if admitted {
            *state.per_ip.entry(ip).or_insert(0) += 1;
            state.clients.insert(
                id,
                Client {
                    ip,
                    tx,
                    kick: kick.clone(),
                    events: events.clone(),
                    topics: HashSet::new(),
                },
            );
        }
        admitted
    };
    if !admitted {
        hub.refused.fetch_add(1, Relaxed);
        let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
        return;
    }
    let mut conn = match challenge() {
        Ok(challenge) => Conn {
            id,
            from,
            challenge,
            key: None,
            counter: None,
            bucket: Bucket {
                tokens: f64::from(hub.limits.burst.max(1)),
                at: Instant::now(),
            },
        },
        Err(e) => {
            tracing::error!("{from}: hub: {e}");
            hub.remove(id, None);
            return;
        }
    };
    let dropped = run_client(
        &hub,
        &mut conn,
        &mut ws,
        &mut rx,
        (&kick, &events),
        &mut stopping,
    )
    .await;
    hub.remove(id, conn.key);
    if let Some((why, counter)) = dropped {
        hub.count(why);
        tracing::debug!(
            "{from}: hub: dropped ({}) {}",
            why.name(),
            conn.key.map(|k| k.to_string()).unwrap_or_default()
        );
        let msg = HubMessage::Error {
            code: ErrorCode::Dropped,
            counter,
            text: format!("dropped: {}", why.name()),
        };
        // Then a lingering close: what the client still sends is read and thrown away for
        // a moment, so that closing with unread input (a TCP reset) does not destroy the
        // error before the client reads it.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let _ = ws.send(Message::binary(msg.encode())).await;
            let _ = ws.close(None).await;
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
    }
}

/// The client's loop; `Some` when it is dropped for breaking a rule.
async fn run_client(
    hub: &Hub,
    conn: &mut Conn,
    ws: &mut WebSocketStream<TcpStream>,
    rx: &mut mpsc::Receiver<Vec<u8>>,
    (kick, events): (&Notify, &Events),
    stopping: &mut tokio::sync::watch::Receiver<bool>,
) -> Option<(Breach, u64)> {
    let welcome = HubMessage::Welcome {
        challenge: conn.challenge,
    };
    if send(ws, welcome.encode()).await.is_err() {
        return None;
    }
    let joined_by = tokio::time::Instant::now() + JOIN_TIMEOUT;
    let mut heard = tokio::time::Instant::now();
    let mut ping = tokio::time::interval_at(heard + PING_EVERY, PING_EVERY);
    loop {
        // Biased: what the client sent and what is queued for it come before the timers, so
        // that on a loaded server a join already received is not taken for a missing one.
        tokio::select! {
            biased;
            incoming = ws.next() => {
                heard = tokio::time::Instant::now();
                let next = match incoming {
                    None | Some(Ok(Message::Close(_))) => return None,
                    Some(Ok(Message::Binary(b))) => hub.on_message(conn, &b),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(_)) => Next::Breach(Breach::Malformed, 0),
                    Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(_))) => {
                        Next::Breach(Breach::Oversize, 0)
                    }
                    Some(Err(e)) => {
                        tracing::debug!("{}: hub: {e}", conn.from);
                        return None;
                    }
                };
                match next {
                    Next::Reply(Some(m)) => {
                        if send(ws, m).await.is_err() {
                            return None;
                        }
                    }
                    Next::Reply(None) => {}
                    Next::Breach(why, counter) => return Some((why, counter)),
                }
            }
            out = rx.recv() => match out {
                Some(m) => {
                    if send(ws, m).await.is_err() {
                        return None;
                    }
                }
                None => return None,
            },
            () = kick.notified() => return Some((Breach::NotReading, 0)),
            () = events.wake.notified() => {
                if send_all(ws, events.take()).await.is_err() {
                    return None;
                }
            }
            _ = ping.tick() => {
                if heard.elapsed() >= IDLE_TIMEOUT {
                    return Some((Breach::Idle, 0));
                }
                if send_message(ws, Message::Ping(Vec::new().into())).await.is_err() {
                    return None;
                }
            }
            () = tokio::time::sleep_until(joined_by), if conn.key.is_none() => {
                return Some((Breach::Idle, 0));
            }
            () = stopped(stopping) => return None,
        }
    }
}

/// Resolves when the server stops.
async fn stopped(stopping: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stopping.wait_for(|s| *s).await;
}

async fn send(ws: &mut WebSocketStream<TcpStream>, bytes: Vec<u8>) -> Result<()> {
    send_message(ws, Message::binary(bytes)).await
}

/// Sends `msgs` with one flush at the end.
async fn send_all(ws: &mut WebSocketStream<TcpStream>, msgs: Vec<Vec<u8>>) -> Result<()> {
    tokio::time::timeout(SEND_TIMEOUT, async {
        for m in msgs {
            ws.feed(Message::binary(m)).await?;
        }
        ws.flush().await
    })
    .await
    .map_err(|_| anyhow::anyhow!("a send timed out"))??;
    Ok(())
}

async fn send_message(ws: &mut WebSocketStream<TcpStream>, m: Message) -> Result<()> {
    tokio::time::timeout(SEND_TIMEOUT, ws.send(m))
        .await
        .map_err(|_| anyhow::anyhow!("a send timed out"))??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A join storm leaves each client one pending event per (topic, key), the latest,
    /// whatever the number of joins and leaves: a queue of every announcement overflowed
    /// (1,000 clients joining one topic: 999 dropped as "not reading" by the queue of 64).
    #[test]
    fn announcements_are_coalesced_per_key() {
        let e = Events::default();
        let topic = Topic::of_swarm("storm");
        let key = |i: u32| {
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&i.to_be_bytes());
            PublicKey(k)
        };
        for round in 0..50 {
            for i in 0..1000 {
                e.note(topic, key(i), round % 2 == 0 || i != 0);
            }
        }
        let sent = e.take();
        assert_eq!(sent.len(), 1000);
        // Oldest first; key 0's latest event is a leave (round 49 is odd).
        assert_eq!(
            HubMessage::decode(&sent[0]).unwrap(),
            HubMessage::PeerLeft {
                topic,
                peer: key(0)
            }
        );
        assert_eq!(
            HubMessage::decode(&sent[999]).unwrap(),
            HubMessage::PeerJoined {
                topic,
                peer: key(999)
            }
        );
        assert!(e.take().is_empty());
    }
}
