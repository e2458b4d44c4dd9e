//! `cairn blob`: add, get (from a peer when missing, resuming a partial download), list and
//! collect the blobs kept beside the log (`DATA/blobs/` and the log's database).

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cairn_blob::proto::{BlobPeer, Outcome, Swarm};
use cairn_blob::{BlobHash, BlobState, BlobStore};
use cairn_log::Log;
use cairn_sync::SessionOptions;
use clap::Subcommand;

use crate::store;

/// The blob directory of a store.
pub fn dir(data: &Path) -> PathBuf {
    data.join("blobs")
}

/// Opens the blobs of the store at `data` beside its open `log`.
pub fn open(data: &Path, log: &Log) -> Result<BlobStore> {
    BlobStore::open(log, Some(&dir(data))).context("opening the blob store")
}

/// `cairn blob …`.
#[derive(Subcommand)]
pub enum BlobCommand {
    /// Add a file (or standard input: `-`) as a blob; print its hash.
    Add {
        /// The file.
        file: PathBuf,
    },
    /// Write a blob to standard output or a file, fetching it from a peer (`--connect`)
    /// when it is missing or partial (a partial download resumes where it stopped). With
    /// several `--connect`, all are asked at once, each for other 4 MiB parts; one that
    /// fails, lies (its bytes do not verify), does not have the blob or stays silent past
    /// `--timeout` is dropped and the others fetch its part. While `cairn serve` holds the
    /// store the command runs in it and `--connect` does not fetch (a missing blob is an
    /// error).
    Get {
        /// The blob's hash (64 hex digits, or `blob:<hex>`).
        hash: BlobHash,
        /// Write it to this file instead of standard output.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// Fetch from the `cairn serve` at tcp://HOST:PORT or ws://HOST:PORT (the log is
        /// synced on the same connection, as `cairn sync --connect` does); repeat it to
        /// fetch from several peers at once.
        #[arg(long, value_name = "URL")]
        connect: Vec<String>,
        /// Seconds the peer may stay silent (before the sync completes, and while a blob
        /// is awaited).
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        timeout: u64,
    },
    /// List the blobs: hash, size, and complete or partial (bytes present), as JSON lines.
    Ls,
    /// Remove every blob that no node of the log names (`blob:<hex>` in a value).
    Gc,
}

/// Why a file given to `cairn blob` cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// A running server takes absolute paths only (its working directory is not the
    /// client's).
    #[error("{0}: not an absolute path")]
    NotAbsolute(PathBuf),
    /// The file cannot be read (missing, or not allowed).
    #[error("{path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a regular file (a directory, a device, a socket …).
    #[error("{0}: not a regular file")]
    NotAFile(PathBuf),
}

