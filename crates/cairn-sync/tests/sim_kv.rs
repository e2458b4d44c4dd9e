//! kv-level convergence: a deterministic, seeded simulation of 10–12 peers, each a real
//! [`Log`] (in memory, strict signatures) with a [`Kv`] store on top, synced pairwise by the
//! real [`Session`] over [`LogStore`] with bytes exchanged in memory — no sockets, no sleeps,
//! no background indexers (views advance by `catch_up` in the caller's thread).
//!
//! Peers write kv nodes: puts to a few shared keys without links (merging every head the peer
//! sees), with no links (a concurrent version: a fork), or with random links (old versions of
//! the key, other keys' nodes, non-kv nodes), deletes the same ways, atomic batches, documents
//! with extra fields, and non-kv nodes. Syncs go in random pairs and mode pairs, one-shot or
//! live, with random delivery order and chunking, random disconnects, and local kv writes
//! *while* a session runs (offered for live forwarding once the initial sync is complete, as
//! the driver's feed does). After gossip to convergence every peer must show the same kv
//! view — `list` and, for every key, `get` and `heads` (node hashes with their values or
//! tombstones) and the set of `history` — equal to the supersede rule evaluated directly on
//! the node set, and equal to a view rebuilt from scratch; one more write per key on one
//! peer, gossiped, must merge every fork everywhere.
//!
//! Run as a property test (`PROPTEST_CASES` raises the number of seeds); regression seeds are
//! kept below (and proptest keeps any seed it finds failing in
//! `tests/sim_kv.proptest-regressions`). A run is a function of its seed alone: local writes
//! first collect the store's pipelined inserts, so the heads they link never depend on thread
//! timing (`a_seed_replays_exactly`).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use cairn_core::{Ed25519Verifier, Hash, Keypair, Node};
use cairn_kv::{BatchOp, DocOp, Kv, ListOptions, Values, WriteOptions, parse_doc};
use cairn_log::{ChangesQuery, Log, LogOptions};
use cairn_sync::{Event, LogStore, Mode, Session, SessionOptions, SyncError, SyncStore};
use cairn_view::IndexerOptions;
use common::Rng;
use proptest::prelude::*;

/// Seeds that once failed, or that cover interesting paths; always run.
const REGRESSION_SEEDS: &[u64] = &[0, 1, 2, 3, 42, 0xdead_beef];

/// Few keys, so that peers write the same keys concurrently and fork them.
const KEYS: [&str; 4] = ["a", "b", "c", "d"];

/// One peer: a log signed with its own key, and the kv store over it.
struct Peer {
    log: Log,
    kv: Kv,
}

fn peer(i: usize, rng: &mut Rng) -> Peer {
    let log = Log::memory(
        LogOptions::default()
            .signer(Keypair::from_seed([i as u8 + 1; 32]))
            .verifier(Ed25519Verifier::strict()),
    )
    .unwrap();
    let kv = Kv::open_with(&log, "kv", indexer(rng)).unwrap();
    Peer { log, kv }
}

/// No background thread; small random batches, so catching up takes several transactions.
fn indexer(rng: &mut Rng) -> IndexerOptions {
    IndexerOptions::default()
        .background(false)
        .batch(1 + rng.below(8))
}

/// What the simulation exercised (summed over seeds by the fixed-seed test).
#[derive(Debug, Default, Clone, Copy)]
struct Coverage {
    /// Writes without links that superseded two heads or more (merges of forks).
    merges: u64,
    /// Writes with no or explicit links to a key that already had heads (new forks).
    forks: u64,
    deletes: u64,
    batches: u64,
    /// Local writes while a session was open.
    during_sessions: u64,
    /// Nodes offered for live forwarding.
    offered: u64,
    /// Most heads one key had on one peer before a write.
    max_heads: usize,
}

/// A random node of `log`, if any.
fn random_node(log: &Log, rng: &mut Rng) -> Option<Hash> {
    if log.is_empty() {
        return None;
    }
    let n = 1 + rng.below(log.len());
    let e = log
        .changes(ChangesQuery::all().since(n - 1).limit(1))
        .next()
        .unwrap()
        .unwrap();
    Some(e.node.key())
}

/// 0–3 random links: mostly versions of `key` (old ones fork), else any node of the log
/// (another key's node or a non-kv node: it supersedes nothing).
fn random_links(p: &Peer, key: &str, rng: &mut Rng) -> Vec<Hash> {
    let versions: Vec<Hash> =
        p.kv.history(key)
            .unwrap()
            .into_iter()
            .map(|e| e.link)
            .collect();
    let mut links = Vec::new();
    for _ in 0..rng.below(4) {
        if !versions.is_empty() && rng.chance(65) {
            links.push(versions[rng.below(versions.len() as u64) as usize]);
        } else if let Some(h) = random_node(&p.log, rng) {
            links.push(h);
        }
    }
    links
}

