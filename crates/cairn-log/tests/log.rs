//! The log's operations, end to end on the in-memory and the file backend.

use std::collections::{HashMap, HashSet};

use cairn_core::{Draft, Ed25519Verifier, Hash, Keypair, Limits, Node, Signer, VerifyError};
use cairn_log::{AddError, BatchEntry, ChangesQuery, Link, Log, LogOptions};
use futures_lite::StreamExt;
use proptest::prelude::*;

fn signed_log(seed: u8) -> Log {
    Log::memory(LogOptions::default().signer(Keypair::from_seed([seed; 32]))).unwrap()
}

#[test]
fn add_append_get_heads_len() {
    let log = signed_log(1);
    assert!(log.is_empty());
    let a = log.append(b"a".to_vec()).unwrap();
    assert_eq!(a.change, 1);
    assert!(a.node.links().is_empty());
    let b = log.add([a.node.key()], b"b".to_vec()).unwrap();
    let c = log.add([a.node.key()], b"c".to_vec()).unwrap();
    let mut heads = vec![b.node.key(), c.node.key()];
    heads.sort();
    assert_eq!(log.heads().unwrap(), heads);
    let d = log.append(b"d".to_vec()).unwrap();
    assert_eq!(d.node.links(), &heads[..]);
    assert_eq!(log.heads().unwrap(), vec![d.node.key()]);
    assert_eq!(log.len(), 4);
    let got = log.get(&c.node.key()).unwrap().unwrap();
    assert_eq!(got, c);
    assert_eq!(
        got.node.author(),
        Some(&Keypair::from_seed([1; 32]).public())
    );
    assert!(log.has(&a.node.key()).unwrap());
    assert!(log.get(&Hash([0; 32])).unwrap().is_none());
    // Adding the same node again is idempotent.
    let again = log.add([a.node.key()], b"b".to_vec()).unwrap();
    assert_eq!(again.change, b.change);
    assert_eq!(log.len(), 4);
}

#[test]
fn missing_link_is_a_typed_error_and_stores_nothing() {
    let log = signed_log(1);
    log.append(b"x".to_vec()).unwrap();
    let missing = Hash([7; 32]);
    match log.add([missing], b"y".to_vec()) {
        Err(AddError::MissingLink { link, .. }) => assert_eq!(link, missing),
        other => panic!("expected MissingLink, got {other:?}"),
    }
    assert_eq!(log.len(), 1);
}

#[test]
fn batch_links_earlier_entries_and_is_all_or_nothing() {
    let log = signed_log(2);
    let root = log.append(b"root".to_vec()).unwrap();
    let entries: Vec<BatchEntry> = (0..600)
        .map(|i| {
            let link = if i == 0 {
                Link::Node(root.node.key())
            } else {
                Link::Earlier(i - 1)
            };
            BatchEntry::new([link], format!("v{i}"))
        })
        .collect();
    let stored = log.batch(entries).unwrap();
    assert_eq!(stored.len(), 600);
    assert_eq!(stored.last().unwrap().change, 601);
    assert_eq!(log.heads().unwrap(), vec![stored[599].node.key()]);
    Ed25519Verifier::strict()
        .allow([Keypair::from_seed([2; 32]).public()])
        .verify_all(stored.iter().map(|e| &e.node));

    // One bad link in the middle: nothing of the batch is stored.
    let bad = vec![
        BatchEntry::new([Link::Node(root.node.key())], "ok"),
        BatchEntry::new([Link::Node(Hash([9; 32]))], "bad"),
    ];
    assert!(matches!(log.batch(bad), Err(AddError::MissingLink { .. })));
    let forward = vec![BatchEntry::new([Link::Earlier(0)], "self")];
    assert!(matches!(
        log.batch(forward),
        Err(AddError::BadBatchLink {
            entry: 0,
            target: 0
        })
    ));
    assert_eq!(log.len(), 601);
}

