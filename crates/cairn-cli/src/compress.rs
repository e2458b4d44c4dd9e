//! Compressed copies of `cairn serve --web`'s files, so a browser's first load of the wiki
//! moves about a quarter of the bytes: the app and the browser peer are 4.8 MB of wasm and
//! JavaScript, about 1.0 MB with brotli (quality 11) and 1.4 MB with gzip.
//!
//! At start a background thread compresses every compressible file of the directory (gzip
//! first, all of them, which is quick; then brotli, which takes seconds for the peer's wasm).
//! A file that changes later (a rebuild while the server runs) is served as it is and
//! compressed again in the background; a copy is used only while the file's length and
//! modification time are those it was made from. Nothing is written to the directory.
//!
//! Bounds: files over [`MAX_FILE`] are not compressed, and the copies together stay under
//! [`MAX_TOTAL`] bytes (past it, files are served as they are).

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;

/// Largest file compressed.
pub const MAX_FILE: u64 = 32 << 20;
/// Most bytes of compressed copies kept.
pub const MAX_TOTAL: usize = 128 << 20;
/// Most files looked at when the directory is walked at start, and its deepest level.
const MAX_WALK: usize = 4096;
const MAX_DEPTH: usize = 8;

/// A content coding the server can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// `br` (RFC 7932).
    Brotli,
    /// `gzip`.
    Gzip,
}

impl Coding {
    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
        }
    }
}

