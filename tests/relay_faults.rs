//! Fault tests of `dat-social relay` (a real process on 127.0.0.1) with raw clients: garbage,
//! an oversized frame, a frame flood, and a client that never reads. Each time the faulty
//! session is closed or throttled, the relay's memory stays bounded (VmRSS from /proc), and a
//! fresh pair of clients still gets through.

mod support;

use std::time::{Duration, Instant};

use dat_social::net::secret_stream;
use dat_social::relay::messages::*;
use dat_social::relay::{Message, RelayCodec};
use ed25519_dalek::SigningKey;
use rand::rngs::OsRng;
use support::relay::{custodial_pair, healthy_pair, key_pair, RawClient, Relay};
use support::sys::runtime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use futures_util::SinkExt;

const MAX_FRAME: usize = 64 << 10;
const STREAM_BUFFER: usize = 256 << 10;

fn relay() -> Relay {
    Relay::start_with(&[
        "--max-frame",
        &MAX_FRAME.to_string(),
        "--stream-buffer",
        &STREAM_BUFFER.to_string(),
    ])
}

#[test]
fn garbage_closes_only_that_session() {
    let relay = relay();
    runtime().block_on(async {
        // Bystander with a live stream, set up before the garbage arrives.
        assert_eq!(healthy_pair(&relay.ws(), 0x10).await, b"echo:ping?");
        // A truncated `connect` (type 3) on the relay channel: undecodable.
        let mut bad = RawClient::connect(&relay.ws(), 0x20).await;
        bad.send_raw(vec![0x01, 0x03, 0xff, 0x00]).await.unwrap();
        let reason = bad.closed().await;
        assert!(reason.contains("protocol violation"), "reason: {reason:?}");
        // Invalid protomux: a control `open` cut short.
        let mut bad = RawClient::connect(&relay.ws(), 0x21).await;
        bad.send_raw(vec![0x00, 0x01, 0x09]).await.unwrap();
        let reason = bad.closed().await;
        assert!(reason.contains("protocol violation"), "reason: {reason:?}");
        // A message before the handshake.
        let (ws, _) = tokio_tungstenite::connect_async(relay.ws().as_str())
            .await
            .unwrap();
        let mut early = RawClient {
            ws,
            codec: RelayCodec::new(),
        };
        early
            .send(&Message::Lookup(Lookup {
                id: 1,
                topic: [1; 32],
            }))
            .await;
        let reason = early.closed().await;
        assert!(reason.contains("before handshake"), "reason: {reason:?}");
        // A secret key that is not the public key's.
        let mut liar = RawClient::connect(&relay.ws(), 0x22).await;
        let (_, sk) = key_pair(0x23);
        liar.send(&Message::Listen(Listen {
            alias: 1,
            public_key: key_pair(0x24).0,
            secret_key: Some(sk),
        }))
        .await;
        let reason = liar.closed().await;
        assert!(reason.contains("secret key"), "reason: {reason:?}");
        assert_eq!(healthy_pair(&relay.ws(), 0x30).await, b"echo:ping?");
    });
}

#[test]
fn oversized_frames_close_the_session_on_both_transports() {
    let relay = relay();
    runtime().block_on(async {
        let mut big = RawClient::connect(&relay.ws(), 0x40).await;
        let _ = big.send_raw(vec![0u8; MAX_FRAME + 1]).await;
        let reason = big.closed().await;
        assert!(
            reason.is_empty() || reason.contains("limit"),
            "reason: {reason:?}"
        );

        // TCP: a secret-stream message announced at 1 MiB (> 64 KiB) is refused.
        let mut tcp = tokio::net::TcpStream::connect(relay.tcp_addr().as_str())
            .await
            .unwrap();
        let key = SigningKey::generate(&mut OsRng);
        let (_, mut enc, _, _) =
            secret_stream::handshake(&mut tcp, &key, true, Duration::from_secs(10))
                .await
                .expect("secret-stream handshake with the relay");
        let frame = enc.encrypt(&vec![0u8; 1 << 20]).unwrap();
        // The relay may close before taking it all.
        let _ = tcp.write_all(&frame).await;
        let mut buf = vec![0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(
                Instant::now() < deadline,
                "the relay kept the TCP session open"
            );
            match tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(_)) => continue, // the relay's protomux open
                Err(_) => panic!("the relay kept the TCP session open"),
            }
        }
        assert_eq!(healthy_pair(&relay.ws(), 0x50).await, b"echo:ping?");
    });
}

