//! Two stores converge: one-shot sync, push, pull, incompatible modes, and the figures of
//! the reconciliation (already-equal re-sync, +10/+10 divergence) on the log-backed store.

mod common;

use cairn_core::{Ed25519Verifier, Keypair, Limits, Node};
use cairn_log::{Log, LogOptions};
use cairn_sync::{LogStore, MemStore, Mode, Session, SessionOptions, SyncError, duplex, sync_log};
use common::{Rng, chain, pump};
use futures_lite::future;

fn opts(mode: Mode) -> SessionOptions {
    SessionOptions {
        mode,
        ..SessionOptions::default()
    }
}

fn mem_with(nodes: &[Node]) -> MemStore {
    let mut s = MemStore::verifying(Ed25519Verifier::strict());
    s.insert_all(nodes);
    s
}

trait InsertAll {
    fn insert_all(&mut self, nodes: &[Node]);
}
impl InsertAll for MemStore {
    fn insert_all(&mut self, nodes: &[Node]) {
        use cairn_sync::SyncStore;
        self.insert(nodes.to_vec()).unwrap();
    }
}

#[test]
fn two_mem_stores_converge_in_every_compatible_mode() {
    let ka = Keypair::from_seed([1; 32]);
    let kb = Keypair::from_seed([2; 32]);
    let common = chain(&ka, 50, None, 0);
    let head = common.last().unwrap().key();
    let only_a = chain(&ka, 7, Some(head), 1);
    let only_b = chain(&kb, 5, Some(head), 2);
    let a_nodes: Vec<Node> = common.iter().chain(&only_a).cloned().collect();
    let b_nodes: Vec<Node> = common.iter().chain(&only_b).cloned().collect();

    for (ma, mb, a_gets, b_gets) in [
        (Mode::Sync, Mode::Sync, true, true),
        (Mode::Push, Mode::Pull, false, true),
        (Mode::Pull, Mode::Push, true, false),
        (Mode::Push, Mode::Sync, false, true),
        (Mode::Sync, Mode::Pull, false, true),
        (Mode::Pull, Mode::Sync, true, false),
    ] {
        let mut a = Session::new(mem_with(&a_nodes), opts(ma)).unwrap();
        let mut b = Session::new(mem_with(&b_nodes), opts(mb)).unwrap();
        let out = pump(&mut a, &mut b, None, None);
        out.a.unwrap();
        out.b.unwrap();
        assert!(a.is_complete() && b.is_complete(), "{ma:?}/{mb:?}");
        let (sa, sb) = (a.into_store(), b.into_store());
        assert_eq!(sa.len(), 57 + if a_gets { 5 } else { 0 }, "{ma:?}/{mb:?}");
        assert_eq!(sb.len(), 55 + if b_gets { 7 } else { 0 }, "{ma:?}/{mb:?}");
    }
}

#[test]
fn push_push_and_pull_pull_are_incompatible() {
    for m in [Mode::Push, Mode::Pull] {
        let mut a = Session::new(MemStore::new(), opts(m)).unwrap();
        let mut b = Session::new(MemStore::new(), opts(m)).unwrap();
        let out = pump(&mut a, &mut b, None, None);
        assert!(matches!(out.a, Err(SyncError::IncompatibleModes { .. })));
        assert!(matches!(out.b, Err(SyncError::IncompatibleModes { .. })));
    }
}

#[test]
fn random_dags_converge_with_random_delivery() {
    for seed in 0..20u64 {
        let mut rng = Rng(seed);
        let keys: Vec<Keypair> = (0..4).map(|i| Keypair::from_seed([i + 10; 32])).collect();
        let l = Limits::default();
        let mut a = MemStore::verifying(Ed25519Verifier::strict());
        let mut b = MemStore::verifying(Ed25519Verifier::strict());
        use cairn_sync::SyncStore;
        let mut all: Vec<Node> = Vec::new();
        for i in 0..(50 + rng.below(300)) {
            let links: Vec<_> = (0..rng.below(3))
                .filter(|_| !all.is_empty())
                .map(|_| all[rng.below(all.len() as u64) as usize].key())
                .collect();
            let k = &keys[rng.below(4) as usize];
            let n = Node::signed(links, format!("{seed}/{i}").into_bytes(), k, &l).unwrap();
            let target = rng.below(10);
            // Links first: a node goes where all its links are.
            let in_a = n.links().iter().all(|h| a.has(h).unwrap());
            let in_b = n.links().iter().all(|h| b.has(h).unwrap());
            if target < 6 && in_a && in_b {
                a.insert(vec![n.clone()]).unwrap();
                b.insert(vec![n.clone()]).unwrap();
            } else if target < 8 && in_a {
                a.insert(vec![n.clone()]).unwrap();
            } else if in_b {
                b.insert(vec![n.clone()]).unwrap();
            } else {
                continue;
            }
            all.push(n);
        }
        let mut union = a.hashes();
        union.extend(b.hashes());
        let o = SessionOptions {
            ids_threshold: 1 + rng.below(20) as usize,
            ..SessionOptions::default()
        };
        let mut sa = Session::new(a, o.clone()).unwrap();
        let mut sb = Session::new(b, o).unwrap();
        let out = pump(&mut sa, &mut sb, Some(&mut rng), None);
        out.a.unwrap();
        out.b.unwrap();
        assert!(sa.is_complete() && sb.is_complete(), "seed {seed}");
        assert_eq!(sa.store().hashes(), union, "seed {seed}");
        assert_eq!(sb.store().hashes(), union, "seed {seed}");
    }
}

