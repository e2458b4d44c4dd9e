//! The sans-IO session: one connection, one log channel.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use cairn_core::{Hash, Limits, Node, varint};

use crate::error::{SyncError, WireError};
use crate::mux::{INITIAL_CREDIT, Mux, MuxEvent, Reader};
use crate::store::{Agg, Key, SyncStore};
use crate::wire::{
    self, Hello, Item, ItemKind, MAX_IDS, MAX_NODES_PER_MESSAGE, Message, Mode, NodeDecoder,
    NodeEncoder, PROTOCOL_VERSION, Synced, TAG_NODES,
};

/// The channel the log protocol runs on.
pub const LOG_CHANNEL: u64 = 1;
/// The extension channel (the blob protocol), open when both HELLOs set the extensions flag.
pub const EXTENSION_CHANNEL: u64 = 2;
/// Most bytes of extension messages queued for the transport: the extension is asked for
/// its next message only below this (and with credit), so a large transfer takes turns with
/// the log channel instead of filling the output.
const EXT_QUEUE_BYTES: usize = 32 << 10;
/// The extension channel's flow-control window (both sides open it with this). It bounds
/// the extension's bytes in flight — in the transport's buffers, ahead of any log message
/// sent after them — so a log node waits behind at most this much of a bulk transfer.
pub(crate) const EXT_WINDOW: u64 = 256 << 10;

/// A protocol on the session's extension channel ([`EXTENSION_CHANNEL`]), sans-IO like the
/// session: it gets the channel's messages and is asked for its next one whenever the
/// channel has flow-control credit, taking turns message by message with the log protocol
/// (fair sharing: a long transfer does not stall replication). cairn-blob's protocol is one.
pub trait Extension: Send {
    /// Both sides run extensions: the channel is open (after the peer's HELLO), or not
    /// (`false`: the peer does not run one; nothing will be sent or received).
    fn on_open(&mut self, open: bool);
    /// A message arrived on the channel. An error fails the session (the peer is dropped).
    fn on_message(&mut self, body: &[u8]) -> Result<(), String>;
    /// The next message to send, if one is ready. Keep it at most 64 KiB.
    fn poll_message(&mut self) -> Result<Option<Vec<u8>>, String>;
    /// Whether it still has work (requests of its own outstanding): a one-shot session
    /// does not send its CLOSE, nor answer the peer's, while this is true.
    fn busy(&self) -> bool;
    /// The session ended: closed, or failed with this error.
    fn on_end(&mut self, error: Option<&SyncError>);
}
/// Bulk output the session prepares ahead of the transport.
const OUT_TARGET: usize = 256 << 10;
/// A NODES message is closed once it reaches this size.
const NODES_MESSAGE_BYTES: usize = 64 << 10;
/// Above this much queued output the session asks the driver to stop reading.
const OUT_HIGH_WATER: usize = 4 << 20;
/// Default of [`SessionOptions::ready_bytes`].
pub const READY_BYTES: usize = 4 << 20;
/// Most nodes one store read returns while streaming (fewer when nodes are big: a read
/// aims at one NODES message of bytes).
const READ_MAX: usize = 64;
/// Most bytes of live nodes queued for the peer: above it [`Session::wants_feed`] is false
/// and the driver stops taking nodes from the log's feed (the log is the buffer).
pub const LIVE_QUEUE_BYTES: usize = 8 << 20;
/// Most memory (estimated) of queued send jobs (ranges to stream with the ids to skip, ids
/// wanted): a peer that keeps reconciling but never grants credit cannot grow it further
/// ([`SyncError::Backlog`]).
pub const MAX_JOB_BYTES: usize = 32 << 20;
/// Most nodes asked for and not yet received (each was announced by the peer).
const MAX_AWAITING: usize = 1 << 20;
/// An answer turn is cut into RANGES messages of about this size.
const RESP_MESSAGE_BYTES: usize = 64 << 10;
/// Ratio of the initial geometric ranges counted from the top.
const GEOMETRIC_RATIO: u64 = 4;
/// Most reconciliation rounds of a sync↔sync session: a round ends with both sides'
/// SYNCED summaries, and another starts while they differ (the sets changed meanwhile).
pub const MAX_ROUNDS: u32 = 4;

/// How a session behaves.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Push, pull or sync.
    pub mode: Mode,
    /// Keep forwarding new nodes after the initial sync (if the peer wants it too).
    pub live: bool,
    /// Application metadata sent in the handshake.
    pub metadata: Vec<u8>,
    /// Node size limits for received nodes (use the log's).
    pub limits: Limits,
    /// Most received nodes buffered while their links are missing.
    pub max_pending: usize,
    /// Most bytes of such nodes.
    pub max_pending_bytes: usize,
    /// Most nodes per [`SyncStore::insert`] call.
    pub insert_batch: usize,
    /// Received nodes are handed to the store once this many bytes of them are ready (or
    /// [`SessionOptions::insert_batch`] nodes), so a batch's memory follows bytes. Default
    /// [`READY_BYTES`]. Larger batches mean fewer commits: a commit rewrites the pages of the
    /// log's random-keyed index that its nodes touch, about all of them once the log is large.
    pub ready_bytes: usize,
    /// Bytes of log messages the peer may send ahead of what this side has processed (its
    /// flow-control window on the log channel; at least the implicit [`INITIAL_CREDIT`](crate::mux::INITIAL_CREDIT)).
    /// Larger keeps a sender busy while this side commits a batch: the browser worker, which
    /// receives and commits on one thread, uses 8 MiB.
    pub recv_window: u64,
    /// A range holding at most this many nodes is reconciled by listing its hashes.
    pub ids_threshold: usize,
    /// Live sessions, after the initial sync: a driver with a timer
    /// ([`run_with_timeout`](crate::run_with_timeout)) sends a keep-alive
    /// ([`Session::ping`]) once it has sent nothing for this long, so that the peer can tell
    /// a quiet session from a vanished one. Default 15 s; [`Duration::MAX`]: never. The
    /// session itself has no timers.
    pub keep_alive: Duration,
    /// Live sessions, after the initial sync: a driver with a timer fails the session with
    /// [`SyncError::Timeout`] (sent to the peer) when a peer that sends keep-alives has sent
    /// nothing for this long (it vanished: a half-open connection). Default 45 s, three
    /// keep-alive intervals; keep it well above the peer's `keep_alive`.
    /// [`Duration::MAX`]: wait forever.
    pub live_timeout: Duration,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            mode: Mode::Sync,
            live: false,
            metadata: Vec::new(),
            limits: Limits::default(),
            max_pending: 65_536,
            max_pending_bytes: 16 << 20,
            insert_batch: 8192,
            ready_bytes: READY_BYTES,
            recv_window: INITIAL_CREDIT,
            ids_threshold: 16,
            keep_alive: Duration::from_secs(15),
            live_timeout: Duration::from_secs(45),
        }
    }
}

