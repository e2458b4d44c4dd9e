//! Keep-alive: PING frames as proof of life in quiet live sessions (sans-IO), and the
//! driver's use of them: a live peer that vanishes (half-open connection) is timed out, a
//! quiet but alive one is not, and a peer that never answers our CLOSE does not hold us.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use cairn_core::{Ed25519Verifier, Keypair, Node};
use cairn_log::{Log, LogOptions};
use cairn_sync::mux::encode_frame;
use cairn_sync::wire::{Hello, Mode, PROTOCOL_VERSION};
use cairn_sync::{
    DriverError, Feed, LOG_CHANNEL, LogFeed, LogStore, MemStore, Session, SessionOptions,
    SyncError, SyncStore, Timer, duplex, run_with_timeout,
};
use common::{chain, pump};
use futures_io::{AsyncRead, AsyncWrite};
use futures_lite::future;

fn live(keep_alive_ms: u64, live_timeout_ms: u64) -> SessionOptions {
    SessionOptions {
        live: true,
        keep_alive: Duration::from_millis(keep_alive_ms),
        live_timeout: Duration::from_millis(live_timeout_ms),
        ..SessionOptions::default()
    }
}

fn mem(nodes: &[Node]) -> MemStore {
    let mut s = MemStore::verifying(Ed25519Verifier::strict());
    s.insert(nodes.to_vec()).unwrap();
    s
}

#[test]
fn pings_are_proof_of_life_only() {
    let k = Keypair::from_seed([4; 32]);
    let base = chain(&k, 50, None, 0);
    let mut b_nodes = base.clone();
    b_nodes.extend(chain(&k, 5, Some(base[49].key()), 1));
    let mut a = Session::new(mem(&base), live(1, 1)).unwrap();
    let mut b = Session::new(mem(&b_nodes), live(1, 1)).unwrap();
    // Nothing to ping before the handshake.
    assert!(!a.ping());
    let o = pump(&mut a, &mut b, None, None);
    o.a.unwrap();
    o.b.unwrap();
    assert!(a.is_complete() && b.is_complete() && a.is_live());
    assert!(a.peer_keep_alive() && b.peer_keep_alive());
    while a.poll_event().is_some() {}
    while b.poll_event().is_some() {}
    let (sa, sb) = (a.stats(), b.stats());
    for _ in 0..10 {
        assert!(a.ping());
        assert!(b.ping());
        let o = pump(&mut a, &mut b, None, None);
        o.a.unwrap();
        o.b.unwrap();
    }
    let (ta, tb) = (a.stats(), b.stats());
    // Each PING is a 4-byte frame; not answered, not a round trip, no event.
    assert_eq!(ta.bytes_received - sa.bytes_received, 40);
    assert_eq!(tb.bytes_received - sb.bytes_received, 40);
    assert_eq!(ta.round_trips, sa.round_trips);
    assert_eq!(tb.round_trips, sb.round_trips);
    assert!(a.poll_event().is_none() && b.poll_event().is_none());
    assert!(!a.is_finished() && !b.is_finished());
    // None once this side has said goodbye.
    a.close();
    assert!(!a.ping());
}

#[test]
fn no_pings_to_a_peer_that_does_not_announce_them() {
    let mut s = Session::new(MemStore::new(), live(1, 1)).unwrap();
    while s.poll_transmit().is_some() {}
    let mut body = Vec::new();
    Hello {
        version: PROTOCOL_VERSION,
        mode: Mode::Sync,
        live: true,
        keep_alive: false,
        extensions: false,
        metadata: Vec::new(),
        count: 0,
        max_height: None,
        fingerprint: MemStore::new().summary().unwrap().agg.digest(),
    }
    .encode(&mut body);
    let mut frame = Vec::new();
    encode_frame(0, LOG_CHANNEL, &body, &mut frame);
    s.handle_input(&frame).unwrap();
    assert!(s.is_complete() && s.is_live());
    assert!(!s.peer_keep_alive());
    assert!(!s.ping());
    assert!(s.poll_transmit().is_none());
}

/// A real clock for the driver: each sleep wakes its task from a thread.
struct ThreadTimer;

struct ThreadSleep {
    deadline: Instant,
    waker: Arc<Mutex<(bool, Option<Waker>)>>,
}

