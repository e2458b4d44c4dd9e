//! `cairn serve` and `cairn sync --connect tcp://…`: encrypted, authenticated replication over
//! TCP on 127.0.0.1, many clients, and a hostile one that must not disturb the others.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};

use common::{Server, cairn, finish, ok, start_serve};

/// Starts `cairn serve` on `dir` with TCP and WebSocket listeners on free ports: the server
/// and the two bound addresses.
fn serve(dir: &std::path::Path) -> (Server, String, String) {
    let (server, mut a) = start_serve(
        dir,
        &["--listen", "127.0.0.1:0", "--ws-listen", "127.0.0.1:0"],
        2,
    );
    let ws = a.pop().unwrap();
    (server, a.pop().unwrap(), ws)
}

#[test]
fn many_clients_converge_through_a_server() {
    let base = std::env::temp_dir().join(format!("cairn-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let server_dir = base.join("server");
    ok(cairn(&server_dir).arg("init"));
    ok(cairn(&server_dir).args(["log", "append", "from the server"]));
    let (server, addr, ws_addr) = serve(&server_dir);
    let url = format!("tcp://{}", addr.trim());
    let ws_url = format!("ws://{}", ws_addr.trim());

    // A hostile client first: garbage instead of a Noise handshake.
    let mut bad = std::net::TcpStream::connect(addr.trim()).unwrap();
    bad.write_all(&[0x00, 0x05, 1, 2, 3, 4, 5, 0xff, 0xff])
        .unwrap();
    drop(bad);

    // And one that is not even a WebSocket client.
    let mut bad = std::net::TcpStream::connect(ws_addr.trim()).unwrap();
    bad.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    drop(bad);

    // Then 20 clients at once, each with a node of its own: half over TCP, half over
    // WebSocket.
    let clients: Vec<_> = (0..20)
        .map(|i| {
            let dir = base.join(format!("c{i}"));
            ok(cairn(&dir).arg("init"));
            ok(cairn(&dir).args(["log", "append", &format!("client {i}")]));
            dir
        })
        .collect();
    let running: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            cairn(dir)
                .args(["sync", "--connect", if i % 2 == 0 { &url } else { &ws_url }])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in running {
        let o = finish(child, 120);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        let summary: serde_json::Value =
            serde_json::from_str(err.trim_end().lines().last().unwrap()).unwrap();
        assert!(summary["bytes_sent"].as_u64().unwrap() > 0);
    }
    // A second round: everyone gets what the others brought.
    for dir in &clients {
        let o = finish(
            cairn(dir)
                .args(["sync", "--connect", &url])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
            60,
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for dir in &clients {
        assert_eq!(ok(cairn(dir).args(["log", "changes"])).lines().count(), 21);
    }

    // An unreachable server is a clear error.
    drop(server);
    let o = cairn(&clients[0])
        .args(["sync", "--connect", &url])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("error: connecting to"));
    let o = cairn(&clients[0])
        .args(["sync", "--connect", "ws://127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    std::fs::remove_dir_all(&base).unwrap();
}

/// 100 replication sessions at once against one `cairn serve`, clients in this process (each
/// its own store, identity and writes; half TCP, half WebSocket; push, pull and sync): every
/// session succeeds and every store ends with exactly what its mode allows — once one-shot,
/// once live with all 100 open at the same moment (see `cairn_cli::swarm`).
#[test]
fn a_hundred_concurrent_sessions_all_complete_and_correct() {
    let dir = std::env::temp_dir().join(format!("cairn-swarm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = cairn_cli::swarm::SwarmOptions {
        sessions: 100,
        deadline: std::time::Duration::from_secs(45),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let report = cairn_cli::swarm::run(env!("CARGO_BIN_EXE_cairn").as_ref(), &dir, &opts)
        .unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!("{} in {:?}", report.to_json(), started.elapsed());
    assert_eq!((report.tcp, report.ws), (50, 50));
    assert!(
        report.server_errors.is_empty(),
        "{:?}",
        report.server_errors
    );
    // 10 server nodes, 3 + 2 from each of the 80 push and sync clients.
    assert_eq!(report.union, 10 + 80 * 5);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Peak resident memory of process `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Opens a WebSocket to `addr` by hand and sends the header of a binary frame of `len`
/// bytes, then up to `len` bytes of it (as long as the server takes them). Returns whether
/// the server ended the connection (rather than kept reading) within the timeout.
fn send_oversized_ws_frame(addr: &str, len: u64) -> bool {
    use std::io::Read;
    use std::time::Duration;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    let mut byte = [0u8; 1];
    while !response.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        response.push(byte[0]);
    }
    assert!(response.starts_with(b"HTTP/1.1 101"), "{response:?}");
    // FIN + binary; masked, 64-bit length; mask 0.
    let mut header = vec![0x82, 0xff];
    header.extend_from_slice(&len.to_be_bytes());
    header.extend_from_slice(&[0; 4]);
    if s.write_all(&header).is_err() {
        return true;
    }
    let chunk = vec![0u8; 64 << 10];
    let mut sent = 0;
    while sent < len {
        if s.write_all(&chunk).is_err() {
            return true; // refused: reset by the server
        }
        sent += chunk.len() as u64;
    }
    // Everything went through: did the server then end the connection?
    let mut rest = Vec::new();
    match s.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// A WebSocket message can only ever be one Noise message (≤ 65,535 bytes): anything larger
/// is refused when its frame header arrives, before the server buffers it — tungstenite's
/// defaults would take 16 MiB frames and 64 MiB messages per connection — and the server
/// keeps serving.
#[test]
fn oversized_websocket_messages_are_refused_before_buffering() {
    let base = std::env::temp_dir().join(format!("cairn-ws-cap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let server_dir = base.join("server");
    ok(cairn(&server_dir).arg("init"));
    ok(cairn(&server_dir).args(["log", "append", "from the server"]));
    let (server, addr, ws_addr) = serve(&server_dir);
    let ws_addr = ws_addr.trim().to_string();
    let pid = server.0.id();
    let before = peak_rss_kib(pid);
    // Four at once, each a 15 MiB frame (under tungstenite's default frame limit).
    let attackers: Vec<_> = (0..4)
        .map(|_| {
            let a = ws_addr.clone();
            std::thread::spawn(move || send_oversized_ws_frame(&a, 15 << 20))
        })
        .collect();
    for a in attackers {
        assert!(a.join().unwrap(), "the server kept the connection open");
    }
    // A frame just over the limit is refused too.
    assert!(send_oversized_ws_frame(&ws_addr, 65_536));
    let grown = peak_rss_kib(pid).saturating_sub(before);
    eprintln!("server peak memory: {before} KiB before, grew by {grown} KiB");
    assert!(
        grown < 16 << 10,
        "the server's peak memory grew by {grown} KiB: it buffered the oversized messages"
    );
    // And it still serves, over WebSocket as over TCP.
    let client = base.join("client");
    ok(cairn(&client).arg("init"));
    for url in [format!("ws://{ws_addr}"), format!("tcp://{}", addr.trim())] {
        let o = finish(
            cairn(&client)
                .args(["sync", "--connect", &url])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
            60,
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(
        ok(cairn(&client).args(["log", "changes"])).lines().count(),
        1
    );
    drop(server);
    std::fs::remove_dir_all(&base).unwrap();
}

/// SIGTERM stops `cairn serve` cleanly: exit status 0, what it received kept, and the store
/// free for the next command at once.
#[cfg(unix)]
#[test]
fn sigterm_shuts_the_server_down_cleanly() {
    let base = std::env::temp_dir().join(format!("cairn-serve-term-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (server_dir, client_dir) = (base.join("server"), base.join("client"));
    ok(cairn(&server_dir).arg("init"));
    ok(cairn(&client_dir).arg("init"));
    let key = ok(cairn(&client_dir).args(["log", "append", "from the client"]));
    let mut server = cairn(&server_dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut addr = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut addr)
        .unwrap();
    ok(cairn(&client_dir).args(["sync", "--connect", &format!("tcp://{}", addr.trim())]));
    let term = std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let out = finish(server, 30);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "server exit {:?}: {err}", out.status);
    assert!(err.contains("SIGTERM: shutting down"), "{err}");
    // The store is closed: another command opens it, and the client's node is there.
    let got = ok(cairn(&server_dir).args(["log", "get", key.trim()]));
    assert!(got.contains("from the client"), "{got}");
    std::fs::remove_dir_all(base).unwrap();
}

/// Collects what `child`'s stderr says, as it comes (a pipe nobody reads would block it).
fn collect_stderr(child: &mut Child) -> std::sync::Arc<std::sync::Mutex<String>> {
    let err = child.stderr.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let into = seen.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let mut s = into.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    seen
}

/// Starts a `cairn serve` command (listening on one address): the server, its bound
/// address, and what its stderr says as it comes.
fn start_logged(
    command: &mut std::process::Command,
) -> (Server, String, std::sync::Arc<std::sync::Mutex<String>>) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let said = collect_stderr(&mut child);
    let mut addr = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut addr)
        .unwrap();
    (Server(child), addr.trim().to_string(), said)
}

/// Waits at most `secs` seconds for `cond`; whether it came true.
fn wait_for(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    cond()
}

/// A real `cairn serve` under `ulimit -n 64` gets 100 connections at once: accepting fails
/// with "Too many open files", and the server pauses and goes on instead of exiting; once the
/// connections close, a real sync succeeds.
#[cfg(unix)]
#[test]
fn running_out_of_file_descriptors_does_not_stop_the_server() {
    let base = std::env::temp_dir().join(format!("cairn-serve-emfile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (server_dir, client_dir) = (base.join("server"), base.join("client"));
    ok(cairn(&server_dir).arg("init"));
    ok(cairn(&server_dir).args(["log", "append", "from the server"]));
    ok(cairn(&client_dir).arg("init"));
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg("ulimit -n 64 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_cairn"))
        .arg("--data")
        .arg(&server_dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--max-connections", "1000", "--max-per-ip", "1000"]);
    let (mut server, addr, said) = start_logged(&mut command);
    let held: Vec<_> = (0..100)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    assert!(
        wait_for(10, || said.lock().unwrap().contains("Too many open files")),
        "the server never ran out of file descriptors: {}",
        said.lock().unwrap()
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        server.0.try_wait().unwrap().is_none(),
        "the server exited: {}",
        said.lock().unwrap()
    );
    drop(held);
    let o = finish(
        cairn(&client_dir)
            .args(["sync", "--connect", &format!("tcp://{addr}")])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        60,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        ok(cairn(&client_dir).args(["log", "changes"]))
            .lines()
            .count(),
        1
    );
    assert!(server.0.try_wait().unwrap().is_none());
    drop(server);
    std::fs::remove_dir_all(&base).unwrap();
}

/// CPU time process `pid` has used so far, in clock ticks (user and system).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command's name in parentheses: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<u64>().ok());
    field(14).unwrap_or(0) + field(15).unwrap_or(0)
}

/// Open file descriptors of process `pid`.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// A reset is an error at once: `kill -9` of the server in the middle of a push, and the
/// pusher exits non-zero within seconds, not after its `--timeout` (60 s) — whether the
/// kill lands just after the handshake (before this fix, a pusher that then found its
/// connection gone waited out the timeout) or while the server is busy storing nodes.
#[cfg(unix)]
#[test]
fn a_server_killed_mid_push_fails_the_pusher_at_once() {
    let base = std::env::temp_dir().join(format!("cairn-serve-reset-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let client_dir = base.join("client");
    ok(cairn(&client_dir).arg("init"));
    let mut append = cairn(&client_dir)
        .args(["log", "append", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    {
        let mut input = std::io::BufWriter::new(append.stdin.take().unwrap());
        for i in 0..100_000 {
            writeln!(input, "node {i}").unwrap();
        }
    }
    assert!(append.wait().unwrap().success());
    for flowing in [false, true] {
        let server_dir = base.join(format!("server-{flowing}"));
        ok(cairn(&server_dir).arg("init"));
        let (server, addr, _) = serve(&server_dir);
        let pid = server.0.id();
        let (cpu, fds) = (cpu_ticks(pid), open_fds(pid));
        let mut pusher = cairn(&client_dir)
            .args(["sync", "--mode", "push", "--connect"])
            .arg(format!("tcp://{}", addr.trim()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if flowing {
            // Mid-push: the server has spent a third of a second verifying and storing
            // nodes (an idle server spends nothing).
            assert!(
                wait_for(120, || cpu_ticks(pid) > cpu + 30),
                "the push never started"
            );
        } else {
            // The connection is accepted; a moment for the handshake.
            assert!(wait_for(60, || open_fds(pid) > fds), "no connection");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        assert!(
            pusher.try_wait().unwrap().is_none(),
            "the push ended before the kill"
        );
        let killed = std::time::Instant::now();
        drop(server); // SIGKILL
        let o = finish(pusher, 15);
        let took = killed.elapsed();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{err}");
        assert!(err.contains("error:"), "{err}");
        eprintln!(
            "nodes flowing: {flowing}: the pusher failed {took:?} after the kill: {}",
            err.trim()
        );
        assert!(
            took < std::time::Duration::from_secs(5),
            "the pusher took {took:?} to fail"
        );
    }
    std::fs::remove_dir_all(&base).unwrap();
}

/// Connects to `addr` from the local address `from` (any of 127.0.0.0/8 on Linux).
fn connect_from(from: &str, addr: &str) -> std::net::TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
        let s = socket.connect(addr.parse().unwrap()).await.unwrap();
        s.into_std().unwrap()
    })
}

/// Whether the server closed `s` at once (rather than kept it, waiting for a handshake).
fn closed_at_once(s: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_millis(1500)))
        .unwrap();
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// `--max-per-ip` and `--max-connections`: connections over either cap are closed as they
/// are accepted, the others are kept; the refusals are summed up in one line; once the
/// connections close, a real sync succeeds.
#[cfg(target_os = "linux")]
#[test]
fn connections_over_the_caps_are_closed_at_once() {
    let base = std::env::temp_dir().join(format!("cairn-serve-caps-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (server_dir, client_dir) = (base.join("server"), base.join("client"));
    ok(cairn(&server_dir).arg("init"));
    ok(cairn(&server_dir).args(["log", "append", "from the server"]));
    ok(cairn(&client_dir).arg("init"));
    let mut command = cairn(&server_dir);
    command.args(["serve", "--listen", "127.0.0.1:0"]).args([
        "--max-connections",
        "6",
        "--max-per-ip",
        "4",
        "--log-level",
        "warn",
    ]);
    let (server, addr, said) = start_logged(&mut command);
    // Five from one address: four kept, the fifth over the per-address cap.
    let mut one: Vec<_> = (0..5).map(|_| connect_from("127.0.0.1", &addr)).collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Three from another: two kept, the third over the total cap.
    let mut two: Vec<_> = (0..3).map(|_| connect_from("127.0.0.2", &addr)).collect();
    let closed =
        |v: &mut Vec<std::net::TcpStream>| v.iter_mut().map(closed_at_once).filter(|c| *c).count();
    assert_eq!(closed(&mut one), 1, "{}", said.lock().unwrap());
    assert_eq!(closed(&mut two), 1, "{}", said.lock().unwrap());
    // A flood from a third: all refused (the total cap is reached).
    let mut three: Vec<_> = (0..40).map(|_| connect_from("127.0.0.3", &addr)).collect();
    assert_eq!(closed(&mut three), 40);
    drop((one, two, three));
    // One line per interval at most, summing up the refusals.
    let refused = || -> u64 {
        said.lock()
            .unwrap()
            .lines()
            .filter_map(|l| l.split("refused ").nth(1))
            .filter_map(|r| r.split(' ').next().and_then(|n| n.parse::<u64>().ok()))
            .sum()
    };
    assert!(wait_for(25, || refused() == 42), "{}", said.lock().unwrap());
    let lines = said.lock().unwrap().clone();
    // Summed up, not a line each: the first interval starts at once, so at most three.
    let refusal_lines = lines.lines().filter(|l| l.contains("refused")).count();
    assert!(refusal_lines <= 3, "{lines}");
    assert!(
        lines
            .lines()
            .filter(|l| l.contains("refused"))
            .all(|l| l.contains("WARN")),
        "{lines}"
    );
    let o = finish(
        cairn(&client_dir)
            .args(["sync", "--connect", &format!("tcp://{addr}")])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        60,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // `--log-level warn`: the session's summary (info) is not shown, nor is "serving", nor
    // a line for each of the six held connections that ended before their handshake (they
    // are summed up, at info level).
    std::thread::sleep(std::time::Duration::from_millis(500));
    let lines = said.lock().unwrap().clone();
    assert!(!lines.contains("INFO"), "{lines}");
    assert!(!lines.contains("error:"), "{lines}");
    drop(server);
    std::fs::remove_dir_all(&base).unwrap();
}
