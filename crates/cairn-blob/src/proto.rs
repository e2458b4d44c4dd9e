//! The blob protocol on a cairn-sync session's extension channel, sans-IO.
//!
//! ```text
//! GET     = 0x01 id:varint hash:32 n:varint (start:varint len:varint)×n
//!                                   chunk groups wanted (n ≤ 256); the response always
//!                                   holds the last group too (it proves the size)
//! HAVE    = 0x02 id:varint size:varint     I have it whole: the response follows
//! NOTHAVE = 0x03 id:varint                 I do not have it (whole)
//! DATA    = 0x04 id:varint bytes           next bytes of bao-tree's response (≤ 64 KiB;
//!                                          a sender sends one group and its parents)
//! END     = 0x05 id:varint                 the response is complete
//! ```
//!
//! A requester has one GET outstanding at a time and verifies the response as it arrives
//! ([`ResponseVerifier`]): a group that does not verify, bytes past the end, an END before
//! the end or an answer to another request fails the session — the peer is dropped — and
//! what was verified before stays in the partial download for the next peer. A server answers
//! GETs in order, one at a time, from complete blobs only, reading and verifying each item
//! against the root before it goes out ([`ResponseEncoder`]).

use std::collections::{HashSet, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use cairn_core::varint;
use cairn_sync::{Extension, SyncError};

use crate::tree::{self, ResponseEncoder, ResponseVerifier};
use crate::{BlobHash, BlobStore, Partial, StoredSource, blob_refs};

const GET: u8 = 1;
const HAVE: u8 = 2;
const NOTHAVE: u8 = 3;
const DATA: u8 = 4;
const END: u8 = 5;

/// Most group ranges in one GET.
pub const MAX_RANGES: usize = 256;
/// Most response bytes in one DATA message.
pub const MAX_DATA: usize = 64 << 10;
/// Most GETs a server queues for one peer.
pub const MAX_QUEUED: usize = 64;

/// A message of the blob protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Get {
        /// Request id.
        id: u64,
        /// The blob.
        hash: BlobHash,
        /// Chunk groups wanted.
        ranges: Vec<Range<u64>>,
    },
    /// The blob is here; its response follows.
    Have {
        /// Request id.
        id: u64,
        /// Its size.
        size: u64,
    },
    /// The blob is not here.
    NotHave {
        /// Request id.
        id: u64,
    },
    /// Response bytes.
    Data {
        /// Request id.
        id: u64,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// End of a response.
    End {
        /// Request id.
        id: u64,
    },
}

/// A message that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Too short.
    #[error("truncated message")]
    Truncated,
    /// A bad varint.
    #[error("bad varint")]
    Varint,
    /// An unknown tag.
    #[error("unknown message tag {0}")]
    Tag(u8),
    /// Over a limit.
    #[error("{what} over its limit")]
    TooLarge {
        /// Which count.
        what: &'static str,
    },
    /// Bytes after the message.
    #[error("trailing bytes")]
    Trailing,
    /// A range that ends before it starts.
    #[error("empty or reversed range")]
    BadRange,
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn varint(&mut self) -> Result<u64, DecodeError> {
        match varint::decode(self.0) {
            Ok((v, n)) => {
                self.0 = &self.0[n..];
                Ok(v)
            }
            Err(varint::VarintError::Truncated) => Err(DecodeError::Truncated),
            Err(_) => Err(DecodeError::Varint),
        }
    }
    fn end(&self) -> Result<(), DecodeError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Trailing)
        }
    }
}