/// Adds the regular file `file` as a blob (streamed, never whole in memory).
pub fn add_file(blobs: &BlobStore, file: &Path) -> Result<BlobHash> {
    let unreadable = |source| FileError::Unreadable {
        path: file.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(file).map_err(unreadable)?;
    if !meta.is_file() {
        return Err(FileError::NotAFile(file.to_path_buf()).into());
    }
    let f = std::fs::File::open(file).map_err(unreadable)?;
    Ok(blobs.add_reader(f)?)
}

/// Writes the blob `hash` (it must be here) to `path`: to a temporary file beside it,
/// fsynced, then renamed.
pub fn write_file(blobs: &BlobStore, hash: &BlobHash, path: &Path) -> Result<()> {
    let mut r = blobs
        .reader(hash)?
        .with_context(|| format!("blob {hash} is not here"))?;
    let tmp = path.with_extension("cairn-tmp");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    std::io::copy(&mut r, &mut f)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// `cairn blob ls`: one JSON line a blob.
pub fn list(blobs: &BlobStore, out: &mut dyn Write) -> Result<()> {
    for b in blobs.list()? {
        let line = match b.state {
            BlobState::Complete => serde_json::json!({
                "hash": b.hash.to_hex(), "size": b.size, "complete": true,
            }),
            BlobState::Partial { present } => serde_json::json!({
                "hash": b.hash.to_hex(), "size": b.size, "complete": false,
                "present": present,
            }),
        };
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// `cairn blob gc`: one JSON line.
pub fn gc(blobs: &BlobStore, out: &mut dyn Write) -> Result<()> {
    let r = blobs.gc()?;
    writeln!(
        out,
        "{}",
        serde_json::json!({"removed": r.removed, "bytes": r.bytes, "kept": r.kept})
    )?;
    Ok(())
}

/// Runs a `cairn blob` command on the store at `data`, which it opens itself.
pub fn run(data: &Path, cmd: BlobCommand, out: &mut dyn Write) -> Result<()> {
    match cmd {
        BlobCommand::Add { file } => {
            let log = store::open_reader(data)?;
            let blobs = open(data, &log)?;
            let h = if file.as_os_str() == "-" {
                blobs.add_reader(std::io::stdin().lock())?
            } else {
                add_file(&blobs, &file)?
            };
            writeln!(out, "{h}")?;
        }
        BlobCommand::Get {
            hash,
            output,
            connect,
            timeout,
        } => {
            let log = store::open_writer(data)?;
            let blobs = open(data, &log)?;
            if !blobs.has(&hash)? {
                if connect.is_empty() {
                    bail!("blob {hash} is not here (fetch it with --connect URL)");
                }
                fetch_any(
                    data,
                    &log,
                    &blobs,
                    hash,
                    &connect,
                    Duration::from_secs(timeout),
                )?;
            }
            match output {
                Some(path) => write_file(&blobs, &hash, &path)?,
                None => {
                    let mut r = blobs
                        .reader(&hash)?
                        .with_context(|| format!("blob {hash} is not here"))?;
                    std::io::copy(&mut r, out)?;
                }
            }
        }
        BlobCommand::Ls => list(&open(data, &store::open_reader(data)?)?, out)?,
        BlobCommand::Gc => gc(&open(data, &store::open_reader(data)?)?, out)?,
    }
    Ok(())
}

/// Runs a `cairn blob` command sent to a running server on its `blobs`. The client sent
/// absolute paths (the server reads and writes the files itself: the control socket is
/// its owner's, on this machine): `add FILE`, and `get HASH -o FILE` (the client gives
/// a file for standard output too). A missing blob is not fetched here (`--connect`
/// fetches only on the direct path).
pub fn run_served(blobs: &BlobStore, cmd: BlobCommand, out: &mut dyn Write) -> Result<()> {
    let absolute = |p: &Path| -> Result<()> {
        if p.is_absolute() {
            Ok(())
        } else {
            Err(FileError::NotAbsolute(p.to_path_buf()).into())
        }
    };
    match cmd {
        BlobCommand::Add { file } => {
            absolute(&file)?;
            writeln!(out, "{}", add_file(blobs, &file)?)?;
        }
        BlobCommand::Get {
            hash,
            output,
            connect,
            ..
        } => {
            let path = output.context("a running server writes a blob to a file only (-o)")?;
            absolute(&path)?;
            if !blobs.has(&hash)? {
                if connect.is_empty() {
                    bail!("blob {hash} is not here (fetch it with --connect URL)");
                }
                bail!(
                    "blob {hash} is not here, and a running `cairn serve` does not fetch \
                     with --connect yet (stop it, or fetch with `cairn blob get` on another store)"
                );
            }
            write_file(blobs, &hash, &path)?;
        }
        BlobCommand::Ls => list(blobs, out)?,
        BlobCommand::Gc => gc(blobs, out)?,
    }
    Ok(())
}

/// Fetches `hash` from `urls`: from one peer as [`fetch`] does, from several at once as a
/// [`Swarm`] (each connection asks for the next 4 MiB of groups nobody else is fetching; a
/// peer that fails, lies — its bytes do not verify — or stays silent is dropped with a
/// warning and the others fetch its groups). The log is synced on every connection as far
/// as it got when the blob is complete (the sessions are then closed, and any still
/// running 2 s later is dropped).
pub fn fetch_any(
    data: &Path,
    log: &Log,
    blobs: &BlobStore,
    hash: BlobHash,
    urls: &[String],
    idle: Duration,
) -> Result<()> {
    if let [url] = urls {
        return fetch(data, log, blobs, hash, url, idle);
    }
    let me = store::identity(data)?;
    let swarm = Swarm::new(blobs.clone(), hash);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the network runtime")?;
    type Run<'a> = Pin<Box<dyn Future<Output = Result<()>> + 'a>>;
    let mut runs: Vec<Option<Run<'_>>> = Vec::new();
    for url in urls {
        let mut peer = BlobPeer::new(blobs.clone(), false);
        peer.fetch_in(&swarm);
        let (peer, ext) = peer.shared();
        let (me, swarm) = (&me, swarm.clone());
        runs.push(Some(Box::pin(async move {
            let stop = {
                let swarm = swarm.clone();
                async move {
                    while swarm.outcome().is_none() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            };
            let opts = SessionOptions::default();
            let synced =
                crate::net::sync_with_extension(log, me, url, opts, idle, stop, Some(ext)).await;
            let outcome = first_outcome(&peer);
            match (outcome, synced) {
                (Some(Outcome::Stored { .. }), _) => Ok(()),
                (Some(Outcome::Failed(why)), Err(e)) => bail!("{why} ({e:#})"),
                (Some(o), _) => bail!("{o:?}"),
                (None, Err(e)) => Err(e),
                (None, Ok(_)) => bail!("no answer"),
            }
        })));
    }
    let mut errors = Vec::new();
    let mut grace: Option<Pin<Box<tokio::time::Sleep>>> = None;
    rt.block_on(std::future::poll_fn(|cx| {
        for (slot, url) in runs.iter_mut().zip(urls) {
            if let Some(run) = slot
                && let Poll::Ready(r) = run.as_mut().poll(cx)
            {
                *slot = None;
                if let Err(e) = r {
                    eprintln!("cairn: {url}: {e:#}; dropping {url}");
                    errors.push(format!("{url}: {e:#}"));
                }
            }
        }
        if runs.iter().all(Option::is_none) {
            return Poll::Ready(());
        }
        if swarm.outcome().is_some() {
            let g =
                grace.get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_secs(2))));
            if g.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    }));
    drop(runs);
    match swarm.outcome() {
        Some(Outcome::Stored { size, received }) => {
            eprintln!(
                "cairn: blob {hash}: {size} bytes ({received} received from {} peers)",
                urls.len()
            );
            Ok(())
        }
        _ => bail!("no peer delivered blob {hash}: {}", errors.join("; ")),
    }
}

/// Fetches `hash` from the `cairn serve` at `url` on the replication connection (the log is
/// synced on it too); the outcome is an error unless the blob is then stored.
pub fn fetch(
    data: &Path,
    log: &Log,
    blobs: &BlobStore,
    hash: BlobHash,
    url: &str,
    idle: Duration,
) -> Result<()> {
    let me = store::identity(data)?;
    let mut peer = BlobPeer::new(blobs.clone(), false);
    peer.fetch(hash);
    let (peer, ext) = peer.shared();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the network runtime")?;
    let opts = SessionOptions::default();
    let synced = rt.block_on(crate::net::sync_with_extension(
        log,
        &me,
        url,
        opts,
        idle,
        std::future::pending(),
        Some(ext),
    ));
    let outcome = first_outcome(&peer);
    match (outcome, synced) {
        (Some(Outcome::Stored { size, received }), _) => {
            eprintln!("cairn: blob {hash}: {size} bytes ({received} received from {url})");
            Ok(())
        }
        (Some(Outcome::NotFound), _) => bail!("{url} does not have blob {hash}"),
        (Some(Outcome::Unsupported), _) => bail!("{url} does not serve blobs"),
        (Some(Outcome::Failed(why)), Err(e)) => {
            bail!("fetching blob {hash} from {url} failed: {why} ({e:#})")
        }
        (Some(Outcome::Failed(why)), Ok(_)) => bail!("fetching blob {hash} from {url}: {why}"),
        (None, Err(e)) => Err(e.context(format!("fetching blob {hash} from {url}"))),
        (None, Ok(_)) => bail!("fetching blob {hash} from {url}: no answer"),
    }
}

/// How the first fetch of `peer` ended, if it has.
fn first_outcome(peer: &std::sync::Mutex<BlobPeer>) -> Option<Outcome> {
    peer.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .outcomes()
        .first()
        .map(|(_, o)| o.clone())
}
