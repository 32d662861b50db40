//! `dat-social relay` (a real process on 127.0.0.1) with the real npm client
//! `@hyperswarm/dht-relay` 0.4.3 (tests/js/relay-pair.js): a JS relayed server is found by
//! lookup and reached by a JS relayed client through our relay, over WebSocket and over TCP,
//! and they exchange a message and 1 MiB each way. Custodial (the client's default: the relay
//! holds the keys) and non-custodial (`custodial: false`: the clients run Noise IK through the
//! relay's `noiseSend`/`noiseReceive`/`noiseReply` and encrypt end to end; the listen and the
//! announce are proven with `signAnnounce`/`signature`), with further connects after the first.
//! Needs node and `npm ci --prefix tests/js`; fails (never skips) without them.

mod support;

use support::relay::{check_js_pair as check, Relay};

fn check_pair(transport: &str, address: &str, custodial: bool) {
    check(transport, address, custodial, &[]);
}

#[test]
fn js_server_and_client_over_websocket() {
    let relay = Relay::start();
    check_pair("ws", &relay.ws(), true);
}

#[test]
fn js_server_and_client_over_tcp() {
    let relay = Relay::start();
    check_pair("tcp", &relay.tcp_addr(), true);
}

#[test]
fn js_noncustodial_server_and_client_over_websocket() {
    let relay = Relay::start();
    check_pair("ws", &relay.ws(), false);
}

#[test]
fn js_noncustodial_server_and_client_over_tcp() {
    let relay = Relay::start();
    check_pair("tcp", &relay.tcp_addr(), false);
}

/// Both transports on one relay at once, twice in a row: sessions of one run don't disturb
/// the next (the relay forgets closed sessions' servers and announcements).
#[test]
fn js_pairs_twice_on_one_relay() {
    let mut relay = Relay::start();
    check_pair("ws", &relay.ws(), true);
    check_pair("tcp", &relay.tcp_addr(), false);
    assert!(relay.is_running());
}
