//! A receiver killed mid-clone keeps what it had stored a moment before (progress is made
//! durable on a time bound, not only every 2^18 nodes and at the end), and the next sync
//! moves only the rest.

mod common;

use std::time::Duration;

use cairn_core::{Ed25519Verifier, Keypair};
use cairn_log::testing::CrashBackend;
use cairn_log::{Log, LogOptions};
use cairn_sync::{LogStore, Session, SessionOptions};
use common::{chain, pump};

fn opts() -> LogOptions {
    LogOptions::default()
        .signer(Keypair::from_seed([2; 32]))
        .verifier(Ed25519Verifier::strict())
}

#[test]
fn a_killed_clone_keeps_its_progress_and_resumes() {
    const N: usize = 4000;
    let source = Log::memory(opts()).unwrap();
    source
        .insert(chain(&Keypair::from_seed([7; 32]), N, None, 0))
        .unwrap();
    let (backend, handle) = CrashBackend::new();
    let target = Log::with_backend(backend, opts()).unwrap();
    let session_opts = SessionOptions {
        insert_batch: 256,
        ..SessionOptions::default()
    };
    let mut a = Session::new(LogStore::open(&source).unwrap(), session_opts.clone()).unwrap();
    let mut store = LogStore::open(&target).unwrap();
    store.set_durable_after(Duration::from_millis(100));
    let mut b = Session::new(store, session_opts.clone()).unwrap();
    // The receiver gets about half of the stream, then nothing more for a while.
    let mut stream = Vec::new();
    loop {
        let mut moved = false;
        while let Some(x) = a.poll_transmit() {
            stream.extend_from_slice(&x);
            moved = true;
        }
        while let Some(x) = b.poll_transmit() {
            a.handle_input(&x).unwrap();
            moved = true;
        }
        if !moved && stream.is_empty() {
            break;
        }
        if !stream.is_empty() {
            let n = stream.len().min(16 << 10);
            let chunk: Vec<u8> = stream.drain(..n).collect();
            b.handle_input(&chunk).unwrap();
            if b.stats().nodes_stored >= N as u64 / 2 {
                break;
            }
        }
    }
    let handed = b.stats().nodes_stored;
    assert!(handed >= N as u64 / 2 && handed < N as u64, "{handed}");
    std::thread::sleep(Duration::from_millis(600));
    // kill -9: the power goes with the process still running (a clean drop would sync).
    let image = handle.crash(|_| false);
    let (backend, _h) = CrashBackend::from_image(image);
    let reopened = Log::with_backend(backend, opts()).unwrap();
    let kept = reopened.len();
    // Everything but the batches still in the pipeline (at most 2 × 256 nodes) is kept.
    assert!(kept + 2 * 256 >= handed, "kept {kept} of {handed} stored");
    assert!(kept > 0);
    drop(b);
    drop(a);
    // The next sync moves only the difference.
    let mut a = Session::new(LogStore::open(&source).unwrap(), session_opts.clone()).unwrap();
    let mut b = Session::new(LogStore::open(&reopened).unwrap(), session_opts).unwrap();
    let out = pump(&mut a, &mut b, None, None);
    out.a.unwrap();
    out.b.unwrap();
    assert_eq!(reopened.len(), N as u64);
    assert_eq!(a.stats().nodes_sent, N as u64 - kept);
    assert_eq!(b.stats().nodes_received, N as u64 - kept);
}
