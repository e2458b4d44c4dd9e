//! The wiki's behaviours: saves, forks and merges between peers, history, diff, revert,
//! rename, delete, people, the block list, and values written by a hostile peer.

use cairn_log::core::Keypair;
use cairn_log::{ChangesQuery, Log, LogOptions};
use cairn_view::IndexerOptions;
use cairn_wiki::{Body, SaveOptions, Title, Wiki, WriteError};

fn peer(seed: u8) -> Wiki {
    let log = Log::memory(LogOptions::default().signer(Keypair::from_seed([seed; 32]))).unwrap();
    Wiki::open_with(&log, IndexerOptions::default().background(false)).unwrap()
}

/// Copies every node of `from` that `to` lacks (change order is topological).
fn sync(from: &Wiki, to: &Wiki) {
    let nodes: Vec<_> = from
        .log()
        .changes(ChangesQuery::all())
        .map(|e| e.unwrap().node)
        .collect();
    to.log().insert(nodes).unwrap();
}

fn t(s: &str) -> Title {
    Title::new(s).unwrap()
}

fn opts(summary: &str, time: u64) -> SaveOptions {
    SaveOptions::new(summary, Some(time))
}

#[test]
fn fork_show_merge_history_diff_revert() {
    let a = peer(1);
    let b = peer(2);
    let cairn = t("Cairn");
    let v1 = a
        .save(
            &cairn,
            "A cairn is a pile of stones.\nStones are found nearby.\nIt marks a trail.\n",
            &opts("new", 1),
        )
        .unwrap();
    sync(&a, &b);
    assert_eq!(b.page(&cairn).unwrap().versions[0].hash, v1);

    // Concurrent edits while apart: different lines.
    let va = a
        .save(
            &cairn,
            "A cairn is a pile of stones.\nStones are found nearby.\nIt marks a mountain trail.\n",
            &opts("mountain", 2),
        )
        .unwrap();
    let vb = b
        .save(&cairn, "A cairn is a human-made pile of stones.\nStones are found nearby.\nIt marks a trail.\n", &opts("human", 3))
        .unwrap();
    sync(&a, &b);
    sync(&b, &a);
    for w in [&a, &b] {
        let page = w.page(&cairn).unwrap();
        assert!(page.is_forked());
        let mut hashes: Vec<_> = page.versions.iter().map(|v| v.hash).collect();
        hashes.sort();
        let mut want = vec![va, vb];
        want.sort();
        assert_eq!(hashes, want, "both versions shown");
        assert_eq!(w.list().unwrap()[0].state(), "forked");
    }

    // The three-way merge from v1 has no conflict, on both peers alike.
    let m = a.merge(&cairn).unwrap();
    assert_eq!(m, b.merge(&cairn).unwrap());
    assert_eq!(m.conflicts, 0);
    assert_eq!(m.bases, vec![Some(v1)]);
    assert_eq!(
        m.text,
        "A cairn is a human-made pile of stones.\nStones are found nearby.\nIt marks a mountain trail.\n"
    );
    let merged = a.save(&cairn, &m.text, &opts("merge", 4)).unwrap();
    sync(&a, &b);
    for w in [&a, &b] {
        let page = w.page(&cairn).unwrap();
        assert!(!page.is_forked());
        assert_eq!(page.text(), Some(m.text.as_str()));
    }

    // History: the DAG, newest first, with authors, times and summaries.
    let h = b.history(&cairn).unwrap();
    assert_eq!(h.len(), 4);
    assert_eq!(h[0].hash, merged);
    let mut parents = h[0].parents.clone();
    parents.sort();
    let mut want = vec![va, vb];
    want.sort();
    assert_eq!(parents, want);
    assert_eq!(h[0].author, Some(Keypair::from_seed([1; 32]).public()));
    assert_eq!(h[0].time, Some(4));
    assert_eq!(h[0].summary, "merge");
    assert_eq!(h.last().unwrap().hash, v1);

    let d = a.diff(&cairn, &v1, &merged).unwrap();
    assert!(d.contains("-It marks a trail."), "{d}");
    assert!(d.contains("+It marks a mountain trail."), "{d}");

    // Revert to v1: a new version with v1's text, history kept.
    let r = a.revert(&cairn, &v1, &opts("revert", 5)).unwrap();
    assert_eq!(
        a.page(&cairn).unwrap().text(),
        Some("A cairn is a pile of stones.\nStones are found nearby.\nIt marks a trail.\n")
    );
    assert_eq!(a.history(&cairn).unwrap().len(), 5);
    assert_eq!(a.history(&cairn).unwrap()[0].hash, r);
    let unknown = Title::new("Other").unwrap();
    assert!(a.revert(&unknown, &v1, &opts("x", 6)).is_err());
}

