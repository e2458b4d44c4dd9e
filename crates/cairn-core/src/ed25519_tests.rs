//! The signature acceptance rule of `docs/FORMAT.md`, held against published vectors
//! (RFC 8032, "Taming the many EdDSAs", ZIP-215's encodings; committed under
//! `tests/fixtures/ed25519/`, each file naming its source) and against ed25519-zebra, an
//! implementation of ZIP-215, on random and edge-case inputs, singly and in batches.
//!
//! The rule is ZIP-215's with small-order `A` and `R` rejected, so the oracle here is
//! "ed25519-zebra accepts, and neither `A` nor `R` is one of the 14 small-order encodings".

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::LazyLock;

use curve25519_dalek::constants::EIGHT_TORSION;
use ed25519_zebra as zebra;
use proptest::prelude::*;

use super::*;

// ---------------------------------------------------------------------------------------
// Fixtures

fn fixture(name: &str) -> Vec<String> {
    let path = format!(
        "{}/tests/fixtures/ed25519/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

fn bytes<const N: usize>(h: &str) -> [u8; N] {
    hex::decode(h).unwrap().try_into().unwrap()
}

/// One line of `zip215-encodings.txt`.
struct Encoding {
    bytes: [u8; 32],
    /// 1, 2, 4 or 8; `None` for a point of large order.
    order: Option<u8>,
    canonical: bool,
}

fn zip215_encodings() -> Vec<Encoding> {
    fixture("zip215-encodings.txt")
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!(f.len(), 3, "{l}");
            Encoding {
                bytes: bytes(f[0]),
                order: (f[1] != "large").then(|| f[1].parse().unwrap()),
                canonical: match f[2] {
                    "canonical" => true,
                    "non-canonical" => false,
                    other => panic!("{other}"),
                },
            }
        })
        .collect()
}

/// The 14 encodings of the 8 small-order points.
static SMALL_ORDER: LazyLock<Vec<[u8; 32]>> = LazyLock::new(|| {
    zip215_encodings()
        .into_iter()
        .filter(|e| e.order.is_some())
        .map(|e| e.bytes)
        .collect()
});

/// The 20 non-canonical encodings of large-order points.
static LARGE_NON_CANONICAL: LazyLock<Vec<[u8; 32]>> = LazyLock::new(|| {
    zip215_encodings()
        .into_iter()
        .filter(|e| e.order.is_none())
        .map(|e| e.bytes)
        .collect()
});

static SMALL_ORDER_SET: LazyLock<HashSet<[u8; 32]>> =
    LazyLock::new(|| SMALL_ORDER.iter().copied().collect());

// ---------------------------------------------------------------------------------------
// The implementations under comparison

/// One signature to check: public key, signature, message.
#[derive(Debug, Clone)]
struct Item {
    pk: [u8; 32],
    sig: [u8; 64],
    msg: Vec<u8>,
}

/// cairn's verdict on one signature, with the reason of a rejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Accept,
    /// `A` does not decode or has small order.
    Key,
    /// `R` does not decode or has small order, or `s` is not canonical.
    Signature,
    /// Everything parses but the cofactored equation does not hold.
    Equation,
}

fn cairn(it: &Item) -> Verdict {
    let mut keys = Keys::default();
    match prepare(&mut keys, &it.pk, &it.sig, &it.msg) {
        Err(Reject::Key) => Verdict::Key,
        Err(Reject::Signature) => Verdict::Signature,
        Ok(p) if check(&keys, &p) => Verdict::Accept,
        Ok(_) => Verdict::Equation,
    }
}

/// cairn's batch verdict, reached as `Ed25519Verifier::verify_batch` reaches it.
fn cairn_batch(items: &[Item]) -> bool {
    let mut keys = Keys::default();
    let mut ps = Vec::new();
    for it in items {
        match prepare(&mut keys, &it.pk, &it.sig, &it.msg) {
            Ok(p) => ps.push(p),
            Err(_) => return false,
        }
    }
    check_batch(&keys, &ps, RandomSourceError::fill).expect("the OS random source works")
}

fn zebra_single(it: &Item) -> bool {
    let sig = zebra::Signature::from_bytes(&it.sig);
    zebra::VerificationKey::try_from(it.pk)
        .and_then(|vk| vk.verify(&sig, &it.msg))
        .is_ok()
}

