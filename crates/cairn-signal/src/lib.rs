//! cairn's signalling messages: how peers of one swarm find each other through a hub
//! (`cairn serve`'s `/hub`) and exchange WebRTC offers, answers and ICE candidates.
//!
//! No I/O: encodings, decoding with hard size limits, signing and verification. It builds
//! for wasm32, so the browser peer and the hub share it. The byte format is in
//! `docs/FORMAT.md` ("Signalling messages").
//!
//! - A swarm's **topic** is `BLAKE3-derive_key("cairn 2026-12 signal topic", name)`: the hub
//!   sees topics, never names.
//! - On connecting, the hub sends a fresh random **challenge** ([`HubMessage::Welcome`]).
//! - Every [`ClientMessage`] (join a topic, leave it, or a signal to one member) is signed by
//!   its sender's ed25519 key over `BLAKE3-derive_key("cairn 2026-12 signal message",
//!   challenge ‖ message without its signature)`. The message binds the topic, the recipient
//!   (for a signal) and a counter that must grow on each message of a connection; the
//!   challenge binds it to one connection. So the hub can check that every message comes
//!   from the key it names (the first join proves the key), and neither the hub nor anyone
//!   else can replay it on another connection or speak for another key.
//! - The hub relays a signal as a [`HubMessage::Relay`] carrying the sender's challenge and
//!   its signed message unchanged, so the recipient checks the signature itself
//!   ([`Relay::verify`]) and knows which cairn key made the offer it answers.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use cairn_core::{Hash, Keypair, PublicKey, Signature, Signer};

/// The format's version, the first byte of every message.
pub const VERSION: u8 = 1;
/// The BLAKE3 context of topics.
pub const TOPIC_CONTEXT: &str = "cairn 2026-12 signal topic";
/// The BLAKE3 context of what a client signs.
pub const SIGN_CONTEXT: &str = "cairn 2026-12 signal message";
/// Largest signal payload (an SDP offer or answer, or one ICE candidate, as the client
/// encodes it; a data-channel-only SDP is about 1 KB).
pub const MAX_PAYLOAD: usize = 16 << 10;
/// Largest client message: a signal with the largest payload.
pub const MAX_CLIENT_MESSAGE: usize = SIGNAL_HEADER + MAX_PAYLOAD + 64;
/// Most members listed in one [`HubMessage::Members`].
pub const MAX_MEMBERS: usize = 1024;
/// Largest error text, in bytes.
pub const MAX_ERROR_TEXT: usize = 256;
/// Largest hub message: the larger of a relay of the largest client message (16,597 bytes)
/// and a member list of [`MAX_MEMBERS`] (32,804 bytes).
pub const MAX_HUB_MESSAGE: usize = max(MAX_RELAY, MAX_MEMBERS_MESSAGE);
/// A relay of the largest client message: version, kind, challenge, length, message.
const MAX_RELAY: usize = 2 + 32 + 4 + MAX_CLIENT_MESSAGE;
/// A member list of [`MAX_MEMBERS`]: version, kind, topic, count, keys.
const MAX_MEMBERS_MESSAGE: usize = 2 + 32 + 2 + 32 * MAX_MEMBERS;

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// version, kind, from, counter, topic.
const HEADER: usize = 1 + 1 + 32 + 8 + 32;
/// A signal's header: [`HEADER`], recipient, signal kind, payload length.
const SIGNAL_HEADER: usize = HEADER + 32 + 1 + 4;

/// A swarm's topic: the hash of its name, all the hub learns of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(pub [u8; 32]);

impl Topic {
    /// The topic of the swarm called `name`.
    pub fn of_swarm(name: &str) -> Topic {
        Topic(blake3::derive_key(TOPIC_CONTEXT, name.as_bytes()))
    }
}

/// A hub-issued value, fresh per connection, that every client message of that connection
/// signs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Challenge(pub [u8; 32]);

/// What kind of WebRTC signal a [`Action::Signal`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignalKind {
    /// An SDP offer.
    Offer,
    /// An SDP answer.
    Answer,
    /// An ICE candidate.
    Candidate,
}

impl SignalKind {
    fn byte(self) -> u8 {
        match self {
            SignalKind::Offer => 1,
            SignalKind::Answer => 2,
            SignalKind::Candidate => 3,
        }
    }

    fn from_byte(b: u8) -> Result<Self, DecodeError> {
        Ok(match b {
            1 => SignalKind::Offer,
            2 => SignalKind::Answer,
            3 => SignalKind::Candidate,
            b => return Err(DecodeError::SignalKind(b)),
        })
    }
}

