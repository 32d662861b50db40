//! End to end: the real `dat-social` binary, a host and its players as separate processes on
//! loopback.

mod support;

use std::time::Duration;

use support::{host, lobby_scenario, now_ms, User, WAIT};

fn invite(hosting: &serde_json::Value) -> String {
    hosting["invite"].as_str().expect("invite").to_string()
}

/// The host's session.json as another user reads it over the network.
fn session_seen_by(reader: &User, invite: &str) -> serde_json::Value {
    let out = reader.run(&["show", invite]);
    assert!(out.status.success(), "show failed: {}", out.stderr);
    let event = out
        .events()
        .into_iter()
        .find(|e| e["event"] == "archive")
        .unwrap();
    event["session"].clone()
}

#[test]
fn eight_players_chat_a_ninth_is_turned_away_and_a_leave_frees_a_slot() {
    let alice = User::new("alice");
    let (mut lobby, hosting) = host(
        &alice,
        &["--max-peers", "8", "--heartbeat", "2", "--name", "friday"],
    );
    assert_eq!(hosting["max_peers"], 8);
    let invite = invite(&hosting);
    assert!(invite.starts_with(&alice.url()), "{invite}");

    let (users, mut players) = lobby_scenario(&mut lobby, &invite, &alice, "friday");

    // The host's session.json, read by someone else over the network: 8 players, fresh heartbeat.
    let observer = User::new("observer");
    let session = session_seen_by(&observer, &invite);
    assert_eq!(session["peers"], 8);
    assert_eq!(session["max_peers"], 8);
    assert_eq!(session["protected"], false);
    assert_eq!(session["name"], "friday");
    let age = now_ms() - session["last_update"].as_u64().unwrap();
    assert!(age <= 2 * 2_000 + 1_000, "last_update is {age} ms old");

    // One leaves (Ctrl-C): the slot frees and the ninth gets in.
    players[3].signal("INT");
    assert!(players[3].wait_exit(WAIT).success());
    let left = lobby.expect("peer-left");
    assert_eq!(
        (left["name"].as_str(), left["peers"].as_u64()),
        (Some("player3"), Some(7))
    );
    assert_eq!(session_seen_by(&observer, &invite)["peers"], 7);
    let mut late = users[8].spawn(&["join", &invite]);
    late.expect("connected");
    lobby.expect_where(WAIT, "player8 joined", |e| {
        e["event"] == "peer-joined" && e["name"] == "player8" && e["peers"] == 8
    });

    // Ctrl-C on the host ends the lobby: players are told, and session.json is marked ended.
    lobby.signal("INT");
    assert!(
        lobby.wait_exit(WAIT).success(),
        "host stderr: {}",
        lobby.stderr()
    );
    for p in players
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(_, p)| p)
    {
        p.expect("disconnected");
    }
    late.expect("disconnected");
    let session = alice.whoami()["session"].clone();
    assert!(session["ended"].as_u64().is_some(), "{session}");
    assert_eq!(session["peers"], 0);
}

#[test]
fn a_wrong_or_missing_password_is_rejected_and_the_right_one_connects() {
    let host_user = User::new("hana");
    let pw = host_user.password_file("correct horse");
    let (mut lobby, hosting) = host(&host_user, &["--password-file", pw.to_str().unwrap()]);
    let invite = invite(&hosting);
    let bob = User::new("bob");

    let wrong = bob.password_file("wrong horse!!");
    let out = bob.run(&["join", &invite, "--password-file", wrong.to_str().unwrap()]);
    assert_eq!(out.code(), 5, "stderr: {}", out.stderr);
    assert!(out
        .events()
        .iter()
        .any(|e| e["event"] == "rejected" && e["reason"] == "password"));
    let rejected = lobby.expect("peer-rejected");
    assert_eq!(rejected["reason"], "password");

    let out = bob.run(&["join", &invite]);
    assert_eq!(out.code(), 5, "stderr: {}", out.stderr);
    assert!(out
        .events()
        .iter()
        .any(|e| e["event"] == "rejected" && e["reason"] == "password"));

    let right = bob.password_file("correct horse");
    let mut player = bob.spawn(&["join", &invite, "--password-file", right.to_str().unwrap()]);
    player.expect("connected");
    let joined = lobby.expect("peer-joined");
    assert_eq!(joined["name"], "bob");

    let session = session_seen_by(&User::new("observer"), &invite);
    assert_eq!(session["protected"], true);
    assert_eq!(session["peers"], 1);
}

#[test]
fn sigterm_on_the_host_also_marks_the_session_ended() {
    let alice = User::new("alice");
    let (mut lobby, hosting) = host(&alice, &[]);
    let bob = User::new("bob");
    let mut player = bob.spawn(&["join", &invite(&hosting)]);
    player.expect("connected");
    lobby.expect("peer-joined");
    lobby.signal("TERM");
    assert!(lobby.wait_exit(WAIT).success());
    player.expect("disconnected");
    let whoami = alice.whoami();
    assert!(whoami["session"]["ended"].as_u64().is_some(), "{whoami}");
    // A joiner who comes later cannot reach it.
    let out = bob.run(&["join", &invite(&hosting), "--timeout", "3"]);
    assert_eq!(out.code(), 3, "stderr: {}", out.stderr);
    let _ = Duration::ZERO;
}
