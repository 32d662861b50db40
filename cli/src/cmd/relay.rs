//! `dat-social relay`: a `@hyperswarm/dht-relay` compatible relay (custodial and non-custodial
//! modes, rendezvous among its own clients) over WebSocket (`ws://`, or `wss://` with
//! `--cert/--key`) and TCP.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use dat_social::ice::IceUrl;
use dat_social::relay::server::{Limits, RelayConfig, RelayIce, RelayServer, TlsConfig};

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
    /// get short-lived credentials minted with --turn-secret-file (coturn:
    /// --use-auth-secret --static-auth-secret=<the same secret>). Only clients with a live
    /// session get them; JS @hyperswarm/dht-relay clients are unaffected.
    #[arg(long = "ice-url", value_name = "URL")]
    ice_url: Vec<IceUrl>,
    /// A file whose first line is the TURN REST shared secret the credentials are minted with.
    #[arg(long, value_name = "FILE")]
    turn_secret_file: Option<std::path::PathBuf>,
    /// Seconds the TURN credentials given to clients stay valid (60-86400); clients renew them
    /// at three quarters of it.
    #[arg(long, default_value_t = RelayIce::DEFAULT_TTL.as_secs(), value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(60..=86_400))]
    ice_ttl: u64,
}

/// The ICE servers to give clients: `None` without `--ice-url`. An unusable combination (a
/// TURN URL without a secret, too many URLs) is a usage error (exit 2); an unreadable secret
/// file an error (exit 1).
fn relay_ice(args: &RelayArgs) -> Result<Option<RelayIce>> {
    if args.ice_url.is_empty() {
        return Ok(None);
    }
    let secret = match &args.turn_secret_file {
        Some(path) => read_secret(path)?,
        None => Vec::new(),
    };
    let ice = RelayIce {
        secret,
        urls: args.ice_url.clone(),
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
        clap::Error::raw(
            clap::error::ErrorKind::ValueValidation,
            format!("invalid value for '{flag}': {e}\n"),
        )
        .exit();
    }
    let ice = relay_ice(&args)?;
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
    text.push_str("\n(Ctrl-C to stop)");
    let stop = output::shutdown_signal();
    out.event(&Event::Listening { ws, tcp }, &text);
    server.run(stop).await?;
    out.event(&Event::Stopped, "relay stopped");
    Ok(0)
}
