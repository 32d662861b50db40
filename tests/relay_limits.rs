//! The relay's limits against real `dat-social relay` processes on 127.0.0.1: silent clients
//! (WebSocket and TCP) are closed at the idle timeout even though the relay keeps pinging them,
//! and their slots go to new clients; clients that stall in the middle of a large message are
//! closed too, and hold no more memory than the input budget allows meanwhile; numeric options
//! out of their range are usage errors.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dat_social::net::secret_stream;
use ed25519_dalek::SigningKey;
use futures_util::StreamExt;
use rand::rngs::OsRng;
use support::relay::{healthy_pair, Relay};
use support::sys::runtime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Idle timeout of the relays here, in seconds (the smallest the CLI allows).
const IDLE: u64 = 3;
/// Longest wait for the relay to close a session: well past `IDLE`.
const CLOSE_WAIT: Duration = Duration::from_secs(20);

/// A TCP-transport client that completed its secret-stream handshake, then says nothing.
async fn silent_tcp(addr: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let key = SigningKey::generate(&mut OsRng);
    secret_stream::handshake(&mut tcp, &key, true, Duration::from_secs(10))
        .await
        .expect("secret-stream handshake with the relay");
    tcp
}

/// Reads (and drops) whatever the relay sends until it closes the connection; panics if it is
/// still open after [`CLOSE_WAIT`].
async fn until_closed(tcp: &mut TcpStream, what: &str) {
    let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
    let mut buf = vec![0u8; 16 << 10];
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => panic!("the relay kept {what} open for {CLOSE_WAIT:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
        }
    }
}

/// A WebSocket upgrade done by hand, so that raw frames can follow.
async fn raw_ws(url: &str) -> TcpStream {
    let addr = url.strip_prefix("ws://").expect("ws:// url");
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < 4096, "no end to the upgrade response");
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut byte))
            .await
            .expect("an upgrade response within 10 s")
            .unwrap();
        assert_eq!(n, 1, "the relay closed during the upgrade");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101 "),
        "{:?}",
        String::from_utf8_lossy(&head)
    );
    tcp
}

/// Writes `total` bytes of `fill` in 64 KiB pieces until the relay stops taking them (a write
/// that does not finish within 2 s); returns the bytes written.
async fn push(tcp: &mut TcpStream, total: usize) -> usize {
    let piece = vec![0x55u8; 64 << 10];
    let mut written = 0;
    while written < total {
        let n = piece.len().min(total - written);
        match tokio::time::timeout(Duration::from_secs(2), tcp.write_all(&piece[..n])).await {
            Ok(Ok(())) => written += n,
            _ => break,
        }
    }
    written
}

#[test]
fn silent_clients_are_closed_at_the_idle_timeout_and_free_their_slots() {
    let idle = IDLE.to_string();
    let relay = Relay::start_with(&["--idle-timeout", &idle, "--max-sessions", "4"]);
    runtime().block_on(async {
        // Two WebSocket and two TCP clients that never send a frame (and never read: their
        // kernel buffers take the relay's pings).
        let mut ws = Vec::new();
        for _ in 0..2 {
            let (s, _) = tokio_tungstenite::connect_async(relay.ws().as_str())
                .await
                .expect("ws connect");
            ws.push(s);
        }
        let mut tcp = vec![
            silent_tcp(&relay.tcp_addr()).await,
            silent_tcp(&relay.tcp_addr()).await,
        ];
        // The relay is full: a fifth client is turned away.
        assert!(
            tokio_tungstenite::connect_async(relay.ws().as_str())
                .await
                .is_err(),
            "the relay took a fifth session with --max-sessions 4"
        );
        // Several pings later (one every IDLE/3 s), each silent session is closed.
        for s in &mut ws {
            let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
            loop {
                match tokio::time::timeout_at(deadline, s.next()).await {
                    Err(_) => panic!("the relay kept a silent WebSocket client open"),
                    Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(WsMessage::Close(_)))) => break,
                    Ok(Some(Ok(_))) => {} // its protomux open, pings
                }
            }
        }
        for t in &mut tcp {
            until_closed(t, "a silent TCP client").await;
        }
        // Their slots are free again: a listen + connect + echo needs two.
        assert_eq!(healthy_pair(&relay.ws(), 0x10).await, b"echo:ping?");
    });
}