impl Message {
    /// The message's bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Message::Get { id, hash, ranges } => {
                out.push(GET);
                varint::encode(*id, out);
                out.extend_from_slice(&hash.0);
                varint::encode(ranges.len() as u64, out);
                for r in ranges {
                    varint::encode(r.start, out);
                    varint::encode(r.end - r.start, out);
                }
            }
            Message::Have { id, size } => {
                out.push(HAVE);
                varint::encode(*id, out);
                varint::encode(*size, out);
            }
            Message::NotHave { id } => {
                out.push(NOTHAVE);
                varint::encode(*id, out);
            }
            Message::Data { id, bytes } => {
                out.push(DATA);
                varint::encode(*id, out);
                out.extend_from_slice(bytes);
            }
            Message::End { id } => {
                out.push(END);
                varint::encode(*id, out);
            }
        }
    }

    /// Decodes one message; every count is checked before it sizes an allocation.
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        let (&tag, rest) = bytes.split_first().ok_or(DecodeError::Truncated)?;
        let mut r = Reader(rest);
        let id = r.varint()?;
        let m = match tag {
            GET => {
                let h: [u8; 32] =
                    r.0.get(..32)
                        .and_then(|s| s.try_into().ok())
                        .ok_or(DecodeError::Truncated)?;
                r.0 = &r.0[32..];
                let n = r.varint()?;
                if n > MAX_RANGES as u64 {
                    return Err(DecodeError::TooLarge { what: "ranges" });
                }
                let mut ranges = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    let start = r.varint()?;
                    let len = r.varint()?;
                    let end = start.checked_add(len).ok_or(DecodeError::BadRange)?;
                    if len == 0 {
                        return Err(DecodeError::BadRange);
                    }
                    ranges.push(start..end);
                }
                Message::Get {
                    id,
                    hash: BlobHash(h),
                    ranges,
                }
            }
            HAVE => Message::Have {
                id,
                size: r.varint()?,
            },
            NOTHAVE => Message::NotHave { id },
            DATA => {
                if r.0.len() > MAX_DATA {
                    return Err(DecodeError::TooLarge { what: "data" });
                }
                let bytes = r.0.to_vec();
                r.0 = &[];
                Message::Data { id, bytes }
            }
            END => Message::End { id },
            t => return Err(DecodeError::Tag(t)),
        };
        r.end()?;
        Ok(m)
    }
}

/// How a fetch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The blob is stored, complete and verified.
    Stored {
        /// Its size.
        size: u64,
        /// Bytes received in this session (less than the size after a resume).
        received: u64,
    },
    /// The peer does not have it.
    NotFound,
    /// The peer does not run the blob protocol.
    Unsupported,
    /// The transfer failed (what was verified is kept for a resume).
    Failed(String),
}

struct Fetch {
    hash: BlobHash,
    id: u64,
    sent: bool,
    ranges: Vec<Range<u64>>,
    partial: Option<Partial>,
    verifier: Option<ResponseVerifier>,
    received: u64,
    rounds: u32,
    /// Fetched together with other connections: the download lives in the swarm, which
    /// hands this connection the groups to ask for (its member number).
    swarm: Option<(Swarm, u64)>,
}

impl Fetch {
    /// Sends the GET for `self.ranges` under the next request id.
    fn ask(&mut self, next_id: &mut u64, out: &mut Vec<u8>) {
        self.sent = true;
        self.id = *next_id;
        *next_id += 1;
        Message::Get {
            id: self.id,
            hash: self.hash,
            ranges: self.ranges.clone(),
        }
        .encode(out);
    }
}

/// Groups one request of a [`Swarm`] member asks for (4 MiB).
pub const SWARM_SLICE_GROUPS: u64 = 256;

/// One blob fetched from several peers at once, each connection's [`BlobPeer`] a member
/// ([`BlobPeer::fetch_in`]): a member asks for the next [`SWARM_SLICE_GROUPS`] groups that
/// are neither stored nor asked of another member (before the size is known, member *k*
/// asks for slice *k*: every answer holds the last group, which proves the size); when no
/// group is left unasked it asks for one another member is fetching (whichever answers
/// first wins; a verified group is the same bytes from anyone). A member whose peer fails,
/// lies or is silent gives its groups back, so the others fetch them. The download is the
/// store's [`Partial`] (one, shared), finished by whichever member verifies its last group.
#[derive(Clone)]
pub struct Swarm(Arc<Mutex<SwarmState>>);

struct SwarmState {
    hash: BlobHash,
    store: BlobStore,
    partial: Option<Partial>,
    /// Groups asked of each member and not yet answered.
    taken: Vec<(u64, Vec<Range<u64>>)>,
    members: u64,
    /// Slices asked before the size was known.
    probes: u64,
    outcome: Option<Outcome>,
    received: u64,
}

