//! ICE servers for clients (`dat-social/ice/v1`, docs/RELAY.md "ICE servers for clients"),
//! end to end with `dat-social relay` as a real process on 127.0.0.1:
//! - with `--ice-url` and `--turn-secret-file`, our relay client gets the STUN and TURN URLs,
//!   and TURN REST credentials that coturn's `--use-auth-secret` would accept (checked with
//!   `ice::rest`), over WebSocket and TCP, and through an [`Endpoint`];
//! - without them, the relay rejects the channel: the client gets no servers at once (not at
//!   the end of its wait) and its session works as before;
//! - npm `@hyperswarm/dht-relay` 0.4.3 clients (tests/js/relay-pair.js: lookup, connect, 1 MiB
//!   each way, repeated connects; custodial and not) work exactly as before against a relay
//!   with ICE on;
//! - a TURN URL without a secret is a usage error (exit 2).
//!
//! Needs node and `npm ci --prefix tests/js`; fails (never skips) without them.

mod support;

use std::time::{Duration, Instant};

use dat_social::endpoint::{Endpoint, EndpointOptions};
use dat_social::ice::{rest, IceServer};
use dat_social::identity::Identity;
use dat_social::keys::Topic;
use dat_social::relay::client::{ClientOptions, RelayClient, RelayUrl};
use dat_social::relay::server::credential_name;
use ed25519_dalek::SigningKey;
use support::relay::{check_js_pair, Relay};

const WAIT: Duration = Duration::from_secs(20);
const SECRET: &str = "a-shared-secret-as-in-coturn";
const TTL: u64 = 600;

/// A relay with ICE on (its secret file lives in the returned directory).
fn relay_with_ice() -> (Relay, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("turn-secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    // The built-in STUN/TURN server off: only the --ice-url servers (an operator's coturn).
    let relay = Relay::start_with(&[
        "--no-turn",
        "--ice-url",
        "stun:127.0.0.1:3478",
        "--ice-url",
        "turn:127.0.0.1:3478?transport=udp",
        "--ice-url",
        "turn:127.0.0.1:3478?transport=tcp",
        "--turn-secret-file",
        secret.to_str().unwrap(),
        "--ice-ttl",
        &TTL.to_string(),
    ]);
    (relay, dir)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Checks `servers` as the relay of [`relay_with_ice`] gives them to the key of `seed`.
fn check_servers(servers: &[IceServer], seed: u8) {
    assert_eq!(servers.len(), 2, "{servers:?}");
    assert_eq!(servers[0].urls, vec!["stun:127.0.0.1:3478"]);
    assert_eq!(servers[0].username, None);
    let turn = &servers[1];
    assert_eq!(
        turn.urls,
        vec![
            "turn:127.0.0.1:3478?transport=udp",
            "turn:127.0.0.1:3478?transport=tcp"
        ]
    );
    let user = turn.username.as_deref().expect("a TURN username");
    let now = unix_now();
    let expiry = rest::check_username(user, now).expect("a live REST username");
    assert!(
        (now + TTL - 30..=now + TTL + 1).contains(&expiry),
        "{expiry} vs {now}"
    );
    let key = SigningKey::from_bytes(&[seed; 32])
        .verifying_key()
        .to_bytes();
    assert_eq!(user, format!("{expiry}:{}", credential_name(&key)));
    assert_eq!(
        turn.credential.as_deref(),
        Some(rest::password(SECRET.as_bytes(), user).as_str())
    );
    assert_ne!(
        turn.credential.as_deref(),
        Some(rest::password(b"another secret", user).as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_gets_stun_and_turn_with_valid_rest_credentials() {
    let (relay, _dir) = relay_with_ice();
    for (url, seed) in [(relay.ws(), 0x71), (relay.tcp(), 0x72)] {
        let url: RelayUrl = url.parse().unwrap();
        let client = RelayClient::start(
            url,
            SigningKey::from_bytes(&[seed; 32]),
            ClientOptions::default(),
        );
        client.wait_connected(WAIT).await.unwrap();
        let servers = client.wait_ice_servers(WAIT).await;
        check_servers(&servers, seed);
        assert_eq!(client.ice_servers(), servers, "kept until they expire");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_gives_the_servers_of_its_relays() {
    let (relay, _dir) = relay_with_ice();
    let url: RelayUrl = relay.ws().parse().unwrap();
    let identity = Identity::from_seed([0x73; 32]);
    let options = EndpointOptions {
        relays: vec![url.clone()],
        ..EndpointOptions::default()
    };
    let endpoint = Endpoint::bind(identity, options).await.unwrap();
    assert!(endpoint.ice_servers().await.is_empty(), "no session yet");
    endpoint.relay(&url).wait_connected(WAIT).await.unwrap();
    let deadline = Instant::now() + WAIT;
    let servers = loop {
        let s = endpoint.ice_servers().await;
        if !s.is_empty() || Instant::now() > deadline {
            break s;
        }
    };
    check_servers(&servers, 0x73);
    assert_eq!(endpoint.ice_servers_now(), servers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ice_the_client_gets_none_at_once_and_works_as_before() {
    let relay = Relay::start_with(&["--no-turn"]);
    let url: RelayUrl = relay.ws().parse().unwrap();
    let announcer = RelayClient::start(
        url.clone(),
        SigningKey::from_bytes(&[0x74; 32]),
        ClientOptions::default(),
    );
    announcer.wait_connected(WAIT).await.unwrap();
    let started = Instant::now();
    assert_eq!(announcer.wait_ice_servers(WAIT).await, vec![]);
    // The relay's reject ended the wait, not the bound.
    assert!(started.elapsed() < WAIT / 2, "{:?}", started.elapsed());
    let topic = Topic::from_bytes([0x74; 32]);
    announcer.announce(topic, WAIT).await.unwrap();
    let seeker = RelayClient::start(
        url,
        SigningKey::from_bytes(&[0x75; 32]),
        ClientOptions::default(),
    );
    seeker.wait_connected(WAIT).await.unwrap();
    let found = seeker.lookup(topic, WAIT).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(seeker.ice_servers(), vec![]);
}

#[test]
fn js_clients_are_unaffected_by_ice_over_websocket() {
    let (relay, _dir) = relay_with_ice();
    check_js_pair("ws", &relay.ws(), true, &[]);
    check_js_pair("ws", &relay.ws(), false, &[]);
}

#[test]
fn js_clients_are_unaffected_by_ice_over_tcp() {
    let (relay, _dir) = relay_with_ice();
    check_js_pair("tcp", &relay.tcp_addr(), true, &[]);
    check_js_pair("tcp", &relay.tcp_addr(), false, &[]);
}

#[test]
fn a_turn_url_without_a_secret_is_a_usage_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dat-social"))
        // With the built-in TURN server off there is no secret to mint with.
        .args(["relay", "--host", "127.0.0.1", "--port", "0", "--no-turn"])
        .args(["--ice-url", "turn:127.0.0.1:3478?transport=udp"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--turn-secret-file"), "{stderr}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dat-social"))
        .args(["relay", "--host", "127.0.0.1", "--port", "0"])
        .args(["--ice-url", "http://127.0.0.1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--ice-url"), "{stderr}");
}
