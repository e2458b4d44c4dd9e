//! `cairn kv …`: the multi-value-register key/value store (hyperkv) over the log.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use cairn_core::Hash;
use cairn_kv::cairn_view::IndexerOptions;
use cairn_kv::{Kv, ListOptions, WriteOptions};
use cairn_log::Log;
use clap::Subcommand;

use cairn_cli::store;

#[derive(Subcommand)]
pub(crate) enum KvCommand {
    /// Put a JSON value at KEY; print the new node's hash. Without --link the write links the
    /// key's current heads (merging a fork).
    Put {
        /// The key.
        key: String,
        /// The value, as JSON (a string needs quotes: '"text"').
        json: String,
        /// A version of the key this write supersedes; repeat for several.
        #[arg(long = "link", value_name = "HASH")]
        links: Vec<Hash>,
    },
    /// Delete KEY (the versions it links: by default all current ones); print the hash.
    Del {
        /// The key.
        key: String,
        /// A version of the key this delete removes; repeat for several.
        #[arg(long = "link", value_name = "HASH")]
        links: Vec<Hash>,
    },
    /// Print the current values of KEY: {"<hash>": {"value": …} or {"deleted": true} or
    /// {"broken": "<why>"} (a node whose document does not decode), …}.
    Get {
        /// The key.
        key: String,
    },
    /// Print every key as JSON lines {key, links, values}.
    List {
        /// At most this many keys.
        #[arg(long)]
        limit: Option<u64>,
        /// Keep running and print a line for each key updated from now on.
        #[arg(long)]
        live: bool,
    },
    /// Print every version of KEY as JSON lines {key, link, links, value | deleted | broken}.
    History {
        /// The key.
        key: String,
    },
}

/// The store's kv view. A one-shot command needs no background indexer (reads and writes
/// bring the view up to date in this thread); a live one does.
fn open(log: &Log, live: bool) -> Result<Kv> {
    Ok(Kv::open_with(
        log,
        "kv",
        IndexerOptions::default().background(live),
    )?)
}

fn options(links: Vec<Hash>) -> WriteOptions {
    WriteOptions {
        links: (!links.is_empty()).then_some(links),
        ..WriteOptions::default()
    }
}

pub(crate) fn run(data: &Path, cmd: KvCommand, out: &mut impl Write) -> Result<()> {
    match cmd {
        KvCommand::Put { key, json, links } => {
            let value: serde_json::Value = serde_json::from_str(&json)
                .with_context(|| format!("the value {json:?} is not valid JSON"))?;
            let kv = open(&store::open_writer(data)?, false)?;
            writeln!(out, "{}", kv.put_with(&key, &value, &options(links))?)?;
        }
        KvCommand::Del { key, links } => {
            let kv = open(&store::open_writer(data)?, false)?;
            writeln!(out, "{}", kv.del_with(&key, &options(links))?)?;
        }
        KvCommand::Get { key } => {
            let kv = open(&store::open_reader(data)?, false)?;
            writeln!(out, "{}", kv.get(&key)?.to_json())?;
        }
        KvCommand::List { limit, live } => {
            let kv = open(&store::open_reader(data)?, live)?;
            let opts = ListOptions {
                limit,
                live,
                ..ListOptions::default()
            };
            for row in kv.list(opts)? {
                writeln!(out, "{}", row?.to_json())?;
                if live {
                    out.flush()?;
                }
            }
        }
        KvCommand::History { key } => {
            let kv = open(&store::open_reader(data)?, false)?;
            for entry in kv.history(&key)? {
                writeln!(out, "{}", entry.to_json())?;
            }
        }
    }
    Ok(())
}
