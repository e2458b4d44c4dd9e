//! Property tests: random puts and deletes with random links on several replicas, exchanged
//! by union in random orders, give the same kv state everywhere — the state the supersede
//! rule (crate docs) gives when evaluated directly on the set of nodes; and a view rebuilt from
//! scratch equals the incrementally built one. Broken kv nodes (values that do not decode)
//! are among the writes: they supersede and are superseded like any kv node.

use std::collections::{BTreeMap, BTreeSet};

use cairn_kv::{Head, Kv, ListOptions, Values, WriteOptions, check_doc};
use cairn_log::core::Hash;
use cairn_log::{ChangesQuery, Log, LogOptions};
use cairn_view::IndexerOptions;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value;

const KEYS: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone)]
enum Op {
    /// A write on a replica: put (or delete) a key with default or random explicit links.
    Write {
        replica: Index,
        key: usize,
        del: bool,
        links: Option<Vec<Index>>,
    },
    /// Sends `count` of the nodes `from` has and `to` lacks, in `from`'s changes order.
    Push {
        from: Index,
        to: Index,
        count: usize,
    },
    /// A node that is not a kv document.
    Noise { replica: Index },
    /// A kv node whose document is not well-formed, written to the log directly.
    Poison {
        replica: Index,
        key: usize,
        which: Index,
        links: Vec<Index>,
    },
}

/// Documents with a valid key whose value or fields do not decode (`{key}` is the key).
const POISON: [&[u8]; 6] = [
    br#"{"k":"{key}","v":1e400}"#,
    br#"{"k":"{key}","v":"\ud800"}"#,
    b"{\"k\":\"{key}\",\"v\":\"\xff\"}",
    br#"{"d":"{key}","x":[-1e999]}"#,
    br#"{"k":"{key}","v":1,"v2":{"a":1E+400}}"#,
    br#"{"k":"{key}","v":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"#,
];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (any::<Index>(), 0..KEYS.len(), prop::bool::weighted(0.25),
              prop::option::weighted(0.4, prop::collection::vec(any::<Index>(), 0..4)))
            .prop_map(|(replica, key, del, links)| Op::Write { replica, key, del, links }),
        2 => (any::<Index>(), any::<Index>(), 1usize..8)
            .prop_map(|(from, to, count)| Op::Push { from, to, count }),
        1 => any::<Index>().prop_map(|replica| Op::Noise { replica }),
        1 => (any::<Index>(), 0..KEYS.len(), any::<Index>(),
              prop::collection::vec(any::<Index>(), 0..3))
            .prop_map(|(replica, key, which, links)| Op::Poison { replica, key, which, links }),
    ]
}

struct Replica {
    log: Log,
    kv: Kv,
}

fn replica() -> Replica {
    let log = Log::memory(LogOptions::default()).unwrap();
    let kv = Kv::open_with(
        &log,
        "kv",
        IndexerOptions::default().background(false).batch(3),
    )
    .unwrap();
    Replica { log, kv }
}

fn nodes(log: &Log) -> Vec<cairn_log::core::Node> {
    log.changes(ChangesQuery::all())
        .map(|e| e.unwrap().node)
        .collect()
}

fn push(from: &Log, to: &Log, count: usize) {
    let missing: Vec<_> = nodes(from)
        .into_iter()
        .filter(|n| !to.has(&n.key()).unwrap())
        .take(count)
        .collect();
    to.insert(missing).unwrap();
}

/// The supersede rule evaluated directly on a set of nodes: a kv node is a head of its key
/// iff no kv node of the same key links it.
fn model(all: &[cairn_log::core::Node]) -> BTreeMap<String, Values> {
    let docs: Vec<_> = all
        .iter()
        .filter_map(|n| check_doc(n.value()).map(|d| (n, d)))
        .collect();
    let mut out: BTreeMap<String, Values> = BTreeMap::new();
    for (n, d) in &docs {
        let superseded = docs
            .iter()
            .any(|(m, e)| e.key == d.key && m.links().contains(&n.key()));
        if superseded {
            continue;
        }
        let head = match &d.head {
            Head::Value(v) => Head::Value(serde_json::from_str::<Value>(v.get()).unwrap()),
            Head::Deleted => Head::Deleted,
            Head::Broken { reason } => Head::Broken {
                reason: reason.clone(),
            },
        };
        out.entry(d.key.to_string())
            .or_default()
            .insert(n.key(), head);
    }
    out
}

