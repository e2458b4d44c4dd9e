//! The local control socket of `cairn serve`: `DATA/cairn.sock`.
//!
//! While `cairn serve` holds the store, a `cairn wiki`/`kv`/`log`/`blob` command cannot open it
//! (redb allows one process). It sends its request here instead and the server runs it
//! against its open store, with the same command code as the direct path (the binary
//! registers it with [`set_handler`]): the command writes into buffers, and the client
//! prints them and exits with the status.
//!
//! The socket is a Unix socket created `0600` in the data directory (bound under a private
//! name, restricted, then renamed into place): only the store's owner can connect. A socket file left by a killed server (nothing answers
//! it) is replaced; one a live server answers is never touched, and it is removed when the
//! server exits cleanly (only if it is still the one this server made).
//!
//! Wire format, each way: a 4-byte big-endian length, then that many bytes of JSON: a
//! [`Request`] (at most [`MAX_REQUEST`] bytes: the command line and the input it reads, the
//! standard input of `wiki edit` or the files of `wiki import`) and a [`Reply`]. The server
//! gives a client [`REQUEST_TIMEOUT`] to send its request, runs at most [`MAX_RUNNING`]
//! requests at once (more are refused as busy), and refuses by a typed [`Refusal`] what it
//! must not run (`init`, `sync`, `serve`, endless `--live` reads, input over the bound).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cairn_blob::BlobStore;
use cairn_kv::Kv;
use cairn_kv::cairn_view::IndexerOptions;
use cairn_log::Log;
use cairn_wiki::Wiki;
use serde::{Deserialize, Serialize};

/// The socket's file name in the data directory.
pub const SOCKET: &str = "cairn.sock";
/// Largest request, in bytes of JSON (its input included).
pub const MAX_REQUEST: usize = 16 << 20;
/// Largest reply a client accepts.
pub const MAX_REPLY: usize = 256 << 20;
/// How long the server waits for a client's request, and for it to take the reply.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client waits for the reply to its request (the command runs meanwhile).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(300);
/// Requests run at once; more are refused as busy.
pub const MAX_RUNNING: usize = 16;
/// How long a stopping server waits for the requests it runs.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// The path of the control socket of the store at `data`.
pub fn socket_path(data: &Path) -> PathBuf {
    data.join(SOCKET)
}

/// A command for the server to run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Request {
    /// The command line after the program name (`["wiki", "show", "Home"]`); the server
    /// parses it as the command does and ignores `--data` (it runs on its own store).
    pub argv: Vec<String>,
    /// The text of each input the command reads, by the name it reads it as (`-` for
    /// standard input, a path otherwise): the client reads them, the server never does.
    pub inputs: BTreeMap<String, String>,
    /// The file names in each directory the command lists (`wiki import DIR`).
    pub dirs: BTreeMap<String, Vec<String>>,
}

/// What a command did, run by the server: what the client prints, and the files it writes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Outcome {
    /// Its standard output.
    pub stdout: String,
    /// Its notes on standard error (not the error).
    pub stderr: String,
    /// The error that ended it (the command then exits with status 1).
    pub error: Option<String>,
    /// Directories to create, in order (`wiki export DIR`).
    pub mkdirs: Vec<String>,
    /// Files to write, in order: path and text.
    pub writes: Vec<(String, String)>,
}

/// Why a server did not run a request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The request is larger than [`MAX_REQUEST`].
    #[error("the request has {size} bytes; a running server takes at most {max}")]
    TooLarge {
        /// Its size (or the size it announced).
        size: u64,
        /// The bound.
        max: u64,
    },
    /// A command the server does not run for a client (its reason given).
    #[error("a running `cairn serve` does not run {0}")]
    NotServed(String),
    /// The request could not be read or parsed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// [`MAX_RUNNING`] requests are running.
    #[error("the server is busy ({0} commands running): try again")]
    Busy(usize),
    /// The server is shutting down.
    #[error("the server is shutting down")]
    Stopping,
}

/// The server's answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply {
    /// It ran the command.
    Ran(Outcome),
    /// It did not.
    Refused(Refusal),
}