/// A CSPRNG for ed25519-zebra's batch verifier: BLAKE3 keyed from the OS.
struct TestRng(blake3::OutputReader);

impl TestRng {
    fn new() -> TestRng {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).unwrap();
        TestRng(blake3::Hasher::new_keyed(&seed).finalize_xof())
    }
}

impl rand_core::TryRng for TestRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.0.fill(&mut b);
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.0.fill(&mut b);
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.0.fill(dst);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for TestRng {}

fn zebra_batch(items: &[Item]) -> bool {
    let mut v = zebra::batch::Verifier::new();
    for it in items {
        let sig = zebra::Signature::from_bytes(&it.sig);
        v.queue((zebra::VerificationKeyBytes::from(it.pk), sig, &it.msg[..]));
    }
    v.verify(TestRng::new()).is_ok()
}

/// The written rule, through the reference: ZIP-215 accepts (ed25519-zebra), and neither
/// `A` nor `R` is an encoding of a small-order point.
fn rule(it: &Item) -> bool {
    let r: [u8; 32] = it.sig[..32].try_into().unwrap();
    zebra_single(it) && !SMALL_ORDER_SET.contains(&it.pk) && !SMALL_ORDER_SET.contains(&r)
}

// ---------------------------------------------------------------------------------------
// Making signatures, honest and odd

/// The secret scalar of an RFC 8032 seed.
fn secret_scalar(seed: &[u8; 32]) -> Scalar {
    let h: [u8; 64] = Sha512::digest(seed).into();
    let mut a = [0u8; 32];
    a.copy_from_slice(&h[..32]);
    a[0] &= 248;
    a[31] &= 127;
    a[31] |= 64;
    Scalar::from_bytes_mod_order(a)
}

fn challenge(r: &[u8; 32], a: &[u8; 32], msg: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(r);
    h.update(a);
    h.update(msg);
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

fn signature(r: &[u8; 32], s: &Scalar) -> [u8; 64] {
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(r);
    sig[32..].copy_from_slice(s.as_bytes());
    sig
}

/// A signature by the holder of `a`, with the 8-torsion points `ta` and `tr` added to the
/// public key and to `R`: valid under the cofactored equation, and an ordinary ed25519
/// signature when both are 0 (the identity).
fn torsion_signed(a: Scalar, r: Scalar, ta: usize, tr: usize, msg: &[u8]) -> Item {
    let pk = (a * ED25519_BASEPOINT_POINT + EIGHT_TORSION[ta])
        .compress()
        .0;
    let big_r = (r * ED25519_BASEPOINT_POINT + EIGHT_TORSION[tr])
        .compress()
        .0;
    let s = r + challenge(&big_r, &pk, msg) * a;
    Item {
        pk,
        sig: signature(&big_r, &s),
        msg: msg.to_vec(),
    }
}

/// `s + ℓ`: the same residue, written non-canonically (it still fits in 256 bits).
fn plus_l(s: &[u8]) -> [u8; 32] {
    // ℓ = 2^252 + 27742317777372353535851937790883648493, little-endian.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for ((o, &x), &y) in out.iter_mut().zip(s).zip(&L) {
        let v = u16::from(x) + u16::from(y) + carry;
        *o = v.to_le_bytes()[0];
        carry = v >> 8;
    }
    assert_eq!(carry, 0);
    out
}

// ---------------------------------------------------------------------------------------
// Published vectors

