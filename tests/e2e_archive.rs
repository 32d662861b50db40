//! The archive on disk, end to end with the real binary: damage to your own archive is reported
//! (never shown, served or written over), `check` finds it and `check --repair` mends what is
//! safe, a damaged header slot never rolls the archive back into a fork, two copies of one data
//! directory writing are reported as a fork by readers, and `init` on a full disk leaves
//! nothing behind.

mod support;

use std::path::Path;
use std::time::Duration;

use dat_social::friends::Replica;
use dat_social::hypercore::{crypto, messages::TreeNode, storage, Core};
use dat_social::identity::Identity;
use dat_social::net::{Connection, SharedCore};
use serde_json::Value;
use support::{host, Output, User, WAIT};

/// The `check` event of the user's own archive.
fn archive_check(out: &Output) -> Value {
    out.events()
        .into_iter()
        .find(|e| e["event"] == "check" && e["kind"] == "archive")
        .unwrap_or_else(|| panic!("no check event: {} {}", out.stdout, out.stderr))
}

fn flip(path: &Path, at: usize, mask: u8) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= mask;
    std::fs::write(path, &bytes).unwrap();
}

/// Whatever the command, a damaged own archive is a clear error naming the damage, and a hint.
fn assert_refused(user: &User, args: &[&str], what: &str) {
    let out = user.run(args);
    assert_eq!(out.code(), 1, "{args:?}: {} {}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("archive damaged")
            && out.stderr.contains(what)
            && out.stderr.contains("dat-social check"),
        "{args:?}: {}",
        out.stderr
    );
    assert!(
        !out.events().iter().any(|e| e["event"] == "hosting"),
        "{args:?} served a damaged archive"
    );
}

/// (length, tree hash, signature) of the archive as a reader opens it.
fn signed_state(user: &User) -> (u64, [u8; 32], Option<[u8; 64]>) {
    let core = Core::open(&user.data_dir().join("archive"), None).unwrap();
    (core.length(), core.tree_hash(), core.signature())
}

#[test]
fn a_flipped_bit_in_tree_node_0_is_reported_and_repaired() {
    let alice = User::new("alice");
    // After hosting once, profile.json and session.json are found before block 0 is read:
    // only a full verification notices node 0.
    let (mut lobby, _) = host(&alice, &[]);
    lobby.signal("INT");
    lobby.wait_exit(WAIT);
    let tree = alice.data_dir().join("archive").join("tree");
    flip(&tree, 9, 0x01); // inside node 0's hash
    assert_refused(&alice, &["whoami"], "tree node 0");
    assert_refused(&alice, &["host", "--listen", "127.0.0.1:0"], "tree node 0");
    assert_refused(&alice, &["profile", "set", "--name", "x"], "tree node 0");

    let out = alice.run(&["check"]);
    assert_eq!(out.code(), 1, "{}", out.stdout);
    let c = archive_check(&out);
    assert_eq!(c["state"], "damaged", "{c}");
    assert!(c["reason"].as_str().unwrap().contains("tree node 0"), "{c}");

    // The blocks are intact and hash to the signed roots: the tree file can be rebuilt.
    let out = alice.run(&["check", "--repair"]);
    assert_eq!(out.code(), 0, "{} {}", out.stdout, out.stderr);
    let c = archive_check(&out);
    assert_eq!(c["state"], "repaired", "{c}");
    assert_eq!(alice.whoami()["profile"]["name"], "alice");
    let out = alice.run(&["check"]);
    assert_eq!(out.code(), 0, "{}", out.stdout);
    assert_eq!(archive_check(&out)["state"], "ok");
}

