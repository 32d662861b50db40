//! `dat-social relay`: a `@hyperswarm/dht-relay` compatible relay (custodial and non-custodial
//! modes, rendezvous among its own clients) over WebSocket (`ws://`, or `wss://` with
//! `--cert/--key`) and TCP; plus a STUN/TURN server (UDP and TCP on `--turn-port`, default
//! 3478) whose credentials are TURN REST credentials under the relay's secret.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use dat_social::ice::IceUrl;
use dat_social::relay::server::{Limits, RelayConfig, RelayIce, RelayServer, TlsConfig};
use dat_social::relay::turn::{TurnConfig, TurnDriver, TurnDriverConfig, TurnInfo, TurnLimits};

use crate::event::Event;
use crate::output::{self, Output};

/// Options of `dat-social relay`.
#[derive(Args)]
pub struct RelayArgs {
    /// WebSocket port.
    #[arg(long, default_value_t = 49443)]
    port: u16,
    /// Address to listen on (WebSocket and TCP).
    #[arg(long, default_value = "0.0.0.0")]
    host: String,
    /// Also accept the TCP transport (secret-stream framing) on this port.
    #[arg(long, value_name = "PORT")]
    tcp_port: Option<u16>,
    /// TLS certificate chain (PEM) for wss:// on --port (the server's certificate first).
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<std::path::PathBuf>,
    /// TLS private key (PEM: PKCS#8, RSA or EC) matching --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<std::path::PathBuf>,
    /// Behind a reverse proxy: log WebSocket clients by their X-Forwarded-For address.
    #[arg(long)]
    behind_proxy: bool,
    /// Most sessions (client connections) at once (1 to 1,000,000).
    #[arg(long, default_value_t = Limits::default().max_sessions as u64, value_name = "N",
          value_parser = clap::value_parser!(u64).range(range(Limits::MAX_SESSIONS_RANGE)))]
    max_sessions: u64,
    /// Most relayed streams per client (1 to 65,536).
    #[arg(long, default_value_t = Limits::default().max_streams as u64, value_name = "N",
          value_parser = clap::value_parser!(u64).range(range(Limits::PER_CLIENT_RANGE)))]
    max_streams: u64,
    /// Most servers (listen) per client (1 to 65,536).
    #[arg(long, default_value_t = Limits::default().max_servers as u64, value_name = "N",
          value_parser = clap::value_parser!(u64).range(range(Limits::PER_CLIENT_RANGE)))]
    max_servers: u64,
    /// Most queries (standing announcements and queries in flight) per client (1 to 65,536).
    #[arg(long, default_value_t = Limits::default().max_queries as u64, value_name = "N",
          value_parser = clap::value_parser!(u64).range(range(Limits::PER_CLIENT_RANGE)))]
    max_queries: u64,
    /// Largest frame a client may send, in bytes (4096 to 8388608, i.e. 4 KiB to 8 MiB).
    #[arg(long, default_value_t = Limits::default().max_frame as u64, value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(range(Limits::MAX_FRAME_RANGE)))]
    max_frame: u64,
    /// Bytes buffered per stream before the sender is paused (back-pressure) (1024 to
    /// 1073741824, i.e. 1 KiB to 1 GiB).
    #[arg(long, default_value_t = Limits::default().stream_buffer as u64, value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(range(Limits::STREAM_BUFFER_RANGE)))]
    stream_buffer: u64,
    /// Bytes of partly received frames all clients together may hold beyond 16 KiB each; a
    /// client past both waits (4096 to 68719476736, i.e. up to 64 GiB; at least --max-frame).
    #[arg(long, default_value_t = Limits::default().input_budget as u64, value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(4096..=Limits::MAX_INPUT_BUDGET as u64))]
    input_budget: u64,
    /// Seconds without a complete frame from a client (a pong, or anything else) before its
    /// session is closed; a ping is sent every third of it (3 to 86,400).
    #[arg(long, default_value_t = 45, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(3..=Limits::MAX_IDLE.as_secs()))]
    idle_timeout: u64,
    /// Give clients this STUN or TURN server (repeat for several), e.g. an external coturn:
    /// stun:HOST:PORT, turn:HOST:PORT?transport=udp, turn:HOST:PORT?transport=tcp. TURN URLs
    /// get short-lived credentials minted with the relay's TURN secret (--turn-secret-file) (coturn:
    /// --use-auth-secret --static-auth-secret=<the same secret>). Only clients with a live
    /// session get them; JS @hyperswarm/dht-relay clients are unaffected.
    #[arg(long = "ice-url", value_name = "URL")]
    ice_url: Vec<IceUrl>,
    /// Seconds the TURN credentials given to clients stay valid (60-86400); clients renew them
    /// at three quarters of it.
    #[arg(long, default_value_t = RelayIce::DEFAULT_TTL.as_secs(), value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(60..=86_400))]
    ice_ttl: u64,
    #[command(flatten)]
    turn: TurnArgs,
}

