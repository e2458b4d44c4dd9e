//! Helpers shared by the integration tests: a deterministic sans-IO pump and DAG builders.
#![allow(dead_code, unreachable_pub)]

use cairn_core::{Hash, Keypair, Limits, Node};
use cairn_sync::{Event, Session, SyncError, SyncStore};

/// A small deterministic RNG (splitmix64).
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The outcome of a pumped session pair.
#[derive(Debug)]
pub struct Outcome {
    pub a: Result<(), SyncError>,
    pub b: Result<(), SyncError>,
}

fn first_error<S: SyncStore>(s: &mut Session<S>, err: &mut Option<SyncError>) {
    while let Some(ev) = s.poll_event() {
        if let Event::Failed(e) = ev {
            err.get_or_insert(e);
        }
    }
}

/// Delivers bytes between two sessions until both are quiet. With `rng`, deliveries are in
/// random order and cut at random places (each direction stays in order); with `cut_after`,
/// the connection breaks after that many deliveries (both sides see an end of stream).
pub fn pump<A: SyncStore, B: SyncStore>(
    a: &mut Session<A>,
    b: &mut Session<B>,
    mut rng: Option<&mut Rng>,
    cut_after: Option<usize>,
) -> Outcome {
    let mut ab: Vec<u8> = Vec::new();
    let mut ba: Vec<u8> = Vec::new();
    let (mut ea, mut eb) = (None, None);
    let mut deliveries = 0usize;
    loop {
        while let Some(x) = a.poll_transmit() {
            ab.extend_from_slice(&x);
        }
        while let Some(x) = b.poll_transmit() {
            ba.extend_from_slice(&x);
        }
        first_error(a, &mut ea);
        first_error(b, &mut eb);
        if cut_after.is_some_and(|c| deliveries >= c) {
            let _ = a.handle_eof();
            let _ = b.handle_eof();
            first_error(a, &mut ea);
            first_error(b, &mut eb);
            break;
        }
        if ab.is_empty() && ba.is_empty() {
            // Quiet: a one-shot pair that completed closes the stream.
            if a.is_complete() && b.is_complete() && !a.is_live() {
                let _ = a.handle_eof();
                let _ = b.handle_eof();
            }
            break;
        }
        let to_b = match rng.as_deref_mut() {
            Some(r) => !ab.is_empty() && (ba.is_empty() || r.chance(50)),
            None => !ab.is_empty(),
        };
        let buf = if to_b { &mut ab } else { &mut ba };
        let n = match rng.as_deref_mut() {
            Some(r) => 1 + r.below(buf.len() as u64) as usize,
            None => buf.len(),
        };
        let chunk: Vec<u8> = buf.drain(..n).collect();
        deliveries += 1;
        if to_b {
            let _ = b.handle_input(&chunk);
        } else {
            let _ = a.handle_input(&chunk);
        }
    }
    first_error(a, &mut ea);
    first_error(b, &mut eb);
    Outcome {
        a: ea.map_or(Ok(()), Err),
        b: eb.map_or(Ok(()), Err),
    }
}

/// A signed chain of `n` nodes with 32-byte values, each linking the previous.
pub fn chain(key: &Keypair, n: usize, start: Option<Hash>, tag: u8) -> Vec<Node> {
    let l = Limits::default();
    let mut out: Vec<Node> = Vec::with_capacity(n);
    let mut prev = start;
    for i in 0..n {
        let mut value = [tag; 32];
        value[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let node = Node::signed(prev, value.to_vec(), key, &l).unwrap();
        prev = Some(node.key());
        out.push(node);
    }
    out
}
