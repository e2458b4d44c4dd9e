//! The peer's ed25519 identity: generated in the browser, kept in the store (table
//! `web.identity`, in the same redb database as the log), exported and imported as a key file
//! ([`cairn_core::keyfile`]: the CLI's text, in the clear or sealed with a passphrase), so a key
//! moves between a browser and `cairn` unchanged.

use std::sync::{Arc, PoisonError, RwLock};

use cairn_log::StorageError;
use cairn_log::core::keyfile::{self, KdfParams, KeyFileError};
use cairn_log::core::{Hash, KeygenError, Keypair, PublicKey, Signature, Signer};
use cairn_log::redb::{self, Database, ReadableDatabase, TableDefinition};

/// The store's identity table: `"seed"` → the 32-byte ed25519 seed.
pub const IDENTITY: TableDefinition<&str, &[u8]> = TableDefinition::new("web.identity");
const SEED: &str = "seed";

/// Why an identity could not be loaded, made, imported or exported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The key file could not be read or written (malformed, wrong or missing passphrase).
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    /// The stored seed is not 32 bytes: the store is corrupt.
    #[error("the stored identity is {0} bytes, not 32")]
    Corrupt(usize),
    /// No randomness for a new key.
    #[error(transparent)]
    Keygen(#[from] KeygenError),
    /// The storage engine failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn storage(e: impl Into<redb::Error>) -> IdentityError {
    IdentityError::Storage(StorageError(e.into()))
}

/// The log's signer, whose key pair can be replaced (identity import). The worker is
/// single-threaded and handles one request at a time, so a key is never swapped between the
/// `identity()` and the `sign()` of one node.
#[derive(Clone)]
pub struct SignerCell(Arc<RwLock<Keypair>>);

impl std::fmt::Debug for SignerCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SignerCell({})", self.identity())
    }
}

impl SignerCell {
    /// A cell holding `kp`.
    pub fn new(kp: Keypair) -> Self {
        SignerCell(Arc::new(RwLock::new(kp)))
    }
    /// The key pair in use.
    pub fn keypair(&self) -> Keypair {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
    fn set(&self, kp: Keypair) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = kp;
    }
}

impl Signer for SignerCell {
    fn identity(&self) -> PublicKey {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .public()
    }
    fn sign(&self, key: &Hash) -> Signature {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .sign(key)
    }
}

/// Loads the identity stored in `db` into `cell`, or stores the cell's (freshly generated)
/// key when the store has none yet. Returns whether a stored key was found.
pub fn load_or_store(db: &Database, cell: &SignerCell) -> Result<bool, IdentityError> {
    let txn = db.begin_read().map_err(storage)?;
    let stored = match txn.open_table(IDENTITY) {
        Ok(t) => t.get(SEED).map_err(storage)?.map(|v| v.value().to_vec()),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(storage(e)),
    };
    drop(txn);
    match stored {
        Some(seed) => {
            let seed: [u8; 32] = seed
                .as_slice()
                .try_into()
                .map_err(|_| IdentityError::Corrupt(seed.len()))?;
            cell.set(Keypair::from_seed(seed));
            Ok(true)
        }
        None => {
            store(db, &cell.keypair())?;
            Ok(false)
        }
    }
}

/// Writes `kp` as the store's identity (a durable commit).
fn store(db: &Database, kp: &Keypair) -> Result<(), IdentityError> {
    let txn = db.begin_write().map_err(storage)?;
    txn.open_table(IDENTITY)
        .map_err(storage)?
        .insert(SEED, kp.seed().as_slice())
        .map_err(storage)?;
    txn.commit().map_err(storage)?;
    Ok(())
}

/// Replaces the identity: stored durably first, then used for every later write.
pub fn replace(db: &Database, cell: &SignerCell, kp: Keypair) -> Result<(), IdentityError> {
    store(db, &kp)?;
    cell.set(kp);
    Ok(())
}

/// The key file of `kp`: in the clear, or sealed with `passphrase` (argon2id with the default
/// [`KdfParams`], XChaCha20-Poly1305).
pub fn export(kp: &Keypair, passphrase: Option<&str>) -> Result<String, IdentityError> {
    Ok(match passphrase {
        None => keyfile::encode(kp),
        Some(p) => keyfile::encode_sealed(kp, p, KdfParams::default())?,
    })
}

/// Reads a key file (a sealed one needs its passphrase); the public key must match the secret.
pub fn parse(text: &str, passphrase: Option<&str>) -> Result<Keypair, IdentityError> {
    Ok(keyfile::decode(text, passphrase)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_parse_round_trip_sealed_and_not() {
        let kp = Keypair::from_seed([7; 32]);
        let plain = export(&kp, None).unwrap();
        assert_eq!(parse(&plain, None).unwrap().public(), kp.public());
        let sealed = export(&kp, Some("pw")).unwrap();
        assert_eq!(parse(&sealed, Some("pw")).unwrap().public(), kp.public());
        assert!(matches!(
            parse(&sealed, Some("wrong")),
            Err(IdentityError::KeyFile(KeyFileError::WrongPassphrase))
        ));
        assert!(matches!(
            parse("", None),
            Err(IdentityError::KeyFile(KeyFileError::Malformed(_)))
        ));
    }
}