/// RFC 8032 §7.1: every vector re-derived from its seed (so the fixture is transcribed
/// right), accepted singly and in a batch, and rejected once its message changes.
#[test]
fn rfc8032_vectors() {
    let mut items = Vec::new();
    for line in fixture("rfc8032.txt") {
        let f: Vec<&str> = line.split(':').collect();
        assert_eq!(f.len(), 5, "{line}");
        let seed: [u8; 32] = bytes(f[1]);
        let it = Item {
            pk: bytes(f[2]),
            sig: bytes(f[4]),
            msg: hex::decode(f[3]).unwrap(),
        };
        let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
        assert_eq!(sk.verifying_key().to_bytes(), it.pk, "{}", f[0]);
        use ed25519_dalek::Signer as _;
        assert_eq!(sk.sign(&it.msg).to_bytes(), it.sig, "{}", f[0]);
        assert_eq!(cairn(&it), Verdict::Accept, "{}", f[0]);
        assert!(zebra_single(&it), "{}", f[0]);

        let mut other = it.clone();
        other.msg.push(0);
        assert_eq!(cairn(&other), Verdict::Equation, "{}", f[0]);
        let mut other = it.clone();
        other.sig[40] ^= 1;
        assert_eq!(cairn(&other), Verdict::Equation, "{}", f[0]);
        items.push(it);
    }
    let names: Vec<String> = fixture("rfc8032.txt")
        .iter()
        .map(|l| l.split(':').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        ["TEST 1", "TEST 2", "TEST 3", "TEST 1024", "TEST SHA(abc)"]
    );
    assert!(cairn_batch(&items));
    for i in 0..items.len() {
        let mut batch = items.clone();
        batch[i].msg.push(1);
        assert!(!cairn_batch(&batch), "batch with vector {i} changed");
    }
}

/// The 12 cases of "Taming the many EdDSAs". cairn accepts 3, 4 and 5 (mixed-order `A` and
/// `R`, valid under the cofactored equation) and rejects the rest: 0, 1, 10, 11 for a
/// small-order `A`; 2, 8, 9 for a small-order `R`; 6, 7 for `s ≥ ℓ`. ed25519-zebra
/// gives the published ZIP-215 column, and cairn differs from it exactly on the cases with
/// a small-order `A` or `R` that ZIP-215 accepts (0, 1, 2, 9, 10, 11).
#[test]
fn taming_the_many_eddsas() {
    use Verdict::*;
    let expected = [
        Key, Key, Signature, Accept, Accept, Accept, Signature, Signature, Signature, Signature,
        Key, Key,
    ];
    let cases = fixture("taming-eddsas.txt");
    assert_eq!(cases.len(), 12);
    let mut items = Vec::new();
    for (i, line) in cases.iter().enumerate() {
        let f: Vec<&str> = line.split(':').collect();
        assert_eq!(f[0], i.to_string());
        let it = Item {
            msg: hex::decode(f[1]).unwrap(),
            pk: bytes(f[2]),
            sig: bytes(f[3]),
        };
        let published_zip215 = match f[4] {
            "V" => true,
            "X" => false,
            other => panic!("{other}"),
        };
        assert_eq!(zebra_single(&it), published_zip215, "case {i}: zebra");
        assert_eq!(cairn(&it), expected[i], "case {i}: cairn");
        assert_eq!(cairn(&it) == Accept, rule(&it), "case {i}: rule");
        assert_eq!(
            cairn_batch(std::slice::from_ref(&it)),
            expected[i] == Accept
        );
        items.push(it);
    }
    let good: Vec<Item> = items[3..6].to_vec();
    assert!(cairn_batch(&good));
    assert!(zebra_batch(&good));
    for (i, it) in items.iter().enumerate() {
        if expected[i] != Accept {
            let mut batch = good.clone();
            batch.insert(i % 4, it.clone());
            assert!(!cairn_batch(&batch), "batch with case {i}");
        }
    }
}

