//! `cairn-bench log --n N --dir DIR`: the log store's figures on disk.
//!
//! Each phase resets the kernel's peak-RSS mark (`/proc/self/clear_refs`) and reads `VmHWM`
//! at its end, as the JS anchor does, so "peak MB" is the true high-water mark of that phase.
//! Values are 32 bytes, as in the JS anchor. Prints a markdown table and one JSON line.
//!
//! `cairn-bench hostile [--attempts N] [--sources N] [--big N] [--n N] [--phases P]`:
//! `cairn serve` under a connection flood, a push of 4 MiB nodes, and clones killed with
//! SIGKILL (see the `hostile` module and scripts/bench-hostile.sh).
//!
//! `cairn-bench wiki --dir DATA [--pages P] [--n EDITS]`: writes a wiki of P pages and EDITS
//! edits (the shape of the browser's wiki bench) into the `cairn` store DATA, signed with its
//! key, for `cairn serve --data DATA` to serve (see the `wikigen` module).
//!
//! `cairn-bench serve --sessions N [--cairn PATH] [--dir DIR]`: N concurrent replication
//! sessions against one real `cairn serve` process (the `cairn` binary beside this one, or
//! PATH), clients in this process, half over TCP and half over WebSocket, each with its own
//! store and writes; every client's and the server's final set is checked (see
//! `cairn_cli::swarm`). Prints each round's time and the server's peak RSS, and one JSON line.

mod hostile;
mod wikigen;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cairn_core::{Hash, Keypair};
use cairn_log::{BatchEntry, ChangesQuery, Link, Log, LogOptions};
use serde_json::json;

struct Args {
    mode: Mode,
    n: u64,
    dir: PathBuf,
    concurrent_total: u64,
    sequential: u64,
    quick_repair: bool,
    cache_mb: usize,
    sessions: usize,
    writes: usize,
    cairn: Option<PathBuf>,
    attempts: usize,
    sources: usize,
    big: usize,
    phases: String,
    pages: u64,
}

fn parse() -> Result<Args> {
    let mut a = Args {
        mode: Mode::Log,
        n: 100_000,
        dir: std::env::temp_dir().join("cairn-bench"),
        concurrent_total: 100_000,
        sequential: 5_000,
        quick_repair: false,
        cache_mb: 64,
        sessions: 100,
        writes: 3,
        cairn: None,
        attempts: 20_000,
        sources: 100,
        big: 200,
        phases: "all".into(),
        pages: 1000,
    };
    let mut it = std::env::args().skip(1);
    a.mode = match it.next().as_deref() {
        Some("log") => Mode::Log,
        Some("recovery") => Mode::Recovery,
        Some("recovery-child") => Mode::RecoveryChild,
        Some("verify") => Mode::Verify,
        Some("serve") => Mode::Serve,
        Some("hostile") => Mode::Hostile,
        Some("wiki") => Mode::Wiki,
        other => bail!(
            "usage: cairn-bench log|recovery|verify|serve|hostile|wiki [--pages P] [--attempts N] [--sources N] [--big N] [--phases flood,big,kill] --n N] [--dir DIR] [--concurrent N] [--sequential N] [--quick-repair on|off] [--cache-mb MB] [--sessions N] [--writes N] [--cairn PATH] (got {other:?})"
        ),
    };
    while let Some(flag) = it.next() {
        let v = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--n" => a.n = v.parse()?,
            "--dir" => a.dir = v.into(),
            "--concurrent" => a.concurrent_total = v.parse()?,
            "--sequential" => a.sequential = v.parse()?,
            "--quick-repair" => a.quick_repair = v == "on",
            "--cache-mb" => a.cache_mb = v.parse()?,
            "--sessions" => a.sessions = v.parse()?,
            "--writes" => a.writes = v.parse()?,
            "--cairn" => a.cairn = Some(v.into()),
            "--attempts" => a.attempts = v.parse()?,
            "--sources" => a.sources = v.parse()?,
            "--big" => a.big = v.parse()?,
            "--phases" => a.phases = v,
            "--pages" => a.pages = v.parse()?,
            _ => bail!("unknown flag {flag}"),
        }
    }
    Ok(a)
}

