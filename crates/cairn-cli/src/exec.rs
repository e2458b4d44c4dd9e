//! Where a command runs: on the store it opens itself (the direct path), or on the store of
//! the running `cairn serve` that holds it, sent over the control socket
//! (`cairn_cli::control`). The command code is the same: it runs against a [`Ctx`] — the
//! store ([`Store`]), its inputs and output files ([`Files`]), its standard output and
//! error — and the server runs it with buffers where the direct path has the terminal.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Read, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use cairn_cli::control::{self, Outcome, Refusal, Reply, Request, Served};
use cairn_cli::store;
use cairn_kv::Kv;
use cairn_kv::cairn_view::IndexerOptions;
use cairn_log::Log;
use cairn_wiki::Wiki;

/// The store a command runs on.
pub(crate) enum Store<'a> {
    /// The command opens the store at this directory itself.
    Direct(&'a Path),
    /// A running server's open store.
    Served(&'a Served),
}

impl Store<'_> {
    /// The log, to read it.
    pub(crate) fn reader(&self) -> Result<Log> {
        match self {
            Store::Direct(d) => store::open_reader(d),
            Store::Served(s) => Ok(s.log().clone()),
        }
    }

    /// The log with the store's identity, to write signed nodes.
    pub(crate) fn writer(&self) -> Result<Log> {
        match self {
            Store::Direct(d) => store::open_writer(d),
            Store::Served(s) => Ok(s.log().clone()),
        }
    }

    /// The blobs kept beside `log` (this store's log, as the command opened it).
    pub(crate) fn blobs(&self, log: &Log) -> Result<cairn_blob::BlobStore> {
        match self {
            Store::Direct(d) => cairn_cli::blob::open(d, log),
            Store::Served(s) => s.blobs(),
        }
    }

    /// The wiki; `write`: on a log that can sign.
    pub(crate) fn wiki(&self, write: bool) -> Result<Wiki> {
        match self {
            Store::Direct(_) => {
                let log = if write {
                    self.writer()?
                } else {
                    self.reader()?
                };
                // A one-shot command needs no background indexer.
                Ok(Wiki::open_with(
                    &log,
                    IndexerOptions::default().background(false),
                )?)
            }
            Store::Served(s) => s.wiki(),
        }
    }

    /// The kv store `kv`; `live`: with a background indexer (for `--live`, never served).
    pub(crate) fn kv(&self, write: bool, live: bool) -> Result<Kv> {
        match self {
            Store::Direct(_) => {
                let log = if write {
                    self.writer()?
                } else {
                    self.reader()?
                };
                Ok(Kv::open_with(
                    &log,
                    "kv",
                    IndexerOptions::default().background(live),
                )?)
            }
            Store::Served(s) => s.kv(),
        }
    }
}

/// The files a command reads and writes: the local ones, or, run by a server, those the
/// client read for it and those it writes when the reply comes.
pub(crate) enum Files {
    /// The file system and standard input of this process.
    Local,
    /// What the client sent, and what it is to write.
    Remote {
        /// Request inputs (`-`: standard input).
        inputs: BTreeMap<String, String>,
        /// Directory listings.
        dirs: BTreeMap<String, Vec<String>>,
        /// Directories to create.
        mkdirs: Vec<String>,
        /// Files to write.
        writes: Vec<(String, String)>,
    },
}

