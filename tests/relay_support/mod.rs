//! Shared by tests/relay_interop.rs, tests/relay_faults.rs and tests/relay_limits.rs:
//! `dat-social relay` as a real process on 127.0.0.1, and a minimal raw relay client
//! (WebSocket + the library's codec).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use dat_social::relay::messages::SecretKey;
use dat_social::relay::{Message, RelayCodec, RelayEvent};
use ed25519_dalek::SigningKey;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A running `dat-social relay`, killed on drop.
pub struct RelayProc {
    child: Child,
    /// `ws://127.0.0.1:PORT`
    pub ws: String,
    /// `127.0.0.1:PORT` of the TCP transport.
    pub tcp: String,
}

impl RelayProc {
    /// Starts the relay on free loopback ports with `extra` flags and waits for `listening`.
    pub fn start(extra: &[&str]) -> RelayProc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dat-social"))
            .args(["relay", "--json", "--host", "127.0.0.1", "--port", "0"])
            .args(["--tcp-port", "0"])
            .args(extra)
            .env("RUST_LOG", "dat_social=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn dat-social relay");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read the listening event");
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("relay printed {line:?}: {e}"));
        assert_eq!(v["event"], "listening", "{v}");
        let ws = v["ws"].as_str().expect("ws address").to_string();
        let tcp = v["tcp"].as_str().expect("tcp address");
        let tcp = tcp.strip_prefix("tcp://").expect("tcp:// url").to_string();
        RelayProc { child, ws, tcp }
    }

    /// The relay process's resident set size in KiB (VmRSS from /proc).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS line")
    }

    /// The relay process's peak resident set size in KiB (VmHWM from /proc).
    pub fn hwm_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM line")
    }

    /// True while the relay process runs.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for RelayProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// tests/js, with a check that node and the pinned npm packages are there: fails the test
/// (never skips) with what to run otherwise.
pub fn js_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    let out = Command::new("node")
        .current_dir(&dir)
        .args([
            "-e",
            "require.resolve('@hyperswarm/dht-relay'); require.resolve('ws')",
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => dir,
        Ok(o) => panic!(
            "the npm packages are missing ({}): run `npm ci --prefix tests/js`",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .next()
                .unwrap_or("")
        ),
        Err(e) => {
            panic!("node is not installed ({e}); install node, then run `npm ci --prefix tests/js`")
        }
    }
}