fn value(i: u64) -> Vec<u8> {
    let mut v = format!("value-{i}").into_bytes();
    v.resize(32, b'.');
    v
}

/// Peak resident memory since the last reset, in MB.
fn peak_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

struct Report {
    rows: Vec<(String, String, String)>,
    json: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    fn add(&mut self, id: &str, figure: &str, value: f64, unit: &str, notes: String) {
        let shown = if value >= 100.0 {
            format!("{:.0}", value)
        } else {
            format!("{:.2}", value)
        };
        self.rows
            .push((figure.to_string(), format!("{shown} {unit}"), notes));
        self.json.insert(id.to_string(), json!(value));
        // Called right after each phase: the high-water mark is that phase's.
        self.json.insert(format!("{id}_peak_mb"), json!(peak_mb()));
    }
}

/// Reports a phase of concurrent single appends: rate, appends per commit, latency.
fn report_appends(
    r: &mut Report,
    log: &Log,
    id: &str,
    figure: &str,
    started: Instant,
    stats_before: (u64, u64),
    mut lat: Vec<Duration>,
) {
    let secs = started.elapsed().as_secs_f64();
    let (c1, r1) = log.commit_stats();
    let group = (r1 - stats_before.1) as f64 / (c1 - stats_before.0).max(1) as f64;
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    r.add(
        id,
        figure,
        lat.len() as f64 / secs,
        "nodes/s",
        format!(
            "{} appends in {:.2} s, {:.1} appends per commit; latency p50 {:.1} ms, p99 {:.1} ms; peak {:.0} MB",
            lat.len(),
            secs,
            group,
            pct(0.5),
            pct(0.99),
            peak_mb()
        ),
    );
}

#[derive(PartialEq)]
enum Mode {
    Log,
    Recovery,
    RecoveryChild,
    Verify,
    Serve,
    Hostile,
    Wiki,
}

/// Batch-appends `n` nodes of 32 bytes (1000 per batch, each linking the previous batch's).
fn fill(log: &Log, n: u64) -> Result<()> {
    let mut prev: Vec<Hash> = Vec::new();
    let mut i = 0u64;
    while i < n {
        let size = 1000.min(n - i) as usize;
        let entries = (0..size)
            .map(|j| BatchEntry::new(prev.get(j).map(|h| Link::Node(*h)), value(i + j as u64)))
            .collect();
        prev = log.batch(entries)?.iter().map(|e| e.node.key()).collect();
        i += size as u64;
    }
    Ok(())
}

/// `recovery`: a child process fills a store and keeps appending until it is killed with
/// SIGKILL; then this process times the first open (which repairs the store).
fn recovery(a: &Args) -> Result<()> {
    use std::io::BufRead;
    let _ = std::fs::remove_dir_all(&a.dir);
    std::fs::create_dir_all(&a.dir)?;
    let qr = if a.quick_repair { "on" } else { "off" };
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args([
            "recovery-child",
            "--n",
            &a.n.to_string(),
            "--quick-repair",
            qr,
        ])
        .arg("--dir")
        .arg(&a.dir)
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut lines = std::io::BufReader::new(child.stdout.take().context("child stdout")?).lines();
    let _filled = lines.next().context("child ended early")??;
    std::thread::sleep(Duration::from_millis(200));
    child.kill()?;
    child.wait()?;
    let t = Instant::now();
    let log = Log::open(
        a.dir.join("log.redb"),
        LogOptions::default().quick_repair(a.quick_repair),
    )?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "| first open after kill -9, quick repair {qr} | {ms:.0} ms | {} nodes, {:.0} MB file |",
        log.len(),
        std::fs::metadata(a.dir.join("log.redb"))?.len() as f64 / 1e6
    );
    std::fs::remove_dir_all(&a.dir)?;
    Ok(())
}

fn recovery_child(a: &Args) -> Result<()> {
    let log = Log::open(
        a.dir.join("log.redb"),
        LogOptions::default()
            .signer(Keypair::from_seed([42; 32]))
            .quick_repair(a.quick_repair),
    )?;
    fill(&log, a.n)?;
    println!("filled");
    for i in 0.. {
        log.append(value(i))?;
    }
    Ok(())
}

