//! Storage and verified streaming: round trips, a corrupted byte at every position of a
//! response, truncation and resume, a sender that sends another blob than the one claimed.
// A list of one group range (`[0..u64::MAX]`: every group) is meant, not the range's items.
#![allow(clippy::single_range_in_vec_init)]

mod common;

use std::io::{Read, Seek, SeekFrom};

use cairn_blob::tree::{
    self, GROUP_BYTES, ResponseEncoder, ResponseVerifier, Verified, VerifyError,
};
use cairn_blob::{BlobHash, BlobState, BlobStore, SMALL_MAX};
use cairn_log::{Log, LogOptions};
use common::{data, response};

fn store() -> (tempfile::TempDir, Log, BlobStore) {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("log.redb"), LogOptions::default()).unwrap();
    let blobs = BlobStore::open(&log, Some(&dir.path().join("blobs"))).unwrap();
    (dir, log, blobs)
}

#[test]
fn add_read_ranges_list_small_and_large() {
    let (_d, _log, s) = store();
    for len in [
        0,
        1,
        1000,
        SMALL_MAX as usize,
        SMALL_MAX as usize + 1,
        200_000,
        1 << 20,
    ] {
        let bytes = data(len, 3);
        let h = s.add_bytes(&bytes).unwrap();
        assert_eq!(h, BlobHash::of(&bytes), "root of {len} bytes is BLAKE3");
        // The same through a reader (streaming path).
        assert_eq!(s.add_reader(&bytes[..]).unwrap(), h);
        assert!(s.has(&h).unwrap());
        let mut back = Vec::new();
        s.reader(&h)
            .unwrap()
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, bytes);
        if len > 10 {
            let mut part = Vec::new();
            s.read_range(&h, 3..len as u64 - 2)
                .unwrap()
                .unwrap()
                .read_to_end(&mut part)
                .unwrap();
            assert_eq!(part, &bytes[3..len - 2]);
            let mut r = s.reader(&h).unwrap().unwrap();
            r.seek(SeekFrom::Start(len as u64 - 5)).unwrap();
            let mut tail = Vec::new();
            r.read_to_end(&mut tail).unwrap();
            assert_eq!(tail, &bytes[len - 5..]);
            assert!(s.read_range(&h, 0..len as u64 + 1).is_err());
        }
    }
    let list = s.list().unwrap();
    assert_eq!(list.len(), 7);
    assert!(list.iter().all(|b| b.state == BlobState::Complete));
    assert!(!s.has(&BlobHash::of(b"absent")).unwrap());
}

#[test]
fn responses_verify_and_rebuild_the_blob() {
    let (_d, _log, s) = store();
    let (_d2, _log2, r) = store();
    for len in [
        0usize,
        5,
        SMALL_MAX as usize,
        100_000,
        3 * GROUP_BYTES as usize,
    ] {
        let bytes = data(len, 9);
        let h = s.add_bytes(&bytes).unwrap();
        let (size, resp) = response(&s, &h, &[0..u64::MAX]);
        let mut v = ResponseVerifier::new(&h, size, tree::chunk_ranges(&[0..u64::MAX], size));
        let mut p = r.partial(&h, size).unwrap();
        let mut items = Vec::new();
        // Byte by byte for small, in odd pieces for large.
        for piece in resp.chunks(if len < 100 { 1 } else { 777 }) {
            v.push(piece, &mut items).unwrap();
            for it in items.drain(..) {
                p.write(&it).unwrap();
            }
        }
        // The end of the response (an empty blob's group is zero bytes: it completes here).
        v.push(&[], &mut items).unwrap();
        for it in items.drain(..) {
            p.write(&it).unwrap();
        }
        assert!(v.is_done());
        assert!(p.finish().unwrap());
        let mut back = Vec::new();
        r.reader(&h)
            .unwrap()
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, bytes);
    }
}