#[test]
fn a_frame_flood_is_throttled_and_memory_stays_bounded() {
    let relay = relay();
    runtime().block_on(async {
        let before = relay.rss_kib();
        // 200,000 pings (each wants a pong) and 64 KiB data frames to nowhere, never reading.
        let mut flood = RawClient::connect(&relay.ws(), 0x60).await;
        let ping = vec![0x01, 0x01];
        let junk = Message::Data(Data {
            alias: 12345,
            chunks: vec![vec![7u8; 60 << 10]],
        });
        let mut codec = RelayCodec::new();
        codec.poll_transmit();
        codec.send(&junk).unwrap();
        let junk = codec.poll_transmit().unwrap();
        let start = Instant::now();
        let mut sent = 0usize;
        for i in 0..200_000 {
            let frame = if i % 100 == 0 {
                junk.clone()
            } else {
                ping.clone()
            };
            let n = frame.len();
            let send = flood.ws.feed(WsMessage::Binary(frame.into()));
            match tokio::time::timeout(Duration::from_secs(2), send).await {
                Ok(Ok(())) => sent += n,
                _ => break, // the relay stopped reading us: back-pressure
            }
            if start.elapsed() > Duration::from_secs(8) {
                break;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), flood.ws.flush()).await;
        let during = relay.rss_kib();
        eprintln!(
            "flood: sent {} KiB in {:?}; relay RSS {} -> {} KiB",
            sent / 1024,
            start.elapsed(),
            before,
            during
        );
        assert!(
            during < before + 64 * 1024,
            "relay RSS grew from {before} to {during} KiB"
        );
        assert_eq!(healthy_pair(&relay.ws(), 0x70).await, b"echo:ping?");
    });
}

#[test]
fn a_client_that_never_reads_does_not_grow_the_relay() {
    let relay = relay();
    runtime().block_on(async {
        let before = relay.rss_kib();
        // The sink listens, accepts one connection, then never reads again.
        let (sink, mut source) = custodial_pair(&relay.ws(), 0x80, 2).await;
        let Message::Open(_) = source.recv().await else {
            panic!("expected open")
        };
        // Push up to 512 MiB in 32 KiB chunks; stop when the relay stops taking it.
        let chunk = vec![9u8; 32 << 10];
        let mut pushed = 0usize;
        let start = Instant::now();
        while pushed < 512 << 20 && start.elapsed() < Duration::from_secs(10) {
            source
                .codec
                .send(&Message::Data(Data {
                    alias: 2,
                    chunks: vec![chunk.clone()],
                }))
                .unwrap();
            let frame = source.codec.poll_transmit().unwrap();
            let send = source.ws.send(WsMessage::Binary(frame.into()));
            match tokio::time::timeout(Duration::from_secs(2), send).await {
                Ok(Ok(())) => pushed += chunk.len(),
                _ => break,
            }
        }
        let during = relay.rss_kib();
        eprintln!(
            "never-reads: relay took {} KiB before pushing back; RSS {} -> {} KiB",
            pushed / 1024,
            before,
            during
        );
        // Back-pressure: the relay stopped reading the sender long before 512 MiB (what it
        // took is its 256 KiB stream buffer plus the kernel's socket buffers).
        assert!(pushed < 64 << 20, "the relay took {pushed} bytes");
        assert!(
            during < before + 64 * 1024,
            "relay RSS grew from {before} to {during} KiB"
        );
        assert_eq!(healthy_pair(&relay.ws(), 0x90).await, b"echo:ping?");
        drop(sink);
    });
}
