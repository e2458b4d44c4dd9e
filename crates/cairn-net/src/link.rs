//! The transport over any message channel: [`handshake`] runs a [`Handshake`] over a
//! [`MessageSink`] and a [`MessageSource`]; [`pump`] then moves a replication session's
//! bytes to and from the encrypted messages.
//!
//! Runtime-independent (plain futures): natively the channel is a TCP stream (messages
//! framed by a 2-byte length) or a tungstenite WebSocket under tokio; in the browser a
//! WebSocket or an RTCDataChannel under `wasm-bindgen-futures`. Timeouts are the caller's
//! (this crate has no clock).

use std::future::Future;
use std::pin::pin;
use std::sync::{Mutex, PoisonError};
use std::task::Poll;

use cairn_core::Keypair;
use futures_io::{AsyncRead, AsyncWrite};
use futures_lite::{AsyncReadExt, AsyncWriteExt};

use crate::handshake::{Established, Handshake, HandshakeError, Role};
use crate::transport::{MAX_HANDSHAKE_MSG, MAX_MSG, MAX_PLAIN, Transport};

/// Why the encrypted link failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The channel failed (a socket error, a WebSocket protocol error, a closed channel
    /// written to).
    #[error("{0}")]
    Channel(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A message over the limit.
    #[error("a message of {len} bytes (at most {max} here)")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The peer sent a message that is not binary (a WebSocket text message).
    #[error("the peer sent a message that is not binary")]
    NotBinary,
    /// A message failed decryption: altered, cut, replayed or reordered.
    #[error("a message failed decryption: the connection was tampered with ({0})")]
    Tampered(#[source] snow::Error),
    /// Encrypting failed (the nonce space is exhausted: 2^64 messages).
    #[error("encrypting a message: {0}")]
    Encrypt(#[source] snow::Error),
    /// The pipe to the session failed.
    #[error("the session's pipe: {0}")]
    Session(#[source] std::io::Error),
}

impl LinkError {
    /// A channel error from any error value.
    pub fn channel(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> LinkError {
        LinkError::Channel(e.into())
    }
}

/// The sending half of a message channel: every call sends one whole message.
pub trait MessageSink {
    /// Sends one message (returns once the channel took it).
    fn send(&mut self, msg: &[u8]) -> impl Future<Output = Result<(), LinkError>>;
    /// Ends the channel after the last message.
    fn close(&mut self) -> impl Future<Output = Result<(), LinkError>>;
}

/// The receiving half of a message channel.
pub trait MessageSource {
    /// Receives the next message into `buf` (its contents replaced): `Ok(true)`, or
    /// `Ok(false)` at a clean end of the channel. A message over `max` bytes is
    /// [`LinkError::TooLarge`], refused as early as the channel can tell (on TCP, from its
    /// length prefix, before any buffer of its size exists). An empty message is a
    /// keep-alive of the channel (e.g. a WebSocket ping); callers skip it.
    fn recv(
        &mut self,
        buf: &mut Vec<u8>,
        max: usize,
    ) -> impl Future<Output = Result<bool, LinkError>>;
}

/// The next non-empty message (`false` at the end of the channel).
async fn next_message<R: MessageSource>(
    rx: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> Result<bool, LinkError> {
    loop {
        if !rx.recv(buf, max).await? {
            return Ok(false);
        }
        if !buf.is_empty() {
            return Ok(true);
        }
    }
}

/// Runs the handshake and the identity exchange as `me` over `tx`/`rx`; returns the peer's
/// proven identity and the transport. Messages over [`MAX_HANDSHAKE_MSG`] are refused. No
/// timeout here: the caller bounds it (10 s in the CLI and the browser).
pub async fn handshake<T, R>(
    tx: &mut T,
    rx: &mut R,
    me: &Keypair,
    role: Role,
) -> Result<Established, HandshakeError>
where
    T: MessageSink,
    R: MessageSource,
{
    let mut hs = Handshake::new(me, role)?;
    let mut buf = Vec::new();
    loop {
        while let Some(m) = hs.poll_transmit() {
            tx.send(&m).await?;
        }
        if let Some(done) = hs.established() {
            return Ok(done);
        }
        if !next_message(rx, &mut buf, MAX_HANDSHAKE_MSG).await? {
            return Err(HandshakeError::Closed);
        }
        hs.handle_message(&buf)?;
    }
}

/// Why a pumped session failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum PumpError<E> {
    /// The session itself failed (its driver's error).
    Session(E),
    /// The encrypted link failed; the session stopped at what it had.
    Link(LinkError),
}

impl<E: std::fmt::Display> std::fmt::Display for PumpError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PumpError::Session(e) => e.fmt(f),
            PumpError::Link(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for PumpError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PumpError::Session(e) => Some(e),
            PumpError::Link(e) => Some(e),
        }
    }
}

/// Moves a session's bytes over the encrypted link until the session is over.
///
/// `net` is this side's end of a byte pipe (e.g. `cairn_sync::duplex`) whose other end the
/// session's driver (`work`, e.g. `cairn_sync::sync_log_with_timeout`) reads and writes.
/// Two pumps run beside it: outbound, what the session writes is cut into messages of at most
/// [`MAX_PLAIN`] bytes, encrypted and sent; inbound, each message received is decrypted and
/// written to the session. The session decides when it is over; the outbound pump then sends
/// what is left and closes the channel. A broken link ends the session at once, not after its
/// idle timeout: a failed outbound pump (the peer is gone) ends the whole with its error, and a
/// failed inbound pump (a tampered message, a channel error, an oversized message) closes the
/// session's input, so the session stops at what it has and the link's error is the one
/// reported.
pub async fn pump<T, R, N, W, S, E>(
    transport: Transport,
    tx: &mut T,
    rx: &mut R,
    net: N,
    work: W,
) -> Result<S, PumpError<E>>
where
    T: MessageSink,
    R: MessageSource,
    N: AsyncRead + AsyncWrite + Unpin,
    W: Future<Output = Result<S, E>>,
{
    // Both pumps use it, never across an await (a Mutex rather than a RefCell keeps the
    // future `Send` when the channel's futures are).
    let transport = Mutex::new(transport);
    let transport = || transport.lock().unwrap_or_else(PoisonError::into_inner);
    let (mut from_app, mut to_app) = futures_lite::io::split(net);

    let outbound = async {
        let mut plain = vec![0u8; MAX_PLAIN];
        let mut cipher = Vec::with_capacity(MAX_MSG);
        loop {
            let n = from_app
                .read(&mut plain)
                .await
                .map_err(LinkError::Session)?;
            if n == 0 {
                break;
            }
            transport().encrypt(&plain[..n], &mut cipher)?;
            tx.send(&cipher).await?;
        }
        tx.close().await
    };
    let inbound = async {
        let mut cipher = Vec::new();
        let mut plain = Vec::with_capacity(MAX_MSG);
        let pumped = async {
            while next_message(rx, &mut cipher, MAX_MSG).await? {
                transport().decrypt(&cipher, &mut plain)?;
                to_app.write_all(&plain).await.map_err(LinkError::Session)?;
            }
            Ok::<(), LinkError>(())
        }
        .await;
        // The session's input ends here, whether the link ended cleanly or broke: it goes on
        // with what it has (a complete session may still end well) and sees the end.
        let _ = to_app.close().await;
        pumped
    };
    let mut work = pin!(work);
    let mut outbound = pin!(outbound);
    let mut inbound = pin!(inbound);
    let mut result = None;
    let mut inbound_done = false;
    let mut inbound_error = None;
    let out = std::future::poll_fn(|cx| {
        if result.is_none()
            && let Poll::Ready(r) = work.as_mut().poll(cx)
        {
            result = Some(r);
        }
        if !inbound_done && let Poll::Ready(i) = inbound.as_mut().poll(cx) {
            inbound_done = true;
            // After the session's end its pipe is gone: only an earlier failure counts.
            if result.is_none() {
                inbound_error = i.err();
            }
        }
        outbound.as_mut().poll(cx)
    })
    .await;
    if let Err(e) = out {
        return Err(PumpError::Link(inbound_error.unwrap_or(e)));
    }
    // The outbound pump ends cleanly only once the session has closed its end.
    let result = match result {
        Some(r) => r,
        None => work.await,
    };
    match (result, inbound_error) {
        (Ok(s), _) => Ok(s),
        (Err(_), Some(e)) => Err(PumpError::Link(e)),
        (Err(e), None) => Err(PumpError::Session(e)),
    }
}

/// [`handshake`] as `role`, then [`pump`] with the pipe end and session future that
/// `session` makes for the proven peer: what a side does once its channel is open. Returns
/// the peer's identity with the session's result.
pub async fn connect_and_pump<T, R, N, W, S, E, F>(
    tx: &mut T,
    rx: &mut R,
    me: &Keypair,
    role: Role,
    session: F,
) -> Result<(cairn_core::PublicKey, S), ConnectError<E>>
where
    T: MessageSink,
    R: MessageSource,
    N: AsyncRead + AsyncWrite + Unpin,
    W: Future<Output = Result<S, E>>,
    F: FnOnce(cairn_core::PublicKey) -> (N, W),
{
    let Established { peer, transport } = handshake(tx, rx, me, role)
        .await
        .map_err(ConnectError::Handshake)?;
    let (net, work) = session(peer);
    let s = pump(transport, tx, rx, net, work)
        .await
        .map_err(ConnectError::Pump)?;
    Ok((peer, s))
}

/// Why [`connect_and_pump`] failed: in the handshake or after it.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError<E> {
    /// Before the peer's identity was proven.
    Handshake(HandshakeError),
    /// After it.
    Pump(PumpError<E>),
}

impl<E: std::fmt::Display> std::fmt::Display for ConnectError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Handshake(e) => e.fmt(f),
            ConnectError::Pump(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for ConnectError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectError::Handshake(e) => Some(e),
            ConnectError::Pump(e) => Some(e),
        }
    }
}
