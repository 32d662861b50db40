//! The router over an in-memory duplex: a reader gets the archive without reaching any other
//! handler, a joiner reaches the lobby handler and still replicates, an unknown protocol is
//! tolerated up to the bound and then closes the connection, and `stop` ends a reader at once
//! but waits for a running handler.

use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

use super::*;
use crate::endpoint::ArchiveServer;
use crate::hypercore::Core;
use crate::net::{replication, SharedCore};

const WAIT: Duration = Duration::from_secs(10);
const LOBBY: &str = "test/lobby";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// An archive of three blocks.
fn archive() -> SharedCore {
    let core = SharedCore::new(Core::in_memory(key(7)));
    core.append_batch(&[b"one", b"two", b"three"]).unwrap();
    core
}

/// A lobby handler that takes channels with id `[1]` only, reports each one it takes, and runs
/// until `release` is sent (or dropped).
struct Recording {
    taken: mpsc::UnboundedSender<ChannelKey>,
    release: Arc<std::sync::Mutex<Option<oneshot::Receiver<()>>>>,
}

impl ProtocolHandler for Recording {
    fn accept(&self, _inbound: &Inbound, channel: &ChannelKey) -> Option<HandlerTask> {
        if channel.id.as_deref() != Some(&[1u8][..]) {
            return None;
        }
        let _ = self.taken.send(channel.clone());
        let release = self.release.lock().unwrap().take();
        Some(Box::pin(async move {
            if let Some(release) = release {
                let _ = release.await;
            }
        }))
    }
}

struct Setup {
    client: Connection,
    served: tokio::task::JoinHandle<Result<(), RouteError>>,
    taken: mpsc::UnboundedReceiver<ChannelKey>,
    stop: oneshot::Sender<()>,
    release: oneshot::Sender<()>,
}

/// A router serving `archive` and the recording lobby on one end of a duplex; the client is
/// the other end.
async fn setup(archive: &SharedCore) -> Setup {
    let (a, b) = tokio::io::duplex(1 << 16);
    let (server_key, client_key) = (key(1), key(2));
    let (server, client) = tokio::join!(
        Connection::connect(a, &server_key, false),
        Connection::connect(b, &client_key, true),
    );
    let (taken_tx, taken) = mpsc::unbounded_channel();
    let (release, release_rx) = oneshot::channel();
    let router = Router::new()
        .accept(replication::PROTOCOL, ArchiveServer::new([archive.clone()]))
        // Prepared once although registered twice (a second replicate would fail).
        .alias(replication::PROTOCOL_ALIAS, replication::PROTOCOL)
        .accept(
            LOBBY,
            Recording {
                taken: taken_tx,
                release: Arc::new(std::sync::Mutex::new(Some(release_rx))),
            },
        );
    let inbound = Inbound {
        connection: Arc::new(server.unwrap()),
        id: 1,
        label: "test".into(),
        local_ip: std::net::Ipv4Addr::LOCALHOST.into(),
    };
    let (stop, stop_rx) = oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        router
            .serve(inbound, async {
                let _ = stop_rx.await;
            })
            .await
    });
    Setup {
        client: client.unwrap(),
        served,
        taken,
        stop,
        release,
    }
}

/// Replicates `original`'s archive on `client` and waits until all of it arrived.
async fn read(client: &Connection, original: &SharedCore) -> SharedCore {
    let replica = SharedCore::new(Core::in_memory_replica(original.key()));
    client.replicate(replica.clone()).await.unwrap();
    let length = original.status().length;
    let mut status = replica.subscribe();
    timeout(WAIT, status.wait_for(|s| s.contiguous_length >= length))
        .await
        .expect("the archive arrives")
        .unwrap();
    replica
}

/// Opens the lobby channel the recording handler takes, and waits until it has.
async fn open_lobby(s: &mut Setup) -> crate::net::AppChannel {
    let lobby = s.client.open_app_channel(LOBBY, Some(&[1])).await.unwrap();
    timeout(WAIT, s.taken.recv()).await.unwrap().unwrap();
    lobby
}

