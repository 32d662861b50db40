//! Two of our peers over loopback TCP: bulk sync, live appends, cores in both directions plus an
//! app channel on one connection, and faults (garbage, hang-ups, bad capabilities) that must end
//! only the connection they happen on.

mod support;

use std::time::{Duration, Instant};

use dat_social::hypercore::Core;
use dat_social::net::{Connection, ConnectionConfig, NetError, SharedCore};
use ed25519_dalek::SigningKey;
use support::net::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A connected pair over loopback TCP: (initiator side, responder side).
async fn pair(ka: &SigningKey, kb: &SigningKey) -> (Connection, Connection) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let kb = kb.clone();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        tcp.set_nodelay(true).unwrap();
        Connection::connect(tcp, &kb, false).await.unwrap()
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let a = Connection::connect(tcp, ka, true).await.unwrap();
    (a, server.await.unwrap())
}

fn replica_of(core: &SharedCore) -> SharedCore {
    SharedCore::new(Core::in_memory_replica(core.key()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_sync_of_10000_blocks_then_1000_live_appends() {
    let (ka, kb) = (identity(), identity());
    let writer = writer_core(10_000);
    let reader = replica_of(&writer);
    let (a, b) = pair(&ka, &kb).await;
    assert_eq!(
        a.remote_public_key().as_bytes(),
        kb.verifying_key().as_bytes()
    );
    assert_eq!(
        b.remote_public_key().as_bytes(),
        ka.verifying_key().as_bytes()
    );
    assert_eq!(a.handshake_hash(), b.handshake_hash());

    let t = Instant::now();
    a.replicate(writer.clone()).await.unwrap();
    b.replicate(reader.clone()).await.unwrap();
    wait_contiguous(&reader, 10_000, Duration::from_secs(120)).await;
    eprintln!("initial sync: 10000 blocks in {:.1} ms", ms(t));
    assert_blocks(&reader, 10_000);
    assert_eq!(reader.status().length, 10_000);

    let t = Instant::now();
    writer.append(&block(10_000)).unwrap();
    assert_eq!(
        reader
            .get_wait_timeout(10_000, Duration::from_secs(10))
            .await
            .unwrap(),
        Some(block(10_000))
    );
    eprintln!("one live append arrived after {:.2} ms", ms(t));

    let t = Instant::now();
    for i in 10_001..11_001 {
        writer.append(&block(i)).unwrap();
    }
    wait_contiguous(&reader, 11_001, Duration::from_secs(120)).await;
    eprintln!("1000 appends in a row all arrived in {:.1} ms", ms(t));
    assert_blocks(&reader, 11_001);
    // The replica verified what it stored: its tree matches the writer's.
    assert_eq!(
        reader.with_core(|c| c.tree_hash()),
        writer.with_core(|c| c.tree_hash())
    );
    assert!(!a.is_closed() && !b.is_closed());
}

/// What the lobby does: each side writes one core the other reads, plus app messages, all on one
/// connection; and each live append, one at a time, is awaited on the other side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cores_both_ways_and_app_channel_on_one_connection() {
    let (ka, kb) = (identity(), identity());
    let host_log = writer_core(3);
    let joiner_log = writer_core(0);
    let host_log_at_joiner = replica_of(&host_log);
    let joiner_log_at_host = replica_of(&joiner_log);
    let (host, joiner) = pair(&ka, &kb).await;

    // Opposite orders on the two sides, and the app channel opened before replication.
    let mut host_lobby = host
        .open_app_channel("dat-social/lobby", Some(b"room-1"))
        .await
        .unwrap();
    host.replicate(host_log.clone()).await.unwrap();
    host.replicate(joiner_log_at_host.clone()).await.unwrap();
    joiner.replicate(joiner_log.clone()).await.unwrap();
    joiner.replicate(host_log_at_joiner.clone()).await.unwrap();
    let mut joiner_lobby = joiner
        .open_app_channel("dat-social/lobby", Some(b"room-1"))
        .await
        .unwrap();

    host_lobby.send(b"welcome").unwrap();
    joiner_lobby.send_typed(3, b"hello host").unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), joiner_lobby.recv())
        .await
        .unwrap();
    assert_eq!(got.unwrap().payload, b"welcome");
    let got = tokio::time::timeout(Duration::from_secs(10), host_lobby.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.message_type, got.payload.as_slice()),
        (3, &b"hello host"[..])
    );
    host_lobby.opened().await.unwrap();

    wait_contiguous(&host_log_at_joiner, 3, Duration::from_secs(10)).await;
    for i in 0..50u64 {
        joiner_log.append(&block(i)).unwrap();
        let got = joiner_log_at_host
            .get_wait_timeout(i, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(
            got,
            Some(block(i)),
            "joiner block {i} did not reach the host"
        );
        host_log.append(&block(3 + i)).unwrap();
        let got = host_log_at_joiner
            .get_wait_timeout(3 + i, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(
            got,
            Some(block(3 + i)),
            "host block {} did not reach the joiner",
            3 + i
        );
    }

    // Closing the app channel is seen by the other side; replication goes on.
    joiner_lobby.close();
    assert!(
        tokio::time::timeout(Duration::from_secs(10), host_lobby.recv())
            .await
            .unwrap()
            .is_none()
    );
    host_log.append(&block(53)).unwrap();
    assert_eq!(
        host_log_at_joiner
            .get_wait_timeout(53, Duration::from_secs(10))
            .await
            .unwrap(),
        Some(block(53))
    );

    host.close();
    let r = tokio::time::timeout(Duration::from_secs(10), joiner.closed())
        .await
        .unwrap();
    assert!(r.is_ok(), "clean close expected, got {r:?}");
}

/// Serves every accepted connection: replicates `core` on it. Returns the listener address.
async fn listener_serving(core: SharedCore, key: SigningKey) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        // Bounded: the tests below connect a handful of times.
        for _ in 0..16 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (core, key) = (core.clone(), key.clone());
            tokio::spawn(async move {
                let cfg = ConnectionConfig {
                    handshake_timeout: Duration::from_millis(500),
                    ..ConnectionConfig::default()
                };
                if let Ok(conn) = Connection::connect_with(tcp, &key, false, cfg).await {
                    conn.replicate(core).await.unwrap();
                    let _ = conn.closed().await;
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_hangups_end_only_their_connection() {
    let writer = writer_core(20);
    let addr = listener_serving(writer.clone(), identity()).await;

    // 1. A good reader connects first and stays connected.
    let good = replica_of(&writer);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let conn = Connection::connect(tcp, &identity(), true).await.unwrap();
    conn.replicate(good.clone()).await.unwrap();
    wait_contiguous(&good, 20, Duration::from_secs(10)).await;

    // 2. Pure garbage instead of a handshake: the server drops it.
    let mut bad = TcpStream::connect(addr).await.unwrap();
    bad.write_all(&[0x20, 0, 0]).await.unwrap();
    bad.write_all(&[0xab; 32]).await.unwrap();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), async {
        let mut total = 0;
        loop {
            match bad.read(&mut buf).await {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n,
            }
        }
    })
    .await
    .expect("server kept a garbage connection open");
    assert!(n <= 3 + 96, "server answered garbage with {n} bytes");

    // 3. A huge frame length prefix, then silence: handshake timeout closes it.
    let mut huge = TcpStream::connect(addr).await.unwrap();
    huge.write_all(&[0xff, 0xff, 0xff, 1, 2, 3]).await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), huge.read(&mut buf)).await;
    assert!(
        matches!(r, Ok(Ok(0)) | Ok(Err(_))),
        "server kept a stalled handshake open: {r:?}"
    );

    // 4. A client that hangs up mid-handshake (after the first message).
    let mut quitter = TcpStream::connect(addr).await.unwrap();
    let mut hs = dat_social::net::secret_stream::Handshake::new(true, &identity()).unwrap();
    quitter.write_all(&hs.take_outgoing()).await.unwrap();
    drop(quitter);

    // 5. Our side of a peer that sends garbage after a valid handshake: a clear error, no panic.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let raddr = listener.local_addr().unwrap();
    let evil = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let key = identity();
        let (_info, _enc, _dec, _rest) = dat_social::net::secret_stream::handshake(
            &mut tcp,
            &key,
            false,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        tcp.write_all(&[5, 0, 0, 1, 2, 3, 4, 5]).await.unwrap(); // not a valid secretstream message
        let mut sink = [0u8; 1024];
        while let Ok(n) = tcp.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    });
    let victim = Connection::connect(TcpStream::connect(raddr).await.unwrap(), &identity(), true)
        .await
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), victim.closed())
        .await
        .unwrap();
    let err = r.expect_err("garbage must end the connection with an error");
    assert!(
        matches!(&*err, NetError::SecretStream(_)),
        "unexpected error {err}"
    );
    evil.await.unwrap();

    // 6. Meanwhile the good connection still replicates live.
    writer.append(&block(20)).unwrap();
    assert_eq!(
        good.get_wait_timeout(20, Duration::from_secs(10))
            .await
            .unwrap(),
        Some(block(20))
    );
    assert!(!conn.is_closed());

    // 7. And a new good client can still connect.
    let fresh = replica_of(&writer);
    let conn2 = Connection::connect(TcpStream::connect(addr).await.unwrap(), &identity(), true)
        .await
        .unwrap();
    conn2.replicate(fresh.clone()).await.unwrap();
    wait_contiguous(&fresh, 21, Duration::from_secs(10)).await;
    assert_blocks(&fresh, 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_errors_are_clear() {
    // Peer vanishes before answering.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let closer = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut b = [0u8; 64];
        let _ = tcp.read(&mut b).await;
        // drop: hang up mid-handshake
    });
    let r = Connection::connect(TcpStream::connect(addr).await.unwrap(), &identity(), true).await;
    let err = r.expect_err("hang-up must fail the handshake");
    assert!(
        err.to_string().contains("closed during the handshake")
            || matches!(err, NetError::SecretStream(_)),
        "{err}"
    );
    closer.await.unwrap();

    // Peer never answers: the configured timeout fires.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(tcp);
    });
    let cfg = ConnectionConfig {
        handshake_timeout: Duration::from_millis(200),
        ..ConnectionConfig::default()
    };
    let r = Connection::connect_with(
        TcpStream::connect(addr).await.unwrap(),
        &identity(),
        true,
        cfg,
    )
    .await;
    let err = r.expect_err("silence must time out");
    assert!(err.to_string().contains("timed out"), "{err}");
    silent.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_of_unknown_core_gets_nothing_and_connection_survives() {
    let (ka, kb) = (identity(), identity());
    let writer = writer_core(5);
    let other = writer_core(5);
    let (a, b) = pair(&ka, &kb).await;
    a.replicate(writer.clone()).await.unwrap();
    // b asks for a different core: channels don't pair, nothing is transferred.
    let wrong = replica_of(&other);
    b.replicate(wrong.clone()).await.unwrap();
    let mut events = b.take_events().unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ev,
        dat_social::net::ConnectionEvent::RemoteOpen(dat_social::net::ChannelKey::new(
            "hypercore/alpha",
            Some(writer.discovery_key().as_bytes())
        ))
    );
    assert_eq!(wrong.status().length, 0);
    // Accepting it later works.
    let right = replica_of(&writer);
    b.replicate(right.clone()).await.unwrap();
    wait_contiguous(&right, 5, Duration::from_secs(10)).await;
    assert!(matches!(
        b.replicate(right.clone()).await,
        Err(NetError::AlreadyReplicating(_))
    ));
}

