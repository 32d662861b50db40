//! [`RelayClient::announce`] / [`RelayClient::lookup`] / [`RelayClient::unannounce`]
//! (`announce` / `lookup` / `unannounce`, PROTOCOL.md §5) against `dat-social relay` (a real
//! process on loopback, rendezvous among its own clients), non-custodial (signing the relay's
//! `signAnnounce`) and custodial: one client announces a topic, another looks it up, finds the
//! key and connects to it; after the relay restarts, the announce is re-sent on the new
//! session; unannounce removes it; a relay that never answers ends a query at its deadline.
//! (Against the npm relay on a hyperdht testnet: tests/relay_js_relay.rs.)

mod support;

use std::time::Duration;

use dat_social::keys::{IdentityKey, Topic};
use dat_social::net::{FrameReader, FrameWriter};
use dat_social::relay::client::{ClientOptions, RelayClient, RelayClientError, RelayUrl};
use ed25519_dalek::SigningKey;
use support::relay::Relay;

const WAIT: Duration = Duration::from_secs(20);

/// A client of `url` (non-custodial, our default, unless `custodial`) with quick reconnects.
fn client_in(url: &str, seed: u8, custodial: bool) -> RelayClient {
    let url: RelayUrl = url.parse().unwrap();
    let options = ClientOptions {
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        custodial,
        ..ClientOptions::default()
    };
    RelayClient::start(url, SigningKey::from_bytes(&[seed; 32]), options)
}

fn client(url: &str, seed: u8) -> RelayClient {
    client_in(url, seed, false)
}

