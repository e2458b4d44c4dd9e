//! ed25519 verification with one equation for single and batch checks.
//!
//! ed25519-dalek checks a single signature with the *cofactorless* equation
//! `[s]B = R + [k]A` but a batch with a randomized equation that, for signatures whose `R` or
//! `A` has a small-order component, can accept what the single check rejects (with
//! probability ≈ 1/8, varying with the other signatures of the batch). Only the key's owner
//! can make such a signature, but then two peers — one checking singly, one in a batch, or
//! two with different batches — could disagree on accepting the same node, and their logs
//! would never converge.
//!
//! cairn uses the **cofactored** equation everywhere, as ZIP-215 does:
//!
//! ```text
//! [8]([s]B − R − [k]A) = 0,   k = SHA-512(R ‖ A ‖ M) mod ℓ,   s < ℓ (canonical)
//! ```
//!
//! and rejects a small-order `A` (weak key) or `R`. A batch of `n` signatures checks
//! `[8](−(Σ zᵢsᵢ)B + Σ zᵢRᵢ + Σ (zᵢkᵢ)Aᵢ) = 0` with random 128-bit `zᵢ`: it holds for every
//! batch of individually valid signatures, and fails (but for a 2⁻¹²⁸ chance) when one is
//! invalid. So single and batch verification accept exactly the same signatures. Every
//! honestly made ed25519 signature satisfies both.

use std::collections::HashMap;

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use sha2::{Digest, Sha512};

/// A signature parsed and ready to check; its key is an index into the [`Keys`] it was
/// prepared with.
pub(crate) struct Prepared {
    a: usize,
    r: EdwardsPoint,
    r_bytes: [u8; 32],
    s: Scalar,
    k: Scalar,
}

/// Why a signature could not even be parsed.
pub(crate) enum Reject {
    /// The public key does not decode, or has small order.
    Key,
    /// `R` does not decode or has small order, or `s` is not canonical.
    Signature,
}

/// The distinct public keys of a batch, each decompressed once.
///
/// Decompression is a field square root, about a sixth of a signature's batched cost, and in
/// a clone of one writer's log every node names the same key; the batch check also sums the
/// terms of each key (see [`check_batch`]).
#[derive(Default)]
pub(crate) struct Keys {
    index: HashMap<[u8; 32], usize>,
    points: Vec<EdwardsPoint>,
}

impl Keys {
    /// The index of `public`, decompressing it the first time.
    fn index(&mut self, public: &[u8; 32]) -> Result<usize, Reject> {
        if let Some(i) = self.index.get(public) {
            return Ok(*i);
        }
        let a = CompressedEdwardsY(*public)
            .decompress()
            .filter(|a| !a.is_small_order())
            .ok_or(Reject::Key)?;
        self.points.push(a);
        self.index.insert(*public, self.points.len() - 1);
        Ok(self.points.len() - 1)
    }
}

/// Parses a public key, a signature and the signed message.
pub(crate) fn prepare(
    keys: &mut Keys,
    public: &[u8; 32],
    sig: &[u8; 64],
    msg: &[u8],
) -> Result<Prepared, Reject> {
    let a = keys.index(public)?;
    let mut r_bytes = [0u8; 32];
    r_bytes.copy_from_slice(&sig[..32]);
    let r = CompressedEdwardsY(r_bytes)
        .decompress()
        .filter(|r| !r.is_small_order())
        .ok_or(Reject::Signature)?;
    let mut s_bytes = [0u8; 32];
    s_bytes.copy_from_slice(&sig[32..]);
    let s =
        Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)).ok_or(Reject::Signature)?;
    let mut h = Sha512::new();
    h.update(r_bytes);
    h.update(public);
    h.update(msg);
    let wide: [u8; 64] = h.finalize().into();
    let k = Scalar::from_bytes_mod_order_wide(&wide);
    Ok(Prepared {
        a,
        r,
        r_bytes,
        s,
        k,
    })
}

/// The cofactored check of one signature.
pub(crate) fn check(keys: &Keys, p: &Prepared) -> bool {
    // [s]B − [k]A − R
    let a = keys.points[p.a];
    let sb_minus_ka = EdwardsPoint::vartime_double_scalar_mul_basepoint(&p.k, &(-a), &p.s);
    (sb_minus_ka - p.r).mul_by_cofactor().is_identity()
}

/// The cofactored, randomized check of many signatures, all prepared with `keys`.
///
/// Terms of the same key are summed first (`Σ (zᵢkᵢ)A = (Σ zᵢkᵢ)A`), so a batch by one author
/// is a multiscalar multiplication of `n + 2` points instead of `2n + 1`.
pub(crate) fn check_batch(keys: &Keys, ps: &[Prepared]) -> bool {
    match ps {
        [] => return true,
        [one] => return check(keys, one),
        _ => {}
    }
    let zs = coefficients(ps);
    let b_coefficient: Scalar = ps.iter().zip(&zs).map(|(p, z)| z * p.s).sum();
    let mut key_coefficients = vec![Scalar::ZERO; keys.points.len()];
    for (p, z) in ps.iter().zip(&zs) {
        key_coefficients[p.a] += z * p.k;
    }
    let scalars = std::iter::once(-b_coefficient)
        .chain(zs.iter().copied())
        .chain(key_coefficients);
    let points = std::iter::once(ED25519_BASEPOINT_POINT)
        .chain(ps.iter().map(|p| p.r))
        .chain(keys.points.iter().copied());
    EdwardsPoint::vartime_multiscalar_mul(scalars, points)
        .mul_by_cofactor()
        .is_identity()
}

/// Random 128-bit coefficients: from the OS's randomness, mixed with the batch itself (so
/// they stay unpredictable to a signer even if the OS source failed).
fn coefficients(ps: &[Prepared]) -> Vec<Scalar> {
    let mut seed = [0u8; 32];
    let _ = getrandom::fill(&mut seed);
    let mut h = blake3::Hasher::new_keyed(&seed);
    for p in ps {
        h.update(&p.r_bytes);
        h.update(p.k.as_bytes());
        h.update(p.s.as_bytes());
    }
    let mut xof = h.finalize_xof();
    ps.iter()
        .map(|_| {
            let mut z = [0u8; 32];
            xof.fill(&mut z[..16]);
            Scalar::from_bytes_mod_order(z)
        })
        .collect()
}
