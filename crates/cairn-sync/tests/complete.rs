//! A session that says "complete" has checked it: the peer's DONE count matches the nodes
//! that arrived, every received node is durable before this side says SYNCED, and a sender
//! completes only on the receiver's SYNCED. `nodes_received` counts nodes new to the store.

mod common;

use std::convert::Infallible;

use cairn_core::{Ed25519Verifier, Hash, Keypair, Node, varint};
use cairn_log::{Log, LogOptions};
use cairn_sync::fuzzing::sample_store;
use cairn_sync::{
    Agg, Event, InsertError, Key, LOG_CHANNEL, LogStore, MemStore, Mode, Session, SessionOptions,
    Summary, SyncError, SyncStore,
};
use common::{chain, pump};

fn opts(mode: Mode) -> SessionOptions {
    SessionOptions {
        mode,
        ..SessionOptions::default()
    }
}

/// Splits a byte stream into its frames (each with its length prefix).
fn frames(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (len, n) = varint::decode(bytes).unwrap();
        let end = n + len as usize;
        out.push(bytes[..end].to_vec());
        bytes = &bytes[end..];
    }
    out
}

/// Whether a frame is DATA on the log channel holding a NODES message.
fn is_nodes(frame: &[u8]) -> bool {
    let (_, n) = varint::decode(frame).unwrap();
    let (kind, rest) = (frame[n], &frame[n + 1..]);
    let (channel, m) = varint::decode(rest).unwrap();
    kind == 0 && channel == LOG_CHANNEL && rest.get(m) == Some(&3)
}

/// The bytes a sender of `n` nodes in `mode` sends in a real session with an empty peer in
/// `peer_mode`.
fn record(n: usize, mode: Mode, peer_mode: Mode) -> Vec<u8> {
    let mut a = Session::new(sample_store(n, 4), opts(mode)).unwrap();
    let mut b = Session::new(MemStore::new(), opts(peer_mode)).unwrap();
    let mut sent = Vec::new();
    loop {
        let mut moved = false;
        while let Some(x) = a.poll_transmit() {
            sent.extend_from_slice(&x);
            b.handle_input(&x).unwrap();
            moved = true;
        }
        while let Some(x) = b.poll_transmit() {
            a.handle_input(&x).unwrap();
            moved = true;
        }
        if !moved {
            break;
        }
    }
    assert!(a.is_complete() && b.is_complete());
    assert_eq!(b.store().len(), n);
    sent
}

/// Replays `stream` to a fresh empty session in `mode`; returns whether it completed, its
/// first error and its store.
fn replay(stream: &[u8], mode: Mode) -> (bool, Option<SyncError>, MemStore) {
    let mut v = Session::new(MemStore::new(), opts(mode)).unwrap();
    let mut err = None;
    let mut complete = false;
    for chunk in stream.chunks(4096).map(<[u8]>::to_vec).chain([Vec::new()]) {
        let r = if chunk.is_empty() {
            v.handle_eof()
        } else {
            v.handle_input(&chunk)
        };
        if let Err(e) = r {
            err.get_or_insert(e);
        }
        while v.poll_transmit().is_some() {}
        while let Some(ev) = v.poll_event() {
            if matches!(ev, Event::Complete) {
                complete = true;
            }
        }
    }
    (complete, err, v.into_store())
}

#[test]
fn a_stream_missing_its_last_nodes_frame_fails() {
    for (mode, peer_mode) in [(Mode::Push, Mode::Pull), (Mode::Sync, Mode::Sync)] {
        let stream = record(2003, mode, peer_mode);
        // The whole stream replays to completion (the replay itself is sound).
        let (complete, err, store) = replay(&stream, peer_mode);
        assert!(complete && err.is_none(), "{peer_mode:?}: {err:?}");
        assert_eq!(store.len(), 2003);
        // Without its last NODES frame it must fail, typed, never complete.
        let fs = frames(&stream);
        let last = fs.iter().rposition(|f| is_nodes(f)).unwrap();
        let cut: Vec<u8> = fs
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != last)
            .flat_map(|(_, f)| f.clone())
            .collect();
        let (complete, err, store) = replay(&cut, peer_mode);
        assert!(
            !complete,
            "{peer_mode:?}: success with {} nodes",
            store.len()
        );
        match err {
            Some(SyncError::Incomplete { sent, received }) => {
                assert_eq!(sent, 2003);
                assert_eq!(received as usize, store.len());
                assert!(received < 2003);
            }
            other => panic!("{peer_mode:?}: {other:?}"),
        }
        // A repeated NODES frame is no success either.
        let mut dup = Vec::new();
        for (i, f) in fs.iter().enumerate() {
            dup.extend_from_slice(f);
            if i == last {
                dup.extend_from_slice(f);
            }
        }
        let (complete, err, _) = replay(&dup, peer_mode);
        assert!(!complete, "{peer_mode:?}: success with a repeated frame");
        assert!(matches!(err, Some(SyncError::Incomplete { .. })), "{err:?}");
    }
}