/// How a write picks its links.
fn links_choice(p: &Peer, key: &str, rng: &mut Rng, cov: &mut Coverage) -> Option<Vec<Hash>> {
    let heads = p.kv.heads(key).unwrap();
    cov.max_heads = cov.max_heads.max(heads.len());
    match rng.below(10) {
        // Supersede every current head of the key (merges forks).
        0..=5 => {
            if heads.len() >= 2 {
                cov.merges += 1;
            }
            None
        }
        // A concurrent version: links nothing.
        6 => {
            cov.forks += u64::from(!heads.is_empty());
            Some(Vec::new())
        }
        _ => {
            let links = random_links(p, key, rng);
            cov.forks += u64::from(!heads.is_empty() && !heads.iter().all(|h| links.contains(h)));
            Some(links)
        }
    }
}

/// One random local write on `p`; returns the nodes written, in change order.
fn write(p: &Peer, who: usize, rng: &mut Rng, serial: &mut u64, cov: &mut Coverage) -> Vec<Node> {
    *serial += 1;
    let value = format!("{who}:{serial}");
    let key = KEYS[rng.below(KEYS.len() as u64) as usize];
    let hashes: Vec<Hash> = match rng.below(20) {
        // A put.
        0..=10 => {
            let mut opts = WriteOptions {
                links: links_choice(p, key, rng, cov),
                fields: None,
            };
            if rng.chance(20) {
                opts = opts.field("by", who as u64);
            }
            vec![p.kv.put_with(key, &value, &opts).unwrap()]
        }
        // A delete (a tombstone: it removes what it links, nothing else).
        11..=14 => {
            cov.deletes += 1;
            let opts = WriteOptions {
                links: links_choice(p, key, rng, cov),
                fields: None,
            };
            vec![p.kv.del_with(key, &opts).unwrap()]
        }
        // An atomic batch of 2–4 rows, some to the same key.
        15..=17 => {
            cov.batches += 1;
            let ops = (0..2 + rng.below(3))
                .map(|i| {
                    let key = KEYS[rng.below(KEYS.len() as u64) as usize];
                    let op = if rng.chance(25) {
                        cov.deletes += 1;
                        BatchOp::del(key)
                    } else {
                        BatchOp::put(key, format!("{value}.{i}"))
                    };
                    if rng.chance(30) {
                        op.with(WriteOptions::default().links(random_links(p, key, rng)))
                    } else {
                        op
                    }
                })
                .collect();
            p.kv.batch(ops).unwrap()
        }
        // A node that is not a kv document (the store ignores it).
        _ => {
            let noise = match rng.below(3) {
                0 => format!("noise {value}"),
                1 => format!("{{\"x\":\"{value}\"}}"),
                _ => format!("{{\"k\":{serial},\"v\":1}}"),
            };
            vec![p.log.append(noise).unwrap().node.key()]
        }
    };
    hashes
        .iter()
        .map(|h| p.log.get(h).unwrap().unwrap().node)
        .collect()
}

/// A peer's whole kv view, canonically: key → head hash → value or tombstone, from `list`,
/// checked against `get` and `heads` of every key.
type View = BTreeMap<String, Values>;

fn view(kv: &Kv) -> View {
    let list: View = kv
        .list(ListOptions::default())
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            assert_eq!(r.links, r.values.keys().copied().collect::<Vec<_>>());
            assert!(!r.values.is_empty(), "a listed key has heads");
            (r.key, r.values)
        })
        .collect();
    let none = Values::default();
    for k in KEYS {
        let got = kv.get(k).unwrap();
        assert_eq!(&got, list.get(k).unwrap_or(&none));
        assert_eq!(
            kv.heads(k).unwrap(),
            got.keys().copied().collect::<Vec<_>>()
        );
    }
    assert!(list.keys().all(|k| KEYS.contains(&k.as_str())));
    list
}

/// Every kv node of each key (`history`), as sets (change numbers are local).
fn histories(kv: &Kv) -> BTreeMap<&'static str, BTreeSet<Hash>> {
    KEYS.iter()
        .map(|k| (*k, kv.history(k).unwrap().iter().map(|e| e.link).collect()))
        .collect()
}

fn nodes(log: &Log) -> Vec<Node> {
    log.changes(ChangesQuery::all())
        .map(|e| e.unwrap().node)
        .collect()
}