/// The open store of a running server, as commands see it: its log (the server's, with its
/// signer: writes go to its connected peers) and views opened once, on first use.
pub struct Served {
    log: Log,
    blobs: Option<BlobStore>,
    wiki: OnceLock<Wiki>,
    kv: OnceLock<Kv>,
}

impl Served {
    /// The server's store, and the blobs it keeps beside it (the server's own: a blob
    /// store is opened once a process, as opening clears leftovers of unfinished adds).
    pub fn new(log: Log, blobs: Option<BlobStore>) -> Served {
        Served {
            log,
            blobs,
            wiki: OnceLock::new(),
            kv: OnceLock::new(),
        }
    }

    /// The log.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The blobs.
    pub fn blobs(&self) -> Result<BlobStore> {
        self.blobs.clone().context("this server keeps no blobs")
    }

    /// The wiki (its indexers run in the reading thread, as a command's do).
    pub fn wiki(&self) -> Result<Wiki> {
        if let Some(w) = self.wiki.get() {
            return Ok(w.clone());
        }
        let w = Wiki::open_with(&self.log, IndexerOptions::default().background(false))?;
        Ok(self.wiki.get_or_init(|| w).clone())
    }

    /// The kv store `kv`.
    pub fn kv(&self) -> Result<Kv> {
        if let Some(k) = self.kv.get() {
            return Ok(k.clone());
        }
        let k = Kv::open_with(&self.log, "kv", IndexerOptions::default().background(false))?;
        Ok(self.kv.get_or_init(|| k).clone())
    }
}

/// Runs a request against a server's store.
pub type Handler = fn(&Served, Request) -> Reply;

static HANDLER: OnceLock<Handler> = OnceLock::new();

/// Registers the command code a server runs requests with (the binary does, before
/// `cairn serve`); without one, a server opens no control socket.
pub fn set_handler(h: Handler) {
    let _ = HANDLER.set(h);
}

fn write_frame(s: &mut UnixStream, body: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(body.len()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    s.write_all(&len.to_be_bytes())?;
    s.write_all(body)?;
    s.flush()
}

/// Reads one frame of at most `max` bytes; `Err(Ok(len))` when it announces more.
fn read_frame(s: &mut UnixStream, max: usize) -> std::io::Result<Result<Vec<u8>, u64>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Ok(Err(len as u64));
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    Ok(Ok(body))
}

/// Whether a server answers on the socket at `path`.
pub fn is_live(path: &Path) -> bool {
    UnixStream::connect(path).is_ok()
}

/// Sends `req` to the server on the socket at `path` and waits for its reply (at most
/// [`REPLY_TIMEOUT`]).
pub fn call(path: &Path, req: &Request) -> Result<Reply> {
    let body = serde_json::to_vec(req)?;
    if body.len() > MAX_REQUEST {
        return Ok(Reply::Refused(Refusal::TooLarge {
            size: body.len() as u64,
            max: MAX_REQUEST as u64,
        }));
    }
    let mut s = UnixStream::connect(path)
        .with_context(|| format!("connecting to the server at {}", path.display()))?;
    s.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    s.set_read_timeout(Some(REPLY_TIMEOUT))?;
    write_frame(&mut s, &body).context("sending the request to the server")?;
    let reply = match read_frame(&mut s, MAX_REPLY) {
        Ok(Ok(b)) => b,
        Ok(Err(n)) => bail!("the server's reply has {n} bytes (at most {MAX_REPLY})"),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            bail!("the server did not answer within {REPLY_TIMEOUT:?}")
        }
        Err(e) => return Err(e).context("reading the server's reply"),
    };
    serde_json::from_slice(&reply).context("the server's reply does not decode")
}

