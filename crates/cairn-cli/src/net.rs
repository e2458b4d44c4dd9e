//! Replication over TCP and WebSocket, encrypted and authenticated: `cairn serve --listen ADDR
//! [--ws ADDR]` and `cairn sync --connect tcp://ADDR|ws://ADDR`.
//!
//! The transport is cairn-net's, the same code the browser peer runs: a Noise XX handshake
//! (`Noise_XX_25519_ChaChaPoly_BLAKE2s`) with a fresh X25519 key per connection, then each
//! side's cairn identity proof (its ed25519 key and signature over the handshake hash), then
//! the replication protocol's bytes in Noise transport messages (see `cairn_net`'s docs for
//! the bytes). This module only frames the messages on each channel: a 2-byte big-endian
//! length, then at most 65,535 bytes of ciphertext, on TCP; one binary message on WebSocket.
//!
//! On WebSocket, tungstenite is configured to refuse any message or frame over 65,535 bytes
//! as soon as its header arrives (its default would buffer up to 64 MiB per connection
//! first).
//!
//! The sync session itself (`cairn_sync::sync_log`) runs over an in-memory duplex pipe;
//! cairn-net's two pumps move its bytes to and from the encrypted socket.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cairn_blob::proto::FetchPolicy;
use cairn_core::{Keypair, PublicKey};
use cairn_log::Log;
use cairn_net::{Established, LinkError, MessageSink, MessageSource, PumpError, Role};
use cairn_sync::{DuplexStream, LogStore, Session, SessionOptions, SyncSummary, duplex};
use futures_lite::AsyncWriteExt;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const MAX_MSG: usize = cairn_net::MAX_MSG;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// tungstenite's read and write buffers (its defaults: 128 KiB each per connection).
const WS_BUFFER: usize = 16 << 10;

/// WebSocket limits: a message is one Noise message, so nothing larger is ever needed.
pub(crate) fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MSG))
        .max_frame_size(Some(MAX_MSG))
        .read_buffer_size(WS_BUFFER)
        .write_buffer_size(WS_BUFFER)
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;
pub(crate) type WsServer = tokio_tungstenite::WebSocketStream<TcpStream>;

/// The sending half of a connection: Noise messages as length-prefixed TCP frames, or as
/// binary WebSocket messages.
enum Tx {
    Tcp(tokio::net::tcp::OwnedWriteHalf),
    Ws(futures_util::stream::SplitSink<Ws, Message>),
    WsServer(futures_util::stream::SplitSink<WsServer, Message>),
}

/// The receiving half.
enum Rx {
    Tcp(tokio::net::tcp::OwnedReadHalf),
    Ws(futures_util::stream::SplitStream<Ws>),
    WsServer(futures_util::stream::SplitStream<WsServer>),
}