fn node_set(log: &Log) -> BTreeSet<Hash> {
    nodes(log).iter().map(Node::key).collect()
}

/// The supersede rule evaluated directly on a node set: a kv node is a head of its key iff no
/// kv node of the same key links it. Key → head → whether it is a tombstone.
fn model(all: &[Node]) -> BTreeMap<String, BTreeMap<Hash, bool>> {
    let docs: Vec<_> = all
        .iter()
        .filter_map(|n| parse_doc(n.value()).map(|d| (n, d)))
        .collect();
    let mut out: BTreeMap<String, BTreeMap<Hash, bool>> = BTreeMap::new();
    for (n, d) in &docs {
        let superseded = docs
            .iter()
            .any(|(m, e)| e.key == d.key && m.links().contains(&n.key()));
        if !superseded {
            out.entry(d.key.to_string())
                .or_default()
                .insert(n.key(), matches!(d.op, DocOp::Del));
        }
    }
    out
}

fn shape(v: &View) -> BTreeMap<String, BTreeMap<Hash, bool>> {
    v.iter()
        .map(|(k, vs)| {
            let heads = vs.iter().map(|(h, x)| (*h, x.is_deleted())).collect();
            (k.clone(), heads)
        })
        .collect()
}

/// One side of a pumped session: the peer, its session, and its local writes made while the
/// session was open, offered for live forwarding once the initial sync is complete (as the
/// driver's feed does).
struct Side<'p> {
    who: usize,
    peer: &'p Peer,
    s: Session<LogStore>,
    queue: Vec<Node>,
    wrote: bool,
    err: Option<SyncError>,
}

