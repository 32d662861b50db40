//! One TURN allocation (RFC 8656) seen from the connection: a `turn-client-proto` client over
//! UDP or TCP, its relayed address, the permissions and channel bindings for the peer's
//! candidates, and the wrapping of str0m's datagrams sent from the relayed address.
//!
//! The client does the protocol: Allocate with long-term credentials (401 → REALM/NONCE →
//! MESSAGE-INTEGRITY), Refresh at half the lifetime, CreatePermission and ChannelBind with their
//! refreshes, Send/Data indications and ChannelData. This type adds what the connection needs:
//! TCP framing (ChannelData padded to 4, [`super::frame`]), permission and channel bounds, and
//! a NAT keep-alive schedule.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use turn_client_proto::api::{TurnConfig, TurnEvent, TurnPollRet, TurnRecvRet};
use turn_client_proto::client::TurnClient;
use turn_client_proto::prelude::*;
use turn_client_proto::stun::agent::Transmit;
use turn_client_proto::tcp::TurnClientTcp;
use turn_client_proto::types::{AddressFamily, TransportType, TurnCredentials};
use turn_client_proto::udp::TurnClientUdp;

use turn_client_proto::stun::types::attribute::ErrorCode;
use turn_client_proto::stun::types::message::{Message, MessageClass};
use turn_client_proto::types::message::ALLOCATE;

use super::clock::Clock;
use super::frame::{self, TcpFramer};

/// Channel bindings per allocation: one per remote candidate address, up to this many; others
/// go in Send indications (RFC 8656 §11: a few dozen bytes more per datagram).
pub(crate) const MAX_CHANNELS: usize = 16;

/// Permissions (peer IP addresses) per allocation.
pub(crate) const MAX_PERMISSIONS: usize = 32;

/// How often a UDP allocation sends a Binding to its server, so a NAT between keeps the mapping
/// (Firezone uses 25 s; home routers drop idle UDP mappings after 30 s or more).
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(25);

/// What an allocation tells the gatherer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AllocEvent {
    /// The server gave us this relayed address.
    Relayed(SocketAddr),
    /// The allocation failed (credentials refused, no answer, server error).
    Failed,
}

/// One allocation on one TURN server.
#[derive(Debug)]
pub(crate) struct Allocation {
    client: TurnClient,
    /// The TURN server's address.
    pub(crate) server: SocketAddr,
    /// Reached over a TCP stream (else UDP from a host socket).
    pub(crate) tcp: bool,
    framer: TcpFramer,
    /// The relayed address, once allocated.
    pub(crate) relayed: Option<SocketAddr>,
    /// Failed or closed: nothing more happens.
    pub(crate) failed: bool,
    /// The failure was reported as a gathering event.
    pub(crate) reported_failure: bool,
    /// 401 Unauthorized answers to Allocate so far: the first asks for credentials (it brings
    /// REALM and NONCE), a second means they were refused (RFC 8489 §9.2.4).
    unauthorized: u8,
    /// The server refused the credentials.
    pub(crate) refused: bool,
    permitted: HashSet<IpAddr>,
    channels: HashSet<SocketAddr>,
    /// When the next NAT keep-alive Binding is due (UDP only, once allocated).
    pub(crate) keepalive_at: Option<Instant>,
}

impl Allocation {
    /// Starts allocating from `local` (a host socket, or the local end of a TCP stream) on
    /// `server` with long-term credentials `username`/`password` (RFC 8489 §9.2).
    pub(crate) fn new(
        local: SocketAddr,
        server: SocketAddr,
        tcp: bool,
        username: &str,
        password: &str,
    ) -> Self {
        let mut config = TurnConfig::new(TurnCredentials::new(username, password));
        config.set_address_family(if server.is_ipv4() {
            AddressFamily::IPV4
        } else {
            AddressFamily::IPV6
        });
        let client = if tcp {
            TurnClient::Tcp(TurnClientTcp::allocate(local, server, config))
        } else {
            TurnClient::Udp(TurnClientUdp::allocate(local, server, config))
        };
        Allocation {
            client,
            server,
            tcp,
            framer: TcpFramer::default(),
            relayed: None,
            failed: false,
            reported_failure: false,
            unauthorized: 0,
            refused: false,
            permitted: HashSet::new(),
            channels: HashSet::new(),
            keepalive_at: None,
        }
    }

