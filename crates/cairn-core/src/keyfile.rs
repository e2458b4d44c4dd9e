//! The key file: an ed25519 identity as text, in the clear or sealed with a passphrase.
//! One implementation for the CLI's `DATA/identity` file and the browser peer's export and
//! import, so a key moves between them unchanged. `docs/FORMAT.md` ("Key files") is the spec.
//!
//! In the clear (the CLI writes this; [`decode`] reads it):
//!
//! ```text
//! # cairn ed25519 identity: keep this file secret
//! public: <64 hex digits>
//! secret: <64 hex digits: the 32-byte ed25519 seed>
//! ```
//!
//! Sealed with a passphrase ([`encode_sealed`]): the seed is encrypted with
//! XChaCha20-Poly1305 under a key derived from the passphrase by argon2id (version 0x13,
//! 32-byte output) with the parameters and salt written in the file; the additional data is
//! the text of every line before `sealed:` (newlines included), so no line can be changed
//! without the decryption failing:
//!
//! ```text
//! # cairn ed25519 identity, passphrase-protected: keep this file secret
//! public: <64 hex digits>
//! kdf: argon2id m=<KiB> t=<passes> p=<lanes>
//! salt: <32 hex digits: 16 random bytes>
//! nonce: <48 hex digits: 24 random bytes>
//! sealed: <96 hex digits: the encrypted seed and the 16-byte tag>
//! ```
//!
//! A sealed file is read strictly: it must be exactly the text [`encode_sealed`] would write
//! for its values (lowercase hex, decimal numbers without leading zeros, one `\n` after each
//! line, the last one optional), so any changed byte is refused — as malformed, or by the
//! decryption. The parameters are bounded ([`MAX_MEMORY_KIB`], [`MAX_PASSES`],
//! [`MAX_LANES`]) so that a hostile file cannot make an import take all memory or hours.

use std::fmt::Write as _;

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::{Keypair, PublicKey, RandomSourceError};

/// The first line of a key file in the clear.
pub const PLAIN_HEADER: &str = "# cairn ed25519 identity: keep this file secret";
/// The first line of a passphrase-protected key file.
pub const SEALED_HEADER: &str =
    "# cairn ed25519 identity, passphrase-protected: keep this file secret";
/// The largest argon2id memory cost a key file may ask for, in KiB (256 MiB).
pub const MAX_MEMORY_KIB: u32 = 256 * 1024;
/// The most argon2id passes a key file may ask for.
pub const MAX_PASSES: u32 = 16;
/// The most argon2id lanes a key file may ask for.
pub const MAX_LANES: u32 = 4;

/// argon2id's cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB (at least 8 × `lanes`).
    pub memory_kib: u32,
    /// Passes over the memory (at least 1).
    pub passes: u32,
    /// Lanes (at least 1).
    pub lanes: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 6 passes, 1 lane: about half a second in the browser's wasm build on the
    /// reference VM (cairn-web's README has the measured time), less natively.
    fn default() -> Self {
        KdfParams {
            memory_kib: 64 * 1024,
            passes: 6,
            lanes: 1,
        }
    }
}

impl KdfParams {
    fn check(&self) -> Result<Params, KeyFileError> {
        if self.memory_kib > MAX_MEMORY_KIB
            || self.passes > MAX_PASSES
            || self.lanes > MAX_LANES
            || self.lanes == 0
            || self.passes == 0
            || self.memory_kib < 8 * self.lanes
        {
            return Err(KeyFileError::Malformed("kdf parameters out of bounds"));
        }
        Params::new(self.memory_kib, self.passes, self.lanes, Some(32))
            .map_err(|_| KeyFileError::Malformed("kdf parameters out of bounds"))
    }
}