type State = (BTreeMap<String, Values>, BTreeMap<String, BTreeSet<Hash>>);

/// A replica's whole kv state: list() and the history of every key.
fn state(kv: &Kv) -> State {
    let list: BTreeMap<String, Values> = kv
        .list(ListOptions::default())
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            assert_eq!(r.links, r.values.keys().copied().collect::<Vec<_>>());
            (r.key, r.values)
        })
        .collect();
    let history = KEYS
        .iter()
        .map(|k| {
            let h = kv.history(k).unwrap();
            // Newest first: a node never comes after a node it links to.
            for (i, e) in h.iter().enumerate() {
                for later in &h[i + 1..] {
                    assert!(!later.links.contains(&e.link));
                }
            }
            (k.to_string(), h.into_iter().map(|e| e.link).collect())
        })
        .collect();
    (list, history)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn replicas_converge_to_the_model(n in 2usize..5, ops in prop::collection::vec(op(), 1..60)) {
        let rs: Vec<Replica> = (0..n).map(|_| replica()).collect();
        let mut serial = 0u64;
        for op in ops {
            match op {
                Op::Write { replica, key, del, links } => {
                    let r = &rs[replica.index(n)];
                    let known = nodes(&r.log);
                    let links = links.map(|ix| {
                        if known.is_empty() {
                            Vec::new()
                        } else {
                            ix.iter().map(|i| known[i.index(known.len())].key()).collect()
                        }
                    });
                    let opts = WriteOptions { links, fields: None };
                    serial += 1;
                    if del {
                        r.kv.del_with(KEYS[key], &opts).unwrap();
                    } else {
                        r.kv.put_with(KEYS[key], &serial, &opts).unwrap();
                    }
                }
                Op::Push { from, to, count } => {
                    let (f, t) = (from.index(n), to.index(n));
                    if f != t {
                        push(&rs[f].log, &rs[t].log, count);
                    }
                }
                Op::Noise { replica } => {
                    serial += 1;
                    rs[replica.index(n)].log.append(format!("noise {serial}")).unwrap();
                }
                Op::Poison { replica, key, which, links } => {
                    let r = &rs[replica.index(n)];
                    let known = nodes(&r.log);
                    let links: Vec<Hash> = if known.is_empty() {
                        Vec::new()
                    } else {
                        links.iter().map(|i| known[i.index(known.len())].key()).collect()
                    };
                    let template = POISON[which.index(POISON.len())];
                    let at = template.windows(5).position(|w| w == b"{key}").unwrap();
                    let mut doc = template[..at].to_vec();
                    doc.extend_from_slice(KEYS[key].as_bytes());
                    doc.extend_from_slice(&template[at + 5..]);
                    // Distinct nodes: serial in a field.
                    serial += 1;
                    doc.splice(1..1, format!("\"n\":{serial},").into_bytes());
                    prop_assert!(check_doc(&doc).is_some_and(|d| d.head.broken().is_some()));
                    r.log.add(links, doc).unwrap();
                }
            }
            // Reads in between exercise incremental application.
            if serial.is_multiple_of(5) {
                rs[0].kv.get("a").unwrap();
            }
        }
        // Exchange everything.
        for _ in 0..2 {
            for i in 0..n {
                for j in 0..n {
                    if i != j {
                        push(&rs[i].log, &rs[j].log, usize::MAX);
                    }
                }
            }
        }
        let all = nodes(&rs[0].log);
        let expected = model(&all);
        let first = state(&rs[0].kv);
        prop_assert_eq!(&first.0, &expected);
        for r in &rs[1..] {
            prop_assert_eq!(r.log.len(), rs[0].log.len());
            let s = state(&r.kv);
            prop_assert_eq!(&s, &first);
            for k in KEYS {
                prop_assert_eq!(r.kv.get(k).unwrap(), expected.get(k).cloned().unwrap_or_default());
            }
        }
        // History holds every kv node of the key.
        for k in KEYS {
            let count = all.iter().filter(|n| check_doc(n.value()).is_some_and(|d| d.key == k)).count();
            prop_assert_eq!(first.1[k].len(), count);
        }
        // A rebuilt view equals the incrementally built one.
        rs[1].kv.indexer().rebuild().unwrap();
        prop_assert_eq!(state(&rs[1].kv), first);
    }
}