/// Runs `node tests/js/<script> args…` (killed after `timeout`) and returns its last stdout line
/// as JSON. Panics with its stderr if it fails.
pub fn run_js(
    script: &str,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> serde_json::Value {
    let dir = js_dir();
    let mut child = Command::new("node")
        .current_dir(&dir)
        .arg(script)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let deadline = std::time::Instant::now() + timeout;
    while child.try_wait().expect("try_wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("node output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node {script} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().expect("a JSON line");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{script} printed {line:?}: {e}"))
}

/// Bytes each way in [`check_js_pair`].
pub const PAIR_BULK: usize = 1 << 20;
/// Further connects after the first one in [`check_js_pair`], each a new handshake.
pub const PAIR_REPEAT: u64 = 4;

/// Runs tests/js/relay-pair.js (two npm `@hyperswarm/dht-relay` 0.4.3 nodes, `custodial` or
/// not) against the relay at `address` (`transport` "ws" for ws:// or wss:// URLs, "tcp" for
/// HOST:PORT), with extra environment `env`, and checks everything it reports: lookup finds the
/// server, both ends see each other's key and the same handshake hash, a message and
/// [`PAIR_BULK`] bytes arrive byte-exact each way, and [`PAIR_REPEAT`] more connects work.
pub fn check_js_pair(transport: &str, address: &str, custodial: bool, env: &[(&str, &str)]) {
    let bulk = PAIR_BULK.to_string();
    let repeat = PAIR_REPEAT.to_string();
    let mode = if custodial { "1" } else { "0" };
    let mut all = vec![
        ("BULK", bulk.as_str()),
        ("CUSTODIAL", mode),
        ("REPEAT", &repeat),
    ];
    all.extend_from_slice(env);
    let r = run_js(
        "relay-pair.js",
        &[transport, address],
        &all,
        Duration::from_secs(60),
    );
    assert_eq!(r["custodial"], custodial, "{r}");
    let (server_pk, _) = key_pair(0x44);
    let (client_pk, _) = key_pair(0x55);
    let (server_pk, client_pk) = (hex::encode(server_pk), hex::encode(client_pk));
    assert_eq!(r["server_public_key"], server_pk.as_str(), "{r}");
    // announce/lookup through the relay found the server's key.
    assert_eq!(r["lookup_found"], serde_json::json!([server_pk]), "{r}");
    // Each side sees the other's key and the same 64-byte Noise handshake hash.
    assert_eq!(r["client_remote_public_key"], server_pk.as_str(), "{r}");
    assert_eq!(r["server_remote_public_key"], client_pk.as_str(), "{r}");
    let hash = r["client_handshake_hash"].as_str().expect("client hash");
    assert_eq!(hash.len(), 128, "{r}");
    assert_ne!(hash, "0".repeat(128));
    assert_eq!(r["server_handshake_hash"], hash, "{r}");
    // Data both ways, byte-exact.
    assert_eq!(r["server_got"], "hello\n", "{r}");
    assert_eq!(r["client_got"], "echo:hello\n", "{r}");
    assert_eq!(r["bulk"], PAIR_BULK, "{r}");
    assert_eq!(
        r["server_got_bulk_sha256"], r["expected_sha256"]["to_server"],
        "{r}"
    );
    assert_eq!(
        r["client_got_bulk_sha256"], r["expected_sha256"]["to_client"],
        "{r}"
    );
    assert_eq!(r["repeat_ok"], PAIR_REPEAT, "{r}");
}

/// A custodial key pair from a 32-byte seed: (public key, libsodium secret key seed ‖ pk).
pub fn key_pair(seed: u8) -> ([u8; 32], SecretKey) {
    let key = SigningKey::from_bytes(&[seed; 32]);
    let pk = key.verifying_key().to_bytes();
    let mut sk = [0u8; 64];
    sk[..32].copy_from_slice(&[seed; 32]);
    sk[32..].copy_from_slice(&pk);
    (pk, SecretKey(sk))
}

/// A raw relay client over WebSocket: our codec on a tungstenite socket.
pub struct RawClient {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub codec: RelayCodec,
}

impl RawClient {
    /// Connects and sends the protomux open and a custodial `handshake` with `seed`'s keys.
    pub async fn connect(url: &str, seed: u8) -> RawClient {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connect");
        let mut c = RawClient {
            ws,
            codec: RelayCodec::new(),
        };
        let (public_key, sk) = key_pair(seed);
        c.send(&Message::Handshake(
            dat_social::relay::messages::Handshake {
                public_key,
                secret_key: Some(sk),
            },
        ))
        .await;
        c
    }

    /// Sends one message (and whatever the codec queued before it).
    pub async fn send(&mut self, m: &Message) {
        self.codec.send(m).expect("codec send");
        while let Some(f) = self.codec.poll_transmit() {
            self.ws
                .send(WsMessage::Binary(f.into()))
                .await
                .expect("ws send");
        }
    }

    /// Sends raw bytes as one binary WebSocket message.
    pub async fn send_raw(&mut self, frame: Vec<u8>) -> Result<(), String> {
        self.ws
            .send(WsMessage::Binary(frame.into()))
            .await
            .map_err(|e| e.to_string())
    }

    /// The next relay message other than ping/pong (answering pings), within 10 s.
    pub async fn recv(&mut self) -> Message {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(ev) = self.codec.poll_event() {
                match ev {
                    RelayEvent::Message(Message::Ping) => self.send(&Message::Pong).await,
                    RelayEvent::Message(m) => return m,
                    _ => {}
                }
                continue;
            }
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("a relay message within 10 s")
                .expect("the socket is open")
                .expect("no socket error");
            if let WsMessage::Binary(b) = msg {
                self.codec
                    .handle_frame(&b)
                    .expect("valid frame from the relay");
            }
        }
    }

    /// Waits (up to 10 s) for the relay to close this socket; returns the close reason text.
    pub async fn closed(&mut self) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("the relay did not close the session within 10 s"),
                Ok(None) | Ok(Some(Err(_))) => return String::new(),
                Ok(Some(Ok(WsMessage::Close(f)))) => {
                    return f.map(|f| f.reason.to_string()).unwrap_or_default()
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }
}

/// A healthy listen + connect + echo through the relay with two fresh raw clients; returns the
/// bytes echoed. Proves the relay still serves other sessions.
pub async fn healthy_pair(url: &str, seed: u8) -> Vec<u8> {
    use dat_social::relay::messages::*;
    let mut server = RawClient::connect(url, seed).await;
    let mut client = RawClient::connect(url, seed.wrapping_add(1)).await;
    let (spk, ssk) = key_pair(seed);
    let (cpk, csk) = key_pair(seed.wrapping_add(1));
    server
        .send(&Message::Listen(Listen {
            alias: 1,
            public_key: spk,
            secret_key: Some(ssk),
        }))
        .await;
    let Message::Listening(_) = server.recv().await else {
        panic!("expected listening")
    };
    client
        .send(&Message::Connect(Connect {
            alias: 7,
            public_key: cpk,
            secret_key: Some(csk),
            remote_public_key: spk,
        }))
        .await;
    let Message::Incoming(inc) = server.recv().await else {
        panic!("expected incoming")
    };
    server.send(&Message::Accept(IdRef { id: inc.id })).await;
    let Message::Connection(conn) = server.recv().await else {
        panic!("expected connection")
    };
    server
        .send(&Message::Connected(Connected {
            alias: 9,
            remote_alias: conn.alias,
        }))
        .await;
    let Message::Open(open) = client.recv().await else {
        panic!("expected open")
    };
    assert_eq!(open.remote_alias, 7);
    client
        .send(&Message::Data(Data {
            alias: 7,
            chunks: vec![b"ping?".to_vec()],
        }))
        .await;
    let Message::Data(d) = server.recv().await else {
        panic!("expected data")
    };
    let mut echo = b"echo:".to_vec();
    echo.extend_from_slice(&d.chunks.concat());
    server
        .send(&Message::Data(Data {
            alias: 9,
            chunks: vec![echo],
        }))
        .await;
    let Message::Data(d) = client.recv().await else {
        panic!("expected data")
    };
    d.chunks.concat()
}
