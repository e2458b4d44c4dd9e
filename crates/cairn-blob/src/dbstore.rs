//! Large blobs inside the log's redb database: the store's mode when it has no directory
//! (the browser, where the database lives on OPFS).
//!
//! Three tables, all keyed by the blob's hash so that one blob is one key range:
//! - `blob.meta`: hash → `[state u8][size u64 LE][bitfield]` (state 1 = complete, 0 =
//!   partial download, whose bitfield has one bit per chunk group present);
//! - `blob.group`: hash ‖ group (u64 BE) → that chunk group's bytes (16 KiB, the last one
//!   shorter);
//! - `blob.obao`: hash ‖ pair index (u64 BE) → the 64-byte hash pair at `index · 64` of the
//!   pre-order outboard.
//!
//! A partial download keeps the groups and pairs it has verified in memory until a
//! checkpoint (every [`DB_CHECKPOINT_BYTES`], at the end of a connection, at `finish`),
//! which writes them together with the new bitfield in one transaction: what the bitfield
//! claims is always stored, and a crash loses at most the groups since the last checkpoint.

use std::io::{Read, SeekFrom};
use std::ops::Range;

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::{
    AddError, BlobInfo, BlobState, BlobStore, PartialError, SMALL_MAX, StoreError, db_err,
    present_bytes,
};
use crate::BlobHash;
use crate::tree::{self, GROUP_BYTES};

pub(super) const META: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("blob.meta");
const GROUP: TableDefinition<&[u8; 40], &[u8]> = TableDefinition::new("blob.group");
const OBAO: TableDefinition<&[u8; 40], &[u8]> = TableDefinition::new("blob.obao");
/// Scratch space of an `add_reader` (filled and emptied inside one write transaction).
const STAGING: TableDefinition<u64, &[u8]> = TableDefinition::new("blob.staging");

/// A partial download in the database commits its verified groups every this many bytes
/// (also the most it holds in memory).
pub const DB_CHECKPOINT_BYTES: u64 = 1 << 20;

const COMPLETE: u8 = 1;
const PARTIAL: u8 = 0;

fn key(h: &BlobHash, n: u64) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..32].copy_from_slice(&h.0);
    k[32..].copy_from_slice(&n.to_be_bytes());
    k
}

fn all_keys(h: &BlobHash) -> Range<[u8; 40]> {
    key(h, 0)..key(h, u64::MAX)
}

/// A decoded `blob.meta` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Meta {
    pub complete: bool,
    pub size: u64,
    pub bits: Vec<u8>,
}

impl Meta {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(9 + self.bits.len());
        v.push(if self.complete { COMPLETE } else { PARTIAL });
        v.extend_from_slice(&self.size.to_le_bytes());
        if !self.complete {
            v.extend_from_slice(&self.bits);
        }
        v
    }

    /// `None` for a value this version did not write (treated as absent).
    fn decode(b: &[u8]) -> Option<Meta> {
        let (&state, rest) = b.split_first()?;
        let size = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
        let bits = rest[8..].to_vec();
        match state {
            COMPLETE if bits.is_empty() => Some(Meta {
                complete: true,
                size,
                bits,
            }),
            PARTIAL if bits.len() as u64 == tree::groups(size).div_ceil(8) => Some(Meta {
                complete: false,
                size,
                bits,
            }),
            _ => None,
        }
    }
}

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), redb::Error> {
    txn.open_table(META).map_err(db_err)?;
    txn.open_table(GROUP).map_err(db_err)?;
    txn.open_table(OBAO).map_err(db_err)?;
    txn.open_table(STAGING).map_err(db_err)?;
    Ok(())
}

impl BlobStore {
    pub(super) fn db_meta(&self, h: &BlobHash) -> Result<Option<Meta>, redb::Error> {
        let txn = self.log.database().begin_read().map_err(db_err)?;
        let t = txn.open_table(META).map_err(db_err)?;
        Ok(t.get(&h.0)
            .map_err(db_err)?
            .and_then(|v| Meta::decode(v.value())))
    }

