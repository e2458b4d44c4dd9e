//! Hostile and broken peers: each ends in a typed error, sent to the peer when it is ours;
//! the store is untouched (nothing unverified is stored) and memory stays bounded.

mod common;

use cairn_core::{Draft, Ed25519Verifier, Hash, Keypair, Limits, Node, Signature, varint};
use cairn_log::{Log, LogOptions};
use cairn_sync::mux::{Mux, MuxEvent, encode_frame};
use cairn_sync::wire::{
    Hello, Item, ItemKind, Mode, NodeEncoder, PROTOCOL_VERSION, Synced, encode_ranges,
};
use cairn_sync::{
    Event, Key, LOG_CHANNEL, LogStore, Session, SessionOptions, SyncError, SyncStore, WireError,
};
use common::{Rng, chain};

fn strict_log() -> Log {
    Log::memory(
        LogOptions::default()
            .signer(Keypair::from_seed([1; 32]))
            .verifier(Ed25519Verifier::strict()),
    )
    .unwrap()
}

fn victim(log: &Log, opts: SessionOptions) -> Session<LogStore> {
    let mut s = Session::new(LogStore::open(log).unwrap(), opts).unwrap();
    while s.poll_transmit().is_some() {}
    s
}

fn data(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(0, LOG_CHANNEL, body, &mut out);
    out
}

fn hello(count: u64, fp: [u8; 32]) -> Vec<u8> {
    let mut body = Vec::new();
    Hello {
        version: PROTOCOL_VERSION,
        mode: Mode::Sync,
        live: false,
        keep_alive: false,
        extensions: false,
        metadata: Vec::new(),
        count,
        max_height: Some(count.saturating_sub(1)),
        fingerprint: fp,
    }
    .encode(&mut body);
    data(&body)
}

fn nodes_msg(enc: &mut NodeEncoder, nodes: &[Node]) -> Vec<u8> {
    let mut body = vec![3u8];
    varint::encode(nodes.len() as u64, &mut body);
    for n in nodes {
        enc.encode(n, &mut body);
    }
    data(&body)
}

/// DONE saying `sent` nodes were sent this round.
fn done_sent(sent: u8) -> Vec<u8> {
    data(&[4, sent])
}

fn done() -> Vec<u8> {
    done_sent(0)
}

/// The SYNCED a peer holding exactly `log`'s nodes sends.
fn synced_of(log: &Log) -> Vec<u8> {
    let sum = LogStore::open(log).unwrap().summary().unwrap();
    let mut body = Vec::new();
    Synced {
        changed: false,
        count: sum.agg.count,
        max_height: sum.max_height,
        fingerprint: sum.agg.digest(),
    }
    .encode(&mut body);
    data(&body)
}

/// Feeds `inputs` then an end of stream; returns the first error, checking that the session
/// sent it to the peer as an ERROR frame.
fn run(s: &mut Session<LogStore>, inputs: &[Vec<u8>]) -> SyncError {
    let mut result = Ok(());
    for i in inputs {
        result = s.handle_input(i);
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        result = s.handle_eof();
    }
    let err = result.expect_err("a hostile input must fail the session");
    let mut failed = None;
    while let Some(ev) = s.poll_event() {
        assert!(
            !matches!(ev, Event::Complete),
            "a failed session never completes"
        );
        if let Event::Failed(e) = ev {
            failed.get_or_insert(e);
        }
    }
    assert_eq!(failed.map(|e| e.code()), Some(err.code()));
    if !matches!(
        err,
        SyncError::Remote { .. } | SyncError::UnexpectedEof | SyncError::Truncated
    ) {
        // The peer hears about it.
        let mut peer = Mux::new(1 << 20);
        peer.open(LOG_CHANNEL);
        let mut saw = false;
        while let Some(b) = s.poll_transmit() {
            peer.handle_input(&b);
        }
        while let Ok(Some(ev)) = peer.poll_event() {
            if let MuxEvent::Error { code, .. } = ev {
                assert_eq!(code, err.code());
                saw = true;
            }
        }
        assert!(saw, "error frame sent for {err:?}");
    }
    err
}

#[test]
fn huge_length_prefixes_fail_before_allocating() {
    let log = strict_log();
    for len in [u64::from(u32::MAX) + 1, 1 << 30, 1 << 62, u64::MAX] {
        let mut s = victim(&log, SessionOptions::default());
        let mut bytes = Vec::new();
        varint::encode(len, &mut bytes);
        let e = run(&mut s, &[bytes]);
        assert!(
            matches!(e, SyncError::Wire(WireError::FrameTooLarge { .. })),
            "{e:?}"
        );
    }
    // An over-long varint is garbage too.
    let mut s = victim(&log, SessionOptions::default());
    let e = run(&mut s, &[vec![0xff; 11]]);
    assert!(matches!(e, SyncError::Wire(WireError::BadVarint)), "{e:?}");
    assert_eq!(log.len(), 0);
}

