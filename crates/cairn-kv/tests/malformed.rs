//! Kv nodes whose documents do not decode (issue 8: "a single node can break a key, and
//! `list`, for everyone"): every read path still answers, shows such a node as a broken head
//! with its hash, and agrees with the others; `put` never writes what could not be read back.

use std::collections::{BTreeMap, BTreeSet};

use cairn_kv::{
    BatchOp, Head, Kv, ListOptions, MAX_DOC_BYTES, MAX_VALUE_DEPTH, WriteError, check_doc,
    parse_doc,
};
use cairn_log::core::{Hash, Limits};
use cairn_log::{ChangesQuery, Log, LogOptions};
use cairn_view::IndexerOptions;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};

fn log() -> Log {
    Log::memory(LogOptions::default()).unwrap()
}

fn kv(log: &Log) -> Kv {
    Kv::open_with(log, "kv", IndexerOptions::default().background(false)).unwrap()
}

fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(0), |v, _| json!([v]))
}

/// The issue's reproduction, through the library: `cairn kv put Home '"hello"'`, `cairn kv put
/// Other '"x"'`, `cairn log append '{"k":"Home","v":1e400}'`.
#[test]
fn issue_8_a_value_out_of_range_breaks_neither_the_key_nor_list_nor_history() {
    let log = log();
    let kv = kv(&log);
    let hello = kv.put("Home", "hello").unwrap();
    let x = kv.put("Other", "x").unwrap();
    let bad = log.append(br#"{"k":"Home","v":1e400}"#.to_vec()).unwrap();
    let bad = bad.node.key();
    // The appended node links every head of the log, so it supersedes Home's value.
    assert_eq!(log.get(&bad).unwrap().unwrap().node.links(), &[hello, x]);

    let got = kv.get("Home").unwrap();
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), vec![bad]);
    let reason = got[&bad].broken().unwrap().to_owned();
    assert!(reason.contains("number out of range"), "{reason}");
    assert_eq!(
        got.to_json(),
        json!({ bad.to_hex(): { "broken": reason.clone() } })
    );
    assert_eq!(
        kv.get_as::<String>("Home").unwrap()[&bad].broken(),
        Some(reason.as_str())
    );

    let rows: Vec<_> = kv
        .list(ListOptions::default())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].key.as_str(), &rows[0].values), ("Home", &got));
    assert_eq!(rows[1].key, "Other");
    assert_eq!(rows[1].values[&x], Head::Value(json!("x")));

    let history = kv.history("Home").unwrap();
    assert_eq!(
        history.iter().map(|e| e.link).collect::<Vec<_>>(),
        vec![bad, hello]
    );
    assert_eq!(history[0].value, got[&bad]);
    assert_eq!(history[0].to_json()["broken"], json!(reason));
    assert_eq!(history[1].value, Head::Value(json!("hello")));

    assert_eq!(
        kv.get_fields("Home").unwrap(),
        BTreeMap::from([(bad, json!({ "broken": reason }))])
    );
    let updates: Vec<_> = kv.updates(0, false).map(Result::unwrap).collect();
    assert_eq!(updates.len(), 3);
    assert_eq!((updates[2].link, &updates[2].value), (bad, &got[&bad]));

    // A write without links supersedes the broken head, like any other: the key is repaired.
    let fixed = kv.put("Home", "fixed").unwrap();
    assert_eq!(log.get(&fixed).unwrap().unwrap().node.links(), &[bad]);
    assert_eq!(kv.get("Home").unwrap()[&fixed], Head::Value(json!("fixed")));
    assert_eq!(kv.get("Home").unwrap().len(), 1);
    assert_eq!(kv.history("Home").unwrap().len(), 3);
}

