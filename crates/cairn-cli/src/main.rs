//! The `cairn` command. A thin shell over the library crates: parse arguments, open the
//! store, call one operation, print JSON or hashes. Errors are one line on stderr and a
//! non-zero exit status.

mod exec;
mod kv;
mod wiki;

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use cairn_cli::control::{self, Refusal, Reply, Request, Served};
use cairn_cli::{net, store, sync};
use cairn_core::Hash;
use cairn_log::{ChangesQuery, Entry};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "A signed merkle-DAG log store and its views, for peer-to-peer software"
)]
struct Cli {
    /// The store's directory.
    #[arg(
        long,
        global = true,
        env = "CAIRN_DATA",
        default_value = "./cairn-data"
    )]
    data: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the store and an ed25519 identity; print the public key (hex).
    Init,
    /// Read and write the log.
    #[command(subcommand)]
    Log(LogCommand),
    /// The key/value store kept as a view of the log (multi-value register, as hyperkv).
    #[command(subcommand)]
    Kv(kv::KvCommand),
    /// The peer-to-peer wiki: pages, history, forks and merges, search (while `cairn serve`
    /// runs on the store, the commands run in it, through DATA/cairn.sock).
    Wiki(wiki::WikiArgs),
    /// The store's identity as a key file (the text the browser peer exports and imports).
    #[command(subcommand)]
    Key(KeyCommand),
    /// Blobs: content-addressed binary content beside the log (add, get, ls, gc; while
    /// `cairn serve` runs on the store, they run in it, through DATA/cairn.sock).
    #[command(subcommand)]
    Blob(cairn_cli::blob::BlobCommand),
    /// Replicate with a peer over standard input and output; the last line on stderr is a
    /// JSON summary.
    Sync(sync::SyncArgs),
    /// Accept replication over TCP (Noise-encrypted, identities verified) until killed,
    /// optionally over WebSocket and over HTTP (web app, `/sync`, signalling hub `/hub`,
    /// blobs `/blob/HASH`); prints the bound addresses first. Meanwhile `cairn wiki`, `kv`,
    /// `log` and `blob` commands on the same store run in the server, through the socket
    /// DATA/cairn.sock (0600).
    Serve {
        /// Address to listen on (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:7340")]
        listen: std::net::SocketAddr,
        /// Also accept replication over WebSocket on this address (for browsers); the same
        /// Noise session runs inside binary messages.
        #[arg(long, value_name = "ADDR")]
        ws_listen: Option<std::net::SocketAddr>,
        /// Also serve HTTP on this address: the web app (`--web`) at `/`, replication over
        /// WebSocket at `/sync` (as `--ws-listen`) and the signalling hub at `/hub`; prints
        /// `http://ADDR/` after the other addresses.
        #[arg(long, value_name = "ADDR")]
        http: Option<std::net::SocketAddr>,
        /// The directory of static files served at `/` by `--http` (`scripts/build-web.sh`
        /// builds it into target/www); a path without a file extension and no file gets
        /// `index.html`.
        #[arg(long, value_name = "DIR", requires = "http")]
        web: Option<PathBuf>,
        #[command(flatten)]
        hub: cairn_cli::hub::Limits,
        /// Seconds a peer may stay silent before its initial sync is complete.
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        timeout: u64,
        /// Live sessions: send a keep-alive after this many seconds without output; a peer
        /// that sends none for three times as long is gone (0: no keep-alives).
        #[arg(long, value_name = "SECS", default_value_t = 15)]
        keep_alive: u64,
        /// Connections held at once, in all (handshakes included); more are closed as they
        /// are accepted.
        #[arg(long, value_name = "N", default_value_t = net::Limits::default().max_connections)]
        max_connections: usize,
        /// Connections held at once from one source address.
        #[arg(long, value_name = "N", default_value_t = net::Limits::default().max_per_ip)]
        max_per_ip: usize,
        /// Which blobs the server fetches from a peer: `eager` (every blob named by a node
        /// the peer sends, within the caps below) or `off` (none; it still serves its own).
        #[arg(long, value_name = "MODE", default_value = "eager")]
        blob_fetch: BlobFetch,
        /// Largest blob fetched, in bytes: a peer's blob over it is not fetched (nothing
        /// stored; the session goes on).
        #[arg(long, value_name = "BYTES", default_value_t = net::BLOB_FETCH.max_blob)]
        blob_max_size: u64,
        /// Most bytes of blobs the store may hold (complete and partial) after a fetch: a
        /// blob that would pass it is not fetched.
        #[arg(long, value_name = "BYTES", default_value_t = net::BLOB_FETCH.max_total)]
        blob_max_total: u64,
        /// The least important log events shown on stderr: error, warn, info, debug or
        /// trace (`RUST_LOG`, when set, decides instead, e.g. `warn,cairn_cli=debug`).
        #[arg(long, value_name = "LEVEL", default_value_t = tracing::Level::INFO)]
        log_level: tracing::Level,
    },
}

