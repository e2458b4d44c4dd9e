//! The `cairn` command as a user runs it.

use std::process::{Command, Output};

struct Store(std::path::PathBuf);

impl Store {
    fn new(name: &str) -> Store {
        let d = std::env::temp_dir().join(format!("cairn-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        Store(d)
    }
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_cairn"))
            .env("CAIRN_DATA", &self.0)
            .args(args)
            .output()
            .unwrap()
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap().trim_end().to_string()
    }
    fn err(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(!o.status.success(), "{args:?} should fail");
        assert!(o.stdout.is_empty(), "no output on error");
        let e = String::from_utf8(o.stderr).unwrap();
        assert!(e.starts_with("error:"), "{e}");
        e
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn is_hash(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[test]
fn a_session_with_the_log() {
    let s = Store::new("session");
    assert!(s.err(&["log", "heads"]).contains("cairn init"));
    let public = s.ok(&["init"]);
    assert!(is_hash(&public));
    assert_eq!(s.ok(&["init"]), public, "init is idempotent");

    let a = s.ok(&["log", "append", "hello"]);
    assert!(is_hash(&a));
    let b = s.ok(&["log", "add", "--link", &a, "left"]);
    let c = s.ok(&["log", "add", "--link", &a, "right"]);
    let mut heads: Vec<&str> = vec![&b, &c];
    heads.sort();
    assert_eq!(s.ok(&["log", "heads"]), heads.join("\n"));
    let m = s.ok(&["log", "append", "merge"]);
    assert_eq!(s.ok(&["log", "heads"]), m);

    let got: serde_json::Value = serde_json::from_str(&s.ok(&["log", "get", &m])).unwrap();
    assert_eq!(got["key"], m.as_str());
    assert_eq!(got["value"], "merge");
    assert_eq!(got["change"], 4);
    assert_eq!(got["author"], public.as_str());
    assert_eq!(got["signature"].as_str().unwrap().len(), 128);
    assert_eq!(got["links"], serde_json::json!(heads));

    let lines: Vec<serde_json::Value> = s
        .ok(&["log", "changes", "--since", "1", "--limit", "2"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["change"], 2);
    assert_eq!(lines[1]["value"], "right");

    let missing = "00".repeat(32);
    assert!(s.err(&["log", "get", &missing]).contains("no node"));
    assert!(
        s.err(&["log", "add", "--link", &missing, "x"])
            .contains("not in the log")
    );
    assert_eq!(s.ok(&["log", "changes", "--since", "4"]), "");
}

#[test]
fn a_session_with_the_kv_store() {
    let s = Store::new("kv");
    s.ok(&["init"]);
    assert_eq!(s.ok(&["kv", "get", "page"]), "{}");
    let a = s.ok(&["kv", "put", "page", r#"{"title":"Cairn","body":"stones"}"#]);
    assert!(is_hash(&a));
    let got: serde_json::Value = serde_json::from_str(&s.ok(&["kv", "get", "page"])).unwrap();
    assert_eq!(got[&a]["value"]["title"], "Cairn");

    // Two concurrent edits of version a: a fork, both shown.
    let b = s.ok(&["kv", "put", "page", r#""left""#, "--link", &a]);
    let c = s.ok(&["kv", "put", "page", r#""right""#, "--link", &a]);
    let got: serde_json::Value = serde_json::from_str(&s.ok(&["kv", "get", "page"])).unwrap();
    assert_eq!(got.as_object().unwrap().len(), 2);
    assert_eq!(got[&b]["value"], "left");
    assert_eq!(got[&c]["value"], "right");

    // A write without links merges the fork.
    let m = s.ok(&["kv", "put", "page", r#""merged""#]);
    let got: serde_json::Value = serde_json::from_str(&s.ok(&["kv", "get", "page"])).unwrap();
    assert_eq!(got, serde_json::json!({ m.clone(): { "value": "merged" } }));

    s.ok(&["kv", "put", "other", "1"]);
    let rows: Vec<serde_json::Value> = s
        .ok(&["kv", "list"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["key"], "page");
    assert_eq!(rows[1]["links"], serde_json::json!([m]));

    let history: Vec<serde_json::Value> = s
        .ok(&["kv", "history", "page"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(history.len(), 4);
    assert!(history.iter().all(|h| h["key"] == "page"));

    let d = s.ok(&["kv", "del", "page"]);
    let got: serde_json::Value = serde_json::from_str(&s.ok(&["kv", "get", "page"])).unwrap();
    assert_eq!(got, serde_json::json!({ d: { "deleted": true } }));

    assert!(
        s.err(&["kv", "put", "k", "not json"])
            .contains("not valid JSON")
    );
}

/// Issue 8: a put whose value is valid JSON but does not decode (a number out of range),
/// appended as a raw log node, is shown as a broken head by every kv command, exit 0.
#[test]
fn a_poisoned_kv_value_is_shown_broken_and_breaks_nothing_else() {
    let s = Store::new("kv-poison");
    s.ok(&["init"]);
    let hello = s.ok(&["kv", "put", "Home", r#""hello""#]);
    s.ok(&["kv", "put", "Other", r#""x""#]);
    let bad = s.ok(&["log", "append", r#"{"k":"Home","v":1e400}"#]);

    let got: serde_json::Value = serde_json::from_str(&s.ok(&["kv", "get", "Home"])).unwrap();
    let reason = got[&bad]["broken"].as_str().unwrap().to_owned();
    assert!(reason.contains("number out of range"), "{got}");
    assert_eq!(got.as_object().unwrap().len(), 1);

    let rows: Vec<serde_json::Value> = s
        .ok(&["kv", "list"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["key"], "Home");
    assert_eq!(rows[0]["values"], got);
    assert_eq!(rows[1]["key"], "Other");

    let history: Vec<serde_json::Value> = s
        .ok(&["kv", "history", "Home"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["link"], bad.as_str());
    assert_eq!(history[0]["broken"], reason.as_str());
    assert_eq!(history[1]["link"], hello.as_str());
    assert_eq!(history[1]["value"], "hello");

    // A put without links repairs the key.
    let fixed = s.ok(&["kv", "put", "Home", r#""fixed""#]);
    let got: serde_json::Value = serde_json::from_str(&s.ok(&["kv", "get", "Home"])).unwrap();
    assert_eq!(got, serde_json::json!({ fixed: { "value": "fixed" } }));

    // What could not be read back is refused at write time.
    let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
    assert!(
        s.err(&["kv", "put", "k", &deep])
            .contains("nests more than 64 levels")
    );
}

#[test]
fn key_export_and_import_with_a_passphrase() {
    let a = Store::new("key-a");
    let b = Store::new("key-b");
    let pa = a.ok(&["init"]);
    let pb = b.ok(&["init"]);
    assert_ne!(pa, pb);
    // In the clear: the store's own key file text.
    let plain = a.ok(&["key", "export"]);
    assert_eq!(
        plain,
        std::fs::read_to_string(a.0.join("identity"))
            .unwrap()
            .trim_end()
    );
    let pass = a.0.join("pass");
    std::fs::write(&pass, "correct horse\n").unwrap();
    let wrong = a.0.join("wrong");
    std::fs::write(&wrong, "correct horsf\n").unwrap();
    let sealed = a.ok(&["key", "export", "--passphrase-file", pass.to_str().unwrap()]);
    assert!(sealed.starts_with("# cairn ed25519 identity, passphrase-protected"));
    assert!(!sealed.contains("secret:"));
    let file = a.0.join("exported.key");
    std::fs::write(&file, &sealed).unwrap();
    let f = file.to_str().unwrap();
    // A wrong passphrase and none are refused; b's key stays.
    assert!(
        b.err(&[
            "key",
            "import",
            f,
            "--passphrase-file",
            wrong.to_str().unwrap()
        ])
        .contains("wrong passphrase")
    );
    assert!(b.err(&["key", "import", f]).contains("passphrase"));
    assert_eq!(
        b.ok(&["key", "export"]).lines().nth(1),
        Some(&*format!("public: {pb}"))
    );
    // The right one: b is now a's identity, and writes are signed by it.
    assert_eq!(
        b.ok(&[
            "key",
            "import",
            f,
            "--passphrase-file",
            pass.to_str().unwrap()
        ]),
        pa
    );
    let h = b.ok(&["log", "append", "by the imported key"]);
    assert!(b.ok(&["log", "get", &h]).contains(&pa));
    // A file in the clear imports too.
    let c = Store::new("key-c");
    c.ok(&["init"]);
    let plain_file = a.0.join("plain.key");
    std::fs::write(&plain_file, &plain).unwrap();
    assert_eq!(c.ok(&["key", "import", plain_file.to_str().unwrap()]), pa);
}
