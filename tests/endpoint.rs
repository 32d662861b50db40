//! The network front door (`dat_social::endpoint`) with real sockets: endpoints reach each other
//! over TCP by an address hint, and by key alone through a real `dat-social relay` process,
//! where one relay session serves every user reached through that relay.

mod support;

use std::time::Duration;

use dat_social::discovery::Hints;
use dat_social::endpoint::{Accepted, Endpoint, EndpointOptions};
use dat_social::identity::Identity;
use dat_social::keys::IdentityKey;
use dat_social::net::ConnectionConfig;
use dat_social::relay::client::{ClientOptions, RelayUrl};
use dat_social::remote::{RemoteError, Route};
use support::relay::Relay;
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(20);

fn deadline() -> Instant {
    Instant::now() + WAIT
}

fn fast_relay() -> ClientOptions {
    ClientOptions {
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        ..ClientOptions::default()
    }
}

/// Accepts every arrival on `endpoint` and runs its handshake; each connection is kept alive
/// (until the task ends) and its remote key reported on the returned channel.
fn serve(endpoint: std::sync::Arc<Endpoint>) -> tokio::sync::mpsc::UnboundedReceiver<IdentityKey> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut acceptor = endpoint.acceptor().await.expect("acceptor");
        let mut kept = Vec::new();
        while let Some(accepted) = acceptor.next().await {
            if let Accepted::Incoming(incoming) = accepted {
                let key = endpoint.identity().signing_key().clone();
                if let Ok((conn, _)) = incoming.connect(&key, ConnectionConfig::default()).await {
                    let _ = tx.send(conn.remote_public_key());
                    kept.push(conn);
                }
            }
        }
    });
    rx
}

/// An endpoint that listens on a free loopback TCP port.
async fn tcp_endpoint(identity: Identity) -> std::sync::Arc<Endpoint> {
    let options = EndpointOptions {
        listen: Some("127.0.0.1:0".into()),
        ..EndpointOptions::default()
    };
    std::sync::Arc::new(Endpoint::bind(identity, options).await.unwrap())
}

#[tokio::test]
async fn the_listeners_have_one_owner() {
    let host = tcp_endpoint(Identity::generate()).await;
    let _acceptor = host.acceptor().await.unwrap();
    assert!(host.acceptor().await.is_err());
    // Without a TCP listener too: the relay listens are taken once.
    let client = Endpoint::bind(Identity::generate(), EndpointOptions::default())
        .await
        .unwrap();
    let _acceptor = client.acceptor().await.unwrap();
    assert!(client.acceptor().await.is_err());
}