/// `cairn serve --blob-fetch`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum BlobFetch {
    /// Blobs named by the nodes a peer sends, as they arrive.
    Eager,
    /// None.
    Off,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Print the store's identity as a key file; with --passphrase-file, sealed with that
    /// passphrase (argon2id, XChaCha20-Poly1305: docs/FORMAT.md).
    Export {
        /// A file whose first line is the passphrase.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Replace the store's identity with the key file FILE (`-`: standard input); print the
    /// new public key. Nodes already written keep their author. Not while `cairn serve` runs.
    Import {
        /// The key file (as `key export` or the browser peer's export writes it).
        file: PathBuf,
        /// A file whose first line is the passphrase of a protected key file.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
}

/// The first line of `path` (without its line end): a passphrase.
fn passphrase(path: Option<&PathBuf>) -> Result<Option<String>> {
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the passphrase from {}", path.display()))?;
    Ok(Some(text.lines().next().unwrap_or("").to_owned()))
}

#[derive(Subcommand)]
enum LogCommand {
    /// Add a node linking the given nodes; print its hash.
    Add {
        /// A node to link (64 hex digits); repeat for several.
        #[arg(long = "link", value_name = "HASH")]
        links: Vec<Hash>,
        /// The node's value (UTF-8 text).
        value: String,
    },
    /// Add a node linking every current head; print its hash.
    Append {
        /// The node's value (UTF-8 text).
        #[arg(required_unless_present = "stdin", conflicts_with = "stdin")]
        value: Option<String>,
        /// Append each line of standard input as a node, printing each hash once it is durable.
        #[arg(long)]
        stdin: bool,
    },
    /// Print a node as JSON: key, links, value, author, signature, change.
    Get {
        /// The node's hash.
        hash: Hash,
    },
    /// Print the heads (nodes nothing links to), one hash per line.
    Heads,
    /// Print the changes feed as JSON lines, oldest first.
    Changes(ChangesArgs),
}

#[derive(Args)]
struct ChangesArgs {
    /// Only changes after this change number.
    #[arg(long, default_value_t = 0)]
    since: u64,
    /// Only changes up to and including this change number.
    #[arg(long)]
    until: Option<u64>,
    /// At most this many nodes.
    #[arg(long)]
    limit: Option<u64>,
    /// Keep running and print new nodes as they are added.
    #[arg(long)]
    live: bool,
}

/// Most lines of `log append --stdin` appended in one batch.
const APPEND_BATCH: usize = 8192;

fn main() {
    let cli = Cli::parse();
    // A reader of our output that went away (`cairn log changes | head`) is a normal end;
    // for sync and serve, whose pipes and sockets are their peer, it is a failure.
    let replicating = matches!(cli.command, Command::Sync(_) | Command::Serve { .. });
    if let Err(e) = run(cli) {
        if !replicating && is_broken_pipe(&e) {
            std::process::exit(0);
        }
        eprintln!("error: {}", exec::message(&e));
        std::process::exit(1);
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: Cli) -> Result<()> {
    // The sync protocol owns standard output: no lock on it here.
    match cli.command {
        Command::Sync(args) => return sync::run(&cli.data, args),
        Command::Serve {
            listen,
            ws_listen,
            http,
            web,
            hub,
            timeout,
            keep_alive,
            max_connections,
            max_per_ip,
            blob_fetch,
            blob_max_size,
            blob_max_total,
            log_level,
        } => {
            net::init_log(log_level)?;
            // `cairn wiki`/`kv`/`log` commands then run through DATA/cairn.sock.
            control::set_handler(serve_request);
            let opts = cairn_sync::SessionOptions {
                live: true,
                ..Default::default()
            };
            let opts = sync::with_keep_alive(opts, keep_alive);
            return net::serve(
                &cli.data,
                listen,
                ws_listen,
                opts,
                std::time::Duration::from_secs(timeout),
                net::Limits {
                    max_connections,
                    max_per_ip,
                    blob_fetch: match blob_fetch {
                        BlobFetch::Eager => Some(cairn_blob::proto::FetchPolicy {
                            max_blob: blob_max_size,
                            max_total: blob_max_total,
                            ..net::BLOB_FETCH
                        }),
                        BlobFetch::Off => None,
                    },
                },
                http.map(|listen| cairn_cli::http::Options { listen, web, hub }),
            );
        }
        _ => {}
    }
    let out = io::stdout();
    let mut out = out.lock();
    match cli.command {
        Command::Init => {
            let (public, created) = store::init(&cli.data)?;
            if !created {
                eprintln!("cairn: store at {} already initialized", cli.data.display());
            }
            writeln!(out, "{public}")?;
        }
        Command::Sync(_) | Command::Serve { .. } => unreachable!("handled above"),
        // Key commands read and write the key file; an import holds the store meanwhile.
        Command::Key(KeyCommand::Export { passphrase_file }) => {
            let pass = passphrase(passphrase_file.as_ref())?;
            out.write_all(store::export_key(&cli.data, pass.as_deref())?.as_bytes())?;
        }
        Command::Key(KeyCommand::Import {
            file,
            passphrase_file,
        }) => {
            let text = if file.as_os_str() == "-" {
                io::read_to_string(io::stdin())?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            let pass = passphrase(passphrase_file.as_ref())?;
            writeln!(
                out,
                "{}",
                store::import_key(&cli.data, &text, pass.as_deref())?
            )?;
        }
        // A running `cairn serve` holds the store: it reads and writes the files.
        Command::Blob(cmd) => {
            if exec::is_served(&cli.data) {
                return blob_through(&cli.data, &cmd, &mut out);
            }
            cairn_cli::blob::run(&cli.data, cmd, &mut out)?;
        }
        command => {
            // A running `cairn serve` holds the store: the command runs there.
            let needs = || inputs(&command);
            let served = match &command {
                Command::Wiki(args) => wiki::served_argv(args),
                _ => None,
            };
            let served = match served {
                Some(a) => a,
                None => argv()?,
            };
            if let Some(r) = exec::via_server(&cli.data, served, needs, &mut out) {
                return r;
            }
            let mut err = io::stderr();
            let mut ctx = exec::Ctx {
                store: exec::Store::Direct(&cli.data),
                files: exec::Files::Local,
                out: &mut out,
                err: &mut err,
            };
            run_command(&mut ctx, command)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// A file of the client in the store's directory for the server to read or write (same
/// user, same machine), removed when dropped.
struct Handoff(PathBuf);

impl Handoff {
    fn new(data: &std::path::Path, kind: &str) -> Result<Handoff> {
        let data = std::path::absolute(data).context("the store's directory")?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Ok(Handoff(data.join(format!(
            ".blob-{kind}-{}-{nanos}.tmp",
            std::process::id()
        ))))
    }

    fn arg(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for Handoff {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `cairn blob …` run by the server holding the store at `data`: paths are sent absolute,
/// and the server reads `add`'s file and writes `get`'s; standard input (`add -`) and
/// output (`get` without `-o`) go through a file in the store's directory.
fn blob_through(
    data: &std::path::Path,
    cmd: &cairn_cli::blob::BlobCommand,
    out: &mut impl Write,
) -> Result<()> {
    use cairn_cli::blob::BlobCommand;
    let path = |p: &std::path::Path| -> Result<String> {
        let abs = std::path::absolute(p).with_context(|| format!("{}", p.display()))?;
        abs.into_os_string()
            .into_string()
            .map_err(|p| anyhow::anyhow!("the path {p:?} is not UTF-8"))
    };
    let mut handoff = None;
    let argv: Vec<String> = match cmd {
        BlobCommand::Add { file } if file.as_os_str() == "-" => {
            let h = Handoff::new(data, "add")?;
            let mut f = std::fs::File::create_new(&h.0)
                .with_context(|| format!("creating {}", h.0.display()))?;
            io::copy(&mut io::stdin().lock(), &mut f).context("reading standard input")?;
            let argv = vec!["blob".into(), "add".into(), h.arg()];
            handoff = Some(h);
            argv
        }
        BlobCommand::Add { file } => vec!["blob".into(), "add".into(), path(file)?],
        BlobCommand::Get {
            hash,
            output,
            connect,
            timeout,
        } => {
            let to = match output {
                Some(o) => path(o)?,
                None => {
                    let h = Handoff::new(data, "get")?;
                    let arg = h.arg();
                    handoff = Some(h);
                    arg
                }
            };
            let mut argv = vec!["blob".into(), "get".into(), hash.to_hex(), "-o".into(), to];
            for c in connect {
                argv.extend(["--connect".into(), c.clone()]);
            }
            argv.extend(["--timeout".into(), timeout.to_string()]);
            argv
        }
        BlobCommand::Ls => vec!["blob".into(), "ls".into()],
        BlobCommand::Gc => vec!["blob".into(), "gc".into()],
    };
    let ran = exec::via_server(data, argv, exec::Inputs::default, out)
        .context("the server holding the store stopped")?;
    ran?;
    if let (BlobCommand::Get { output: None, .. }, Some(h)) = (cmd, &handoff) {
        let mut f =
            std::fs::File::open(&h.0).with_context(|| format!("reading {}", h.0.display()))?;
        io::copy(&mut f, out)?;
    }
    Ok(())
}

/// This process's command line after the program name.
fn argv() -> Result<Vec<String>> {
    std::env::args_os()
        .skip(1)
        .map(|a| {
            a.into_string()
                .map_err(|a| anyhow::anyhow!("the argument {a:?} is not UTF-8"))
        })
        .collect()
}

/// What a command reads that a server cannot: the client reads it and sends it along.
fn inputs(command: &Command) -> exec::Inputs {
    match command {
        Command::Wiki(args) => wiki::inputs(args),
        Command::Log(LogCommand::Append { value: None, .. }) => exec::Inputs {
            files: vec!["-".into()],
            ..Default::default()
        },
        _ => exec::Inputs::default(),
    }
}

/// Why a running server does not run `command` for a client, if it does not.
fn not_served(command: &Command) -> Option<&'static str> {
    match command {
        Command::Init => Some("`init` (the store exists: it is serving)"),
        Command::Sync(_) => Some("`sync` (it replicates over its own standard input and output)"),
        Command::Serve { .. } => Some("`serve` (it is serving this store)"),
        Command::Key(_) => Some("`key` (the key file is read and written directly)"),
        Command::Log(LogCommand::Changes(a)) if a.live => {
            Some("`log changes --live` (it never ends; `cairn sync` with the server follows it)")
        }
        Command::Kv(kv::KvCommand::List { live: true, .. }) => {
            Some("`kv list --live` (it never ends; `cairn sync` with the server follows it)")
        }
        _ => None,
    }
}

/// The control socket's handler: a client's command line, parsed as this command parses
/// it, run on the server's store by the same code as the direct path.
fn serve_request(served: &Served, req: Request) -> Reply {
    let parsed = Cli::try_parse_from(std::iter::once("cairn".to_owned()).chain(req.argv.clone()));
    let command = match parsed {
        Ok(cli) => cli.command,
        Err(e) => return Reply::Refused(Refusal::BadRequest(e.kind().to_string())),
    };
    if let Some(why) = not_served(&command) {
        return Reply::Refused(Refusal::NotServed(why.to_owned()));
    }
    exec::handle(served, req, |ctx| run_command(ctx, command))
}

/// Runs a command on the store of `ctx`.
fn run_command(ctx: &mut exec::Ctx<'_>, command: Command) -> Result<()> {
    match command {
        Command::Log(cmd) => run_log(ctx, cmd),
        Command::Kv(cmd) => kv::run(ctx, cmd),
        Command::Wiki(args) => wiki::run(ctx, args),
        Command::Blob(cmd) => match &ctx.store {
            exec::Store::Served(s) => cairn_cli::blob::run_served(&s.blobs()?, cmd, ctx.out),
            exec::Store::Direct(d) => cairn_cli::blob::run(d, cmd, ctx.out),
        },
        Command::Init | Command::Sync(_) | Command::Serve { .. } | Command::Key(_) => {
            bail!("not a command on an open store")
        }
    }
}

fn run_log(ctx: &mut exec::Ctx<'_>, cmd: LogCommand) -> Result<()> {
    let out = &mut *ctx.out;
    match cmd {
        LogCommand::Add { links, value } => {
            let log = ctx.store.writer()?;
            let e = log.add(links, value.into_bytes())?;
            writeln!(out, "{}", e.node.key())?;
        }
        LogCommand::Append { value: Some(v), .. } => {
            let log = ctx.store.writer()?;
            let e = log.append(v.into_bytes())?;
            writeln!(out, "{}", e.node.key())?;
        }
        LogCommand::Append { value: None, .. } => {
            let log = ctx.store.writer()?;
            // Lines already read in are appended together (one commit, signing on all
            // cores), so a pipe of a million lines takes seconds; a line typed by hand is
            // appended at once.
            let mut input = ctx.files.stdin()?;
            let mut values = Vec::new();
            loop {
                let mut line = Vec::new();
                let n = input
                    .read_until(b'\n', &mut line)
                    .context("reading standard input")?;
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                if n > 0 {
                    values.push(line);
                }
                if n > 0 && values.len() < APPEND_BATCH && input.buffered() {
                    continue;
                }
                if !values.is_empty() {
                    for e in log.append_all(std::mem::take(&mut values))? {
                        writeln!(out, "{}", e.node.key())?;
                    }
                    out.flush()?;
                }
                if n == 0 {
                    break;
                }
            }
        }
        LogCommand::Get { hash } => {
            let log = ctx.store.reader()?;
            let e = log
                .get(&hash)?
                .with_context(|| format!("no node {hash} in the log"))?;
            writeln!(out, "{}", entry_json(&e))?;
        }
        LogCommand::Heads => {
            let log = ctx.store.reader()?;
            for h in log.heads()? {
                writeln!(out, "{h}")?;
            }
        }
        LogCommand::Changes(a) => {
            let log = ctx.store.reader()?;
            let q = ChangesQuery {
                since: a.since,
                until: a.until,
                limit: a.limit,
                live: a.live,
            };
            for e in log.changes(q) {
                writeln!(out, "{}", entry_json(&e?))?;
                if a.live {
                    out.flush()?;
                }
            }
        }
    }
    Ok(())
}

/// A node as JSON. `value` is the value as text when it is valid UTF-8; otherwise the
/// object has `value_hex` instead.
fn entry_json(e: &Entry) -> serde_json::Value {
    let n = &e.node;
    let mut o = serde_json::json!({
        "key": n.key().to_hex(),
        "links": n.links().iter().map(|l| l.to_hex()).collect::<Vec<_>>(),
        "author": n.author().map(|a| a.to_hex()),
        "signature": n.signature().map(|s| s.to_hex()),
        "change": e.change,
    });
    match std::str::from_utf8(n.value()) {
        Ok(s) => o["value"] = s.into(),
        Err(_) => o["value_hex"] = hex::encode(n.value()).into(),
    }
    o
}
