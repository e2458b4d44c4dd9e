//! The fetch policy (`FetchPolicy`): per-blob and total size caps and the on-read mode,
//! between two file-backed stores syncing their logs over one in-memory session.

use std::sync::{Arc, Mutex};

use cairn_blob::proto::{BlobPeer, FetchMode, FetchPolicy, Outcome};
use cairn_blob::{BlobHash, BlobStore};
use cairn_log::{Log, LogOptions};
use cairn_sync::{NoFeed, Session, SessionOptions, duplex, run};

fn open(dir: &std::path::Path) -> (Log, BlobStore) {
    let log = Log::open(dir.join("log.redb"), LogOptions::default()).unwrap();
    let blobs = BlobStore::open(&log, Some(&dir.join("blobs"))).unwrap();
    (log, blobs)
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2] ^ seed)
        .collect()
}

/// A's log gets a node naming each blob (added to A's store) and `filler` other nodes.
fn name_blobs(la: &Log, sa: &BlobStore, blobs: &[Vec<u8>], filler: usize) -> Vec<BlobHash> {
    let hs: Vec<BlobHash> = blobs.iter().map(|b| sa.add_bytes(b).unwrap()).collect();
    for h in &hs {
        la.append(format!("![img](blob:{h})").into_bytes()).unwrap();
    }
    for i in 0..filler {
        la.append(format!("page {i}").into_bytes()).unwrap();
    }
    hs
}

/// One session between A (serving blobs) and B (running `pb`); both must end cleanly.
/// Returns A's peer (for the bytes it served) and B's (for its outcomes).
fn sync(la: &Log, sa: &BlobStore, lb: &Log, pb: BlobPeer) -> (Peer, Peer) {
    let (pa, xa) = BlobPeer::new(sa.clone(), true).shared();
    let (pb, xb) = pb.shared();
    let store = |l: &Log| cairn_sync::LogStore::open(l).unwrap();
    let mut a = Session::with_extension(store(la), SessionOptions::default(), xa).unwrap();
    let mut b = Session::with_extension(store(lb), SessionOptions::default(), xb).unwrap();
    let (mut x, mut y) = duplex(256 << 10);
    let (r1, r2) = futures_lite::future::block_on(futures_lite::future::zip(
        run(&mut a, &mut x, NoFeed, std::future::pending()),
        run(&mut b, &mut y, NoFeed, std::future::pending()),
    ));
    r1.expect("A's session ends cleanly");
    r2.expect("B's session ends cleanly");
    (pa, pb)
}

type Peer = Arc<Mutex<BlobPeer>>;

fn outcomes(p: &Arc<Mutex<BlobPeer>>) -> Vec<(BlobHash, Outcome)> {
    p.lock().unwrap().outcomes().to_vec()
}

fn policy(mode: FetchMode, max_blob: u64, max_total: u64) -> FetchPolicy {
    FetchPolicy {
        mode,
        max_blob,
        max_total,
    }
}

#[test]
fn a_blob_over_the_per_blob_cap_is_not_fetched_and_the_sync_completes() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ((la, sa), (lb, sb)) = (open(da.path()), open(db.path()));
    let big = data(4 << 20, 1);
    let small = data(100 << 10, 2);
    let hs = name_blobs(&la, &sa, &[big.clone(), small.clone()], 500);
    let pb = BlobPeer::new(sb.clone(), false)
        .with_policy(policy(FetchMode::Eager, 256 << 10, u64::MAX))
        .fetch_referenced(lb.len());
    let (pa, pb) = sync(&la, &sa, &lb, pb);
    assert_eq!(lb.len(), la.len(), "the log sync completed");
    let out = outcomes(&pb);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0].0, hs[0]);
    assert!(
        matches!(&out[0].1, Outcome::Failed(why) if why.contains("per blob")),
        "{out:?}"
    );
    assert_eq!(
        out[1],
        (
            hs[1],
            Outcome::Stored {
                size: small.len() as u64,
                received: small.len() as u64
            }
        )
    );
    // Nothing of the big blob is kept, not even a partial download.
    assert!(!sb.has(&hs[0]).unwrap());
    assert_eq!(sb.partial_size(&hs[0]), None);
    let list = sb.list().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    // B asked for no more than the cap's groups: A sent little of the 4 MiB in vain.
    let served = pa.lock().unwrap().bytes_served;
    assert!(
        served < (256 << 10) + (100 << 10) + (64 << 10),
        "A served {served} bytes"
    );
}

