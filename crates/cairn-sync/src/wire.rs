//! The log channel's messages and the compact node encoding, byte by byte.
//!
//! See `crates/cairn-sync/DESIGN.md` for the rationale. All varints are cairn-core's minimal
//! LEB128; fixed-size fields are raw bytes.
//!
//! ```text
//! HELLO  = 0x01 version:u8 mode:u8 flags:u8 meta_len:varint meta
//!          count:varint top:varint (max height + 1, 0 when empty) fingerprint:32
//!          flags: bit 0 live, bit 1 keep-alive (the sender accepts PING); other bits ignored
//! RANGES = 0x02 more:u8 n:varint item×n
//!          the items of one turn cover [MIN, END) in order; a turn may span several
//!          messages: all but the last have more = 1 and do not reach END
//! item   = tag:u8 bound payload
//!          tag 0 SKIP  payload = ()
//!              1 FP    payload = count:varint fp:16
//!              2 IDS   payload = n:varint hash:32×n
//!              3 WANT  payload = n:varint bitmap:⌈n/8⌉ (bit i: send the i-th id of my IDS)
//! bound  = plen:u8 (0xFF = END, no more fields) dheight:varint prefix:plen
//!          upper bound of the item: height = previous upper's height + dheight, hash = prefix
//!          padded with zeros
//! NODES  = 0x03 n:varint node×n
//! node   = flags:u8 (0 unsigned, 1 signed + author:32 follows, 2 signed + author_index:varint)
//!          link_count:varint link×link_count value_len:varint value [signature:64 if signed]
//! link   = back:varint (0: hash:32 follows; d ≥ 1: the node sent d nodes ago on this channel)
//! DONE   = 0x04 sent:varint   the sender has sent all it owes this round: `sent` nodes
//! PING   = 0x05   keep-alive: proof of life in a quiet session, after HELLO only, sent only
//!                 to a peer whose HELLO has the keep-alive flag; no answer, no round trip
//! SYNCED = 0x06 flags:u8 count:varint top:varint fingerprint:32
//!          after DONE both ways, once every node received this round is durable and the
//!          peer's DONE count checked: the sender's whole set now; flags bit 0: the set was
//!          also written by others during the round (other bits ignored)
//! ```

use std::collections::{HashMap, VecDeque};

use cairn_core::{Draft, Hash, Limits, Node, PublicKey, Signature, varint};

use crate::error::WireError;
use crate::mux::Reader;
use crate::store::Key;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u8 = 2;
/// Longest handshake metadata.
pub const MAX_METADATA: usize = 4096;
/// Most ids in one IDS item (also bounds WANT bitmaps).
pub const MAX_IDS: usize = 4096;
/// Most items in one RANGES message.
pub const MAX_ITEMS: usize = 4096;
/// Most nodes in one NODES message.
pub const MAX_NODES_PER_MESSAGE: usize = 4096;
/// Back-reference window: how many recently sent nodes a link may refer to.
pub const BACKREF_WINDOW: usize = 4096;
/// Most authors in a session's author dictionary.
pub const MAX_AUTHORS: usize = 65536;

pub(crate) const TAG_HELLO: u8 = 1;
pub(crate) const TAG_RANGES: u8 = 2;
pub(crate) const TAG_NODES: u8 = 3;
pub(crate) const TAG_DONE: u8 = 4;
pub(crate) const TAG_PING: u8 = 5;
pub(crate) const TAG_SYNCED: u8 = 6;

const FLAG_LIVE: u8 = 1;
const FLAG_KEEP_ALIVE: u8 = 2;
const FLAG_EXTENSIONS: u8 = 4;

/// Which way nodes may flow, as in hyperlog: `push` only sends, `pull` only receives, `sync`
/// does both. push↔push and pull↔pull cannot work together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Send only.
    Push,
    /// Receive only.
    Pull,
    /// Send and receive.
    #[default]
    Sync,
}

