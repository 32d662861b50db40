//! The TURN request handlers of [`TurnServer`]: Allocate (RFC 8656 §7.2), Refresh (§7.3),
//! CreatePermission (§10), ChannelBind (§11), Send indications (§11.2), and the answer to a
//! relayed socket the driver bound ([`TurnServer::handle_relay_bound`]).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use stun_types::attribute::{AttributeStaticType, XorMappedAddress};
use stun_types::message::{Message, TransactionId};
use turn_types::attribute::{
    ChannelNumber, Data, EvenPort, Lifetime, RequestedAddressFamily, RequestedTransport,
    ReservationToken, XorPeerAddress, XorRelayedAddress,
};
use turn_types::AddressFamily;

use super::allocation::{Allocation, InstallError};
use super::auth::{self, AuthFailure, Authed};
use super::reply::{self, Seal};
use super::server::PendingAllocate;
use super::{peer_allowed, AllocationEnd, FiveTuple, TurnEvent, TurnServer};

/// Most XOR-PEER-ADDRESS attributes read from one CreatePermission.
const MAX_PEERS_PER_REQUEST: usize = 16;

impl TurnServer {
    /// Authenticates `msg`; on failure answers it (401/438/400) and returns `None`.
    fn authorize(&mut self, tuple: FiveTuple, msg: &Message<'_>, now: Instant) -> Option<Authed> {
        let unix = self.unix(now);
        let cfg = &self.config;
        let failure =
            match auth::authenticate(msg, &cfg.secret, &cfg.realm, tuple.client.ip(), unix) {
                Ok(a) => return Some(a),
                Err(f) => f,
            };
        let nonce = auth::make_nonce(&cfg.secret, tuple.client.ip(), unix);
        let answer = match failure {
            AuthFailure::Incomplete => reply::error(msg, 400, &[], Seal::plain(msg)),
            AuthFailure::StaleNonce => reply::challenge(msg, 438, &cfg.realm, &nonce),
            AuthFailure::NoCredentials
            | AuthFailure::BadUsername(_)
            | AuthFailure::BadIntegrity => reply::challenge(msg, 401, &cfg.realm, &nonce),
        };
        self.stats.unauthorized += 1;
        self.send_client(tuple, answer);
        None
    }

    /// An error answer signed with the authenticated key.
    fn fail(&mut self, tuple: FiveTuple, msg: &Message<'_>, code: u16, authed: &Authed) {
        let seal = Seal {
            key: Some(&authed.key),
            fingerprint: Seal::plain(msg).fingerprint,
        };
        let answer = reply::error(msg, code, &[], seal);
        self.send_client(tuple, answer);
    }

    /// Authenticates a request on an existing allocation and checks that it comes from the
    /// allocation's user (RFC 8656 §5: else 441); answers failures.
    fn authorize_on_allocation(
        &mut self,
        tuple: FiveTuple,
        msg: &Message<'_>,
        now: Instant,
    ) -> Option<Authed> {
        let authed = self.authorize(tuple, msg, now)?;
        match self.allocations.get(&tuple) {
            None => self.fail(tuple, msg, 437, &authed),
            Some(a) if a.username != authed.username => self.fail(tuple, msg, 441, &authed),
            Some(_) => return Some(authed),
        }
        None
    }

    pub(crate) fn handle_allocate(&mut self, tuple: FiveTuple, msg: &Message<'_>, now: Instant) {
        let Some(authed) = self.authorize(tuple, msg, now) else {
            return;
        };
        if let Some(a) = self.allocations.get(&tuple) {
            if a.allocate_txn == msg.transaction_id() {
                let answer = a.allocate_answer.clone();
                self.send_client(tuple, answer);
            } else {
                self.fail(tuple, msg, 437, &authed);
            }
            return;
        }
        if self.pending.contains_key(&tuple) {
            return; // a retransmission while the socket is being bound
        }
        if let Err(code) = self.check_allocate(tuple, msg, &authed) {
            if code == 486 {
                self.stats.quota_refused += 1;
            }
            self.fail(tuple, msg, code, &authed);
            return;
        }
        let lifetime = self
            .config
            .limits
            .lifetime(msg.attribute::<Lifetime>().ok().map(|l| l.seconds()));
        self.count(&authed.username, tuple.client.ip());
        let even_port = msg.has_attribute(EvenPort::TYPE);
        self.pending.insert(
            tuple,
            PendingAllocate {
                request: msg.as_bytes().to_vec(),
                authed,
                lifetime,
            },
        );
        self.push_event(TurnEvent::BindRelay { tuple, even_port });
    }

