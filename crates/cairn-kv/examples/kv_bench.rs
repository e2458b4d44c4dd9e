//! Benchmarks of the kv store and the view indexer, on disk; prints a markdown table.
//!
//! `cargo run --release -p cairn-kv --example kv_bench -- [--keys 100000,1000000] [--dir D]
//! [--no-puts]`
//!
//! Figures: puts from concurrent callers (1, 16, 64, 256 threads, one put per call), puts in
//! batches, `get` latency of a random key at each size in `--keys` (the store grows from one
//! size to the next), kv view rebuild rate and a counting view's rebuild rate over the whole
//! log, and memory (peak RSS, `VmHWM`, and current RSS after each size).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cairn_kv::{BatchOp, Kv};
use cairn_log::{Entry, Log, LogOptions};
use cairn_view::redb::{ReadableTable, TableDefinition, WriteTransaction};
use cairn_view::{Indexer, IndexerOptions, View};
use serde_json::json;

fn status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .map(|l| l[field.len()..].trim().to_owned())
        })
        .unwrap_or_else(|| "?".into())
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 17
    }
}

/// hyperlog-index's benchmark view: a count per distinct value.
struct CountView;
const COUNTS: TableDefinition<&[u8], u64> = TableDefinition::new("view.count.counts");

impl View for CountView {
    type Error = cairn_view::redb::Error;
    fn name(&self) -> &str {
        "count"
    }
    fn version(&self) -> u64 {
        1
    }
    fn apply(&mut self, txn: &WriteTransaction, entries: &[Entry]) -> Result<(), Self::Error> {
        // Aggregate the batch in memory, then one read-modify-write per distinct value.
        let mut batch: HashMap<&[u8], u64> = HashMap::new();
        for e in entries {
            let v = e.node.value();
            *batch.entry(&v[..v.len().min(8)]).or_default() += 1;
        }
        let mut t = txn.open_table(COUNTS)?;
        for (k, n) in batch {
            let old = t.get(k)?.map_or(0, |v| v.value());
            t.insert(k, old + n)?;
        }
        Ok(())
    }
    fn clear(&mut self, txn: &WriteTransaction) -> Result<(), Self::Error> {
        txn.delete_table(COUNTS)?;
        Ok(())
    }
}