#[test]
fn garbage_never_succeeds() {
    let log = strict_log();
    log.append(b"mine".to_vec()).unwrap();
    let mut rng = Rng(7);
    for _ in 0..300 {
        let mut s = victim(&log, SessionOptions::default());
        let len = 1 + rng.below(3000) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = run(&mut s, &[bytes]);
    }
    // Garbage after a valid handshake, too.
    for _ in 0..300 {
        let mut s = victim(&log, SessionOptions::default());
        let len = 1 + rng.below(3000) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        bytes[0] = 0x40; // a plausible frame length
        let _ = run(&mut s, &[hello(3, [9; 32]), bytes]);
    }
    assert_eq!(log.len(), 1);
}

#[test]
fn truncated_streams_are_errors_not_successes() {
    let log = strict_log();
    let k = Keypair::from_seed([1; 32]);
    let nodes = chain(&k, 3, None, 0);
    let msg = nodes_msg(&mut NodeEncoder::default(), &nodes);
    // Mid-frame.
    let mut s = victim(&log, SessionOptions::default());
    let e = run(&mut s, &[hello(3, [1; 32]), msg[..msg.len() / 2].to_vec()]);
    assert!(matches!(e, SyncError::Truncated), "{e:?}");
    // Between frames, before DONE.
    let mut s = victim(&log, SessionOptions::default());
    let e = run(&mut s, &[hello(3, [1; 32]), msg.clone()]);
    assert!(matches!(e, SyncError::UnexpectedEof), "{e:?}");
    // Right after the handshake.
    let mut s = victim(&log, SessionOptions::default());
    let e = run(&mut s, &[hello(3, [1; 32])]);
    assert!(matches!(e, SyncError::UnexpectedEof), "{e:?}");
    // Nothing at all.
    let mut s = victim(&log, SessionOptions::default());
    let e = run(&mut s, &[]);
    assert!(matches!(e, SyncError::UnexpectedEof), "{e:?}");
    // The complete exchange works, and the nodes before it were verified and stored.
    let mut s = victim(&log, SessionOptions::default());
    s.handle_input(&hello(3, [1; 32])).unwrap();
    s.handle_input(&msg).unwrap();
    s.handle_input(&done_sent(3)).unwrap();
    while s.poll_transmit().is_some() {}
    // DONE both ways is not completion: the peer's SYNCED (its set now) is.
    assert!(!s.is_complete());
    s.handle_input(&synced_of(&log)).unwrap();
    while s.poll_transmit().is_some() {}
    assert!(s.is_complete());
    assert_eq!(log.len(), 3);
}

#[test]
fn unsigned_node_to_a_verifying_log() {
    let log = strict_log();
    let n = Node::unsigned([], b"sneaky".to_vec(), &Limits::default()).unwrap();
    let mut s = victim(&log, SessionOptions::default());
    let e = run(
        &mut s,
        &[
            hello(1, [1; 32]),
            nodes_msg(&mut NodeEncoder::default(), &[n]),
            done_sent(1),
        ],
    );
    assert!(
        matches!(e, SyncError::Verify(cairn_core::VerifyError::Unsigned(_))),
        "{e:?}"
    );
    assert_eq!(log.len(), 0);
}

#[test]
fn bad_signature_and_tampered_nodes() {
    let log = strict_log();
    let k = Keypair::from_seed([5; 32]);
    let l = Limits::default();
    let good = chain(&k, 10, None, 0);
    let forged = Draft::new([good[9].key()], Some(k.public()), b"forged".to_vec(), &l)
        .unwrap()
        .finish(Some(Signature([1; 64])))
        .unwrap();
    let mut batch = good.clone();
    batch.push(forged);
    let mut s = victim(&log, SessionOptions::default());
    let e = run(
        &mut s,
        &[
            hello(11, [1; 32]),
            nodes_msg(&mut NodeEncoder::default(), &batch),
            done_sent(11),
        ],
    );
    assert!(
        matches!(
            e,
            SyncError::Verify(cairn_core::VerifyError::BadSignature { .. })
        ),
        "{e:?}"
    );
    // One bad node spoils its whole insert batch: nothing unverified, nothing partial.
    assert_eq!(log.len(), 0);

    // A node whose bytes were changed on the way hashes differently: its signature fails.
    let mut msg = nodes_msg(&mut NodeEncoder::default(), &good[..1]);
    let at = msg.len() - 64 - 5; // inside the value
    msg[at] ^= 1;
    let mut s = victim(&log, SessionOptions::default());
    let e = run(&mut s, &[hello(1, [1; 32]), msg, done_sent(1)]);
    assert!(
        matches!(
            e,
            SyncError::Verify(cairn_core::VerifyError::BadSignature { .. })
        ),
        "{e:?}"
    );
    assert_eq!(log.len(), 0);
}

