//! `cairn wiki` as a user runs it: real processes on a real store.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

mod common;

struct Store(std::path::PathBuf);

impl Store {
    fn new(name: &str) -> Store {
        let d = std::env::temp_dir().join(format!("cairn-wiki-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        Store(d)
    }
    fn run_in(&self, args: &[&str], input: &str) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .env("CAIRN_DATA", &self.0)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }
    fn ok_in(&self, args: &[&str], input: &str) -> String {
        let o = self.run_in(args, input);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }
    fn ok(&self, args: &[&str]) -> String {
        self.ok_in(args, "")
    }
    fn err(&self, args: &[&str]) -> String {
        let o = self.run_in(args, "");
        assert!(!o.status.success(), "{args:?} should fail");
        let e = String::from_utf8(o.stderr).unwrap();
        assert!(e.starts_with("error:"), "{e}");
        e
    }
    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }
    fn json_lines(&self, args: &[&str]) -> Vec<Value> {
        self.ok(args)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sync(a: &Store, b: &Store) {
    // Replicate a → b and b → a through the `log` commands: a's changes inserted into b
    // would need the sync protocol; `cairn sync` over a pipe pair does it for real.
    let mut left = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .env("CAIRN_DATA", &a.0)
        .args(["sync"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut right = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .env("CAIRN_DATA", &b.0)
        .args(["sync"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (mut lo, mut li) = (left.stdout.take().unwrap(), left.stdin.take().unwrap());
    let (mut ro, mut ri) = (right.stdout.take().unwrap(), right.stdin.take().unwrap());
    let t1 = std::thread::spawn(move || std::io::copy(&mut lo, &mut ri));
    let t2 = std::thread::spawn(move || std::io::copy(&mut ro, &mut li));
    assert!(left.wait().unwrap().success());
    assert!(right.wait().unwrap().success());
    let _ = t1.join();
    let _ = t2.join();
}

#[test]
fn edit_show_history_diff_revert_search() {
    let s = Store::new("basic");
    s.ok(&["init"]);
    assert!(s.err(&["wiki", "show", "Cairn"]).contains("no page Cairn"));
    let v1 = s
        .ok_in(
            &["wiki", "edit", "cairn", "--summary", "first"],
            "A pile of stones.\n",
        )
        .trim()
        .to_owned();
    assert_eq!(v1.len(), 64);
    let file = s.0.join("new.md");
    std::fs::write(&file, "A pile of stones on a [[trail  marker]].\n").unwrap();
    let v2 = s
        .ok(&[
            "wiki",
            "edit",
            "Cairn",
            file.to_str().unwrap(),
            "-s",
            "link",
        ])
        .trim()
        .to_owned();
    assert_eq!(
        s.ok(&["wiki", "show", "Cairn"]),
        "A pile of stones on a [[trail  marker]].\n"
    );
    let shown = s.json(&["wiki", "show", "Cairn", "--json"]);
    assert_eq!(shown["forked"], false);
    assert_eq!(shown["versions"][0]["hash"], v2.as_str());
    assert_eq!(shown["versions"][0]["summary"], "link");

    let h = s.json_lines(&["wiki", "history", "Cairn", "--json"]);
    assert_eq!(h.len(), 2);
    assert_eq!(h[0]["hash"], v2.as_str());
    assert_eq!(h[1]["summary"], "first");
    assert!(h[0].get("text").is_none());
    assert!(s.ok(&["wiki", "history", "Cairn"]).contains("first"));

    let d = s.ok(&["wiki", "diff", "Cairn"]);
    assert!(
        d.contains("-A pile of stones.") && d.contains("+A pile of stones on a"),
        "{d}"
    );
    assert_eq!(s.ok(&["wiki", "diff", "Cairn", &v1[..10], &v1]), "");
    assert!(
        s.err(&["wiki", "diff", "Cairn", "zz"])
            .contains("no version")
    );

    assert_eq!(s.ok(&["wiki", "backlinks", "Trail marker"]), "Cairn\n");
    assert_eq!(
        s.json(&["wiki", "backlinks", "trail_marker", "--json"]),
        serde_json::json!(["Cairn"])
    );
    let hits = s.json_lines(&["wiki", "search", "ston", "--json"]);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0]["title"], "Cairn");

    s.ok(&["wiki", "revert", "Cairn", &v1[..12]]);
    assert_eq!(s.ok(&["wiki", "show", "Cairn"]), "A pile of stones.\n");
    let changes = s.json_lines(&["wiki", "changes", "--json"]);
    assert_eq!(changes.len(), 3);
    assert!(
        changes[0]["summary"]
            .as_str()
            .unwrap()
            .starts_with("revert to")
    );

    s.ok(&["wiki", "delete", "Cairn"]);
    assert!(s.err(&["wiki", "show", "Cairn"]).contains("was deleted"));
    let list = s.json_lines(&["wiki", "list", "--json"]);
    assert_eq!(list[0]["state"], "deleted");
    s.ok(&["wiki", "undelete", "Cairn"]);
    assert_eq!(s.ok(&["wiki", "show", "Cairn"]), "A pile of stones.\n");

    s.ok(&["wiki", "rename", "Cairn", "Stone pile"]);
    assert_eq!(s.ok(&["wiki", "show", "Stone pile"]), "A pile of stones.\n");
    assert_eq!(
        s.ok(&["wiki", "show", "Cairn"]),
        "#REDIRECT [[Stone pile]]\n"
    );
    assert_eq!(
        s.json_lines(&["wiki", "history", "Stone pile", "--json"])
            .len(),
        6
    );
    assert!(
        s.err(&["wiki", "show", "../../etc"])
            .contains("not a page title")
    );
    assert!(s.err(&["wiki", "edit", "a|b"]).contains("not a page title"));
}

#[test]
fn forks_shown_then_merged() {
    let a = Store::new("fork-a");
    let b = Store::new("fork-b");
    a.ok(&["init"]);
    b.ok(&["init"]);
    a.ok(&["wiki", "name", "Ada"]);
    a.ok_in(&["wiki", "edit", "Cairn"], "one\ntwo\nthree\nfour\n");
    sync(&a, &b);
    a.ok_in(
        &["wiki", "edit", "Cairn", "-s", "a"],
        "ONE\ntwo\nthree\nfour\n",
    );
    b.ok_in(
        &["wiki", "edit", "Cairn", "-s", "b"],
        "one\ntwo\nthree\nFOUR\n",
    );
    sync(&a, &b);
    for s in [&a, &b] {
        let shown = s.ok(&["wiki", "show", "Cairn"]);
        assert!(
            shown.starts_with("Cairn is forked: 2 current versions"),
            "{shown}"
        );
        assert!(
            shown.contains("ONE\n") && shown.contains("FOUR\n"),
            "{shown}"
        );
        assert!(shown.contains("by Ada ("), "{shown}");
        assert_eq!(s.json(&["wiki", "show", "Cairn", "--json"])["forked"], true);
        assert!(s.ok(&["wiki", "list"]).contains("Cairn\tforked\t2"));
    }
    assert_eq!(a.ok(&["wiki", "merge", "Cairn"]), "ONE\ntwo\nthree\nFOUR\n");
    let m = a.json(&["wiki", "merge", "Cairn", "--save", "--json"]);
    assert_eq!(m["conflicts"], 0);
    assert_eq!(m["heads"].as_array().unwrap().len(), 2);
    assert!(m["saved"].is_string());
    sync(&a, &b);
    assert_eq!(b.ok(&["wiki", "show", "Cairn"]), "ONE\ntwo\nthree\nFOUR\n");

    // A conflicting fork: merge marks it, --save refuses, edit saves over every version.
    a.ok_in(&["wiki", "edit", "Cairn"], "ONE\nTWO\nthree\nFOUR\n");
    b.ok_in(&["wiki", "edit", "Cairn"], "ONE\n2\nthree\nFOUR\n");
    sync(&a, &b);
    let m = b.ok(&["wiki", "merge", "Cairn"]);
    assert!(m.contains("<<<<<<<") && m.contains(">>>>>>>"), "{m}");
    assert!(
        b.err(&["wiki", "merge", "Cairn", "--save"])
            .contains("conflicts")
    );
    b.ok_in(
        &["wiki", "edit", "Cairn", "-s", "resolved"],
        "ONE\nTWO (2)\nthree\nFOUR\n",
    );
    assert_eq!(
        b.json(&["wiki", "show", "Cairn", "--json"])["forked"],
        false
    );
    let changes = b.ok(&["wiki", "changes"]);
    assert!(
        changes.lines().next().unwrap().contains("resolved"),
        "{changes}"
    );
}

#[test]
fn import_export_the_example_wiki() {
    let s = Store::new("import");
    s.ok(&["init"]);
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/wiki");
    let n = std::fs::read_dir(example)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "md")
        })
        .count();
    assert!(n >= 12, "a dozen pages");
    let r = s.json(&["wiki", "import", example, "--json"]);
    assert_eq!(r["saved"], n);
    let r = s.json(&["wiki", "import", example, "--json"]);
    assert_eq!(
        r,
        serde_json::json!({"saved": 0, "unchanged": n}),
        "idempotent"
    );
    assert_eq!(s.json_lines(&["wiki", "list", "--json"]).len(), n);
    // Every [[link]] of the example resolves to a page of it.
    for p in s.json_lines(&["wiki", "list", "--json"]) {
        let title = p["title"].as_str().unwrap();
        for back in s
            .json(&["wiki", "backlinks", title, "--json"])
            .as_array()
            .unwrap()
        {
            assert!(back.is_string());
        }
    }
    assert!(!s.ok(&["wiki", "backlinks", "Cairn"]).is_empty());
    assert!(!s.ok(&["wiki", "search", "stone"]).is_empty());

    // The example's image became a blob, named by its hash in the page.
    let svg = std::fs::read(format!("{example}/images/cairn.svg")).unwrap();
    let ls = s.json_lines(&["blob", "ls"]);
    assert_eq!(ls.len(), 1);
    let hex = ls[0]["hash"].as_str().unwrap().to_owned();
    assert_eq!(ls[0]["size"], svg.len());
    assert!(
        s.ok(&["wiki", "show", "Cairn"])
            .contains(&format!("](blob:{hex})"))
    );

    let out = s.0.join("export");
    let r = s.json(&["wiki", "export", out.to_str().unwrap(), "--json"]);
    assert_eq!(r["written"], n);
    assert_eq!(r["images"], 1);
    // Pages round trip, the image's path now named by its hash and its bytes the same.
    let rel = format!("images/{hex}.svg");
    assert_eq!(std::fs::read(out.join(&rel)).unwrap(), svg);
    for e in std::fs::read_dir(example).unwrap() {
        let e = e.unwrap();
        if e.path().extension().is_some_and(|x| x == "md") {
            assert_eq!(
                std::fs::read_to_string(e.path())
                    .unwrap()
                    .replace("](images/cairn.svg)", &format!("]({rel})")),
                std::fs::read_to_string(out.join(e.file_name())).unwrap(),
                "{:?} round trips",
                e.file_name()
            );
        }
    }
    // The export imports back as it is.
    let r = s.json(&["wiki", "import", out.to_str().unwrap(), "--json"]);
    assert_eq!(r, serde_json::json!({"saved": 0, "unchanged": n}));
}

/// A directory `pages` in `dir` whose page Pic names images: one inside it (twice), one
/// above it, one through a link out of it, one missing, one in code, one a URL.
fn pages_with_images(dir: &std::path::Path, png: &[u8]) -> std::path::PathBuf {
    let pages = dir.join("pages");
    std::fs::create_dir_all(pages.join("images")).unwrap();
    std::fs::write(pages.join("images/a.png"), png).unwrap();
    std::fs::write(dir.join("secret.bin"), b"outside").unwrap();
    std::os::unix::fs::symlink(dir.join("secret.bin"), pages.join("images/link.png")).unwrap();
    std::fs::write(pages.join("Pic.md"), PIC.replace("{a}", "images/a.png")).unwrap();
    pages
}

const PIC: &str = "![a]({a} \"A title\") and again ![a]({a})\n\
                   ![up](../secret.bin) ![link](images/link.png)\n\
                   ![gone](images/none.png) `![code](images/a.png)` ![web](https://x.org/a.png)\n";

#[test]
fn import_adds_images_inside_the_directory_and_export_writes_them() {
    let s = Store::new("images");
    s.ok(&["init"]);
    let png = b"\x89PNG\r\n\x1a\n image bytes".to_vec();
    let pages = pages_with_images(&s.0.join("src"), &png);
    let o = s.run_in(&["wiki", "import", pages.to_str().unwrap()], "");
    assert!(o.status.success());
    let notes = String::from_utf8(o.stderr).unwrap();
    for left in ["../secret.bin", "images/link.png", "images/none.png"] {
        assert!(
            notes.contains(&format!("image {left} is not a file in")),
            "{notes}"
        );
    }
    let ls = s.json_lines(&["blob", "ls"]);
    assert_eq!(ls.len(), 1, "only the image inside the directory is added");
    let hex = ls[0]["hash"].as_str().unwrap().to_owned();
    assert_eq!(
        s.ok(&["wiki", "show", "Pic"]),
        PIC.replace("{a}", &format!("blob:{hex}"))
    );
    // Again: nothing changes.
    let r = s.json(&["wiki", "import", pages.to_str().unwrap(), "--json"]);
    assert_eq!(r, serde_json::json!({"saved": 0, "unchanged": 1}));

    let out = s.0.join("out");
    let r = s.json(&["wiki", "export", out.to_str().unwrap(), "--json"]);
    assert_eq!(r, serde_json::json!({"written": 1, "images": 1}));
    let rel = format!("images/{hex}.png");
    assert_eq!(std::fs::read(out.join(&rel)).unwrap(), png);
    assert_eq!(
        std::fs::read_to_string(out.join("Pic.md")).unwrap(),
        PIC.replace("{a}", &rel)
    );
    // A page naming a blob that is not here keeps its `blob:` reference.
    let absent = format!("![x](blob:{})\n", "cd".repeat(32));
    s.ok_in(&["wiki", "edit", "Absent"], &absent);
    let o = s.run_in(&["wiki", "export", out.to_str().unwrap()], "");
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not here"));
    assert_eq!(
        std::fs::read_to_string(out.join("Absent.md")).unwrap(),
        absent
    );
}

#[test]
fn images_import_and_export_through_a_running_server() {
    let s = Store::new("images-served");
    s.ok(&["init"]);
    let png = b"\x89PNG\r\n\x1a\n served image".to_vec();
    let work = s.0.join("work");
    pages_with_images(&work, &png);
    let _server = common::start_serve(&s.0, &["--listen", "127.0.0.1:0"], 1);
    assert!(s.0.join("cairn.sock").exists());
    // Relative directories: the client sends them absolute, the server reads the image.
    let rel_run = |args: &[&str]| {
        let o = common::cairn(&s.0)
            .current_dir(&work)
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let r: Value = serde_json::from_str(&rel_run(&["wiki", "import", "pages", "--json"])).unwrap();
    assert_eq!(r["saved"], 1);
    let ls = s.json_lines(&["blob", "ls"]);
    assert_eq!(ls.len(), 1);
    let hex = ls[0]["hash"].as_str().unwrap().to_owned();
    assert_eq!(
        s.ok(&["wiki", "show", "Pic"]),
        PIC.replace("{a}", &format!("blob:{hex}"))
    );
    let r: Value = serde_json::from_str(&rel_run(&["wiki", "export", "out", "--json"])).unwrap();
    assert_eq!(r, serde_json::json!({"written": 1, "images": 1}));
    let rel = format!("images/{hex}.png");
    assert_eq!(std::fs::read(work.join("out").join(&rel)).unwrap(), png);
    assert_eq!(
        std::fs::read_to_string(work.join("out/Pic.md")).unwrap(),
        PIC.replace("{a}", &rel)
    );
}
