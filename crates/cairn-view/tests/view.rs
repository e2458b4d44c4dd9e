//! The indexer's contract: exactly-once across crashes, versions, rebuilds, pause/resume,
//! failures, live following, batching.

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_log::testing::CrashBackend;
use cairn_log::{ChangesQuery, Entry, Log, LogOptions};
use cairn_view::redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use cairn_view::{CatchUpError, IndexError, Indexer, IndexerOptions, View};
use proptest::prelude::*;

/// Counts nodes per value, and in total; fails on the value "boom" if asked to.
struct Count {
    name: &'static str,
    version: u64,
    fail_on_boom: bool,
}

#[derive(Debug, thiserror::Error)]
enum CountError {
    #[error("storage: {0}")]
    Storage(#[from] cairn_view::redb::Error),
    #[error("boom")]
    Boom,
}

impl Count {
    fn new(name: &'static str) -> Self {
        Count {
            name,
            version: 1,
            fail_on_boom: false,
        }
    }
    fn counts(&self) -> TableDefinition<'static, &'static [u8], u64> {
        TableDefinition::new(match self.name {
            "a" => "view.a.counts",
            "b" => "view.b.counts",
            _ => "view.other.counts",
        })
    }
}

fn se(e: impl Into<cairn_view::redb::Error>) -> CountError {
    CountError::Storage(e.into())
}

impl View for Count {
    type Error = CountError;
    fn name(&self) -> &str {
        self.name
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn apply(&mut self, txn: &WriteTransaction, entries: &[Entry]) -> Result<(), CountError> {
        let mut t = txn.open_table(self.counts()).map_err(se)?;
        for e in entries {
            if self.fail_on_boom && e.node.value() == b"boom" {
                return Err(CountError::Boom);
            }
            if self.fail_on_boom && e.node.value() == b"panic" {
                panic!("asked to panic");
            }
            let old = t.get(e.node.value()).map_err(se)?.map_or(0, |v| v.value());
            t.insert(e.node.value(), old + 1).map_err(se)?;
            let total = t.get(&b"#total"[..]).map_err(se)?.map_or(0, |v| v.value());
            t.insert(&b"#total"[..], total + 1).map_err(se)?;
        }
        Ok(())
    }
    fn clear(&mut self, txn: &WriteTransaction) -> Result<(), CountError> {
        txn.delete_table(self.counts()).map_err(se)?;
        Ok(())
    }
}

fn dump(log: &Log, view: &Count) -> BTreeMap<Vec<u8>, u64> {
    let txn = log.database().begin_read().unwrap();
    let Ok(t) = txn.open_table(view.counts()) else {
        return BTreeMap::new();
    };
    t.iter()
        .unwrap()
        .map(|r| {
            let (k, v) = r.unwrap();
            (k.value().to_vec(), v.value())
        })
        .collect()
}

/// What the counting view must hold for `log`, computed from the changes feed.
fn expected(log: &Log) -> BTreeMap<Vec<u8>, u64> {
    let mut m = BTreeMap::new();
    let mut total = 0;
    for e in log.changes(ChangesQuery::all()) {
        *m.entry(e.unwrap().node.into_value()).or_insert(0) += 1;
        total += 1;
    }
    if total > 0 {
        m.insert(b"#total".to_vec(), total);
    }
    m
}

fn manual() -> IndexerOptions {
    IndexerOptions::default().background(false)
}

fn fill(log: &Log, n: usize) {
    for i in 0..n {
        log.append(format!("v{}", i % 7)).unwrap();
    }
}

#[test]
fn catch_up_applies_everything_once_and_resumes() {
    let log = Log::memory(LogOptions::default()).unwrap();
    fill(&log, 100);
    let ix = Indexer::open(&log, Count::new("a"), manual().batch(7)).unwrap();
    assert_eq!(ix.applied(), 0);
    assert_eq!(ix.catch_up().unwrap(), 100);
    assert_eq!(dump(&log, &Count::new("a")), expected(&log));
    drop(ix);
    fill(&log, 50);
    // Reopening resumes after change 100: nothing is applied twice.
    let ix = Indexer::open(&log, Count::new("a"), manual()).unwrap();
    assert_eq!(ix.applied(), 100);
    ix.ready_blocking().unwrap();
    assert_eq!(ix.applied(), 150);
    assert_eq!(dump(&log, &Count::new("a")), expected(&log));
}

#[test]
fn apply_next_takes_entries_in_hand_only_when_they_are_the_next_ones() {
    let log = Log::memory(LogOptions::default()).unwrap();
    let ix = Indexer::open(&log, Count::new("a"), manual()).unwrap();
    let first = log
        .append_all((0..5).map(|i| format!("v{i}").into_bytes()).collect())
        .unwrap();
    assert!(ix.apply_next(&first).unwrap());
    assert_eq!(ix.applied(), 5);
    // Entries already applied are skipped; the rest must follow on.
    let second = log
        .append_all(vec![b"v1".to_vec(), b"v2".to_vec()])
        .unwrap();
    let mixed: Vec<Entry> = first[3..].iter().chain(&second).cloned().collect();
    assert!(ix.apply_next(&mixed).unwrap());
    assert_eq!(ix.applied(), 7);
    // A gap (change 8 was never handed over): nothing applied; a catch-up reads both.
    let third = log.append_all(vec![b"a".to_vec(), b"b".to_vec()]).unwrap();
    assert!(!ix.apply_next(&third[1..]).unwrap());
    assert_eq!(ix.applied(), 7);
    assert!(!ix.apply_next(&first).unwrap(), "all applied already");
    assert_eq!(ix.catch_up().unwrap(), 9);
    assert_eq!(dump(&log, &Count::new("a")), expected(&log));
}

#[test]
fn a_new_version_rebuilds_and_rebuild_on_demand() {
    let log = Log::memory(LogOptions::default()).unwrap();
    fill(&log, 30);
    let ix = Indexer::open(&log, Count::new("a"), manual()).unwrap();
    ix.catch_up().unwrap();
    drop(ix);
    let mut v2 = Count::new("a");
    v2.version = 2;
    let ix = Indexer::open(&log, v2, manual()).unwrap();
    assert_eq!(ix.applied(), 0, "a changed version starts over");
    assert!(
        dump(&log, &Count::new("a")).is_empty(),
        "and clears the tables"
    );
    ix.catch_up().unwrap();
    assert_eq!(dump(&log, &Count::new("a")), expected(&log));
    ix.rebuild().unwrap();
    assert_eq!(ix.applied(), 0);
    ix.ready_blocking().unwrap();
    assert_eq!(dump(&log, &Count::new("a")), expected(&log));
}

#[test]
fn a_failing_view_stops_alone_at_the_failing_node() {
    let log = Log::memory(LogOptions::default()).unwrap();
    fill(&log, 10);
    let boom = log.append(b"boom".to_vec()).unwrap().change;
    fill(&log, 10);
    let mut bad = Count::new("a");
    bad.fail_on_boom = true;
    let bad = Indexer::open(&log, bad, manual()).unwrap();
    let good = Indexer::open(&log, Count::new("b"), manual()).unwrap();
    match bad.catch_up() {
        Err(CatchUpError::Stopped(e)) => match &*e {
            IndexError::View { change, source } => {
                assert_eq!(*change, boom);
                assert!(matches!(source, CountError::Boom));
            }
            other => panic!("unexpected {other:?}"),
        },
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(bad.applied(), boom - 1, "every node before the failing one");
    assert!(bad.error().is_some());
    assert!(matches!(
        bad.ready_blocking(),
        Err(CatchUpError::Stopped(_))
    ));
    // The log and the other view go on.
    fill(&log, 5);
    good.ready_blocking().unwrap();
    assert_eq!(dump(&log, &Count::new("b")), expected(&log));
    assert_eq!(bad.applied(), boom - 1);
}

#[test]
fn a_panicking_view_stops_like_a_failing_one_even_in_the_background() {
    let log = Log::memory(LogOptions::default()).unwrap();
    let mut bad = Count::new("a");
    bad.fail_on_boom = true;
    let bad = Indexer::open(&log, bad, IndexerOptions::default().batch(8)).unwrap();
    fill(&log, 10);
    let p = log.append(b"panic".to_vec()).unwrap().change;
    fill(&log, 10);
    match futures_lite::future::block_on(bad.ready()) {
        Err(CatchUpError::Stopped(e)) => match &*e {
            IndexError::Panicked { change, message } => {
                assert_eq!(*change, p);
                assert!(message.contains("asked to panic"));
            }
            other => panic!("unexpected {other:?}"),
        },
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(bad.applied(), p - 1);
    // The view is deterministic: a retry stops at the same node again.
    bad.retry();
    assert!(bad.ready_blocking().is_err());
}

#[test]
fn background_thread_follows_local_and_replicated_writes_and_pauses() {
    let log = Log::memory(LogOptions::default()).unwrap();
    let ix = Indexer::open(&log, Count::new("a"), IndexerOptions::default()).unwrap();
    fill(&log, 20);
    ix.wait_applied(20).unwrap();
    // Replicated nodes (inserted from another log) are followed too.
    let other = Log::memory(LogOptions::default()).unwrap();
    fill(&other, 5);
    let nodes: Vec<_> = other
        .changes(ChangesQuery::all())
        .map(|e| e.unwrap().node)
        .collect();
    log.insert(nodes).unwrap();
    ix.wait_applied(log.len()).unwrap();
    assert_eq!(dump(&log, &Count::new("a")), expected(&log));

    ix.pause();
    assert!(ix.is_paused());
    // Let the worker finish whatever it was doing.
    std::thread::sleep(Duration::from_millis(50));
    let before = ix.applied();
    fill(&log, 10);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(ix.applied(), before, "paused views apply nothing");
    assert_eq!(
        ix.catch_up().unwrap(),
        before,
        "not even when asked to catch up"
    );
    ix.resume();
    futures_lite::future::block_on(ix.ready()).unwrap();
    assert_eq!(ix.applied(), log.len());
    assert_eq!(dump(&log, &Count::new("a")), expected(&log));
}

#[test]
fn ready_waits_for_resume() {
    let log = Log::memory(LogOptions::default()).unwrap();
    let ix = Indexer::open(&log, Count::new("a"), manual()).unwrap();
    ix.pause();
    fill(&log, 5);
    let ix2 = ix.clone();
    let waiter = std::thread::spawn(move || ix2.ready_blocking());
    std::thread::sleep(Duration::from_millis(50));
    assert!(!waiter.is_finished());
    ix.resume();
    waiter.join().unwrap().unwrap();
    assert_eq!(ix.applied(), 5);
}

#[test]
fn async_ready_without_background_thread_drives_the_view() {
    let log = Log::memory(LogOptions::default()).unwrap();
    fill(&log, 40);
    let ix = Indexer::open(&log, Count::new("a"), manual().batch(3)).unwrap();
    futures_lite::future::block_on(ix.ready()).unwrap();
    assert_eq!(ix.applied(), 40);
}

#[test]
fn concurrent_catch_up_callers_apply_each_node_once() {
    let log = Log::memory(LogOptions::default()).unwrap();
    let ix = Indexer::open(&log, Count::new("a"), IndexerOptions::default().batch(5)).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (log, ix) = (log.clone(), ix.clone());
            s.spawn(move || {
                for i in 0..50 {
                    log.append(format!("t{t} {}", i % 3)).unwrap();
                    ix.catch_up().unwrap();
                }
            });
        }
    });
    ix.ready_blocking().unwrap();
    assert_eq!(dump(&log, &Count::new("a")), expected(&log));
}

#[test]
fn two_indexers_of_one_view_never_double_apply() {
    let log = Log::memory(LogOptions::default()).unwrap();
    let a = Indexer::open(&log, Count::new("a"), manual().batch(4)).unwrap();
    let b = Indexer::open(&log, Count::new("a"), IndexerOptions::default().batch(3)).unwrap();
    std::thread::scope(|s| {
        for t in 0..3 {
            let (log, a, b) = (log.clone(), a.clone(), b.clone());
            s.spawn(move || {
                for i in 0..40 {
                    log.append(format!("t{t} {}", i % 4)).unwrap();
                    if i % 2 == 0 {
                        a.catch_up().unwrap();
                    } else {
                        b.catch_up().unwrap();
                    }
                }
            });
        }
    });
    a.ready_blocking().unwrap();
    b.ready_blocking().unwrap();
    assert_eq!(dump(&log, &Count::new("a")), expected(&log));
    // A rebuild through one handle is followed by the other.
    a.rebuild().unwrap();
    b.ready_blocking().unwrap();
    a.ready_blocking().unwrap();
    assert_eq!(dump(&log, &Count::new("a")), expected(&log));
    // A handle of another version takes the view over; the old one stops.
    drop(b);
    let mut v2 = Count::new("a");
    v2.version = 2;
    let c = Indexer::open(&log, v2, manual()).unwrap();
    c.catch_up().unwrap();
    log.append(b"more".to_vec()).unwrap();
    match a.catch_up() {
        Err(CatchUpError::Stopped(e)) => {
            assert!(matches!(*e, IndexError::Replaced { version: Some(2) }))
        }
        other => panic!("expected Replaced, got {other:?}"),
    }
    c.catch_up().unwrap();
    assert_eq!(dump(&log, &Count::new("a")), expected(&log));
}

/// Crashes (every I/O call fails after a random count, then power loss keeps a random subset
/// of the unsynced writes) while nodes are being added and indexed; after each reopen the
/// view must equal the exact counts of the log that survived.
#[test]
fn crash_during_indexing_never_skips_or_doubles() {
    let mut rng = Rng(0x5eed);
    let mut image = Vec::new();
    let mut crashes = 0;
    let (mut log_faults, mut view_faults) = (0, 0);
    for round in 0..100 {
        let (backend, handle) = CrashBackend::from_image(image.clone());
        // Both redb commit protocols, as the log and the indexer can be set to either.
        let quick_repair = round % 2 == 0;
        let log =
            Log::with_backend(backend, LogOptions::default().quick_repair(quick_repair)).unwrap();
        let opts = manual()
            .quick_repair(quick_repair)
            .batch(rng.random_range(1..40))
            .sync_every(rng.random_range(1..20));
        let ix = Indexer::open(&log, Count::new("a"), opts.clone()).unwrap();
        // After reopening, the view is consistent with the surviving log once caught up.
        ix.catch_up().unwrap();
        assert_eq!(
            dump(&log, &Count::new("a")),
            expected(&log),
            "round {round}"
        );
        // Nodes to index, then a fault somewhere in the indexing (and later writes).
        let mut i = 0;
        for _ in 0..rng.random_range(20..200) {
            i += 1;
            log.append(format!("r{round} {}", i % 5)).unwrap();
        }
        handle.fail_after(rng.random_range(0..60));
        loop {
            if ix.catch_up().is_err() {
                view_faults += 1;
                break;
            }
            let n = rng.random_range(1..30) as usize;
            let added = (0..n).try_for_each(|_| {
                i += 1;
                log.append(format!("r{round} {}", i % 5)).map(drop)
            });
            if added.is_err() {
                log_faults += 1;
                break;
            }
            if i > 2000 {
                break;
            }
        }
        drop(ix);
        drop(log);
        let keep_all = rng.random_bool(0.3);
        image = handle.crash(|_| keep_all || rng.random_bool(0.5));
        crashes += 1;
    }
    assert_eq!(crashes, 100);
    eprintln!("faults: {log_faults} while adding, {view_faults} while indexing");
    assert!(view_faults >= 20, "faults hit indexing: {view_faults}");
    assert!(log_faults >= 5, "faults hit the log: {log_faults}");
    let (backend, _) = CrashBackend::from_image(image);
    let log = Log::with_backend(backend, LogOptions::default()).unwrap();
    let ix = Indexer::open(&log, Count::new("a"), manual()).unwrap();
    ix.catch_up().unwrap();
    assert_eq!(dump(&log, &Count::new("a")), expected(&log));
    assert!(log.len() > 100, "the log grew across rounds: {}", log.len());
}

/// SplitMix64: a small deterministic generator for the crash loop.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn random_range(&mut self, r: std::ops::Range<u64>) -> u64 {
        r.start + self.next() % (r.end - r.start)
    }
    fn random_bool(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Incremental application (random batches, interleaved with writes) equals a rebuild.
    #[test]
    fn rebuilt_equals_incremental(steps in proptest::collection::vec((1usize..20, 1u64..9), 1..12)) {
        let log = Log::memory(LogOptions::default()).unwrap();
        let ix = Indexer::open(&log, Count::new("a"), manual().batch(3)).unwrap();
        for (n, m) in &steps {
            for i in 0..*n {
                log.append(format!("{}", i as u64 % m)).unwrap();
            }
            ix.catch_up().unwrap();
        }
        let incremental = dump(&log, &Count::new("a"));
        ix.rebuild().unwrap();
        ix.catch_up().unwrap();
        prop_assert_eq!(&incremental, &dump(&log, &Count::new("a")));
        prop_assert_eq!(incremental, expected(&log));
    }
}

