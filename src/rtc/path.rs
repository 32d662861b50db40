//! Which path a connection's traffic takes ([`SelectedPath`]), told from the candidate pair
//! str0m sends on: the local side is relayed when it sends from one of our TURN relayed
//! addresses, the remote side has the kind its candidate was signalled with (RFC 8445 §5.1.1),
//! and an address never signalled is peer-reflexive (learned from the peer's checks, §7.3.1.3).
//!
//! The kind of the path is `relay` if either side is relayed, else the remote candidate's kind
//! (`srflx`, `prflx`, `host`): str0m prunes our own srflx pairs as redundant with the host pair
//! they share a socket with, so the remote side is the one that tells.

use std::collections::HashMap;
use std::net::SocketAddr;

use str0m::CandidateKind;

use crate::ice::PathKind;

/// Most remote candidate kinds remembered per connection.
const MAX_KINDS: usize = 256;

/// The candidate pair a connection's traffic flows on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectedPath {
    /// `host`, `srflx`, `prflx` or `relay` (see the module docs of `rtc`).
    pub kind: PathKind,
    /// Our side: a host socket's address, or our TURN relayed address.
    pub local: SocketAddr,
    /// The peer's side: its host, server-reflexive, peer-reflexive or relayed address.
    pub remote: SocketAddr,
    /// For a `relay` path: the TURN server our traffic goes through when we relay, else the
    /// peer's relayed address (its TURN server's relay port). `None` on direct paths.
    pub relay: Option<SocketAddr>,
}

/// The kinds of the remote candidates, by address (bounded).
#[derive(Debug, Default)]
pub(crate) struct RemoteKinds {
    kinds: HashMap<SocketAddr, CandidateKind>,
}

impl RemoteKinds {
    /// Remembers `addr` as a candidate of `kind` (ignored past the bound).
    pub(crate) fn insert(&mut self, addr: SocketAddr, kind: CandidateKind) {
        if self.kinds.len() < MAX_KINDS || self.kinds.contains_key(&addr) {
            self.kinds.insert(addr, kind);
        }
    }

    /// The path of traffic sent from `local` to `remote`; `relay_server` is our TURN server
    /// when `local` is one of our relayed addresses.
    pub(crate) fn path(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        relay_server: Option<SocketAddr>,
    ) -> SelectedPath {
        let remote_kind = self.kinds.get(&remote).copied();
        let kind = path_kind(relay_server.is_some(), remote_kind);
        let relay = match (relay_server, kind) {
            (Some(server), _) => Some(server),
            (None, PathKind::Relay) => Some(remote),
            _ => None,
        };
        SelectedPath {
            kind,
            local,
            remote,
            relay,
        }
    }
}

/// The path kind of a pair: relay if either side is relayed, else the remote candidate's kind;
/// an unknown remote (`None`) is peer-reflexive.
pub(crate) fn path_kind(local_relayed: bool, remote: Option<CandidateKind>) -> PathKind {
    if local_relayed {
        return PathKind::Relay;
    }
    match remote {
        Some(CandidateKind::Relayed) => PathKind::Relay,
        Some(CandidateKind::ServerReflexive) => PathKind::Srflx,
        Some(CandidateKind::PeerReflexive) | None => PathKind::Prflx,
        Some(CandidateKind::Host) => PathKind::Host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn candidate_kinds_make_the_path_kind() {
        use CandidateKind::*;
        assert_eq!(path_kind(true, Some(Host)), PathKind::Relay);
        assert_eq!(path_kind(true, None), PathKind::Relay);
        assert_eq!(path_kind(false, Some(Relayed)), PathKind::Relay);
        assert_eq!(path_kind(false, Some(ServerReflexive)), PathKind::Srflx);
        assert_eq!(path_kind(false, Some(PeerReflexive)), PathKind::Prflx);
        assert_eq!(path_kind(false, None), PathKind::Prflx);
        assert_eq!(path_kind(false, Some(Host)), PathKind::Host);
    }

    #[test]
    fn relay_address_is_our_server_or_the_peers_relayed_address() {
        let mut k = RemoteKinds::default();
        k.insert(a("203.0.113.5:50000"), CandidateKind::Relayed);
        k.insert(a("10.0.0.3:4000"), CandidateKind::Host);
        let ours = k.path(
            a("198.51.100.1:49152"),
            a("10.0.0.3:4000"),
            Some(a("198.51.100.1:3478")),
        );
        assert_eq!(ours.kind, PathKind::Relay);
        assert_eq!(ours.relay, Some(a("198.51.100.1:3478")));
        let theirs = k.path(a("10.0.0.2:5000"), a("203.0.113.5:50000"), None);
        assert_eq!(theirs.kind, PathKind::Relay);
        assert_eq!(theirs.relay, Some(a("203.0.113.5:50000")));
        let direct = k.path(a("10.0.0.2:5000"), a("10.0.0.3:4000"), None);
        assert_eq!(direct.kind, PathKind::Host);
        assert_eq!(direct.relay, None);
    }
}
