//! End to end through a relay: the real `dat-social` binary as host, players and relay
//! (`dat-social relay`), separate processes on loopback. Players get an invite that names only
//! the relay (no TCP hint), so they reach the host only through it.

mod support;

use support::relay::Relay;
use support::{lobby_scenario, User, WAIT};

/// Starts `user` hosting through `relay_url` (non-custodial, the default) and waits for
/// `hosting` and the relay's `connected`; returns the process, the hosting event and a
/// relay-only invite.
fn host_via_relay(
    user: &User,
    relay_url: &str,
    extra: &[&str],
) -> (support::Proc, serde_json::Value, String) {
    let mut args = vec!["host", "--listen", "127.0.0.1:0", "--relay", relay_url];
    args.extend_from_slice(extra);
    let mut proc = user.spawn(&args);
    let hosting = proc.expect("hosting");
    assert_eq!(hosting["relay"], relay_url, "{hosting}");
    let invite = hosting["invite"].as_str().unwrap();
    assert!(invite.contains(&format!("relay={relay_url}")), "{invite}");
    let relay = proc.expect("relay");
    assert_eq!(relay["state"], "connected", "{relay}");
    assert_eq!(relay["url"], relay_url);
    let only_relay = format!("{}?relay={relay_url}", user.url());
    (proc, hosting, only_relay)
}

#[test]
fn custodial_without_a_relay_is_refused() {
    let alice = User::new("alice");
    let out = alice.run(&["host", "--custodial"]);
    assert_eq!(out.code(), 2, "stderr: {}", out.stderr);
    assert!(out.stderr.contains("--relay"), "{}", out.stderr);
}

#[test]
fn eight_players_through_the_relay_chat_and_a_ninth_is_turned_away() {
    let relay = Relay::start();
    let alice = User::new("alice");
    let (mut lobby, _, invite) = host_via_relay(
        &alice,
        &relay.ws(),
        &["--max-peers", "8", "--name", "relayed"],
    );

    let (_users, mut players) = lobby_scenario(&mut lobby, &invite, &alice, "relayed");

    // `show` reads the host's archive through the relay too.
    let observer = User::new("observer");
    let out = observer.run(&["show", &invite]);
    assert!(out.status.success(), "show failed: {}", out.stderr);
    let archive = out
        .events()
        .into_iter()
        .find(|e| e["event"] == "archive")
        .unwrap();
    assert_eq!(archive["session"]["peers"], 8);

    lobby.signal("INT");
    assert!(lobby.wait_exit(WAIT).success(), "{}", lobby.stderr());
    for p in players.iter_mut() {
        p.expect("disconnected");
    }
}

/// The relay process is killed during a lobby and started again on the same port: the host
/// says `reconnecting`, then `connected` once it listens again; a new player gets in through
/// the relay, and the players already in (on direct WebRTC channels) keep chatting.
#[test]
fn a_relay_restart_during_a_lobby() {
    let relay = Relay::start();
    let relay_url = relay.tcp();
    let alice = User::new("alice");
    let (mut lobby, _, invite) = host_via_relay(&alice, &relay_url, &[]);
    let bob = User::new("bob");
    let mut player = bob.spawn(&["join", &invite]);
    player.expect("connected");
    lobby.expect("peer-joined");

    let (ws_port, tcp_port) = relay.kill();
    let lost = lobby.expect("relay");
    assert_eq!(lost["state"], "reconnecting", "{lost}");
    assert!(lost["attempt"].as_u64().unwrap() >= 1);
    let _relay = Relay::start_on(ws_port, tcp_port);
    lobby.expect_where(WAIT, "relay connected", |e| {
        e["event"] == "relay" && e["state"] == "connected"
    });

    let carol = User::new("carol");
    let mut late = carol.spawn(&["join", &invite]);
    late.expect("connected");
    lobby.expect_where(WAIT, "carol joined", |e| {
        e["event"] == "peer-joined" && e["name"] == "carol" && e["peers"] == 2
    });

    // Bob's channel to the host is direct: it outlived the relay.
    player.say("still here");
    lobby.expect_message("still here");
    late.expect_message("still here");
    lobby.signal("INT");
    assert!(lobby.wait_exit(WAIT).success(), "{}", lobby.stderr());
}