#[test]
fn the_total_cap_counts_what_the_store_holds() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ((la, sa), (lb, sb)) = (open(da.path()), open(db.path()));
    // B holds 300 KiB already; the cap is 700 KiB: one more 300 KiB blob fits, two do not.
    sb.add_bytes(&data(300 << 10, 9)).unwrap();
    let blobs = [data(300 << 10, 3), data(300 << 10, 4), data(20 << 10, 5)];
    let hs = name_blobs(&la, &sa, &blobs, 10);
    let pb = BlobPeer::new(sb.clone(), false)
        .with_policy(policy(FetchMode::Eager, 1 << 20, 700 << 10))
        .fetch_referenced(lb.len());
    let (_, pb) = sync(&la, &sa, &lb, pb);
    let out = outcomes(&pb);
    assert!(
        matches!(&out[1], (x, Outcome::Failed(why)) if *x == hs[1] && why.contains("total")),
        "{out:?}"
    );
    assert_eq!(lb.len(), la.len());
    assert!(sb.has(&hs[0]).unwrap(), "the first fits");
    assert!(!sb.has(&hs[1]).unwrap(), "the second would pass the total");
    assert_eq!(sb.partial_size(&hs[1]), None);
    assert!(
        sb.has(&hs[2]).unwrap(),
        "a small one still fits after the refusal"
    );
    let total = sb.total_size().unwrap();
    assert!(total <= 700 << 10, "{total}");
    assert_eq!(total, (300 << 10) * 2 + (20 << 10));
}

#[test]
fn on_read_fetches_nothing_until_asked() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ((la, sa), (lb, sb)) = (open(da.path()), open(db.path()));
    let img = data(200 << 10, 6);
    let hs = name_blobs(&la, &sa, std::slice::from_ref(&img), 50);
    let on_read = policy(FetchMode::OnRead, 64 << 20, 4 << 30);
    let pb = BlobPeer::new(sb.clone(), false)
        .with_policy(on_read)
        .fetch_referenced(lb.len());
    let (pa, _) = sync(&la, &sa, &lb, pb);
    assert_eq!(lb.len(), la.len(), "the log synced");
    assert!(!sb.has(&hs[0]).unwrap());
    assert!(sb.list().unwrap().is_empty());
    assert_eq!(pa.lock().unwrap().bytes_served, 0);
    // Asked for (as when first read): fetched on the next connection.
    let mut pb = BlobPeer::new(sb.clone(), false)
        .with_policy(on_read)
        .fetch_referenced(lb.len());
    pb.fetch(hs[0]);
    sync(&la, &sa, &lb, pb);
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut sb.reader(&hs[0]).unwrap().unwrap(), &mut back).unwrap();
    assert_eq!(back, img);
}

#[test]
fn an_explicit_fetch_over_the_cap_is_refused_too() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ((la, sa), (lb, sb)) = (open(da.path()), open(db.path()));
    let h = sa.add_bytes(&data(1 << 20, 8)).unwrap();
    let mut pb = BlobPeer::new(sb.clone(), false).with_policy(policy(
        FetchMode::OnRead,
        512 << 10,
        u64::MAX,
    ));
    pb.fetch(h);
    let (_, shared) = sync(&la, &sa, &lb, pb);
    let out = outcomes(&shared);
    assert!(
        matches!(out.as_slice(), [(x, Outcome::Failed(why))] if *x == h && why.contains("1048576 bytes")),
        "{out:?}"
    );
    assert!(sb.list().unwrap().is_empty());
}

