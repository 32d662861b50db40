//! Reaching another user: connect to an address or through a relay, check that the peer is who
//! the URL names, and read their archive over replication.

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::archive::{self, ArchiveError, Files};
use crate::hypercore::Core;
use crate::identity::Identity;
use crate::keys::IdentityKey;
use crate::net::{Connection, ConnectionConfig, SharedCore};
use crate::relay::client::{ClientOptions, RelayClient, RelayUrl};

/// Errors reaching a peer or reading its archive.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The address did not answer, refused, or the connection broke during the handshake.
    #[error("cannot reach {addr}: {reason}")]
    Unreachable {
        /// The address tried, `host:port`.
        addr: String,
        /// What happened.
        reason: String,
    },
    /// The peer at the address authenticated with another key than the URL's.
    #[error("the peer at {addr} is not {expected}")]
    WrongPeer {
        /// The address.
        addr: String,
        /// The `dat://` URL that was expected.
        expected: String,
    },
    /// The archive did not arrive (fully) before the deadline.
    #[error("timed out waiting for the archive of {0}")]
    Timeout(String),
    /// The archive arrived but is not a valid dat-social archive.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

/// Opens an authenticated connection to `addr` (`host:port`) and checks that the peer's Noise
/// static key is `key` (a user's identity key). Returns the connection, ours to replicate on,
/// and the local IP address it runs from (where WebRTC should bind to reach the same peer).
///
/// Errors: [`RemoteError::Unreachable`] (including `deadline` passing),
/// [`RemoteError::WrongPeer`].
pub async fn connect(
    identity: &Identity,
    addr: &str,
    key: [u8; 32],
    deadline: Instant,
) -> Result<(Connection, std::net::IpAddr), RemoteError> {
    let unreachable = |reason: String| RemoteError::Unreachable {
        addr: addr.to_string(),
        reason,
    };
    let tcp = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
        .await
        .map_err(|_| unreachable("connection timed out".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    // Signalling is many small messages: Nagle's algorithm would add ~40 ms to each round trip.
    let _ = tcp.set_nodelay(true);
    let local_ip = tcp
        .local_addr()
        .map_err(|e| unreachable(e.to_string()))?
        .ip();
    let conn = tokio::time::timeout_at(
        deadline,
        Connection::connect(tcp, identity.signing_key(), true),
    )
    .await
    .map_err(|_| unreachable("handshake timed out".into()))?
    .map_err(|e| unreachable(e.to_string()))?;
    if conn.remote_public_key() != key {
        return Err(RemoteError::WrongPeer {
            addr: addr.to_string(),
            expected: crate::identity::DatUrl::new(IdentityKey::from_bytes(key)).base(),
        });
    }
    Ok((conn, local_ip))
}

/// How to reach a peer: a TCP address, or a relay where the peer listens on its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `host:port`, secret-stream handshake with our identity key.
    Tcp(String),
    /// Through a `@hyperswarm/dht-relay` relay (non-custodial; see [`connect_relay`]).
    Relay(RelayUrl),
}

impl Route {
    /// Picks the route to the owner of `url`: an explicit `peer` (TCP) first, then an explicit
    /// `relay`, then the URL's `relay=` hint, then its `peer=` hint. A relay in the invite is
    /// preferred over its TCP hint: a host that gives one may not be reachable directly.
    /// `Ok(None)`: no route at all.
    ///
    /// Errors: the relay URL (explicit or from the hint) is invalid.
    pub fn pick(
        url: &crate::identity::DatUrl,
        peer: Option<String>,
        relay: Option<RelayUrl>,
    ) -> Result<Option<Route>, crate::relay::client::RelayClientError> {
        if let Some(peer) = peer {
            return Ok(Some(Route::Tcp(peer)));
        }
        if let Some(relay) = relay {
            return Ok(Some(Route::Relay(relay)));
        }
        if let Some(relay) = &url.relay {
            return Ok(Some(Route::Relay(relay.parse()?)));
        }
        Ok(url.peer.clone().map(Route::Tcp))
    }

    /// The address or relay URL, for messages.
    pub fn address(&self) -> String {
        match self {
            Route::Tcp(a) => a.clone(),
            Route::Relay(u) => format!("relay {u}"),
        }
    }
}

/// Reaches the owner of `key` along `route` ([`connect`] or [`connect_relay`]).
///
/// Errors: as those.
pub async fn reach(
    identity: &Identity,
    route: &Route,
    key: [u8; 32],
    deadline: Instant,
) -> Result<(Connection, std::net::IpAddr), RemoteError> {
    match route {
        Route::Tcp(addr) => connect(identity, addr, key, deadline).await,
        Route::Relay(url) => connect_relay(identity, url, key, deadline).await,
    }
}

/// Connects to `key` through the relay at `url` with our identity key, non-custodially (the
/// relay carries our Noise IK handshake and then only ciphertext; the secret key stays here,
/// see [`crate::relay::client`]), and runs a [`Connection`] on the relayed stream. The peer
/// sees our identity key as the connection's remote key, as over TCP. Returns the connection
/// and the local IP address of the socket to the relay. Opens a relay session of its own, which
/// ends with the connection; to share sessions, reach through
/// [`crate::discovery::Discovery::reach`] or [`connect_relay_via`].
///
/// Errors: as [`connect_relay_via`].
pub async fn connect_relay(
    identity: &Identity,
    url: &RelayUrl,
    key: [u8; 32],
    deadline: Instant,
) -> Result<(Connection, std::net::IpAddr), RemoteError> {
    let client = RelayClient::start(
        url.clone(),
        identity.signing_key().clone(),
        ClientOptions::default(),
    );
    // The stream keeps the client's task alive; this handle is not needed afterwards.
    connect_relay_via(&client, key, deadline).await
}

/// Connects to `key` through an existing relay session `client` (whose key is ours), as
/// [`connect_relay`] does.
///
/// Errors: [`RemoteError::Unreachable`] (relay down, nobody listening on `key`, the handshake
/// failed, `deadline`), [`RemoteError::WrongPeer`] if the stream's key is not `key`.
pub async fn connect_relay_via(
    client: &RelayClient,
    key: [u8; 32],
    deadline: Instant,
) -> Result<(Connection, std::net::IpAddr), RemoteError> {
    let url = client.url();
    let unreachable = |reason: String| RemoteError::Unreachable {
        addr: format!("relay {url}"),
        reason,
    };
    let left = deadline.saturating_duration_since(Instant::now());
    client
        .wait_connected(left)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let stream = tokio::time::timeout_at(deadline, client.connect(IdentityKey::from_bytes(key)))
        .await
        .map_err(|_| unreachable("connect timed out".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    if stream.remote_public_key().as_bytes() != &key {
        return Err(RemoteError::WrongPeer {
            addr: format!("relay {url}"),
            expected: crate::identity::DatUrl::new(IdentityKey::from_bytes(key)).base(),
        });
    }
    let local_ip = stream.local_ip();
    Ok((
        stream.into_connection(ConnectionConfig::default()),
        local_ip,
    ))
}

/// Replicates the archive `key` on `conn` into memory, waits until every block up to the
/// owner's length has arrived (and verified), and returns its files and the live replica.
///
/// Errors: [`RemoteError::Timeout`] at `deadline`, [`RemoteError::Archive`] for an invalid
/// archive or, at once, for a peer that proved a signed tree conflicting with ours
/// ([`crate::hypercore::Error::Conflict`]), [`RemoteError::Unreachable`] if the connection
/// fails.
pub async fn read_archive(
    conn: &Connection,
    key: [u8; 32],
    deadline: Instant,
) -> Result<(Files, SharedCore), RemoteError> {
    let replica = SharedCore::new(Core::in_memory_replica(IdentityKey::from_bytes(key).into()));
    conn.replicate(replica.clone())
        .await
        .map_err(|e| RemoteError::Unreachable {
            addr: "the peer".into(),
            reason: e.to_string(),
        })?;
    let mut status = replica.subscribe();
    let complete = status
        .wait_for(|s| s.forked.is_some() || (s.length > 0 && s.contiguous_length >= s.length));
    let timeout =
        || RemoteError::Timeout(crate::identity::DatUrl::new(IdentityKey::from_bytes(key)).base());
    match tokio::time::timeout_at(deadline, complete).await {
        Ok(Ok(s)) => {
            if let Some(length) = s.forked {
                return Err(conflict(length));
            }
        }
        Ok(Err(_)) | Err(_) => return Err(timeout()),
    }
    let files = replica
        .with_core(|core| archive::read_files(core))
        .map_err(RemoteError::Archive)?;
    Ok((files, replica))
}

fn conflict(length: u64) -> RemoteError {
    RemoteError::Archive(ArchiveError::Core(crate::hypercore::Error::Conflict {
        length,
    }))
}

/// Compares an archive just fetched from its owner (`fetched`, from [`read_archive`]) with the
/// verified replica of the same archive under data directory `root`
/// (`replicas/<hex key>/`), if there is one: two different signed trees within the shorter
/// length mean the archive forked (e.g. two copies of one data directory writing), which is
/// reported instead of showing either as the truth. The replica is only read.
///
/// Errors: [`RemoteError::Archive`] holding [`crate::hypercore::Error::Conflict`]. A replica
/// that is missing, unreadable or fails verification is no evidence and is skipped.
pub fn check_against_replica(
    root: &std::path::Path,
    fetched: &SharedCore,
) -> Result<(), RemoteError> {
    let key = fetched.key();
    let dir = crate::friends::Replica::dir(root, &IdentityKey::from_core(key));
    if !dir.join("header").exists() {
        return Ok(());
    }
    let Ok(local) = Core::open(&dir, None) else {
        return Ok(());
    };
    if local.key() != key || local.verify_all().is_err() {
        return Ok(());
    }
    match fetched.with_core(|c| local.diverges_from(c)) {
        Ok(Some(length)) => Err(conflict(length)),
        _ => Ok(()),
    }
}
