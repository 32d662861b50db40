//! [`Relay`]: the sans-IO core of `dat-social relay`. It holds every client [`Session`], the
//! relayed stream pairs and the pending connects, and routes messages between clients through a
//! [`Network`] (PROTOCOL.md §4–§5, custodial and non-custodial modes). Frames and time in,
//! frames and events (wake-ups) out, in the vocabulary of every core of the crate:
//! [`Relay::handle_frame`], [`Relay::poll_transmit`], [`Relay::handle_timeout`],
//! [`Relay::poll_timeout`], [`Relay::poll_event`].
//!
//! By concern: this file holds the sessions and the dispatch of their messages;
//! [`pairing`] the relayed stream pairs (data routing, back-pressure, bridged secret-streams);
//! [`registry`] listens, announces, lookups and the signatures that prove them; [`establish`]
//! the pending connects, one small machine per mode (custodial, relayed, bridged,
//! server-bridged).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use tracing::{debug, info};

use crate::relay::ice::IceMessage;
use crate::relay::messages::{AliasRef, IdRef, Lookup};
use crate::relay::server::ice::{IceService, RelayIce};
use crate::relay::server::network::{Network, ServerRef};
use crate::relay::server::session::{ServerEntry, Session, StreamRef};
use crate::relay::server::{CloseReason, Limits, PairId, PendingId, RelayError, SessionId};
use crate::relay::Message;

mod establish;
mod pairing;
mod registry;

pub use establish::custodial_handshake;
use establish::PendingConnect;
use pairing::Pair;

/// What the relay core tells its driver ([`Relay::poll_event`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerEvent {
    /// The driver of this session should look again: frames to write, or reading allowed.
    Wakeup(SessionId),
}

/// The relay core. Drive it with [`Relay::handle_frame`], [`Relay::poll_transmit`],
/// [`Relay::handle_timeout`]; after each call, [`Relay::poll_event`] names the sessions whose
/// writer has frames or whose reader may read again.
#[derive(Debug)]
pub struct Relay<N: Network> {
    limits: Limits,
    network: N,
    sessions: HashMap<SessionId, Session>,
    pairs: HashMap<PairId, Pair>,
    pending: HashMap<PendingId, PendingConnect>,
    next_id: u64,
    wakeups: HashSet<SessionId>,
    /// Wake-ups taken out of `wakeups`, handed out one by one by [`Relay::poll_event`].
    woken: Vec<SessionId>,
    /// The relay's node id: the `peerId` of the records non-custodial clients sign.
    node_id: [u8; 32],
    /// The STUN/TURN servers given on the `dat-social/ice/v1` channel; `None`: the channel is
    /// rejected as any unknown protocol.
    ice: Option<IceService>,
}

impl<N: Network> Relay<N> {
    /// A relay with no sessions.
    pub fn new(limits: Limits, network: N) -> Self {
        Self {
            limits,
            network,
            sessions: HashMap::new(),
            pairs: HashMap::new(),
            pending: HashMap::new(),
            next_id: 1,
            wakeups: HashSet::new(),
            woken: Vec::new(),
            node_id: rand::random(),
            ice: None,
        }
    }