#[test]
fn conflicting_edits_are_marked() {
    let a = peer(1);
    let b = peer(2);
    let p = t("Stones");
    a.save(&p, "one\ntwo\nthree\n", &opts("", 1)).unwrap();
    sync(&a, &b);
    a.save(&p, "one\nTWO\nthree\n", &opts("", 2)).unwrap();
    b.save(&p, "one\n2\nthree\n", &opts("", 2)).unwrap();
    sync(&b, &a);
    let m = a.merge(&p).unwrap();
    assert_eq!(m.conflicts, 1, "{}", m.text);
    assert!(m.text.contains("<<<<<<<") && m.text.contains("TWO") && m.text.contains("\n2\n"));
    // Saving anything over the fork joins it (edit saves over all versions).
    a.save(&p, "one\ntwo or 2\nthree\n", &opts("resolved", 3))
        .unwrap();
    assert!(!a.page(&p).unwrap().is_forked());
}

#[test]
fn backlinks_search_changes() {
    let w = peer(1);
    w.save(
        &t("Home"),
        "See [[cairn]] and [[Trail  marker|markers]].",
        &opts("", 1),
    )
    .unwrap();
    w.save(
        &t("Cairn"),
        "A pile of stones marking a [[trail marker]].",
        &opts("", 2),
    )
    .unwrap();
    w.save(&t("Trail marker"), "Stones, paint, posts.", &opts("", 3))
        .unwrap();
    assert_eq!(w.backlinks(&t("Cairn")).unwrap(), vec![t("Home")]);
    assert_eq!(
        w.backlinks(&t("Trail marker")).unwrap(),
        vec![t("Cairn"), t("Home")]
    );
    // A new version drops its old links.
    w.save(&t("Home"), "Nothing here.", &opts("", 4)).unwrap();
    assert_eq!(w.backlinks(&t("Cairn")).unwrap(), vec![]);

    let hits = w.search("stone", 10).unwrap();
    let titles: Vec<&str> = hits.iter().map(|h| h.title.as_str()).collect();
    assert_eq!(titles.len(), 2);
    assert!(titles.contains(&"Cairn") && titles.contains(&"Trail marker"));
    // Title words weigh more; every query word must match; prefixes match.
    assert_eq!(w.search("trail", 10).unwrap()[0].title, t("Trail marker"));
    assert_eq!(w.search("pil sto", 10).unwrap().len(), 1);
    assert!(w.search("stones nowhere", 10).unwrap().is_empty());
    assert!(w.search("  ", 10).unwrap().is_empty());

    let c = w.changes(10).unwrap();
    assert_eq!(c.len(), 4);
    assert_eq!(c[0].time, 4);
    assert_eq!(c[0].title, t("Home"));
    assert_eq!(w.changes(2).unwrap().len(), 2);
    let me = Keypair::from_seed([1; 32]).public();
    assert_eq!(w.edits_by(&me, 10).unwrap().len(), 4);
    assert!(
        w.edits_by(&Keypair::from_seed([9; 32]).public(), 10)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn rename_delete_undelete() {
    let w = peer(1);
    let old = t("Stone pile");
    let new = t("Cairn");
    let v1 = w.save(&old, "Stones.", &opts("", 1)).unwrap();
    let v2 = w.save(&old, "Stones, piled.", &opts("", 2)).unwrap();
    let (moved, redirect) = w.rename(&old, &new, &opts("rename", 3)).unwrap();
    assert_eq!(w.page(&new).unwrap().text(), Some("Stones, piled."));
    assert_eq!(
        w.page(&old).unwrap().versions[0].body,
        Body::Redirect(new.clone())
    );
    assert_eq!(w.page(&old).unwrap().versions[0].hash, redirect);
    let h: Vec<_> = w.history(&new).unwrap().iter().map(|v| v.hash).collect();
    assert_eq!(h, vec![moved, v2, v1], "history goes on into the old title");
    assert_eq!(w.backlinks(&new).unwrap(), vec![old.clone()]);
    assert!(matches!(
        w.rename(&old, &new, &opts("", 4)),
        Err(WriteError::NoText(_))
    ));

    let d = w.delete(&new, &opts("gone", 5)).unwrap();
    let page = w.page(&new).unwrap();
    assert!(page.is_deleted() && page.exists());
    assert_eq!(page.versions[0].hash, d);
    let list = w.list().unwrap();
    let info = list.iter().find(|p| p.title == new).unwrap();
    assert_eq!(info.state(), "deleted");
    assert_eq!(w.search("piled", 10).unwrap(), vec![]);
    w.undelete(&new, &opts("back", 6)).unwrap();
    assert_eq!(w.page(&new).unwrap().text(), Some("Stones, piled."));
    assert_eq!(w.search("piled", 10).unwrap().len(), 1);
    assert!(matches!(
        w.undelete(&t("Never"), &opts("", 7)),
        Err(WriteError::NothingToRestore(_))
    ));
}

#[test]
fn names_and_block_list() {
    let a = peer(1);
    let b = peer(2);
    let ka = Keypair::from_seed([1; 32]).public();
    let kb = Keypair::from_seed([2; 32]).public();
    a.set_name("Ada", Some(1)).unwrap();
    a.set_name("Ada L.", Some(2)).unwrap();
    assert!(matches!(
        a.set_name(" \u{7} ", None),
        Err(WriteError::EmptyName)
    ));
    // b writes a record on a's key, linking a's: ignored.
    sync(&a, &b);
    let heads = b.kv().heads(&format!("person/{}", ka.to_hex())).unwrap();
    b.kv()
        .put_with(
            &format!("person/{}", ka.to_hex()),
            &serde_json::json!({"name": "Mallory"}),
            &cairn_kv::WriteOptions::default()
                .links(heads)
                .field("time", 99),
        )
        .unwrap();
    sync(&b, &a);
    assert_eq!(a.name_of(&ka).unwrap().as_deref(), Some("Ada L."));
    assert_eq!(b.name_of(&ka).unwrap().as_deref(), Some("Ada L."));
    assert_eq!(a.name_of(&kb).unwrap(), None);

    let p = t("Cairn");
    a.save(&p, "stones by a", &opts("", 1)).unwrap();
    sync(&a, &b);
    b.save(&p, "spam by b", &opts("", 2)).unwrap();
    b.save(&t("Spam"), "spam spam [[Cairn]]", &opts("", 3))
        .unwrap();
    sync(&b, &a);
    assert_eq!(a.page(&p).unwrap().text(), Some("spam by b"));
    a.block(&kb).unwrap();
    assert_eq!(a.blocked().unwrap(), vec![kb]);
    let page = a.page(&p).unwrap();
    assert_eq!(page.versions.len(), 0);
    assert_eq!(page.hidden, 1);
    assert!(a.changes(10).unwrap().iter().all(|c| c.author != Some(kb)));
    assert!(a.search("spam", 10).unwrap().is_empty());
    assert!(a.backlinks(&p).unwrap().is_empty());
    // Not replicated: b still sees everything.
    sync(&a, &b);
    assert_eq!(b.search("spam", 10).unwrap().len(), 2);
    a.unblock(&kb).unwrap();
    assert_eq!(a.search("spam", 10).unwrap().len(), 2);
}

#[test]
fn hostile_values_are_broken_or_left_out() {
    let w = peer(1);
    let evil = peer(66);
    w.save(&t("Cairn"), "Stones. [[Trail]]", &opts("", 1))
        .unwrap();
    sync(&w, &evil);
    let heads = evil.heads(&t("Cairn")).unwrap();
    let log = evil.log();
    let deep = format!(
        r#"{{"k":"page/Cairn","v":{{"text":{}"x"{}}}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let huge =
        serde_json::json!({"k": "page/Huge", "v": {"text": "stone ".repeat(600_000)}}).to_string();
    for value in [
        deep.as_str(),
        r#"{"k":"page/Cairn","v":"just a string"}"#,
        r#"{"k":"page/Cairn","v":{"text":"<script>alert(1)</script> ``` unclosed [[ [x]("},"summary":{"a":1}}"#,
        r#"{"k":"page/../../etc/passwd","v":{"text":"stone"}}"#,
        "{\"k\":\"page/Bad\\u0007title\",\"v\":{\"text\":\"stone\"}}",
        r#"{"k":"page/Ctl","v":{"text":"stone"},"summary":"a\u0000b\u001b[31m"}"#,
        r#"{"d":"page/Cairn","time":"yesterday"}"#,
        huge.as_str(),
        "not json at all",
    ] {
        log.add(heads.clone(), value.as_bytes().to_vec()).unwrap();
    }
    sync(&evil, &w);

    let page = w.page(&t("Cairn")).unwrap();
    assert!(page.is_forked());
    let broken = page
        .versions
        .iter()
        .filter(|v| matches!(v.body, Body::Broken(_)))
        .count();
    assert_eq!(broken, 4, "{page:#?}");
    let list = w.list().unwrap();
    let titles: Vec<&str> = list.iter().map(|p| p.title.as_str()).collect();
    assert_eq!(titles, ["Cairn", "Ctl", "Huge"], "bad titles left out");
    let ctl = w.page(&t("Ctl")).unwrap();
    assert_eq!(
        ctl.versions[0].summary, "a b [31m",
        "control characters cleaned"
    );
    // Search and backlinks still work, including over the huge page.
    let hits = w.search("stone", 10).unwrap();
    let ht: Vec<&str> = hits.iter().map(|h| h.title.as_str()).collect();
    assert!(ht.contains(&"Huge") && ht.contains(&"Ctl"), "{ht:?}");
    assert!(
        !ht.contains(&"Cairn"),
        "no text version of Cairn says stone now? {ht:?}"
    );
    assert!(w.backlinks(&t("Trail")).unwrap().is_empty());
    assert!(w.history(&t("Cairn")).unwrap().len() >= 5);
    assert_eq!(
        w.changes(100).unwrap().len(),
        3,
        "broken versions are not changes"
    );
    // Saving over it all merges every version back into one.
    w.save(&t("Cairn"), "Stones again.", &opts("fix", 9))
        .unwrap();
    assert_eq!(w.page(&t("Cairn")).unwrap().text(), Some("Stones again."));
}
