//! The worker's wiki ops (`wiki_…`), natively over redb's in-memory backend (the browser runs
//! the same code over OPFS; tests/browser/wiki.mjs drives it through the wiki app).

use cairn_log::ChangesQuery;
mod common;

use cairn_web::api::Peer;
use cairn_web::frames;
use common::{call, kind, ok, peer};
use proptest::prelude::*;
use serde_json::{Value, json};

fn save(p: &Peer, title: &str, text: &str, summary: &str) -> String {
    let r = ok(
        p,
        json!({"op": "wiki_save", "title": title, "text": text, "summary": summary, "time": 1000}),
    );
    r["hash"].as_str().unwrap().to_owned()
}

/// Copies every node of `from` into `to` (as a sync would), through the `insert` op.
fn copy_all(from: &Peer, to: &Peer) {
    let nodes: Vec<_> = from
        .log()
        .changes(ChangesQuery::all())
        .map(|e| e.unwrap().node)
        .collect();
    let r: Value = serde_json::from_str(&to.handle(
        &json!({"op": "insert"}).to_string(),
        Some(&frames::encode(&nodes)),
    ))
    .unwrap();
    assert!(r.get("ok").is_some(), "{r}");
}

#[test]
fn create_read_list_link_search() {
    let p = peer();
    // A page that does not exist yet: its normalized title, no versions.
    let missing = ok(&p, json!({"op": "wiki_page", "title": "home  page"}));
    assert_eq!(missing["title"], "Home page");
    assert_eq!(missing["exists"], false);
    assert_eq!(missing["versions"], json!([]));

    let h = save(
        &p,
        "home page",
        "Welcome, see [[Stones]] and [[nowhere]].",
        "first",
    );
    let page = ok(&p, json!({"op": "wiki_page", "title": "Home page"}));
    assert_eq!(page["exists"], true);
    assert_eq!(page["forked"], false);
    assert_eq!(page["heads"], json!([h]));
    let v = &page["versions"][0];
    assert_eq!(v["text"], "Welcome, see [[Stones]] and [[nowhere]].");
    assert_eq!(v["summary"], "first");
    assert_eq!(v["time"], 1000);
    assert_eq!(v["author"], p.public_hex());
    assert_eq!(v["verified"], true);
    assert_eq!(v["name"], Value::Null);

    save(&p, "Stones", "A pile of granite stones.", "");
    let list = ok(&p, json!({"op": "wiki_list"}));
    let titles: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Home page", "Stones"]);
    assert_eq!(list[0]["state"], "ok");

    assert_eq!(
        ok(
            &p,
            json!({"op": "wiki_titles", "titles": ["stones", "Nowhere", "a/b"]})
        ),
        json!([
            {"title": "Stones", "state": "ok"},
            {"title": "Nowhere", "state": "missing"},
            {"title": null, "state": "invalid"},
        ])
    );
    assert_eq!(
        ok(&p, json!({"op": "wiki_backlinks", "title": "stones"})),
        json!(["Home page"])
    );
    let hits = ok(&p, json!({"op": "wiki_search", "query": "gran"}));
    assert_eq!(hits[0]["title"], "Stones");
    assert_eq!(hits.as_array().unwrap().len(), 1);

    // Display names show up on changes and versions.
    ok(
        &p,
        json!({"op": "wiki_set_name", "name": " Ada ", "time": 5}),
    );
    let changes = ok(&p, json!({"op": "wiki_changes", "limit": 10}));
    assert_eq!(changes.as_array().unwrap().len(), 2);
    assert_eq!(changes[0]["name"], "Ada");
    let people = ok(&p, json!({"op": "wiki_people"}));
    assert_eq!(
        people,
        json!([{"key": p.public_hex(), "name": "Ada", "me": true, "blocked": false}])
    );
}

#[test]
fn history_diff_revert_rename_delete() {
    let p = peer();
    let a = save(&p, "Page", "one\ntwo\n", "a");
    let b = save(&p, "Page", "one\nthree\n", "b");
    let hist = ok(&p, json!({"op": "wiki_history", "title": "Page"}));
    let hashes: Vec<&str> = hist
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["hash"].as_str().unwrap())
        .collect();
    assert_eq!(hashes, [b.as_str(), a.as_str()]);
    assert_eq!(hist[0]["parents"], json!([a]));

    let d = ok(
        &p,
        json!({"op": "wiki_diff", "title": "Page", "a": a, "b": b}),
    );
    let d = d["diff"].as_str().unwrap();
    assert!(d.contains("-two\n") && d.contains("+three\n"), "{d}");

    let r = ok(
        &p,
        json!({"op": "wiki_revert", "title": "Page", "to": a, "summary": "back", "time": 9}),
    );
    let page = ok(&p, json!({"op": "wiki_page", "title": "Page"}));
    assert_eq!(page["heads"], json!([r["hash"]]));
    assert_eq!(page["versions"][0]["text"], "one\ntwo\n");
    assert_eq!(
        ok(&p, json!({"op": "wiki_history", "title": "Page"}))
            .as_array()
            .unwrap()
            .len(),
        3
    );

    ok(
        &p,
        json!({"op": "wiki_rename", "from": "Page", "to": "New page"}),
    );
    let old = ok(&p, json!({"op": "wiki_page", "title": "Page"}));
    assert_eq!(old["redirect"], "New page");
    let moved = ok(&p, json!({"op": "wiki_history", "title": "New page"}));
    assert_eq!(moved.as_array().unwrap().len(), 4, "history goes on");

    ok(&p, json!({"op": "wiki_delete", "title": "New page"}));
    let gone = ok(&p, json!({"op": "wiki_page", "title": "New page"}));
    assert_eq!(
        (&gone["exists"], &gone["deleted"]),
        (&json!(true), &json!(true))
    );
    ok(&p, json!({"op": "wiki_undelete", "title": "New page"}));
    let back = ok(&p, json!({"op": "wiki_page", "title": "New page"}));
    assert_eq!(back["deleted"], false);
    assert_eq!(back["versions"][0]["text"], "one\ntwo\n");
}

