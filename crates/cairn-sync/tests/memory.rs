//! A session's buffers are bounded by bytes, not by node counts: big nodes never pile up
//! in an insert batch or in one store read.

mod common;

use std::cell::Cell;
use std::convert::Infallible;

use cairn_core::{Hash, Keypair, Limits, Node};
use cairn_sync::{
    Agg, InsertError, Key, MemStore, Mode, READY_BYTES, Session, SessionOptions, Summary, SyncStore,
};
use common::pump;

/// A [`MemStore`] that records the most bytes of nodes one insert or one read handled.
#[derive(Default)]
struct Recording {
    inner: MemStore,
    max_insert: usize,
    max_read: Cell<usize>,
}

fn bytes(nodes: &[Node]) -> usize {
    nodes.iter().map(Node::encoded_len).sum()
}

impl SyncStore for Recording {
    type Error = Infallible;
    fn summary(&mut self) -> Result<Summary, Infallible> {
        self.inner.summary()
    }
    fn aggregate(&self, lo: &Key, hi: &Key) -> Result<Agg, Infallible> {
        self.inner.aggregate(lo, hi)
    }
    fn keys(&self, lo: &Key, hi: &Key, limit: usize) -> Result<Vec<Key>, Infallible> {
        self.inner.keys(lo, hi, limit)
    }
    fn get(&self, hash: &Hash) -> Result<Option<Node>, Infallible> {
        self.inner.get(hash)
    }
    fn nodes(&self, lo: &Key, hi: &Key, limit: usize) -> Result<Vec<(Key, Node)>, Infallible> {
        let out = self.inner.nodes(lo, hi, limit)?;
        let b: usize = out.iter().map(|(_, n)| n.encoded_len()).sum();
        self.max_read.set(self.max_read.get().max(b));
        Ok(out)
    }
    fn has(&self, hash: &Hash) -> Result<bool, Infallible> {
        self.inner.has(hash)
    }
    fn insert(&mut self, nodes: Vec<Node>) -> Result<u64, InsertError<Infallible>> {
        self.max_insert = self.max_insert.max(bytes(&nodes));
        self.inner.insert(nodes)
    }
}

#[test]
fn big_nodes_are_batched_and_read_by_bytes() {
    const MIB: usize = 1 << 20;
    let key = Keypair::from_seed([8; 32]);
    let limits = Limits::default();
    let mut src = Recording::default();
    let mut prev = None;
    for i in 0..40u8 {
        let n = Node::signed(prev, vec![i; MIB], &key, &limits).unwrap();
        prev = Some(n.key());
        src.inner.add(n).unwrap();
    }
    let opts = |mode| SessionOptions {
        mode,
        ..SessionOptions::default()
    };
    let mut a = Session::new(src, opts(Mode::Push)).unwrap();
    let mut b = Session::new(Recording::default(), opts(Mode::Pull)).unwrap();
    let out = pump(&mut a, &mut b, None, None);
    out.a.unwrap();
    out.b.unwrap();
    assert_eq!(b.store().inner.len(), 40);
    // The receiver hands batches of at most READY_BYTES plus one node (not all 40 MiB at
    // the end), the sender reads one node at a time once it has seen their size.
    let (max_insert, max_read) = (b.store().max_insert, a.store().max_read.get());
    eprintln!("largest insert batch {max_insert} B, largest read {max_read} B");
    assert!(max_insert <= READY_BYTES + MIB + 1024, "{max_insert}");
    assert!(max_read <= MIB + 1024, "{max_read}");
}