/// Keep-alives hold an idle connection open; a peer that goes silent is dropped with a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_and_idle_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let strict = ConnectionConfig {
        idle_timeout: Some(Duration::from_millis(400)),
        keep_alive: Some(Duration::from_millis(100)),
        ..ConnectionConfig::default()
    };
    let server = tokio::spawn(async move {
        let mut conns = Vec::new();
        for _ in 0..2 {
            let (tcp, _) = listener.accept().await.unwrap();
            conns.push(
                Connection::connect_with(tcp, &identity(), false, strict.clone())
                    .await
                    .unwrap(),
            );
        }
        conns
    });
    // Client 1 sends keep-alives every 100 ms; client 2 sends none.
    let chatty = ConnectionConfig {
        keep_alive: Some(Duration::from_millis(100)),
        idle_timeout: None,
        ..ConnectionConfig::default()
    };
    let silent = ConnectionConfig {
        keep_alive: None,
        idle_timeout: None,
        ..ConnectionConfig::default()
    };
    let c1 = Connection::connect_with(
        TcpStream::connect(addr).await.unwrap(),
        &identity(),
        true,
        chatty,
    )
    .await
    .unwrap();
    let c2 = Connection::connect_with(
        TcpStream::connect(addr).await.unwrap(),
        &identity(),
        true,
        silent,
    )
    .await
    .unwrap();
    let conns = server.await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), conns[1].closed())
        .await
        .unwrap();
    let err = r.expect_err("a silent peer must time out");
    assert!(matches!(&*err, NetError::IdleTimeout(_)), "{err}");
    // c2 sees its connection end too.
    tokio::time::timeout(Duration::from_secs(10), c2.closed())
        .await
        .unwrap()
        .ok();
    // The chatty one is still alive well past the idle limit.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!conns[0].is_closed() && !c1.is_closed());
}

