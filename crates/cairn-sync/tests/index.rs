//! The log-backed index (`LogStore`: heights, order, bucket fingerprints kept by a cairn-view
//! view) against the in-memory model (`MemStore`): the same summary, range fingerprints and
//! keys for random DAGs and random ranges, including bounds inside a height, and after the
//! view is rebuilt from the log.

mod common;

use cairn_core::{Ed25519Verifier, Hash, Keypair, Limits, Node};
use cairn_log::{Log, LogOptions};
use cairn_sync::{Key, LogStore, MemStore, SyncStore};
use common::Rng;
use proptest::prelude::*;

fn random_key(rng: &mut Rng, top: u64) -> Key {
    let height = rng.below(top + 2);
    let mut hash = [0u8; 32];
    match rng.below(3) {
        0 => {}
        1 => hash[0] = rng.next() as u8,
        _ => {
            for b in hash.iter_mut() {
                *b = rng.next() as u8;
            }
        }
    }
    Key {
        height,
        hash: Hash(hash),
    }
}

fn check(seed: u64) {
    let mut rng = Rng(seed);
    let keys: Vec<Keypair> = (0..3).map(|i| Keypair::from_seed([i + 1; 32])).collect();
    let l = Limits::default();
    let log = Log::memory(LogOptions::default().verifier(Ed25519Verifier::strict())).unwrap();
    let mut model = MemStore::new();
    let mut all: Vec<Hash> = Vec::new();
    let n = 1 + rng.below(600);
    let mut batch = Vec::new();
    for i in 0..n {
        let links: Vec<Hash> = if all.is_empty() || rng.chance(5) {
            Vec::new()
        } else if rng.chance(70) {
            vec![*all.last().unwrap()]
        } else {
            (0..1 + rng.below(3))
                .map(|_| all[rng.below(all.len() as u64) as usize])
                .collect()
        };
        let k = &keys[rng.below(3) as usize];
        let node = Node::signed(links, format!("{seed}/{i}").into_bytes(), k, &l).unwrap();
        all.push(node.key());
        model.insert(vec![node.clone()]).unwrap();
        batch.push(node);
        if rng.chance(10) {
            log.insert(std::mem::take(&mut batch)).unwrap();
        }
    }
    log.insert(batch).unwrap();
    let mut store = LogStore::open(&log).unwrap();
    let summary = store.summary().unwrap();
    assert_eq!(summary, model.summary().unwrap(), "seed {seed}");
    let top = summary.max_height.map_or(0, |h| h + 1);
    for _ in 0..200 {
        let mut lo = random_key(&mut rng, top);
        let mut hi = if rng.chance(20) {
            Key::END
        } else {
            random_key(&mut rng, top)
        };
        if rng.chance(20) {
            lo = Key::MIN;
        }
        if lo > hi {
            std::mem::swap(&mut lo, &mut hi);
        }
        assert_eq!(
            store.aggregate(&lo, &hi).unwrap(),
            model.aggregate(&lo, &hi).unwrap(),
            "seed {seed}: [{lo:?}, {hi:?})"
        );
        let limit = 1 + rng.below(50) as usize;
        assert_eq!(
            store.keys(&lo, &hi, limit).unwrap(),
            model.keys(&lo, &hi, limit).unwrap(),
            "seed {seed}"
        );
    }
    // The view survives a reopen, and a fresh view built from the log agrees.
    drop(store);
    let mut again = LogStore::open(&log).unwrap();
    assert_eq!(again.summary().unwrap(), summary);
}

#[test]
fn index_matches_the_model_on_fixed_seeds() {
    for seed in [0, 1, 2, 3, 4, 5, 99, 12345] {
        check(seed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
    #[test]
    fn index_matches_the_model(seed in any::<u64>()) {
        check(seed);
    }
}

#[test]
fn index_matches_the_model_on_a_long_chain() {
    // Heights up to 70 000: bucket levels 0 to 4 all take part.
    let log = Log::memory(LogOptions::default()).unwrap();
    let mut model = MemStore::new();
    let l = Limits::default();
    let mut prev: Option<Hash> = None;
    let mut batch = Vec::new();
    for i in 0..70_000u32 {
        let n = Node::unsigned(prev, i.to_le_bytes().to_vec(), &l).unwrap();
        prev = Some(n.key());
        batch.push(n);
        if batch.len() == 8192 {
            model.insert(batch.clone()).unwrap();
            log.insert(std::mem::take(&mut batch)).unwrap();
        }
    }
    model.insert(batch.clone()).unwrap();
    log.insert(batch).unwrap();
    let mut store = LogStore::open(&log).unwrap();
    assert_eq!(store.summary().unwrap(), model.summary().unwrap());
    let mut rng = Rng(5);
    for _ in 0..100 {
        let a = rng.below(70_001);
        let b = rng.below(70_001);
        let (lo, hi) = (Key::at_height(a.min(b)), Key::at_height(a.max(b)));
        assert_eq!(
            store.aggregate(&lo, &hi).unwrap(),
            model.aggregate(&lo, &hi).unwrap()
        );
    }
}

#[test]
fn two_stores_on_one_log_share_the_index_and_never_apply_twice() {
    use cairn_view::IndexerOptions;
    let log = Log::memory(LogOptions::default()).unwrap();
    let quiet = || IndexerOptions::default().background(false);
    let mut one = LogStore::with_options(&log, quiet()).unwrap();
    let mut two = LogStore::with_options(&log, quiet()).unwrap();
    let mut model = MemStore::new();
    let l = Limits::default();
    let mut prev: Option<Hash> = None;
    for round in 0..3u32 {
        let mut batch = Vec::new();
        for i in 0..100u32 {
            let n = Node::unsigned(prev, (round * 1000 + i).to_le_bytes().to_vec(), &l).unwrap();
            prev = Some(n.key());
            batch.push(n);
        }
        model.insert(batch.clone()).unwrap();
        log.insert(batch).unwrap();
        // Each store catches the view up; a second indexer would apply the nodes again.
        assert_eq!(one.summary().unwrap(), model.summary().unwrap());
        assert_eq!(two.summary().unwrap(), model.summary().unwrap());
    }
}
