//! hyperkv's behaviours (its test suite: kv, fork, del, del_fork, del_fields, history, batch,
//! double_batch, stream, live, fields, empty), re-expressed in Rust.

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_kv::{BatchOp, Head, Kv, ListOptions, Row, Values, WriteError, WriteOptions, parse_doc};
use cairn_log::core::{Hash, Keypair};
use cairn_log::{AddError, ChangesQuery, Log, LogOptions};
use cairn_view::IndexerOptions;
use serde_json::{Value, json};

fn log() -> Log {
    Log::memory(LogOptions::default()).unwrap()
}

fn kv(log: &Log) -> Kv {
    Kv::open_with(log, "kv", IndexerOptions::default().background(false)).unwrap()
}

/// Copies to each log the nodes it lacks, in the other's changes-feed order.
fn sync(a: &Log, b: &Log) {
    for (from, to) in [(a, b), (b, a)] {
        let missing: Vec<_> = from
            .changes(ChangesQuery::all())
            .map(|e| e.unwrap().node)
            .filter(|n| !to.has(&n.key()).unwrap())
            .collect();
        to.insert(missing).unwrap();
    }
}

fn values(pairs: &[(Hash, Head)]) -> Values {
    Values(pairs.iter().cloned().collect())
}

fn v(x: Value) -> Head {
    Head::Value(x)
}

#[test]
fn put_get_and_overwrite() {
    let log = log();
    let kv = kv(&log);
    assert!(kv.get("greeting").unwrap().is_empty());
    assert_eq!(kv.get("greeting").unwrap().to_json(), json!({}));
    let a = kv.put("greeting", "hello").unwrap();
    assert_eq!(
        kv.get("greeting").unwrap(),
        values(&[(a, v(json!("hello")))])
    );
    let b = kv.put("greeting", "beep boop").unwrap();
    assert_eq!(
        kv.get("greeting").unwrap(),
        values(&[(b, v(json!("beep boop")))])
    );
    assert_eq!(log.get(&b).unwrap().unwrap().node.links(), &[a]);
    let mut expected = serde_json::Map::new();
    expected.insert(b.to_hex(), json!({"value": "beep boop"}));
    assert_eq!(
        kv.get("greeting").unwrap().to_json(),
        Value::Object(expected)
    );
    // The node value has hyperkv's shape.
    let node = log.get(&b).unwrap().unwrap().node;
    assert_eq!(
        serde_json::from_slice::<Value>(node.value()).unwrap(),
        json!({"k": "greeting", "v": "beep boop"})
    );
}

#[test]
fn typed_values() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
    struct Page {
        title: String,
        words: u32,
    }
    let log = log();
    let kv = kv(&log);
    let p = Page {
        title: "Home".into(),
        words: 3,
    };
    let h = kv.put("home", &p).unwrap();
    let got = kv.get_as::<Page>("home").unwrap();
    assert_eq!(got.get(&h), Some(&Head::Value(p)));
    assert!(
        kv.get_as::<u32>("home").is_err(),
        "wrong type is a typed error"
    );
}

/// hyperkv test/fork.js and the first half of del_fork.js: explicit links build forks.
#[test]
fn forks_from_explicit_links() {
    let log = log();
    let kv = kv(&log);
    let mut n: BTreeMap<&str, Hash> = BTreeMap::new();
    let docs: [(&str, &[&str], &str, i64); 9] = [
        ("A", &[], "X", 555),
        ("B", &["A"], "X", 333),
        ("C", &[], "Z", 1000),
        ("D", &["B"], "X", 222),
        ("E", &["B"], "X", 400),
        ("F", &[], "Y", 999),
        ("G", &["C"], "Z", 2000),
        ("H", &["C"], "Z", 2500),
        ("I", &["G", "H"], "Z", 3000),
    ];
    for (name, links, key, value) in docs {
        let links: Vec<Hash> = links.iter().map(|l| n[l]).collect();
        let h = kv
            .put_with(key, &value, &WriteOptions::default().links(links))
            .unwrap();
        n.insert(name, h);
    }
    assert_eq!(
        kv.get("X").unwrap(),
        values(&[(n["D"], v(json!(222))), (n["E"], v(json!(400)))])
    );
    assert_eq!(kv.get("Y").unwrap(), values(&[(n["F"], v(json!(999)))]));
    assert_eq!(kv.get("Z").unwrap(), values(&[(n["I"], v(json!(3000)))]));
    // A put without links merges the fork.
    let m = kv.put("X", &1).unwrap();
    let mut links = [n["D"], n["E"]];
    links.sort();
    assert_eq!(log.get(&m).unwrap().unwrap().node.links(), &links[..]);
    assert_eq!(kv.get("X").unwrap(), values(&[(m, v(json!(1)))]));
}

