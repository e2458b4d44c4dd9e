//! A second kind of view over the same log, to prove the view API: a spatial index of the
//! points stored as kv values (`{"lat": …, "lon": …}`), answering bounding-box queries — as
//! osm-p2p did with hyperlog-kdb-index.
//!
//! The view keeps the current point heads in its own redb table
//! (`view.geo.points`: `(key, head)` → `(lon, lat)`), written in the indexer's transaction, so
//! it is crash-safe and resumable like any view. Queries go to an in-memory R-tree
//! ([`rstar`]) built from that table on first use and then kept in step with each committed
//! batch (the `committed` / `rolled_back` hooks).
//!
//! Run: `cargo run --release -p cairn-kv --example geo [points]`

use std::collections::BTreeSet;
use std::time::Instant;

use cairn_kv::{BatchOp, DocOp, Kv, ListOptions, WriteOptions, parse_doc};
use cairn_log::core::Hash;
use cairn_log::{Entry, Log, LogOptions};
use cairn_view::redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use cairn_view::{Indexer, IndexerOptions, View};
use rstar::primitives::GeomWithData;
use rstar::{AABB, RTree};
use serde_json::json;

const POINTS: TableDefinition<(&str, &[u8; 32]), (f64, f64)> =
    TableDefinition::new("view.geo.points");

/// A point of the tree: `[lon, lat]` with its key and head hash.
type Point = GeomWithData<[f64; 2], (String, Hash)>;

enum Change {
    Insert(String, Hash, [f64; 2]),
    Remove(String, Hash, [f64; 2]),
    Clear,
}

/// The spatial view. Its persistent state is the `view.geo.points` table; the R-tree is a
/// cache of it.
#[derive(Default)]
struct GeoView {
    tree: Option<RTree<Point>>,
    pending: Vec<Change>,
}

/// `{"lat": number, "lon": number}` → `[lon, lat]`.
fn point_of(v: &serde_json::value::RawValue) -> Option<[f64; 2]> {
    #[derive(serde::Deserialize)]
    struct P {
        lat: f64,
        lon: f64,
    }
    let p: P = serde_json::from_str(v.get()).ok()?;
    Some([p.lon, p.lat])
}

impl View for GeoView {
    type Error = cairn_view::redb::Error;

    fn name(&self) -> &str {
        "geo"
    }
    fn version(&self) -> u64 {
        1
    }

    /// The kv supersede rule, restricted to heads whose value is a point.
    fn apply(&mut self, txn: &WriteTransaction, entries: &[Entry]) -> Result<(), Self::Error> {
        let mut t = txn.open_table(POINTS)?;
        for e in entries {
            let Some(doc) = parse_doc(e.node.value()) else {
                continue;
            };
            let key: &str = &doc.key;
            for link in e.node.links() {
                if let Some(old) = t.remove((key, &link.0))? {
                    let (lon, lat) = old.value();
                    self.pending
                        .push(Change::Remove(key.to_owned(), *link, [lon, lat]));
                }
            }
            if let DocOp::Put(v) = doc.op
                && let Some(p) = point_of(v)
            {
                t.insert((key, &e.node.key().0), (p[0], p[1]))?;
                self.pending
                    .push(Change::Insert(key.to_owned(), e.node.key(), p));
            }
        }
        Ok(())
    }

    fn clear(&mut self, txn: &WriteTransaction) -> Result<(), Self::Error> {
        txn.delete_table(POINTS)?;
        self.pending.push(Change::Clear);
        Ok(())
    }

    fn committed(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        let Some(tree) = &mut self.tree else {
            return; // not loaded yet: it will be read from the table
        };
        for c in pending {
            match c {
                Change::Insert(k, h, p) => tree.insert(GeomWithData::new(p, (k, h))),
                Change::Remove(k, h, p) => {
                    tree.remove(&GeomWithData::new(p, (k, h)));
                }
                Change::Clear => *tree = RTree::new(),
            }
        }
    }

    fn rolled_back(&mut self) {
        // The table may differ from the tree now (another indexer may have written it):
        // reload on the next query.
        self.pending.clear();
        self.tree = None;
    }
}

impl GeoView {
    /// Every current point head inside the box, loading the tree from the table if needed.
    fn query(
        &mut self,
        log: &Log,
        min: [f64; 2],
        max: [f64; 2],
    ) -> Result<Vec<(String, Hash, [f64; 2])>, cairn_view::redb::Error> {
        if self.tree.is_none() {
            let txn = log.database().begin_read()?;
            let mut points = Vec::new();
            if let Ok(t) = txn.open_table(POINTS) {
                for row in t.iter()? {
                    let (k, v) = row?;
                    let (key, hash) = k.value();
                    let (lon, lat) = v.value();
                    points.push(GeomWithData::new([lon, lat], (key.to_owned(), Hash(*hash))));
                }
            }
            self.tree = Some(RTree::bulk_load(points));
        }
        let tree = self.tree.as_ref().map_or_else(Vec::new, |t| {
            t.locate_in_envelope(&AABB::from_corners(min, max))
                .map(|p| (p.data.0.clone(), p.data.1, *p.geom()))
                .collect()
        });
        Ok(tree)
    }
}

