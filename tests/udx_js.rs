//! UDX against udx-native 1.21.3 (the libudx the JS Holepunch stack runs), on loopback: our
//! stream (`dat_social::udx`) and a JS stream (`tests/js/udx_peer.js`) connected to each other.
//!
//! - 8 MiB each way at once, SHA-256 compared on both sides (udx-native probes the MTU with
//!   padded full-size packets, so the data_offset skip is on this path);
//! - echo of writes of 900, 1000 and 1100 bytes (the sizes whose probes broke the `udx` crate);
//! - the same transfer through a proxy that drops 3 % of packets and reorders 10 %;
//! - END both ways with a clean close, MESSAGE datagrams both ways, DESTROY both ways;
//! - `@hyperswarm/secret-stream` and protomux over the stream, either side initiating (our
//!   `Connection` on `UdxStream` as a byte stream), messages up to 1 MiB echoed.
//!
//! Needs node and `npm ci --prefix tests/js`; fails (never skips) without them.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use dat_social::udx::{StreamError, StreamEvent, UdxSocket, UdxStream, UdxWriter};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UdpSocket;
use tokio::process::Child;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(60);
const RUST_ID: u32 = 42;

/// The JS side (`udx_peer.js`): its process, its address and stream id.
struct JsPeer {
    child: Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    addr: SocketAddr,
    id: u32,
}

impl JsPeer {
    async fn start(env: &[(&str, String)]) -> JsPeer {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let support::net::JsPeer { child, mut lines } =
            support::net::JsPeer::spawn_env("udx_peer.js", &[], &env);
        let first = timeout(WAIT, lines.next_line()).await.unwrap().unwrap();
        let v: Value = serde_json::from_str(&first.expect("udx_peer.js printed nothing")).unwrap();
        JsPeer {
            child,
            lines,
            addr: SocketAddr::from(([127, 0, 0, 1], v["port"].as_u64().unwrap() as u16)),
            id: v["id"].as_u64().unwrap() as u32,
        }
    }

    /// Tells the JS stream where ours is (it connects and starts its MODE).
    async fn connect_to(&mut self, addr: SocketAddr) {
        let line = format!("{{\"id\":{RUST_ID},\"port\":{}}}\n", addr.port());
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
        // Packets (and datagrams above all) that arrive before it connects are lost.
        let ack = timeout(WAIT, self.lines.next_line())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ack.as_deref(), Some("{\"connected\":true}"));
    }

    /// The JS stream's report once it closed.
    async fn report(&mut self) -> Value {
        let line = timeout(WAIT, self.lines.next_line())
            .await
            .expect("the JS stream closes")
            .unwrap()
            .expect("udx_peer.js printed its report");
        serde_json::from_str(&line).unwrap()
    }
}