fn key(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

impl Files {
    /// The text of `file`, or of standard input for `-`.
    pub(crate) fn read_text(&mut self, file: &str) -> Result<String> {
        match self {
            Files::Local => {
                let mut text = String::new();
                if file == "-" {
                    io::stdin()
                        .read_to_string(&mut text)
                        .context("reading standard input")?;
                } else {
                    text =
                        std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
                }
                Ok(text)
            }
            Files::Remote { inputs, .. } => inputs
                .get(file)
                .cloned()
                .with_context(|| format!("the client did not send {file}")),
        }
    }

    /// Standard input, line by line.
    pub(crate) fn stdin(&mut self) -> Result<Box<dyn Input + '_>> {
        match self {
            Files::Local => Ok(Box::new(io::BufReader::with_capacity(
                1 << 16,
                io::stdin().lock(),
            ))),
            Files::Remote { inputs, .. } => {
                let text = inputs
                    .get("-")
                    .context("the client did not send its standard input")?;
                Ok(Box::new(io::Cursor::new(text.as_bytes())))
            }
        }
    }

    /// The names of the files in `dir`, sorted.
    pub(crate) fn list_dir(&mut self, dir: &Path) -> Result<Vec<String>> {
        match self {
            Files::Local => {
                let mut names = Vec::new();
                for e in
                    std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?
                {
                    names.push(e?.file_name().to_string_lossy().into_owned());
                }
                names.sort();
                Ok(names)
            }
            Files::Remote { dirs, .. } => dirs
                .get(&key(dir))
                .cloned()
                .with_context(|| format!("the client did not list {}", dir.display())),
        }
    }

    /// Creates `dir` and its parents.
    pub(crate) fn create_dir_all(&mut self, dir: &Path) -> Result<()> {
        match self {
            Files::Local => {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
            }
            Files::Remote { mkdirs, .. } => {
                mkdirs.push(key(dir));
                Ok(())
            }
        }
    }

    /// `path` as the command may open it itself (binary files, which requests do not
    /// carry): as it is on the direct path; run by a server, only an absolute path (the
    /// client sends them absolute: the server runs as the same user on the same machine).
    pub(crate) fn own_path(&self, path: &Path) -> Result<std::path::PathBuf> {
        match self {
            Files::Local => Ok(path.to_path_buf()),
            Files::Remote { .. } if path.is_absolute() => Ok(path.to_path_buf()),
            Files::Remote { .. } => {
                Err(cairn_cli::blob::FileError::NotAbsolute(path.to_path_buf()).into())
            }
        }
    }

    /// Writes `text` to `path`.
    pub(crate) fn write(&mut self, path: &Path, text: String) -> Result<()> {
        match self {
            Files::Local => {
                std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
            }
            Files::Remote { writes, .. } => {
                writes.push((key(path), text));
                Ok(())
            }
        }
    }
}

/// Standard input as a command reads it.
pub(crate) trait Input: BufRead {
    /// Whether bytes already read in wait in the buffer (a pipe's next lines, not a line
    /// still being typed).
    fn buffered(&self) -> bool;
}

impl Input for io::BufReader<io::StdinLock<'_>> {
    fn buffered(&self) -> bool {
        !self.buffer().is_empty()
    }
}

impl Input for io::Cursor<&[u8]> {
    fn buffered(&self) -> bool {
        (self.position() as usize) < self.get_ref().len()
    }
}

/// What a command runs against.
pub(crate) struct Ctx<'a> {
    /// Its store.
    pub(crate) store: Store<'a>,
    /// Its files.
    pub(crate) files: Files,
    /// Its standard output.
    pub(crate) out: &'a mut dyn Write,
    /// Where its notes go (standard error).
    pub(crate) err: &'a mut dyn Write,
}

/// An error as one line: the error and its causes, each cause only where it adds something.
pub(crate) fn message(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !msg.contains(&text) {
            msg = format!("{msg}: {text}");
        }
    }
    msg
}

