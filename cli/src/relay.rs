//! `dat-social relay`: a `@hyperswarm/dht-relay` compatible relay (custodial and non-custodial
//! modes, rendezvous among its own clients) over WebSocket (`ws://`, or `wss://` with
//! `--cert/--key`) and TCP.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use dat_social::relay::server::{Limits, RelayConfig, RelayServer, TlsConfig};

use crate::output::{self, Output};

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
    /// Most sessions (client connections) at once.
    #[arg(long, default_value_t = Limits::default().max_sessions, value_name = "N")]
    max_sessions: usize,
    /// Most relayed streams per client.
    #[arg(long, default_value_t = Limits::default().max_streams, value_name = "N")]
    max_streams: usize,
    /// Most servers (listen) per client.
    #[arg(long, default_value_t = Limits::default().max_servers, value_name = "N")]
    max_servers: usize,
    /// Most queries (standing announcements and queries in flight) per client.
    #[arg(long, default_value_t = Limits::default().max_queries, value_name = "N")]
    max_queries: usize,
    /// Largest frame a client may send, in bytes.
    #[arg(long, default_value_t = Limits::default().max_frame, value_name = "BYTES")]
    max_frame: usize,
    /// Bytes buffered per stream before the sender is paused (back-pressure).
    #[arg(long, default_value_t = Limits::default().stream_buffer, value_name = "BYTES")]
    stream_buffer: usize,
    /// Seconds without any traffic before a session is closed (a ping is sent every third of it).
    #[arg(long, default_value_t = 45, value_name = "SECS", value_parser = clap::value_parser!(u64).range(3..))]
    idle_timeout: u64,
}

pub async fn relay(args: RelayArgs, out: &Output) -> Result<u8> {
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
        max_sessions: args.max_sessions,
        max_streams: args.max_streams,
        max_servers: args.max_servers,
        max_queries: args.max_queries,
        max_frame: args.max_frame,
        stream_buffer: args.stream_buffer,
        idle_timeout: idle,
        ping_interval: idle / 3,
        ..Limits::default()
    };
    let config = RelayConfig {
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
    out.event(
        "listening",
        serde_json::json!({ "ws": ws, "tcp": tcp }),
        &text,
    );
    server.run(output::shutdown_signal()).await?;
    out.event("stopped", serde_json::json!({}), "relay stopped");
    Ok(0)
}