/// The encodings fixture says what it claims: each line decodes to a point of the stated
/// order, canonical or not as stated; the small-order lines are every encoding of the 8
/// small-order points, and the large-order lines every non-canonical encoding of a large
/// one (no other 32-byte string decodes to a small-order point or is non-canonical).
#[test]
fn zip215_encodings_fixture_is_complete_and_right() {
    let all = zip215_encodings();
    for e in &all {
        let p = CompressedEdwardsY(e.bytes)
            .decompress()
            .unwrap_or_else(|| panic!("{} does not decode", hex::encode(e.bytes)));
        assert_eq!(
            p.compress().0 == e.bytes,
            e.canonical,
            "{}",
            hex::encode(e.bytes)
        );
        let order = [1u8, 2, 4, 8]
            .into_iter()
            .find(|&k| (Scalar::from(k) * p).is_identity());
        assert_eq!(order, e.order, "{}", hex::encode(e.bytes));
        assert_eq!(p.is_small_order(), e.order.is_some());
    }
    assert_eq!(SMALL_ORDER.len(), 14);
    assert_eq!(LARGE_NON_CANONICAL.len(), 20);
    let canonical_small: HashSet<[u8; 32]> = all
        .iter()
        .filter(|e| e.order.is_some() && e.canonical)
        .map(|e| e.bytes)
        .collect();
    let torsion: HashSet<[u8; 32]> = EIGHT_TORSION.iter().map(|t| t.compress().0).collect();
    assert_eq!(canonical_small, torsion);
    // Every non-canonical encoding: y + p for y < 19 (either sign), or x = 0 with the sign
    // bit set (y = ±1).
    let mut non_canonical = HashSet::new();
    for y in 0..19u8 {
        for sign in [0, 0x80] {
            let mut b = [0xffu8; 32];
            b[0] = 0xed + y;
            b[31] = 0x7f | sign;
            if CompressedEdwardsY(b).decompress().is_some() {
                non_canonical.insert(b);
            }
        }
    }
    for t in &torsion {
        let mut b = *t;
        b[31] |= 0x80;
        if b != *t && CompressedEdwardsY(b).decompress().unwrap().compress().0 != b {
            non_canonical.insert(b);
        }
    }
    let listed: HashSet<[u8; 32]> = all
        .iter()
        .filter(|e| !e.canonical)
        .map(|e| e.bytes)
        .collect();
    assert_eq!(listed, non_canonical);
}

/// ZIP-215's small-order cases: all 196 pairs of small-order encodings as `A` and `R`, with
/// `s = 0`, are valid under ZIP-215 (ed25519-zebra accepts each, for any message) and
/// rejected by cairn for their key; an honest key with a small-order `R` and
/// `s = k·a` is valid under ZIP-215 and rejected by cairn for its `R`.
#[test]
fn zip215_small_order_cases() {
    for a in SMALL_ORDER.iter() {
        for r in SMALL_ORDER.iter() {
            let it = Item {
                pk: *a,
                sig: signature(r, &Scalar::ZERO),
                msg: b"Zcash".to_vec(),
            };
            assert!(zebra_single(&it));
            assert_eq!(cairn(&it), Verdict::Key);
            assert!(!cairn_batch(&[it.clone(), it]));
        }
    }
    let a = secret_scalar(&[5; 32]);
    let pk = (a * ED25519_BASEPOINT_POINT).compress().0;
    for r in SMALL_ORDER.iter() {
        let msg = b"small R".to_vec();
        let s = challenge(r, &pk, &msg) * a;
        let it = Item {
            pk,
            sig: signature(r, &s),
            msg,
        };
        assert!(zebra_single(&it));
        assert_eq!(cairn(&it), Verdict::Signature);
    }
}

/// ZIP-215 (and cairn) decode the 20 non-canonical encodings of large-order points: as a
/// key or as `R` they parse, and the signature is then judged by the equation alone.
#[test]
fn non_canonical_large_order_encodings_are_accepted_encodings() {
    let a = secret_scalar(&[6; 32]);
    let honest = torsion_signed(a, Scalar::from(77u64), 0, 0, b"m");
    for enc in LARGE_NON_CANONICAL.iter() {
        assert!(zebra::VerificationKey::try_from(*enc).is_ok());
        let as_key = Item {
            pk: *enc,
            ..honest.clone()
        };
        assert_eq!(cairn(&as_key), Verdict::Equation);
        let mut as_r = honest.clone();
        as_r.sig[..32].copy_from_slice(enc);
        assert_eq!(cairn(&as_r), Verdict::Equation);
        assert!(!zebra_single(&as_key) && !zebra_single(&as_r));
    }
}

/// `s` must be canonical: `s + ℓ` (same residue) and a set high bit are rejected, by
/// ZIP-215 too.
#[test]
fn non_canonical_s_is_rejected() {
    let it = torsion_signed(secret_scalar(&[8; 32]), Scalar::from(99u64), 0, 0, b"s");
    assert_eq!(cairn(&it), Verdict::Accept);
    let mut big = it.clone();
    big.sig[32..].copy_from_slice(&plus_l(&it.sig[32..]));
    assert_eq!(cairn(&big), Verdict::Signature);
    assert!(!zebra_single(&big));
    let mut high = it.clone();
    high.sig[63] |= 0x80;
    assert_eq!(cairn(&high), Verdict::Signature);
    assert!(!zebra_single(&high));
}

