//! Signing hooks (hyperlog's `identity` / `sign` / `verify`) and the ed25519 defaults
//! (hyperlog-sodium).

use std::collections::BTreeSet;
use std::fmt;

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

use crate::{Hash, Node, PublicKey, Signature, VerifyError};

/// Signs the nodes a log appends.
pub trait Signer: Send + Sync {
    /// The public key written into every node this signer signs.
    fn identity(&self) -> PublicKey;
    /// Signs a node key.
    fn sign(&self, key: &Hash) -> Signature;
}

/// A verification policy: decides which received nodes a log accepts.
pub trait Verify: Send + Sync {
    /// Checks one node.
    fn verify(&self, node: &Node) -> Result<(), VerifyError>;

    /// Checks many nodes; the default checks them one by one. The first failure is returned.
    fn verify_batch(&self, nodes: &[Node]) -> Result<(), VerifyError> {
        nodes.iter().try_for_each(|n| self.verify(n))
    }
}

/// An ed25519 key pair: the default [`Signer`].
#[derive(Clone)]
pub struct Keypair(SigningKey);

/// The operating system's random number generator failed.
#[derive(Debug, thiserror::Error)]
#[error("no randomness for key generation: {0}")]
pub struct KeygenError(String);

impl Keypair {
    /// A new random key pair from the operating system's (or the browser's) CSPRNG.
    pub fn generate() -> Result<Keypair, KeygenError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeygenError(e.to_string()))?;
        Ok(Keypair::from_seed(seed))
    }

    /// The key pair of a 32-byte secret seed.
    pub fn from_seed(seed: [u8; 32]) -> Keypair {
        Keypair(SigningKey::from_bytes(&seed))
    }

    /// The secret seed. Keep it secret.
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({})", self.public())
    }
}

impl Signer for Keypair {
    fn identity(&self) -> PublicKey {
        self.public()
    }
    fn sign(&self, key: &Hash) -> Signature {
        Signature(self.0.sign(&key.0).to_bytes())
    }
}

/// The default [`Verify`] policy over ed25519 signatures.
///
/// A node that names an author must carry that author's valid signature over its key, always.
/// On top of that the policy can require every node to be signed ([`Ed25519Verifier::strict`])
/// and can limit authors to an allow-list ([`Ed25519Verifier::allow`]).
#[derive(Debug, Clone, Default)]
pub struct Ed25519Verifier {
    require_signed: bool,
    allowed: Option<BTreeSet<PublicKey>>,
}

impl Ed25519Verifier {
    /// Accepts unsigned nodes; checks the signature of every signed one.
    pub fn permissive() -> Self {
        Self::default()
    }

    /// Accepts only signed nodes with valid signatures.
    pub fn strict() -> Self {
        Self {
            require_signed: true,
            allowed: None,
        }
    }

    /// Also requires the author to be one of `authors`.
    pub fn allow(mut self, authors: impl IntoIterator<Item = PublicKey>) -> Self {
        self.allowed
            .get_or_insert_with(BTreeSet::new)
            .extend(authors);
        self
    }

    /// Checks the policy and parses the author; `None` for an accepted unsigned node.
    fn prepare<'n>(
        &self,
        node: &'n Node,
    ) -> Result<Option<(VerifyingKey, ed25519_dalek::Signature, &'n Hash)>, VerifyError> {
        let (Some(author), Some(sig)) = (node.author(), node.signature()) else {
            return if self.require_signed {
                Err(VerifyError::Unsigned(node.key()))
            } else {
                Ok(None)
            };
        };
        if let Some(allowed) = &self.allowed
            && !allowed.contains(author)
        {
            return Err(VerifyError::UnknownAuthor {
                key: node.key(),
                author: *author,
            });
        }
        let vk = VerifyingKey::from_bytes(&author.0)
            .ok()
            .filter(|vk| !vk.is_weak())
            .ok_or(VerifyError::BadPublicKey {
                key: node.key(),
                author: *author,
            })?;
        let key = node_key_ref(node);
        Ok(Some((
            vk,
            ed25519_dalek::Signature::from_bytes(&sig.0),
            key,
        )))
    }
}

// `Node::key` returns by value; the batch API wants borrowed messages, so keep the keys alive.
fn node_key_ref(node: &Node) -> &Hash {
    node.key_ref()
}

impl Verify for Ed25519Verifier {
    fn verify(&self, node: &Node) -> Result<(), VerifyError> {
        match self.prepare(node)? {
            None => Ok(()),
            Some((vk, sig, key)) => {
                vk.verify_strict(&key.0, &sig)
                    .map_err(|_| VerifyError::BadSignature {
                        key: node.key(),
                        author: vk.to_bytes().into(),
                    })
            }
        }
    }

    /// Verifies all signatures of `nodes` in one ed25519 batch (about twice as fast as one
    /// by one); when the batch fails, checks them one by one to name the first bad node.
    fn verify_batch(&self, nodes: &[Node]) -> Result<(), VerifyError> {
        let mut msgs: Vec<&[u8]> = Vec::with_capacity(nodes.len());
        let mut sigs = Vec::with_capacity(nodes.len());
        let mut vks = Vec::with_capacity(nodes.len());
        for n in nodes {
            if let Some((vk, sig, key)) = self.prepare(n)? {
                msgs.push(&key.0);
                sigs.push(sig);
                vks.push(vk);
            }
        }
        if msgs.is_empty() || ed25519_dalek::verify_batch(&msgs, &sigs, &vks).is_ok() {
            return Ok(());
        }
        nodes.iter().try_for_each(|n| self.verify(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Draft, Limits};

    #[test]
    fn policies() {
        let a = Keypair::from_seed([1; 32]);
        let b = Keypair::from_seed([2; 32]);
        let l = Limits::default();
        let signed_a = Node::signed([], b"a".to_vec(), &a, &l).unwrap();
        let signed_b = Node::signed([], b"b".to_vec(), &b, &l).unwrap();
        let unsigned = Node::unsigned([], b"u".to_vec(), &l).unwrap();

        Ed25519Verifier::permissive().verify(&unsigned).unwrap();
        assert_eq!(
            Ed25519Verifier::strict().verify(&unsigned),
            Err(VerifyError::Unsigned(unsigned.key()))
        );
        let only_a = Ed25519Verifier::strict().allow([a.public()]);
        only_a.verify(&signed_a).unwrap();
        assert!(matches!(
            only_a.verify(&signed_b),
            Err(VerifyError::UnknownAuthor { .. })
        ));

        // A signature by b on a node that names a as author.
        let draft = Draft::new([], Some(a.public()), b"forged".to_vec(), &l).unwrap();
        let forged_sig = b.sign(&draft.key());
        let forged = draft.finish(Some(forged_sig)).unwrap();
        assert!(matches!(
            Ed25519Verifier::permissive().verify(&forged),
            Err(VerifyError::BadSignature { .. })
        ));
        let v = Ed25519Verifier::permissive();
        v.verify_batch(&[signed_a.clone(), unsigned.clone(), signed_b.clone()])
            .unwrap();
        assert!(matches!(
            v.verify_batch(&[signed_a, forged, signed_b]),
            Err(VerifyError::BadSignature { .. })
        ));
    }

    #[test]
    fn generated_keys_differ_and_sign() {
        let k1 = Keypair::generate().unwrap();
        let k2 = Keypair::generate().unwrap();
        assert_ne!(k1.public(), k2.public());
        assert_eq!(Keypair::from_seed(k1.seed()).public(), k1.public());
    }
}