impl Mode {
    fn byte(self) -> u8 {
        match self {
            Mode::Push => 0,
            Mode::Pull => 1,
            Mode::Sync => 2,
        }
    }
    fn from_byte(b: u8) -> Result<Mode, WireError> {
        Ok(match b {
            0 => Mode::Push,
            1 => Mode::Pull,
            2 => Mode::Sync,
            o => return Err(WireError::UnknownMode(o)),
        })
    }
    /// Whether this side sends nodes.
    pub fn sends(self) -> bool {
        matches!(self, Mode::Push | Mode::Sync)
    }
    /// Whether this side receives nodes.
    pub fn receives(self) -> bool {
        matches!(self, Mode::Pull | Mode::Sync)
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "push" => Ok(Mode::Push),
            "pull" => Ok(Mode::Pull),
            "sync" => Ok(Mode::Sync),
            o => Err(format!("unknown mode {o:?} (push, pull or sync)")),
        }
    }
}

/// The handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version.
    pub version: u8,
    /// The sender's mode.
    pub mode: Mode,
    /// Whether the sender wants a live session.
    pub live: bool,
    /// Whether the sender accepts keep-alive messages ([`Message::Ping`]).
    pub keep_alive: bool,
    /// Whether the sender runs the extension channel ([`EXTENSION_CHANNEL`](crate::EXTENSION_CHANNEL),
    /// the blob protocol): flag bit 2, set only by a session created with an extension, so
    /// a session without one sends the same bytes as before.
    pub extensions: bool,
    /// Application metadata (hyperlog's `metadata`), at most [`MAX_METADATA`] bytes.
    pub metadata: Vec<u8>,
    /// Number of nodes the sender holds.
    pub count: u64,
    /// The sender's greatest node height, `None` when empty.
    pub max_height: Option<u64>,
    /// Fingerprint of the sender's whole node set.
    pub fingerprint: [u8; 32],
}

/// What a range item says about its range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemKind {
    /// Nothing to do here.
    Skip,
    /// The sender's fingerprint of the range: compare.
    Fp {
        /// Nodes in range.
        count: u64,
        /// First 16 bytes of [`Agg::digest`](crate::Agg::digest).
        fp: [u8; 16],
    },
    /// All of the sender's node hashes in the range.
    Ids(Vec<Hash>),
    /// Which ids of the receiver's IDS item for this range the sender wants.
    Want(Vec<bool>),
}

impl ItemKind {
    /// Whether the receiver's answer can make new send work for the item's sender: a
    /// fingerprint to compare, or a non-empty id list (answered with WANT).
    pub fn is_open(&self) -> bool {
        match self {
            ItemKind::Fp { .. } => true,
            ItemKind::Ids(ids) => !ids.is_empty(),
            ItemKind::Skip | ItemKind::Want(_) => false,
        }
    }
}

/// One range of a RANGES message: from the previous item's upper bound to `upper`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Exclusive upper bound.
    pub upper: Key,
    /// What the sender says about the range.
    pub kind: ItemKind,
}

/// A decoded message of the log channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// The handshake.
    Hello(Hello),
    /// A reconciliation turn, or part of one.
    Ranges {
        /// The items, continuing from the previous message's last bound (or from `MIN`).
        items: Vec<Item>,
        /// More messages of this turn follow.
        more: bool,
    },
    /// Nodes, still encoded (they need the channel's decoder state).
    Nodes(&'a [u8]),
    /// The sender has sent everything it owes in this reconciliation round.
    Done {
        /// How many nodes it sent in this round (the receiver checks it got as many).
        sent: u64,
    },
    /// Keep-alive: the sender is still there.
    Ping,
    /// The end of a reconciliation round: every node the sender received is durable.
    Synced(Synced),
}

/// The end-of-round summary ([`Message::Synced`]): sent by each side once it has sent and
/// received DONE, checked that the peer's nodes all arrived, and made every received node
/// durable. It is the durability acknowledgement the peer completes on; in sync↔sync it also
/// lets both check that their sets are now equal (see `DESIGN.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Synced {
    /// The sender's set was also written by others (local writes, other sessions) during
    /// the round: a difference between the two sets at the end is explained.
    pub changed: bool,
    /// Number of nodes the sender holds now.
    pub count: u64,
    /// The sender's greatest node height now, `None` when empty.
    pub max_height: Option<u64>,
    /// Fingerprint of the sender's whole node set now.
    pub fingerprint: [u8; 32],
}

