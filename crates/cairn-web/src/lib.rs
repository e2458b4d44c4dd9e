//! # cairn-web
//!
//! cairn as a browser peer: the log, its kv store and an ed25519 identity in a redb store
//! on the Origin Private File System, run in a dedicated Web Worker, driven by the page through
//! a small JSON message API.
//!
//! - [`api`]: the message API ([`api::Peer::handle`]) over any redb backend — no browser in
//!   it, so it is tested natively too;
//! - [`frames`]: the binary form of the node lists the `insert` request carries;
//! - [`wiki_api`]: the wiki's ops (`wiki_…`) over [`cairn_wiki::Wiki`];
//! - [`identity`]: the identity kept in the store, exported and imported as the CLI's key
//!   file text;
//! - `opfs` (wasm32 only): [`StorageBackend`](cairn_log::StorageBackend) over a
//!   `FileSystemSyncAccessHandle`;
//! - `net` (wasm32 only): live replication over a WebSocket or a handed-over data channel
//!   (cairn-net's handshake and pumps, cairn-sync's driver), the `connect`, `attach`,
//!   `disconnect` and `peers` ops;
//! - `swarm` (wasm32 only): the WebRTC swarm's signalling client (signed messages through
//!   `cairn serve`'s hub) and its choice of peers, the `swarm_…` ops; the page's
//!   `www/swarm.js` makes the peer connections and hands their channels to `net`;
//! - `worker` (wasm32 only): the entry points the worker script calls (`openPeer`,
//!   `WebPeer.handle`, `backendSelftest`).
//!
//! `www/` has the worker script and a harness page; `scripts/test-browser.sh` builds it all and
//! runs the tests in headless Chromium.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod api;
pub mod blob_api;
pub mod frames;
pub mod identity;
#[cfg(target_arch = "wasm32")]
pub mod net;
#[cfg(target_arch = "wasm32")]
pub mod opfs;
#[cfg(target_arch = "wasm32")]
pub mod swarm;
pub mod wiki_api;
#[cfg(target_arch = "wasm32")]
pub mod worker;
