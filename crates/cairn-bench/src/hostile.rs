//! `cairn-bench hostile`: `cairn serve` under hostile load and after crashes, with real
//! processes on 127.0.0.1 (see scripts/bench-hostile.sh, which raises `ulimit -n` first).
//!
//! - **flood**: `--attempts` connections are attempted against one `cairn serve` (default
//!   caps), a quarter each idle TCP, stalled WebSocket upgrades (half a request, then
//!   nothing), completed upgrades that then say nothing, and garbage, from `--sources` loopback addresses (127.0.0.2…; at most 16,000
//!   held open at once, the oldest closed past that), while a real
//!   `cairn sync --connect` from 127.0.0.1 is retried until it succeeds; the server's peak
//!   memory (VmHWM) during the flood and its RSS once the flood's connections are closed.
//! - **big**: `--big` nodes of 4 MiB pushed to an empty `cairn serve` by `cairn sync
//!   --mode push`: the server's peak memory growth over its idle state (one session).
//! - **kill**: a `--n`-node clone by `cairn sync --connect` killed with SIGKILL at 1, 2 and
//!   4 s; the share of the nodes its store holds when reopened.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

/// What `hostile` measures.
pub(crate) struct HostileArgs {
    /// The `cairn` binary.
    pub(crate) cairn: PathBuf,
    /// Scratch directory (emptied first).
    pub(crate) dir: PathBuf,
    /// Connections attempted in the flood.
    pub(crate) attempts: usize,
    /// Loopback source addresses the flood comes from.
    pub(crate) sources: usize,
    /// 4 MiB nodes pushed in `big`.
    pub(crate) big: usize,
    /// Nodes of the clone killed in `kill`.
    pub(crate) n: u64,
    /// Which phases: flood, big, kill (comma-separated) or all.
    pub(crate) phases: String,
}

/// Most flood connections this process holds open at once (each is a file descriptor here;
/// the oldest is closed past it).
const MAX_HELD: usize = 16_000;

/// A `cairn serve` process, killed when dropped.
struct Served {
    child: Child,
    tcp: String,
    ws: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(cairn: &Path, data: &Path) -> Result<Served> {
    let mut child = Command::new(cairn)
        .arg("--data")
        .arg(data)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--ws-listen",
            "127.0.0.1:0",
            "--log-level",
            "warn",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting cairn serve")?;
    let mut out = BufReader::new(child.stdout.take().context("stdout")?);
    let (mut tcp, mut ws) = (String::new(), String::new());
    out.read_line(&mut tcp)?;
    out.read_line(&mut ws)?;
    Ok(Served {
        child,
        tcp: tcp.trim().to_string(),
        ws: ws.trim().to_string(),
    })
}

/// A `/proc/PID/status` field in MB.
fn status_mb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn cairn_cmd(cairn: &Path, data: &Path) -> Command {
    let mut c = Command::new(cairn);
    c.arg("--data").arg(data);
    c
}

fn init(cairn: &Path, data: &Path) -> Result<()> {
    let o = cairn_cmd(cairn, data).arg("init").output()?;
    if !o.status.success() {
        bail!("cairn init: {}", String::from_utf8_lossy(&o.stderr));
    }
    Ok(())
}

/// Appends `count` nodes of `size` bytes to the store at `data`, `batch` per commit.
fn fill(data: &Path, count: u64, size: usize, batch: u64) -> Result<()> {
    let log = cairn_cli::store::open_writer(data)?;
    let mut i = 0;
    while i < count {
        let k = batch.min(count - i);
        let values = (0..k)
            .map(|j| {
                let mut v = format!("node {} ", i + j).into_bytes();
                v.resize(size, b'.');
                v
            })
            .collect();
        log.append_all(values)?;
        i += k;
    }
    log.sync()?;
    Ok(())
}

/// Runs `cairn sync --connect URL` on `data`; whether it succeeded, and its stderr.
fn sync(cairn: &Path, data: &Path, url: &str, mode: &str) -> Result<(bool, String)> {
    let o = cairn_cmd(cairn, data)
        .args(["sync", "--mode", mode, "--timeout", "20", "--connect", url])
        .stdout(Stdio::null())
        .output()?;
    Ok((
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).trim().to_string(),
    ))
}

/// Opens a TCP connection from `src` to `to` within 2 s.
fn connect_from(src: std::net::IpAddr, to: SocketAddr) -> Option<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().ok()?;
        socket.bind(SocketAddr::new(src, 0)).ok()?;
        let s = tokio::time::timeout(Duration::from_secs(2), socket.connect(to))
            .await
            .ok()?
            .ok()?;
        s.into_std().ok()
    })
}

