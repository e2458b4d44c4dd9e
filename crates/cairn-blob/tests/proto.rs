//! The blob protocol on a session's extension channel, between two in-process peers over
//! cairn-sync's in-memory duplex pipe, with the log protocol running beside it.

use std::sync::{Arc, Mutex};

use cairn_blob::proto::{BlobPeer, Message, Outcome, SWARM_SLICE_GROUPS, Swarm};
use cairn_blob::{BlobHash, BlobStore, tree};
use cairn_core::{Limits, Node};
use cairn_log::{Log, LogOptions};
use cairn_sync::{MemStore, NoFeed, Session, SessionOptions, duplex, run};
use proptest::prelude::*;

fn blob_store() -> (tempfile::TempDir, BlobStore) {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("log.redb"), LogOptions::default()).unwrap();
    let s = BlobStore::open(&log, Some(&dir.path().join("blobs"))).unwrap();
    (dir, s)
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2] ^ seed)
        .collect()
}

fn mem_log(n: usize, tag: &str) -> MemStore {
    let mut s = MemStore::new();
    let mut prev = None;
    for i in 0..n {
        let node =
            Node::unsigned(prev, format!("{tag} {i}").into_bytes(), &Limits::default()).unwrap();
        prev = Some(node.key());
        s.add(node).unwrap();
    }
    s
}

type Peer = Arc<Mutex<BlobPeer>>;
type Driven = Result<cairn_sync::SyncSummary, cairn_sync::DriverError>;
type Ran = (Driven, Driven, Peer, Option<Peer>, MemStore, MemStore);

/// Runs a one-shot sync between `a` (with `pa`) and `b` (with `pb`, or no extension).
fn session(a: MemStore, pa: BlobPeer, b: MemStore, pb: Option<BlobPeer>) -> Ran {
    let (mut x, mut y) = duplex(256 << 10);
    let (sa, ea) = pa.shared();
    let mut s1 = Session::with_extension(a, SessionOptions::default(), ea).unwrap();
    let (sb, mut s2) = match pb {
        Some(p) => {
            let (sb, eb) = p.shared();
            (
                Some(sb),
                Session::with_extension(b, SessionOptions::default(), eb).unwrap(),
            )
        }
        None => (None, Session::new(b, SessionOptions::default()).unwrap()),
    };
    let (r1, r2) = futures_lite::future::block_on(futures_lite::future::zip(
        run(&mut s1, &mut x, NoFeed, std::future::pending()),
        run(&mut s2, &mut y, NoFeed, std::future::pending()),
    ));
    (r1, r2, sa, sb, s1.into_store(), s2.into_store())
}

#[test]
fn a_blob_and_a_log_sync_on_one_connection() {
    let (_d1, server) = blob_store();
    let (_d2, client) = blob_store();
    let big = data(3 << 20, 7);
    let h = server.add_bytes(&big).unwrap();
    let small = server.add_bytes(b"a small one").unwrap();
    let mut pc = BlobPeer::new(client.clone(), false);
    pc.fetch(h);
    pc.fetch(small);
    pc.fetch(BlobHash::of(b"nobody has this"));
    let (r1, r2, pc, _, a, b) = session(
        mem_log(500, "client"),
        pc,
        mem_log(300, "server"),
        Some(BlobPeer::new(server.clone(), true)),
    );
    r1.unwrap();
    r2.unwrap();
    assert_eq!(a.hashes(), b.hashes(), "the log sync completed too");
    assert_eq!(a.hashes().len(), 800);
    let outcomes = pc.lock().unwrap().outcomes().to_vec();
    assert_eq!(
        outcomes,
        vec![
            (
                h,
                Outcome::Stored {
                    size: big.len() as u64,
                    received: big.len() as u64
                }
            ),
            (
                small,
                Outcome::Stored {
                    size: 11,
                    received: 11
                }
            ),
            (BlobHash::of(b"nobody has this"), Outcome::NotFound),
        ]
    );
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut client.reader(&h).unwrap().unwrap(), &mut back).unwrap();
    assert_eq!(back, big);
}