// ---------------------------------------------------------------------------------------
// Differential property tests against ed25519-zebra

/// How an item is made.
#[derive(Debug, Clone)]
enum Make {
    /// By the key's holder, torsion added to `A` and/or `R` (none: an honest signature).
    Torsion {
        a: [u8; 32],
        r: [u8; 32],
        ta: usize,
        tr: usize,
    },
    /// A small-order key; `R = [r]B` with `s = r` (valid under ZIP-215 for any message),
    /// or a small-order `R` with `s = 0`, or a random `s`.
    SmallKey {
        a: usize,
        r: [u8; 32],
        small_r: Option<usize>,
        random_s: Option<[u8; 32]>,
    },
    /// An honest key, a small-order `R`, `s = k·a` (valid under ZIP-215).
    SmallR { a: [u8; 32], r: usize },
    /// A valid signature whose `s` is written as `s + ℓ`.
    SPlusL { a: [u8; 32], r: [u8; 32] },
    /// A valid signature whose `A` or `R` is swapped for a non-canonical encoding.
    NonCanonical {
        a: [u8; 32],
        r: [u8; 32],
        which: usize,
        key: bool,
    },
    /// Random bytes.
    Random { pk: [u8; 32], sig: Vec<u8> },
}

fn make(m: &Make, msg: &[u8]) -> Item {
    let scalar = Scalar::from_bytes_mod_order;
    match m {
        Make::Torsion { a, r, ta, tr } => torsion_signed(scalar(*a), scalar(*r), *ta, *tr, msg),
        Make::SmallKey {
            a,
            r,
            small_r,
            random_s,
        } => {
            let pk = SMALL_ORDER[*a];
            let (big_r, s) = match small_r {
                Some(i) => (SMALL_ORDER[*i], Scalar::ZERO),
                None => {
                    let r = scalar(*r);
                    ((r * ED25519_BASEPOINT_POINT).compress().0, r)
                }
            };
            let s = random_s.map_or(s, scalar);
            Item {
                pk,
                sig: signature(&big_r, &s),
                msg: msg.to_vec(),
            }
        }
        Make::SmallR { a, r } => {
            let a = scalar(*a);
            let pk = (a * ED25519_BASEPOINT_POINT).compress().0;
            let big_r = SMALL_ORDER[*r];
            let s = challenge(&big_r, &pk, msg) * a;
            Item {
                pk,
                sig: signature(&big_r, &s),
                msg: msg.to_vec(),
            }
        }
        Make::SPlusL { a, r } => {
            let mut it = torsion_signed(scalar(*a), scalar(*r), 0, 0, msg);
            let s = plus_l(&it.sig[32..]);
            it.sig[32..].copy_from_slice(&s);
            it
        }
        Make::NonCanonical { a, r, which, key } => {
            let mut it = torsion_signed(scalar(*a), scalar(*r), 0, 0, msg);
            let all: Vec<[u8; 32]> = zip215_encodings()
                .into_iter()
                .filter(|e| !e.canonical)
                .map(|e| e.bytes)
                .collect();
            let enc = all[which % all.len()];
            if *key {
                it.pk = enc;
            } else {
                it.sig[..32].copy_from_slice(&enc);
            }
            it
        }
        Make::Random { pk, sig } => Item {
            pk: *pk,
            sig: sig.as_slice().try_into().unwrap(),
            msg: msg.to_vec(),
        },
    }
}

fn make_strategy() -> impl Strategy<Value = Make> {
    let b32 = || any::<[u8; 32]>();
    prop_oneof![
        3 => (b32(), b32(), 0..8usize, 0..8usize)
            .prop_map(|(a, r, ta, tr)| Make::Torsion { a, r, ta, tr }),
        2 => (b32(), b32()).prop_map(|(a, r)| Make::Torsion { a, r, ta: 0, tr: 0 }),
        2 => (0..14usize, b32(), proptest::option::of(0..14usize), proptest::option::weighted(0.2, b32()))
            .prop_map(|(a, r, small_r, random_s)| Make::SmallKey { a, r, small_r, random_s }),
        1 => (b32(), 0..14usize).prop_map(|(a, r)| Make::SmallR { a, r }),
        1 => (b32(), b32()).prop_map(|(a, r)| Make::SPlusL { a, r }),
        1 => (b32(), b32(), 0..26usize, any::<bool>())
            .prop_map(|(a, r, which, key)| Make::NonCanonical { a, r, which, key }),
        1 => (b32(), proptest::collection::vec(any::<u8>(), 64))
            .prop_map(|(pk, sig)| Make::Random { pk, sig }),
    ]
}

