//! # cairn-core
//!
//! The part of cairn every other crate stands on, with no I/O of its own, so that it builds
//! for `wasm32-unknown-unknown` as well as natively:
//!
//! - [`Hash`], [`PublicKey`], [`Signature`]: fixed-size byte strings with a hex form;
//! - [`Node`]: a signed merkle-DAG node, its canonical versioned encoding
//!   ([`Node::encode`], [`Node::decode`]) and its key (the BLAKE3 hash of that encoding,
//!   which covers the format version, the author, the links and the value);
//! - signing hooks ([`Signer`], [`Verify`]) with ed25519 as the ready default
//!   ([`Keypair`], [`Ed25519Verifier`]);
//! - [`keyfile`]: the key file, an identity as text, in the clear or sealed with a
//!   passphrase (argon2id, XChaCha20-Poly1305), shared by the CLI and the browser peer.
//!
//! The byte-level format is documented in `docs/FORMAT.md` at the repository root; the
//! encoder and decoder here are its reference implementation.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod bytes;
mod ed25519;
mod error;
pub mod keyfile;
mod node;
mod sign;
pub mod varint;

pub use bytes::{Hash, ParseHexError, PublicKey, Signature};
pub use error::{BuildError, DecodeError, RandomSourceError, VerifyError};
pub use node::{Draft, FORMAT_VERSION, HASH_CONTEXT, Limits, Node};
pub use sign::{Ed25519Verifier, KeygenError, Keypair, Signer, Verify, verify_signature};