impl std::fmt::Debug for Swarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state();
        f.debug_struct("Swarm")
            .field("hash", &s.hash)
            .field("outcome", &s.outcome)
            .finish_non_exhaustive()
    }
}

/// What a swarm member asks next.
enum Next {
    Ask(Vec<Range<u64>>),
    Done(Outcome),
}

/// Removes `b` from the group ranges `a` (both sorted, non-overlapping).
fn subtract(a: &[Range<u64>], b: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut out = Vec::new();
    for r in a {
        let mut start = r.start;
        for t in b {
            if t.end <= start || t.start >= r.end {
                continue;
            }
            if t.start > start {
                out.push(start..t.start);
            }
            start = start.max(t.end);
        }
        if start < r.end {
            out.push(start..r.end);
        }
    }
    out
}

/// The first `n` groups of `ranges`.
fn first_groups(ranges: &[Range<u64>], mut n: u64) -> Vec<Range<u64>> {
    let mut out = Vec::new();
    for r in ranges {
        if n == 0 || out.len() >= MAX_RANGES {
            break;
        }
        let take = (r.end - r.start).min(n);
        out.push(r.start..r.start + take);
        n -= take;
    }
    out
}

impl Swarm {
    /// A swarm fetching `hash` into `store` (resuming a partial download if one is kept).
    pub fn new(store: BlobStore, hash: BlobHash) -> Swarm {
        Swarm(Arc::new(Mutex::new(SwarmState {
            hash,
            store,
            partial: None,
            taken: Vec::new(),
            members: 0,
            probes: 0,
            outcome: None,
            received: 0,
        })))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SwarmState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How the download ended, once it has: `Stored` when a member verified the last
    /// missing group (`received`: bytes verified from all members).
    pub fn outcome(&self) -> Option<Outcome> {
        self.state().outcome.clone()
    }

    fn join(&self) -> u64 {
        let mut s = self.state();
        s.members += 1;
        s.members
    }

    fn next(&self, member: u64) -> Result<Next, String> {
        let mut s = self.state();
        s.taken.retain(|(m, _)| *m != member);
        if let Some(o) = &s.outcome {
            return Ok(Next::Done(o.clone()));
        }
        let hash = s.hash;
        if s.store.has(&hash).map_err(|e| e.to_string())? {
            let size = s.store.size(&hash).ok().flatten().unwrap_or(0);
            let o = Outcome::Stored {
                size,
                received: s.received,
            };
            s.outcome = Some(o.clone());
            return Ok(Next::Done(o));
        }
        if s.partial.is_none()
            && let Some(size) = s.store.partial_size(&hash)
        {
            s.partial = Some(s.store.partial(&hash, size).map_err(|e| e.to_string())?);
        }
        let ask = match &s.partial {
            None => {
                let k = s.probes;
                s.probes += 1;
                std::iter::once(k * SWARM_SLICE_GROUPS..(k + 1) * SWARM_SLICE_GROUPS).collect()
            }
            Some(p) => {
                let missing = p.missing();
                if missing.is_empty() {
                    return Ok(Next::Done(s.finish()?));
                }
                let taken: Vec<Range<u64>> = {
                    let mut t: Vec<Range<u64>> = s
                        .taken
                        .iter()
                        .flat_map(|(_, r)| r.iter().cloned())
                        .collect();
                    t.sort_by_key(|r| r.start);
                    t
                };
                let free = subtract(&missing, &taken);
                // Nothing unasked: help with what others are fetching (end game).
                let pick = if free.is_empty() { &missing } else { &free };
                first_groups(pick, SWARM_SLICE_GROUPS)
            }
        };
        s.taken.push((member, ask.clone()));
        Ok(Next::Ask(ask))
    }

    /// A member's peer claims the blob has `size` bytes.
    fn have(&self, size: u64) -> Result<(), String> {
        let mut s = self.state();
        if s.outcome.is_some() {
            return Ok(());
        }
        match &s.partial {
            Some(p) if p.size() == size => Ok(()),
            Some(p) if p.present() > 0 => Err(format!(
                "the peer claims {size} bytes; groups verified with another peer's answer \
                 prove {}",
                p.size()
            )),
            // Nothing verified under the size claimed so far: this claim is as good.
            _ => {
                let hash = s.hash;
                s.partial = None;
                s.partial = Some(s.store.partial(&hash, size).map_err(|e| e.to_string())?);
                Ok(())
            }
        }
    }

    /// Stores verified items (after the download finished, they are dropped).
    fn write(&self, items: &[tree::Verified]) -> Result<(), String> {
        let mut s = self.state();
        let SwarmState {
            partial, received, ..
        } = &mut *s;
        let Some(p) = partial.as_mut() else {
            return Ok(());
        };
        for it in items {
            if let tree::Verified::Group { data, .. } = it {
                *received += data.len() as u64;
            }
            p.write(it).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// A member's connection ended: its groups are free for the others.
    fn leave(&self, member: u64) {
        let mut s = self.state();
        s.taken.retain(|(m, _)| *m != member);
        if let Some(p) = s.partial.as_mut() {
            let _ = p.checkpoint();
        }
    }
}

impl SwarmState {
    fn finish(&mut self) -> Result<Outcome, String> {
        let Some(p) = self.partial.take() else {
            return Err("no download to finish".into());
        };
        let size = p.size();
        if !p.finish().map_err(|e| e.to_string())? {
            return Err("the blob stayed incomplete".into());
        }
        let o = Outcome::Stored {
            size,
            received: self.received,
        };
        self.outcome = Some(o.clone());
        Ok(o)
    }
}

struct Serving {
    id: u64,
    size: u64,
    src: Option<StoredSource>,
    enc: Option<ResponseEncoder>,
    header_sent: bool,
}

/// When a [`BlobPeer`] fetches the blobs named by nodes it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchMode {
    /// As soon as a node naming it arrives ([`BlobPeer::fetch_referenced`]).
    Eager,
    /// Only when asked ([`BlobPeer::fetch`], e.g. when first read); `fetch_referenced` does
    /// nothing.
    OnRead,
}

/// Which blobs a [`BlobPeer`] fetches, and how much it may store: a blob whose size (as
/// the peer's HAVE claims it; the response proves it) is over `max_blob`, or that would
/// bring the store's bytes (complete and partial, [`BlobStore::total_size`]) over
/// `max_total`, is not fetched — the request is abandoned at HAVE, nothing is stored, its
/// outcome is [`Outcome::Failed`] with the reason, and the session goes on. The caps apply
/// to every fetch of the peer, eager or asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchPolicy {
    /// When referenced blobs are fetched.
    pub mode: FetchMode,
    /// Largest blob fetched, in bytes.
    pub max_blob: u64,
    /// Most bytes of blobs the store holds after a fetch.
    pub max_total: u64,
}

impl FetchPolicy {
    /// No caps, eager (what [`BlobPeer::new`] starts with).
    pub const UNLIMITED: FetchPolicy = FetchPolicy {
        mode: FetchMode::Eager,
        max_blob: u64::MAX,
        max_total: u64::MAX,
    };

