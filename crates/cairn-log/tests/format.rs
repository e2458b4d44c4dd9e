//! Store format stability: a store written by this version is committed as a fixture, and
//! every later build must open and read it. If this fails, the store format changed: bump
//! `STORE_FORMAT` and write a migration, don't regenerate the fixture.

use cairn_core::Keypair;
use cairn_log::{ChangesQuery, Log, LogOptions};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/store-v1.redb");

fn expected() -> Vec<String> {
    let mut v = vec!["root".to_string()];
    v.extend((0..20).map(|i| format!("n{i}")));
    v.push("merge".into());
    v
}

#[test]
fn committed_store_opens_and_reads() {
    if std::env::var_os("CAIRN_WRITE_FIXTURES").is_some() {
        let _ = std::fs::remove_file(FIXTURE);
        let log = Log::open(
            FIXTURE,
            LogOptions::default().signer(Keypair::from_seed([3; 32])),
        )
        .unwrap();
        let root = log.append(b"root".to_vec()).unwrap();
        for i in 0..20 {
            log.add([root.node.key()], format!("n{i}")).unwrap();
        }
        log.append(b"merge".to_vec()).unwrap();
    }
    // Work on a copy: opening may write (format check, repair).
    let dir = std::env::temp_dir().join(format!("cairn-fixture-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("store.redb");
    std::fs::copy(FIXTURE, &copy).unwrap();
    let log = Log::open(&copy, LogOptions::default()).unwrap();
    assert_eq!(log.len(), 22);
    let values: Vec<String> = log
        .changes(ChangesQuery::all())
        .map(|e| String::from_utf8(e.unwrap().node.into_value()).unwrap())
        .collect();
    assert_eq!(values, expected());
    let heads = log.heads().unwrap();
    assert_eq!(heads.len(), 1);
    let head = log.get(&heads[0]).unwrap().unwrap();
    assert_eq!(head.node.value(), b"merge");
    assert_eq!(head.node.links().len(), 20);
    assert_eq!(
        head.node.author(),
        Some(&Keypair::from_seed([3; 32]).public())
    );
    std::fs::remove_dir_all(dir).unwrap();
}
