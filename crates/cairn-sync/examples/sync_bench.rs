//! Measures replication between two logs over the in-memory duplex, each side on its own
//! thread: full clone rate and wire bytes per node, already-equal re-sync, and +10/+10
//! divergence.
//!
//! ```text
//! cargo run --release -p cairn-sync --example sync_bench -- [NODES] [--disk]
//! ```
//!
//! NODES defaults to 100 000 signed nodes with 32-byte values (a chain, as one writer
//! appending). `--disk` puts both logs in files under the system temp directory.

use std::time::Instant;

use cairn_core::{Ed25519Verifier, Keypair, Limits, Node};
use cairn_log::{Log, LogOptions};
use cairn_sync::{SessionOptions, SyncSummary, duplex, sync_log};
use futures_lite::future;

fn open(name: &str, seed: u8, disk: bool) -> Log {
    let opts = LogOptions::default()
        .signer(Keypair::from_seed([seed; 32]))
        .verifier(Ed25519Verifier::strict());
    if disk {
        let dir = std::env::temp_dir().join(format!("cairn-sync-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(format!("{name}.redb"));
        let _ = std::fs::remove_file(&path);
        Log::open(path, opts).expect("open log")
    } else {
        Log::memory(opts).expect("memory log")
    }
}

/// Session options; `CAIRN_INSERT_BATCH` overrides the insert batch size.
fn opts() -> SessionOptions {
    let mut o = SessionOptions::default();
    if let Some(n) = std::env::var("CAIRN_INSERT_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        o.insert_batch = n;
    }
    o
}

fn sync(a: &Log, b: &Log) -> (SyncSummary, SyncSummary) {
    let (mut ia, mut ib) = duplex(256 << 10);
    let (a, b) = (a.clone(), b.clone());
    let ta = std::thread::spawn(move || {
        future::block_on(sync_log(&a, &mut ia, opts(), future::pending()))
    });
    let rb = future::block_on(sync_log(&b, &mut ib, opts(), future::pending()));
    let ra = ta.join().expect("thread");
    (ra.expect("sync a"), rb.expect("sync b"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(100_000);
    let disk = args.iter().any(|a| a == "--disk");
    let key = Keypair::from_seed([1; 32]);
    let limits = Limits::default();

    let t = Instant::now();
    let a = open("a", 1, disk);
    let mut batch: Vec<Node> = Vec::with_capacity(8192);
    let mut prev = None;
    for i in 0..n {
        let mut v = [0u8; 32];
        v[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let node = Node::signed(prev, v.to_vec(), &key, &limits).expect("node");
        prev = Some(node.key());
        batch.push(node);
        if batch.len() == 8192 || i + 1 == n {
            a.insert(std::mem::take(&mut batch)).expect("insert");
        }
    }
    eprintln!("built {n} signed nodes in {:?}", t.elapsed());
    // A serving peer keeps its sync index current as it writes; build it before timing.
    let t = Instant::now();
    let index = cairn_sync::LogStore::open(&a).expect("index");
    index.catch_up().expect("index catch-up");
    eprintln!("indexed them in {:?}", t.elapsed());
    let b = open("b", 2, disk);

    let t = Instant::now();
    let (sa, sb) = sync(&a, &b);
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(b.len(), n as u64);
    println!(
        "full clone ({}): {n} nodes in {secs:.2} s = {:.0} nodes/s, {:.1} wire bytes/node, round trips {}",
        if disk { "disk" } else { "memory" },
        n as f64 / secs,
        sa.bytes_sent as f64 / n as f64,
        sa.round_trips
    );
    println!("  a: {}", sa.to_json());
    println!("  b: {}", sb.to_json());

    let (sa, sb) = sync(&a, &b);
    println!(
        "already equal: {} B / {} B each way, round trips {}",
        sa.bytes_sent, sb.bytes_sent, sa.round_trips
    );

    for i in 0..10 {
        a.append(format!("a{i:031}").into_bytes()).expect("append");
        b.append(format!("b{i:031}").into_bytes()).expect("append");
    }
    let (sa, sb) = sync(&a, &b);
    assert_eq!(a.len(), b.len());
    let overhead = sa.bytes_sent + sb.bytes_sent - sa.node_bytes_sent - sb.node_bytes_sent;
    println!(
        "+10/+10: {} B + {} B in total, {overhead} B beyond the nodes, round trips {}, nodes {}/{}",
        sa.bytes_sent, sb.bytes_sent, sa.round_trips, sa.nodes_sent, sb.nodes_sent
    );
    println!("  a: {}", sa.to_json());
    println!("  b: {}", sb.to_json());
}
