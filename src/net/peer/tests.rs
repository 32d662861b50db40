//! The event stream of a [`Connection`] over an in-memory duplex: a consumer of remote opens
//! only ([`Connection::take_remote_opens`]) gets the channels the remote opens and none of
//! the replication progress that a full event stream carries.

use std::time::Duration;

use ed25519_dalek::SigningKey;
use tokio::time::timeout;

use super::*;
use crate::hypercore::Core;

const WAIT: Duration = Duration::from_secs(10);

async fn pair() -> (Connection, Connection) {
    let (a, b) = tokio::io::duplex(1 << 16);
    let (ka, kb) = (
        SigningKey::from_bytes(&[1; 32]),
        SigningKey::from_bytes(&[2; 32]),
    );
    let (a, b) = tokio::join!(
        Connection::connect(a, &ka, true),
        Connection::connect(b, &kb, false)
    );
    (a.unwrap(), b.unwrap())
}

/// `b` reads a three-block core of `a`'s while `a` appends two more, then `a` opens an app
/// channel: the last thing `b`'s stream of `take` yields.
async fn replicate_then_open(
    take: impl FnOnce(&Connection) -> mpsc::UnboundedReceiver<ConnectionEvent>,
) -> Vec<ConnectionEvent> {
    let (a, b) = pair().await;
    let mut events = take(&b);
    let original = SharedCore::new(Core::in_memory(SigningKey::from_bytes(&[7; 32])));
    original.append_batch(&[b"one", b"two", b"three"]).unwrap();
    let replica = SharedCore::new(Core::in_memory_replica(original.key()));
    a.replicate(original.clone()).await.unwrap();
    b.replicate(replica.clone()).await.unwrap();
    original.append_batch(&[b"four", b"five"]).unwrap();
    let mut status = replica.subscribe();
    timeout(WAIT, status.wait_for(|s| s.contiguous_length >= 5))
        .await
        .expect("the core arrives")
        .unwrap();
    let _app = a.open_app_channel("test/app", None).await.unwrap();
    let mut seen = Vec::new();
    loop {
        let event = timeout(WAIT, events.recv())
            .await
            .expect("the open arrives");
        let event = event.expect("the connection is open");
        let last = matches!(&event, ConnectionEvent::RemoteOpen(k) if k.protocol == "test/app");
        seen.push(event);
        if last {
            return seen;
        }
    }
}

#[tokio::test]
async fn the_full_event_stream_carries_replication_progress() {
    let seen = replicate_then_open(|b| b.take_events().unwrap()).await;
    assert!(
        seen.iter()
            .any(|e| matches!(e, ConnectionEvent::RemoteLength { .. })),
        "{seen:?}"
    );
}

#[tokio::test]
async fn remote_opens_only_carry_the_remote_opens() {
    let seen = replicate_then_open(|b| {
        let opens = b.take_remote_opens().unwrap();
        assert!(b.take_events().is_none(), "taken once, either way");
        opens.events
    })
    .await;
    assert!(
        seen.iter()
            .all(|e| matches!(e, ConnectionEvent::RemoteOpen(_))),
        "{seen:?}"
    );
    assert_eq!(
        seen.last(),
        Some(&ConnectionEvent::RemoteOpen(ChannelKey::new(
            "test/app", None
        )))
    );
}
