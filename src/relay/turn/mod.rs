//! The STUN and TURN server of `dat-social relay`: STUN Binding (RFC 8489 §3, the
//! server-reflexive address) and TURN over UDP relays (RFC 8656: Allocate, Refresh,
//! CreatePermission, ChannelBind, Send/Data indications, ChannelData), reached over UDP and,
//! on the same port number, TCP (RFC 8656 §3.1).
//!
//! Layers:
//! - [`TurnServer`]: the sans-IO core. Datagrams (or TCP frames) from clients and from peers
//!   come in with `now` ([`TurnServer::handle_client`], [`TurnServer::handle_peer`]); bytes to
//!   send come out of [`TurnServer::poll_transmit`], requests for relayed sockets and
//!   allocation changes out of [`TurnServer::poll_event`]; time drives expiry
//!   ([`TurnServer::poll_timeout`], [`TurnServer::handle_timeout`]).
//! - [`StreamFramer`]: splits a TCP byte stream into STUN messages and ChannelData frames
//!   (RFC 8656 §12.5: both framed by their own length, ChannelData padded to 4 bytes).
//! - [`TurnDriver`]: the tokio driver owning the UDP and TCP listeners and the relayed UDP
//!   sockets; [`TurnInfo`] is what other parts need to hand out credentials (secret, realm,
//!   `stun:`/`turn:` URLs).
//!
//! Security stance (docs/RELAY.md "STUN and TURN"): every TURN request needs long-term
//! credentials (RFC 8489 §9.2) whose password is the TURN REST password of the username
//! ([`crate::ice::rest`], coturn's `--use-auth-secret`), so only holders of a fresh credential
//! minted with the relay's secret get an allocation; relaying to loopback, private, link-local,
//! unspecified, multicast and broadcast addresses is refused (403) unless allowed
//! ([`TurnConfig::allow_loopback_peers`], [`TurnConfig::allow_private_peers`]); allocations
//! per username, per source IP and in total, lifetimes, permissions and channels per
//! allocation, and bytes per second per allocation are bounded ([`TurnLimits`]).
//!
//! Why our own state machine on the `stun-types`/`turn-types` codecs rather than the sans-IO
//! `turn-server-proto` server: that server takes static users only (no TURN REST passwords),
//! has no quotas, no peer filter and no bandwidth limit, so every request would have to be
//! decoded and checked before it anyway; with the codecs doing the wire (attributes,
//! MESSAGE-INTEGRITY, FINGERPRINT) the state machine left is small, bounded and ours to test.
//!
//! Not done: TCP allocations (RFC 6062), IPv6 relaying of IPv4 clients (RFC 6156 dual
//! allocations), DTLS/TLS transports, port reservations (EVEN-PORT's R bit is ignored,
//! RESERVATION-TOKEN is answered 508), the
//! SHA-256 password algorithms of RFC 8489 §9.2 (clients use the RFC 5389 SHA-1 integrity).

mod allocation;
mod auth;
mod bucket;
mod driver;
mod framing;
mod handlers;
mod limits;
mod peer;
mod reply;
mod server;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;

pub use driver::{TurnDriver, TurnDriverConfig, TurnError, TurnInfo};
pub use framing::{FramingError, StreamFramer};
pub use limits::{TurnLimits, TurnLimitsError};
pub use peer::peer_allowed;
pub use server::{TurnConfig, TurnServer, TurnStats};

/// The realm `dat-social relay` puts in its 401 answers (RFC 8489 §14.9).
pub const DEFAULT_REALM: &str = "dat-social";

/// The default STUN/TURN port (RFC 8489 §6, RFC 8656 §4).
pub const DEFAULT_PORT: u16 = 3478;

/// The transport between a client and the server (RFC 8656 §3.1). Relayed traffic to peers is
/// always UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientTransport {
    /// Datagrams on the UDP listener.
    Udp,
    /// STUN messages and padded ChannelData framed on a TCP connection.
    Tcp,
}

/// The 5-tuple that names a client's allocation (RFC 8656 §2): transport, the client's
/// address as the server sees it, and the server's address it reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FiveTuple {
    /// UDP or TCP.
    pub transport: ClientTransport,
    /// The client's (server-reflexive) address.
    pub client: SocketAddr,
    /// The server's listening address the client reached.
    pub server: SocketAddr,
}

/// Bytes the driver sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// To a client on its 5-tuple: one datagram on UDP, or frame bytes to append to its TCP
    /// connection (ChannelData already padded to 4 bytes there).
    Client {
        /// The client's 5-tuple.
        tuple: FiveTuple,
        /// A STUN message or a ChannelData message.
        data: Vec<u8>,
    },
    /// To a peer, from an allocation's relayed UDP socket.
    Peer {
        /// The relayed socket's local address (as bound, not the advertised one).
        relayed: SocketAddr,
        /// The peer.
        peer: SocketAddr,
        /// The application data (the payload of a Send indication or ChannelData).
        data: Vec<u8>,
    },
}

/// Why an allocation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocationEnd {
    /// Its lifetime passed without a Refresh (RFC 8656 §7).
    Expired,
    /// The client sent a Refresh with LIFETIME 0 (RFC 8656 §7.3).
    Deleted,
    /// The client's TCP connection closed (RFC 8656 §3.1: the allocation dies with it).
    ClientGone,
}

/// What the core tells its driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TurnEvent {
    /// An authenticated Allocate needs a relayed UDP socket on the relay's address; answer
    /// with [`TurnServer::handle_relay_bound`] for the same tuple.
    BindRelay {
        /// The client asking.
        tuple: FiveTuple,
        /// The client sent EVEN-PORT (RFC 8656 §14.6): bind an even port. (Its R bit, to
        /// reserve the next port, is not honoured.)
        even_port: bool,
    },
    /// An allocation now exists.
    AllocationCreated {
        /// The client's 5-tuple.
        tuple: FiveTuple,
        /// The relayed socket's local address.
        relayed: SocketAddr,
        /// The TURN REST username it authenticated with.
        username: String,
    },
    /// An allocation is gone: close its relayed socket.
    AllocationClosed {
        /// The client's 5-tuple.
        tuple: FiveTuple,
        /// The relayed socket's local address.
        relayed: SocketAddr,
        /// Why.
        reason: AllocationEnd,
    },
}
