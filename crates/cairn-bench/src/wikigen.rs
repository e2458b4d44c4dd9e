//! A wiki of many pages and edits, written natively into a `cairn` store: the same nodes the
//! browser's `wiki_save` writes (a kv put of `{"text"}` on the page's key with `summary` and
//! `time` fields, linking the page's current version), in batches, so that a 100k-edit wiki
//! takes seconds instead of the browser's minutes. The clone figure (a new browser receiving
//! the wiki from `cairn serve`) is measured over it (crates/cairn-web/tests/browser/wiki-clone.mjs).

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use cairn_kv::{BatchOp, Kv, WriteOptions};
use cairn_wiki::Title;
use serde_json::json;

/// The browser bench's linear congruential generator.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = (self.0 * 1_103_515_245 + 12_345) % 2_147_483_648;
        self.0 % n
    }
}

pub(crate) fn run(data: &Path, pages: u64, edits: u64) -> Result<()> {
    cairn_cli::store::init(data)?;
    let log = cairn_cli::store::open_writer(data)?;
    let kv = Kv::open(&log)?;
    let vocab: Vec<String> = (0..2000u64)
        .map(|i| format!("w{}x{}", (i * 7919) % 100_003, i % 26))
        .collect();
    let mut r = Lcg(7);
    let words = |r: &mut Lcg| {
        (0..60)
            .map(|_| vocab[r.below(2000) as usize].as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let started = Instant::now();
    let mut batch = Vec::new();
    for e in 0..edits {
        let (i, text) = if e < pages {
            let words = words(&mut r);
            let links = (0..3)
                .map(|_| format!("[[Page {}]]", r.below(pages)))
                .collect::<Vec<_>>()
                .join(" ");
            (e, format!("marker{e}end {words}\n\nSee {links}."))
        } else {
            let i = r.below(pages);
            let words = words(&mut r);
            let k = e - pages;
            let text = format!(
                "marker{i}end edit {k} {words}\n\nSee [[Page {}]].",
                r.below(pages)
            );
            (i, text)
        };
        let title = Title::new(&format!("Page {i}"))?;
        let summary = if e < pages {
            "bench".to_string()
        } else {
            format!("edit {}", e - pages)
        };
        let opts = WriteOptions::default()
            .field("summary", summary.as_str())
            .field("time", 1_780_000_000_000 + e);
        batch.push(BatchOp::Put {
            key: title.key(),
            value: json!({ "text": text }),
            opts,
        });
        if batch.len() == 1000 {
            kv.batch(std::mem::take(&mut batch))?;
        }
    }
    if !batch.is_empty() {
        kv.batch(batch)?;
    }
    log.sync()?;
    println!(
        "{{\"pages\":{pages},\"edits\":{edits},\"nodes\":{},\"write_s\":{:.2}}}",
        log.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