/// An item, perhaps with one byte of its key, signature or message changed afterwards.
fn item_strategy() -> impl Strategy<Value = Item> {
    (
        make_strategy(),
        proptest::collection::vec(any::<u8>(), 0..48),
        proptest::option::weighted(0.25, (0..3usize, any::<usize>(), 1..=255u8)),
    )
        .prop_map(|(m, msg, tweak)| {
            let mut it = make(&m, &msg);
            if let Some((part, at, x)) = tweak {
                match part {
                    0 => it.pk[at % 32] ^= x,
                    1 => it.sig[at % 64] ^= x,
                    _ => it.msg.push(x),
                }
            }
            it
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Singly, cairn accepts exactly what the rule says; it agrees with ed25519-zebra
    /// wherever neither `A` nor `R` has small order, and where they differ cairn is the
    /// one rejecting.
    #[test]
    fn single_checks_follow_the_rule_and_zebra(it in item_strategy()) {
        let ours = cairn(&it) == Verdict::Accept;
        let theirs = zebra_single(&it);
        prop_assert_eq!(ours, rule(&it));
        let r: [u8; 32] = it.sig[..32].try_into().unwrap();
        if !SMALL_ORDER_SET.contains(&it.pk) && !SMALL_ORDER_SET.contains(&r) {
            prop_assert_eq!(ours, theirs);
        } else {
            prop_assert!(!ours);
        }
        prop_assert_eq!(cairn_batch(std::slice::from_ref(&it)), ours);
    }

    /// In mixed batches of valid and invalid signatures (many by a repeated key), cairn's
    /// batch accepts exactly when every member follows the rule, and ed25519-zebra's batch
    /// exactly when each member passes its single check.
    #[test]
    fn batch_checks_follow_the_rule_and_zebra(
        items in proptest::collection::vec(item_strategy(), 2..10),
        repeat in proptest::collection::vec((any::<usize>(), proptest::collection::vec(any::<u8>(), 0..8)), 0..6),
    ) {
        let mut items = items;
        // Honest signatures by a key already in the batch, so per-key sums are exercised.
        let a = secret_scalar(&[42; 32]);
        for (i, (r, msg)) in repeat.iter().enumerate() {
            let it = torsion_signed(a, Scalar::from(*r as u64 + 1), 0, 0, msg);
            items.insert(i % (items.len() + 1), it);
        }
        let rule_all = items.iter().all(rule);
        prop_assert_eq!(cairn_batch(&items), rule_all);
        prop_assert_eq!(zebra_batch(&items), items.iter().all(zebra_single));
        let valid: Vec<Item> = items.iter().filter(|it| rule(it)).cloned().collect();
        prop_assert!(cairn_batch(&valid));
    }
}

// ---------------------------------------------------------------------------------------
// The random source

fn failing_source(_: &mut [u8]) -> Result<(), RandomSourceError> {
    Err(RandomSourceError::unsupported())
}

/// A batch of two or more needs coefficients: with a failed random source it is not
/// decided, and the error says so; zero or one signature need no randomness.
#[test]
fn a_failed_random_source_is_reported() {
    let a = secret_scalar(&[1; 32]);
    let items: Vec<Item> = (0..3u64)
        .map(|i| torsion_signed(a, Scalar::from(i + 1), 0, 0, &[i as u8]))
        .collect();
    let mut keys = Keys::default();
    let ps: Vec<Prepared> = items
        .iter()
        .map(|it| prepare(&mut keys, &it.pk, &it.sig, &it.msg).unwrap())
        .collect();
    assert_eq!(
        check_batch(&keys, &ps, failing_source),
        Err(RandomSourceError::unsupported())
    );
    assert_eq!(check_batch(&keys, &ps[..1], failing_source), Ok(true));
    assert_eq!(check_batch(&keys, &[], failing_source), Ok(true));
    assert_eq!(check_batch(&keys, &ps, RandomSourceError::fill), Ok(true));
}
