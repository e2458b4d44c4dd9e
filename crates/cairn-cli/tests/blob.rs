//! `cairn blob` through real processes: add / ls / gc, and `blob get --connect` from a
//! `cairn serve` over TCP with Noise, on the connection the log syncs over.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{cairn, finish, ok};

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &std::path::Path) -> (Server, String) {
    let mut server = Server(
        cairn(dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut out = BufReader::new(server.0.stdout.take().unwrap());
    let mut addr = String::new();
    out.read_line(&mut addr).unwrap();
    (server, format!("tcp://{}", addr.trim()))
}

fn data(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn init(dir: &std::path::Path) {
    ok(cairn(dir).arg("init"));
}

fn add_file(dir: &std::path::Path, bytes: &[u8]) -> String {
    let f = dir.join("input.bin");
    std::fs::write(&f, bytes).unwrap();
    ok(cairn(dir).args(["blob", "add"]).arg(&f))
}

#[test]
fn add_ls_get_gc_locally() {
    let d = tempfile::tempdir().unwrap();
    init(d.path());
    let big = data(300_000, 1);
    let h = add_file(d.path(), &big);
    assert_eq!(h, blake3::hash(&big).to_hex().to_string());
    let small = add_file(d.path(), b"small");
    let ls = ok(cairn(d.path()).args(["blob", "ls"]));
    assert_eq!(ls.lines().count(), 2);
    assert!(ls.contains(&format!(
        "\"hash\":\"{h}\",\"size\":300000,\"complete\":true"
    )));
    let out = cairn(d.path()).args(["blob", "get", &h]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, big);
    // Missing, no peer: a clear error.
    let missing = blake3::hash(b"missing").to_hex().to_string();
    let o = cairn(d.path())
        .args(["blob", "get", &missing])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not here"));
    // A node names the big one: gc keeps it and removes the small one.
    ok(cairn(d.path()).args(["log", "append", &format!("![img](blob:{h})")]));
    let gc = ok(cairn(d.path()).args(["blob", "gc"]));
    assert_eq!(gc, r#"{"removed":1,"bytes":5,"kept":1}"#);
    let ls = ok(cairn(d.path()).args(["blob", "ls"]));
    assert!(ls.contains(&h) && !ls.contains(&small));
}

/// A 24 MB blob and 3,000 log nodes over one Noise-encrypted TCP connection: both arrive.
#[test]
fn get_over_tcp_with_the_log_sync_on_the_same_connection() {
    let s = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    init(s.path());
    init(c.path());
    let big = data(24 << 20, 2);
    let h = add_file(s.path(), &big);
    let mut child = cairn(s.path())
        .args(["log", "append", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    {
        let mut input = child.stdin.take().unwrap();
        for i in 0..3000 {
            writeln!(input, "node {i}").unwrap();
        }
    }
    assert!(finish(child, 60).status.success());
    let (_server, url) = serve(s.path());
    let out = c.path().join("out.bin");
    let o = cairn(c.path())
        .args(["blob", "get", &h, "--connect", &url, "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&out).unwrap(), big);
    let changes = ok(cairn(c.path()).args(["log", "changes"]));
    assert_eq!(changes.lines().count(), 3000, "the log synced too");
    // Now local: no peer needed.
    let again = cairn(c.path()).args(["blob", "get", &h]).output().unwrap();
    assert_eq!(again.stdout, big);
}

/// A server whose files for blob A hold blob B: it never sends them (its encoder verifies
/// every group before sending), the client fails with an error, nothing is stored.
#[test]
fn a_peer_that_claims_a_blob_and_has_another() {
    let s = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    init(s.path());
    init(c.path());
    let a = data(1 << 20, 3);
    let b = data(1 << 20, 4);
    let ha = blake3::hash(&a).to_hex().to_string();
    let hb = add_file(s.path(), &b);
    let dir = s.path().join("blobs");
    std::fs::rename(
        dir.join(format!("{hb}.data")),
        dir.join(format!("{ha}.data")),
    )
    .unwrap();
    std::fs::rename(
        dir.join(format!("{hb}.obao")),
        dir.join(format!("{ha}.obao")),
    )
    .unwrap();
    let (_server, url) = serve(s.path());
    let o = cairn(c.path())
        .args(["blob", "get", &ha, "--connect", &url])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("fetching blob {ha}")), "{err}");
    assert!(err.contains("corrupt"), "{err}");
    let ls = ok(cairn(c.path()).args(["blob", "ls"]));
    assert!(!ls.contains("\"complete\":true"), "{ls}");
}

/// A peer that accepts the connection and never says anything: the client gives up with a
/// clear error, not a hang.
#[test]
fn a_peer_that_never_answers() {
    let c = tempfile::tempdir().unwrap();
    init(c.path());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        std::thread::sleep(Duration::from_secs(20));
        drop(conn);
    });
    let t = Instant::now();
    let h = blake3::hash(b"x").to_hex().to_string();
    let o = cairn(c.path())
        .args(["blob", "get", &h, "--timeout", "2", "--connect"])
        .arg(format!("tcp://{addr}"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(t.elapsed() < Duration::from_secs(19), "{:?}", t.elapsed());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("handshake"), "{err}");
    silent.join().unwrap();
}

/// `kill -9` of `cairn blob get` mid-download: the partial download is kept (only verified,
/// durable groups), the next `get` asks for the rest only and the blob is whole.
#[test]
fn kill_9_during_a_download_then_resume() {
    let s = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    init(s.path());
    init(c.path());
    let big = data(96 << 20, 5);
    let h = add_file(s.path(), &big);
    let (_server, url) = serve(s.path());
    let bits = c.path().join("blobs").join(format!("{h}.part.bits"));
    let mut child = cairn(c.path())
        .args(["blob", "get", &h, "--connect", &url, "-o"])
        .arg(c.path().join("out.bin"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !bits.exists() {
        assert!(Instant::now() < deadline, "no checkpoint");
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the kill"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let ls = ok(cairn(c.path()).args(["blob", "ls"]));
    let line: serde_json::Value = serde_json::from_str(ls.lines().next().unwrap()).unwrap();
    assert_eq!(line["complete"], false, "{ls}");
    let present = line["present"].as_u64().unwrap();
    assert!(present > 0 && present < big.len() as u64, "{ls}");
    let o = cairn(c.path())
        .args(["blob", "get", &h, "--connect", &url, "-o"])
        .arg(c.path().join("out.bin"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(c.path().join("out.bin")).unwrap(), big);
    let err = String::from_utf8_lossy(&o.stderr);
    let received: u64 = err
        .split('(')
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(
        received <= big.len() as u64 - present,
        "only the rest was fetched: {err}"
    );
}

/// Two peers asked at once: the first claims the blob and holds another one (its bytes
/// never verify), the second has it. The first is dropped, the second delivers.
#[test]
fn a_lying_peer_is_dropped_and_the_next_one_delivers() {
    let liar = tempfile::tempdir().unwrap();
    let good = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    for d in [&liar, &good, &c] {
        init(d.path());
    }
    let a = data(16 << 20, 13);
    let ha = add_file(good.path(), &a);
    let hb = add_file(liar.path(), &data(16 << 20, 14));
    let dir = liar.path().join("blobs");
    for ext in ["data", "obao"] {
        std::fs::rename(
            dir.join(format!("{hb}.{ext}")),
            dir.join(format!("{ha}.{ext}")),
        )
        .unwrap();
    }
    let (_l, liar_url) = serve(liar.path());
    let (_g, good_url) = serve(good.path());
    let o = cairn(c.path())
        .args([
            "blob",
            "get",
            &ha,
            "--connect",
            &liar_url,
            "--connect",
            &good_url,
        ])
        .arg("-o")
        .arg(c.path().join("out.bin"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains(&format!("dropping {liar_url}")), "{err}");
    assert_eq!(std::fs::read(c.path().join("out.bin")).unwrap(), a);
}

/// A silent peer and one that has the blob: it arrives without waiting for the silent one.
#[test]
fn a_silent_peer_is_dropped_and_the_next_one_delivers() {
    let good = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    init(good.path());
    init(c.path());
    let a = data(300_000, 15);
    let h = add_file(good.path(), &a);
    let (_g, good_url) = serve(good.path());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("tcp://{}", listener.local_addr().unwrap());
    let silent = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        std::thread::sleep(Duration::from_secs(10));
        drop(conn);
    });
    let t = Instant::now();
    let o = cairn(c.path())
        .args(["blob", "get", &h, "--timeout", "2"])
        .args(["--connect", &silent_url, "--connect", &good_url, "-o"])
        .arg(c.path().join("out.bin"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    // Not held up by the silent one (its handshake alone would take 10 s to time out).
    assert!(t.elapsed() < Duration::from_secs(9), "{:?}", t.elapsed());
    assert_eq!(std::fs::read(c.path().join("out.bin")).unwrap(), a);
    silent.join().unwrap();
}

/// Two peers with the blob, asked at once; the first is killed mid-transfer: it is dropped
/// and the second fetches what the first had not sent.
#[test]
fn a_peer_killed_mid_transfer_and_the_next_one_completes() {
    let s1 = tempfile::tempdir().unwrap();
    let s2 = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    for d in [&s1, &s2, &c] {
        init(d.path());
    }
    let big = data(96 << 20, 16);
    let h = add_file(s1.path(), &big);
    assert_eq!(add_file(s2.path(), &big), h);
    let (mut first, url1) = serve(s1.path());
    let (_second, url2) = serve(s2.path());
    let bits = c.path().join("blobs").join(format!("{h}.part.bits"));
    let child = cairn(c.path())
        .args([
            "blob",
            "get",
            &h,
            "--connect",
            &url1,
            "--connect",
            &url2,
            "-o",
        ])
        .arg(c.path().join("out.bin"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !bits.exists() {
        assert!(Instant::now() < deadline, "no checkpoint");
        std::thread::sleep(Duration::from_millis(1));
    }
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains(&format!("dropping {url1}")), "{err}");
    assert_eq!(std::fs::read(c.path().join("out.bin")).unwrap(), big);
    let ls = ok(cairn(c.path()).args(["blob", "ls"]));
    assert!(ls.contains("\"complete\":true"), "{ls}");
}