impl SessionOptions {
    /// The largest frame this session accepts: 1 MiB of messages plus one maximal node.
    pub fn max_frame(&self) -> usize {
        let l = &self.limits;
        let links = l.max_links.min(Limits::FORMAT.max_links);
        let value = l.max_value_len.min(Limits::FORMAT.max_value_len);
        (1 << 20) + value + 33 * links + 256
    }
}

/// What a session tells its driver.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// The peer's handshake was accepted.
    Handshake {
        /// The peer's mode.
        mode: Mode,
        /// Whether the session is live (both sides asked).
        live: bool,
        /// The peer's application metadata.
        metadata: Vec<u8>,
    },
    /// Received nodes (whose links are all present) were handed to the store's insert,
    /// which verifies and stores them; a store that pipelines inserts reports a refusal by
    /// the next insert or flush, and the session fails then ([`Event::Complete`] always
    /// comes after every insert has landed).
    Stored {
        /// How many in this batch.
        nodes: usize,
    },
    /// The initial sync is complete, and checked: every node this side received is durable,
    /// the peer confirmed that every node it received from us is durable (its SYNCED), each
    /// round's node count matched the sender's, and in sync↔sync both sets ended equal (by
    /// count and 32-byte fingerprint). Each side then holds what the other held at the start
    /// (in the directions the modes allow).
    Complete,
    /// The peer ended the session cleanly after [`Event::Complete`] (its CLOSE, or the end
    /// of the stream): nothing more will come.
    Closed,
    /// The session failed; the error was sent to the peer when it was ours.
    Failed(SyncError),
}

/// Counters of a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Nodes sent.
    pub nodes_sent: u64,
    /// Bytes of the sent nodes' compact encodings (without message and frame headers).
    pub node_bytes_sent: u64,
    /// Received nodes that were new to the store (as the store's inserts report them: a
    /// node sent twice, or one another writer stored first, is not counted).
    pub nodes_received: u64,
    /// Received nodes handed to the store's insert (decoded, hash-checked, deduplicated
    /// within the session).
    pub nodes_stored: u64,
    /// Bytes handed out by `poll_transmit`.
    pub bytes_sent: u64,
    /// Bytes fed to `handle_input`.
    pub bytes_received: u64,
    /// Round trips of the reconciliation (1 when already equal).
    pub round_trips: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    Reconcile,
    Complete,
    Closed,
    Failed,
}

#[derive(Debug)]
enum Job {
    /// Every stored node in `[lo, hi)` except `except`.
    Range {
        lo: Key,
        hi: Key,
        except: HashSet<Hash>,
    },
    /// These nodes by hash, all in the range starting at `lo` (in key order).
    Keys { lo: Key, keys: VecDeque<Hash> },
    /// Live nodes.
    Live(VecDeque<Node>),
    /// The DONE message.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    In,
    Out,
}

/// A replication session over one connection: a sans-IO state machine in the manner of
/// str0m. See the [crate docs](crate) for the contract.
pub struct Session<S: SyncStore> {
    store: S,
    opts: SessionOptions,
    mux: Mux,
    phase: Phase,
    my: Hello,
    can_send: bool,
    can_recv: bool,
    live: bool,
    /// The peer's HELLO said it accepts PING.
    peer_keep_alive: bool,
    peer_count: Option<u64>,
    top: u64,
    awaiting_reply: bool,
    sent_ids: VecDeque<Vec<Hash>>,
    /// Ids of our last turn, answered by the peer's current turn.
    prev_ids: VecDeque<Vec<Hash>>,
    /// Whether a turn of the peer spanning several messages is in progress, and where its
    /// next message starts.
    turn_open: bool,
    in_lo: Key,
    /// Our answer being built: its items, where the unsent part starts, its size, and
    /// whether anything in it needs an answer.
    resp: Vec<Item>,
    resp_lo: Key,
    resp_bytes: usize,
    resp_any: bool,
    /// Where the first range of our answer being built starts that can still make jobs
    /// here (an open range: one the peer will answer), and the same for our last sent turn.
    /// Below the lowest open range every job is queued, so nodes there can be sent in key
    /// order ([`Session::send_bound`]).
    resp_open: Option<Key>,
    prev_open: Key,
    awaiting: HashSet<Hash>,
    jobs: VecDeque<Job>,
    /// Estimated memory of `jobs` other than live nodes, and bytes of queued live nodes.
    job_bytes: usize,
    live_bytes: usize,
    done_queued: bool,
    sent_done: bool,
    recv_done: bool,
    /// Reconciliation round (1 = the first), and per round: `stats.nodes_sent` when it
    /// started, nodes decoded from the peer, and our SYNCED once sent.
    round: u32,
    round_sent_base: u64,
    round_received: u64,
    round_new_base: u64,
    my_synced: Option<Synced>,
    early_synced: Option<Synced>,
    /// The last message received was DONE.
    after_done: bool,
    enc: NodeEncoder,
    dec: NodeDecoder,
    pending: HashMap<Hash, (Node, usize)>,
    pending_bytes: usize,
    waiters: HashMap<Hash, Vec<Hash>>,
    ready: Vec<Node>,
    ready_bytes: usize,
    ready_set: HashSet<Hash>,
    /// Nodes per store read while streaming, adapted to their size.
    read_limit: usize,
    events: VecDeque<Event>,
    stats: Stats,
    turns: u32,
    last_dir: Option<Dir>,
    close_sent: bool,
    /// The extension, whether its channel is open, and a CLOSE (ours, or the answer to the
    /// peer's) held back while it is busy.
    ext: Option<Box<dyn Extension>>,
    ext_open: bool,
    close_pending: bool,
    peer_closed: bool,
    /// Whose turn it is to fill the output: the log channel's or the extension's.
    ext_turn: bool,
}

impl<S: SyncStore> std::fmt::Debug for Session<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("phase", &self.phase)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn succ(k: &Key) -> Key {
    let mut hash = k.hash;
    for b in hash.0.iter_mut().rev() {
        let (v, carry) = b.overflowing_add(1);
        *b = v;
        if !carry {
            return Key {
                height: k.height,
                hash,
            };
        }
    }
    Key::at_height(k.height.saturating_add(1))
}

fn fp16(a: &Agg) -> [u8; 16] {
    let d = a.digest();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

fn prefix64(h: &Hash) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.0[..8]);
    u64::from_be_bytes(b)
}

impl<S: SyncStore> Session<S> {
    /// Starts a session over `store`; the handshake is queued for [`Session::poll_transmit`].
    pub fn new(store: S, opts: SessionOptions) -> Result<Self, SyncError> {
        Self::build(store, opts, None)
    }

    /// Starts a session that also runs `ext` on the [`EXTENSION_CHANNEL`] (when the peer
    /// runs one too: the HELLO's extensions flag). Without an extension the session's bytes
    /// are exactly those of [`Session::new`].
    pub fn with_extension(
        store: S,
        opts: SessionOptions,
        ext: Box<dyn Extension>,
    ) -> Result<Self, SyncError> {
        Self::build(store, opts, Some(ext))
    }

