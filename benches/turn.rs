//! TURN in the NAT lab (tests/natlab): data-channel throughput through `dat-social relay`'s
//! built-in TURN against coturn, and a relay's memory per TURN allocation (issue 10: "our TURN
//! at least as fast as coturn"; "relay memory per TURN allocation"). A bench, not a test: it
//! measures and prints, it asserts only that the setup is what it claims (the relayed path
//! through the server under test).
//!
//! `cargo bench --bench turn` (release build, root, coturn installed). Environment:
//! `ROUNDS` (default 4) rounds of one transfer through each server (ours first in odd rounds,
//! coturn first in even ones) and one direct (no TURN, the client's own ceiling); `IDLE`
//! (default 0) idle allocations made on each server before the transfers;
//! `MIB` (default 64) MiB per transfer in `MESSAGE` (default 16384) byte messages; `PINGS`
//! (default 200) small-message round trips per connection; `DELAY_MS` (default 0) one-way
//! delay per home router; `ALLOCS` (default `1000,5000`) allocation counts of the memory part;
//! `PART` (`throughput`, `memory` or unset for both).
//!
//! The lab: two homes behind symmetric NATs (where only TURN connects) and an open home for
//! the allocation client; on the public segment `dat-social relay` (TURN on 198.51.100.100:3478)
//! and coturn (`turnserver --use-auth-secret` with the same secret, on 198.51.100.101:3478).
//! The client is the library's WebRTC stack (`dat_social::rtc`, str0m) under
//! `IcePolicy::Relay`, the same code for both servers; only the `turn:` URL differs. Each peer
//! runs on its own thread inside its home's network namespace with its own tokio runtime.
//! Bandwidth limits: ours is raised to its maximum (`--turn-bandwidth 1000000000`, 1 GB/s per
//! allocation; the default 2 MB/s would cap the transfer), coturn's `--max-bps` and
//! `--bps-capacity` stay at their default 0 (unlimited).

#[path = "../tests/natlab/mod.rs"]
mod natlab;
#[path = "../tests/support/mod.rs"]
mod support;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dat_social::ice::{rest, IceConfig, IcePolicy, IceServer, PathKind};
use dat_social::rtc::{self, Reliability, RtcConfig, RtcEvent};
use natlab::{HomeOptions, Host, Lab, NatKind, SERVER_IP, SERVER_IP2};
use stun_types::attribute::{ErrorCode, Nonce, Realm, Username};
use stun_types::message::{
    IntegrityAlgorithm, LongTermKeyCredentials, Message, MessageIntegrityCredentials, MessageWrite,
    MessageWriteExt, MessageWriteVec,
};
use support::stats::{env_or, percentile};
use support::sys::status_kib;
use support::Proc;
use tokio::sync::oneshot;
use turn_types::attribute::{RequestedTransport, XorRelayedAddress};
use turn_types::message::ALLOCATE;

/// The TURN REST secret both servers share (coturn's `--static-auth-secret`).
const SECRET: &str = "turn bench secret";
/// Both servers' realm.
const REALM: &str = "dat-social";
/// Both servers' STUN/TURN port, each on its own address of the public segment.
const TURN_PORT: u16 = 3478;
/// Bound on one transfer, its pings and the connection set-up.
const RUN_BOUND: Duration = Duration::from_secs(120);

/// Which TURN server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `dat-social relay`'s built-in TURN.
    Ours,
    /// coturn's `turnserver`.
    Coturn,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ours => "dat-social relay",
            Kind::Coturn => "coturn",
        }
    }

    fn addr(self) -> SocketAddr {
        let ip = match self {
            Kind::Ours => SERVER_IP,
            Kind::Coturn => SERVER_IP2,
        };
        SocketAddr::from((ip, TURN_PORT))
    }
}

