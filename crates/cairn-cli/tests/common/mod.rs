//! Helpers shared by the CLI's integration tests.
#![allow(dead_code)] // each test binary uses its own subset

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `cairn --data DIR`.
pub(crate) fn cairn(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    c.arg("--data").arg(dir);
    c
}

/// Runs `c`, asserts success, returns its standard output without the trailing newline.
pub(crate) fn ok(c: &mut Command) -> String {
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().trim_end().to_string()
}

/// Waits for `child` at most `secs` seconds: a hung command fails the test, not hangs it.
pub(crate) fn finish(mut child: Child, secs: u64) -> Output {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("cairn did not finish within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// A running `cairn serve`, killed when the test ends however it ends.
pub(crate) struct Server(pub(crate) Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cairn --data DIR serve ARGS…` (its standard error discarded) and reads the first
/// `lines` lines it prints: the addresses of its listeners, TCP first, then WebSocket and
/// HTTP as `args` ask for them.
pub(crate) fn start_serve(
    dir: &std::path::Path,
    args: &[&str],
    lines: usize,
) -> (Server, Vec<String>) {
    let mut server = Server(
        cairn(dir)
            .arg("serve")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut out = BufReader::new(server.0.stdout.take().unwrap());
    let addrs = (0..lines)
        .map(|_| {
            let mut l = String::new();
            out.read_line(&mut l).unwrap();
            assert!(!l.is_empty(), "cairn serve did not start");
            l.trim().to_string()
        })
        .collect();
    (server, addrs)
}
