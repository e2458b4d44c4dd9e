//! BLAKE3 verified streaming on bao-tree's geometry and response format.
//!
//! A blob of `size` bytes is cut into **chunk groups** of [`GROUP_BYTES`] (16 KiB = 16 BLAKE3
//! chunks, bao-tree's `BlockSize::from_chunk_log(4)`, as iroh-blobs uses). The outboard keeps
//! the 64-byte hash pair of every tree node above the chunk groups (0.4 % of the data); a
//! response to a request for some groups is bao-tree's pre-order stream: for each node on the
//! way to a requested group its 64-byte hash pair, then the group's bytes. Both
//! [`ResponseVerifier`] (receiving) and [`ResponseEncoder`] (sending from storage) walk the
//! same [`ResponseIter`] and check every parent pair and every group against the hash stack
//! that starts at the root, so neither stores nor sends a byte it has not verified.

use std::ops::Range;

use bao_tree::iter::{BaoChunk, ResponseIter};
use bao_tree::{BaoTree, BlockSize, ChunkNum, ChunkRanges};

use crate::BlobHash;

/// The chunk-group size as bao-tree's block size: 2^4 chunks of 1 KiB.
pub const BLOCK: BlockSize = BlockSize::from_chunk_log(4);
/// Bytes of one chunk group: the unit of verification, of the partial bitfield and of
/// storage decisions (a blob of at most one group has no outboard).
pub const GROUP_BYTES: u64 = 16 << 10;
/// BLAKE3 chunks per group.
const GROUP_CHUNKS: u64 = 16;

/// The tree of a blob of `size` bytes.
pub fn tree(size: u64) -> BaoTree {
    BaoTree::new(size, BLOCK)
}

/// Number of chunk groups of a blob of `size` bytes (at least 1: an empty blob is one empty
/// group).
pub fn groups(size: u64) -> u64 {
    size.div_ceil(GROUP_BYTES).max(1)
}

/// Bytes of the pre-order outboard of a blob of `size` bytes.
pub fn outboard_size(size: u64) -> u64 {
    tree(size).outboard_size()
}

/// The chunk ranges covering groups `ranges` of a blob of `size` bytes, plus its last
/// group (which proves the size): what a response to that request contains.
pub fn chunk_ranges(groups_wanted: &[Range<u64>], size: u64) -> ChunkRanges {
    let n = groups(size);
    let chunks = ChunkNum::chunks(size).0;
    let mut out = ChunkRanges::empty();
    for r in groups_wanted {
        let (s, e) = (r.start.min(n), r.end.min(n));
        if s < e {
            let end = (e * GROUP_CHUNKS).min(chunks);
            out |= ChunkRanges::from(ChunkNum(s * GROUP_CHUNKS)..ChunkNum(end));
        }
    }
    // The last group as an open range (bao-tree's canonical form of "through the end").
    out |= ChunkRanges::from(ChunkNum((n - 1) * GROUP_CHUNKS)..);
    out
}

/// The chaining value of a subtree (a chunk group, or the whole blob when `is_root`).
pub(crate) fn hash_subtree(start_chunk: u64, data: &[u8], is_root: bool) -> blake3::Hash {
    use blake3::hazmat::HasherExt;
    if is_root {
        blake3::hash(data)
    } else {
        let mut h = blake3::Hasher::new();
        h.set_input_offset(start_chunk * 1024);
        h.update(data);
        blake3::Hash::from(h.finalize_non_root())
    }
}

/// The chaining value of a parent node from its children's.
pub(crate) fn parent_cv(l: &blake3::Hash, r: &blake3::Hash, is_root: bool) -> blake3::Hash {
    use blake3::hazmat::{Mode, merge_subtrees_non_root, merge_subtrees_root};
    if is_root {
        merge_subtrees_root(l.as_bytes(), r.as_bytes(), Mode::Hash)
    } else {
        blake3::Hash::from(merge_subtrees_non_root(
            l.as_bytes(),
            r.as_bytes(),
            Mode::Hash,
        ))
    }
}

/// A verified piece of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// The hash pair of a tree node (for the outboard).
    Parent {
        /// Where the pair goes in the pre-order outboard (`None`: a node inside a group).
        outboard_offset: Option<u64>,
        /// Left and right children's chaining values, 64 bytes.
        pair: [u8; 64],
    },
    /// A chunk group's bytes.
    Group {
        /// Its byte offset in the blob.
        offset: u64,
        /// Its bytes (16 KiB, less for the last group).
        data: Vec<u8>,
    },
}

