//! End to end: a running lobby survives what used to end it or lock players out: its disk
//! filling up, and a player that crashes and rejoins at once.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::{host, now_ms, User, WAIT};

/// A tmpfs of `size` mounted on a fresh directory; unmounted (and removed) on drop.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = std::env::temp_dir().join(format!(
            "dat-social-small-disk-{}-{}",
            std::process::id(),
            now_ms()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("mount(8)");
        assert!(status.success(), "mounting a tmpfs needs root");
        SmallDisk { dir }
    }

    /// Writes a file until the disk is full; returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.dir.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 4096];
        // Bounded: the disk is a few MiB.
        for _ in 0..100_000 {
            if f.write_all(&chunk).and_then(|()| f.flush()).is_err() {
                return path;
            }
        }
        panic!("the small disk never filled");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A user whose data directory is `dir` (initialized with `dat-social init`).
fn user_in(dir: &Path, name: &str) -> User {
    let user = User {
        dir: tempfile::tempdir_in(dir).unwrap(),
        name: name.to_string(),
    };
    let out = user.run(&["init", "--name", name]);
    assert!(out.status.success(), "init failed: {}", out.stderr);
    user
}

/// `session.json` of the host as `reader` fetches it over the network.
fn session_seen_by(reader: &User, invite: &str) -> serde_json::Value {
    let out = reader.run(&["show", invite]);
    assert!(out.status.success(), "show failed: {}", out.stderr);
    out.events()
        .into_iter()
        .find(|e| e["event"] == "archive")
        .unwrap()["session"]
        .clone()
}

#[test]
fn a_full_disk_warns_and_the_lobby_goes_on_until_space_returns() {
    let disk = SmallDisk::mount("2m");
    let alice = user_in(&disk.dir, "alice");
    let (mut lobby, hosting) = host(&alice, &["--heartbeat", "1"]);
    let invite = hosting["invite"].as_str().unwrap().to_string();
    let bob = User::new("bob");
    let mut player = bob.spawn(&["join", &invite]);
    player.expect("connected");
    lobby.expect("peer-joined");

    let filler = disk.fill();
    // A heartbeat soon needs a new page of the archive: the write fails, with a warning.
    let warning = lobby.expect_where(Duration::from_secs(60), "a write warning", |e| {
        e["event"] == "warning" && e["message"].as_str().unwrap_or("").contains("session.json")
    });
    eprintln!("warning: {}", warning["message"]);
    // The lobby goes on: chat flows both ways, the player is still in.
    player.say("disk full?");
    lobby.expect_message("disk full?");
    lobby.say("still here");
    player.expect_message("still here");
    assert!(lobby.child.try_wait().unwrap().is_none(), "the host exited");

    // Space returns: the next heartbeat writes session.json again.
    std::fs::remove_file(filler).unwrap();
    let freed = now_ms();
    let carol = User::new("carol");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let session = session_seen_by(&carol, &invite);
        if session["last_update"].as_u64().unwrap() > freed {
            assert_eq!(session["peers"], 1);
            assert!(session["ended"].is_null());
            break;
        }
        assert!(Instant::now() < deadline, "no heartbeat written: {session}");
        std::thread::sleep(Duration::from_millis(300));
    }

    // Ctrl-C marks the session ended, on the disk that was full.
    lobby.signal("INT");
    lobby.expect("ended");
    assert!(lobby.wait_exit(WAIT).success());
    let session = alice.whoami()["session"].clone();
    assert!(session["ended"].as_u64().is_some(), "{session}");
    assert_eq!(session["peers"], 0);
}

#[test]
fn a_player_killed_in_a_full_lobby_rejoins_at_once() {
    let alice = User::new("alice");
    let (mut lobby, hosting) = host(&alice, &["--max-peers", "1"]);
    let invite = hosting["invite"].as_str().unwrap().to_string();
    let bob = User::new("bob");
    let mut first = bob.spawn(&["join", &invite]);
    first.expect("connected");
    lobby.expect_where(WAIT, "bob joined", |e| {
        e["event"] == "peer-joined" && e["peers"] == 1
    });

    // Bob's program crashes; his ghost still holds the only slot when he comes back.
    first.signal("KILL");
    first.wait_exit(WAIT);
    let mut second = bob.spawn(&["join", &invite]);
    let outcome = second.expect_where(WAIT, "connected or rejected", |e| {
        e["event"] == "connected" || e["event"] == "rejected"
    });
    assert_eq!(outcome["event"], "connected", "{outcome}");
    // The host replaced the old slot: a leave for the ghost, a join, still one player.
    lobby.expect_where(WAIT, "the ghost left", |e| e["event"] == "peer-left");
    let joined = lobby.expect_where(WAIT, "bob again", |e| e["event"] == "peer-joined");
    assert_eq!(joined["peers"], 1);
    assert_eq!(joined["peer"], bob.url().as_str());
    second.say("back");
    lobby.expect_message("back");
}
