//! The async driver: runs a [`Session`] over any `futures_io::AsyncRead + AsyncWrite`
//! stream, runtime-independent (works under tokio through `tokio_util::compat`, in the browser
//! through a WebSocket/WebRTC adapter, or over the in-memory [`duplex`] pipe).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use cairn_log::{ChangesQuery, ChangesStream, Log};
use futures_core::Stream;
use futures_io::{AsyncRead, AsyncWrite};

use crate::error::SyncError;
use crate::index::{LogStore, LogStoreError};
use crate::session::{Event, Session, SessionOptions};
use crate::store::SyncStore;

/// What a finished sync did, as the CLI prints it (bytes as they crossed the stream).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncSummary {
    /// Nodes sent.
    pub nodes_sent: u64,
    /// Nodes received.
    pub nodes_received: u64,
    /// Of `bytes_sent`, the bytes of the nodes' own compact encodings (the rest is protocol
    /// overhead: handshake, reconciliation, message and frame headers).
    pub node_bytes_sent: u64,
    /// Bytes written to the stream.
    pub bytes_sent: u64,
    /// Bytes read from the stream.
    pub bytes_received: u64,
    /// Reconciliation round trips.
    pub round_trips: u32,
    /// Wall time in milliseconds (0 on wasm32, which has no clock here).
    pub ms: u64,
}

impl SyncSummary {
    /// The one-line JSON form:
    /// `{"nodes_sent":…,"nodes_received":…,"bytes_sent":…,"bytes_received":…,"round_trips":…,"ms":…}`.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"nodes_sent\":{},\"nodes_received\":{},\"bytes_sent\":{},\"bytes_received\":{},\"round_trips\":{},\"ms\":{}}}",
            self.nodes_sent,
            self.nodes_received,
            self.bytes_sent,
            self.bytes_received,
            self.round_trips,
            self.ms
        )
    }
}

/// Why a driven sync failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The stream failed.
    #[error("stream: {0}")]
    Io(#[from] std::io::Error),
    /// The protocol failed (the error was sent to the peer when it was ours).
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The log's sync index could not be opened.
    #[error(transparent)]
    Store(#[from] LogStoreError),
}

/// A source of locally appended nodes to forward in a live session.
pub trait Feed<S> {
    /// The next batch of nodes to offer, or `Pending`.
    fn poll_nodes(
        &mut self,
        cx: &mut Context<'_>,
        store: &mut S,
    ) -> Poll<Option<Vec<cairn_core::Node>>>;
}

/// No live feed.
#[derive(Debug, Default)]
pub struct NoFeed;

impl<S> Feed<S> for NoFeed {
    fn poll_nodes(
        &mut self,
        _: &mut Context<'_>,
        _: &mut S,
    ) -> Poll<Option<Vec<cairn_core::Node>>> {
        Poll::Ready(None)
    }
}

/// The log's changes feed from a starting point, minus what the session itself stored.
#[derive(Debug)]
pub struct LogFeed {
    stream: ChangesStream,
}

impl LogFeed {
    /// Every node added to `log` after change `since`.
    pub fn new(log: &Log, since: u64) -> Self {
        LogFeed {
            stream: log.changes_stream(ChangesQuery::all().since(since).live()),
        }
    }
}

impl Feed<LogStore> for LogFeed {
    fn poll_nodes(
        &mut self,
        cx: &mut Context<'_>,
        store: &mut LogStore,
    ) -> Poll<Option<Vec<cairn_core::Node>>> {
        let mut out = Vec::new();
        let mut last = 0;
        while out.len() < 512 {
            match Pin::new(&mut self.stream).poll_next(cx) {
                Poll::Ready(Some(Ok(e))) => {
                    last = e.change;
                    if !store.inserted(e.change) {
                        out.push(e.node);
                    }
                }
                // A read error ends forwarding; the session itself goes on.
                Poll::Ready(Some(Err(_))) | Poll::Ready(None) => {
                    if out.is_empty() {
                        return Poll::Ready(None);
                    }
                    break;
                }
                Poll::Pending => break,
            }
        }
        if last > 0 {
            store.forget_inserted_below(last);
        }
        if out.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(Some(out))
        }
    }
}

