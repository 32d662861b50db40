//! Our relay client ([`RelayClient`], custodial: the npm relay's non-custodial mode is broken in
//! 0.4.3, see PROTOCOL.md §4) through the npm relay itself,
//! `@hyperswarm/dht-relay` 0.4.3 on a hyperdht 6.34.0 testnet on 127.0.0.1, reaching plain (not
//! relayed) JS hyperdht peers (tests/js/js-relay-testnet.js, one node process):
//! - over `ws://` and over `tcp://`, our client connects to a JS hyperdht echo server several
//!   times in a row: bytes come back exactly, both sides see each other's key and the same
//!   handshake hash;
//! - our client replicates a JS hypercore 11.37.1 from a JS hyperdht server over a
//!   [`dat_social::net::Connection`] on the relayed stream, and checks every block;
//! - the reverse: our client listens through the JS relay and a JS hyperdht client
//!   (`dht.connect(pk)`) reaches it, echoes, and replicates a hypercore our side serves;
//! - [`RelayClient::announce`] / [`RelayClient::lookup`] / [`RelayClient::unannounce`] on the
//!   testnet's DHT through the npm relay, then a connect to the key found.
//!
//! Needs node and `npm ci --prefix tests/js`; fails (never skips) without them.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dat_social::hypercore::Core;
use dat_social::keys::{CoreKey, IdentityKey, KeyError, Topic};
use dat_social::net::{ConnectionConfig, FrameReader, FrameWriter, SharedCore};
use dat_social::relay::client::{ClientOptions, RelayClient, RelayStream, RelayUrl};
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);
/// Connects in a row per transport in the echo tests.
const ROUNDS: usize = 3;
/// Blocks of the JS hypercore (`block-<i>`).
const BLOCKS: u64 = 5;

/// tests/js/js-relay-testnet.js as a child process: its JSON lines arrive on a channel, commands
/// go to its stdin; closing stdin stops it (killed on drop if it does not exit in 10 s).
struct JsRelay {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Value>,
    /// Lines read while waiting for another one.
    seen: Vec<Value>,
    ready: Value,
}

impl JsRelay {
    fn start() -> JsRelay {
        let dir = support::js::js_dir();
        let mut child = Command::new("node")
            .current_dir(&dir)
            .arg("js-relay-testnet.js")
            .env("BLOCKS", BLOCKS.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn node js-relay-testnet.js");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let v = serde_json::from_str(&line).unwrap_or(json!({ "line": line }));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        let mut js = JsRelay {
            child,
            stdin,
            lines,
            seen: Vec::new(),
            ready: Value::Null,
        };
        // A testnet bootstraps in a few seconds; allow for a loaded machine.
        js.ready = js.next_where(Duration::from_secs(60), |v| v["event"] == "ready");
        js
    }

    /// The first line (seen before or arriving within `timeout`) that `pred` accepts; panics
    /// otherwise, or on a `failed` line.
    fn next_where(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.seen.iter().position(&pred) {
            return self.seen.remove(i);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "js-relay-testnet.js: no such line within {timeout:?}; seen {:?}",
                    self.seen
                )
            });
            assert_ne!(v["event"], "failed", "js-relay-testnet.js: {v}");
            if pred(&v) {
                return v;
            }
            self.seen.push(v);
        }
    }

    fn send(&mut self, cmd: Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{cmd}").expect("write a command to node");
        stdin.flush().unwrap();
    }

    fn url(&self, transport: &str) -> RelayUrl {
        self.ready[transport].as_str().unwrap().parse().unwrap()
    }

    /// The key in the ready line's `field` (64 hex): an [`IdentityKey`] or a [`CoreKey`].
    fn key<K: std::str::FromStr<Err = KeyError>>(&self, field: &str) -> K {
        key_of(&self.ready[field])
    }
}

