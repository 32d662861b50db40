//! [`Network`]: where relayed servers and announcements live. [`LocalNetwork`] knows only the
//! relay's own clients; a HyperDHT-backed implementation (a later issue) would also reach peers
//! on the DHT, and the relay core would not change for lookups, announces and local connects.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::relay::messages::{Announcers, Node, Peer, PublicKey};

use super::SessionId;

/// A relayed server: the session that listens and the relay's alias for that server (the
/// `alias` of its `listening` message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServerRef {
    /// The listening client's session.
    pub session: SessionId,
    /// The relay-side server alias (sent as `serverAlias` in `incoming`/`connection`).
    pub relay_alias: u32,
}

/// The rendezvous the relay core uses for `listen`, `connect`, `announce`, `lookup`
/// (PROTOCOL.md §5). Calls are synchronous and must be cheap: the relay core holds its lock.
pub trait Network: Send + 'static {
    /// Registers `server` as reachable at `public_key` and returns the address to report in
    /// `listening` (an IPv4 host:port; JS reports its DHT node's). A later `listen` on the same
    /// key takes over (so a reconnecting host wins over its stale session).
    fn listen(&mut self, public_key: PublicKey, server: ServerRef) -> SocketAddrV4;
    /// Removes `server` from `public_key`, if it still owns it.
    fn unlisten(&mut self, public_key: &PublicKey, server: ServerRef);
    /// The server listening on `public_key`, if any.
    fn find_server(&self, public_key: &PublicKey) -> Option<ServerRef>;
    /// Records that `session` announced `public_key` on `topic`.
    fn announce(&mut self, topic: [u8; 32], public_key: PublicKey, session: SessionId);
    /// Removes that record.
    fn unannounce(&mut self, topic: &[u8; 32], public_key: &PublicKey, session: SessionId);
    /// The `announcers` records for `topic`, one per `result` message (empty: only `finished`).
    fn lookup(&self, topic: &[u8; 32]) -> Vec<Announcers>;
}

/// Rendezvous among the relay's own clients only: no DHT. Lookups return every key announced
/// on the topic (including the asker's own, as a DHT would), in one `announcers` record whose
/// `from` node is the relay.
#[derive(Debug)]
pub struct LocalNetwork {
    address: SocketAddrV4,
    node_id: [u8; 32],
    servers: HashMap<PublicKey, ServerRef>,
    topics: HashMap<[u8; 32], Vec<(PublicKey, SessionId)>>,
}

impl LocalNetwork {
    /// A network that reports `address` (the relay's public IPv4 address, `0.0.0.0:0` if
    /// unknown) in `listening` and as the `from` node of lookups.
    pub fn new(address: SocketAddrV4) -> Self {
        Self {
            address,
            node_id: rand::random(),
            servers: HashMap::new(),
            topics: HashMap::new(),
        }
    }
}

impl Default for LocalNetwork {
    fn default() -> Self {
        Self::new(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))
    }
}

impl Network for LocalNetwork {
    fn listen(&mut self, public_key: PublicKey, server: ServerRef) -> SocketAddrV4 {
        self.servers.insert(public_key, server);
        self.address
    }

    fn unlisten(&mut self, public_key: &PublicKey, server: ServerRef) {
        if self.servers.get(public_key) == Some(&server) {
            self.servers.remove(public_key);
        }
    }

    fn find_server(&self, public_key: &PublicKey) -> Option<ServerRef> {
        self.servers.get(public_key).copied()
    }

    fn announce(&mut self, topic: [u8; 32], public_key: PublicKey, session: SessionId) {
        let peers = self.topics.entry(topic).or_default();
        if !peers.contains(&(public_key, session)) {
            peers.push((public_key, session));
        }
    }

    fn unannounce(&mut self, topic: &[u8; 32], public_key: &PublicKey, session: SessionId) {
        if let Some(peers) = self.topics.get_mut(topic) {
            peers.retain(|p| p != &(*public_key, session));
            if peers.is_empty() {
                self.topics.remove(topic);
            }
        }
    }

    fn lookup(&self, topic: &[u8; 32]) -> Vec<Announcers> {
        let Some(peers) = self.topics.get(topic) else {
            return Vec::new();
        };
        let mut seen = Vec::with_capacity(peers.len());
        for (key, _) in peers {
            if !seen.contains(key) {
                seen.push(*key);
            }
        }
        vec![Announcers {
            token: [0; 32],
            from: Node {
                id: Some(self.node_id.to_vec()),
                address: self.address,
            },
            to: Node {
                id: None,
                address: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
            },
            peers: seen
                .into_iter()
                .map(|public_key| Peer {
                    public_key,
                    relay_addresses: Vec::new(),
                })
                .collect(),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_takes_over_and_unlisten_only_by_owner() {
        let mut n = LocalNetwork::default();
        let (a, b) = (
            ServerRef {
                session: 1,
                relay_alias: 1,
            },
            ServerRef {
                session: 2,
                relay_alias: 1,
            },
        );
        n.listen([7; 32], a);
        n.listen([7; 32], b);
        n.unlisten(&[7; 32], a);
        assert_eq!(n.find_server(&[7; 32]), Some(b));
        n.unlisten(&[7; 32], b);
        assert_eq!(n.find_server(&[7; 32]), None);
    }

    #[test]
    fn lookup_lists_each_key_once() {
        let mut n = LocalNetwork::default();
        assert!(n.lookup(&[1; 32]).is_empty());
        n.announce([1; 32], [5; 32], 1);
        n.announce([1; 32], [5; 32], 2);
        n.announce([1; 32], [6; 32], 2);
        let r = n.lookup(&[1; 32]);
        let keys: Vec<_> = r[0].peers.iter().map(|p| p.public_key).collect();
        assert_eq!(keys, vec![[5; 32], [6; 32]]);
        n.unannounce(&[1; 32], &[5; 32], 1);
        n.unannounce(&[1; 32], &[5; 32], 2);
        n.unannounce(&[1; 32], &[6; 32], 2);
        assert!(n.lookup(&[1; 32]).is_empty());
    }
}