/// A replica re-serves what it downloaded, live; a reader fed by two peers at once (the writer and
/// that replica) gets every block, and stale duplicate proofs don't get anyone disconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_and_two_sources_stay_consistent() {
    let writer = writer_core(100);
    let r1 = replica_of(&writer);
    let r2 = replica_of(&writer);
    let (w_r1, r1_w) = pair(&identity(), &identity()).await;
    let (w_r2, r2_w) = pair(&identity(), &identity()).await;
    let (r1_r2, r2_r1) = pair(&identity(), &identity()).await;
    w_r1.replicate(writer.clone()).await.unwrap();
    r1_w.replicate(r1.clone()).await.unwrap();
    r1_r2.replicate(r1.clone()).await.unwrap();
    r2_r1.replicate(r2.clone()).await.unwrap();
    w_r2.replicate(writer.clone()).await.unwrap();
    r2_w.replicate(r2.clone()).await.unwrap();

    wait_contiguous(&r2, 100, Duration::from_secs(30)).await;
    for i in 100..300 {
        writer.append(&block(i)).unwrap();
    }
    wait_contiguous(&r1, 300, Duration::from_secs(60)).await;
    wait_contiguous(&r2, 300, Duration::from_secs(60)).await;
    assert_blocks(&r2, 300);
    assert_eq!(
        r2.with_core(|c| c.tree_hash()),
        writer.with_core(|c| c.tree_hash())
    );
    for c in [&w_r1, &r1_w, &w_r2, &r2_w, &r1_r2, &r2_r1] {
        assert!(
            !c.is_closed(),
            "a connection was dropped: {:?}",
            c.closed().await
        );
    }
}