    fn build(
        mut store: S,
        opts: SessionOptions,
        ext: Option<Box<dyn Extension>>,
    ) -> Result<Self, SyncError> {
        let summary = store.summary().map_err(SyncError::store)?;
        let my = Hello {
            version: PROTOCOL_VERSION,
            mode: opts.mode,
            live: opts.live,
            keep_alive: true,
            extensions: ext.is_some(),
            metadata: opts.metadata.clone(),
            count: summary.agg.count,
            max_height: summary.max_height,
            fingerprint: summary.agg.digest(),
        };
        let mut mux = Mux::new(opts.max_frame());
        mux.open(LOG_CHANNEL);
        // A larger receive window is this side's own choice: the peer starts with the
        // implicit window and learns of the rest from this first CREDIT frame.
        let window = mux.window(LOG_CHANNEL);
        if opts.recv_window > window {
            mux.grant(LOG_CHANNEL, opts.recv_window - window);
        }
        let mut body = Vec::new();
        my.encode(&mut body);
        mux.send(LOG_CHANNEL, &body);
        let dec = NodeDecoder::new(opts.limits);
        Ok(Session {
            store,
            opts,
            mux,
            phase: Phase::Handshake,
            my,
            can_send: false,
            can_recv: false,
            live: false,
            peer_keep_alive: false,
            peer_count: None,
            top: 0,
            awaiting_reply: false,
            sent_ids: VecDeque::new(),
            prev_ids: VecDeque::new(),
            turn_open: false,
            in_lo: Key::MIN,
            resp: Vec::new(),
            resp_lo: Key::MIN,
            resp_bytes: 0,
            resp_any: false,
            resp_open: None,
            prev_open: Key::MIN,
            awaiting: HashSet::new(),
            jobs: VecDeque::new(),
            job_bytes: 0,
            live_bytes: 0,
            done_queued: false,
            sent_done: false,
            recv_done: false,
            round: 1,
            round_sent_base: 0,
            round_received: 0,
            round_new_base: 0,
            my_synced: None,
            early_synced: None,
            after_done: false,
            enc: NodeEncoder::default(),
            dec,
            pending: HashMap::new(),
            pending_bytes: 0,
            waiters: HashMap::new(),
            ready: Vec::new(),
            ready_bytes: 0,
            ready_set: HashSet::new(),
            read_limit: 1,
            events: VecDeque::new(),
            stats: Stats::default(),
            turns: 1,
            last_dir: None,
            close_sent: false,
            ext,
            ext_open: false,
            close_pending: false,
            peer_closed: false,
            ext_turn: false,
        })
    }

    /// The options the session was created with.
    pub fn options(&self) -> &SessionOptions {
        &self.opts
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, mutably (for local writes between inputs).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Ends the session and returns the store.
    pub fn into_store(self) -> S {
        self.store
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        s.round_trips = self.turns.div_ceil(2);
        s
    }

    /// Whether the initial sync is complete.
    pub fn is_complete(&self) -> bool {
        matches!(self.phase, Phase::Complete | Phase::Closed)
    }

    /// Whether the session has ended (closed or failed); nothing more will happen but the
    /// output already queued.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Closed | Phase::Failed)
    }

    /// Whether the session is live (known after the handshake).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// Whether the peer accepts keep-alives (known after the handshake): a driver expects
    /// them back from such a peer, and only then fails a silent live session.
    pub fn peer_keep_alive(&self) -> bool {
        self.peer_keep_alive
    }

    /// The number of nodes the peer held at the start, from its handshake.
    pub fn peer_count(&self) -> Option<u64> {
        self.peer_count
    }

    /// Queues a keep-alive (PING) for the peer: proof of life in a quiet session, which the
    /// peer otherwise ignores (no answer, no round trip). The session has no timers: the
    /// driver decides when (see [`SessionOptions::keep_alive`]). Returns whether one was
    /// queued — only after the handshake, to a peer that accepts them, and before the
    /// session ends or this side sends CLOSE. Drain [`Session::poll_transmit`] after it.
    pub fn ping(&mut self) -> bool {
        if !self.peer_keep_alive
            || !matches!(self.phase, Phase::Reconcile | Phase::Complete)
            || self.close_sent
        {
            return false;
        }
        let mut body = Vec::with_capacity(1);
        wire::encode_ping(&mut body);
        self.mux.send(LOG_CHANNEL, &body);
        true
    }

    /// Whether the driver should read more input now: false while much output is queued, so
    /// that a peer that does not read cannot make this side buffer without bound.
    pub fn wants_input(&self) -> bool {
        !self.is_finished() && self.mux.queued() < OUT_HIGH_WATER
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Feeds bytes received from the peer. Every call must be followed by draining
    /// [`Session::poll_transmit`] and [`Session::poll_event`].
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), SyncError> {
        if self.is_finished() {
            return Ok(());
        }
        self.stats.bytes_received += bytes.len() as u64;
        self.mux.handle_input(bytes);
        let r = self.process();
        self.check(r)
    }

    /// The peer closed its side of the stream.
    pub fn handle_eof(&mut self) -> Result<(), SyncError> {
        if self.is_finished() {
            return Ok(());
        }
        let r = if self.mux.has_partial() {
            Err(SyncError::Truncated)
        } else if self.phase == Phase::Complete {
            self.phase = Phase::Closed;
            self.events.push_back(Event::Closed);
            Ok(())
        } else {
            Err(SyncError::UnexpectedEof)
        };
        self.check(r)
    }

    /// Fails the session because the peer was silent for `idle` (the driver's timer fired);
    /// the error is queued for the peer.
    pub fn timeout(&mut self, idle: std::time::Duration) {
        let e = SyncError::Timeout {
            idle_ms: idle.as_millis().min(u128::from(u64::MAX)) as u64,
        };
        let _ = self.check(Err::<(), _>(e));
    }

    /// Ends a live session cleanly: queues a CLOSE frame.
    ///
    /// After [`Event::Complete`] the session stays open until the peer's CLOSE (or end of
    /// stream) arrives, reported as [`Event::Closed`]: each side sends CLOSE once it is done
    /// and leaves when it has the other's, so neither writes into a closed stream and no
    /// transport needs a half-close. Before completion, `close` aborts the session.
    pub fn close(&mut self) {
        if self.is_finished() || self.close_sent {
            return;
        }
        if self.phase == Phase::Complete && self.extension_busy() {
            // Sent once the extension's own requests are done (see `poll_transmit`).
            self.close_pending = true;
            return;
        }
        self.mux.send_close();
        self.close_sent = true;
        self.jobs.clear();
        if self.phase != Phase::Complete {
            self.phase = Phase::Closed;
        }
    }

    /// Whether this side has sent its CLOSE.
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// Whether the extension channel is open (both sides run an extension).
    pub fn extension_open(&self) -> bool {
        self.ext_open
    }

    /// Whether the extension has requests of its own outstanding (a driver keeps a
    /// one-shot session open and times a silent peer out meanwhile).
    pub fn extension_busy(&self) -> bool {
        self.ext_open && !self.is_finished() && self.ext.as_ref().is_some_and(|e| e.busy())
    }

