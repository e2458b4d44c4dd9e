//! Blob figures in one process (run in release: `cargo run --release -p cairn-blob --example
//! blob_bench -- [MB] [DIR]`; `scripts/bench-blobs.sh` adds the real-process figures):
//!
//! 1. BLAKE3 alone over the data in memory (one thread), for comparison;
//! 2. `BlobStore::add_reader` of a file (copy to a temporary file, fsync, outboard, rename);
//! 3. a verified transfer between two sessions over an in-memory pipe (no Noise, no TCP);
//! 4. the delivery time of a log node appended during a live session, with and without a
//!    concurrent transfer of the blob on the same connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use cairn_blob::proto::{BlobPeer, Outcome};
use cairn_blob::{BlobHash, BlobStore};
use cairn_log::{Log, LogOptions};
use cairn_sync::{NoTimer, SessionOptions, duplex, sync_log_with_extension};

#[derive(Default)]
struct Stop {
    flag: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

struct StopFut(Arc<Stop>);

impl Future for StopFut {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        *self.0.waker.lock().unwrap() = Some(cx.waker().clone());
        if self.0.flag.load(Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

fn stop(s: &Stop) {
    s.flag.store(true, Ordering::SeqCst);
    if let Some(w) = s.waker.lock().unwrap().take() {
        w.wake();
    }
}

fn data(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9u32;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

struct Side {
    log: Log,
    blobs: BlobStore,
}

fn side(dir: &std::path::Path, name: &str) -> Side {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    let log = Log::open(d.join("log.redb"), LogOptions::default()).unwrap();
    let blobs = BlobStore::open(&log, Some(&d.join("blobs"))).unwrap();
    Side { log, blobs }
}

/// A live session between `a` (serving blobs) and `b` (fetching `fetch`, if any); returns
/// the delivery times of nodes appended on `a` while the fetch runs (or `samples` nodes
/// without one), and the transfer's duration.
fn live(
    a: &Side,
    b: &Side,
    fetch: Option<BlobHash>,
    samples: usize,
) -> (Vec<Duration>, Option<Duration>) {
    let (mut x, mut y) = duplex(256 << 10);
    let opts = SessionOptions {
        live: true,
        keep_alive: Duration::MAX,
        live_timeout: Duration::MAX,
        ..Default::default()
    };
    let sa = Arc::new(Stop::default());
    let sb = Arc::new(Stop::default());
    let (la, lb) = (a.log.clone(), b.log.clone());
    let (_, ea) = BlobPeer::new(a.blobs.clone(), true).shared();
    let mut pb = BlobPeer::new(b.blobs.clone(), false);
    if let Some(h) = fetch {
        pb.fetch(h);
    }
    let (pb, eb) = pb.shared();
    let (sa2, sb2) = (sa.clone(), sb.clone());
    let ta = std::thread::spawn(move || {
        futures_lite::future::block_on(sync_log_with_extension(
            &la,
            &mut x,
            opts.clone(),
            StopFut(sa2),
            NoTimer,
            Duration::MAX,
            |_: &_| {},
            Some(ea),
        ))
    });
    let opts_b = SessionOptions {
        live: true,
        keep_alive: Duration::MAX,
        live_timeout: Duration::MAX,
        ..Default::default()
    };
    let tb = std::thread::spawn(move || {
        futures_lite::future::block_on(sync_log_with_extension(
            &lb,
            &mut y,
            opts_b,
            StopFut(sb2),
            NoTimer,
            Duration::MAX,
            |_: &_| {},
            Some(eb),
        ))
    });
    let start = Instant::now();
    let mut times = Vec::new();
    let mut transfer = None;
    let mut i = 0;
    loop {
        let done = !pb.lock().unwrap().outcomes().is_empty();
        if done && transfer.is_none() && fetch.is_some() {
            transfer = Some(start.elapsed());
            assert!(matches!(
                pb.lock().unwrap().outcomes()[0].1,
                Outcome::Stored { .. }
            ));
        }
        if (fetch.is_some() && done) || (fetch.is_none() && times.len() >= samples) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        let e = a.log.append(format!("node {i}")).unwrap();
        i += 1;
        let t = Instant::now();
        while !b.log.has(&e.node.key()).unwrap() {
            std::thread::sleep(Duration::from_micros(100));
            if t.elapsed() > Duration::from_secs(30) {
                panic!("node never arrived");
            }
        }
        let d = t.elapsed();
        // Only samples taken while the transfer was still running count.
        if fetch.is_none() || pb.lock().unwrap().outcomes().is_empty() {
            times.push(d);
        }
    }
    stop(&sa);
    stop(&sb);
    ta.join().unwrap().unwrap();
    tb.join().unwrap().unwrap();
    (times, transfer)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mb: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100);
    let dir = args
        .get(2)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("cairn-blob-bench-{}", std::process::id()))
        });
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let bytes = data(mb << 20);

    let t = Instant::now();
    let h = blake3::hash(&bytes);
    let d = t.elapsed();
    println!(
        "blake3 alone (1 thread, in memory): {:.0} MB/s",
        mbps(bytes.len(), d)
    );

    let file = dir.join("input.bin");
    std::fs::write(&file, &bytes).unwrap();
    let a = side(&dir, "a");
    let t = Instant::now();
    let added = a
        .blobs
        .add_reader(std::fs::File::open(&file).unwrap())
        .unwrap();
    let d = t.elapsed();
    assert_eq!(added.0, *h.as_bytes());
    println!(
        "add {mb} MiB file (copy, fsync, outboard, rename): {:.0} MB/s",
        mbps(bytes.len(), d)
    );

    let b = side(&dir, "b");
    let (quiet, _) = live(&a, &b, None, 15);
    let b2 = side(&dir, "b2");
    let (busy, transfer) = live(&a, &b2, Some(added), 0);
    let transfer = transfer.unwrap();
    println!(
        "verified transfer of {mb} MiB over an in-memory pipe (live session): {:.0} MB/s",
        mbps(bytes.len(), transfer)
    );
    println!(
        "log node delivery, median: {:?} without a transfer ({} samples), {:?} during it ({} samples)",
        median(quiet.clone()),
        quiet.len(),
        median(busy.clone()),
        busy.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
