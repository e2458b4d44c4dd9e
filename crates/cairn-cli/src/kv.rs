//! `cairn kv …`: the multi-value-register key/value store (hyperkv) over the log.

use anyhow::{Context, Result};
use cairn_core::Hash;
use cairn_kv::{ListOptions, WriteOptions};
use clap::Subcommand;

use crate::exec::Ctx;

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

fn options(links: Vec<Hash>) -> WriteOptions {
    WriteOptions {
        links: (!links.is_empty()).then_some(links),
        ..WriteOptions::default()
    }
}

/// Runs `cmd` on the store's kv view. A one-shot command needs no background indexer
/// (reads and writes bring the view up to date in this thread); a live one does.
pub(crate) fn run(ctx: &mut Ctx<'_>, cmd: KvCommand) -> Result<()> {
    let out = &mut *ctx.out;
    match cmd {
        KvCommand::Put { key, json, links } => {
            let value: serde_json::Value = serde_json::from_str(&json)
                .with_context(|| format!("the value {json:?} is not valid JSON"))?;
            let kv = ctx.store.kv(true, false)?;
            writeln!(out, "{}", kv.put_with(&key, &value, &options(links))?)?;
        }
        KvCommand::Del { key, links } => {
            let kv = ctx.store.kv(true, false)?;
            writeln!(out, "{}", kv.del_with(&key, &options(links))?)?;
        }
        KvCommand::Get { key } => {
            let kv = ctx.store.kv(false, false)?;
            writeln!(out, "{}", kv.get(&key)?.to_json())?;
        }
        KvCommand::List { limit, live } => {
            let kv = ctx.store.kv(false, live)?;
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
            let kv = ctx.store.kv(false, false)?;
            for entry in kv.history(&key)? {
                writeln!(out, "{}", entry.to_json())?;
            }
        }
    }
    Ok(())
}
