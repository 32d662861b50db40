//! Reaching another user: connect to an address, check that the peer is who the URL names, and
//! read their archive over replication.

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::archive::{self, ArchiveError, Files};
use crate::hypercore::Core;
use crate::identity::Identity;
use crate::net::{Connection, SharedCore};

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
            expected: crate::identity::DatUrl::new(key).base(),
        });
    }
    Ok((conn, local_ip))
}

/// Replicates the archive `key` on `conn` into memory, waits until every block up to the
/// owner's length has arrived (and verified), and returns its files and the live replica.
///
/// Errors: [`RemoteError::Timeout`] at `deadline`, [`RemoteError::Archive`] for an invalid
/// archive, [`RemoteError::Unreachable`] if the connection fails.
pub async fn read_archive(
    conn: &Connection,
    key: [u8; 32],
    deadline: Instant,
) -> Result<(Files, SharedCore), RemoteError> {
    let replica = SharedCore::new(Core::in_memory_replica(key));
    conn.replicate(replica.clone())
        .await
        .map_err(|e| RemoteError::Unreachable {
            addr: "the peer".into(),
            reason: e.to_string(),
        })?;
    let mut status = replica.subscribe();
    let complete = status.wait_for(|s| s.length > 0 && s.contiguous_length >= s.length);
    let timeout = || RemoteError::Timeout(crate::identity::DatUrl::new(key).base());
    match tokio::time::timeout_at(deadline, complete).await {
        Ok(Ok(_)) => {}
        Ok(Err(_)) | Err(_) => return Err(timeout()),
    }
    let files = replica
        .with_core(|core| archive::read_files(core))
        .map_err(RemoteError::Archive)?;
    Ok((files, replica))
}