/// `cairn-bench verify --n N`: ed25519 verification rates of N signed nodes with 32-byte
/// values, one author (a clone) and 64 authors: one by one, in batches of 2048 on one thread,
/// and in batches split over every core.
fn verify(a: &Args) -> Result<()> {
    use cairn_core::{Ed25519Verifier, Limits, Node, Verify};
    let limits = Limits::default();
    for authors in [1u64, 64] {
        let keys: Vec<Keypair> = (0..authors)
            .map(|i| Keypair::from_seed([i as u8 + 1; 32]))
            .collect();
        let nodes: Vec<Node> = (0..a.n)
            .map(|i| Node::signed([], value(i), &keys[(i % authors) as usize], &limits))
            .collect::<Result<_, _>>()?;
        let v = Ed25519Verifier::strict();
        let rate = |t: Instant| a.n as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        for n in &nodes {
            v.verify(n)?;
        }
        let single = rate(t);
        let t = Instant::now();
        for c in nodes.chunks(2048) {
            v.verify_batch(c)?;
        }
        let batch = rate(t);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let t = Instant::now();
        for c in nodes.chunks(2048) {
            std::thread::scope(|s| {
                let hs: Vec<_> = c
                    .chunks(c.len().div_ceil(threads))
                    .map(|part| s.spawn(|| v.verify_batch(part)))
                    .collect();
                hs.into_iter().try_for_each(|h| h.join().expect("thread"))
            })?;
        }
        let parallel = rate(t);
        println!(
            "{authors} author(s): one by one {single:.0}/s, batch of 2048 on one thread {batch:.0}/s, on {threads} threads {parallel:.0}/s"
        );
    }
    Ok(())
}

/// `cairn-bench serve --sessions N`: N concurrent sessions against one `cairn serve`.
/// The `cairn` binary: `--cairn PATH`, or the one beside this bench.
fn cairn_binary(a: &Args) -> Result<PathBuf> {
    let cairn = match &a.cairn {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("the bench's directory")?
            .join("cairn"),
    };
    if !cairn.exists() {
        bail!(
            "no cairn binary at {} (build it: cargo build --release -p cairn-cli, or pass --cairn PATH)",
            cairn.display()
        );
    }
    Ok(cairn)
}

fn serve(a: &Args) -> Result<()> {
    let cairn = cairn_binary(a)?;
    let _ = std::fs::remove_dir_all(&a.dir);
    std::fs::create_dir_all(&a.dir)?;
    let opts = cairn_cli::swarm::SwarmOptions {
        sessions: a.sessions,
        writes: a.writes,
        deadline: Duration::from_secs(600),
        verbose: true,
        ..Default::default()
    };
    let started = Instant::now();
    let r = cairn_cli::swarm::run(&cairn, &a.dir, &opts)?;
    let total = started.elapsed();
    let _ = std::fs::remove_dir_all(&a.dir);
    println!(
        "| {} concurrent sessions against one `cairn serve` ({} TCP, {} WebSocket), all checked | |",
        r.sessions, r.tcp, r.ws
    );
    println!("|---|---|");
    for (name, round) in [("one-shot", &r.one_shot), ("live", &r.live)] {
        println!(
            "| {name} round: all sessions done | {} ms ({} nodes received, {} sent, {} KiB of protocol; at most {} sessions at once) |",
            round.ms,
            round.nodes_received,
            round.nodes_sent,
            round.bytes / 1024,
            round.peak_concurrent
        );
    }
    println!(
        "| server peak RSS (VmHWM) | {} |",
        r.server_peak_rss_kib.map_or("n/a".to_string(), |k| format!(
            "{:.1} MB",
            k as f64 / 1024.0
        ))
    );
    println!(
        "| whole run (stores, server start, both rounds, checks) | {:.1} s |",
        total.as_secs_f64()
    );
    if !r.server_errors.is_empty() {
        bail!("the server reported errors: {:?}", r.server_errors);
    }
    println!("{}", r.to_json());
    Ok(())
}