impl Synced {
    /// Appends the encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(TAG_SYNCED);
        out.push(u8::from(self.changed));
        varint::encode(self.count, out);
        varint::encode(self.max_height.map_or(0, |h| h.saturating_add(1)), out);
        out.extend_from_slice(&self.fingerprint);
    }
}

impl Hello {
    /// Appends the encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(TAG_HELLO);
        out.push(self.version);
        out.push(self.mode.byte());
        let mut flags = 0;
        if self.live {
            flags |= FLAG_LIVE;
        }
        if self.keep_alive {
            flags |= FLAG_KEEP_ALIVE;
        }
        if self.extensions {
            flags |= FLAG_EXTENSIONS;
        }
        out.push(flags);
        varint::encode(self.metadata.len() as u64, out);
        out.extend_from_slice(&self.metadata);
        varint::encode(self.count, out);
        varint::encode(self.max_height.map_or(0, |h| h.saturating_add(1)), out);
        out.extend_from_slice(&self.fingerprint);
    }
}

/// Appends a RANGES message. `start` is where the first item's range starts (the previous
/// message's last bound, or [`Key::MIN`]); `more` says that more messages of the turn follow.
pub fn encode_ranges(start: Key, items: &[Item], more: bool, out: &mut Vec<u8>) {
    out.push(TAG_RANGES);
    out.push(u8::from(more));
    varint::encode(items.len() as u64, out);
    let mut prev = start;
    for it in items {
        out.push(match it.kind {
            ItemKind::Skip => 0,
            ItemKind::Fp { .. } => 1,
            ItemKind::Ids(_) => 2,
            ItemKind::Want(_) => 3,
        });
        encode_bound(&prev, &it.upper, out);
        match &it.kind {
            ItemKind::Skip => {}
            ItemKind::Fp { count, fp } => {
                varint::encode(*count, out);
                out.extend_from_slice(fp);
            }
            ItemKind::Ids(ids) => {
                varint::encode(ids.len() as u64, out);
                for h in ids {
                    out.extend_from_slice(&h.0);
                }
            }
            ItemKind::Want(bits) => {
                varint::encode(bits.len() as u64, out);
                let mut bytes = vec![0u8; bits.len().div_ceil(8)];
                for (i, b) in bits.iter().enumerate() {
                    if *b {
                        bytes[i / 8] |= 1 << (i % 8);
                    }
                }
                out.extend_from_slice(&bytes);
            }
        }
        prev = it.upper;
    }
}

fn encode_bound(prev: &Key, upper: &Key, out: &mut Vec<u8>) {
    if *upper == Key::END {
        out.push(0xff);
        return;
    }
    let plen = 32 - upper.hash.0.iter().rev().take_while(|b| **b == 0).count();
    out.push(plen as u8);
    varint::encode(upper.height - prev.height, out);
    out.extend_from_slice(&upper.hash.0[..plen]);
}

fn decode_bound(prev: &Key, r: &mut Reader<'_>) -> Result<Key, WireError> {
    let plen = r.u8()?;
    if plen == 0xff {
        return Ok(Key::END);
    }
    if plen > 32 {
        return Err(WireError::BadBound);
    }
    let d = r.varint()?;
    let height = prev.height.checked_add(d).ok_or(WireError::BadBound)?;
    if height == u64::MAX {
        return Err(WireError::BadBound);
    }
    let mut hash = [0u8; 32];
    hash[..plen as usize].copy_from_slice(r.take(plen as usize)?);
    let k = Key {
        height,
        hash: Hash(hash),
    };
    if k <= *prev {
        return Err(WireError::BadBound);
    }
    Ok(k)
}

/// Appends a DONE message: `sent` nodes were sent in this round.
pub fn encode_done(sent: u64, out: &mut Vec<u8>) {
    out.push(TAG_DONE);
    varint::encode(sent, out);
}

