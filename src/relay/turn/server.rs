//! The sans-IO TURN server core ([`TurnServer`]): client datagrams and TCP frames, peer
//! datagrams and time in; [`Transmit`]s and [`TurnEvent`]s out. Request handling itself is in
//! `handlers`.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use stun_types::message::{Message, MessageClass, BINDING};
use turn_types::channel::ChannelData;
use turn_types::message::{ALLOCATE, CHANNEL_BIND, CREATE_PERMISSION, REFRESH, SEND};

use super::allocation::Allocation;
use super::auth::Authed;
use super::limits::TurnLimits;
use super::{reply, AllocationEnd, ClientTransport, FiveTuple, Transmit, TurnEvent};

/// Most transmits and events queued before the oldest are dropped (the driver drains them
/// after every input, so this only bounds a driver that does not).
const MAX_QUEUE: usize = 4096;

/// The configuration of a [`TurnServer`].
#[derive(Clone, Debug)]
pub struct TurnConfig {
    /// The REALM of the long-term credentials (RFC 8489 §14.9), e.g. [`super::DEFAULT_REALM`].
    pub realm: String,
    /// The TURN REST secret: a username's password is `base64(HMAC-SHA1(secret, username))`
    /// ([`crate::ice::rest::password`]). Any length; 32 random bytes by default in the CLI.
    pub secret: Vec<u8>,
    /// Advertise this IP in XOR-RELAYED-ADDRESS (with the relayed socket's real port), for a
    /// relay behind a cloud NAT (`--external-ip`). `None`: the relayed socket's own IP.
    pub external_ip: Option<IpAddr>,
    /// Let allocations relay to loopback addresses (labs and tests; coturn's
    /// `--allow-loopback-peers`). Off by default.
    pub allow_loopback_peers: bool,
    /// Let allocations relay to private, link-local and shared addresses ([`super::peer_allowed`]).
    /// Off by default.
    pub allow_private_peers: bool,
    /// The bounds.
    pub limits: TurnLimits,
}

impl TurnConfig {
    /// Defaults ([`super::DEFAULT_REALM`], default limits, nothing allowed) with `secret`.
    pub fn new(secret: Vec<u8>) -> Self {
        TurnConfig {
            realm: super::DEFAULT_REALM.to_owned(),
            secret,
            external_ip: None,
            allow_loopback_peers: false,
            allow_private_peers: false,
            limits: TurnLimits::default(),
        }
    }
}

/// Counters of what the server refused or dropped (all since start).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TurnStats {
    /// Binding requests answered.
    pub bindings: u64,
    /// Allocations created.
    pub allocations: u64,
    /// Requests answered 401 or 438 (no, stale or wrong credentials).
    pub unauthorized: u64,
    /// Relaying refused because of the peer's address (403 or a dropped Send).
    pub forbidden_peers: u64,
    /// Allocates refused for a quota (486).
    pub quota_refused: u64,
    /// Relayed packets dropped by the bandwidth limit.
    pub dropped_bandwidth: u64,
    /// Packets from peers dropped for lack of a permission.
    pub dropped_no_permission: u64,
    /// Client input that was neither a STUN message nor ChannelData we could use.
    pub dropped_invalid: u64,
}

/// An Allocate waiting for its relayed socket ([`TurnEvent::BindRelay`]).
#[derive(Debug)]
pub(crate) struct PendingAllocate {
    pub(crate) request: Vec<u8>,
    pub(crate) authed: Authed,
    pub(crate) lifetime: Duration,
}

/// The sans-IO STUN/TURN server. See the module docs of [`super`].
#[derive(Debug)]
pub struct TurnServer {
    pub(crate) config: TurnConfig,
    /// `now` and the Unix time at creation: REST usernames and nonces carry Unix seconds.
    epoch: (Instant, u64),
    pub(crate) allocations: HashMap<FiveTuple, Allocation>,
    pub(crate) pending: HashMap<FiveTuple, PendingAllocate>,
    pub(crate) by_relayed: HashMap<SocketAddr, FiveTuple>,
    pub(crate) per_user: HashMap<String, usize>,
    pub(crate) per_ip: HashMap<IpAddr, usize>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TurnEvent>,
    pub(crate) stats: TurnStats,
    /// The earliest allocation expiry, cached because the driver asks for it after every
    /// packet (a scan per packet made the relay's CPU per relayed byte grow with the number
    /// of allocations: BENCHMARKS.md "TURN throughput"). `None`: not known since an
    /// allocation was refreshed or removed; [`TurnServer::poll_timeout`] scans them again.
    next_expiry: Cell<Option<Option<Instant>>>,
}

