//! Fixed-size byte strings: hashes, public keys and signatures.

use std::fmt;
use std::str::FromStr;

/// A hex string that is not the expected number of lowercase or uppercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected} hex digits, got {got:?}")]
pub struct ParseHexError {
    /// How many hex digits were expected.
    pub expected: usize,
    /// The input, cut to 80 characters.
    pub got: String,
}

macro_rules! fixed_bytes {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Lowercase hex, two digits per byte.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Parses exactly `2 * LEN` hex digits.
            pub fn from_hex(s: &str) -> Result<Self, ParseHexError> {
                let mut out = [0u8; $len];
                hex::decode_to_slice(s, &mut out).map_err(|_| ParseHexError {
                    expected: 2 * $len,
                    got: s.chars().take(80).collect(),
                })?;
                Ok(Self(out))
            }

            /// Reads `LEN` bytes from the front of `bytes`, if there are that many.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                bytes.get(..$len)?.try_into().ok().map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Short form keeps logs and test failures readable.
                write!(f, "{}({}…)", stringify!($name), &self.to_hex()[..12])
            }
        }

        impl FromStr for $name {
            type Err = ParseHexError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::from_hex(s)
            }
        }

        impl From<[u8; $len]> for $name {
            fn from(b: [u8; $len]) -> Self {
                Self(b)
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }
    };
}

fixed_bytes!(
    /// A node key: the 32-byte BLAKE3 hash of a node's canonical body encoding.
    Hash,
    32
);
fixed_bytes!(
    /// An ed25519 public key: who wrote a node.
    PublicKey,
    32
);
fixed_bytes!(
    /// An ed25519 signature over a node key.
    Signature,
    64
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        let h = Hash([0xab; 32]);
        assert_eq!(h.to_hex().len(), 64);
        assert_eq!(Hash::from_hex(&h.to_hex()), Ok(h));
        assert_eq!(h.to_string(), h.to_hex());
        assert!(Hash::from_hex("abc").is_err());
        assert!(Hash::from_hex(&"zz".repeat(32)).is_err());
        assert!(Hash::from_slice(&[1; 31]).is_none());
        assert_eq!(Hash::from_slice(&[1; 40]), Some(Hash([1; 32])));
    }
}