/// A TURN server process in the lab's public namespace, killed on drop.
struct Server {
    kind: Kind,
    proc: Proc,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts `kind` with room for `allocations` allocations from one client address, and
    /// waits until it answers a STUN Binding.
    fn start(lab: &Lab, kind: Kind, allocations: usize) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let secret_file = dir.path().join("secret");
        std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
        let n = allocations.to_string();
        let port = TURN_PORT.to_string();
        let ip = kind.addr().ip().to_string();
        let mut cmd;
        let args: Vec<String> = match kind {
            Kind::Ours => {
                cmd = lab.command(lab.public(), support::BIN);
                let secret = secret_file.to_str().unwrap();
                let a: &[&str] = &[
                    "relay",
                    "--json",
                    "--host",
                    &ip,
                    "--port",
                    "49443",
                    "--tcp-port",
                    "49444",
                    "--turn-port",
                    &port,
                    "--turn-secret-file",
                    secret,
                    "--turn-bandwidth",
                    "1000000000",
                    "--turn-max-allocations",
                    &n,
                    "--turn-max-allocations-per-user",
                    &n,
                    "--turn-max-allocations-per-ip",
                    &n,
                ];
                a.iter().map(|s| s.to_string()).collect()
            }
            Kind::Coturn => {
                assert!(
                    natlab::tool_available("turnserver"),
                    "the TURN bench needs coturn (apt-get install coturn)"
                );
                cmd = lab.command(lab.public(), "turnserver");
                let log = dir.path().join("turnserver.log");
                let pid = dir.path().join("turnserver.pid");
                let a: &[&str] = &[
                    "-n",
                    "--no-tls",
                    "--no-dtls",
                    "--no-cli",
                    "--simple-log",
                    "--use-auth-secret",
                    "--static-auth-secret",
                    SECRET,
                    "--realm",
                    REALM,
                    "--listening-ip",
                    &ip,
                    "--relay-ip",
                    &ip,
                    "--listening-port",
                    &port,
                    "--min-port",
                    "49152",
                    "--max-port",
                    "65535",
                    "--log-file",
                    log.to_str().unwrap(),
                    "--pidfile",
                    pid.to_str().unwrap(),
                ];
                a.iter().map(|s| s.to_string()).collect()
            }
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cmd.args(&args).stdin(Stdio::null());
        let mut proc = Proc::spawn(cmd, &args);
        if kind == Kind::Ours {
            proc.expect("listening");
        }
        wait_stun(lab, kind.addr());
        Server {
            kind,
            proc,
            _dir: dir,
        }
    }

    /// Resident memory now, KiB.
    fn rss_kib(&self) -> u64 {
        status_kib(self.proc.pid(), "VmRSS")
            .unwrap_or_else(|| panic!("{} exited: {}", self.kind.name(), self.proc.stderr()))
    }
}

/// Polls `server` with STUN Bindings from the public segment for at most 10 s.
fn wait_stun(lab: &Lab, server: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let socket = lab.udp_socket(lab.public(), 0);
        if natlab::stun::mapped_udp(&socket, server, 1).is_some() {
            return;
        }
        assert!(Instant::now() < deadline, "no STUN answer from {server}");
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Runs `f`'s future on a new thread inside `netns` (setns(2) on that thread, so every socket
/// the future binds is in the namespace) on a current-thread tokio runtime of its own.
fn spawn_in<T, F>(netns: &str, f: impl FnOnce() -> F + Send + 'static) -> std::thread::JoinHandle<T>
where
    F: Future<Output = T>,
    T: Send + 'static,
{
    let path = format!("/run/netns/{netns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: setns(2) with a valid fd of a network namespace file moves only this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        support::sys::current_thread_runtime().block_on(f())
    })
}

/// What one connection measured.
struct Sample {
    /// MiB/s of message payload, from the first send to the receiver's acknowledgement.
    mib_s: f64,
    /// Round trips of small messages, milliseconds.
    rtts: Vec<f64>,
    /// CPU time the TURN server process spent (user + system, all threads) during the
    /// transfer and pings, per MiB of payload; `None` on the direct path.
    server_cpu_ms_per_mib: Option<f64>,
    /// UDP datagrams the kernel dropped for a full receive buffer (`RcvbufErrors`) during the
    /// run, in the public segment and both homes together.
    drops: u64,
}

/// `RcvbufErrors` of `netns`'s UDP counters (`/proc/net/snmp`, per namespace).
fn rcvbuf_errors(lab: &Lab, netns: &str) -> u64 {
    let out = lab.exec(netns, &["cat", "/proc/net/snmp"], Duration::from_secs(10));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next().unwrap(), udp.next().unwrap());
    let i = names
        .split_whitespace()
        .position(|n| n == "RcvbufErrors")
        .unwrap();
    values.split_whitespace().nth(i).unwrap().parse().unwrap()
}