trait VerifyAll {
    fn verify_all<'a>(&self, nodes: impl Iterator<Item = &'a Node>);
}
impl VerifyAll for Ed25519Verifier {
    fn verify_all<'a>(&self, nodes: impl Iterator<Item = &'a Node>) {
        use cairn_core::Verify;
        for n in nodes {
            self.verify(n).unwrap();
        }
    }
}

#[test]
fn verifying_log_rejects_bad_nodes_with_typed_errors() {
    let writer = Keypair::from_seed([3; 32]);
    let stranger = Keypair::from_seed([4; 32]);
    let log = Log::memory(
        LogOptions::default()
            .verifier(Ed25519Verifier::strict().allow([writer.public()]))
            .limits(Limits {
                max_value_len: 100,
                max_links: 8,
            }),
    )
    .unwrap();
    let l = Limits::default();
    let good = Node::signed([], b"good".to_vec(), &writer, &l).unwrap();
    let unsigned = Node::unsigned([], b"u".to_vec(), &l).unwrap();
    let by_stranger = Node::signed([], b"s".to_vec(), &stranger, &l).unwrap();
    let draft = Draft::new([], Some(writer.public()), b"forged".to_vec(), &l).unwrap();
    let forged = draft
        .clone()
        .finish(Some(stranger.sign(&draft.key())))
        .unwrap();
    let big = Node::signed([], vec![0; 101], &writer, &l).unwrap();
    let orphan = Node::signed([Hash([1; 32])], b"o".to_vec(), &writer, &l).unwrap();

    assert!(matches!(
        log.insert(vec![good.clone(), unsigned]),
        Err(AddError::Verify(VerifyError::Unsigned(_)))
    ));
    assert!(matches!(
        log.insert(vec![good.clone(), by_stranger]),
        Err(AddError::Verify(VerifyError::UnknownAuthor { .. }))
    ));
    assert!(matches!(
        log.insert(vec![good.clone(), forged]),
        Err(AddError::Verify(VerifyError::BadSignature { .. }))
    ));
    assert!(matches!(
        log.insert(vec![good.clone(), big]),
        Err(AddError::Build(cairn_core::BuildError::ValueTooLarge {
            len: 101,
            max: 100
        }))
    ));
    assert!(matches!(
        log.insert(vec![good.clone(), orphan]),
        Err(AddError::MissingLink { .. })
    ));
    assert_eq!(log.len(), 0, "nothing of a refused batch is stored");
    // A wrong hash is caught when the bytes are decoded against the expected key.
    let bytes = good.encode();
    assert!(matches!(
        Node::decode_expecting(&bytes, &Hash([0; 32]), log.limits()),
        Err(cairn_core::DecodeError::WrongHash { .. })
    ));
    log.insert(vec![good]).unwrap();
    assert_eq!(log.len(), 1);
}

#[test]
fn a_log_without_signer_writes_unsigned_nodes() {
    let log = Log::memory(LogOptions::default()).unwrap();
    let e = log.append(b"plain".to_vec()).unwrap();
    assert!(e.node.author().is_none() && e.node.signature().is_none());
}

#[test]
fn changes_ranges() {
    let log = signed_log(5);
    for i in 0..2000u32 {
        log.append(i.to_le_bytes().to_vec()).unwrap();
    }
    let changes = |q| -> Vec<u64> { log.changes(q).map(|e| e.unwrap().change).collect() };
    assert_eq!(changes(ChangesQuery::all()), (1..=2000).collect::<Vec<_>>());
    assert_eq!(
        changes(ChangesQuery::all().since(1990)),
        (1991..=2000).collect::<Vec<_>>()
    );
    assert_eq!(
        changes(ChangesQuery::all().since(10).until(20)),
        (11..=20).collect::<Vec<_>>()
    );
    assert_eq!(
        changes(ChangesQuery::all().since(600).limit(3)),
        vec![601, 602, 603]
    );
    assert_eq!(changes(ChangesQuery::all().since(2000)), Vec::<u64>::new());
    assert_eq!(changes(ChangesQuery::all().limit(0)), Vec::<u64>::new());
}

