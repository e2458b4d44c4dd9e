//! The signalling messages: round trips, hostile bytes, and what a signature binds.

use cairn_core::{Keypair, PublicKey, Signature};
use cairn_signal::{
    Action, Challenge, ClientMessage, DecodeError, ErrorCode, HubMessage, MAX_CLIENT_MESSAGE,
    MAX_ERROR_TEXT, MAX_HUB_MESSAGE, MAX_MEMBERS, MAX_PAYLOAD, Relay, SignalKind, Topic,
    VerifyError,
};
use proptest::prelude::*;

fn key(seed: u8) -> Keypair {
    Keypair::from_seed([seed; 32])
}

fn signal_kind() -> impl Strategy<Value = SignalKind> {
    prop_oneof![
        Just(SignalKind::Offer),
        Just(SignalKind::Answer),
        Just(SignalKind::Candidate)
    ]
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        Just(Action::Join),
        Just(Action::Leave),
        (
            any::<[u8; 32]>(),
            signal_kind(),
            proptest::collection::vec(any::<u8>(), 0..600)
        )
            .prop_map(|(to, kind, payload)| Action::Signal {
                to: PublicKey(to),
                kind,
                payload
            }),
    ]
}

fn client_message() -> impl Strategy<Value = (ClientMessage, Challenge)> {
    (
        any::<u8>(),
        any::<[u8; 32]>(),
        any::<u64>(),
        any::<[u8; 32]>(),
        action(),
    )
        .prop_map(|(seed, challenge, counter, topic, action)| {
            let c = Challenge(challenge);
            (
                ClientMessage::sign(&key(seed), &c, counter, Topic(topic), action),
                c,
            )
        })
}

fn hub_message() -> impl Strategy<Value = HubMessage> {
    prop_oneof![
        any::<[u8; 32]>().prop_map(|c| HubMessage::Welcome {
            challenge: Challenge(c)
        }),
        (
            any::<[u8; 32]>(),
            proptest::collection::vec(any::<[u8; 32]>(), 0..40)
        )
            .prop_map(|(t, ps)| HubMessage::Members {
                topic: Topic(t),
                peers: ps.into_iter().map(PublicKey).collect()
            }),
        (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(t, p)| HubMessage::PeerJoined {
            topic: Topic(t),
            peer: PublicKey(p)
        }),
        (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(t, p)| HubMessage::PeerLeft {
            topic: Topic(t),
            peer: PublicKey(p)
        }),
        client_message()
            .prop_map(|(message, challenge)| HubMessage::Relay(Relay { challenge, message })),
        (
            prop_oneof![
                Just(ErrorCode::NotMember),
                Just(ErrorCode::NoSuchPeer),
                Just(ErrorCode::TopicFull),
                Just(ErrorCode::TooManyTopics),
                Just(ErrorCode::Replaced),
                Just(ErrorCode::Dropped),
                (7u8..).prop_map(ErrorCode::Other),
                Just(ErrorCode::Other(0)),
            ],
            any::<u64>(),
            "\\PC{0,80}"
        )
            .prop_map(|(code, counter, text)| HubMessage::Error {
                code,
                counter,
                text
            }),
    ]
}

proptest! {
    #[test]
    fn client_messages_round_trip_and_verify((m, c) in client_message()) {
        let bytes = m.encode();
        prop_assert!(bytes.len() <= MAX_CLIENT_MESSAGE);
        let back = ClientMessage::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &m);
        prop_assert!(back.verify(&c).is_ok());
    }

    #[test]
    fn hub_messages_round_trip(m in hub_message()) {
        let bytes = m.encode();
        prop_assert!(bytes.len() <= MAX_HUB_MESSAGE);
        prop_assert_eq!(HubMessage::decode(&bytes).unwrap(), m);
    }

    /// Arbitrary bytes never panic a decoder, and what decodes re-encodes to the same bytes
    /// (one message, one encoding).
    #[test]
    fn arbitrary_bytes_decode_canonically_or_not_at_all(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        kind in 0u8..8,
    ) {
        let mut bytes = bytes;
        // Mostly well-versioned messages of a real kind, so decoding gets past the header.
        if bytes.len() >= 2 {
            bytes[0] = 1;
            bytes[1] = kind;
        }
        if let Ok(m) = ClientMessage::decode(&bytes) {
            prop_assert_eq!(m.encode(), bytes.clone());
        }
        if let Ok(m) = HubMessage::decode(&bytes) {
            prop_assert_eq!(m.encode(), bytes);
        }
    }

    /// Any change of a signed message's bytes makes it undecodable or its signature invalid.
    #[test]
    fn any_changed_byte_is_caught((m, c) in client_message(), at in any::<prop::sample::Index>(), x in 1u8..) {
        let mut bytes = m.encode();
        let i = at.index(bytes.len());
        bytes[i] ^= x;
        if let Ok(changed) = ClientMessage::decode(&bytes) {
            prop_assert!(changed.verify(&c).is_err());
        }
    }

    /// A message verifies for the connection whose challenge it signed, not for another.
    #[test]
    fn a_signature_binds_the_challenge((m, c) in client_message(), other in any::<[u8; 32]>()) {
        prop_assume!(other != c.0);
        prop_assert_eq!(m.verify(&Challenge(other)), Err(VerifyError::BadSignature(m.from)));
    }

    /// Truncating a valid message at any point is an error, never a shorter message.
    #[test]
    fn truncation_is_an_error((m, _c) in client_message(), at in any::<prop::sample::Index>()) {
        let bytes = m.encode();
        let cut = at.index(bytes.len());
        prop_assert!(ClientMessage::decode(&bytes[..cut]).is_err());
    }
}

