//! [`Relay`]: the sans-IO core of `dat-social relay`. It holds every client [`Session`], the
//! relayed stream pairs and the pending connects, and routes messages between clients through a
//! [`Network`] (PROTOCOL.md §4–§5, custodial and non-custodial modes). Frames and time in,
//! frames and wake-ups out.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use ed25519_dalek::SigningKey;
use tracing::{debug, info};

use crate::hypercore::encoding::CompactEncoding;
use crate::net::hyperdht;
use crate::net::noise::{NoiseError, NoiseIk, NoiseXx};
use crate::net::secret_stream::{self, Decryptor, Encryptor, FrameDecoder};
use crate::relay::messages::{
    AliasRef, Announce, Connect, Connected, Connection, Data, Destroy, DestroyTarget, IdRef,
    Incoming, Listen, Listening, Lookup, NoiseReceive, NoiseReply, NoiseReplyStep, NoiseSend, Open,
    PublicKey, QueryResult, SignRequest, Signature, StreamHandshake,
};
use crate::relay::Message;

use super::network::{Network, ServerRef};
use super::noncustodial::{server_target, signable, verify, NoiseStep, RELAY_NOISE_PAYLOAD};
use super::session::{signing_key, PendingSign, ServerEntry, Session, SignPurpose, StreamRef};
use super::{CloseReason, Limits, PairId, PendingId, RelayError, SessionId};

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
    /// One end custodial, the other not: the relay speaks the secret-stream with the
    /// non-custodial end on the custodial end's behalf.
    bridge: Option<Box<Bridge>>,
}

/// The relay's end of a secret-stream it runs for a custodial client (`@hyperswarm/secret-stream`
/// 6.9.2 from the IK handshake it ran with that client's key, as hyperdht would for it): each
/// plaintext chunk from the custodial side becomes one record to the other side; the other
/// side's records, reassembled from its byte stream, become one chunk each.
struct Bridge {
    /// The pair side (0 connecting client, 1 server) whose key is in the relay's custody.
    custodial_side: usize,
    encryptor: Encryptor,
    frames: FrameDecoder,
    decryptor: Decryptor,
    /// The framed id+header record, sent to the server when the pair is joined.
    header: Option<Vec<u8>>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bridge")
    }
}

/// How a pending connect gets established.
#[derive(Debug)]
enum Establish {
    /// Both ends custodial: waiting for the server's `accept`/`deny` to the `incoming` with
    /// `firewall_id`; then the relay runs the handshake with the two keys it holds.
    Custodial {
        // Boxed: keys are large next to the relayed variant (clippy large_enum_variant).
        client_key: Box<SigningKey>,
        server_key: Box<SigningKey>,
        firewall_id: u32,
    },
    /// A custodial client connecting to a non-custodial server: the relay runs the Noise IK
    /// handshake as the client (with the key in its custody) against the server's client
    /// (handshake id `server_hs` towards it); `firewall_passed` once the server accepted.
    Bridged {
        noise: Box<NoiseIk>,
        server_hs: u32,
        firewall_passed: bool,
        client_public_key: PublicKey,
    },
    /// A non-custodial client connecting to a custodial server: the relay answers the client's
    /// Noise IK handshake as the server (with the key in its custody; handshake id `client_hs`
    /// towards the client), asking the server's client with `incoming` (`firewall_id`) between
    /// message 1 and message 2.
    ServerBridged {
        client_hs: u32,
        noise: Box<NoiseIk>,
        firewall_id: Option<u32>,
        step: NoiseStep,
    },
    /// Both ends non-custodial: the relay carries their Noise handshake (`client_hs` is the
    /// handshake id towards the connecting client, `server_hs` towards the server's client).
    Relayed {
        client_hs: u32,
        server_hs: Option<u32>,
        step: NoiseStep,
        /// The connecting client's key as the server's Noise handshake proved it.
        remote_public_key: Option<PublicKey>,
    },
}

/// A connect established: what [`Relay::join`] needs to pair the two streams.
#[derive(Debug)]
struct Joined {
    /// Bridged connects: the relay's secret-stream towards the server.
    bridge: Option<Box<Bridge>>,
    client: SessionId,
    client_alias: u32,
    server: ServerRef,
    /// The connecting client's key, reported to the server in `connection`.
    client_public_key: PublicKey,
    client_handshake: StreamHandshake,
    server_handshake: StreamHandshake,
}

