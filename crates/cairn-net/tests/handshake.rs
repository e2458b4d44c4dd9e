//! The sans-IO handshake: both sides prove their identities, the wire sizes are those of
//! the CLI's protocol, and every kind of bad peer input is a typed error (never a panic),
//! property-tested over arbitrary bytes at every stage.

use cairn_core::Keypair;
use cairn_net::{Established, Handshake, HandshakeError, LinkError, MAX_HANDSHAKE_MSG, Role};
use proptest::prelude::*;

fn keys() -> (Keypair, Keypair) {
    (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]))
}

/// Runs a whole handshake, recording every message as (from initiator?, bytes).
fn run(a: &mut Handshake, b: &mut Handshake) -> Vec<(bool, Vec<u8>)> {
    let mut wire = Vec::new();
    while !(a.is_finished() && b.is_finished()) {
        let mut moved = false;
        while let Some(m) = a.poll_transmit() {
            wire.push((true, m.clone()));
            b.handle_message(&m).unwrap();
            moved = true;
        }
        while let Some(m) = b.poll_transmit() {
            wire.push((false, m.clone()));
            a.handle_message(&m).unwrap();
            moved = true;
        }
        assert!(moved, "the handshake stalled");
    }
    wire
}

fn pair() -> (Established, Established, Vec<(bool, Vec<u8>)>) {
    let (alice, bob) = keys();
    let mut a = Handshake::new(&alice, Role::Initiator).unwrap();
    let mut b = Handshake::new(&bob, Role::Responder).unwrap();
    let wire = run(&mut a, &mut b);
    (a.established().unwrap(), b.established().unwrap(), wire)
}

#[test]
fn both_sides_prove_their_identities_and_the_wire_is_the_cli_protocol() {
    let (alice, bob) = keys();
    let (mut a, mut b, wire) = pair();
    assert_eq!(a.peer, bob.public());
    assert_eq!(b.peer, alice.public());
    // XX's three messages (32, 96, 64 bytes: empty payloads), then one identity message
    // each way (96 bytes + the 16-byte tag): the initiator's right after its last
    // handshake message, the responder's as soon as the handshake is finished.
    let shape: Vec<(bool, usize)> = wire.iter().map(|(i, m)| (*i, m.len())).collect();
    assert_eq!(
        shape,
        vec![
            (true, 32),
            (false, 96),
            (true, 64),
            (true, 112),
            (false, 112)
        ]
    );
    // The transports talk both ways, in order.
    let mut c = Vec::new();
    let mut p = Vec::new();
    for i in 0..3u8 {
        a.transport.encrypt(&[i; 100], &mut c).unwrap();
        assert_eq!(c.len(), 116);
        b.transport.decrypt(&c, &mut p).unwrap();
        assert_eq!(p, vec![i; 100]);
        b.transport.encrypt(&[i], &mut c).unwrap();
        a.transport.decrypt(&c, &mut p).unwrap();
        assert_eq!(p, vec![i]);
    }
}

#[test]
fn a_tampered_replayed_or_reordered_transport_message_is_refused() {
    let (mut a, mut b, _) = pair();
    let mut c1 = Vec::new();
    let mut c2 = Vec::new();
    let mut p = Vec::new();
    a.transport.encrypt(b"one", &mut c1).unwrap();
    a.transport.encrypt(b"two", &mut c2).unwrap();
    // Out of order.
    assert!(matches!(
        b.transport.decrypt(&c2, &mut p),
        Err(LinkError::Tampered(_))
    ));
    let (mut a, mut b, _) = pair();
    a.transport.encrypt(b"one", &mut c1).unwrap();
    let mut bad = c1.clone();
    bad[0] ^= 1;
    assert!(matches!(
        b.transport.decrypt(&bad, &mut p),
        Err(LinkError::Tampered(_))
    ));
    // Replayed after a good one.
    let (mut a, mut b, _) = pair();
    a.transport.encrypt(b"one", &mut c1).unwrap();
    b.transport.decrypt(&c1, &mut p).unwrap();
    assert!(b.transport.decrypt(&c1, &mut p).is_err());
    // Too large to be one message.
    assert!(matches!(
        b.transport.decrypt(&vec![0; 70_000], &mut p),
        Err(LinkError::TooLarge { .. })
    ));
    assert!(matches!(
        a.transport.encrypt(&vec![0; 65_520], &mut c1),
        Err(LinkError::TooLarge { .. })
    ));
}