/// What a client asks of the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Join the topic: hear who is there ([`HubMessage::Members`]), who comes and who goes.
    Join,
    /// Leave the topic.
    Leave,
    /// Send a signal to one member of the topic.
    Signal {
        /// The member it is for.
        to: PublicKey,
        /// Offer, answer or candidate.
        kind: SignalKind,
        /// Its bytes (at most [`MAX_PAYLOAD`]), opaque to the hub.
        payload: Vec<u8>,
    },
}

impl Action {
    fn byte(&self) -> u8 {
        match self {
            Action::Join => 1,
            Action::Leave => 2,
            Action::Signal { .. } => 3,
        }
    }
}

/// A signed message from a client to the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMessage {
    /// The sender's key; the signature is by it.
    pub from: PublicKey,
    /// Grows by at least one on each message of a connection.
    pub counter: u64,
    /// The swarm's topic.
    pub topic: Topic,
    /// What the sender asks.
    pub action: Action,
    /// The sender's signature (see [`ClientMessage::digest`]).
    pub signature: Signature,
}

/// Why bytes are not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// No bytes at all.
    #[error("an empty message")]
    Empty,
    /// A format version this code does not know.
    #[error("message format version {0} (this is version {VERSION})")]
    Version(u8),
    /// A message kind this code does not know.
    #[error("unknown message kind {0}")]
    Kind(u8),
    /// A signal kind this code does not know.
    #[error("unknown signal kind {0}")]
    SignalKind(u8),
    /// The message is longer than any message of the format may be.
    #[error("a message of {len} bytes (at most {max})")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A declared length over its limit (checked before anything of that length is read).
    #[error("a declared {what} of {len} (at most {max})")]
    Declared {
        /// What was declared.
        what: &'static str,
        /// The declared length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The message ends before its fields do.
    #[error("the message ends inside its fields")]
    Truncated,
    /// Bytes after the last field.
    #[error("{0} bytes after the message's end")]
    Trailing(usize),
    /// An error text that is not UTF-8.
    #[error("an error text that is not UTF-8")]
    Text,
}

/// Why a message's signature is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The signature is not the named sender's over this message and challenge.
    #[error("the signature is not {0}'s over this message")]
    BadSignature(PublicKey),
    /// A relayed message that is not a signal for the one checking it.
    #[error("a relayed message that is not a signal for this peer")]
    NotForMe,
}

/// A reader over a message's bytes that refuses to read past the end.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A length declared as `declared`, checked against `max` before it is used.
    fn len(declared: usize, what: &'static str, max: usize) -> Result<usize, DecodeError> {
        if declared > max {
            return Err(DecodeError::Declared {
                what,
                len: declared,
                max,
            });
        }
        Ok(declared)
    }

    fn end(self) -> Result<(), DecodeError> {
        match self.bytes.len() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

/// Checks the length and the version, and returns the kind and a reader past them.
fn open(bytes: &[u8], max: usize) -> Result<(u8, Reader<'_>), DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLong {
            len: bytes.len(),
            max,
        });
    }
    let mut r = Reader { bytes };
    let version = r.u8().map_err(|_| DecodeError::Empty)?;
    if version != VERSION {
        return Err(DecodeError::Version(version));
    }
    let kind = r.u8()?;
    Ok((kind, r))
}

/// Appends a length that the encoder's callers keep under its limit; a larger one (a bug of
/// the caller) is written saturated, so the message does not decode rather than decodes
/// differently.
fn put_u32_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
}

impl ClientMessage {
    /// Signs `action` on `topic` as `keypair` for the connection whose hub issued
    /// `challenge`, with `counter` (greater than the connection's previous one).
    pub fn sign(
        keypair: &Keypair,
        challenge: &Challenge,
        counter: u64,
        topic: Topic,
        action: Action,
    ) -> ClientMessage {
        let mut m = ClientMessage {
            from: keypair.public(),
            counter,
            topic,
            action,
            signature: Signature([0; 64]),
        };
        m.signature = keypair.sign(&m.digest(challenge));
        m
    }

