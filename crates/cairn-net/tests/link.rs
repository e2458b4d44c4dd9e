//! The handshake and the pump over an in-memory message channel: two logs sync through the
//! encrypted link; a tampered message, an oversized one and a channel that ends mid-session
//! end the session with the link's typed error, and nothing unverified is stored.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Poll, Waker};

use cairn_core::Keypair;
use cairn_log::{Log, LogOptions};
use cairn_net::link::{handshake, pump};
use cairn_net::{LinkError, MessageSink, MessageSource, PumpError, Role};
use cairn_sync::{SessionOptions, duplex, sync_log};
use futures_lite::future;

#[derive(Default)]
struct Queue {
    msgs: VecDeque<Vec<u8>>,
    closed: bool,
    waker: Option<Waker>,
    /// Messages sent so far; the one numbered `tamper` gets a bit flipped in transit.
    sent: usize,
    tamper: Option<usize>,
    oversize: Option<usize>,
    cut_after: Option<usize>,
}

#[derive(Clone, Default)]
struct End(Rc<RefCell<Queue>>);

struct Tx(End);
struct Rx(End);

impl MessageSink for Tx {
    async fn send(&mut self, msg: &[u8]) -> Result<(), LinkError> {
        let mut q = self.0.0.borrow_mut();
        if q.closed {
            return Err(LinkError::channel("closed"));
        }
        let n = q.sent;
        q.sent += 1;
        let mut m = msg.to_vec();
        if q.tamper == Some(n) {
            m[msg.len() / 2] ^= 4;
        }
        if q.oversize == Some(n) {
            m = vec![7; 70_000];
        }
        q.msgs.push_back(m);
        if q.cut_after == Some(n) {
            q.closed = true;
        }
        if let Some(w) = q.waker.take() {
            w.wake();
        }
        Ok(())
    }
    async fn close(&mut self) -> Result<(), LinkError> {
        let mut q = self.0.0.borrow_mut();
        q.closed = true;
        if let Some(w) = q.waker.take() {
            w.wake();
        }
        Ok(())
    }
}

impl MessageSource for Rx {
    async fn recv(&mut self, buf: &mut Vec<u8>, max: usize) -> Result<bool, LinkError> {
        std::future::poll_fn(|cx| {
            let mut q = self.0.0.borrow_mut();
            match q.msgs.pop_front() {
                Some(m) if m.len() > max => {
                    Poll::Ready(Err(LinkError::TooLarge { len: m.len(), max }))
                }
                Some(m) => {
                    *buf = m;
                    Poll::Ready(Ok(true))
                }
                None if q.closed => Poll::Ready(Ok(false)),
                None => {
                    q.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }
}

fn log_with(n: usize, seed: u8) -> (Log, Keypair) {
    let key = Keypair::from_seed([seed; 32]);
    let log = Log::memory(LogOptions::default().signer(key.clone())).unwrap();
    for i in 0..n {
        log.append(format!("{seed}:{i}").into_bytes()).unwrap();
    }
    (log, key)
}

/// One side: handshake, then the sync session pumped over the link.
async fn side(
    log: &Log,
    me: &Keypair,
    role: Role,
    mut tx: Tx,
    mut rx: Rx,
) -> Result<cairn_sync::SyncSummary, String> {
    let est = handshake(&mut tx, &mut rx, me, role)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (mut app, net) = duplex(64 << 10);
    let work =
        async { sync_log(log, &mut app, SessionOptions::default(), future::pending()).await };
    match pump(est.transport, &mut tx, &mut rx, net, work).await {
        Ok(s) => Ok(s),
        Err(PumpError::Link(e)) => Err(format!("link: {e}")),
        Err(e) => Err(format!("session: {e}")),
    }
}

fn channel() -> ((Tx, Rx), (Tx, Rx), End, End) {
    let ab = End::default();
    let ba = End::default();
    (
        (Tx(ab.clone()), Rx(ba.clone())),
        (Tx(ba.clone()), Rx(ab.clone())),
        ab,
        ba,
    )
}

#[test]
fn two_logs_sync_over_the_encrypted_link() {
    let (a, ka) = log_with(300, 1);
    let (b, kb) = log_with(200, 2);
    let ((atx, arx), (btx, brx), ab, _) = channel();
    let (ra, rb) = future::block_on(future::zip(
        side(&a, &ka, Role::Initiator, atx, arx),
        side(&b, &kb, Role::Responder, btx, brx),
    ));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!((ra.nodes_sent, ra.nodes_received), (300, 200));
    assert_eq!((rb.nodes_sent, rb.nodes_received), (200, 300));
    assert_eq!(a.len(), 500);
    assert_eq!(b.heads().unwrap(), a.heads().unwrap());
    // More than the handshake went one way, in messages no larger than Noise allows.
    assert!(ab.0.borrow().sent > 5);
}

#[test]
fn a_tampered_message_ends_the_session_with_a_link_error() {
    for tamper in [3, 4] {
        let (a, ka) = log_with(3000, 1);
        let (b, kb) = log_with(10, 2);
        let ((atx, arx), (btx, brx), ab, _) = channel();
        // The initiator sends 3 handshake/identity messages (0-2); from 3 on, the session's.
        ab.0.borrow_mut().tamper = Some(tamper);
        let (ra, rb) = future::block_on(future::zip(
            side(&a, &ka, Role::Initiator, atx, arx),
            side(&b, &kb, Role::Responder, btx, brx),
        ));
        let rb = rb.unwrap_err();
        assert!(rb.contains("tampered"), "{rb}");
        assert!(ra.is_err());
        // Nothing unverified was stored: b holds its own nodes and some of a's, all whole.
        assert!(b.len() < 3010);
        for e in b.changes(cairn_log::ChangesQuery::all()) {
            let e = e.unwrap();
            assert!(a.has(&e.node.key()).unwrap() || e.node.value().starts_with(b"2:"));
        }
    }
}

#[test]
fn an_oversized_or_cut_channel_ends_the_session() {
    let (a, ka) = log_with(2000, 1);
    let (b, kb) = log_with(10, 2);
    let ((atx, arx), (btx, brx), ab, _) = channel();
    ab.0.borrow_mut().oversize = Some(3);
    let (_, rb) = future::block_on(future::zip(
        side(&a, &ka, Role::Initiator, atx, arx),
        side(&b, &kb, Role::Responder, btx, brx),
    ));
    let rb = rb.unwrap_err();
    assert!(rb.contains("70000 bytes"), "{rb}");

    let (a, ka) = log_with(2000, 1);
    let (b, kb) = log_with(10, 2);
    let ((atx, arx), (btx, brx), ab, _) = channel();
    ab.0.borrow_mut().cut_after = Some(4);
    let (_, rb) = future::block_on(future::zip(
        side(&a, &ka, Role::Initiator, atx, arx),
        side(&b, &kb, Role::Responder, btx, brx),
    ));
    assert!(rb.is_err());

    // Garbage instead of the handshake: a typed handshake error.
    let (b, kb) = log_with(10, 2);
    let ((mut atx, _arx), (btx, brx), _, _) = channel();
    let (_, rb) = future::block_on(future::zip(
        async { atx.send(b"GET / HTTP/1.1\r\n\r\n").await },
        side(&b, &kb, Role::Responder, btx, brx),
    ));
    let rb = rb.unwrap_err();
    assert!(rb.starts_with("handshake: noise handshake failed"), "{rb}");
}