#[test]
fn live_tail_blocking_and_async() {
    let log = signed_log(6);
    log.append(b"first".to_vec()).unwrap();
    let reader = log.clone();
    let blocking = std::thread::spawn(move || {
        reader
            .changes(ChangesQuery::all().live().limit(5))
            .map(|e| e.unwrap().change)
            .collect::<Vec<_>>()
    });
    let sub_log = log.clone();
    let mut sub = sub_log.subscribe();
    let stream = log.changes_stream(ChangesQuery::all().live().limit(5));
    let writer = log.clone();
    let w = std::thread::spawn(move || {
        for i in 0..4u8 {
            std::thread::sleep(std::time::Duration::from_millis(5));
            writer.append(vec![i]).unwrap();
        }
    });
    let got: Vec<u64> =
        futures_lite::future::block_on(stream.map(|e| e.unwrap().change).collect::<Vec<_>>());
    assert_eq!(got, vec![1, 2, 3, 4, 5]);
    assert_eq!(blocking.join().unwrap(), vec![1, 2, 3, 4, 5]);
    let first_sub = futures_lite::future::block_on(sub.next()).unwrap().unwrap();
    assert_eq!(
        first_sub.change, 2,
        "subscribers see nodes added after subscribing"
    );
    w.join().unwrap();
}