/// Syncs `log` with the peer at the other end of `io`: the call the CLI makes for
/// `cairn sync` (stdin/stdout joined into one duplex) and, later, per accepted connection of
/// `cairn serve`. One-shot sessions return once both sides know the sync is complete; live
/// ones keep forwarding new nodes both ways until the peer closes or `stop` resolves.
pub async fn sync_log<IO, F>(
    log: &Log,
    io: &mut IO,
    opts: SessionOptions,
    stop: F,
) -> Result<SyncSummary, DriverError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    F: Future<Output = ()>,
{
    sync_log_with_timeout(log, io, opts, stop, NoTimer, Duration::MAX).await
}

/// Like [`sync_log`], with a clock (`timer`): fails a peer that sends nothing for `idle`
/// before the initial sync is complete, and keeps live sessions alive (see
/// [`run_with_timeout`]).
pub async fn sync_log_with_timeout<IO, F, T>(
    log: &Log,
    io: &mut IO,
    opts: SessionOptions,
    stop: F,
    timer: T,
    idle: Duration,
) -> Result<SyncSummary, DriverError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    F: Future<Output = ()>,
    T: Timer,
{
    sync_log_with_progress(log, io, opts, stop, timer, idle, |_: &Session<LogStore>| {}).await
}

/// Like [`sync_log_with_timeout`], and calls `progress` with the session after every step
/// that moved bytes or events — e.g. to draw a progress bar from [`Session::stats`]. It is
/// called often: it should be cheap and throttle itself.
pub async fn sync_log_with_progress<IO, F, T, P>(
    log: &Log,
    io: &mut IO,
    opts: SessionOptions,
    stop: F,
    timer: T,
    idle: Duration,
    progress: P,
) -> Result<SyncSummary, DriverError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    F: Future<Output = ()>,
    T: Timer,
    P: FnMut(&Session<LogStore>),
{
    sync_log_with_extension(log, io, opts, stop, timer, idle, progress, None).await
}

/// Like [`sync_log_with_progress`], with an extension on the session's extension channel
/// (see [`Session::with_extension`]; `None`: exactly [`sync_log_with_progress`]).
#[allow(clippy::too_many_arguments)]
pub async fn sync_log_with_extension<IO, F, T, P>(
    log: &Log,
    io: &mut IO,
    mut opts: SessionOptions,
    stop: F,
    timer: T,
    idle: Duration,
    progress: P,
    ext: Option<Box<dyn crate::Extension>>,
) -> Result<SyncSummary, DriverError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    F: Future<Output = ()>,
    T: Timer,
    P: FnMut(&Session<LogStore>),
{
    let store = LogStore::open(log)?;
    opts.limits = *log.limits();
    let live = opts.live;
    let start = log.len();
    let mut session = match ext {
        Some(x) => Session::with_extension(store, opts, x)?,
        None => Session::new(store, opts)?,
    };
    if live {
        let feed = LogFeed::new(log, start);
        run_with_progress(&mut session, io, feed, stop, timer, idle, progress).await
    } else {
        run_with_progress(&mut session, io, NoFeed, stop, timer, idle, progress).await
    }
}

/// Sleeps for the driver's idle timeout, from whatever runtime the caller has (tokio's
/// `sleep`, a browser timer, a test clock). The core has no timers of its own.
pub trait Timer {
    /// The sleep future.
    type Sleep: Future<Output = ()>;
    /// A future that resolves after `d`.
    fn sleep(&self, d: Duration) -> Self::Sleep;
}

/// No timeout.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTimer;

impl Timer for NoTimer {
    type Sleep = std::future::Pending<()>;
    fn sleep(&self, _: Duration) -> Self::Sleep {
        std::future::pending()
    }
}

