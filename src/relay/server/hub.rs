//! [`Relay`]: the sans-IO core of `dat-social relay`. It holds every client [`Session`], the
//! relayed stream pairs and the pending connects, and routes messages between clients through a
//! [`Network`] (PROTOCOL.md §5, custodial mode). Frames and time in, frames and wake-ups out.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use ed25519_dalek::SigningKey;
use tracing::{debug, info};

use crate::hypercore::encoding::CompactEncoding;
use crate::net::noise::{NoiseError, NoiseXx};
use crate::relay::messages::{
    AliasRef, Announce, Connect, Connected, Connection, Data, Destroy, DestroyTarget, IdRef,
    Incoming, Listen, Listening, Lookup, Open, QueryResult, StreamHandshake,
};
use crate::relay::Message;

use super::network::{Network, ServerRef};
use super::session::{signing_key, ServerEntry, Session, StreamRef};
use super::{CloseReason, Limits, PairId, PendingId, RelayError, SessionId};

/// The noise payload the relay reports in `incoming` (hyperdht `noisePayload`: version 1, no
/// flags, error 0, firewall UNKNOWN): the JS client decodes it before asking its firewall.
const INCOMING_PAYLOAD: [u8; 4] = [1, 0, 0, 0];

/// One side of a relayed stream.
#[derive(Debug)]
struct Side {
    session: SessionId,
    /// The relay's alias of the stream towards this side's client.
    relay_alias: u32,
    /// The client's own alias (known at once for the connecting side, after `connected` for
    /// the server side).
    client_alias: Option<u32>,
    /// Bytes of `data` queued towards this side's client.
    buffered: usize,
    /// This side's client sent `end`.
    ended: bool,
}

/// Two clients' streams joined by the relay.
#[derive(Debug)]
struct Pair {
    sides: [Side; 2],
}

/// A `connect` waiting for the server's `accept`/`deny`.
#[derive(Debug)]
struct PendingConnect {
    client: SessionId,
    client_alias: u32,
    client_key: SigningKey,
    server: ServerRef,
    server_key: SigningKey,
    firewall_id: u32,
}

