//! Our relay client (`dat_social::relay::client`) against `dat-social relay` as a real process
//! on loopback, over WebSocket and TCP, non-custodial (the default: our own Noise IK and
//! secret-stream through the relay) and custodial: listen + connect, a `Connection` (protomux,
//! hypercore replication, an app channel) straight on the relayed stream, several connects in
//! a row, a refused connect, and a relay restart the listening client survives on its own.

mod support;

use std::time::Duration;

use dat_social::hypercore::Core;
use dat_social::keys::IdentityKey;
use dat_social::net::{ConnectionConfig, FrameReader, FrameWriter, SharedCore};
use dat_social::relay::client::{
    ClientOptions, Listener, RelayClient, RelayClientError, RelayState, RelayStream, RelayUrl,
};
use ed25519_dalek::SigningKey;
use support::relay::Relay;

const WAIT: Duration = Duration::from_secs(20);

fn fast() -> ClientOptions {
    ClientOptions {
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        ..ClientOptions::default()
    }
}

fn custodial() -> ClientOptions {
    ClientOptions {
        custodial: true,
        ..fast()
    }
}

/// `client` (key `client_pk`) connects to `server_pk`, where `listener` accepts: the two ends
/// (outgoing, incoming), once each has seen the other's key and both the same handshake hash.
async fn connected_pair(
    client: &RelayClient,
    listener: &mut Listener,
    server_pk: IdentityKey,
    client_pk: IdentityKey,
) -> (RelayStream, RelayStream) {
    let outgoing = client.connect(server_pk).await.unwrap();
    let incoming = tokio::time::timeout(WAIT, listener.accept())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outgoing.remote_public_key(), server_pk);
    assert_eq!(incoming.remote_public_key(), client_pk);
    assert_eq!(outgoing.handshake_hash(), incoming.handshake_hash());
    (outgoing, incoming)
}

/// Writes `frames` on `writer`; `reader` (the other end) reads exactly them, in order, each read
/// within [`WAIT`] and none the end of the stream.
async fn pass(writer: &mut impl FrameWriter, reader: &mut impl FrameReader, frames: &[Vec<u8>]) {
    writer.write_frames(frames).await.unwrap();
    let mut got = Vec::new();
    while got.len() < frames.len() {
        assert!(tokio::time::timeout(WAIT, reader.read_frames(&mut got))
            .await
            .unwrap()
            .unwrap());
    }
    assert_eq!(got, frames);
}

/// A listening client (key `server`) and a connecting one reach each other through the relay
/// at `url`, run a Connection each on the stream, replicate a 3-block core and echo on an app
/// channel; both with `options`.
async fn pair_and_replicate(url: &str, options: ClientOptions) {
    let url: RelayUrl = url.parse().unwrap();
    let server_key = SigningKey::from_bytes(&[0x31; 32]);
    let server_pk = IdentityKey::from_bytes(server_key.verifying_key().to_bytes());
    let server = RelayClient::start(url.clone(), server_key, options.clone());
    let mut listener = server.listen().await.unwrap();
    server.wait_connected(WAIT).await.unwrap();

    let client_key = SigningKey::from_bytes(&[0x32; 32]);
    let client_pk = IdentityKey::from_bytes(client_key.verifying_key().to_bytes());
    let client = RelayClient::start(url, client_key, options);
    client.wait_connected(WAIT).await.unwrap();
    // Each side sees the other's key, the same handshake hash, and opposite roles.
    let (outgoing, incoming) = connected_pair(&client, &mut listener, server_pk, client_pk).await;
    assert_ne!(outgoing.handshake_hash(), [0; 64]);
    assert!(outgoing.is_initiator());
    assert!(!incoming.is_initiator());
    assert!(outgoing.local_ip().is_loopback());

    let a = incoming.into_connection(ConnectionConfig::default());
    let b = outgoing.into_connection(ConnectionConfig::default());
    let writer = SharedCore::new(Core::in_memory(SigningKey::from_bytes(&[0x33; 32])));
    for i in 0..3 {
        writer.append(format!("block-{i}").as_bytes()).unwrap();
    }
    let reader = SharedCore::new(Core::in_memory_replica(writer.key()));
    a.replicate(writer.clone()).await.unwrap();
    b.replicate(reader.clone()).await.unwrap();
    for i in 0..3 {
        let block = reader
            .get_wait_timeout(i, WAIT)
            .await
            .unwrap()
            .expect("block within the wait");
        assert_eq!(block, format!("block-{i}").as_bytes());
    }
    // A live append crosses too.
    writer.append(b"block-3").unwrap();
    let block = reader.get_wait_timeout(3, WAIT).await.unwrap().unwrap();
    assert_eq!(block, b"block-3");

    let mut ca = a.open_app_channel("test/echo", None).await.unwrap();
    let mut cb = b.open_app_channel("test/echo", None).await.unwrap();
    cb.send(b"ping").unwrap();
    let got = tokio::time::timeout(WAIT, ca.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.payload, b"ping");
    ca.send(&vec![7u8; 300_000]).unwrap();
    let got = tokio::time::timeout(WAIT, cb.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.payload, vec![7u8; 300_000]);

    // Closing one side ends the other.
    b.close();
    tokio::time::timeout(WAIT, a.closed())
        .await
        .expect("the other side sees the end")
        .ok();
}

