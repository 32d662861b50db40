//! Issue 10's scenarios across the NAT lab (tests/natlab): `dat-social relay` on the public
//! segment, `host --relay` in one home, `join <invite>` in another, the player holding only the
//! relay's URL. Today WebRTC offers host candidates only, so only homes with public addresses
//! connect; the NAT scenarios (`natlab::scenario::cone_cone_scenario` and the others) become
//! tests here once STUN/TURN lands. Needs root, iproute2 and nftables, as CI has.

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
    // The host saw the player's data channel open.
    let joined = result
        .host_events
        .iter()
        .find(|e| e["event"] == "peer-joined")
        .unwrap_or_else(|| panic!("no peer-joined: {:#?}", result.host_events));
    assert_eq!(joined["name"], "player0", "{joined}");
}
