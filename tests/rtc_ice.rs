//! WebRTC with STUN and TURN against a real coturn (`turnserver`) on loopback: the Binding round
//! trip, `IcePolicy::Relay` over TURN/UDP and TURN/TCP, TURN REST credentials
//! (`--use-auth-secret`), wrong credentials, and candidates trickled after the offer.
//!
//! On loopback a STUN server sees a socket as its own address, so no server-reflexive
//! candidate can result here; these tests check the Binding round trip
//! (`GatherStats::bindings_answered`). Real srflx candidates need a NAT: the NAT lab shows
//! them. Needs coturn: fails loudly when `CI` is set and `turnserver` is missing, and skips
//! with a note otherwise.

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dat_social::ice::{IceConfig, IcePolicy, IceServer, PathKind};
use dat_social::rtc::{
    self, ChannelId, PeerConnection, Reliability, RtcConfig, RtcError, RtcEvent,
};

/// Upper bound for any single wait in these tests.
const WAIT: Duration = Duration::from_secs(15);

/// A coturn listening on 127.0.0.1 (UDP and TCP on one port), killed on drop.
struct Coturn {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

enum Auth {
    /// `--lt-cred-mech --user u:p --realm r`.
    User,
    /// `--use-auth-secret --static-auth-secret <secret> --realm r` (TURN REST credentials).
    Secret(&'static str),
}

impl Coturn {
    /// Starts one, or `None` (after a note) when coturn is not installed outside CI.
    fn start(auth: Auth) -> Option<Coturn> {
        if Command::new("turnserver").arg("--help").output().is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "coturn's `turnserver` is not installed; CI must install it (apt-get install coturn)"
            );
            eprintln!("note: skipping, coturn's `turnserver` is not installed");
            return None;
        }
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            // A relay port range of its own next to a free port, unlikely to collide.
            let min = 20_000 + (port % 20_000) / 64 * 64;
            let mut cmd = Command::new("turnserver");
            cmd.args(["-n", "--no-tls", "--no-dtls", "--realm", "r", "-v"])
                .args(["--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1"])
                .args(["--listening-port", &port.to_string()])
                .args([
                    "--min-port",
                    &min.to_string(),
                    "--max-port",
                    &(min + 63).to_string(),
                ])
                .args(["--allow-loopback-peers", "--no-cli", "--log-file", "stdout"])
                .args(["--pidfile", dir.path().join("turn.pid").to_str().unwrap()])
                .args(["--userdb", dir.path().join("turn.db").to_str().unwrap()]);
            match auth {
                Auth::User => cmd.args(["--lt-cred-mech", "--user", "u:p"]),
                Auth::Secret(s) => cmd.args(["--use-auth-secret", "--static-auth-secret", s]),
            };
            let log = std::fs::File::create(dir.path().join("turn.log")).unwrap();
            cmd.stdout(Stdio::from(log)).stderr(Stdio::null());
            let child = cmd.spawn().expect("turnserver starts");
            let mut c = Coturn { child, port, dir };
            if c.wait_listening() {
                return Some(c);
            }
        }
        panic!("coturn did not start listening on a free port");
    }

    fn wait_listening(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if TcpStream::connect(self.addr()).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("turn.log")
    }

    fn server(&self, scheme: &str, query: &str, user: &str, pass: &str) -> IceServer {
        IceServer {
            urls: vec![format!("{scheme}:127.0.0.1:{}{query}", self.port)],
            username: (scheme == "turn").then(|| user.to_string()),
            credential: (scheme == "turn").then(|| pass.to_string()),
        }
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free for UDP and TCP on 127.0.0.1 right now.
fn free_port() -> u16 {
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn config(servers: Vec<IceServer>, policy: IcePolicy) -> RtcConfig {
    RtcConfig {
        connect_timeout: Duration::from_secs(8),
        ice: IceConfig { servers, policy },
        ..RtcConfig::default()
    }
}

async fn next(pc: &mut PeerConnection) -> RtcEvent {
    tokio::time::timeout(WAIT, pc.next_event())
        .await
        .expect("no event within the wait bound")
        .expect("event stream ended")
}

async fn wait_open(pc: &mut PeerConnection) -> ChannelId {
    loop {
        match next(pc).await {
            RtcEvent::ChannelOpen { channel, .. } => return channel,
            RtcEvent::Disconnected { reason } => panic!("disconnected while opening: {reason}"),
            _ => {}
        }
    }
}

async fn expect_message(pc: &mut PeerConnection, want: &[u8]) {
    loop {
        match next(pc).await {
            RtcEvent::Message { data, .. } => {
                assert_eq!(data, want);
                return;
            }
            RtcEvent::Disconnected { reason } => panic!("disconnected: {reason}"),
            _ => {}
        }
    }
}

/// Connects a joiner (`joiner_cfg`) and a host (`host_cfg`), trickling every candidate both
/// ways until both channels are open; returns (joiner, host, host's channel) and the
/// candidates the joiner trickled.
async fn connect(
    joiner_cfg: &RtcConfig,
    host_cfg: &RtcConfig,
) -> (PeerConnection, PeerConnection, ChannelId, Vec<String>) {
    let (mut pending, offer) = rtc::create_offer(joiner_cfg, &[("chat", Reliability::Reliable)])
        .await
        .unwrap();
    let (answer, mut host) = rtc::accept_offer(host_cfg, &offer).await.unwrap();
    // The joiner's candidates to the host, the host's to the joiner, while the answer applies.
    let mut joiner_trickle = pending.trickle();
    let mut host_trickle = host.trickle();
    let mut sent = Vec::new();
    let accept = pending.accept_answer(&answer);
    tokio::pin!(accept);
    let mut joiner_done = false;
    let mut host_done = false;
    let joiner = loop {
        tokio::select! {
            r = &mut accept => break r.unwrap(),
            c = joiner_trickle.next_local_candidate(), if !joiner_done => match c {
                Some(c) => {
                    host_trickle.add_remote_candidate(&c).unwrap();
                    sent.push(c);
                }
                None => joiner_done = true,
            },
            c = host_trickle.next_local_candidate(), if !host_done => match c {
                Some(c) => joiner_trickle.add_remote_candidate(&c).unwrap(),
                None => host_done = true,
            },
        }
    };
    let chat = wait_open(&mut host).await;
    (joiner, host, chat, sent)
}

async fn chat_both_ways(joiner: &mut PeerConnection, host: &mut PeerConnection, chat: ChannelId) {
    let jc = joiner.channels()[0];
    joiner.send(jc, b"ping through the relay").unwrap();
    expect_message(host, b"ping through the relay").await;
    host.send(chat, b"pong through the relay").unwrap();
    expect_message(joiner, b"pong through the relay").await;
}

async fn relay_only_connects(coturn: &Coturn, server: IceServer) {
    let cfg = config(vec![server], IcePolicy::Relay);
    let (mut joiner, mut host, chat, _) = connect(&cfg, &cfg).await;
    chat_both_ways(&mut joiner, &mut host, chat).await;
    for pc in [&joiner, &host] {
        let path = pc.path().expect("a path once connected");
        assert_eq!(path.kind, PathKind::Relay, "{path:?}");
        assert_eq!(path.relay, Some(coturn.addr()), "{path:?}");
        assert!(pc.gather_stats().relayed >= 1);
    }
    let log = coturn.log();
    assert!(
        log.matches("ALLOCATE processed, success").count() >= 2,
        "coturn's log shows no allocation for each peer:\n{log}"
    );
    joiner.close().await;
    host.close().await;
    // Closing deletes each allocation on the server (Refresh with lifetime 0), rather than
    // leaving it to expire 10 minutes later.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let deleted = |log: &str| log.matches(", lifetime=0").count() >= 2;
    while !deleted(&coturn.log()) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = coturn.log();
    assert!(
        deleted(&log),
        "coturn saw no deletion of both allocations:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_policy_over_turn_udp_carries_chat_both_ways() {
    let Some(coturn) = Coturn::start(Auth::User) else {
        return;
    };
    let server = coturn.server("turn", "", "u", "p");
    relay_only_connects(&coturn, server).await;
    // Only the start-up probe came over TCP.
    let log = coturn.log();
    assert_eq!(log.matches("tcp or tls connected").count(), 1, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_policy_over_turn_tcp_carries_chat_both_ways() {
    let Some(coturn) = Coturn::start(Auth::User) else {
        return;
    };
    let server = coturn.server("turn", "?transport=tcp", "u", "p");
    relay_only_connects(&coturn, server).await;
    // Two TURN clients over TCP, besides the start-up probe.
    let log = coturn.log();
    assert!(log.matches("tcp or tls connected").count() >= 3, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turn_rest_credentials_work_with_coturn_auth_secret() {
    let secret = "test-secret";
    let Some(coturn) = Coturn::start(Auth::Secret(secret)) else {
        return;
    };
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let cred = dat_social::ice::rest::mint(secret.as_bytes(), "player", expiry).unwrap();
    let server = coturn.server("turn", "", &cred.username, &cred.password);
    relay_only_connects(&coturn, server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_turn_credentials_fail_relay_policy_but_not_policy_all() {
    let Some(coturn) = Coturn::start(Auth::User) else {
        return;
    };
    let bad = coturn.server("turn", "", "u", "wrong");
    let cfg = config(vec![bad.clone()], IcePolicy::Relay);
    let started = Instant::now();
    let e = rtc::create_offer(&cfg, &[("chat", Reliability::Reliable)])
        .await
        .unwrap_err();
    // Refused at the second 401, not at the connect timeout.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(e, RtcError::NoRelayedCandidate(_)), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("relay") && text.contains(&coturn.addr().to_string()) && text.contains("401"),
        "{text}"
    );

    // Policy all: the host candidates carry it, the failed allocation changes nothing.
    let cfg = config(vec![bad], IcePolicy::All);
    let (mut joiner, mut host, chat, sent) = connect(&cfg, &cfg).await;
    chat_both_ways(&mut joiner, &mut host, chat).await;
    assert_eq!(joiner.path().unwrap().kind, PathKind::Host);
    assert_eq!(host.path().unwrap().kind, PathKind::Host);
    assert!(sent.iter().all(|c| !c.contains("typ relay")), "{sent:?}");
    assert_eq!(joiner.gather_stats().relayed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stun_binding_round_trip_with_coturn() {
    let Some(coturn) = Coturn::start(Auth::User) else {
        return;
    };
    let cfg = config(vec![coturn.server("stun", "", "", "")], IcePolicy::All);
    let (mut pending, offer) = rtc::create_offer(&cfg, &[("chat", Reliability::Reliable)])
        .await
        .unwrap();
    // Gathering ends (the channel closes) once the Binding is answered.
    let found = tokio::time::timeout(WAIT, async {
        let mut found = Vec::new();
        while let Some(c) = pending.next_local_candidate().await {
            found.push(c);
        }
        found
    })
    .await
    .expect("gathering ends");
    let stats = pending.gather_stats();
    assert!(stats.bindings_answered >= 1, "{stats:?}");
    // On loopback the mapped address is the socket's own: not a new candidate.
    assert_eq!(stats.srflx, 0);
    assert!(found.is_empty(), "{found:?}");
    // The offer was written at once, with the host candidate.
    assert!(offer.contains("typ host"), "{offer}");
    let (answer, mut host) = rtc::accept_offer(&cfg, &offer).await.unwrap();
    let mut joiner = pending.accept_answer(&answer).await.unwrap();
    let chat = wait_open(&mut host).await;
    chat_both_ways(&mut joiner, &mut host, chat).await;
    // The host's own Binding runs beside ICE; on loopback the channel can open first.
    let until = tokio::time::Instant::now() + WAIT;
    while host.gather_stats().bindings_answered == 0 && tokio::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(host.gather_stats().bindings_answered, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_candidate_found_after_the_offer_is_trickled_to_the_peer() {
    let Some(coturn) = Coturn::start(Auth::User) else {
        return;
    };
    let cfg = config(vec![coturn.server("turn", "", "u", "p")], IcePolicy::All);
    let (mut joiner, mut host, chat, sent) = {
        let (mut pending, offer) = rtc::create_offer(&cfg, &[("chat", Reliability::Reliable)])
            .await
            .unwrap();
        // Policy all writes the offer at once: host candidates only.
        assert!(
            offer.contains("typ host") && !offer.contains("typ relay"),
            "{offer}"
        );
        let relayed = tokio::time::timeout(WAIT, pending.next_local_candidate())
            .await
            .expect("a candidate is trickled")
            .expect("gathering found one");
        assert!(
            relayed.starts_with("candidate:") && relayed.contains("typ relay"),
            "{relayed}"
        );
        let (answer, mut host) = rtc::accept_offer(&cfg, &offer).await.unwrap();
        // The other side takes it as any trickled candidate.
        host.add_remote_candidate(&relayed).unwrap();
        let joiner = pending.accept_answer(&answer).await.unwrap();
        let chat = wait_open(&mut host).await;
        (joiner, host, chat, vec![relayed])
    };
    assert_eq!(sent.len(), 1);
    chat_both_ways(&mut joiner, &mut host, chat).await;
    // Host candidates win over the relayed one (ICE priority).
    assert_eq!(joiner.path().unwrap().kind, PathKind::Host);
    assert_eq!(joiner.gather_stats().relayed, 1);
}
