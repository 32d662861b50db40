//! Reading another user: the routes to them ([`Route`]), why reaching them failed
//! ([`RemoteError`]), and reading their archive over a connection
//! ([`crate::endpoint::Endpoint::connect`] opens it).

use tokio::time::Instant;

use crate::archive::{self, ArchiveError, Files};
use crate::hypercore::Core;
use crate::keys::IdentityKey;
use crate::net::{Connection, NetError, SharedCore};
use crate::relay::client::{RelayClientError, RelayUrl};

/// Errors reaching a peer or reading its archive.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The address did not answer, refused, or the connection broke during the handshake.
    #[error("cannot reach {addr}: {source}")]
    Unreachable {
        /// The address tried, `host:port` or `relay <url>`.
        addr: String,
        /// What happened.
        #[source]
        source: ReachError,
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

/// Why a route did not lead to the peer ([`RemoteError::Unreachable`]).
#[derive(Debug, thiserror::Error)]
pub enum ReachError {
    /// No lookup found a route to the key.
    #[error("no route found (no address hint, not on the LAN, not announced on a relay)")]
    NoRoute,
    /// A step did not finish before the deadline: `"connection"` (TCP), `"handshake"`
    /// (secret stream), `"connect"` (through a relay).
    #[error("{0} timed out")]
    TimedOut(&'static str),
    /// The socket could not be opened (refused, no route to the host, a bad address).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The connection failed: during the handshake, or while the archive was replicated.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The relay session failed, or nobody listens on the key there.
    #[error(transparent)]
    Relay(#[from] RelayClientError),
    /// The WebRTC connection to a lobby host failed before its data channel opened.
    #[error("the data channel did not open: {0}")]
    DataChannel(crate::rtc::DisconnectReason),
}

/// How to reach a peer: a TCP address, or a relay where the peer listens on its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `host:port`, secret-stream handshake with our identity key.
    Tcp(String),
    /// Through a `@hyperswarm/dht-relay` relay where the peer listens on its key (reached
    /// non-custodially through the endpoint's session to it).
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
    ) -> Result<Option<Route>, RelayClientError> {
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

/// Replicates the archive `key` on `conn` into memory, waits until every block up to the
/// owner's length has arrived (and verified), and returns its files and the live replica.
///
/// Errors: [`RemoteError::Timeout`] at `deadline`, [`RemoteError::Archive`] for an invalid
/// archive or, at once, for a peer that proved a signed tree conflicting with ours
/// ([`crate::hypercore::Error::Conflict`]), [`RemoteError::Unreachable`] if the connection
/// fails.
pub async fn read_archive(
    conn: &Connection,
    key: IdentityKey,
    deadline: Instant,
) -> Result<(Files, SharedCore), RemoteError> {
    let replica = SharedCore::new(Core::in_memory_replica(key.into()));
    conn.replicate(replica.clone())
        .await
        .map_err(|e| RemoteError::Unreachable {
            addr: "the peer".into(),
            source: e.into(),
        })?;
    let mut status = replica.subscribe();
    let complete = status
        .wait_for(|s| s.forked.is_some() || (s.length > 0 && s.contiguous_length >= s.length));
    let timeout = || RemoteError::Timeout(crate::identity::DatUrl::new(key).base());
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