/// CPU time of process `pid` so far (user + system, all threads), milliseconds, from
/// `/proc/<pid>/stat` (clock ticks, usually 10 ms each).
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the server runs");
    // Fields after the command name in parentheses: utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf(3) reads a constant of the system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 * 1e3 / hz
}

/// What a transfer sends.
#[derive(Clone, Copy)]
struct Plan {
    bytes: usize,
    message: usize,
    pings: usize,
}

/// The client's settings: with a TURN `server`, relayed candidates only and one `turn:` URL
/// over UDP with a fresh TURN REST credential; without, host candidates only. Sockets bound on
/// the home host's address.
fn client_config(server: Option<SocketAddr>, ip: Ipv4Addr, name: &str) -> RtcConfig {
    let ice = match server {
        Some(server) => {
            let cred = rest::mint(SECRET.as_bytes(), name, unix_now() + 3600).unwrap();
            IceConfig {
                servers: vec![IceServer {
                    urls: vec![format!("turn:{server}?transport=udp")],
                    username: Some(cred.username),
                    credential: Some(cred.password),
                }],
                policy: IcePolicy::Relay,
            }
        }
        None => IceConfig::default(),
    };
    RtcConfig {
        bind_ip: ip.into(),
        connect_timeout: Duration::from_secs(15),
        ice,
        ..RtcConfig::default()
    }
}

/// The offering side: opens the channel, sends `plan.bytes` in messages (waiting when the
/// send queue is full), waits for the acknowledgement, then times `plan.pings` echoes.
async fn sender(
    cfg: RtcConfig,
    server: Option<SocketAddr>,
    offer_tx: oneshot::Sender<String>,
    answer_rx: oneshot::Receiver<String>,
    plan: Plan,
) -> Sample {
    let (pending, offer) = rtc::create_offer(&cfg, &[("bench", Reliability::Reliable)])
        .await
        .expect("an offer");
    offer_tx.send(offer).unwrap();
    let answer = answer_rx.await.expect("the answer");
    let mut pc = pending.accept_answer(&answer).await.expect("channel open");
    let path = pc.path().expect("a path");
    let kind = if server.is_some() {
        PathKind::Relay
    } else {
        PathKind::Host
    };
    assert_eq!(path.kind, kind, "{path:?}");
    assert_eq!(path.relay, server, "{path:?}");
    let channel = pc.channels()[0];
    let out = pc.sender();
    let message = vec![b'D'; plan.message];
    let count = plan.bytes / plan.message;
    let started = Instant::now();
    let send_all = async {
        for _ in 0..count {
            out.send_wait(channel, &message).await.expect("send");
        }
    };
    let (_, ()) = tokio::join!(send_all, expect(&mut pc, b"done"));
    let secs = started.elapsed().as_secs_f64();
    let mut rtts = Vec::with_capacity(plan.pings);
    for i in 0..plan.pings {
        let ping = [&b"P"[..], &(i as u64).to_be_bytes()].concat();
        let t = Instant::now();
        pc.send(channel, &ping).unwrap();
        expect(&mut pc, &ping).await;
        rtts.push(t.elapsed().as_secs_f64() * 1e3);
    }
    pc.close().await;
    Sample {
        mib_s: (count * plan.message) as f64 / secs / (1024.0 * 1024.0),
        rtts,
        server_cpu_ms_per_mib: None,
        drops: 0,
    }
}

