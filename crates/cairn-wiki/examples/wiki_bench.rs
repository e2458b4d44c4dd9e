//! The wiki's figures natively, on disk: a wiki of `--pages` pages built from `--edits`
//! signed edits, then open a page, search, and save an edit to durable.
//!
//! ```sh
//! cargo run --release -p cairn-wiki --example wiki_bench -- --pages 10000 --edits 100000
//! ```

use std::time::{Duration, Instant};

use cairn_kv::{BatchOp, WriteOptions};
use cairn_log::core::Keypair;
use cairn_log::{Log, LogOptions};
use cairn_view::IndexerOptions;
use cairn_wiki::{SaveOptions, Title, Wiki};

/// A small deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const SYLLABLES: [&str; 16] = [
    "ca", "irn", "sto", "ne", "tra", "il", "mar", "ker", "sum", "mit", "ro", "ck", "pa", "th",
    "dry", "wal",
];

fn word(i: usize) -> String {
    let mut w = String::new();
    let mut x = i + 1;
    while x > 0 {
        w.push_str(SYLLABLES[x % 16]);
        x /= 16;
    }
    w
}

fn title(i: usize) -> String {
    format!("Page {i}")
}

fn text(rng: &mut Rng, pages: usize, words: usize) -> String {
    let mut t = String::new();
    for i in 0..words {
        // Zipf-ish: small word numbers are common.
        let spread = 1 + rng.below(4000);
        let w = rng.below(spread);
        t.push_str(&word(w));
        t.push(if i % 12 == 11 { '\n' } else { ' ' });
    }
    for _ in 0..3 {
        t.push_str(&format!("[[{}]] ", title(rng.below(pages))));
    }
    t
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn stats(name: &str, mut d: Vec<Duration>) {
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1e3;
    println!(
        "{name}: n={} median {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        d.len(),
        ms(d[d.len() / 2]),
        ms(d[d.len() * 9 / 10]),
        ms(d[d.len() * 99 / 100]),
        ms(d[d.len() - 1]),
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pages = arg("--pages", 10_000);
    let edits = arg("--edits", 100_000).max(pages);
    let words = arg("--words", 60);
    let dir = std::env::temp_dir().join(format!("cairn-wiki-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("log.redb");
    let log = Log::open(
        &path,
        LogOptions::default().signer(Keypair::from_seed([5; 32])),
    )?;
    // Views follow in this thread (catch_up), so the write and index phases time apart.
    let wiki = Wiki::open_with(&log, IndexerOptions::default().background(false))?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);

    let t0 = Instant::now();
    let mut done = 0usize;
    while done < edits {
        let n = (edits - done).min(5000);
        let ops: Vec<BatchOp> = (done..done + n)
            .map(|i| {
                let p = if i < pages { i } else { rng.below(pages) };
                let opts = WriteOptions::default()
                    .field("summary", format!("edit {i}"))
                    .field("time", i as u64);
                BatchOp::put(
                    format!("page/{}", title(p)),
                    serde_json::json!({ "text": text(&mut rng, pages, words) }),
                )
                .with(opts)
            })
            .collect();
        wiki.kv().batch(ops)?;
        done += n;
    }
    let write = t0.elapsed();
    println!(
        "wrote {edits} signed edits of {pages} pages ({words} words each) in {:.1} s ({:.0} edits/s)",
        write.as_secs_f64(),
        edits as f64 / write.as_secs_f64()
    );
    let t1 = Instant::now();
    wiki.indexer().catch_up()?;
    let index = t1.elapsed();
    println!(
        "wiki view built over {} nodes in {:.1} s ({:.0} nodes/s)",
        log.len(),
        index.as_secs_f64(),
        log.len() as f64 / index.as_secs_f64()
    );
    // The view rebuilt from scratch (what a view version change or a repair costs).
    let t2 = Instant::now();
    wiki.indexer().rebuild()?;
    wiki.indexer().catch_up()?;
    let rebuild = t2.elapsed();
    println!(
        "wiki view rebuilt from scratch over {} nodes in {:.1} s ({:.0} nodes/s)",
        log.len(),
        rebuild.as_secs_f64(),
        log.len() as f64 / rebuild.as_secs_f64()
    );
    println!(
        "store size {:.1} MB",
        std::fs::metadata(&path)?.len() as f64 / 1e6
    );

    let mut open = Vec::new();
    for _ in 0..1000 {
        let t = Title::new(&title(rng.below(pages)))?;
        let s = Instant::now();
        let page = wiki.page(&t)?;
        assert!(page.text().is_some());
        open.push(s.elapsed());
    }
    stats("open a page (page + text)", open);

    let mut search = Vec::new();
    let mut hits = 0usize;
    for i in 0..200 {
        let q = if i % 2 == 0 {
            word(rng.below(4000))
        } else {
            format!(
                "{} {}",
                word(rng.below(200)),
                word(rng.below(4000)).chars().take(3).collect::<String>()
            )
        };
        let s = Instant::now();
        hits += wiki.search(&q, 20)?.len();
        search.push(s.elapsed());
    }
    stats("search (20 best)", search);
    println!("  ({hits} hits over 200 queries)");

    let mut save = Vec::new();
    for i in 0..200 {
        let t = Title::new(&title(rng.below(pages)))?;
        let body = text(&mut rng, pages, words);
        let s = Instant::now();
        wiki.save(&t, &body, &SaveOptions::new(format!("bench {i}"), Some(i)))?;
        // The save is durable on return; views follow on the next read.
        save.push(s.elapsed());
    }
    stats("save an edit (durable)", save);
    let s = Instant::now();
    wiki.indexer().catch_up()?;
    println!(
        "  indexing those 200 saves afterwards: {:.1} ms",
        s.elapsed().as_secs_f64() * 1e3
    );

    drop(wiki);
    drop(log);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