fn pk(seed: u8) -> IdentityKey {
    IdentityKey::from_bytes(
        SigningKey::from_bytes(&[seed; 32])
            .verifying_key()
            .to_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_announces_another_finds_and_reaches_it() {
    announce_find_and_reach(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_custodial_client_announces_another_finds_and_reaches_it() {
    announce_find_and_reach(true).await;
}

/// Announce, lookup, connect to what was found, two announcers, unannounce, leave; every client
/// in the mode `custodial`.
async fn announce_find_and_reach(custodial: bool) {
    let client = |url: &str, seed| client_in(url, seed, custodial);
    let relay = Relay::start();
    let topic = Topic::from_bytes([0x71; 32]);
    let other_topic = Topic::from_bytes([0x72; 32]);
    let announcer = client(&relay.ws(), 0x21);
    let mut listener = announcer.listen().await.unwrap();
    announcer.wait_connected(WAIT).await.unwrap();
    let seeker = client(&relay.tcp(), 0x22);
    seeker.wait_connected(WAIT).await.unwrap();
    assert!(seeker.lookup(topic, WAIT).await.unwrap().is_empty());

    announcer.announce(topic, WAIT).await.unwrap();
    // Announcing twice is harmless: still one key.
    announcer.announce(topic, WAIT).await.unwrap();
    assert_eq!(seeker.lookup(topic, WAIT).await.unwrap(), vec![pk(0x21)]);
    assert!(seeker.lookup(other_topic, WAIT).await.unwrap().is_empty());

    // The seeker connects to the key it found.
    let found = seeker.lookup(topic, WAIT).await.unwrap()[0];
    let stream = tokio::time::timeout(WAIT, seeker.connect(found))
        .await
        .expect("connect in time")
        .unwrap();
    let accepted = tokio::time::timeout(WAIT, listener.accept())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(accepted.remote_public_key(), pk(0x22));
    let (_keep_reader, mut w) = stream.split();
    let (mut r, _keep_writer) = accepted.split();
    w.write_frames(&[b"found you".to_vec()]).await.unwrap();
    let mut frames = Vec::new();
    assert!(tokio::time::timeout(WAIT, r.read_frames(&mut frames))
        .await
        .unwrap()
        .unwrap());
    assert_eq!(frames.concat(), b"found you");

    // Two announcers on one topic: both keys.
    let second = client(&relay.ws(), 0x23);
    second.wait_connected(WAIT).await.unwrap();
    second.announce(topic, WAIT).await.unwrap();
    let mut both = seeker.lookup(topic, WAIT).await.unwrap();
    both.sort();
    let mut expected = vec![pk(0x21), pk(0x23)];
    expected.sort();
    assert_eq!(both, expected);

    announcer.unannounce(topic, WAIT).await.unwrap();
    assert_eq!(seeker.lookup(topic, WAIT).await.unwrap(), vec![pk(0x23)]);
    // A client that leaves takes its announcements with it (our relay's rendezvous).
    drop(second);
    let deadline = tokio::time::Instant::now() + WAIT;
    while !seeker.lookup(topic, WAIT).await.unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the announce outlived its client"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announces_come_back_after_the_relay_restarts() {
    let relay = Relay::start();
    let topic = Topic::from_bytes([0x73; 32]);
    let announcer = client(&relay.ws(), 0x24);
    announcer.wait_connected(WAIT).await.unwrap();
    announcer.announce(topic, WAIT).await.unwrap();
    let unannounced = Topic::from_bytes([0x74; 32]);
    announcer.announce(unannounced, WAIT).await.unwrap();
    announcer.unannounce(unannounced, WAIT).await.unwrap();

    let (ws, tcp) = relay.kill();
    // While the relay is away: queries fail at once with NotConnected.
    let mut state = announcer.state();
    tokio::time::timeout(WAIT, state.wait_for(|s| s.name() == "reconnecting"))
        .await
        .unwrap()
        .unwrap();
    match announcer.lookup(topic, WAIT).await {
        Err(RelayClientError::NotConnected(_)) => {}
        other => panic!("{other:?}"),
    }

    let relay = Relay::start_on(ws, tcp);
    announcer.wait_connected(WAIT).await.unwrap();
    let seeker = client(&relay.tcp(), 0x25);
    seeker.wait_connected(WAIT).await.unwrap();
    // The re-announce went out right after the new handshake; allow for it to land.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let found = seeker.lookup(topic, WAIT).await.unwrap();
        if found == vec![pk(0x24)] {
            break;
        }
        assert!(found.is_empty(), "{found:?}");
        assert!(tokio::time::Instant::now() < deadline, "not re-announced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seeker.lookup(unannounced, WAIT).await.unwrap().is_empty());
}

/// A fake relay on 127.0.0.1 that opens the relay channel and then never answers anything:
/// returns its `ws://` URL.
async fn mute_relay() -> String {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", tcp.local_addr().unwrap());
    tokio::spawn(async move {
        use futures_util::{SinkExt, StreamExt};
        let (sock, _) = tcp.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(sock).await.unwrap();
        let mut codec = dat_social::relay::RelayCodec::new();
        while let Some(frame) = codec.poll_transmit() {
            ws.send(tokio_tungstenite::tungstenite::Message::Binary(
                frame.into(),
            ))
            .await
            .unwrap();
        }
        // Read (and ignore) until the client goes away; the test's own waits bound this.
        while let Some(Ok(_)) = ws.next().await {}
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_fail_while_not_connected_and_time_out_without_an_answer() {
    // Nobody listens: not connected, so the client says so at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", closed.local_addr().unwrap());
    drop(closed);
    let c = client(&url, 0x26);
    match c.lookup(Topic::from_bytes([1; 32]), WAIT).await {
        Err(RelayClientError::NotConnected(_)) => {}
        other => panic!("{other:?}"),
    }
    match c.announce(Topic::from_bytes([1; 32]), WAIT).await {
        Err(RelayClientError::NotConnected(_)) => {}
        other => panic!("{other:?}"),
    }
    // A relay that opens the channel but never answers: the deadline ends the wait.
    let c = client(&mute_relay().await, 0x27);
    c.wait_connected(WAIT).await.unwrap();
    for result in [
        c.lookup(Topic::from_bytes([2; 32]), Duration::from_millis(300))
            .await
            .map(|_| ()),
        c.announce(Topic::from_bytes([2; 32]), Duration::from_millis(300))
            .await,
    ] {
        match result {
            Err(RelayClientError::QueryFailed { topic, reason }) => {
                assert_eq!(topic, "02".repeat(32));
                assert!(reason.contains("finished"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}