/// Waits for the message `want`, skipping other events; panics if the connection ends.
async fn expect(pc: &mut rtc::PeerConnection, want: &[u8]) {
    loop {
        match pc.next_event().await {
            Some(RtcEvent::Message { data, .. }) if data == want => return,
            Some(RtcEvent::Disconnected { reason }) => panic!("disconnected: {reason}"),
            None => panic!("connection ended"),
            _ => {}
        }
    }
}

/// The answering side: counts data bytes, acknowledges `total` with `done`, echoes pings, and
/// ends when the sender closes.
async fn receiver(
    cfg: RtcConfig,
    offer_rx: oneshot::Receiver<String>,
    answer_tx: oneshot::Sender<String>,
    total: usize,
) {
    let offer = offer_rx.await.expect("the offer");
    let (answer, mut pc) = rtc::accept_offer(&cfg, &offer).await.expect("an answer");
    answer_tx.send(answer).unwrap();
    let mut got = 0;
    while let Some(ev) = pc.next_event().await {
        match ev {
            RtcEvent::Message { channel, data, .. } => match data.first() {
                Some(b'D') => {
                    got += data.len();
                    if got == total {
                        pc.send(channel, b"done").unwrap();
                    }
                }
                Some(b'P') => pc.send(channel, &data).unwrap(),
                _ => {}
            },
            RtcEvent::Disconnected { .. } => break,
            _ => {}
        }
    }
}

/// A way from one home to another: through a TURN server, or direct (host candidates).
struct Route<'a> {
    label: &'static str,
    server: Option<&'a Server>,
    from: Host,
    to: Host,
}

/// One connection along `route`, and its transfer.
fn transfer(lab: &Lab, route: &Route, plan: Plan, round: usize) -> Sample {
    let namespaces = [lab.public(), &route.from.netns, &route.to.netns];
    let drops = || -> u64 { namespaces.iter().map(|ns| rcvbuf_errors(lab, ns)).sum() };
    let drops_before = drops();
    let server = route.server.map(|s| s.kind.addr());
    let tx_cfg = client_config(server, route.from.ip, &format!("sender{round}"));
    let rx_cfg = client_config(server, route.to.ip, &format!("receiver{round}"));
    let (offer_tx, offer_rx) = oneshot::channel();
    let (answer_tx, answer_rx) = oneshot::channel();
    let total = plan.bytes / plan.message * plan.message;
    let cpu_before = route.server.map(|s| cpu_ms(s.proc.pid()));
    let rx = spawn_in(&route.to.netns, move || async move {
        tokio::time::timeout(RUN_BOUND, receiver(rx_cfg, offer_rx, answer_tx, total)).await
    });
    let tx = spawn_in(&route.from.netns, move || async move {
        tokio::time::timeout(RUN_BOUND, sender(tx_cfg, server, offer_tx, answer_rx, plan)).await
    });
    let mut sample = tx
        .join()
        .unwrap()
        .expect("the transfer ended within its bound");
    rx.join()
        .unwrap()
        .expect("the receiver ended within its bound");
    sample.drops = drops() - drops_before;
    if let (Some(s), Some(before)) = (route.server, cpu_before) {
        let mib = total as f64 / (1024.0 * 1024.0);
        sample.server_cpu_ms_per_mib = Some((cpu_ms(s.proc.pid()) - before) / mib);
    }
    sample
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|x, y| x.partial_cmp(y).unwrap());
    v
}