impl MessageSink for Tx {
    async fn send(&mut self, msg: &[u8]) -> Result<(), LinkError> {
        match self {
            Tx::Tcp(tcp) => {
                let len = u16::try_from(msg.len()).map_err(|_| LinkError::TooLarge {
                    len: msg.len(),
                    max: MAX_MSG,
                })?;
                tcp.write_all(&len.to_be_bytes())
                    .await
                    .map_err(LinkError::channel)?;
                tcp.write_all(msg).await.map_err(LinkError::channel)?;
            }
            Tx::Ws(ws) => ws
                .send(Message::binary(msg.to_vec()))
                .await
                .map_err(LinkError::channel)?,
            Tx::WsServer(ws) => ws
                .send(Message::binary(msg.to_vec()))
                .await
                .map_err(LinkError::channel)?,
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<(), LinkError> {
        match self {
            Tx::Tcp(tcp) => tcp.shutdown().await.map_err(LinkError::channel)?,
            Tx::Ws(ws) => ws.close().await.map_err(LinkError::channel)?,
            Tx::WsServer(ws) => ws.close().await.map_err(LinkError::channel)?,
        }
        Ok(())
    }
}

impl MessageSource for Rx {
    /// Reads one message into `buf`, refusing one over `max` bytes (on TCP as its length
    /// arrives, before any buffer of its size exists); `false` at a clean end of the
    /// connection.
    async fn recv(&mut self, buf: &mut Vec<u8>, max: usize) -> Result<bool, LinkError> {
        let next = match self {
            Rx::Tcp(tcp) => {
                let mut len = [0u8; 2];
                match tcp.read_exact(&mut len).await {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
                    Err(e) => return Err(LinkError::channel(e)),
                }
                let len = u16::from_be_bytes(len) as usize;
                if len > max {
                    return Err(LinkError::TooLarge { len, max });
                }
                buf.resize(len, 0);
                tcp.read_exact(buf).await.map_err(|e| {
                    LinkError::channel(format!("connection ended inside a message: {e}"))
                })?;
                return Ok(true);
            }
            Rx::Ws(ws) => ws_next(ws.next().await)?,
            Rx::WsServer(ws) => ws_next(ws.next().await)?,
        };
        match next {
            Some(data) if data.len() <= max => {
                buf.clear();
                buf.extend_from_slice(&data);
                Ok(true)
            }
            Some(data) => Err(LinkError::TooLarge {
                len: data.len(),
                max,
            }),
            None => Ok(false),
        }
    }
}

/// The payload of the next binary WebSocket message, skipping pings and pongs; `None` when
/// the peer closed.
fn ws_next(
    msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
) -> Result<Option<Vec<u8>>, LinkError> {
    match msg {
        None | Some(Ok(Message::Close(_))) => Ok(None),
        Some(Ok(Message::Binary(b))) => Ok(Some(b.to_vec())),
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(Some(Vec::new())),
        Some(Ok(_)) => Err(LinkError::NotBinary),
        Some(Err(e)) => Err(LinkError::channel(e)),
    }
}

/// How one session runs: its options, its idle timeout, a future that ends a live session
/// cleanly when it resolves, and a view of the session as it goes.
struct Run<F, P> {
    opts: SessionOptions,
    idle: Duration,
    stop: F,
    progress: P,
    /// The blob protocol on the session's extension channel, if it runs.
    ext: Option<Box<dyn cairn_sync::Extension>>,
}

/// The context of an error before the peer's identity was proven (the WebSocket upgrade,
/// the Noise handshake): anyone who can reach the server can cause one, so the server
/// counts them rather than logs each.
#[derive(Debug)]
struct Unfinished;

impl std::fmt::Display for Unfinished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("handshake")
    }
}

/// Runs the replication session of `log` on `app` (the session's end of the pipe to the
/// encrypted link), then closes it.
async fn drive<F, P>(log: &Log, mut app: DuplexStream, run: Run<F, P>) -> Result<SyncSummary>
where
    F: std::future::Future<Output = ()>,
    P: FnMut(&Session<LogStore>),
{
    let Run {
        opts,
        idle,
        stop,
        progress,
        ext,
    } = run;
    let r = cairn_sync::sync_log_with_extension(
        log,
        &mut app,
        opts,
        stop,
        crate::sync::TokioTimer,
        idle,
        progress,
        ext,
    )
    .await;
    let _ = app.close().await;
    Ok(r?)
}

/// Handshake and identities on `link`, then the session that `drive` runs on its end of
/// the pipe, with the two pumps between that pipe and the encrypted link.
async fn session<D, W>(
    me: &Keypair,
    (mut tx, mut rx): (Tx, Rx),
    initiator: bool,
    drive: D,
) -> Result<(SyncSummary, PublicKey)>
where
    D: FnOnce(DuplexStream) -> W,
    W: std::future::Future<Output = Result<SyncSummary>>,
{
    // A peer that connects and says nothing must not hold a session forever.
    let role = if initiator {
        Role::Initiator
    } else {
        Role::Responder
    };
    let Established { peer, transport } = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        cairn_net::link::handshake(&mut tx, &mut rx, me, role),
    )
    .await
    .map_err(|_| {
        anyhow::anyhow!("the peer did not complete the handshake within {HANDSHAKE_TIMEOUT:?}")
    })
    .and_then(|r| Ok(r?))
    .context(Unfinished)?;
    let (app, net) = duplex(256 << 10);
    // The session on its end of the pipe; cairn-net's two pumps between the pipe and the
    // encrypted link (a broken link ends the session at once).
    match cairn_net::link::pump(transport, &mut tx, &mut rx, net, drive(app)).await {
        Ok(summary) => Ok((summary, peer)),
        Err(PumpError::Session(e)) => Err(e),
        Err(PumpError::Link(e)) => Err(e.into()),
        Err(e) => Err(anyhow::anyhow!("{e}")),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the network runtime")
}