/// Drives `session` over `io` until it completes (one-shot), closes (live), fails, or `stop`
/// resolves (then it closes the session cleanly). Follows the session contract: every input
/// is followed by a full drain of output and events. No timeout: see [`run_with_timeout`].
pub async fn run<S, IO, L, F>(
    session: &mut Session<S>,
    io: &mut IO,
    feed: L,
    stop: F,
) -> Result<SyncSummary, DriverError>
where
    S: SyncStore,
    IO: AsyncRead + AsyncWrite + Unpin,
    L: Feed<S>,
    F: Future<Output = ()>,
{
    run_with_timeout(session, io, feed, stop, NoTimer, Duration::MAX).await
}

/// Like [`run`], with a clock (`timer`; the session itself has none):
///
/// - fails with [`SyncError::Timeout`] (sent to the peer) when the peer sends nothing for
///   `idle` before the initial sync is complete (a peer that stops mid-frame or never
///   answers);
/// - in a live session after the initial sync, sends a keep-alive ([`Session::ping`]) when
///   it has sent nothing for [`SessionOptions::keep_alive`], and — if the peer sends
///   keep-alives too ([`Session::peer_keep_alive`]) — fails with [`SyncError::Timeout`] when
///   the peer has sent nothing for [`SessionOptions::live_timeout`] (it vanished, e.g. a
///   half-open TCP connection); a live peer without keep-alives may be quiet for any time;
/// - fails with [`SyncError::Stalled`] (sent to the peer) when nodes have waited for the
///   peer's flow-control credit for `idle` (or `live_timeout`, whichever is shorter): a peer
///   that keeps the session open (even with keep-alives) but takes nothing; and takes live
///   nodes from the feed only while [`Session::wants_feed`], so the log, not memory, holds
///   what such a peer has not taken;
/// - once this side has sent CLOSE (a complete one-shot sync, or `stop`), waits at most
///   `idle` (or `live_timeout`, whichever is shorter) for the peer's answering CLOSE, then
///   leaves all the same; after a failure, waits at most as long to deliver the error.
///
/// A silence is confirmed once before it fails the session (a sixteenth of the period, at
/// most a second later), so that a thread too busy to run the code that hands us the peer's
/// bytes does not blame the peer; and the driver yields after 64 KiB of input in one poll, so
/// that one busy session does not starve the others sharing its thread (nor their
/// keep-alives).
pub async fn run_with_timeout<S, IO, L, F, T>(
    session: &mut Session<S>,
    io: &mut IO,
    feed: L,
    stop: F,
    timer: T,
    idle: Duration,
) -> Result<SyncSummary, DriverError>
where
    S: SyncStore,
    IO: AsyncRead + AsyncWrite + Unpin,
    L: Feed<S>,
    F: Future<Output = ()>,
    T: Timer,
{
    run_with_progress(session, io, feed, stop, timer, idle, |_: &Session<S>| {}).await
}

/// Longest wait confirming a peer's silence after the silence timer fired.
const SILENCE_CONFIRM: Duration = Duration::from_secs(1);

/// Bytes of input a driver handles in one poll before it yields.
const POLL_INPUT_BUDGET: usize = 64 << 10;

/// What the driver's timer currently waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Input; silence this long fails the session with a timeout. Re-armed by every read.
    Silence(Duration),
    /// The peer's answering CLOSE; then leave anyway.
    Leave(Duration),
    /// Our error frame getting out; then return the error anyway.
    Drain(Duration),
    /// Nothing.
    Forever,
}

impl Wait {
    fn duration(self) -> Option<Duration> {
        match self {
            Wait::Silence(d) | Wait::Leave(d) | Wait::Drain(d) if d != Duration::MAX => Some(d),
            _ => None,
        }
    }
}

