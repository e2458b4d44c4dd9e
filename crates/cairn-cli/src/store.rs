//! The store directory: `log.redb` (the log) and `identity` (the ed25519 key file).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cairn_core::{Ed25519Verifier, PublicKey};
use cairn_log::{Log, LogOptions, identity};

fn log_path(data: &Path) -> PathBuf {
    data.join("log.redb")
}

fn identity_path(data: &Path) -> PathBuf {
    data.join("identity")
}

/// Creates the directory, identity and log if they are missing. Returns the public key and
/// whether anything was created.
pub fn init(data: &Path) -> Result<(PublicKey, bool)> {
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    let id_path = identity_path(data);
    let (kp, created) = if id_path.exists() {
        (identity::load(&id_path)?, false)
    } else {
        (identity::create(&id_path)?, true)
    };
    let log_existed = log_path(data).exists();
    Log::open(log_path(data), LogOptions::default())
        .with_context(|| format!("creating the log in {}", data.display()))?;
    Ok((kp.public(), created || !log_existed))
}

fn require_store(data: &Path) -> Result<()> {
    if !log_path(data).exists() {
        bail!(
            "no cairn store at {} (run `cairn init`, or pass --data DIR)",
            data.display()
        );
    }
    Ok(())
}

/// Policy for nodes received from peers: every node must be validly signed.
fn verifier() -> Ed25519Verifier {
    Ed25519Verifier::strict()
}

/// The page cache of a command's store. A 1M-node clone over TCP, measured: 32 MiB keeps the
/// receiving process under 100 MB at about the speed of 64 MiB (17.7 s vs 16.0 s); 64 MiB
/// peaks at 126 MB (`scripts/bench-clone.sh`).
const CACHE_BYTES: usize = 32 << 20;

fn open(data: &Path, opts: LogOptions) -> Result<Log> {
    require_store(data)?;
    Log::open(log_path(data), opts.cache_bytes(CACHE_BYTES)).map_err(|e| match e {
        cairn_log::OpenError::Storage(cairn_log::StorageError(
            cairn_log::redb::Error::DatabaseAlreadyOpen,
        )) => anyhow::anyhow!(
            "the store at {} is in use by another cairn process (a running `cairn serve`?)",
            data.display()
        ),
        e => e.into(),
    })
}

/// Opens the log to read it.
pub fn open_reader(data: &Path) -> Result<Log> {
    open(data, LogOptions::default().verifier(verifier()))
}

/// The store's ed25519 identity.
pub fn identity(data: &Path) -> Result<cairn_core::Keypair> {
    require_store(data)?;
    Ok(identity::load(&identity_path(data))?)
}

/// The store's identity as a key file: in the clear, or sealed with `passphrase`
/// (`cairn_core::keyfile`, the text the browser peer exports and imports).
pub fn export_key(data: &Path, passphrase: Option<&str>) -> Result<String> {
    let kp = identity(data)?;
    Ok(match passphrase {
        None => cairn_core::keyfile::encode(&kp),
        Some(p) => {
            cairn_core::keyfile::encode_sealed(&kp, p, cairn_core::keyfile::KdfParams::default())?
        }
    })
}

/// Replaces the store's identity with the key file `text` (a sealed one needs its
/// passphrase); nodes already written keep their author. Refused while another process (a
/// running `cairn serve`) holds the store, and on a bad file or passphrase, changing nothing.
pub fn import_key(data: &Path, text: &str, passphrase: Option<&str>) -> Result<PublicKey> {
    let kp = cairn_core::keyfile::decode(text, passphrase)?;
    // Holding the log while the file is replaced: no server runs on the old key meanwhile.
    let _log = open_reader(data)?;
    identity::replace(&identity_path(data), &kp)?;
    Ok(kp.public())
}

/// Opens the log with the store's identity, to write signed nodes.
pub fn open_writer(data: &Path) -> Result<Log> {
    require_store(data)?;
    let kp = identity::load(&identity_path(data))?;
    open(data, LogOptions::default().signer(kp).verifier(verifier()))
}