impl Future for ThreadSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        let mut w = self.waker.lock().unwrap();
        w.1 = Some(cx.waker().clone());
        if !w.0 {
            w.0 = true;
            let (shared, deadline) = (self.waker.clone(), self.deadline);
            std::thread::spawn(move || {
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                if let Some(w) = shared.lock().unwrap().1.take() {
                    w.wake();
                }
            });
        }
        Poll::Pending
    }
}

impl Timer for ThreadTimer {
    type Sleep = ThreadSleep;
    fn sleep(&self, d: Duration) -> ThreadSleep {
        ThreadSleep {
            deadline: Instant::now() + d,
            waker: Arc::new(Mutex::new((false, None))),
        }
    }
}

/// Freezes a stream: while frozen, reads and writes never complete (a peer whose machine
/// vanished, its TCP connection half-open); thawing resumes them.
#[derive(Default)]
struct Gate(Mutex<(bool, Vec<Waker>)>);

impl Gate {
    fn freeze(&self) {
        self.0.lock().unwrap().0 = true;
    }
    fn thaw(&self) {
        let mut g = self.0.lock().unwrap();
        g.0 = false;
        for w in g.1.drain(..) {
            w.wake();
        }
    }
    fn frozen(&self, cx: &Context<'_>) -> bool {
        let mut g = self.0.lock().unwrap();
        if g.0 {
            g.1.push(cx.waker().clone());
        }
        g.0
    }
}