/// Appends a PING (keep-alive) message.
pub fn encode_ping(out: &mut Vec<u8>) {
    out.push(TAG_PING);
}

/// Decodes one message of the log channel. `start` is where a RANGES message's first range
/// starts (see [`encode_ranges`]).
pub fn decode_message(body: &[u8], start: Key) -> Result<Message<'_>, WireError> {
    let mut r = Reader::new(body);
    let msg = match r.u8()? {
        TAG_HELLO => {
            let version = r.u8()?;
            let mode = Mode::from_byte(r.u8()?)?;
            let flags = r.u8()?;
            let meta_len = r.varint()?;
            if meta_len > MAX_METADATA as u64 {
                return Err(WireError::FieldTooLong {
                    len: meta_len,
                    max: MAX_METADATA,
                });
            }
            let metadata = r.take(meta_len as usize)?.to_vec();
            let count = r.varint()?;
            let top = r.varint()?;
            let fingerprint = r.array()?;
            Message::Hello(Hello {
                version,
                mode,
                live: flags & FLAG_LIVE != 0,
                keep_alive: flags & FLAG_KEEP_ALIVE != 0,
                extensions: flags & FLAG_EXTENSIONS != 0,
                metadata,
                count,
                max_height: top.checked_sub(1),
                fingerprint,
            })
        }
        TAG_RANGES => {
            let more = match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(WireError::BadBound),
            };
            let n = r.count(MAX_ITEMS)?;
            let mut items = Vec::with_capacity(n);
            let mut prev = start;
            for _ in 0..n {
                if prev == Key::END {
                    return Err(WireError::BadBound);
                }
                let tag = r.u8()?;
                let upper = decode_bound(&prev, &mut r)?;
                let kind = match tag {
                    0 => ItemKind::Skip,
                    1 => ItemKind::Fp {
                        count: r.varint()?,
                        fp: r.array()?,
                    },
                    2 => {
                        let n = r.count(MAX_IDS)?;
                        let mut ids = Vec::with_capacity(n);
                        for _ in 0..n {
                            ids.push(Hash(r.array()?));
                        }
                        ItemKind::Ids(ids)
                    }
                    3 => {
                        let n = r.count(MAX_IDS)?;
                        let bytes = r.take(n.div_ceil(8))?;
                        ItemKind::Want((0..n).map(|i| bytes[i / 8] >> (i % 8) & 1 == 1).collect())
                    }
                    o => return Err(WireError::UnknownItem(o)),
                };
                items.push(Item { upper, kind });
                prev = upper;
            }
            if (prev == Key::END) == more || items.is_empty() {
                return Err(WireError::BadBound);
            }
            Message::Ranges { items, more }
        }
        TAG_NODES => return Ok(Message::Nodes(r.rest())),
        TAG_DONE => Message::Done { sent: r.varint()? },
        TAG_PING => Message::Ping,
        TAG_SYNCED => {
            let changed = r.u8()? & 1 != 0;
            let count = r.varint()?;
            let top = r.varint()?;
            let fingerprint = r.array()?;
            Message::Synced(Synced {
                changed,
                count,
                max_height: top.checked_sub(1),
                fingerprint,
            })
        }
        o => return Err(WireError::UnknownMessage(o)),
    };
    r.end()?;
    Ok(msg)
}

/// Encodes nodes compactly for one direction of a channel: authors by dictionary index after
/// their first appearance, links to recently sent nodes by back-reference.
#[derive(Debug, Default)]
pub struct NodeEncoder {
    authors: HashMap<PublicKey, u64>,
    recent: HashMap<Hash, u64>,
    ring: VecDeque<Hash>,
    seq: u64,
}

