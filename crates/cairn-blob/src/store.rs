//! Where blobs live: small ones in the log's redb database, large ones as files beside it.

// Files are closed (`drop`) before they are renamed; on wasm32 `std::fs::File` has no `Drop`
// (no file system there), which clippy flags.
#![cfg_attr(target_arch = "wasm32", allow(clippy::drop_non_drop))]

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cairn_log::{ChangesQuery, Log};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::BlobHash;
use crate::tree::{self, GROUP_BYTES, Source, Verified};

// Large blobs in the database, for a store without a directory (the browser).
#[path = "dbstore.rs"]
mod dbstore;
pub use dbstore::DB_CHECKPOINT_BYTES;

/// Complete blobs of at most [`GROUP_BYTES`]: hash → bytes.
const SMALL: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("blob.small");

/// Blobs up to this size are kept in the database (one chunk group: no outboard).
pub const SMALL_MAX: u64 = GROUP_BYTES;

/// Bytes read, hashed and written per step of an add (a multiple of the group size).
const ADD_BUFFER: usize = 4 << 20;

/// A partial download writes its bitfield (after syncing its bytes) every this many bytes.
const CHECKPOINT_BYTES: u64 = 4 << 20;

const BITS_MAGIC: &[u8; 8] = b"cairnbt1";

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    /// The blob directory could not be made or cleaned.
    #[error("blob directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

/// Why a read, a listing or a removal failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    /// A file failed.
    #[error("blob file: {0}")]
    Io(#[from] std::io::Error),
    /// Reading the log (for garbage collection) failed.
    #[error("reading the log: {0}")]
    Log(#[from] cairn_log::ReadError),
    /// A byte range outside the blob.
    #[error("range {start}..{end} is outside the blob's {size} bytes")]
    Range {
        /// Requested start.
        start: u64,
        /// Requested end.
        end: u64,
        /// The blob's size.
        size: u64,
    },
}

/// Why an add failed (nothing was stored).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    /// Reading the input or writing the files failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A blob over one chunk group needs file storage, and this store has none (the
    /// browser: OPFS storage is still to do).
    #[error("a blob of {size} bytes needs file storage, which this store does not have")]
    NoFileStorage {
        /// The blob's size.
        size: u64,
    },
}

/// Why writing a partial download failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PartialError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    /// A file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A large blob needs file storage, which this store does not have.
    #[error("a blob of {size} bytes needs file storage, which this store does not have")]
    NoFileStorage {
        /// The blob's size.
        size: u64,
    },
    /// A verified item that does not fit the blob (a bug of the caller).
    #[error("an item at byte {offset} does not fit a blob of {size} bytes")]
    Misplaced {
        /// Its offset.
        offset: u64,
        /// The blob's size.
        size: u64,
    },
}

fn db_err(e: impl Into<redb::Error>) -> redb::Error {
    e.into()
}

/// Whether a blob is whole or being downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobState {
    /// Whole and verified.
    Complete,
    /// A download in progress: `present` bytes verified and durable.
    Partial {
        /// Verified bytes kept.
        present: u64,
    },
}

/// One line of [`BlobStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// The blob.
    pub hash: BlobHash,
    /// Its size in bytes.
    pub size: u64,
    /// Complete or partial.
    pub state: BlobState,
}

/// What [`BlobStore::gc`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs (complete or partial) removed.
    pub removed: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Blobs kept because a node names them.
    pub kept: u64,
}

/// Content-addressed blob storage beside a log. Cheap to clone.
#[derive(Clone, Debug)]
pub struct BlobStore {
    log: Log,
    dir: Option<PathBuf>,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Reads `buf.len()` bytes at `offset` (one positioned read on Unix).
fn read_at(file: &File, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(not(unix))]
    {
        let mut f = file;
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(buf)
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Writes `buf` at `offset` (one positioned write on Unix).
fn write_at(file: &File, offset: u64, buf: &[u8]) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
    }
    #[cfg(not(unix))]
    {
        let mut f = file;
        f.seek(SeekFrom::Start(offset))?;
        f.write_all(buf)
    }
}