#[test]
fn announced_node_replaced_by_another_is_not_received() {
    let log = strict_log();
    let mine = log.append(b"mine".to_vec()).unwrap().node;
    let k = Keypair::from_seed([5; 32]);
    let announced = chain(&k, 1, None, 1).remove(0);
    let other = chain(&k, 1, None, 2).remove(0);
    let mut s = victim(&log, SessionOptions::default());
    // The peer leads (more nodes), lists `announced` as all it has, then sends `other`.
    let mut ranges = Vec::new();
    encode_ranges(
        Key::MIN,
        &[Item {
            upper: Key::END,
            kind: ItemKind::Ids(vec![announced.key()]),
        }],
        false,
        &mut ranges,
    );
    let e = run(
        &mut s,
        &[
            hello(2, [1; 32]),
            data(&ranges),
            nodes_msg(&mut NodeEncoder::default(), &[other]),
            done_sent(1),
        ],
    );
    match e {
        SyncError::NotReceived { count, example } => {
            assert_eq!((count, example), (1, announced.key()));
        }
        other => panic!("{other:?}"),
    }
    assert!(log.has(&mine.key()).unwrap());
}

#[test]
fn missing_links_are_an_error_and_store_nothing() {
    let log = strict_log();
    let k = Keypair::from_seed([5; 32]);
    let orphan = chain(&k, 5, Some(Hash([7; 32])), 0);
    let mut s = victim(&log, SessionOptions::default());
    let e = run(
        &mut s,
        &[
            hello(6, [1; 32]),
            nodes_msg(&mut NodeEncoder::default(), &orphan),
            done_sent(5),
        ],
    );
    match e {
        SyncError::MissingLinks { count, .. } => assert_eq!(count, 5),
        other => panic!("{other:?}"),
    }
    assert_eq!(log.len(), 0);
}

#[test]
fn floods_are_bounded() {
    let log = strict_log();
    let k = Keypair::from_seed([5; 32]);
    // Nodes that wait for links that never come.
    let orphans: Vec<Node> = (0..200u8)
        .map(|i| chain(&k, 1, Some(Hash([i; 32])), i).remove(0))
        .collect();
    let opts = SessionOptions {
        max_pending: 100,
        ..SessionOptions::default()
    };
    let mut s = victim(&log, opts);
    let e = run(
        &mut s,
        &[
            hello(200, [1; 32]),
            nodes_msg(&mut NodeEncoder::default(), &orphans),
        ],
    );
    assert!(
        matches!(e, SyncError::PendingOverflow { max: 100 }),
        "{e:?}"
    );
    assert_eq!(log.len(), 0);

    // Data past the flow-control window. A session grants credit back as it processes each
    // message, so a peer can overdraw only a receiver that has not processed yet: the
    // channel layer takes DATA up to the window plus one frame, and refuses the next.
    let mut rx = Mux::new(1 << 20);
    rx.open(LOG_CHANNEL);
    let frame = data(&vec![5u8; 512 << 10]);
    let mut accepted = 0;
    let e = loop {
        rx.handle_input(&frame);
        match rx.poll_event() {
            Ok(Some(MuxEvent::Data { .. })) => accepted += 1,
            Err(e) => break e,
            Ok(other) => panic!("{other:?}"),
        }
        assert!(accepted < 16, "no flow control");
    };
    assert!(matches!(e, SyncError::FlowControl(LOG_CHANNEL)), "{e:?}");
    // 1 MiB of window plus one frame's allowance (1 MiB here): four 512 KiB frames.
    assert_eq!(accepted, 4);
    // A session, which processes as it goes, takes the same flood of valid messages (here
    // keep-alives) without error: it grants credit back for what it processed.
    let mut s = victim(&log, SessionOptions::default());
    s.handle_input(&hello(200, [1; 32])).unwrap();
    for _ in 0..20_000 {
        s.handle_input(&data(&[5])).unwrap();
    }
    let granted = std::iter::from_fn(|| s.poll_transmit()).count();
    assert!(granted > 0, "credit granted back");

    // A peer that floods RANGES out of turn.
    let mut s = victim(&log, SessionOptions::default());
    let mut ranges = Vec::new();
    encode_ranges(
        Key::MIN,
        &[Item {
            upper: Key::END,
            kind: ItemKind::Skip,
        }],
        false,
        &mut ranges,
    );
    let e = run(&mut s, &[hello(0, [0; 32]), data(&ranges)]);
    assert!(matches!(e, SyncError::Unexpected(_)), "{e:?}");
    assert_eq!(log.len(), 0);
}