/// One byte flipped at every position of a response (every parent pair byte and a byte of
/// every 1 KiB chunk): verification fails at the item holding it, and every group before it
/// (and none after) came out verified.
#[test]
fn a_corrupted_byte_anywhere_fails_within_its_group() {
    let (_d, _log, s) = store();
    let bytes = data(5 * GROUP_BYTES as usize + 3000, 1);
    let h = s.add_bytes(&bytes).unwrap();
    let ranges = [0..u64::MAX];
    let (size, resp) = response(&s, &h, &ranges);
    // Item boundaries of the honest response.
    let mut v = ResponseVerifier::new(&h, size, tree::chunk_ranges(&ranges, size));
    let mut items = Vec::new();
    v.push(&resp, &mut items).unwrap();
    let mut bounds = Vec::new(); // (start, end, group offset if a group)
    let mut pos = 0usize;
    for it in &items {
        let (len, g) = match it {
            Verified::Parent { .. } => (64, None),
            Verified::Group { offset, data } => (data.len(), Some(*offset)),
        };
        bounds.push((pos, pos + len, g));
        pos += len;
    }
    assert_eq!(pos, resp.len());
    let mut positions: Vec<usize> = (0..resp.len()).step_by(1024).collect();
    positions.extend(
        bounds
            .iter()
            .filter(|b| b.2.is_none())
            .flat_map(|b| b.0..b.1),
    );
    positions.push(resp.len() - 1);
    for at in positions {
        let mut bad = resp.clone();
        bad[at] ^= 0x20;
        let mut v = ResponseVerifier::new(&h, size, tree::chunk_ranges(&ranges, size));
        let mut out = Vec::new();
        let err = v.push(&bad, &mut out).unwrap_err();
        let item = bounds.iter().position(|b| b.0 <= at && at < b.1).unwrap();
        assert_eq!(
            out.len(),
            item,
            "at byte {at}: items before the bad one, none after"
        );
        match (err, bounds[item].2) {
            (VerifyError::Group { offset }, Some(g)) => assert_eq!(offset, g),
            (VerifyError::Parent { .. }, None) => {}
            (e, g) => panic!("at {at}: {e:?} for item {g:?}"),
        }
        assert_eq!(out, items[..item]);
        // A failed verifier takes nothing more.
        assert!(v.push(&[0], &mut out).is_err());
    }
}

#[test]
fn truncated_transfer_then_resume() {
    let (_d, _log, s) = store();
    let (d2, log2, r) = store();
    let bytes = data(40 * GROUP_BYTES as usize + 123, 5);
    let h = s.add_bytes(&bytes).unwrap();
    let all = [0..u64::MAX];
    let (size, resp) = response(&s, &h, &all);
    {
        let mut v = ResponseVerifier::new(&h, size, tree::chunk_ranges(&all, size));
        let mut p = r.partial(&h, size).unwrap();
        let mut items = Vec::new();
        v.push(&resp[..resp.len() / 2], &mut items).unwrap();
        for it in &items {
            p.write(it).unwrap();
        }
        p.checkpoint().unwrap();
        // Dropped without finishing: the connection broke.
    }
    drop(r);
    drop(log2);
    // Reopen, as after a restart.
    let log2 = Log::open(d2.path().join("log.redb"), LogOptions::default()).unwrap();
    let r = BlobStore::open(&log2, Some(&d2.path().join("blobs"))).unwrap();
    let listed = r.list().unwrap();
    assert_eq!(listed.len(), 1);
    let BlobState::Partial { present } = listed[0].state else {
        panic!("not partial: {listed:?}")
    };
    assert!(
        present > 15 * GROUP_BYTES && present < 25 * GROUP_BYTES,
        "{present}"
    );
    let mut p = r.partial(&h, size).unwrap();
    let missing = p.missing();
    assert_eq!(missing.len(), 1);
    assert!(missing[0].start > 0);
    let (_, resp2) = response(&s, &h, &missing);
    assert!(resp2.len() < resp.len() * 2 / 3, "only the rest is sent");
    let mut v = ResponseVerifier::new(&h, size, tree::chunk_ranges(&missing, size));
    let mut items = Vec::new();
    v.push(&resp2, &mut items).unwrap();
    assert!(v.is_done());
    for it in &items {
        p.write(it).unwrap();
    }
    assert!(p.finish().unwrap());
    let mut back = Vec::new();
    r.reader(&h)
        .unwrap()
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, bytes);
    // And the rebuilt outboard serves it again, verified.
    let (_, again) = response(&r, &h, &all);
    assert_eq!(again, resp);
}

#[test]
fn another_blob_than_claimed_fails_at_once() {
    let (_d, _log, s) = store();
    let a = data(10 * GROUP_BYTES as usize, 1);
    let b = data(10 * GROUP_BYTES as usize, 2);
    let ha = s.add_bytes(&a).unwrap();
    let hb = s.add_bytes(&b).unwrap();
    let all = [0..u64::MAX];
    let (size, resp_b) = response(&s, &hb, &all);
    let mut v = ResponseVerifier::new(&ha, size, tree::chunk_ranges(&all, size));
    let mut out = Vec::new();
    assert!(matches!(
        v.push(&resp_b, &mut out),
        Err(VerifyError::Parent { offset: 0 })
    ));
    assert!(out.is_empty());
    // Same for a small one (a single group against the root).
    let small = s.add_bytes(b"small").unwrap();
    let (sz, resp) = response(&s, &small, &all);
    let mut v = ResponseVerifier::new(&ha, sz, tree::chunk_ranges(&all, sz));
    assert!(matches!(
        v.push(&resp, &mut out),
        Err(VerifyError::Group { offset: 0 })
    ));
}