/// Why a response failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A parent pair does not hash to what its parent (or the root) says.
    #[error("hash pair of the subtree at byte {offset} does not verify")]
    Parent {
        /// Byte offset where the node's subtree starts.
        offset: u64,
    },
    /// A chunk group does not hash to what its parent (or the root) says.
    #[error("chunk group at byte {offset} does not verify")]
    Group {
        /// Its byte offset.
        offset: u64,
    },
    /// More bytes than the response holds.
    #[error("{0} bytes past the end of the response")]
    TrailingBytes(usize),
}

fn pair_hashes(pair: &[u8; 64]) -> (blake3::Hash, blake3::Hash) {
    let mut l = [0u8; 32];
    let mut r = [0u8; 32];
    l.copy_from_slice(&pair[..32]);
    r.copy_from_slice(&pair[32..]);
    (blake3::Hash::from(l), blake3::Hash::from(r))
}

/// The shared walk: the expected items in order and the hash stack from the root.
struct Walk {
    tree: BaoTree,
    iter: ResponseIter,
    next: Option<BaoChunk>,
    stack: Vec<blake3::Hash>,
}

impl Walk {
    fn new(root: &BlobHash, size: u64, ranges: ChunkRanges) -> Walk {
        let mut iter = ResponseIter::new(tree(size), ranges);
        let next = iter.next();
        Walk {
            tree: tree(size),
            iter,
            next,
            stack: vec![blake3::Hash::from(root.0)],
        }
    }

    /// Bytes the next item takes, if any is left.
    fn need(&self) -> Option<usize> {
        match self.next? {
            BaoChunk::Parent { .. } => Some(64),
            BaoChunk::Leaf { size, .. } => Some(size),
        }
    }

    /// Checks the next item against the stack (`bytes` is exactly [`Walk::need`] long).
    fn check(&mut self, bytes: &[u8]) -> Result<Verified, VerifyError> {
        let item = self.next.take();
        self.next = self.iter.next();
        match item {
            Some(BaoChunk::Parent {
                node,
                is_root,
                left,
                right,
                ..
            }) => {
                let mut pair = [0u8; 64];
                pair.copy_from_slice(bytes);
                let (l, r) = pair_hashes(&pair);
                let expected = self.stack.pop();
                if expected != Some(parent_cv(&l, &r, is_root)) {
                    self.fail();
                    return Err(VerifyError::Parent {
                        offset: node.chunk_range().start.to_bytes(),
                    });
                }
                if right {
                    self.stack.push(r);
                }
                if left {
                    self.stack.push(l);
                }
                Ok(Verified::Parent {
                    outboard_offset: self.tree.pre_order_offset(node).map(|o| o * 64),
                    pair,
                })
            }
            Some(BaoChunk::Leaf {
                start_chunk,
                is_root,
                ..
            }) => {
                let expected = self.stack.pop();
                if expected != Some(hash_subtree(start_chunk.0, bytes, is_root)) {
                    self.fail();
                    return Err(VerifyError::Group {
                        offset: start_chunk.to_bytes(),
                    });
                }
                Ok(Verified::Group {
                    offset: start_chunk.to_bytes(),
                    data: bytes.to_vec(),
                })
            }
            None => Err(VerifyError::TrailingBytes(bytes.len())),
        }
    }

    fn fail(&mut self) {
        self.next = None;
        self.stack.clear();
    }
}

/// Sans-IO verifier of a response: feed it the bytes as they arrive, take verified parents
/// and groups out. Holds at most one chunk group of unverified bytes.
pub struct ResponseVerifier {
    walk: Walk,
    buf: Vec<u8>,
    failed: bool,
}

impl std::fmt::Debug for ResponseVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseVerifier")
            .field("buffered", &self.buf.len())
            .field("done", &self.is_done())
            .finish_non_exhaustive()
    }
}

impl ResponseVerifier {
    /// A verifier of the response for `ranges` (from [`chunk_ranges`]) of the blob `root`
    /// of `size` bytes.
    pub fn new(root: &BlobHash, size: u64, ranges: ChunkRanges) -> Self {
        ResponseVerifier {
            walk: Walk::new(root, size, ranges),
            buf: Vec::with_capacity(GROUP_BYTES as usize),
            failed: false,
        }
    }