/// Dials `url`: tcp://HOST:PORT or ws://HOST:PORT.
async fn dial(url: &str) -> Result<(Tx, Rx)> {
    Ok(if let Some(host) = url.strip_prefix("tcp://") {
        let tcp = TcpStream::connect(host)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        tcp.set_nodelay(true)?;
        let (r, w) = tcp.into_split();
        (Tx::Tcp(w), Rx::Tcp(r))
    } else if url.starts_with("ws://") {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        let (w, r) = ws.split();
        (Tx::Ws(w), Rx::Ws(r))
    } else {
        bail!("cannot connect to {url}: use tcp://HOST:PORT or ws://HOST:PORT");
    })
}

/// Syncs `log` with the `cairn serve` at `url` (tcp://HOST:PORT or ws://HOST:PORT) as the
/// identity `me`: dial, Noise handshake, identity proofs, then one session with `opts`
/// (`idle`: see `cairn sync --timeout`; a live session ends cleanly when `stop` resolves).
/// Returns the summary and the server's verified identity. Must run inside a tokio runtime
/// with I/O and time enabled; the future is `Send` (given a `Send` `stop`), so many
/// clients can run at once on a multi-thread runtime.
pub async fn sync_with<F: std::future::Future<Output = ()>>(
    log: &Log,
    me: &Keypair,
    url: &str,
    opts: SessionOptions,
    idle: Duration,
    stop: F,
) -> Result<(SyncSummary, PublicKey)> {
    sync_with_extension(log, me, url, opts, idle, stop, None).await
}

/// Like [`sync_with`], with an extension (the blob protocol) on the session's extension
/// channel.
pub async fn sync_with_extension<F: std::future::Future<Output = ()>>(
    log: &Log,
    me: &Keypair,
    url: &str,
    opts: SessionOptions,
    idle: Duration,
    stop: F,
    ext: Option<Box<dyn cairn_sync::Extension>>,
) -> Result<(SyncSummary, PublicKey)> {
    let link = dial(url).await?;
    let progress = |_: &Session<LogStore>| {};
    let run = Run {
        opts,
        idle,
        stop,
        progress,
        ext,
    };
    session(me, link, true, |app| drive(log, app, run)).await
}

/// Brings `log`'s sync index up to date before dialing, so that the session starts at once
/// after the handshake: the peer does not wait meanwhile, and a connection that breaks is
/// seen at once (the session's first step would otherwise block the runtime while it
/// catches up).
fn catch_up(log: &Log) -> Result<()> {
    LogStore::open(log)
        .and_then(|index| index.catch_up())
        .context("bringing the sync index up to date")
}

/// `cairn sync --connect tcp://ADDR` or `ws://ADDR`: syncs (serving the blobs in
/// `blob_dir` to the peer on the same connection), with a progress line on a terminal, and
/// prints the summary as the last line on stderr.
pub fn connect(
    log: &Log,
    blob_dir: &Path,
    me: &Keypair,
    url: &str,
    opts: SessionOptions,
    idle: Duration,
) -> Result<()> {
    catch_up(log)?;
    let blobs =
        cairn_blob::BlobStore::open(log, Some(blob_dir)).context("opening the blob store")?;
    let mut bar = crate::progress::Bar::stderr(log.len());
    let result = runtime()?.block_on(async {
        let link = dial(url).await?;
        let run = Run {
            opts,
            idle,
            stop: std::future::pending(),
            progress: |s: &Session<LogStore>| bar.update(s),
            // This store's blobs are served to the peer (a `cairn serve` fetches those its
            // new nodes name, within its fetch policy); none are fetched from it.
            ext: Some(cairn_blob::proto::BlobPeer::new(blobs, true).shared().1),
        };
        session(me, link, true, |app| drive(log, app, run)).await
    });
    bar.clear();
    let (summary, peer) = result?;
    eprintln!("cairn: synced with {peer} at {url}");
    eprintln!("{}", summary.to_json());
    Ok(())
}