/// A store whose inserts land but never become durable: `flush` fails.
#[derive(Default)]
struct NeverDurable(MemStore);

impl SyncStore for NeverDurable {
    type Error = std::io::Error;
    fn summary(&mut self) -> Result<Summary, std::io::Error> {
        Ok(self.0.summary().unwrap_or_else(|e: Infallible| match e {}))
    }
    fn aggregate(&self, lo: &Key, hi: &Key) -> Result<Agg, std::io::Error> {
        Ok(self.0.aggregate(lo, hi).unwrap_or_else(|e| match e {}))
    }
    fn keys(&self, lo: &Key, hi: &Key, limit: usize) -> Result<Vec<Key>, std::io::Error> {
        Ok(self.0.keys(lo, hi, limit).unwrap_or_else(|e| match e {}))
    }
    fn get(&self, hash: &Hash) -> Result<Option<Node>, std::io::Error> {
        Ok(self.0.get(hash).unwrap_or_else(|e| match e {}))
    }
    fn has(&self, hash: &Hash) -> Result<bool, std::io::Error> {
        Ok(self.0.has(hash).unwrap_or_else(|e| match e {}))
    }
    fn insert(&mut self, nodes: Vec<Node>) -> Result<u64, InsertError<std::io::Error>> {
        match self.0.insert(nodes) {
            Ok(n) => Ok(n),
            Err(InsertError::Storage(e)) => match e {},
            Err(_) => Err(InsertError::Storage(std::io::Error::other("refused"))),
        }
    }
    fn flush(&mut self) -> Result<u64, InsertError<std::io::Error>> {
        Err(InsertError::Storage(std::io::Error::other("fsync failed")))
    }
}

#[test]
fn a_pusher_does_not_succeed_when_the_receiver_cannot_make_its_nodes_durable() {
    for (mode, peer_mode) in [(Mode::Push, Mode::Pull), (Mode::Sync, Mode::Sync)] {
        let mut a = Session::new(sample_store(300, 4), opts(mode)).unwrap();
        let mut b = Session::new(NeverDurable::default(), opts(peer_mode)).unwrap();
        let (mut a_done, mut a_err, mut b_err) = (false, None, None);
        loop {
            let mut moved = false;
            while let Some(x) = a.poll_transmit() {
                let _ = b.handle_input(&x);
                moved = true;
            }
            while let Some(x) = b.poll_transmit() {
                let _ = a.handle_input(&x);
                moved = true;
            }
            while let Some(ev) = a.poll_event() {
                match ev {
                    Event::Complete => a_done = true,
                    Event::Failed(e) => a_err = Some(e),
                    _ => {}
                }
            }
            while let Some(ev) = b.poll_event() {
                if let Event::Failed(e) = ev {
                    b_err = Some(e);
                }
            }
            if !moved {
                break;
            }
        }
        assert!(!a_done, "{mode:?}: the pusher reported success");
        assert!(
            matches!(b_err, Some(SyncError::Store(_))),
            "receiver: {b_err:?}"
        );
        match a_err {
            Some(SyncError::Remote { code, .. }) => assert_eq!(code, 14),
            other => panic!("pusher: {other:?}"),
        }
    }
}

