//! The worker's message API, natively over redb's in-memory and crash-injecting backends (the
//! same code the browser runs over OPFS; tests/browser/ runs it there).

use cairn_log::core::{Draft, Keypair, Limits, Node};
use cairn_log::testing::CrashBackend;
mod common;

use cairn_web::api::Peer;
use cairn_web::frames;
use common::{call, kind, ok, peer};
use proptest::prelude::*;
use serde_json::{Value, json};

fn chain(kp: &Keypair, n: usize, first_links: Vec<cairn_log::core::Hash>) -> Vec<Node> {
    let mut out: Vec<Node> = Vec::new();
    for i in 0..n {
        let links = out.last().map_or(first_links.clone(), |p| vec![p.key()]);
        let d = Draft::new(
            links,
            Some(kp.public()),
            format!("n{i}").into_bytes(),
            &Limits::default(),
        )
        .unwrap();
        out.push(d.sign(kp).unwrap());
    }
    out
}

#[test]
fn requests_and_ids() {
    let p = peer();
    let r = call(&p, json!({"id": 7, "op": "append", "value": "a"}));
    assert_eq!(r["id"], 7);
    assert_eq!(r["ok"]["change"], 1);
    let key = r["ok"]["key"].as_str().unwrap().to_owned();
    let e = ok(&p, json!({"op": "get", "key": key}));
    assert_eq!(e["value"], "a");
    assert_eq!(e["author"], p.public_hex());
    assert_eq!(ok(&p, json!({"op": "len"})), 1);
    assert_eq!(ok(&p, json!({"op": "heads"})), json!([key]));
    assert_eq!(
        ok(&p, json!({"op": "append_many", "values": ["b", "c"]})),
        json!({"first": 2, "last": 3, "count": 2})
    );
    let feed = ok(&p, json!({"op": "changes", "since": 1, "limit": 1}));
    assert_eq!(feed[0]["value"], "b");
    assert_eq!(feed.as_array().unwrap().len(), 1);
    let h = ok(&p, json!({"op": "kv_put", "key": "k", "value": {"x": [1]}}));
    assert_eq!(
        ok(&p, json!({"op": "kv_get", "key": "k"})),
        json!({h.as_str().unwrap(): {"value": {"x": [1]}}})
    );
    ok(&p, json!({"op": "kv_put", "key": "j", "value": 2}));
    let list = ok(&p, json!({"op": "kv_list", "limit": 1, "after": "j"}));
    assert_eq!(list[0]["key"], "k");
    assert_eq!(list.as_array().unwrap().len(), 1);
    let d = ok(&p, json!({"op": "kv_del", "key": "k"}));
    assert_eq!(
        ok(&p, json!({"op": "kv_get", "key": "k"})),
        json!({d.as_str().unwrap(): {"deleted": true}})
    );
}