#[test]
fn protocol_violations_and_peer_errors() {
    let log = strict_log();
    // DONE before HELLO.
    let mut s = victim(&log, SessionOptions::default());
    let e = run(&mut s, &[done()]);
    assert!(matches!(e, SyncError::Unexpected("DONE")), "{e:?}");
    // A keep-alive before HELLO: no holding a connection open without a handshake.
    let mut s = victim(&log, SessionOptions::default());
    let e = run(&mut s, &[data(&[5])]);
    assert!(matches!(e, SyncError::Unexpected("PING")), "{e:?}");
    // After HELLO it is accepted, with nothing after it.
    let mut s = victim(&log, SessionOptions::default());
    let e = run(&mut s, &[hello(5, [3; 32]), data(&[5]), data(&[5, 0])]);
    assert!(
        matches!(e, SyncError::Wire(WireError::TrailingBytes(1))),
        "{e:?}"
    );
    // Wrong version.
    let mut s = victim(&log, SessionOptions::default());
    let mut h = hello(0, [0; 32]);
    h[4] = 99; // len, kind, channel, tag, version
    let e = run(&mut s, &[h]);
    assert!(matches!(e, SyncError::Version { theirs: 99, .. }), "{e:?}");
    // Data on a channel nobody opened.
    let mut s = victim(&log, SessionOptions::default());
    let mut f = Vec::new();
    encode_frame(0, 42, b"x", &mut f);
    let e = run(&mut s, &[f]);
    assert!(matches!(e, SyncError::UnknownChannel(42)), "{e:?}");
    // The peer's own error is reported, typed, and not echoed.
    let mut s = victim(&log, SessionOptions::default());
    let mut m = Mux::new(1 << 20);
    m.send_error(7, "bad signature on your side");
    let e = run(&mut s, &[m.poll_transmit().unwrap()]);
    match e {
        SyncError::Remote { code, message } => {
            assert_eq!(code, 7);
            assert!(message.contains("bad signature"));
        }
        other => panic!("{other:?}"),
    }
    assert!(s.poll_transmit().is_none());
}

#[test]
fn driver_reports_a_broken_or_hostile_peer() {
    use cairn_sync::{DriverError, duplex, sync_log};
    use futures_lite::{AsyncReadExt, AsyncWriteExt, future};
    let log = strict_log();
    log.append(b"mine".to_vec()).unwrap();
    // A peer that sends its handshake and hangs up before DONE.
    let (mut ours, mut theirs) = duplex(1 << 16);
    let peer = async move {
        theirs.write_all(&hello(5, [3; 32])).await.unwrap();
        theirs.close().await.unwrap();
        let mut sink = Vec::new();
        let _ = theirs.read_to_end(&mut sink).await;
        sink
    };
    let (r, _) = future::block_on(future::zip(
        sync_log(
            &log,
            &mut ours,
            SessionOptions::default(),
            future::pending(),
        ),
        peer,
    ));
    assert!(
        matches!(r, Err(DriverError::Sync(SyncError::UnexpectedEof))),
        "{r:?}"
    );
    // A peer that sends garbage hears why it was dropped.
    let (mut ours, mut theirs) = duplex(1 << 16);
    let peer = async move {
        theirs
            .write_all(&[0x05, 0x00, 0x01, 0x77, 0, 0])
            .await
            .unwrap();
        let mut got = Vec::new();
        let _ = theirs.read_to_end(&mut got).await;
        got
    };
    let (r, got) = future::block_on(future::zip(
        sync_log(
            &log,
            &mut ours,
            SessionOptions::default(),
            future::pending(),
        ),
        peer,
    ));
    let err = match r {
        Err(DriverError::Sync(e)) => e,
        other => panic!("{other:?}"),
    };
    let mut m = Mux::new(1 << 20);
    m.open(LOG_CHANNEL);
    m.handle_input(&got);
    let mut codes = Vec::new();
    while let Ok(Some(ev)) = m.poll_event() {
        if let MuxEvent::Error { code, .. } = ev {
            codes.push(code);
        }
    }
    assert_eq!(codes, vec![err.code()]);
    assert_eq!(log.len(), 1);
}