#[test]
fn a_peer_sending_another_blob_is_dropped() {
    let (d1, server) = blob_store();
    let (_d2, client) = blob_store();
    let a = data(1 << 20, 1);
    let b = data(1 << 20, 2);
    let ha = BlobHash::of(&a);
    let hb = server.add_bytes(&b).unwrap();
    // The server claims to have `a` but holds `b`'s bytes and outboard under its name.
    let dir = d1.path().join("blobs");
    std::fs::rename(
        dir.join(format!("{hb}.data")),
        dir.join(format!("{ha}.data")),
    )
    .unwrap();
    std::fs::rename(
        dir.join(format!("{hb}.obao")),
        dir.join(format!("{ha}.obao")),
    )
    .unwrap();
    let mut pc = BlobPeer::new(client.clone(), false);
    pc.fetch(ha);
    let (r1, r2, pc, _, _, _) = session(
        mem_log(10, "c"),
        pc,
        mem_log(10, "s"),
        Some(BlobPeer::new(server, true)),
    );
    // The server's verifying encoder refuses to send the mismatching bytes: it fails, and
    // the client is told; nothing is stored.
    assert!(r1.is_err() || r2.is_err());
    let outcomes = pc.lock().unwrap().outcomes().to_vec();
    assert!(matches!(outcomes[0].1, Outcome::Failed(_)), "{outcomes:?}");
    assert!(!client.has(&ha).unwrap());
}

/// A peer that answers a request with another blob's (self-consistent) response: the
/// client's verifier fails on the first item, the session fails, nothing is stored.
#[test]
fn a_response_of_another_blob_fails_the_requester() {
    use cairn_blob::tree::{self, ResponseEncoder};
    let (_d1, server) = blob_store();
    let (_d2, client) = blob_store();
    let a = data(1 << 20, 1);
    let b = data(1 << 20, 2);
    let ha = BlobHash::of(&a);
    let hb = server.add_bytes(&b).unwrap();
    let mut pc = BlobPeer::new(client.clone(), false);
    pc.fetch(ha);
    let (pc, mut ext) = pc.shared();
    ext.on_open(true);
    let get = Message::decode(&ext.poll_message().unwrap().unwrap()).unwrap();
    let Message::Get { id, ranges, .. } = get else {
        panic!("{get:?}")
    };
    let (size, src) = server.source(&hb).unwrap().unwrap();
    let mut enc = ResponseEncoder::new(&hb, size, tree::chunk_ranges(&ranges, size));
    let mut resp = Vec::new();
    enc.fill(&src, &mut resp, usize::MAX).unwrap();
    let mut m = Vec::new();
    Message::Have { id, size }.encode(&mut m);
    ext.on_message(&m).unwrap();
    let mut m = Vec::new();
    Message::Data {
        id,
        bytes: resp[..60_000].to_vec(),
    }
    .encode(&mut m);
    assert!(ext.on_message(&m).unwrap_err().contains("does not verify"));
    assert!(matches!(
        pc.lock().unwrap().outcomes()[0].1,
        Outcome::Failed(_)
    ));
    assert!(!client.has(&ha).unwrap());
    assert!(!ext.busy());
}

#[test]
fn a_peer_without_the_blob_protocol() {
    let (_d2, client) = blob_store();
    let mut pc = BlobPeer::new(client, false);
    pc.fetch(BlobHash::of(b"x"));
    let (r1, r2, pc, _, a, b) = session(mem_log(20, "c"), pc, mem_log(5, "s"), None);
    r1.unwrap();
    r2.unwrap();
    assert_eq!(a.hashes(), b.hashes());
    assert_eq!(pc.lock().unwrap().outcomes()[0].1, Outcome::Unsupported);
}