#[test]
fn a_fork_is_shown_merged_and_joined_by_a_save() {
    let p = peer();
    let base = save(&p, "Doc", "a\nb\nc\n", "base");
    // Two concurrent versions: each save links only the old head.
    let x = ok(
        &p,
        json!({"op": "wiki_save", "title": "Doc", "text": "A\nb\nc\n", "links": [base]}),
    );
    let y = ok(
        &p,
        json!({"op": "wiki_save", "title": "Doc", "text": "a\nb\nC\n", "links": [base]}),
    );
    let page = ok(&p, json!({"op": "wiki_page", "title": "Doc"}));
    assert_eq!(page["forked"], true);
    assert_eq!(page["versions"].as_array().unwrap().len(), 2);
    assert_eq!(
        ok(&p, json!({"op": "wiki_list"}))[0]["state"],
        "forked",
        "the page list says so"
    );
    assert_eq!(
        ok(&p, json!({"op": "wiki_titles", "titles": ["doc"]}))[0]["state"],
        "forked"
    );

    let m = ok(&p, json!({"op": "wiki_merge", "title": "Doc"}));
    assert_eq!(m["text"], "A\nb\nC\n");
    assert_eq!(m["conflicts"], 0);
    let mut heads = vec![x["hash"].clone(), y["hash"].clone()];
    heads.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    assert_eq!(m["heads"], json!(heads));

    // A save with the default links joins the fork.
    save(&p, "Doc", m["text"].as_str().unwrap(), "merge");
    let page = ok(&p, json!({"op": "wiki_page", "title": "Doc"}));
    assert_eq!(page["forked"], false);
    assert_eq!(page["versions"].as_array().unwrap().len(), 1);
    assert_eq!(
        ok(&p, json!({"op": "wiki_history", "title": "Doc"}))
            .as_array()
            .unwrap()
            .len(),
        4
    );

    // Conflicting edits: marked for the user.
    let b2 = page["heads"][0].clone();
    ok(
        &p,
        json!({"op": "wiki_save", "title": "Doc", "text": "one\n", "links": [b2]}),
    );
    ok(
        &p,
        json!({"op": "wiki_save", "title": "Doc", "text": "two\n", "links": [b2]}),
    );
    let m = ok(&p, json!({"op": "wiki_merge", "title": "Doc"}));
    assert_eq!(m["conflicts"], 1);
    assert!(m["text"].as_str().unwrap().contains("<<<<<<<"));
}

#[test]
fn block_hides_an_authors_edits_here_only() {
    let me = peer();
    let other = peer();
    save(&other, "Spam", "buy now", "");
    ok(&other, json!({"op": "wiki_set_name", "name": "Mallory"}));
    copy_all(&other, &me);
    let people = ok(&me, json!({"op": "wiki_people"}));
    let m = people
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["key"] == other.public_hex())
        .expect("the author of a recent change is listed");
    assert_eq!(m["name"], "Mallory");
    assert_eq!(m["me"], false);

    let r = ok(
        &me,
        json!({"op": "wiki_block", "author": other.public_hex()}),
    );
    assert_eq!(r["blocked"], json!([other.public_hex()]));
    let page = ok(&me, json!({"op": "wiki_page", "title": "Spam"}));
    assert_eq!(
        (&page["versions"], &page["hidden"]),
        (&json!([]), &json!(1))
    );
    assert_eq!(
        ok(&me, json!({"op": "wiki_search", "query": "buy"})),
        json!([])
    );
    assert_eq!(ok(&me, json!({"op": "wiki_changes"})), json!([]));
    // The other peer is unaffected.
    assert_eq!(
        ok(&other, json!({"op": "wiki_search", "query": "buy"}))[0]["title"],
        "Spam"
    );
    ok(
        &me,
        json!({"op": "wiki_unblock", "author": other.public_hex()}),
    );
    let page = ok(&me, json!({"op": "wiki_page", "title": "Spam"}));
    assert_eq!(page["versions"][0]["name"], "Mallory");
}