impl BlobStore {
    /// Blobs kept in `log`'s database (small ones) and, when `dir` is given, in files in
    /// `dir` (large ones; created if missing; leftovers of interrupted adds are removed).
    /// Without `dir` (the browser) large blobs are kept in the database too, in chunk
    /// groups (see `dbstore.rs`).
    pub fn open(log: &Log, dir: Option<&Path>) -> Result<BlobStore, OpenError> {
        let txn = log.database().begin_write().map_err(db_err)?;
        txn.open_table(SMALL).map_err(db_err)?;
        if dir.is_none() {
            dbstore::create_tables(&txn)?;
        }
        txn.commit().map_err(db_err)?;
        if let Some(d) = dir {
            let io = |source| OpenError::Dir {
                path: d.to_path_buf(),
                source,
            };
            std::fs::create_dir_all(d).map_err(io)?;
            for e in std::fs::read_dir(d).map_err(io)? {
                let e = e.map_err(io)?;
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with("tmp-") || name.ends_with(".bits.tmp") {
                    std::fs::remove_file(e.path()).map_err(io)?;
                }
            }
        }
        Ok(BlobStore {
            log: log.clone(),
            dir: dir.map(Path::to_path_buf),
        })
    }

    /// The log the blobs are kept beside.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The directory of large blobs, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    fn path(&self, h: &BlobHash, ext: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{}.{ext}", h.to_hex())))
    }

    fn tmp_path(&self, ext: &str) -> Option<PathBuf> {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        self.dir
            .as_ref()
            .map(|d| d.join(format!("tmp-{}-{n}.{ext}", std::process::id())))
    }

    /// Adds `bytes`; returns their hash. Adding a blob that is already stored is a no-op.
    pub fn add_bytes(&self, bytes: &[u8]) -> Result<BlobHash, AddError> {
        if bytes.len() as u64 <= SMALL_MAX {
            let h = BlobHash::of(bytes);
            self.put_small(&h, bytes)?;
            return Ok(h);
        }
        if self.dir.is_none() {
            return self.db_add_bytes(bytes);
        }
        self.add_reader(bytes)
    }

    fn put_small(&self, h: &BlobHash, bytes: &[u8]) -> Result<(), redb::Error> {
        let txn = self.log.database().begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(SMALL).map_err(db_err)?;
            if t.get(&h.0).map_err(db_err)?.is_none() {
                t.insert(&h.0, bytes).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)?;
        Ok(())
    }

    /// Adds everything `reader` gives, streaming (never the whole blob in memory): a large
    /// blob is copied to a temporary file in one pass, its chunk groups hashed as they go
    /// by; the outboard is then built from the groups' chaining values (its root is the
    /// hash), both files are fsynced and renamed to their names.
    pub fn add_reader(&self, mut reader: impl Read) -> Result<BlobHash, AddError> {
        let mut head = Vec::with_capacity(SMALL_MAX as usize + 1);
        (&mut reader).take(SMALL_MAX + 1).read_to_end(&mut head)?;
        if head.len() as u64 <= SMALL_MAX {
            let h = BlobHash::of(&head);
            self.put_small(&h, &head)?;
            return Ok(h);
        }
        if self.dir.is_none() {
            return self.db_add_reader(head, reader);
        }
        let (Some(tmp_data), Some(tmp_ob)) = (self.tmp_path("data"), self.tmp_path("obao")) else {
            return Err(AddError::NoFileStorage {
                size: head.len() as u64,
            });
        };
        let result = (|| -> std::io::Result<BlobHash> {
            let f = File::create(&tmp_data)?;
            // One pass: each buffer is written while its groups are hashed (two threads
            // for large buffers); the tree above the groups is built from their chaining
            // values at the end, so the data is never read back.
            let mut buf = vec![0u8; ADD_BUFFER];
            buf[..head.len()].copy_from_slice(&head);
            let mut filled = head.len();
            let mut size = 0u64;
            let mut cvs = Vec::new();
            loop {
                filled += read_full(&mut reader, &mut buf[filled..])?;
                if filled == 0 {
                    break;
                }
                let chunk = &buf[..filled];
                let first_group = size / GROUP_BYTES;
                std::thread::scope(|s| {
                    // Written on a thread of its own while this one hashes (inline where
                    // threads cannot be made).
                    let w = std::thread::Builder::new().spawn_scoped(s, || (&f).write_all(chunk));
                    tree::group_cvs(first_group, chunk, &mut cvs);
                    match w {
                        Ok(w) => w
                            .join()
                            .unwrap_or_else(|_| Err(std::io::Error::other("the writer panicked"))),
                        Err(_) => (&f).write_all(chunk),
                    }
                })?;
                size += filled as u64;
                if filled < buf.len() {
                    break;
                }
                filled = 0;
            }
            let mut ob = Vec::new();
            let h = tree::outboard_from_cvs(&cvs, &mut ob);
            let mut o = File::create(&tmp_ob)?;
            o.write_all(&ob)?;
            f.sync_data()?;
            o.sync_data()?;
            Ok(h)
        })();
        let h = match result {
            Ok(h) => h,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp_data);
                let _ = std::fs::remove_file(&tmp_ob);
                return Err(e.into());
            }
        };
        if self.has(&h).unwrap_or(false) {
            let _ = std::fs::remove_file(&tmp_data);
            let _ = std::fs::remove_file(&tmp_ob);
            return Ok(h);
        }
        self.install(&h, &tmp_data, &tmp_ob)?;
        Ok(h)
    }

    /// Renames a synced data file and outboard to a complete blob: the outboard first, so
    /// that a `.data` file (what makes a blob complete) always has its outboard.
    fn install(&self, h: &BlobHash, data: &Path, ob: &Path) -> std::io::Result<()> {
        let (Some(d), Some(o), Some(dir)) = (
            self.path(h, "data"),
            self.path(h, "obao"),
            self.dir.as_ref(),
        ) else {
            return Err(std::io::ErrorKind::Unsupported.into());
        };
        std::fs::rename(ob, &o)?;
        std::fs::rename(data, &d)?;
        sync_dir(dir)
    }

    fn small(&self, h: &BlobHash) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.log.database().begin_read().map_err(db_err)?;
        let t = txn.open_table(SMALL).map_err(db_err)?;
        Ok(t.get(&h.0).map_err(db_err)?.map(|v| v.value().to_vec()))
    }

    /// Whether the whole blob is stored.
    pub fn has(&self, h: &BlobHash) -> Result<bool, StoreError> {
        Ok(self.size(h)?.is_some())
    }

    /// The size of a complete blob.
    pub fn size(&self, h: &BlobHash) -> Result<Option<u64>, StoreError> {
        if let Some(b) = self.small(h)? {
            return Ok(Some(b.len() as u64));
        }
        if self.dir.is_none() {
            return Ok(self.db_size(h)?);
        }
        let Some(p) = self.path(h, "data") else {
            return Ok(None);
        };
        match std::fs::metadata(&p) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A streaming, seekable reader of a complete blob.
    pub fn reader(&self, h: &BlobHash) -> Result<Option<BlobReader>, StoreError> {
        if let Some(b) = self.small(h)? {
            let len = b.len() as u64;
            return Ok(Some(BlobReader {
                inner: Inner::Small(std::io::Cursor::new(b)),
                len,
            }));
        }
        if self.dir.is_none() {
            return Ok(self.db_size(h)?.map(|len| BlobReader {
                inner: Inner::Db(dbstore::DbReader {
                    store: self.clone(),
                    hash: *h,
                    len,
                    pos: 0,
                    cached: None,
                }),
                len,
            }));
        }
        let Some(p) = self.path(h, "data") else {
            return Ok(None);
        };
        match File::open(&p) {
            Ok(f) => {
                let len = f.metadata()?.len();
                Ok(Some(BlobReader {
                    inner: Inner::File(std::io::BufReader::with_capacity(64 << 10, f)),
                    len,
                }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A reader of bytes `range` of a complete blob (`Range` error if it is outside).
    pub fn read_range(
        &self,
        h: &BlobHash,
        range: Range<u64>,
    ) -> Result<Option<std::io::Take<BlobReader>>, StoreError> {
        let Some(mut r) = self.reader(h)? else {
            return Ok(None);
        };
        if range.start > range.end || range.end > r.len {
            return Err(StoreError::Range {
                start: range.start,
                end: range.end,
                size: r.len,
            });
        }
        r.seek(SeekFrom::Start(range.start))?;
        Ok(Some(r.take(range.end - range.start)))
    }

    /// What a peer reads to answer a request for a complete blob: its size and storage.
    pub fn source(&self, h: &BlobHash) -> Result<Option<(u64, StoredSource)>, StoreError> {
        if let Some(b) = self.small(h)? {
            return Ok(Some((b.len() as u64, StoredSource::Small(b))));
        }
        if self.dir.is_none() {
            return Ok(self.db_size(h)?.map(|size| {
                (
                    size,
                    StoredSource::Db {
                        store: self.clone(),
                        hash: *h,
                    },
                )
            }));
        }
        let (Some(d), Some(o)) = (self.path(h, "data"), self.path(h, "obao")) else {
            return Ok(None);
        };
        let data = match File::open(&d) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let size = data.metadata()?.len();
        let ob = File::open(&o)?;
        Ok(Some((size, StoredSource::File { data, ob })))
    }

    /// Every blob stored, complete or partial, in hash order.
    pub fn list(&self) -> Result<Vec<BlobInfo>, StoreError> {
        let mut out = Vec::new();
        {
            let txn = self.log.database().begin_read().map_err(db_err)?;
            let t = txn.open_table(SMALL).map_err(db_err)?;
            for e in t.iter().map_err(db_err)? {
                let (k, v) = e.map_err(db_err)?;
                out.push(BlobInfo {
                    hash: BlobHash(*k.value()),
                    size: v.value().len() as u64,
                    state: BlobState::Complete,
                });
            }
        }
        if self.dir.is_none() {
            self.db_list(&mut out)?;
        }
        if let Some(dir) = &self.dir {
            for e in std::fs::read_dir(dir)? {
                let e = e?;
                let name = e.file_name();
                let name = name.to_string_lossy();
                if let Some(hex) = name.strip_suffix(".data")
                    && let Ok(h) = hex.parse::<BlobHash>()
                {
                    out.push(BlobInfo {
                        hash: h,
                        size: e.metadata()?.len(),
                        state: BlobState::Complete,
                    });
                } else if let Some(hex) = name.strip_suffix(".part.bits")
                    && let Ok(h) = hex.parse::<BlobHash>()
                    && let Ok(Some((size, bits))) = read_bits(&e.path())
                {
                    out.push(BlobInfo {
                        hash: h,
                        size,
                        state: BlobState::Partial {
                            present: present_bytes(size, &bits),
                        },
                    });
                }
            }
        }
        out.sort_by_key(|a| a.hash);
        Ok(out)
    }

    /// Bytes of all blobs stored: complete ones and partial downloads at their full size
    /// (what they hold once complete) — what a fetch policy's total cap counts.
    pub fn total_size(&self) -> Result<u64, StoreError> {
        Ok(self
            .list()?
            .iter()
            .map(|b| b.size)
            .fold(0u64, u64::saturating_add))
    }

    /// Removes a blob, complete or partial. Returns whether anything was removed.
    pub fn remove(&self, h: &BlobHash) -> Result<bool, StoreError> {
        let mut removed = false;
        let txn = self.log.database().begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(SMALL).map_err(db_err)?;
            removed |= t.remove(&h.0).map_err(db_err)?.is_some();
        }
        txn.commit().map_err(db_err)?;
        if self.dir.is_none() {
            removed |= self.db_remove(h)?;
        }
        // The data file first: without it the blob is not complete any more.
        for ext in ["data", "obao", "part.bits", "part", "part.obao"] {
            if let Some(p) = self.path(h, ext) {
                match std::fs::remove_file(&p) {
                    Ok(()) => removed = true,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(removed)
    }

    /// Removes every blob (complete or partial) that no node of the log names (see
    /// [`referenced_blobs`]).
    pub fn gc(&self) -> Result<GcReport, StoreError> {
        let referenced = referenced_blobs(&self.log)?;
        let mut report = GcReport::default();
        for b in self.list()? {
            if referenced.contains(&b.hash) {
                report.kept += 1;
            } else if self.remove(&b.hash)? {
                report.removed += 1;
                report.bytes += match b.state {
                    BlobState::Complete => b.size,
                    BlobState::Partial { present } => present,
                };
            }
        }
        Ok(report)
    }

    /// The size recorded by a partial download of `h` kept from an earlier attempt.
    pub fn partial_size(&self, h: &BlobHash) -> Option<u64> {
        if self.dir.is_none() {
            return self
                .db_meta(h)
                .ok()
                .flatten()
                .filter(|m| !m.complete)
                .map(|m| m.size);
        }
        let p = self.path(h, "part.bits")?;
        read_bits(&p).ok().flatten().map(|(s, _)| s)
    }

    /// Starts or resumes the download of blob `h` of `size` bytes (as its sender claims:
    /// the last group, always part of a response, proves it). A partial download kept
    /// from an earlier attempt with another size is dropped and started over.
    pub fn partial(&self, h: &BlobHash, size: u64) -> Result<Partial, PartialError> {
        if size <= SMALL_MAX {
            return Ok(Partial {
                store: self.clone(),
                hash: *h,
                size,
                bits: vec![0u8; 1],
                kind: PartialKind::Small(vec![0u8; size as usize]),
                unsynced: 0,
            });
        }
        if self.dir.is_none() {
            let (bits, db) = self.db_partial(h, size)?;
            return Ok(Partial {
                store: self.clone(),
                hash: *h,
                size,
                bits,
                kind: PartialKind::Db(db),
                unsynced: 0,
            });
        }
        let (Some(dp), Some(op), Some(bp)) = (
            self.path(h, "part"),
            self.path(h, "part.obao"),
            self.path(h, "part.bits"),
        ) else {
            return Err(PartialError::NoFileStorage { size });
        };
        let groups = tree::groups(size);
        let mut bits = vec![0u8; groups.div_ceil(8) as usize];
        match read_bits(&bp)? {
            Some((s, b)) if s == size && b.len() == bits.len() => bits = b,
            _ => {
                // Nothing durable to keep (or another size): start over.
                let _ = std::fs::remove_file(&bp);
                let _ = std::fs::remove_file(&dp);
                let _ = std::fs::remove_file(&op);
            }
        }
        // A crash between the two renames of `finish` leaves the outboard renamed already.
        if let Some(o) = self.path(h, "obao")
            && !op.exists()
            && o.exists()
        {
            std::fs::rename(&o, &op)?;
        }
        let open = |p: &Path| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(p)
        };
        let data = open(&dp)?;
        data.set_len(size)?;
        let ob = open(&op)?;
        ob.set_len(tree::outboard_size(size))?;
        Ok(Partial {
            store: self.clone(),
            hash: *h,
            size,
            bits,
            kind: PartialKind::File {
                data,
                ob,
                data_path: dp,
                ob_path: op,
                bits_path: bp,
            },
            unsynced: 0,
        })
    }
}

fn read_bits(p: &Path) -> std::io::Result<Option<(u64, Vec<u8>)>> {
    let bytes = match std::fs::read(p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if bytes.len() < 16 || &bytes[..8] != BITS_MAGIC {
        return Ok(None);
    }
    let mut s = [0u8; 8];
    s.copy_from_slice(&bytes[8..16]);
    let size = u64::from_le_bytes(s);
    let bits = bytes[16..].to_vec();
    if bits.len() as u64 != tree::groups(size).div_ceil(8) {
        return Ok(None);
    }
    Ok(Some((size, bits)))
}

fn bit(bits: &[u8], g: u64) -> bool {
    bits.get((g / 8) as usize)
        .is_some_and(|b| b & (1 << (g % 8)) != 0)
}

fn group_len(size: u64, g: u64) -> u64 {
    (size - (g * GROUP_BYTES).min(size)).min(GROUP_BYTES)
}

fn present_bytes(size: u64, bits: &[u8]) -> u64 {
    (0..tree::groups(size))
        .filter(|&g| bit(bits, g))
        .map(|g| group_len(size, g))
        .sum()
}

/// Names of blobs in a node's value: every `blob:` followed by 64 hex digits (lower or upper
/// case) — in a kv document's field, in a wiki page's Markdown (`![x](blob:…)`), anywhere.
pub fn blob_refs(value: &[u8]) -> impl Iterator<Item = BlobHash> + '_ {
    value
        .windows(5)
        .enumerate()
        .filter(|(_, w)| *w == b"blob:")
        .filter_map(move |(i, _)| {
            let hex = value.get(i + 5..i + 5 + 64)?;
            std::str::from_utf8(hex).ok()?.parse().ok()
        })
}

/// Every blob named by a node of `log` (see `docs/FORMAT.md`, "Blob references").
pub fn referenced_blobs(log: &Log) -> Result<HashSet<BlobHash>, cairn_log::ReadError> {
    let mut out = HashSet::new();
    for e in log.changes(ChangesQuery::all()) {
        out.extend(blob_refs(e?.node.value()));
    }
    Ok(out)
}

/// A complete blob opened for sending.
#[derive(Debug)]
pub enum StoredSource {
    /// A small blob's bytes (no outboard: one group).
    Small(Vec<u8>),
    /// A large blob's files.
    File {
        /// The data.
        data: File,
        /// The pre-order outboard.
        ob: File,
    },
    /// A large blob kept in the database (a store without a directory).
    Db {
        /// The store.
        store: BlobStore,
        /// The blob.
        hash: BlobHash,
    },
}

impl Source for StoredSource {
    fn read_data(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        match self {
            StoredSource::Small(b) => {
                let s = offset as usize;
                let src = b
                    .get(s..s + buf.len())
                    .ok_or(std::io::ErrorKind::UnexpectedEof)?;
                buf.copy_from_slice(src);
                Ok(())
            }
            StoredSource::File { data, .. } => read_at(data, offset, buf),
            StoredSource::Db { store, hash } => store.db_read(hash, offset, buf),
        }
    }
    fn read_outboard(&self, offset: u64, buf: &mut [u8; 64]) -> std::io::Result<()> {
        match self {
            StoredSource::Small(_) => Err(std::io::ErrorKind::UnexpectedEof.into()),
            StoredSource::File { ob, .. } => read_at(ob, offset, buf),
            StoredSource::Db { store, hash } => store.db_read_outboard(hash, offset, buf),
        }
    }
}

#[derive(Debug)]
enum Inner {
    Small(std::io::Cursor<Vec<u8>>),
    File(std::io::BufReader<File>),
    Db(dbstore::DbReader),
}

/// A streaming, seekable reader of a stored blob.
#[derive(Debug)]
pub struct BlobReader {
    inner: Inner,
    len: u64,
}

impl BlobReader {
    /// The blob's size.
    pub fn len(&self) -> u64 {
        self.len
    }
    /// Whether the blob is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match &mut self.inner {
            Inner::Small(c) => c.read(buf),
            Inner::File(f) => f.read(buf),
            Inner::Db(d) => d.read(buf),
        }
    }
}

impl Seek for BlobReader {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        match &mut self.inner {
            Inner::Small(c) => c.seek(pos),
            Inner::File(f) => f.seek(pos),
            Inner::Db(d) => d.seek(pos),
        }
    }
}

#[derive(Debug)]
enum PartialKind {
    Small(Vec<u8>),
    File {
        data: File,
        ob: File,
        data_path: PathBuf,
        ob_path: PathBuf,
        bits_path: PathBuf,
    },
    Db(dbstore::DbPartial),
}

/// A download in progress: verified items go in with [`Partial::write`]; the bitfield of
/// verified groups is written (after the bytes it covers are synced) every 4 MiB and by
/// [`Partial::checkpoint`], so what it claims survives `kill -9`.
#[derive(Debug)]
pub struct Partial {
    store: BlobStore,
    hash: BlobHash,
    size: u64,
    bits: Vec<u8>,
    kind: PartialKind,
    unsynced: u64,
}

impl Partial {
    /// The blob.
    pub fn hash(&self) -> BlobHash {
        self.hash
    }

    /// Its size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Verified bytes present.
    pub fn present(&self) -> u64 {
        present_bytes(self.size, &self.bits)
    }

    /// Whether every group is present.
    pub fn is_complete(&self) -> bool {
        (0..tree::groups(self.size)).all(|g| bit(&self.bits, g))
    }

    /// The groups still missing, as ranges of group numbers (what to request).
    pub fn missing(&self) -> Vec<Range<u64>> {
        let mut out: Vec<Range<u64>> = Vec::new();
        for g in 0..tree::groups(self.size) {
            if bit(&self.bits, g) {
                continue;
            }
            match out.last_mut() {
                Some(r) if r.end == g => r.end = g + 1,
                _ => out.push(g..g + 1),
            }
        }
        out
    }

    /// Stores a verified item (from a [`ResponseVerifier`](crate::tree::ResponseVerifier)
    /// of this blob).
    pub fn write(&mut self, item: &Verified) -> Result<(), PartialError> {
        let misplaced = |offset| PartialError::Misplaced {
            offset,
            size: self.size,
        };
        match (item, &mut self.kind) {
            (Verified::Parent { .. }, PartialKind::Small(_)) => {}
            (
                Verified::Parent {
                    outboard_offset: Some(off),
                    pair,
                },
                PartialKind::File { ob, .. },
            ) => {
                if off + 64 > tree::outboard_size(self.size) {
                    return Err(misplaced(*off));
                }
                write_at(ob, *off, pair)?;
            }
            (Verified::Parent { .. }, PartialKind::File { .. }) => {}
            (
                Verified::Parent {
                    outboard_offset: Some(off),
                    pair,
                },
                PartialKind::Db(db),
            ) => {
                if !off.is_multiple_of(64) || off + 64 > tree::outboard_size(self.size) {
                    return Err(misplaced(*off));
                }
                db.pairs.push((off / 64, *pair));
            }
            (Verified::Parent { .. }, PartialKind::Db(_)) => {}
            (Verified::Group { offset, data }, kind) => {
                let g = offset / GROUP_BYTES;
                if offset % GROUP_BYTES != 0
                    || g >= tree::groups(self.size)
                    || data.len() as u64 != group_len(self.size, g)
                {
                    return Err(misplaced(*offset));
                }
                match kind {
                    PartialKind::Small(buf) => buf.copy_from_slice(data),
                    PartialKind::File { data: f, .. } => write_at(f, *offset, data)?,
                    PartialKind::Db(db) => db.groups.push((g, data.clone())),
                }
                self.bits[(g / 8) as usize] |= 1 << (g % 8);
                self.unsynced += data.len() as u64;
                let every = match self.kind {
                    PartialKind::Db(_) => DB_CHECKPOINT_BYTES,
                    _ => CHECKPOINT_BYTES,
                };
                if self.unsynced >= every {
                    self.checkpoint()?;
                }
            }
        }
        Ok(())
    }

    /// Makes the groups written so far durable: syncs the data and outboard, then writes
    /// the bitfield under a temporary name, syncs it and renames it.
    pub fn checkpoint(&mut self) -> Result<(), PartialError> {
        self.unsynced = 0;
        if let PartialKind::Db(db) = &mut self.kind {
            self.store
                .db_commit(&self.hash, self.size, &self.bits, db, false)?;
            return Ok(());
        }
        let PartialKind::File {
            data,
            ob,
            bits_path,
            ..
        } = &self.kind
        else {
            return Ok(());
        };
        data.sync_data()?;
        ob.sync_data()?;
        let tmp = bits_path.with_extension("bits.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(BITS_MAGIC)?;
        f.write_all(&self.size.to_le_bytes())?;
        f.write_all(&self.bits)?;
        f.sync_data()?;
        drop(f);
        std::fs::rename(&tmp, bits_path)?;
        if let Some(dir) = bits_path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }

    /// Turns a complete download into a stored blob (`Ok(false)` and nothing done while
    /// groups are missing).
    pub fn finish(mut self) -> Result<bool, PartialError> {
        if !self.is_complete() {
            self.checkpoint()?;
            return Ok(false);
        }
        match &mut self.kind {
            PartialKind::Small(buf) => self.store.put_small(&self.hash, buf)?,
            PartialKind::Db(db) => self
                .store
                .db_commit(&self.hash, self.size, &self.bits, db, true)?,
            PartialKind::File {
                data,
                ob,
                data_path,
                ob_path,
                bits_path,
            } => {
                data.sync_data()?;
                ob.sync_data()?;
                self.store.install(&self.hash, data_path, ob_path)?;
                match std::fs::remove_file(bits_path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                    _ => {}
                }
            }
        }
        Ok(true)
    }
}
