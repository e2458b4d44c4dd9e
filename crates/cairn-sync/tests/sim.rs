//! A deterministic, seeded multi-peer simulation: no sockets, no sleeps. Peers append
//! (forking freely), sync in random pairs and modes, one-shot or live, with random delivery
//! order and chunking, and random disconnects. At the end every peer holds the same node
//! set. Run as a property test; regression seeds are kept below and in
//! `tests/sim.proptest-regressions`.

mod common;

use cairn_core::{Ed25519Verifier, Hash, Keypair, Limits, Node};
use cairn_sync::{MemStore, Mode, Session, SessionOptions, SyncStore};
use common::{Rng, pump};
use proptest::prelude::*;

/// Seeds that once failed, or that cover interesting paths; always run.
const REGRESSION_SEEDS: &[u64] = &[0, 1, 2, 3, 0xdead_beef, 42, 7_777_777];

fn append(store: &mut MemStore, key: &Keypair, rng: &mut Rng, n: u64) -> Node {
    let mut links = store.heads();
    if rng.chance(30) {
        // Fork: link some older node(s) instead of the heads.
        let all: Vec<Hash> = store.hashes().into_iter().collect();
        links = (0..rng.below(3))
            .filter(|_| !all.is_empty())
            .map(|_| all[rng.below(all.len() as u64) as usize])
            .collect();
    }
    links.truncate(8);
    let value = format!("{}:{n}", key.public()).into_bytes();
    let node = Node::signed(links, value, key, &Limits::default()).unwrap();
    store.add(node.clone()).unwrap();
    node
}

fn modes(rng: &mut Rng) -> (Mode, Mode) {
    match rng.below(6) {
        0 => (Mode::Push, Mode::Pull),
        1 => (Mode::Pull, Mode::Push),
        2 => (Mode::Push, Mode::Sync),
        3 => (Mode::Sync, Mode::Pull),
        _ => (Mode::Sync, Mode::Sync),
    }
}

fn session(store: MemStore, mode: Mode, live: bool, rng: &mut Rng) -> Session<MemStore> {
    let opts = SessionOptions {
        mode,
        live,
        ids_threshold: 1 + rng.below(24) as usize,
        insert_batch: 1 + rng.below(64) as usize,
        ..SessionOptions::default()
    };
    Session::new(store, opts).unwrap()
}

