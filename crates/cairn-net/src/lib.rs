//! # cairn-net
//!
//! cairn's encrypted, authenticated transport, shared by the native build (`cairn serve`,
//! `cairn sync --connect` over TCP and WebSocket) and the browser peer (a Web Worker's
//! WebSocket or RTCDataChannel). No sockets, no runtime, no clock: it builds for
//! `wasm32-unknown-unknown`.
//!
//! - [`Handshake`]: the Noise XX handshake (`Noise_XX_25519_ChaChaPoly_BLAKE2s`, the `snow`
//!   crate, a fresh X25519 static key per handshake) followed by the cairn identity proof,
//!   **sans-IO**: messages in ([`Handshake::handle_message`]), messages out
//!   ([`Handshake::poll_transmit`]), then an [`Established`] link: the peer's proven ed25519
//!   identity and the [`Transport`] that encrypts and decrypts the messages that follow.
//! - [`link`]: the same over any message channel ([`MessageSink`] + [`MessageSource`]):
//!   [`link::handshake`], and [`link::pump`], which joins a replication session's byte stream
//!   (cairn-sync's driver on one end of an in-memory pipe) to the encrypted messages.
//!
//! ## On the wire
//!
//! A channel carries whole messages: a 2-byte big-endian length and the message on TCP, one
//! binary message on WebSocket or a data channel. The messages are:
//!
//! 1. XX's three handshake messages (`-> e`, `<- e, ee, s, es`, `-> s, se`: 32, 96 and 64
//!    bytes, empty payloads);
//! 2. one identity message each way, in transport mode: the sender's ed25519 public key (32
//!    bytes) and its signature (64 bytes) over
//!    `BLAKE3-derive_key("cairn 2026-11 noise identity", handshake hash)`: 112 bytes with
//!    the tag. The handshake hash covers both sides' keys and everything sent so far, so the
//!    signature binds the identity to this very session (a relay cannot splice two sessions);
//!    the initiator sends its own right after its last handshake message, the responder once
//!    the handshake is finished;
//! 3. then the replication protocol's bytes, cut into Noise transport messages of at most
//!    [`MAX_MSG`] bytes ([`MAX_PLAIN`] of plaintext). An empty message is a keep-alive of
//!    the channel (a WebSocket ping) and is skipped.
//!
//! Every decoder of peer bytes here refuses what it does not expect with a typed error
//! ([`HandshakeError`], [`LinkError`]) and never panics (property-tested in
//! `tests/hostile.rs`).
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod handshake;
pub mod link;
mod transport;

pub use handshake::{Established, Handshake, HandshakeError, IDENTITY_CONTEXT, NOISE, Role};
pub use link::{LinkError, MessageSink, MessageSource, PumpError};
pub use transport::{MAX_HANDSHAKE_MSG, MAX_MSG, MAX_PLAIN, Transport};
