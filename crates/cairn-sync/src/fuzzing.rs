//! Entry points shared by the fuzz targets (`fuzz/fuzz_targets/sync_frames.rs`) and the test
//! that replays kept fuzz inputs, so both run exactly the same checks.

use cairn_core::{Ed25519Verifier, Keypair, Limits, Node};

use crate::mux::FrameDecoder;
use crate::session::{Event, Session, SessionOptions};
use crate::store::{MemStore, SyncStore};
use crate::wire::Mode;

/// A small signed store: a chain of `n` nodes by one author.
pub fn sample_store(n: usize, seed: u8) -> MemStore {
    let key = Keypair::from_seed([seed; 32]);
    let limits = Limits::default();
    let mut store = MemStore::verifying(Ed25519Verifier::strict());
    let mut prev = None;
    for i in 0..n {
        let Ok(node) = Node::signed(prev, vec![i as u8; 32], &key, &limits) else {
            return store;
        };
        prev = Some(node.key());
        if store.add(node).is_err() {
            return store;
        }
    }
    store
}

/// Feeds `data` as the peer's bytes to a session over a small signed store. The first byte
/// picks the mode, the store size, the chunking and whether this side sends a keep-alive
/// after every chunk; the rest is the input. Panics on a
/// broken invariant: a failed session completing, a store holding anything it did not hold
/// before plus verified nodes, unbounded output. Returns whether the session completed.
pub fn session_input(data: &[u8]) -> bool {
    let Some((&cfg, input)) = data.split_first() else {
        return false;
    };
    let mode = match cfg & 3 {
        0 => Mode::Push,
        1 => Mode::Pull,
        _ => Mode::Sync,
    };
    let store = sample_store(usize::from(cfg >> 2 & 7), 1);
    let before = store.hashes();
    let opts = SessionOptions {
        mode,
        live: cfg & 0x20 != 0,
        max_pending: 64,
        ..SessionOptions::default()
    };
    let Ok(mut s) = Session::new(store, opts) else {
        return false;
    };
    let chunk = if cfg & 0x40 != 0 { 7 } else { 4096 };
    let mut failed = false;
    let mut complete = false;
    let mut drain = |s: &mut Session<MemStore>, failed: &mut bool| {
        let mut out = 0usize;
        while let Some(b) = s.poll_transmit() {
            out += b.len();
            assert!(out < 64 << 20, "output stays bounded");
        }
        while let Some(ev) = s.poll_event() {
            match ev {
                Event::Failed(_) => *failed = true,
                Event::Complete => {
                    assert!(!*failed, "a failed session never completes");
                    complete = true;
                }
                _ => {}
            }
        }
    };
    drain(&mut s, &mut failed);
    let pings = cfg & 0x80 != 0;
    for c in input.chunks(chunk) {
        let _ = s.handle_input(c);
        if pings {
            s.ping();
        }
        drain(&mut s, &mut failed);
    }
    let _ = s.handle_eof();
    drain(&mut s, &mut failed);
    let mut store = s.into_store();
    assert!(store.hashes().is_superset(&before));
    let _ = store.summary();
    complete && !failed
}

/// Runs the frame decoder alone over `data` with a small limit.
pub fn frame_input(data: &[u8]) {
    let mut d = FrameDecoder::new(1024);
    d.push(data);
    while let Ok(Some((_, _, body))) = d.next_frame() {
        assert!(body.len() <= 1024);
    }
}