    /// The local address the client sends from.
    pub(crate) fn local(&self) -> SocketAddr {
        self.client.local_addr()
    }

    fn transport(&self) -> TransportType {
        if self.tcp {
            TransportType::Tcp
        } else {
            TransportType::Udp
        }
    }

    /// One datagram from the server (UDP). Returns peer data relayed to us: `(peer, bytes)`.
    pub(crate) fn handle_datagram(
        &mut self,
        data: &[u8],
        clock: &Clock,
        now: Instant,
    ) -> Option<(SocketAddr, Vec<u8>)> {
        self.handle_message(data, clock, now)
    }

    /// Bytes read from the TCP stream: split into frames, each handled. Returns the peer data.
    /// A stream that stops framing fails the allocation.
    pub(crate) fn handle_stream(
        &mut self,
        data: &[u8],
        clock: &Clock,
        now: Instant,
    ) -> Vec<(SocketAddr, Vec<u8>)> {
        self.framer.push(data);
        let mut out = Vec::new();
        loop {
            match self.framer.next_frame() {
                Ok(Some(frame)) => out.extend(self.handle_message(&frame, clock, now)),
                Ok(None) => break,
                Err(()) => {
                    tracing::debug!("TURN over TCP to {}: unframable stream", self.server);
                    self.failed = true;
                    break;
                }
            }
        }
        out
    }

    fn handle_message(
        &mut self,
        data: &[u8],
        clock: &Clock,
        now: Instant,
    ) -> Option<(SocketAddr, Vec<u8>)> {
        if self.failed {
            return None;
        }
        if self.relayed.is_none() && is_unauthorized_allocate(data) {
            self.unauthorized += 1;
            if self.unauthorized >= 2 {
                // The client would retry a few more times; wrong credentials stay wrong.
                self.refused = true;
                self.fail();
                return None;
            }
        }
        let t = clock.to_turn(now);
        let transmit = Transmit::new(data, self.transport(), self.server, self.local());
        let peer = match self.client.recv(transmit, t) {
            TurnRecvRet::PeerData(d) => Some((d.peer, d.data().to_vec())),
            _ => None,
        };
        if peer.is_some() {
            return peer;
        }
        self.client
            .poll_recv(t)
            .map(|d| (d.peer, d.data().to_vec()))
    }

    /// Allows `peer` to reach us through the relay: a permission for its IP and, within
    /// [`MAX_CHANNELS`], a channel binding for its address (which also installs the permission).
    pub(crate) fn permit(&mut self, peer: SocketAddr, clock: &Clock, now: Instant) {
        if self.relayed.is_none() || self.failed || peer.is_ipv4() != self.server.is_ipv4() {
            return;
        }
        let t = clock.to_turn(now);
        if self.channels.len() < MAX_CHANNELS && self.channels.insert(peer) {
            if let Err(e) = self.client.bind_channel(TransportType::Udp, peer, t) {
                tracing::debug!("TURN channel bind to {peer}: {e}");
            }
            self.permitted.insert(peer.ip());
            return;
        }
        if self.permitted.len() < MAX_PERMISSIONS && self.permitted.insert(peer.ip()) {
            if let Err(e) = self
                .client
                .create_permission(TransportType::Udp, peer.ip(), t)
            {
                tracing::debug!("TURN permission for {}: {e}", peer.ip());
            }
        }
    }

