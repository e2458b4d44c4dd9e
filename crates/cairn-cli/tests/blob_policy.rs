//! `cairn serve`'s blob fetch policy through real processes: a client's `sync --connect`
//! offers its blobs, the server fetches those its new nodes name within `--blob-max-size`.

mod common;

use std::process::Stdio;

use common::{cairn, finish, ok, start_serve};

/// `len` bytes that do not compress (so sizes are what they say).
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    let mut xof = h.finalize_xof();
    out.resize(len, 0);
    xof.fill(&mut out);
    out
}

fn add(dir: &std::path::Path, name: &str, data: &[u8]) -> String {
    let f = dir.join(name);
    std::fs::write(&f, data).unwrap();
    ok(cairn(dir).args(["blob", "add"]).arg(&f))
}

/// `cairn --data D blob get H --connect URL -o D/out` with a time limit.
fn get(dir: &std::path::Path, h: &str, url: &str) -> std::process::Output {
    let child = cairn(dir)
        .args(["blob", "get", h, "--connect", url, "--timeout", "20", "-o"])
        .arg(dir.join("out"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish(child, 60)
}

#[test]
fn serve_fetches_named_blobs_up_to_its_per_blob_cap() {
    let (s, c, d) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    for dir in [&s, &c, &d] {
        ok(cairn(dir.path()).arg("init"));
    }
    let big = bytes(1_000_000, 1);
    let small = bytes(100_000, 2);
    let (hb, hs) = (add(c.path(), "big", &big), add(c.path(), "small", &small));
    for line in [
        format!("![big](blob:{hb})"),
        format!("![small](blob:{hs})"),
        "a page".into(),
    ] {
        ok(cairn(c.path()).args(["log", "append", &line]));
    }
    let (_server, addrs) = start_serve(
        s.path(),
        &["--listen", "127.0.0.1:0", "--blob-max-size", "300000"],
        1,
    );
    let url = format!("tcp://{}", addrs[0]);
    let sync = cairn(c.path())
        .args(["sync", "--connect", &url, "--timeout", "20"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let o = finish(sync, 60);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A third peer asks the server: the small blob is there, the big one was not fetched.
    // (The server may still be finishing its fetch when the client's sync returns: a few
    // tries, bounded.)
    let mut tries = 0;
    let got = loop {
        let o = get(d.path(), &hs, &url);
        tries += 1;
        if o.status.success() || tries == 20 {
            break o;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert_eq!(std::fs::read(d.path().join("out")).unwrap(), small);
    let o = get(d.path(), &hb, &url);
    assert!(!o.status.success(), "the big blob is not on the server");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("does not have"), "{err}");
    let changes = ok(cairn(d.path()).args(["log", "changes"]));
    assert_eq!(
        changes.lines().count(),
        3,
        "the log reached the server and on"
    );
}
