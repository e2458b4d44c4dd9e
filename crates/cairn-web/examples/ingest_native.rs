//! Makes signed nodes for the browser ingest figure and measures the native rate of the same
//! work, in the same run: `Log::check` then `Log::insert_checked` (durable) in batches, into a
//! fresh store on disk.
//!
//! ```sh
//! cargo run --release -p cairn-web --example ingest_native -- NODES BATCH OUT_FILE
//! ```
//!
//! Writes the nodes to OUT_FILE as frames (`cairn_web::frames`) and prints one JSON line:
//! `{"nodes", "batch", "native_nodes_per_s", "threads"}`.

use std::time::Instant;

use cairn_log::core::{Draft, Keypair, Limits, Node};
use cairn_log::{Log, LogOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, n, batch, out] = args.as_slice() else {
        return Err("usage: ingest_native NODES BATCH OUT_FILE".into());
    };
    let n: usize = n.parse()?;
    let batch: usize = batch.parse()?;
    // Four authors writing one chain, each node linking the one before.
    let keys: Vec<Keypair> = (1..=4u8).map(|i| Keypair::from_seed([i; 32])).collect();
    let mut nodes: Vec<Node> = Vec::with_capacity(n);
    for i in 0..n {
        let kp = &keys[i % keys.len()];
        let links = nodes.last().map(|p| vec![p.key()]).unwrap_or_default();
        let value = format!("{{\"i\":{i},\"text\":\"an entry of about sixty bytes\"}}");
        let d = Draft::new(
            links,
            Some(kp.public()),
            value.into_bytes(),
            &Limits::default(),
        )?;
        nodes.push(d.sign(kp)?);
    }
    std::fs::write(out, cairn_web::frames::encode(&nodes))?;

    let dir = std::env::temp_dir().join(format!("cairn-ingest-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("store.redb");
    let log = Log::open(&path, LogOptions::default())?;
    let start = Instant::now();
    for chunk in nodes.chunks(batch) {
        log.insert_checked(log.check(chunk.to_vec())?)?;
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(log.len(), n as u64);
    drop(log);
    std::fs::remove_dir_all(&dir)?;
    println!(
        "{{\"nodes\":{n},\"batch\":{batch},\"native_nodes_per_s\":{:.0},\"threads\":{}}}",
        n as f64 / secs,
        std::thread::available_parallelism().map_or(1, |t| t.get())
    );
    Ok(())
}