fn signed_log(seed: u8) -> Log {
    Log::memory(
        LogOptions::default()
            .signer(Keypair::from_seed([seed; 32]))
            .verifier(Ed25519Verifier::strict()),
    )
    .unwrap()
}

/// Builds two logs sharing `n` nodes, then `da` and `db` nodes appended on each alone.
fn diverged(n: usize, da: usize, db: usize) -> (Log, Log) {
    let a = signed_log(1);
    let b = signed_log(2);
    let k = Keypair::from_seed([1; 32]);
    let common = chain(&k, n, None, 0);
    for c in common.chunks(4096) {
        a.insert(c.to_vec()).unwrap();
        b.insert(c.to_vec()).unwrap();
    }
    for i in 0..da {
        a.append(format!("a{i:030}").into_bytes()).unwrap();
    }
    for i in 0..db {
        b.append(format!("b{i:030}").into_bytes()).unwrap();
    }
    (a, b)
}

fn sessions(a: &Log, b: &Log) -> (Session<LogStore>, Session<LogStore>) {
    (
        Session::new(LogStore::open(a).unwrap(), SessionOptions::default()).unwrap(),
        Session::new(LogStore::open(b).unwrap(), SessionOptions::default()).unwrap(),
    )
}

#[test]
fn already_equal_resync_is_one_round_trip_and_under_64_bytes_with_many_writers() {
    let a = signed_log(1);
    // 100 writers, each its own head.
    let writers: Vec<Keypair> = (0..100u8).map(|i| Keypair::from_seed([i; 32])).collect();
    let root = a.append(b"root".to_vec()).unwrap().node;
    let l = Limits::default();
    let heads: Vec<Node> = writers
        .iter()
        .map(|w| Node::signed([root.key()], vec![7; 32], w, &l).unwrap())
        .collect();
    a.insert(heads).unwrap();
    let b = signed_log(2);
    b.insert(
        a.changes(Default::default())
            .map(|e| e.unwrap().node)
            .collect(),
    )
    .unwrap();
    assert_eq!(a.heads().unwrap().len(), 100);
    let (mut sa, mut sb) = sessions(&a, &b);
    let out = pump(&mut sa, &mut sb, None, None);
    out.a.unwrap();
    out.b.unwrap();
    for s in [sa.stats(), sb.stats()] {
        assert_eq!(s.round_trips, 1);
        assert!(s.bytes_sent <= 64, "{} bytes", s.bytes_sent);
        eprintln!("equal re-sync: {s:?}");
    }
}

fn measure_divergence(n: usize) {
    let (a, b) = diverged(n, 10, 10);
    let (mut sa, mut sb) = sessions(&a, &b);
    let out = pump(&mut sa, &mut sb, None, None);
    out.a.unwrap();
    out.b.unwrap();
    let (x, y) = (sa.stats(), sb.stats());
    assert_eq!(x.nodes_sent, 10);
    assert_eq!(y.nodes_sent, 10);
    assert_eq!(a.len(), (n + 20) as u64);
    assert_eq!(b.len(), (n + 20) as u64);
    let overhead = x.bytes_sent + y.bytes_sent - x.node_bytes_sent - y.node_bytes_sent;
    eprintln!("+10/+10 on {n}: overhead {overhead} B, a {x:?}, b {y:?}");
    assert!(x.round_trips <= 3 && y.round_trips <= 3);
    assert!(overhead <= 1024, "{overhead} bytes beyond the nodes");
}

#[test]
fn plus_ten_plus_ten_on_20k_nodes() {
    measure_divergence(20_000);
}

