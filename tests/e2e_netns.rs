//! A machine whose only interface is loopback: host and player run inside a network namespace
//! of their own that has nothing but `lo`, with the host's default `--listen 0.0.0.0:0`.
//! Needs root and iproute2 (`ip netns`), as CI has; fails, loudly, without them.

mod support;

use std::process::Command;

use support::lan::ip;
use support::{User, WAIT};

/// A network namespace with only `lo` (up), deleted on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("dat-social-{tag}-{}", std::process::id());
        ip(&["netns", "add", &name]);
        let ns = Netns(name);
        ip(&["netns", "exec", &ns.0, "ip", "link", "set", "lo", "up"]);
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn a_lobby_works_where_loopback_is_the_only_interface() {
    let ns = Netns::new("lo-only");
    let alice = User::new("alice");
    let bob = User::new("bob");
    let mut lobby = alice.spawn_in(&ns.0, &["host"]);
    let hosting = lobby.expect("hosting");
    let invite = hosting["invite"].as_str().unwrap().to_string();
    assert!(invite.contains("peer=127.0.0.1:"), "{invite}");
    assert!(
        hosting["listen"].as_str().unwrap().starts_with("0.0.0.0:"),
        "{hosting}"
    );

    let mut player = bob.spawn_in(&ns.0, &["join", &invite]);
    player.expect("connected");
    lobby.expect("peer-joined");
    player.say("only lo here");
    let msg = lobby.expect("message");
    assert_eq!(msg["text"], "only lo here");
    lobby.say("and it works");
    player.expect_message("and it works");

    lobby.signal("INT");
    assert!(lobby.wait_exit(WAIT).success(), "{}", lobby.stderr());
    player.expect("disconnected");
}
