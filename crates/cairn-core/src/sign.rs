//! Signing hooks (hyperlog's `identity` / `sign` / `verify`) and the ed25519 defaults
//! (hyperlog-sodium).

use std::collections::BTreeSet;
use std::fmt;

use ed25519_dalek::{Signer as _, SigningKey};

use crate::ed25519;

use crate::{Hash, Node, PublicKey, RandomSourceError, Signature, VerifyError};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no randomness for key generation: {0}")]
pub struct KeygenError(#[source] RandomSourceError);

impl Keypair {
    /// A new random key pair from the operating system's (or the browser's) CSPRNG.
    pub fn generate() -> Result<Keypair, KeygenError> {
        Self::generate_from(RandomSourceError::fill)
    }

    fn generate_from(random: ed25519::RandomSource) -> Result<Keypair, KeygenError> {
        let mut seed = [0u8; 32];
        random(&mut seed).map_err(KeygenError)?;
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

/// Whether `signature` is `public`'s signature over the 32-byte `message`, under the same rule
/// as nodes' signatures (`docs/FORMAT.md`, "Signature acceptance rule"). For other signed
/// messages than nodes (cairn-signal's); hash them with a context of their own first, so a
/// signature is never valid for two kinds of message.
pub fn verify_signature(public: &PublicKey, message: &Hash, signature: &Signature) -> bool {
    let mut keys = ed25519::Keys::default();
    ed25519::prepare(&mut keys, &public.0, &signature.0, &message.0)
        .is_ok_and(|p| ed25519::check(&keys, &p))
}

/// The default [`Verify`] policy over ed25519 signatures.
///
/// A node that names an author must carry that author's valid signature over its key, always.
/// On top of that the policy can require every node to be signed ([`Ed25519Verifier::strict`])
/// and can limit authors to an allow-list ([`Ed25519Verifier::allow`]).
///
/// Which signatures are valid is the rule of `docs/FORMAT.md` ("Signature acceptance
/// rule"): ZIP-215's cofactored check, with small-order keys and `R` rejected.
#[derive(Debug, Clone)]
pub struct Ed25519Verifier {
    require_signed: bool,
    allowed: Option<BTreeSet<PublicKey>>,
    /// The random source of batch coefficients (the OS's, but for tests).
    random: ed25519::RandomSource,
}

impl Default for Ed25519Verifier {
    fn default() -> Self {
        Self {
            require_signed: false,
            allowed: None,
            random: RandomSourceError::fill,
        }
    }
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
            ..Self::default()
        }
    }

    /// Also requires the author to be one of `authors`.
    pub fn allow(mut self, authors: impl IntoIterator<Item = PublicKey>) -> Self {
        self.allowed
            .get_or_insert_with(BTreeSet::new)
            .extend(authors);
        self
    }

    /// Checks the policy and parses the signature; `None` for an accepted unsigned node.
    fn prepare(
        &self,
        keys: &mut ed25519::Keys,
        node: &Node,
    ) -> Result<Option<ed25519::Prepared>, VerifyError> {
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
        match ed25519::prepare(keys, &author.0, &sig.0, &node.key_ref().0) {
            Ok(p) => Ok(Some(p)),
            Err(ed25519::Reject::Key) => Err(VerifyError::BadPublicKey {
                key: node.key(),
                author: *author,
            }),
            Err(ed25519::Reject::Signature) => Err(bad_signature(node)),
        }
    }
}

fn bad_signature(node: &Node) -> VerifyError {
    VerifyError::BadSignature {
        key: node.key(),
        author: node.author().copied().unwrap_or(PublicKey([0; 32])),
    }
}

impl Verify for Ed25519Verifier {
    /// Checks one node with the cofactored ed25519 equation (see `ed25519.rs`), which accepts
    /// exactly what [`Verify::verify_batch`] accepts.
    fn verify(&self, node: &Node) -> Result<(), VerifyError> {
        let mut keys = ed25519::Keys::default();
        match self.prepare(&mut keys, node)? {
            Some(p) if !ed25519::check(&keys, &p) => Err(bad_signature(node)),
            _ => Ok(()),
        }
    }

    /// Verifies all signatures of `nodes` in one randomized batch (about twice as fast as one
    /// by one); when the batch fails, checks them one by one to name the first bad node.
    /// If the OS random source fails, returns [`VerifyError::Randomness`] and decides
    /// nothing about the nodes.
    fn verify_batch(&self, nodes: &[Node]) -> Result<(), VerifyError> {
        let mut prepared = Vec::with_capacity(nodes.len());
        let mut keys = ed25519::Keys::default();
        for n in nodes {
            if let Some(p) = self.prepare(&mut keys, n)? {
                prepared.push(p);
            }
        }
        if ed25519::check_batch(&keys, &prepared, self.random).map_err(VerifyError::Randomness)? {
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

    /// Batches group the terms of each author; a wrong signature anywhere in a batch of a few
    /// authors with many nodes each must still fail it, and an author's valid signature
    /// moved onto another author's node too.
    #[test]
    fn batches_with_repeated_authors_catch_every_bad_signature() {
        let l = Limits::default();
        let keys: Vec<Keypair> = (1..=3).map(|i| Keypair::from_seed([i; 32])).collect();
        let nodes: Vec<Node> = (0..60u8)
            .map(|i| Node::signed([], vec![i], &keys[usize::from(i) % 3], &l).unwrap())
            .collect();
        let v = Ed25519Verifier::strict();
        v.verify_batch(&nodes).unwrap();
        for bad in [0, 17, 59] {
            let mut batch = nodes.clone();
            let n = nodes[bad].clone();
            // A valid signature by the right key, but over another node's key.
            let other = &nodes[(bad + 3) % nodes.len()];
            let draft = Draft::new([], n.author().copied(), n.value().to_vec(), &l).unwrap();
            batch[bad] = draft.finish(other.signature().copied()).unwrap();
            assert!(matches!(
                v.verify_batch(&batch),
                Err(VerifyError::BadSignature { .. })
            ));
            // The node of one author, signed by another.
            let draft = Draft::new([], n.author().copied(), b"swap".to_vec(), &l).unwrap();
            let wrong = keys[(bad + 1) % 3].sign(&draft.key());
            batch[bad] = draft.finish(Some(wrong)).unwrap();
            assert!(matches!(
                v.verify_batch(&batch),
                Err(VerifyError::BadSignature { .. })
            ));
        }
    }

    /// A signature whose R has a small-order component, made by the key's owner: ed25519-dalek
    /// rejects it singly but its batch accepts it some of the time. cairn's single and batch
    /// checks must agree on it every time, whatever else is in the batch.
    #[test]
    fn single_and_batch_verification_agree_on_torsion_signatures() {
        use curve25519_dalek::constants::ED25519_BASEPOINT_POINT as B;
        use curve25519_dalek::edwards::CompressedEdwardsY;
        use curve25519_dalek::scalar::Scalar;
        use sha2::{Digest, Sha512};

        let seed = [9u8; 32];
        let kp = Keypair::from_seed(seed);
        let h: [u8; 64] = Sha512::digest(seed).into();
        let mut a_bytes = [0u8; 32];
        a_bytes.copy_from_slice(&h[..32]);
        a_bytes[0] &= 248;
        a_bytes[31] &= 127;
        a_bytes[31] |= 64;
        let a = Scalar::from_bytes_mod_order(a_bytes);
        assert_eq!((a * B).compress().0, kp.public().0);
        // The point (0, -1), of order 2.
        let mut t_bytes = [0xffu8; 32];
        t_bytes[0] = 0xec;
        t_bytes[31] = 0x7f;
        let t = CompressedEdwardsY(t_bytes).decompress().unwrap();
        assert!(t.is_small_order());

        let l = Limits::default();
        let draft = Draft::new([], Some(kp.public()), b"torsion".to_vec(), &l).unwrap();
        let r = Scalar::from_bytes_mod_order([7; 32]);
        let big_r = (r * B + t).compress();
        let mut hk = Sha512::new();
        hk.update(big_r.0);
        hk.update(kp.public().0);
        hk.update(draft.key().0);
        let k = Scalar::from_bytes_mod_order_wide(&hk.finalize().into());
        let sig_s = r + k * a;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&big_r.0);
        sig[32..].copy_from_slice(sig_s.as_bytes());
        let odd = draft.finish(Some(Signature(sig))).unwrap();

        let v = Ed25519Verifier::strict();
        let single = v.verify(&odd).is_ok();
        for i in 0..64u32 {
            let others: Vec<Node> = (0..(i % 5))
                .map(|j| Node::signed([], format!("{i}-{j}").into_bytes(), &kp, &l).unwrap())
                .collect();
            let mut batch = others.clone();
            batch.insert((i as usize) % (others.len() + 1), odd.clone());
            assert_eq!(
                v.verify_batch(&batch).is_ok(),
                single,
                "batch {i} disagrees"
            );
        }
        // Under the cofactored rule the owner's odd signature is valid, and stays so.
        assert!(single);
    }

    fn failing_source(_: &mut [u8]) -> Result<(), RandomSourceError> {
        Err(RandomSourceError::unsupported())
    }

    /// A failed OS random source is reported, not ignored: before, the batch went on with an
    /// all-zero seed and accepted; now `verify_batch` says it could not decide.
    #[test]
    fn batch_verification_reports_a_failed_random_source() {
        let l = Limits::default();
        let kp = Keypair::from_seed([3; 32]);
        let nodes: Vec<Node> = (0..4u8)
            .map(|i| Node::signed([], vec![i], &kp, &l).unwrap())
            .collect();
        let broken = Ed25519Verifier {
            random: failing_source,
            ..Ed25519Verifier::strict()
        };
        assert_eq!(
            broken.verify_batch(&nodes),
            Err(VerifyError::Randomness(RandomSourceError::unsupported()))
        );
        // One node needs no coefficients, and single checks no randomness.
        broken.verify_batch(&nodes[..1]).unwrap();
        broken.verify(&nodes[2]).unwrap();
        // With the OS source the same batch passes.
        Ed25519Verifier::strict().verify_batch(&nodes).unwrap();
    }

    #[test]
    fn key_generation_reports_a_failed_random_source() {
        let e = Keypair::generate_from(failing_source).unwrap_err();
        assert_eq!(e, KeygenError(RandomSourceError::unsupported()));
        assert!(e.to_string().contains("no randomness for key generation"));
    }

    #[test]
    fn generated_keys_differ_and_sign() {
        let k1 = Keypair::generate().unwrap();
        let k2 = Keypair::generate().unwrap();
        assert_ne!(k1.public(), k2.public());
        assert_eq!(Keypair::from_seed(k1.seed()).public(), k1.public());
    }
}