fn flood(a: &HostileArgs, out: &mut serde_json::Map<String, serde_json::Value>) -> Result<()> {
    let server_dir = a.dir.join("flood-server");
    let client_dir = a.dir.join("flood-client");
    init(&a.cairn, &server_dir)?;
    init(&a.cairn, &client_dir)?;
    fill(&server_dir, 1000, 32, 1000)?;
    let server = serve(&a.cairn, &server_dir)?;
    let pid = server.child.id();
    std::thread::sleep(Duration::from_millis(300));
    let idle_rss = status_mb(pid, "VmRSS:");
    let tcp: SocketAddr = server.tcp.parse()?;
    let ws: SocketAddr = server.ws.parse()?;
    let started = Instant::now();
    let threads = 8;
    let per = a.attempts.div_ceil(threads);
    let sources = a.sources.clamp(1, 250);
    let attackers: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                let mut held = std::collections::VecDeque::new();
                let (mut made, mut failed) = (0usize, 0usize);
                for i in 0..per {
                    let k = t * per + i;
                    let src = std::net::IpAddr::V4(std::net::Ipv4Addr::new(
                        127,
                        0,
                        0,
                        2 + (k % sources) as u8,
                    ));
                    let kind = k % 4;
                    let to = if kind % 2 == 1 { ws } else { tcp };
                    let Some(mut s) = connect_from(src, to) else {
                        failed += 1;
                        continue;
                    };
                    made += 1;
                    let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
                    match kind {
                        // Idle: connect and say nothing.
                        0 => {}
                        // A stalled upgrade: half a request.
                        1 => {
                            let _ =
                                s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n");
                        }
                        // A complete upgrade, then nothing (a stalled Noise handshake).
                        3 => {
                            let _ = s.write_all(
                                b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                            );
                        }
                        // Garbage: a length prefix and noise.
                        _ => {
                            let _ = s.write_all(&[0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8]);
                        }
                    }
                    held.push_back(s);
                    // A rolling window: the oldest goes (this process's descriptors).
                    if held.len() > MAX_HELD / threads {
                        held.pop_front();
                    }
                }
                (held, made, failed)
            })
        })
        .collect();
    // Meanwhile, a real sync from 127.0.0.1, retried until it succeeds.
    let url = format!("tcp://{}", server.tcp);
    let mut tries = 0;
    let mut synced = None;
    while started.elapsed() < Duration::from_secs(120) {
        tries += 1;
        let (ok, err) = sync(&a.cairn, &client_dir, &url, "sync")?;
        if ok {
            synced = Some(started.elapsed());
            break;
        }
        eprintln!(
            "sync try {tries} failed: {}",
            err.lines().last().unwrap_or("")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut held = Vec::new();
    let (mut made, mut failed) = (0, 0);
    for t in attackers {
        let (h, m, f) = t
            .join()
            .map_err(|_| anyhow::anyhow!("an attacker panicked"))?;
        held.extend(h);
        made += m;
        failed += f;
    }
    let flood_s = started.elapsed().as_secs_f64();
    let alive_during = server_alive(pid);
    let peak = status_mb(pid, "VmHWM:");
    let during_rss = status_mb(pid, "VmRSS:");
    drop(held);
    // The server drops what it held as it sees the ends (and stalled handshakes after 10 s).
    std::thread::sleep(Duration::from_secs(12));
    let after_rss = status_mb(pid, "VmRSS:");
    // And it still serves, after the flood.
    let (after_ok, _) = sync(&a.cairn, &client_dir, &url, "sync")?;
    let r = json!({
        "attempts": a.attempts,
        "connected": made,
        "connect_failed": failed,
        "sources": sources,
        "flood_s": flood_s,
        "server_alive": alive_during && server_alive(pid),
        "sync_during_flood_s": synced.map(|d| d.as_secs_f64()),
        "sync_tries": tries,
        "sync_after_flood_ok": after_ok,
        "server_idle_rss_mb": idle_rss,
        "server_peak_mb": peak,
        "server_rss_with_flood_held_mb": during_rss,
        "server_rss_after_mb": after_rss,
    });
    println!(
        "| flood: {} attempts from {sources} addresses | server alive: {} | real sync during the flood: {} | server peak {peak:.0} MB, RSS with the flood's connections held {during_rss:.0} MB, {after_rss:.0} MB 12 s after they closed (idle {idle_rss:.0} MB) |",
        a.attempts,
        r["server_alive"],
        synced.map_or("never".to_string(), |d| format!(
            "after {:.1} s, {tries} tries",
            d.as_secs_f64()
        ))
    );
    out.insert("flood".into(), r);
    Ok(())
}

fn server_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| !s.contains("State:\tZ"))
        .unwrap_or(false)
}

