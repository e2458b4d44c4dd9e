//! The library half of the `cairn` command: the store directory ([`store`]), blobs
//! ([`blob`]), replication
//! over standard input and output ([`sync`]) and over Noise-encrypted TCP and WebSocket
//! ([`net`]: `cairn serve` and its client), the HTTP front of `cairn serve` ([`http`]) and its signalling hub ([`hub`]), the progress line ([`progress`]), and a load
//! client that runs many replication sessions at once against one `cairn serve`
//! ([`swarm`]). The binary (`src/main.rs`) parses arguments and calls these; tests and
//! `cairn-bench serve` call them in process.
//!
//! Errors are `anyhow` here, as in the binary: this crate is the command, not a library
//! for applications (those use the `cairn-*` crates below it).
#![deny(missing_docs)]

pub mod blob;
pub mod compress;
pub mod control;
pub mod http;
pub mod hub;
pub mod net;
pub mod progress;
pub mod store;
pub mod swarm;
pub mod sync;