#[test]
fn a_pusher_does_not_succeed_when_the_receiver_dies_before_its_synced() {
    let mut a = Session::new(sample_store(300, 4), opts(Mode::Push)).unwrap();
    let mut b = Session::new(MemStore::new(), opts(Mode::Pull)).unwrap();
    // The empty receiver answers the handshake with DONE at once...
    let hello_a: Vec<u8> = std::iter::from_fn(|| a.poll_transmit()).flatten().collect();
    let mut from_b: Vec<u8> = std::iter::from_fn(|| b.poll_transmit()).flatten().collect();
    b.handle_input(&hello_a).unwrap();
    from_b.extend(std::iter::from_fn(|| b.poll_transmit()).flatten());
    a.handle_input(&from_b).unwrap();
    // ... the pusher streams everything and its DONE, then the receiver is killed.
    let mut sent = 0;
    while let Some(x) = a.poll_transmit() {
        sent += x.len();
    }
    assert!(sent > 300 * 100);
    assert!(!a.is_complete());
    assert!(matches!(a.handle_eof(), Err(SyncError::UnexpectedEof)));
    while let Some(ev) = a.poll_event() {
        assert!(!matches!(ev, Event::Complete));
    }
}

#[test]
fn nodes_received_counts_only_nodes_new_to_the_store() {
    let k = Keypair::from_seed([3; 32]);
    let nodes = chain(&k, 2003, None, 0);
    // In memory: another writer stores the first 1000 while the session runs.
    let mut src = MemStore::new();
    src.insert(nodes.clone()).unwrap();
    let mut a = Session::new(src, opts(Mode::Push)).unwrap();
    let mut b = Session::new(MemStore::new(), opts(Mode::Sync)).unwrap();
    b.store_mut().insert(nodes[..1000].to_vec()).unwrap();
    let out = pump(&mut a, &mut b, None, None);
    out.a.unwrap();
    out.b.unwrap();
    assert_eq!(b.stats().nodes_received, 1003);
    assert_eq!(a.stats().nodes_sent, 2003);
    // Over a log (pipelined inserts): the same, exactly.
    let strict = || {
        Log::memory(
            LogOptions::default()
                .signer(Keypair::from_seed([9; 32]))
                .verifier(Ed25519Verifier::strict()),
        )
        .unwrap()
    };
    let (la, lb) = (strict(), strict());
    la.insert(nodes.clone()).unwrap();
    let mut a = Session::new(LogStore::open(&la).unwrap(), opts(Mode::Sync)).unwrap();
    let mut b = Session::new(LogStore::open(&lb).unwrap(), opts(Mode::Sync)).unwrap();
    lb.insert(nodes[..1000].to_vec()).unwrap();
    let out = pump(&mut a, &mut b, None, None);
    out.a.unwrap();
    out.b.unwrap();
    assert_eq!(lb.len(), 2003);
    assert_eq!(b.stats().nodes_received, 1003);
}

/// A store whose whole-set summary claims one node more than it holds (a broken or lying
/// peer): ranges all compare equal, but the end summaries never do.
struct Liar(MemStore);

impl SyncStore for Liar {
    type Error = Infallible;
    fn summary(&mut self) -> Result<Summary, Infallible> {
        let mut s = self.0.summary()?;
        s.agg.add_hash(&Hash([0x55; 32]));
        Ok(s)
    }
    fn aggregate(&self, lo: &Key, hi: &Key) -> Result<Agg, Infallible> {
        self.0.aggregate(lo, hi)
    }
    fn keys(&self, lo: &Key, hi: &Key, limit: usize) -> Result<Vec<Key>, Infallible> {
        self.0.keys(lo, hi, limit)
    }
    fn get(&self, hash: &Hash) -> Result<Option<Node>, Infallible> {
        self.0.get(hash)
    }
    fn has(&self, hash: &Hash) -> Result<bool, Infallible> {
        self.0.has(hash)
    }
    fn insert(&mut self, nodes: Vec<Node>) -> Result<u64, InsertError<Infallible>> {
        self.0.insert(nodes)
    }
}

#[test]
fn sets_that_never_agree_fail_after_the_last_round() {
    let mut a = Session::new(Liar(sample_store(50, 4)), opts(Mode::Sync)).unwrap();
    let mut b = Session::new(sample_store(50, 4), opts(Mode::Sync)).unwrap();
    let out = pump(&mut a, &mut b, None, None);
    for r in [out.a, out.b] {
        match r {
            Err(SyncError::NotConverged { rounds, .. }) => {
                assert_eq!(rounds, cairn_sync::MAX_ROUNDS)
            }
            Err(SyncError::Remote { code: 17, .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(!a.is_complete() && !b.is_complete());
}
