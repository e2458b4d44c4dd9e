//! The ed25519 identity on disk: a key file readable by its owner only.
//!
//! Format (UTF-8 text, so a person can see what it is; [`cairn_core::keyfile`] reads and
//! writes it):
//!
//! ```text
//! # cairn ed25519 identity: keep this file secret
//! public: <64 hex digits>
//! secret: <64 hex digits: the 32-byte ed25519 seed>
//! ```
//!
//! The file is created with mode 0600 (never readable by others, not even briefly) and
//! synced before it is used. Loading refuses a file that group or others may read, as ssh does.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use cairn_core::keyfile::{self, KeyFileError};
use cairn_core::{KeygenError, Keypair};

/// Why an identity could not be loaded or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a cairn key file, or its two keys do not match.
    #[error("{path}: not a valid cairn key file ({reason})")]
    Malformed {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// Group or others can read the file.
    #[error(
        "{path}: permissions {mode:o} are too open; the key file must be readable by its owner only (chmod 600)"
    )]
    InsecurePermissions {
        /// The key file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// A key file already exists where a new one was to be made.
    #[error("{path}: a key file already exists")]
    Exists {
        /// The key file.
        path: PathBuf,
    },
    /// No randomness for the new key.
    #[error(transparent)]
    Keygen(#[from] KeygenError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Generates a new key pair and writes it to `path`, which must not exist yet.
pub fn create(path: &Path) -> Result<Keypair, IdentityError> {
    let kp = Keypair::generate()?;
    write_new(path, &kp)?;
    Ok(kp)
}

/// Replaces the key file at `path` with `kp` (an import): written to `PATH.new` (0600),
/// synced, then renamed over `path`, so a crash leaves the old key or the new one.
pub fn replace(path: &Path, kp: &Keypair) -> Result<(), IdentityError> {
    let tmp = path.with_extension("new");
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&tmp)(e)),
        _ => {}
    }
    write_new(&tmp, kp)?;
    fs::rename(&tmp, path).map_err(io(path))?;
    sync_dir(path)
}

/// Writes `kp`'s key file to `path`, which must not exist yet (mode 0600 from the start),
/// and makes it durable.
fn write_new(path: &Path, kp: &Keypair) -> Result<(), IdentityError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            IdentityError::Exists {
                path: path.to_path_buf(),
            }
        } else {
            io(path)(e)
        }
    })?;
    f.write_all(keyfile::encode(kp).as_bytes())
        .map_err(io(path))?;
    f.sync_all().map_err(io(path))?;
    sync_dir(path)
}

/// Makes the directory entry of `path` durable.
fn sync_dir(path: &Path) -> Result<(), IdentityError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(())
}

/// Loads the key pair at `path`.
pub fn load(path: &Path) -> Result<Keypair, IdentityError> {
    let meta = fs::metadata(path).map_err(io(path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::InsecurePermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text = fs::read_to_string(path).map_err(io(path))?;
    keyfile::decode(&text, None).map_err(|e| IdentityError::Malformed {
        path: path.to_path_buf(),
        reason: match e {
            KeyFileError::Malformed(reason) => reason,
            // The store's own key file is kept in the clear (its mode protects it).
            _ => "the store's key file is passphrase-protected",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cairn-id-{}-{name}", std::process::id()));
        let _ = fs::remove_file(&d);
        d
    }

    #[test]
    fn create_load_and_refuse() {
        let p = tmp("a");
        let kp = create(&p).unwrap();
        assert_eq!(load(&p).unwrap().public(), kp.public());
        assert!(matches!(create(&p), Err(IdentityError::Exists { .. })));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
            fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                load(&p),
                Err(IdentityError::InsecurePermissions { mode: 0o644, .. })
            ));
            fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        }
        let text = fs::read_to_string(&p).unwrap();
        let other = Keypair::from_seed([5; 32]).public().to_hex();
        let bad = text
            .lines()
            .map(|l| {
                if l.starts_with("public:") {
                    format!("public: {other}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        fs::write(&p, bad).unwrap();
        assert!(matches!(load(&p), Err(IdentityError::Malformed { .. })));
        // An import replaces the file whole, still readable by its owner only.
        let other = Keypair::from_seed([6; 32]);
        replace(&p, &other).unwrap();
        assert_eq!(load(&p).unwrap().public(), other.public());
        assert!(!p.with_extension("new").exists());
        fs::remove_file(&p).unwrap();
    }
}
