//! Many replication sessions at once against one `cairn serve` process, every result
//! checked: the load test behind `cairn-bench serve` and the CLI's concurrency test.
//!
//! [`run`] creates a server store holding a few nodes, starts the `cairn` binary's `serve`
//! on it (TCP and WebSocket on 127.0.0.1), and runs N clients in this process — each with
//! its own in-memory log, its own identity and its own signed writes; half over TCP, half
//! over WebSocket; a fifth push-only, a fifth pull-only, the rest sync:
//!
//! 1. **one-shot round**: all N sync at once; every session must succeed; then the server
//!    holds its nodes plus every push and sync client's, a push client its own only, a pull
//!    or sync client at least its own and the server's first nodes, and nothing outside the
//!    union;
//! 2. **live round**: all N connect live at once and each writes more nodes; the round stops
//!    only once every client holds exactly what its mode allows (pull and sync: the server's
//!    whole set, pull also its own; push: its own) — so all N sessions were open at the same
//!    moment — and each must then end cleanly;
//! 3. a fresh client pulls the server's set, and once the server is killed its store is
//!    opened from disk: both must be exactly the expected union.
//!
//! The report has each round's wall time and the server's peak resident memory (`VmHWM`).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use cairn_core::{Ed25519Verifier, Hash, Keypair};
use cairn_log::{ChangesQuery, Log, LogOptions};
use cairn_sync::{Mode, SessionOptions, SyncSummary};

/// What to run.
#[derive(Debug, Clone)]
pub struct SwarmOptions {
    /// Clients, all at once.
    pub sessions: usize,
    /// Nodes each client writes before the first round.
    pub writes: usize,
    /// Nodes each client writes during the live round.
    pub live_writes: usize,
    /// Nodes the server holds at the start.
    pub server_nodes: usize,
    /// The longest a round may take.
    pub deadline: Duration,
    /// Print each round's figures on stderr as it ends.
    pub verbose: bool,
}

impl Default for SwarmOptions {
    fn default() -> Self {
        SwarmOptions {
            sessions: 100,
            writes: 3,
            live_writes: 2,
            server_nodes: 10,
            deadline: Duration::from_secs(60),
            verbose: false,
        }
    }
}

/// One round's figures, summed over the clients.
#[derive(Debug, Clone, Copy, Default)]
pub struct Round {
    /// Wall time from the first dial to the last session's end.
    pub ms: u64,
    /// Nodes the clients sent.
    pub nodes_sent: u64,
    /// Nodes the clients received.
    pub nodes_received: u64,
    /// Bytes the clients sent and received (sync protocol, inside Noise).
    pub bytes: u64,
    /// Most client sessions in progress at one moment (dial to end).
    pub peak_concurrent: usize,
}

/// What a run measured; [`run`] returns it only when every check passed.
#[derive(Debug, Clone)]
pub struct Report {
    /// Clients.
    pub sessions: usize,
    /// Of them, over TCP.
    pub tcp: usize,
    /// Of them, over WebSocket.
    pub ws: usize,
    /// The one-shot round.
    pub one_shot: Round,
    /// The live round.
    pub live: Round,
    /// Nodes the server holds at the end (the union of all it was sent).
    pub union: usize,
    /// The server process's peak resident memory in KiB (`VmHWM`), where `/proc` has it.
    pub server_peak_rss_kib: Option<u64>,
    /// Error lines the server printed (none in a clean run).
    pub server_errors: Vec<String>,
}

impl Report {
    /// The report as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let round = |r: &Round| {
            serde_json::json!({
                "ms": r.ms,
                "nodes_sent": r.nodes_sent,
                "nodes_received": r.nodes_received,
                "bytes": r.bytes,
                "peak_concurrent": r.peak_concurrent,
            })
        };
        serde_json::json!({
            "sessions": self.sessions,
            "tcp": self.tcp,
            "ws": self.ws,
            "one_shot": round(&self.one_shot),
            "live": round(&self.live),
            "union": self.union,
            "server_peak_rss_kib": self.server_peak_rss_kib,
            "server_errors": self.server_errors.len(),
        })
    }
}