    /// Why a blob of `size` bytes is not fetched into a store holding `held` bytes
    /// (`held` without this blob's own partial download), if it is not.
    pub fn refuses(&self, size: u64, held: u64) -> Option<String> {
        if size > self.max_blob {
            Some(format!(
                "{size} bytes, over the fetch policy's cap of {} per blob: not fetched",
                self.max_blob
            ))
        } else if held.saturating_add(size) > self.max_total {
            Some(format!(
                "{size} bytes would bring the store to {} bytes, over the fetch policy's \
                 total of {}: not fetched",
                held.saturating_add(size),
                self.max_total
            ))
        } else {
            None
        }
    }
}

/// A response this peer abandoned at its HAVE: its DATA is dropped unread until its END.
#[derive(Debug)]
struct Discard {
    id: u64,
    /// Bytes still accepted (what was asked for plus the tree's parents); past it the
    /// peer is sending what nobody asked for and the session fails.
    budget: u64,
}

/// One side of the blob protocol over one connection: answers the peer's requests (when
/// `serve`), and fetches the blobs asked for with [`BlobPeer::fetch`], one at a time.
pub struct BlobPeer {
    store: BlobStore,
    serve: bool,
    policy: FetchPolicy,
    discard: Option<Discard>,
    open: Option<bool>,
    next_id: u64,
    fetches: VecDeque<Fetch>,
    outcomes: Vec<(BlobHash, Outcome)>,
    serving: VecDeque<Serving>,
    eager: Option<Eager>,
    /// Response bytes sent (served).
    pub bytes_served: u64,
}

/// The policy "fetch what new nodes name": the log is scanned from change `scanned` on as
/// it grows, and every blob named there that is not stored is fetched once.
#[derive(Debug)]
struct Eager {
    scanned: u64,
    tried: HashSet<BlobHash>,
}

/// Log entries an eager peer scans per message it is asked for.
const SCAN_BATCH: u64 = 256;

impl std::fmt::Debug for BlobPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobPeer")
            .field("fetches", &self.fetches.len())
            .field("serving", &self.serving.len())
            .finish_non_exhaustive()
    }
}