/// Runs one-shot sessions between each client peer `clients[i]` and the serving
/// extension `servers[i]`, all at once on this thread; returns whether each client's
/// session succeeded.
fn sessions_ext(clients: Vec<BlobPeer>, servers: Vec<Box<dyn cairn_sync::Extension>>) -> Vec<bool> {
    type Run = std::pin::Pin<Box<dyn std::future::Future<Output = bool>>>;
    let mut runs: Vec<Option<Run>> = Vec::new();
    for (c, es) in clients.into_iter().zip(servers) {
        runs.push(Some(Box::pin(async move {
            let (mut x, mut y) = duplex(256 << 10);
            let (_, ec) = c.shared();
            let mut s1 =
                Session::with_extension(mem_log(5, "c"), SessionOptions::default(), ec).unwrap();
            let mut s2 =
                Session::with_extension(mem_log(5, "s"), SessionOptions::default(), es).unwrap();
            let (r1, _) = futures_lite::future::zip(
                run(&mut s1, &mut x, NoFeed, std::future::pending()),
                run(&mut s2, &mut y, NoFeed, std::future::pending()),
            )
            .await;
            r1.is_ok()
        })));
    }
    let mut out = vec![false; runs.len()];
    futures_lite::future::block_on(std::future::poll_fn(|cx| {
        let mut all = true;
        for (i, slot) in runs.iter_mut().enumerate() {
            if let Some(fut) = slot {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(ok) => {
                        out[i] = ok;
                        *slot = None;
                    }
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    }));
    out
}

/// Two peers that both have a blob: a swarm of two connections fetches it, each peer
/// sending part of it, and the blob is stored once, whole.
#[test]
fn a_swarm_splits_a_blob_between_two_peers() {
    let (_d1, s1) = blob_store();
    let (_d2, s2) = blob_store();
    let (_d3, client) = blob_store();
    let big = data(12 << 20, 3);
    let h = s1.add_bytes(&big).unwrap();
    assert_eq!(s2.add_bytes(&big).unwrap(), h);
    let swarm = Swarm::new(client.clone(), h);
    let mut c1 = BlobPeer::new(client.clone(), false);
    let mut c2 = BlobPeer::new(client.clone(), false);
    c1.fetch_in(&swarm);
    c2.fetch_in(&swarm);
    let (p1, p2) = (BlobPeer::new(s1, true), BlobPeer::new(s2, true));
    let (p1, e1) = p1.shared();
    let (p2, e2) = p2.shared();
    let ok = sessions_ext(vec![c1, c2], vec![e1, e2]);
    assert_eq!(ok, vec![true, true]);
    assert!(
        matches!(swarm.outcome(), Some(Outcome::Stored { size, .. }) if size == big.len() as u64)
    );
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut client.reader(&h).unwrap().unwrap(), &mut back).unwrap();
    assert_eq!(back, big);
    let (b1, b2) = (
        p1.lock().unwrap().bytes_served,
        p2.lock().unwrap().bytes_served,
    );
    let slice = SWARM_SLICE_GROUPS * tree::GROUP_BYTES;
    assert!(
        b1 >= slice && b2 >= slice,
        "both peers sent a part: {b1} and {b2}"
    );
    // Each group is asked of one peer only until none is left unasked (the end game
    // may ask for the last slices twice).
    assert!(b1 + b2 < big.len() as u64 + 3 * slice, "{b1} + {b2}");
}

/// A swarm of two connections where one peer claims the blob and holds another one: that
/// peer is dropped, and the other delivers the whole blob.
#[test]
fn a_swarm_drops_a_lying_peer_and_the_other_completes() {
    let (d1, liar) = blob_store();
    let (_d2, good) = blob_store();
    let (_d3, client) = blob_store();
    let a = data(10 << 20, 5);
    let b = data(10 << 20, 6);
    let ha = good.add_bytes(&a).unwrap();
    let hb = liar.add_bytes(&b).unwrap();
    let dir = d1.path().join("blobs");
    for ext in ["data", "obao"] {
        std::fs::rename(
            dir.join(format!("{hb}.{ext}")),
            dir.join(format!("{ha}.{ext}")),
        )
        .unwrap();
    }
    let swarm = Swarm::new(client.clone(), ha);
    let mut c1 = BlobPeer::new(client.clone(), false);
    let mut c2 = BlobPeer::new(client.clone(), false);
    c1.fetch_in(&swarm);
    c2.fetch_in(&swarm);
    let (_, e1) = BlobPeer::new(liar, true).shared();
    let (_, e2) = BlobPeer::new(good, true).shared();
    let ok = sessions_ext(vec![c1, c2], vec![e1, e2]);
    assert_eq!(
        ok,
        vec![false, true],
        "the liar's session failed, the other did not"
    );
    assert!(matches!(swarm.outcome(), Some(Outcome::Stored { .. })));
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut client.reader(&ha).unwrap().unwrap(), &mut back).unwrap();
    assert_eq!(back, a);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn decoding_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(m) = Message::decode(&bytes) {
            let mut again = Vec::new();
            m.encode(&mut again);
            prop_assert_eq!(Message::decode(&again), Ok(m));
        }
    }

    #[test]
    fn messages_round_trip(id in any::<u64>(), size in any::<u64>(), starts in proptest::collection::vec((0u64..1<<40, 1u64..1<<20), 0..10), bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
        let ranges: Vec<_> = starts.iter().map(|&(s, l)| s..s + l).collect();
        for m in [
            Message::Get { id, hash: BlobHash([7; 32]), ranges },
            Message::Have { id, size },
            Message::NotHave { id },
            Message::Data { id, bytes },
            Message::End { id },
        ] {
            let mut out = Vec::new();
            m.encode(&mut out);
            prop_assert_eq!(Message::decode(&out), Ok(m));
        }
    }
}