/// Brute force over the kv store: every current head whose value is a point in the box.
fn brute(kv: &Kv, min: [f64; 2], max: [f64; 2]) -> BTreeSet<(String, Hash)> {
    let mut out = BTreeSet::new();
    for row in kv.list(ListOptions::default()).expect("list") {
        let row = row.expect("row");
        for (h, head) in row.values.iter() {
            let Some(v) = head.value() else { continue };
            let (Some(lon), Some(lat)) = (v["lon"].as_f64(), v["lat"].as_f64()) else {
                continue;
            };
            if lon >= min[0] && lon <= max[0] && lat >= min[1] && lat <= max[1] {
                out.insert((row.key.clone(), *h));
            }
        }
    }
    out
}

fn as_set(v: Vec<(String, Hash, [f64; 2])>) -> BTreeSet<(String, Hash)> {
    v.into_iter().map(|(k, h, _)| (k, h)).collect()
}

struct Lcg(u64);
impl Lcg {
    fn f(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let dir = std::env::temp_dir().join(format!("cairn-geo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("store.redb");
    let (min, max) = ([2.0, 48.0], [3.0, 49.0]);
    {
        let log = Log::open(&path, LogOptions::default())?;
        let kv = Kv::open(&log)?;
        let geo = Indexer::open(&log, GeoView::default(), IndexerOptions::default())?;
        let mut rng = Lcg(7);
        let t = Instant::now();
        for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
            let ops = chunk
                .iter()
                .map(|i| {
                    BatchOp::put(
                        format!("node/{i}"),
                        json!({"lat": 40.0 + 10.0 * rng.f(), "lon": 10.0 * rng.f()}),
                    )
                })
                .collect();
            kv.batch(ops)?;
        }
        // Move some points, delete some, fork some (two concurrent versions), and store
        // values that are not points.
        for i in 0..n / 10 {
            let key = format!("node/{}", (rng.f() * n as f64) as usize);
            match i % 4 {
                0 => drop(kv.put(&key, &json!({"lat": 48.5, "lon": 2.5}))?),
                1 => drop(kv.del(&key)?),
                2 => drop(kv.put_with(
                    &key,
                    &json!({"lat": 48.2, "lon": 2.2}),
                    &WriteOptions::default().links([]),
                )?),
                _ => drop(kv.put(&key, &json!({"name": "not a point"}))?),
            }
        }
        println!("wrote {} nodes in {:.2?}", log.len(), t.elapsed());
        let t = Instant::now();
        geo.ready_blocking()?;
        println!("geo view ready in {:.2?}", t.elapsed());
        let t = Instant::now();
        let hits = geo.with_view(|g| g.query(&log, min, max))?;
        println!(
            "bbox {min:?}..{max:?}: {} points (first query, loads the tree) in {:.2?}",
            hits.len(),
            t.elapsed()
        );
        let t = Instant::now();
        let again = geo.with_view(|g| g.query(&log, min, max))?;
        println!("same query from the tree in {:.2?}", t.elapsed());
        assert_eq!(as_set(again), brute(&kv, min, max), "tree = brute force");
        // Live: a new point appears in the answer once the view has applied it.
        let h = kv.put("node/new", &json!({"lat": 48.5, "lon": 2.5}))?;
        geo.ready_blocking()?;
        let hits = as_set(geo.with_view(|g| g.query(&log, min, max))?);
        assert!(hits.contains(&("node/new".to_owned(), h)));
        assert_eq!(hits, brute(&kv, min, max));
    }
    {
        // Reopen: the view resumes from its table and progress; nothing is re-applied.
        let log = Log::open(&path, LogOptions::default())?;
        let kv = Kv::open(&log)?;
        let geo = Indexer::open(&log, GeoView::default(), IndexerOptions::default())?;
        println!(
            "reopened: geo view at change {} of {}",
            geo.applied(),
            log.len()
        );
        geo.ready_blocking()?;
        let hits = as_set(geo.with_view(|g| g.query(&log, min, max))?);
        assert_eq!(hits, brute(&kv, min, max), "after reopen");
        let t = Instant::now();
        geo.rebuild()?;
        geo.ready_blocking()?;
        println!("rebuilt the geo view in {:.2?}", t.elapsed());
        let rebuilt = as_set(geo.with_view(|g| g.query(&log, min, max))?);
        assert_eq!(rebuilt, hits, "rebuilt = incremental");
        println!("ok: {} points in the box, tree = brute force", hits.len());
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