#[test]
fn an_abandoned_response_is_dropped_unread_within_a_budget() {
    use cairn_blob::proto::Message;
    let d = tempfile::tempdir().unwrap();
    let (_, store) = open(d.path());
    let h = BlobHash::of(b"claimed huge");
    let mut pb = BlobPeer::new(store.clone(), false).with_policy(policy(
        FetchMode::OnRead,
        32 << 10,
        1 << 40,
    ));
    pb.fetch(h);
    let (peer, mut ext) = pb.shared();
    ext.on_open(true);
    let get = Message::decode(&ext.poll_message().unwrap().unwrap()).unwrap();
    let Message::Get { id, ranges, .. } = get else {
        panic!("{get:?}")
    };
    assert_eq!(
        ranges,
        vec![0..2],
        "no more than the cap's groups are asked for"
    );
    let msg = |m: Message| {
        let mut b = Vec::new();
        m.encode(&mut b);
        b
    };
    ext.on_message(&msg(Message::Have { id, size: 1 << 30 }))
        .unwrap();
    let out = outcomes(&peer);
    assert!(
        matches!(out.as_slice(), [(x, Outcome::Failed(why))] if *x == h && why.contains("per blob")),
        "{out:?}"
    );
    // What the peer sends for it is dropped, up to a budget; past it the session fails.
    let data = msg(Message::Data {
        id,
        bytes: vec![7; 64 << 10],
    });
    let mut sent = 0;
    let err = loop {
        match ext.on_message(&data) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 100, "no end to the bytes accepted");
    };
    assert!(sent >= 1 && err.contains("more blob bytes"), "{sent} {err}");
    assert!(store.list().unwrap().is_empty(), "nothing stored");
    assert_eq!(peer.lock().unwrap().outcomes().len(), 1);
}

#[test]
fn after_an_abandoned_response_ends_the_next_fetch_proceeds() {
    use cairn_blob::proto::Message;
    let d = tempfile::tempdir().unwrap();
    let (_, store) = open(d.path());
    let (h1, h2) = (BlobHash::of(b"one"), BlobHash::of(b"two"));
    let mut pb = BlobPeer::new(store.clone(), false).with_policy(policy(
        FetchMode::OnRead,
        32 << 10,
        1 << 40,
    ));
    pb.fetch(h1);
    pb.fetch(h2);
    let (peer, mut ext) = pb.shared();
    ext.on_open(true);
    let msg = |m: Message| {
        let mut b = Vec::new();
        m.encode(&mut b);
        b
    };
    let Message::Get { id, .. } = Message::decode(&ext.poll_message().unwrap().unwrap()).unwrap()
    else {
        panic!()
    };
    ext.on_message(&msg(Message::Have { id, size: 1 << 20 }))
        .unwrap();
    // The next GET goes out at once; the abandoned response's DATA and END are dropped.
    let Message::Get { id: id2, hash, .. } =
        Message::decode(&ext.poll_message().unwrap().unwrap()).unwrap()
    else {
        panic!()
    };
    assert_eq!(hash, h2);
    ext.on_message(&msg(Message::Data {
        id,
        bytes: vec![1; 1000],
    }))
    .unwrap();
    ext.on_message(&msg(Message::End { id })).unwrap();
    // Now the abandoned id is a protocol error like any stray answer.
    assert!(ext.on_message(&msg(Message::End { id })).is_err());
    ext.on_message(&msg(Message::NotHave { id: id2 })).unwrap();
    let out = outcomes(&peer);
    assert!(matches!(out[0].1, Outcome::Failed(_)), "{out:?}");
    assert_eq!(out[1], (h2, Outcome::NotFound));
}