impl BlobPeer {
    /// A peer over `store`; it answers requests only if `serve`.
    pub fn new(store: BlobStore, serve: bool) -> Self {
        BlobPeer {
            store,
            serve,
            policy: FetchPolicy::UNLIMITED,
            discard: None,
            open: None,
            next_id: 1,
            fetches: VecDeque::new(),
            outcomes: Vec::new(),
            serving: VecDeque::new(),
            eager: None,
            bytes_served: 0,
        }
    }

    /// Also fetches, from this peer, every blob named (see [`blob_refs`]) by a node the log
    /// gets after change `since` — e.g. the nodes this session receives — once each, when it
    /// is not stored already. (Blobs the peer turns out not to have are not asked again on
    /// this connection; [`BlobPeer::fetch`] asks anyway.)
    /// Does nothing under [`FetchMode::OnRead`] (set the policy first).
    pub fn fetch_referenced(mut self, since: u64) -> Self {
        if self.policy.mode != FetchMode::Eager {
            return self;
        }
        self.eager = Some(Eager {
            scanned: since,
            tried: HashSet::new(),
        });
        self
    }

    /// Fetches under `policy` (caps and mode; see [`FetchPolicy`]).
    pub fn with_policy(mut self, policy: FetchPolicy) -> Self {
        self.policy = policy;
        if policy.mode != FetchMode::Eager {
            self.eager = None;
        }
        self
    }

    /// Whether a fetch of `hash` is queued or running.
    pub fn is_fetching(&self, hash: &BlobHash) -> bool {
        self.fetches.iter().any(|f| f.hash == *hash)
    }

    /// Scans the log's new nodes for blobs to fetch (the eager policy).
    fn scan(&mut self) -> Result<(), String> {
        let Some(e) = self.eager.as_mut() else {
            return Ok(());
        };
        let log = self.store.log();
        if log.len() <= e.scanned || self.fetches.len() >= MAX_QUEUED {
            return Ok(());
        }
        let mut want = Vec::new();
        let mut last = e.scanned;
        for entry in log.changes(
            cairn_log::ChangesQuery::all()
                .since(e.scanned)
                .limit(SCAN_BATCH),
        ) {
            let entry = entry.map_err(|e| format!("reading the log: {e}"))?;
            last = last.max(entry.change);
            want.extend(blob_refs(entry.node.value()).filter(|h| e.tried.insert(*h)));
        }
        e.scanned = if last == e.scanned { log.len() } else { last };
        for h in want {
            if !self.store.has(&h).map_err(|e| e.to_string())? {
                self.fetch(h);
            }
        }
        Ok(())
    }

    /// Queues a fetch of `hash` (resuming a partial download if one is kept).
    pub fn fetch(&mut self, hash: BlobHash) {
        let id = self.next_id;
        self.next_id += 1;
        self.fetches.push_back(Fetch {
            hash,
            id,
            sent: false,
            ranges: Vec::new(),
            partial: None,
            verifier: None,
            received: 0,
            rounds: 0,
            swarm: None,
        });
    }

    /// Queues this connection's share of `swarm`'s download (see [`Swarm`]); its outcome
    /// is the swarm's (`Stored` once any member completed the blob).
    pub fn fetch_in(&mut self, swarm: &Swarm) {
        let hash = swarm.state().hash;
        let member = swarm.join();
        self.fetch(hash);
        if let Some(f) = self.fetches.back_mut() {
            f.swarm = Some((swarm.clone(), member));
        }
    }

