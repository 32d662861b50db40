//! The relay server of `dat-social relay`: clients speaking the `@hyperswarm/dht-relay` 0.4.3
//! protocol (PROTOCOL.md) over WebSocket (`ws://`, or `wss://` with a [`TlsConfig`]) or TCP
//! reach each other through it.
//!
//! What works:
//! - rendezvous among the relay's own clients: a client that `listen`s with a key pair is
//!   reachable by any other client that `connect`s to its public key; `announce`/`lookup` on a
//!   topic find the keys the relay's clients announced. No DHT: the rendezvous sits behind
//!   [`Network`] ([`LocalNetwork`] here), the place to plug HyperDHT in later;
//! - custodial mode (the JS client's default: it hands the relay its secret keys): the relay
//!   runs the Noise XX handshake between the two key pairs it holds, so both sides get the same
//!   `handshakeHash` and each other's public key, then relays plaintext `data`/`end`/`destroy`;
//! - non-custodial mode (`custodial: false`: the clients keep their keys): the two clients run
//!   their Noise IK handshake through `noiseSend`/`noiseReceive`/`noiseReply` (the server's
//!   firewall answers inside it), get `open`/`connection` with their own `handshakeId`, and
//!   the relay forwards their secret-stream ciphertext unread. A non-custodial `listen` or
//!   `announce` takes effect once the client signs the record (`signAnnounce` → `signature`),
//!   so nobody can listen on a key they don't hold;
//! - mixed modes (a custodial end and a non-custodial end) are bridged: the relay runs the
//!   hyperdht Noise IK handshake and the secret-stream on behalf of the custodial end with the
//!   key in its custody (initiator for a custodial client, responder for a custodial server,
//!   after asking that server's firewall), so the custodial end sees plaintext and the other
//!   end its own secret-stream (docs/RELAY.md, "Mixed modes");
//! - back-pressure (bounded bytes per stream), per-client limits, heartbeat and idle timeout
//!   ([`Limits`]); a client that breaks the protocol or a limit gets its session closed with a
//!   [`CloseReason`], the others go on;
//! - ICE servers for clients ([`RelayIce`]): with one configured, the relay pairs a client's
//!   `dat-social/ice/v1` channel ([`crate::relay::ice`]) and answers its requests with its
//!   STUN/TURN URLs and fresh TURN REST credentials; JS clients never open that channel.
//!
//! Layers: [`Relay`] is the sans-IO core (frames and time in, frames out) holding one
//! per-client session state machine per connection; [`RelayServer`] drives it with tokio over
//! WebSocket (one binary message per protomux frame) and TCP (`@hyperswarm/secret-stream`
//! framing with a fresh key pair per connection), PROTOCOL.md §6.
//!
//! Not yet: HyperDHT as a [`Network`].

mod hub;
mod ice;
mod input;
mod limits;
mod network;
mod noncustodial;
mod session;
#[cfg(test)]
mod tests;
mod transport;
mod ws;

pub use hub::{custodial_handshake, Relay, ServerEvent};
pub use ice::{credential_name, RelayIce, RelayIceError, ICE_REQUEST_BURST};
pub use limits::{Limits, LimitsError};
pub use network::{LocalNetwork, Network, ServerRef};
pub use transport::{RelayConfig, RelayServer, TlsConfig};

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
    /// Reading or writing the transport failed (includes a failed TCP secret-stream handshake);
    /// the IO or secret-stream error is the source.
    #[error("transport error: {0}")]
    Transport(#[source] TransportError),
    /// The client sent something the protocol does not allow (undecodable frame, a message
    /// before `handshake`, a secret key that does not match its public key, a reused alias).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The client exceeded one of the [`Limits`].
    #[error("limit exceeded: {0}")]
    Limit(String),
    /// No complete frame received from the client for [`Limits::idle_timeout`] (the relay's
    /// own writes, pings included, do not count).
    #[error("idle for more than {0:?}")]
    Idle(std::time::Duration),
    /// The client asked for something this relay does not do.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The relay is shutting down.
    #[error("the relay is shutting down")]
    Shutdown,
}

/// The failure behind [`CloseReason::Transport`], shared so that the reason stays `Clone`.
/// Two are equal only when they are the same failure (one `Arc`).
#[derive(Debug, Clone, thiserror::Error)]
#[error(transparent)]
pub struct TransportError(std::sync::Arc<dyn std::error::Error + Send + Sync>);

impl TransportError {
    /// Wraps the IO or secret-stream error that ended a session's transport.
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        TransportError(std::sync::Arc::new(e))
    }

    /// The error itself (e.g. a [`std::io::Error`] to downcast to).
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl PartialEq for TransportError {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for TransportError {}

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
    /// The TLS certificate or key is unusable (not PEM, mismatched, unsupported): `what` names
    /// the step (`reading the certificate`, `reading the key`, `TLS versions`, `certificate and
    /// key`); the PEM parser's or rustls's error is the source.
    #[error("relay: TLS: {what}: {source}")]
    Tls {
        /// The step that failed.
        what: &'static str,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The certificate file holds no `CERTIFICATE` block.
    #[error("relay: TLS: no CERTIFICATE in the certificate file")]
    NoCertificate,
    /// A [`Limits`] field is out of its range ([`Limits::validate`]).
    #[error("relay: {0}")]
    Limits(#[from] LimitsError),
    /// The ICE config is unusable ([`RelayIce::validate`]).
    #[error("relay: {0}")]
    Ice(#[from] RelayIceError),
}