/// The STUN/TURN options of `dat-social relay` (docs/RELAY.md "STUN and TURN").
#[derive(Args)]
pub struct TurnArgs {
    /// STUN/TURN port, UDP and TCP on the same number, on --host (0 to 65535; 0 picks a free
    /// port). Open it, and the --turn-min-port..--turn-max-port UDP range, in the firewall.
    #[arg(long, default_value_t = dat_social::relay::turn::DEFAULT_PORT, value_name = "PORT")]
    turn_port: u16,
    /// Do not run the STUN/TURN server (the other --turn-* options are then ignored).
    #[arg(long)]
    no_turn: bool,
    /// The public IP address of this machine when it sits behind a NAT (a cloud VM): TURN
    /// advertises it in relayed addresses (with the real ports) and in its URLs. Needed there,
    /// or clients get unreachable relayed candidates.
    #[arg(long, value_name = "ADDR")]
    external_ip: Option<std::net::IpAddr>,
    /// The TURN REST secret, read from FILE: its first line without surrounding whitespace is
    /// the HMAC key, as coturn's --static-auth-secret takes the same text (so coturn with
    /// --use-auth-secret and this secret accepts the same credentials, and --ice-url can
    /// advertise such a coturn). Default: a fresh random secret per run.
    #[arg(long, value_name = "FILE")]
    turn_secret_file: Option<std::path::PathBuf>,
    /// Let TURN relay to loopback addresses (labs and tests only; like coturn's
    /// --allow-loopback-peers). Refused with 403 by default.
    #[arg(long)]
    turn_allow_loopback: bool,
    /// Let TURN relay to private (RFC 1918, fc00::/7), link-local and shared (100.64/10)
    /// addresses (labs and LANs only). Refused with 403 by default.
    #[arg(long)]
    turn_allow_private: bool,
    /// Lowest UDP port of relayed addresses (1024 to 65535).
    #[arg(long, default_value_t = 49152, value_name = "PORT",
          value_parser = clap::value_parser!(u16).range(1024..))]
    turn_min_port: u16,
    /// Highest UDP port of relayed addresses (1024 to 65535; at least --turn-min-port).
    #[arg(long, default_value_t = 65535, value_name = "PORT",
          value_parser = clap::value_parser!(u16).range(1024..))]
    turn_max_port: u16,
    /// Most TURN allocations at once, all clients together (1 to 1,000,000).
    #[arg(long, default_value_t = TurnLimits::default().max_allocations as u64, value_name = "N",
          value_parser = clap::value_parser!(u64).range(TurnLimits::TOTAL_RANGE))]
    turn_max_allocations: u64,
    /// Most TURN allocations per credential (one client) (1 to 65,536).
    #[arg(long, default_value_t = TurnLimits::default().max_allocations_per_user as u64, value_name = "N",
          value_parser = clap::value_parser!(u64).range(TurnLimits::PER_CLIENT_RANGE))]
    turn_max_allocations_per_user: u64,
    /// Most TURN allocations per client IP address (1 to 65,536).
    #[arg(long, default_value_t = TurnLimits::default().max_allocations_per_ip as u64, value_name = "N",
          value_parser = clap::value_parser!(u64).range(TurnLimits::PER_CLIENT_RANGE))]
    turn_max_allocations_per_ip: u64,
    /// Lifetime of a TURN allocation a client does not refresh, in seconds, when it asks for
    /// less (60 to 3600; at most --turn-max-lifetime).
    #[arg(long, default_value_t = 600, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(TurnLimits::LIFETIME_RANGE))]
    turn_lifetime: u64,
    /// Longest TURN allocation lifetime granted, in seconds (60 to 3600).
    #[arg(long, default_value_t = 3600, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(TurnLimits::LIFETIME_RANGE))]
    turn_max_lifetime: u64,
    /// Most permissions (peer IP addresses) per TURN allocation (1 to 4096).
    #[arg(long, default_value_t = TurnLimits::default().max_permissions as u64, value_name = "N",
          value_parser = clap::value_parser!(u64).range(TurnLimits::PER_ALLOCATION_RANGE))]
    turn_max_permissions: u64,
    /// Most channel bindings per TURN allocation (1 to 4096).
    #[arg(long, default_value_t = TurnLimits::default().max_channels as u64, value_name = "N",
          value_parser = clap::value_parser!(u64).range(TurnLimits::PER_ALLOCATION_RANGE))]
    turn_max_channels: u64,
    /// Relayed bytes per second per TURN allocation, both directions, with a one-second burst;
    /// the excess is dropped (1000 to 1000000000).
    #[arg(long, default_value_t = TurnLimits::default().bandwidth, value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(TurnLimits::BANDWIDTH_RANGE))]
    turn_bandwidth: u64,
}