#[test]
fn bad_wiki_requests_get_typed_errors_and_store_nothing() {
    let p = peer();
    let a = save(&p, "Page", "x", "");
    let del = ok(&p, json!({"op": "wiki_delete", "title": "Page"}))["hash"].clone();
    let len = p.log().len();
    let cases = [
        (json!({"op": "wiki_nope"}), "bad_request"),
        (json!({"op": "wiki_page"}), "bad_request"),
        (json!({"op": "wiki_page", "title": 3}), "bad_request"),
        (json!({"op": "wiki_page", "title": "../etc"}), "bad_input"),
        (json!({"op": "wiki_page", "title": "  "}), "bad_input"),
        (
            json!({"op": "wiki_save", "title": "a|b", "text": "x"}),
            "bad_input",
        ),
        (
            json!({"op": "wiki_save", "title": "P", "text": "x", "links": ["zz"]}),
            "bad_input",
        ),
        (
            json!({"op": "wiki_save", "title": "P", "text": "x", "links": ["00".repeat(32)]}),
            "wiki_write",
        ),
        (
            json!({"op": "wiki_diff", "title": "Page", "a": a, "b": "11".repeat(32)}),
            "not_found",
        ),
        (
            json!({"op": "wiki_revert", "title": "Page", "to": "11".repeat(32)}),
            "not_found",
        ),
        (
            json!({"op": "wiki_revert", "title": "Page", "to": del}),
            "wiki_refused",
        ),
        (
            json!({"op": "wiki_rename", "from": "Page", "to": "page"}),
            "wiki_refused",
        ),
        (
            json!({"op": "wiki_undelete", "title": "Never"}),
            "wiki_refused",
        ),
        (
            json!({"op": "wiki_set_name", "name": " \u{7} "}),
            "wiki_refused",
        ),
        (
            json!({"op": "wiki_search", "query": "x", "limit": 0}),
            "bad_input",
        ),
        (json!({"op": "wiki_changes", "limit": 1001}), "bad_input"),
        (json!({"op": "wiki_block", "author": "me"}), "bad_input"),
        (
            json!({"op": "wiki_titles", "titles": vec!["a"; 1001]}),
            "bad_input",
        ),
    ];
    for (req, want) in cases {
        let r = call(&p, req.clone());
        assert_eq!(kind(&r), want, "{req} → {r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    assert_eq!(p.log().len(), len, "a failed request stored nothing");
}

#[test]
fn hostile_values_on_page_keys_never_break_the_ops() {
    let p = peer();
    save(&p, "Good", "fine [[Bad]]", "");
    // Written straight to the kv store, as a hostile peer could: not the wiki's shapes.
    ok(
        &p,
        json!({"op": "kv_put", "key": "page/Bad", "value": [1, 2]}),
    );
    ok(
        &p,
        json!({"op": "kv_put", "key": "page/../../etc", "value": {"text": "x"}}),
    );
    ok(
        &p,
        json!({"op": "kv_put", "key": "page/Deep", "value": {"text": {"a": {"b": 1}}}}),
    );
    let list = ok(&p, json!({"op": "wiki_list"}));
    let titles: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Bad", "Deep", "Good"]);
    let bad = ok(&p, json!({"op": "wiki_page", "title": "Bad"}));
    assert_eq!(bad["versions"][0]["kind"], "broken");
    assert!(bad["versions"][0]["broken"].is_string());
    ok(&p, json!({"op": "wiki_history", "title": "Deep"}));
    assert_eq!(
        ok(&p, json!({"op": "wiki_search", "query": "x"})),
        json!([])
    );
}

const OPS: &[&str] = &[
    "wiki_list",
    "wiki_page",
    "wiki_titles",
    "wiki_save",
    "wiki_history",
    "wiki_diff",
    "wiki_merge",
    "wiki_revert",
    "wiki_rename",
    "wiki_delete",
    "wiki_undelete",
    "wiki_search",
    "wiki_backlinks",
    "wiki_changes",
    "wiki_set_name",
    "wiki_people",
    "wiki_block",
    "wiki_unblock",
    "wiki_x",
];

fn field() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        "[0-9a-f]{64}".prop_map(Value::from),
        proptest::collection::vec(".{0,8}".prop_map(Value::from), 0..3).prop_map(Value::from),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// A wiki op with random fields (of the names the ops use): one typed response, and a
    /// failed request stores nothing.
    #[test]
    fn random_wiki_requests_get_one_typed_response(
        op in proptest::sample::select(OPS),
        fields in proptest::collection::btree_map(
            proptest::sample::select(&["title", "text", "a", "b", "to", "from", "links", "titles", "query", "limit", "name", "author", "summary", "time"][..]),
            field(),
            0..5,
        ),
    ) {
        let p = peer();
        save(&p, "Page", "x", "");
        let len = p.log().len();
        let mut obj: serde_json::Map<String, Value> =
            fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        obj.insert("op".into(), Value::from(op));
        let r: Value = serde_json::from_str(&p.handle(&Value::Object(obj).to_string(), None)).unwrap();
        prop_assert!(r.get("ok").is_some() != r.get("error").is_some());
        if r.get("error").is_some() {
            prop_assert_eq!(p.log().len(), len);
        }
    }
}