/// The pattern udx_peer.js writes (xorshift32 from `seed`, the low byte of each step).
fn pattern(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Our stream on a fresh socket, connected to the JS peer at `to` (the peer itself or a
/// proxy in front of it).
async fn rust_stream(js: &mut JsPeer, to: SocketAddr, via: Option<SocketAddr>) -> UdxStream {
    let socket = UdxSocket::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let stream = socket.stream(RUST_ID).unwrap();
    stream.connect(js.id, to).unwrap();
    js.connect_to(via.unwrap_or(socket.local_addr())).await;
    stream
}

/// Writes `data` in 64 KiB writes, then ends.
async fn write_all(stream: UdxWriter, data: &[u8]) {
    for chunk in data.chunks(64 * 1024) {
        stream.write(chunk).await.unwrap();
    }
    stream.end().unwrap();
}

async fn transfer_both_ways(mut js: JsPeer, to: SocketAddr, via: Option<SocketAddr>, n: usize) {
    let mut stream = rust_stream(&mut js, to, via).await;
    let ours = pattern(n, 77);
    let (_, (got, _, error)) = timeout(WAIT, async {
        tokio::join!(write_all(stream.writer(), &ours), stream.read_to_close())
    })
    .await
    .expect("the transfer finishes");
    assert_eq!(error, None, "a clean close");
    assert_eq!(got.len(), n);
    assert!(got == pattern(n, 5), "the bytes JS sent arrived intact");
    let report = js.report().await;
    assert_eq!(report["error"], Value::Null, "{report}");
    assert_eq!(report["received"], n as u64);
    assert_eq!(report["sha256"], sha256(&ours), "JS got our bytes intact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_mib_each_way_at_once_with_udx_native() {
    let n = 8 * 1024 * 1024;
    let js = JsPeer::start(&[
        ("MODE", "transfer".into()),
        ("BYTES", n.to_string()),
        ("SEED", "5".into()),
    ])
    .await;
    let to = js.addr;
    transfer_both_ways(js, to, None, n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_around_the_mtu_probe_sizes_echo_exactly() {
    let mut js = JsPeer::start(&[("MODE", "echo".into())]).await;
    let to = js.addr;
    let mut stream = rust_stream(&mut js, to, None).await;
    let mut sent = Vec::new();
    for (i, size) in [100usize, 800, 880, 900, 1000, 1100, 1152, 1153, 5000]
        .into_iter()
        .enumerate()
    {
        let chunk = pattern(size, i as u32 + 1);
        stream.writer().write(&chunk).await.unwrap();
        sent.extend_from_slice(&chunk);
        // One write at a time, as the probe check needs distinct packets.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    stream.writer().end().unwrap();
    let (got, _, error) = timeout(WAIT, stream.read_to_close()).await.unwrap();
    assert_eq!(error, None);
    assert!(
        got == sent,
        "echo differs: {} of {} bytes",
        got.len(),
        sent.len()
    );
    let report = js.report().await;
    assert_eq!(report["received"], sent.len() as u64);
}

/// A UDP proxy between `a` and the first other address that sends to it: drops `loss` % and
/// holds back `reorder` % of packets for one more packet. Runs until the test ends.
async fn lossy_proxy(a: SocketAddr, loss: u64, reorder: u64) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut b: Option<SocketAddr> = None;
        let mut held: Option<(Vec<u8>, SocketAddr)> = None;
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut buf = vec![0u8; 2048];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let to = if from == a {
                match b {
                    Some(b) => b,
                    None => continue,
                }
            } else {
                b.get_or_insert(from);
                a
            };
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 100 < loss {
                continue;
            }
            if x / 100 % 100 < reorder && held.is_none() {
                held = Some((buf[..n].to_vec(), to));
                continue;
            }
            let _ = socket.send_to(&buf[..n], to).await;
            if let Some((p, t)) = held.take() {
                let _ = socket.send_to(&p, t).await;
            }
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lossy_reordering_path_still_delivers_every_byte_both_ways() {
    let n = 2 * 1024 * 1024;
    let js = JsPeer::start(&[
        ("MODE", "transfer".into()),
        ("BYTES", n.to_string()),
        ("SEED", "5".into()),
    ])
    .await;
    // JS talks to the proxy; the proxy talks to JS and to us.
    let proxy = lossy_proxy(js.addr, 3, 10).await;
    transfer_both_ways(js, proxy, Some(proxy), n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_go_both_ways_beside_the_stream() {
    let count = 5;
    let mut js = JsPeer::start(&[("MODE", "message".into()), ("COUNT", count.to_string())]).await;
    let to = js.addr;
    let mut stream = rust_stream(&mut js, to, None).await;
    // Wait for the JS datagrams (and answer each), then end once JS has ended.
    let mut from_js = Vec::new();
    let mut echoes = Vec::new();
    let done = timeout(WAIT, async {
        for i in 0..count {
            stream
                .writer()
                .send_message(format!("r{i}").as_bytes())
                .unwrap();
        }
        while let Some(e) = stream.next_event().await {
            match e {
                StreamEvent::Message(m) => {
                    let m = String::from_utf8(m).unwrap();
                    if m.starts_with("echo:") {
                        echoes.push(m);
                    } else {
                        from_js.push(m);
                    }
                }
                StreamEvent::End => stream.writer().end().unwrap(),
                StreamEvent::Closed(e) => return e,
                _ => {}
            }
        }
        None
    })
    .await
    .expect("the stream closes");
    assert_eq!(done, None);
    assert_eq!(
        from_js,
        (0..count).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    assert_eq!(
        echoes,
        (0..count).map(|i| format!("echo:r{i}")).collect::<Vec<_>>()
    );
    let report = js.report().await;
    let js_got: Vec<String> = serde_json::from_value(report["messages"].clone()).unwrap();
    assert_eq!(
        js_got,
        (0..count).map(|i| format!("r{i}")).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_destroy_resets_our_stream() {
    let n = 100_000;
    let mut js = JsPeer::start(&[("MODE", "destroy".into()), ("BYTES", n.to_string())]).await;
    let to = js.addr;
    let mut stream = rust_stream(&mut js, to, None).await;
    let (got, _, error) = timeout(WAIT, stream.read_to_close()).await.unwrap();
    assert_eq!(error, Some(StreamError::Reset));
    assert_eq!(got.len(), n, "the bytes before the reset arrived");
    let report = js.report().await;
    assert_eq!(report["error"], Value::Null, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_destroy_resets_the_js_stream() {
    let mut js = JsPeer::start(&[("MODE", "echo".into())]).await;
    let to = js.addr;
    let stream = rust_stream(&mut js, to, None).await;
    stream.writer().write(b"before the reset").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.writer().destroy().unwrap();
    let report = js.report().await;
    assert_eq!(report["error"], "ECONNRESET", "{report}");
    assert_eq!(report["received"], 16);
}

/// secret-stream and protomux over UDX, with JS on the other end: the handshake authenticates
/// both keys, and messages of every size echo through (each one secret-stream frame, split
/// over many UDX packets).
async fn secret_stream_over_udx(rust_initiates: bool) {
    use dat_social::net::Connection;
    let initiator = if rust_initiates { "0" } else { "1" };
    let mut js = JsPeer::start(&[("MODE", "secret".into()), ("INITIATOR", initiator.into())]).await;
    let to = js.addr;
    let stream = rust_stream(&mut js, to, None).await;
    let me = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let conn = timeout(WAIT, Connection::connect(stream, &me, rust_initiates))
        .await
        .unwrap()
        .expect("the secret-stream handshake over UDX");
    let remote = timeout(WAIT, js.lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let remote: Value = serde_json::from_str(&remote).unwrap();
    assert_eq!(remote["remote"], hex::encode(me.verifying_key().to_bytes()));
    let mut lobby = conn
        .open_app_channel("dat-social/lobby", Some(b"room-1"))
        .await
        .unwrap();
    lobby.opened().await.unwrap();
    let mut sent = 0;
    for size in [1usize, 900, 1153, 65_536, 1 << 20] {
        let msg = pattern(size, size as u32);
        lobby.send(&msg).unwrap();
        sent += size;
        let echo = timeout(WAIT, lobby.recv()).await.unwrap().unwrap();
        assert_eq!(echo.payload.len(), size + 5);
        assert!(echo.payload.starts_with(b"echo:") && echo.payload[5..] == msg[..]);
    }
    conn.close();
    let report = js.report().await;
    assert_eq!(report["received"], sent as u64, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_stream_over_udx_with_js_rust_initiating() {
    secret_stream_over_udx(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_stream_over_udx_with_js_js_initiating() {
    secret_stream_over_udx(false).await;
}
