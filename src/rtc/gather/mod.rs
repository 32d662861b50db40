//! Candidate gathering beyond host candidates: server-reflexive candidates from STUN Binding
//! (RFC 8489) and relayed candidates from TURN allocations (RFC 8656), and carrying relayed
//! traffic. str0m does no address discovery (its README, "NIC enumeration and TURN (and
//! STUN)"): this module finds the addresses, the driver adds them to str0m as
//! `Candidate::server_reflexive(mapped, base)` and `Candidate::relayed(relayed, local)`.
//!
//! [`Gatherer`] is sans-IO: the driver resolves and dials the servers ([`ServerTarget`]), then
//! feeds it datagrams and TCP bytes from the servers with `now`, sends what
//! [`Gatherer::poll_transmit`] gives, and reads [`GatherEvent`]s. Gathering ends (a
//! [`GatherEvent::Done`]) when every Binding and Allocate has an outcome, or at its deadline
//! (the connect timeout); allocations that succeeded live on with the connection (refreshes,
//! permissions, channel bindings, NAT keep-alives).
//!
//! Bounds: at most [`MAX_BINDINGS`] Binding transactions and [`MAX_ALLOCATIONS`] allocations
//! per connection, [`MAX_REMOTES`] remote candidate addresses permitted.

mod binding;
mod clock;
pub(crate) mod frame;
mod turn;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use binding::{Binding, BindingState};
use clock::Clock;
use turn::{AllocEvent, Allocation};

/// Most STUN Binding transactions a connection runs while gathering (host sockets × servers).
pub(crate) const MAX_BINDINGS: usize = 16;

/// Most TURN allocations a connection makes.
pub(crate) const MAX_ALLOCATIONS: usize = 4;

/// Most remote candidate addresses an allocation is asked to permit.
pub(crate) const MAX_REMOTES: usize = 96;

/// How long a TURN-over-TCP allocation waits while the same server may still answer over UDP:
/// 300 ms. A server that answers over UDP drops it (TURN over UDP works, so its TCP twin would
/// only add a relayed candidate); one that stays silent that long, or an allocation over UDP
/// that fails, starts it. Every relayed candidate is paired with every remote candidate on both
/// sides, and the checks of the pairs a second allocation adds delay the ones that matter
/// (BENCHMARKS.md, "Join across the NAT lab"); a network that blocks UDP pays this on its join.
pub(crate) const TCP_HOLD: Duration = Duration::from_millis(300);

/// A resolved STUN or TURN server, ready to use.
#[derive(Debug, Clone)]
pub(crate) struct ServerTarget {
    /// The server's address.
    pub addr: SocketAddr,
    /// `Some((username, credential))` for TURN; `None` for a STUN-only server.
    pub turn: Option<(String, String)>,
    /// For TURN over TCP: the local address of the TCP stream the driver connected.
    pub tcp_local: Option<SocketAddr>,
}

/// Something to send to a server.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Out {
    /// On the TCP stream whose local address is `from` (else a UDP datagram from the host
    /// socket bound to `from`).
    pub tcp: bool,
    /// The local address to send from.
    pub from: SocketAddr,
    /// The server.
    pub to: SocketAddr,
    /// The bytes.
    pub data: Vec<u8>,
}

/// What gathering found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum GatherEvent {
    /// A STUN server saw the host socket `base` as `mapped` (equal on a public address or
    /// loopback: then it is not a new candidate).
    Mapped {
        /// The server-reflexive address.
        mapped: SocketAddr,
        /// The host socket.
        base: SocketAddr,
    },
    /// A TURN server allocated `relayed` for us; traffic goes through `server` from `local`.
    Relayed {
        /// The relayed transport address (the candidate).
        relayed: SocketAddr,
        /// Our end towards the server (a host socket or the TCP stream's local address).
        local: SocketAddr,
        /// The TURN server.
        server: SocketAddr,
    },
    /// A server gave nothing: the text says which and why (for logs and errors).
    Failed(String),
    /// The TCP stream whose local address this is will not be used (its server answers over
    /// UDP): close it.
    StreamUnused(SocketAddr),
    /// Gathering is over; no more candidates come.
    Done,
}

/// What a datagram from a server was.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// Consumed by a STUN or TURN transaction.
    Handled,
    /// Data a peer sent to our relayed address: give it to str0m with `destination = relayed`.
    Relayed {
        /// Our relayed address.
        relayed: SocketAddr,
        /// The peer.
        peer: SocketAddr,
        /// The payload.
        data: Vec<u8>,
    },
    /// Not from a server we talk to: str0m's.
    NotOurs,
}