/// Part 1: `rounds` rounds of one transfer through our TURN, one through coturn (symmetric
/// NAT to symmetric NAT) and one direct between two open homes (the client's own ceiling).
///
/// With `idle` > 0, each TURN server first gets `idle` more allocations from a third home that
/// stay idle during the transfers: a relay serving other clients.
fn throughput(lab: &mut Lab, rounds: usize, plan: Plan, delay: Option<Duration>, idle: usize) {
    let options = HomeOptions { hosts: 1, delay };
    let mut host = |kind| lab.add_home_with(kind, options).host().clone();
    let (a, b) = (host(NatKind::Symmetric), host(NatKind::Symmetric));
    let (c, d) = (host(NatKind::Open), host(NatKind::Open));
    let idler = lab.add_home(NatKind::Open, 1).host().clone();
    let ours = Server::start(lab, Kind::Ours, idle + 64);
    let coturn = Server::start(lab, Kind::Coturn, idle + 64);
    let _idle: Vec<UdpSocket> = [&ours, &coturn]
        .iter()
        .flat_map(|s| allocations(&idler.netns, s.kind.addr(), 0, idle))
        .collect();
    let routes = [
        Route {
            label: "dat-social relay (TURN)",
            server: Some(&ours),
            from: a.clone(),
            to: b.clone(),
        },
        Route {
            label: "coturn (TURN)",
            server: Some(&coturn),
            from: a,
            to: b,
        },
        Route {
            label: "direct (no TURN, open homes)",
            server: None,
            from: c,
            to: d,
        },
    ];
    println!(
        "Throughput: {} MiB in {}-byte messages on a reliable channel, {} ms one-way delay per router, \
         {idle} idle allocations on each TURN server",
        plan.bytes >> 20,
        plan.message,
        delay.unwrap_or_default().as_millis()
    );
    println!(
        "| round | path | MiB/s | server CPU ms per MiB | UDP drops | ping p50 ms | ping p99 ms |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    let mut all: Vec<(usize, Sample)> = Vec::new();
    for round in 1..=rounds {
        // Alternate which server goes first, so that a drift in load favours neither.
        let mut order = [0, 1, 2];
        if round % 2 == 0 {
            order.swap(0, 1);
        }
        for i in order {
            let route = &routes[i];
            let mut s = transfer(lab, route, plan, round);
            s.rtts = sorted(std::mem::take(&mut s.rtts));
            println!(
                "| {round} | {} | {:.1} | {} | {} | {:.2} | {:.2} |",
                route.label,
                s.mib_s,
                s.server_cpu_ms_per_mib
                    .map_or("".into(), |c| format!("{c:.1}")),
                s.drops,
                percentile(&s.rtts, 50.0),
                percentile(&s.rtts, 99.0)
            );
            all.push((i, s));
        }
    }
    println!("| path | runs | MiB/s median | min | max | server CPU ms per MiB, median | ping p50 ms (all runs) |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (i, route) in routes.iter().enumerate() {
        let runs: Vec<&Sample> = all
            .iter()
            .filter(|(j, _)| *j == i)
            .map(|(_, s)| s)
            .collect();
        let rates = sorted(runs.iter().map(|s| s.mib_s).collect());
        let cpu = sorted(
            runs.iter()
                .filter_map(|s| s.server_cpu_ms_per_mib)
                .collect(),
        );
        let rtts = sorted(runs.iter().flat_map(|s| s.rtts.iter().copied()).collect());
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {} | {:.2} |",
            route.label,
            rates.len(),
            percentile(&rates, 50.0),
            rates[0],
            rates[rates.len() - 1],
            if cpu.is_empty() {
                String::new()
            } else {
                format!("{:.1}", percentile(&cpu, 50.0))
            },
            percentile(&rtts, 50.0)
        );
    }
}