impl Drop for JsRelay {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn key_of<K: std::str::FromStr<Err = KeyError>>(v: &Value) -> K {
    v.as_str()
        .unwrap_or_else(|| panic!("hex key: {v}"))
        .parse()
        .unwrap()
}

fn signing_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// A custodial client (the JS relay's non-custodial mode is broken in 0.4.3, PROTOCOL.md §4).
fn connected_client(url: RelayUrl, seed: u8) -> RelayClient {
    let options = ClientOptions {
        custodial: true,
        ..ClientOptions::default()
    };
    RelayClient::start(url, signing_key(seed), options)
}

/// Reads `stream` until the remote ends it (within [`WAIT`]); returns all bytes.
async fn read_to_end(reader: &mut impl FrameReader) -> Vec<u8> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut got = Vec::new();
    let mut frames = Vec::new();
    loop {
        frames.clear();
        let more = tokio::time::timeout_at(deadline, reader.read_frames(&mut frames))
            .await
            .expect("the remote ended the stream in time")
            .expect("no stream error");
        got.extend(frames.concat());
        if !more {
            return got;
        }
    }
}

/// Writes `chunks` (one relay `data` chunk each), ends our side, and returns what came back
/// until the remote ended.
async fn exchange(stream: RelayStream, chunks: &[Vec<u8>]) -> Vec<u8> {
    let (mut reader, mut writer) = stream.split();
    writer.write_frames(chunks).await.expect("write");
    writer.shutdown().await;
    read_to_end(&mut reader).await
}

