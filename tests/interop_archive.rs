//! Interop: the npm `hypercore` (11.37.1, pinned in tests/js/package-lock.json) replicates a
//! running `dat-social host`'s archive over TCP, verifies it, and reads profile.json and
//! session.json — including a `peers` change that happens while it is connected.
//! Needs node and `npm ci --prefix tests/js`; fails (does not skip) without them.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::js::js_dir;
use support::{host, User, WAIT};

/// The next JSON line from the reader whose session satisfies `pred`.
fn next_files(lines: &mpsc::Receiver<Value>, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(v) => {
                assert!(v.get("error").is_none(), "JS reader failed: {v}");
                if pred(&v) {
                    return v;
                }
                seen.push(v);
            }
            Err(_) => panic!("JS reader: no {what} within {WAIT:?}; saw {seen:?}"),
        }
    }
}

#[test]
fn js_hypercore_reads_a_live_archive_from_a_running_host() {
    let dir = js_dir();
    let alice = User::new("alice");
    let (mut lobby, hosting) = host(&alice, &["--name", "interop", "--max-peers", "3"]);
    let port = hosting["listen"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let key = alice.url().trim_start_matches("dat://").to_string();

    let mut js = Command::new("node")
        .arg("read-archive.js")
        .arg(&port)
        .arg(&key)
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node must be installed for the interop tests");
    let stdout = js.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let v: Value = serde_json::from_str(&line)
                .unwrap_or_else(|_| serde_json::json!({ "error": line }));
            if tx.send(v).is_err() {
                break;
            }
        }
    });

    let first = next_files(&lines, "session with 0 peers", |v| {
        v["session"]["peers"] == 0
    });
    assert_eq!(first["profile"]["name"], "alice");
    assert_eq!(first["profile"]["friends"], serde_json::json!([]));
    assert_eq!(first["session"]["name"], "interop");
    assert_eq!(first["session"]["max_peers"], 3);
    assert_eq!(first["session"]["url"], hosting["lobby"]);

    // A player joins while the JS reader is connected: it sees peers go to 1, live.
    let bob = User::new("bob");
    let mut player = bob.spawn(&["join", hosting["invite"].as_str().unwrap()]);
    player.expect("connected");
    lobby.expect("peer-joined");
    let after = next_files(&lines, "session with 1 peer", |v| {
        v["session"]["peers"] == 1
    });
    assert!(after["length"].as_u64() > first["length"].as_u64());

    // And sees the lobby end.
    lobby.signal("INT");
    assert!(lobby.wait_exit(WAIT).success());
    let ended = next_files(&lines, "ended session", |v| v["session"]["ended"].is_u64());
    assert_eq!(ended["session"]["peers"], 0);

    drop(js.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(10);
    while js.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = js.kill();
}