#[test]
fn concurrent_appenders_share_commits_and_all_land() {
    let dir = tempdir("concurrent");
    let log = Log::open(
        dir.join("log.redb"),
        LogOptions::default().signer(Keypair::from_seed([8; 32])),
    )
    .unwrap();
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| log.append(format!("{t}-{i}")).unwrap().node.key())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let keys: Vec<Hash> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(log.len(), 800);
    for k in &keys {
        assert!(log.has(k).unwrap());
    }
    let changes: Vec<u64> = log
        .changes(ChangesQuery::all())
        .map(|e| e.unwrap().change)
        .collect();
    assert_eq!(changes, (1..=800).collect::<Vec<_>>(), "gap-free feed");
    // Shared commits: 800 write calls, carried by fewer storage commits (16 writers wait on
    // each fsync together).
    let (commits, requests) = log.commit_stats();
    assert_eq!(requests, 800);
    assert!(
        commits < requests,
        "{commits} commits for {requests} writes: none shared"
    );
    drop(log);
    let reopened = Log::open(dir.join("log.redb"), LogOptions::default()).unwrap();
    assert_eq!(reopened.len(), 800);
    std::fs::remove_dir_all(dir).unwrap();
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("cairn-log-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Checks the log's invariants against its own feed: topological order, gap-free changes,
/// heads = nodes nothing links to.
pub fn check_invariants(log: &Log) -> Vec<Hash> {
    let mut seen: HashMap<Hash, u64> = HashMap::new();
    let mut linked: HashSet<Hash> = HashSet::new();
    let mut order = Vec::new();
    for (i, e) in log.changes(ChangesQuery::all()).enumerate() {
        let e = e.unwrap();
        assert_eq!(e.change, i as u64 + 1, "gap-free");
        for l in e.node.links() {
            assert!(
                seen.contains_key(l),
                "link stored before the node that links it"
            );
            linked.insert(*l);
        }
        seen.insert(e.node.key(), e.change);
        assert_eq!(log.get(&e.node.key()).unwrap().unwrap().change, e.change);
        order.push(e.node.key());
    }
    assert_eq!(seen.len() as u64, log.len());
    let mut heads: Vec<Hash> = seen
        .keys()
        .filter(|k| !linked.contains(k))
        .copied()
        .collect();
    heads.sort();
    assert_eq!(
        log.heads().unwrap(),
        heads,
        "heads are exactly the unlinked nodes"
    );
    order
}

#[derive(Debug, Clone)]
enum Op {
    /// Add a node linking a random subset of existing nodes (indices modulo the count).
    Add(Vec<usize>),
    /// A batch of nodes, each linking random earlier nodes or earlier batch entries; with a
    /// bad link at `bad` if set.
    Batch(Vec<Vec<usize>>, Option<usize>),
}

fn arb_ops() -> impl Strategy<Value = Vec<Op>> {
    let links = proptest::collection::vec(any::<usize>(), 0..4);
    let op = prop_oneof![
        3 => links.clone().prop_map(Op::Add),
        1 => (proptest::collection::vec(links, 1..8), proptest::option::of(any::<usize>()))
            .prop_map(|(b, bad)| Op::Batch(b, bad)),
    ];
    proptest::collection::vec(op, 1..60)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_dags_keep_the_invariants(ops in arb_ops()) {
        let log = signed_log(9);
        let mut keys: Vec<Hash> = Vec::new();
        for (n, op) in ops.into_iter().enumerate() {
            match op {
                Op::Add(picks) => {
                    let links: Vec<Hash> = if keys.is_empty() { vec![] } else {
                        picks.iter().map(|p| keys[p % keys.len()]).collect()
                    };
                    let e = log.add(links, format!("n{n}")).unwrap();
                    keys.push(e.node.key());
                }
                Op::Batch(entries, bad) => {
                    let before = log.len();
                    let count = entries.len();
                    let batch: Vec<BatchEntry> = entries.into_iter().enumerate().map(|(i, picks)| {
                        let links = picks.iter().map(|p| {
                            // Half of the picks link earlier entries of the batch.
                            if i > 0 && p % 2 == 0 { Link::Earlier(p / 2 % i) }
                            else if keys.is_empty() { Link::Earlier(usize::MAX) }
                            else { Link::Node(keys[p % keys.len()]) }
                        }).filter(|l| *l != Link::Earlier(usize::MAX));
                        let mut links: Vec<Link> = links.collect();
                        if bad.map(|b| b % count) == Some(i) {
                            links.push(Link::Node(Hash([0xEE; 32])));
                        }
                        BatchEntry::new(links, format!("b{n}-{i}"))
                    }).collect();
                    match log.batch(batch) {
                        Ok(stored) => {
                            prop_assert!(bad.is_none());
                            keys.extend(stored.iter().map(|e| e.node.key()));
                        }
                        Err(AddError::MissingLink { .. }) => {
                            prop_assert!(bad.is_some());
                            prop_assert_eq!(log.len(), before, "all or nothing");
                        }
                        Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
                    }
                }
            }
        }
        let order = check_invariants(&log);
        prop_assert_eq!(order.len(), keys.len());
    }
}

/// Polls all futures on this thread until every one is done.
fn join_all<T>(futs: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = T> + '_>>>) -> Vec<T> {
    let mut futs: Vec<_> = futs.into_iter().map(Some).collect();
    let mut out: Vec<Option<T>> = futs.iter().map(|_| None).collect();
    futures_lite::future::block_on(std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if let Some(fut) = f {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *o = Some(v);
                        *f = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    }));
    out.into_iter().map(|o| o.unwrap()).collect()
}

