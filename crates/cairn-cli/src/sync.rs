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
use cairn_sync::{DriverError, Mode, SessionOptions, SyncSummary, Timer, sync_log_with_timeout};
use clap::{Args, ValueEnum};
use futures_io::{AsyncRead, AsyncWrite};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};

use crate::store;

#[derive(Args)]
pub(crate) struct SyncArgs {
    /// push: only send; pull: only receive; sync: both.
    #[arg(long, value_enum, default_value_t = SyncMode::Sync)]
    mode: SyncMode,
    /// After the initial sync, keep forwarding new nodes both ways until the peer closes.
    #[arg(long)]
    live: bool,
    /// Sync with a `cairn serve` at tcp://HOST:PORT or ws://HOST:PORT (encrypted,
    /// authenticated) instead of over standard input and output.
    #[arg(long, value_name = "URL")]
    connect: Option<String>,
    /// Seconds a peer may stay silent before the initial sync is complete (one that stops
    /// mid-frame or never answers); a live session may then be quiet for any time.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    timeout: u64,
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

/// tokio's clock for the sync driver's idle timeout.
struct TokioTimer;

impl Timer for TokioTimer {
    type Sleep = tokio::time::Sleep;
    fn sleep(&self, d: std::time::Duration) -> Self::Sleep {
        tokio::time::sleep(d)
    }
}

/// Replicates `log` with the peer on `io` (inside a tokio runtime with time enabled): a
/// silent peer fails the session with a timeout error (also sent to it).
pub(crate) async fn sync_session<IO>(
    log: &Log,
    io: &mut IO,
    opts: SessionOptions,
    idle: std::time::Duration,
) -> Result<SyncSummary, DriverError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let never = std::future::pending::<()>();
    sync_log_with_timeout(log, io, opts, never, TokioTimer, idle).await
}

/// Runs the sync; the summary is the last line on stderr, as JSON.
pub(crate) fn run(data: &Path, args: SyncArgs) -> Result<()> {
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
    if let Some(url) = &args.connect {
        let idle = std::time::Duration::from_secs(args.timeout);
        return crate::net::connect(&log, &store::identity(data)?, url, opts, idle);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the I/O runtime")?;
    let summary = rt.block_on(async {
        let mut io = Stdio {
            input: tokio::io::stdin().compat(),
            output: tokio::io::stdout().compat_write(),
        };
        sync_session(
            &log,
            &mut io,
            opts,
            std::time::Duration::from_secs(args.timeout),
        )
        .await
    });
    // tokio's stdin is read by a blocking thread that may still wait for input: don't wait
    // for it, whether the sync succeeded or not.
    rt.shutdown_background();
    eprintln!("{}", summary?.to_json());
    Ok(())
}