/// The server process, killed however the run ends.
struct Server {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `cairn serve` on `data`, its caps raised for `sessions` clients from one
    /// address.
    fn start(cairn: &Path, data: &Path, sessions: usize) -> Result<(Server, String, String)> {
        let cap = (sessions + 16).to_string();
        let mut child = Command::new(cairn)
            .arg("--data")
            .arg(data)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--ws-listen",
                "127.0.0.1:0",
                "--max-connections",
                &cap,
                "--max-per-ip",
                &cap,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", cairn.display()))?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = stderr.clone();
        let err = child.stderr.take().context("server stderr")?;
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                lines
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(line);
            }
        });
        let mut out = BufReader::new(child.stdout.take().context("server stdout")?);
        let server = Server { child, stderr };
        let (mut tcp, mut ws) = (String::new(), String::new());
        out.read_line(&mut tcp)?;
        out.read_line(&mut ws)?;
        if tcp.trim().is_empty() || ws.trim().is_empty() {
            bail!("the server did not start: {:?}", server.lines());
        }
        Ok((
            server,
            format!("tcp://{}", tcp.trim()),
            format!("ws://{}", ws.trim()),
        ))
    }

    fn lines(&self) -> Vec<String> {
        self.stderr
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Peak resident memory in KiB.
    fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Client {
    log: Log,
    key: Keypair,
    mode: Mode,
    url: String,
    /// What it wrote.
    own: BTreeSet<Hash>,
}

fn set(log: &Log) -> Result<BTreeSet<Hash>> {
    log.changes(ChangesQuery::all())
        .map(|e| Ok(e?.node.key()))
        .collect()
}

fn memory_log(key: &Keypair) -> Result<Log> {
    Ok(Log::memory(
        LogOptions::default()
            .signer(key.clone())
            .verifier(Ed25519Verifier::strict()),
    )?)
}

/// The same generous idle timeout as the CLI's default.
const IDLE: Duration = Duration::from_secs(60);

/// Runs the swarm against the `cairn` binary at `cairn`, with the server's store in `dir`
/// (created; it must not hold a store yet). Fails on the first check that does not hold.
pub fn run(cairn: &Path, dir: &Path, opts: &SwarmOptions) -> Result<Report> {
    let server_dir = dir.join("server");
    crate::store::init(&server_dir)?;
    let mut server_set = {
        let log = crate::store::open_writer(&server_dir)?;
        ensure!(log.is_empty(), "{} already holds a store", dir.display());
        for i in 0..opts.server_nodes {
            log.append(format!("server node {i}").into_bytes())?;
        }
        set(&log)?
    };
    let (server, tcp_url, ws_url) = Server::start(cairn, &server_dir, opts.sessions)?;

    let mut clients = Vec::with_capacity(opts.sessions);
    for i in 0..opts.sessions {
        let key = Keypair::from_seed(blake3::derive_key(
            "cairn swarm client",
            &(i as u64).to_le_bytes(),
        ));
        let log = memory_log(&key)?;
        for j in 0..opts.writes {
            log.append(format!("client {i} node {j}").into_bytes())?;
        }
        clients.push(Client {
            own: set(&log)?,
            log,
            key,
            mode: match i % 5 {
                0 => Mode::Push,
                1 => Mode::Pull,
                _ => Mode::Sync,
            },
            url: if i % 2 == 0 {
                tcp_url.clone()
            } else {
                ws_url.clone()
            },
        });
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the clients' runtime")?;

    // Round 1: one-shot, all at once.
    let one_shot = rt.block_on(round(&clients, false, opts))?;
    if opts.verbose {
        eprintln!("one-shot round: {one_shot:?}");
    }
    for c in clients.iter().filter(|c| c.mode.sends()) {
        server_set.extend(c.own.iter().copied());
    }
    let server_first: BTreeSet<Hash> = set_of_server(&rt, &tcp_url)?;
    ensure!(
        server_first == server_set,
        "after the one-shot round the server holds {} nodes, not the expected {}",
        server_first.len(),
        server_set.len()
    );
    for (i, c) in clients.iter().enumerate() {
        let got = set(&c.log)?;
        if c.mode == Mode::Push {
            ensure!(got == c.own, "push client {i} received nodes");
        } else {
            ensure!(
                got.is_superset(&c.own) && got.len() >= c.own.len() + opts.server_nodes,
                "client {i} ({:?}) lacks nodes after the one-shot round",
                c.mode
            );
            ensure!(
                got.is_subset(&c.own.union(&server_set).copied().collect()),
                "client {i} holds nodes from nowhere"
            );
        }
    }

    // Round 2: live, all at once, with more writes while connected.
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = rt.block_on(async { start(&clients, true, &stop) });
    for (i, c) in clients.iter_mut().enumerate() {
        for j in 0..opts.live_writes {
            let e = c
                .log
                .append(format!("client {i} live node {j}").into_bytes())?;
            c.own.insert(e.node.key());
        }
    }
    for c in clients.iter().filter(|c| c.mode.sends()) {
        server_set.extend(c.own.iter().copied());
    }
    let expected = |c: &Client| -> BTreeSet<Hash> {
        match c.mode {
            Mode::Push => c.own.clone(),
            _ => c.own.union(&server_set).copied().collect(),
        }
    };
    let want: Vec<u64> = clients.iter().map(|c| expected(c).len() as u64).collect();
    let began = Instant::now();
    loop {
        let lagging = clients
            .iter()
            .zip(&want)
            .filter(|(c, w)| c.log.len() != **w)
            .count();
        if lagging == 0 {
            break;
        }
        // A live session ends only when stopped: one that ended already failed.
        if let Some(i) = tasks.iter().position(|t| t.is_finished()) {
            stop.store(true, Ordering::SeqCst);
            let (_, _, r) = rt.block_on(tasks.into_iter().nth(i).context("task")?)?;
            let e = r.err().context("a live session ended before the stop")?;
            return Err(e.context(format!("live round: client {i}")));
        }
        if began.elapsed() > opts.deadline {
            stop.store(true, Ordering::SeqCst);
            bail!(
                "live round: {lagging} of {} clients did not converge within {:?}",
                clients.len(),
                opts.deadline
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every session is still open here (a live one ends only when stopped): all N at once.
    stop.store(true, Ordering::SeqCst);
    let live = rt.block_on(finish(tasks, opts.deadline, true))?;
    if opts.verbose {
        eprintln!("live round: {live:?}");
    }
    for (i, c) in clients.iter().enumerate() {
        ensure!(
            set(&c.log)? == expected(c),
            "client {i} ({:?}) does not hold exactly its expected set after the live round",
            c.mode
        );
    }

    // The server's own view, over the wire and then from its store on disk.
    ensure!(
        set_of_server(&rt, &ws_url)? == server_set,
        "the server does not hold exactly the union"
    );
    let server_peak_rss_kib = server.peak_rss_kib();
    let lines = server.lines();
    drop(server);
    let on_disk = set(&crate::store::open_reader(&server_dir)?)?;
    ensure!(
        on_disk == server_set,
        "the server's store on disk holds {} nodes, not the union's {}",
        on_disk.len(),
        server_set.len()
    );
    let server_errors: Vec<String> = lines
        .into_iter()
        .filter(|l| l.contains(": error:"))
        .collect();
    Ok(Report {
        sessions: opts.sessions,
        tcp: clients.iter().filter(|c| c.url == tcp_url).count(),
        ws: clients.iter().filter(|c| c.url == ws_url).count(),
        one_shot,
        live,
        union: server_set.len(),
        server_peak_rss_kib,
        server_errors,
    })
}

/// Pulls the server's whole set into a fresh log.
fn set_of_server(rt: &tokio::runtime::Runtime, url: &str) -> Result<BTreeSet<Hash>> {
    let key = Keypair::from_seed([0xc4; 32]);
    let log = memory_log(&key)?;
    let opts = SessionOptions {
        mode: Mode::Pull,
        ..SessionOptions::default()
    };
    rt.block_on(crate::net::sync_with(
        &log,
        &key,
        url,
        opts,
        IDLE,
        std::future::pending(),
    ))?;
    set(&log)
}

type Task = tokio::task::JoinHandle<(Duration, Duration, Result<SyncSummary>)>;

/// Starts every client's session (inside the runtime); a live one ends when `stop` is set.
fn start(clients: &[Client], live: bool, stop: &Arc<AtomicBool>) -> Vec<Task> {
    let t0 = Instant::now();
    clients
        .iter()
        .map(|c| {
            let (log, key, url) = (c.log.clone(), c.key.clone(), c.url.clone());
            let opts = SessionOptions {
                mode: c.mode,
                live,
                ..SessionOptions::default()
            };
            let stop = stop.clone();
            tokio::spawn(async move {
                let began = t0.elapsed();
                let stopped = async move {
                    if !live {
                        // A one-shot session ends by itself; stopping would abort it.
                        std::future::pending::<()>().await;
                    }
                    while !stop.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                };
                let r = crate::net::sync_with(&log, &key, &url, opts, IDLE, stopped).await;
                (began, t0.elapsed(), r.map(|(s, _)| s))
            })
        })
        .collect()
}

/// Waits for every session; all must succeed (live ones: only after the stop).
async fn finish(tasks: Vec<Task>, deadline: Duration, live: bool) -> Result<Round> {
    let mut round = Round::default();
    let mut spans = Vec::with_capacity(tasks.len());
    let all = async {
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            out.push(t.await);
        }
        out
    };
    let results = tokio::time::timeout(deadline, all)
        .await
        .map_err(|_| anyhow::anyhow!("the sessions did not all end within {deadline:?}"))?;
    for (i, r) in results.into_iter().enumerate() {
        let (began, ended, r) = r.context("a client task panicked")?;
        let s = r.with_context(|| format!("client {i}{}", if live { " (live)" } else { "" }))?;
        round.nodes_sent += s.nodes_sent;
        round.nodes_received += s.nodes_received;
        round.bytes += s.bytes_sent + s.bytes_received;
        round.ms = round.ms.max(ended.as_millis() as u64);
        spans.push((began, ended));
    }
    // Most spans open at once: sweep the starts and ends in time order.
    let mut edges: Vec<(Duration, i32)> = spans
        .iter()
        .flat_map(|(b, e)| [(*b, 1), (*e, -1)])
        .collect();
    edges.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut open = 0i32;
    for (_, d) in edges {
        open += d;
        round.peak_concurrent = round.peak_concurrent.max(open as usize);
    }
    Ok(round)
}

async fn round(clients: &[Client], live: bool, opts: &SwarmOptions) -> Result<Round> {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = start(clients, live, &stop);
    finish(tasks, opts.deadline, live).await
}