#[test]
fn concurrent_writes_on_two_peers_fork_then_merge() {
    let (l0, l1) = (log(), log());
    let (kv0, kv1) = (kv(&l0), kv(&l1));
    let base = kv0.put("page", "v1").unwrap();
    sync(&l0, &l1);
    let a = kv0.put("page", "edit on 0").unwrap();
    let b = kv1.put("page", "edit on 1").unwrap();
    sync(&l0, &l1);
    let both = values(&[(a, v(json!("edit on 0"))), (b, v(json!("edit on 1")))]);
    assert_eq!(kv0.get("page").unwrap(), both);
    assert_eq!(kv1.get("page").unwrap(), both);
    let m = kv1.put("page", "merged").unwrap();
    sync(&l0, &l1);
    assert_eq!(kv0.get("page").unwrap(), values(&[(m, v(json!("merged")))]));
    assert_eq!(kv1.get("page").unwrap(), kv0.get("page").unwrap());
    let h = kv0.history("page").unwrap();
    assert_eq!(h.len(), 4);
    assert_eq!(h.last().unwrap().link, base);
}

/// hyperkv test/del.js.
#[test]
fn delete_leaves_a_tombstone_and_a_put_clears_it() {
    let log = log();
    let kv = kv(&log);
    let a = kv.put("A", &555).unwrap();
    let b = kv.put("B", &444).unwrap();
    let d = kv.del("A").unwrap();
    assert_eq!(kv.get("A").unwrap(), values(&[(d, Head::Deleted)]));
    assert_eq!(
        kv.get("A").unwrap().to_json(),
        json!({ d.to_hex(): {"deleted": true} })
    );
    assert_eq!(log.get(&d).unwrap().unwrap().node.links(), &[a]);
    assert_eq!(kv.get("B").unwrap(), values(&[(b, v(json!(444)))]));
    let a2 = kv.put("A", &1).unwrap();
    assert_eq!(kv.get("A").unwrap(), values(&[(a2, v(json!(1)))]));
    // Deleting an unknown key still writes a tombstone (linking nothing).
    let z = kv.del("nothing").unwrap();
    assert_eq!(kv.get("nothing").unwrap(), values(&[(z, Head::Deleted)]));
}

/// A delete removes only what it links.
#[test]
fn delete_removes_only_its_links() {
    let log = log();
    let kv = kv(&log);
    let a = kv
        .put_with("K", &1, &WriteOptions::default().links([]))
        .unwrap();
    let b = kv
        .put_with("K", &2, &WriteOptions::default().links([]))
        .unwrap();
    let d = kv
        .del_with("K", &WriteOptions::default().links([a]))
        .unwrap();
    assert_eq!(
        kv.get("K").unwrap(),
        values(&[(b, v(json!(2))), (d, Head::Deleted)])
    );
    // A link to another key's node supersedes nothing.
    let other = kv.put("other", &0).unwrap();
    let x = kv
        .put_with("K", &3, &WriteOptions::default().links([other, b]))
        .unwrap();
    assert_eq!(
        kv.get("K").unwrap(),
        values(&[(d, Head::Deleted), (x, v(json!(3)))])
    );
    assert_eq!(kv.get("other").unwrap(), values(&[(other, v(json!(0)))]));
}