fn simulate(seed: u64) {
    let mut rng = Rng(seed);
    let peers = 10 + rng.below(5) as usize;
    let keys: Vec<Keypair> = (0..peers)
        .map(|i| Keypair::from_seed([i as u8 + 1; 32]))
        .collect();
    let mut stores: Vec<MemStore> = (0..peers)
        .map(|_| MemStore::verifying(Ed25519Verifier::strict()))
        .collect();
    let mut counter = 0u64;
    let steps = 60 + rng.below(120);
    for _ in 0..steps {
        if rng.chance(45) {
            let p = rng.below(peers as u64) as usize;
            for _ in 0..1 + rng.below(4) {
                counter += 1;
                append(&mut stores[p], &keys[p], &mut rng, counter);
            }
            continue;
        }
        let i = rng.below(peers as u64) as usize;
        let j = (i + 1 + rng.below(peers as u64 - 1) as usize) % peers;
        let (ma, mb) = modes(&mut rng);
        let live = rng.chance(20);
        let before_a = stores[i].hashes();
        let before_b = stores[j].hashes();
        let mut a = session(std::mem::take(&mut stores[i]), ma, live, &mut rng);
        let mut b = session(std::mem::take(&mut stores[j]), mb, live, &mut rng);
        let cut = rng.chance(25).then(|| rng.below(12) as usize);
        let out = pump(&mut a, &mut b, Some(&mut rng), cut);
        let complete = a.is_complete() && b.is_complete();
        if cut.is_none() {
            out.a.unwrap();
            out.b.unwrap();
            assert!(complete, "seed {seed}: an unbroken sync completes");
        }
        if complete {
            // Each side got everything the other had at the start, where the modes allow.
            if mb.receives() && ma.sends() {
                assert!(b.store().hashes().is_superset(&before_a), "seed {seed}");
            }
            if ma.receives() && mb.sends() {
                assert!(a.store().hashes().is_superset(&before_b), "seed {seed}");
            }
            if live && cut.is_none() {
                // Live: new nodes flow while the session stays open, then a clean close.
                for _ in 0..1 + rng.below(3) {
                    counter += 1;
                    let n = append(a.store_mut(), &keys[i], &mut rng, counter);
                    a.offer(vec![n]);
                    counter += 1;
                    let n = append(b.store_mut(), &keys[j], &mut rng, counter);
                    b.offer(vec![n]);
                }
                let out = pump(&mut a, &mut b, Some(&mut rng), None);
                out.a.unwrap();
                out.b.unwrap();
                if ma == Mode::Sync && mb == Mode::Sync {
                    assert_eq!(a.store().hashes(), b.store().hashes(), "seed {seed}: live");
                }
                a.close();
                let out = pump(&mut a, &mut b, Some(&mut rng), None);
                out.a.unwrap();
                out.b.unwrap();
                assert!(b.is_finished(), "seed {seed}: close reaches the peer");
            }
        }
        // Whatever happened, each store only grew, and holds only verified, linked nodes
        // (MemStore::insert checks both).
        assert!(a.store().hashes().is_superset(&before_a));
        assert!(b.store().hashes().is_superset(&before_b));
        stores[i] = a.into_store();
        stores[j] = b.into_store();
    }
    // Gossip to the end: everyone with peer 0, twice (after the first round peer 0 holds
    // everything, after the second everyone does); a third round finds everyone equal.
    for round in 0..3 {
        for p in 1..peers {
            let mut a = session(std::mem::take(&mut stores[0]), Mode::Sync, false, &mut rng);
            let mut b = session(std::mem::take(&mut stores[p]), Mode::Sync, false, &mut rng);
            let out = pump(&mut a, &mut b, Some(&mut rng), None);
            out.a.unwrap();
            out.b.unwrap();
            assert!(a.is_complete() && b.is_complete());
            if round == 2 {
                assert_eq!(a.stats().round_trips, 1, "seed {seed}: equal re-sync");
            }
            stores[0] = a.into_store();
            stores[p] = b.into_store();
        }
    }
    let expected = stores[0].hashes();
    // Every node written anywhere (each one distinct: its value holds the counter) is now
    // everywhere.
    assert_eq!(expected.len() as u64, counter, "seed {seed}: nodes lost");
    for (p, s) in stores.iter_mut().enumerate() {
        assert_eq!(s.hashes(), expected, "seed {seed}: peer {p} differs");
    }
    let summaries: Vec<_> = stores.iter_mut().map(|s| s.summary().unwrap()).collect();
    assert!(summaries.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn regression_seeds() {
    for &seed in REGRESSION_SEEDS {
        simulate(seed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]
    #[test]
    fn peers_converge(seed in any::<u64>()) {
        simulate(seed);
    }
}

/// The same simulation over real logs (`LogStore`: the index view, pipelined verified
/// inserts), fewer steps: random appends and forks, random pairwise one-shot syncs in every
/// mode pair with random delivery and disconnects, then gossip to convergence.
fn simulate_logs(seed: u64) {
    use cairn_log::{Log, LogOptions};
    use cairn_sync::LogStore;
    let mut rng = Rng(seed);
    let peers = 10;
    let logs: Vec<Log> = (0..peers)
        .map(|i| {
            Log::memory(
                LogOptions::default()
                    .signer(Keypair::from_seed([i as u8 + 1; 32]))
                    .verifier(Ed25519Verifier::strict()),
            )
            .unwrap()
        })
        .collect();
    let sync = |i: usize, j: usize, ma: Mode, mb: Mode, rng: &mut Rng, cut: Option<usize>| {
        let o = |m: Mode, rng: &mut Rng| SessionOptions {
            mode: m,
            ids_threshold: 1 + rng.below(24) as usize,
            insert_batch: 1 + rng.below(64) as usize,
            ..SessionOptions::default()
        };
        let oa = o(ma, rng);
        let ob = o(mb, rng);
        let mut a = Session::new(LogStore::open(&logs[i]).unwrap(), oa).unwrap();
        let mut b = Session::new(LogStore::open(&logs[j]).unwrap(), ob).unwrap();
        let out = pump(&mut a, &mut b, Some(rng), cut);
        if cut.is_none() {
            out.a.unwrap();
            out.b.unwrap();
            assert!(a.is_complete() && b.is_complete(), "seed {seed}");
        }
    };
    for step in 0..40 {
        if rng.chance(45) {
            let p = rng.below(peers as u64) as usize;
            let log = &logs[p];
            if log.is_empty() || rng.chance(70) {
                log.append(format!("{seed}/{step}").into_bytes()).unwrap();
            } else {
                // Fork: link one older node.
                let n = 1 + rng.below(log.len());
                let old = log
                    .changes(cairn_log::ChangesQuery::all().since(n - 1).limit(1))
                    .next()
                    .unwrap()
                    .unwrap();
                log.add([old.node.key()], format!("{seed}/{step}/fork").into_bytes())
                    .unwrap();
            }
            continue;
        }
        let i = rng.below(peers as u64) as usize;
        let j = (i + 1 + rng.below(peers as u64 - 1) as usize) % peers;
        let (ma, mb) = modes(&mut rng);
        let cut = rng.chance(25).then(|| rng.below(12) as usize);
        sync(i, j, ma, mb, &mut rng, cut);
    }
    for _round in 0..2 {
        for p in 1..peers {
            sync(0, p, Mode::Sync, Mode::Sync, &mut rng, None);
        }
    }
    let set = |l: &Log| -> std::collections::BTreeSet<Hash> {
        l.changes(Default::default())
            .map(|e| e.unwrap().node.key())
            .collect()
    };
    let expected = set(&logs[0]);
    for (p, l) in logs.iter().enumerate() {
        assert_eq!(set(l), expected, "seed {seed}: log {p} differs");
    }
}

#[test]
fn logs_converge_on_fixed_seeds() {
    for seed in [0, 1, 2, 3] {
        simulate_logs(seed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 6,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]
    #[test]
    fn logs_converge(seed in any::<u64>()) {
        simulate_logs(seed);
    }
}
