//! Crash safety with a fault-injecting backend: write until an injected I/O fault (the
//! process "dies" part-way through a commit), then lose any subset of the unsynced writes
//! (power loss), reopen, and check that every acknowledged write is there and the log is whole.

use cairn_core::{Hash, Keypair};
use cairn_log::testing::CrashBackend;
use cairn_log::{BatchEntry, ChangesQuery, Link, Log, LogOptions};
use proptest::prelude::*;

fn opts(quick_repair: bool) -> LogOptions {
    LogOptions::default()
        .signer(Keypair::from_seed([11; 32]))
        .quick_repair(quick_repair)
}

/// Small deterministic generator so each case is reproducible from its seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn check_whole(log: &Log, acked: &[Hash]) {
    for k in acked {
        assert!(
            log.has(k).unwrap(),
            "acknowledged node {k} lost in the crash"
        );
    }
    let mut n = 0;
    for (i, e) in log.changes(ChangesQuery::all()).enumerate() {
        let e = e.unwrap();
        assert_eq!(e.change, i as u64 + 1);
        for l in e.node.links() {
            assert!(log.change_of(l).unwrap().unwrap() < e.change);
        }
        n += 1;
    }
    assert_eq!(n, log.len());
    for h in log.heads().unwrap() {
        assert!(log.has(&h).unwrap());
    }
}

fn run_case(seed: u64, fail_after: u64, keep_mode: u8) {
    let mut rng = Rng(seed | 1);
    let (backend, handle) = CrashBackend::new();
    // Both commit protocols: two-phase with saved allocator state, and one-phase with checksums.
    let quick_repair = seed.is_multiple_of(2);
    let log = Log::with_backend(backend, opts(quick_repair)).unwrap();
    let mut acked: Vec<Hash> = Vec::new();
    handle.fail_after(fail_after);
    // Write until the fault stops us: single appends and batches, some threads at once.
    'outer: for round in 0..1000u32 {
        let r = rng.next();
        let res = if r.is_multiple_of(4) {
            let n = 1 + (r >> 8) as usize % 40;
            let entries = (0..n)
                .map(|i| {
                    let links = if i == 0 {
                        vec![]
                    } else {
                        vec![Link::Earlier(i - 1)]
                    };
                    BatchEntry::new(links, format!("b{round}-{i}"))
                })
                .collect();
            log.batch(entries)
                .map(|es| es.into_iter().map(|e| e.node.key()).collect())
        } else if r % 4 == 1 {
            let handles: Vec<_> = (0..4)
                .map(|t| {
                    let log = log.clone();
                    std::thread::spawn(move || log.append(format!("t{round}-{t}")))
                })
                .collect();
            let mut keys = Vec::new();
            let mut err = None;
            for h in handles {
                match h.join().unwrap() {
                    Ok(e) => keys.push(e.node.key()),
                    Err(e) => err = Some(e),
                }
            }
            acked.extend(keys.iter().copied());
            match err {
                Some(e) => Err(e),
                None => Ok(vec![]),
            }
        } else {
            log.append(format!("a{round}")).map(|e| vec![e.node.key()])
        };
        match res {
            Ok(keys) => acked.extend(keys),
            Err(_) => break 'outer,
        }
    }
    drop(log);
    let unsynced = handle.unsynced_ops();
    let image = handle.crash(|i| match keep_mode {
        0 => false,                       // lose everything unsynced
        1 => true,                        // everything made it to disk
        _ => (seed >> (i % 61)) & 1 == 1, // an arbitrary subset
    });
    let (backend, _h) = CrashBackend::from_image(image);
    let log = Log::with_backend(backend, opts(quick_repair)).unwrap_or_else(|e| {
        panic!("store does not open after crash (seed {seed}, unsynced {unsynced}): {e}")
    });
    check_whole(&log, &acked);
    // The reopened log keeps working.
    let e = log.append(b"after".to_vec()).unwrap();
    assert_eq!(e.change, log.len());
}

