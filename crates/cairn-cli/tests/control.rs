//! `cairn wiki`/`kv`/`log` while `cairn serve` holds the store: the commands run in the
//! server, through its control socket `DATA/cairn.sock`. Real processes on real stores.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::{Server, cairn, finish, ok, start_serve};
use serde_json::Value;

/// A temporary directory, removed at the end.
struct Dir(PathBuf);
impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("cairn-control-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts `cairn serve` on `dir` (TCP on a free port): the server and its address.
fn serve(dir: &Path) -> (Server, String) {
    let (server, a) = start_serve(dir, &["--listen", "127.0.0.1:0"], 1);
    (server, format!("tcp://{}", a[0]))
}

/// Runs `cairn --data DIR ARGS` with `input` on standard input (at most 60 s).
fn run(dir: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = cairn(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // A refused input may be cut short: the command need not read all of it.
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = finish(child, 60);
    feeder.join().unwrap();
    out
}

fn ok_in(dir: &Path, args: &[&str], input: &str) -> String {
    let o = run(dir, args, input.as_bytes());
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn fails(dir: &Path, args: &[&str], input: &[u8]) -> String {
    let o = run(dir, args, input);
    assert!(!o.status.success(), "{args:?} should fail");
    String::from_utf8(o.stderr).unwrap()
}

fn json(dir: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&ok_in(dir, args, "")).unwrap()
}

fn stop(mut server: (Server, String)) {
    // SIGTERM: a clean shutdown.
    let st = std::process::Command::new("kill")
        .arg(server.0.0.id().to_string())
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.0.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the server did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn wiki_commands_run_through_a_running_server() {
    let base = Dir::new("wiki");
    let (a, b) = (base.join("a"), base.join("b"));
    ok(cairn(&a).arg("init"));
    ok(cairn(&b).arg("init"));
    let server = serve(&a);
    let sock = a.join("cairn.sock");
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the socket is the owner's only");

    // Written and read through the server: the store is its.
    let v1 = ok_in(
        &a,
        &["wiki", "edit", "Home", "-s", "first"],
        "Hello [[World]]\n",
    );
    assert_eq!(
        ok_in(&a, &["wiki", "show", "Home"], ""),
        "Hello [[World]]\n"
    );
    let f = a.join("world.md");
    std::fs::write(&f, "The world.\n").unwrap();
    ok_in(&a, &["wiki", "edit", "World", f.to_str().unwrap()], "");
    assert_eq!(ok_in(&a, &["wiki", "backlinks", "World"], ""), "Home\n");
    let hist = ok_in(&a, &["wiki", "history", "Home"], "");
    assert!(
        hist.starts_with(v1.trim()) && hist.contains("first"),
        "{hist}"
    );

    // A fork: b takes the page, both edit it apart, b pushes its version to the server.
    ok(cairn(&b).args(["sync", "--connect", &server.1]));
    ok_in(
        &a,
        &["wiki", "edit", "Home", "-s", "server"],
        "Hello [[World]]\nfrom a\n",
    );
    ok_in(
        &b,
        &["wiki", "edit", "Home", "-s", "peer"],
        "from b\nHello [[World]]\n",
    );
    ok(cairn(&b).args(["sync", "--connect", &server.1]));
    let shown = ok_in(&a, &["wiki", "show", "Home"], "");
    assert!(
        shown.starts_with("Home is forked: 2 current versions"),
        "{shown}"
    );
    assert!(
        shown.contains("from a") && shown.contains("from b"),
        "{shown}"
    );
    let merged = json(&a, &["wiki", "--json", "merge", "Home"]);
    assert_eq!(merged["conflicts"], 0);
    assert_eq!(merged["text"], "from b\nHello [[World]]\nfrom a\n");
    let saved = json(&a, &["wiki", "--json", "merge", "Home", "--save"]);
    assert!(saved["saved"].is_string());
    let page = json(&a, &["wiki", "--json", "show", "Home"]);
    assert_eq!(page["forked"], false);
    assert_eq!(
        page["versions"][0]["text"],
        "from b\nHello [[World]]\nfrom a\n"
    );

    // Errors of the command come back as errors, with the command's message.
    let e = fails(&a, &["wiki", "show", "Nowhere"], b"");
    assert!(e.starts_with("error: no page Nowhere"), "{e}");
    // kv and log too.
    ok_in(&a, &["kv", "put", "colour", "\"blue\""], "");
    let got = ok_in(&a, &["kv", "get", "colour"], "");
    assert!(got.contains("\"blue\""), "{got}");
    let h = ok_in(&a, &["log", "append", "a line"], "");
    assert!(ok_in(&a, &["log", "heads"], "").contains(h.trim()));
    let lines = ok_in(&a, &["log", "append", "--stdin"], "one\ntwo\nthree\n");
    assert_eq!(lines.lines().count(), 3);

    // export writes the client's files, import reads them.
    let out = base.join("export");
    ok_in(&a, &["wiki", "export", out.to_str().unwrap()], "");
    assert_eq!(
        std::fs::read_to_string(out.join("World.md")).unwrap(),
        "The world.\n"
    );
    std::fs::write(out.join("New page.md"), "Imported.\n").unwrap();
    let imported = ok_in(&a, &["wiki", "import", out.to_str().unwrap()], "");
    assert_eq!(imported, "1 pages saved, 2 unchanged\n");

    // What a server must not run is refused, by name.
    let e = fails(&a, &["log", "changes", "--live"], b"");
    assert!(e.contains("does not run `log changes --live`"), "{e}");

    // A clean exit removes the socket; the commands then open the store themselves.
    stop(server);
    assert!(!sock.exists(), "the socket outlived its server");
    assert_eq!(ok_in(&a, &["wiki", "show", "New page"], ""), "Imported.\n");
}

#[test]
fn a_live_peer_receives_writes_made_through_the_socket() {
    let base = Dir::new("live");
    let a = base.join("a");
    ok(cairn(&a).arg("init"));
    let server = serve(&a);
    // A live replica in this process.
    let log =
        cairn_log::Log::open(base.join("peer.redb"), cairn_log::LogOptions::default()).unwrap();
    let me = cairn_core::Keypair::generate().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let peer = {
        let (log, url, stop) = (log.clone(), server.1.clone(), stop.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(cairn_cli::net::sync_with(
                &log,
                &me,
                &url,
                cairn_sync::SessionOptions {
                    live: true,
                    ..Default::default()
                },
                Duration::from_secs(30),
                async move {
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
            ))
            .map(|_| ())
        })
    };
    // Give the session time to pass its initial sync, then write through the socket.
    std::thread::sleep(Duration::from_millis(500));
    let h: cairn_core::Hash = ok_in(&a, &["wiki", "edit", "Live", "-s", "now"], "live text\n")
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while log.get(&h).unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the write did not reach the live peer"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    peer.join().unwrap().unwrap();
    drop(server);
}

#[test]
fn concurrent_writers_through_the_socket() {
    let base = Dir::new("many");
    let a = base.join("a");
    ok(cairn(&a).arg("init"));
    let _server = serve(&a);
    let writers: Vec<_> = (0..12)
        .map(|i| {
            let a = a.clone();
            std::thread::spawn(move || {
                let title = format!("Page {}", i % 4);
                ok_in(
                    &a,
                    &["wiki", "edit", &title, "-s", &format!("w{i}")],
                    &format!("text {i}\n"),
                );
                ok_in(&a, &["kv", "put", &format!("k{i}"), &i.to_string()], "");
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let list = ok_in(&a, &["wiki", "list"], "");
    assert_eq!(list.lines().count(), 4, "{list}");
    for i in 0..4 {
        let hist = ok_in(&a, &["wiki", "history", &format!("Page {i}")], "");
        assert_eq!(hist.lines().count(), 3, "{hist}");
    }
    let keys = ok_in(&a, &["kv", "list"], "");
    assert_eq!(
        keys.lines()
            .filter(|l| l.starts_with("{\"key\":\"k"))
            .count(),
        12,
        "{keys}"
    );
}

#[test]
fn a_socket_left_by_a_killed_server_is_replaced() {
    let base = Dir::new("kill9");
    let a = base.join("a");
    ok(cairn(&a).arg("init"));
    let mut server = serve(&a);
    ok_in(&a, &["wiki", "edit", "Kept"], "before the kill\n");
    server.0.0.kill().unwrap(); // SIGKILL: the socket file stays
    server.0.0.wait().unwrap();
    let sock = a.join("cairn.sock");
    assert!(sock.exists());
    // Nothing answers it: the commands open the store themselves.
    assert_eq!(
        ok_in(&a, &["wiki", "show", "Kept"], ""),
        "before the kill\n"
    );
    // A new server replaces it.
    let server = serve(&a);
    ok_in(&a, &["wiki", "edit", "Kept"], "after the kill\n");
    // A second server on the same store fails (store in use) and leaves the live socket.
    let o = finish(
        cairn(&a)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        30,
    );
    assert!(!o.status.success());
    assert_eq!(ok_in(&a, &["wiki", "show", "Kept"], ""), "after the kill\n");
    stop(server);
}

#[test]
fn oversize_input_is_refused() {
    let base = Dir::new("big");
    let a = base.join("a");
    ok(cairn(&a).arg("init"));
    let _server = serve(&a);
    let big = vec![b'x'; (16 << 20) + 1];
    let e = fails(&a, &["wiki", "edit", "Big"], &big);
    assert!(
        e.contains("too large") && e.contains("at most 16777216"),
        "{e}"
    );
    // A client that announces more than the bound is refused before anything is read.
    let mut s = UnixStream::connect(a.join("cairn.sock")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&u32::MAX.to_be_bytes()).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    let reply: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        reply["Refused"]["TooLarge"]["size"],
        u32::MAX as u64,
        "{reply}"
    );
    // Garbage is a bad request, and the server goes on.
    let mut s = UnixStream::connect(a.join("cairn.sock")).unwrap();
    s.write_all(&3u32.to_be_bytes()).unwrap();
    s.write_all(b"{{{").unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    assert!(String::from_utf8_lossy(&reply).contains("BadRequest"));
    // Random bytes and mangled requests: each gets a reply that decodes (or none, when its
    // frame is cut short), and the server goes on.
    let valid = br#"{"argv":["wiki","show","Small"],"inputs":{"-":"x"},"dirs":{}}"#;
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..200 {
        let mut body = valid.to_vec();
        if i % 2 == 0 {
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % body.len();
                body[at] = next() as u8;
            }
        } else {
            body = (0..next() % 300).map(|_| next() as u8).collect();
        }
        let mut s = UnixStream::connect(a.join("cairn.sock")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(&(body.len() as u32).to_be_bytes()).unwrap();
        s.write_all(&body).unwrap();
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).unwrap();
        assert!(reply.len() >= 4, "no reply to {body:?}");
        let r: Value = serde_json::from_slice(&reply[4..]).unwrap();
        assert!(r.get("Ran").is_some() || r.get("Refused").is_some(), "{r}");
    }
    ok_in(&a, &["wiki", "edit", "Small"], "fine\n");
}

#[test]
fn blob_commands_run_through_a_running_server() {
    let base = Dir::new("blob");
    let a = base.join("a");
    ok(cairn(&a).arg("init"));
    let server = serve(&a);
    // A small blob (kept in the database) and a large one (a file in DATA/blobs), from a
    // relative path: the client sends it absolute.
    let small = b"small \x00\xff bytes".to_vec();
    let large: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(base.join("large.bin"), &large).unwrap();
    let o = cairn(&a)
        .current_dir(&base.0)
        .args(["blob", "add", "large.bin"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let h_large = String::from_utf8(o.stdout).unwrap().trim().to_owned();
    // Standard input goes through a file the server reads (and the client removes).
    let h_small = ok_in(
        &a,
        &["blob", "add", "-"],
        std::str::from_utf8(b"x").unwrap(),
    );
    let h_small = h_small.trim();
    let o = run(&a, &["blob", "add", "-"], &small);
    assert!(o.status.success());
    let h_bin = String::from_utf8(o.stdout).unwrap().trim().to_owned();
    assert_eq!(h_large.len(), 64);

    // ls shows them, complete, with their sizes.
    let ls = ok_in(&a, &["blob", "ls"], "");
    let lines: Vec<Value> = ls
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{ls}");
    let size_of = |h: &str| {
        lines.iter().find(|l| l["hash"] == h).map(|l| {
            (
                l["size"].as_u64().unwrap(),
                l["complete"].as_bool().unwrap(),
            )
        })
    };
    assert_eq!(size_of(&h_large), Some((large.len() as u64, true)));
    assert_eq!(size_of(h_small), Some((1, true)));
    assert_eq!(size_of(&h_bin), Some((small.len() as u64, true)));

    // get returns the same bytes, to standard output and to a file (relative: the server
    // writes it where the client stands).
    // (Into a file: 3 MB would fill a pipe nobody reads before the command ends.)
    let get_stdout = |name: &str| {
        let f = std::fs::File::create(base.join(name)).unwrap();
        let child = cairn(&a)
            .args(["blob", "get", &h_large])
            .stdout(f)
            .spawn()
            .unwrap();
        assert!(finish(child, 60).status.success());
        std::fs::read(base.join(name)).unwrap()
    };
    assert!(get_stdout("stdout.bin") == large, "standard output differs");
    let o = run(&a, &["blob", "get", &h_bin], b"");
    assert_eq!(o.stdout, small);
    let st = cairn(&a)
        .current_dir(&base.0)
        .args(["blob", "get", &format!("blob:{h_large}"), "-o", "out.bin"])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(std::fs::read(base.join("out.bin")).unwrap() == large);
    // No hand-off file is left in the store's directory.
    let left: Vec<_> = std::fs::read_dir(&a)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".blob-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // Errors are clear: a missing file, a directory, a blob that is not here.
    let e = fails(
        &a,
        &["blob", "add", base.join("nope.bin").to_str().unwrap()],
        b"",
    );
    assert!(e.contains("nope.bin") && e.contains("No such file"), "{e}");
    let e = fails(&a, &["blob", "add", base.0.to_str().unwrap()], b"");
    assert!(e.contains("not a regular file"), "{e}");
    let absent = "ab".repeat(32);
    let e = fails(&a, &["blob", "get", &absent], b"");
    assert!(e.contains("is not here"), "{e}");
    let e = fails(
        &a,
        &["blob", "get", &absent, "--connect", "tcp://127.0.0.1:9"],
        b"",
    );
    assert!(e.contains("does not fetch with --connect"), "{e}");

    // gc: a blob a node names is kept, the others are removed.
    ok_in(&a, &["log", "append", &format!("blob:{h_large}")], "");
    let gc = json(&a, &["blob", "gc"]);
    assert_eq!(gc["removed"], 2, "{gc}");
    assert_eq!(gc["kept"], 1, "{gc}");
    let ls = ok_in(&a, &["blob", "ls"], "");
    assert_eq!(ls.lines().count(), 1, "{ls}");
    assert!(ls.contains(&h_large));
    stop(server);
    // The direct path sees the same store once the server is gone.
    assert!(!a.join("cairn.sock").exists());
    assert!(get_stdout("direct.bin") == large);
}
