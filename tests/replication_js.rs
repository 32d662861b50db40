//! Interop with JS hypercore 11.37.1 over loopback TCP (`core.replicate(isInitiator)` piped to a
//! socket on the JS side, [`Connection`] on ours). Needs node and `npm ci --prefix tests/js`;
//! fails (does not skip) without them.

mod support;

use std::time::{Duration, Instant};

use dat_social::hypercore::Core;
use dat_social::keys::CoreKey;
use dat_social::net::{Connection, SharedCore};
use support::net::*;
use tokio::net::{TcpListener, TcpStream};

const INITIAL: u64 = 1000;
const LIVE_BURST: u64 = 1000;

/// Rust writes, a JS hypercore reads: initial blocks, one live append, then 1,000 appends in a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_reader_replicates_rust_core_live() {
    let core = writer_core(INITIAL);
    let key = hex::encode(core.key());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let target = (INITIAL + 1 + LIVE_BURST).to_string();
    let mut js = JsPeer::spawn("replicate.js", &["read", &port, &key, &target]);

    let (tcp, _) = tokio::time::timeout(Duration::from_secs(30), listener.accept())
        .await
        .expect("JS reader did not connect")
        .unwrap();
    tcp.set_nodelay(true).unwrap();
    let conn = Connection::connect(tcp, &identity(), false)
        .await
        .expect("handshake with JS");
    conn.replicate(core.clone()).await.unwrap();

    let t = Instant::now();
    js.wait_count("have", INITIAL, Duration::from_secs(60))
        .await;
    eprintln!("JS reader: initial {INITIAL} blocks in {:.1} ms", ms(t));

    let t = Instant::now();
    core.append(&block(INITIAL)).unwrap();
    js.wait_count("have", INITIAL + 1, Duration::from_secs(10))
        .await;
    eprintln!("JS reader: one live append arrived after {:.2} ms", ms(t));

    let t = Instant::now();
    for i in INITIAL + 1..INITIAL + 1 + LIVE_BURST {
        core.append(&block(i)).unwrap();
    }
    js.wait_line(&format!("done {target}"), false, Duration::from_secs(120))
        .await;
    eprintln!(
        "JS reader: {LIVE_BURST} appends in a row all arrived in {:.1} ms",
        ms(t)
    );
    assert_eq!(js.exit_code(Duration::from_secs(10)).await, 0);
    assert!(!conn.is_closed() || conn.closed().await.is_ok());
}

/// A JS hypercore writes, we read: initial blocks, one live append, then 1,000 appends in a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_reader_replicates_js_core_live() {
    let mut js = JsPeer::spawn("replicate.js", &["write", &INITIAL.to_string()]);
    let key_line = js.wait_line("key ", true, Duration::from_secs(30)).await;
    let port_line = js.wait_line("port ", true, Duration::from_secs(10)).await;
    let key: CoreKey = key_line[4..].parse().unwrap();
    let port: u16 = port_line[5..].parse().unwrap();

    let replica = SharedCore::new(Core::in_memory_replica(key));
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let conn = Connection::connect(tcp, &identity(), true)
        .await
        .expect("handshake with JS");
    conn.replicate(replica.clone()).await.unwrap();

    let t = Instant::now();
    wait_contiguous(&replica, INITIAL, Duration::from_secs(60)).await;
    eprintln!(
        "Rust reader: initial {INITIAL} JS blocks in {:.1} ms",
        ms(t)
    );
    assert_blocks(&replica, INITIAL);

    let t = Instant::now();
    js.send("append 1").await;
    wait_contiguous(&replica, INITIAL + 1, Duration::from_secs(10)).await;
    eprintln!(
        "Rust reader: one live JS append arrived after {:.2} ms (incl. JS stdin)",
        ms(t)
    );

    let t = Instant::now();
    js.send(&format!("append {LIVE_BURST}")).await;
    let total = INITIAL + 1 + LIVE_BURST;
    wait_contiguous(&replica, total, Duration::from_secs(120)).await;
    eprintln!(
        "Rust reader: {LIVE_BURST} JS appends in a row all arrived in {:.1} ms",
        ms(t)
    );
    assert_blocks(&replica, total);
    assert_eq!(replica.status().length, total);

    js.send("quit").await;
    assert_eq!(js.exit_code(Duration::from_secs(10)).await, 0);
    // The JS side went away: our connection ends (cleanly or with a reset), and says so.
    let closed = tokio::time::timeout(Duration::from_secs(10), conn.closed()).await;
    assert!(
        closed.is_ok(),
        "connection did not notice the JS peer leaving"
    );
}

/// An app channel talks to a JS protomux channel over a plain JS secret-stream (no hypercore).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_channel_talks_to_js_protomux() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let mut js = JsPeer::spawn("replicate.js", &["lobby", &port]);
    let (tcp, _) = tokio::time::timeout(Duration::from_secs(30), listener.accept())
        .await
        .expect("JS peer did not connect")
        .unwrap();
    let me = identity();
    let conn = Connection::connect_tcp(tcp, &me, false)
        .await
        .expect("handshake with JS");
    let mut lobby = conn
        .open_app_channel("dat-social/lobby", Some(b"room-1"))
        .await
        .unwrap();

    // JS saw our identity key.
    let line = js.wait_line("remote ", true, Duration::from_secs(10)).await;
    assert_eq!(&line[7..], hex::encode(me.verifying_key().to_bytes()));
    let first = tokio::time::timeout(Duration::from_secs(10), lobby.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (first.message_type, first.payload.as_slice()),
        (0, &b"hello from js"[..])
    );
    lobby.opened().await.unwrap();

    lobby.send(b"ping").unwrap();
    js.wait_line("got ping", false, Duration::from_secs(10))
        .await;
    let echo = tokio::time::timeout(Duration::from_secs(10), lobby.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(echo.payload, b"echo:ping");

    // Large messages both ways (one secret-stream frame each; FINDINGS saw >= 900 B fail elsewhere).
    for size in [900usize, 65_536, 1 << 20] {
        let big: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        lobby.send(&big).unwrap();
        js.wait_line(&format!("got {size} bytes"), false, Duration::from_secs(20))
            .await;
        let echo = tokio::time::timeout(Duration::from_secs(20), lobby.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(echo.payload.len(), size + 5);
        assert!(echo.payload.starts_with(b"echo:") && echo.payload[5..] == big[..]);
    }

    lobby.send_typed(1, b"typed").unwrap();
    js.wait_line("got1 typed", false, Duration::from_secs(10))
        .await;
    let echo = tokio::time::timeout(Duration::from_secs(10), lobby.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (echo.message_type, echo.payload.as_slice()),
        (1, &b"echo:typed"[..])
    );

    // Closing our channel closes theirs (JS onclose prints `closed` and ends the stream).
    lobby.close();
    js.wait_line("closed", false, Duration::from_secs(10)).await;
    assert_eq!(js.exit_code(Duration::from_secs(10)).await, 0);
    let r = tokio::time::timeout(Duration::from_secs(10), conn.closed()).await;
    assert!(r.is_ok(), "our side did not see the JS stream end");
}
