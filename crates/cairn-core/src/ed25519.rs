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
//! cairn therefore checks every signature, single or in a batch, against one rule, written
//! normatively in `docs/FORMAT.md` ("Signature acceptance rule"). It is **ZIP-215's rule
//! plus the rejection of small-order `A` and `R`**:
//!
//! - `A` and `R` decode as ZIP-215 says (curve25519-dalek's `decompress`): `y` is read
//!   modulo `p`, so the 20 non-canonical encodings of large-order points are accepted, and
//!   `x = 0` with the sign bit set decodes (to a small-order point, rejected below);
//! - a small-order `A` (weak key) or `R` (`[8]P = 0`, 14 encodings in all) is rejected —
//!   ZIP-215 accepts them, which lets anyone "sign" any message for a small-order key;
//! - `s` must be canonical (`s < ℓ`), as in RFC 8032 and ZIP-215;
//! - the equation is cofactored, with `k` hashed over the bytes as received:
//!
//! ```text
//! [8]([s]B − R − [k]A) = 0,   k = SHA-512(R_bytes ‖ A_bytes ‖ M) mod ℓ
//! ```
//!
//! A batch of `n` signatures checks `[8](−(Σ zᵢsᵢ)B + Σ zᵢRᵢ + Σ (zᵢkᵢ)Aᵢ) = 0` with random
//! 128-bit `zᵢ`: it holds for every batch of individually valid signatures, and fails (but
//! for a 2⁻¹²⁸ chance) when one is invalid. So single and batch verification accept exactly
//! the same signatures. Every honestly made ed25519 signature satisfies both. The
//! coefficients need the OS random source; if it fails, the batch is not decided and the
//! failure is reported (see [`check_batch`]).
//!
//! The tests (`ed25519_tests.rs`) hold the rule against RFC 8032's vectors, the 12 cases of
//! "Taming the many EdDSAs", ZIP-215's small-order and non-canonical encodings, and
//! ed25519-zebra (a ZIP-215 implementation) on random and edge-case inputs.

use std::collections::HashMap;

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use sha2::{Digest, Sha512};

use crate::RandomSourceError;

/// Where batch coefficients come from: the OS random source, or a stand-in in tests.
pub(crate) type RandomSource = fn(&mut [u8]) -> Result<(), RandomSourceError>;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// The cofactored, randomized check of many signatures, all prepared with `keys`, drawing
/// the coefficients from `random`.
///
/// Terms of the same key are summed first (`Σ (zᵢkᵢ)A = (Σ zᵢkᵢ)A`), so a batch by one author
/// is a multiscalar multiplication of `n + 2` points instead of `2n + 1`. A batch of zero or
/// one signature needs no coefficients, and so no randomness.
pub(crate) fn check_batch(
    keys: &Keys,
    ps: &[Prepared],
    random: RandomSource,
) -> Result<bool, RandomSourceError> {
    match ps {
        [] => return Ok(true),
        [one] => return Ok(check(keys, one)),
        _ => {}
    }
    let zs = coefficients(ps, random)?;
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
    Ok(EdwardsPoint::vartime_multiscalar_mul(scalars, points)
        .mul_by_cofactor()
        .is_identity())
}

/// Random 128-bit coefficients: a 32-byte seed from `random` keys a BLAKE3 hash of the batch
/// itself, whose output gives the coefficients. A failure of `random` is returned, never
/// papered over: coefficients a signer could predict would let a crafted batch pass.
fn coefficients(ps: &[Prepared], random: RandomSource) -> Result<Vec<Scalar>, RandomSourceError> {
    let mut seed = [0u8; 32];
    random(&mut seed)?;
    let mut h = blake3::Hasher::new_keyed(&seed);
    for p in ps {
        h.update(&p.r_bytes);
        h.update(p.k.as_bytes());
        h.update(p.s.as_bytes());
    }
    let mut xof = h.finalize_xof();
    Ok(ps
        .iter()
        .map(|_| {
            let mut z = [0u8; 32];
            xof.fill(&mut z[..16]);
            Scalar::from_bytes_mod_order(z)
        })
        .collect())
}

#[cfg(test)]
#[path = "ed25519_tests.rs"]
mod tests;
