//! `cairn sync` over standard input and output: two processes piped into each other.

mod common;

use std::io::{Read, Write};
use std::process::{Child, Stdio};

use common::{cairn, finish, ok};

fn spawn_sync(dir: &std::path::Path, args: &[&str]) -> Child {
    cairn(dir)
        .arg("sync")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Joins a's stdout to b's stdin and back; returns both exit statuses and stderr texts.
fn pipe_together(mut a: Child, mut b: Child) -> [(bool, String); 2] {
    let copy = |mut from: std::process::ChildStdout, mut to: std::process::ChildStdin| {
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            // Dropping `to` closes the peer's input.
        })
    };
    let t1 = copy(a.stdout.take().unwrap(), b.stdin.take().unwrap());
    let t2 = copy(b.stdout.take().unwrap(), a.stdin.take().unwrap());
    let out = [a, b].map(|c| {
        let o = finish(c, 60);
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    });
    t1.join().unwrap();
    t2.join().unwrap();
    out
}

#[test]
fn two_stores_converge_over_stdio() {
    let base = std::env::temp_dir().join(format!("cairn-sync-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (a, b) = (base.join("a"), base.join("b"));
    ok(cairn(&a).arg("init"));
    ok(cairn(&b).arg("init"));
    for i in 0..50 {
        ok(cairn(&a).args(["log", "append", &format!("a{i}")]));
    }
    for i in 0..30 {
        ok(cairn(&b).args(["log", "append", &format!("b{i}")]));
    }
    let [(ok_a, err_a), (ok_b, err_b)] = pipe_together(spawn_sync(&a, &[]), spawn_sync(&b, &[]));
    assert!(ok_a && ok_b, "a: {err_a}\nb: {err_b}");
    let summary: serde_json::Value =
        serde_json::from_str(err_a.trim_end().lines().last().unwrap()).unwrap();
    assert_eq!(summary["nodes_sent"], 50);
    assert_eq!(summary["nodes_received"], 30);
    assert!(summary["bytes_sent"].as_u64().unwrap() > 0);

    let heads_a = ok(cairn(&a).args(["log", "heads"]));
    let heads_b = ok(cairn(&b).args(["log", "heads"]));
    assert_eq!(heads_a, heads_b);
    assert_eq!(heads_a.lines().count(), 2, "two writers' chains: two heads");
    let count = |d: &std::path::Path| ok(cairn(d).args(["log", "changes"])).lines().count();
    assert_eq!(count(&a), 80);
    assert_eq!(count(&b), 80);

    // Already equal: a second sync sends no nodes.
    let [(ok_a, err_a), (ok_b, _)] = pipe_together(spawn_sync(&a, &[]), spawn_sync(&b, &[]));
    assert!(ok_a && ok_b);
    let summary: serde_json::Value =
        serde_json::from_str(err_a.trim_end().lines().last().unwrap()).unwrap();
    assert_eq!(summary["nodes_sent"], 0);
    assert_eq!(summary["nodes_received"], 0);

    // push to push is refused, with an error on both sides and a non-zero exit.
    let [(ok_a, err_a), (ok_b, _)] = pipe_together(
        spawn_sync(&a, &["--mode", "push"]),
        spawn_sync(&b, &["--mode", "push"]),
    );
    assert!(!ok_a && !ok_b, "push with push must fail");
    assert!(err_a.contains("error:"), "{err_a}");

    // Garbage on the input: a clear error, the store untouched.
    let mut g = spawn_sync(&a, &[]);
    let mut stdin = g.stdin.take().unwrap();
    stdin.write_all(&[0xff; 64]).unwrap();
    drop(stdin);
    let o = finish(g, 60);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("error:"));
    assert_eq!(count(&a), 80);
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn a_silent_peer_times_out_with_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("cairn-sync-silent-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    ok(cairn(&dir).arg("init"));
    ok(cairn(&dir).args(["log", "append", "x"]));
    // Standard input stays open and says nothing.
    let mut child = spawn_sync(&dir, &["--timeout", "1"]);
    let stdin = child.stdin.take().unwrap();
    let o = finish(child, 30);
    drop(stdin);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("error:") && err.contains("sent nothing"),
        "{err}"
    );
    assert_eq!(ok(cairn(&dir).args(["log", "changes"])).lines().count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
