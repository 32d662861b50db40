//! Issue 10's scenarios across the NAT lab (tests/natlab): `dat-social relay` on the public
//! segment, `host --relay` in one home, `join <invite>` in another, the player holding only the
//! relay's URL and the relay's built-in STUN/TURN (no --ice-servers). Open homes connect over
//! host candidates, cone homes directly through their NATs (server-reflexive or peer-reflexive
//! pairs), symmetric and UDP-blocked homes through the relay's TURN. A path is the one the
//! connection settled on: ICE may nominate a relayed pair first and move to a direct one a few
//! hundred milliseconds later, which the CLI reports as a `path-changed` event. Needs root, iproute2 and
//! nftables, as CI has.

mod natlab;
mod support;

#[test]
fn players_in_open_homes_join_through_the_relay_and_chat_both_ways() {
    let Some(result) = natlab::scenario::open_open_scenario() else {
        return;
    };
    let player = &result.players[0];
    assert!(player.joined, "{player:#?}");
    assert!(player.ms.is_some(), "{player:#?}");
    assert!(player.chat_to_host && player.chat_from_host, "{player:#?}");
    assert_eq!(player.path_kind(), Some("host"), "{player:#?}");
    // The host saw the player's data channel open.
    let joined = result
        .host_events
        .iter()
        .find(|e| e["event"] == "peer-joined")
        .unwrap_or_else(|| panic!("no peer-joined: {:#?}", result.host_events));
    assert_eq!(joined["name"], "player0", "{joined}");
}

/// Every player joined and chatted both ways, and each player's `connected` path has a kind in
/// `kinds(player's home kind)`.
fn assert_paths(
    result: &natlab::scenario::ScenarioResult,
    kinds: fn(natlab::NatKind) -> &'static [&'static str],
) {
    for player in &result.players {
        assert!(player.joined, "{player:#?}");
        assert!(player.chat_to_host && player.chat_from_host, "{player:#?}");
        let kind = player.path.as_ref().and_then(|p| p["kind"].as_str());
        assert!(
            kind.is_some_and(|k| kinds(player.kind).contains(&k)),
            "path {kind:?} for a {:?} home: {player:#?}",
            player.kind
        );
    }
}

#[test]
fn cone_to_symmetric_connects_through_the_relays_turn() {
    let Some(result) = natlab::scenario::cone_symmetric_scenario() else {
        return;
    };
    assert_paths(&result, |_| &["relay"]);
}

#[test]
fn symmetric_to_symmetric_connects_through_the_relays_turn() {
    let Some(result) = natlab::scenario::symmetric_symmetric_scenario() else {
        return;
    };
    assert_paths(&result, |_| &["relay"]);
}

#[test]
fn a_home_without_udp_connects_through_turn_over_tcp() {
    let Some(result) = natlab::scenario::udp_blocked_scenario() else {
        return;
    };
    assert_paths(&result, |_| &["relay"]);
}

/// The direct kinds: a pair through both NATs without TURN.
const DIRECT: &[&str] = &["srflx", "prflx"];

/// The paths a player in a home of `kind` settles on when the host is behind a cone NAT.
fn behind_cone_host(kind: natlab::NatKind) -> &'static [&'static str] {
    use natlab::NatKind::*;
    match kind {
        Open | Cone | FullCone => DIRECT,
        Symmetric | UdpBlocked => &["relay"],
    }
}

#[test]
fn cone_to_cone_connects_directly_through_both_nats() {
    let Some(result) = natlab::scenario::cone_cone_scenario() else {
        return;
    };
    assert_paths(&result, |_| DIRECT);
    // The host saw the same: its last word on the player's path is direct.
    let host_path = result
        .host_events
        .iter()
        .rev()
        .find(|e| e["event"] == "path-changed" || e["event"] == "peer-joined")
        .and_then(|e| e["path"]["kind"].as_str());
    assert!(
        host_path.is_some_and(|k| DIRECT.contains(&k)),
        "host's path {host_path:?}: {:#?}",
        result.host_events
    );
}

#[test]
fn two_players_behind_one_nat_and_the_host_behind_another_all_connect() {
    let Some(result) = natlab::scenario::same_nat_scenario() else {
        return;
    };
    assert_eq!(result.players.len(), 2);
    assert_paths(&result, |_| DIRECT);
    let joined = result
        .host_events
        .iter()
        .filter(|e| e["event"] == "peer-joined")
        .count();
    assert_eq!(joined, 2, "{:#?}", result.host_events);
}

#[test]
fn a_full_lobby_of_eight_over_every_nat_kind_each_reports_its_path() {
    let Some(result) = natlab::scenario::full_lobby_scenario() else {
        return;
    };
    assert_eq!(result.players.len(), 8);
    assert_paths(&result, behind_cone_host);
    let peers = result
        .host_events
        .iter()
        .filter(|e| e["event"] == "peer-joined")
        .filter_map(|e| e["peers"].as_u64())
        .max();
    assert_eq!(peers, Some(8), "{:#?}", result.host_events);
}