/// Allocates on `server` from `socket` with a fresh TURN REST credential for `name`: the
/// unauthenticated Allocate (401 with the realm and nonce), then the signed one. The relayed
/// address, or what went wrong.
fn allocate(socket: &UdpSocket, server: SocketAddr, name: &str) -> Result<SocketAddr, String> {
    let cred = rest::mint(SECRET.as_bytes(), name, unix_now() + 3600).unwrap();
    let udp = RequestedTransport::new(RequestedTransport::UDP);
    let ask = |bytes: Vec<u8>| -> Result<Vec<u8>, String> {
        socket.send_to(&bytes, server).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 2048];
        let n = socket.recv(&mut buf).map_err(|e| e.to_string())?;
        buf.truncate(n);
        Ok(buf)
    };
    let mut w = Message::builder_request(ALLOCATE, MessageWriteVec::new());
    w.add_attribute(&udp).unwrap();
    let first = ask(w.finish())?;
    let msg = Message::from_bytes(&first).map_err(|e| format!("{e:?}"))?;
    let nonce = msg
        .attribute::<Nonce>()
        .map_err(|e| format!("no nonce: {e:?}"))?;
    let realm = msg
        .attribute::<Realm>()
        .map_err(|e| format!("no realm: {e:?}"))?;
    let mut w = Message::builder_request(ALLOCATE, MessageWriteVec::new());
    w.add_attribute(&udp).unwrap();
    w.add_attribute(&Username::new(&cred.username).unwrap())
        .unwrap();
    w.add_attribute(&realm).unwrap();
    w.add_attribute(&nonce).unwrap();
    let key: MessageIntegrityCredentials =
        LongTermKeyCredentials::new(cred.username, cred.password, realm.realm().into()).into();
    w.add_message_integrity(&key, IntegrityAlgorithm::Sha1)
        .unwrap();
    let answer = ask(w.finish())?;
    let msg = Message::from_bytes(&answer).map_err(|e| format!("{e:?}"))?;
    if let Ok(e) = msg.attribute::<ErrorCode>() {
        return Err(format!("error {} {}", e.code(), e.reason()));
    }
    msg.attribute::<XorRelayedAddress>()
        .map(|a| a.addr(msg.transaction_id()))
        .map_err(|e| format!("no relayed address: {e:?}"))
}

/// Makes `n` allocations on `server` from new sockets in `netns`; returns the sockets (the
/// allocations live for their lifetime, an hour, whatever the sockets do).
fn allocations(netns: &str, server: SocketAddr, from: usize, n: usize) -> Vec<UdpSocket> {
    natlab::in_netns(netns, move || {
        (from..from + n)
            .map(|i| {
                let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
                socket
                    .set_read_timeout(Some(Duration::from_secs(2)))
                    .unwrap();
                if let Err(e) = allocate(&socket, server, &format!("m{i}")) {
                    panic!("allocation {i} on {server}: {e}");
                }
                socket
            })
            .collect()
    })
}

/// Part 2: a fresh server of each kind, its RSS before and after each count of live
/// allocations made from one client host.
fn memory(lab: &mut Lab, counts: &[usize]) {
    let client = lab.add_home(NatKind::Open, 1).host().clone();
    let most = *counts.iter().max().unwrap();
    println!("Memory: RSS of a fresh server process before and with N live UDP allocations");
    println!("| server | N | RSS before KiB | RSS with N KiB | bytes per allocation |");
    println!("|---|---:|---:|---:|---:|");
    for kind in [Kind::Ours, Kind::Coturn] {
        let server = Server::start(lab, kind, most + 16);
        std::thread::sleep(Duration::from_secs(1));
        let before = server.rss_kib();
        let mut sockets = Vec::new();
        for &n in counts {
            let more = allocations(&client.netns, kind.addr(), sockets.len(), n - sockets.len());
            sockets.extend(more);
            std::thread::sleep(Duration::from_secs(1));
            let with = server.rss_kib();
            println!(
                "| {} | {n} | {before} | {with} | {:.0} |",
                kind.name(),
                (with.saturating_sub(before) * 1024) as f64 / n as f64
            );
        }
        drop(server);
        drop(sockets);
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a plain `cargo test` of benches passes nothing and we skip.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let Some(mut lab) = Lab::new("turn") else {
        return;
    };
    let part = std::env::var("PART").unwrap_or_default();
    if part.is_empty() || part == "throughput" {
        let plan = Plan {
            bytes: env_or("MIB", 64usize) << 20,
            message: env_or("MESSAGE", 16 * 1024),
            pings: env_or("PINGS", 200),
        };
        let delay = Some(Duration::from_millis(env_or("DELAY_MS", 0))).filter(|d| !d.is_zero());
        throughput(
            &mut lab,
            env_or("ROUNDS", 4),
            plan,
            delay,
            env_or("IDLE", 0),
        );
    }
    if part.is_empty() || part == "memory" {
        let counts: Vec<usize> = std::env::var("ALLOCS")
            .unwrap_or_else(|_| "1000,5000".into())
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .expect("ALLOCS: counts separated by commas")
            })
            .collect();
        memory(&mut lab, &counts);
    }
}