/// Each client announces a 4 MiB message (the default --max-frame), sends what the relay
/// takes of it, and stalls. The relay holds at most the input budget plus 16 KiB per session
/// of it, then closes them all at the idle timeout and serves new clients.
#[test]
fn stalled_partial_messages_are_bounded_and_closed() {
    const CLIENTS: usize = 32;
    const BUDGET: usize = 16 << 20;
    const MESSAGE: usize = 4 << 20;
    let (idle, budget) = (IDLE.to_string(), BUDGET.to_string());
    let relay = Relay::start_with(&["--idle-timeout", &idle, "--input-budget", &budget]);
    runtime().block_on(async {
        assert_eq!(healthy_pair(&relay.ws(), 0x20).await, b"echo:ping?");
        let before = relay.hwm_kib();
        let start = Instant::now();
        let mut clients = Vec::new();
        let mut taken = 0;
        for i in 0..CLIENTS {
            let mut c = if i % 2 == 0 {
                // WebSocket: a masked binary frame header announcing MESSAGE bytes.
                let mut c = raw_ws(&relay.ws()).await;
                let mut header = vec![0x82, 0x80 | 127];
                header.extend_from_slice(&(MESSAGE as u64).to_be_bytes());
                header.extend_from_slice(&[0; 4]);
                c.write_all(&header).await.unwrap();
                c
            } else {
                // TCP: a secret-stream message announced at MESSAGE bytes plus its MAC.
                let mut c = silent_tcp(&relay.tcp_addr()).await;
                let len = MESSAGE + secret_stream::ABYTES;
                c.write_all(&[len as u8, (len >> 8) as u8, (len >> 16) as u8])
                    .await
                    .unwrap();
                c
            };
            // All of it but the last byte.
            taken += push(&mut c, MESSAGE - 1).await;
            clients.push(c);
        }
        let during = relay.hwm_kib();
        eprintln!(
            "{CLIENTS} stalled clients pushed {} KiB in {:?}; relay VmHWM {before} -> {during} KiB",
            taken >> 10,
            start.elapsed()
        );
        // Partial input is at most the budget + 16 KiB per session; the process may hold up to
        // three times the budget (the budget in use, and freed buffers the allocator keeps for
        // reuse in each of the two worker threads' arenas), + 32 KiB of allowance and state per
        // session, + 8 MiB for the rest. Measured: +28 to +31 MiB (2026-11-21), +32 to +45 MiB
        // (2026-11-28, the same with and without the TURN server on its own thread). Without a
        // budget: 32 × 4 MiB, +126 MiB.
        let bound = ((3 * BUDGET + CLIENTS * (32 << 10)) >> 10) as u64 + 8 * 1024;
        assert!(
            during - before < bound,
            "relay VmHWM grew by {} KiB (bound {bound} KiB)",
            during - before
        );
        for c in &mut clients {
            until_closed(c, "a client stalled inside a message").await;
        }
        assert_eq!(healthy_pair(&relay.ws(), 0x30).await, b"echo:ping?");
    });
}

/// Runs `dat-social relay ARGS` on loopback; it must exit (within 10 s) with status 2 and a
/// message naming `flag`.
fn usage_error(args: &[&str], flag: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dat-social"))
        .args([
            "relay",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--turn-port",
            "0",
        ])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dat-social relay");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("relay {args:?} kept running instead of refusing the option");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("relay output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "relay {args:?}: {stderr}");
    assert!(stderr.contains(flag), "relay {args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "relay {args:?}: {stderr}");
}

#[test]
fn numeric_options_out_of_range_are_usage_errors() {
    let cases: &[(&[&str], &str)] = &[
        (&["--max-sessions", "2305843009213693952"], "--max-sessions"),
        (&["--idle-timeout", "9223372036854775807"], "--idle-timeout"),
        (&["--max-sessions", "0"], "--max-sessions"),
        (&["--max-sessions", "1000001"], "--max-sessions"),
        (&["--max-streams", "0"], "--max-streams"),
        (&["--max-servers", "0"], "--max-servers"),
        (&["--max-queries", "0"], "--max-queries"),
        (&["--max-queries", "65537"], "--max-queries"),
        (&["--max-frame", "0"], "--max-frame"),
        (&["--max-frame", "18446744073709551615"], "--max-frame"),
        (&["--stream-buffer", "0"], "--stream-buffer"),
        (&["--stream-buffer", "1073741825"], "--stream-buffer"),
        (&["--input-budget", "0"], "--input-budget"),
        (&["--input-budget", "65536"], "--input-budget"), // below --max-frame (4 MiB)
        (&["--idle-timeout", "0"], "--idle-timeout"),
        (&["--idle-timeout", "86401"], "--idle-timeout"),
        (&["--tcp-port", "65536"], "--tcp-port"),
        (&["--max-streams=-1"], "--max-streams"),
        (&["--turn-port", "65536"], "--turn-port"),
        (&["--turn-max-allocations", "0"], "--turn-max-allocations"),
        (
            &["--turn-max-allocations-per-user", "65537"],
            "--turn-max-allocations-per-user",
        ),
        (
            &["--turn-max-allocations-per-ip", "0"],
            "--turn-max-allocations-per-ip",
        ),
        (&["--turn-lifetime", "59"], "--turn-lifetime"),
        (&["--turn-max-lifetime", "3601"], "--turn-max-lifetime"),
        (
            &["--turn-lifetime", "3600", "--turn-max-lifetime", "60"],
            "--turn-lifetime",
        ),
        (&["--turn-max-permissions", "0"], "--turn-max-permissions"),
        (&["--turn-max-channels", "4097"], "--turn-max-channels"),
        (&["--turn-bandwidth", "999"], "--turn-bandwidth"),
        (&["--turn-min-port", "1023"], "--turn-min-port"),
        (
            &["--turn-min-port", "60000", "--turn-max-port", "50000"],
            "--turn-max-port",
        ),
    ];
    for (args, flag) in cases {
        usage_error(args, flag);
    }
    // The ranges are in --help.
    let out = Command::new(env!("CARGO_BIN_EXE_dat-social"))
        .args(["relay", "--help"])
        .output()
        .expect("relay --help");
    let help = String::from_utf8_lossy(&out.stdout);
    for range in [
        "1 to 1,000,000",
        "1 to 65,536",
        "4 KiB to 8 MiB",
        "3 to 86,400",
        "60 to 3600",
        "1 to 4096",
        "1000 to 1000000000",
    ] {
        assert!(help.contains(range), "--help lacks {range:?}:\n{help}");
    }
}