#[test]
fn a_signature_by_another_key_is_refused() {
    let c = Challenge([9; 32]);
    let topic = Topic::of_swarm("swarm");
    let mut m = ClientMessage::sign(&key(1), &c, 1, topic, Action::Join);
    // Claims key 2 but signed by key 1.
    m.from = key(2).public();
    assert_eq!(
        m.verify(&c),
        Err(VerifyError::BadSignature(key(2).public()))
    );
    // Re-signed properly by key 2 but over another counter: the counter is bound.
    let mut m = ClientMessage::sign(&key(2), &c, 1, topic, Action::Join);
    m.counter = 2;
    assert!(m.verify(&c).is_err());
    // The signature of a join is not one of a leave.
    let mut m = ClientMessage::sign(&key(2), &c, 1, topic, Action::Join);
    m.action = Action::Leave;
    assert!(m.verify(&c).is_err());
    // Nor of another topic.
    let mut m = ClientMessage::sign(&key(2), &c, 1, topic, Action::Join);
    m.topic = Topic::of_swarm("other");
    assert!(m.verify(&c).is_err());
    // An all-zero signature is refused too.
    let mut m = ClientMessage::sign(&key(2), &c, 1, topic, Action::Join);
    m.signature = Signature([0; 64]);
    assert!(m.verify(&c).is_err());
}

#[test]
fn a_relay_is_checked_by_its_recipient() {
    let c = Challenge([5; 32]);
    let topic = Topic::of_swarm("swarm");
    let (a, b, e) = (key(1), key(2), key(3));
    let offer = Action::Signal {
        to: b.public(),
        kind: SignalKind::Offer,
        payload: b"v=0".to_vec(),
    };
    let relay = Relay {
        challenge: c,
        message: ClientMessage::sign(&a, &c, 7, topic, offer.clone()),
    };
    assert_eq!(
        relay.verify(&b.public()),
        Ok((a.public(), SignalKind::Offer, &b"v=0"[..]))
    );
    // Not for e.
    assert_eq!(relay.verify(&e.public()), Err(VerifyError::NotForMe));
    // A relay naming another challenge than the one signed over fails.
    let moved = Relay {
        challenge: Challenge([6; 32]),
        ..relay.clone()
    };
    assert!(moved.verify(&b.public()).is_err());
    // A join is not a signal.
    let join = Relay {
        challenge: c,
        message: ClientMessage::sign(&a, &c, 8, topic, Action::Join),
    };
    assert_eq!(join.verify(&b.public()), Err(VerifyError::NotForMe));
}