    /// Feeds received bytes; appends every item they complete, verified, to `out`. The first
    /// mismatch fails the response (and every later call).
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<Verified>) -> Result<(), VerifyError> {
        if self.failed {
            return Err(VerifyError::TrailingBytes(bytes.len()));
        }
        // An empty blob's single group is zero bytes long: it completes with no input.
        while !bytes.is_empty() || (self.buf.is_empty() && self.walk.need() == Some(0)) {
            let Some(need) = self.walk.need() else {
                self.failed = true;
                return Err(VerifyError::TrailingBytes(bytes.len()));
            };
            if self.buf.is_empty() && bytes.len() >= need {
                let r = self.walk.check(&bytes[..need]);
                bytes = &bytes[need..];
                out.push(self.fail_on(r)?);
                continue;
            }
            let take = (need - self.buf.len()).min(bytes.len());
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buf.len() == need {
                let buf = std::mem::take(&mut self.buf);
                let r = self.walk.check(&buf);
                self.buf = buf;
                self.buf.clear();
                out.push(self.fail_on(r)?);
            }
        }
        Ok(())
    }

    fn fail_on(&mut self, r: Result<Verified, VerifyError>) -> Result<Verified, VerifyError> {
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    /// Whether the whole response has arrived (and verified).
    pub fn is_done(&self) -> bool {
        !self.failed && self.walk.need().is_none()
    }
}

/// Where a response is read from when sending: the blob's bytes and its outboard.
pub trait Source {
    /// Reads exactly `buf.len()` bytes of the blob at `offset`.
    fn read_data(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
    /// Reads the 64-byte hash pair stored at `offset` of the pre-order outboard.
    fn read_outboard(&self, offset: u64, buf: &mut [u8; 64]) -> std::io::Result<()>;
}

/// Why a response could not be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// Reading the stored blob failed.
    #[error("reading the blob: {0}")]
    Io(#[from] std::io::Error),
    /// The stored blob does not verify against its hash (it is corrupt): nothing of it is
    /// sent past the bad item.
    #[error("the stored blob is corrupt: {0}")]
    Corrupt(VerifyError),
}

/// Produces a response from storage, item by item, verifying each against the root before
/// it is sent (a corrupt stored blob is never served).
pub struct ResponseEncoder {
    walk: Walk,
    tree: BaoTree,
}

impl std::fmt::Debug for ResponseEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseEncoder")
            .field("size", &self.tree.size())
            .finish_non_exhaustive()
    }
}

impl ResponseEncoder {
    /// An encoder of the response for `ranges` of the blob `root` of `size` bytes.
    pub fn new(root: &BlobHash, size: u64, ranges: ChunkRanges) -> Self {
        ResponseEncoder {
            walk: Walk::new(root, size, ranges),
            tree: tree(size),
        }
    }

    /// Whether everything has been produced.
    pub fn is_done(&self) -> bool {
        self.walk.need().is_none()
    }

    /// Appends verified items to `out` until it holds at least `target` bytes or the
    /// response ends.
    pub fn fill(
        &mut self,
        src: &impl Source,
        out: &mut Vec<u8>,
        target: usize,
    ) -> Result<(), EncodeError> {
        while out.len() < target && self.step(src, out)?.is_some() {}
        Ok(())
    }

    /// Appends the next chunk group and the parents before it (at most one group and
    /// 64 bytes per tree level), verified: one slice of the response.
    pub fn fill_group(&mut self, src: &impl Source, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        while let Some(parent) = self.step(src, out)? {
            if !parent {
                break;
            }
        }
        Ok(())
    }

    /// Appends the next item, verified; returns whether it was a parent (`None`: the
    /// response is complete).
    fn step(&mut self, src: &impl Source, out: &mut Vec<u8>) -> Result<Option<bool>, EncodeError> {
        let Some(need) = self.walk.need() else {
            return Ok(None);
        };
        let start = out.len();
        out.resize(start + need, 0);
        let parent = match self.walk.next {
            Some(BaoChunk::Parent { node, .. }) => {
                let off = self.tree.pre_order_offset(node).ok_or_else(|| {
                    EncodeError::Corrupt(VerifyError::Parent {
                        offset: node.chunk_range().start.to_bytes(),
                    })
                })?;
                let mut pair = [0u8; 64];
                src.read_outboard(off * 64, &mut pair)?;
                out[start..].copy_from_slice(&pair);
                true
            }
            Some(BaoChunk::Leaf { start_chunk, .. }) => {
                src.read_data(start_chunk.to_bytes(), &mut out[start..])?;
                false
            }
            None => {
                out.truncate(start);
                return Ok(None);
            }
        };
        self.walk
            .check(&out[start..])
            .map_err(EncodeError::Corrupt)?;
        Ok(Some(parent))
    }
}

