//! Unit tests of [`Core`] on disk: reopen, crashes, torn and damaged files, recovery.

use super::*;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::Path;

fn make(dir: &Path, n: u64) -> Core {
    let mut c = Core::create(dir, key(1)).unwrap();
    for i in 0..n {
        c.append(&[&block(i)]).unwrap();
    }
    c
}

#[test]
fn reopen_preserves_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("core");
    let c = make(&dir, 10);
    let (hash, sig) = (c.tree_hash(), c.signature());
    drop(c);
    assert!(matches!(Core::create(&dir, key(1)), Err(Error::Exists(_))));
    let mut c = Core::open(&dir, Some(key(1))).unwrap();
    assert_eq!((c.length(), c.tree_hash(), c.signature()), (10, hash, sig));
    for i in 0..10 {
        assert_eq!(c.get(i).unwrap().unwrap(), block(i));
    }
    c.append(&[b"more"]).unwrap();
    drop(c);
    let c = Core::open(&dir, None).unwrap();
    assert!(!c.writable());
    assert_eq!(c.get(10).unwrap().unwrap(), b"more");
}

#[test]
fn wrong_key_and_missing_core() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("core");
    drop(make(&dir, 2));
    assert!(matches!(
        Core::open(&dir, Some(key(2))),
        Err(Error::WrongKey { .. })
    ));
    assert!(matches!(
        Core::open_replica(&dir, CoreKey::from_bytes(key(2).verifying_key().to_bytes())),
        Err(Error::WrongKey { .. })
    ));
    assert!(matches!(
        Core::open(&tmp.path().join("nothing"), None),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn interrupted_append_leaves_previous_state() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("core");
    let c = make(&dir, 6);
    let hash = c.tree_hash();
    drop(c);
    // What a crash between the data writes and the header commit leaves behind.
    for name in ["data", "index", "tree", "bitfield"] {
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join(name))
            .unwrap();
        f.write_all(&[0xab; 100]).unwrap();
    }
    // ... and a header commit torn halfway (7 commits so far: the next goes to slot 1).
    let f = OpenOptions::new()
        .write(true)
        .open(dir.join("header"))
        .unwrap();
    let mut torn = 7u64.to_le_bytes().to_vec();
    torn.extend_from_slice(&300u32.to_le_bytes());
    torn.extend_from_slice(b"DSHCORE1 half a header");
    std::os::unix::fs::FileExt::write_all_at(&f, &torn, 4096).unwrap();
    drop(f);
    let mut c = Core::open(&dir, Some(key(1))).unwrap();
    assert_eq!((c.length(), c.tree_hash()), (6, hash));
    // Garbage was cut away; appending continues cleanly.
    c.append(&[&block(6), &block(7)]).unwrap();
    drop(c);
    let c = Core::open(&dir, None).unwrap();
    for i in 0..8 {
        assert_eq!(c.get(i).unwrap().unwrap(), block(i));
    }
    // And the result is the same tree as an uninterrupted writer's.
    let w = writer_with(8);
    assert_eq!(c.tree_hash(), w.tree_hash());
}

fn expect_corrupt(dir: &Path, file: &str) {
    match Core::open(dir, None).and_then(|c| {
        for i in 0..c.length() {
            c.get(i)?;
        }
        Ok(c)
    }) {
        Err(Error::Corrupt { path, reason }) => {
            assert!(
                path.ends_with(file),
                "{path:?} ({reason}) should name {file}"
            )
        }
        other => panic!("expected Corrupt({file}), got {other:?}"),
    }
}

#[test]
fn truncated_files_are_reported() {
    for (file, keep) in [("data", 10u64), ("index", 8), ("tree", 48), ("header", 20)] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("core");
        drop(make(&dir, 5));
        let f = OpenOptions::new().write(true).open(dir.join(file)).unwrap();
        f.set_len(keep).unwrap();
        drop(f);
        expect_corrupt(&dir, file);
    }
}

#[test]
fn damaged_newest_header_slot_falls_back_one_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("core");
    // create + 5 appends = commits 0..=5; commit 5 sits in slot 1, commit 4 in slot 0.
    drop(make(&dir, 5));
    let path = dir.join("header");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[4096 + 40] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let c = Core::open(&dir, None).unwrap();
    assert_eq!(c.length(), 4);
    // Both slots damaged: a clear error.
    bytes[40] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    expect_corrupt(&dir, "header");
}

#[test]
fn flipped_bytes_are_reported() {
    for (file, at) in [("data", 3u64), ("tree", 48 * 2 + 9)] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("core");
        drop(make(&dir, 5));
        let path = dir.join(file);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[at as usize] ^= 0x10;
        std::fs::write(&path, bytes).unwrap();
        expect_corrupt(&dir, file);
    }
}