/// hyperkv test/del_fork.js: a delete on one peer and a put on another → both heads.
#[test]
fn delete_in_a_fork() {
    let (l0, l1) = (log(), log());
    let (kv0, kv1) = (kv(&l0), kv(&l1));
    kv0.put("X", &555).unwrap();
    sync(&l0, &l1);
    let xdel = kv0.del("X").unwrap();
    let xput = kv1.put("X", &111).unwrap();
    sync(&l0, &l1);
    let expected = values(&[(xput, v(json!(111))), (xdel, Head::Deleted)]);
    assert_eq!(kv0.get("X").unwrap(), expected);
    assert_eq!(kv1.get("X").unwrap(), expected);
}

/// hyperkv test/del_fields.js and fields.js.
#[test]
fn fields_are_stored_in_the_document() {
    let log = log();
    let kv = kv(&log);
    let a = kv
        .put_with("A", &555, &WriteOptions::default().field("x", 5))
        .unwrap();
    assert_eq!(
        kv.get_fields("A").unwrap(),
        BTreeMap::from([(a, json!({"k": "A", "v": 555, "x": 5}))])
    );
    assert_eq!(kv.get("A").unwrap(), values(&[(a, v(json!(555)))]));
    // Fields cannot override k/v/d.
    let b = kv
        .put_with(
            "A",
            &1,
            &WriteOptions::default().field("k", "evil").field("y", true),
        )
        .unwrap();
    assert_eq!(
        kv.get_fields("A").unwrap(),
        BTreeMap::from([(b, json!({"k": "A", "v": 1, "y": true}))])
    );
    let d = kv
        .del_with("A", &WriteOptions::default().field("why", "spam"))
        .unwrap();
    assert_eq!(
        kv.get_fields("A").unwrap(),
        BTreeMap::from([(d, json!({"d": "A", "why": "spam"}))])
    );
    let rows: Vec<Row> = kv
        .list(ListOptions::default())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].links, vec![d]);
}

/// hyperkv test/history.js.
#[test]
fn history_lists_every_version_newest_first() {
    let log = log();
    let kv = kv(&log);
    let w = |key: &str, val: i64, links: Vec<Hash>| {
        kv.put_with(key, &val, &WriteOptions::default().links(links))
            .unwrap()
    };
    let a = w("X", 100, vec![]);
    let b = w("X", 201, vec![a]);
    let c = w("X", 202, vec![a]);
    let d = w("X", 300, vec![b, c]);
    let del = kv.del("X").unwrap();
    w("Y", 1, vec![]);
    let h = kv.history("X").unwrap();
    let links: Vec<Hash> = h.iter().map(|e| e.link).collect();
    assert_eq!(links, vec![del, d, c, b, a]);
    assert_eq!(h[1].value, v(json!(300)));
    let mut bc = vec![b, c];
    bc.sort();
    assert_eq!(h[1].links, bc);
    assert_eq!(h[4].links, Vec::<Hash>::new());
    assert_eq!(
        h[1].to_json(),
        json!({"key": "X", "link": d.to_hex(), "links": bc.iter().map(|x| x.to_hex()).collect::<Vec<_>>(), "value": 300})
    );
    assert_eq!(
        h[0].to_json(),
        json!({"key": "X", "link": del.to_hex(), "links": [d.to_hex()], "deleted": true})
    );
    assert!(kv.history("missing").unwrap().is_empty());
}

