//! A real `dat-social host` process against hostile peers built from our library, on loopback:
//! peers that never get admitted must not be able to exhaust the host's memory or its
//! connection slots. Attackers bind their sockets to 127.0.0.2 and up (distinct source
//! addresses); the real player comes from 127.0.0.1.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use dat_social::net::secret_stream::{handshake, MAX_FRAME};
use dat_social::net::{Connection, ConnectionConfig};
use ed25519_dalek::SigningKey;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

use support::sys::{expect_status_kib, runtime};
use support::{host, User, WAIT};

/// The bound on the host's peak resident memory under the 40-connection frame attack: 64 MiB
/// (a host serving nobody peaks at about 10-15 MiB; the attack used to take it past 600 MiB).
const PEAK_RSS_BOUND_KIB: u64 = 64 * 1024;

fn listen_addr(hosting: &serde_json::Value) -> SocketAddr {
    hosting["listen"].as_str().unwrap().parse().unwrap()
}

/// 127.0.0.`n`: one attacker source address.
fn source(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// A TCP connection to `to` from `from` (bound before connecting), within 5 s.
async fn connect_from(from: IpAddr, to: SocketAddr) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::new(from, 0)).ok()?;
    tokio::time::timeout(Duration::from_secs(5), socket.connect(to))
        .await
        .ok()?
        .ok()
}

/// Completes the Noise handshake with a throwaway key, announces a frame of the largest size
/// (16 MiB) and sends all of it but the last byte. Returns the bytes the host accepted
/// before it closed the connection.
async fn partial_huge_frame(from: IpAddr, to: SocketAddr) -> usize {
    let Some(mut tcp) = connect_from(from, to).await else {
        return 0;
    };
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let hs = handshake(&mut tcp, &key, true, Duration::from_secs(10)).await;
    assert!(hs.is_ok(), "the host refused the handshake: {:?}", hs.err());
    let mut sent = 0;
    if tcp.write_all(&[0xff, 0xff, 0xff]).await.is_err() {
        return sent;
    }
    let chunk = vec![0u8; 64 * 1024];
    while sent < MAX_FRAME - 1 {
        let n = chunk.len().min(MAX_FRAME - 1 - sent);
        match tokio::time::timeout(Duration::from_secs(10), tcp.write_all(&chunk[..n])).await {
            Ok(Ok(())) => sent += n,
            _ => return sent,
        }
    }
    // Hold the connection (and whatever the host buffered for it) a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    sent
}

#[test]
fn forty_unadmitted_peers_announcing_16_mib_frames_leave_the_host_small() {
    let alice = User::new("alice");
    let (mut lobby, hosting) = host(&alice, &[]);
    let to = listen_addr(&hosting);
    let pid = lobby.pid();
    let before = expect_status_kib(pid, "VmRSS");

    let rt = runtime();
    let accepted: Vec<usize> = rt.block_on(async {
        let mut attackers = JoinSet::new();
        for i in 0..40u8 {
            // Ten per address: under the per-address limit, so every one is served.
            attackers.spawn(partial_huge_frame(source(2 + i % 4), to));
        }
        tokio::time::timeout(Duration::from_secs(120), attackers.join_all())
            .await
            .expect("the attack finished within 120 s")
    });
    let peak = expect_status_kib(pid, "VmHWM");
    let total: usize = accepted.iter().sum();
    eprintln!(
        "host RSS before: {before} KiB; peak with 40 partial 16 MiB frames: {peak} KiB; \
         bytes the host took from the attackers: {total}"
    );
    assert!(
        peak < PEAK_RSS_BOUND_KIB,
        "the host peaked at {peak} KiB (bound {PEAK_RSS_BOUND_KIB} KiB); it took {total} bytes"
    );

    // The host still serves players.
    let invite = hosting["invite"].as_str().unwrap();
    let bob = User::new("bob");
    let mut player = bob.spawn(&["join", invite]);
    player.expect("connected");
    lobby.expect("peer-joined");
}

#[test]
fn a_player_joins_while_thousands_of_sockets_are_held_from_many_addresses() {
    // This process holds about 3,100 sockets.
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap();
    assert!(
        limit >= 4096,
        "open-files limit {limit} is too low for this test"
    );
    let alice = User::new("alice");
    let (mut lobby, hosting) = host(&alice, &["--max-peers", "2"]);
    let to = listen_addr(&hosting);

    let rt = runtime();
    // 2,000 half-open sockets (connected, never a byte sent) from 20 addresses.
    let half_open: Vec<TcpStream> = rt.block_on(async {
        let mut tasks = JoinSet::new();
        for i in 0..2000u32 {
            tasks.spawn(connect_from(source(10 + (i % 20) as u8), to));
        }
        tokio::time::timeout(Duration::from_secs(60), tasks.join_all())
            .await
            .expect("connects finished within 60 s")
            .into_iter()
            .flatten()
            .collect()
    });
    // 1,100 connections that finish the handshake with throwaway keys and then only send
    // keep-alives, from 100 more addresses, 50 at a time.
    let idle: Vec<Connection> = rt.block_on(async {
        let mut held = Vec::new();
        for batch in 0..22u32 {
            let mut tasks = JoinSet::new();
            for j in 0..50u32 {
                let n = batch * 50 + j;
                tasks.spawn(async move {
                    let tcp = connect_from(source(40 + (n % 100) as u8), to).await?;
                    let key = SigningKey::generate(&mut rand::rngs::OsRng);
                    let config = ConnectionConfig {
                        handshake_timeout: Duration::from_secs(5),
                        ..ConnectionConfig::default()
                    };
                    Connection::connect_with(tcp, &key, true, config).await.ok()
                });
            }
            let done = tokio::time::timeout(Duration::from_secs(30), tasks.join_all())
                .await
                .expect("a batch of handshakes finished within 30 s");
            held.extend(done.into_iter().flatten());
        }
        held
    });
    let still_open = idle.iter().filter(|c| !c.is_closed()).count();
    eprintln!(
        "half-open sockets connected: {}; authenticated idle connections made: {}, still open: {}",
        half_open.len(),
        idle.len(),
        still_open
    );
    // The attackers hold more sockets than the host has slots.
    assert!(half_open.len() + still_open > 1024);

    // A real player, from 127.0.0.1, gets in.
    let invite = hosting["invite"].as_str().unwrap();
    let bob = User::new("bob");
    let mut player = bob.spawn(&["join", invite]);
    let connected = player.expect("connected");
    assert_eq!(connected["peer"], alice.url().as_str());
    lobby.expect_where(WAIT, "bob joined", |e| {
        e["event"] == "peer-joined" && e["name"] == "bob"
    });
    player.say("made it");
    lobby.expect_message("made it");

    // Refusals are summed up in a periodic warning, not printed one line each.
    let summary = lobby.expect_where(Duration::from_secs(25), "a summary warning", |e| {
        e["event"] == "warning" && e["message"].as_str().unwrap_or("").contains("refused")
    });
    eprintln!("summary: {}", summary["message"]);
    let warnings = lobby
        .drain(Duration::from_millis(300))
        .into_iter()
        .filter(|e| e["event"] == "warning")
        .count();
    assert!(
        warnings <= 20,
        "{warnings} more warnings for about 3,100 hostile connections"
    );
    drop(idle);
    drop(half_open);
}
