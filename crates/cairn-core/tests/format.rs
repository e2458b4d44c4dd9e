//! Format stability: encodings and keys of fixed nodes, committed as fixtures. If this test
//! fails, the node format changed: that needs a new format version, not a new fixture.

use cairn_core::{Hash, Keypair, Limits, Node};

fn fixture_nodes() -> Vec<Node> {
    let l = Limits::default();
    let kp = Keypair::from_seed([1; 32]);
    let a = Node::unsigned([], b"hello".to_vec(), &l).unwrap();
    let b = Node::signed([a.key()], b"world".to_vec(), &kp, &l).unwrap();
    let c = Node::signed(
        [a.key(), b.key(), Hash([0xff; 32])],
        vec![0u8; 200],
        &kp,
        &l,
    )
    .unwrap();
    vec![a, b, c]
}

fn render(nodes: &[Node]) -> String {
    nodes
        .iter()
        .map(|n| format!("{} {}\n", n.key(), hex::encode(n.encode())))
        .collect()
}

#[test]
fn node_encodings_and_keys_are_stable() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/nodes-v1.txt");
    let now = render(&fixture_nodes());
    if std::env::var_os("CAIRN_WRITE_FIXTURES").is_some() {
        std::fs::write(path, &now).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap();
    assert_eq!(now, committed, "node format changed");
    // And the committed bytes decode to the committed keys.
    for line in committed.lines() {
        let (key, bytes) = line.split_once(' ').unwrap();
        let n = Node::decode_expecting(
            &hex::decode(bytes).unwrap(),
            &key.parse().unwrap(),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(n.encode(), hex::decode(bytes).unwrap());
    }
}
