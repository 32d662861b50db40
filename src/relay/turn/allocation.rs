//! One TURN allocation (RFC 8656 §2.2): its relayed address, lifetime, permissions (§9),
//! channel bindings (§12) and bandwidth bucket. Every collection is bounded by
//! [`super::TurnLimits`].

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use stun_types::message::TransactionId;

use super::bucket::TokenBucket;

/// A permission lasts 300 s unless refreshed (RFC 8656 §9).
pub(crate) const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// A channel binding lasts 600 s unless refreshed (RFC 8656 §12).
pub(crate) const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);

/// A channel binding: a number (0x4000..=0x7FFF) for one peer transport address.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Channel {
    pub(crate) number: u16,
    pub(crate) peer: SocketAddr,
    pub(crate) expires: Instant,
}

/// Why a permission or channel could not be installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InstallError {
    /// The per-allocation limit is reached (508).
    Full,
    /// The number is bound to another peer, or the peer to another number (400).
    Conflict,
}

/// A live allocation.
#[derive(Debug)]
pub(crate) struct Allocation {
    /// The relayed socket's local address.
    pub(crate) relayed: SocketAddr,
    pub(crate) username: String,
    pub(crate) expires: Instant,
    /// The Allocate's transaction and success answer, resent on a retransmitted Allocate
    /// (RFC 8656 §7.2).
    pub(crate) allocate_txn: TransactionId,
    pub(crate) allocate_answer: Vec<u8>,
    permissions: Vec<(IpAddr, Instant)>,
    channels: Vec<Channel>,
    bucket: TokenBucket,
}

impl Allocation {
    pub(crate) fn new(
        relayed: SocketAddr,
        username: String,
        expires: Instant,
        allocate_txn: TransactionId,
        bandwidth: u64,
        now: Instant,
    ) -> Self {
        Allocation {
            relayed,
            username,
            expires,
            allocate_txn,
            allocate_answer: Vec::new(),
            permissions: Vec::new(),
            channels: Vec::new(),
            bucket: TokenBucket::new(bandwidth, now),
        }
    }

    /// Whether a live permission covers `ip` (RFC 8656 §9: by IP address, any port).
    pub(crate) fn permits(&self, ip: IpAddr, now: Instant) -> bool {
        self.permissions
            .iter()
            .any(|(p, exp)| *p == ip && *exp > now)
    }

    /// Installs or refreshes the permission for `ip`, dropping expired ones when full.
    pub(crate) fn permit(
        &mut self,
        ip: IpAddr,
        max: usize,
        now: Instant,
    ) -> Result<(), InstallError> {
        let expires = now + PERMISSION_LIFETIME;
        if let Some(p) = self.permissions.iter_mut().find(|(p, _)| *p == ip) {
            p.1 = expires;
            return Ok(());
        }
        self.permissions.retain(|(_, exp)| *exp > now);
        if self.permissions.len() >= max {
            return Err(InstallError::Full);
        }
        self.permissions.push((ip, expires));
        Ok(())
    }

    /// Checks that `permit` would succeed for every one of `ips` (CreatePermission is all or
    /// nothing, RFC 8656 §10.2).
    pub(crate) fn can_permit(&self, ips: &[IpAddr], max: usize, now: Instant) -> bool {
        let new = ips
            .iter()
            .enumerate()
            .filter(|(i, ip)| {
                !ips[..*i].contains(ip) && !self.permissions.iter().any(|(p, _)| p == *ip)
            })
            .count();
        let live = self
            .permissions
            .iter()
            .filter(|(_, exp)| *exp > now)
            .count();
        live + new <= max
    }

    /// Binds `number` to `peer` or refreshes that binding (RFC 8656 §11.2), and installs
    /// the permission for the peer's IP.
    pub(crate) fn bind_channel(
        &mut self,
        number: u16,
        peer: SocketAddr,
        limits: (usize, usize),
        now: Instant,
    ) -> Result<(), InstallError> {
        let (max_channels, max_permissions) = limits;
        self.channels.retain(|c| c.expires > now);
        let by_number = self.channels.iter().position(|c| c.number == number);
        let by_peer = self.channels.iter().position(|c| c.peer == peer);
        let index = match (by_number, by_peer) {
            (Some(a), Some(b)) if a == b => Some(a),
            (None, None) => None,
            _ => return Err(InstallError::Conflict),
        };
        if index.is_none() && self.channels.len() >= max_channels {
            return Err(InstallError::Full);
        }
        self.permit(peer.ip(), max_permissions, now)?;
        let expires = now + CHANNEL_LIFETIME;
        match index {
            Some(i) => self.channels[i].expires = expires,
            None => self.channels.push(Channel {
                number,
                peer,
                expires,
            }),
        }
        Ok(())
    }

    /// The live channel bound to `number`.
    pub(crate) fn channel_peer(&self, number: u16, now: Instant) -> Option<SocketAddr> {
        self.channels
            .iter()
            .find(|c| c.number == number && c.expires > now)
            .map(|c| c.peer)
    }

    /// The live channel number bound to `peer`.
    pub(crate) fn channel_of(&self, peer: SocketAddr, now: Instant) -> Option<u16> {
        self.channels
            .iter()
            .find(|c| c.peer == peer && c.expires > now)
            .map(|c| c.number)
    }

    /// Takes `bytes` from the bandwidth bucket; false means drop the packet.
    pub(crate) fn spend(&mut self, bytes: usize, now: Instant) -> bool {
        self.bucket.take(bytes as u64, now)
    }
}