impl TurnServer {
    /// A server with `config`, started at `now` when the wall clock reads `unix_now_s`
    /// (Unix seconds; later wall times are derived from `now`).
    pub fn new(config: TurnConfig, now: Instant, unix_now_s: u64) -> Self {
        TurnServer {
            config,
            epoch: (now, unix_now_s),
            allocations: HashMap::new(),
            pending: HashMap::new(),
            by_relayed: HashMap::new(),
            per_user: HashMap::new(),
            per_ip: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: TurnStats::default(),
            next_expiry: Cell::new(Some(None)),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TurnConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> &TurnStats {
        &self.stats
    }

    /// Live allocations (not counting Allocates waiting for a socket).
    pub fn allocation_count(&self) -> usize {
        self.allocations.len()
    }

    /// Unix seconds at `now`.
    pub(crate) fn unix(&self, now: Instant) -> u64 {
        self.epoch.1 + now.saturating_duration_since(self.epoch.0).as_secs()
    }

    /// One datagram (UDP) or one frame (TCP, from [`super::StreamFramer`]) from a client.
    /// Anything undecodable is dropped silently (never answered, RFC 8489 §6.3).
    pub fn handle_client(&mut self, tuple: FiveTuple, data: &[u8], now: Instant) {
        match data.first().map(|b| b >> 6) {
            Some(0) => self.handle_stun(tuple, data, now),
            Some(1) => self.handle_channel_data(tuple, data, now),
            _ => self.stats.dropped_invalid += 1,
        }
    }

    fn handle_stun(&mut self, tuple: FiveTuple, data: &[u8], now: Instant) {
        let Ok(msg) = Message::from_bytes(data) else {
            self.stats.dropped_invalid += 1;
            return;
        };
        match (msg.class(), msg.method()) {
            (MessageClass::Request, BINDING) => self.handle_binding(tuple, &msg),
            (MessageClass::Request, ALLOCATE) => self.handle_allocate(tuple, &msg, now),
            (MessageClass::Request, REFRESH) => self.handle_refresh(tuple, &msg, now),
            (MessageClass::Request, CREATE_PERMISSION) => {
                self.handle_create_permission(tuple, &msg, now)
            }
            (MessageClass::Request, CHANNEL_BIND) => self.handle_channel_bind(tuple, &msg, now),
            (MessageClass::Request, _) => {
                let answer = reply::error(&msg, 400, &[], reply::Seal::plain(&msg));
                self.send_client(tuple, answer);
            }
            (MessageClass::Indication, SEND) => self.handle_send(tuple, &msg, now),
            _ => self.stats.dropped_invalid += 1,
        }
    }

    fn handle_binding(&mut self, tuple: FiveTuple, msg: &Message<'_>) {
        let mapped =
            stun_types::attribute::XorMappedAddress::new(tuple.client, msg.transaction_id());
        let answer = reply::success(msg, &[&mapped], reply::Seal::plain(msg));
        self.stats.bindings += 1;
        self.send_client(tuple, answer);
    }

    /// ChannelData from a client (RFC 8656 §12.6): relayed to the channel's peer if the
    /// channel and its permission are live and the bandwidth allows; dropped otherwise.
    fn handle_channel_data(&mut self, tuple: FiveTuple, data: &[u8], now: Instant) {
        let Ok(cd) = ChannelData::parse(data) else {
            self.stats.dropped_invalid += 1;
            return;
        };
        let peer = self
            .allocations
            .get(&tuple)
            .and_then(|a| a.channel_peer(cd.id(), now));
        match peer {
            Some(peer) => self.relay_to_peer(tuple, peer, cd.data(), now),
            None => self.stats.dropped_invalid += 1,
        }
    }

    /// Relays `data` from the client on `tuple` to `peer` when the allocation has a live
    /// permission for the peer's IP and the bandwidth allows; drops and counts it otherwise.
    pub(crate) fn relay_to_peer(
        &mut self,
        tuple: FiveTuple,
        peer: SocketAddr,
        data: &[u8],
        now: Instant,
    ) {
        let Some(alloc) = self.allocations.get_mut(&tuple) else {
            return;
        };
        if admit(alloc, &mut self.stats, peer, data.len(), now) {
            let relayed = alloc.relayed;
            self.push_transmit(Transmit::Peer {
                relayed,
                peer,
                data: data.to_vec(),
            });
        }
    }

    /// A datagram from `peer` to the relayed socket `relayed` (RFC 8656 §11.3, §12.6):
    /// forwarded to the client as ChannelData when a channel is bound to the peer, as a Data
    /// indication otherwise; dropped without a permission for the peer's IP or past the
    /// bandwidth limit.
    pub fn handle_peer(
        &mut self,
        relayed: SocketAddr,
        peer: SocketAddr,
        data: &[u8],
        now: Instant,
    ) {
        let Some(&tuple) = self.by_relayed.get(&relayed) else {
            return;
        };
        let Some(alloc) = self.allocations.get_mut(&tuple) else {
            return;
        };
        if !admit(alloc, &mut self.stats, peer, data.len(), now) {
            return;
        }
        let out = match alloc.channel_of(peer, now) {
            Some(number) => {
                reply::channel_data(number, data, tuple.transport == ClientTransport::Tcp)
            }
            None => reply::data_indication(peer, data),
        };
        self.send_client(tuple, out);
    }

    /// The client's TCP connection closed: its allocation goes (RFC 8656 §3.1).
    pub fn handle_client_closed(&mut self, tuple: FiveTuple, _now: Instant) {
        self.remove_pending(tuple);
        self.remove_allocation(tuple, AllocationEnd::ClientGone);
    }

    /// When [`TurnServer::handle_timeout`] next has work: the earliest allocation expiry.
    /// Constant time while no allocation is refreshed or removed (the value is cached), a scan
    /// of the allocations after that.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if let Some(next) = self.next_expiry.get() {
            return next;
        }
        let next = self.allocations.values().map(|a| a.expires).min();
        self.next_expiry.set(Some(next));
        next
    }