/// hyperkv test/batch.js and double_batch.js.
#[test]
fn batch_is_atomic_and_links_earlier_rows() {
    let log = log();
    let kv = kv(&log);
    let old = kv.put("A", &0).unwrap();
    let hs = kv
        .batch(vec![
            BatchOp::put("A", 1),
            BatchOp::put("B", 2),
            BatchOp::put("A", 3),
            BatchOp::del("B"),
            BatchOp::put("C", 4).with(WriteOptions::default().links([]).field("f", 1)),
        ])
        .unwrap();
    assert_eq!(hs.len(), 5);
    assert_eq!(log.get(&hs[0]).unwrap().unwrap().node.links(), &[old]);
    assert_eq!(log.get(&hs[2]).unwrap().unwrap().node.links(), &[hs[0]]);
    assert_eq!(kv.get("A").unwrap(), values(&[(hs[2], v(json!(3)))]));
    assert_eq!(kv.get("B").unwrap(), values(&[(hs[3], Head::Deleted)]));
    assert_eq!(kv.get("C").unwrap(), values(&[(hs[4], v(json!(4)))]));
    // A second batch on the same keys.
    let hs2 = kv
        .batch(vec![BatchOp::put("A", 5), BatchOp::put("B", 6)])
        .unwrap();
    assert_eq!(kv.get("A").unwrap(), values(&[(hs2[0], v(json!(5)))]));
    assert_eq!(kv.get("B").unwrap(), values(&[(hs2[1], v(json!(6)))]));
    // A row with explicit links counts for later rows of its key without links.
    let hs3 = kv
        .batch(vec![
            BatchOp::put("A", 7).with(WriteOptions::default().links([])),
            BatchOp::put("A", 8),
        ])
        .unwrap();
    let mut both = [hs2[0], hs3[0]];
    both.sort();
    assert_eq!(log.get(&hs3[1]).unwrap().unwrap().node.links(), &both[..]);
    assert_eq!(kv.get("A").unwrap(), values(&[(hs3[1], v(json!(8)))]));
    // One bad link: nothing of the batch is stored.
    let len = log.len();
    let r = kv.batch(vec![
        BatchOp::put("D", 1),
        BatchOp::put("E", 1).with(WriteOptions::default().links([Hash([9; 32])])),
    ]);
    assert!(matches!(
        r,
        Err(WriteError::Add(AddError::MissingLink { .. }))
    ));
    assert_eq!(log.len(), len);
    assert!(kv.get("D").unwrap().is_empty());
}

/// hyperkv test/stream.js, empty.js: list in key order, with a limit.
#[test]
fn list_all_keys_in_order_with_limit() {
    let log = log();
    let kv = kv(&log);
    assert_eq!(kv.list(ListOptions::default()).unwrap().count(), 0);
    for i in (0..600).rev() {
        kv.put(&format!("key{i:04}"), &i).unwrap();
    }
    kv.put_with("key0001", &"fork", &WriteOptions::default().links([]))
        .unwrap();
    let rows: Vec<Row> = kv
        .list(ListOptions::default())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 600);
    assert!(rows.windows(2).all(|w| w[0].key < w[1].key));
    assert_eq!(rows[1].key, "key0001");
    assert_eq!(rows[1].links.len(), 2);
    assert_eq!(rows[1].values.len(), 2);
    let j = rows[2].to_json();
    assert_eq!(j["key"], json!("key0002"));
    assert_eq!(j["links"].as_array().unwrap().len(), 1);
    assert_eq!(
        j["values"][j["links"][0].as_str().unwrap()],
        json!({"value": 2})
    );
    let limited = kv
        .list(ListOptions {
            limit: Some(10),
            ..ListOptions::default()
        })
        .unwrap()
        .count();
    assert_eq!(limited, 10);
}