/// A random put, delete or two-row batch, with default or random explicit links.
fn write(
    kv: &Kv,
    log: &Log,
    rnd: &mut impl FnMut(u64) -> u64,
    serial: u64,
) -> Result<(), cairn_kv::WriteError> {
    let key = KEYS[rnd(3) as usize];
    let known = nodes(log);
    let links = (rnd(3) == 0 && !known.is_empty())
        .then(|| vec![known[rnd(known.len() as u64) as usize].key()]);
    let opts = WriteOptions {
        links,
        fields: None,
    };
    if rnd(4) == 0 {
        kv.del_with(key, &opts).map(drop)
    } else if rnd(5) == 0 {
        kv.batch(vec![
            cairn_kv::BatchOp::put(key, serial),
            cairn_kv::BatchOp::put(KEYS[rnd(3) as usize], serial),
        ])
        .map(drop)
    } else {
        kv.put_with(key, &serial, &opts).map(drop)
    }
}

/// Crashes while writing and indexing (every I/O call fails after a random count, then power
/// loss keeps a random subset of the unsynced writes), many times: after each reopen the kv
/// view must equal the supersede rule evaluated on the nodes that survived — nothing skipped,
/// nothing applied twice.
#[test]
fn kv_view_is_consistent_with_the_log_after_crashes() {
    use cairn_log::testing::CrashBackend;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut image = Vec::new();
    let mut serial = 0u64;
    let mut faults = (0, 0);
    for round in 0..40 {
        let (backend, handle) = CrashBackend::from_image(image.clone());
        let log = Log::with_backend(backend, LogOptions::default()).unwrap();
        let opts = IndexerOptions::default()
            .background(false)
            .batch(1 + rnd(20))
            .sync_every(1 + rnd(8));
        let kv = Kv::open_with(&log, "kv", opts).unwrap();
        kv.indexer().catch_up().unwrap();
        let expected = model(&nodes(&log));
        assert_eq!(state(&kv).0, expected, "round {round}");
        // Nodes for the view to index (paused, so the writes fork freely), then a fault
        // somewhere in indexing them or in the writes after.
        kv.indexer().pause();
        for _ in 0..10 + rnd(60) {
            serial += 1;
            write(&kv, &log, &mut rnd, serial).unwrap();
        }
        kv.indexer().resume();
        handle.fail_after(rnd(60));
        for _ in 0..300 {
            if kv.indexer().catch_up().is_err() {
                faults.1 += 1;
                break;
            }
            serial += 1;
            match write(&kv, &log, &mut rnd, serial) {
                Ok(()) => {}
                // A write without links brings the view up to date first.
                Err(cairn_kv::WriteError::Index(_)) => {
                    faults.1 += 1;
                    break;
                }
                Err(_) => {
                    faults.0 += 1;
                    break;
                }
            }
        }
        drop(kv);
        drop(log);
        let keep_all = rnd(3) == 0;
        image = handle.crash(|_| keep_all || rnd(2) == 0);
    }
    let (backend, _) = CrashBackend::from_image(image);
    let log = Log::with_backend(backend, LogOptions::default()).unwrap();
    let kv = Kv::open_with(&log, "kv", IndexerOptions::default().background(false)).unwrap();
    assert_eq!(state(&kv).0, model(&nodes(&log)));
    assert!(log.len() > 50, "the log grew across rounds: {}", log.len());
    eprintln!("faults: {} in writes, {} in indexing", faults.0, faults.1);
    assert!(
        faults.0 >= 10 && faults.1 >= 5,
        "faults hit both: {faults:?}"
    );
}
