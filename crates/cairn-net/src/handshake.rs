//! The sans-IO handshake: Noise XX, then the cairn identity proofs.

use std::collections::VecDeque;

use cairn_core::{Hash, Keypair, PublicKey, Signer};

use crate::transport::{MAX_HANDSHAKE_MSG, Transport};

/// The Noise protocol name.
pub const NOISE: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
/// The BLAKE3 key-derivation context of the identity proof: each side signs
/// `BLAKE3-derive_key(IDENTITY_CONTEXT, handshake hash)` with its ed25519 key.
pub const IDENTITY_CONTEXT: &str = "cairn 2026-11 noise identity";

/// Which side of the handshake this is: the one that connected sends first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The side that dialled.
    Initiator,
    /// The side that accepted.
    Responder,
}

/// Why a handshake failed. After any of these the handshake is over: the connection is to
/// be dropped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The Noise state could not be set up (no randomness for a key, a bad parameter).
    #[error("setting up the noise handshake: {0}")]
    Setup(#[source] snow::Error),
    /// A handshake message from the peer was refused (malformed, wrong size, bad key or
    /// tag: not the peer this protocol expects, or tampered with).
    #[error("noise handshake failed: {0}")]
    Noise(#[source] snow::Error),
    /// A handshake message carried a payload (cairn's are empty: anything there is
    /// unauthenticated in XX's first message, and unexpected in the others).
    #[error("a handshake message with a payload of {0} bytes (cairn sends none)")]
    Payload(usize),
    /// A message over [`MAX_HANDSHAKE_MSG`] bytes before the peer has proven anything.
    #[error("a handshake message of {len} bytes (at most {max} here)")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The identity message did not decrypt.
    #[error("bad encrypted identity message: {0}")]
    IdentityDecrypt(#[source] snow::Error),
    /// The identity message is not 96 bytes (key and signature).
    #[error("the peer's identity message has {0} bytes, not 96")]
    IdentityLength(usize),
    /// The identity's signature over this session's handshake hash does not verify.
    #[error("the peer's identity signature does not verify")]
    BadSignature,
    /// A message came after the handshake had finished or failed.
    #[error("a message after the handshake was over")]
    Over,
    /// The peer closed the channel before the handshake finished.
    #[error("the peer closed the connection during the handshake")]
    Closed,
    /// The channel failed during the handshake.
    #[error(transparent)]
    Link(#[from] crate::link::LinkError),
}

/// The outcome of a handshake: the peer's proven identity and the encrypted link.
#[derive(Debug)]
pub struct Established {
    /// The peer's ed25519 identity, proven by its signature over this session's handshake
    /// hash.
    pub peer: PublicKey,
    /// Encrypts and decrypts every later message.
    pub transport: Transport,
}

enum Stage {
    Noise(Box<snow::HandshakeState>),
    /// Noise is done; waiting for the peer's identity message.
    Identity(Box<snow::TransportState>, Hash),
    Done(Option<Established>),
    Failed,
}

/// One side of a handshake, sans-IO. Messages to send come out of
/// [`poll_transmit`](Handshake::poll_transmit) (drain it after [`Handshake::new`] and after
/// every [`handle_message`](Handshake::handle_message)); each message the peer sends goes
/// into `handle_message`, until [`is_finished`](Handshake::is_finished); then
/// [`established`](Handshake::established) gives the link.
///
/// ```
/// use cairn_core::Keypair;
/// use cairn_net::{Handshake, Role};
///
/// let (alice, bob) = (Keypair::generate().unwrap(), Keypair::generate().unwrap());
/// let mut a = Handshake::new(&alice, Role::Initiator).unwrap();
/// let mut b = Handshake::new(&bob, Role::Responder).unwrap();
/// while !(a.is_finished() && b.is_finished()) {
///     while let Some(m) = a.poll_transmit() { b.handle_message(&m).unwrap(); }
///     while let Some(m) = b.poll_transmit() { a.handle_message(&m).unwrap(); }
/// }
/// let (a, b) = (a.established().unwrap(), b.established().unwrap());
/// assert_eq!((a.peer, b.peer), (bob.public(), alice.public()));
/// ```
pub struct Handshake {
    me: Keypair,
    stage: Stage,
    out: VecDeque<Vec<u8>>,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stage = match self.stage {
            Stage::Noise(_) => "noise",
            Stage::Identity(..) => "identity",
            Stage::Done(_) => "done",
            Stage::Failed => "failed",
        };
        f.debug_struct("Handshake")
            .field("me", &self.me.public())
            .field("stage", &stage)
            .finish_non_exhaustive()
    }
}

impl Handshake {
    /// Starts a handshake as `me` with a fresh Noise static key; the initiator's first
    /// message is queued at once.
    pub fn new(me: &Keypair, role: Role) -> Result<Handshake, HandshakeError> {
        let params = NOISE
            .parse()
            .map_err(|e: snow::Error| HandshakeError::Setup(e))?;
        let builder = snow::Builder::new(params);
        let static_key = builder.generate_keypair().map_err(HandshakeError::Setup)?;
        let builder = builder
            .local_private_key(&static_key.private)
            .map_err(HandshakeError::Setup)?;
        let hs = match role {
            Role::Initiator => builder.build_initiator(),
            Role::Responder => builder.build_responder(),
        }
        .map_err(HandshakeError::Setup)?;
        let mut me = Handshake {
            me: me.clone(),
            stage: Stage::Noise(Box::new(hs)),
            out: VecDeque::new(),
        };
        if role == Role::Initiator {
            me.step()?;
        }
        Ok(me)
    }

    /// The next message to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// Whether the peer's identity is proven (and this side's proof queued).
    pub fn is_finished(&self) -> bool {
        matches!(self.stage, Stage::Done(Some(_)))
    }

    /// The established link, once [finished](Handshake::is_finished) (`None` before, and
    /// after it was taken). Send what [`poll_transmit`](Handshake::poll_transmit) still
    /// holds first.
    pub fn established(&mut self) -> Option<Established> {
        match &mut self.stage {
            Stage::Done(e) => e.take(),
            _ => None,
        }
    }

    /// Handles one message from the peer. An error ends the handshake.
    pub fn handle_message(&mut self, msg: &[u8]) -> Result<(), HandshakeError> {
        let r = self.handle(msg);
        if r.is_err() {
            self.stage = Stage::Failed;
            self.out.clear();
        }
        r
    }

    fn handle(&mut self, msg: &[u8]) -> Result<(), HandshakeError> {
        if msg.len() > MAX_HANDSHAKE_MSG {
            return Err(HandshakeError::TooLarge {
                len: msg.len(),
                max: MAX_HANDSHAKE_MSG,
            });
        }
        let mut payload = vec![0u8; MAX_HANDSHAKE_MSG];
        match &mut self.stage {
            Stage::Noise(hs) => {
                if hs.is_my_turn() {
                    return Err(HandshakeError::Over);
                }
                let n = hs
                    .read_message(msg, &mut payload)
                    .map_err(HandshakeError::Noise)?;
                if n != 0 {
                    return Err(HandshakeError::Payload(n));
                }
                self.step()
            }
            Stage::Identity(transport, proof) => {
                let n = transport
                    .read_message(msg, &mut payload)
                    .map_err(HandshakeError::IdentityDecrypt)?;
                if n != 96 {
                    return Err(HandshakeError::IdentityLength(n));
                }
                let peer = verify_identity(&payload[..96], proof)?;
                let Stage::Identity(transport, _) =
                    std::mem::replace(&mut self.stage, Stage::Failed)
                else {
                    return Err(HandshakeError::Over);
                };
                self.stage = Stage::Done(Some(Established {
                    peer,
                    transport: Transport::new(*transport),
                }));
                Ok(())
            }
            Stage::Done(_) | Stage::Failed => Err(HandshakeError::Over),
        }
    }

    /// Writes this side's next Noise message when it is its turn; once Noise is finished,
    /// writes the identity message and waits for the peer's.
    fn step(&mut self) -> Result<(), HandshakeError> {
        let Stage::Noise(hs) = &mut self.stage else {
            return Ok(());
        };
        if !hs.is_handshake_finished() && hs.is_my_turn() {
            let mut msg = vec![0u8; MAX_HANDSHAKE_MSG];
            let n = hs
                .write_message(&[], &mut msg)
                .map_err(HandshakeError::Setup)?;
            msg.truncate(n);
            self.out.push_back(msg);
        }
        if !hs.is_handshake_finished() {
            return Ok(());
        }
        let proof = Hash(blake3::derive_key(
            IDENTITY_CONTEXT,
            hs.get_handshake_hash(),
        ));
        let Stage::Noise(hs) = std::mem::replace(&mut self.stage, Stage::Failed) else {
            return Ok(());
        };
        let mut transport = hs.into_transport_mode().map_err(HandshakeError::Setup)?;
        let mut hello = Vec::with_capacity(96);
        hello.extend_from_slice(&self.me.public().0);
        hello.extend_from_slice(&self.me.sign(&proof).0);
        let mut msg = vec![0u8; MAX_HANDSHAKE_MSG];
        let n = transport
            .write_message(&hello, &mut msg)
            .map_err(HandshakeError::Setup)?;
        msg.truncate(n);
        self.out.push_back(msg);
        self.stage = Stage::Identity(Box::new(transport), proof);
        Ok(())
    }
}

/// Checks a 96-byte identity message (key, signature over `proof`); returns the key.
fn verify_identity(hello: &[u8], proof: &Hash) -> Result<PublicKey, HandshakeError> {
    let (key, sig) = hello.split_at(32);
    let peer = PublicKey::from_slice(key).ok_or(HandshakeError::IdentityLength(hello.len()))?;
    let sig: [u8; 64] = sig
        .try_into()
        .map_err(|_| HandshakeError::IdentityLength(hello.len()))?;
    let sig = ed25519_dalek::Signature::from_bytes(&sig);
    ed25519_dalek::VerifyingKey::from_bytes(&peer.0)
        .and_then(|vk| vk.verify_strict(&proof.0, &sig))
        .map_err(|_| HandshakeError::BadSignature)?;
    Ok(peer)
}
