//! What the protocol needs from a store: the node set in reconciliation order, range
//! fingerprints, node reads, and verified inserts.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::Arc;

use cairn_core::{Hash, Limits, Node, Verify};

use crate::error::InsertError;

/// A node's place in the reconciliation order: its height (0 for a node without links,
/// otherwise 1 + the greatest height of its links), then its hash. Every peer computes the
/// same key for the same node, and recent nodes have the greatest keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// The node's height in the DAG.
    pub height: u64,
    /// The node's hash.
    pub hash: Hash,
}

impl Key {
    /// The smallest key.
    pub const MIN: Key = Key {
        height: 0,
        hash: Hash([0; 32]),
    };
    /// Past every real key (no node has this height).
    pub const END: Key = Key {
        height: u64::MAX,
        hash: Hash([0xff; 32]),
    };

    /// The first key of `height`.
    pub fn at_height(height: u64) -> Key {
        Key {
            height,
            hash: Hash([0; 32]),
        }
    }

    /// The 40-byte big-endian form, whose bytewise order is the key order.
    pub fn to_bytes(&self) -> [u8; 40] {
        let mut out = [0u8; 40];
        out[..8].copy_from_slice(&self.height.to_be_bytes());
        out[8..].copy_from_slice(&self.hash.0);
        out
    }

    /// Inverse of [`Key::to_bytes`].
    pub fn from_bytes(b: &[u8; 40]) -> Key {
        let mut h = [0u8; 8];
        h.copy_from_slice(&b[..8]);
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&b[8..]);
        Key {
            height: u64::from_be_bytes(h),
            hash: Hash(hash),
        }
    }
}

/// An additive fingerprint of a set of nodes: the count and the sum of their hashes (as
/// 256-bit little-endian integers) modulo 2^256. Sums of disjoint sets add, so fingerprints
/// of big ranges are sums of precomputed bucket fingerprints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Agg {
    /// Number of nodes.
    pub count: u64,
    /// Sum of the hashes, four little-endian 64-bit limbs.
    pub sum: [u64; 4],
}

impl Agg {
    /// Adds one node hash.
    pub fn add_hash(&mut self, h: &Hash) {
        let mut limbs = [0u64; 4];
        for (i, l) in limbs.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h.0[i * 8..i * 8 + 8]);
            *l = u64::from_le_bytes(b);
        }
        self.add(&Agg {
            count: 1,
            sum: limbs,
        });
    }

    /// Adds a disjoint set's fingerprint.
    pub fn add(&mut self, o: &Agg) {
        self.count += o.count;
        let mut carry = 0u64;
        for i in 0..4 {
            let (s1, c1) = self.sum[i].overflowing_add(o.sum[i]);
            let (s2, c2) = s1.overflowing_add(carry);
            self.sum[i] = s2;
            carry = u64::from(c1) + u64::from(c2);
        }
    }

    /// The 32-byte digest sent on the wire: BLAKE3 of count and sum (range items send its
    /// first 16 bytes).
    pub fn digest(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key("cairn 2026-11 sync fingerprint v1");
        h.update(&self.count.to_le_bytes());
        for l in &self.sum {
            h.update(&l.to_le_bytes());
        }
        *h.finalize().as_bytes()
    }

    /// Stored form: count then sum, little-endian.
    pub fn to_bytes(&self) -> [u8; 40] {
        let mut out = [0u8; 40];
        out[..8].copy_from_slice(&self.count.to_le_bytes());
        for (i, l) in self.sum.iter().enumerate() {
            out[8 + i * 8..16 + i * 8].copy_from_slice(&l.to_le_bytes());
        }
        out
    }

    /// Inverse of [`Agg::to_bytes`].
    pub fn from_bytes(b: &[u8; 40]) -> Agg {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(w)
        };
        Agg {
            count: word(0),
            sum: [word(8), word(16), word(24), word(32)],
        }
    }
}

