//! Where joiners come from: TCP connections and relayed streams become a [`Connection`] with
//! the host's limits ([`peer_config`]); the relay's state and the archive's announcement.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::watch;

use super::serve::ServeError;
use super::{Context, HANDSHAKE_TIMEOUT, MAX_FRAME_BYTES, MAX_UNACCEPTED_BYTES};
use crate::net::{Connection, ConnectionConfig, NetError};
use crate::relay::client::{Listener, RelayClient, RelayState, RelayStream};

/// The address to put in invites: the bound one, or for `0.0.0.0` a local interface address
/// (the first non-loopback IPv4 one, else loopback).
pub(super) fn advertised(listen: SocketAddr) -> SocketAddr {
    if !listen.ip().is_unspecified() {
        return listen;
    }
    let ip = if_addrs::get_if_addrs()
        .ok()
        .and_then(|ifs| {
            ifs.into_iter()
                .map(|i| i.ip())
                .find(|ip| ip.is_ipv4() && !ip.is_loopback())
        })
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    SocketAddr::new(ip, listen.port())
}

/// Announces the archive's discovery key on the relay, so that friends find the host by
/// `lookup` (docs/FRIENDS.md). The client re-announces after every reconnect; a failure now (the
/// relay is down) is logged, not fatal.
pub(super) fn announce_archive(client: &RelayClient, discovery_key: [u8; 32]) {
    let client = client.clone();
    tokio::spawn(async move {
        if let Err(e) = client
            .announce(discovery_key, Duration::from_secs(10))
            .await
        {
            tracing::debug!("announcing the archive on the relay: {e}");
        }
    });
}

/// The next relayed connection; pending forever without a relay.
pub(super) async fn accept_relayed(listener: &mut Option<Listener>) -> Option<RelayStream> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// The relay client's next state; pending forever without a relay, `None` once it stopped.
pub(super) async fn relay_changed(
    state: &mut Option<watch::Receiver<RelayState>>,
) -> Option<RelayState> {
    match state {
        Some(rx) => match rx.changed().await {
            Ok(()) => Some(rx.borrow_and_update().clone()),
            Err(_) => None,
        },
        None => std::future::pending().await,
    }
}

/// A joiner's transport, before the [`Connection`] is up.
pub(super) enum Incoming {
    /// A TCP socket: we run the secret-stream handshake.
    Tcp(TcpStream, SocketAddr),
    /// A relayed stream (our own IK handshake and secret-stream, or the relay's when custodial).
    Relay(RelayStream),
}

impl Incoming {
    /// Who connected, for warnings: the TCP address, or `relay:<remote key hex>`.
    pub(super) fn label(&self) -> String {
        match self {
            Incoming::Tcp(_, addr) => addr.to_string(),
            Incoming::Relay(s) => format!("relay:{}", hex::encode(s.remote_public_key())),
        }
    }

    /// The connection, and the local IP address where WebRTC should bind to reach the peer.
    pub(super) async fn connect(
        self,
        ctx: &Context,
    ) -> Result<(Connection, std::net::IpAddr), ServeError> {
        match self {
            Incoming::Tcp(tcp, _) => {
                let _ = tcp.set_nodelay(true);
                let local_ip = tcp.local_addr().map(|a| a.ip()).map_err(NetError::Io)?;
                let conn =
                    Connection::connect_with(tcp, ctx.identity.signing_key(), false, peer_config())
                        .await?;
                Ok((conn, local_ip))
            }
            Incoming::Relay(stream) => {
                let local_ip = stream.local_ip();
                Ok((stream.into_connection(peer_config()), local_ip))
            }
        }
    }
}

/// The settings of every connection the host serves: a short handshake and small buffers
/// ([`HANDSHAKE_TIMEOUT`], [`MAX_FRAME_BYTES`], [`MAX_UNACCEPTED_BYTES`]).
pub(super) fn peer_config() -> ConnectionConfig {
    ConnectionConfig {
        handshake_timeout: HANDSHAKE_TIMEOUT,
        max_frame_bytes: MAX_FRAME_BYTES,
        max_unaccepted_bytes: MAX_UNACCEPTED_BYTES,
        ..ConnectionConfig::default()
    }
}