#[tokio::test]
async fn a_connection_runs_on_a_relayed_stream_over_websocket() {
    let relay = Relay::start();
    pair_and_replicate(&relay.ws(), fast()).await;
}

#[tokio::test]
async fn a_connection_runs_on_a_relayed_stream_over_tcp() {
    let relay = Relay::start();
    pair_and_replicate(&relay.tcp(), fast()).await;
}

#[tokio::test]
async fn a_connection_runs_on_a_custodial_relayed_stream() {
    let relay = Relay::start();
    pair_and_replicate(&relay.ws(), custodial()).await;
    pair_and_replicate(&relay.tcp(), custodial()).await;
}

/// Non-custodial: many connects in a row to one listener, each its own Noise handshake and
/// secret-stream, with messages both ways (an empty one, and one far larger than a relay
/// chunk) and the end of a stream. A custodial client reaches the non-custodial listener too,
/// and the non-custodial client a custodial listener (our relay runs the handshake and the
/// secret-stream for the custodial end).
#[tokio::test]
async fn several_noncustodial_connects_in_a_row() {
    let relay = Relay::start();
    let url: RelayUrl = relay.ws().parse().unwrap();
    let server_key = SigningKey::from_bytes(&[0x51; 32]);
    let server_pk = IdentityKey::from_bytes(server_key.verifying_key().to_bytes());
    let server = RelayClient::start(url.clone(), server_key, fast());
    let mut listener = server.listen().await.unwrap();
    server.wait_connected(WAIT).await.unwrap();
    let client_key = SigningKey::from_bytes(&[0x52; 32]);
    let client_pk = IdentityKey::from_bytes(client_key.verifying_key().to_bytes());
    let client = RelayClient::start(url.clone(), client_key, fast());
    client.wait_connected(WAIT).await.unwrap();
    let mut hashes = std::collections::HashSet::new();
    for round in 0..8u8 {
        let (outgoing, incoming) =
            connected_pair(&client, &mut listener, server_pk, client_pk).await;
        assert!(
            hashes.insert(outgoing.handshake_hash()),
            "a fresh handshake"
        );
        let (mut or, mut ow) = outgoing.split();
        let (mut ir, mut iw) = incoming.split();
        let big = vec![round; 200_000];
        pass(&mut ow, &mut ir, &[vec![round; 3], Vec::new(), big]).await;
        pass(&mut iw, &mut or, &[b"back".to_vec()]).await;
        // Ending one side ends the other's reads.
        ow.shutdown().await;
        let mut rest = Vec::new();
        assert!(!tokio::time::timeout(WAIT, ir.read_frames(&mut rest))
            .await
            .unwrap()
            .unwrap());
    }
    let other_key = SigningKey::from_bytes(&[0x53; 32]);
    let other_pk = IdentityKey::from_bytes(other_key.verifying_key().to_bytes());
    let other = RelayClient::start(url.clone(), other_key, custodial());
    let other_listener = other.listen().await.unwrap();
    other.wait_connected(WAIT).await.unwrap();
    let (outgoing, incoming) = connected_pair(&other, &mut listener, server_pk, other_pk).await;
    let (mut or, mut ow) = outgoing.split();
    let (mut ir, mut iw) = incoming.split();
    pass(&mut ow, &mut ir, &[b"bridged".to_vec(), vec![1; 100_000]]).await;
    pass(&mut iw, &mut or, &[b"back".to_vec()]).await;

    let mut other_listener = other_listener;
    let (outgoing, incoming) =
        connected_pair(&client, &mut other_listener, other_pk, client_pk).await;
    let (mut or, mut ow) = outgoing.split();
    let (mut ir, mut iw) = incoming.split();
    pass(&mut ow, &mut ir, &[b"to custodial".to_vec()]).await;
    pass(&mut iw, &mut or, &[vec![2; 70_000]]).await;
}

