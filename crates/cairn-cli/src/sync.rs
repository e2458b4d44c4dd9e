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
use cairn_sync::{Mode, SessionOptions, sync_log};
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
    /// Sync with a `cairn serve` at tcp://HOST:PORT (encrypted, authenticated) instead of
    /// over standard input and output.
    #[arg(long, value_name = "URL")]
    connect: Option<String>,
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
        if !url.starts_with("tcp://") {
            anyhow::bail!("cannot connect to {url}: only tcp://HOST:PORT is supported yet");
        }
        return crate::net::connect(&log, &store::identity(data)?, url, opts);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("starting the I/O runtime")?;
    let summary = rt.block_on(async {
        let mut io = Stdio {
            input: tokio::io::stdin().compat(),
            output: tokio::io::stdout().compat_write(),
        };
        sync_log(&log, &mut io, opts, std::future::pending::<()>()).await
    })?;
    eprintln!("{}", summary.to_json());
    // tokio's stdin is read by a blocking thread that may still wait for input: don't wait
    // for it.
    rt.shutdown_background();
    Ok(())
}