/// A `connect` not yet paired: waiting for the server's firewall or for the Noise handshake.
#[derive(Debug)]
struct PendingConnect {
    client: SessionId,
    client_alias: u32,
    server: ServerRef,
    how: Establish,
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
    /// The relay's node id: the `peerId` of the records non-custodial clients sign.
    node_id: [u8; 32],
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
            node_id: rand::random(),
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
        let client_key = match &c.secret_key {
            Some(sk) => Some(signing_key(&c.public_key, sk)?),
            None => None,
        };
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
        let how = match (client_key, server_key) {
            (Some(client_key), Some(server_key)) => {
                // Custodial: ask the server's client through its firewall (`incoming`).
                let srv = self.session(server.session);
                let firewall_id = srv.next_alias();
                srv.firewall.insert(firewall_id, pending_id);
                let incoming = Message::Incoming(Incoming {
                    id: firewall_id,
                    server_alias: server.relay_alias,
                    remote_public_key: c.public_key,
                    payload: RELAY_NOISE_PAYLOAD.to_vec(),
                });
                self.send(server.session, &incoming, None);
                Establish::Custodial {
                    client_key: Box::new(client_key),
                    server_key: Box::new(server_key),
                    firewall_id,
                }
            }
            (None, None) => {
                // Non-custodial: the connecting client starts its Noise IK handshake.
                let client_hs = self.session(sid).next_alias();
                self.session(sid).noise_out.insert(client_hs, pending_id);
                let m = Message::NoiseSend(NoiseSend {
                    id: client_hs,
                    remote_stream_alias: Some(c.alias),
                    payload: RELAY_NOISE_PAYLOAD.to_vec(),
                });
                self.send(sid, &m, None);
                Establish::Relayed {
                    client_hs,
                    server_hs: None,
                    step: NoiseStep::Msg1,
                    remote_public_key: None,
                }
            }
            (Some(client_key), None) => {
                // The relay plays the custodial client's hyperdht: IK message 1 with its key.
                let mut noise = NoiseIk::initiator(
                    &client_key,
                    c.remote_public_key,
                    &hyperdht::ns_peer_handshake(),
                );
                let msg1 = match noise.write_message(&RELAY_NOISE_PAYLOAD) {
                    Ok(m) => m,
                    Err(e) => return fail(self, &format!("handshake failed: {e}")),
                };
                let srv = self.session(server.session);
                let hs = srv.next_alias();
                srv.noise_in.insert(hs, pending_id);
                let m = Message::NoiseReceive(NoiseReceive {
                    id: hs,
                    server_alias: Some(server.relay_alias),
                    payload: msg1,
                });
                self.send(server.session, &m, None);
                Establish::Bridged {
                    noise: Box::new(noise),
                    server_hs: hs,
                    firewall_passed: false,
                    client_public_key: c.public_key,
                }
            }
            (None, Some(server_key)) => {
                // The relay plays the custodial server's hyperdht: the client starts its IK.
                let client_hs = self.session(sid).next_alias();
                self.session(sid).noise_out.insert(client_hs, pending_id);
                let m = Message::NoiseSend(NoiseSend {
                    id: client_hs,
                    remote_stream_alias: Some(c.alias),
                    payload: RELAY_NOISE_PAYLOAD.to_vec(),
                });
                self.send(sid, &m, None);
                Establish::ServerBridged {
                    client_hs,
                    noise: Box::new(NoiseIk::responder(
                        &server_key,
                        &hyperdht::ns_peer_handshake(),
                    )),
                    firewall_id: None,
                    step: NoiseStep::Msg1,
                }
            }
        };
        self.session(sid).connecting.insert(c.alias, pending_id);
        self.pending.insert(
            pending_id,
            PendingConnect {
                client: sid,
                client_alias: c.alias,
                server,
                how,
            },
        );
        Ok(())
    }

    /// Drops a pending connect and tells the connecting client why.
    fn fail_pending(&mut self, pending_id: PendingId, error: &str) {
        let Some(p) = self.pending.remove(&pending_id) else {
            return;
        };
        match p.how {
            Establish::Custodial { firewall_id, .. } => {
                if let Some(s) = self.sessions.get_mut(&p.server.session) {
                    s.firewall.remove(&firewall_id);
                }
            }
            Establish::Bridged { server_hs, .. } => {
                if let Some(s) = self.sessions.get_mut(&p.server.session) {
                    s.noise_in.remove(&server_hs);
                }
            }
            Establish::ServerBridged {
                client_hs,
                firewall_id,
                ..
            } => {
                if let Some(s) = self.sessions.get_mut(&p.client) {
                    s.noise_out.remove(&client_hs);
                }
                if let (Some(s), Some(id)) = (self.sessions.get_mut(&p.server.session), firewall_id)
                {
                    s.firewall.remove(&id);
                }
            }
            Establish::Relayed {
                client_hs,
                server_hs,
                ..
            } => {
                if let Some(s) = self.sessions.get_mut(&p.client) {
                    s.noise_out.remove(&client_hs);
                }
                if let (Some(s), Some(hs)) = (self.sessions.get_mut(&p.server.session), server_hs) {
                    s.noise_in.remove(&hs);
                }
            }
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
        self.session(sid).firewall.remove(&id);
        if let Some(Establish::ServerBridged { .. }) = self.pending.get(&pending_id).map(|p| &p.how)
        {
            return self.on_server_bridged_accept(pending_id);
        }
        let p = self.pending.remove(&pending_id).expect("pending connect");
        let Establish::Custodial {
            client_key,
            server_key,
            ..
        } = p.how
        else {
            return Ok(()); // the firewall map only holds custodial connects
        };
        let Some(client) = self
            .sessions
            .get_mut(&p.client)
            .filter(|s| s.closing.is_none())
        else {
            return Ok(());
        };
        client.connecting.remove(&p.client_alias);
        let hash = match custodial_handshake(&client_key, &server_key) {
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
        let joined = Joined {
            bridge: None,
            client: p.client,
            client_alias: p.client_alias,
            server: p.server,
            client_public_key: client_key.verifying_key().to_bytes(),
            client_handshake: StreamHandshake::Hash(hash),
            server_handshake: StreamHandshake::Hash(hash),
        };
        self.join(joined);
        Ok(())
    }

    /// Pairs the two streams of an established connect and tells both clients: `open` to the
    /// connecting client, `connection` to the server's (which answers `connected`).
    fn join(&mut self, j: Joined) {
        let pair_id = self.fresh_id();
        let client = self.session(j.client);
        let client_relay_alias = client.next_alias();
        client.streams.insert(j.client_alias, (pair_id, 0));
        client
            .relay_aliases
            .insert(client_relay_alias, (pair_id, 0));
        let server_session = self.session(j.server.session);
        let server_relay_alias = server_session.next_alias();
        server_session
            .relay_aliases
            .insert(server_relay_alias, (pair_id, 1));
        self.pairs.insert(
            pair_id,
            Pair {
                sides: [
                    Side {
                        session: j.client,
                        relay_alias: client_relay_alias,
                        client_alias: Some(j.client_alias),
                        buffered: 0,
                        ended: false,
                    },
                    Side {
                        session: j.server.session,
                        relay_alias: server_relay_alias,
                        client_alias: None,
                        buffered: 0,
                        ended: false,
                    },
                ],
                bridge: None,
            },
        );
        let mut bridge = j.bridge;
        let header = bridge
            .as_mut()
            .and_then(|b| Some((b.header.take()?, b.custodial_side)));
        if let Some(pair) = self.pairs.get_mut(&pair_id) {
            pair.bridge = bridge;
        }
        let open = Message::Open(Open {
            alias: client_relay_alias,
            remote_alias: j.client_alias,
            handshake: j.client_handshake,
        });
        self.send(j.client, &open, None);
        let connection = Message::Connection(Connection {
            alias: server_relay_alias,
            server_alias: j.server.relay_alias,
            remote_public_key: j.client_public_key,
            handshake: j.server_handshake,
        });
        self.send(j.server.session, &connection, None);
        if let Some((header, custodial_side)) = header {
            // Bridged: the relay's secret-stream id+header goes first to the non-custodial end.
            let (to, alias) = if custodial_side == 0 {
                (j.server.session, server_relay_alias)
            } else {
                (j.client, client_relay_alias)
            };
            let m = Message::Data(Data {
                alias,
                chunks: vec![header],
            });
            self.send(to, &m, None);
        }
    }

    /// One step of a relayed (non-custodial) Noise handshake: carries the answer of one client
    /// to the other (see [`NoiseStep`]). A reply for an unknown handshake is ignored (stale);
    /// one out of order closes the sender's session.
    fn on_noise_reply(&mut self, sid: SessionId, r: NoiseReply) -> Result<(), CloseReason> {
        let from_initiator = matches!(
            r.step,
            NoiseReplyStep::Initiator
                | NoiseReplyStep::Complete {
                    is_initiator: true,
                    ..
                }
        );
        let s = self.session(sid);
        let map = if from_initiator {
            &s.noise_out
        } else {
            &s.noise_in
        };
        let Some(&pending_id) = map.get(&r.id) else {
            return Ok(());
        };
        let Some(p) = self.pending.get_mut(&pending_id) else {
            return Ok(());
        };
        let (client, server) = (p.client, p.server);
        if matches!(p.how, Establish::Bridged { .. }) {
            return self.on_bridged_reply(sid, pending_id, r);
        }
        if matches!(p.how, Establish::ServerBridged { .. }) {
            return self.on_server_bridged_reply(sid, pending_id, r);
        }
        let Establish::Relayed {
            client_hs,
            server_hs,
            step,
            remote_public_key,
        } = &mut p.how
        else {
            return Ok(());
        };
        let client_hs = *client_hs;
        match (*step, r.step) {
            (NoiseStep::Msg1, NoiseReplyStep::Initiator) => {
                let Some(srv) = self
                    .sessions
                    .get_mut(&server.session)
                    .filter(|s| s.closing.is_none())
                else {
                    self.fail_pending(pending_id, "PEER_NOT_FOUND: the server went away");
                    return Ok(());
                };
                let hs = srv.next_alias();
                srv.noise_in.insert(hs, pending_id);
                if let Some(Establish::Relayed {
                    server_hs, step, ..
                }) = self.pending.get_mut(&pending_id).map(|p| &mut p.how)
                {
                    *server_hs = Some(hs);
                    *step = NoiseStep::Firewall;
                }
                let m = Message::NoiseReceive(NoiseReceive {
                    id: hs,
                    server_alias: Some(server.relay_alias),
                    payload: r.payload,
                });
                self.send(server.session, &m, None);
            }
            (
                NoiseStep::Firewall,
                NoiseReplyStep::Responder {
                    remote_public_key: key,
                },
            ) => {
                if r.payload.is_empty() {
                    // The server's client denied the connect in its firewall.
                    self.fail_pending(pending_id, "connection denied by the server's firewall");
                    return Ok(());
                }
                *remote_public_key = Some(key);
                *step = NoiseStep::Msg2;
                let m = Message::NoiseSend(NoiseSend {
                    id: r.id,
                    remote_stream_alias: None,
                    payload: RELAY_NOISE_PAYLOAD.to_vec(),
                });
                self.send(sid, &m, None);
            }
            (
                NoiseStep::Msg2,
                NoiseReplyStep::Complete {
                    is_initiator: false,
                    ..
                },
            ) => {
                *step = NoiseStep::Complete;
                let m = Message::NoiseReceive(NoiseReceive {
                    id: client_hs,
                    server_alias: None,
                    payload: r.payload,
                });
                self.send(client, &m, None);
            }
            (
                NoiseStep::Complete,
                NoiseReplyStep::Complete {
                    is_initiator: true, ..
                },
            ) => {
                let (Some(server_hs), Some(key)) = (*server_hs, *remote_public_key) else {
                    return Ok(());
                };
                let p = self.pending.remove(&pending_id).expect("pending connect");
                let c = self.session(client);
                c.noise_out.remove(&client_hs);
                c.connecting.remove(&p.client_alias);
                if let Some(srv) = self.sessions.get_mut(&server.session) {
                    srv.noise_in.remove(&server_hs);
                }
                self.join(Joined {
                    bridge: None,
                    client,
                    client_alias: p.client_alias,
                    server,
                    client_public_key: key,
                    client_handshake: StreamHandshake::Id(client_hs),
                    server_handshake: StreamHandshake::Id(server_hs),
                });
            }
            (expected, got) => {
                return Err(CloseReason::Protocol(format!(
                    "noiseReply {} out of order (relay waits for {expected:?}, got {got:?})",
                    r.id
                )));
            }
        }
        Ok(())
    }

    /// The server's answers in a bridged connect (the relay is the IK initiator for a
    /// custodial client): its firewall (`Responder`: an empty payload denies), then IK message
    /// 2 (`Complete`), which the relay reads to finish the handshake and join the pair.
    /// Anything else from the server closes its session; a message 2 that does not decrypt
    /// fails only the connect.
    fn on_bridged_reply(
        &mut self,
        sid: SessionId,
        pending_id: PendingId,
        r: NoiseReply,
    ) -> Result<(), CloseReason> {
        let Some(p) = self.pending.get_mut(&pending_id) else {
            return Ok(());
        };
        let Establish::Bridged {
            noise,
            server_hs,
            firewall_passed,
            client_public_key,
        } = &mut p.how
        else {
            return Ok(());
        };
        match (&r.step, *firewall_passed) {
            (NoiseReplyStep::Responder { .. }, false) => {
                if r.payload.is_empty() {
                    self.fail_pending(pending_id, "connection denied by the server's firewall");
                    return Ok(());
                }
                *firewall_passed = true;
                let m = Message::NoiseSend(NoiseSend {
                    id: *server_hs,
                    remote_stream_alias: None,
                    payload: RELAY_NOISE_PAYLOAD.to_vec(),
                });
                self.send(sid, &m, None);
                Ok(())
            }
            (
                NoiseReplyStep::Complete {
                    is_initiator: false,
                    ..
                },
                true,
            ) => {
                let read = noise.read_message(&r.payload);
                let keys = match (read, noise.outcome()) {
                    (Ok(_), Some(keys)) => keys.clone(),
                    (Err(e), _) => {
                        self.fail_pending(pending_id, &format!("handshake failed: {e}"));
                        return Ok(());
                    }
                    (Ok(_), None) => {
                        self.fail_pending(pending_id, "handshake failed");
                        return Ok(());
                    }
                };
                let (server_hs, client_public_key) = (*server_hs, *client_public_key);
                let p = self.pending.remove(&pending_id).expect("pending connect");
                self.session(sid).noise_in.remove(&server_hs);
                let Some(c) = self
                    .sessions
                    .get_mut(&p.client)
                    .filter(|s| s.closing.is_none())
                else {
                    return Ok(());
                };
                c.connecting.remove(&p.client_alias);
                let (_, encryptor, header, decryptor) =
                    secret_stream::from_handshake(&keys, true, client_public_key);
                self.join(Joined {
                    bridge: Some(Box::new(Bridge {
                        custodial_side: 0,
                        encryptor,
                        frames: FrameDecoder::new(),
                        decryptor,
                        header: Some(header),
                    })),
                    client: p.client,
                    client_alias: p.client_alias,
                    server: p.server,
                    client_public_key,
                    client_handshake: StreamHandshake::Hash(keys.handshake_hash),
                    server_handshake: StreamHandshake::Id(server_hs),
                });
                Ok(())
            }
            (got, _) => Err(CloseReason::Protocol(format!(
                "noiseReply {} out of order in a bridged connect (got {got:?})",
                r.id
            ))),
        }
    }

    /// The connecting client's answers in a server-bridged connect (the relay is the IK
    /// responder for a custodial server): message 1 (`Initiator`), which the relay reads and
    /// hands to the server's firewall (`incoming`); then, after message 2, `Complete`, which
    /// joins the pair. Anything else closes the client's session; a message 1 that does not
    /// decrypt fails only the connect.
    fn on_server_bridged_reply(
        &mut self,
        sid: SessionId,
        pending_id: PendingId,
        r: NoiseReply,
    ) -> Result<(), CloseReason> {
        let Some(p) = self.pending.get_mut(&pending_id) else {
            return Ok(());
        };
        let server = p.server;
        let Establish::ServerBridged {
            client_hs,
            noise,
            firewall_id,
            step,
        } = &mut p.how
        else {
            return Ok(());
        };
        let client_hs = *client_hs;
        match (*step, &r.step) {
            (NoiseStep::Msg1, NoiseReplyStep::Initiator) => {
                let payload = match noise.read_message(&r.payload) {
                    Ok(p) => p,
                    Err(e) => {
                        self.fail_pending(pending_id, &format!("handshake failed: {e}"));
                        return Ok(());
                    }
                };
                let remote_public_key = noise.remote_public_key().unwrap_or([0; 32]);
                let Some(srv) = self
                    .sessions
                    .get_mut(&server.session)
                    .filter(|s| s.closing.is_none())
                else {
                    self.fail_pending(pending_id, "PEER_NOT_FOUND: the server went away");
                    return Ok(());
                };
                let id = srv.next_alias();
                srv.firewall.insert(id, pending_id);
                *firewall_id = Some(id);
                *step = NoiseStep::Firewall;
                let m = Message::Incoming(Incoming {
                    id,
                    server_alias: server.relay_alias,
                    remote_public_key,
                    payload,
                });
                self.send(server.session, &m, None);
                Ok(())
            }
            (
                NoiseStep::Complete,
                NoiseReplyStep::Complete {
                    is_initiator: true, ..
                },
            ) => {
                let Some(keys) = noise.outcome().cloned() else {
                    self.fail_pending(pending_id, "handshake failed");
                    return Ok(());
                };
                let p = self.pending.remove(&pending_id).expect("pending connect");
                let c = self.session(sid);
                c.noise_out.remove(&client_hs);
                c.connecting.remove(&p.client_alias);
                let (_, encryptor, header, decryptor) =
                    secret_stream::from_handshake(&keys, false, [0; 32]);
                self.join(Joined {
                    bridge: Some(Box::new(Bridge {
                        custodial_side: 1,
                        encryptor,
                        frames: FrameDecoder::new(),
                        decryptor,
                        header: Some(header),
                    })),
                    client: p.client,
                    client_alias: p.client_alias,
                    server: p.server,
                    client_public_key: keys.remote_public_key,
                    client_handshake: StreamHandshake::Id(client_hs),
                    server_handshake: StreamHandshake::Hash(keys.handshake_hash),
                });
                Ok(())
            }
            (expected, got) => Err(CloseReason::Protocol(format!(
                "noiseReply {} out of order (relay waits for {expected:?}, got {got:?})",
                r.id
            ))),
        }
    }

    /// The custodial server accepted a server-bridged connect: the relay writes IK message 2
    /// as the server and sends it to the client.
    fn on_server_bridged_accept(&mut self, pending_id: PendingId) -> Result<(), CloseReason> {
        let Some(p) = self.pending.get_mut(&pending_id) else {
            return Ok(());
        };
        let client = p.client;
        let Establish::ServerBridged {
            client_hs,
            noise,
            firewall_id,
            step,
        } = &mut p.how
        else {
            return Ok(());
        };
        let client_hs = *client_hs;
        let msg2 = match noise.write_message(&RELAY_NOISE_PAYLOAD) {
            Ok(m) => m,
            Err(e) => {
                self.fail_pending(pending_id, &format!("handshake failed: {e}"));
                return Ok(());
            }
        };
        *firewall_id = None;
        *step = NoiseStep::Complete;
        let m = Message::NoiseReceive(NoiseReceive {
            id: client_hs,
            server_alias: None,
            payload: msg2,
        });
        self.send(client, &m, None);
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
        let chunks = match self.bridge_chunks(pair_id, side, d.chunks) {
            Ok(Some(chunks)) => chunks,
            Ok(None) => return, // part of a record: wait for the rest
            Err(e) => {
                // The server's bytes are not a valid secret-stream: end the stream both ways.
                let error = Some(format!("secret-stream failed: {e}"));
                let own_alias = self.pairs.get(&pair_id).map(|p| p.sides[side].relay_alias);
                self.destroy_pair(pair_id, sid, error.clone());
                if let Some(alias) = own_alias {
                    let m = Message::Destroy(Destroy {
                        target: DestroyTarget::Paired { alias },
                        error,
                    });
                    self.send(sid, &m, None);
                }
                return;
            }
        };
        let m = Message::Data(Data {
            alias: to_alias,
            chunks,
        });
        let n = self.send(to, &m, Some((pair_id, 1 - side)));
        let pair = self.pairs.get_mut(&pair_id).expect("routed pair");
        pair.sides[1 - side].buffered += n;
        if pair.sides[1 - side].buffered > self.limits.stream_buffer {
            // Back-pressure: stop reading this client until the receiver drains.
            self.session(sid).blocked_on = Some((pair_id, 1 - side));
        }
    }

    /// Bridged pairs: the custodial side's plaintext chunks become one record each for the
    /// other side; the other side's bytes become one plaintext chunk per complete record (its
    /// id+header is checked, not forwarded; empty records are keep-alives and are forwarded as
    /// empty chunks). `Ok(None)`: nothing to forward yet. Other pairs: the chunks as they are.
    ///
    /// Errors: the non-custodial side's bytes do not decrypt, or announce a record above
    /// `max_frame`.
    fn bridge_chunks(
        &mut self,
        pair_id: PairId,
        from_side: usize,
        chunks: Vec<Vec<u8>>,
    ) -> Result<Option<Vec<Vec<u8>>>, secret_stream::SecretStreamError> {
        let max = self.limits.max_frame;
        let Some(bridge) = self.pairs.get_mut(&pair_id).and_then(|p| p.bridge.as_mut()) else {
            return Ok(Some(chunks));
        };
        let mut out = Vec::with_capacity(chunks.len());
        if from_side == bridge.custodial_side {
            for c in &chunks {
                out.push(bridge.encryptor.encrypt(c)?);
            }
            return Ok(Some(out));
        }
        for c in &chunks {
            bridge.frames.push(c);
            while let Some(record) = bridge.frames.next_frame() {
                let ready = bridge.decryptor.is_ready();
                let message = bridge.decryptor.decrypt(&record)?;
                if ready {
                    out.push(message);
                }
            }
            if bridge.frames.buffered() > max + 3 {
                return Err(secret_stream::SecretStreamError::TooLarge(
                    bridge.frames.buffered(),
                ));
            }
        }
        Ok((!out.is_empty()).then_some(out))
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
        if s.servers.contains_key(&l.alias) || s.pending_listen(l.alias).is_some() {
            return Err(CloseReason::Protocol(format!(
                "listen reuses server alias {}",
                l.alias
            )));
        }
        if s.server_count() >= max {
            return Err(CloseReason::Limit(format!("more than {max} servers")));
        }
        match &l.secret_key {
            Some(sk) => {
                let key = signing_key(&l.public_key, sk)?;
                self.start_server(sid, l.alias, l.public_key, Some(key));
            }
            // Non-custodial: the client proves it holds the key by signing an announce record
            // for its server's target (as hyperdht asks when it announces the server); the
            // server starts listening once the signature checks out.
            None => self.ask_signature(
                sid,
                l.alias,
                SignPurpose::Listen {
                    alias: l.alias,
                    public_key: l.public_key,
                },
            ),
        }
        Ok(())
    }

    /// Registers a server of `sid` (client alias `alias`) and answers `listening`.
    fn start_server(
        &mut self,
        sid: SessionId,
        alias: u32,
        public_key: PublicKey,
        key: Option<SigningKey>,
    ) {
        let s = self.session(sid);
        let relay_alias = s.next_alias();
        s.servers.insert(
            alias,
            ServerEntry {
                relay_alias,
                public_key,
                key,
            },
        );
        let address = self.network.listen(
            public_key,
            ServerRef {
                session: sid,
                relay_alias,
            },
        );
        let m = Message::Listening(Listening {
            alias: relay_alias,
            remote_alias: alias,
            address,
        });
        self.send(sid, &m, None);
    }

    /// Sends `signAnnounce` (signee = the client's server alias or query id) with a fresh token
    /// and remembers what the signature is for.
    fn ask_signature(&mut self, sid: SessionId, signee: u32, purpose: SignPurpose) {
        let token: [u8; 32] = rand::random();
        let peer_id = self.node_id.to_vec();
        let s = self.session(sid);
        let id = s.next_alias();
        s.signing.insert(id, PendingSign { purpose, token });
        let m = Message::SignAnnounce(SignRequest {
            id,
            signee,
            token,
            peer_id: Some(peer_id),
            relay_addresses: Vec::new(),
        });
        self.send(sid, &m, None);
    }

    /// A client's `signature`: checks it against the record asked for, then starts the server
    /// or records the announcement. A wrong signature closes the session; one for an unknown
    /// id is ignored.
    fn on_signature(&mut self, sid: SessionId, sig: Signature) -> Result<(), CloseReason> {
        let Some(p) = self.session(sid).signing.remove(&sig.id) else {
            return Ok(());
        };
        let (public_key, target) = match &p.purpose {
            SignPurpose::Listen { public_key, .. } => (*public_key, server_target(public_key)),
            SignPurpose::Announce {
                topic, public_key, ..
            } => (*public_key, *topic),
        };
        let record = signable(true, &target, &self.node_id, &p.token, &public_key);
        if !verify(&public_key, &record, &sig.signature) {
            return Err(CloseReason::Protocol(format!(
                "signature {} does not match the key {}",
                sig.id,
                hex::encode(public_key)
            )));
        }
        match p.purpose {
            SignPurpose::Listen { alias, public_key } => {
                self.start_server(sid, alias, public_key, None);
            }
            SignPurpose::Announce {
                id,
                topic,
                public_key,
            } => {
                self.record_announce(sid, topic, public_key, true)?;
                self.send(sid, &Message::Finished(IdRef { id }), None);
            }
        }
        Ok(())
    }

    fn on_close_server(&mut self, sid: SessionId, alias: u32) {
        let Some(entry) = self.session(sid).servers.remove(&alias) else {
            // A listen still waiting for its signature is forgotten (JS waits for
            // `listening` before it closes, so this is a client that gave up).
            let s = self.session(sid);
            if let Some(id) = s.pending_listen(alias) {
                s.signing.remove(&id);
            }
            return;
        };
        let server = ServerRef {
            session: sid,
            relay_alias: entry.relay_alias,
        };
        self.network.unlisten(&entry.public_key, server);
        // Connects still waiting for this server's firewall or handshake fail.
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
        match (&a.secret_key, add) {
            (Some(sk), _) => {
                signing_key(&a.public_key, sk)?;
            }
            // Non-custodial announce: recorded once the client signs the record (`signature`).
            (None, true) => {
                let max = self.limits.max_queries;
                if self.session(sid).query_count() >= max {
                    return Err(CloseReason::Limit(format!("more than {max} queries")));
                }
                let purpose = SignPurpose::Announce {
                    id: a.id,
                    topic: a.topic,
                    public_key: a.public_key,
                };
                self.ask_signature(sid, a.id, purpose);
                return Ok(());
            }
            // Non-custodial unannounce: a session only ever removes its own announcements, so
            // there is nothing to prove and no `signUnannounce` round trip.
            (None, false) => {}
        }
        self.record_announce(sid, a.topic, a.public_key, add)?;
        self.send(sid, &Message::Finished(IdRef { id: a.id }), None);
        Ok(())
    }

    /// Adds (`add`) or removes the announcement of `public_key` on `topic` by `sid`.
    /// Errors: [`CloseReason::Limit`] past [`Limits::max_queries`].
    fn record_announce(
        &mut self,
        sid: SessionId,
        topic: [u8; 32],
        public_key: PublicKey,
        add: bool,
    ) -> Result<(), CloseReason> {
        let max = self.limits.max_queries;
        let s = self.session(sid);
        let entry = (topic, public_key);
        if add && !s.announcements.contains(&entry) {
            if s.query_count() >= max {
                return Err(CloseReason::Limit(format!("more than {max} queries")));
            }
            s.announcements.insert(entry);
            self.network.announce(topic, public_key, sid);
        } else if !add && s.announcements.remove(&entry) {
            self.network.unannounce(&topic, &public_key, sid);
        }
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