#[test]
fn async_writers_share_commits_without_a_thread_each() {
    let dir = tempdir("async");
    let log = Log::open(
        dir.join("log.redb"),
        LogOptions::default().signer(Keypair::from_seed([12; 32])),
    )
    .unwrap();
    // 64 writers as futures on one thread, plus blocking writers on other threads at once.
    let blocking: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    log.append(format!("thread {t} {i}")).unwrap();
                }
            })
        })
        .collect();
    let futs: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = Vec<Hash>>>>> = (0..64)
        .map(|w| {
            let log = log.clone();
            Box::pin(async move {
                let mut prev: Option<Hash> = None;
                let mut keys = Vec::new();
                for i in 0..10 {
                    let e = log.add_async(prev, format!("w{w}-{i}")).await.unwrap();
                    prev = Some(e.node.key());
                    keys.push(e.node.key());
                }
                keys
            }) as _
        })
        .collect();
    let keys: Vec<Hash> = join_all(futs).into_iter().flatten().collect();
    for b in blocking {
        b.join().unwrap();
    }
    assert_eq!(keys.len(), 640);
    assert_eq!(log.len(), 740);
    let (commits, requests) = log.commit_stats();
    assert!(
        commits < requests,
        "writes shared commits ({commits} for {requests})"
    );
    for k in &keys {
        assert!(log.has(k).unwrap());
    }
    check_invariants(&log);
    // Errors come back typed through the async path too.
    let missing = Hash([5; 32]);
    assert!(matches!(
        futures_lite::future::block_on(log.add_async([missing], b"x".to_vec())),
        Err(AddError::MissingLink { .. })
    ));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn check_then_insert_checked_keeps_each_logs_policy() {
    let l = Limits::default();
    let unsigned = Node::unsigned([], b"u".to_vec(), &l).unwrap();
    let signed = Node::signed([], b"s".to_vec(), &Keypair::from_seed([4; 32]), &l).unwrap();
    let permissive = Log::memory(LogOptions::default()).unwrap();
    let strict = Log::memory(LogOptions::default().verifier(Ed25519Verifier::strict())).unwrap();

    // Checked by the permissive log: fine there, checked again (and refused) by the strict one.
    let checked = permissive.check(vec![unsigned.clone()]).unwrap();
    assert!(matches!(
        strict.insert_checked(checked),
        Err(AddError::Verify(VerifyError::Unsigned(_)))
    ));
    assert_eq!(strict.len(), 0);
    let checked = permissive.check(vec![unsigned.clone()]).unwrap();
    assert_eq!(permissive.insert_checked(checked).unwrap()[0].change, 1);

    // The strict log refuses at `check` and accepts the signed node, deferred then synced.
    assert!(strict.check(vec![unsigned]).is_err());
    let checked = strict.check(vec![signed.clone()]).unwrap();
    assert_eq!(checked.nodes().len(), 1);
    let inserted = strict.insert_deferred(checked).unwrap();
    assert_eq!(inserted.new, 1);
    assert_eq!(inserted.entries[0].node.key(), signed.key());
    // The same node again is stored already: not new.
    let again = strict
        .insert_deferred(strict.check(vec![signed.clone()]).unwrap())
        .unwrap();
    assert_eq!((again.new, again.entries[0].change), (0, 1));
    assert!(strict.has(&signed.key()).unwrap());
    strict.sync().unwrap();
    strict.sync().unwrap();
}

#[test]
fn append_all_chains_and_get_changes_reads_by_change() {
    let log = signed_log(6);
    let root = log.append(b"root".to_vec()).unwrap();
    let side = log.add([root.node.key()], b"side".to_vec()).unwrap();
    // Two heads (root's child "side" and nothing else): the chain's first links every head.
    let chain = log
        .append_all(vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()])
        .unwrap();
    assert_eq!(chain[0].node.links(), &[side.node.key()]);
    assert_eq!(chain[1].node.links(), &[chain[0].node.key()]);
    assert_eq!(chain[2].node.links(), &[chain[1].node.key()]);
    assert_eq!(log.heads().unwrap(), vec![chain[2].node.key()]);

    let wanted: Vec<(u64, Hash)> = chain.iter().map(|e| (e.change, e.node.key())).collect();
    let got = log.get_changes(&wanted).unwrap();
    for (e, g) in chain.iter().zip(&got) {
        assert_eq!(g.as_ref().unwrap(), &e.node);
    }
    assert_eq!(log.get_changes(&[(99, Hash([0; 32]))]).unwrap(), vec![None]);
}