#[test]
fn damaged_newest_slot_refuses_the_writer_and_recover_restores_the_same_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("core");
    // create + 5 appends = commits 0..=5; commit 5 (length 5) sits in slot 1.
    let c = make(&dir, 5);
    let (hash, sig) = (c.tree_hash(), c.signature());
    drop(c);
    let path = dir.join("header");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[4096 + 40] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    // The writer must not append at length 4 a block other than the signed block 4.
    match Core::open(&dir, Some(key(1))) {
        Err(Error::Corrupt { path, reason }) => {
            assert!(path.ends_with("header"), "{path:?}");
            assert!(reason.contains("refusing"), "{reason}");
        }
        other => panic!("expected Corrupt(header), got {other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing written");
    // A reader sees the older state, but is told it is not the newest.
    let r = Core::open(&dir, None).unwrap();
    assert_eq!(r.length(), 4);
    let d = r.header_damage().unwrap().clone();
    assert_eq!((d.header_length, d.files_length), (4, 5));
    assert!(matches!(r.verify_all(), Err(Error::Corrupt { .. })));
    drop(r);
    // Recovery signs the very same tree again: same length, roots and signature.
    let (mut c, restored) = Core::recover(&dir, key(1)).unwrap();
    assert_eq!(restored.map(|d| d.files_length), Some(5));
    assert_eq!((c.length(), c.tree_hash(), c.signature()), (5, hash, sig));
    c.verify_all().unwrap();
    c.append(&[&block(5)]).unwrap();
    drop(c);
    let c = Core::open(&dir, Some(key(1))).unwrap();
    c.verify_all().unwrap();
    assert_eq!(c.header_damage(), None);
    assert_eq!(c.tree_hash(), writer_with(6).tree_hash());
    // Nothing left to recover.
    drop(c);
    assert_eq!(Core::recover(&dir, key(1)).unwrap().1, None);
}

#[test]
fn a_flipped_sequence_number_does_not_roll_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("core");
    drop(make(&dir, 5));
    let path = dir.join("header");
    let mut bytes = std::fs::read(&path).unwrap();
    // Commit 5 (length 5) in slot 1: its sequence, outside the checksum, becomes 1.
    bytes[4096] ^= 0x04;
    std::fs::write(&path, &bytes).unwrap();
    let mut c = Core::open(&dir, Some(key(1))).unwrap();
    assert_eq!(c.length(), 5);
    c.append(&[&block(5)]).unwrap();
    drop(c);
    let c = Core::open(&dir, Some(key(1))).unwrap();
    assert_eq!(c.length(), 6);
    c.verify_all().unwrap();
    assert_eq!(c.tree_hash(), writer_with(6).tree_hash());
}

#[test]
fn rebuild_tree_mends_a_damaged_tree_file_only_from_intact_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("core");
    let c = make(&dir, 5);
    let hash = c.tree_hash();
    drop(c);
    let tree = dir.join("tree");
    let mut bytes = std::fs::read(&tree).unwrap();
    bytes[9] ^= 0x01; // node 0's hash
    std::fs::write(&tree, &bytes).unwrap();
    expect_corrupt(&dir, "tree");
    assert!(Core::rebuild_tree(&dir, &key(1)).unwrap());
    let c = Core::open(&dir, Some(key(1))).unwrap();
    c.verify_all().unwrap();
    assert_eq!(c.tree_hash(), hash);
    drop(c);
    // A changed block can't be mended: nothing is written.
    let data = dir.join("data");
    let mut d = std::fs::read(&data).unwrap();
    d[2] ^= 0x01;
    std::fs::write(&data, &d).unwrap();
    let before = std::fs::read(&tree).unwrap();
    assert!(!Core::rebuild_tree(&dir, &key(1)).unwrap());
    assert_eq!(std::fs::read(&tree).unwrap(), before);
}

#[test]
fn replica_on_disk_survives_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let w = writer_with(9);
    let dir = tmp.path().join("replica");
    let mut r = Core::open_replica(&dir, w.key()).unwrap();
    let d = w
        .create_proof(&req_block(&r, 4, true, &w))
        .unwrap()
        .unwrap();
    r.verify_and_apply(&d).unwrap();
    let d = w
        .create_proof(&req_block(&r, 0, false, &w))
        .unwrap()
        .unwrap();
    r.verify_and_apply(&d).unwrap();
    r.flush().unwrap();
    drop(r);
    let r = Core::open_replica(&dir, w.key()).unwrap();
    assert_eq!(r.length(), 9);
    assert_eq!(r.get(4).unwrap().unwrap(), block(4));
    assert_eq!(r.get(0).unwrap().unwrap(), block(0));
    assert_eq!(r.get(1).unwrap(), None);
    assert_eq!(r.contiguous_length(), 1);
}
