//! The store without a directory (the browser's mode): large blobs in the database, in chunk
//! groups, with the same verification, ranges, partial downloads and resume as files.
// A list of one group range (`[0..u64::MAX]`: every group) is meant, not the range's items.
#![allow(clippy::single_range_in_vec_init)]

mod common;

use std::io::{Read, Seek, SeekFrom};

use cairn_blob::proto::{BlobPeer, Outcome};
use cairn_blob::tree::{self, GROUP_BYTES, ResponseEncoder, ResponseVerifier, VerifyError};
use cairn_blob::{BlobHash, BlobState, BlobStore, SMALL_MAX};
use cairn_log::{Log, LogOptions};
use common::{data, response};
use redb::ReadableTable;

fn open(dir: &std::path::Path) -> (Log, BlobStore) {
    let log = Log::open(dir.join("log.redb"), LogOptions::default()).unwrap();
    let blobs = BlobStore::open(&log, None).unwrap();
    (log, blobs)
}

#[test]
fn add_read_ranges_list_remove_in_the_database() {
    let d = tempfile::tempdir().unwrap();
    let (_log, s) = open(d.path());
    assert!(s.dir().is_none());
    let mut hashes = Vec::new();
    for len in [
        0,
        SMALL_MAX as usize,
        SMALL_MAX as usize + 1,
        3 * GROUP_BYTES as usize,
        200_000,
        1 << 20,
    ] {
        let bytes = data(len, 7);
        let h = s.add_bytes(&bytes).unwrap();
        assert_eq!(h, BlobHash::of(&bytes), "root of {len} bytes is BLAKE3");
        // The streaming path gives the same blob (and adding it again is a no-op).
        assert_eq!(s.add_reader(&bytes[..]).unwrap(), h);
        assert_eq!(s.size(&h).unwrap(), Some(len as u64));
        let mut back = Vec::new();
        s.reader(&h)
            .unwrap()
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, bytes, "{len} bytes read back");
        if len > 100 {
            // Ranges across group boundaries, and seeks.
            for (a, b) in [(0, 1), (len as u64 / 3, len as u64 - 1), (1, len as u64)] {
                let mut part = Vec::new();
                s.read_range(&h, a..b)
                    .unwrap()
                    .unwrap()
                    .read_to_end(&mut part)
                    .unwrap();
                assert_eq!(part, &bytes[a as usize..b as usize]);
            }
            let mut r = s.reader(&h).unwrap().unwrap();
            r.seek(SeekFrom::End(-5)).unwrap();
            let mut tail = Vec::new();
            r.read_to_end(&mut tail).unwrap();
            assert_eq!(tail, &bytes[len - 5..]);
            assert!(s.read_range(&h, 0..len as u64 + 1).is_err());
        }
        hashes.push((h, len as u64));
    }
    let listed = s.list().unwrap();
    assert_eq!(listed.len(), hashes.len());
    for (h, len) in &hashes {
        assert!(
            listed
                .iter()
                .any(|b| b.hash == *h && b.size == *len && b.state == BlobState::Complete)
        );
    }
    // A large blob's response (outboard from the database) verifies.
    let (h, _) = hashes[4];
    let all = [0..u64::MAX];
    let (size, resp) = response(&s, &h, &all);
    let mut v = ResponseVerifier::new(&h, size, tree::chunk_ranges(&all, size));
    let mut items = Vec::new();
    v.push(&resp, &mut items).unwrap();
    assert!(v.is_done());
    // Removal takes every row of it.
    assert!(s.remove(&h).unwrap());
    assert!(!s.has(&h).unwrap());
    assert!(s.reader(&h).unwrap().is_none());
    assert!(!s.remove(&h).unwrap());
    assert_eq!(s.list().unwrap().len(), hashes.len() - 1);
}

#[test]
fn partial_download_resumes_after_reopen_and_completes() {
    let src_dir = tempfile::tempdir().unwrap();
    let (_l, src) = open(src_dir.path());
    let d = tempfile::tempdir().unwrap();
    // Over DB_CHECKPOINT_BYTES, so a checkpoint happens by itself on the way.
    let bytes = data(150 * GROUP_BYTES as usize + 77, 9);
    let h = src.add_bytes(&bytes).unwrap();
    let all = [0..u64::MAX];
    let (size, resp) = response(&src, &h, &all);
    {
        let (_log, r) = open(d.path());
        let mut v = ResponseVerifier::new(&h, size, tree::chunk_ranges(&all, size));
        let mut p = r.partial(&h, size).unwrap();
        let mut items = Vec::new();
        v.push(&resp[..resp.len() / 2], &mut items).unwrap();
        for it in &items {
            p.write(it).unwrap();
        }
        // No explicit checkpoint: what the automatic ones committed survives; the rest
        // (held in memory) is lost with the "crash".
        drop(p);
    }
    let (_log, r) = open(d.path());
    assert!(!r.has(&h).unwrap());
    assert_eq!(r.partial_size(&h), Some(size));
    let listed = r.list().unwrap();
    let BlobState::Partial { present } = listed[0].state else {
        panic!("not partial: {listed:?}")
    };
    assert!(
        (64 * GROUP_BYTES..76 * GROUP_BYTES).contains(&present),
        "{present}"
    );
    let mut p = r.partial(&h, size).unwrap();
    let missing = p.missing();
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].start * GROUP_BYTES, present);
    let (_, resp2) = response(&src, &h, &missing);
    assert!(resp2.len() < resp.len() * 2 / 3, "only the rest is sent");
    let mut v = ResponseVerifier::new(&h, size, tree::chunk_ranges(&missing, size));
    let mut items = Vec::new();
    v.push(&resp2, &mut items).unwrap();
    assert!(v.is_done());
    for it in &items {
        p.write(it).unwrap();
    }
    assert!(p.finish().unwrap());
    assert_eq!(r.partial_size(&h), None);
    let mut back = Vec::new();
    r.reader(&h)
        .unwrap()
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, bytes);
    // The outboard rebuilt from the verified pairs serves it again, byte for byte.
    let (_, again) = response(&r, &h, &all);
    assert_eq!(again, resp);
}

