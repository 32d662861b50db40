//! The STUN/TURN server of `dat-social relay`, as a real process on loopback:
//! - coturn's own clients against it: `turnutils_stunclient` (Binding) and
//!   `turnutils_uclient` (allocations, permissions, channel binding, two clients relaying to
//!   each other over UDP, over TCP, and with Send/Data indications), with TURN REST
//!   credentials minted by `ice::rest::mint`: it is standard TURN;
//! - security over real sockets: no credentials → 401, expired or forged credentials refused,
//!   relaying to the relay's loopback refused (403) without `--turn-allow-loopback`, the
//!   allocation quota (486), the bandwidth limit under a flood, and an allocation's relayed
//!   socket released when it is deleted or its TCP connection closes.
//!
//! coturn's tools are required when `CI` is set; elsewhere a test without them prints a note
//! and passes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dat_social::ice::rest;
use stun_types::attribute::{AttributeWrite, ErrorCode, Nonce, Realm, Username, XorMappedAddress};
use stun_types::message::{
    IntegrityAlgorithm, LongTermKeyCredentials, Message, MessageIntegrityCredentials, MessageWrite,
    MessageWriteExt, MessageWriteVec, Method, BINDING,
};
use turn_types::attribute::{
    ChannelNumber, Lifetime, RequestedTransport, XorPeerAddress, XorRelayedAddress,
};
use turn_types::message::{ALLOCATE, CHANNEL_BIND, CREATE_PERMISSION, REFRESH};

const SECRET: &str = "turn test secret";

/// A `dat-social relay` process with TURN on a free port; killed on drop.
struct Relay {
    child: Child,
    turn: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn relay(extra: &[&str]) -> Relay {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dat-social"))
        .args([
            "relay",
            "--json",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--turn-port",
            "0",
        ])
        .arg("--turn-secret-file")
        .arg(&secret)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn dat-social relay");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(v["event"], "listening", "{line}");
    let turn: SocketAddr = v["turn_udp"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        v["turn_tcp"].as_str().unwrap(),
        turn.to_string(),
        "TCP on the same port"
    );
    let urls: Vec<&str> = v["turn_urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert!(
        urls.contains(&format!("turn:{turn}?transport=tcp").as_str()),
        "{urls:?}"
    );
    Relay {
        child,
        turn,
        _dir: dir,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Whether coturn's `tool` is here; without it, fails under `CI`, else prints a note.
fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} (coturn) is required under CI"
        );
        eprintln!("note: {tool} not found (apt-get install coturn); skipping");
    }
    found
}

