//! Interop of our relay client and relayed hosts with the npm `@hyperswarm/dht-relay` 0.4.3
//! client and JS hypercore 11.37.1, through `dat-social relay` (a real process on loopback),
//! custodial (the JS default; `host --custodial`) and non-custodial (JS `custodial: false`,
//! our default: both ends run Noise IK through the relay and their own secret-stream):
//! - a JS relayed client reaches a `dat-social host` listening through the relay and
//!   replicates its archive with `core.replicate(stream)` (tests/js/relay-read-archive.js);
//! - our client reaches a JS relayed server and replicates its JS hypercore over a
//!   `Connection` on the relayed stream (tests/js/relay-serve-core.js).
//!
//! Needs node and `npm ci --prefix tests/js`; fails (never skips) without them.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use dat_social::hypercore::Core;
use dat_social::keys::{CoreKey, IdentityKey};
use dat_social::net::{ConnectionConfig, SharedCore};
use dat_social::relay::client::{ClientOptions, RelayClient};
use ed25519_dalek::SigningKey;
use support::relay::Relay;
use support::User;

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn a_js_relayed_client_replicates_a_relayed_hosts_archive() {
    js_client_reads_a_hosts_archive(true, true);
}

#[test]
fn a_noncustodial_js_client_replicates_a_noncustodial_hosts_archive() {
    js_client_reads_a_hosts_archive(false, false);
}

/// The JS client in its default (custodial) mode reaches the default (non-custodial) host: our
/// relay runs the Noise IK handshake and the secret-stream on the JS client's behalf.
#[test]
fn a_custodial_js_client_replicates_a_noncustodial_hosts_archive() {
    js_client_reads_a_hosts_archive(false, true);
}

/// `dat-social host --relay` (with `--custodial` when `custodial`) is read by a JS relayed
/// client (custodial when `js_custodial`).
fn js_client_reads_a_hosts_archive(custodial: bool, js_custodial: bool) {
    let relay = Relay::start();
    let alice = User::new("alice");
    let ws = relay.ws();
    let mut args = vec![
        "host",
        "--listen",
        "127.0.0.1:0",
        "--name",
        "relayed interop",
        "--relay",
        &ws,
    ];
    if custodial {
        args.push("--custodial");
    }
    let mut lobby = alice.spawn(&args);
    let hosting = lobby.expect("hosting");
    lobby.expect_where(support::WAIT, "relay connected", |e| {
        e["event"] == "relay" && e["state"] == "connected"
    });
    let key = alice.url().trim_start_matches("dat://").to_string();
    let env: &[(&str, &str)] = if js_custodial {
        &[]
    } else {
        &[("CUSTODIAL", "0")]
    };
    let r = support::js::run_js("relay-read-archive.js", &[&relay.ws(), &key], env, WAIT);
    assert_eq!(r["remote_public_key"], key.as_str(), "{r}");
    assert_eq!(r["handshake_hash"].as_str().unwrap().len(), 128, "{r}");
    assert!(r["length"].as_u64().unwrap() >= 3, "{r}");
    assert_eq!(r["profile"]["name"], "alice", "{r}");
    assert_eq!(r["session"]["name"], "relayed interop", "{r}");
    assert_eq!(r["session"]["url"], hosting["lobby"], "{r}");
    assert_eq!(r["session"]["peers"], 0, "{r}");
    // The host served it as a reader (no lobby channel), without a warning.
    lobby.signal("INT");
    let events = lobby.drain(support::WAIT);
    assert!(events.iter().all(|e| e["event"] != "warning"), "{events:?}");
}

#[tokio::test]
async fn our_client_replicates_a_js_relayed_servers_hypercore() {
    replicate_from_a_js_server(true).await;
}

#[tokio::test]
async fn our_noncustodial_client_replicates_a_noncustodial_js_servers_hypercore() {
    replicate_from_a_js_server(false).await;
}

/// Our client (custodial or not) connects twice to a JS relayed server of the same mode and
/// replicates its hypercore each time.
async fn replicate_from_a_js_server(custodial: bool) {
    let relay = Relay::start();
    let dir = support::js::js_dir();
    let mut js = Command::new("node")
        .current_dir(&dir)
        .args(["relay-serve-core.js", &relay.ws(), "5"])
        .env("CUSTODIAL", if custodial { "1" } else { "0" })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let (tx, lines) = std::sync::mpsc::channel::<serde_json::Value>();
    let stdout = js.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let v = serde_json::from_str(&line).unwrap_or(serde_json::json!({ "line": line }));
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    let next = || {
        lines
            .recv_timeout(WAIT)
            .expect("a line from relay-serve-core.js")
    };
    let ready = next();
    let server_pk: IdentityKey = ready["public_key"].as_str().unwrap().parse().unwrap();
    let core_key: CoreKey = ready["core_key"].as_str().unwrap().parse().unwrap();
    assert_eq!(ready["length"], 5);

    let client = RelayClient::start(
        relay.ws().parse().unwrap(),
        SigningKey::from_bytes(&[0x77; 32]),
        ClientOptions {
            custodial,
            ..ClientOptions::default()
        },
    );
    client.wait_connected(WAIT).await.unwrap();
    for _ in 0..2 {
        let stream = client
            .connect(server_pk)
            .await
            .expect("reach the JS server");
        replicate_once(stream, server_pk, core_key, &next).await;
    }
    drop(js.stdin.take());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while js.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = js.kill();
}

/// Replicates the JS server's 5 blocks over `stream` and checks what the JS side saw.
async fn replicate_once(
    stream: dat_social::relay::client::RelayStream,
    server_pk: IdentityKey,
    core_key: CoreKey,
    next: &impl Fn() -> serde_json::Value,
) {
    assert_eq!(stream.remote_public_key(), server_pk);
    let hash = hex::encode(stream.handshake_hash());
    let conn = stream.into_connection(ConnectionConfig::default());
    let replica = SharedCore::new(Core::in_memory_replica(core_key));
    conn.replicate(replica.clone()).await.unwrap();
    for i in 0..5 {
        let block = replica
            .get_wait_timeout(i, WAIT)
            .await
            .unwrap()
            .expect("block from the JS hypercore");
        assert_eq!(block, format!("block-{i}").as_bytes());
    }
    // The JS side saw our key and the same handshake hash.
    let seen = next();
    assert_eq!(
        seen["remote_public_key"],
        hex::encode(
            SigningKey::from_bytes(&[0x77; 32])
                .verifying_key()
                .to_bytes()
        ),
        "{seen}"
    );
    assert_eq!(seen["handshake_hash"], hash.as_str(), "{seen}");
    conn.close();
}