    /// How the fetches that ended so far ended.
    pub fn outcomes(&self) -> &[(BlobHash, Outcome)] {
        &self.outcomes
    }

    /// Wraps the peer so that a session can run it and the caller can still look at it.
    pub fn shared(self) -> (Arc<Mutex<BlobPeer>>, Box<dyn Extension>) {
        let a = Arc::new(Mutex::new(self));
        (a.clone(), Box::new(Shared(a)))
    }

    fn done(&mut self, outcome: Outcome) {
        if let Some(mut f) = self.fetches.pop_front() {
            if let Some(p) = f.partial.as_mut() {
                let _ = p.checkpoint();
            }
            if let Some((swarm, member)) = &f.swarm {
                swarm.leave(*member);
            }
            self.outcomes.push((f.hash, outcome));
        }
    }

    fn on_message(&mut self, body: &[u8]) -> Result<(), String> {
        let m = Message::decode(body).map_err(|e| format!("blob protocol: {e}"))?;
        match m {
            Message::Get { id, hash, ranges } => {
                if !self.serve {
                    return Err("blob request to a peer that does not serve blobs".into());
                }
                if self.serving.len() >= MAX_QUEUED {
                    return Err("too many blob requests queued".into());
                }
                let src = self.store.source(&hash).map_err(|e| e.to_string())?;
                self.serving.push_back(match src {
                    Some((size, src)) => Serving {
                        id,
                        size,
                        enc: Some(ResponseEncoder::new(
                            &hash,
                            size,
                            tree::chunk_ranges(&ranges, size),
                        )),
                        src: Some(src),
                        header_sent: false,
                    },
                    None => Serving {
                        id,
                        size: 0,
                        src: None,
                        enc: None,
                        header_sent: false,
                    },
                });
                Ok(())
            }
            Message::Have { id, size } => {
                let f = self.current(id)?;
                if f.verifier.is_some() {
                    return Err("a second HAVE for one request".into());
                }
                let hash = f.hash;
                let asked = groups_bytes(&f.ranges, size);
                if let Some(why) = self.refused(&hash, size)? {
                    // Abandoned here: what the peer sends for it is dropped unread.
                    self.discard = Some(Discard {
                        id,
                        budget: asked.saturating_add(asked / 8).saturating_add(1 << 20),
                    });
                    self.done(Outcome::Failed(format!("blob {hash}: {why}")));
                    return Ok(());
                }
                let f = self.current(id)?;
                if let Some((swarm, _)) = f.swarm.clone() {
                    if let Err(e) = swarm.have(size) {
                        self.done(Outcome::Failed(e.clone()));
                        return Err(e);
                    }
                    let f = self.current(id)?;
                    f.verifier = Some(ResponseVerifier::new(
                        &hash,
                        size,
                        tree::chunk_ranges(&f.ranges, size),
                    ));
                    return Ok(());
                }
                // Reopened with the sender's size: kept groups stay if it is the same.
                f.partial = None;
                let p = self.store.partial(&hash, size).map_err(|e| e.to_string())?;
                let f = self.current(id)?;
                f.verifier = Some(ResponseVerifier::new(
                    &hash,
                    size,
                    tree::chunk_ranges(&f.ranges, size),
                ));
                f.partial = Some(p);
                Ok(())
            }
            Message::NotHave { id } => {
                self.current(id)?;
                self.done(Outcome::NotFound);
                Ok(())
            }
            Message::Data { id, bytes } if self.discard.as_ref().is_some_and(|d| d.id == id) => {
                let d = self.discard.as_mut().expect("checked");
                d.budget = d
                    .budget
                    .checked_sub(bytes.len() as u64)
                    .ok_or("more blob bytes than were asked for")?;
                Ok(())
            }
            Message::End { id } if self.discard.as_ref().is_some_and(|d| d.id == id) => {
                self.discard = None;
                Ok(())
            }
            Message::Data { id, bytes } => {
                let f = self.current(id)?;
                if let (Some((swarm, _)), Some(v)) = (&f.swarm, f.verifier.as_mut()) {
                    let mut items = Vec::new();
                    let r = v.push(&bytes, &mut items);
                    swarm.write(&items)?;
                    if let Err(e) = r {
                        let msg = format!("blob {} does not verify: {e}", f.hash);
                        self.done(Outcome::Failed(msg.clone()));
                        return Err(msg);
                    }
                    return Ok(());
                }
                let (Some(v), Some(p)) = (f.verifier.as_mut(), f.partial.as_mut()) else {
                    return Err("blob DATA before HAVE".into());
                };
                let mut items = Vec::new();
                let r = v.push(&bytes, &mut items);
                // What verified before a bad group is kept.
                for it in items.drain(..) {
                    if let tree::Verified::Group { data, .. } = &it {
                        f.received += data.len() as u64;
                    }
                    p.write(&it).map_err(|e| e.to_string())?;
                }
                if let Err(e) = r {
                    let msg = format!("blob {} does not verify: {e}", f.hash);
                    self.done(Outcome::Failed(msg.clone()));
                    return Err(msg);
                }
                Ok(())
            }
            Message::End { id } => {
                let f = self.current(id)?;
                if let (Some((swarm, _)), Some(v)) = (&f.swarm, f.verifier.as_mut()) {
                    let mut items = Vec::new();
                    v.push(&[], &mut items).map_err(|e| e.to_string())?;
                    swarm.write(&items)?;
                    if !v.is_done() {
                        let msg = format!("blob {}: the response ended early", f.hash);
                        self.done(Outcome::Failed(msg.clone()));
                        return Err(msg);
                    }
                    // The next slice (or the swarm's outcome) on the next poll.
                    f.sent = false;
                    f.verifier = None;
                    return Ok(());
                }
                let (Some(v), Some(p)) = (f.verifier.as_mut(), f.partial.as_mut()) else {
                    return Err("blob END before HAVE".into());
                };
                let mut items = Vec::new();
                v.push(&[], &mut items).map_err(|e| e.to_string())?;
                for it in &items {
                    p.write(it).map_err(|e| e.to_string())?;
                }
                if !v.is_done() {
                    let msg = format!("blob {}: the response ended early", f.hash);
                    self.done(Outcome::Failed(msg.clone()));
                    return Err(msg);
                }
                let size = p.size();
                let received = f.received;
                if p.is_complete() {
                    if let Some(p) = f.partial.take() {
                        p.finish().map_err(|e| e.to_string())?;
                    }
                    self.done(Outcome::Stored { size, received });
                } else if f.rounds < 4 {
                    // A kept partial of another size was dropped: ask for the rest.
                    f.sent = false;
                    f.verifier = None;
                    f.partial = None;
                } else {
                    self.done(Outcome::Failed("the blob stayed incomplete".into()));
                }
                Ok(())
            }
        }
    }