/// The relay core. Drive it with [`Relay::handle_frame`], [`Relay::poll_transmit`],
/// [`Relay::handle_timeout`]; after each call, [`Relay::take_wakeups`] names the sessions whose
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
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Sessions currently held (closing ones included until [`Relay::remove_session`]).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    fn fresh_id(&mut self) -> u64 {
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
        self.sessions
            .insert(id, Session::new(peer, now, &self.limits));
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
        for m in messages {
            if let Err(reason) = self.dispatch(session, m) {
                return self.close_session(session, reason);
            }
            if self.close_reason(session).is_some() {
                return;
            }
        }
    }

    /// The next frame to write to the client of `session`, oldest first.
    pub fn poll_transmit(&mut self, session: SessionId, now: Instant) -> Option<Vec<u8>> {
        let s = self.sessions.get_mut(&session)?;
        let could_read = s.wants_read(&self.limits);
        let (frame, stream) = s.poll_transmit(now)?;
        if !could_read && s.wants_read(&self.limits) {
            self.wakeups.insert(session);
        }
        if let Some((pair_id, side)) = stream {
            self.drained(pair_id, side, frame.len());
        }
        Some(frame)
    }

    /// Accounts `len` bytes written towards `side` of `pair_id` and unblocks its sender.
    fn drained(&mut self, pair_id: PairId, side: usize, len: usize) {
        let Some(pair) = self.pairs.get_mut(&pair_id) else {
            return;
        };
        let s = &mut pair.sides[side];
        s.buffered = s.buffered.saturating_sub(len);
        if s.buffered > self.limits.stream_buffer {
            return;
        }
        let sender = pair.sides[1 - side].session;
        if let Some(sess) = self.sessions.get_mut(&sender) {
            if sess.blocked_on == Some((pair_id, side)) {
                sess.blocked_on = None;
                self.wakeups.insert(sender);
            }
        }
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

    /// The sessions whose driver should look again (frames to write, or reading allowed).
    pub fn take_wakeups(&mut self) -> Vec<SessionId> {
        self.wakeups.drain().collect()
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
        let pendings: Vec<PendingId> = s
            .connecting
            .values()
            .chain(s.firewall.values())
            .copied()
            .collect();
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

    fn send(&mut self, session: SessionId, message: &Message, stream: Option<StreamRef>) -> usize {
        let Some(s) = self.sessions.get_mut(&session) else {
            return 0;
        };
        self.wakeups.insert(session);
        s.send(message, stream)
    }

    fn session(&mut self, session: SessionId) -> &mut Session {
        self.sessions
            .get_mut(&session)
            .expect("dispatch runs for a live session")
    }

    /// Routes one message of a handshaken client. Errors: why to close its session.
    fn dispatch(&mut self, sid: SessionId, message: Message) -> Result<(), CloseReason> {
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
                for record in self.network.lookup(&topic) {
                    let data = record.to_bytes();
                    self.send(sid, &Message::Result(QueryResult { id, data }), None);
                }
                self.send(sid, &Message::Finished(IdRef { id }), None);
                Ok(())
            }
            Message::Announce(a) => self.on_announce(sid, a, true),
            Message::Unannounce(a) => self.on_announce(sid, a, false),
            // Non-custodial answers (signature, noiseReply) and relay-to-client messages: the
            // JS relay has no handler for them either.
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

    fn on_connect(&mut self, sid: SessionId, c: Connect) -> Result<(), CloseReason> {
        let limits = self.limits.clone();
        let s = self.session(sid);
        if s.streams.contains_key(&c.alias) || s.connecting.contains_key(&c.alias) {
            return Err(CloseReason::Protocol(format!(
                "connect reuses stream alias {}",
                c.alias
            )));
        }
        if s.stream_count() >= limits.max_streams {
            return Err(CloseReason::Limit(format!(
                "more than {} streams",
                limits.max_streams
            )));
        }
        let fail = |relay: &mut Self, error: &str| {
            let m = Message::Destroy(Destroy {
                target: DestroyTarget::Unpaired {
                    remote_alias: c.alias,
                },
                error: Some(error.to_string()),
            });
            relay.send(sid, &m, None);
            Ok(())
        };
        let Some(sk) = &c.secret_key else {
            // Extension point: non-custodial connect (noiseSend/noiseReceive/noiseReply).
            return fail(
                self,
                "non-custodial connect is not supported by this relay yet",
            );
        };
        let client_key = signing_key(&c.public_key, sk)?;
        let Some(server) = self.network.find_server(&c.remote_public_key) else {
            return fail(
                self,
                "PEER_NOT_FOUND: no client of this relay listens on that key",
            );
        };
        let server_key = match self
            .sessions
            .get(&server.session)
            .filter(|s| s.closing.is_none())
            .and_then(|s| {
                s.servers
                    .values()
                    .find(|e| e.relay_alias == server.relay_alias)
                    .map(|e| (s.stream_count(), e.key.clone()))
            }) {
            Some((count, _)) if count >= limits.max_streams => {
                return fail(self, "the server has too many streams");
            }
            Some((_, key)) => key,
            None => return fail(self, "PEER_NOT_FOUND: the server went away"),
        };
        let pending_id = self.fresh_id();
        let srv = self.session(server.session);
        let firewall_id = srv.next_alias();
        srv.firewall.insert(firewall_id, pending_id);
        self.session(sid).connecting.insert(c.alias, pending_id);
        self.pending.insert(
            pending_id,
            PendingConnect {
                client: sid,
                client_alias: c.alias,
                client_key,
                server,
                server_key,
                firewall_id,
            },
        );
        let incoming = Message::Incoming(Incoming {
            id: firewall_id,
            server_alias: server.relay_alias,
            remote_public_key: c.public_key,
            payload: INCOMING_PAYLOAD.to_vec(),
        });
        self.send(server.session, &incoming, None);
        Ok(())
    }

    /// Drops a pending connect and tells the connecting client why.
    fn fail_pending(&mut self, pending_id: PendingId, error: &str) {
        let Some(p) = self.pending.remove(&pending_id) else {
            return;
        };
        if let Some(s) = self.sessions.get_mut(&p.server.session) {
            s.firewall.remove(&p.firewall_id);
        }
        if let Some(s) = self.sessions.get_mut(&p.client) {
            s.connecting.remove(&p.client_alias);
        }
        let m = Message::Destroy(Destroy {
            target: DestroyTarget::Unpaired {
                remote_alias: p.client_alias,
            },
            error: Some(error.to_string()),
        });
        self.send(p.client, &m, None);
    }

    fn on_firewall(&mut self, sid: SessionId, id: u32, accept: bool) -> Result<(), CloseReason> {
        let Some(pending_id) = self.session(sid).firewall.get(&id).copied() else {
            return Ok(()); // unknown or stale request: JS ignores it too
        };
        if !accept {
            self.fail_pending(pending_id, "connection denied by the server's firewall");
            return Ok(());
        }
        let p = self.pending.remove(&pending_id).expect("pending connect");
        self.session(sid).firewall.remove(&id);
        let Some(client) = self
            .sessions
            .get_mut(&p.client)
            .filter(|s| s.closing.is_none())
        else {
            return Ok(());
        };
        client.connecting.remove(&p.client_alias);
        let hash = match custodial_handshake(&p.client_key, &p.server_key) {
            Ok(h) => h,
            Err(e) => {
                // Cannot happen with keys we checked; fail the connect rather than the session.
                let m = Message::Destroy(Destroy {
                    target: DestroyTarget::Unpaired {
                        remote_alias: p.client_alias,
                    },
                    error: Some(format!("handshake failed: {e}")),
                });
                self.send(p.client, &m, None);
                return Ok(());
            }
        };
        let pair_id = self.next_id;
        self.next_id += 1;
        let client_relay_alias = client.next_alias();
        client.streams.insert(p.client_alias, (pair_id, 0));
        client
            .relay_aliases
            .insert(client_relay_alias, (pair_id, 0));
        let server_session = self.session(sid);
        let server_relay_alias = server_session.next_alias();
        server_session
            .relay_aliases
            .insert(server_relay_alias, (pair_id, 1));
        self.pairs.insert(
            pair_id,
            Pair {
                sides: [
                    Side {
                        session: p.client,
                        relay_alias: client_relay_alias,
                        client_alias: Some(p.client_alias),
                        buffered: 0,
                        ended: false,
                    },
                    Side {
                        session: sid,
                        relay_alias: server_relay_alias,
                        client_alias: None,
                        buffered: 0,
                        ended: false,
                    },
                ],
            },
        );
        let open = Message::Open(Open {
            alias: client_relay_alias,
            remote_alias: p.client_alias,
            handshake: StreamHandshake::Hash(hash),
        });
        self.send(p.client, &open, None);
        let connection = Message::Connection(Connection {
            alias: server_relay_alias,
            server_alias: p.server.relay_alias,
            remote_public_key: p.client_key.verifying_key().to_bytes(),
            handshake: StreamHandshake::Hash(hash),
        });
        self.send(sid, &connection, None);
        Ok(())
    }

    fn on_connected(&mut self, sid: SessionId, c: Connected) -> Result<(), CloseReason> {
        let s = self.session(sid);
        let Some(&stream) = s.relay_aliases.get(&c.remote_alias) else {
            return Ok(()); // destroyed meanwhile
        };
        if s.streams.contains_key(&c.alias) {
            return Err(CloseReason::Protocol(format!(
                "connected reuses stream alias {}",
                c.alias
            )));
        }
        let (pair_id, side) = stream;
        let Some(pair) = self.pairs.get_mut(&pair_id) else {
            return Ok(());
        };
        if pair.sides[side].client_alias.is_some() {
            return Err(CloseReason::Protocol("stream connected twice".into()));
        }
        pair.sides[side].client_alias = Some(c.alias);
        self.session(sid).streams.insert(c.alias, stream);
        Ok(())
    }

    /// The other side of the stream the client of `sid` calls `alias`.
    fn route(&self, sid: SessionId, alias: u32) -> Option<(PairId, usize, SessionId, u32)> {
        let &(pair_id, side) = self.sessions.get(&sid)?.streams.get(&alias)?;
        let other = &self.pairs.get(&pair_id)?.sides[1 - side];
        Some((pair_id, side, other.session, other.relay_alias))
    }

    fn on_data(&mut self, sid: SessionId, d: Data) {
        let Some((pair_id, side, to, to_alias)) = self.route(sid, d.alias) else {
            return;
        };
        let m = Message::Data(Data {
            alias: to_alias,
            chunks: d.chunks,
        });
        let n = self.send(to, &m, Some((pair_id, 1 - side)));
        let pair = self.pairs.get_mut(&pair_id).expect("routed pair");
        pair.sides[1 - side].buffered += n;
        if pair.sides[1 - side].buffered > self.limits.stream_buffer {
            // Back-pressure: stop reading this client until the receiver drains.
            self.session(sid).blocked_on = Some((pair_id, 1 - side));
        }
    }

    fn on_end(&mut self, sid: SessionId, alias: u32) {
        let Some((pair_id, side, to, to_alias)) = self.route(sid, alias) else {
            return;
        };
        self.send(to, &Message::End(AliasRef { alias: to_alias }), None);
        let pair = self.pairs.get_mut(&pair_id).expect("routed pair");
        pair.sides[side].ended = true;
        if pair.sides.iter().all(|s| s.ended) {
            self.remove_pair(pair_id);
        }
    }

    fn on_destroy(&mut self, sid: SessionId, d: Destroy) {
        let stream = match d.target {
            DestroyTarget::Paired { alias } => self.session(sid).streams.get(&alias).copied(),
            DestroyTarget::Unpaired { remote_alias } => {
                self.session(sid).relay_aliases.get(&remote_alias).copied()
            }
        };
        if let Some((pair_id, _)) = stream {
            self.destroy_pair(pair_id, sid, d.error);
        }
    }

    /// Removes a pair and sends `destroy` to the side that is not `from`.
    fn destroy_pair(&mut self, pair_id: PairId, from: SessionId, error: Option<String>) {
        let Some(pair) = self.pairs.get(&pair_id) else {
            return;
        };
        let from_side = usize::from(pair.sides[0].session != from);
        let other = &pair.sides[1 - from_side];
        let (to, alias) = (other.session, other.relay_alias);
        self.remove_pair(pair_id);
        let m = Message::Destroy(Destroy {
            target: DestroyTarget::Paired { alias },
            error,
        });
        self.send(to, &m, None);
    }

    fn remove_pair(&mut self, pair_id: PairId) {
        let Some(pair) = self.pairs.remove(&pair_id) else {
            return;
        };
        for side in &pair.sides {
            if let Some(s) = self.sessions.get_mut(&side.session) {
                s.relay_aliases.remove(&side.relay_alias);
                if let Some(a) = side.client_alias {
                    s.streams.remove(&a);
                }
                if s.blocked_on.is_some_and(|(p, _)| p == pair_id) {
                    s.blocked_on = None;
                    self.wakeups.insert(side.session);
                }
            }
        }
    }

    fn on_listen(&mut self, sid: SessionId, l: Listen) -> Result<(), CloseReason> {
        let max = self.limits.max_servers;
        let s = self.session(sid);
        if s.servers.contains_key(&l.alias) {
            return Err(CloseReason::Protocol(format!(
                "listen reuses server alias {}",
                l.alias
            )));
        }
        if s.servers.len() >= max {
            return Err(CloseReason::Limit(format!("more than {max} servers")));
        }
        let Some(sk) = &l.secret_key else {
            // Extension point: non-custodial listen (signAnnounce + noise relaying). There is no
            // message to refuse a listen, so the session is closed rather than left hanging.
            return Err(CloseReason::Unsupported(
                "non-custodial listen is not supported by this relay yet".into(),
            ));
        };
        let key = signing_key(&l.public_key, sk)?;
        let relay_alias = s.next_alias();
        s.servers.insert(
            l.alias,
            ServerEntry {
                relay_alias,
                public_key: l.public_key,
                key,
            },
        );
        let address = self.network.listen(
            l.public_key,
            ServerRef {
                session: sid,
                relay_alias,
            },
        );
        let m = Message::Listening(Listening {
            alias: relay_alias,
            remote_alias: l.alias,
            address,
        });
        self.send(sid, &m, None);
        Ok(())
    }

    fn on_close_server(&mut self, sid: SessionId, alias: u32) {
        let Some(entry) = self.session(sid).servers.remove(&alias) else {
            return;
        };
        let server = ServerRef {
            session: sid,
            relay_alias: entry.relay_alias,
        };
        self.network.unlisten(&entry.public_key, server);
        // Connects still waiting for this server's firewall fail.
        let waiting: Vec<PendingId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.server == server)
            .map(|(id, _)| *id)
            .collect();
        for p in waiting {
            self.fail_pending(p, "the server closed");
        }
        let m = Message::Closed(AliasRef {
            alias: entry.relay_alias,
        });
        self.send(sid, &m, None);
    }

    fn on_announce(&mut self, sid: SessionId, a: Announce, add: bool) -> Result<(), CloseReason> {
        let max = self.limits.max_queries;
        let key_ok = match &a.secret_key {
            Some(sk) => signing_key(&a.public_key, sk).map(|_| true)?,
            // Extension point: non-custodial announce needs signAnnounce/signature; without
            // a proof of the key we record nothing.
            None => false,
        };
        let s = self.session(sid);
        let entry = (a.topic, a.public_key);
        if key_ok && add && !s.announcements.contains(&entry) {
            if s.query_count() >= max {
                return Err(CloseReason::Limit(format!("more than {max} queries")));
            }
            s.announcements.insert(entry);
            self.network.announce(a.topic, a.public_key, sid);
        } else if key_ok && !add && s.announcements.remove(&entry) {
            self.network.unannounce(&a.topic, &a.public_key, sid);
        }
        self.send(sid, &Message::Finished(IdRef { id: a.id }), None);
        Ok(())
    }
}

/// Runs the Noise XX handshake between the two key pairs the relay holds in custody, as the
/// two clients would over a direct connection, and returns the 64-byte handshake hash both
/// sides report (`open.handshakeHash` / `connection.handshakeHash`).
///
/// Errors: [`NoiseError`] only for keys that are not valid ed25519 points.
pub fn custodial_handshake(
    initiator: &SigningKey,
    responder: &SigningKey,
) -> Result<[u8; 64], NoiseError> {
    let mut i = NoiseXx::new(true, initiator);
    let mut r = NoiseXx::new(false, responder);
    r.read_message(&i.write_message()?)?;
    i.read_message(&r.write_message()?)?;
    r.read_message(&i.write_message()?)?;
    let (io, ro) = match (i.outcome(), r.outcome()) {
        (Some(a), Some(b)) => (a, b),
        _ => return Err(NoiseError::OutOfTurn),
    };
    debug_assert_eq!(io.handshake_hash, ro.handshake_hash);
    debug_assert_eq!(io.remote_public_key, responder.verifying_key().to_bytes());
    Ok(io.handshake_hash)
}