/// The codings an `Accept-Encoding` value accepts, best first (`br` before `gzip`; a coding
/// with `q=0` is refused, `*` stands for both).
pub fn accepted(header: &str) -> Vec<Coding> {
    let mut br = false;
    let mut gzip = false;
    let mut refused = Vec::new();
    for item in header.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let zero = parts.any(|p| {
            let p = p.trim();
            p.strip_prefix("q=")
                .or_else(|| p.strip_prefix("Q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        match (name.as_str(), zero) {
            (_, true) => refused.push(name),
            ("br", false) => br = true,
            ("gzip" | "x-gzip", false) => gzip = true,
            ("*", false) => {
                br = true;
                gzip = true;
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if br && !refused.iter().any(|r| r == "br") {
        out.push(Coding::Brotli);
    }
    if gzip && !refused.iter().any(|r| r == "gzip" || r == "x-gzip") {
        out.push(Coding::Gzip);
    }
    out
}

/// Whether a file of this name is worth compressing (text and wasm; not images).
pub fn compressible(path: &Path) -> bool {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    matches!(
        ext.as_deref(),
        Some(
            "html" | "htm" | "js" | "mjs" | "css" | "json" | "map" | "svg" | "wasm" | "txt" | "md"
        )
    )
}

/// What a copy was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
        }
    }
}

#[derive(Debug)]
struct Entry {
    stamp: Stamp,
    gzip: Option<Bytes>,
    brotli: Option<Bytes>,
}

#[derive(Debug, Default)]
struct State {
    files: HashMap<PathBuf, Entry>,
    /// Bytes of all copies.
    total: usize,
    /// Files being compressed now (by the start thread or a later job).
    busy: HashSet<PathBuf>,
}

/// The compressed copies of one web directory's files, by real path.
#[derive(Debug, Default)]
pub struct Compressed {
    state: Mutex<State>,
}

impl Compressed {
    /// An empty set, and a background thread that compresses the files under `dir` (its
    /// canonical path).
    pub fn start(dir: &Path) -> Arc<Compressed> {
        let c = Arc::new(Compressed::default());
        let files = walk(dir);
        {
            let mut s = c.lock();
            s.busy.extend(files.iter().cloned());
        }
        let worker = c.clone();
        let spawned = std::thread::Builder::new()
            .name("cairn web compress".into())
            .spawn(move || {
                // gzip for every file first: a browser that comes early already gets that.
                for f in &files {
                    worker.make(f, &[Coding::Gzip], false);
                }
                for f in &files {
                    worker.make(f, &[Coding::Brotli], true);
                }
            });
        if spawned.is_err() {
            c.lock().busy.clear();
        }
        c
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The best copy of `real` (the file's canonical path, `meta` its metadata now) among
    /// the `codings` the client accepts, if one is made from the file as it is. On a miss
    /// for a compressible file, starts making its copies in the background.
    pub fn get(
        self: &Arc<Self>,
        real: &Path,
        meta: &std::fs::Metadata,
        codings: &[Coding],
    ) -> Option<(Coding, Bytes)> {
        if codings.is_empty() || !compressible(real) || meta.len() > MAX_FILE {
            return None;
        }
        let stamp = Stamp::of(meta);
        let mut s = self.lock();
        if let Some(e) = s.files.get(real).filter(|e| e.stamp == stamp) {
            for c in codings {
                let copy = match c {
                    Coding::Brotli => &e.brotli,
                    Coding::Gzip => &e.gzip,
                };
                if let Some(b) = copy {
                    return Some((*c, b.clone()));
                }
            }
            return None;
        }
        if s.total < MAX_TOTAL && s.busy.insert(real.to_path_buf()) {
            let me = self.clone();
            let path = real.to_path_buf();
            let spawned = std::thread::Builder::new()
                .name("cairn web compress".into())
                .spawn(move || me.make(&path, &[Coding::Gzip, Coding::Brotli], true));
            if spawned.is_err() {
                s.busy.remove(real);
            }
        }
        None
    }

    /// Makes `codings` copies of `path` and records them; `last`: the file's job is done.
    fn make(&self, path: &Path, codings: &[Coding], last: bool) {
        let made = (|| {
            let meta = std::fs::metadata(path).ok()?;
            if !meta.is_file() || meta.len() > MAX_FILE {
                return None;
            }
            let stamp = Stamp::of(&meta);
            let raw = std::fs::read(path).ok()?;
            // Read what was stamped: a file rewritten meanwhile is compressed again later.
            if raw.len() as u64 != stamp.len {
                return None;
            }
            let copies: Vec<(Coding, Bytes)> = codings
                .iter()
                .filter_map(|c| encode(*c, &raw).ok().map(|b| (*c, b)))
                .collect();
            Some((stamp, copies))
        })();
        let mut s = self.lock();
        if let Some((stamp, copies)) = made {
            let added: usize = copies.iter().map(|(_, b)| b.len()).sum();
            let State { files, total, .. } = &mut *s;
            let entry = files.entry(path.to_path_buf()).or_insert(Entry {
                stamp,
                gzip: None,
                brotli: None,
            });
            if entry.stamp != stamp {
                *total -= entry.gzip.as_ref().map_or(0, Bytes::len)
                    + entry.brotli.as_ref().map_or(0, Bytes::len);
                *entry = Entry {
                    stamp,
                    gzip: None,
                    brotli: None,
                };
            }
            if *total + added <= MAX_TOTAL {
                for (c, b) in copies {
                    let slot = match c {
                        Coding::Brotli => &mut entry.brotli,
                        Coding::Gzip => &mut entry.gzip,
                    };
                    *total -= slot.as_ref().map_or(0, Bytes::len);
                    *total += b.len();
                    *slot = Some(b);
                }
            }
        }
        if last {
            s.busy.remove(path);
        }
    }
}

/// `raw` in `coding`, at its best compression (made once per file, served many times).
pub fn encode(coding: Coding, raw: &[u8]) -> std::io::Result<Bytes> {
    match coding {
        Coding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(raw)?;
            Ok(e.finish()?.into())
        }
        Coding::Brotli => {
            let mut out = Vec::new();
            {
                // Quality 11, a 4 MiB window (lgwin 22).
                let mut w = brotli::CompressorWriter::new(&mut out, 64 << 10, 11, 22);
                w.write_all(raw)?;
                w.flush()?;
            }
            Ok(out.into())
        }
    }
}

/// The compressible regular files under `dir` (canonical paths, inside `dir`), skipping
/// hidden names; at most [`MAX_WALK`] entries, [`MAX_DEPTH`] levels.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut seen = 0usize;
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in rd.flatten() {
            seen += 1;
            if seen > MAX_WALK {
                return out;
            }
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let Ok(real) = entry.path().canonicalize() else {
                continue;
            };
            if !real.starts_with(dir) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&real) else {
                continue;
            };
            if meta.is_dir() {
                if depth + 1 < MAX_DEPTH {
                    stack.push((real, depth + 1));
                }
            } else if meta.is_file() && meta.len() <= MAX_FILE && compressible(&real) {
                out.push(real);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_is_read_with_its_weights() {
        use Coding::*;
        assert_eq!(accepted("gzip, deflate, br, zstd"), vec![Brotli, Gzip]);
        assert_eq!(accepted("gzip"), vec![Gzip]);
        assert_eq!(accepted("BR;q=0.5 , x-gzip"), vec![Brotli, Gzip]);
        assert_eq!(accepted("br;q=0, gzip;q=1.0"), vec![Gzip]);
        assert_eq!(accepted("*"), vec![Brotli, Gzip]);
        assert_eq!(accepted("*, gzip;q=0"), vec![Brotli]);
        assert_eq!(accepted("identity"), vec![]);
        assert_eq!(accepted(""), vec![]);
        assert_eq!(accepted(";;,,q=,br;q=x"), vec![Brotli]);
    }

    proptest::proptest! {
        /// Any header text (it comes from the client): no panic, and what is accepted is
        /// a subset of the codings in the server's order.
        #[test]
        fn any_accept_encoding_text_is_read_without_failing(h in "\\PC{0,300}") {
            let got = accepted(&h);
            proptest::prop_assert!(
                got.is_empty()
                    || got == [Coding::Brotli]
                    || got == [Coding::Gzip]
                    || got == [Coding::Brotli, Coding::Gzip]
            );
        }

        /// Lists of codings with weights: a coding is accepted when it (or `*`) is listed
        /// with a weight above zero and it is never listed with weight zero.
        #[test]
        fn weights_decide_what_is_accepted(
            items in proptest::collection::vec(
                (0usize..7, proptest::option::of(0usize..4), 0usize..3),
                0..8,
            )
        ) {
            const NAMES: [&str; 7] = ["br", "gzip", "x-gzip", "*", "identity", "zstd", "BR"];
            const QS: [&str; 4] = ["0", "0.0", "0.5", "1"];
            let mut header = String::new();
            let mut listed: Vec<(String, bool)> = Vec::new();
            for (k, (n, q, space)) in items.iter().enumerate() {
                if k > 0 {
                    header.push(',');
                }
                header.push_str(&" ".repeat(*space));
                header.push_str(NAMES[*n]);
                if let Some(q) = q {
                    header.push_str(";q=");
                    header.push_str(QS[*q]);
                }
                let name = NAMES[*n].to_ascii_lowercase();
                let name = if name == "x-gzip" { "gzip".to_string() } else { name };
                listed.push((name, q.is_none_or(|q| q >= 2)));
            }
            let ok = |name: &str| {
                !listed.iter().any(|(n, pos)| n == name && !pos)
                    && listed.iter().any(|(n, pos)| (n == name || n == "*") && *pos)
            };
            let mut want = Vec::new();
            if ok("br") {
                want.push(Coding::Brotli);
            }
            if ok("gzip") {
                want.push(Coding::Gzip);
            }
            proptest::prop_assert_eq!(accepted(&header), want, "{}", header);
        }
    }

    #[test]
    fn copies_decode_to_the_file_and_follow_its_changes() {
        use std::io::Read as _;
        let dir = std::env::temp_dir().join(format!("cairn-compress-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("pkg")).unwrap();
        let dir = dir.canonicalize().unwrap();
        let file = dir.join("pkg/app.js");
        let text: String = (0..20_000)
            .map(|i| format!("let v{i} = {};\n", i % 7))
            .collect();
        std::fs::write(&file, &text).unwrap();
        std::fs::write(dir.join("photo.png"), b"\x89PNG").unwrap();
        let c = Compressed::start(&dir);
        let wait = |c: &Arc<Compressed>, want: &[u8]| {
            for _ in 0..600 {
                let meta = std::fs::metadata(&file).unwrap();
                if let Some((Coding::Brotli, b)) = c.get(&file, &meta, &[Coding::Brotli]) {
                    let mut out = Vec::new();
                    brotli::Decompressor::new(&b[..], 4096)
                        .read_to_end(&mut out)
                        .unwrap();
                    if out == want {
                        let (coding, g) = c.get(&file, &meta, &[Coding::Gzip]).unwrap();
                        assert_eq!(coding, Coding::Gzip);
                        let mut out = Vec::new();
                        flate2::read::GzDecoder::new(&g[..])
                            .read_to_end(&mut out)
                            .unwrap();
                        assert_eq!(out, want);
                        return b.len();
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            panic!("no compressed copy of the file as it is");
        };
        let small = wait(&c, text.as_bytes());
        assert!(small * 10 < text.len(), "{small} of {}", text.len());
        // Not compressed: images, and clients that accept no coding.
        let png = dir.join("photo.png");
        let meta = std::fs::metadata(&png).unwrap();
        assert!(
            c.get(&png, &meta, &[Coding::Brotli, Coding::Gzip])
                .is_none()
        );
        let meta = std::fs::metadata(&file).unwrap();
        assert!(c.get(&file, &meta, &[]).is_none());
        // The file changes: the old copy is no longer served; a new one is made.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let text2 = format!("{text}// changed\n");
        std::fs::write(&file, &text2).unwrap();
        let meta = std::fs::metadata(&file).unwrap();
        assert!(
            c.get(&file, &meta, &[Coding::Brotli, Coding::Gzip])
                .is_none()
        );
        wait(&c, text2.as_bytes());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