/// A running control socket; dropping it stops it, waits for the requests it runs (a
/// while) and removes the socket file.
pub struct Control {
    path: PathBuf,
    ino: u64,
    stopping: Arc<AtomicBool>,
    running: Arc<AtomicUsize>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl Control {
    /// Opens the control socket of the store at `data`, whose log and blobs the server
    /// holds, when the binary registered a [`Handler`] (`None` otherwise). Fails when a live
    /// server already answers on it.
    pub fn start(data: &Path, log: &Log, blobs: &BlobStore) -> Result<Option<Control>> {
        let Some(&handler) = HANDLER.get() else {
            return Ok(None);
        };
        let path = socket_path(data);
        if path.exists() {
            if is_live(&path) {
                bail!(
                    "a server already answers on {} (this store is served)",
                    path.display()
                );
            }
            tracing::info!(
                "replacing {} (left by a server that stopped)",
                path.display()
            );
        }
        // Bound under a private name, restricted, then renamed over any stale one: the
        // socket is never reachable with other permissions.
        let tmp = data.join(format!(".{SOCKET}.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let listener =
            UnixListener::bind(&tmp).with_context(|| format!("binding {}", tmp.display()))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("creating {}", path.display()))?;
        let meta = std::fs::metadata(&path)?;
        let ino = meta.ino();
        let stopping = Arc::new(AtomicBool::new(false));
        let running = Arc::new(AtomicUsize::new(0));
        let served = Arc::new(Served::new(log.clone(), Some(blobs.clone())));
        let accept = {
            let (stopping, running) = (stopping.clone(), running.clone());
            std::thread::Builder::new()
                .name("cairn-control".into())
                .spawn(move || {
                    accept_loop(listener, handler, served, stopping, running);
                })?
        };
        tracing::info!("commands on {}", path.display());
        Ok(Some(Control {
            path,
            ino,
            stopping,
            running,
            accept: Some(accept),
        }))
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees it is stopping.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let deadline = Instant::now() + STOP_WAIT;
        while self.running.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Only our own socket: never one another server made since.
        if std::fs::metadata(&self.path).is_ok_and(|m| m.ino() == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A request being run: counted while it lives.
struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept_loop(
    listener: UnixListener,
    handler: Handler,
    served: Arc<Served>,
    stopping: Arc<AtomicBool>,
    running: Arc<AtomicUsize>,
) {
    for conn in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            break;
        }
        let Ok(mut s) = conn else {
            // Out of descriptors: pause rather than spin.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let _ = s.set_read_timeout(Some(REQUEST_TIMEOUT));
        let _ = s.set_write_timeout(Some(REQUEST_TIMEOUT));
        let n = running.fetch_add(1, Ordering::SeqCst);
        let slot = Running(running.clone());
        if n >= MAX_RUNNING {
            refuse(&mut s, Refusal::Busy(n));
            continue;
        }
        let (served, stopping) = (served.clone(), stopping.clone());
        let spawned = std::thread::Builder::new()
            .name("cairn-command".into())
            .spawn(move || {
                let _slot = slot;
                serve_one(&mut s, handler, &served, &stopping);
            });
        if let Err(e) = spawned {
            tracing::warn!("control socket: starting a thread: {e}");
        }
    }
}

fn refuse(s: &mut UnixStream, r: Refusal) {
    tracing::debug!("control socket: refused: {r}");
    if let Ok(body) = serde_json::to_vec(&Reply::Refused(r)) {
        let _ = write_frame(s, &body);
    }
}

fn serve_one(s: &mut UnixStream, handler: Handler, served: &Served, stopping: &AtomicBool) {
    let body = match read_frame(s, MAX_REQUEST) {
        Ok(Ok(b)) => b,
        Ok(Err(size)) => {
            return refuse(
                s,
                Refusal::TooLarge {
                    size,
                    max: MAX_REQUEST as u64,
                },
            );
        }
        // A client that went away, or sent nothing in time (or our own wake-up).
        Err(_) => return,
    };
    if stopping.load(Ordering::SeqCst) {
        return refuse(s, Refusal::Stopping);
    }
    let req: Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return refuse(s, Refusal::BadRequest(e.to_string())),
    };
    tracing::debug!("control socket: {}", req.argv.join(" "));
    let reply = handler(served, req);
    match serde_json::to_vec(&reply) {
        Ok(body) if body.len() <= MAX_REPLY => {
            let _ = write_frame(s, &body);
        }
        Ok(body) => refuse(
            s,
            Refusal::NotServed(format!(
                "a command whose output has {} bytes (at most {MAX_REPLY})",
                body.len()
            )),
        ),
        Err(e) => refuse(s, Refusal::BadRequest(e.to_string())),
    }
}