impl<'p> Side<'p> {
    fn open(who: usize, peer: &'p Peer, mode: Mode, live: bool, rng: &mut Rng) -> Side<'p> {
        let opts = SessionOptions {
            mode,
            live,
            ids_threshold: 1 + rng.below(24) as usize,
            insert_batch: 1 + rng.below(64) as usize,
            limits: *peer.log.limits(),
            ..SessionOptions::default()
        };
        let store = LogStore::with_options(&peer.log, indexer(rng)).unwrap();
        Side {
            who,
            peer,
            s: Session::new(store, opts).unwrap(),
            queue: Vec::new(),
            wrote: false,
            err: None,
        }
    }

    /// A local write now. Received batches still in the store's insert pipeline are
    /// collected first, so that the heads the write links do not depend on thread timing.
    fn write(&mut self, rng: &mut Rng, serial: &mut u64, cov: &mut Coverage) {
        self.s.store_mut().flush().unwrap();
        let nodes = write(self.peer, self.who, rng, serial, cov);
        self.queue.extend(nodes);
        self.wrote = true;
    }

    fn offer(&mut self, cov: &mut Coverage) {
        if self.s.is_complete() && !self.s.is_finished() && !self.queue.is_empty() {
            if self.s.is_live() {
                cov.offered += self.queue.len() as u64;
            }
            self.s.offer(std::mem::take(&mut self.queue));
        }
    }

    fn events(&mut self) {
        while let Some(ev) = self.s.poll_event() {
            if let Event::Failed(e) = ev {
                self.err.get_or_insert(e);
            }
        }
    }

    /// Collects pipelined inserts (a cut session may have some in flight).
    fn settle(&mut self) {
        let _ = self.s.store_mut().flush();
    }
}

/// Delivers bytes between `a` and `b` until both are quiet, in random order and random
/// chunks (each direction in order); breaks the connection after `cut` deliveries; with
/// `write_chance` (percent per delivery) one side writes locally meanwhile.
fn pump(
    a: &mut Side<'_>,
    b: &mut Side<'_>,
    rng: &mut Rng,
    cut: Option<usize>,
    write_chance: u64,
    serial: &mut u64,
    cov: &mut Coverage,
) {
    let (mut ab, mut ba) = (Vec::<u8>::new(), Vec::<u8>::new());
    let mut deliveries = 0usize;
    loop {
        a.offer(cov);
        b.offer(cov);
        while let Some(x) = a.s.poll_transmit() {
            ab.extend_from_slice(&x);
        }
        while let Some(x) = b.s.poll_transmit() {
            ba.extend_from_slice(&x);
        }
        a.events();
        b.events();
        if cut.is_some_and(|c| deliveries >= c) {
            let _ = a.s.handle_eof();
            let _ = b.s.handle_eof();
            break;
        }
        if ab.is_empty() && ba.is_empty() {
            if a.s.is_complete() && b.s.is_complete() && !a.s.is_live() {
                let _ = a.s.handle_eof();
                let _ = b.s.handle_eof();
            }
            break;
        }
        if rng.chance(write_chance) {
            if rng.chance(50) {
                a.write(rng, serial, cov);
            } else {
                b.write(rng, serial, cov);
            }
            cov.during_sessions += 1;
        }
        let to_b = !ab.is_empty() && (ba.is_empty() || rng.chance(50));
        let buf = if to_b { &mut ab } else { &mut ba };
        let n = 1 + rng.below(buf.len() as u64) as usize;
        let chunk: Vec<u8> = buf.drain(..n).collect();
        deliveries += 1;
        let _ = if to_b {
            b.s.handle_input(&chunk)
        } else {
            a.s.handle_input(&chunk)
        };
    }
    a.events();
    b.events();
    a.settle();
    b.settle();
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

/// What a run ends with: the common node set and kv view, and what it exercised.
struct Outcome {
    nodes: BTreeSet<Hash>,
    view: View,
    cov: Coverage,
}

/// A clean Sync/Sync one-shot between `i` and `j`; returns the round trips.
fn gossip(peers: &[Peer], i: usize, j: usize, rng: &mut Rng, seed: u64) -> u32 {
    let (mut serial, mut cov) = (0, Coverage::default());
    let mut a = Side::open(i, &peers[i], Mode::Sync, false, rng);
    let mut b = Side::open(j, &peers[j], Mode::Sync, false, rng);
    pump(&mut a, &mut b, rng, None, 0, &mut serial, &mut cov);
    assert!(
        a.err.is_none() && b.err.is_none(),
        "seed {seed}: {:?} {:?}",
        a.err,
        b.err
    );
    assert!(a.s.is_complete() && b.s.is_complete(), "seed {seed}");
    a.s.stats().round_trips
}

fn simulate(seed: u64) -> Outcome {
    let mut rng = Rng(seed);
    let n = 10 + rng.below(3) as usize;
    let peers: Vec<Peer> = (0..n).map(|i| peer(i, &mut rng)).collect();
    let mut cov = Coverage::default();
    let mut serial = 0u64;
    let steps = 40 + rng.below(40);
    for _ in 0..steps {
        if rng.chance(45) {
            let p = rng.below(n as u64) as usize;
            for _ in 0..1 + rng.below(3) {
                write(&peers[p], p, &mut rng, &mut serial, &mut cov);
            }
            continue;
        }
        let i = rng.below(n as u64) as usize;
        let j = (i + 1 + rng.below(n as u64 - 1) as usize) % n;
        let (ma, mb) = modes(&mut rng);
        let live = rng.chance(25);
        let cut = rng.chance(20).then(|| rng.below(12) as usize);
        let write_chance = if rng.chance(40) { 3 } else { 0 };
        let before_a = node_set(&peers[i].log);
        let before_b = node_set(&peers[j].log);
        let mut a = Side::open(i, &peers[i], ma, live, &mut rng);
        let mut b = Side::open(j, &peers[j], mb, live, &mut rng);
        pump(
            &mut a,
            &mut b,
            &mut rng,
            cut,
            write_chance,
            &mut serial,
            &mut cov,
        );
        let complete = a.s.is_complete() && b.s.is_complete();
        if cut.is_none() {
            assert!(
                a.err.is_none() && b.err.is_none(),
                "seed {seed}: {:?} {:?}",
                a.err,
                b.err
            );
            assert!(complete, "seed {seed}: an unbroken sync completes");
        }
        if complete {
            if mb.receives() && ma.sends() {
                assert!(
                    node_set(&peers[j].log).is_superset(&before_a),
                    "seed {seed}"
                );
            }
            if ma.receives() && mb.sends() {
                assert!(
                    node_set(&peers[i].log).is_superset(&before_b),
                    "seed {seed}"
                );
            }
            let both = ma == Mode::Sync && mb == Mode::Sync;
            if both && !a.wrote && !b.wrote && !live {
                // Same nodes, so the same kv view (incrementally built on each side).
                assert_eq!(
                    node_set(&peers[i].log),
                    node_set(&peers[j].log),
                    "seed {seed}"
                );
                assert_eq!(view(&peers[i].kv), view(&peers[j].kv), "seed {seed}");
            }
            if live && cut.is_none() {
                // Live: kv writes on both sides flow while the session stays open.
                for _ in 0..1 + rng.below(3) {
                    a.write(&mut rng, &mut serial, &mut cov);
                    b.write(&mut rng, &mut serial, &mut cov);
                }
                pump(
                    &mut a,
                    &mut b,
                    &mut rng,
                    None,
                    write_chance,
                    &mut serial,
                    &mut cov,
                );
                assert!(a.err.is_none() && b.err.is_none(), "seed {seed}: live");
                if both {
                    assert!(a.queue.is_empty() && b.queue.is_empty());
                    assert_eq!(
                        node_set(&peers[i].log),
                        node_set(&peers[j].log),
                        "seed {seed}: live"
                    );
                    assert_eq!(view(&peers[i].kv), view(&peers[j].kv), "seed {seed}: live");
                }
                a.s.close();
                pump(&mut a, &mut b, &mut rng, None, 0, &mut serial, &mut cov);
                assert!(a.err.is_none() && b.err.is_none(), "seed {seed}: close");
                assert!(b.s.is_finished(), "seed {seed}: close reaches the peer");
            }
        }
        assert!(node_set(&peers[i].log).is_superset(&before_a));
        assert!(node_set(&peers[j].log).is_superset(&before_b));
    }

    // Gossip to the end: everyone with peer 0, twice; a third round finds everyone equal.
    let converge = |rng: &mut Rng| {
        for round in 0..3 {
            for p in 1..n {
                let trips = gossip(&peers, 0, p, rng, seed);
                if round == 2 {
                    assert_eq!(trips, 1, "seed {seed}: equal re-sync");
                }
            }
        }
    };
    converge(&mut rng);
    let all = nodes(&peers[0].log);
    let expected_nodes: BTreeSet<Hash> = all.iter().map(Node::key).collect();
    let expected = view(&peers[0].kv);
    assert_eq!(
        shape(&expected),
        model(&all),
        "seed {seed}: the supersede rule"
    );
    let expected_history = histories(&peers[0].kv);
    for (p, peer) in peers.iter().enumerate() {
        assert_eq!(
            node_set(&peer.log),
            expected_nodes,
            "seed {seed}: peer {p} nodes"
        );
        assert_eq!(view(&peer.kv), expected, "seed {seed}: peer {p} kv view");
        assert_eq!(
            histories(&peer.kv),
            expected_history,
            "seed {seed}: peer {p}"
        );
        // A view built from scratch over this peer's log (its own change order) agrees.
        let fresh = Kv::open_with(&peer.log, "fresh", indexer(&mut rng)).unwrap();
        assert_eq!(view(&fresh), expected, "seed {seed}: peer {p} rebuilt");
    }

    // Later writes merge the forks: one peer writes every key without links; once gossiped,
    // each key has exactly that one head on every peer.
    let m = rng.below(n as u64) as usize;
    let mut merged: BTreeMap<&str, Hash> = BTreeMap::new();
    for k in KEYS {
        let heads = peers[m].kv.heads(k).unwrap();
        cov.max_heads = cov.max_heads.max(heads.len());
        cov.merges += u64::from(heads.len() >= 2);
        serial += 1;
        let h = if rng.chance(25) {
            peers[m].kv.del(k).unwrap()
        } else {
            peers[m].kv.put(k, &format!("merge {serial}")).unwrap()
        };
        merged.insert(k, h);
    }
    converge(&mut rng);
    let last = view(&peers[0].kv);
    for (p, peer) in peers.iter().enumerate() {
        assert_eq!(
            view(&peer.kv),
            last,
            "seed {seed}: peer {p} after the merge"
        );
        for k in KEYS {
            assert_eq!(
                peer.kv.heads(k).unwrap(),
                vec![merged[k]],
                "seed {seed}: {k}"
            );
        }
    }
    Outcome {
        nodes: node_set(&peers[0].log),
        view: last,
        cov,
    }
}

#[test]
fn kv_views_converge_on_fixed_seeds() {
    let mut total = Coverage::default();
    for &seed in REGRESSION_SEEDS {
        let c = simulate(seed).cov;
        total.merges += c.merges;
        total.forks += c.forks;
        total.deletes += c.deletes;
        total.batches += c.batches;
        total.during_sessions += c.during_sessions;
        total.offered += c.offered;
        total.max_heads = total.max_heads.max(c.max_heads);
    }
    eprintln!("{total:?}");
    // The seeds exercise what the simulation is about.
    assert!(total.merges > 0 && total.forks > 0 && total.deletes > 0 && total.batches > 0);
    assert!(total.during_sessions > 0 && total.offered > 0 && total.max_heads >= 3);
}

#[test]
fn a_seed_replays_exactly() {
    let (x, y) = (simulate(7), simulate(7));
    assert_eq!(x.nodes, y.nodes);
    assert_eq!(x.view, y.view);
}

/// Proptest's case count: `PROPTEST_CASES` if set, else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(16),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]
    #[test]
    fn kv_views_converge(seed in any::<u64>()) {
        simulate(seed);
    }
}
