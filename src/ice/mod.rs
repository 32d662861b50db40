//! ICE configuration shared by every side of NAT traversal: the STUN/TURN servers a peer
//! connection may use ([`IceServer`], the browser's `RTCIceServer`), whether it may use direct
//! paths at all ([`IcePolicy`], the browser's `iceTransportPolicy`), what kind of path a
//! connection got ([`PathKind`]), and short-lived TURN credentials ([`rest`]).
//!
//! Sans-IO and free of tokio: it builds for `wasm32-unknown-unknown` with the protocol core.
//!
//! Follows the W3C WebRTC 1.0 `RTCIceServer` dictionary, RFC 7064 (`stun:` URIs), RFC 7065
//! (`turn:`/`turns:` URIs with `?transport=`), and RFC 8445 candidate types.

pub mod rest;
pub mod server;

pub use server::{IceServer, IceServerError, IceTransport, IceUrl, IceUrlScheme};

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which candidates a peer connection may use, as the browser's `iceTransportPolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IcePolicy {
    /// Every path: host, server-reflexive, peer-reflexive and relayed (the default). The
    /// highest-priority pair that works wins, so TURN is used only where nothing direct works.
    #[default]
    All,
    /// Relayed (TURN) candidates only: no host or server-reflexive candidate is offered or
    /// used. Lets a user check that their TURN server works.
    Relay,
}

impl fmt::Display for IcePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IcePolicy::All => "all",
            IcePolicy::Relay => "relay",
        })
    }
}

/// An [`IcePolicy`] name other than `all` or `relay`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown ICE policy {0:?} (expected \"all\" or \"relay\")")]
pub struct UnknownIcePolicy(pub String);

impl FromStr for IcePolicy {
    type Err = UnknownIcePolicy;

    /// `all` or `relay` (ASCII case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "all" => Ok(IcePolicy::All),
            "relay" => Ok(IcePolicy::Relay),
            _ => Err(UnknownIcePolicy(s.to_owned())),
        }
    }
}

/// The kind of the candidate pair a connection uses, named as RFC 8445 §5.1.1 and the browser's
/// `RTCIceCandidateType` name candidates. Serialized as the lowercase name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    /// Straight between interface addresses: same machine, same LAN, or public addresses.
    Host,
    /// Through a NAT mapping learned from a STUN server (server-reflexive).
    Srflx,
    /// Through a NAT mapping learned from the peer's own connectivity checks (peer-reflexive).
    Prflx,
    /// Through a TURN server's relayed address.
    Relay,
}

impl fmt::Display for PathKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathKind::Host => "host",
            PathKind::Srflx => "srflx",
            PathKind::Prflx => "prflx",
            PathKind::Relay => "relay",
        })
    }
}

/// What a peer connection may use to reach its peer: the servers to gather candidates from and
/// the policy. The default (no servers, [`IcePolicy::All`]) offers host candidates only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IceConfig {
    /// STUN and TURN servers, in the order given; duplicates are harmless.
    pub servers: Vec<IceServer>,
    /// Which candidates may be used.
    pub policy: IcePolicy,
}

#[cfg(test)]
mod tests;