#[test]
fn bad_requests_get_typed_errors_and_store_nothing() {
    let p = peer();
    ok(&p, json!({"op": "append", "value": "a"}));
    let cases: Vec<(&str, &str)> = vec![
        ("not json", "bad_json"),
        ("[1]", "bad_request"),
        (r#"{"op":"nope"}"#, "bad_request"),
        (r#"{"op":"append"}"#, "bad_request"),
        (r#"{"op":"append","value":1}"#, "bad_request"),
        (r#"{"op":"get","key":"xyz"}"#, "bad_input"),
        (r#"{"op":"changes","limit":0}"#, "bad_input"),
        (r#"{"op":"changes","limit":1001}"#, "bad_input"),
        (r#"{"op":"append_many","values":[]}"#, "bad_input"),
        (r#"{"op":"insert"}"#, "bad_request"),
        (
            r#"{"op":"identity_import","key_file":"nothing"}"#,
            "bad_input",
        ),
    ];
    for (text, want) in cases {
        let r: Value = serde_json::from_str(&p.handle(text, None)).unwrap();
        assert_eq!(kind(&r), want, "{text} → {r}");
    }
    let big = "x".repeat(5 << 20);
    assert_eq!(
        kind(&call(&p, json!({"op": "append", "value": big}))),
        "refused"
    );
    assert_eq!(ok(&p, json!({"op": "len"})), 1);
}

#[test]
fn insert_checks_frames_signatures_and_links() {
    let p = peer();
    let kp = Keypair::from_seed([9; 32]);
    let nodes = chain(&kp, 5, vec![]);
    let bytes = frames::encode(&nodes);
    let r: Value = serde_json::from_str(&p.handle(r#"{"op":"insert"}"#, Some(&bytes))).unwrap();
    assert_eq!(r["ok"], json!({"inserted": 5, "len": 5}));

    // A flipped signature bit: refused, nothing stored.
    let more = chain(&kp, 3, vec![nodes[4].key()]);
    let mut bad = frames::encode(&more);
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let r: Value = serde_json::from_str(&p.handle(r#"{"op":"insert"}"#, Some(&bad))).unwrap();
    assert!(matches!(kind(&r), "refused" | "bad_nodes"), "{r}");
    // A node whose link the store lacks: refused.
    let orphan = chain(&kp, 1, vec![more[0].key()]);
    let r: Value =
        serde_json::from_str(&p.handle(r#"{"op":"insert"}"#, Some(&frames::encode(&orphan))))
            .unwrap();
    assert_eq!(kind(&r), "refused");
    assert_eq!(ok(&p, json!({"op": "len"})), 5);
}

#[test]
fn identity_is_kept_in_the_store_and_import_persists() {
    let (backend, handle) = CrashBackend::new();
    let p = Peer::open(backend).unwrap();
    let first = p.public_hex();
    let exported = ok(&p, json!({"op": "identity_export"}));
    assert_eq!(exported["public"], first);
    drop(p);
    // Reopen on what reached the disk (every synced write): the same identity.
    let image = handle.crash(|_| false);
    let (backend, handle) = CrashBackend::from_image(image);
    let p = Peer::open(backend).unwrap();
    assert_eq!(p.public_hex(), first);
    // Import another key: later writes are signed by it, and it survives a crash.
    let other = Keypair::from_seed([4; 32]);
    let text = cairn_web::identity::export(&other, None).unwrap();
    assert_eq!(
        ok(&p, json!({"op": "identity_import", "key_file": text}))["public"],
        other.public().to_hex()
    );
    let a = ok(&p, json!({"op": "append", "value": "signed by the import"}));
    let e = ok(&p, json!({"op": "get", "key": a["key"]}));
    assert_eq!(e["author"], other.public().to_hex());
    let image = handle.crash(|_| false);
    let (backend, _handle) = CrashBackend::from_image(image);
    let p = Peer::open(backend).unwrap();
    assert_eq!(p.public_hex(), other.public().to_hex());
    assert_eq!(ok(&p, json!({"op": "len"})), 1);
    // The exported text of the first key imports back.
    ok(
        &p,
        json!({"op": "identity_import", "key_file": exported["key_file"]}),
    );
    assert_eq!(p.public_hex(), first);
}

#[test]
fn passphrase_export_and_import_wrong_passphrase_changes_nothing() {
    let p = peer();
    let first = p.public_hex();
    let exported = ok(
        &p,
        json!({"op": "identity_export", "passphrase": "open sesame"}),
    );
    assert_eq!(exported["sealed"], true);
    let file = exported["key_file"].as_str().unwrap().to_owned();
    assert!(file.contains("sealed: "));
    // Another store: wrong passphrase, none, and an empty one are typed errors; its key stays.
    let q = peer();
    let before = q.public_hex();
    for (pass, want) in [
        (json!("open sesamE"), "wrong_passphrase"),
        (Value::Null, "needs_passphrase"),
        (json!(""), "wrong_passphrase"),
    ] {
        let r = call(
            &q,
            json!({"op": "identity_import", "key_file": file, "passphrase": pass}),
        );
        assert_eq!(kind(&r), want, "{pass} → {r}");
        assert_eq!(q.public_hex(), before);
    }
    let r = ok(
        &q,
        json!({"op": "identity_import", "key_file": file, "passphrase": "open sesame"}),
    );
    assert_eq!(r["public"], first);
    assert_eq!(q.public_hex(), first);
    // An empty passphrase on export is refused.
    let r = call(&p, json!({"op": "identity_export", "passphrase": ""}));
    assert_eq!(kind(&r), "bad_input");
}

#[test]
fn acknowledged_appends_survive_a_crash_that_drops_unsynced_writes() {
    let (backend, handle) = CrashBackend::new();
    let p = Peer::open(backend).unwrap();
    let mut keys = Vec::new();
    for i in 0..20 {
        keys.push(ok(&p, json!({"op": "append", "value": format!("w{i}")}))["key"].clone());
    }
    let image = handle.crash(|_| false);
    drop(p);
    let p = Peer::open(CrashBackend::from_image(image).0).unwrap();
    for k in keys {
        assert!(!ok(&p, json!({"op": "get", "key": k})).is_null());
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z_]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const OPS: &[&str] = &[
    "append",
    "append_many",
    "insert",
    "get",
    "changes",
    "heads",
    "len",
    "kv_put",
    "kv_del",
    "kv_get",
    "kv_list",
    "identity",
    "identity_export",
    "identity_import",
    "x",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any text gets one response, `ok` xor `error`, and a failed request stores nothing.
    #[test]
    fn any_text_gets_one_typed_response(text in ".{0,200}", bytes in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200))) {
        let p = peer();
        let r: Value = serde_json::from_str(&p.handle(&text, bytes.as_deref())).unwrap();
        prop_assert!(r.get("ok").is_some() != r.get("error").is_some());
        if r.get("error").is_some() {
            prop_assert_eq!(p.log().len(), 0);
        }
    }

    /// Requests with a real op and random fields: one typed response; nothing stored on error.
    #[test]
    fn random_fields_get_one_typed_response(op in proptest::sample::select(OPS), fields in proptest::collection::btree_map("[a-z_]{1,9}", json_value(), 0..4)) {
        let p = peer();
        let mut obj: serde_json::Map<String, Value> = fields.into_iter().collect();
        obj.insert("op".into(), Value::from(op));
        let r: Value = serde_json::from_str(&p.handle(&Value::Object(obj).to_string(), None)).unwrap();
        prop_assert!(r.get("ok").is_some() != r.get("error").is_some());
        if r.get("error").is_some() {
            prop_assert_eq!(p.log().len(), 0);
        }
    }
}