#[test]
fn limits_are_checked_before_reading() {
    let c = Challenge([1; 32]);
    let topic = Topic::of_swarm("s");
    // A payload one byte over the limit.
    let m = ClientMessage::sign(
        &key(1),
        &c,
        1,
        topic,
        Action::Signal {
            to: key(2).public(),
            kind: SignalKind::Candidate,
            payload: vec![0; MAX_PAYLOAD + 1],
        },
    );
    assert!(matches!(
        ClientMessage::decode(&m.encode()),
        Err(DecodeError::TooLong { .. })
    ));
    // A declared payload length far over the limit in a short message.
    let mut bytes = ClientMessage::sign(
        &key(1),
        &c,
        1,
        topic,
        Action::Signal {
            to: key(2).public(),
            kind: SignalKind::Offer,
            payload: vec![1; 10],
        },
    )
    .encode();
    let len_at = 1 + 1 + 32 + 8 + 32 + 32 + 1;
    bytes[len_at..len_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(
        ClientMessage::decode(&bytes),
        Err(DecodeError::Declared {
            what: "payload",
            len: u32::MAX as usize,
            max: MAX_PAYLOAD
        })
    );
    // The longest member list a hub sends decodes (it is longer than the largest relay).
    let full = HubMessage::Members {
        topic: Topic([7; 32]),
        peers: (0..MAX_MEMBERS)
            .map(|i| PublicKey([(i % 251) as u8; 32]))
            .collect(),
    };
    let bytes = full.encode();
    assert!(bytes.len() <= MAX_HUB_MESSAGE);
    assert_eq!(HubMessage::decode(&bytes).unwrap(), full);
    // A member count over the limit.
    let mut members = vec![1, 2];
    members.extend_from_slice(&[0; 32]);
    members.extend_from_slice(&((MAX_MEMBERS + 1) as u16).to_be_bytes());
    assert!(matches!(
        HubMessage::decode(&members),
        Err(DecodeError::Declared { .. })
    ));
    // A long error text is cut at a character boundary when encoded.
    let long = HubMessage::Error {
        code: ErrorCode::Dropped,
        counter: 0,
        text: "é".repeat(MAX_ERROR_TEXT),
    };
    let HubMessage::Error { text, .. } = HubMessage::decode(&long.encode()).unwrap() else {
        panic!("not an error");
    };
    assert_eq!(text.len(), MAX_ERROR_TEXT);
    // Other versions, unknown kinds, empty and trailing bytes.
    assert_eq!(ClientMessage::decode(&[]), Err(DecodeError::Empty));
    assert_eq!(ClientMessage::decode(&[2, 1]), Err(DecodeError::Version(2)));
    let mut join = ClientMessage::sign(&key(1), &c, 1, topic, Action::Join).encode();
    join[1] = 9;
    assert_eq!(ClientMessage::decode(&join), Err(DecodeError::Kind(9)));
    join[1] = 1;
    join.push(0);
    assert_eq!(ClientMessage::decode(&join), Err(DecodeError::Trailing(1)));
}

#[test]
fn topics_are_hashes_of_names() {
    assert_eq!(Topic::of_swarm("a"), Topic::of_swarm("a"));
    assert_ne!(Topic::of_swarm("a"), Topic::of_swarm("b"));
    assert_eq!(
        Topic::of_swarm("a").0,
        blake3::derive_key(cairn_signal::TOPIC_CONTEXT, b"a")
    );
}

/// The encoding, pinned: a change of the format must change this test (and the version).
#[test]
fn the_encoding_is_pinned() {
    let c = Challenge([0xcc; 32]);
    let m = ClientMessage::sign(
        &key(1),
        &c,
        0x0102,
        Topic([0x77; 32]),
        Action::Signal {
            to: PublicKey([0x22; 32]),
            kind: SignalKind::Answer,
            payload: b"sdp".to_vec(),
        },
    );
    let bytes = m.encode();
    let mut expected = vec![1u8, 3];
    expected.extend_from_slice(&key(1).public().0);
    expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 2]);
    expected.extend_from_slice(&[0x77; 32]);
    expected.extend_from_slice(&[0x22; 32]);
    expected.extend_from_slice(&[2, 0, 0, 0, 3]);
    expected.extend_from_slice(b"sdp");
    expected.extend_from_slice(&m.signature.0);
    assert_eq!(bytes, expected);
    let mut h = blake3::Hasher::new_derive_key(cairn_signal::SIGN_CONTEXT);
    h.update(&[0xcc; 32]);
    h.update(&expected[..expected.len() - 64]);
    assert_eq!(m.digest(&c).0, *h.finalize().as_bytes());
}

/// The committed fuzz seeds (`fuzz/seeds/signal_decode/`): one message of every kind.
const SEEDS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fuzz/seeds/signal_decode"
);

fn seeds() -> Vec<Vec<u8>> {
    let c = Challenge([4; 32]);
    let topic = Topic::of_swarm("seed");
    let (a, b) = (key(1), key(2));
    let offer = ClientMessage::sign(
        &a,
        &c,
        3,
        topic,
        Action::Signal {
            to: b.public(),
            kind: SignalKind::Offer,
            payload: b"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n".to_vec(),
        },
    );
    vec![
        ClientMessage::sign(&a, &c, 1, topic, Action::Join).encode(),
        ClientMessage::sign(&a, &c, 2, topic, Action::Leave).encode(),
        offer.encode(),
        HubMessage::Welcome { challenge: c }.encode(),
        HubMessage::Members {
            topic,
            peers: vec![a.public(), b.public()],
        }
        .encode(),
        HubMessage::PeerJoined {
            topic,
            peer: b.public(),
        }
        .encode(),
        HubMessage::PeerLeft {
            topic,
            peer: b.public(),
        }
        .encode(),
        HubMessage::Relay(Relay {
            challenge: c,
            message: offer,
        })
        .encode(),
        HubMessage::Error {
            code: ErrorCode::NoSuchPeer,
            counter: 3,
            text: "no such member".into(),
        }
        .encode(),
    ]
}

#[test]
#[ignore = "writes fuzz/seeds/signal_decode; run by hand after a format change, then commit"]
fn write_fuzz_seeds() {
    std::fs::create_dir_all(SEEDS).unwrap();
    for (i, s) in seeds().iter().enumerate() {
        std::fs::write(format!("{SEEDS}/seed-{i:02}"), s).unwrap();
    }
}

#[test]
fn committed_fuzz_seeds_are_current() {
    for (i, s) in seeds().iter().enumerate() {
        let path = format!("{SEEDS}/seed-{i:02}");
        let kept = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{path}: {e} (run the ignored write_fuzz_seeds)"));
        assert_eq!(
            &kept, s,
            "{path} is stale: run the ignored write_fuzz_seeds"
        );
    }
}