/// A usage error (exit 2) for `flag`.
fn usage_error(flag: &str, message: impl std::fmt::Display) -> ! {
    clap::Error::raw(
        clap::error::ErrorKind::ValueValidation,
        format!("invalid value for '{flag}': {message}\n"),
    )
    .exit()
}

impl TurnArgs {
    /// The TURN REST secret: the first line of --turn-secret-file, or a fresh random one
    /// (hex text of 32 random bytes, so it is also a valid coturn --static-auth-secret).
    fn secret(&self) -> Result<Vec<u8>> {
        match &self.turn_secret_file {
            Some(path) => read_secret(path),
            None => Ok(hex::encode(rand::random::<[u8; 32]>()).into_bytes()),
        }
    }

    /// The TURN driver's configuration on `ip`, `None` with `--no-turn`. Out-of-range
    /// combinations exit 2; an unreadable secret file is an error.
    fn config(&self, ip: std::net::IpAddr) -> Result<Option<TurnDriverConfig>> {
        if self.no_turn {
            return Ok(None);
        }
        let limits = TurnLimits {
            max_allocations: size(self.turn_max_allocations),
            max_allocations_per_user: size(self.turn_max_allocations_per_user),
            max_allocations_per_ip: size(self.turn_max_allocations_per_ip),
            default_lifetime: Duration::from_secs(self.turn_lifetime),
            max_lifetime: Duration::from_secs(self.turn_max_lifetime),
            max_permissions: size(self.turn_max_permissions),
            max_channels: size(self.turn_max_channels),
            bandwidth: self.turn_bandwidth,
        };
        if let Err(e) = limits.validate() {
            let flag = match e.field {
                "default_lifetime" => "--turn-lifetime".to_owned(),
                f => format!("--turn-{}", f.replace('_', "-")),
            };
            usage_error(&flag, e);
        }
        if self.turn_min_port > self.turn_max_port {
            usage_error("--turn-max-port", "below --turn-min-port");
        }
        let secret = self.secret()?;
        let mut turn = TurnConfig::new(secret);
        turn.external_ip = self.external_ip;
        turn.allow_loopback_peers = self.turn_allow_loopback;
        turn.allow_private_peers = self.turn_allow_private;
        turn.limits = limits;
        Ok(Some(TurnDriverConfig {
            listen: SocketAddr::new(ip, self.turn_port),
            relay_ports: self.turn_min_port..=self.turn_max_port,
            turn,
        }))
    }
}

/// The ICE servers to give clients: the built-in STUN/TURN server's URLs (`turn`, unless
/// `--no-turn`) then every `--ice-url`, with credentials under the relay's TURN secret; `None`
/// when there is neither. An unusable combination (a TURN URL without a secret, too many URLs)
/// is a usage error (exit 2); an unreadable secret file an error (exit 1).
fn relay_ice(args: &RelayArgs, turn: Option<&TurnInfo>) -> Result<Option<RelayIce>> {
    let mut urls = turn.map(TurnInfo::urls).unwrap_or_default();
    urls.extend(args.ice_url.iter().cloned());
    if urls.is_empty() {
        return Ok(None);
    }
    let secret = match (turn, &args.turn.turn_secret_file) {
        (Some(info), _) => info.secret.clone(),
        (None, Some(path)) => read_secret(path)?,
        (None, None) => Vec::new(),
    };
    let ice = RelayIce {
        secret,
        urls,
        ttl: Duration::from_secs(args.ice_ttl),
    };
    if let Err(e) = ice.validate() {
        clap::Error::raw(
            clap::error::ErrorKind::ArgumentConflict,
            format!("invalid value for '--ice-url': {e}\n"),
        )
        .exit();
    }
    Ok(Some(ice))
}

/// The first line of `path`, without surrounding whitespace: a shared secret as coturn's
/// `--static-auth-secret` takes it. Errors: unreadable, or an empty first line.
fn read_secret(path: &std::path::Path) -> Result<Vec<u8>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --turn-secret-file {}", path.display()))?;
    let secret = text.lines().next().unwrap_or("").trim();
    anyhow::ensure!(
        !secret.is_empty(),
        "--turn-secret-file {}: the first line is empty",
        path.display()
    );
    Ok(secret.as_bytes().to_vec())
}

/// A `usize` range of [`Limits`] as the `u64` range clap checks.
fn range(r: std::ops::RangeInclusive<usize>) -> std::ops::RangeInclusive<u64> {
    *r.start() as u64..=*r.end() as u64
}