impl NodeEncoder {
    /// Appends one node.
    pub fn encode(&mut self, node: &Node, out: &mut Vec<u8>) {
        match (node.author(), node.signature()) {
            (Some(a), Some(_)) => match self.authors.get(a) {
                Some(i) => {
                    out.push(2);
                    varint::encode(*i, out);
                }
                None => {
                    out.push(1);
                    out.extend_from_slice(&a.0);
                    if self.authors.len() < MAX_AUTHORS {
                        let i = self.authors.len() as u64;
                        self.authors.insert(*a, i);
                    }
                }
            },
            _ => out.push(0),
        }
        varint::encode(node.links().len() as u64, out);
        for l in node.links() {
            match self.recent.get(l) {
                Some(i) if self.seq - i <= BACKREF_WINDOW as u64 => {
                    varint::encode(self.seq - i, out);
                }
                _ => {
                    out.push(0);
                    out.extend_from_slice(&l.0);
                }
            }
        }
        varint::encode(node.value().len() as u64, out);
        out.extend_from_slice(node.value());
        if let Some(s) = node.signature() {
            out.extend_from_slice(&s.0);
        }
        self.remember(node.key());
    }

    fn remember(&mut self, key: Hash) {
        self.recent.insert(key, self.seq);
        self.ring.push_back(key);
        self.seq += 1;
        if self.ring.len() > BACKREF_WINDOW
            && let Some(old) = self.ring.pop_front()
            && self
                .recent
                .get(&old)
                .is_some_and(|i| self.seq - i > BACKREF_WINDOW as u64)
        {
            self.recent.remove(&old);
        }
    }
}

/// Decodes what a [`NodeEncoder`] wrote, computing every node's hash from its fields.
#[derive(Debug)]
pub struct NodeDecoder {
    authors: Vec<PublicKey>,
    ring: Vec<Hash>,
    seq: u64,
    limits: Limits,
}