#[test]
fn an_altered_identity_message_is_refused() {
    let (alice, bob) = keys();
    let mut x = Handshake::new(&alice, Role::Initiator).unwrap();
    let mut y = Handshake::new(&bob, Role::Responder).unwrap();
    let m = x.poll_transmit().unwrap();
    y.handle_message(&m).unwrap();
    let m = y.poll_transmit().unwrap();
    x.handle_message(&m).unwrap();
    let m3 = x.poll_transmit().unwrap();
    let ident = x.poll_transmit().unwrap();
    y.handle_message(&m3).unwrap();
    // A bit of the signature's ciphertext flipped: the tag catches it.
    let mut flipped = ident.clone();
    flipped[60] ^= 0x80;
    assert!(matches!(
        y.handle_message(&flipped),
        Err(HandshakeError::IdentityDecrypt(_))
    ));
    assert!(!y.is_finished());
}

#[test]
fn a_message_after_the_end_or_out_of_turn_is_refused() {
    let (alice, bob) = keys();
    let mut a = Handshake::new(&alice, Role::Initiator).unwrap();
    let mut b = Handshake::new(&bob, Role::Responder).unwrap();
    run(&mut a, &mut b);
    assert!(matches!(
        a.handle_message(&[0; 10]),
        Err(HandshakeError::Over)
    ));
    // The initiator waits for message 2; getting message 1 from another initiator fails.
    let mut a = Handshake::new(&alice, Role::Initiator).unwrap();
    let mut c = Handshake::new(&bob, Role::Initiator).unwrap();
    let m = c.poll_transmit().unwrap();
    assert!(a.handle_message(&m).is_err());
    // An oversized message is refused by its length before anything else.
    let mut b = Handshake::new(&bob, Role::Responder).unwrap();
    assert!(matches!(
        b.handle_message(&vec![0; MAX_HANDSHAKE_MSG + 1]),
        Err(HandshakeError::TooLarge { .. })
    ));
    // After a failure, nothing more.
    assert!(matches!(
        b.handle_message(&[0; 32]),
        Err(HandshakeError::Over)
    ));
    assert!(b.poll_transmit().is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary bytes at any stage of either side's handshake: a typed error or (for
    /// the first message, where any 32 bytes are an ephemeral key) progress, never a
    /// panic; and the side is unusable after an error.
    #[test]
    fn garbage_at_any_stage_is_a_typed_error(
        stage in 0usize..5,
        garbage in proptest::collection::vec(any::<u8>(), 0..1200),
        flip in any::<usize>(),
    ) {
        let (alice, bob) = keys();
        let mut a = Handshake::new(&alice, Role::Initiator).unwrap();
        let mut b = Handshake::new(&bob, Role::Responder).unwrap();
        // Deliver the first `stage` messages faithfully, then garbage (or a good message
        // with a flipped bit) to whoever receives next.
        let mut wire: Vec<(bool, Vec<u8>)> = Vec::new();
        let mut delivered = 0;
        'outer: loop {
            let mut moved = false;
            while let Some(m) = a.poll_transmit() { wire.push((true, m)); moved = true; }
            while let Some(m) = b.poll_transmit() { wire.push((false, m)); moved = true; }
            while delivered < wire.len() {
                if delivered == stage { break 'outer; }
                let (from_a, m) = wire[delivered].clone();
                if from_a { b.handle_message(&m).unwrap(); } else { a.handle_message(&m).unwrap(); }
                delivered += 1;
                moved = true;
            }
            if !moved { break; }
        }
        let to_b = wire.get(delivered).map(|(from_a, _)| *from_a).unwrap_or(true);
        let target = if to_b { &mut b } else { &mut a };
        let mut bad = garbage.clone();
        if let Some((_, good)) = wire.get(delivered) && !good.is_empty() && flip % 2 == 0 {
            bad = good.clone();
            let i = flip / 2 % bad.len();
            bad[i] ^= 1 << (flip % 8);
        }
        match target.handle_message(&bad) {
            Ok(()) => {
                // Only the responder's first message takes any 32 bytes (a public key).
                prop_assert!(stage == 0 && bad.len() == 32);
            }
            Err(_) => {
                prop_assert!(!target.is_finished());
                prop_assert!(target.established().is_none());
                prop_assert!(matches!(target.handle_message(&[0; 32]), Err(HandshakeError::Over)));
            }
        }
    }

    /// Arbitrary bytes given to an established transport: refused, never a panic.
    #[test]
    fn garbage_to_a_transport_is_refused(garbage in proptest::collection::vec(any::<u8>(), 0..70_000)) {
        let (_a, mut b, _) = pair();
        let mut out = Vec::new();
        prop_assert!(b.transport.decrypt(&garbage, &mut out).is_err());
    }
}