/// Runs a coturn tool with a 30 s bound; its stdout and stderr together.
fn run_tool(tool: &str, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .arg("30")
        .arg(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `turnutils_uclient` with two clients relaying `n` messages each to the other.
fn uclient(relay: &Relay, flags: &[&str], password: Option<&str>) -> String {
    let cred = rest::mint(SECRET.as_bytes(), "uclient", unix_now() + 600).unwrap();
    let port = relay.turn.port().to_string();
    let mut args = flags.to_vec();
    let pass = password.unwrap_or(&cred.password);
    args.extend([
        "-y",
        "-c",
        "-n",
        "20",
        "-m",
        "2",
        "-u",
        &cred.username,
        "-w",
        pass,
        "-p",
        &port,
        "127.0.0.1",
    ]);
    run_tool("turnutils_uclient", &args)
}

fn assert_all_relayed(out: &str) {
    assert!(
        out.contains("tot_send_msgs=40, tot_recv_msgs=40"),
        "not every message came back:\n{out}"
    );
    assert!(out.contains("Total lost packets 0 "), "{out}");
}

#[test]
fn coturn_stunclient_gets_its_reflexive_address() {
    if !have("turnutils_stunclient") {
        return;
    }
    let r = relay(&[]);
    let out = run_tool(
        "turnutils_stunclient",
        &["-p", &r.turn.port().to_string(), "127.0.0.1"],
    );
    assert!(out.contains("UDP reflexive addr: 127.0.0.1:"), "{out}");
}

#[test]
fn coturn_uclient_relays_through_our_turn_over_udp() {
    if !have("turnutils_uclient") {
        return;
    }
    let r = relay(&["--turn-allow-loopback"]);
    assert_all_relayed(&uclient(&r, &[], None));
    // Send and Data indications instead of channels.
    assert_all_relayed(&uclient(&r, &["-s"], None));
}

#[test]
fn coturn_uclient_relays_through_our_turn_over_tcp() {
    if !have("turnutils_uclient") {
        return;
    }
    let r = relay(&["--turn-allow-loopback"]);
    assert_all_relayed(&uclient(&r, &["-t"], None));
}

#[test]
fn coturn_uclient_is_refused_loopback_peers_and_forged_passwords() {
    if !have("turnutils_uclient") {
        return;
    }
    let r = relay(&[]);
    let out = uclient(&r, &[], None);
    assert!(
        out.contains("403"),
        "relaying to loopback must be forbidden:\n{out}"
    );
    assert!(!out.contains("tot_recv_msgs=40"), "{out}");
    let out = uclient(&r, &[], Some("AAAAAAAAAAAAAAAAAAAAAAAAAAA="));
    assert!(out.contains("Cannot complete Allocation"), "{out}");
}

/// A minimal TURN client on a UDP socket (or a TCP stream) for the security checks.
struct Client {
    udp: Option<UdpSocket>,
    tcp: Option<TcpStream>,
    server: SocketAddr,
    user: String,
    pass: String,
    nonce: String,
}

impl Client {
    fn udp(server: SocketAddr, user: &str, pass: &str) -> Client {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Client {
            udp: Some(s),
            tcp: None,
            server,
            user: user.into(),
            pass: pass.into(),
            nonce: String::new(),
        }
    }

    fn tcp(server: SocketAddr, user: &str, pass: &str) -> Client {
        let s = TcpStream::connect(server).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Client {
            udp: None,
            tcp: Some(s),
            server,
            user: user.into(),
            pass: pass.into(),
            nonce: String::new(),
        }
    }

    fn request(&self, method: Method, attrs: &[&dyn AttributeWrite], signed: bool) -> Vec<u8> {
        let mut w = Message::builder_request(method, MessageWriteVec::new());
        for a in attrs {
            w.add_attribute(*a).unwrap();
        }
        if signed {
            self.sign(&mut w);
        }
        w.finish()
    }

    /// Adds USERNAME, REALM, NONCE and MESSAGE-INTEGRITY (long-term credentials).
    fn sign(&self, w: &mut MessageWriteVec) {
        w.add_attribute(&Username::new(&self.user).unwrap())
            .unwrap();
        w.add_attribute(&Realm::new("dat-social").unwrap()).unwrap();
        w.add_attribute(&Nonce::new(&self.nonce).unwrap()).unwrap();
        let key: MessageIntegrityCredentials =
            LongTermKeyCredentials::new(self.user.clone(), self.pass.clone(), "dat-social".into())
                .into();
        w.add_message_integrity(&key, IntegrityAlgorithm::Sha1)
            .unwrap();
    }

    fn send(&mut self, bytes: &[u8]) {
        match (&self.udp, &mut self.tcp) {
            (Some(u), _) => {
                u.send_to(bytes, self.server).unwrap();
            }
            (_, Some(t)) => t.write_all(bytes).unwrap(),
            _ => unreachable!(),
        }
    }

    fn recv(&mut self) -> Vec<u8> {
        match (&self.udp, &mut self.tcp) {
            (Some(u), _) => {
                let mut buf = vec![0u8; 2048];
                let n = u.recv(&mut buf).expect("an answer from the TURN server");
                buf.truncate(n);
                buf
            }
            (_, Some(t)) => {
                let mut head = [0u8; 20];
                t.read_exact(&mut head)
                    .expect("an answer from the TURN server");
                let len = u16::from_be_bytes([head[2], head[3]]) as usize;
                let mut rest = vec![0u8; len];
                t.read_exact(&mut rest).unwrap();
                [&head[..], &rest].concat()
            }
            _ => unreachable!(),
        }
    }

    /// Sends a request and returns (error code or None, the answer bytes).
    fn ask(
        &mut self,
        method: Method,
        attrs: &[&dyn AttributeWrite],
        signed: bool,
    ) -> (Option<u16>, Vec<u8>) {
        let req = self.request(method, attrs, signed);
        self.send(&req);
        let answer = self.recv();
        let msg = Message::from_bytes(&answer).unwrap();
        if let Ok(n) = msg.attribute::<Nonce>() {
            self.nonce = n.nonce().to_owned();
        }
        (msg.attribute::<ErrorCode>().ok().map(|e| e.code()), answer)
    }

    /// 401 first, then the signed Allocate; returns its outcome and the relayed address.
    fn allocate(&mut self) -> (Option<u16>, Option<SocketAddr>) {
        let udp = RequestedTransport::new(RequestedTransport::UDP);
        let (code, _) = self.ask(ALLOCATE, &[&udp], false);
        assert_eq!(code, Some(401), "an Allocate without credentials gets 401");
        assert!(!self.nonce.is_empty(), "the 401 carries a NONCE");
        let (code, answer) = self.ask(ALLOCATE, &[&udp], true);
        let msg = Message::from_bytes(&answer).unwrap();
        let relayed = msg
            .attribute::<XorRelayedAddress>()
            .ok()
            .map(|a| a.addr(msg.transaction_id()));
        (code, relayed)
    }

    fn with_peer(&mut self, method: Method, peer: SocketAddr, channel: Option<u16>) -> Option<u16> {
        let mut w = Message::builder_request(method, MessageWriteVec::new());
        let p = XorPeerAddress::new(peer, w.transaction_id());
        if let Some(n) = channel {
            w.add_attribute(&ChannelNumber::new(n)).unwrap();
        }
        w.add_attribute(&p).unwrap();
        self.sign(&mut w);
        self.send(&w.finish());
        let answer = self.recv();
        Message::from_bytes(&answer)
            .unwrap()
            .attribute::<ErrorCode>()
            .ok()
            .map(|e| e.code())
    }
}

fn fresh(name: &str) -> (String, String) {
    let c = rest::mint(SECRET.as_bytes(), name, unix_now() + 600).unwrap();
    (c.username, c.password)
}

#[test]
fn binding_over_a_real_socket_answers_the_clients_address() {
    let r = relay(&[]);
    let mut c = Client::udp(r.turn, "", "");
    let (code, answer) = c.ask(BINDING, &[], false);
    assert_eq!(code, None);
    let msg = Message::from_bytes(&answer).unwrap();
    let mapped = msg
        .attribute::<XorMappedAddress>()
        .unwrap()
        .addr(msg.transaction_id());
    assert_eq!(mapped, c.udp.as_ref().unwrap().local_addr().unwrap());
}

#[test]
fn credentials_are_required_and_checked() {
    let r = relay(&[]);
    // Expired.
    let old = rest::mint(SECRET.as_bytes(), "old", unix_now() - 10).unwrap();
    let mut c = Client::udp(r.turn, &old.username, &old.password);
    assert_eq!(c.allocate(), (Some(401), None));
    // Forged: the right username, a password from another secret.
    let (user, _) = fresh("eve");
    let forged = rest::password(b"not the secret", &user);
    let mut c = Client::udp(r.turn, &user, &forged);
    assert_eq!(c.allocate(), (Some(401), None));
    // Fresh: an allocation on the relay's address.
    let (user, pass) = fresh("alice");
    let mut c = Client::udp(r.turn, &user, &pass);
    let (code, relayed) = c.allocate();
    assert_eq!(code, None);
    assert_eq!(relayed.unwrap().ip(), r.turn.ip());
}

#[test]
fn relaying_to_the_relays_loopback_is_forbidden_by_default() {
    let r = relay(&[]);
    let (user, pass) = fresh("alice");
    let mut c = Client::udp(r.turn, &user, &pass);
    assert_eq!(c.allocate().0, None);
    let target: SocketAddr = "127.0.0.1:9".parse().unwrap();
    assert_eq!(c.with_peer(CREATE_PERMISSION, target, None), Some(403));
    assert_eq!(c.with_peer(CHANNEL_BIND, target, Some(0x4000)), Some(403));
    assert_eq!(
        c.with_peer(CREATE_PERMISSION, r.turn, None),
        Some(403),
        "not even the TURN port itself"
    );
}

#[test]
fn the_allocation_quota_holds() {
    let r = relay(&["--turn-max-allocations-per-user", "2"]);
    let (user, pass) = fresh("greedy");
    let mut clients: Vec<Client> = (0..3).map(|_| Client::udp(r.turn, &user, &pass)).collect();
    let codes: Vec<Option<u16>> = clients.iter_mut().map(|c| c.allocate().0).collect();
    assert_eq!(codes, [None, None, Some(486)]);
    let (other, pass) = fresh("other");
    assert_eq!(
        Client::udp(r.turn, &other, &pass).allocate().0,
        None,
        "another client is unaffected"
    );
}

#[test]
fn the_bandwidth_limit_holds_under_a_flood() {
    const RATE: u64 = 50_000;
    let rate = RATE.to_string();
    let r = relay(&["--turn-allow-loopback", "--turn-bandwidth", &rate]);
    let (user, pass) = fresh("flood");
    let mut c = Client::udp(r.turn, &user, &pass);
    assert_eq!(c.allocate().0, None);
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert_eq!(
        c.with_peer(CHANNEL_BIND, peer.local_addr().unwrap(), Some(0x4000)),
        None
    );
    // 1 s of 1000-byte ChannelData as fast as loopback takes it (bounded by count too).
    let mut frame = vec![0x40, 0x00, 0x03, 0xe8];
    frame.extend_from_slice(&[7u8; 1000]);
    let udp = c.udp.as_ref().unwrap();
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < Duration::from_secs(1) && sent < 200_000_000 {
        udp.send_to(&frame, r.turn).unwrap();
        sent += 1000;
        if sent.is_multiple_of(20_000) {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let elapsed = start.elapsed();
    let mut delivered = 0u64;
    let mut buf = vec![0u8; 2048];
    while let Ok(n) = peer.recv(&mut buf) {
        delivered += n as u64;
    }
    let bound = RATE * (elapsed.as_millis() as u64 + 300) / 1000 + RATE;
    assert!(
        sent > 4 * bound,
        "the flood must exceed the limit: sent {sent}"
    );
    assert!(
        delivered <= bound,
        "delivered {delivered} bytes in {elapsed:?}, bound {bound}"
    );
    assert!(
        delivered >= RATE / 2,
        "the limit still lets traffic through: {delivered}"
    );
}

/// Whether the relayed port is free again (its socket closed).
fn port_released(relayed: SocketAddr) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if UdpSocket::bind(relayed).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn deleted_and_disconnected_allocations_are_cleaned_up() {
    let r = relay(&[]);
    let (user, pass) = fresh("tidy");
    let mut c = Client::udp(r.turn, &user, &pass);
    let (code, relayed) = c.allocate();
    assert_eq!(code, None);
    let relayed = relayed.unwrap();
    assert!(
        UdpSocket::bind(relayed).is_err(),
        "the relayed socket is open"
    );
    assert_eq!(c.ask(REFRESH, &[&Lifetime::new(0)], true).0, None);
    assert!(
        port_released(relayed),
        "Refresh 0 closes the relayed socket"
    );
    // Over TCP, closing the connection ends the allocation.
    let mut t = Client::tcp(r.turn, &user, &pass);
    let (code, relayed) = t.allocate();
    assert_eq!(code, None);
    let relayed = relayed.unwrap();
    assert!(
        UdpSocket::bind(relayed).is_err(),
        "the relayed socket is open"
    );
    drop(t);
    assert!(
        port_released(relayed),
        "a closed TCP connection closes the relayed socket"
    );
}