    /// Why the policy refuses a blob of `size` bytes (its own partial download, if any, is
    /// not counted twice).
    fn refused(&self, hash: &BlobHash, size: u64) -> Result<Option<String>, String> {
        if self.policy.max_blob == u64::MAX && self.policy.max_total == u64::MAX {
            return Ok(None);
        }
        if size > self.policy.max_blob {
            return Ok(self.policy.refuses(size, 0));
        }
        let own = self.store.partial_size(hash).unwrap_or(0);
        let held = self.store.total_size().map_err(|e| e.to_string())?;
        Ok(self.policy.refuses(size, held.saturating_sub(own)))
    }

    fn current(&mut self, id: u64) -> Result<&mut Fetch, String> {
        match self.fetches.front_mut() {
            Some(f) if f.sent && f.id == id => Ok(f),
            _ => Err(format!(
                "blob answer to request {id}, which is not outstanding"
            )),
        }
    }

    fn poll_message(&mut self) -> Result<Option<Vec<u8>>, String> {
        let mut out = Vec::new();
        if self.open == Some(true) {
            self.scan()?;
        }
        // Our own request first (it is small).
        if self.open == Some(true)
            && let Some(f) = self.fetches.front_mut()
            && !f.sent
        {
            if let Some((swarm, member)) = &f.swarm {
                match swarm.next(*member)? {
                    Next::Done(o) => {
                        self.done(o);
                        return self.poll_message();
                    }
                    Next::Ask(ranges) => f.ranges = ranges,
                }
                f.ask(&mut self.next_id, &mut out);
                return Ok(Some(out));
            }
            if self.store.has(&f.hash).map_err(|e| e.to_string())? {
                let size = self.store.size(&f.hash).ok().flatten().unwrap_or(0);
                self.done(Outcome::Stored { size, received: 0 });
                return self.poll_message();
            }
            f.ranges = match self.store.partial_size(&f.hash) {
                Some(size) => {
                    let p = self
                        .store
                        .partial(&f.hash, size)
                        .map_err(|e| e.to_string())?;
                    let m = p.missing();
                    f.partial = Some(p);
                    m
                }
                // Under a per-blob cap, no more than the cap's groups: a blob over it is
                // abandoned at HAVE, and the peer sends at most that much in vain.
                None => std::iter::once(0..groups_within(self.policy.max_blob)).collect(),
            };
            f.ranges.truncate(MAX_RANGES);
            f.rounds += 1;
            f.ask(&mut self.next_id, &mut out);
            return Ok(Some(out));
        }
        let Some(s) = self.serving.front_mut() else {
            return Ok(None);
        };
        let (Some(enc), Some(src)) = (s.enc.as_mut(), s.src.as_ref()) else {
            Message::NotHave { id: s.id }.encode(&mut out);
            self.serving.pop_front();
            return Ok(Some(out));
        };
        if !s.header_sent {
            s.header_sent = true;
            Message::Have {
                id: s.id,
                size: s.size,
            }
            .encode(&mut out);
            return Ok(Some(out));
        }
        if enc.is_done() {
            Message::End { id: s.id }.encode(&mut out);
            self.serving.pop_front();
            return Ok(Some(out));
        }
        out.push(DATA);
        varint::encode(s.id, &mut out);
        let header = out.len();
        // One chunk group (and the parents before it) per message: the session interleaves
        // channels message by message, so a log message waits behind at most one slice.
        enc.fill_group(src, &mut out).map_err(|e| e.to_string())?;
        self.bytes_served += (out.len() - header) as u64;
        Ok(Some(out))
    }
}