/// Records the bytes of nodes in the largest batch it is given.
struct Biggest(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl View for Biggest {
    type Error = std::convert::Infallible;
    fn name(&self) -> &str {
        "biggest"
    }
    fn version(&self) -> u64 {
        1
    }
    fn apply(&mut self, _: &WriteTransaction, entries: &[Entry]) -> Result<(), Self::Error> {
        let bytes = entries.iter().map(|e| e.node.encoded_len()).sum();
        self.0
            .fetch_max(bytes, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
    fn clear(&mut self, _: &WriteTransaction) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// A batch is bounded by bytes as well as by nodes: 40 nodes of 1 MiB are applied in
/// batches of at most 4 MiB (+ one node), not all at once (which held a whole push of
/// 200 nodes of 4 MiB in memory: issue 8).
#[test]
fn batches_are_bounded_by_bytes_too() {
    let log = Log::memory(LogOptions::default()).unwrap();
    for i in 0..40u8 {
        log.append(vec![i; 1 << 20]).unwrap();
    }
    let biggest = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ix = Indexer::open(&log, Biggest(biggest.clone()), manual()).unwrap();
    assert_eq!(ix.catch_up().unwrap(), 40);
    let max = biggest.load(std::sync::atomic::Ordering::Relaxed);
    assert!(max >= 4 << 20, "batches of {max} bytes");
    assert!(max <= (4 << 20) + (2 << 20), "a batch of {max} bytes");
}