    /// The checks of RFC 8656 §7.2 after authentication, in its order; `Err` is the error code.
    fn check_allocate(
        &self,
        tuple: FiveTuple,
        msg: &Message<'_>,
        authed: &Authed,
    ) -> Result<(), u16> {
        let transport = msg.attribute::<RequestedTransport>().map_err(|_| 400u16)?;
        if transport.protocol() != RequestedTransport::UDP {
            return Err(442);
        }
        if msg.has_attribute(ReservationToken::TYPE) {
            return Err(508);
        }
        if let Ok(family) = msg.attribute::<RequestedAddressFamily>() {
            let ipv4 = self.relay_is_ipv4(tuple);
            if (family.family() == AddressFamily::IPV4) != ipv4 {
                return Err(440);
            }
        }
        let l = &self.config.limits;
        let total = self.allocations.len() + self.pending.len();
        let user = self.per_user.get(&authed.username).copied().unwrap_or(0);
        let ip = self.per_ip.get(&tuple.client.ip()).copied().unwrap_or(0);
        if total >= l.max_allocations
            || user >= l.max_allocations_per_user
            || ip >= l.max_allocations_per_ip
        {
            return Err(486);
        }
        Ok(())
    }

    /// Relayed sockets are bound on the listening address's family.
    fn relay_is_ipv4(&self, tuple: FiveTuple) -> bool {
        match self.config.external_ip {
            Some(ip) => ip.is_ipv4(),
            None => tuple.server.is_ipv4(),
        }
    }

    /// The driver's answer to [`TurnEvent::BindRelay`]: the relayed socket's local address,
    /// or why binding failed (then the client gets 508 Insufficient Capacity). Ignored for a
    /// tuple with no Allocate waiting.
    pub fn handle_relay_bound(
        &mut self,
        tuple: FiveTuple,
        bound: Result<SocketAddr, io::Error>,
        now: Instant,
    ) {
        let Some(p) = self.remove_pending(tuple) else {
            // Nothing waits (the client went away): the driver closes the socket on this event.
            if let Ok(relayed) = bound {
                self.push_event(TurnEvent::AllocationClosed {
                    tuple,
                    relayed,
                    reason: AllocationEnd::ClientGone,
                });
            }
            return;
        };
        let Ok(msg) = Message::from_bytes(&p.request) else {
            return;
        };
        let relayed = match bound {
            Ok(addr) => addr,
            Err(_) => return self.fail(tuple, &msg, 508, &p.authed),
        };
        let advertised = SocketAddr::new(
            self.config.external_ip.unwrap_or(relayed.ip()),
            relayed.port(),
        );
        let txn = msg.transaction_id();
        let answer = allocate_answer(
            &msg,
            tuple,
            advertised,
            p.lifetime.as_secs() as u32,
            &p.authed,
        );
        let mut alloc = Allocation::new(
            relayed,
            p.authed.username.clone(),
            now + p.lifetime,
            txn,
            self.config.limits.bandwidth,
            now,
        );
        alloc.allocate_answer = answer.clone();
        self.count(&p.authed.username, tuple.client.ip());
        self.expiry_added(alloc.expires);
        self.allocations.insert(tuple, alloc);
        self.by_relayed.insert(relayed, tuple);
        self.stats.allocations += 1;
        self.push_event(TurnEvent::AllocationCreated {
            tuple,
            relayed,
            username: p.authed.username,
        });
        self.send_client(tuple, answer);
    }

    pub(crate) fn handle_refresh(&mut self, tuple: FiveTuple, msg: &Message<'_>, now: Instant) {
        let Some(authed) = self.authorize_on_allocation(tuple, msg, now) else {
            return;
        };
        let requested = msg.attribute::<Lifetime>().ok().map(|l| l.seconds());
        let granted = if requested == Some(0) {
            self.remove_allocation(tuple, AllocationEnd::Deleted);
            0
        } else {
            let lifetime = self.config.limits.lifetime(requested);
            if let Some(a) = self.allocations.get_mut(&tuple) {
                a.expires = now + lifetime;
                self.expiry_changed();
            }
            lifetime.as_secs() as u32
        };
        let seal = Seal {
            key: Some(&authed.key),
            fingerprint: Seal::plain(msg).fingerprint,
        };
        let answer = reply::success(msg, &[&Lifetime::new(granted)], seal);
        self.send_client(tuple, answer);
    }

    /// Whether `peer` may be relayed to; counts a refusal.
    fn peer_ok(&mut self, peer: SocketAddr) -> bool {
        let c = &self.config;
        let ok = peer_allowed(peer.ip(), c.allow_loopback_peers, c.allow_private_peers)
            && peer.port() != 0;
        if !ok {
            self.stats.forbidden_peers += 1;
        }
        ok
    }