/// `n` chunks of distinct, round-dependent bytes (1 to 16 KiB each).
fn chunks(round: usize, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let len = 1 + (i * 7919 + round * 131) % (16 << 10);
            (0..len).map(|j| (j * 31 + i + round) as u8).collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_echoes_with_a_js_hyperdht_server_through_the_js_relay() {
    let mut js = JsRelay::start();
    let echo_pk: IdentityKey = js.key("echo_public_key");
    for (transport, seed) in [("ws", 0x41), ("tcp", 0x42)] {
        let client = connected_client(js.url(transport), seed);
        client.wait_connected(WAIT).await.unwrap();
        let ours = hex::encode(signing_key(seed).verifying_key().to_bytes());
        for round in 0..ROUNDS {
            let stream = tokio::time::timeout(WAIT, client.connect(echo_pk))
                .await
                .expect("connect in time")
                .unwrap_or_else(|e| panic!("{transport} round {round}: {e}"));
            assert_eq!(stream.remote_public_key(), echo_pk);
            assert!(stream.is_initiator());
            let hash = hex::encode(stream.handshake_hash());
            assert_ne!(hash, "0".repeat(128));
            let sent = chunks(round, 24);
            let got = exchange(stream, &sent).await;
            assert_eq!(got.len(), sent.concat().len(), "{transport} round {round}");
            assert!(
                got == sent.concat(),
                "{transport} round {round}: bytes differ"
            );
            // The JS server saw our key and the same handshake hash.
            let seen = js.next_where(WAIT, |v| {
                v["event"] == "connection" && v["server"] == "echo" && v["handshake_hash"] == hash
            });
            assert_eq!(seen["remote_public_key"], ours.as_str(), "{seen}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_replicates_a_js_hypercore_through_the_js_relay() {
    let mut js = JsRelay::start();
    let server_pk: IdentityKey = js.key("core_public_key");
    let core_key: CoreKey = js.key("core_key");
    assert_eq!(js.ready["length"], BLOCKS);
    for (transport, seed) in [("ws", 0x43), ("tcp", 0x44)] {
        let client = connected_client(js.url(transport), seed);
        client.wait_connected(WAIT).await.unwrap();
        for round in 0..2 {
            let stream = tokio::time::timeout(WAIT, client.connect(server_pk))
                .await
                .expect("connect in time")
                .unwrap_or_else(|e| panic!("{transport} round {round}: {e}"));
            assert_eq!(stream.remote_public_key(), server_pk);
            let hash = hex::encode(stream.handshake_hash());
            let conn = stream.into_connection(ConnectionConfig::default());
            let replica = SharedCore::new(Core::in_memory_replica(core_key));
            conn.replicate(replica.clone()).await.unwrap();
            for i in 0..BLOCKS {
                let block = replica
                    .get_wait_timeout(i, WAIT)
                    .await
                    .unwrap()
                    .unwrap_or_else(|| panic!("{transport}: block {i} in time"));
                assert_eq!(block, format!("block-{i}").as_bytes(), "{transport}");
            }
            let seen = js.next_where(WAIT, |v| {
                v["event"] == "connection" && v["server"] == "core" && v["handshake_hash"] == hash
            });
            assert_eq!(
                seen["remote_public_key"],
                hex::encode(signing_key(seed).verifying_key().to_bytes()),
                "{seen}"
            );
            conn.close();
        }
    }
}

/// Echoes every stream `listener` accepts (up to `max`), reporting each one's remote key and
/// handshake hash on `seen`.
fn serve_echo(
    mut listener: dat_social::relay::client::Listener,
    max: usize,
    seen: tokio::sync::mpsc::UnboundedSender<(IdentityKey, [u8; 64])>,
) {
    tokio::spawn(async move {
        for _ in 0..max {
            let Some(stream) = listener.accept().await else {
                return;
            };
            let _ = seen.send((stream.remote_public_key(), stream.handshake_hash()));
            tokio::spawn(async move {
                let (mut reader, mut writer) = stream.split();
                let deadline = tokio::time::Instant::now() + WAIT;
                let mut frames = Vec::new();
                loop {
                    frames.clear();
                    match tokio::time::timeout_at(deadline, reader.read_frames(&mut frames)).await {
                        Ok(Ok(true)) => {
                            if writer.write_frames(&frames).await.is_err() {
                                return;
                            }
                        }
                        _ => break,
                    }
                }
                writer.shutdown().await;
                // Keep the reader until the end went out, so the stream closes cleanly.
                tokio::time::sleep(Duration::from_millis(200)).await;
                drop(reader);
            });
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_hyperdht_client_reaches_our_client_listening_through_the_js_relay() {
    let mut js = JsRelay::start();
    let js_client_pk: IdentityKey = js.key("client_public_key");
    let mut id = 0;
    for (transport, seed) in [("ws", 0x45), ("tcp", 0x46)] {
        let client = connected_client(js.url(transport), seed);
        let listener = client.listen().await.unwrap();
        // Connected = the relay confirmed the listen (`listening`: announced on the testnet).
        client.wait_connected(WAIT).await.unwrap();
        let ours = signing_key(seed).verifying_key().to_bytes();
        let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
        serve_echo(listener, ROUNDS, seen_tx);
        for round in 0..ROUNDS {
            id += 1;
            let message = format!("hello {transport} #{round} from a JS hyperdht client");
            js.send(json!({
                "cmd": "echo", "id": id, "public_key": hex::encode(ours), "message": message,
            }));
            let r = js.next_where(WAIT, |v| v["event"] == "echoed" && v["id"] == id);
            assert_eq!(r["got"], message.as_str(), "{r}");
            assert_eq!(r["remote_public_key"], hex::encode(ours), "{r}");
            let (remote, hash) = tokio::time::timeout(WAIT, seen.recv())
                .await
                .expect("our listener got the stream")
                .unwrap();
            assert_eq!(remote, js_client_pk);
            assert_eq!(r["handshake_hash"], hex::encode(hash), "{r}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_hyperdht_client_replicates_our_hypercore_through_the_js_relay() {
    let mut js = JsRelay::start();
    let core = SharedCore::new(Core::in_memory(signing_key(0x50)));
    for i in 0..BLOCKS {
        core.append(format!("rust-block-{i}").as_bytes()).unwrap();
    }
    let expected: Vec<String> = (0..BLOCKS).map(|i| format!("rust-block-{i}")).collect();
    let mut id = 100;
    for (transport, seed) in [("ws", 0x47), ("tcp", 0x48)] {
        let client = connected_client(js.url(transport), seed);
        let mut listener = client.listen().await.unwrap();
        client.wait_connected(WAIT).await.unwrap();
        let ours = signing_key(seed).verifying_key().to_bytes();
        let serving = core.clone();
        let server = tokio::spawn(async move {
            let stream = listener.accept().await.expect("a stream");
            let conn = stream.into_connection(ConnectionConfig::default());
            conn.replicate(serving).await.unwrap();
            // Serve until the JS side closes (bounded by the test's own waits).
            let _ = tokio::time::timeout(WAIT, conn.closed()).await;
            listener
        });
        id += 1;
        js.send(json!({
            "cmd": "read", "id": id, "public_key": hex::encode(ours),
            "core_key": hex::encode(core.key()), "length": BLOCKS,
        }));
        let r = js.next_where(WAIT, |v| v["event"] == "read" && v["id"] == id);
        assert_eq!(r["remote_public_key"], hex::encode(ours), "{r}");
        assert_eq!(r["blocks"], json!(expected), "{r}");
        tokio::time::timeout(WAIT, server)
            .await
            .expect("our side saw the JS side close")
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announce_and_lookup_through_the_js_relay_on_the_dht() {
    let js = JsRelay::start();
    let topic = Topic::from_bytes([0x5a; 32]);
    // The announcer listens and announces over ws://; the other client looks up over tcp://.
    let announcer = connected_client(js.url("ws"), 0x49);
    let listener = announcer.listen().await.unwrap();
    announcer.wait_connected(WAIT).await.unwrap();
    let announcer_pk = IdentityKey::from_bytes(signing_key(0x49).verifying_key().to_bytes());
    let seeker = connected_client(js.url("tcp"), 0x4a);
    seeker.wait_connected(WAIT).await.unwrap();
    assert_eq!(
        seeker.lookup(topic, WAIT).await.unwrap(),
        Vec::<IdentityKey>::new(),
        "nobody announced yet"
    );
    announcer.announce(topic, WAIT).await.unwrap();
    let found = seeker.lookup(topic, WAIT).await.unwrap();
    assert_eq!(found, vec![announcer_pk]);
    // ... and connects to what it found.
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    serve_echo(listener, 1, seen_tx);
    let stream = tokio::time::timeout(WAIT, seeker.connect(found[0]))
        .await
        .expect("connect in time")
        .unwrap();
    let sent = chunks(7, 4);
    assert!(exchange(stream, &sent).await == sent.concat());
    let (remote, _) = seen.recv().await.unwrap();
    assert_eq!(
        remote,
        IdentityKey::from_bytes(signing_key(0x4a).verifying_key().to_bytes())
    );
    // Unannounced: the DHT forgets it.
    announcer.unannounce(topic, WAIT).await.unwrap();
    assert_eq!(
        seeker.lookup(topic, WAIT).await.unwrap(),
        Vec::<IdentityKey>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_relay_gives_no_ice_servers_and_our_client_works_as_before() {
    let js = JsRelay::start();
    let echo_pk: IdentityKey = js.key("echo_public_key");
    let client = connected_client(js.url("ws"), 0x4c);
    client.wait_connected(WAIT).await.unwrap();
    let started = Instant::now();
    assert_eq!(client.wait_ice_servers(WAIT).await, vec![]);
    // The JS relay rejected the `dat-social/ice/v1` channel: no wait for the bound.
    assert!(started.elapsed() < WAIT / 2, "{:?}", started.elapsed());
    let stream = tokio::time::timeout(WAIT, client.connect(echo_pk))
        .await
        .expect("connect in time")
        .unwrap();
    let sent = chunks(3, 4);
    assert!(exchange(stream, &sent).await == sent.concat());
}
