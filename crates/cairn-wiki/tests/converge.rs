//! N peers edit, delete, rename, merge and sync in random orders; once every peer holds every
//! node, all of them show the same pages, history, backlinks, search results and changes —
//! and the same view tables as a from-scratch rebuild, as a fresh log fed the nodes in
//! another order, and as one whose wiki view catches up in small batches behind its kv view.

use std::collections::BTreeSet;

use cairn_log::core::{Keypair, Node};
use cairn_log::{ChangesQuery, Log, LogOptions};
use cairn_view::IndexerOptions;
use cairn_wiki::{SaveOptions, Title, Wiki, dump};
use proptest::prelude::*;

const PEERS: usize = 3;
const TITLES: [&str; 4] = ["Cairn", "Inukshuk", "Trail marker", "Stone"];
const WORDS: [&str; 8] = [
    "stone", "stones", "pile", "trail", "marker", "summit", "rock", "path",
];

#[derive(Debug, Clone)]
enum Op {
    Edit {
        peer: usize,
        page: usize,
        words: Vec<usize>,
        link: Option<usize>,
    },
    Delete {
        peer: usize,
        page: usize,
    },
    Merge {
        peer: usize,
        page: usize,
    },
    Rename {
        peer: usize,
        from: usize,
        to: usize,
    },
    Sync {
        from: usize,
        to: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0..PEERS;
    let t = 0..TITLES.len();
    prop_oneof![
        5 => (p.clone(), t.clone(), prop::collection::vec(0..WORDS.len(), 0..6),
              prop::option::of(0..TITLES.len()))
            .prop_map(|(peer, page, words, link)| Op::Edit { peer, page, words, link }),
        1 => (p.clone(), t.clone()).prop_map(|(peer, page)| Op::Delete { peer, page }),
        1 => (p.clone(), t.clone()).prop_map(|(peer, page)| Op::Merge { peer, page }),
        1 => (p.clone(), t.clone(), t.clone())
            .prop_map(|(peer, from, to)| Op::Rename { peer, from, to }),
        3 => (p.clone(), p).prop_map(|(from, to)| Op::Sync { from, to }),
    ]
}

fn peer(seed: u8) -> Wiki {
    let log = Log::memory(LogOptions::default().signer(Keypair::from_seed([seed; 32]))).unwrap();
    Wiki::open_with(&log, IndexerOptions::default().background(false)).unwrap()
}

fn nodes(w: &Wiki) -> Vec<Node> {
    w.log()
        .changes(ChangesQuery::all())
        .map(|e| e.unwrap().node)
        .collect()
}

fn sync(from: &Wiki, to: &Wiki) {
    to.log().insert(nodes(from)).unwrap();
}

/// Everything a user sees, as comparable text.
fn observe(w: &Wiki) -> Vec<String> {
    let mut out = Vec::new();
    for p in w.list().unwrap() {
        out.push(format!("{p:?}"));
        let page = w.page(&p.title).unwrap();
        let mut v: Vec<String> = page
            .versions
            .iter()
            .map(|v| format!("{} {:?}", v.hash, v.body))
            .collect();
        v.sort();
        out.push(format!("versions {v:?}"));
        let h: BTreeSet<String> = w
            .history(&p.title)
            .unwrap()
            .iter()
            .map(|v| v.hash.to_hex())
            .collect();
        out.push(format!("history {h:?}"));
        out.push(format!("backlinks {:?}", w.backlinks(&p.title).unwrap()));
        let m = w.merge(&p.title).unwrap();
        out.push(format!("merge {:?} {} {:?}", m.heads, m.conflicts, m.text));
    }
    for q in ["stone", "st", "pile trail", "summit", "marker"] {
        let hits: Vec<String> = w
            .search(q, 100)
            .unwrap()
            .iter()
            .map(|h| format!("{} {:.9}", h.title, h.score))
            .collect();
        out.push(format!("search {q} {hits:?}"));
    }
    out.push(format!("changes {:?}", w.changes(1000).unwrap()));
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn peers_converge(ops in prop::collection::vec(op(), 1..40), order in any::<u64>()) {
        let peers: Vec<Wiki> = (0..PEERS).map(|i| peer(i as u8 + 1)).collect();
        let mut clock = 0u64;
        for op in ops {
            clock += 1;
            let o = SaveOptions::new(format!("op {clock}"), Some(clock));
            match op {
                Op::Edit { peer, page, words, link } => {
                    let mut text: Vec<String> = words.iter().map(|&w| WORDS[w].to_owned()).collect();
                    if let Some(l) = link {
                        text.push(format!("[[{}]]", TITLES[l].to_lowercase()));
                    }
                    let t = Title::new(TITLES[page]).unwrap();
                    peers[peer].save(&t, &(text.join("\n") + "\n"), &o).unwrap();
                }
                Op::Delete { peer, page } => {
                    let t = Title::new(TITLES[page]).unwrap();
                    peers[peer].delete(&t, &o).unwrap();
                }
                Op::Merge { peer, page } => {
                    let t = Title::new(TITLES[page]).unwrap();
                    let m = peers[peer].merge(&t).unwrap();
                    if !m.heads.is_empty() {
                        let o = SaveOptions { links: Some(m.heads.clone()), ..o };
                        peers[peer].save(&t, &m.text, &o).unwrap();
                    }
                }
                Op::Rename { peer, from, to } => {
                    let (f, t) = (Title::new(TITLES[from]).unwrap(), Title::new(TITLES[to]).unwrap());
                    // Refusals (forked, no text, target exists, same title) store nothing.
                    let before = peers[peer].log().len();
                    if peers[peer].rename(&f, &t, &o).is_err() {
                        prop_assert_eq!(peers[peer].log().len(), before);
                    }
                }
                Op::Sync { from, to } => sync(&peers[from], &peers[to]),
            }
        }
        // Everyone gets everything, in an order drawn from `order`.
        for round in 0..2 {
            for i in 0..PEERS {
                let from = (i + (order as usize >> round) % PEERS) % PEERS;
                for to in 0..PEERS {
                    sync(&peers[from], &peers[to]);
                }
            }
        }
        let seen: Vec<Vec<String>> = peers.iter().map(observe).collect();
        let tables: Vec<Vec<String>> = peers.iter().map(|w| dump(w.log().database()).unwrap()).collect();
        for i in 1..PEERS {
            prop_assert_eq!(&seen[i], &seen[0]);
            prop_assert_eq!(&tables[i], &tables[0]);
        }
        // A from-scratch rebuild of the views gives the same tables and answers.
        peers[0].indexer().rebuild().unwrap();
        peers[0].indexer().catch_up().unwrap();
        prop_assert_eq!(&dump(peers[0].log().database()).unwrap(), &tables[0]);
        prop_assert_eq!(&observe(&peers[0]), &seen[0]);
        // So does a new peer fed every node at once, in another peer's change order.
        let fresh = peer(9);
        fresh.log().insert(nodes(&peers[PEERS - 1])).unwrap();
        fresh.indexer().catch_up().unwrap();
        prop_assert_eq!(&dump(fresh.log().database()).unwrap(), &tables[0]);
        prop_assert_eq!(&observe(&fresh), &seen[0]);
        // And one whose kv view is ahead of its wiki view, which applies two nodes per batch:
        // the wiki view skips every version the kv view shows superseded, across batches.
        let log = Log::memory(LogOptions::default().signer(Keypair::from_seed([10; 32]))).unwrap();
        let ahead = Wiki::open_with(&log, IndexerOptions::default().background(false).batch(2)).unwrap();
        log.insert(nodes(&peers[1])).unwrap();
        ahead.kv().indexer().catch_up().unwrap();
        ahead.indexer().catch_up().unwrap();
        prop_assert_eq!(&dump(log.database()).unwrap(), &tables[0]);
        prop_assert_eq!(&observe(&ahead), &seen[0]);
    }
}