#[test]
fn a_block_edited_with_its_leaf_and_checksum_recomputed_is_caught() {
    let alice = User::new("alice");
    let dir = alice.data_dir().join("archive");
    // Block 1 is profile.json; rewrite the name (same length) and make the leaf and its
    // record checksum agree with the new bytes, as an attacker with disk access would.
    let data = std::fs::read(dir.join("data")).unwrap();
    let index = std::fs::read(dir.join("index")).unwrap();
    let start = u64::from_le_bytes(index[8..16].try_into().unwrap()) as usize;
    let mut block = data[start..].to_vec();
    let at = block
        .windows(5)
        .position(|w| w == b"alice")
        .expect("the name in block 1");
    block[at..at + 5].copy_from_slice(b"eve!!");
    let mut edited = data[..start].to_vec();
    edited.extend_from_slice(&block);
    std::fs::write(dir.join("data"), &edited).unwrap();
    let leaf = TreeNode {
        index: 2,
        size: block.len() as u64,
        hash: crypto::leaf_hash(&block),
    };
    let tree = dir.join("tree");
    let mut t = std::fs::read(&tree).unwrap();
    t[2 * 48..3 * 48].copy_from_slice(&storage::encode_node(&leaf));
    std::fs::write(&tree, &t).unwrap();

    assert_refused(&alice, &["whoami"], "signed roots");
    assert_refused(&alice, &["host", "--listen", "127.0.0.1:0"], "signed roots");
    let out = alice.run(&["check"]);
    assert_eq!(out.code(), 1);
    assert_eq!(archive_check(&out)["state"], "damaged");
    // Nothing safe to do: the signed bytes are gone. Said plainly, and nothing is rewritten.
    let out = alice.run(&["check", "--repair"]);
    assert_eq!(out.code(), 1, "{}", out.stdout);
    let c = archive_check(&out);
    assert_eq!(c["state"], "damaged", "{c}");
    assert!(
        c["reason"].as_str().unwrap().contains("not repaired"),
        "{c}"
    );
    assert_eq!(std::fs::read(dir.join("data")).unwrap(), edited);
    assert_refused(&alice, &["whoami"], "signed roots");
}