#[test]
fn log_full_clone_and_resync_over_the_driver() {
    let (a, _) = diverged(3000, 0, 0);
    let b = signed_log(9);
    let (mut ia, mut ib) = duplex(64 << 10);
    let (ra, rb) = future::block_on(future::zip(
        sync_log(&a, &mut ia, SessionOptions::default(), future::pending()),
        sync_log(&b, &mut ib, SessionOptions::default(), future::pending()),
    ));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(b.len(), 3000);
    assert_eq!(ra.nodes_sent, 3000);
    assert_eq!(rb.nodes_received, 3000);
    assert_eq!(ra.bytes_sent, rb.bytes_received);
    let per_node = ra.bytes_sent as f64 / 3000.0;
    eprintln!("clone: {} | {per_node:.1} B/node", ra.to_json());
    assert!(per_node <= 150.0);
    // Re-sync when equal.
    let (mut ia, mut ib) = duplex(64 << 10);
    let (ra, rb) = future::block_on(future::zip(
        sync_log(&a, &mut ia, SessionOptions::default(), future::pending()),
        sync_log(&b, &mut ib, SessionOptions::default(), future::pending()),
    ));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!((ra.round_trips, rb.round_trips), (1, 1));
    assert!(ra.bytes_sent <= 64 && rb.bytes_sent <= 64);
}