/// The gathering and TURN state of one connection (see the module docs).
#[derive(Debug)]
pub(crate) struct Gatherer {
    clock: Clock,
    relay_only: bool,
    bindings: Vec<Binding>,
    keepalives: Vec<Binding>,
    allocs: Vec<Allocation>,
    /// TURN-over-TCP servers held back (until the instant), see [`TCP_HOLD`].
    held: Vec<(ServerTarget, Instant)>,
    /// Servers that have answered over UDP.
    heard: Vec<SocketAddr>,
    remotes: Vec<SocketAddr>,
    events: VecDeque<GatherEvent>,
    deadline: Instant,
    /// The last batch of servers is in ([`Gatherer::start`]).
    started: bool,
    done: bool,
}

impl Gatherer {
    /// A gatherer that gives up on unanswered servers at `deadline`. With `relay_only`
    /// (`IcePolicy::Relay`) no Binding is sent: server-reflexive candidates would not be used.
    pub(crate) fn new(now: Instant, deadline: Instant, relay_only: bool) -> Self {
        Gatherer {
            clock: Clock::new(now),
            relay_only,
            bindings: Vec::new(),
            keepalives: Vec::new(),
            allocs: Vec::new(),
            held: Vec::new(),
            heard: Vec::new(),
            remotes: Vec::new(),
            events: VecDeque::new(),
            deadline,
            started: false,
            done: false,
        }
    }

    /// Starts on the resolved servers: a Binding from every host socket of the server's family
    /// to every UDP server (a TURN server answers Binding too), and an Allocate per TURN server
    /// (UDP from the host socket that fits the server best, or on the dialed TCP stream).
    /// Called once per batch of servers; `last` says no batch follows (gathering can only be
    /// over after it).
    pub(crate) fn start(
        &mut self,
        servers: &[ServerTarget],
        hosts: &[SocketAddr],
        last: bool,
        now: Instant,
    ) {
        self.started |= last;
        for s in servers {
            if s.tcp_local.is_none() && !self.relay_only {
                for &h in hosts.iter().filter(|h| h.is_ipv4() == s.addr.is_ipv4()) {
                    let dup = self
                        .bindings
                        .iter()
                        .any(|b| b.local == h && b.server == s.addr);
                    if !dup && self.bindings.len() < MAX_BINDINGS {
                        self.bindings.push(Binding::new(h, s.addr, now));
                    }
                }
            }
            if s.turn.is_none() {
                continue;
            }
            if let Some(tcp) = s.tcp_local {
                if self.heard.contains(&s.addr) {
                    self.events.push_back(GatherEvent::StreamUnused(tcp));
                    continue;
                }
                if self.allocs.iter().any(|a| !a.tcp && a.server == s.addr) {
                    self.held.push((s.clone(), now + TCP_HOLD));
                    continue;
                }
            }
            self.allocate(s, hosts);
        }
        self.check_done(now);
    }

    /// Starts a TURN allocation on `s`, from the host socket that fits it best or on its TCP
    /// stream, within [`MAX_ALLOCATIONS`].
    fn allocate(&mut self, s: &ServerTarget, hosts: &[SocketAddr]) {
        let Some((user, pass)) = &s.turn else {
            return;
        };
        if self.allocs.len() >= MAX_ALLOCATIONS {
            self.events.push_back(GatherEvent::Failed(format!(
                "TURN server {}: more than {MAX_ALLOCATIONS} allocations",
                s.addr
            )));
            return;
        }
        let Some(local) = s.tcp_local.or_else(|| best_host(hosts, s.addr)) else {
            return;
        };
        let tcp = s.tcp_local.is_some();
        tracing::debug!(
            "TURN allocate on {} over {} from {local}",
            s.addr,
            if tcp { "TCP" } else { "UDP" }
        );
        self.allocs
            .push(Allocation::new(local, s.addr, tcp, user, pass));
    }

    /// A server answered over UDP: its held TCP streams are not needed.
    fn heard_from(&mut self, server: SocketAddr) {
        if self.heard.contains(&server) {
            return;
        }
        self.heard.push(server);
        let events = &mut self.events;
        self.held.retain(|(s, _)| {
            let drop = s.addr == server;
            if let (true, Some(tcp)) = (drop, s.tcp_local) {
                events.push_back(GatherEvent::StreamUnused(tcp));
            }
            !drop
        });
    }