/// `cairn serve --listen ADDR [--ws-listen ADDR]`: accepts replication sessions until
/// killed, each in its own task; a session's failure is reported and ends that session only.
/// Resolves on SIGINT or SIGTERM (on Unix; Ctrl-C elsewhere), naming the signal.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// How many connections `cairn serve` holds at once, and which blobs it fetches.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections in all (from their acceptance to their end, handshake included).
    pub max_connections: usize,
    /// Connections from one source address.
    pub max_per_ip: usize,
    /// Which blobs named by the nodes a peer sends are fetched from it (`None`: none).
    pub blob_fetch: Option<FetchPolicy>,
}

/// `cairn serve`'s default fetch policy: eager, blobs up to 64 MiB, 4 GiB in all.
pub const BLOB_FETCH: FetchPolicy = FetchPolicy {
    mode: cairn_blob::proto::FetchMode::Eager,
    max_blob: 64 << 20,
    max_total: 4 << 30,
};

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            max_per_ip: 64,
            blob_fetch: Some(BLOB_FETCH),
        }
    }
}

/// The connections held, in all and per source address.
#[derive(Default)]
struct Held {
    total: usize,
    per_ip: std::collections::HashMap<std::net::IpAddr, usize>,
}

/// What every session of a `cairn serve` shares.
pub(crate) struct Server {
    /// Blobs served to every peer on the session's extension channel.
    pub(crate) blobs: Option<cairn_blob::BlobStore>,
    log: Log,
    me: Keypair,
    opts: SessionOptions,
    idle: Duration,
    limits: Limits,
    /// Set when the server shuts down: every connection ends.
    pub(crate) stopping: tokio::sync::watch::Sender<bool>,
    held: std::sync::Mutex<Held>,
    /// Connections refused (over a cap) since the last report of them.
    pub(crate) refused: std::sync::atomic::AtomicU64,
    /// Connections that ended before their handshake completed, since the last report.
    pub(crate) unfinished: std::sync::atomic::AtomicU64,
    /// The HTTP front (`--http`): static files and the signalling hub.
    pub(crate) http: Option<std::sync::Arc<crate::http::Http>>,
}

impl Server {
    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A place for a connection from `ip`, or `None` when a cap is reached.
    fn admit(self: &std::sync::Arc<Self>, ip: std::net::IpAddr) -> Option<Slot> {
        let mut held = self.held();
        if held.total >= self.limits.max_connections {
            return None;
        }
        let from_ip = held.per_ip.entry(ip).or_insert(0);
        if *from_ip >= self.limits.max_per_ip {
            return None;
        }
        *from_ip += 1;
        held.total += 1;
        Some(Slot {
            server: self.clone(),
            ip,
        })
    }
}

/// A connection's place under the caps, given back when it ends.
pub(crate) struct Slot {
    server: std::sync::Arc<Server>,
    ip: std::net::IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.server.held();
        held.total -= 1;
        if let Some(n) = held.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                held.per_ip.remove(&self.ip);
            }
        }
    }
}

/// The first pause after an accept error that is not the connection's own; each further
/// error in a row doubles it, up to [`ACCEPT_BACKOFF_MAX`].
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Whether an accept error concerns only the connection being accepted (its peer gave up
/// first): the next one is taken at once. Any other (out of file descriptors, of memory,
/// of buffers) is the server's and will recur until something is released.
fn accept_error_is_the_connections(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted};
    matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted)
}

