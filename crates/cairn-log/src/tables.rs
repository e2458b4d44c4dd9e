//! The redb tables of a log, and why they are laid out this way.
//!
//! - `nodes`: change number (u64) → canonical node encoding. Change numbers are dense and
//!   increasing, so appends go to the right edge of the B-tree (cheap, sequential pages) and
//!   the changes feed is a plain range scan.
//! - `keys`: node key (32 bytes) → change number. The only table with random keys; its
//!   entries are small (40 bytes), so many fit in a page and the tree stays shallow.
//! - `heads`: node key → () for every node nothing links to yet.
//! - `meta`: `"format"` → store format version, `"len"` → number of nodes (= last change).
//!
//! A `get` is two point lookups (keys, then nodes). The alternative — node bytes keyed by
//! hash — makes `get` one lookup but turns every append into a random insert of a 100+ byte
//! record and every feed read into a random lookup; the feed and appends matter more.

use redb::TableDefinition;

pub(crate) const NODES: TableDefinition<u64, &[u8]> = TableDefinition::new("log.nodes");
pub(crate) const KEYS: TableDefinition<&[u8; 32], u64> = TableDefinition::new("log.keys");
pub(crate) const HEADS: TableDefinition<&[u8; 32], ()> = TableDefinition::new("log.heads");
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("log.meta");

pub(crate) const META_FORMAT: &str = "format";
pub(crate) const META_LEN: &str = "len";

/// The store format this build writes. Bump it (with a migration) when a table changes.
pub(crate) const STORE_FORMAT: u64 = 1;
