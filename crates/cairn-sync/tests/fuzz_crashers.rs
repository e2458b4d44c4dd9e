//! Replays the inputs kept from fuzzing (`tests/fuzz-crashers/`: crashes found by
//! `fuzz/fuzz_targets/sync_frames.rs` and hand-made edge cases) through the same checks the
//! fuzz target makes, so a fixed crash stays fixed in every normal test run. Also writes the
//! fuzzer's seed corpus (real transcripts) when asked.

use cairn_sync::fuzzing::{frame_input, sample_store, session_input};
use cairn_sync::{Mode, Session, SessionOptions};

#[test]
fn kept_fuzz_inputs_replay_cleanly() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz-crashers");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        frame_input(&data);
        let _ = session_input(&data);
        count += 1;
    }
    assert!(count > 0, "no fixtures found in {dir}");
}

/// What the peer sends in a real session against the fuzz target's victim configuration;
/// with `pings`, the peer also sends keep-alives among its first messages (they queue only
/// after the handshake).
fn transcript(cfg: u8, peer_nodes: usize, peer_seed: u8, pings: bool) -> Vec<u8> {
    let mode = match cfg & 3 {
        0 => Mode::Push,
        1 => Mode::Pull,
        _ => Mode::Sync,
    };
    let peer_mode = match mode {
        Mode::Push => Mode::Pull,
        Mode::Pull => Mode::Push,
        Mode::Sync => Mode::Sync,
    };
    let live = cfg & 0x20 != 0;
    let victim_opts = SessionOptions {
        mode,
        live,
        max_pending: 64,
        ..SessionOptions::default()
    };
    let mut v = Session::new(sample_store(usize::from(cfg >> 2 & 7), 1), victim_opts).unwrap();
    let mut p = Session::new(
        sample_store(peer_nodes, peer_seed),
        SessionOptions {
            mode: peer_mode,
            live,
            ..SessionOptions::default()
        },
    )
    .unwrap();
    let mut sent = vec![cfg];
    for round in 0.. {
        let mut moved = false;
        // Pings among the first messages (a ping on its own would never let it end).
        if pings && round < 8 {
            p.ping();
        }
        while let Some(b) = v.poll_transmit() {
            let _ = p.handle_input(&b);
            moved = true;
        }
        while let Some(b) = p.poll_transmit() {
            sent.extend_from_slice(&b);
            let _ = v.handle_input(&b);
            moved = true;
        }
        if !moved && (!pings || round >= 8) {
            break;
        }
    }
    sent
}

#[test]
fn transcripts_replay_to_completion() {
    for cfg in [0x02u8, 0x0e, 0x1e, 0x01, 0x3e, 0x82, 0xbe] {
        for (n, seed) in [(0, 2), (3, 2), (5, 1), (9, 3)] {
            for pings in [false, true] {
                let t = transcript(cfg, n, seed, pings);
                assert!(
                    session_input(&t),
                    "cfg {cfg:#x}, {n} peer nodes, pings {pings}: replay completes"
                );
            }
        }
    }
}

/// The committed fuzz seeds: `fuzz/seeds/<target>/`, real session transcripts and real node
/// encodings, so that CI's short fuzz runs start past the handshake.
const SEEDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds");

/// The sync_frames seeds: what a peer sends in real sessions of every mode and shape.
fn sync_seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for cfg in [0x02u8, 0x0e, 0x1e, 0x01, 0x3e, 0x42, 0x4e, 0xbe] {
        for (n, seed) in [(0, 2), (3, 2), (5, 1), (9, 3)] {
            let pings = cfg & 0x80 != 0;
            out.push(transcript(cfg, n, seed, pings));
        }
    }
    out
}

/// The node_decode seeds: encodings of real nodes (unsigned and signed, roots and nodes
/// with one or several links, empty and longer values).
fn node_seeds() -> Vec<Vec<u8>> {
    use cairn_core::{Keypair, Limits, Node};
    let l = Limits::default();
    let k = Keypair::from_seed([3; 32]);
    let root = Node::unsigned([], b"root".to_vec(), &l).unwrap();
    let signed = Node::signed([root.key()], vec![7; 32], &k, &l).unwrap();
    let merge = Node::signed([root.key(), signed.key()], Vec::new(), &k, &l).unwrap();
    let long = Node::unsigned([merge.key()], vec![1; 300], &l).unwrap();
    [root, signed, merge, long]
        .iter()
        .map(Node::encode)
        .collect()
}

#[test]
#[ignore = "writes fuzz/seeds; run by hand after a protocol change, then commit"]
fn write_fuzz_seeds() {
    for (target, seeds) in [("sync_frames", sync_seeds()), ("node_decode", node_seeds())] {
        let dir = format!("{SEEDS}/{target}");
        std::fs::create_dir_all(&dir).unwrap();
        for (i, t) in seeds.iter().enumerate() {
            std::fs::write(format!("{dir}/seed-{i:02}"), t).unwrap();
        }
    }
}

#[test]
fn committed_fuzz_seeds_are_current_real_streams() {
    for (target, seeds) in [("sync_frames", sync_seeds()), ("node_decode", node_seeds())] {
        for (i, t) in seeds.iter().enumerate() {
            let path = format!("{SEEDS}/{target}/seed-{i:02}");
            let kept = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{path}: {e} (run the ignored write_fuzz_seeds)"));
            assert_eq!(
                &kept, t,
                "{path} is stale: run the ignored write_fuzz_seeds"
            );
        }
    }
    // Each session seed gets past the handshake: it replays to a complete session.
    for t in sync_seeds() {
        assert!(session_input(&t));
    }
}