fn main() -> Result<()> {
    let a = parse()?;
    match a.mode {
        Mode::Recovery => return recovery(&a),
        Mode::RecoveryChild => return recovery_child(&a),
        Mode::Verify => return verify(&a),
        Mode::Serve => return serve(&a),
        Mode::Hostile => {
            let h = hostile::HostileArgs {
                cairn: cairn_binary(&a)?,
                dir: a.dir.clone(),
                attempts: a.attempts,
                sources: a.sources,
                big: a.big,
                n: a.n,
                phases: a.phases.clone(),
            };
            return hostile::run(&h);
        }
        Mode::Wiki => return wikigen::run(&a.dir, a.pages, a.n.max(a.pages)),
        Mode::Log => {}
    }
    let _ = std::fs::remove_dir_all(&a.dir);
    std::fs::create_dir_all(&a.dir)?;
    let path = a.dir.join("log.redb");
    let kp = Keypair::from_seed([42; 32]);
    let unsigned = std::env::var_os("UNSIGNED").is_some();
    let opts = || {
        let o = LogOptions::default()
            .quick_repair(a.quick_repair)
            .cache_bytes(a.cache_mb << 20);
        if unsigned { o } else { o.signer(kp.clone()) }
    };
    let log = Log::open(&path, opts())?;
    let mut r = Report {
        rows: Vec::new(),
        json: serde_json::Map::new(),
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!(
        "[cairn-bench] N={} on {} cores, dir {}",
        a.n,
        threads,
        a.dir.display()
    );

    let batch_size: u64 = std::env::var("BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    // 1. Batch signed append: batches of 1000, node j of batch k links node j of batch k-1
    //    (1000 parallel chains, as the JS anchor's log.batch job).
    reset_peak();
    let t = Instant::now();
    let mut prev: Vec<Hash> = Vec::new();
    let mut i = 0u64;
    while i < a.n {
        let size = batch_size.min(a.n - i) as usize;
        let entries = (0..size)
            .map(|j| {
                let links = prev.get(j).map(|h| Link::Node(*h)).into_iter();
                BatchEntry::new(links, value(i + j as u64))
            })
            .collect();
        let stored = log.batch(entries)?;
        prev = stored.iter().map(|e| e.node.key()).collect();
        i += size as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    r.add(
        "batch_append_per_s",
        "batch signed append (1000 per batch, durable)",
        a.n as f64 / secs,
        "nodes/s",
        format!("{} nodes in {:.2} s; peak {:.0} MB", a.n, secs, peak_mb()),
    );
    let disk = std::fs::metadata(&path)?.len();
    r.add(
        "disk_bytes_per_node",
        "disk after batch append",
        disk as f64 / a.n as f64,
        "B/node",
        format!("{:.1} MB file", disk as f64 / 1e6),
    );

    // 2. Single durable appends from 100 concurrent callers (group commit). Each caller
    //    chains its own nodes with add([its previous], v).
    reset_peak();
    let callers = 100u64;
    let per = a.concurrent_total / callers;
    let (c0, r0) = log.commit_stats();
    let t = Instant::now();
    let handles: Vec<_> = (0..callers)
        .map(|c| {
            let log = log.clone();
            std::thread::spawn(move || -> Result<Vec<Duration>> {
                let mut prev: Option<Hash> = None;
                let mut lat = Vec::with_capacity(per as usize);
                for k in 0..per {
                    let s = Instant::now();
                    let e = log.add(prev, value(1_000_000_000 + c * per + k))?;
                    lat.push(s.elapsed());
                    prev = Some(e.node.key());
                }
                Ok(lat)
            })
        })
        .collect();
    let mut lat: Vec<Duration> = Vec::new();
    for h in handles {
        lat.extend(h.join().map_err(|_| anyhow::anyhow!("caller panicked"))??);
    }
    report_appends(
        &mut r,
        &log,
        "concurrent_append_per_s",
        "single durable appends, 100 concurrent callers",
        t,
        (c0, r0),
        lat,
    );

    // 2b. The same from 100 async callers (tasks on a 2-thread tokio runtime): waiting for
    //     the commit costs no thread switch per append.
    reset_peak();
    let (c0, r0) = log.commit_stats();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .build()?;
    let t = Instant::now();
    let lat: Vec<Duration> = rt.block_on(async {
        let tasks: Vec<_> = (0..callers)
            .map(|c| {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut prev: Option<Hash> = None;
                    let mut lat = Vec::with_capacity(per as usize);
                    for k in 0..per {
                        let s = Instant::now();
                        let e = log
                            .add_async(prev, value(3_000_000_000 + c * per + k))
                            .await?;
                        lat.push(s.elapsed());
                        prev = Some(e.node.key());
                    }
                    anyhow::Ok(lat)
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await??);
        }
        anyhow::Ok(all)
    })?;
    drop(rt);
    report_appends(
        &mut r,
        &log,
        "async_append_per_s",
        "single durable appends, 100 concurrent async callers (add_async)",
        t,
        (c0, r0),
        lat,
    );

    // 3. Single durable appends, one caller, one after another (no sharing possible).
    reset_peak();
    let t = Instant::now();
    for k in 0..a.sequential {
        log.append(value(2_000_000_000 + k))?;
    }
    let secs = t.elapsed().as_secs_f64();
    r.add(
        "sequential_append_per_s",
        "single durable append, one caller (log.append)",
        a.sequential as f64 / secs,
        "nodes/s",
        format!(
            "{} appends in {:.2} s; peak {:.0} MB",
            a.sequential,
            secs,
            peak_mb()
        ),
    );

    let total = log.len();
    drop(log);
    // Reopen, as a reader would after a restart: nothing is preloaded.
    reset_peak();
    let t = Instant::now();
    let log = Log::open(&path, opts())?;
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    r.add(
        "open_ms",
        "reopen the store",
        open_ms,
        "ms",
        format!("{} nodes; peak {:.0} MB", total, peak_mb()),
    );

    // 4. get of random existing keys, from the changes feed's keys, in random order.
    let sample: Vec<Hash> = {
        let mut keys = Vec::with_capacity(100_000);
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let step = (total / 100_000).max(1);
        for e in log
            .changes(ChangesQuery::all())
            .step_by(step as usize)
            .take(100_000)
        {
            keys.push(e?.node.key());
        }
        for i in (1..keys.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            keys.swap(i, (x % (i as u64 + 1)) as usize);
        }
        keys
    };
    reset_peak();
    let mut lat = Vec::with_capacity(sample.len());
    let t = Instant::now();
    for k in &sample {
        let s = Instant::now();
        let e = log.get(k)?.context("sampled key missing")?;
        lat.push(s.elapsed());
        std::hint::black_box(e);
    }
    let secs = t.elapsed().as_secs_f64();
    lat.sort();
    let us = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e6;
    r.add(
        "get_mean_us",
        "get of a random node (mean)",
        secs * 1e6 / sample.len() as f64,
        "µs",
        format!(
            "p50 {:.1} µs, p99 {:.1} µs over {} gets on {} nodes; peak {:.0} MB",
            us(0.5),
            us(0.99),
            sample.len(),
            total,
            peak_mb()
        ),
    );

    // 5. heads.
    reset_peak();
    let t = Instant::now();
    let heads = log.heads()?;
    r.add(
        "heads_ms",
        "heads",
        t.elapsed().as_secs_f64() * 1e3,
        "ms",
        format!("{} heads; peak {:.0} MB", heads.len(), peak_mb()),
    );

    // 6. The whole changes feed, decoded.
    reset_peak();
    let t = Instant::now();
    let mut n = 0u64;
    for e in log.changes(ChangesQuery::all()) {
        std::hint::black_box(e?);
        n += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    r.add(
        "feed_per_s",
        "read the whole changes feed",
        n as f64 / secs,
        "nodes/s",
        format!("{} nodes in {:.2} s; peak {:.0} MB", n, secs, peak_mb()),
    );

    let _ = Arc::new(());
    println!("| figure | cairn, N = {} | notes |\n|---|---|---|", a.n);
    for (f, v, n) in &r.rows {
        println!("| {f} | {v} | {n} |");
    }
    r.json.insert("n".into(), json!(a.n));
    println!("\nJSON {}", serde_json::Value::Object(r.json));
    std::fs::remove_dir_all(&a.dir)?;
    Ok(())
}