/// `n` as `usize` (saturating on 32-bit targets; [`Limits::validate`] then refuses it).
fn size(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Binds the relay, prints `listening`, serves until Ctrl-C/SIGTERM, then prints `stopped`.
/// A combination of limits that is out of range is a usage error (exit 2).
pub async fn run(args: RelayArgs, out: &Output) -> Result<u8> {
    let tls = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => Some(TlsConfig::from_pem_files(cert, key)?),
        _ => None,
    };
    let ip: std::net::IpAddr = args
        .host
        .parse()
        .with_context(|| format!("--host {:?} is not an IP address", args.host))?;
    let idle = Duration::from_secs(args.idle_timeout);
    let limits = Limits {
        max_sessions: size(args.max_sessions),
        max_streams: size(args.max_streams),
        max_servers: size(args.max_servers),
        max_queries: size(args.max_queries),
        max_frame: size(args.max_frame),
        stream_buffer: size(args.stream_buffer),
        input_budget: size(args.input_budget),
        idle_timeout: idle,
        ping_interval: idle / 3,
        ..Limits::default()
    };
    if let Err(e) = limits.validate() {
        // Each flag's own range is checked by clap; this is what is left (e.g. an input budget
        // below --max-frame): a usage error all the same (exit 2).
        let flag = format!("--{}", e.field.replace('_', "-"));
        usage_error(&flag, e);
    }
    let turn_config = args.turn.config(ip)?;
    let turn = match turn_config {
        Some(c) => Some(TurnThread::start(c).await?),
        None => None,
    };
    let ice = relay_ice(&args, turn.as_ref().map(|t| &t.info))?;
    let config = RelayConfig {
        ice,
        ws: Some(SocketAddr::new(ip, args.port)),
        tcp: args.tcp_port.map(|p| SocketAddr::new(ip, p)),
        limits,
        behind_proxy: args.behind_proxy,
        tls,
    };
    let server = RelayServer::bind(config).await?;
    let ws = server.ws_url();
    let tcp = server.tcp_addr().map(|a| format!("tcp://{a}"));
    let mut text = format!("relay listening on {}", ws.as_deref().unwrap_or("-"));
    if let Some(t) = &tcp {
        text.push_str(&format!(" and {t}"));
    }
    let info = turn.as_ref().map(|t| t.info.clone());
    if let Some(i) = &info {
        let urls: Vec<String> = i.urls().iter().map(|u| u.to_string()).collect();
        text.push_str(&format!(
            "\nSTUN/TURN on udp {} and tcp {} ({})",
            i.udp,
            i.tcp,
            urls.join(" ")
        ));
    }
    text.push_str("\n(Ctrl-C to stop)");
    let stop = output::shutdown_signal();
    let event = Event::Listening {
        ws,
        tcp,
        turn_udp: info.as_ref().map(|i| i.udp.to_string()),
        turn_tcp: info.as_ref().map(|i| i.tcp.to_string()),
        turn_urls: info
            .as_ref()
            .map(|i| i.urls().iter().map(|u| u.to_string()).collect()),
    };
    out.event(&event, &text);
    // The TURN server stops with the relay, once the relay's run returns.
    let served = server.run(stop).await;
    if let Some(turn) = turn {
        turn.stop().await?;
    }
    served?;
    out.event(&Event::Stopped, "relay stopped");
    Ok(0)
}

/// The TURN server on a thread of its own, with a current-thread runtime: each relayed datagram
/// is read, handled and sent on that one thread, with no hand-off between the relay's worker
/// threads per burst (coturn, too, handles a packet on the thread that read it). BENCHMARKS.md,
/// "TURN", measured the difference.
struct TurnThread {
    /// Where it listens and the URLs it serves.
    info: TurnInfo,
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::sync::oneshot::Receiver<Result<(), dat_social::relay::turn::TurnError>>,
}

impl TurnThread {
    /// Starts the thread and binds the server's sockets there (a socket belongs to the runtime
    /// it was bound in). Errors: the thread or its runtime could not start, or binding failed.
    async fn start(config: TurnDriverConfig) -> Result<TurnThread> {
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("the TURN server's runtime")?;
        std::thread::Builder::new()
            .name("turn".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let driver = match TurnDriver::bind(config).await {
                        Ok(d) => d,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(driver.info().clone()));
                    let ran = driver
                        .run(async move {
                            let _ = stopped.await;
                        })
                        .await;
                    let _ = done_tx.send(ran);
                })
            })
            .context("the TURN server's thread")?;
        let info = ready.await.context("the TURN server's thread ended")??;
        Ok(TurnThread { info, stop, done })
    }

    /// Stops the server and waits for it (its allocations are released).
    async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        match self.done.await {
            Ok(ran) => ran.context("the TURN server"),
            Err(_) => anyhow::bail!("the TURN server's thread ended unexpectedly"),
        }
    }
}
