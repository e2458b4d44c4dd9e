//! # cairn-wiki
//!
//! The peer-to-peer wiki's model, shared by the browser app, `cairn serve` and `cairn wiki`:
//! no files, no clock, no async runtime of its own — it takes a cairn [`Log`](cairn_log::Log)
//! and builds for `wasm32-unknown-unknown`.
//!
//! - **Pages are kv keys.** A page titled `T` is the key `page/T` of the log's kv store
//!   (cairn-kv, store `kv`); a save is a signed kv write whose links name the versions it
//!   supersedes — by default every current version, so saving over a fork merges it — with
//!   the edit summary and the editor's claimed time as kv fields (see [`doc`] for the
//!   shapes). Concurrent saves on different peers become a **fork**: the page has several
//!   current versions, all shown, none lost.
//! - **Titles** are normalized ([`Title::new`]) so `[[wiki  links]]` resolve to `Wiki links`;
//!   a stored key whose title is not in normal form (`page/../../etc`) is left out.
//! - **Views.** One cairn-view [`View`](cairn_view::View), [`WikiView`], keeps the current
//!   versions of every page and from them the page list, backlinks and a full-text index
//!   (redb tables), plus recent changes, each author's edits and display names. Every table
//!   is a function of the set of nodes, so peers that hold the same nodes agree, and a view
//!   whose version changes is rebuilt.
//! - **History** is the page's DAG ([`Wiki::history`]), **diff** uses `similar`, **merge**
//!   is three-way from the deepest common ancestor with `diffy` (conflicts marked),
//!   **revert**, **rename** (history goes on, a redirect stays), **delete** (a visible
//!   tombstone, undone by [`Wiki::undelete`] or any save).
//! - **People**: a display name per key that only the key's owner can set; a local **block
//!   list** (a table of the database, not of the log, so never replicated) hides an author's
//!   versions from this peer's pages, changes, search and backlinks.
//! - **Hostile values** (huge, deeply nested, not the wiki's shape, bad titles, control
//!   characters) decode as [`Body::Broken`] versions or are left out; they never make a read
//!   fail.
//!
//! ## Example
//!
//! ```
//! use cairn_log::{Log, LogOptions};
//! use cairn_log::core::Keypair;
//! use cairn_wiki::{SaveOptions, Title, Wiki};
//!
//! let log = Log::memory(LogOptions::default().signer(Keypair::from_seed([1; 32])))?;
//! let wiki = Wiki::open(&log)?;
//! let home = Title::new("home")?;
//! wiki.save(&home, "Welcome! See [[Cairn]].", &SaveOptions::new("first", Some(1)))?;
//! wiki.save(&Title::new("Cairn")?, "A pile of stones.", &SaveOptions::default())?;
//! assert_eq!(wiki.page(&home)?.text(), Some("Welcome! See [[Cairn]]."));
//! assert_eq!(wiki.backlinks(&Title::new("Cairn")?)?, vec![home.clone()]);
//! assert_eq!(wiki.search("ston", 10)?[0].title.as_str(), "Cairn");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod doc;
mod error;
mod merge;
mod text;
mod title;
mod view;
mod wiki;

pub use doc::Body;
pub use error::{BlockError, IndexStopped, OpenError, ReadError, WriteError};
pub use merge::{Merged, diff, merge};
pub use text::{MAX_INDEXED_BYTES, MAX_LINKS, MAX_TERMS, MAX_WORD_CHARS, TITLE_WEIGHT, words};
pub use title::{MAX_TITLE_CHARS, PAGE_PREFIX, Title, TitleError, wiki_links};
pub use view::{VIEW_NAME, WikiView, WikiViewError, dump};
pub use wiki::{Change, Hit, Page, PageInfo, SaveOptions, Version, Wiki};

pub use cairn_kv;
pub use cairn_log;
pub use cairn_view;