/// Computes the pre-order outboard and the root of `data` (known size) into `outboard`
/// (resized to [`outboard_size`]).
pub fn outboard_of(
    data: impl std::io::Read,
    size: u64,
    outboard: &mut Vec<u8>,
) -> std::io::Result<BlobHash> {
    let t = tree(size);
    outboard.clear();
    outboard.resize(t.outboard_size() as usize, 0);
    let mut ob = bao_tree::io::outboard::PreOrderOutboard {
        root: blake3::Hash::from([0u8; 32]),
        tree: t,
        data: std::mem::take(outboard),
    };
    let root = bao_tree::io::sync::outboard(data, t, &mut ob)?;
    *outboard = ob.data;
    Ok(BlobHash(*root.as_bytes()))
}

/// Chaining values of the chunk groups of `data`, which starts at group `first_group` of a
/// blob of more than one group (`data` is whole groups, except a blob's last one), appended
/// to `out`. Large inputs are hashed on two threads (each group is a BLAKE3 subtree of its
/// own; the hasher uses SIMD across the 16 chunks of a group).
pub fn group_cvs(first_group: u64, data: &[u8], out: &mut Vec<blake3::Hash>) {
    const PARALLEL_MIN: usize = 1 << 20;
    let g = GROUP_BYTES as usize;
    let hash_all = |first: u64, data: &[u8], out: &mut Vec<blake3::Hash>| {
        for (i, group) in data.chunks(g).enumerate() {
            let start_chunk = (first + i as u64) * GROUP_CHUNKS;
            out.push(hash_subtree(start_chunk, group, false));
        }
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if data.len() < PARALLEL_MIN || threads < 2 {
        hash_all(first_group, data, out);
        return;
    }
    let half = data.len().div_ceil(2 * g) * g;
    let (a, b) = data.split_at(half);
    let second = std::thread::scope(|s| {
        let t = std::thread::Builder::new().spawn_scoped(s, || {
            let mut v = Vec::with_capacity(b.len().div_ceil(g));
            hash_all(first_group + (half / g) as u64, b, &mut v);
            v
        });
        hash_all(first_group, a, out);
        t.ok().and_then(|t| t.join().ok())
    });
    match second {
        Some(v) => out.extend(v),
        // No thread could be made (or it failed): hash the second half here.
        None => hash_all(first_group + (half / g) as u64, b, out),
    }
}

/// The pre-order outboard (written to `outboard`, [`outboard_size`] bytes) and the root of a
/// blob of more than one group, from the chaining values of all its groups
/// ([`group_cvs`]): the tree above the groups is built without reading the data again.
pub fn outboard_from_cvs(cvs: &[blake3::Hash], outboard: &mut Vec<u8>) -> BlobHash {
    fn build(cvs: &[blake3::Hash], is_root: bool, out: &mut Vec<u8>) -> blake3::Hash {
        if cvs.len() == 1 {
            return cvs[0];
        }
        // BLAKE3's left subtree holds the largest power of two of chunks below the total,
        // which for whole 16-chunk groups is the largest power of two of groups below.
        let split = 1usize << (usize::BITS - 1 - (cvs.len() - 1).leading_zeros());
        let at = out.len();
        out.extend_from_slice(&[0u8; 64]);
        let l = build(&cvs[..split], false, out);
        let r = build(&cvs[split..], false, out);
        out[at..at + 32].copy_from_slice(l.as_bytes());
        out[at + 32..at + 64].copy_from_slice(r.as_bytes());
        parent_cv(&l, &r, is_root)
    }
    outboard.clear();
    outboard.reserve(64 * cvs.len().saturating_sub(1));
    let root = build(cvs, true, outboard);
    BlobHash(*root.as_bytes())
}