/// Like [`run_with_timeout`], and calls `progress` with the session after every step that
/// moved bytes or events — e.g. to draw a progress bar from [`Session::stats`]. It is
/// called often: it should be cheap and throttle itself.
pub async fn run_with_progress<S, IO, L, F, T, P>(
    session: &mut Session<S>,
    io: &mut IO,
    mut feed: L,
    stop: F,
    timer: T,
    idle: Duration,
    mut progress_cb: P,
) -> Result<SyncSummary, DriverError>
where
    S: SyncStore,
    IO: AsyncRead + AsyncWrite + Unpin,
    L: Feed<S>,
    F: Future<Output = ()>,
    T: Timer,
    P: FnMut(&Session<S>),
{
    let keep_alive = session.options().keep_alive;
    let live_timeout = session.options().live_timeout;
    let grace = idle.min(live_timeout);
    let arm = |w: Wait| w.duration().map(|d| Box::pin(timer.sleep(d)));
    let mut wait = Wait::Silence(idle);
    let mut sleep = arm(wait);
    // The silence timer fired once and awaits confirmation.
    let mut stale = false;
    let mut ping_sleep: Option<Pin<Box<T::Sleep>>> = None;
    // Armed while output waits for the peer's credit.
    let mut stall_sleep: Option<Pin<Box<T::Sleep>>> = None;
    #[cfg(not(target_family = "wasm"))]
    let started = std::time::Instant::now();
    let mut stop = pin!(stop);
    let mut stopped = false;
    let mut out: Vec<u8> = Vec::new();
    let mut pos = 0usize;
    let mut rbuf = vec![0u8; 64 << 10];
    let mut eof = false;
    let mut feed_done = false;
    let mut need_flush = false;
    let mut failure: Option<SyncError> = None;
    let mut finished = false;
    let mut live = false;
    std::future::poll_fn(|cx| {
        // Input handled in this poll: past the budget the driver yields (and is polled again
        // at once), so that one busy session cannot starve the others on its thread — nor
        // their keep-alives.
        let mut budget = POLL_INPUT_BUDGET;
        loop {
            let mut progress = false;
            while let Some(ev) = session.poll_event() {
                progress = true;
                match ev {
                    Event::Handshake { live: l, .. } => live = l,
                    // One-shot: done; say so and wait for the peer's CLOSE (or its end of
                    // stream) before leaving.
                    Event::Complete if !live => session.close(),
                    Event::Closed => {
                        // Answer the peer's CLOSE (a live peer that stopped waits for it).
                        session.close();
                        finished = true;
                    }
                    Event::Failed(e) => {
                        failure.get_or_insert(e);
                    }
                    _ => {}
                }
            }
            // What the timers wait for now.
            let keeping_alive = live
                && failure.is_none()
                && !finished
                && session.is_complete()
                && !session.close_sent();
            let want = if failure.is_some() {
                Wait::Drain(grace)
            } else if !session.is_complete() || (session.extension_busy() && !finished) {
                // Before completion, and while the extension waits for answers to its own
                // requests: a silent peer is timed out.
                Wait::Silence(idle)
            } else if finished || session.close_sent() {
                Wait::Leave(grace)
            } else if keeping_alive && session.peer_keep_alive() {
                Wait::Silence(live_timeout)
            } else {
                Wait::Forever
            };
            if want != wait {
                wait = want;
                sleep = arm(wait);
                stale = false;
            }
            if !keeping_alive || keep_alive == Duration::MAX {
                ping_sleep = None;
            } else if ping_sleep.is_none() {
                ping_sleep = Some(Box::pin(timer.sleep(keep_alive)));
            }
            if pos == out.len()
                && let Some(b) = session.poll_transmit()
            {
                out = b;
                pos = 0;
            }
            if pos < out.len() {
                match Pin::new(&mut *io).poll_write(cx, &out[pos..]) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(DriverError::Io(
                            std::io::ErrorKind::WriteZero.into(),
                        )));
                    }
                    Poll::Ready(Ok(n)) => {
                        pos += n;
                        need_flush = true;
                        progress = true;
                        if ping_sleep.is_some() {
                            // Output is proof of life: the next keep-alive is due after
                            // `keep_alive` of quiet from now.
                            ping_sleep = Some(Box::pin(timer.sleep(keep_alive)));
                        }
                    }
                    Poll::Ready(Err(_)) if finished || session.close_sent() => {
                        // Done, and the peer is already gone: what is left (credit grants,
                        // our CLOSE) no longer matters.
                        pos = out.len();
                        need_flush = false;
                        if !eof {
                            eof = true;
                            let _ = session.handle_eof();
                        }
                        progress = true;
                    }
                    Poll::Ready(Err(e)) => {
                        // The peer may be gone after an error: report the protocol error.
                        return Poll::Ready(Err(match failure.take() {
                            Some(f) => f.into(),
                            None => e.into(),
                        }));
                    }
                    Poll::Pending => {}
                }
                if pos < out.len() && !progress && eof && failure.is_some() {
                    // Nobody will read what is left.
                    if let Some(f) = failure.take() {
                        return Poll::Ready(Err(f.into()));
                    }
                }
            }
            let idle_out = pos == out.len();
            if idle_out && need_flush {
                match Pin::new(&mut *io).poll_flush(cx) {
                    Poll::Ready(Ok(())) => need_flush = false,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                    Poll::Pending => {}
                }
            }
            if idle_out && !need_flush {
                if let Some(f) = failure.take() {
                    let _ = Pin::new(&mut *io).poll_close(cx);
                    return Poll::Ready(Err(f.into()));
                }
                if finished {
                    // Both CLOSEs are exchanged (or the peer is gone): leave.
                    return match Pin::new(&mut *io).poll_close(cx) {
                        Poll::Ready(_) => Poll::Ready(Ok(())),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
            // After a failure keep reading (and dropping) input so that a peer blocked on writing
            // does not keep our error frame from getting through.
            if !eof && (failure.is_some() || session.wants_input()) {
                match Pin::new(&mut *io).poll_read(cx, &mut rbuf) {
                    Poll::Ready(Ok(0)) => {
                        eof = true;
                        progress = true;
                        let _ = session.handle_eof();
                    }
                    Poll::Ready(Ok(n)) => {
                        progress = true;
                        budget = budget.saturating_sub(n);
                        // Input re-arms the silence timer; and the wait for the peer's
                        // CLOSE while it still sends on the extension channel (our answers
                        // to its requests are flowing, or it is still answering ours).
                        if matches!(wait, Wait::Silence(_))
                            || (matches!(wait, Wait::Leave(_)) && session.extension_open())
                        {
                            sleep = arm(wait);
                            stale = false;
                        }
                        let _ = session.handle_input(&rbuf[..n]);
                    }
                    Poll::Ready(Err(e)) => {
                        if e.kind() == std::io::ErrorKind::Interrupted {
                            continue;
                        }
                        return Poll::Ready(Err(e.into()));
                    }
                    Poll::Pending => {}
                }
            }
            // The log is the buffer: no more live nodes while the peer does not take them.
            if !feed_done && session.is_complete() && !session.is_finished() && session.wants_feed()
            {
                match feed.poll_nodes(cx, session.store_mut()) {
                    Poll::Ready(Some(nodes)) => {
                        session.offer(nodes);
                        progress = true;
                    }
                    Poll::Ready(None) => feed_done = true,
                    Poll::Pending => {}
                }
            }
            if !session.blocked_on_credit() || failure.is_some() || grace == Duration::MAX {
                stall_sleep = None;
            } else if stall_sleep.is_none() {
                stall_sleep = Some(Box::pin(timer.sleep(grace)));
            }
            if let Some(s) = stall_sleep.as_mut()
                && s.as_mut().poll(cx).is_ready()
            {
                stall_sleep = None;
                session.stalled(grace);
                progress = true;
            }
            if let Some(p) = ping_sleep.as_mut()
                && p.as_mut().poll(cx).is_ready()
            {
                ping_sleep = None;
                // Only when nothing is waiting to go out: blocked output is not quiet.
                if pos == out.len() {
                    session.ping();
                }
                progress = true;
            }
            if let Some(s) = sleep.as_mut()
                && s.as_mut().poll(cx).is_ready()
            {
                sleep = None;
                match wait {
                    // The silence may be ours: a starved thread that has not yet run the
                    // code moving the peer's bytes to us. Confirm it once, a moment later.
                    Wait::Silence(d) if !stale => {
                        stale = true;
                        sleep = Some(Box::pin(timer.sleep((d / 16).min(SILENCE_CONFIRM))));
                    }
                    Wait::Silence(d) => session.timeout(d),
                    // The sync is complete; the peer did not say goodbye in time.
                    Wait::Leave(_) => return Poll::Ready(Ok(())),
                    // Nobody reads our error frame.
                    Wait::Drain(_) => {
                        if let Some(f) = failure.take() {
                            return Poll::Ready(Err(f.into()));
                        }
                    }
                    Wait::Forever => {}
                }
                progress = true;
            }
            if !stopped && stop.as_mut().poll(cx).is_ready() {
                stopped = true;
                if !session.is_complete() {
                    // Stopped before the initial sync completed: abort.
                    session.close();
                    finished = true;
                } else {
                    // Say goodbye; leave on the peer's answering CLOSE.
                    session.close();
                }
                progress = true;
            }
            if !progress {
                return Poll::Pending;
            }
            progress_cb(session);
            if budget == 0 {
                // The next poll starts by draining what this input produced.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
    })
    .await?;
    let s = session.stats();
    #[cfg(not(target_family = "wasm"))]
    let ms = started.elapsed().as_millis() as u64;
    #[cfg(target_family = "wasm")]
    let ms = 0;
    Ok(SyncSummary {
        nodes_sent: s.nodes_sent,
        nodes_received: s.nodes_received,
        node_bytes_sent: s.node_bytes_sent,
        bytes_sent: s.bytes_sent,
        bytes_received: s.bytes_received,
        round_trips: s.round_trips,
        ms,
    })
}

#[derive(Debug, Default)]
struct Pipe {
    buf: VecDeque<u8>,
    closed: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

/// One end of an in-memory duplex byte stream (see [`duplex`]).
#[derive(Debug)]
pub struct DuplexStream {
    read: Arc<Mutex<Pipe>>,
    write: Arc<Mutex<Pipe>>,
    capacity: usize,
}

/// Two connected in-memory streams, each direction buffering at most `capacity` bytes:
/// what one end writes the other reads.
pub fn duplex(capacity: usize) -> (DuplexStream, DuplexStream) {
    let a = Arc::new(Mutex::new(Pipe::default()));
    let b = Arc::new(Mutex::new(Pipe::default()));
    (
        DuplexStream {
            read: a.clone(),
            write: b.clone(),
            capacity,
        },
        DuplexStream {
            read: b,
            write: a,
            capacity,
        },
    )
}

fn lock(p: &Mutex<Pipe>) -> std::sync::MutexGuard<'_, Pipe> {
    p.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AsyncRead for DuplexStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut p = lock(&self.read);
        if p.buf.is_empty() {
            if p.closed {
                return Poll::Ready(Ok(0));
            }
            p.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(p.buf.len());
        for (dst, src) in buf.iter_mut().zip(p.buf.drain(..n)) {
            *dst = src;
        }
        if let Some(w) = p.writer.take() {
            w.wake();
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for DuplexStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let cap = self.capacity;
        let mut p = lock(&self.write);
        if p.closed {
            return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
        }
        let room = cap.saturating_sub(p.buf.len());
        if room == 0 {
            p.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = room.min(buf.len());
        p.buf.extend(&buf[..n]);
        if let Some(w) = p.reader.take() {
            w.wake();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let mut p = lock(&self.write);
        p.closed = true;
        if let Some(w) = p.reader.take() {
            w.wake();
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for DuplexStream {
    fn drop(&mut self) {
        for side in [&self.write, &self.read] {
            let mut p = lock(side);
            p.closed = true;
            if let Some(w) = p.reader.take() {
                w.wake();
            }
            if let Some(w) = p.writer.take() {
                w.wake();
            }
        }
    }
}