struct Frozen<IO> {
    io: IO,
    gate: Arc<Gate>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Frozen<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.gate.frozen(cx) {
            return Poll::Pending;
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Frozen<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.gate.frozen(cx) {
            return Poll::Pending;
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.gate.frozen(cx) {
            return Poll::Pending;
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.gate.frozen(cx) {
            return Poll::Pending;
        }
        Pin::new(&mut self.io).poll_close(cx)
    }
}

/// A feed that freezes the peer's stream the first time it is polled, which the driver does
/// once this side's initial sync is complete.
struct FreezePeerWhenComplete<L> {
    gate: Arc<Gate>,
    inner: L,
}

impl<L: Feed<LogStore>> Feed<LogStore> for FreezePeerWhenComplete<L> {
    fn poll_nodes(
        &mut self,
        cx: &mut Context<'_>,
        store: &mut LogStore,
    ) -> Poll<Option<Vec<Node>>> {
        self.gate.freeze();
        self.inner.poll_nodes(cx, store)
    }
}

fn log(seed: u8, n: usize) -> Log {
    let log = Log::memory(
        LogOptions::default()
            .signer(Keypair::from_seed([seed; 32]))
            .verifier(Ed25519Verifier::strict()),
    )
    .unwrap();
    let k = Keypair::from_seed([9; 32]);
    log.insert(chain(&k, 20, None, 0)).unwrap();
    for i in 0..n {
        log.append(format!("{seed} {i}").into_bytes()).unwrap();
    }
    log
}

fn session(log: &Log, opts: SessionOptions) -> Session<LogStore> {
    Session::new(LogStore::open(log).unwrap(), opts).unwrap()
}

const IDLE: Duration = Duration::from_secs(20);

#[test]
fn a_vanished_live_peer_times_out() {
    let (a, b) = (log(1, 3), log(2, 2));
    let (ia, ib) = duplex(64 << 10);
    let gate = Arc::new(Gate::default());
    let mut sa = session(&a, live(50, 300));
    let mut sb = session(&b, live(50, 300));
    let feed = FreezePeerWhenComplete {
        gate: gate.clone(),
        inner: LogFeed::new(&a, a.len()),
    };
    let thaw = gate.clone();
    let a_side = async move {
        let mut ia = ia;
        let t = Instant::now();
        let r =
            run_with_timeout(&mut sa, &mut ia, feed, future::pending(), ThreadTimer, IDLE).await;
        let waited = t.elapsed();
        // Let the peer run again: it finds our error, or a closed stream.
        drop(ia);
        thaw.thaw();
        (r, waited)
    };
    let mut ib = Frozen { io: ib, gate };
    let b_side = run_with_timeout(
        &mut sb,
        &mut ib,
        LogFeed::new(&b, b.len()),
        future::pending(),
        ThreadTimer,
        IDLE,
    );
    let ((ra, waited), rb) = future::block_on(future::zip(a_side, b_side));
    match ra {
        Err(DriverError::Sync(SyncError::Timeout { idle_ms })) => assert_eq!(idle_ms, 300),
        other => panic!("{other:?}"),
    }
    assert!(
        waited < IDLE / 2,
        "timed out by the live timeout: {waited:?}"
    );
    assert!(rb.is_err(), "{rb:?}");
    // The initial sync itself went through.
    assert_eq!(a.len(), 25);
}

#[test]
fn a_quiet_but_alive_live_peer_is_not_timed_out() {
    // The same sync one-shot, for the bytes without keep-alives.
    let (a, b) = (log(1, 3), log(2, 2));
    let (mut ia, mut ib) = duplex(64 << 10);
    let (oa, ob) = future::block_on(future::zip(
        cairn_sync::sync_log(&a, &mut ia, SessionOptions::default(), future::pending()),
        cairn_sync::sync_log(&b, &mut ib, SessionOptions::default(), future::pending()),
    ));
    let (oa, ob) = (oa.unwrap(), ob.unwrap());

    let (a, b) = (log(1, 3), log(2, 2));
    let (mut ia, mut ib) = duplex(64 << 10);
    let mut sa = session(&a, live(50, 300));
    let mut sb = session(&b, live(50, 300));
    // Ten live timeouts of silence but for the keep-alives, then a clean stop.
    let stop = ThreadTimer.sleep(Duration::from_millis(3000));
    let (ra, rb) = future::block_on(future::zip(
        run_with_timeout(
            &mut sa,
            &mut ia,
            LogFeed::new(&a, a.len()),
            stop,
            ThreadTimer,
            IDLE,
        ),
        run_with_timeout(
            &mut sb,
            &mut ib,
            LogFeed::new(&b, b.len()),
            future::pending(),
            ThreadTimer,
            IDLE,
        ),
    ));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    // b's clock starts at its first poll, after a's first poll (zip polls a first), so it
    // may read a little less than the 3 s a ran for.
    assert!(ra.ms >= 3000 && rb.ms >= 2500, "{ra:?} {rb:?}");
    assert_eq!((a.len(), b.len()), (25, 25));
    // Keep-alives went both ways (4 bytes each, one per 50 ms of quiet output: dozens), and
    // none counted as a round trip.
    for (live, one_shot) in [(ra, oa), (rb, ob)] {
        let pings = (live.bytes_received - one_shot.bytes_received) / 4;
        assert!(pings >= 20, "{pings} pings: {live:?} vs {one_shot:?}");
        assert_eq!(live.round_trips, one_shot.round_trips);
        assert_eq!(live.nodes_received, one_shot.nodes_received);
    }
}

#[test]
fn a_peer_that_never_answers_our_close_does_not_hold_us() {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let (a, b) = (log(1, 3), log(2, 2));
    let (ia, mut ib) = duplex(64 << 10);
    // One-shot: once complete, this side sends CLOSE and waits for the answer.
    let mut sa = session(&a, SessionOptions::default());
    let mut sb = session(&b, SessionOptions::default());
    let gate = Arc::new(Gate::default());
    gate.freeze();
    let thaw = gate.clone();
    let idle = Duration::from_millis(500);
    let a_side = async move {
        let mut ia = ia;
        let t = Instant::now();
        let r = run_with_timeout(
            &mut sa,
            &mut ia,
            cairn_sync::NoFeed,
            future::pending(),
            ThreadTimer,
            idle,
        )
        .await;
        let waited = t.elapsed();
        thaw.thaw();
        (r, waited)
    };
    // The peer syncs by hand, and once complete goes silent: it neither reads our CLOSE nor
    // sends its own, but keeps the stream open.
    let b_side = async move {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            while let Some(out) = sb.poll_transmit() {
                ib.write_all(&out).await.unwrap();
            }
            if sb.is_complete() {
                break;
            }
            let n = ib.read(&mut buf).await.unwrap();
            assert!(n > 0);
            // Byte by byte: once complete it reads nothing more (our CLOSE may come in the
            // same read as the SYNCED that completes it).
            for i in 0..n {
                sb.handle_input(&buf[i..i + 1]).unwrap();
                if sb.is_complete() {
                    break;
                }
            }
        }
        std::future::poll_fn(|cx| {
            if gate.frozen(cx) {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        sb.stats()
    };
    let ((ra, waited), sb) = future::block_on(future::zip(a_side, b_side));
    let s = ra.unwrap();
    assert_eq!((s.nodes_received, sb.nodes_received), (2, 3));
    assert!(waited >= idle && waited < idle * 8, "{waited:?}");
}

/// A peer that answers the handshake, then reads (and drops) everything but never grants
/// credit: the nodes waiting for it fail the session with `Stalled`, long before the idle
/// timeout, and live nodes stop being taken from the feed meanwhile.
#[test]
fn a_peer_that_grants_no_credit_is_failed() {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let k = Keypair::from_seed([6; 32]);
    let l = cairn_core::Limits::default();
    // 2 MiB of nodes: twice the initial window.
    let mut nodes = Vec::new();
    let mut prev = None;
    for i in 0..20u8 {
        let n = Node::signed(prev, vec![i; 100 << 10], &k, &l).unwrap();
        prev = Some(n.key());
        nodes.push(n);
    }
    let mut sa = Session::new(mem(&nodes), live(10_000, 300)).unwrap();
    let (mut ia, mut ib) = duplex(64 << 10);
    let idle = Duration::from_secs(10);
    let a_side = async move {
        let t = Instant::now();
        let r = run_with_timeout(
            &mut sa,
            &mut ia,
            cairn_sync::NoFeed,
            future::pending(),
            ThreadTimer,
            idle,
        )
        .await;
        (r, t.elapsed())
    };
    let b_side = async move {
        let mut hello = Vec::new();
        Hello {
            version: PROTOCOL_VERSION,
            mode: Mode::Sync,
            live: true,
            keep_alive: false,
            extensions: false,
            metadata: Vec::new(),
            count: 0,
            max_height: None,
            fingerprint: [0; 32],
        }
        .encode(&mut hello);
        let mut out = Vec::new();
        encode_frame(0, LOG_CHANNEL, &hello, &mut out);
        encode_frame(0, LOG_CHANNEL, &[4, 0], &mut out);
        ib.write_all(&out).await.unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut read = 0usize;
        while let Ok(n) = ib.read(&mut buf).await {
            if n == 0 {
                break;
            }
            read += n;
        }
        read
    };
    let ((r, took), read) = future::block_on(future::zip(a_side, b_side));
    match r {
        Err(DriverError::Sync(SyncError::Stalled { idle_ms })) => assert_eq!(idle_ms, 300),
        other => panic!("{other:?}"),
    }
    assert!(took < idle / 2, "{took:?}");
    // It sent about one window of nodes, not all of them.
    assert!(read < (1 << 20) + (200 << 10), "{read}");
}

#[test]
fn live_nodes_wait_in_the_log_while_the_peer_takes_nothing() {
    let k = Keypair::from_seed([4; 32]);
    let base = chain(&k, 5, None, 0);
    let mut a = Session::new(mem(&base), live(1, 1)).unwrap();
    let mut b = Session::new(mem(&base), live(1, 1)).unwrap();
    let o = pump(&mut a, &mut b, None, None);
    o.a.unwrap();
    o.b.unwrap();
    assert!(a.is_complete() && a.is_live());
    // The peer stops reading: offers go out until the window is spent, then queue.
    let l = cairn_core::Limits::default();
    let mut prev = Some(base[4].key());
    let mut offered = 0usize;
    while a.wants_feed() {
        let n = Node::signed(prev, vec![1; 64 << 10], &k, &l).unwrap();
        prev = Some(n.key());
        offered += n.encoded_len();
        a.offer(vec![n]);
        while a.poll_transmit().is_some() {}
        assert!(offered < 64 << 20, "the live queue is unbounded");
    }
    assert!(a.blocked_on_credit());
    assert!(offered <= (1 << 20) + cairn_sync::LIVE_QUEUE_BYTES + (200 << 10));
    a.stalled(Duration::from_secs(45));
    assert!(a.is_finished());
    assert!(!a.blocked_on_credit());
}
