//! The network layer: encrypted connections and hypercore replication, wire-compatible with the
//! JS Holepunch stack (`@hyperswarm/secret-stream` 6.9.2, `protomux` 3.12.1, hypercore 11.37.1
//! replication), so our peers replicate with each other and with JS `core.replicate(isInitiator)`
//! piped to a socket.
//!
//! Bottom up:
//! - [`noise`]: sans-IO Noise XX and IK with ed25519 DH (`noise-handshake` + `noise-curve-ed`).
//! - [`secret_stream`]: framing, the handshake exchange and libsodium secretstream encryption.
//! - [`protomux`]: sans-IO channel multiplexer (open/reject/close, batches, pairing).
//! - [`replication`]: sans-IO hypercore replication of one core with one peer.
//! - `shared_core`: [`SharedCore`], a core shared by the app and its connections, with a change
//!   feed (wait for a length or a block).
//! - `transport`: what carries protomux frames under a [`Connection`]: a secret stream on a
//!   socket, or an already-authenticated message stream (a custodial relay stream).
//! - `peer`: the tokio driver, [`Connection`].
//!
//! ```no_run
//! # async fn demo(core: dat_social::net::SharedCore, key: ed25519_dalek::SigningKey) -> Result<(), dat_social::net::NetError> {
//! let tcp = tokio::net::TcpStream::connect("127.0.0.1:4000").await?;
//! let conn = dat_social::net::Connection::connect(tcp, &key, true).await?;
//! conn.replicate(core.clone()).await?;
//! let mut lobby = conn.open_app_channel("dat-social/lobby", None).await?;
//! lobby.send(b"hello")?;
//! let reply = lobby.recv().await;
//! # let _ = reply; Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod noise;
#[cfg(feature = "native")]
pub(crate) mod peer;
pub mod protomux;
pub mod replication;
pub mod secret_stream;
#[cfg(feature = "native")]
pub(crate) mod shared_core;
#[cfg(feature = "native")]
pub(crate) mod transport;

#[cfg(feature = "native")]
pub use peer::{
    AppChannel, AppMessage, ChannelState, Connection, ConnectionConfig, ConnectionEvent,
    RemoteOpens, MAX_APP_UNREAD, MAX_QUEUED_WRITE,
};
pub use protomux::ChannelKey;
pub use secret_stream::SessionInfo;
#[cfg(feature = "native")]
pub use shared_core::{CoreStatus, SharedCore};
#[cfg(feature = "native")]
pub use transport::{FrameReader, FrameWriter};

/// Errors of the network layer. Each one ends only the connection it happened on.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The secure stream failed: handshake error, timeout, peer gone during the handshake,
    /// tampered or garbage frames.
    #[error(transparent)]
    SecretStream(#[from] secret_stream::SecretStreamError),
    /// The peer sent an invalid protomux message.
    #[error(transparent)]
    Mux(#[from] protomux::MuxError),
    /// A channel operation was refused locally (e.g. the channel is already open).
    #[error(transparent)]
    Channel(#[from] protomux::ChannelError),
    /// Replication with the peer failed (bad capability, malformed message, bad proofs).
    #[error(transparent)]
    Replication(#[from] replication::ReplicationError),
    /// Socket error.
    #[error("network io error: {0}")]
    Io(#[from] std::io::Error),
    /// The connection is closed.
    #[error("connection closed")]
    Closed,
    /// Nothing arrived from the peer for this long (it vanished without closing).
    #[error("connection idle for {0:?}: the peer sent nothing, not even keep-alives")]
    IdleTimeout(std::time::Duration),
    /// The peer sent more on an application channel than its reader has taken, past
    /// [`MAX_APP_UNREAD`] bytes: a reader busy elsewhere (e.g. a lobby host deciding on
    /// admission) must not buffer a flood without bound.
    #[error("the peer sent more than {0} bytes on an application channel before they were read")]
    AppFlood(usize),
    /// `replicate` was called twice for the same core (hex key) on one connection.
    #[error("core {0} is already replicating on this connection")]
    AlreadyReplicating(String),
}