#[tokio::test]
async fn an_address_hint_reaches_the_key_over_tcp_and_a_wrong_key_is_refused() {
    let host = tcp_endpoint(Identity::generate()).await;
    let host_key = host.identity().public_key();
    let addr = host.local_addr().expect("listening").to_string();
    let mut served = serve(host.clone());

    let player = Identity::generate();
    let player_key = player.public_key();
    let player = Endpoint::bind(player, EndpointOptions::default())
        .await
        .unwrap();
    assert_eq!(player.local_addr(), None, "no listen address, no listener");
    let hints = Hints {
        peer: Some(addr.clone()),
        relay: None,
    };
    let connected = player.connect(host_key, &hints, deadline()).await.unwrap();
    assert_eq!(connected.route, Route::Tcp(addr.clone()));
    assert_eq!(connected.connection.remote_public_key(), host_key);
    assert!(connected.local_ip.is_loopback());
    let seen = tokio::time::timeout(WAIT, served.recv()).await.unwrap();
    assert_eq!(seen, Some(player_key), "the host authenticated the player");

    // Someone else's key at the host's address: the handshake proves the host is not them.
    let other = Identity::generate().public_key();
    match player.connect(other, &hints, deadline()).await {
        Err(RemoteError::WrongPeer { addr: a, .. }) => assert_eq!(a, addr),
        other => panic!("expected WrongPeer, got {other:?}"),
    }
    // No hint, no relay, no LAN: nowhere to look.
    match player
        .connect(host_key, &Hints::default(), deadline())
        .await
    {
        Err(RemoteError::Unreachable { source, .. }) => {
            let reason = source.to_string();
            assert!(reason.contains("no route"), "{reason}")
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_key_alone_is_found_through_the_relay_and_one_session_serves_every_host() {
    let relay = Relay::start();
    let url: RelayUrl = relay.ws().parse().unwrap();
    let options = EndpointOptions {
        relays: vec![url.clone()],
        relay_client: fast_relay(),
        ..EndpointOptions::default()
    };

    // Three hosts, each listening through the relay and announcing its archive there.
    let mut hosts = Vec::new();
    for seed in 1..=3u8 {
        let host = std::sync::Arc::new(
            Endpoint::bind(Identity::from_seed([seed; 32]), options.clone())
                .await
                .unwrap(),
        );
        let key = host.identity().public_key();
        let publications = host.publish(key.discovery_key()).await.unwrap();
        assert_eq!(publications.len(), 1, "one relay announcement");
        let served = serve(host.clone());
        hosts.push((host, key, served, publications));
    }

    // A player with nothing but the keys: each is looked up on the relay and reached through
    // it, over the player's one session.
    let player = Identity::generate();
    let player_key = player.public_key();
    let player = Endpoint::bind(player, options).await.unwrap();
    let mut connections = Vec::new();
    for (_, key, served, _) in &mut hosts {
        // The announcement may still be on its way: look again until the deadline.
        let until = deadline();
        let connected = loop {
            match player.connect(*key, &Hints::default(), until).await {
                Ok(c) => break c,
                Err(_) if Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("host not reached through the relay: {e}"),
            }
        };
        assert_eq!(connected.route, Route::Relay(url.clone()));
        assert_eq!(connected.connection.remote_public_key(), *key);
        let seen = tokio::time::timeout(WAIT, served.recv()).await.unwrap();
        assert_eq!(seen, Some(player_key));
        connections.push(connected.connection);
    }
    assert_eq!(
        player.discovery().pool().len(),
        1,
        "lookups and connects to three hosts share one relay session"
    );
    for (host, ..) in &hosts {
        assert_eq!(
            host.discovery().pool().len(),
            1,
            "listen and announce share one session"
        );
    }
}

/// The friends path (`friends::refresh` and the watcher run it): an endpoint that only dials
/// looks three friends up on the relay and reaches each of them over one relay session (a
/// watcher following a hundred friends through one relay holds one session, not a hundred).
#[tokio::test]
async fn an_endpoint_looks_up_and_reaches_many_users_over_one_session() {
    let relay = Relay::start();
    let url: RelayUrl = relay.ws().parse().unwrap();
    let mut hosts = Vec::new();
    for seed in 11..=13u8 {
        let options = EndpointOptions {
            relays: vec![url.clone()],
            relay_client: fast_relay(),
            ..EndpointOptions::default()
        };
        let host = std::sync::Arc::new(
            Endpoint::bind(Identity::from_seed([seed; 32]), options)
                .await
                .unwrap(),
        );
        let key = host.identity().public_key();
        let published = host.publish(key.discovery_key()).await.unwrap();
        let served = serve(host.clone());
        hosts.push((host, key, served, published));
    }
    let options = EndpointOptions {
        relays: vec![url.clone()],
        ..EndpointOptions::default()
    };
    let me = Endpoint::bind(Identity::generate(), options).await.unwrap();
    let mut connections = Vec::new();
    for (_, key, _, _) in &hosts {
        let until = deadline();
        let route = loop {
            let routes = me.routes(*key, &Hints::default()).await;
            if let Some(route) = routes.into_iter().next() {
                break route;
            }
            assert!(
                Instant::now() < until,
                "the relay lookup never found the host"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(route, Route::Relay(url.clone()));
        let conn = me.reach(&route, *key, until).await.unwrap().connection;
        assert_eq!(conn.remote_public_key(), *key);
        connections.push(conn);
    }
    assert_eq!(
        me.discovery().pool().len(),
        1,
        "one session for three lookups and three connects"
    );
}

/// `show` and `join` through one endpoint: the lobby host is reached through the relay twice
/// (its archive read as `dat-social show` does, then a join to an open data channel), and both
/// go over the endpoint's one session to that relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_show_and_a_join_through_one_endpoint_share_its_relay_session() {
    use dat_social::home::Home;
    use dat_social::lobby::{self, Host, HostNetwork, HostOptions, HostRelay, JoinOptions};

    let relay = Relay::start();
    let url: RelayUrl = relay.ws().parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path().join("host"));
    let (identity, _) = home.init("hostess").unwrap();
    let host_key = identity.public_key();
    let network = HostNetwork {
        listen: "127.0.0.1:0".into(),
        relay: Some(HostRelay {
            url: url.clone(),
            custodial: false,
            client: fast_relay(),
        }),
        ..HostNetwork::default()
    };
    let endpoint = std::sync::Arc::new(network.bind(identity).await.unwrap());
    let host = Host::start(&home, endpoint, HostOptions::default())
        .await
        .unwrap();

    let (player, _) = Home::new(dir.path().join("ann")).init("ann").unwrap();
    let options = EndpointOptions {
        relay_client: fast_relay(),
        ..EndpointOptions::default()
    };
    let endpoint = Endpoint::bind(player, options).await.unwrap();
    let route = Route::Relay(url.clone());
    // The show: the host may not listen on the relay yet; try until the deadline.
    let until = deadline();
    let shown = loop {
        match endpoint.reach(&route, host_key, until).await {
            Ok(c) => break c,
            Err(_) if Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("host not reached through the relay: {e}"),
        }
    };
    let (files, _) = dat_social::remote::read_archive(&shown.connection, host_key, deadline())
        .await
        .unwrap();
    assert_eq!(files.session.expect("a live session").name, "hostess");

    // The join, through the same endpoint.
    let joined = lobby::join_through(
        &endpoint,
        JoinOptions {
            url: host.info().invite.parse().unwrap(),
            relay: Some(url.clone()),
            name: "ann".into(),
            ..JoinOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(joined.info().lobby_name, "hostess");
    assert_eq!(
        endpoint.discovery().pool().len(),
        1,
        "the show and the join share the endpoint's relay session"
    );
    drop(joined);
    host.shutdown().await.unwrap();
}