    /// Wraps a datagram str0m sends from our relayed address to `to`: the bytes to send to the
    /// server (ChannelData when a channel is bound, else a Send indication; padded on TCP).
    /// `None` when `to` has no permission yet: one is requested and the datagram dropped (ICE
    /// retransmits its checks).
    pub(crate) fn wrap(
        &mut self,
        to: SocketAddr,
        data: &[u8],
        clock: &Clock,
        now: Instant,
    ) -> Option<Vec<u8>> {
        let t = clock.to_turn(now);
        match self.client.send_to(TransportType::Udp, to, data, t) {
            Ok(Some(build)) => {
                let bytes = build.build().data;
                Some(if self.tcp {
                    frame::tcp_pad(bytes)
                } else {
                    bytes
                })
            }
            Ok(None) => None,
            Err(e) => {
                tracing::trace!("TURN send to {to}: {e}; asking for a permission");
                self.permit(to, clock, now);
                None
            }
        }
    }

    /// The next message for the server (Allocate, Refresh, CreatePermission, ChannelBind).
    pub(crate) fn poll_transmit(&mut self, clock: &Clock, now: Instant) -> Option<Vec<u8>> {
        if self.failed {
            return None;
        }
        let t = clock.to_turn(now);
        let transmit = self.client.poll_transmit(t)?;
        let bytes = transmit.data.to_vec();
        Some(if self.tcp {
            frame::tcp_pad(bytes)
        } else {
            bytes
        })
    }

    /// What happened since the last call: allocated, or failed.
    pub(crate) fn poll_event(&mut self) -> Option<AllocEvent> {
        while let Some(ev) = self.client.poll_event() {
            match ev {
                TurnEvent::AllocationCreated(_, relayed) if self.relayed.is_none() => {
                    self.relayed = Some(relayed);
                    return Some(AllocEvent::Relayed(relayed));
                }
                TurnEvent::AllocationCreateFailed(_) if self.relayed.is_none() => {
                    self.failed = true;
                    return Some(AllocEvent::Failed);
                }
                other => tracing::trace!("TURN {}: {other:?}", self.server),
            }
        }
        None
    }

    /// When the client next needs `poll`, or `None` once it is closed (then it counts as
    /// failed).
    pub(crate) fn poll_timeout(&mut self, clock: &Clock, now: Instant) -> Option<Instant> {
        if self.failed {
            return None;
        }
        match self.client.poll(clock.to_turn(now)) {
            TurnPollRet::WaitUntil(t) => Some(clock.to_std(t)),
            TurnPollRet::Closed => {
                self.failed = true;
                None
            }
            // TCP allocations to peers (RFC 6062) are never asked for.
            _ => Some(now),
        }
    }

    /// Deletes the allocation on the server (a Refresh with LIFETIME 0, RFC 8656 §7), so its
    /// relayed port and the server's quota are freed now rather than when the lifetime runs
    /// out. The Refresh is the next [`TurnAlloc::poll_transmit`]; nothing happens for an
    /// allocation that never succeeded or already failed.
    pub(crate) fn delete(&mut self, clock: &Clock, now: Instant) {
        if !self.failed && self.relayed.is_some() {
            let _ = self.client.delete(clock.to_turn(now));
        }
    }

    /// Gives up: a pending allocation at the gathering deadline, or a TCP stream that closed.
    pub(crate) fn fail(&mut self) {
        if !self.failed {
            self.failed = true;
            self.client.protocol_error();
        }
    }
}

/// Whether `data` is a 401 Unauthorized error response to an Allocate.
fn is_unauthorized_allocate(data: &[u8]) -> bool {
    let Ok(msg) = Message::from_bytes(data) else {
        return false;
    };
    msg.has_method(ALLOCATE)
        && msg.has_class(MessageClass::Error)
        && msg
            .attribute::<ErrorCode>()
            .is_ok_and(|e| e.code() == ErrorCode::UNAUTHORIZED)
}