/// Opens `count` channels of protocols nobody handles (`unknown/<i>`).
async fn open_unknown(client: &Connection, count: usize) -> Vec<crate::net::AppChannel> {
    let mut channels = Vec::new();
    for i in 0..count {
        let protocol = format!("unknown/{i}");
        channels.push(client.open_app_channel(&protocol, None).await.unwrap());
    }
    channels
}

#[tokio::test]
async fn a_reader_gets_the_archive_and_reaches_no_other_handler() {
    let archive = archive();
    let mut s = setup(&archive).await;
    let replica = read(&s.client, &archive).await;
    assert_eq!(replica.status().length, 3);
    assert!(s.taken.try_recv().is_err(), "a reader reached the lobby");
    drop(s.client);
    let served = timeout(WAIT, s.served)
        .await
        .expect("served ends with the connection");
    assert!(served.unwrap().is_ok());
}

#[tokio::test]
async fn a_joiner_reaches_the_lobby_handler_and_still_replicates() {
    let archive = archive();
    let mut s = setup(&archive).await;
    // A channel of another id is declined (not ours), the lobby's is taken.
    let _other = s.client.open_app_channel(LOBBY, Some(&[9])).await.unwrap();
    let _lobby = s.client.open_app_channel(LOBBY, Some(&[1])).await.unwrap();
    let taken = timeout(WAIT, s.taken.recv()).await.unwrap().unwrap();
    assert_eq!(taken, ChannelKey::new(LOBBY, Some(&[1])));
    read(&s.client, &archive).await;
    assert!(
        s.taken.try_recv().is_err(),
        "the declined channel reached it"
    );
}

#[tokio::test]
async fn unknown_protocols_are_tolerated_up_to_the_bound_then_close_the_connection() {
    let archive = archive();
    let s = setup(&archive).await;
    let mut channels = open_unknown(&s.client, MAX_UNROUTED_CHANNELS).await;
    // Still served: replication works after as many as the bound.
    read(&s.client, &archive).await;
    assert!(!s.served.is_finished());
    channels.push(
        s.client
            .open_app_channel("unknown/last", None)
            .await
            .unwrap(),
    );
    let served = timeout(WAIT, s.served)
        .await
        .expect("closed at once")
        .unwrap();
    match served {
        Err(RouteError::Unrouted { count, protocol }) => {
            assert_eq!(count, MAX_UNROUTED_CHANNELS + 1);
            assert_eq!(protocol, "unknown/last");
        }
        other => panic!("expected Unrouted, got {other:?}"),
    }
    let _closed = timeout(WAIT, s.client.closed())
        .await
        .expect("the client sees the close");
}

#[tokio::test]
async fn crossing_the_bound_closes_the_connection_but_running_handlers_finish() {
    let archive = archive();
    let mut s = setup(&archive).await;
    let _lobby = open_lobby(&mut s).await;
    let _channels = open_unknown(&s.client, MAX_UNROUTED_CHANNELS + 1).await;
    let _closed = timeout(WAIT, s.client.closed())
        .await
        .expect("the connection closes at once");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!s.served.is_finished(), "the running handler was dropped");
    s.release.send(()).unwrap();
    let served = timeout(WAIT, s.served)
        .await
        .expect("ends with the handler")
        .unwrap();
    assert!(
        matches!(served, Err(RouteError::Unrouted { count, .. }) if count == MAX_UNROUTED_CHANNELS + 1),
        "{served:?}"
    );
}

#[tokio::test]
async fn stop_waits_for_a_running_handler_and_ends_a_reader_at_once() {
    let archive = archive();
    let mut s = setup(&archive).await;
    let _lobby = open_lobby(&mut s).await;
    s.stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!s.served.is_finished(), "stopped under a running handler");
    s.release.send(()).unwrap();
    let served = timeout(WAIT, s.served)
        .await
        .expect("ends once the handler is done");
    assert!(served.unwrap().is_ok());
    let _closed = timeout(WAIT, s.client.closed())
        .await
        .expect("the connection closes with the router");

    // A reader only: stop ends it at once.
    let s = setup(&archive).await;
    read(&s.client, &archive).await;
    s.stop.send(()).unwrap();
    let served = timeout(WAIT, s.served).await.expect("stop ends a reader");
    assert!(served.unwrap().is_ok());
}