    /// Sends a CLOSE held back while the extension was busy, once it is not.
    fn settle_close(&mut self) {
        if (self.close_pending || self.peer_closed)
            && !self.close_sent
            && self.phase == Phase::Complete
            && !self.extension_busy()
        {
            self.mux.send_close();
            self.close_sent = true;
            self.close_pending = false;
            self.jobs.clear();
            if self.peer_closed {
                self.phase = Phase::Closed;
                self.events.push_back(Event::Closed);
                self.end_ext(None);
            }
        }
    }

    fn end_ext(&mut self, e: Option<&SyncError>) {
        if let Some(x) = self.ext.as_mut() {
            x.on_end(e);
        }
    }

    /// Offers locally appended nodes for live forwarding (ignored unless live and sending).
    /// Offer them in the log's change order.
    ///
    /// The queue is bounded by the driver: it offers nodes only while
    /// [`Session::wants_feed`] (below [`LIVE_QUEUE_BYTES`] queued), and a peer that grants
    /// no credit for long is failed ([`Session::blocked_on_credit`], [`Session::stalled`]).
    pub fn offer(&mut self, nodes: Vec<Node>) {
        if !self.live || !self.can_send || self.is_finished() || nodes.is_empty() {
            return;
        }
        self.live_bytes += nodes.iter().map(Node::encoded_len).sum::<usize>();
        self.jobs.push_back(Job::Live(nodes.into()));
    }

    /// Whether the driver should offer more live nodes now: false while
    /// [`LIVE_QUEUE_BYTES`] of them wait for the peer's credit (the log keeps the rest).
    pub fn wants_feed(&self) -> bool {
        self.live_bytes < LIVE_QUEUE_BYTES
    }

    /// Whether output waits for the peer's flow-control credit (nodes to send, no credit):
    /// a driver with a clock fails a peer that stays so for long ([`Session::stalled`]).
    pub fn blocked_on_credit(&self) -> bool {
        !self.is_finished() && !self.jobs.is_empty() && !self.mux.can_send(LOG_CHANNEL)
    }

    /// Fails the session because the peer granted no credit for `idle` while output waited
    /// (the driver's timer fired); the error is queued for the peer.
    pub fn stalled(&mut self, idle: Duration) {
        let e = SyncError::Stalled {
            idle_ms: idle.as_millis().min(u128::from(u64::MAX)) as u64,
        };
        let _ = self.check(Err::<(), _>(e));
    }

    /// Queues a send job, bounding the memory of the queue.
    fn push_job(&mut self, job: Job) -> Result<(), SyncError> {
        self.job_bytes += match &job {
            Job::Range { except, .. } => 128 + 48 * except.len(),
            Job::Keys { keys, .. } => 64 + 40 * keys.len(),
            Job::Live(_) | Job::Done => 0,
        };
        if self.job_bytes > MAX_JOB_BYTES {
            return Err(SyncError::Backlog {
                bytes: self.job_bytes as u64,
            });
        }
        // Range and key jobs are kept in key order (a later turn can resolve a lower range
        // than an earlier one did), never moved past a DONE or live job.
        let at = match Self::job_lo(&job) {
            Some(lo) => {
                let mut i = self.jobs.len();
                while i > 0 && Self::job_lo(&self.jobs[i - 1]).is_some_and(|l| l > lo) {
                    i -= 1;
                }
                i
            }
            None => self.jobs.len(),
        };
        self.jobs.insert(at, job);
        Ok(())
    }