/// The whole set: its fingerprint and its greatest height.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Fingerprint of every node.
    pub agg: Agg,
    /// Greatest height, `None` when empty.
    pub max_height: Option<u64>,
}

/// The store a sync session reconciles: a node set ordered by [`Key`].
///
/// Implemented for a cairn [`Log`](cairn_log::Log) by [`LogStore`](crate::LogStore) and in
/// memory by [`MemStore`] (tests, fuzzing). Calls are synchronous and short; a session calls
/// them from `handle_input` and `poll_transmit`.
pub trait SyncStore {
    /// The store's failure.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The whole set's fingerprint and greatest height, up to date with every stored node.
    fn summary(&mut self) -> Result<Summary, Self::Error>;

    /// Fingerprint of the keys in `[lo, hi)`.
    fn aggregate(&self, lo: &Key, hi: &Key) -> Result<Agg, Self::Error>;

    /// Up to `limit` keys of `[lo, hi)`, ascending. A store that others write while a
    /// session runs must list only the nodes it held at the last [`SyncStore::summary`] (its
    /// snapshot; a link-closed set, since nodes are stored after their links): the session
    /// sends only listed nodes, so every node it sends has its links sent too or already at
    /// the peer. Fingerprints ([`SyncStore::aggregate`]) may include newer nodes.
    fn keys(&self, lo: &Key, hi: &Key, limit: usize) -> Result<Vec<Key>, Self::Error>;

    /// The node with this hash.
    fn get(&self, hash: &Hash) -> Result<Option<Node>, Self::Error>;

    /// Up to `limit` nodes of [`SyncStore::keys`]`(lo, hi, limit)`, in key order, with their
    /// keys: what a sender streams. The default reads them one by one.
    fn nodes(&self, lo: &Key, hi: &Key, limit: usize) -> Result<Vec<(Key, Node)>, Self::Error> {
        let mut out = Vec::new();
        for k in self.keys(lo, hi, limit)? {
            if let Some(n) = self.get(&k.hash)? {
                out.push((k, n));
            }
        }
        Ok(out)
    }

    /// Whether the node is stored.
    fn has(&self, hash: &Hash) -> Result<bool, Self::Error>;

    /// Verifies (by the store's policy) and stores received nodes, all or nothing. Each must
    /// link only to stored nodes or nodes earlier in `nodes`.
    ///
    /// Returns how many nodes became newly stored by the batches whose outcome this call
    /// learned (a synchronous store: this batch; a pipelined one: earlier batches that
    /// landed meanwhile, the rest reported by later calls or [`SyncStore::flush`]). Nodes
    /// the store already held are not counted.
    fn insert(&mut self, nodes: Vec<Node>) -> Result<u64, InsertError<Self::Error>>;

    /// Waits until every batch given to [`SyncStore::insert`] is stored **and durable**,
    /// and reports the first failure; returns how many new nodes the batches not yet
    /// reported stored. A store that inserts synchronously and durably has nothing to do.
    fn flush(&mut self) -> Result<u64, InsertError<Self::Error>> {
        Ok(0)
    }
}

/// A [`SyncStore`] in memory, with an optional verification policy.
#[derive(Clone, Default)]
pub struct MemStore {
    nodes: HashMap<Hash, (u64, Node)>,
    order: BTreeSet<Key>,
    total: Agg,
    max_height: Option<u64>,
    verifier: Option<Arc<dyn Verify>>,
    limits: Limits,
}