    pub(crate) fn handle_create_permission(
        &mut self,
        tuple: FiveTuple,
        msg: &Message<'_>,
        now: Instant,
    ) {
        let Some(authed) = self.authorize_on_allocation(tuple, msg, now) else {
            return;
        };
        let txn = msg.transaction_id();
        let peers: Vec<SocketAddr> = (0..MAX_PEERS_PER_REQUEST)
            .map_while(|n| msg.nth_attribute::<XorPeerAddress>(n).ok())
            .map(|a| a.addr(txn))
            .collect();
        if peers.is_empty() {
            return self.fail(tuple, msg, 400, &authed);
        }
        let relay_v4 = self
            .allocations
            .get(&tuple)
            .is_some_and(|a| a.relayed.is_ipv4());
        if peers.iter().any(|p| p.is_ipv4() != relay_v4) {
            return self.fail(tuple, msg, 443, &authed);
        }
        // Permissions are by IP (any port, RFC 8656 §9): port 0 is fine here.
        let ips: Vec<IpAddr> = peers.iter().map(|p| p.ip()).collect();
        if !ips.iter().all(|ip| self.peer_ok(SocketAddr::new(*ip, 1))) {
            return self.fail(tuple, msg, 403, &authed);
        }
        let max = self.config.limits.max_permissions;
        let Some(alloc) = self.allocations.get_mut(&tuple) else {
            return;
        };
        if !alloc.can_permit(&ips, max, now) {
            return self.fail(tuple, msg, 508, &authed);
        }
        for ip in ips {
            let _ = alloc.permit(ip, max, now);
        }
        let seal = Seal {
            key: Some(&authed.key),
            fingerprint: Seal::plain(msg).fingerprint,
        };
        let answer = reply::success(msg, &[], seal);
        self.send_client(tuple, answer);
    }

    pub(crate) fn handle_channel_bind(
        &mut self,
        tuple: FiveTuple,
        msg: &Message<'_>,
        now: Instant,
    ) {
        let Some(authed) = self.authorize_on_allocation(tuple, msg, now) else {
            return;
        };
        let (Ok(number), Ok(peer)) = (
            msg.attribute::<ChannelNumber>(),
            msg.attribute::<XorPeerAddress>(),
        ) else {
            return self.fail(tuple, msg, 400, &authed);
        };
        let (number, peer) = (number.channel(), peer.addr(msg.transaction_id()));
        // RFC 8656 §12 narrowed the range to 0x4FFF; RFC 5766 clients (coturn's uclient) use up
        // to 0x7FFF, which ChannelData framing (first bits 01) still tells apart.
        if !(0x4000..=0x7FFF).contains(&number) {
            return self.fail(tuple, msg, 400, &authed);
        }
        let relay_v4 = self
            .allocations
            .get(&tuple)
            .is_some_and(|a| a.relayed.is_ipv4());
        if peer.is_ipv4() != relay_v4 {
            return self.fail(tuple, msg, 443, &authed);
        }
        if !self.peer_ok(peer) {
            return self.fail(tuple, msg, 403, &authed);
        }
        let l = &self.config.limits;
        let limits = (l.max_channels, l.max_permissions);
        let Some(alloc) = self.allocations.get_mut(&tuple) else {
            return;
        };
        match alloc.bind_channel(number, peer, limits, now) {
            Ok(()) => {
                let seal = Seal {
                    key: Some(&authed.key),
                    fingerprint: Seal::plain(msg).fingerprint,
                };
                let answer = reply::success(msg, &[], seal);
                self.send_client(tuple, answer);
            }
            Err(InstallError::Conflict) => self.fail(tuple, msg, 400, &authed),
            Err(InstallError::Full) => self.fail(tuple, msg, 508, &authed),
        }
    }

    /// A Send indication (RFC 8656 §11.2): relayed to its peer when allowed, a permission
    /// exists and the bandwidth allows; dropped silently otherwise (indications get no answer).
    pub(crate) fn handle_send(&mut self, tuple: FiveTuple, msg: &Message<'_>, now: Instant) {
        let (Ok(peer), Ok(data)) = (msg.attribute::<XorPeerAddress>(), msg.attribute::<Data>())
        else {
            self.stats.dropped_invalid += 1;
            return;
        };
        let peer = peer.addr(msg.transaction_id());
        if self.allocations.contains_key(&tuple) && self.peer_ok(peer) {
            self.relay_to_peer(tuple, peer, data.data(), now);
        }
    }
}

/// The Allocate success answer (RFC 8656 §7.2): XOR-RELAYED-ADDRESS, LIFETIME,
/// XOR-MAPPED-ADDRESS, signed.
fn allocate_answer(
    msg: &Message<'_>,
    tuple: FiveTuple,
    advertised: SocketAddr,
    lifetime_s: u32,
    authed: &Authed,
) -> Vec<u8> {
    let txn: TransactionId = msg.transaction_id();
    let relayed = XorRelayedAddress::new(advertised, txn);
    let mapped = XorMappedAddress::new(tuple.client, txn);
    let lifetime = Lifetime::new(lifetime_s);
    let seal = Seal {
        key: Some(&authed.key),
        fingerprint: Seal::plain(msg).fingerprint,
    };
    reply::success(msg, &[&relayed, &lifetime, &mapped], seal)
}