/// Why a key file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The text is not a cairn key file (or not exactly one, for a sealed file), or its two
    /// keys do not match.
    #[error("not a valid cairn key file ({0})")]
    Malformed(&'static str),
    /// The file is passphrase-protected and no passphrase was given.
    #[error("the key file is passphrase-protected: give its passphrase")]
    NeedsPassphrase,
    /// Decryption failed: the passphrase is wrong, or the file was altered.
    #[error("wrong passphrase (or the key file was altered)")]
    WrongPassphrase,
    /// A passphrase must not be empty.
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    /// No randomness for the salt and nonce.
    #[error(transparent)]
    Random(#[from] RandomSourceError),
}

/// Whether `text` is a passphrase-protected key file (by its first line).
pub fn is_sealed(text: &str) -> bool {
    text.lines().next() == Some(SEALED_HEADER)
}

/// The key file of `kp` in the clear.
pub fn encode(kp: &Keypair) -> String {
    format!(
        "{PLAIN_HEADER}\npublic: {}\nsecret: {}\n",
        kp.public(),
        hex::encode(kp.seed())
    )
}

/// The key file of `kp` sealed with `passphrase` (its UTF-8 bytes, as typed), with a fresh
/// random salt and nonce.
pub fn encode_sealed(
    kp: &Keypair,
    passphrase: &str,
    params: KdfParams,
) -> Result<String, KeyFileError> {
    if passphrase.is_empty() {
        return Err(KeyFileError::EmptyPassphrase);
    }
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 24];
    RandomSourceError::fill(&mut salt)?;
    RandomSourceError::fill(&mut nonce)?;
    let head = sealed_head(&kp.public(), params, &salt, &nonce);
    let cipher = cipher(passphrase, params, &salt)?;
    let seed = kp.seed();
    let sealed = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &seed,
                aad: head.as_bytes(),
            },
        )
        .map_err(|_| KeyFileError::Malformed("encryption failed"))?;
    Ok(format!("{head}sealed: {}\n", hex::encode(sealed)))
}

/// Reads a key file: in the clear, or sealed (then `passphrase` is needed). The public key
/// must match the secret.
pub fn decode(text: &str, passphrase: Option<&str>) -> Result<Keypair, KeyFileError> {
    if !is_sealed(text) {
        return decode_plain(text);
    }
    let sealed = SealedFile::parse(text)?;
    let passphrase = passphrase.ok_or(KeyFileError::NeedsPassphrase)?;
    let cipher = cipher(passphrase, sealed.params, &sealed.salt)?;
    let head = sealed_head(&sealed.public, sealed.params, &sealed.salt, &sealed.nonce);
    let seed = cipher
        .decrypt(
            XNonce::from_slice(&sealed.nonce),
            Payload {
                msg: &sealed.sealed,
                aad: head.as_bytes(),
            },
        )
        .map_err(|_| KeyFileError::WrongPassphrase)?;
    let seed: [u8; 32] = seed
        .as_slice()
        .try_into()
        .map_err(|_| KeyFileError::Malformed("the sealed secret is not 32 bytes"))?;
    let kp = Keypair::from_seed(seed);
    if kp.public() != sealed.public {
        return Err(KeyFileError::Malformed(
            "public key does not match the secret",
        ));
    }
    Ok(kp)
}

/// A key file in the clear: the `public:` and `secret:` lines, anywhere, with spaces around
/// the values allowed (as the CLI has always read it).
fn decode_plain(text: &str) -> Result<Keypair, KeyFileError> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim_start().strip_prefix(name).map(str::trim))
            .ok_or(KeyFileError::Malformed("missing field"))
    };
    let mut seed = [0u8; 32];
    hex::decode_to_slice(field("secret:")?, &mut seed)
        .map_err(|_| KeyFileError::Malformed("secret is not 64 hex digits"))?;
    let public: PublicKey = field("public:")?
        .parse()
        .map_err(|_| KeyFileError::Malformed("public is not 64 hex digits"))?;
    let kp = Keypair::from_seed(seed);
    if kp.public() != public {
        return Err(KeyFileError::Malformed(
            "public key does not match the secret",
        ));
    }
    Ok(kp)
}