#[test]
fn a_corrupt_stored_blob_is_not_served() {
    let (d, _log, s) = store();
    let bytes = data(6 * GROUP_BYTES as usize, 4);
    let h = s.add_bytes(&bytes).unwrap();
    let path = d.path().join("blobs").join(format!("{h}.data"));
    let mut on_disk = std::fs::read(&path).unwrap();
    on_disk[3 * GROUP_BYTES as usize + 10] ^= 1;
    std::fs::write(&path, on_disk).unwrap();
    let (size, src) = s.source(&h).unwrap().unwrap();
    let mut enc = ResponseEncoder::new(&h, size, tree::chunk_ranges(&[0..u64::MAX], size));
    let mut out = Vec::new();
    assert!(enc.fill(&src, &mut out, usize::MAX).is_err());
    // What was produced holds groups 0..3 only: a verifier accepts it and stops there.
    let mut v = ResponseVerifier::new(&h, size, tree::chunk_ranges(&[0..u64::MAX], size));
    let mut items = Vec::new();
    let good = out.len() - GROUP_BYTES as usize;
    v.push(&out[..good], &mut items).unwrap();
    let groups = items
        .iter()
        .filter(|i| matches!(i, Verified::Group { .. }))
        .count();
    assert_eq!(groups, 3);
}

#[test]
fn gc_keeps_referenced_blobs() {
    let (_d, log, s) = store();
    let kept = s.add_bytes(&data(100_000, 1)).unwrap();
    let kept_small = s.add_bytes(b"tiny").unwrap();
    let dropped = s.add_bytes(&data(50_000, 2)).unwrap();
    let dropped_small = s.add_bytes(b"other").unwrap();
    log.append(format!(
        "{{\"k\":\"page/X\",\"v\":{{\"text\":\"![a](blob:{kept}) and BLOB:no\"}}}}"
    ))
    .unwrap();
    log.append(format!(
        "{{\"img\":\"blob:{}\"}}",
        kept_small.to_hex().to_uppercase()
    ))
    .unwrap();
    let report = s.gc().unwrap();
    assert_eq!(report.removed, 2);
    assert_eq!(report.kept, 2);
    assert!(s.has(&kept).unwrap() && s.has(&kept_small).unwrap());
    assert!(!s.has(&dropped).unwrap() && !s.has(&dropped_small).unwrap());
}

#[test]
fn one_pass_outboard_matches_bao_tree() {
    // Sizes around group, power-of-two and parallel-split boundaries.
    let g = GROUP_BYTES as usize;
    for len in [
        g + 1,
        2 * g,
        2 * g + 1,
        3 * g,
        4 * g + 7,
        5 * g,
        17 * g - 1,
        (1 << 20) + 1,
        (3 << 20) + 5 * g + 3,
    ] {
        let bytes = data(len, 9);
        let mut expected = Vec::new();
        let root = tree::outboard_of(&bytes[..], len as u64, &mut expected).unwrap();
        // Fed in pieces of whole groups, as `add_reader` does.
        let mut cvs = Vec::new();
        for (i, piece) in bytes.chunks(64 * g).enumerate() {
            tree::group_cvs(i as u64 * 64, piece, &mut cvs);
        }
        let mut ob = Vec::new();
        let h = tree::outboard_from_cvs(&cvs, &mut ob);
        assert_eq!(h, root, "root of {len} bytes");
        assert_eq!(h, BlobHash::of(&bytes), "BLAKE3 of {len} bytes");
        assert_eq!(ob.len() as u64, tree::outboard_size(len as u64));
        assert!(ob == expected, "outboard of {len} bytes");
    }
}

#[test]
fn add_reader_of_several_buffers_stores_a_servable_blob() {
    let (_d, _log, s) = store();
    // Over the add buffer (4 MiB): the pieces, their order and the outboard must agree.
    let bytes = data((9 << 20) + 12_345, 5);
    let h = s.add_reader(&bytes[..]).unwrap();
    assert_eq!(h, BlobHash::of(&bytes));
    let (size, resp) = response(&s, &h, &[0..u64::MAX]);
    assert_eq!(size, bytes.len() as u64);
    let mut v = ResponseVerifier::new(&h, size, tree::chunk_ranges(&[0..u64::MAX], size));
    let mut items = Vec::new();
    v.push(&resp, &mut items).unwrap();
    assert!(v.is_done());
}