    /// The fields before the signature, encoded.
    fn unsigned(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SIGNAL_HEADER + 64);
        out.push(VERSION);
        out.push(self.action.byte());
        out.extend_from_slice(&self.from.0);
        out.extend_from_slice(&self.counter.to_be_bytes());
        out.extend_from_slice(&self.topic.0);
        if let Action::Signal { to, kind, payload } = &self.action {
            out.extend_from_slice(&to.0);
            out.push(kind.byte());
            put_u32_len(&mut out, payload.len());
            out.extend_from_slice(payload);
        }
        out
    }

    /// What the signature signs: `BLAKE3-derive_key(SIGN_CONTEXT, challenge ‖ unsigned
    /// encoding)`.
    pub fn digest(&self, challenge: &Challenge) -> Hash {
        let mut h = blake3::Hasher::new_derive_key(SIGN_CONTEXT);
        h.update(&challenge.0);
        h.update(&self.unsigned());
        Hash(*h.finalize().as_bytes())
    }

    /// The message's bytes: the unsigned encoding, then the signature.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.unsigned();
        out.extend_from_slice(&self.signature.0);
        out
    }

    /// Decodes a message, refusing anything over [`MAX_CLIENT_MESSAGE`] bytes, any declared
    /// length over its limit, an unknown version or kind, and trailing bytes. The signature
    /// is not checked here ([`ClientMessage::verify`]).
    pub fn decode(bytes: &[u8]) -> Result<ClientMessage, DecodeError> {
        let (kind, mut r) = open(bytes, MAX_CLIENT_MESSAGE)?;
        let from = PublicKey(r.array()?);
        let counter = r.u64()?;
        let topic = Topic(r.array()?);
        let action = match kind {
            1 => Action::Join,
            2 => Action::Leave,
            3 => {
                let to = PublicKey(r.array()?);
                let kind = SignalKind::from_byte(r.u8()?)?;
                let len = Reader::len(r.u32()? as usize, "payload", MAX_PAYLOAD)?;
                let payload = r.take(len)?.to_vec();
                Action::Signal { to, kind, payload }
            }
            k => return Err(DecodeError::Kind(k)),
        };
        let signature = Signature(r.array()?);
        r.end()?;
        Ok(ClientMessage {
            from,
            counter,
            topic,
            action,
            signature,
        })
    }

    /// Checks that the signature is the sender's over this message for the connection
    /// whose hub issued `challenge`.
    pub fn verify(&self, challenge: &Challenge) -> Result<(), VerifyError> {
        if cairn_core::verify_signature(&self.from, &self.digest(challenge), &self.signature) {
            Ok(())
        } else {
            Err(VerifyError::BadSignature(self.from))
        }
    }
}

/// A signal relayed by the hub: the sender's signed message and the challenge its
/// connection signed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    /// The challenge of the sender's connection.
    pub challenge: Challenge,
    /// The sender's message, as it signed it.
    pub message: ClientMessage,
}

impl Relay {
    /// Checks that this is a signal for `me`, signed by its sender over the relayed
    /// challenge; returns the sender, the kind and the payload. (The recipient should also
    /// refuse a counter it has seen from the same sender and challenge: the hub only
    /// relays growing counters of a connection, but a recipient need not trust the hub.)
    pub fn verify(&self, me: &PublicKey) -> Result<(PublicKey, SignalKind, &[u8]), VerifyError> {
        let Action::Signal { to, kind, payload } = &self.message.action else {
            return Err(VerifyError::NotForMe);
        };
        if to != me {
            return Err(VerifyError::NotForMe);
        }
        self.message.verify(&self.challenge)?;
        Ok((self.message.from, *kind, payload))
    }
}

/// Why the hub refused a message (or is about to drop the connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// A leave or a signal on a topic the connection has not joined.
    NotMember,
    /// The signal's recipient is not a member of the topic (it may just have left).
    NoSuchPeer,
    /// The topic has as many members as the hub allows.
    TopicFull,
    /// The connection has joined as many topics as the hub allows.
    TooManyTopics,
    /// The same key joined the topic from another connection, which replaced this one.
    Replaced,
    /// The message broke a rule (undecodable, oversize, forged, replayed, another key than
    /// the connection's, too fast): the hub drops the connection after this.
    Dropped,
    /// A code this version does not know.
    Other(u8),
}

impl ErrorCode {
    fn byte(self) -> u8 {
        match self {
            ErrorCode::NotMember => 1,
            ErrorCode::NoSuchPeer => 2,
            ErrorCode::TopicFull => 3,
            ErrorCode::TooManyTopics => 4,
            ErrorCode::Replaced => 5,
            ErrorCode::Dropped => 6,
            ErrorCode::Other(b) => b,
        }
    }

    fn from_byte(b: u8) -> ErrorCode {
        match b {
            1 => ErrorCode::NotMember,
            2 => ErrorCode::NoSuchPeer,
            3 => ErrorCode::TopicFull,
            4 => ErrorCode::TooManyTopics,
            5 => ErrorCode::Replaced,
            6 => ErrorCode::Dropped,
            b => ErrorCode::Other(b),
        }
    }
}

