//! `dat-social relay` as a real process on 127.0.0.1 ([`Relay`]), a minimal raw relay client
//! (WebSocket + the library's codec: [`RawClient`]) and the pairing scripts the relay tests share
//! ([`custodial_pair`], [`healthy_pair`], [`check_js_pair`]).

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dat_social::relay::messages::SecretKey;
use dat_social::relay::{Message, RelayCodec, RelayEvent};
use ed25519_dalek::SigningKey;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::js::run_js;
use super::sys::expect_status_kib;

/// Bound on the relay's start: from spawning it to its `listening` line.
pub const START_WAIT: Duration = Duration::from_secs(30);

/// A running `dat-social relay` on 127.0.0.1, killed (SIGKILL) on drop. Its stderr (its log)
/// goes to a file, quoted when it fails to start and printed when a test panics while it runs.
pub struct Relay {
    child: Child,
    stderr: tempfile::NamedTempFile,
    /// The WebSocket URL it printed: `ws://127.0.0.1:PORT`, or `wss://…` with `--cert`.
    ws: String,
    /// The port of the WebSocket transport.
    pub ws_port: u16,
    /// The port of the TCP (secret-stream) transport.
    pub tcp_port: u16,
}

impl Relay {
    /// Starts the relay on free loopback ports and waits for its `listening` event.
    pub fn start() -> Relay {
        Relay::start_with(&[])
    }

    /// As [`Relay::start`], with `extra` command-line flags.
    pub fn start_with(extra: &[&str]) -> Relay {
        Relay::spawn(0, 0, extra).unwrap_or_else(|line| panic!("the relay printed {line:?}"))
    }

    /// Starts the relay on these ports, retrying for up to 10 s while they are still taken
    /// (e.g. right after a kill).
    pub fn start_on(ws_port: u16, tcp_port: u16) -> Relay {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Relay::spawn(ws_port, tcp_port, &[]) {
                Ok(relay) => return relay,
                Err(line) => assert!(
                    Instant::now() < deadline,
                    "the relay did not start on ports {ws_port}/{tcp_port}: {line:?}"
                ),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One try: the relay once it printed `listening`, or the line it printed instead and its
    /// stderr. Panics (with its stderr) when it prints nothing within [`START_WAIT`].
    fn spawn(ws_port: u16, tcp_port: u16, extra: &[&str]) -> Result<Relay, String> {
        let stderr = tempfile::NamedTempFile::new().expect("a temp file for the relay's stderr");
        let mut child = Command::new(env!("CARGO_BIN_EXE_dat-social"))
            .args(["relay", "--json", "--host", "127.0.0.1", "--turn-port", "0"])
            .args(["--port", &ws_port.to_string()])
            .args(["--tcp-port", &tcp_port.to_string()])
            .args(extra)
            .env("RUST_LOG", "dat_social=info")
            .stdout(Stdio::piped())
            .stderr(stderr.reopen().expect("reopen the relay's stderr file"))
            .spawn()
            .expect("spawn dat-social relay");
        let first = first_line(child.stdout.take().unwrap(), START_WAIT);
        let log = || std::fs::read_to_string(stderr.path()).unwrap_or_default();
        let Some(line) = first else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "dat-social relay {extra:?} printed nothing within {START_WAIT:?} (killed); \
                 stderr: {}",
                log()
            );
        };
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        let ws = v["ws"].as_str().filter(|_| v["event"] == "listening");
        let tcp = v["tcp"].as_str().and_then(|t| t.strip_prefix("tcp://"));
        let (Some(ws), Some(tcp)) = (ws, tcp) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{line:?}; stderr: {}", log()));
        };
        Ok(Relay {
            ws_port: port_of(ws),
            tcp_port: port_of(tcp),
            ws: ws.to_string(),
            child,
            stderr,
        })
    }

    /// The relay's stderr so far (its log, `RUST_LOG=dat_social=info`).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }

    /// The WebSocket URL, `ws://127.0.0.1:PORT` (`wss://` with `--cert`).
    pub fn ws(&self) -> String {
        self.ws.clone()
    }

    /// `tcp://127.0.0.1:PORT`: the TCP transport as a relay URL.
    pub fn tcp(&self) -> String {
        format!("tcp://{}", self.tcp_addr())
    }

    /// `127.0.0.1:PORT` of the TCP transport.
    pub fn tcp_addr(&self) -> String {
        format!("127.0.0.1:{}", self.tcp_port)
    }

    /// The relay process's resident set size in KiB (VmRSS from /proc).
    pub fn rss_kib(&self) -> u64 {
        expect_status_kib(self.child.id(), "VmRSS")
    }

    /// The relay process's peak resident set size in KiB (VmHWM from /proc).
    pub fn hwm_kib(&self) -> u64 {
        expect_status_kib(self.child.id(), "VmHWM")
    }

    /// True while the relay process runs.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Kills the process (SIGKILL: no goodbye to its clients), waits for it, and returns its
    /// (WebSocket, TCP) ports for [`Relay::start_on`].
    pub fn kill(mut self) -> (u16, u16) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.ws_port, self.tcp_port)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- the relay's stderr ---\n{}", self.stderr());
        }
    }
}

/// The first line `stdout` gives ("" when it closes first, e.g. the relay exited), or `None`
/// when none comes within `timeout`. A thread reads it, then reads and drops the rest, so the
/// process never blocks on a full pipe.
fn first_line(stdout: ChildStdout, timeout: Duration) -> Option<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    rx.recv_timeout(timeout).ok()
}

/// The port at the end of `…:PORT`.
fn port_of(address: &str) -> u16 {
    let port = address.rsplit(':').next().unwrap_or_default();
    port.trim_end_matches('/')
        .parse()
        .unwrap_or_else(|_| panic!("no port in {address:?}"))
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

/// The custodial pairing script through the relay at `url`: a server (`seed`'s keys) listens
/// (alias 1), a client (`seed + 1`'s keys) connects to it (alias `client_alias`), and the server
/// accepts the `incoming`. Returns (server, client); what follows (`connection` for the server,
/// `open` for the client) is the caller's.
pub async fn custodial_pair(url: &str, seed: u8, client_alias: u32) -> (RawClient, RawClient) {
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
            alias: client_alias,
            public_key: cpk,
            secret_key: Some(csk),
            remote_public_key: spk,
        }))
        .await;
    let Message::Incoming(inc) = server.recv().await else {
        panic!("expected incoming")
    };
    server.send(&Message::Accept(IdRef { id: inc.id })).await;
    (server, client)
}

/// A healthy listen + connect + echo through the relay with two fresh raw clients; returns the
/// bytes echoed. Proves the relay still serves other sessions.
pub async fn healthy_pair(url: &str, seed: u8) -> Vec<u8> {
    use dat_social::relay::messages::*;
    let (mut server, mut client) = custodial_pair(url, seed, 7).await;
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