impl std::fmt::Debug for MemStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemStore")
            .field("len", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

impl MemStore {
    /// An empty store that accepts any well-formed node.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that checks received nodes with `verifier`.
    pub fn verifying(verifier: impl Verify + 'static) -> Self {
        MemStore {
            verifier: Some(Arc::new(verifier)),
            ..Self::default()
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every node hash, sorted.
    pub fn hashes(&self) -> BTreeSet<Hash> {
        self.nodes.keys().copied().collect()
    }

    /// The current heads (nodes nothing links to), sorted.
    pub fn heads(&self) -> Vec<Hash> {
        let mut linked = std::collections::HashSet::new();
        for (_, n) in self.nodes.values() {
            linked.extend(n.links().iter().copied());
        }
        let mut out: Vec<Hash> = self
            .nodes
            .keys()
            .filter(|h| !linked.contains(*h))
            .copied()
            .collect();
        out.sort();
        out
    }

    /// Adds a node built locally (links must be present).
    pub fn add(&mut self, node: Node) -> Result<(), InsertError<Infallible>> {
        self.insert(vec![node]).map(drop)
    }

    fn height_of(&self, h: &Hash, batch: &HashMap<Hash, u64>) -> Option<u64> {
        batch
            .get(h)
            .copied()
            .or_else(|| self.nodes.get(h).map(|(ht, _)| *ht))
    }
}

impl SyncStore for MemStore {
    type Error = Infallible;

    fn summary(&mut self) -> Result<Summary, Infallible> {
        Ok(Summary {
            agg: self.total,
            max_height: self.max_height,
        })
    }

    fn aggregate(&self, lo: &Key, hi: &Key) -> Result<Agg, Infallible> {
        let mut a = Agg::default();
        if lo < hi {
            for k in self.order.range(*lo..*hi) {
                a.add_hash(&k.hash);
            }
        }
        Ok(a)
    }

    fn keys(&self, lo: &Key, hi: &Key, limit: usize) -> Result<Vec<Key>, Infallible> {
        if lo >= hi {
            return Ok(Vec::new());
        }
        Ok(self.order.range(*lo..*hi).take(limit).copied().collect())
    }

    fn get(&self, hash: &Hash) -> Result<Option<Node>, Infallible> {
        Ok(self.nodes.get(hash).map(|(_, n)| n.clone()))
    }

    fn has(&self, hash: &Hash) -> Result<bool, Infallible> {
        Ok(self.nodes.contains_key(hash))
    }

    fn insert(&mut self, nodes: Vec<Node>) -> Result<u64, InsertError<Infallible>> {
        for n in &nodes {
            if n.value().len() > self.limits.max_value_len {
                return Err(InsertError::Limits(cairn_core::BuildError::ValueTooLarge {
                    len: n.value().len(),
                    max: self.limits.max_value_len,
                }));
            }
        }
        if let Some(v) = &self.verifier {
            v.verify_batch(&nodes)?;
        }
        let mut batch: HashMap<Hash, u64> = HashMap::new();
        for n in &nodes {
            if self.nodes.contains_key(&n.key()) || batch.contains_key(&n.key()) {
                continue;
            }
            let mut height = 0;
            for l in n.links() {
                match self.height_of(l, &batch) {
                    Some(h) => height = height.max(h + 1),
                    None => {
                        return Err(InsertError::MissingLink {
                            node: n.key(),
                            link: *l,
                        });
                    }
                }
            }
            batch.insert(n.key(), height);
        }
        let new = batch.len() as u64;
        for n in nodes {
            let Some(height) = batch.remove(&n.key()) else {
                continue;
            };
            let key = n.key();
            self.order.insert(Key { height, hash: key });
            self.total.add_hash(&key);
            self.max_height = Some(self.max_height.map_or(height, |m| m.max(height)));
            self.nodes.insert(key, (height, n));
        }
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agg_adds_with_carry_and_commutes() {
        let a = Hash([0xff; 32]);
        let b = Hash([1; 32]);
        let mut x = Agg::default();
        x.add_hash(&a);
        x.add_hash(&b);
        let mut y = Agg::default();
        y.add_hash(&b);
        y.add_hash(&a);
        assert_eq!(x, y);
        assert_eq!(x.count, 2);
        assert_eq!(Agg::from_bytes(&x.to_bytes()), x);
        let k = Key { height: 7, hash: b };
        assert_eq!(Key::from_bytes(&k.to_bytes()), k);
        assert!(Key::at_height(8) > k);
    }
}