/// hyperkv test/live.js: a live list gives the current keys, then every update.
#[test]
fn live_list_with_old_and_only_new() {
    let log = log();
    let kv = Kv::open(&log).unwrap();
    kv.put("A", &555).unwrap();
    kv.put("B", &555).unwrap();
    let kv2 = kv.clone();
    let reader = std::thread::spawn(move || {
        kv2.list(ListOptions {
            live: true,
            limit: Some(3),
            ..ListOptions::default()
        })
        .unwrap()
        .map(|r| r.unwrap().key)
        .collect::<Vec<_>>()
    });
    let kv3 = kv.clone();
    let new_only = std::thread::spawn(move || {
        kv3.list(ListOptions {
            live: true,
            limit: Some(1),
            skip_old: true,
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect::<Vec<_>>()
    });
    std::thread::sleep(Duration::from_millis(50));
    let c = kv.put("C", &555).unwrap();
    assert_eq!(reader.join().unwrap(), vec!["A", "B", "C"]);
    let new = new_only.join().unwrap();
    assert_eq!(new.len(), 1);
    assert_eq!(new[0].key, "C");
    assert_eq!(new[0].links, vec![c]);
}

#[test]
fn updates_follow_local_and_replicated_writes_and_skip_other_nodes() {
    let (l0, l1) = (log(), log());
    let kv0 = Kv::open(&l0).unwrap();
    let kv1 = kv(&l1);
    let a = kv0.put("A", &1).unwrap();
    l0.append(b"not a kv document".to_vec()).unwrap();
    l0.append(br#"{"x": 1}"#.to_vec()).unwrap();
    let d = kv0.del("A").unwrap();
    let ups: Vec<_> = kv0.updates(0, false).map(Result::unwrap).collect();
    assert_eq!(ups.len(), 2);
    assert_eq!((ups[0].link, &ups[0].value), (a, &v(json!(1))));
    assert_eq!((ups[1].link, &ups[1].value), (d, &Head::Deleted));
    // Replicated writes arrive live.
    let pos = l0.len();
    let mut live = kv0.updates(pos, true);
    let b = kv1.put("B", &2).unwrap();
    sync(&l0, &l1);
    let u = live.next().unwrap().unwrap();
    assert_eq!((u.key.as_str(), u.link), ("B", b));
    // Async, any runtime.
    let pos = live.position();
    let c = kv0.put("C", &3).unwrap();
    let got = futures_lite::future::block_on(kv0.next_updates(pos)).unwrap();
    assert_eq!(got.iter().map(|u| u.link).collect::<Vec<_>>(), vec![c]);
    // The non-kv nodes were ignored by the view too.
    assert!(kv0.get("x").unwrap().is_empty());
}

#[test]
fn concurrent_local_puts_to_one_key_never_fork() {
    let log = log();
    let kv = Kv::open(&log).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let kv = kv.clone();
            s.spawn(move || {
                for i in 0..25 {
                    kv.put("counter", &(t * 100 + i)).unwrap();
                    kv.put(&format!("own{t}"), &i).unwrap();
                }
            });
        }
    });
    assert_eq!(kv.get("counter").unwrap().len(), 1);
    assert_eq!(kv.history("counter").unwrap().len(), 100);
}

#[test]
fn signed_logs_and_reopen_resume_the_view() {
    let dir = std::env::temp_dir().join(format!("cairn-kv-test-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    {
        let log = Log::open(
            &dir,
            LogOptions::default().signer(Keypair::from_seed([3; 32])),
        )
        .unwrap();
        let kv = Kv::open(&log).unwrap();
        for i in 0..50 {
            kv.put(&format!("k{}", i % 10), &i).unwrap();
        }
        kv.indexer().ready_blocking().unwrap();
    }
    let log = Log::open(&dir, LogOptions::default()).unwrap();
    let kv = kv(&log);
    assert_eq!(kv.indexer().applied(), 50, "the view resumes where it was");
    assert_eq!(kv.list(ListOptions::default()).unwrap().count(), 10);
    assert_eq!(kv.get("k3").unwrap().values().next(), Some(&v(json!(43))));
    drop(kv);
    drop(log);
    std::fs::remove_file(&dir).unwrap();
}

#[test]
fn parse_doc_accepts_hyperkv_documents_only() {
    assert_eq!(parse_doc(br#"{"k":"a","v":1}"#).unwrap().key, "a");
    assert!(parse_doc(br#"{"v":1}"#).is_none());
}