/// The lines of a sealed file before `sealed:`: the additional data of the encryption.
fn sealed_head(public: &PublicKey, p: KdfParams, salt: &[u8; 16], nonce: &[u8; 24]) -> String {
    let mut s = String::with_capacity(300);
    let _ = write!(
        s,
        "{SEALED_HEADER}\npublic: {public}\nkdf: argon2id m={} t={} p={}\nsalt: {}\nnonce: {}\n",
        p.memory_kib,
        p.passes,
        p.lanes,
        hex::encode(salt),
        hex::encode(nonce)
    );
    s
}

fn cipher(
    passphrase: &str,
    p: KdfParams,
    salt: &[u8; 16],
) -> Result<XChaCha20Poly1305, KeyFileError> {
    let params = p.check()?;
    let mut key = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, &mut key)
        .map_err(|_| KeyFileError::Malformed("kdf parameters out of bounds"))?;
    let cipher = XChaCha20Poly1305::new(&key.into());
    key.fill(0);
    Ok(cipher)
}

struct SealedFile {
    public: PublicKey,
    params: KdfParams,
    salt: [u8; 16],
    nonce: [u8; 24],
    sealed: [u8; 48],
}

impl SealedFile {
    /// Parses a sealed file's values, then requires the text to be exactly their encoding.
    fn parse(text: &str) -> Result<SealedFile, KeyFileError> {
        let bad = KeyFileError::Malformed;
        let mut lines = text.split('\n');
        let mut line = |prefix: &str| {
            lines
                .next()
                .and_then(|l| l.strip_prefix(prefix))
                .ok_or(bad("a line is missing or out of order"))
        };
        line(SEALED_HEADER)?;
        let public: PublicKey = line("public: ")?
            .parse()
            .map_err(|_| bad("public is not 64 hex digits"))?;
        let kdf = line("kdf: argon2id ")?;
        let mut nums = kdf.split(' ').map(|f| f.split_once('='));
        let mut num = |name: &str| match nums.next().flatten() {
            Some((n, v)) if n == name => v.parse::<u32>().map_err(|_| bad("kdf parameter")),
            _ => Err(bad("kdf parameters are m=, t=, p=")),
        };
        let params = KdfParams {
            memory_kib: num("m")?,
            passes: num("t")?,
            lanes: num("p")?,
        };
        let mut salt = [0u8; 16];
        hex::decode_to_slice(line("salt: ")?, &mut salt)
            .map_err(|_| bad("salt is not 32 hex digits"))?;
        let mut nonce = [0u8; 24];
        hex::decode_to_slice(line("nonce: ")?, &mut nonce)
            .map_err(|_| bad("nonce is not 48 hex digits"))?;
        let mut sealed = [0u8; 48];
        hex::decode_to_slice(line("sealed: ")?, &mut sealed)
            .map_err(|_| bad("sealed is not 96 hex digits"))?;
        let canonical = format!(
            "{}sealed: {}\n",
            sealed_head(&public, params, &salt, &nonce),
            hex::encode(sealed)
        );
        if text != canonical && text != &canonical[..canonical.len() - 1] {
            return Err(bad("not in the canonical form"));
        }
        params.check()?;
        Ok(SealedFile {
            public,
            params,
            salt,
            nonce,
            sealed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Cheap parameters, so that the property tests run many cases.
    const FAST: KdfParams = KdfParams {
        memory_kib: 8,
        passes: 1,
        lanes: 1,
    };

    #[test]
    fn plain_round_trip_and_mismatch() {
        let kp = Keypair::from_seed([7; 32]);
        let text = encode(&kp);
        assert!(!is_sealed(&text));
        assert_eq!(decode(&text, None).unwrap().public(), kp.public());
        // A passphrase given for a file in the clear is not needed, and ignored.
        assert_eq!(decode(&text, Some("x")).unwrap().public(), kp.public());
        let other = Keypair::from_seed([8; 32]).public().to_hex();
        let bad = text.replace(&kp.public().to_hex(), &other);
        assert!(matches!(
            decode(&bad, None),
            Err(KeyFileError::Malformed(_))
        ));
        assert!(matches!(decode("", None), Err(KeyFileError::Malformed(_))));
    }

    #[test]
    fn sealed_round_trip_wrong_and_missing_passphrase() {
        let kp = Keypair::from_seed([9; 32]);
        let text = encode_sealed(&kp, "correct horse", KdfParams::default()).unwrap();
        assert!(is_sealed(&text));
        assert!(!text.contains(&hex::encode(kp.seed())));
        let back = decode(&text, Some("correct horse")).unwrap();
        assert_eq!(back.seed(), kp.seed());
        // Without its last newline (as pasted from a text box) it still reads.
        assert!(decode(text.trim_end(), Some("correct horse")).is_ok());
        assert!(matches!(
            decode(&text, Some("correct horsf")),
            Err(KeyFileError::WrongPassphrase)
        ));
        assert!(matches!(
            decode(&text, None),
            Err(KeyFileError::NeedsPassphrase)
        ));
        assert!(matches!(
            encode_sealed(&kp, "", FAST),
            Err(KeyFileError::EmptyPassphrase)
        ));
        // Two exports differ (fresh salt and nonce).
        assert_ne!(
            text,
            encode_sealed(&kp, "correct horse", KdfParams::default()).unwrap()
        );
    }

    #[test]
    fn hostile_parameters_are_refused_before_any_work() {
        let kp = Keypair::from_seed([1; 32]);
        let text = encode_sealed(&kp, "pw", FAST).unwrap();
        for (from, to) in [
            ("m=8 ", "m=4194304 "),
            ("t=1 ", "t=1000 "),
            ("p=1\n", "p=0\n"),
            ("p=1\n", "p=64\n"),
            ("m=8 ", "m=08 "),
        ] {
            let t = text.replace(from, to);
            assert!(
                matches!(decode(&t, Some("pw")), Err(KeyFileError::Malformed(_))),
                "{to}"
            );
        }
    }

    /// A sealed file made with the default parameters, shared by the property tests (the KDF
    /// is what makes them slow).
    fn sample() -> &'static (Keypair, String) {
        static S: std::sync::OnceLock<(Keypair, String)> = std::sync::OnceLock::new();
        S.get_or_init(|| {
            let kp = Keypair::from_seed([3; 32]);
            let text = encode_sealed(&kp, "pass phrase", FAST).unwrap();
            (kp, text)
        })
    }

    proptest! {
        #[test]
        fn decode_never_panics(s in ".{0,400}", pw in proptest::option::of(".{0,20}")) {
            let _ = decode(&s, pw.as_deref());
        }

        #[test]
        fn garbage_after_the_sealed_header_is_refused(s in ".{0,400}") {
            let text = format!("{SEALED_HEADER}\n{s}");
            prop_assert!(decode(&text, Some("pass phrase")).is_err());
        }

        #[test]
        fn every_flipped_byte_is_refused(i in 0usize..1000, mask in 1u8..=255) {
            let (_, text) = sample();
            let mut b = text.clone().into_bytes();
            let i = i % b.len();
            b[i] ^= mask;
            // Flips that break UTF-8 cannot even be given as text: refused by the caller.
            if let Ok(t) = String::from_utf8(b) {
                prop_assert!(decode(&t, Some("pass phrase")).is_err(), "byte {} ^ {:#x}", i, mask);
            }
        }

        #[test]
        fn every_truncation_is_refused(n in 0usize..1000) {
            let (kp, text) = sample();
            let n = n % text.len();
            let r = decode(&text[..n], Some("pass phrase"));
            // Only the text without its final newline reads (see the module docs).
            if n == text.len() - 1 {
                prop_assert_eq!(r.unwrap().public(), kp.public());
            } else {
                prop_assert!(r.is_err());
            }
        }
    }
}