/// The view's records of broken heads survive a rebuild and equal the incremental ones.
#[test]
fn broken_heads_are_the_same_after_a_rebuild() {
    let log = log();
    let kv = kv(&log);
    kv.put("a", &1).unwrap();
    log.append(br#"{"k":"a","v":"\ud800"}"#.to_vec()).unwrap();
    log.append(br#"{"d":"b","why":-1e999}"#.to_vec()).unwrap();
    let before: Vec<_> = kv.list(ListOptions::default()).unwrap().collect();
    kv.indexer().rebuild().unwrap();
    let after: Vec<_> = kv.list(ListOptions::default()).unwrap().collect();
    assert_eq!(format!("{before:?}"), format!("{after:?}"));
    let b = kv.get("b").unwrap();
    assert!(b.values().all(|h| h.broken().is_some()) && b.len() == 1);
}

#[test]
fn put_refuses_what_could_not_be_read_back() {
    let log = log();
    let kv = kv(&log);
    // serde_json encodes any depth; the store refuses past the limit, before the log.
    let deep = nested(MAX_VALUE_DEPTH + 1);
    let r = kv.put("k", &deep);
    assert!(
        matches!(&r, Err(WriteError::Malformed { reason }) if reason.contains("nests more than")),
        "{r:?}"
    );
    let r = kv.batch(vec![BatchOp::put("j", 1), BatchOp::put("k", deep.clone())]);
    assert!(matches!(r, Err(WriteError::Malformed { .. })), "{r:?}");
    // The same depth in an extra field of the document.
    let opts = cairn_kv::WriteOptions::default().field("f", deep);
    assert!(matches!(
        kv.put_with("k", &1, &opts),
        Err(WriteError::Malformed { .. })
    ));
    assert_eq!(log.len(), 0);

    // At the limit: written and read back as it was.
    let ok = nested(MAX_VALUE_DEPTH);
    let h = kv.put("k", &ok).unwrap();
    assert_eq!(kv.get("k").unwrap()[&h], Head::Value(ok.clone()));
    assert_eq!(kv.history("k").unwrap()[0].value, Head::Value(ok));
    // The CLI's output wraps a value in up to four objects: it still decodes.
    let row = kv.row("k").unwrap().to_json().to_string();
    serde_json::from_str::<Value>(&json!({ "wrapped": row }).to_string()).unwrap();
    serde_json::from_str::<Value>(&row).unwrap();

    // Non-finite floats encode as null, which reads back.
    let h = kv.put("f", &f64::NAN).unwrap();
    assert_eq!(kv.get("f").unwrap()[&h], Head::Value(Value::Null));

    // Size: the log here allows the format's 16 MiB; the store stops at MAX_DOC_BYTES.
    let big_log = Log::memory(LogOptions::default().limits(Limits::FORMAT)).unwrap();
    let big = crate::kv(&big_log);
    let huge = "x".repeat(MAX_DOC_BYTES);
    let r = big.put("h", &huge);
    assert!(
        matches!(&r, Err(WriteError::Malformed { reason }) if reason.contains("-byte limit")),
        "{r:?}"
    );
    assert_eq!(big_log.len(), 0);
    // Such a node received from a peer is a broken head.
    let doc = format!(r#"{{"k":"h","v":"{huge}"}}"#);
    let n = big_log.append(doc.into_bytes()).unwrap().node.key();
    assert!(
        big.get("h").unwrap()[&n]
            .broken()
            .unwrap()
            .contains("-byte limit")
    );
    // Just under the limit is fine.
    let fits = "x".repeat(MAX_DOC_BYTES - r#"{"k":"h","v":""}"#.len());
    let h = big.put("h", &fits).unwrap();
    assert_eq!(big.get("h").unwrap()[&h], Head::Value(json!(fits)));
}

/// A read error (here a view record this version does not know, as a corrupted or future
/// store would hold) ends `list` after one `Err`, instead of returning it forever (before,
/// `list().collect()` never returned once a value failed to decode).
#[test]
fn list_ends_after_an_error() {
    let log = log();
    let kv = kv(&log);
    kv.put("a", &1).unwrap();
    kv.put("c", &3).unwrap();
    let txn = log.database().begin_write().unwrap();
    {
        let def: redb::TableDefinition<(&str, &[u8; 32]), &[u8]> =
            redb::TableDefinition::new("view.kv.heads");
        let mut t = txn.open_table(def).unwrap();
        t.insert(("b", &[7u8; 32]), &[9u8][..]).unwrap();
    }
    txn.commit().unwrap();
    let rows: Vec<_> = kv.list(ListOptions::default()).unwrap().collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].is_err());
    assert!(kv.get("b").is_err());
    assert_eq!(kv.get("c").unwrap().len(), 1);
}

/// The checker is serde_json's grammar as built here: `arbitrary_precision` (which would
/// accept `1e400`, so that replicas built with it would disagree) must stay off.
#[test]
fn serde_json_is_built_without_arbitrary_precision() {
    assert!(serde_json::from_str::<Value>("1e400").is_err());
    assert!(
        check_doc(br#"{"k":"a","v":1e400}"#)
            .unwrap()
            .head
            .broken()
            .is_some()
    );
}

// ---- Property test: arbitrary node values. ----

const KEYS: [&str; 3] = ["a", "b", "c"];

/// JSON-ish text: valid and invalid, deep, huge numbers, bad escapes and bytes, duplicates.
fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        Just(b"null".to_vec()),
        Just(b"true".to_vec()),
        Just(b"1e400".to_vec()),
        Just(b"-1e999".to_vec()),
        Just(b"1E+308".to_vec()),
        Just(b"1.7976931348623157e308".to_vec()),
        Just(b"1.7976931348623159e308".to_vec()),
        Just(b"2e308".to_vec()),
        Just(b"1e-400".to_vec()),
        Just(b"-0".to_vec()),
        Just(b"18446744073709551616".to_vec()),
        Just(format!("1{}", "0".repeat(400)).into_bytes()),
        Just(b"01".to_vec()),
        Just(b"1.".to_vec()),
        Just(br#""\ud800""#.to_vec()),
        Just(br#""\udc00\ud800""#.to_vec()),
        Just(br#""\ud83d\ude00""#.to_vec()),
        Just(br#""\u00""#.to_vec()),
        Just(b"\"\xff\xfe\"".to_vec()),
        Just(b"\"\xc3\"".to_vec()),
        Just("\"é\"".as_bytes().to_vec()),
        Just(b"\"\x01\"".to_vec()),
        any::<i64>().prop_map(|n| n.to_string().into_bytes()),
        any::<f64>().prop_map(|n| n.to_string().into_bytes()),
        "[a-z\\\\\"]{0,8}".prop_map(|s| format!("\"{s}\"").into_bytes()),
        (1usize..100_000).prop_map(|n| format!("\"{}\"", "s".repeat(n)).into_bytes()),
        (0usize..200, any::<bool>()).prop_map(|(n, obj)| {
            let (open, close): (&[u8], &[u8]) = if obj {
                (b"{\"a\":", b"}")
            } else {
                (b"[", b"]")
            };
            let mut v = open.repeat(n);
            v.extend_from_slice(b"0");
            v.extend(close.repeat(n));
            v
        }),
        prop::collection::vec(any::<u8>(), 0..12),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|items| {
                let mut v = b"[".to_vec();
                v.extend(items.join(&b","[..]));
                v.push(b']');
                v
            }),
            prop::collection::vec(
                (prop::sample::select(vec!["a", "b", "v", "k"]), inner),
                0..4
            )
            .prop_map(|fields| {
                let mut v = b"{".to_vec();
                let parts: Vec<Vec<u8>> = fields
                    .into_iter()
                    .map(|(name, x)| [format!("\"{name}\":").into_bytes(), x].concat())
                    .collect();
                v.extend(parts.join(&b","[..]));
                v.push(b'}');
                v
            }),
        ]
    })
}

/// A node value: a put or delete document around JSON-ish text, or anything at all.
fn node_value() -> impl Strategy<Value = Vec<u8>> {
    let key = prop::sample::select(vec!["a", "b", "c", "\\u0061", "\\ud800"]);
    prop_oneof![
        4 => (key.clone(), jsonish()).prop_map(|(k, v)| {
            [format!(r#"{{"k":"{k}","v":"#).into_bytes(), v, b"}".to_vec()].concat()
        }),
        2 => (key.clone(), jsonish()).prop_map(|(k, v)| {
            [format!(r#"{{"d":"{k}","f":"#).into_bytes(), v, b"}".to_vec()].concat()
        }),
        1 => (key.clone(), jsonish()).prop_map(|(k, v)| {
            [br#"{"x":"#.to_vec(), v, format!(r#","k":"{k}","v":1}}"#).into_bytes()]
                .concat()
        }),
        1 => (key, any::<u32>()).prop_map(|(k, n)| format!(r#"{{"k":"{k}","v":{n}}}"#).into_bytes()),
        1 => jsonish(),
        1 => prop::collection::vec(any::<u8>(), 0..64),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| [b"{\"k\":\"a\",".to_vec(), b].concat()),
    ]
}

/// The nesting depth of valid JSON text, counted on the text (a repeated member name that
/// decoding drops still counts).
fn text_depth(json: &[u8]) -> usize {
    let (mut depth, mut max, mut in_str, mut escaped) = (0usize, 0usize, false, false);
    for &b in json {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth -= 1,
            _ => {}
        }
    }
    max
}

/// Every read path of `kv` on `key`, checked for agreement; returns the heads.
fn read_all(kv: &Kv, log: &Log, key: &str) -> BTreeMap<Hash, Head> {
    let got = kv.get(key).unwrap();
    assert_eq!(kv.get_as::<Value>(key).unwrap(), got);
    assert_eq!(
        kv.heads(key).unwrap(),
        got.keys().copied().collect::<Vec<_>>()
    );
    let row = kv.row(key).unwrap();
    assert_eq!(row.values, got);
    // The CLI's JSON output of each read decodes.
    serde_json::from_str::<Value>(&row.to_json().to_string()).unwrap();
    let fields = kv.get_fields(key).unwrap();
    assert_eq!(
        fields.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    for (h, head) in got.iter() {
        let doc = &fields[h];
        match head {
            Head::Broken { reason } => assert_eq!(doc, &json!({ "broken": reason })),
            Head::Value(v) => assert_eq!(&doc["v"], v),
            Head::Deleted => assert!(doc["d"].is_string() && !doc["k"].is_string()),
        }
    }
    let history = kv.history(key).unwrap();
    let by_link: BTreeMap<Hash, &Head> = history.iter().map(|e| (e.link, &e.value)).collect();
    for (h, head) in got.iter() {
        assert_eq!(by_link[h], head);
    }
    for e in &history {
        serde_json::from_str::<Value>(&e.to_json().to_string()).unwrap();
        let node = log.get(&e.link).unwrap().unwrap().node;
        assert_eq!(check_doc(node.value()).unwrap().key, key);
    }
    // History holds every kv node of the key.
    let count = log
        .changes(ChangesQuery::all())
        .filter(|e| check_doc(e.as_ref().unwrap().node.value()).is_some_and(|d| d.key == key))
        .count();
    assert_eq!(history.len(), count);
    got.0
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Arbitrary node values: the classification is consistent with serde_json, and every
    /// read path answers and agrees with the others, before and after a rebuild.
    #[test]
    fn every_read_answers_and_agrees(
        nodes in prop::collection::vec(
            (node_value(), prop::collection::vec(any::<Index>(), 0..3)), 1..24),
    ) {
        let log = Log::memory(LogOptions::default()).unwrap();
        let kv = kv(&log);
        let mut hashes: Vec<Hash> = Vec::new();
        for (value, links) in &nodes {
            // The classification, against serde_json and parse_doc.
            let checked = check_doc(value);
            let decoded = serde_json::from_slice::<Value>(value);
            if let Some(c) = &checked {
                let good = decoded.is_ok()
                    && text_depth(value) <= MAX_VALUE_DEPTH + 1
                    && value.len() <= MAX_DOC_BYTES;
                prop_assert_eq!(c.head.broken().is_none(), good, "{:?}", c.head);
                if let Head::Value(raw) = &c.head {
                    let doc = decoded.as_ref().unwrap();
                    let v: Value = serde_json::from_str(raw.get()).unwrap();
                    prop_assert_eq!(doc.get("v").unwrap_or(&Value::Null), &v);
                }
            }
            if let Some(d) = parse_doc(value) {
                prop_assert_eq!(checked.as_ref().map(|c| &c.key), Some(&d.key));
            }
            let links: Vec<Hash> = if hashes.is_empty() {
                Vec::new()
            } else {
                links.iter().map(|i| hashes[i.index(hashes.len())]).collect()
            };
            hashes.push(log.add(links, value.clone()).unwrap().node.key());
            // Reads in between exercise incremental application.
            if hashes.len().is_multiple_of(3) {
                for key in KEYS {
                    read_all(&kv, &log, key);
                }
            }
        }
        // list agrees with get, key by key, and holds every key with heads.
        let listed: BTreeMap<String, BTreeMap<Hash, Head>> = kv
            .list(ListOptions::default())
            .unwrap()
            .map(|r| { let r = r.unwrap(); (r.key, r.values.0) })
            .collect();
        let mut heads = BTreeMap::new();
        for key in listed.keys().map(String::as_str).chain(KEYS) {
            heads.insert(key.to_owned(), read_all(&kv, &log, key));
        }
        let expected: BTreeMap<String, BTreeMap<Hash, Head>> = heads
            .iter()
            .filter(|(_, h)| !h.is_empty())
            .map(|(k, h)| (k.clone(), h.clone()))
            .collect();
        prop_assert_eq!(&listed, &expected);
        // updates: exactly the kv nodes, with the values history shows.
        let updates: Vec<_> = kv.updates(0, false).map(Result::unwrap).collect();
        let kv_nodes: BTreeSet<Hash> = hashes
            .iter()
            .filter(|h| check_doc(log.get(h).unwrap().unwrap().node.value()).is_some())
            .copied()
            .collect();
        prop_assert_eq!(updates.iter().map(|u| u.link).collect::<BTreeSet<_>>(), kv_nodes);
        for u in &updates {
            let h = kv.history(&u.key).unwrap();
            let e = h.iter().find(|e| e.link == u.link).unwrap();
            prop_assert_eq!(&e.value, &u.value);
        }
        // A rebuilt view gives the same answers.
        kv.indexer().rebuild().unwrap();
        for (key, h) in &heads {
            prop_assert_eq!(&read_all(&kv, &log, key), h);
        }
    }
}