#[tokio::test]
async fn a_connect_to_a_key_nobody_listens_on_fails_and_the_session_goes_on() {
    let relay = Relay::start();
    let client = RelayClient::start(
        relay.ws().parse().unwrap(),
        SigningKey::from_bytes(&[1; 32]),
        fast(),
    );
    client.wait_connected(WAIT).await.unwrap();
    let err = client
        .connect(IdentityKey::from_bytes([9; 32]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RelayClientError::ConnectFailed { .. }),
        "{err}"
    );
    // The session is still usable.
    assert_eq!(*client.state().borrow(), RelayState::Connected);
    let err = client
        .connect(IdentityKey::from_bytes([8; 32]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RelayClientError::ConnectFailed { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreachable_relay_reports_reconnecting_and_connect_fails_fast() {
    let port = support::sys::free_port();
    let client = RelayClient::start(
        format!("ws://127.0.0.1:{port}").parse().unwrap(),
        SigningKey::from_bytes(&[2; 32]),
        fast(),
    );
    let mut state = client.state();
    let s = tokio::time::timeout(
        WAIT,
        state.wait_for(|s| matches!(s, RelayState::Reconnecting { .. })),
    )
    .await
    .unwrap()
    .unwrap()
    .clone();
    let RelayState::Reconnecting { attempt, error, .. } = s else {
        unreachable!()
    };
    assert!(attempt >= 1);
    assert!(!error.is_empty());
    let err = client
        .connect(IdentityKey::from_bytes([9; 32]))
        .await
        .unwrap_err();
    assert!(matches!(err, RelayClientError::NotConnected(_)), "{err}");
    let err = client
        .wait_connected(Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, RelayClientError::NotConnected(_)), "{err}");
}

/// The relay is killed and started again on the same ports: the listening client notices,
/// reconnects with back-off, listens again, and a new client reaches it.
#[tokio::test]
async fn a_listener_survives_a_relay_restart() {
    // Non-custodial over both transports, custodial over TCP.
    for (transport, options) in [("ws", fast()), ("tcp", fast()), ("tcp", custodial())] {
        let relay = Relay::start();
        let url = if transport == "ws" {
            relay.ws()
        } else {
            relay.tcp()
        };
        let server_key = SigningKey::from_bytes(&[0x41; 32]);
        let server_pk = IdentityKey::from_bytes(server_key.verifying_key().to_bytes());
        let server = RelayClient::start(url.parse().unwrap(), server_key, options.clone());
        let mut listener = server.listen().await.unwrap();
        server.wait_connected(WAIT).await.unwrap();
        let mut state = server.state();
        state.borrow_and_update();

        let (ws_port, tcp_port) = relay.kill();
        tokio::time::timeout(
            WAIT,
            state.wait_for(|s| matches!(s, RelayState::Reconnecting { .. })),
        )
        .await
        .expect("reconnecting reported")
        .unwrap();
        let relay = Relay::start_on(ws_port, tcp_port);
        server.wait_connected(WAIT).await.expect("reconnected");

        let client = RelayClient::start(
            url.parse().unwrap(),
            SigningKey::from_bytes(&[0x42; 32]),
            options,
        );
        client.wait_connected(WAIT).await.unwrap();
        let stream = client
            .connect(server_pk)
            .await
            .expect("the listener is back");
        let accepted = tokio::time::timeout(WAIT, listener.accept())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stream.handshake_hash(), accepted.handshake_hash());
        drop(relay);
    }
}