/// The same with cores on disk (durable appends and verified writes), and a replica reopened
/// from disk afterwards still holds everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_cores_replicate_live_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let wkey = identity();
    let writer = SharedCore::new(Core::create(&dir.path().join("w"), wkey.clone()).unwrap());
    for i in 0..100 {
        writer.append(&block(i)).unwrap();
    }
    let rdir = dir.path().join("r");
    let reader = SharedCore::new(Core::open_replica(&rdir, writer.key()).unwrap());
    let (a, b) = pair(&identity(), &identity()).await;
    a.replicate(writer.clone()).await.unwrap();
    b.replicate(reader.clone()).await.unwrap();
    wait_contiguous(&reader, 100, Duration::from_secs(30)).await;
    let t = Instant::now();
    for i in 100..300 {
        writer.append(&block(i)).unwrap();
    }
    wait_contiguous(&reader, 300, Duration::from_secs(60)).await;
    eprintln!("disk: 200 appends in a row arrived in {:.1} ms", ms(t));
    // Close and wait, so no connection still holds the replica when it is reopened.
    a.close();
    b.close();
    let _ = tokio::time::timeout(Duration::from_secs(10), a.closed())
        .await
        .unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(10), b.closed())
        .await
        .unwrap();
    let key = reader.key();
    drop(reader);
    let reopened = SharedCore::new(Core::open_replica(&rdir, key).unwrap());
    assert_eq!(reopened.status().length, 300);
    assert_blocks(&reopened, 300);
}