#[test]
fn live_forwards_new_nodes_both_ways() {
    let (a, b) = diverged(100, 3, 4);
    let (mut ia, mut ib) = duplex(64 << 10);
    let live = SessionOptions {
        live: true,
        ..SessionOptions::default()
    };
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let (a2, b2) = (a.clone(), b.clone());
    let writer = std::thread::spawn(move || {
        // Wait for the initial sync, then write on both sides.
        while a2.len() < 107 || b2.len() < 107 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        for i in 0..20 {
            a2.append(format!("live a {i}").into_bytes()).unwrap();
            b2.append(format!("live b {i}").into_bytes()).unwrap();
        }
        while a2.len() < 147 || b2.len() < 147 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        stop_tx.send(()).unwrap();
    });
    let stop = async move {
        loop {
            if stop_rx.try_recv().is_ok() {
                return;
            }
            futures_lite::future::yield_now().await;
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    };
    let (ra, rb) = future::block_on(future::zip(
        sync_log(&a, &mut ia, live.clone(), stop),
        sync_log(&b, &mut ib, live, future::pending()),
    ));
    writer.join().unwrap();
    ra.unwrap();
    rb.unwrap();
    assert_eq!(a.len(), 147);
    assert_eq!(b.len(), 147);
    let set = |l: &Log| -> std::collections::BTreeSet<_> {
        l.changes(Default::default())
            .map(|e| e.unwrap().node.key())
            .collect()
    };
    assert_eq!(set(&a), set(&b));
}

#[test]
fn wide_divergence_converges_with_multi_message_turns() {
    use cairn_sync::SyncStore;
    let k = Keypair::from_seed([3; 32]);
    let l = Limits::default();
    let base = chain(&k, 4000, None, 0);
    let mut a = mem_with(&base);
    let mut b = mem_with(&base);
    let mut rng = Rng(99);
    for (side, store) in [(1u8, &mut a), (2u8, &mut b)] {
        for i in 0..1500u32 {
            let link = base[rng.below(base.len() as u64) as usize].key();
            let n = Node::signed([link], format!("{side}/{i}").into_bytes(), &k, &l).unwrap();
            store.insert(vec![n]).unwrap();
        }
    }
    let mut union = a.hashes();
    union.extend(b.hashes());
    let o = SessionOptions {
        ids_threshold: 1,
        ..SessionOptions::default()
    };
    let mut sa = Session::new(a, o.clone()).unwrap();
    let mut sb = Session::new(b, o).unwrap();
    let out = pump(&mut sa, &mut sb, Some(&mut rng), None);
    out.a.unwrap();
    out.b.unwrap();
    assert!(sa.is_complete() && sb.is_complete());
    assert_eq!(sa.store().hashes(), union);
    assert_eq!(sb.store().hashes(), union);
    let (x, y) = (sa.stats(), sb.stats());
    eprintln!("wide divergence: {x:?} {y:?}");
    assert_eq!(x.nodes_sent + y.nodes_sent, 3000);
}

#[test]
fn concurrent_sessions_on_one_log_share_its_index() {
    use cairn_sync::SyncStore;
    let (hub, _) = diverged(500, 0, 0);
    let peers: Vec<Log> = (0..6u8)
        .map(|i| {
            let p = signed_log(20 + i);
            p.insert(
                hub.changes(Default::default())
                    .map(|e| e.unwrap().node)
                    .collect(),
            )
            .unwrap();
            for j in 0..20 {
                p.append(format!("peer {i} {j}").into_bytes()).unwrap();
            }
            p
        })
        .collect();
    for _round in 0..2 {
        let threads: Vec<_> = peers
            .iter()
            .map(|p| {
                let (hub, p) = (hub.clone(), p.clone());
                std::thread::spawn(move || {
                    let (mut x, mut y) = duplex(16 << 10);
                    let (a, b) = future::block_on(future::zip(
                        sync_log(&hub, &mut x, SessionOptions::default(), future::pending()),
                        sync_log(&p, &mut y, SessionOptions::default(), future::pending()),
                    ));
                    a.unwrap();
                    b.unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
    assert_eq!(hub.len(), 500 + 6 * 20);
    // The shared index was applied exactly once per node: it matches a model of the log.
    let mut model = MemStore::new();
    model
        .insert(
            hub.changes(Default::default())
                .map(|e| e.unwrap().node)
                .collect(),
        )
        .unwrap();
    let mut store = LogStore::open(&hub).unwrap();
    assert_eq!(store.summary().unwrap(), model.summary().unwrap());
    for p in &peers {
        assert_eq!(
            LogStore::open(p).unwrap().summary().unwrap(),
            model.summary().unwrap()
        );
    }
}

#[test]
fn handshake_carries_metadata_mode_and_live() {
    use cairn_sync::Event;
    let mut a = Session::new(
        MemStore::new(),
        SessionOptions {
            mode: Mode::Push,
            live: true,
            metadata: b"wiki:main".to_vec(),
            ..SessionOptions::default()
        },
    )
    .unwrap();
    let mut b = Session::new(
        MemStore::new(),
        SessionOptions {
            mode: Mode::Pull,
            live: false,
            ..SessionOptions::default()
        },
    )
    .unwrap();
    // Exchange by hand (the pump helper consumes events).
    let ab = a.poll_transmit().unwrap();
    let ba = b.poll_transmit().unwrap();
    a.handle_input(&ba).unwrap();
    b.handle_input(&ab).unwrap();
    let mut seen = None;
    while let Some(ev) = b.poll_event() {
        if let Event::Handshake {
            mode,
            live,
            metadata,
        } = ev
        {
            seen = Some((mode, live, metadata));
        }
    }
    // Live only when both ask; both empty: complete at once.
    assert_eq!(seen, Some((Mode::Push, false, b"wiki:main".to_vec())));
    assert!(a.is_complete() && b.is_complete());
}

#[test]
fn logs_push_and_pull_over_the_driver() {
    for (ma, mb) in [(Mode::Push, Mode::Pull), (Mode::Pull, Mode::Push)] {
        let (a, b) = diverged(300, 4, 6);
        let (mut ia, mut ib) = duplex(8 << 10);
        let (ra, rb) = future::block_on(future::zip(
            sync_log(&a, &mut ia, opts(ma), future::pending()),
            sync_log(&b, &mut ib, opts(mb), future::pending()),
        ));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        if ma == Mode::Push {
            assert_eq!((a.len(), b.len()), (304, 310));
            assert_eq!((ra.nodes_sent, rb.nodes_sent), (4, 0));
        } else {
            assert_eq!((a.len(), b.len()), (310, 306));
            assert_eq!((ra.nodes_sent, rb.nodes_sent), (0, 6));
        }
    }
}

/// A stream whose close does nothing (like a process's stdout under some runtimes): the
/// CLOSE exchange, not an end of stream, must end the session on both sides.
struct NoHalfClose(cairn_sync::DuplexStream);

impl futures_io::AsyncRead for NoHalfClose {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl futures_io::AsyncWrite for NoHalfClose {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_close(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[test]
fn sessions_end_without_a_half_close() {
    let (a, b) = diverged(200, 5, 7);
    let (x, y) = duplex(4 << 10);
    let (mut x, mut y) = (NoHalfClose(x), NoHalfClose(y));
    let (ra, rb) = future::block_on(future::zip(
        sync_log(&a, &mut x, SessionOptions::default(), future::pending()),
        sync_log(&b, &mut y, SessionOptions::default(), future::pending()),
    ));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!((a.len(), b.len()), (212, 212));
    assert_eq!((ra.nodes_sent, rb.nodes_sent), (5, 7));
    // Already equal: still one round trip, and the CLOSE keeps it under 64 bytes.
    let (x, y) = duplex(4 << 10);
    let (mut x, mut y) = (NoHalfClose(x), NoHalfClose(y));
    let (ra, rb) = future::block_on(future::zip(
        sync_log(&a, &mut x, SessionOptions::default(), future::pending()),
        sync_log(&b, &mut y, SessionOptions::default(), future::pending()),
    ));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!((ra.round_trips, rb.round_trips), (1, 1));
    assert!(ra.bytes_sent <= 64 && rb.bytes_sent <= 64, "{ra:?}");
    eprintln!("equal re-sync over the driver: {}", ra.to_json());
}

/// A receiver that holds part of the lowest heights and none of the rest: the upper ranges
/// are resolved in the first turns, the lowest one only after several. The sender must still
/// send nodes after the nodes they link (key order), or the receiver has to buffer whole
/// upper heights waiting for their links — more than its bounded buffer holds (a new browser
/// receiving a large wiki failed so, "more than 65536 received nodes are waiting").
#[test]
fn nodes_arrive_after_their_links_when_low_ranges_resolve_last() {
    let mut all = Vec::new();
    for c in 0..400u32 {
        let mut seed = [9u8; 32];
        seed[..4].copy_from_slice(&c.to_le_bytes());
        all.extend(chain(&Keypair::from_seed(seed), 10, None, c as u8));
    }
    // Half of the roots (every chain's first node), chosen at random.
    let mut rng = Rng(17);
    let held: Vec<Node> = all
        .iter()
        .step_by(10)
        .filter(|_| rng.chance(50))
        .cloned()
        .collect();
    for (ma, mb) in [(Mode::Sync, Mode::Sync), (Mode::Push, Mode::Pull)] {
        let small = SessionOptions {
            max_pending: 100,
            ..opts(mb)
        };
        let mut a = Session::new(mem_with(&all), opts(ma)).unwrap();
        let mut b = Session::new(mem_with(&held), small).unwrap();
        let out = pump(&mut a, &mut b, None, None);
        out.a.unwrap();
        out.b.unwrap();
        assert!(a.is_complete() && b.is_complete());
        assert!(
            a.stats().round_trips > 2,
            "the lowest range took several turns"
        );
        assert_eq!(b.into_store().len(), 4000);
    }
}

/// `recv_window`: the receiver's larger window lets the sender stream that much before any
/// credit comes back (the browser worker receives while it commits); `ready_bytes`: received
/// nodes reach the store in batches of that many bytes. The clone completes either way.
#[test]
fn a_larger_receive_window_lets_the_sender_run_ahead() {
    let key = Keypair::from_seed([7; 32]);
    let l = Limits::default();
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..2500u32 {
        let mut value = vec![(i % 251) as u8; 2048];
        value[..4].copy_from_slice(&i.to_le_bytes());
        nodes.push(Node::signed(nodes.last().map(|n| n.key()), value, &key, &l).unwrap());
    }
    let mut ahead = Vec::new();
    for window in [1u64 << 20, 4 << 20] {
        let mut sa = Session::new(mem_with(&nodes), opts(Mode::Sync)).unwrap();
        let recv = SessionOptions {
            recv_window: window,
            ready_bytes: 2 << 20,
            ..opts(Mode::Sync)
        };
        let mut sb = Session::new(mem_with(&[]), recv).unwrap();
        // Both ways until the sender streams nodes; then nothing comes back to it (no
        // credit): what it sends meanwhile is what the window lets it run ahead.
        let mut credit_back = true;
        let mut held = Vec::new();
        for _ in 0..10_000 {
            let mut quiet = true;
            while let Some(x) = sa.poll_transmit() {
                sb.handle_input(&x).unwrap();
                quiet = false;
            }
            if sa.stats().nodes_sent > 0 {
                credit_back = false;
            }
            while let Some(x) = sb.poll_transmit() {
                if credit_back {
                    sa.handle_input(&x).unwrap();
                    quiet = false;
                } else {
                    held.extend_from_slice(&x);
                }
            }
            if quiet {
                break;
            }
        }
        assert!(
            sa.blocked_on_credit(),
            "window {window}: the sender waits for credit"
        );
        ahead.push(sa.stats().node_bytes_sent);
        // Then everything: the clone completes.
        sa.handle_input(&held).unwrap();
        let out = common::pump(&mut sa, &mut sb, None, None);
        out.a.unwrap();
        out.b.unwrap();
        assert_eq!(sb.stats().nodes_stored, 2500);
    }
    let frame = (1u64 << 20) + 64 * 1024;
    assert!(ahead[0] <= (1 << 20) + frame, "{ahead:?}");
    assert!(
        ahead[1] >= 4 << 20 && ahead[1] <= (4 << 20) + frame,
        "{ahead:?}"
    );
}