/// A message from the hub to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HubMessage {
    /// The connection's challenge, the hub's first message.
    Welcome {
        /// What every message of this connection signs over.
        challenge: Challenge,
    },
    /// The answer to a join: the topic's other members.
    Members {
        /// The topic joined.
        topic: Topic,
        /// Its other members (at most [`MAX_MEMBERS`]).
        peers: Vec<PublicKey>,
    },
    /// A key joined a topic this connection is in.
    PeerJoined {
        /// The topic.
        topic: Topic,
        /// The key that joined.
        peer: PublicKey,
    },
    /// A key left a topic this connection is in (or its connection ended).
    PeerLeft {
        /// The topic.
        topic: Topic,
        /// The key that left.
        peer: PublicKey,
    },
    /// A signal for this connection's key.
    Relay(Relay),
    /// A refusal.
    Error {
        /// Why.
        code: ErrorCode,
        /// The counter of the message refused (0 when none).
        counter: u64,
        /// A human-readable explanation (at most [`MAX_ERROR_TEXT`] bytes).
        text: String,
    },
}

impl HubMessage {
    /// The message's bytes. An error text over [`MAX_ERROR_TEXT`] bytes is cut (at a
    /// character boundary), a member list over [`MAX_MEMBERS`] too.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(80);
        out.push(VERSION);
        match self {
            HubMessage::Welcome { challenge } => {
                out.push(1);
                out.extend_from_slice(&challenge.0);
            }
            HubMessage::Members { topic, peers } => {
                out.push(2);
                out.extend_from_slice(&topic.0);
                let peers = &peers[..peers.len().min(MAX_MEMBERS)];
                out.extend_from_slice(&(peers.len() as u16).to_be_bytes());
                for p in peers {
                    out.extend_from_slice(&p.0);
                }
            }
            HubMessage::PeerJoined { topic, peer } | HubMessage::PeerLeft { topic, peer } => {
                out.push(if matches!(self, HubMessage::PeerJoined { .. }) {
                    3
                } else {
                    4
                });
                out.extend_from_slice(&topic.0);
                out.extend_from_slice(&peer.0);
            }
            HubMessage::Relay(Relay { challenge, message }) => {
                out.push(5);
                out.extend_from_slice(&challenge.0);
                let m = message.encode();
                put_u32_len(&mut out, m.len());
                out.extend_from_slice(&m);
            }
            HubMessage::Error {
                code,
                counter,
                text,
            } => {
                out.push(6);
                out.push(code.byte());
                out.extend_from_slice(&counter.to_be_bytes());
                let mut end = text.len().min(MAX_ERROR_TEXT);
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                out.extend_from_slice(&(end as u16).to_be_bytes());
                out.extend_from_slice(&text.as_bytes()[..end]);
            }
        }
        out
    }

    /// Decodes a hub message with the same checks as [`ClientMessage::decode`] (at most
    /// [`MAX_HUB_MESSAGE`] bytes). A relayed message's signature is not checked here
    /// ([`Relay::verify`]).
    pub fn decode(bytes: &[u8]) -> Result<HubMessage, DecodeError> {
        let (kind, mut r) = open(bytes, MAX_HUB_MESSAGE)?;
        let m = match kind {
            1 => HubMessage::Welcome {
                challenge: Challenge(r.array()?),
            },
            2 => {
                let topic = Topic(r.array()?);
                let n = Reader::len(r.u16()? as usize, "member count", MAX_MEMBERS)?;
                let mut peers = Vec::with_capacity(n.min(r.bytes.len() / 32));
                for _ in 0..n {
                    peers.push(PublicKey(r.array()?));
                }
                HubMessage::Members { topic, peers }
            }
            3 | 4 => {
                let topic = Topic(r.array()?);
                let peer = PublicKey(r.array()?);
                if kind == 3 {
                    HubMessage::PeerJoined { topic, peer }
                } else {
                    HubMessage::PeerLeft { topic, peer }
                }
            }
            5 => {
                let challenge = Challenge(r.array()?);
                let len = Reader::len(r.u32()? as usize, "relayed message", MAX_CLIENT_MESSAGE)?;
                let message = ClientMessage::decode(r.take(len)?)?;
                HubMessage::Relay(Relay { challenge, message })
            }
            6 => {
                let code = ErrorCode::from_byte(r.u8()?);
                let counter = r.u64()?;
                let len = Reader::len(r.u16()? as usize, "error text", MAX_ERROR_TEXT)?;
                let text = std::str::from_utf8(r.take(len)?)
                    .map_err(|_| DecodeError::Text)?
                    .to_owned();
                HubMessage::Error {
                    code,
                    counter,
                    text,
                }
            }
            k => return Err(DecodeError::Kind(k)),
        };
        r.end()?;
        Ok(m)
    }
}
