//! Dialling one route: a TCP address (our secret-stream handshake) or a relay session (our
//! Noise IK through the relay), checking that the peer authenticates as the key asked for.
//! Internal to the endpoint and [`crate::discovery::Discovery::reach`]; users call
//! [`super::Endpoint::connect`] or [`super::Endpoint::reach`].

use std::net::IpAddr;

use ed25519_dalek::SigningKey;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::keys::IdentityKey;
use crate::net::{Connection, ConnectionConfig};
use crate::relay::client::RelayClient;
use crate::remote::{ReachError, RemoteError};

/// Opens an authenticated connection to `addr` (`host:port`) with our key pair `key` and checks
/// that the peer's Noise static key is `remote` (a user's identity key). Returns the
/// connection, ours to replicate on, and the local IP address it runs from (where WebRTC
/// should bind to reach the same peer).
///
/// Errors: [`RemoteError::Unreachable`] (including `deadline` passing),
/// [`RemoteError::WrongPeer`].
pub(crate) async fn tcp(
    key: &SigningKey,
    addr: &str,
    remote: IdentityKey,
    deadline: Instant,
) -> Result<(Connection, IpAddr), RemoteError> {
    let unreachable = |source: ReachError| RemoteError::Unreachable {
        addr: addr.to_string(),
        source,
    };
    let tcp = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
        .await
        .map_err(|_| unreachable(ReachError::TimedOut("connection")))?
        .map_err(|e| unreachable(e.into()))?;
    // Signalling is many small messages: Nagle's algorithm would add ~40 ms to each round trip.
    let _ = tcp.set_nodelay(true);
    let local_ip = tcp.local_addr().map_err(|e| unreachable(e.into()))?.ip();
    let conn = tokio::time::timeout_at(deadline, Connection::connect(tcp, key, true))
        .await
        .map_err(|_| unreachable(ReachError::TimedOut("handshake")))?
        .map_err(|e| unreachable(e.into()))?;
    check_peer(conn.remote_public_key(), remote, addr)?;
    Ok((conn, local_ip))
}

/// Connects to `remote` through the relay session `client` (whose key is ours),
/// non-custodially (the relay carries our Noise IK handshake and then only ciphertext; the
/// secret key stays here, see [`crate::relay::client`]), and runs a [`Connection`] on the
/// relayed stream. The peer sees our key as the connection's remote key, as over TCP. Returns
/// the connection and the local IP address of the socket to the relay.
///
/// Errors: [`RemoteError::Unreachable`] (relay down, nobody listening on `remote`, the
/// handshake failed, `deadline`), [`RemoteError::WrongPeer`] if the stream's key is not
/// `remote`.
pub(crate) async fn relay(
    client: &RelayClient,
    remote: IdentityKey,
    deadline: Instant,
) -> Result<(Connection, IpAddr), RemoteError> {
    let addr = format!("relay {}", client.url());
    let unreachable = |source: ReachError| RemoteError::Unreachable {
        addr: addr.clone(),
        source,
    };
    let left = deadline.saturating_duration_since(Instant::now());
    client
        .wait_connected(left)
        .await
        .map_err(|e| unreachable(e.into()))?;
    let stream = tokio::time::timeout_at(deadline, client.connect(remote))
        .await
        .map_err(|_| unreachable(ReachError::TimedOut("connect")))?
        .map_err(|e| unreachable(e.into()))?;
    check_peer(stream.remote_public_key(), remote, &addr)?;
    let local_ip = stream.local_ip();
    Ok((
        stream.into_connection(ConnectionConfig::default()),
        local_ip,
    ))
}

/// [`RemoteError::WrongPeer`] unless the peer at `addr` authenticated as `expected`.
fn check_peer(got: IdentityKey, expected: IdentityKey, addr: &str) -> Result<(), RemoteError> {
    if got == expected {
        return Ok(());
    }
    Err(RemoteError::WrongPeer {
        addr: addr.to_string(),
        expected: crate::identity::DatUrl::new(expected).base(),
    })
}