    /// The size of a complete blob kept in the database.
    pub(super) fn db_size(&self, h: &BlobHash) -> Result<Option<u64>, redb::Error> {
        Ok(self.db_meta(h)?.filter(|m| m.complete).map(|m| m.size))
    }

    /// Reads `buf.len()` bytes at `offset` of a blob's stored groups.
    pub(super) fn db_read(&self, h: &BlobHash, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let io = |e: redb::Error| std::io::Error::other(e);
        let txn = self.log.database().begin_read().map_err(|e| io(e.into()))?;
        let t = txn.open_table(GROUP).map_err(|e| io(e.into()))?;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let g = pos / GROUP_BYTES;
            let within = (pos % GROUP_BYTES) as usize;
            let v = t
                .get(&key(h, g))
                .map_err(|e| io(e.into()))?
                .ok_or(std::io::ErrorKind::UnexpectedEof)?;
            let src = v
                .value()
                .get(within..)
                .filter(|s| !s.is_empty())
                .ok_or(std::io::ErrorKind::UnexpectedEof)?;
            let n = src.len().min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&src[..n]);
            done += n;
        }
        Ok(())
    }

    /// Reads the hash pair at `offset` of a blob's stored outboard.
    pub(super) fn db_read_outboard(
        &self,
        h: &BlobHash,
        offset: u64,
        buf: &mut [u8; 64],
    ) -> std::io::Result<()> {
        let io = |e: redb::Error| std::io::Error::other(e);
        if !offset.is_multiple_of(64) {
            return Err(std::io::ErrorKind::InvalidInput.into());
        }
        let txn = self.log.database().begin_read().map_err(|e| io(e.into()))?;
        let t = txn.open_table(OBAO).map_err(|e| io(e.into()))?;
        let v = t
            .get(&key(h, offset / 64))
            .map_err(|e| io(e.into()))?
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        if v.value().len() != 64 {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        buf.copy_from_slice(v.value());
        Ok(())
    }

    /// Adds a large blob (more than one group) from a reader: streamed into a scratch table
    /// while BLAKE3 runs over it, its outboard computed from the scratch table, then moved
    /// under its hash — all in one write transaction, so an interrupted add leaves nothing.
    pub(super) fn db_add_reader(
        &self,
        head: Vec<u8>,
        mut reader: impl Read,
    ) -> Result<BlobHash, AddError> {
        let txn = self.log.database().begin_write().map_err(db_err)?;
        let mut size = 0u64;
        {
            let mut st = txn.open_table(STAGING).map_err(db_err)?;
            st.retain(|_, _| false).map_err(db_err)?;
            let mut group = head;
            let mut g = 0u64;
            loop {
                // Fill the group to GROUP_BYTES (or the end of the input).
                let want = (GROUP_BYTES as usize).saturating_sub(group.len());
                if want > 0 {
                    (&mut reader).take(want as u64).read_to_end(&mut group)?;
                }
                if group.is_empty() {
                    break;
                }
                // `head` may hold more than one group's worth.
                let rest = if group.len() > GROUP_BYTES as usize {
                    group.split_off(GROUP_BYTES as usize)
                } else {
                    Vec::new()
                };
                let full = group.len() == GROUP_BYTES as usize;
                st.insert(g, group.as_slice()).map_err(db_err)?;
                size += group.len() as u64;
                g += 1;
                group = rest;
                if !full {
                    break;
                }
            }
        }
        let mut ob = Vec::new();
        let h = {
            let st = txn.open_table(STAGING).map_err(db_err)?;
            let r = TableReader {
                table: &st,
                size,
                pos: 0,
            };
            tree::outboard_of(r, size, &mut ob)?
        };
        let exists = {
            let m = txn.open_table(META).map_err(db_err)?;
            m.get(&h.0)
                .map_err(db_err)?
                .and_then(|v| Meta::decode(v.value()))
                .is_some_and(|m| m.complete)
        };
        if !exists {
            let mut st = txn.open_table(STAGING).map_err(db_err)?;
            let mut gt = txn.open_table(GROUP).map_err(db_err)?;
            for g in 0..tree::groups(size) {
                let v = st
                    .get(g)
                    .map_err(db_err)?
                    .ok_or_else(|| std::io::Error::other("staging table lost a group"))?
                    .value()
                    .to_vec();
                gt.insert(&key(&h, g), v.as_slice()).map_err(db_err)?;
            }
            st.retain(|_, _| false).map_err(db_err)?;
            drop((st, gt));
            write_complete(&txn, &h, size, &ob)?;
        } else {
            let mut st = txn.open_table(STAGING).map_err(db_err)?;
            st.retain(|_, _| false).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(h)
    }

    /// Adds a large blob held in memory, in one transaction.
    pub(super) fn db_add_bytes(&self, bytes: &[u8]) -> Result<BlobHash, AddError> {
        debug_assert!(bytes.len() as u64 > SMALL_MAX);
        let size = bytes.len() as u64;
        let mut ob = Vec::new();
        let h = tree::outboard_of(bytes, size, &mut ob)?;
        if self.db_size(&h)?.is_some() {
            return Ok(h);
        }
        let txn = self.log.database().begin_write().map_err(db_err)?;
        {
            let mut gt = txn.open_table(GROUP).map_err(db_err)?;
            for (g, c) in bytes.chunks(GROUP_BYTES as usize).enumerate() {
                gt.insert(&key(&h, g as u64), c).map_err(db_err)?;
            }
        }
        write_complete(&txn, &h, size, &ob)?;
        txn.commit().map_err(db_err)?;
        Ok(h)
    }

    /// The blobs (complete and partial) kept in the database's large-blob tables.
    pub(super) fn db_list(&self, out: &mut Vec<BlobInfo>) -> Result<(), StoreError> {
        let txn = self.log.database().begin_read().map_err(db_err)?;
        let t = txn.open_table(META).map_err(db_err)?;
        for e in t.iter().map_err(db_err)? {
            let (k, v) = e.map_err(db_err)?;
            let Some(m) = Meta::decode(v.value()) else {
                continue;
            };
            out.push(BlobInfo {
                hash: BlobHash(*k.value()),
                size: m.size,
                state: if m.complete {
                    BlobState::Complete
                } else {
                    BlobState::Partial {
                        present: present_bytes(m.size, &m.bits),
                    }
                },
            });
        }
        Ok(())
    }

    /// Removes a blob's large-blob rows; whether there were any.
    pub(super) fn db_remove(&self, h: &BlobHash) -> Result<bool, redb::Error> {
        let txn = self.log.database().begin_write().map_err(db_err)?;
        let removed = remove_rows(&txn, h)?;
        txn.commit().map_err(db_err)?;
        Ok(removed)
    }

    /// Starts or resumes a download kept in the database (see [`BlobStore::partial`]).
    pub(super) fn db_partial(
        &self,
        h: &BlobHash,
        size: u64,
    ) -> Result<(Vec<u8>, DbPartial), PartialError> {
        let groups = tree::groups(size);
        let mut bits = vec![0u8; groups.div_ceil(8) as usize];
        match self.db_meta(h)? {
            Some(m) if !m.complete && m.size == size => bits = m.bits,
            Some(m) if m.complete && m.size == size => bits.fill(0xff),
            None => {}
            Some(_) => {
                // Another size (or a stale complete entry the caller does not trust): start
                // over.
                self.db_remove(h)?;
            }
        }
        Ok((
            bits,
            DbPartial {
                groups: Vec::new(),
                pairs: Vec::new(),
            },
        ))
    }

    /// Commits a partial download's pending groups and pairs with its bitfield; with
    /// `complete`, marks the blob complete in the same transaction.
    pub(super) fn db_commit(
        &self,
        h: &BlobHash,
        size: u64,
        bits: &[u8],
        p: &mut DbPartial,
        complete: bool,
    ) -> Result<(), redb::Error> {
        if p.groups.is_empty() && p.pairs.is_empty() && !complete {
            return Ok(());
        }
        let txn = self.log.database().begin_write().map_err(db_err)?;
        {
            let mut gt = txn.open_table(GROUP).map_err(db_err)?;
            for (g, data) in &p.groups {
                gt.insert(&key(h, *g), data.as_slice()).map_err(db_err)?;
            }
            let mut ot = txn.open_table(OBAO).map_err(db_err)?;
            for (i, pair) in &p.pairs {
                ot.insert(&key(h, *i), pair.as_slice()).map_err(db_err)?;
            }
            let mut mt = txn.open_table(META).map_err(db_err)?;
            let m = Meta {
                complete,
                size,
                bits: if complete { Vec::new() } else { bits.to_vec() },
            };
            mt.insert(&h.0, m.encode().as_slice()).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        p.groups.clear();
        p.pairs.clear();
        Ok(())
    }
}

fn write_complete(
    txn: &WriteTransaction,
    h: &BlobHash,
    size: u64,
    ob: &[u8],
) -> Result<(), redb::Error> {
    let mut ot = txn.open_table(OBAO).map_err(db_err)?;
    for (i, pair) in ob.chunks(64).enumerate() {
        ot.insert(&key(h, i as u64), pair).map_err(db_err)?;
    }
    let mut mt = txn.open_table(META).map_err(db_err)?;
    let m = Meta {
        complete: true,
        size,
        bits: Vec::new(),
    };
    mt.insert(&h.0, m.encode().as_slice()).map_err(db_err)?;
    Ok(())
}

fn remove_rows(txn: &WriteTransaction, h: &BlobHash) -> Result<bool, redb::Error> {
    let mut removed = txn
        .open_table(META)
        .map_err(db_err)?
        .remove(&h.0)
        .map_err(db_err)?
        .is_some();
    let r = all_keys(h);
    for def in [GROUP, OBAO] {
        let mut t = txn.open_table(def).map_err(db_err)?;
        let range = || (&r.start)..=(&r.end);
        removed |= t
            .range::<&[u8; 40]>(range())
            .map_err(db_err)?
            .next()
            .is_some();
        t.retain_in::<&[u8; 40], _>(range(), |_, _| false)
            .map_err(db_err)?;
    }
    Ok(removed)
}

/// What a partial download in the database holds in memory between checkpoints.
#[derive(Debug)]
pub(super) struct DbPartial {
    pub groups: Vec<(u64, Vec<u8>)>,
    pub pairs: Vec<(u64, [u8; 64])>,
}

/// Reads the scratch table of an add as one stream.
struct TableReader<'a, T: ReadableTable<u64, &'static [u8]>> {
    table: &'a T,
    size: u64,
    pos: u64,
}

impl<T: ReadableTable<u64, &'static [u8]>> Read for TableReader<'_, T> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let g = self.pos / GROUP_BYTES;
        let within = (self.pos % GROUP_BYTES) as usize;
        let v = self
            .table
            .get(g)
            .map_err(std::io::Error::other)?
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        let src = v
            .value()
            .get(within..)
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        let n = src.len().min(buf.len());
        buf[..n].copy_from_slice(&src[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

/// A seekable reader of a complete blob kept in the database (one group cached).
#[derive(Debug)]
pub(super) struct DbReader {
    pub store: BlobStore,
    pub hash: BlobHash,
    pub len: u64,
    pub pos: u64,
    pub cached: Option<(u64, Vec<u8>)>,
}

impl Read for DbReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let g = self.pos / GROUP_BYTES;
        if self.cached.as_ref().is_none_or(|(c, _)| *c != g) {
            let n = GROUP_BYTES.min(self.len - g * GROUP_BYTES) as usize;
            let mut v = vec![0u8; n];
            self.store.db_read(&self.hash, g * GROUP_BYTES, &mut v)?;
            self.cached = Some((g, v));
        }
        let Some((_, v)) = &self.cached else {
            return Ok(0);
        };
        let within = (self.pos % GROUP_BYTES) as usize;
        let src = &v[within..];
        let n = src.len().min(buf.len());
        buf[..n].copy_from_slice(&src[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl std::io::Seek for DbReader {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = new.ok_or(std::io::ErrorKind::InvalidInput)?;
        Ok(self.pos)
    }
}
