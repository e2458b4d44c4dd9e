//! `cairn sync`: replicate the store with a peer over standard input and output, as
//! `hyperkv sync` does. Two of them piped into each other sync two stores:
//!
//! ```sh
//! mkfifo p; cairn --data a sync < p | cairn --data b sync > p
//! ```

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use anyhow::{Context as _, Result};
use cairn_log::Log;
use cairn_sync::{
    DriverError, LogStore, Mode, Session, SessionOptions, SyncSummary, Timer,
    sync_log_with_progress,
};
use clap::{Args, ValueEnum};
use futures_io::{AsyncRead, AsyncWrite};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};

use crate::store;

/// The arguments of `cairn sync`.
#[derive(Args)]
pub struct SyncArgs {
    /// push: only send; pull: only receive; sync: both.
    #[arg(long, value_enum, default_value_t = SyncMode::Sync)]
    mode: SyncMode,
    /// After the initial sync, keep forwarding new nodes both ways until the peer closes.
    #[arg(long)]
    live: bool,
    /// Sync with a `cairn serve` at tcp://HOST:PORT or ws://HOST:PORT (encrypted,
    /// authenticated) instead of over standard input and output; the server may fetch
    /// this store's blobs that the nodes it gets name, on the same connection.
    #[arg(long, value_name = "URL")]
    connect: Option<String>,
    /// Seconds a peer may stay silent before the initial sync is complete (one that stops
    /// mid-frame or never answers).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    timeout: u64,
    /// Live sessions: send a keep-alive after this many seconds without output; a peer that
    /// sends none for three times as long is gone (0: no keep-alives).
    #[arg(long, value_name = "SECS", default_value_t = 15)]
    keep_alive: u64,
}

/// Session options with keep-alives every `secs` seconds and a live timeout of three
/// intervals (`0`: neither).
pub fn with_keep_alive(opts: SessionOptions, secs: u64) -> SessionOptions {
    let (keep_alive, live_timeout) = if secs == 0 {
        (std::time::Duration::MAX, std::time::Duration::MAX)
    } else {
        (
            std::time::Duration::from_secs(secs),
            std::time::Duration::from_secs(secs.saturating_mul(3)),
        )
    };
    SessionOptions {
        keep_alive,
        live_timeout,
        ..opts
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum SyncMode {
    Push,
    Pull,
    Sync,
}

/// Standard input and output as one duplex stream.
struct Stdio {
    input: Compat<tokio::io::Stdin>,
    output: Compat<tokio::io::Stdout>,
}

impl AsyncRead for Stdio {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.input).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stdio {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.output).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.output).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.output).poll_close(cx)
    }
}

/// tokio's clock for the sync driver's timeouts and keep-alives.
pub struct TokioTimer;

impl Timer for TokioTimer {
    type Sleep = tokio::time::Sleep;
    fn sleep(&self, d: std::time::Duration) -> Self::Sleep {
        tokio::time::sleep(d)
    }
}

/// Replicates `log` with the peer on `io` (inside a tokio runtime with time enabled): a
/// silent peer fails the session with a timeout error (also sent to it); a live session
/// ends cleanly when `stop` resolves; `progress` sees the session as it goes.
pub async fn sync_session<IO, F, P>(
    log: &Log,
    io: &mut IO,
    opts: SessionOptions,
    idle: std::time::Duration,
    stop: F,
    progress: P,
) -> Result<SyncSummary, DriverError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    F: std::future::Future<Output = ()>,
    P: FnMut(&Session<LogStore>),
{
    sync_log_with_progress(log, io, opts, stop, TokioTimer, idle, progress).await
}

/// Runs `cairn sync`; the summary is the last line on stderr, as JSON.
pub fn run(data: &Path, args: SyncArgs) -> Result<()> {
    let log = store::open_writer(data)?;
    let opts = SessionOptions {
        mode: match args.mode {
            SyncMode::Push => Mode::Push,
            SyncMode::Pull => Mode::Pull,
            SyncMode::Sync => Mode::Sync,
        },
        live: args.live,
        ..SessionOptions::default()
    };
    let opts = with_keep_alive(opts, args.keep_alive);
    if let Some(url) = &args.connect {
        let idle = std::time::Duration::from_secs(args.timeout);
        let blobs = crate::blob::dir(data);
        return crate::net::connect(&log, &blobs, &store::identity(data)?, url, opts, idle);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the I/O runtime")?;
    let mut bar = crate::progress::Bar::stderr(log.len());
    let summary = rt.block_on(async {
        let mut io = Stdio {
            input: tokio::io::stdin().compat(),
            output: tokio::io::stdout().compat_write(),
        };
        let idle = std::time::Duration::from_secs(args.timeout);
        let never = std::future::pending();
        sync_session(&log, &mut io, opts, idle, never, |s: &Session<LogStore>| {
            bar.update(s)
        })
        .await
    });
    // tokio's stdin is read by a blocking thread that may still wait for input: don't wait
    // for it, whether the sync succeeded or not.
    rt.shutdown_background();
    bar.clear();
    eprintln!("{}", summary?.to_json());
    Ok(())
}
