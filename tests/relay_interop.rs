//! `dat-social relay` (a real process on 127.0.0.1) with the real npm client
//! `@hyperswarm/dht-relay` 0.4.3 (tests/js/relay-pair.js): a JS relayed server (custodial, the
//! client's default) is found by lookup and reached by a JS relayed client through our relay,
//! over WebSocket and over TCP, and they exchange a message and 1 MiB each way.
//! Needs node and `npm ci --prefix tests/js`; fails (never skips) without them.

mod relay_support;

use std::time::Duration;

use relay_support::{key_pair, run_js, RelayProc};

const BULK: usize = 1 << 20;

fn check_pair(transport: &str, address: &str) {
    let bulk = BULK.to_string();
    let r = run_js(
        "relay-pair.js",
        &[transport, address],
        &[("BULK", &bulk)],
        Duration::from_secs(60),
    );
    let (server_pk, _) = key_pair(0x44);
    let (client_pk, _) = key_pair(0x55);
    let (server_pk, client_pk) = (hex::encode(server_pk), hex::encode(client_pk));
    assert_eq!(r["server_public_key"], server_pk.as_str(), "{r}");
    // announce/lookup through the relay found the server's key.
    assert_eq!(r["lookup_found"], serde_json::json!([server_pk]), "{r}");
    // Each side sees the other's key and the same 64-byte Noise handshake hash.
    assert_eq!(r["client_remote_public_key"], server_pk.as_str(), "{r}");
    assert_eq!(r["server_remote_public_key"], client_pk.as_str(), "{r}");
    let hash = r["client_handshake_hash"].as_str().expect("client hash");
    assert_eq!(hash.len(), 128, "{r}");
    assert_ne!(hash, "0".repeat(128));
    assert_eq!(r["server_handshake_hash"], hash, "{r}");
    // Data both ways, byte-exact.
    assert_eq!(r["server_got"], "hello\n", "{r}");
    assert_eq!(r["client_got"], "echo:hello\n", "{r}");
    assert_eq!(r["bulk"], BULK, "{r}");
    assert_eq!(
        r["server_got_bulk_sha256"], r["expected_sha256"]["to_server"],
        "{r}"
    );
    assert_eq!(
        r["client_got_bulk_sha256"], r["expected_sha256"]["to_client"],
        "{r}"
    );
}

#[test]
fn js_server_and_client_over_websocket() {
    let relay = RelayProc::start(&[]);
    check_pair("ws", &relay.ws);
}

#[test]
fn js_server_and_client_over_tcp() {
    let relay = RelayProc::start(&[]);
    check_pair("tcp", &relay.tcp);
}

/// Both transports on one relay at once, twice in a row: sessions of one run don't disturb
/// the next (the relay forgets closed sessions' servers and announcements).
#[test]
fn js_pairs_twice_on_one_relay() {
    let mut relay = RelayProc::start(&[]);
    check_pair("ws", &relay.ws);
    check_pair("tcp", &relay.tcp);
    assert!(relay.is_running());
}
