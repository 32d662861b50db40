//! The relay server of `dat-social relay`: clients speaking the `@hyperswarm/dht-relay` 0.4.3
//! protocol (PROTOCOL.md) over WebSocket or TCP reach each other through it.
//!
//! What works (first slice, custodial mode):
//! - rendezvous among the relay's own clients: a client that `listen`s with a key pair is
//!   reachable by any other client that `connect`s to its public key; `announce`/`lookup` on a
//!   topic find the keys the relay's clients announced. No DHT: the rendezvous sits behind
//!   [`Network`] ([`LocalNetwork`] here), the place to plug HyperDHT in later;
//! - for a connect, the relay runs the Noise XX handshake between the two key pairs it holds
//!   (the clients hand it their secret keys, the JS client's default) so both sides get the same
//!   `handshakeHash` and each other's public key, then relays `data`/`end`/`destroy`;
//! - back-pressure (bounded bytes per stream), per-client limits, heartbeat and idle timeout
//!   ([`Limits`]); a client that breaks the protocol or a limit gets its session closed with a
//!   [`CloseReason`], the others go on.
//!
//! Layers: [`Relay`] is the sans-IO core (frames and time in, frames out) holding one
//! per-client session state machine per connection; [`RelayServer`] drives it with tokio over
//! WebSocket (one binary message per protomux frame) and TCP (`@hyperswarm/secret-stream`
//! framing with a fresh key pair per connection), PROTOCOL.md §6.
//!
//! Not yet (extension points are marked in the code): non-custodial mode
//! (`noiseSend`/`noiseReceive`/`noiseReply`, `signAnnounce`), HyperDHT as a [`Network`].

mod hub;
mod limits;
mod network;
mod session;
#[cfg(test)]
mod tests;
mod transport;

pub use hub::{custodial_handshake, Relay};
pub use limits::Limits;
pub use network::{LocalNetwork, Network, ServerRef};
pub use transport::{RelayConfig, RelayServer};

/// A client session of the relay (unique per relay process).
pub type SessionId = u64;
/// A relayed stream pair.
pub(crate) type PairId = u64;
/// A connect waiting for the server's firewall answer.
pub(crate) type PendingId = u64;

/// Why a session was closed. Logged by the relay (and sent as the WebSocket close reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    /// The client closed the connection or the relay channel.
    #[error("the client went away")]
    ClientGone,
    /// Reading or writing the transport failed (includes a failed TCP secret-stream handshake).
    #[error("transport error: {0}")]
    Transport(String),
    /// The client sent something the protocol does not allow (undecodable frame, a message
    /// before `handshake`, a secret key that does not match its public key, a reused alias).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The client exceeded one of the [`Limits`].
    #[error("limit exceeded: {0}")]
    Limit(String),
    /// Nothing received and nothing written for [`Limits::idle_timeout`].
    #[error("idle for more than {0:?}")]
    Idle(std::time::Duration),
    /// The client asked for something this relay does not do yet (non-custodial listen).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The relay is shutting down.
    #[error("the relay is shutting down")]
    Shutdown,
}

/// Errors of the relay server API.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// [`Limits::max_sessions`] sessions are already open.
    #[error("the relay already holds {0} sessions")]
    TooManySessions(usize),
    /// Binding a listening socket, or reading the TLS files, failed.
    #[error("relay: {context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}
