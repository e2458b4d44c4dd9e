//! # cairn-wiki-app
//!
//! cairn's wiki in the browser: a Leptos (client-side rendered) app over the browser peer's
//! worker. It never opens the store itself: every read and write is a `wiki_…` request of
//! the worker's message API, sent through `cairn.js`'s `call(op, fields)` (the page puts the
//! object `startCairn()` returns on `window.cairn`).
//!
//! - [`markdown`]: Markdown with `[[Wiki Links]]` to sanitized HTML (natively testable);
//! - [`route`]: the hash routes (`#/page/Title`, `#/edit/Title`, …);
//! - `app` (wasm32 only): the Leptos components;
//! - `images` (wasm32 only): images added as blobs of the worker's store, and shown from it.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod markdown;
pub mod route;

#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod images;
