//! Signature-check speed of cairn's own verifier against ed25519-zebra (ZIP-215), on one
//! thread, for the same nodes as `cairn-bench verify`: N nodes with 32-byte values, by one
//! author and by 64.
//!
//! ```text
//! cargo run --release -p cairn-core --example verify_vs_zebra -- 20000
//! ```
//!
//! ed25519-zebra alone accepts more than cairn's rule (small-order `A` and `R`); the last two
//! columns add the small-order checks that cairn would have to run on top of it: by
//! decompressing `A` (once per key) and `R` and testing `[8]P = 0`, or by looking the bytes
//! of `A` and `R` up among the 14 encodings of small-order points (the same test, since a
//! point has small order exactly when its encoding is one of those 14; see
//! `zip215_encodings_fixture_is_complete_and_right`). Rates are signatures per second;
//! each figure is the best of 3 runs.
//!
//! Measured 2026-12-02 on a 2-core machine under a load average of 14–19 (other builds
//! running), so only the ratios mean anything; re-run on an idle machine before deciding.
//! Batched, one author: cairn 28.9–34.7 k/s, ed25519-zebra 26.6–34.5 k/s, ed25519-zebra with
//! the table check 35.4–36.2 k/s, with the decompressing check 15.6–20.7 k/s; 64 authors:
//! cairn 23.9–35.0 k/s, ed25519-zebra 30.2–37.5 k/s, with the table check 27.4–32.8 k/s.
//! Singly, both run at 4.6–8.3 k/s.

use std::error::Error;
use std::time::Instant;

use cairn_core::{Ed25519Verifier, Keypair, Limits, Node, Verify};
use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_zebra as zebra;

/// A CSPRNG for ed25519-zebra's batch verifier: BLAKE3 keyed from the OS.
struct Rng(blake3::OutputReader);

impl rand_core::TryRng for Rng {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.0.fill(&mut b);
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.0.fill(&mut b);
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.0.fill(dst);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for Rng {}

fn rng() -> Result<Rng, Box<dyn Error>> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)?;
    Ok(Rng(blake3::Hasher::new_keyed(&seed).finalize_xof()))
}

/// Signatures per second of `f` over `n` signatures, best of 3.
fn rate(
    n: usize,
    mut f: impl FnMut() -> Result<(), Box<dyn Error>>,
) -> Result<f64, Box<dyn Error>> {
    let mut best = 0f64;
    for _ in 0..3 {
        let t = Instant::now();
        f()?;
        best = best.max(n as f64 / t.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn not_small_order(bytes: &[u8]) -> Result<(), Box<dyn Error>> {
    let p = CompressedEdwardsY::from_slice(bytes)?
        .decompress()
        .ok_or("point does not decode")?;
    if p.is_small_order() {
        return Err("small-order point".into());
    }
    Ok(())
}

/// The 14 encodings of the 8 small-order points: canonical, with the sign bit set where
/// `x = 0`, and `y + p` for `y < 19`.
fn small_order_encodings() -> Vec<[u8; 32]> {
    let mut out: Vec<[u8; 32]> = EIGHT_TORSION.iter().map(|t| t.compress().0).collect();
    let mut candidates: Vec<[u8; 32]> = out
        .iter()
        .map(|c| {
            let mut b = *c;
            b[31] |= 0x80;
            b
        })
        .collect();
    for y in 0..19u8 {
        for sign in [0, 0x80] {
            let mut b = [0xffu8; 32];
            b[0] = 0xed + y;
            b[31] = 0x7f | sign;
            candidates.push(b);
        }
    }
    for b in candidates {
        if !out.contains(&b)
            && CompressedEdwardsY(b)
                .decompress()
                .is_some_and(|p| p.is_small_order())
        {
            out.push(b);
        }
    }
    out
}

fn main() -> Result<(), Box<dyn Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    let limits = Limits::default();
    let chunk = 2048;
    println!("{n} signatures, one thread, batches of {chunk}; signatures/s (best of 3)");
    let small = small_order_encodings();
    assert_eq!(small.len(), 14);
    println!(
        "authors | cairn single | zebra single | cairn batch | zebra batch | + small-order by decompressing | + small-order by table"
    );
    for authors in [1usize, 64] {
        let keys: Vec<Keypair> = (0..authors)
            .map(|i| Keypair::from_seed([i as u8 + 1; 32]))
            .collect();
        let nodes: Vec<Node> = (0..n)
            .map(|i| {
                let mut value = [0u8; 32];
                value[..8].copy_from_slice(&(i as u64).to_le_bytes());
                Node::signed([], value.to_vec(), &keys[i % authors], &limits)
            })
            .collect::<Result<_, _>>()?;
        let triples: Vec<([u8; 32], [u8; 64], [u8; 32])> = nodes
            .iter()
            .map(|n| {
                let author = n.author().ok_or("unsigned")?.0;
                let sig = n.signature().ok_or("unsigned")?.0;
                Ok((author, sig, n.key().0))
            })
            .collect::<Result<_, Box<dyn Error>>>()?;
        let v = Ed25519Verifier::strict();

        let cairn_single = rate(n, || {
            for node in &nodes {
                v.verify(node)?;
            }
            Ok(())
        })?;
        let zebra_single = rate(n, || {
            for (a, s, m) in &triples {
                zebra::VerificationKey::try_from(*a)?
                    .verify(&zebra::Signature::from_bytes(s), m)?;
            }
            Ok(())
        })?;
        let cairn_batch = rate(n, || {
            for c in nodes.chunks(chunk) {
                v.verify_batch(c)?;
            }
            Ok(())
        })?;
        #[derive(Clone, Copy)]
        enum Checks {
            None,
            Decompress,
            Table,
        }
        let zebra_batch = |checks: Checks| {
            rate(n, || {
                for c in triples.chunks(chunk) {
                    let mut b = zebra::batch::Verifier::new();
                    let mut seen = std::collections::HashSet::new();
                    for (a, s, m) in c {
                        match checks {
                            Checks::None => {}
                            Checks::Decompress => {
                                if seen.insert(*a) {
                                    not_small_order(a)?;
                                }
                                not_small_order(&s[..32])?;
                            }
                            Checks::Table => {
                                if small.contains(a) || small.iter().any(|e| e[..] == s[..32]) {
                                    return Err("small-order point".into());
                                }
                            }
                        }
                        let vk = zebra::VerificationKeyBytes::from(*a);
                        b.queue((vk, zebra::Signature::from_bytes(s), &m[..]));
                    }
                    b.verify(rng()?)?;
                }
                Ok(())
            })
        };
        let zebra_plain = zebra_batch(Checks::None)?;
        let zebra_decompress = zebra_batch(Checks::Decompress)?;
        let zebra_table = zebra_batch(Checks::Table)?;
        println!(
            "{authors:>7} | {cairn_single:>12.0} | {zebra_single:>12.0} | {cairn_batch:>11.0} | {zebra_plain:>11.0} | {zebra_decompress:>30.0} | {zebra_table:>22.0}"
        );
    }
    Ok(())
}