/// Groups covering `bytes` bytes (all of them for `u64::MAX`).
fn groups_within(bytes: u64) -> u64 {
    if bytes == u64::MAX {
        u64::MAX
    } else {
        bytes.div_ceil(tree::GROUP_BYTES).max(1)
    }
}

/// Bytes of a blob of `size` in the groups `ranges` plus its last group.
fn groups_bytes(ranges: &[Range<u64>], size: u64) -> u64 {
    let groups: u64 = ranges
        .iter()
        .map(|r| r.end.saturating_sub(r.start))
        .fold(0u64, u64::saturating_add);
    groups
        .saturating_add(1)
        .saturating_mul(tree::GROUP_BYTES)
        .min(size.saturating_add(tree::GROUP_BYTES))
}

struct Shared(Arc<Mutex<BlobPeer>>);

impl Shared {
    fn peer(&self) -> std::sync::MutexGuard<'_, BlobPeer> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Extension for Shared {
    fn on_open(&mut self, open: bool) {
        let mut p = self.peer();
        p.open = Some(open);
        if !open {
            while !p.fetches.is_empty() {
                p.done(Outcome::Unsupported);
            }
        }
    }
    fn on_message(&mut self, body: &[u8]) -> Result<(), String> {
        self.peer().on_message(body)
    }
    fn poll_message(&mut self) -> Result<Option<Vec<u8>>, String> {
        self.peer().poll_message()
    }
    fn busy(&self) -> bool {
        let p = self.peer();
        // An eager peer is busy until it has looked at the nodes the log got.
        !p.fetches.is_empty()
            || p.eager
                .as_ref()
                .is_some_and(|e| p.store.log().len() > e.scanned)
    }
    fn on_end(&mut self, error: Option<&SyncError>) {
        let mut p = self.peer();
        let why = match error {
            Some(e) => format!("the connection failed: {e}"),
            None => "the connection closed".into(),
        };
        while !p.fetches.is_empty() {
            p.done(Outcome::Failed(why.clone()));
        }
    }
}