#[test]
fn corrupt_rows_are_not_served_and_bad_responses_not_stored() {
    let d = tempfile::tempdir().unwrap();
    let (log, s) = open(d.path());
    let a = data(6 * GROUP_BYTES as usize, 1);
    let b = data(6 * GROUP_BYTES as usize, 2);
    let ha = s.add_bytes(&a).unwrap();
    let hb = s.add_bytes(&b).unwrap();
    // A response of blob B claimed as A fails at the first item; nothing is written.
    let all = [0..u64::MAX];
    let (size, resp_b) = response(&s, &hb, &all);
    let mut v = ResponseVerifier::new(&ha, size, tree::chunk_ranges(&all, size));
    let mut out = Vec::new();
    assert!(matches!(
        v.push(&resp_b, &mut out),
        Err(VerifyError::Parent { offset: 0 })
    ));
    assert!(out.is_empty());
    // Flip a byte of group 3 of A in the database: the encoder refuses to serve past it.
    {
        let t: redb::TableDefinition<&[u8; 40], &[u8]> = redb::TableDefinition::new("blob.group");
        let mut k = [0u8; 40];
        k[..32].copy_from_slice(&ha.0);
        k[32..].copy_from_slice(&3u64.to_be_bytes());
        let txn = log.database().begin_write().unwrap();
        {
            let mut tab = txn.open_table(t).unwrap();
            let mut g = tab.get(&k).unwrap().unwrap().value().to_vec();
            g[10] ^= 1;
            tab.insert(&k, g.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let (size, src) = s.source(&ha).unwrap().unwrap();
    let mut enc = ResponseEncoder::new(&ha, size, tree::chunk_ranges(&all, size));
    let mut out = Vec::new();
    assert!(enc.fill(&src, &mut out, usize::MAX).is_err());
}

#[test]
fn eager_peers_fetch_what_new_nodes_name_over_a_session() {
    use cairn_sync::{NoFeed, Session, SessionOptions, duplex, run};
    // Two database-only stores; A holds a blob and a node naming it; B syncs with A and,
    // with the eager policy, fetches the blob on the same session.
    let da = tempfile::tempdir().unwrap();
    let db = tempfile::tempdir().unwrap();
    let (la, sa) = open(da.path());
    let (lb, sb) = open(db.path());
    let bytes = data(40 * GROUP_BYTES as usize + 5, 4);
    let h = sa.add_bytes(&bytes).unwrap();
    la.append(format!("![img](blob:{h})").into_bytes()).unwrap();
    let (_pa, xa) = BlobPeer::new(sa.clone(), true).shared();
    let (pb, xb) = BlobPeer::new(sb.clone(), true)
        .fetch_referenced(lb.len())
        .shared();
    let mut a = Session::with_extension(
        cairn_sync::LogStore::open(&la).unwrap(),
        SessionOptions::default(),
        xa,
    )
    .unwrap();
    let mut b = Session::with_extension(
        cairn_sync::LogStore::open(&lb).unwrap(),
        SessionOptions::default(),
        xb,
    )
    .unwrap();
    let (mut x, mut y) = duplex(256 << 10);
    let (r1, r2) = futures_lite::future::block_on(futures_lite::future::zip(
        run(&mut a, &mut x, NoFeed, std::future::pending()),
        run(&mut b, &mut y, NoFeed, std::future::pending()),
    ));
    r1.unwrap();
    r2.unwrap();
    drop((a, b));
    assert_eq!(lb.len(), 1);
    let outcomes = pb.lock().unwrap().outcomes().to_vec();
    assert!(
        matches!(outcomes.as_slice(), [(x, Outcome::Stored { .. })] if *x == h),
        "{outcomes:?}"
    );
    let mut back = Vec::new();
    sb.reader(&h)
        .unwrap()
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, bytes);
}