/// Runs a client's request (its command parsed and allowed by the caller) on a server's
/// store, with buffers for its output.
pub(crate) fn handle(
    served: &Served,
    req: Request,
    run: impl FnOnce(&mut Ctx<'_>) -> Result<()>,
) -> Reply {
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut ctx = Ctx {
        store: Store::Served(served),
        files: Files::Remote {
            inputs: req.inputs,
            dirs: req.dirs,
            mkdirs: Vec::new(),
            writes: Vec::new(),
        },
        out: &mut stdout,
        err: &mut stderr,
    };
    let result = run(&mut ctx);
    let Files::Remote { mkdirs, writes, .. } = ctx.files else {
        unreachable!("set above")
    };
    Reply::Ran(Outcome {
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        error: result.err().map(|e| message(&e)),
        mkdirs,
        writes,
    })
}

/// Standard input as text, if it has at most `max` bytes (`Err(len)`: it has `len`, more).
fn read_stdin(max: usize) -> Result<Result<String, usize>> {
    let mut buf = Vec::new();
    io::stdin()
        .lock()
        .take(max as u64 + 1)
        .read_to_end(&mut buf)
        .context("reading standard input")?;
    if buf.len() > max {
        return Ok(Err(buf.len()));
    }
    Ok(Ok(
        String::from_utf8(buf).context("standard input is not UTF-8 text")?
    ))
}

/// Which files of a listed directory a command reads, by name.
pub(crate) type Wanted = fn(&str) -> bool;

/// The inputs a request carries, read here by the client (never by the server).
#[derive(Default)]
pub(crate) struct Inputs {
    /// Files (or `-`) whose text to send.
    pub(crate) files: Vec<String>,
    /// Directories to list, with the files of each (by name) whose text to send.
    pub(crate) dirs: Vec<(String, Wanted)>,
}

/// The request for `argv`, its inputs read, bounded by [`control::MAX_REQUEST`] in all.
fn request(argv: Vec<String>, needs: Inputs) -> Result<Request> {
    let max = control::MAX_REQUEST;
    let mut req = Request {
        argv,
        ..Request::default()
    };
    let mut total: usize = req.argv.iter().map(String::len).sum();
    let too_large = |size: usize| {
        anyhow::Error::new(Refusal::TooLarge {
            size: size as u64,
            max: max as u64,
        })
        .context("the input is too large to send to the running server")
    };
    for f in needs.files {
        let text = if f == "-" {
            match read_stdin(max.saturating_sub(total))? {
                Ok(text) => text,
                Err(len) => return Err(too_large(total + len)),
            }
        } else {
            let len = std::fs::metadata(&f)
                .with_context(|| format!("reading {f}"))?
                .len();
            if total as u64 + len > max as u64 {
                return Err(too_large(total + len as usize));
            }
            std::fs::read_to_string(&f).with_context(|| format!("reading {f}"))?
        };
        total += text.len();
        req.inputs.insert(f, text);
    }
    for (dir, wanted) in needs.dirs {
        let mut names = Vec::new();
        for e in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
            names.push(e?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        for n in names.iter().filter(|n| wanted(n)) {
            let path = Path::new(&dir).join(n);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            total += text.len() + n.len();
            if total > max {
                return Err(too_large(total));
            }
            req.inputs.insert(key(&path), text);
        }
        req.dirs.insert(dir, names);
    }
    Ok(req)
}

/// Whether a server answers on the control socket of the store at `data`.
pub(crate) fn is_served(data: &Path) -> bool {
    let sock = control::socket_path(data);
    sock.exists() && control::is_live(&sock)
}

/// Runs a command through the server answering on the control socket of `data`, if one
/// does: `None` when none does (the command then opens the store itself). Prints what the
/// command printed and writes the files it wrote; an error it ended with is returned.
pub(crate) fn via_server(
    data: &Path,
    argv: Vec<String>,
    needs: impl FnOnce() -> Inputs,
    out: &mut impl Write,
) -> Option<Result<()>> {
    if !is_served(data) {
        return None;
    }
    Some(through(&control::socket_path(data), argv, needs(), out))
}

fn through(sock: &Path, argv: Vec<String>, needs: Inputs, out: &mut impl Write) -> Result<()> {
    let req = request(argv, needs)?;
    // A busy server (all its command threads taken) is asked again, a while.
    let deadline = std::time::Instant::now() + control::REPLY_TIMEOUT;
    let mut pause = std::time::Duration::from_millis(10);
    let reply = loop {
        match control::call(sock, &req)? {
            Reply::Refused(Refusal::Busy(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(500));
            }
            reply => break reply,
        }
    };
    match reply {
        Reply::Ran(o) => {
            for d in &o.mkdirs {
                std::fs::create_dir_all(d).with_context(|| format!("creating {d}"))?;
            }
            for (path, text) in o.writes {
                std::fs::write(&path, text).with_context(|| format!("writing {path}"))?;
            }
            out.write_all(o.stdout.as_bytes())?;
            out.flush()?;
            eprint!("{}", o.stderr);
            match o.error {
                Some(e) => bail!("{e}"),
                None => Ok(()),
            }
        }
        Reply::Refused(r) => Err(r).context("refused by the running server"),
        _ => bail!("the server's reply is of a kind this command does not know"),
    }
}