    /// Gives the relay's clients `ice` on the `dat-social/ice/v1` channel (`None`: reject the
    /// channel; sessions opened before keep what they had). `now` and `unix_now` (time since
    /// the Unix epoch) are the same moment on the two clocks: the core derives the Unix time
    /// in credentials from its monotonic `now` afterwards. Validate `ice` first
    /// ([`RelayIce::validate`]).
    pub fn set_ice(&mut self, ice: Option<RelayIce>, now: Instant, unix_now: std::time::Duration) {
        self.ice = ice.map(|c| IceService::new(c, now, unix_now));
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Sessions currently held (closing ones included until [`Relay::remove_session`]).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    pub(super) fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Adds a session for a new client connection; its protomux `open` frame is queued at once.
    /// `peer` names the client in logs.
    ///
    /// Errors: [`RelayError::TooManySessions`] at [`Limits::max_sessions`].
    pub fn open_session(&mut self, peer: String, now: Instant) -> Result<SessionId, RelayError> {
        if self.sessions.len() >= self.limits.max_sessions {
            return Err(RelayError::TooManySessions(self.limits.max_sessions));
        }
        let id = self.fresh_id();
        debug!(session = id, %peer, "relay: session opened");
        self.sessions.insert(
            id,
            Session::new(peer, now, &self.limits, self.ice.is_some()),
        );
        self.wakeups.insert(id);
        Ok(id)
    }

    /// Handles one protomux frame received from the client of `session`. A protocol error or a
    /// broken limit closes that session (see [`Relay::close_reason`]); nothing is returned.
    pub fn handle_frame(&mut self, session: SessionId, frame: &[u8], now: Instant) {
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        if s.closing.is_some() {
            return;
        }
        let result = s.on_frame(frame, now, &self.limits);
        self.wakeups.insert(session);
        let messages = match result {
            Ok(m) => m,
            Err(reason) => return self.close_session(session, reason),
        };
        self.answer_ice(session, now);
        for m in messages {
            if let Err(reason) = self.dispatch(session, m) {
                return self.close_session(session, reason);
            }
            if self.close_reason(session).is_some() {
                return;
            }
        }
    }

    /// Answers the session's ICE request, once its `handshake` named its key, within its
    /// request budget (beyond it, requests are dropped: see `ice::IceRequests`).
    fn answer_ice(&mut self, session: SessionId, now: Instant) {
        let (Some(service), Some(s)) = (&self.ice, self.sessions.get_mut(&session)) else {
            return;
        };
        let Some(key) = s.default_key.filter(|_| s.ice.pending) else {
            return;
        };
        s.ice.pending = false;
        if !s.ice.take(now, service.config.refill()) {
            debug!(session, peer = %s.peer, "relay: ICE request over budget, dropped");
            return;
        }
        let servers = service.config.servers_for(&key, service.unix_s(now));
        let ttl_s = service.config.ttl.as_secs();
        s.send_ice(&IceMessage::Servers { ttl_s, servers });
    }

    /// The next frame to write to the client of `session`, oldest first (a heartbeat `ping`
    /// goes ahead of queued data). Taking frames does not count as activity of the client:
    /// only [`Relay::handle_frame`] does; `_now` is kept for drivers that pass their clock.
    pub fn poll_transmit(&mut self, session: SessionId, _now: Instant) -> Option<Vec<u8>> {
        let s = self.sessions.get_mut(&session)?;
        let could_read = s.wants_read(&self.limits);
        let (frame, stream) = s.poll_transmit()?;
        if !could_read && s.wants_read(&self.limits) {
            self.wakeups.insert(session);
        }
        if let Some((pair_id, side)) = stream {
            self.drained(pair_id, side, frame.len());
        }
        Some(frame)
    }

    /// True if the driver should read the next frame of `session` (false while it is closing,
    /// or blocked by a full stream buffer or its own unread answers: back-pressure).
    pub fn wants_read(&self, session: SessionId) -> bool {
        self.sessions
            .get(&session)
            .is_some_and(|s| s.wants_read(&self.limits))
    }

    /// When [`Relay::handle_timeout`] must be called for `session` (ping / idle timeout).
    pub fn poll_timeout(&self, session: SessionId) -> Option<Instant> {
        self.sessions
            .get(&session)
            .map(|s| s.poll_timeout(&self.limits))
    }

    /// Sends the heartbeat `ping` when due; closes an idle session.
    pub fn handle_timeout(&mut self, session: SessionId, now: Instant) {
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        if s.closing.is_some() {
            return;
        }
        let r = s.on_timeout(now, &self.limits);
        self.wakeups.insert(session);
        if let Err(reason) = r {
            self.close_session(session, reason);
        }
    }

    /// `Some(reason)` once `session` is closing (or unknown: [`CloseReason::ClientGone`]).
    pub fn close_reason(&self, session: SessionId) -> Option<CloseReason> {
        match self.sessions.get(&session) {
            Some(s) => s.closing.clone(),
            None => Some(CloseReason::ClientGone),
        }
    }

    /// True once `session` is closing and its last frames (the channel `close`) were taken:
    /// the driver may close the transport.
    pub fn is_finished(&self, session: SessionId) -> bool {
        self.sessions
            .get(&session)
            .is_none_or(|s| s.closing.is_some() && s.is_drained())
    }

    /// The next session whose driver should look again (frames to write, or reading
    /// allowed), each named once per batch of calls.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        if self.woken.is_empty() {
            self.woken.extend(self.wakeups.drain());
        }
        self.woken.pop().map(ServerEvent::Wakeup)
    }

    /// Closes `session` with `reason` (logged): its streams' peers get `destroy`, connects
    /// waiting on it fail, its servers and announcements go away, and only the protomux
    /// `close` frame stays queued. Other sessions go on. Idempotent.
    pub fn close_session(&mut self, session: SessionId, reason: CloseReason) {
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        if s.closing.is_some() {
            return;
        }
        match &reason {
            CloseReason::ClientGone | CloseReason::Shutdown => {
                debug!(session, peer = %s.peer, %reason, "relay: session closed")
            }
            _ => info!(session, peer = %s.peer, %reason, "relay: session closed"),
        }
        s.close(reason);
        self.wakeups.insert(session);
        let pairs: Vec<PairId> = s.relay_aliases.values().map(|r| r.0).collect();
        let mut pendings: Vec<PendingId> = s
            .connecting
            .values()
            .chain(s.firewall.values())
            .chain(s.noise_in.values())
            .copied()
            .collect();
        // Connects to this session's servers whose handshake has not reached it yet.
        pendings.extend(
            self.pending
                .iter()
                .filter(|(_, p)| p.server.session == session)
                .map(|(id, _)| *id),
        );
        let servers: Vec<ServerEntry> = s.servers.drain().map(|(_, v)| v).collect();
        let announcements: Vec<_> = s.announcements.drain().collect();
        for pair in pairs {
            self.destroy_pair(
                pair,
                session,
                Some("peer disconnected from the relay".into()),
            );
        }
        for p in pendings {
            self.fail_pending(p, "the server disconnected from the relay");
        }
        for server in servers {
            self.network.unlisten(
                &server.public_key,
                ServerRef {
                    session,
                    relay_alias: server.relay_alias,
                },
            );
        }
        for (topic, key) in announcements {
            self.network.unannounce(&topic, &key, session);
        }
    }

    /// Forgets `session` (after the driver closed its transport). Closes it first if needed.
    pub fn remove_session(&mut self, session: SessionId) {
        self.close_session(session, CloseReason::ClientGone);
        self.sessions.remove(&session);
        self.wakeups.remove(&session);
    }

    pub(super) fn send(
        &mut self,
        session: SessionId,
        message: &Message,
        stream: Option<StreamRef>,
    ) -> usize {
        let Some(s) = self.sessions.get_mut(&session) else {
            return 0;
        };
        self.wakeups.insert(session);
        s.send(message, stream)
    }

    pub(super) fn session(&mut self, session: SessionId) -> &mut Session {
        self.sessions
            .get_mut(&session)
            .expect("dispatch runs for a live session")
    }

    /// Routes one message of a handshaken client. Errors: why to close its session.
    pub(super) fn dispatch(&mut self, sid: SessionId, message: Message) -> Result<(), CloseReason> {
        match message {
            Message::Connect(c) => self.on_connect(sid, c),
            Message::Accept(IdRef { id }) => self.on_firewall(sid, id, true),
            Message::Deny(IdRef { id }) => self.on_firewall(sid, id, false),
            Message::Connected(c) => self.on_connected(sid, c),
            Message::Data(d) => {
                self.on_data(sid, d);
                Ok(())
            }
            Message::End(AliasRef { alias }) => {
                self.on_end(sid, alias);
                Ok(())
            }
            Message::Destroy(d) => {
                self.on_destroy(sid, d);
                Ok(())
            }
            Message::Listen(l) => self.on_listen(sid, l),
            Message::Close(AliasRef { alias }) => {
                self.on_close_server(sid, alias);
                Ok(())
            }
            Message::Lookup(Lookup { id, topic }) => {
                self.on_lookup(sid, id, topic);
                Ok(())
            }
            Message::Announce(a) => self.on_announce(sid, a, true),
            Message::Unannounce(a) => self.on_announce(sid, a, false),
            Message::NoiseReply(r) => self.on_noise_reply(sid, r),
            Message::Signature(s) => self.on_signature(sid, s),
            // Relay-to-client messages: the JS relay has no handler for them either.
            other => {
                debug!(
                    session = sid,
                    message = other.kind().name(),
                    "relay: ignored"
                );
                Ok(())
            }
        }
    }
}
