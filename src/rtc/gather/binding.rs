//! One STUN Binding transaction (RFC 8489 §6.2.1, §7.3.3): the request a host socket sends to a
//! STUN server, its retransmissions, and the mapped address the success response carries
//! (XOR-MAPPED-ADDRESS). Sans-IO: bytes and `now`
//! in, bytes and the outcome out. Every RFC 5389/8489 server answers with
//! XOR-MAPPED-ADDRESS; the plain MAPPED-ADDRESS of RFC 3489 servers is not read.
//!
//! str0m's own STUN parser insists on MESSAGE-INTEGRITY in a Binding success, which a plain
//! STUN server never sends (docs/NAT.md), so the codec here is `stun-types` (re-exported by
//! `turn-client-proto`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use turn_client_proto::stun::types::attribute::XorMappedAddress;
use turn_client_proto::stun::types::message::{
    Message, MessageClass, MessageWrite, MessageWriteExt, MessageWriteVec, TransactionId, BINDING,
};

/// First retransmission timeout (RFC 8489 §6.2.1: 500 ms recommended).
const RTO: Duration = Duration::from_millis(500);

/// Requests sent in all (RFC 8489 §6.2.1 `Rc` = 7).
const MAX_SENDS: u32 = 7;

/// After the last request, wait this many RTOs for its answer (RFC 8489 `Rm` = 16).
const LAST_WAIT_RTOS: u32 = 16;

/// Where a transaction stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BindingState {
    /// Sending and waiting.
    Pending,
    /// The server answered with this mapped address.
    Mapped(SocketAddr),
    /// No (usable) answer: retransmissions ran out, or an error response.
    Failed,
}

/// One Binding request from `local` to `server`.
#[derive(Debug)]
pub(crate) struct Binding {
    /// The host socket it is sent from.
    pub(crate) local: SocketAddr,
    /// The STUN server.
    pub(crate) server: SocketAddr,
    txid: TransactionId,
    request: Vec<u8>,
    sends: u32,
    /// How many requests may be sent: [`MAX_SENDS`], or 1 for a keep-alive.
    max_sends: u32,
    next: Instant,
    state: BindingState,
}

impl Binding {
    /// A transaction that sends its first request at `now` and retransmits per RFC 8489.
    pub(crate) fn new(local: SocketAddr, server: SocketAddr, now: Instant) -> Self {
        Self::with_sends(local, server, now, MAX_SENDS)
    }

    /// A single request whose answer only keeps a NAT mapping open (a keep-alive): it is not
    /// retransmitted and its failure means nothing.
    pub(crate) fn keepalive(local: SocketAddr, server: SocketAddr, now: Instant) -> Self {
        Self::with_sends(local, server, now, 1)
    }

    fn with_sends(local: SocketAddr, server: SocketAddr, now: Instant, max_sends: u32) -> Self {
        let msg = Message::builder_request(BINDING, MessageWriteVec::new());
        let txid = msg.transaction_id();
        Binding {
            local,
            server,
            txid,
            request: msg.finish(),
            sends: 0,
            max_sends,
            next: now,
            state: BindingState::Pending,
        }
    }

    /// Where it stands.
    pub(crate) fn state(&self) -> BindingState {
        self.state
    }

    /// The request bytes to send now, if one is due.
    pub(crate) fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.state != BindingState::Pending || now < self.next || self.sends >= self.max_sends {
            return None;
        }
        self.sends += 1;
        // RTO doubles after each request; the last one waits Rm × RTO.
        let wait = if self.sends >= self.max_sends {
            RTO * LAST_WAIT_RTOS
        } else {
            RTO * (1 << (self.sends - 1))
        };
        self.next = now + wait;
        Some(self.request.clone())
    }

    /// When it next wants [`Binding::handle_timeout`] or [`Binding::poll_transmit`].
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        (self.state == BindingState::Pending).then_some(self.next)
    }

    /// Time passed: after the last request's wait, the transaction fails.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.state == BindingState::Pending && self.sends >= self.max_sends && now >= self.next {
            self.state = BindingState::Failed;
        }
    }

    /// A STUN message from the server. Returns `true` if it answers this transaction (then
    /// [`Binding::state`] tells how); `false` leaves it to someone else (a TURN client).
    pub(crate) fn handle_response(&mut self, data: &[u8]) -> bool {
        let Ok(msg) = Message::from_bytes(data) else {
            return false;
        };
        if msg.transaction_id() != self.txid || !msg.has_method(BINDING) {
            return false;
        }
        if self.state != BindingState::Pending {
            return true;
        }
        self.state = match msg.class() {
            MessageClass::Success => match msg.attribute::<XorMappedAddress>() {
                Ok(x) => BindingState::Mapped(x.addr(msg.transaction_id())),
                Err(_) => BindingState::Failed,
            },
            MessageClass::Error => BindingState::Failed,
            _ => return false,
        };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn success(request: &[u8], mapped: SocketAddr) -> Vec<u8> {
        let req = Message::from_bytes(request).unwrap();
        let mut b = Message::builder_success(&req, MessageWriteVec::new());
        b.add_attribute(&XorMappedAddress::new(mapped, req.transaction_id()))
            .unwrap();
        b.finish()
    }

    #[test]
    fn retransmits_seven_times_then_fails() {
        let t0 = Instant::now();
        let mut b = Binding::new(addr("10.0.0.2:5000"), addr("192.0.2.1:3478"), t0);
        let mut now = t0;
        let mut sends = 0;
        for _ in 0..100 {
            if b.poll_transmit(now).is_some() {
                sends += 1;
            }
            b.handle_timeout(now);
            match b.poll_timeout() {
                Some(t) => now = t,
                None => break,
            }
        }
        assert_eq!(sends, 7);
        assert_eq!(b.state(), BindingState::Failed);
        // 0.5 + 1 + 2 + 4 + 8 + 16 s between the sends, then 16 × 0.5 s: 39.5 s.
        assert_eq!(now - t0, Duration::from_millis(39_500));
    }

    #[test]
    fn success_gives_the_mapped_address_and_others_are_not_ours() {
        let now = Instant::now();
        let mut b = Binding::new(addr("10.0.0.2:5000"), addr("192.0.2.1:3478"), now);
        let req = b.poll_transmit(now).unwrap();
        let mut other = Binding::new(addr("10.0.0.2:5000"), addr("192.0.2.1:3478"), now);
        let other_req = other.poll_transmit(now).unwrap();
        assert!(!b.handle_response(&success(&other_req, addr("203.0.113.9:1"))));
        assert!(!b.handle_response(b"\x00\x01garbage"));
        assert!(b.handle_response(&success(&req, addr("203.0.113.9:40000"))));
        assert_eq!(b.state(), BindingState::Mapped(addr("203.0.113.9:40000")));
        assert_eq!(b.poll_transmit(now + Duration::from_secs(5)), None);
        assert_eq!(b.poll_timeout(), None);
    }

    #[test]
    fn keepalive_sends_once() {
        let now = Instant::now();
        let mut b = Binding::keepalive(addr("10.0.0.2:5000"), addr("192.0.2.1:3478"), now);
        assert!(b.poll_transmit(now).is_some());
        assert!(b.poll_transmit(now + Duration::from_secs(60)).is_none());
        b.handle_timeout(now + Duration::from_secs(60));
        assert_eq!(b.state(), BindingState::Failed);
    }
}
