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

/// Both ends of one application channel, opened on each side of a fresh pair.
async fn app_pair() -> (Connection, Connection, AppChannel, AppChannel) {
    let (a, b) = pair().await;
    let (sa, sb) = tokio::join!(
        a.open_app_channel("test/app", None),
        b.open_app_channel("test/app", None)
    );
    let (sa, sb) = (sa.unwrap(), sb.unwrap());
    timeout(WAIT, sa.opened()).await.unwrap().unwrap();
    timeout(WAIT, sb.opened()).await.unwrap().unwrap();
    (a, b, sa, sb)
}

#[tokio::test]
async fn an_app_channel_flood_nobody_reads_ends_the_connection() {
    let (_a, b, sa, _sb) = app_pair().await;
    let chunk = vec![7u8; 64 * 1024];
    // 2 MiB, twice the bound, never read on b's side.
    for _ in 0..32 {
        if sa.send(&chunk).is_err() {
            break;
        }
    }
    let closed = timeout(WAIT, b.closed())
        .await
        .expect("b ends the connection");
    let err = closed.expect_err("ended by an error");
    assert!(matches!(*err, NetError::AppFlood(MAX_APP_UNREAD)), "{err}");
}

#[tokio::test]
async fn a_reader_that_keeps_up_takes_more_than_the_bound() {
    let (_a, b, sa, mut sb) = app_pair().await;
    let chunk = vec![7u8; 64 * 1024];
    let reader = tokio::spawn(async move {
        let mut got = 0;
        while got < 64 {
            let m = timeout(WAIT, sb.recv()).await.unwrap().expect("open");
            assert_eq!(m.payload.len(), 64 * 1024);
            got += 1;
        }
        sb
    });
    // 4 MiB in all, at most a few hundred KiB ahead of the reader.
    for _ in 0..64 {
        sa.send(&chunk).unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let _sb = timeout(WAIT, reader).await.unwrap().unwrap();
    assert!(!b.is_closed(), "a reader that keeps up is never flooded");
}