struct Table(Vec<(String, String, String, &'static str)>);
impl Table {
    fn row(&mut self, figure: impl Into<String>, value: impl Into<String>, unit: &str) {
        self.row_vs(figure, value, unit, "");
    }
    /// With the JS stack's figure for the same measure (hyperkv 2.1.1 on leveldb, N = 10,000,
    /// median of 3 runs; `shared/anchors/js/results/SUMMARY.md`).
    fn row_vs(
        &mut self,
        figure: impl Into<String>,
        value: impl Into<String>,
        unit: &str,
        js: &'static str,
    ) {
        let (f, v) = (figure.into(), value.into());
        eprintln!("  {f}: {v} {unit}");
        self.0.push((f, v, unit.to_owned(), js));
    }
}

fn fmt_rate(n: f64) -> String {
    let s = format!("{:.0}", n);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn concurrent_puts(kv: &Kv, threads: usize, per_thread: usize) -> f64 {
    let t = Instant::now();
    std::thread::scope(|s| {
        for th in 0..threads {
            let kv = kv.clone();
            s.spawn(move || {
                for i in 0..per_thread {
                    kv.put(&format!("c{threads}/{th}/{i}"), &json!({"n": i}))
                        .expect("put");
                }
            });
        }
    });
    (threads * per_thread) as f64 / t.elapsed().as_secs_f64()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut sizes = vec![100_000usize];
    let mut puts = true;
    let mut dir = std::env::temp_dir().join(format!("cairn-kv-bench-{}", std::process::id()));
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--keys" => {
                sizes = args
                    .next()
                    .ok_or("--keys needs a value")?
                    .split(',')
                    .map(|s| s.parse())
                    .collect::<Result<_, _>>()?;
            }
            "--dir" => dir = args.next().ok_or("--dir needs a value")?.into(),
            "--no-puts" => puts = false,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    std::fs::create_dir_all(&dir)?;
    let mut table = Table(Vec::new());

    // Puts from concurrent callers, each put its own durable commit (group commit shares them).
    if puts {
        let path = dir.join("puts.redb");
        let log = Log::open(&path, LogOptions::default())?;
        let kv = Kv::open(&log)?;
        eprintln!("puts from concurrent callers");
        for (threads, per) in [(1, 300), (16, 100), (64, 60), (256, 30), (1024, 10)] {
            let rate = concurrent_puts(&kv, threads, per);
            table.row_vs(
                format!("kv put, {threads} concurrent callers, on disk"),
                fmt_rate(rate),
                "puts/s",
                "2,083 (one at a time)",
            );
        }
        // The ceiling: the log's own durable adds, without the kv store.
        for threads in [1usize, 64, 256] {
            let per = match threads {
                1 => 300,
                64 => 60,
                _ => 30,
            };
            let t = Instant::now();
            std::thread::scope(|s| {
                for th in 0..threads {
                    let log = log.clone();
                    s.spawn(move || {
                        for i in 0..per {
                            log.add([], format!("raw {threads} {th} {i}")).expect("add");
                        }
                    });
                }
            });
            let rate = (threads * per) as f64 / t.elapsed().as_secs_f64();
            table.row(
                format!("(reference) log add, {threads} concurrent callers, on disk"),
                fmt_rate(rate),
                "nodes/s",
            );
        }
        drop(kv);
        drop(log);
        std::fs::remove_file(&path)?;
    }

    // A growing store: get latency at each size, then rebuild rates over the whole log.
    let path = dir.join("store.redb");
    let log = Log::open(&path, LogOptions::default())?;
    let kv = Kv::open(&log)?;
    let mut have = 0usize;
    let mut rng = Lcg(42);
    let mut batch_rate = None;
    for &size in &sizes {
        eprintln!("growing the store to {size} keys");
        let t = Instant::now();
        let added = size.saturating_sub(have);
        while have < size {
            let n = (size - have).min(10_000);
            let ops = (have..have + n)
                .map(|i| BatchOp::put(format!("key/{i:08}"), json!({"i": i, "text": "some value"})))
                .collect();
            kv.batch(ops)?;
            have += n;
        }
        kv.indexer().ready_blocking()?;
        if batch_rate.is_none() && added > 0 {
            let r = added as f64 / t.elapsed().as_secs_f64();
            batch_rate = Some(r);
            table.row(
                "kv batch of 10,000 puts (to a store of that size), indexed",
                fmt_rate(r),
                "puts/s",
            );
        }
        // Warm up, then time single gets of random keys.
        let samples = 200_000;
        let mut lat: Vec<Duration> = Vec::with_capacity(samples);
        for _ in 0..20_000 {
            kv.get(&format!("key/{:08}", rng.next() as usize % size))?;
        }
        let keys: Vec<String> = (0..samples)
            .map(|_| format!("key/{:08}", rng.next() as usize % size))
            .collect();
        for k in &keys {
            let t = Instant::now();
            let v = kv.get(k)?;
            lat.push(t.elapsed());
            debug_assert_eq!(v.len(), 1);
        }
        lat.sort();
        let us = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1e6);
        table.row_vs(
            format!("kv get of a random key, {size} keys: median"),
            us(lat[samples / 2]),
            "µs",
            "34.7 (10k keys)",
        );
        table.row(
            format!("kv get of a random key, {size} keys: p99"),
            us(lat[samples * 99 / 100]),
            "µs",
        );
        table.row(format!("RSS after {size} keys"), status("VmRSS:"), "");
    }
    let nodes = log.len();
    eprintln!("rebuilding the kv view over {nodes} nodes");
    let t = Instant::now();
    kv.indexer().rebuild()?;
    kv.indexer().ready_blocking()?;
    table.row_vs(
        format!("kv view rebuild over {nodes} nodes, on disk"),
        fmt_rate(nodes as f64 / t.elapsed().as_secs_f64()),
        "nodes/s",
        "10,921",
    );
    eprintln!("building a counting view over {nodes} nodes");
    let t = Instant::now();
    let count = Indexer::open(&log, CountView, IndexerOptions::default().background(false))?;
    count.ready_blocking()?;
    table.row_vs(
        format!("counting view (hyperlog-index bench) rebuild over {nodes} nodes, on disk"),
        fmt_rate(nodes as f64 / t.elapsed().as_secs_f64()),
        "nodes/s",
        "10,411",
    );
    table.row_vs(
        "peak RSS (VmHWM), whole run",
        status("VmHWM:"),
        "",
        "74.3 MB (kv put), 110.2 MB (replicate+index)",
    );
    drop(count);
    drop(kv);
    drop(log);
    std::fs::remove_dir_all(&dir)?;

    println!("| figure | cairn | unit | JS stack (leveldb) |");
    println!("|---|---:|---|---|");
    for (f, v, u, js) in table.0 {
        println!("| {f} | {v} | {u} | {js} |");
    }
    Ok(())
}