    /// Keeps the cached earliest expiry right when an allocation expiring at `expires` is added.
    pub(crate) fn expiry_added(&self, expires: Instant) {
        if let Some(next) = self.next_expiry.get() {
            let earliest = next.map_or(expires, |n| n.min(expires));
            self.next_expiry.set(Some(Some(earliest)));
        }
    }

    /// Forgets the cached earliest expiry: an allocation's expiry moved, or it is gone.
    pub(crate) fn expiry_changed(&self) {
        self.next_expiry.set(None);
    }

    /// Removes the allocations whose lifetime passed at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Rarely called (when the earliest expiry comes): a fresh scan afterwards keeps a
        // cached expiry that was too early from waking the driver again and again.
        self.expiry_changed();
        let expired: Vec<FiveTuple> = self
            .allocations
            .iter()
            .filter(|(_, a)| a.expires <= now)
            .map(|(t, _)| *t)
            .collect();
        for tuple in expired {
            self.remove_allocation(tuple, AllocationEnd::Expired);
        }
    }

    /// The next bytes to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<TurnEvent> {
        self.events.pop_front()
    }

    pub(crate) fn send_client(&mut self, tuple: FiveTuple, data: Vec<u8>) {
        self.push_transmit(Transmit::Client { tuple, data });
    }

    fn push_transmit(&mut self, t: Transmit) {
        if self.transmits.len() >= MAX_QUEUE {
            self.transmits.pop_front();
        }
        self.transmits.push_back(t);
    }

    pub(crate) fn push_event(&mut self, e: TurnEvent) {
        // Events carry socket lifecycles: never dropped; bounded by the allocation limits.
        self.events.push_back(e);
    }

    /// Counts an allocation (or a pending one) against the user and IP quotas.
    pub(crate) fn count(&mut self, username: &str, ip: IpAddr) {
        *self.per_user.entry(username.to_owned()).or_default() += 1;
        *self.per_ip.entry(ip).or_default() += 1;
    }

    fn uncount(&mut self, username: &str, ip: IpAddr) {
        if let Some(n) = self.per_user.get_mut(username) {
            *n -= 1;
            if *n == 0 {
                self.per_user.remove(username);
            }
        }
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    pub(crate) fn remove_pending(&mut self, tuple: FiveTuple) -> Option<PendingAllocate> {
        let p = self.pending.remove(&tuple)?;
        self.uncount(&p.authed.username, tuple.client.ip());
        Some(p)
    }

    pub(crate) fn remove_allocation(&mut self, tuple: FiveTuple, reason: AllocationEnd) {
        let Some(a) = self.allocations.remove(&tuple) else {
            return;
        };
        self.expiry_changed();
        self.by_relayed.remove(&a.relayed);
        self.uncount(&a.username, tuple.client.ip());
        self.push_event(TurnEvent::AllocationClosed {
            tuple,
            relayed: a.relayed,
            reason,
        });
    }
}

/// Whether `bytes` to or from `peer` may pass `alloc` at `now`: a live permission for the
/// peer's IP (RFC 8656 §9) and room in the bandwidth bucket. Counts a refusal in `stats`.
fn admit(
    alloc: &mut Allocation,
    stats: &mut TurnStats,
    peer: SocketAddr,
    bytes: usize,
    now: Instant,
) -> bool {
    if !alloc.permits(peer.ip(), now) {
        stats.dropped_no_permission += 1;
        return false;
    }
    if !alloc.spend(bytes, now) {
        stats.dropped_bandwidth += 1;
        return false;
    }
    true
}