#[test]
fn crash_at_many_points() {
    // Fault points spread from the first commit to well into a run of writes.
    for (i, fail_after) in (0..400u64)
        .step_by(7)
        .chain((400..6000).step_by(211))
        .enumerate()
    {
        for keep in 0..3u8 {
            run_case(
                0x9E37_79B9_7F4A_7C15 ^ (i as u64 * 31 + keep as u64),
                fail_after,
                keep,
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]
    #[test]
    fn crash_anywhere(seed: u64, fail_after in 0u64..4000, keep in 0u8..3) {
        run_case(seed, fail_after, keep);
    }
}

/// Deferred inserts (replication's bulk path) mixed with durable appends and `sync`: after a
/// crash anywhere, every deferred node followed by a successful `sync` or durable commit is
/// there, every acknowledged durable write is there, and the log is whole (what was lost is
/// a suffix of deferred commits, never a hole).
fn run_deferred_case(seed: u64, fail_after: u64, keep_mode: u8) {
    let mut rng = Rng(seed | 1);
    // The nodes to import, made by another log: a chain with side branches.
    let source = Log::memory(opts(false)).unwrap();
    let mut prev = source.append(b"root".to_vec()).unwrap().node.key();
    let mut imported = vec![source.get(&prev).unwrap().unwrap().node];
    for i in 0..300u32 {
        let e = source.add([prev], format!("s{i}")).unwrap();
        if i % 3 != 0 {
            prev = e.node.key();
        }
        imported.push(e.node);
    }
    let (backend, handle) = CrashBackend::new();
    let quick_repair = seed.is_multiple_of(2);
    let log = Log::with_backend(backend, opts(quick_repair)).unwrap();
    let mut acked: Vec<Hash> = Vec::new();
    let mut deferred: Vec<Hash> = Vec::new();
    handle.fail_after(fail_after);
    let mut next = 0;
    while next < imported.len() {
        let r = rng.next();
        let res = match r % 5 {
            0 => log.sync().map_err(cairn_log::AddError::from).map(|()| {
                acked.append(&mut deferred);
            }),
            1 => log.append(format!("local{next}")).map(|e| {
                acked.append(&mut deferred);
                acked.push(e.node.key());
            }),
            _ => {
                let n = (1 + (r >> 8) as usize % 40).min(imported.len() - next);
                let batch = imported[next..next + n].to_vec();
                next += n;
                log.check(batch)
                    .and_then(|c| log.insert_deferred(c))
                    .map(|ins| deferred.extend(ins.entries.iter().map(|e| e.node.key())))
            }
        };
        if res.is_err() {
            break;
        }
    }
    drop(log);
    let image = handle.crash(|i| match keep_mode {
        0 => false,
        1 => true,
        _ => (seed >> (i % 61)) & 1 == 1,
    });
    let (backend, _h) = CrashBackend::from_image(image);
    let log = Log::with_backend(backend, opts(quick_repair))
        .unwrap_or_else(|e| panic!("store does not open after crash (seed {seed}): {e}"));
    check_whole(&log, &acked);
    log.append(b"after".to_vec()).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn crash_with_deferred_inserts(seed: u64, fail_after in 0u64..3000, keep in 0u8..3) {
        run_deferred_case(seed, fail_after, keep);
    }
}

#[test]
fn deferred_inserts_without_a_crash_are_durable_after_sync() {
    for keep in 0..2u8 {
        run_deferred_case(7 + u64::from(keep), u64::MAX / 2, keep);
    }
}

/// A durable write (`insert`, `add`) of nodes that exist only through an unsynced
/// `insert_deferred` finds them "already stored": its Ok must still mean they are on disk.
#[test]
fn durable_write_of_a_deferred_node_is_durable() {
    let source = Log::memory(opts(false)).unwrap();
    let root = source.append(b"root".to_vec()).unwrap().node;
    let child = source.add([root.key()], b"child".to_vec()).unwrap().node;
    for durable_call in 0..2 {
        let (backend, handle) = CrashBackend::new();
        let log = Log::with_backend(backend, opts(false)).unwrap();
        let checked = log.check(vec![root.clone(), child.clone()]).unwrap();
        assert_eq!(log.insert_deferred(checked).unwrap().new, 2);
        // A crash now loses them: the deferred insert is not durable yet.
        let (b, _h) = CrashBackend::from_image(handle.crash(|_| false));
        assert!(
            !Log::with_backend(b, opts(false))
                .unwrap()
                .has(&root.key())
                .unwrap()
        );
        if durable_call == 0 {
            // Everything already stored: nothing new to commit.
            let entries = log.insert(vec![root.clone(), child.clone()]).unwrap();
            assert_eq!(entries.len(), 2);
        } else {
            // `add` of a node the log already holds (the same signer, links and value).
            let own = Log::memory(opts(false)).unwrap();
            let again = own.append(b"root".to_vec()).unwrap().node;
            assert_eq!(again.key(), root.key());
            let e = log.add([], b"root".to_vec()).unwrap();
            assert_eq!(e.node.key(), root.key());
        }
        // Power loss right after the Ok (before the store is closed, which would sync):
        // only what was synced survives.
        let image = handle.crash(|_| false);
        drop(log);
        let (backend, _h) = CrashBackend::from_image(image);
        let log = Log::with_backend(backend, opts(false)).unwrap();
        assert!(
            log.has(&root.key()).unwrap(),
            "case {durable_call}: root lost"
        );
        if durable_call == 0 {
            assert!(log.has(&child.key()).unwrap(), "child lost");
        }
    }
}