    /// The next bytes to send to the peer, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if !matches!(self.phase, Phase::Failed | Phase::Closed)
            && let Err(e) = self.fill()
        {
            let _ = self.check(Err::<(), _>(e));
        }
        self.settle_close();
        let out = self.mux.poll_transmit()?;
        self.stats.bytes_sent += out.len() as u64;
        Some(out)
    }

    fn check<T>(&mut self, r: Result<T, SyncError>) -> Result<T, SyncError> {
        if let Err(e) = &r
            && self.phase != Phase::Failed
        {
            if e.is_local() {
                self.mux.send_error(e.code(), &e.to_string());
            }
            self.phase = Phase::Failed;
            self.jobs.clear();
            self.events.push_back(Event::Failed(e.clone()));
            if let Some(x) = self.ext.as_mut() {
                x.on_end(Some(e));
            }
        }
        r
    }

    fn job_lo(job: &Job) -> Option<Key> {
        match job {
            Job::Range { lo, .. } | Job::Keys { lo, .. } => Some(*lo),
            Job::Live(_) | Job::Done => None,
        }
    }

    /// Nodes below this key can be sent now: every range below it is resolved and its
    /// jobs are queued (in key order). Nodes then reach the peer after the nodes they link
    /// (links have lower heights, so lower keys) — a receiver that lacks a node's links
    /// must buffer it, and that buffer is bounded ([`SessionOptions::max_pending`]).
    /// Without this, a later turn resolving a low range would queue its nodes behind the
    /// whole upper part of a large log, which the receiver cannot hold.
    fn send_bound(&self) -> Key {
        if self.phase != Phase::Reconcile || !self.awaiting_reply {
            return Key::END;
        }
        if self.turn_open {
            // The peer's turn, read up to `in_lo`: it can still open ranges above it, and
            // our answer so far has opened ranges from `resp_open`.
            let answered = self.resp_open.unwrap_or(Key::END).min(self.in_lo);
            return answered.max(self.prev_open);
        }
        self.prev_open
    }

    fn turn(&mut self, dir: Dir) {
        if self.last_dir != Some(dir) {
            self.turns += 1;
            self.last_dir = Some(dir);
        }
    }

    fn process(&mut self) -> Result<(), SyncError> {
        while let Some(ev) = self.mux.poll_event()? {
            match ev {
                MuxEvent::Data { channel, body }
                    if channel == EXTENSION_CHANNEL && self.ext_open =>
                {
                    if let Some(x) = self.ext.as_mut() {
                        x.on_message(&body).map_err(SyncError::Extension)?;
                    }
                    self.mux.consumed(EXTENSION_CHANNEL, body.len() as u64);
                }
                MuxEvent::Data { channel, body } => {
                    if channel != LOG_CHANNEL {
                        return Err(SyncError::UnknownChannel(channel));
                    }
                    self.on_message(&body)?;
                    self.mux.consumed(LOG_CHANNEL, body.len() as u64);
                }
                MuxEvent::Error { code, message } => {
                    self.phase = Phase::Failed;
                    let e = SyncError::Remote { code, message };
                    self.events.push_back(Event::Failed(e.clone()));
                    self.end_ext(Some(&e));
                    return Err(e);
                }
                MuxEvent::Close => {
                    if self.phase != Phase::Complete {
                        return Err(SyncError::UnexpectedEof);
                    }
                    self.settle()?;
                    if self.extension_busy() {
                        // The peer asks nothing more, but our requests are still being
                        // answered: answer its CLOSE once they are (`settle_close`).
                        self.peer_closed = true;
                        continue;
                    }
                    // Answer it, so that the peer can leave too.
                    if !self.close_sent {
                        self.mux.send_close();
                        self.close_sent = true;
                    }
                    self.jobs.clear();
                    self.phase = Phase::Closed;
                    self.events.push_back(Event::Closed);
                    self.end_ext(None);
                    return Ok(());
                }
            }
            if self.is_finished() {
                return Ok(());
            }
        }
        if self.phase == Phase::Complete {
            // Live: make received nodes visible now.
            self.settle()
        } else {
            // Before completion, received nodes go to the store in batches of `insert_batch`
            // (`push_ready`) and the rest when the exchange completes: one commit per read
            // of the stream would make a clone's commits small and many.
            Ok(())
        }
    }

    fn on_message(&mut self, body: &[u8]) -> Result<(), SyncError> {
        let after_done = std::mem::replace(&mut self.after_done, false);
        match wire::decode_message(body, self.in_lo)? {
            Message::Hello(h) => self.on_hello(h),
            Message::Ranges { items, more } => {
                if self.phase != Phase::Reconcile || !self.awaiting_reply {
                    return Err(SyncError::Unexpected("RANGES"));
                }
                if !self.turn_open {
                    self.turn(Dir::In);
                }
                self.on_ranges(items, more)
            }
            Message::Nodes(bytes) => self.on_nodes(bytes),
            Message::Done { sent } => {
                if self.phase != Phase::Reconcile || self.recv_done || self.turn_open {
                    return Err(SyncError::Unexpected("DONE"));
                }
                self.turn(Dir::In);
                self.after_done = true;
                self.on_done(sent)
            }
            Message::Synced(theirs) => {
                if self.phase != Phase::Reconcile || !self.recv_done || self.early_synced.is_some()
                {
                    return Err(SyncError::Unexpected("SYNCED"));
                }
                // A SYNCED right behind the peer's DONE came in the same flight: not a turn
                // of its own (ours and the peer's cross).
                if !after_done {
                    self.turn(Dir::In);
                }
                if self.my_synced.is_none() {
                    // Our DONE is still queued (the peer's bytes arrived before we drained
                    // ours: a replayed stream); take it once ours is out.
                    self.early_synced = Some(theirs);
                    return Ok(());
                }
                self.on_synced(theirs)
            }
            // Proof of life only: no answer, no turn. Never before the peer's HELLO (it
            // follows HELLO on an honest peer's stream).
            Message::Ping if self.phase == Phase::Handshake => Err(SyncError::Unexpected("PING")),
            Message::Ping => Ok(()),
        }
    }

    fn on_hello(&mut self, h: Hello) -> Result<(), SyncError> {
        if self.phase != Phase::Handshake {
            return Err(SyncError::Unexpected("HELLO"));
        }
        if h.version != PROTOCOL_VERSION {
            return Err(SyncError::Version {
                ours: PROTOCOL_VERSION,
                theirs: h.version,
            });
        }
        let (mine, theirs) = (self.my.mode, h.mode);
        if (mine == Mode::Push && theirs == Mode::Push)
            || (mine == Mode::Pull && theirs == Mode::Pull)
        {
            return Err(SyncError::IncompatibleModes { ours: mine, theirs });
        }
        self.can_send = mine.sends() && theirs.receives();
        self.can_recv = mine.receives() && theirs.sends();
        self.live = self.my.live && h.live;
        self.peer_keep_alive = h.keep_alive;
        if let Some(x) = self.ext.as_mut() {
            self.ext_open = h.extensions;
            if h.extensions {
                self.mux.open_with_window(EXTENSION_CHANNEL, EXT_WINDOW);
            }
            x.on_open(h.extensions);
        }
        self.peer_count = Some(h.count);
        self.top = self
            .my
            .max_height
            .max(h.max_height)
            .map_or(0, |m| m.saturating_add(1));
        self.events.push_back(Event::Handshake {
            mode: theirs,
            live: self.live,
            metadata: h.metadata.clone(),
        });
        self.phase = Phase::Reconcile;
        if self.my.count == h.count && self.my.fingerprint == h.fingerprint {
            // Equal HELLOs prove it, to both sides: one round trip.
            return self.complete();
        }
        self.start_round(h.count, h.fingerprint)
    }

    /// Starts a reconciliation round against the peer's summary `(count, fp)` (its HELLO,
    /// or its SYNCED when a round ended with different sets). Both sides know both
    /// summaries, so they agree on who leads.
    fn start_round(&mut self, count: u64, fp: [u8; 32]) -> Result<(), SyncError> {
        let h_count = count;
        if self.my.count == 0 || h_count == 0 {
            // Nothing to compare: the side that has nodes sends them all.
            if self.my.count > 0 && self.can_send {
                self.jobs.push_back(Job::Range {
                    lo: Key::MIN,
                    hi: Key::END,
                    except: HashSet::new(),
                });
            }
            self.queue_done();
            return Ok(());
        }
        self.awaiting_reply = true;
        self.resp_open = None;
        // The follower knows nothing resolved until the leader's first turn.
        self.prev_open = Key::MIN;
        let leader = (self.my.count, self.my.fingerprint) > (h_count, fp);
        if leader {
            let items = self.initial_items()?;
            let mut lo = Key::MIN;
            self.prev_open = Key::END;
            for it in &items {
                if it.kind.is_open() {
                    self.prev_open = lo;
                    break;
                }
                lo = it.upper;
            }
            self.send_ranges(Key::MIN, &items, false);
        }
        Ok(())
    }

    fn complete(&mut self) -> Result<(), SyncError> {
        self.settle()?;
        self.phase = Phase::Complete;
        self.events.push_back(Event::Complete);
        Ok(())
    }

    fn queue_done(&mut self) {
        if !self.done_queued {
            self.done_queued = true;
            self.jobs.push_back(Job::Done);
            self.turn(Dir::Out);
        }
    }

    fn send_ranges(&mut self, start: Key, items: &[Item], more: bool) {
        let mut body = Vec::new();
        wire::encode_ranges(start, items, more, &mut body);
        self.mux.send(LOG_CHANNEL, &body);
        if !more {
            self.turn(Dir::Out);
        }
    }

    fn agg(&self, lo: &Key, hi: &Key) -> Result<Agg, SyncError> {
        self.store.aggregate(lo, hi).map_err(SyncError::store)
    }

    fn ids(&self, lo: &Key, hi: &Key) -> Result<Vec<Hash>, SyncError> {
        let keys = self
            .store
            .keys(lo, hi, MAX_IDS + 1)
            .map_err(SyncError::store)?;
        if keys.len() > MAX_IDS {
            return Err(SyncError::Unexpected("range that cannot be split"));
        }
        Ok(keys.into_iter().map(|k| k.hash).collect())
    }

    /// The leader's first turn: ranges growing geometrically from the top (where recent
    /// nodes are), small ones as id lists, the rest as fingerprints.
    fn initial_items(&mut self) -> Result<Vec<Item>, SyncError> {
        let mut bounds = vec![Key::END];
        let mut d = 1u64;
        while d < self.top {
            bounds.push(Key::at_height(self.top - d));
            d = d.saturating_mul(GEOMETRIC_RATIO);
        }
        bounds.push(Key::MIN);
        // bounds: END, T-1, T-4, … , MIN (descending).
        let mut items = Vec::new();
        let mut budget = self.opts.ids_threshold as u64;
        let mut listing = true;
        for w in bounds.windows(2) {
            let (hi, lo) = (w[0], w[1]);
            let a = self.agg(&lo, &hi)?;
            let kind = if a.count == 0 {
                ItemKind::Ids(Vec::new())
            } else if listing && a.count <= budget {
                budget -= a.count;
                ItemKind::Ids(self.ids(&lo, &hi)?)
            } else {
                listing = false;
                ItemKind::Fp {
                    count: a.count,
                    fp: fp16(&a),
                }
            };
            items.push(Item { upper: hi, kind });
        }
        items.reverse();
        for it in &items {
            if let ItemKind::Ids(ids) = &it.kind {
                self.sent_ids.push_back(ids.clone());
            }
        }
        Ok(items)
    }

    /// Inner bounds splitting `[lo, hi)` into up to 16 parts, then `hi`.
    fn split_bounds(&self, lo: &Key, hi: &Key) -> Vec<Key> {
        let mut out = Vec::new();
        let end_height = if *hi == Key::END {
            self.top.max(lo.height.saturating_add(1))
        } else if hi.hash == Hash([0; 32]) {
            hi.height
        } else {
            hi.height.saturating_add(1)
        };
        let span = end_height.saturating_sub(lo.height);
        if span >= 2 {
            let parts = span.min(16);
            for i in 1..parts {
                let h = lo.height + (u128::from(span) * u128::from(i) / u128::from(parts)) as u64;
                let k = Key::at_height(h);
                if k > *lo && k < *hi && out.last() != Some(&k) {
                    out.push(k);
                }
            }
        } else {
            let a = u128::from(prefix64(&lo.hash));
            let b = if hi.height == lo.height {
                u128::from(prefix64(&hi.hash))
            } else {
                1u128 << 64
            };
            if b > a && b - a >= 16 {
                for i in 1..16u128 {
                    let p = (a + (b - a) * i / 16) as u64;
                    let mut hash = [0u8; 32];
                    hash[..8].copy_from_slice(&p.to_be_bytes());
                    let k = Key {
                        height: lo.height,
                        hash: Hash(hash),
                    };
                    if k > *lo && k < *hi && out.last() != Some(&k) {
                        out.push(k);
                    }
                }
            }
        }
        out.push(*hi);
        out
    }

    /// Adds the item for `[lo, upper)` to our answer being built.
    fn push_item(&mut self, lo: Key, upper: Key, kind: ItemKind) {
        if self.resp_open.is_none() && kind.is_open() {
            self.resp_open = Some(lo);
        }
        if kind == ItemKind::Skip
            && let Some(last) = self.resp.last_mut()
            && last.kind == ItemKind::Skip
        {
            last.upper = upper;
            return;
        }
        self.resp_bytes += match &kind {
            ItemKind::Skip => 12,
            ItemKind::Fp { .. } => 30,
            ItemKind::Ids(ids) => 14 + 32 * ids.len(),
            ItemKind::Want(bits) => 14 + bits.len() / 8,
        };
        if kind != ItemKind::Skip {
            self.resp_any = true;
        }
        self.resp.push(Item { upper, kind });
    }

    fn on_ranges(&mut self, items: Vec<Item>, more: bool) -> Result<(), SyncError> {
        if !self.turn_open {
            // First message of the peer's turn: it answers the ids we listed last turn.
            self.turn_open = true;
            self.prev_ids = std::mem::take(&mut self.sent_ids);
            self.resp_lo = Key::MIN;
            self.resp_any = false;
        }
        let mut lo = self.in_lo;
        for it in items {
            let hi = it.upper;
            if hi <= lo {
                return Err(WireError::BadBound.into());
            }
            match it.kind {
                ItemKind::Skip => self.push_item(lo, hi, ItemKind::Skip),
                ItemKind::Fp { count, fp } => {
                    let mine = self.agg(&lo, &hi)?;
                    if mine.count == count && fp16(&mine) == fp {
                        self.push_item(lo, hi, ItemKind::Skip);
                    } else if count == 0 {
                        if self.can_send {
                            self.push_job(Job::Range {
                                lo,
                                hi,
                                except: HashSet::new(),
                            })?;
                        }
                        self.push_item(lo, hi, ItemKind::Skip);
                    } else if mine.count <= self.opts.ids_threshold as u64 {
                        let ids = self.ids(&lo, &hi)?;
                        self.sent_ids.push_back(ids.clone());
                        self.push_item(lo, hi, ItemKind::Ids(ids));
                    } else {
                        let bounds = self.split_bounds(&lo, &hi);
                        if bounds.len() < 2 {
                            let ids = self.ids(&lo, &hi)?;
                            self.sent_ids.push_back(ids.clone());
                            self.push_item(lo, hi, ItemKind::Ids(ids));
                        } else {
                            let mut a = lo;
                            for b in bounds {
                                let sub = self.agg(&a, &b)?;
                                let kind = if sub.count == 0 {
                                    self.sent_ids.push_back(Vec::new());
                                    ItemKind::Ids(Vec::new())
                                } else {
                                    ItemKind::Fp {
                                        count: sub.count,
                                        fp: fp16(&sub),
                                    }
                                };
                                self.push_item(a, b, kind);
                                a = b;
                            }
                        }
                    }
                }
                ItemKind::Ids(theirs) => {
                    let mut want = Vec::with_capacity(theirs.len());
                    for h in &theirs {
                        let w = self.can_recv
                            && !self.ready_set.contains(h)
                            && !self.pending.contains_key(h)
                            && !self.store.has(h).map_err(SyncError::store)?;
                        if w {
                            if self.awaiting.len() >= MAX_AWAITING {
                                return Err(SyncError::PendingOverflow { max: MAX_AWAITING });
                            }
                            self.awaiting.insert(*h);
                        }
                        want.push(w);
                    }
                    if self.can_send {
                        self.push_job(Job::Range {
                            lo,
                            hi,
                            except: theirs.into_iter().collect(),
                        })?;
                    }
                    self.push_item(lo, hi, ItemKind::Want(want));
                }
                ItemKind::Want(bits) => {
                    let ids = self
                        .prev_ids
                        .pop_front()
                        .ok_or(SyncError::Unexpected("WANT"))?;
                    if bits.len() != ids.len() {
                        return Err(SyncError::Unexpected("WANT of another length"));
                    }
                    let keys: VecDeque<Hash> = ids
                        .into_iter()
                        .zip(bits)
                        .filter_map(|(h, b)| b.then_some(h))
                        .collect();
                    if !keys.is_empty() {
                        if !self.can_send {
                            return Err(SyncError::Unexpected(
                                "WANT from a peer we do not send to",
                            ));
                        }
                        self.push_job(Job::Keys { lo, keys })?;
                    }
                    self.push_item(lo, hi, ItemKind::Skip);
                }
            }
            lo = hi;
            // Long answers go out in several messages of one turn.
            if hi != Key::END && (self.resp_bytes >= RESP_MESSAGE_BYTES || self.resp.len() >= 2048)
            {
                let items = std::mem::take(&mut self.resp);
                self.send_ranges(self.resp_lo, &items, true);
                self.resp_lo = hi;
                self.resp_bytes = 0;
            }
        }
        self.in_lo = lo;
        if more {
            return Ok(());
        }
        self.turn_open = false;
        self.in_lo = Key::MIN;
        if !self.prev_ids.is_empty() {
            return Err(SyncError::Unexpected("RANGES without the WANT for our ids"));
        }
        let items = std::mem::take(&mut self.resp);
        self.resp_bytes = 0;
        self.prev_open = self.resp_open.take().unwrap_or(Key::END);
        if self.resp_any {
            self.send_ranges(self.resp_lo, &items, false);
        } else {
            self.awaiting_reply = false;
            self.queue_done();
        }
        Ok(())
    }

    fn on_done(&mut self, sent: u64) -> Result<(), SyncError> {
        self.recv_done = true;
        self.awaiting_reply = false;
        // Verified nodes received so far are kept (and made durable) whatever follows.
        self.settle()?;
        // Every node the peer sent this round came before its DONE: all must have arrived
        // (a dropped or repeated frame, or a broken peer, shows here).
        if sent != self.round_received {
            return Err(SyncError::Incomplete {
                sent,
                received: self.round_received,
            });
        }
        if let Some((key, (node, _))) = self.pending.iter().next() {
            let link = node
                .links()
                .iter()
                .find(|l| !self.ready_set.contains(*l) && !self.store.has(l).unwrap_or(false))
                .copied()
                .unwrap_or(Hash([0; 32]));
            return Err(SyncError::MissingLinks {
                count: self.pending.len(),
                node: *key,
                link,
            });
        }
        if let Some(example) = self.awaiting.iter().next() {
            return Err(SyncError::NotReceived {
                count: self.awaiting.len(),
                example: *example,
            });
        }
        self.queue_done();
        if self.sent_done {
            self.send_synced()?;
        }
        Ok(())
    }

    /// Both DONEs are through: makes every received node durable, then sends SYNCED, the
    /// summary of the set now.
    fn send_synced(&mut self) -> Result<(), SyncError> {
        self.settle()?;
        let summary = self.store.summary().map_err(SyncError::store)?;
        // Whether others wrote to the store during the round: it grew by more than the
        // nodes this session added.
        let grown = summary.agg.count.saturating_sub(self.my.count);
        let added = self.stats.nodes_received - self.round_new_base;
        let synced = Synced {
            changed: grown != added,
            count: summary.agg.count,
            max_height: summary.max_height,
            fingerprint: summary.agg.digest(),
        };
        let mut body = Vec::with_capacity(48);
        synced.encode(&mut body);
        self.mux.send(LOG_CHANNEL, &body);
        self.turn(Dir::Out);
        self.my_synced = Some(synced);
        match self.early_synced.take() {
            Some(theirs) => self.on_synced(theirs),
            None => Ok(()),
        }
    }

    /// The peer's SYNCED: it has made durable everything we sent (after checking it got as
    /// many nodes as we said). One-directional modes are then complete. Sync↔sync is
    /// complete when both sets are now equal, or when they differ but a side's set was
    /// written by others during the round (each then holds what the other held when the
    /// round began, the promise of a sync with concurrent writers); an unexplained
    /// difference (a lost node, a broken peer) runs another round, up to [`MAX_ROUNDS`],
    /// then fails with [`SyncError::NotConverged`].
    fn on_synced(&mut self, theirs: Synced) -> Result<(), SyncError> {
        let Some(mine) = self.my_synced.take() else {
            return Err(SyncError::Unexpected("SYNCED"));
        };
        let both_ways = self.can_send && self.can_recv;
        let equal = mine.count == theirs.count && mine.fingerprint == theirs.fingerprint;
        if !both_ways || equal || mine.changed || theirs.changed {
            return self.complete();
        }
        if self.round >= MAX_ROUNDS {
            return Err(SyncError::NotConverged {
                rounds: self.round,
                ours: mine.count,
                theirs: theirs.count,
            });
        }
        self.round += 1;
        self.round_sent_base = self.stats.nodes_sent;
        self.round_new_base = self.stats.nodes_received;
        self.round_received = 0;
        self.done_queued = false;
        self.sent_done = false;
        self.recv_done = false;
        self.sent_ids.clear();
        self.prev_ids.clear();
        self.turn_open = false;
        self.in_lo = Key::MIN;
        self.my.count = mine.count;
        self.my.fingerprint = mine.fingerprint;
        self.my.max_height = mine.max_height;
        self.top = mine
            .max_height
            .max(theirs.max_height)
            .map_or(0, |m| m.saturating_add(1));
        self.start_round(theirs.count, theirs.fingerprint)
    }

    fn on_nodes(&mut self, bytes: &[u8]) -> Result<(), SyncError> {
        let allowed = match self.phase {
            // After the peer's DONE only live nodes may follow.
            Phase::Reconcile => !self.recv_done || self.live,
            Phase::Complete => self.live,
            _ => false,
        };
        if !allowed || !self.can_recv {
            return Err(SyncError::Unexpected("NODES"));
        }
        let mut r = Reader::new(bytes);
        let n = r.count(MAX_NODES_PER_MESSAGE)?;
        for _ in 0..n {
            let node = self.dec.decode(&mut r)?;
            self.round_received += 1;
            self.accept(node)?;
        }
        r.end()?;
        Ok(())
    }

    /// Takes a verified-by-hash node: stores it (batched) once its links are present,
    /// otherwise buffers it (bounded) until they arrive.
    fn accept(&mut self, node: Node) -> Result<(), SyncError> {
        let key = node.key();
        self.awaiting.remove(&key);
        // A node the store already holds is not looked up here (one read per node); the
        // store's insert is idempotent, and an honest peer sends only what we lack.
        if self.ready_set.contains(&key) || self.pending.contains_key(&key) {
            return Ok(());
        }
        let mut missing = Vec::new();
        for l in node.links() {
            if !self.ready_set.contains(l) && !self.store.has(l).map_err(SyncError::store)? {
                missing.push(*l);
            }
        }
        if missing.is_empty() {
            return self.push_ready(node);
        }
        if self.pending.len() >= self.opts.max_pending
            || self.pending_bytes + node.encoded_len() > self.opts.max_pending_bytes
        {
            return Err(SyncError::PendingOverflow {
                max: self.opts.max_pending,
            });
        }
        self.pending_bytes += node.encoded_len();
        for l in &missing {
            self.waiters.entry(*l).or_default().push(key);
        }
        self.pending.insert(key, (node, missing.len()));
        Ok(())
    }

    fn push_ready(&mut self, node: Node) -> Result<(), SyncError> {
        let mut stack = vec![node];
        while let Some(n) = stack.pop() {
            let key = n.key();
            self.ready_set.insert(key);
            self.ready_bytes += n.encoded_len();
            self.ready.push(n);
            if let Some(ws) = self.waiters.remove(&key) {
                for w in ws {
                    if let Some(entry) = self.pending.get_mut(&w) {
                        entry.1 -= 1;
                        if entry.1 == 0
                            && let Some((node, _)) = self.pending.remove(&w)
                        {
                            self.pending_bytes -= node.encoded_len();
                            stack.push(node);
                        }
                    }
                }
            }
            if self.ready.len() >= self.opts.insert_batch
                || self.ready_bytes >= self.opts.ready_bytes
            {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Stores the ready nodes and waits until every insert has landed.
    fn settle(&mut self) -> Result<(), SyncError> {
        self.flush()?;
        self.stats.nodes_received += self.store.flush()?;
        Ok(())
    }

    /// Hands the ready nodes to the store (verification happens in the store's insert).
    fn flush(&mut self) -> Result<(), SyncError> {
        if self.ready.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.ready);
        self.ready_bytes = 0;
        let n = batch.len();
        self.stats.nodes_received += self.store.insert(batch)?;
        self.ready_set.clear();
        self.stats.nodes_stored += n as u64;
        self.events.push_back(Event::Stored { nodes: n });
        Ok(())
    }

    /// Turns queued jobs into NODES/DONE messages while there is credit and room.
    /// Fills the output up to [`OUT_TARGET`], the log channel and the extension channel
    /// taking turns message by message while both have something to send and credit.
    fn fill(&mut self) -> Result<(), SyncError> {
        while self.mux.queued() < OUT_TARGET {
            self.ext_turn = !self.ext_turn;
            // Whose turn it is goes first; the other fills in when it has nothing.
            let moved = if self.ext_turn {
                let ext = self.fill_ext()?;
                ext || self.fill_log()?
            } else {
                let log = self.fill_log()?;
                log || self.fill_ext()?
            };
            if !moved {
                break;
            }
        }
        Ok(())
    }

    /// One extension message, if its channel has credit and room.
    fn fill_ext(&mut self) -> Result<bool, SyncError> {
        if !self.ext_open
            || !self.mux.can_send(EXTENSION_CHANNEL)
            || self.mux.queued() >= EXT_QUEUE_BYTES
        {
            return Ok(false);
        }
        let Some(x) = self.ext.as_mut() else {
            return Ok(false);
        };
        match x.poll_message().map_err(SyncError::Extension)? {
            Some(body) => {
                self.mux.send(EXTENSION_CHANNEL, &body);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// One step of the log channel's send work (a message, or a finished job).
    fn fill_log(&mut self) -> Result<bool, SyncError> {
        {
            if !self.mux.can_send(LOG_CHANNEL) {
                return Ok(false);
            }
            let bound = self.send_bound();
            let Some(job) = self.jobs.front_mut() else {
                return Ok(false);
            };
            // A range or key job waits until every range below it is resolved (its nodes
            // then follow those they link). Resolved ranges never straddle the bound.
            let waits = match job {
                Job::Range { hi, .. } => *hi > bound,
                Job::Keys { lo, .. } => *lo >= bound,
                Job::Live(_) | Job::Done => false,
            };
            if waits {
                return Ok(false);
            }
            let mut nodes: Vec<Node> = Vec::new();
            let mut size = 0usize;
            let mut finished = false;
            match job {
                Job::Done => {
                    self.jobs.pop_front();
                    let mut body = Vec::new();
                    wire::encode_done(self.stats.nodes_sent - self.round_sent_base, &mut body);
                    self.mux.send(LOG_CHANNEL, &body);
                    self.sent_done = true;
                    if self.recv_done && self.phase == Phase::Reconcile {
                        self.send_synced()?;
                    }
                    return Ok(true);
                }

                Job::Range { lo, hi, except } => {
                    'outer: while size < NODES_MESSAGE_BYTES {
                        let found = self
                            .store
                            .nodes(lo, hi, self.read_limit)
                            .map_err(SyncError::store)?;
                        if found.is_empty() {
                            finished = true;
                            break;
                        }
                        // Read about one message's worth next time (one node when they are
                        // big), starting from one: a read never holds many big nodes.
                        let bytes: usize = found.iter().map(|(_, n)| n.encoded_len()).sum();
                        let avg = (bytes / found.len()).max(1);
                        self.read_limit = (NODES_MESSAGE_BYTES / avg).clamp(1, READ_MAX);
                        for (k, n) in found {
                            *lo = succ(&k);
                            if except.contains(&k.hash) {
                                continue;
                            }
                            size += n.encoded_len();
                            nodes.push(n);
                            if size >= NODES_MESSAGE_BYTES || nodes.len() >= MAX_NODES_PER_MESSAGE {
                                break 'outer;
                            }
                        }
                    }
                }
                Job::Keys { keys: q, .. } => {
                    while size < NODES_MESSAGE_BYTES && nodes.len() < MAX_NODES_PER_MESSAGE {
                        let Some(h) = q.pop_front() else {
                            break;
                        };
                        self.job_bytes = self.job_bytes.saturating_sub(40);
                        if let Some(n) = self.store.get(&h).map_err(SyncError::store)? {
                            size += n.encoded_len();
                            nodes.push(n);
                        }
                    }
                    finished = q.is_empty();
                }
                Job::Live(q) => {
                    while size < NODES_MESSAGE_BYTES && nodes.len() < MAX_NODES_PER_MESSAGE {
                        let Some(n) = q.pop_front() else {
                            break;
                        };
                        size += n.encoded_len();
                        self.live_bytes = self.live_bytes.saturating_sub(n.encoded_len());
                        nodes.push(n);
                    }
                    finished = q.is_empty();
                }
            }
            if finished && let Some(job) = self.jobs.pop_front() {
                self.job_bytes = self.job_bytes.saturating_sub(match &job {
                    Job::Range { except, .. } => 128 + 48 * except.len(),
                    Job::Keys { .. } => 64,
                    Job::Live(_) | Job::Done => 0,
                });
            }
            if !nodes.is_empty() {
                let mut body = Vec::with_capacity(size + 16);
                body.push(TAG_NODES);
                varint::encode(nodes.len() as u64, &mut body);
                let header = body.len();
                for n in &nodes {
                    self.enc.encode(n, &mut body);
                }
                self.stats.node_bytes_sent += (body.len() - header) as u64;
                self.stats.nodes_sent += nodes.len() as u64;
                self.mux.send(LOG_CHANNEL, &body);
            }
        }
        Ok(true)
    }
}
