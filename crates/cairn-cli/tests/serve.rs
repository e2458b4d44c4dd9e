//! `cairn serve` and `cairn sync --connect tcp://…`: encrypted, authenticated replication over
//! TCP on 127.0.0.1, many clients, and a hostile one that must not disturb the others.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};

use common::{cairn, finish, ok};

/// Kills the server when the test ends, however it ends.
struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn many_clients_converge_through_a_server() {
    let base = std::env::temp_dir().join(format!("cairn-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let server_dir = base.join("server");
    ok(cairn(&server_dir).arg("init"));
    ok(cairn(&server_dir).args(["log", "append", "from the server"]));
    let mut server = Server(
        cairn(&server_dir)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--ws-listen",
                "127.0.0.1:0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut out = BufReader::new(server.0.stdout.take().unwrap());
    let (mut addr, mut ws_addr) = (String::new(), String::new());
    out.read_line(&mut addr).unwrap();
    out.read_line(&mut ws_addr).unwrap();
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