/// A test clock: each sleep ends after it has been polled `polls` times.
struct Ticks(u32);

struct Sleep(u32);

impl std::future::Future for Sleep {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 == 0 {
            return std::task::Poll::Ready(());
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

impl cairn_sync::Timer for Ticks {
    type Sleep = Sleep;
    fn sleep(&self, _: std::time::Duration) -> Sleep {
        Sleep(self.0)
    }
}

#[test]
fn a_silent_peer_times_out_and_hears_why() {
    use cairn_sync::{DriverError, LogFeed, duplex, run_with_timeout};
    use futures_lite::{AsyncReadExt, AsyncWriteExt, future};
    let log = strict_log();
    log.append(b"mine".to_vec()).unwrap();
    let (mut ours, mut theirs) = duplex(1 << 16);
    // It says hello, then stops mid-frame and never answers (but keeps the stream open).
    let peer = async move {
        theirs.write_all(&hello(5, [3; 32])).await.unwrap();
        theirs.write_all(&[0x40, 0x00]).await.unwrap();
        let mut got = Vec::new();
        let _ = theirs.read_to_end(&mut got).await;
        got
    };
    let mut session =
        Session::new(LogStore::open(&log).unwrap(), SessionOptions::default()).unwrap();
    let driver = run_with_timeout(
        &mut session,
        &mut ours,
        LogFeed::new(&log, 0),
        future::pending(),
        Ticks(50),
        std::time::Duration::from_secs(30),
    );
    let (r, got) = future::block_on(future::zip(driver, peer));
    match r {
        Err(DriverError::Sync(SyncError::Timeout { idle_ms })) => assert_eq!(idle_ms, 30_000),
        other => panic!("{other:?}"),
    }
    let mut m = Mux::new(1 << 20);
    m.open(LOG_CHANNEL);
    m.handle_input(&got);
    let mut codes = Vec::new();
    while let Ok(Some(ev)) = m.poll_event() {
        if let MuxEvent::Error { code, .. } = ev {
            codes.push(code);
        }
    }
    assert_eq!(codes, vec![15]);
    assert_eq!(log.len(), 1);
}

/// A peer that keeps reconciling (long turns of id lists, each making us queue a range to
/// stream) while granting no credit for the nodes cannot grow our send queue without bound.
#[test]
fn send_work_for_a_peer_that_takes_nothing_is_bounded() {
    use cairn_sync::MemStore;
    // 1.2 MB of our own nodes, more than the peer's initial credit.
    let mut store = MemStore::new();
    let mut prev = None;
    for i in 0..12u8 {
        let n = Node::unsigned(prev, vec![i; 100 << 10], &Limits::default()).unwrap();
        prev = Some(n.key());
        store.add(n).unwrap();
    }
    // Push: we only send (so nothing is awaited from the peer, which has its own bound).
    let opts = SessionOptions {
        mode: Mode::Push,
        ..SessionOptions::default()
    };
    let mut s = Session::new(store, opts).unwrap();
    while s.poll_transmit().is_some() {}
    let mut rng = Rng(5);
    let mut inputs = vec![hello(1 << 20, [0xff; 32])];
    let mut height = 0u64;
    // Each message: 32 id lists of 4096 random ids (≈ 4.2 MB on the wire).
    for m in 0..12 {
        let items: Vec<Item> = (0..32)
            .map(|_| {
                height += 1;
                Item {
                    upper: Key::at_height(height),
                    kind: ItemKind::Ids(
                        (0..4096)
                            .map(|_| {
                                let mut h = [0u8; 32];
                                for c in h.chunks_mut(8) {
                                    c.copy_from_slice(&rng.next().to_le_bytes());
                                }
                                Hash(h)
                            })
                            .collect(),
                    ),
                }
            })
            .collect();
        let start = if m == 0 {
            Key::MIN
        } else {
            Key::at_height(height - 32)
        };
        let mut body = Vec::new();
        encode_ranges(start, &items, true, &mut body);
        inputs.push(data(&body));
    }
    let mut err = None;
    for i in &inputs {
        if let Err(e) = s.handle_input(i) {
            err = Some(e);
            break;
        }
        // Our answers (and credit grants) go out; nothing of the peer's ever comes back.
        while s.poll_transmit().is_some() {}
    }
    match err {
        Some(SyncError::Backlog { bytes }) => {
            assert!(bytes > cairn_sync::MAX_JOB_BYTES as u64, "{bytes}")
        }
        other => panic!("{other:?}"),
    }
}