#[test]
fn a_damaged_newest_header_slot_is_refused_then_restored_never_forked() {
    let alice = User::new("alice");
    let (mut lobby, hosting) = host(&alice, &[]);
    // Someone reads the lobby first: by then the host is well past installing its Ctrl-C
    // handler, so the interrupt ends the lobby (marks it ended) rather than killing it.
    let out = User::new("bob").run(&["show", hosting["invite"].as_str().unwrap()]);
    assert!(out.status.success(), "{}", out.stderr);
    lobby.signal("INT");
    lobby.wait_exit(WAIT);
    let before = alice.whoami();
    assert!(before["session"]["ended"].is_u64(), "{before}");
    let signed = signed_state(&alice);

    // One byte flipped in the newest of the two header slots.
    let archive = alice.data_dir().join("archive");
    let header = std::fs::read(archive.join("header")).unwrap();
    let seq =
        |slot: usize| u64::from_le_bytes(header[slot * 4096..slot * 4096 + 8].try_into().unwrap());
    let newest = if seq(1) > seq(0) { 1 } else { 0 };
    flip(&archive.join("header"), newest * 4096 + 40, 0x10);
    let data = std::fs::read(archive.join("data")).unwrap();

    // Not the previous state shown as if current, and no write from it.
    assert_refused(&alice, &["whoami"], "header slot");
    assert_refused(&alice, &["host", "--listen", "127.0.0.1:0"], "header slot");
    assert_refused(&alice, &["profile", "set", "--name", "x"], "header slot");
    assert_eq!(std::fs::read(archive.join("data")).unwrap(), data);
    let out = alice.run(&["check"]);
    assert_eq!(out.code(), 1);
    let c = archive_check(&out);
    assert!(c["reason"].as_str().unwrap().contains("header slot"), "{c}");

    // Repair restores the newest state: the same tree, signed the same, at the same length.
    let out = alice.run(&["check", "--repair"]);
    assert_eq!(out.code(), 0, "{} {}", out.stdout, out.stderr);
    assert_eq!(archive_check(&out)["state"], "repaired");
    assert_eq!(signed_state(&alice), signed);
    assert_eq!(alice.whoami()["session"], before["session"]);
    // And writing goes on from there.
    let out = alice.run(&["profile", "set", "--name", "alice b"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(signed_state(&alice).0, signed.0 + 1);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A second copy of `user`'s data directory (same identity, same archive so far).
fn copy_of(user: &User) -> User {
    let copy = User {
        dir: tempfile::tempdir().unwrap(),
        name: user.name.clone(),
    };
    copy_dir(user.data_dir(), copy.data_dir());
    copy
}

#[test]
fn two_copies_of_one_data_dir_writing_are_reported_as_a_fork() {
    let alice = User::new("alice");
    let copy = copy_of(&alice);
    let bob = User::new("bob");

    // Bob keeps a verified replica of what the first copy signed.
    let (mut first, hosting) = host(&alice, &[]);
    let invite = hosting["invite"].as_str().unwrap().to_string();
    let out = bob.run(&["friends", "add", &invite]);
    assert!(out.status.success(), "{}", out.stderr);
    let out = bob.run(&["friends", "list", "--look-timeout", "5"]);
    assert!(out.status.success(), "{}", out.stderr);
    let friend = out
        .events()
        .into_iter()
        .find(|e| e["event"] == "friend")
        .unwrap();
    assert_eq!(friend["online"], true, "{friend}");
    first.signal("INT");
    first.wait_exit(WAIT);

    // The copy writes its own session.json at the same length.
    let (_second, hosting) = host(&copy, &[]);
    let invite = hosting["invite"].as_str().unwrap().to_string();
    let out = bob.run(&["show", &invite, "--timeout", "10"]);
    assert_eq!(out.code(), 1, "{} {}", out.stdout, out.stderr);
    assert!(out.stderr.contains("forked"), "{}", out.stderr);
    assert!(!out.stderr.contains("timed out"), "{}", out.stderr);
    assert!(!out.events().iter().any(|e| e["event"] == "archive"));
}

/// The replica of a friend whose archive forked: syncing from another copy, longer or as long,
/// ends with the conflict (not a timeout, not a silent success), and the verified copy is kept.
#[test]
fn a_replica_syncing_from_a_forked_copy_reports_the_conflict() {
    let runtime = support::sys::runtime();
    let tmp = tempfile::tempdir().unwrap();
    let writer = Identity::generate();
    let a_dir = tmp.path().join("a");
    let mut a = Core::create(&a_dir, writer.signing_key().clone()).unwrap();
    for i in 0..5u32 {
        a.append(&[format!("block {i}").as_bytes()]).unwrap();
    }
    drop(a);
    let b_dir = tmp.path().join("b");
    copy_dir(&a_dir, &b_dir);
    let c_dir = tmp.path().join("c");
    copy_dir(&a_dir, &c_dir);
    let mut a = Core::open(&a_dir, Some(writer.signing_key().clone())).unwrap();
    a.append(&[b"written by copy a"]).unwrap();
    let mut b = Core::open(&b_dir, Some(writer.signing_key().clone())).unwrap();
    b.append(&[b"written by copy b", b"and more"]).unwrap();
    let mut c = Core::open(&c_dir, Some(writer.signing_key().clone())).unwrap();
    c.append(&[b"written by copy c"]).unwrap();
    let (a, b, c) = (SharedCore::new(a), SharedCore::new(b), SharedCore::new(c));
    let root = tmp.path().join("reader");
    let reader = Identity::generate();

    runtime.block_on(async {
        let sync = |from: SharedCore| {
            let (root, reader, writer) = (root.clone(), reader.clone(), writer.clone());
            async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let key = writer.public_key();
                let serve = tokio::spawn(async move {
                    let (tcp, _) = listener.accept().await.unwrap();
                    let conn = Connection::connect(tcp, writer.signing_key(), false)
                        .await
                        .unwrap();
                    conn.replicate(from).await.unwrap();
                    conn
                });
                let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                let conn = Connection::connect(tcp, reader.signing_key(), true)
                    .await
                    .unwrap();
                let (replica, _) = Replica::open(&root, key, true).unwrap();
                let mut events = conn.take_events().unwrap();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
                let r = replica.sync(&conn, &mut events, deadline).await;
                let _server = serve.await.unwrap();
                (r, replica)
            }
        };
        let (r, replica) = sync(a.clone()).await;
        r.unwrap();
        assert_eq!(replica.core().status().length, 6);
        drop(replica);
        let (r, replica) = sync(b.clone()).await;
        let err = r.expect_err("a forked archive must not sync");
        assert!(err.to_string().contains("forked"), "{err}");
        assert_eq!(replica.core().status().length, 6);
        assert_eq!(
            replica.core().get(5).unwrap().unwrap(),
            b"written by copy a"
        );
        drop(replica);
        // As long as the replica: nothing to download, the fork check finds it.
        let (r, replica) = sync(c.clone()).await;
        let err = r.expect_err("a forked archive of the same length must not sync");
        assert!(err.to_string().contains("forked"), "{err}");
        assert_eq!(replica.core().status().length, 6);
    });
}

#[test]
fn init_on_a_full_disk_leaves_nothing_behind_and_a_later_init_works() {
    let mnt = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(mnt.path())
        .status()
        .expect("mount(8)");
    assert!(
        status.success(),
        "this test needs to mount a small tmpfs (root)"
    );
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(mnt.path());

    // Fill the file system, then free two pages: room for a few files, not an archive.
    let filler = mnt.path().join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = [0u8; 4096];
        for _ in 0..1024 {
            if f.write_all(&chunk).and_then(|_| f.flush()).is_err() {
                break;
            }
        }
        let _ = f.sync_all();
    }
    let len = std::fs::metadata(&filler).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap()
        .set_len(len.saturating_sub(2 * 4096))
        .unwrap();

    let home = mnt.path().join("home");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(support::BIN)
            .arg("--data-dir")
            .arg(&home)
            .arg("--json")
            .args(args)
            .env_remove("DAT_SOCIAL_HOME")
            .output()
            .unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (status, stderr) = run(&["init", "--name", "alice"]);
    assert!(!status.success(), "init succeeded on a full disk");
    assert!(stderr.contains("No space left"), "{stderr}");
    assert!(!home.join("archive").exists(), "a partial archive was left");
    assert!(!home.join("identity.key").exists());

    // With room again, init works and the result is sound.
    std::fs::remove_file(&filler).unwrap();
    let (status, stderr) = run(&["init", "--name", "alice"]);
    assert!(status.success(), "{stderr}");
    let (status, stderr) = run(&["check"]);
    assert!(status.success(), "{stderr}");
}

#[test]
fn check_reports_a_damaged_replica_and_repair_discards_it() {
    let bob = User::new("bob");
    let friend = Identity::generate();
    let dir = Replica::dir(bob.data_dir(), &friend.public_key());
    // A replica that verified once, then a byte of its block changed on disk.
    let mut w = Core::in_memory(friend.signing_key().clone());
    w.append(&[b"{\"type\":\"header\",\"protocol\":\"dat-social/archive\",\"version\":1}"])
        .unwrap();
    let mut r = Core::open_replica(&dir, friend.public_key().into()).unwrap();
    let proof = w
        .create_proof(&dat_social::hypercore::messages::Request {
            id: 1,
            block: Some(dat_social::hypercore::messages::RequestBlock { index: 0, nodes: 0 }),
            upgrade: Some(dat_social::hypercore::messages::RequestUpgrade {
                start: 0,
                length: 1,
            }),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
    r.verify_and_apply(&proof).unwrap();
    r.flush().unwrap();
    drop(r);
    let out = bob.run(&["check"]);
    assert_eq!(out.code(), 0, "{}", out.stdout);
    flip(&dir.join("data"), 3, 0x01);

    let out = bob.run(&["check"]);
    assert_eq!(out.code(), 1, "{}", out.stdout);
    let replica = out
        .events()
        .into_iter()
        .find(|e| e["event"] == "check" && e["kind"] == "replica")
        .unwrap();
    assert_eq!(replica["state"], "damaged", "{replica}");
    assert_eq!(replica["key"], hex::encode(friend.public_key()));
    assert_eq!(archive_check(&out)["state"], "ok");
    assert!(dir.exists(), "check without --repair changes nothing");

    let out = bob.run(&["check", "--repair"]);
    assert_eq!(out.code(), 0, "{}", out.stdout);
    let replica = out
        .events()
        .into_iter()
        .find(|e| e["event"] == "check" && e["kind"] == "replica")
        .unwrap();
    assert_eq!(replica["state"], "discarded", "{replica}");
    assert!(
        !dir.exists(),
        "the damaged replica is deleted, to be fetched again"
    );
}