impl NodeDecoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        NodeDecoder {
            authors: Vec::new(),
            ring: Vec::new(),
            seq: 0,
            limits,
        }
    }

    /// Decodes one node from `r`.
    pub(crate) fn decode(&mut self, r: &mut Reader<'_>) -> Result<Node, WireError> {
        let author = match r.u8()? {
            0 => None,
            1 => {
                let a = PublicKey(r.array()?);
                if self.authors.len() < MAX_AUTHORS {
                    self.authors.push(a);
                }
                Some(a)
            }
            2 => {
                let i = r.varint()?;
                Some(
                    *self
                        .authors
                        .get(i as usize)
                        .ok_or(WireError::UnknownAuthor(i))?,
                )
            }
            o => return Err(WireError::UnknownItem(o)),
        };
        let max_links = self.limits.max_links.min(Limits::FORMAT.max_links);
        let n = r.count(max_links)?;
        let mut links: Vec<Hash> = Vec::with_capacity(n);
        for _ in 0..n {
            let d = r.varint()?;
            let link = if d == 0 {
                Hash(r.array()?)
            } else {
                let window = self.seq.min(BACKREF_WINDOW as u64);
                if d > window {
                    return Err(WireError::BadBackRef(d));
                }
                self.ring[((self.seq - d) % BACKREF_WINDOW as u64) as usize]
            };
            if links.last().is_some_and(|p| *p >= link) {
                return Err(WireError::LinksNotSorted);
            }
            links.push(link);
        }
        let max_value = self.limits.max_value_len.min(Limits::FORMAT.max_value_len);
        let len = r.varint()?;
        if len > max_value as u64 {
            return Err(WireError::Node(cairn_core::BuildError::ValueTooLarge {
                len: len.min(usize::MAX as u64) as usize,
                max: max_value,
            }));
        }
        let value = r.take(len as usize)?.to_vec();
        let signature = match author {
            Some(_) => Some(Signature(r.array()?)),
            None => None,
        };
        let node = Draft::new(links, author, value, &self.limits)?.finish(signature)?;
        let key = node.key();
        if self.ring.len() < BACKREF_WINDOW {
            self.ring.push(key);
        } else {
            self.ring[(self.seq % BACKREF_WINDOW as u64) as usize] = key;
        }
        self.seq += 1;
        Ok(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::Keypair;

    #[test]
    fn nodes_round_trip_compactly() {
        let k = Keypair::from_seed([3; 32]);
        let l = Limits::default();
        let mut nodes = vec![Node::signed([], vec![0u8; 32], &k, &l).unwrap()];
        for i in 0..100u8 {
            let prev = nodes.last().unwrap().key();
            nodes.push(Node::signed([prev], vec![i; 32], &k, &l).unwrap());
        }
        nodes.push(Node::unsigned([nodes[3].key(), Hash([9; 32])], b"u".to_vec(), &l).unwrap());
        let mut enc = NodeEncoder::default();
        let mut out = Vec::new();
        for n in &nodes {
            enc.encode(n, &mut out);
        }
        // After the first node: flags, author index, one link back-ref, value, signature.
        let per_node = (out.len() - 200) / 100;
        assert!(per_node <= 101, "{per_node} bytes per node");
        let mut dec = NodeDecoder::new(l);
        let mut r = Reader::new(&out);
        for n in &nodes {
            assert_eq!(&dec.decode(&mut r).unwrap(), n);
        }
        r.end().unwrap();
    }

    #[test]
    fn messages_round_trip() {
        let hello = Hello {
            version: PROTOCOL_VERSION,
            mode: Mode::Pull,
            live: true,
            keep_alive: true,
            extensions: false,
            metadata: b"meta".to_vec(),
            count: 100_000,
            max_height: Some(99_999),
            fingerprint: [5; 32],
        };
        let mut out = Vec::new();
        hello.encode(&mut out);
        assert_eq!(out[3], 3, "flags: live and keep-alive");
        assert_eq!(
            decode_message(&out, Key::MIN),
            Ok(Message::Hello(hello.clone()))
        );
        // Extensions: bit 2.
        let ext = Hello {
            extensions: true,
            ..hello.clone()
        };
        let mut out = Vec::new();
        ext.encode(&mut out);
        assert_eq!(out[3], 7);
        assert_eq!(decode_message(&out, Key::MIN), Ok(Message::Hello(ext)));
        // A peer that knows neither flag nor PING sets none; unknown flag bits are ignored.
        let old = Hello {
            live: false,
            keep_alive: false,
            extensions: false,
            ..hello
        };
        let mut out = Vec::new();
        old.encode(&mut out);
        assert_eq!(out[3], 0);
        out[3] = 0x80;
        assert_eq!(decode_message(&out, Key::MIN), Ok(Message::Hello(old)));
        // PING is one byte, with nothing after it.
        let mut out = Vec::new();
        encode_ping(&mut out);
        assert_eq!(out, [5]);
        assert_eq!(decode_message(&out, Key::MIN), Ok(Message::Ping));
        assert_eq!(
            decode_message(&[5, 0], Key::MIN),
            Err(WireError::TrailingBytes(1))
        );
        let items = vec![
            Item {
                upper: Key::at_height(5),
                kind: ItemKind::Ids(vec![Hash([1; 32])]),
            },
            Item {
                upper: Key {
                    height: 5,
                    hash: Hash([
                        0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                        0, 0, 0, 0, 0, 0, 0, 0,
                    ]),
                },
                kind: ItemKind::Fp {
                    count: 3,
                    fp: [7; 16],
                },
            },
            Item {
                upper: Key::at_height(9),
                kind: ItemKind::Want(vec![true, false, true]),
            },
            Item {
                upper: Key::END,
                kind: ItemKind::Skip,
            },
        ];
        let mut out = Vec::new();
        encode_ranges(Key::MIN, &items, false, &mut out);
        assert_eq!(
            decode_message(&out, Key::MIN),
            Ok(Message::Ranges {
                items: items.clone(),
                more: false
            })
        );
        // A turn in two messages.
        let mut first = Vec::new();
        encode_ranges(Key::MIN, &items[..2], true, &mut first);
        let mut second = Vec::new();
        encode_ranges(items[1].upper, &items[2..], false, &mut second);
        assert_eq!(
            decode_message(&first, Key::MIN),
            Ok(Message::Ranges {
                items: items[..2].to_vec(),
                more: true
            })
        );
        assert_eq!(
            decode_message(&second, items[1].upper),
            Ok(Message::Ranges {
                items: items[2..].to_vec(),
                more: false
            })
        );
        assert!(decode_message(&second, Key::MIN).is_ok());
        assert!(decode_message(&first, Key::END).is_err());
    }
}