fn big(a: &HostileArgs, out: &mut serde_json::Map<String, serde_json::Value>) -> Result<()> {
    let server_dir = a.dir.join("big-server");
    let client_dir = a.dir.join("big-client");
    init(&a.cairn, &server_dir)?;
    init(&a.cairn, &client_dir)?;
    let size = (4 << 20) - 1024;
    fill(&client_dir, a.big as u64, size, 4)?;
    let server = serve(&a.cairn, &server_dir)?;
    let pid = server.child.id();
    std::thread::sleep(Duration::from_millis(300));
    let idle = status_mb(pid, "VmHWM:");
    let t = Instant::now();
    let mut pusher = cairn_cmd(&a.cairn, &client_dir)
        .args(["sync", "--mode", "push", "--connect"])
        .arg(format!("tcp://{}", server.tcp))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut pusher_peak = 0f64;
    while pusher.try_wait()?.is_none() {
        pusher_peak = pusher_peak.max(status_mb(pusher.id(), "VmHWM:"));
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = pusher.wait_with_output()?;
    let secs = t.elapsed().as_secs_f64();
    // The server's session ends just after the pusher's.
    std::thread::sleep(Duration::from_millis(500));
    let peak = status_mb(pid, "VmHWM:");
    let r = json!({
        "nodes": a.big,
        "node_bytes": size,
        "push_ok": o.status.success(),
        "push_s": secs,
        "server_idle_mb": idle,
        "server_peak_mb": peak,
        "session_peak_growth_mb": peak - idle,
        "pusher_peak_mb": pusher_peak,
    });
    println!(
        "| push of {} nodes of 4 MiB | ok: {} in {secs:.1} s | server peak {peak:.0} MB ({:.0} MB over idle) | pusher peak {pusher_peak:.0} MB |",
        a.big,
        o.status.success(),
        peak - idle
    );
    if !o.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&o.stderr));
    }
    out.insert("big".into(), r);
    Ok(())
}

fn kill(a: &HostileArgs, out: &mut serde_json::Map<String, serde_json::Value>) -> Result<()> {
    let server_dir = a.dir.join("kill-server");
    init(&a.cairn, &server_dir)?;
    fill(&server_dir, a.n, 32, 8192)?;
    let server = serve(&a.cairn, &server_dir)?;
    let mut rows = Vec::new();
    for secs in [1u64, 2, 4] {
        let client_dir = a.dir.join(format!("kill-client-{secs}"));
        init(&a.cairn, &client_dir)?;
        let mut child = cairn_cmd(&a.cairn, &client_dir)
            .args(["sync", "--connect"])
            .arg(format!("tcp://{}", server.tcp))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        std::thread::sleep(Duration::from_secs(secs));
        let finished = child.try_wait()?.is_some();
        let _ = child.kill();
        let _ = child.wait();
        let kept = cairn_cli::store::open_reader(&client_dir)?.len();
        let share = kept as f64 / (a.n as f64 + 0.0);
        println!(
            "| clone of {} nodes killed at {secs} s | {kept} kept ({:.1} %){} |",
            a.n,
            share * 100.0,
            if finished {
                ", the clone had finished"
            } else {
                ""
            }
        );
        rows.push(json!({"at_s": secs, "kept": kept, "share": share, "finished_before": finished}));
    }
    drop(server);
    out.insert("kill".into(), json!({"n": a.n, "runs": rows}));
    Ok(())
}

/// Runs the phases asked for; prints a markdown row per figure and one JSON line.
pub(crate) fn run(a: &HostileArgs) -> Result<()> {
    let _ = std::fs::remove_dir_all(&a.dir);
    std::fs::create_dir_all(&a.dir)?;
    let all = a.phases == "all";
    let want = |p: &str| all || a.phases.split(',').any(|x| x == p);
    let mut out = serde_json::Map::new();
    if want("flood") {
        flood(a, &mut out)?;
    }
    if want("big") {
        big(a, &mut out)?;
    }
    if want("kill") {
        kill(a, &mut out)?;
    }
    println!("{}", serde_json::Value::Object(out));
    let _ = std::fs::remove_dir_all(&a.dir);
    Ok(())
}
