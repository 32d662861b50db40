//! A LAN party with no relay and no address in hand: two users on two network namespaces joined
//! by a veth pair (real multicast between separate network stacks). Alice hosts with `--lan`;
//! Bob, who follows her by her bare `dat://` URL, finds the lobby by multicast DNS, watches it and
//! joins it by her name. Needs root (`ip netns`), as CI has; fails loudly without.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::lan::Lan;
use support::{User, WAIT};

/// Runs `user`'s command in namespace `ns`; returns its JSON events and whether it succeeded.
fn run_in(user: &User, ns: &str, args: &[&str]) -> (bool, Vec<Value>, String) {
    let out = user.command_in(ns, args).output().expect("run dat-social");
    let events = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    (out.status.success(), events, stderr)
}

#[test]
fn a_friend_hosting_on_the_lan_is_found_watched_and_joined_without_a_relay() {
    let lan = Lan::new("party");
    let alice = User::new("alice");
    let bob = User::new("bob");
    assert!(bob.run(&["friends", "add", &alice.url()]).status.success());
    assert!(alice.run(&["friends", "add", &bob.url()]).status.success());

    let mut host = alice.spawn_in(
        &lan.a,
        &["host", "--lan", "--listen", "0.0.0.0:0", "--heartbeat", "2"],
    );
    host.expect("hosting");

    // One look finds it once the announcement is out (the responder probes its name first).
    let deadline = Instant::now() + WAIT;
    let session = loop {
        let (ok, events, stderr) = run_in(&bob, &lan.b, &["sessions", "--lan"]);
        assert!(ok, "{stderr}");
        if let Some(s) = events.into_iter().find(|e| e["event"] == "session") {
            break s;
        }
        assert!(Instant::now() < deadline, "alice's lobby never showed up");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(session["host"], alice.url(), "{session}");
    assert!(
        session["route"].as_str().unwrap().contains("10.77.0.1"),
        "{session}"
    );

    let mut watch = bob.spawn_in(&lan.b, &["sessions", "--watch", "--lan"]);
    let up = watch.expect("session-up");
    assert_eq!(up["host_name"], "alice", "{up}");

    let mut player = bob.spawn_in(&lan.b, &["join", "--friend", "alice", "--lan"]);
    player.expect("connected");
    let joined = host.expect("peer-joined");
    assert_eq!(joined["peer"], bob.url(), "{joined}");
    let changed = watch.expect("session-changed");
    assert_eq!(changed["peers"], 1, "{changed}");

    host.signal("INT");
    let down = watch.expect("session-down");
    assert_eq!(down["host"], alice.url(), "{down}");
}
