//! The encrypted link after the handshake.

use crate::link::LinkError;

/// Largest Noise message (Noise's own limit); its payload is 16 bytes (the tag) shorter.
pub const MAX_MSG: usize = 65_535;
/// Largest plaintext in one transport message.
pub const MAX_PLAIN: usize = MAX_MSG - 16;
/// Largest message accepted during the handshake and the identity exchange (the largest,
/// XX's second, is 96 bytes; the identity message 112): a peer that has proven nothing yet
/// cannot make this side hold a large buffer.
pub const MAX_HANDSHAKE_MSG: usize = 1024;

/// Noise transport state: encrypts outgoing and decrypts incoming messages, each direction
/// with its own key and counter (so messages must be decrypted in the order they were sent;
/// a lost, repeated, reordered or altered message fails decryption).
pub struct Transport {
    state: snow::TransportState,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").finish_non_exhaustive()
    }
}

impl Transport {
    pub(crate) fn new(state: snow::TransportState) -> Self {
        Transport { state }
    }

    /// Encrypts `plain` (at most [`MAX_PLAIN`] bytes) into one message, written to `out`
    /// (its previous contents replaced).
    pub fn encrypt(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), LinkError> {
        if plain.len() > MAX_PLAIN {
            return Err(LinkError::TooLarge {
                len: plain.len(),
                max: MAX_PLAIN,
            });
        }
        out.resize(plain.len() + 16, 0);
        let n = self
            .state
            .write_message(plain, out)
            .map_err(LinkError::Encrypt)?;
        out.truncate(n);
        Ok(())
    }

    /// Decrypts one message from the peer into `out` (its previous contents replaced). A
    /// message that does not decrypt — altered, cut, replayed, out of order, from someone
    /// else — is [`LinkError::Tampered`], and the link is unusable after it.
    pub fn decrypt(&mut self, cipher: &[u8], out: &mut Vec<u8>) -> Result<(), LinkError> {
        if cipher.len() > MAX_MSG {
            return Err(LinkError::TooLarge {
                len: cipher.len(),
                max: MAX_MSG,
            });
        }
        out.resize(cipher.len(), 0);
        let n = self
            .state
            .read_message(cipher, out)
            .map_err(LinkError::Tampered)?;
        out.truncate(n);
        Ok(())
    }

    /// Encrypts `plain` of any length as a sequence of messages of at most [`MAX_MSG`] bytes,
    /// each handed to `emit`.
    pub fn encrypt_all(
        &mut self,
        plain: &[u8],
        mut emit: impl FnMut(Vec<u8>),
    ) -> Result<(), LinkError> {
        for chunk in plain.chunks(MAX_PLAIN) {
            let mut out = Vec::new();
            self.encrypt(chunk, &mut out)?;
            emit(out);
        }
        Ok(())
    }
}