/// Accepts connections on `listener` for ever, each session in its own task. An accept
/// error never ends the loop: out of file descriptors (the pending connections wait in the
/// kernel's backlog meanwhile), it pauses, longer after each error in a row, and goes on.
async fn accept_loop(listener: TcpListener, kind: Listener, server: std::sync::Arc<Server>) {
    let mut backoff = Duration::ZERO;
    // Failed accepts in the current run of them: the first is logged, then the end of the run.
    let mut failed = 0u64;
    loop {
        match listener.accept().await {
            Ok((tcp, from)) => {
                if failed > 0 {
                    tracing::warn!("accepting connections again after {failed} failed tries");
                    failed = 0;
                }
                backoff = Duration::ZERO;
                match server.admit(from.ip()) {
                    Some(slot) => match kind {
                        Listener::Http => crate::http::spawn_connection(&server, slot, tcp, from),
                        Listener::Tcp => spawn_session(&server, slot, Incoming::Tcp(tcp), from),
                        Listener::Ws => {
                            spawn_session(&server, slot, Incoming::WsUpgrade(tcp), from)
                        }
                    },
                    // Over a cap: closed at once, before any buffer or task exists for it.
                    None => {
                        drop(tcp);
                        server
                            .refused
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
            Err(e) if accept_error_is_the_connections(&e) => {}
            Err(e) => {
                backoff = (backoff * 2).clamp(ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX);
                if failed == 0 {
                    tracing::warn!(
                        "accepting a connection: {e}; pausing ({ACCEPT_BACKOFF_MIN:?}, doubling up to {ACCEPT_BACKOFF_MAX:?}) until it works again"
                    );
                } else {
                    tracing::debug!("accepting a connection: {e}; next try in {backoff:?}");
                }
                failed += 1;
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

/// What a listener accepts.
#[derive(Clone, Copy)]
enum Listener {
    /// Replication, Noise messages as length-prefixed frames (`--listen`).
    Tcp,
    /// Replication, Noise messages in WebSocket messages (`--ws-listen`).
    Ws,
    /// The HTTP front (`--http`): static files, `/sync` (as `Ws`) and `/hub`.
    Http,
}

/// A replication connection, as it reaches [`spawn_session`].
pub(crate) enum Incoming {
    /// Noise messages as length-prefixed TCP frames.
    Tcp(TcpStream),
    /// A WebSocket still to be upgraded.
    WsUpgrade(TcpStream),
    /// A WebSocket upgraded already (by the HTTP front, at `/sync`).
    Ws(Box<WsServer>),
}

/// Runs the session of one accepted connection in a task of its own; its end (a summary
/// or an error) is reported and ends that session only. `slot` (the connection's place
/// under the caps) is held until the session's thread is done.
pub(crate) fn spawn_session(
    server: &std::sync::Arc<Server>,
    slot: impl Send + 'static,
    incoming: Incoming,
    from: SocketAddr,
) {
    if let Incoming::Tcp(tcp) | Incoming::WsUpgrade(tcp) = &incoming {
        let _ = tcp.set_nodelay(true);
    }
    let server = server.clone();
    let mut stopping = server.stopping.subscribe();
    tokio::spawn(async move {
        let result = async {
            let link = match incoming {
                Incoming::WsUpgrade(tcp) => {
                    let ws = tokio::time::timeout(
                        HANDSHAKE_TIMEOUT,
                        tokio_tungstenite::accept_async_with_config(tcp, Some(ws_config())),
                    )
                    .await
                    .map_err(|_| anyhow::anyhow!("the websocket upgrade timed out"))
                    .and_then(|r| Ok(r?))
                    .context(Unfinished)?;
                    let (w, r) = ws.split();
                    (Tx::WsServer(w), Rx::WsServer(r))
                }
                Incoming::Ws(ws) => {
                    let (w, r) = (*ws).split();
                    (Tx::WsServer(w), Rx::WsServer(r))
                }
                Incoming::Tcp(tcp) => {
                    let (r, w) = tcp.into_split();
                    (Tx::Tcp(w), Rx::Tcp(r))
                }
            };
            let run = Run {
                opts: server.opts.clone(),
                idle: server.idle,
                stop: std::future::pending(),
                progress: |_: &Session<LogStore>| {},
                // Every peer may fetch the blobs this server holds; the server fetches from
                // each peer the blobs named by the nodes it gets from it (so a browser's image
                // reaches the other browsers), within its fetch policy's caps.
                ext: server.blobs.clone().map(|b| {
                    let since = b.log().len();
                    let peer = cairn_blob::proto::BlobPeer::new(b, true);
                    match server.limits.blob_fetch {
                        Some(policy) => peer.with_policy(policy).fetch_referenced(since),
                        None => peer,
                    }
                    .shared()
                    .1
                }),
            };
            let log = server.log.clone();
            // The session (store reads, verification, fsyncs) on a blocking thread of its
            // own, the pumps on the async workers: a slow disk stalls only its sessions.
            // The connection's slot goes with it: it is held until the session's thread
            // is done (or, without a handshake, until the connection ends).
            let offloaded = move |app: DuplexStream| {
                let handle = tokio::runtime::Handle::current();
                async move {
                    tokio::task::spawn_blocking(move || {
                        let _slot = slot;
                        handle.block_on(drive(&log, app, run))
                    })
                    .await
                    .context("the session's thread failed")?
                }
            };
            session(&server.me, link, false, offloaded).await
        };
        let result = tokio::select! {
            r = result => r,
            // Shutting down: the pumps go, the session's thread sees its pipe close.
            _ = stopping.wait_for(|s| *s) => return,
        };
        match result {
            Ok((s, peer)) => tracing::info!("{from} ({peer}): {}", s.to_json()),
            // Before the handshake: anyone's, counted and summed up (each at debug level).
            Err(e) if e.downcast_ref::<Unfinished>().is_some() => {
                server
                    .unfinished
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!("{from}: error: {e:#}");
            }
            // An identified peer's failure (or its attack), not the server's: a warning.
            Err(e) => tracing::warn!("{from}: error: {e:#}"),
        }
    });
}

/// Sends `cairn serve`'s log to stderr, one line per event (time, level, message), at
/// `level` and above — or as `RUST_LOG` says when it is set (e.g. `warn` or
/// `info,cairn_cli=debug`).
pub fn init_log(level: tracing::Level) -> Result<()> {
    use tracing_subscriber::filter::Targets;
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => spec
            .parse::<Targets>()
            .with_context(|| format!("RUST_LOG={spec}"))?,
        _ => Targets::new().with_default(level),
    };
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_filter(filter),
    );
    tracing::subscriber::set_global_default(subscriber).context("setting up the log")
}

/// How long a shutting-down server waits for its sessions' threads to end.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// How often refused connections are reported (one line for all refused meanwhile).
const REFUSALS_EVERY: Duration = Duration::from_secs(10);

/// Reports the connections refused over the caps and those that ended before their
/// handshake completed, a line each per [`REFUSALS_EVERY`] at most (a flood is thousands a
/// second); never ends.
async fn report_refusals(server: std::sync::Arc<Server>) {
    let mut every = tokio::time::interval(REFUSALS_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let unfinished = server
            .unfinished
            .swap(0, std::sync::atomic::Ordering::Relaxed);
        if unfinished > 0 {
            tracing::info!(
                "{unfinished} connections ended before their handshake completed in the last {REFUSALS_EVERY:?}"
            );
        }
        let n = server.refused.swap(0, std::sync::atomic::Ordering::Relaxed);
        if n > 0 {
            let Limits {
                max_connections,
                max_per_ip,
                ..
            } = server.limits;
            tracing::warn!(
                "refused {n} connections in the last {REFUSALS_EVERY:?} (caps: {max_connections} in all, {max_per_ip} per address)"
            );
        }
    }
}

/// `cairn serve`: accepts replication sessions until SIGINT or SIGTERM, then closes the store
/// cleanly (received nodes made durable, the sync index's progress saved, no repair on the
/// next open).
pub fn serve(
    data: &Path,
    listen: SocketAddr,
    ws_listen: Option<SocketAddr>,
    opts: SessionOptions,
    idle: Duration,
    limits: Limits,
    http: Option<crate::http::Options>,
) -> Result<()> {
    let log = crate::store::open_writer(data)?;
    let me = crate::store::identity(data)?;
    let blobs = crate::blob::open(data, &log)?;
    // The sync index, brought up to date before the first peer comes and kept up to date
    // (by its background thread) while serving, so no session waits for it.
    let index = cairn_sync::LogStore::open(&log).context("opening the sync index")?;
    index
        .catch_up()
        .context("bringing the sync index up to date")?;
    // Commands of `cairn wiki`/`kv`/`log` on DATA/cairn.sock, run on this store.
    let control = crate::control::Control::start(data, &log, &blobs)?;
    // Connections (handshakes, pumps) on a worker per core; each session past its
    // handshake on a blocking thread of its own (a thread for every connection the cap
    // allows, so none waits for another's to end).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(limits.max_connections.saturating_add(16))
        .thread_name("cairn-serve")
        .build()
        .context("starting the async runtime")?;
    let served = rt.block_on(async move {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let ws_listener = match ws_listen {
            Some(a) => Some(
                TcpListener::bind(a)
                    .await
                    .with_context(|| format!("listening on {a}"))?,
            ),
            None => None,
        };
        let http_listener = match &http {
            Some(h) => Some(
                TcpListener::bind(h.listen)
                    .await
                    .with_context(|| format!("listening on {}", h.listen))?,
            ),
            None => None,
        };
        // The bound addresses first, on stdout (port 0 picks a free port).
        println!("{}", listener.local_addr()?);
        if let Some(l) = &ws_listener {
            println!("{}", l.local_addr()?);
        }
        if let Some(l) = &http_listener {
            println!("http://{}/", l.local_addr()?);
        }
        tracing::info!("serving {} as {}", data.display(), me.public());
        let server = std::sync::Arc::new(Server {
            blobs: Some(blobs),
            log,
            me,
            opts,
            idle,
            limits,
            stopping: tokio::sync::watch::Sender::new(false),
            held: std::sync::Mutex::new(Held::default()),
            refused: std::sync::atomic::AtomicU64::new(0),
            unfinished: std::sync::atomic::AtomicU64::new(0),
            http: http
                .map(crate::http::Http::new)
                .transpose()?
                .map(std::sync::Arc::new),
        });
        let reports = report_refusals(server.clone());
        let tcp_loop = accept_loop(listener, Listener::Tcp, server.clone());
        let ws_loop = async {
            match ws_listener {
                Some(l) => accept_loop(l, Listener::Ws, server.clone()).await,
                None => std::future::pending().await,
            }
        };
        let http_loop = async {
            match http_listener {
                Some(l) => accept_loop(l, Listener::Http, server.clone()).await,
                None => std::future::pending().await,
            }
        };
        // The accept loops never end: only a signal stops the server.
        let signal = tokio::select! {
            s = shutdown_signal() => s,
            () = reports => unreachable!("the report loop never ends"),
            () = tcp_loop => unreachable!("the accept loop never ends"),
            () = ws_loop => unreachable!("the accept loop never ends"),
            () = http_loop => unreachable!("the accept loop never ends"),
        };
        // Sessions still running end here (their peers see the stream close, an error for
        // a one-shot session); what they stored is kept. Their threads are waited for (a
        // while), so that none outlives the runtime's timers.
        tracing::info!("{signal}: shutting down");
        server.stopping.send_replace(true);
        let deadline = tokio::time::Instant::now() + SHUTDOWN_WAIT;
        while server.held().total > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        anyhow::Ok(())
    });
    // Drop the sessions (and their stores) before the index and the log.
    drop(rt);
    drop(control);
    served?;
    index
        .log()
        .sync()
        .context("making received nodes durable")?;
    drop(index);
    tracing::info!("closed {}", data.display());
    Ok(())
}