    /// Held TCP servers whose hold is over, or whose allocation over UDP failed, allocate now.
    fn release_held(&mut self, now: Instant) {
        let allocs = &self.allocs;
        let (due, keep): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.held)
                .into_iter()
                .partition(|(s, until)| {
                    now >= *until
                        || allocs
                            .iter()
                            .any(|a| !a.tcp && a.server == s.addr && a.failed)
                });
        self.held = keep;
        for (s, _) in due {
            self.allocate(&s, &[]);
        }
    }

    /// The TURN server behind our relayed address `relayed`.
    pub(crate) fn relay_server(&self, relayed: SocketAddr) -> Option<SocketAddr> {
        self.allocs
            .iter()
            .find(|a| a.relayed == Some(relayed))
            .map(|a| a.server)
    }

    /// Whether gathering is over.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// A UDP datagram that arrived on host socket `local` from `from`.
    pub(crate) fn handle_datagram(
        &mut self,
        local: SocketAddr,
        from: SocketAddr,
        data: &[u8],
        now: Instant,
    ) -> Incoming {
        let from_server = self.bindings.iter().any(|b| b.server == from)
            || self.keepalives.iter().any(|b| b.server == from)
            || self
                .allocs
                .iter()
                .any(|a| !a.tcp && a.server == from && a.local() == local);
        if !from_server {
            return Incoming::NotOurs;
        }
        self.heard_from(from);
        let class = frame::classify(data);
        if class == frame::PacketClass::Stun {
            let mine = self
                .bindings
                .iter_mut()
                .chain(self.keepalives.iter_mut())
                .any(|b| b.local == local && b.server == from && b.handle_response(data));
            if mine {
                self.after_input(now);
                return Incoming::Handled;
            }
        }
        if !matches!(
            class,
            frame::PacketClass::Stun | frame::PacketClass::ChannelData
        ) {
            return Incoming::NotOurs;
        }
        let clock = self.clock;
        let Some(alloc) = self
            .allocs
            .iter_mut()
            .find(|a| !a.tcp && a.server == from && a.local() == local)
        else {
            return Incoming::NotOurs;
        };
        let relayed = alloc.relayed;
        let got = alloc.handle_datagram(data, &clock, now);
        self.after_input(now);
        match (got, relayed) {
            (Some((peer, data)), Some(relayed)) => Incoming::Relayed {
                relayed,
                peer,
                data,
            },
            _ => Incoming::Handled,
        }
    }

    /// Bytes read from the TCP stream whose local address is `local`. Returns what peers sent
    /// to our relayed address through it: `(relayed, peer, data)`.
    pub(crate) fn handle_stream(
        &mut self,
        local: SocketAddr,
        data: &[u8],
        now: Instant,
    ) -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
        let clock = self.clock;
        let mut out = Vec::new();
        if let Some(alloc) = self.allocs.iter_mut().find(|a| a.tcp && a.local() == local) {
            let relayed = alloc.relayed;
            for (peer, d) in alloc.handle_stream(data, &clock, now) {
                if let Some(r) = relayed {
                    out.push((r, peer, d));
                }
            }
        }
        self.after_input(now);
        out
    }

    /// The TCP stream whose local address is `local` closed: its allocation is gone.
    pub(crate) fn stream_closed(&mut self, local: SocketAddr, now: Instant) {
        for a in self
            .allocs
            .iter_mut()
            .filter(|a| a.tcp && a.local() == local)
        {
            a.fail();
        }
        self.after_input(now);
    }

    /// A remote candidate address: every allocation permits it (and binds a channel to it),
    /// now and once allocated.
    pub(crate) fn add_remote(&mut self, addr: SocketAddr, now: Instant) {
        if self.remotes.contains(&addr) || self.remotes.len() >= MAX_REMOTES {
            return;
        }
        self.remotes.push(addr);
        let clock = self.clock;
        for a in &mut self.allocs {
            a.permit(addr, &clock, now);
        }
    }

    /// Wraps a datagram str0m sends from `source` to `to`, if `source` is one of our relayed
    /// addresses: `Some(Some(out))` to send to the TURN server, `Some(None)` when it was
    /// dropped (no permission yet), `None` when `source` is not relayed.
    pub(crate) fn wrap(
        &mut self,
        source: SocketAddr,
        to: SocketAddr,
        data: &[u8],
        now: Instant,
    ) -> Option<Option<Out>> {
        let clock = self.clock;
        let alloc = self
            .allocs
            .iter_mut()
            .find(|a| a.relayed == Some(source) && !a.failed)?;
        let out = alloc.wrap(to, data, &clock, now).map(|data| Out {
            tcp: alloc.tcp,
            from: alloc.local(),
            to: alloc.server,
            data,
        });
        Some(out)
    }

    /// The next message for a server.
    pub(crate) fn poll_transmit(&mut self, now: Instant) -> Option<Out> {
        for b in self.bindings.iter_mut().chain(self.keepalives.iter_mut()) {
            if let Some(data) = b.poll_transmit(now) {
                return Some(Out {
                    tcp: false,
                    from: b.local,
                    to: b.server,
                    data,
                });
            }
        }
        let clock = self.clock;
        for a in &mut self.allocs {
            if let Some(data) = a.poll_transmit(&clock, now) {
                return Some(Out {
                    tcp: a.tcp,
                    from: a.local(),
                    to: a.server,
                    data,
                });
            }
        }
        None
    }

    /// The next gathering event.
    pub(crate) fn poll_event(&mut self) -> Option<GatherEvent> {
        self.events.pop_front()
    }

    /// When something is next due.
    pub(crate) fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
        let clock = self.clock;
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for b in self.bindings.iter().chain(self.keepalives.iter()) {
            consider(b.poll_timeout());
        }
        for a in &mut self.allocs {
            consider(a.poll_timeout(&clock, now));
            consider(a.keepalive_at);
        }
        for (_, until) in &self.held {
            consider(Some(*until));
        }
        if !self.done {
            consider(Some(self.deadline));
        }
        next
    }

    /// The connection ends: every allocation is deleted on its server (the Refreshes are the
    /// next [`Gather::poll_transmit`]s; nobody waits for their answers).
    pub(crate) fn release(&mut self, now: Instant) {
        let clock = self.clock;
        for a in &mut self.allocs {
            a.delete(&clock, now);
        }
    }

    /// Time passed: retransmissions, refreshes, keep-alives, and the gathering deadline.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        for b in self.bindings.iter_mut().chain(self.keepalives.iter_mut()) {
            b.handle_timeout(now);
        }
        self.keepalives
            .retain(|b| b.state() == BindingState::Pending);
        let clock = self.clock;
        for a in &mut self.allocs {
            let _ = a.poll_timeout(&clock, now);
            if !a.tcp && !a.failed && a.keepalive_at.is_some_and(|t| now >= t) {
                a.keepalive_at = Some(now + turn::KEEPALIVE);
                self.keepalives
                    .push(Binding::keepalive(a.local(), a.server, now));
            }
        }
        self.release_held(now);
        if !self.done && now >= self.deadline {
            self.held.clear();
            for a in self.allocs.iter_mut().filter(|a| a.relayed.is_none()) {
                a.fail();
            }
        }
        self.after_input(now);
    }

    /// Collects outcomes into events and checks whether gathering is over.
    fn after_input(&mut self, now: Instant) {
        self.release_held(now);
        let mut i = 0;
        while i < self.bindings.len() {
            match self.bindings[i].state() {
                BindingState::Pending => i += 1,
                BindingState::Mapped(mapped) => {
                    let b = self.bindings.remove(i);
                    self.events.push_back(GatherEvent::Mapped {
                        mapped,
                        base: b.local,
                    });
                }
                BindingState::Failed => {
                    let b = self.bindings.remove(i);
                    self.events.push_back(GatherEvent::Failed(format!(
                        "STUN server {}: no Binding answer to {}",
                        b.server, b.local
                    )));
                }
            }
        }
        let clock = self.clock;
        for a in &mut self.allocs {
            // Poll first: a closed client counts as failed.
            let _ = a.poll_timeout(&clock, now);
            while let Some(ev) = a.poll_event() {
                match ev {
                    AllocEvent::Relayed(relayed) => {
                        if !a.tcp {
                            a.keepalive_at = Some(now + turn::KEEPALIVE);
                        }
                        for &r in &self.remotes {
                            a.permit(r, &clock, now);
                        }
                        self.events.push_back(GatherEvent::Relayed {
                            relayed,
                            local: a.local(),
                            server: a.server,
                        });
                    }
                    AllocEvent::Failed => {}
                }
            }
            if a.failed && a.relayed.is_none() && !a.reported_failure {
                a.reported_failure = true;
                let why = if a.refused {
                    "401 Unauthorized: the username or credential is wrong or expired"
                } else {
                    "the allocation failed (refused, or no answer in time)"
                };
                self.events.push_back(GatherEvent::Failed(format!(
                    "TURN server {}: {why}",
                    a.server
                )));
            }
        }
        self.check_done(now);
    }

    fn check_done(&mut self, now: Instant) {
        if self.done || !self.started && now < self.deadline {
            return;
        }
        let settled = self.bindings.is_empty()
            && self.held.is_empty()
            && self.allocs.iter().all(|a| a.relayed.is_some() || a.failed);
        if settled || now >= self.deadline {
            self.done = true;
            self.bindings.clear();
            self.events.push_back(GatherEvent::Done);
        }
    }
}

/// The host socket to allocate from for `server`: one of its family, loopback only for a
/// loopback server (and the other way round), else the first of the family.
fn best_host(hosts: &[SocketAddr], server: SocketAddr) -> Option<SocketAddr> {
    let family = hosts.iter().filter(|h| h.is_ipv4() == server.is_ipv4());
    let mut fallback = None;
    for &h in family {
        if h.ip().is_loopback() == server.ip().is_loopback() {
            return Some(h);
        }
        fallback.get_or_insert(h);
    }
    fallback
}

#[cfg(test)]
mod tests;
