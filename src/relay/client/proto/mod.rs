//! [`ClientCore`]: the sans-IO core of our relay client (`@hyperswarm/dht-relay` 0.4.3,
//! PROTOCOL.md §3-§5). Frames and time in, frames and [`ClientEvent`]s out; requests are
//! methods that return ids (our stream aliases, query ids), never channels: the async driver
//! (`driver.rs`) maps those ids to the callers' oneshots and streams' mpsc senders and owns the
//! socket, as quinn's `Connection` driver does around `quinn-proto`.
//!
//! The core outlives relay sessions: what a client keeps across reconnects (its listens, its
//! announced topics, the id counter) lives beside the state of the current session, which
//! [`ClientCore::start_session`] creates and [`ClientCore::end_session`] drops (failing every
//! request still waiting on it).
//!
//! The vocabulary is the one every core of the crate speaks: [`ClientCore::handle_frame`],
//! [`ClientCore::poll_transmit`], [`ClientCore::poll_event`], [`ClientCore::poll_timeout`],
//! [`ClientCore::handle_timeout`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use tracing::debug;

use super::secret_key;
use crate::ice::IceServer;
use crate::net::secret_stream::{Decryptor, Encryptor};
use crate::net::SessionInfo;
use crate::relay::ice::IceMessage;
use crate::relay::messages::{
    AliasRef, Announce, Connect, Destroy, DestroyTarget, Handshake, IdRef, Listen, Lookup,
    QueryResult, SecretKey,
};
use crate::relay::{Message, RelayCodec, RelayCodecError, RelayEvent};

mod ice;
mod noncustodial;
mod streams;
#[cfg(test)]
mod tests;

use ice::{IceExchange, IceOutcome};
use noncustodial::{PeerHandshake, StreamKeys};

/// Why the current relay session cannot go on (the driver reconnects).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    /// The relay sent a frame the codec refused (bad protomux framing or relay message).
    #[error("bad frame from the relay: {0}")]
    BadFrame(#[from] RelayCodecError),
    /// The relay closed the `@hyperswarm/dht-relay` channel.
    #[error("the relay closed the channel")]
    ChannelClosed,
    /// Nothing arrived from the relay for this long (JS failsafe: 45 s).
    #[error("nothing from the relay for {0:?}")]
    Idle(Duration),
}

/// A stream the relay opened for us, with what its handles need.
pub(crate) struct NewStream {
    /// Our alias of it (the id the driver and the stream's handles use).
    pub(crate) alias: u32,
    /// The session it belongs to ([`ClientCore::generation`] when it opened).
    pub(crate) generation: u64,
    /// Both keys, the handshake hash and our role.
    pub(crate) info: SessionInfo,
    /// Non-custodial: our secret-stream's halves (its id+header already went out).
    pub(crate) crypto: Option<(Box<Encryptor>, Box<Decryptor>)>,
}

impl std::fmt::Debug for NewStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewStream")
            .field("alias", &self.alias)
            .field("generation", &self.generation)
            .field("info", &self.info)
            .field("own_crypto", &self.crypto.is_some())
            .finish()
    }
}

/// What the core tells its driver ([`ClientCore::poll_event`]).
#[derive(Debug)]
pub(crate) enum ClientEvent {
    /// The relay channel is open and every `listen` was confirmed (`listening`).
    Connected,
    /// The connect with our alias `alias` is open.
    Opened(NewStream),
    /// The connect with our alias `alias` failed: `destroy` from the relay, a failed Noise
    /// handshake, a stream in the wrong mode, or the session was lost.
    ConnectFailed {
        /// Our alias of the connect.
        alias: u32,
        /// The key we tried to reach.
        peer: [u8; 32],
        /// Why.
        reason: String,
    },
    /// A connection to our listen `listen` was accepted.
    Incoming {
        /// Our server alias (the listen's id).
        listen: u32,
        /// The stream.
        stream: NewStream,
    },
    /// `data` chunks for stream `alias`, in order.
    StreamData {
        /// Our alias.
        alias: u32,
        /// The chunks.
        chunks: Vec<Vec<u8>>,
    },
    /// The remote ended its side of stream `alias`.
    StreamEnd {
        /// Our alias.
        alias: u32,
    },
    /// Stream `alias` was destroyed (by the remote or the relay) or its session was lost.
    StreamClosed {
        /// Our alias.
        alias: u32,
        /// Why.
        reason: String,
    },
    /// Query `id` got `finished`; `peers`: a lookup's announcers (each once, in order of
    /// arrival), empty for an announce.
    QueryFinished {
        /// The query id.
        id: u32,
        /// The announcers' public keys.
        peers: Vec<[u8; 32]>,
    },
    /// The relay's STUN/TURN servers (`dat-social/ice/v1`), whose credentials expire at
    /// `expires`; a renewal brings a new list before then.
    IceServers {
        /// The servers.
        servers: Vec<IceServer>,
        /// When their credentials stop working.
        expires: Instant,
    },
    /// The relay gives no ICE servers (it rejected the channel: the JS relay, or ours with
    /// ICE off).
    IceRefused,
    /// Query `id` on `topic` was cut short by the end of its session.
    QueryFailed {
        /// The query id.
        id: u32,
        /// Its topic.
        topic: [u8; 32],
        /// Why.
        reason: String,
    },
}

/// State that outlives relay sessions.
struct Base {
    key: SigningKey,
    custodial: bool,
    idle_timeout: Duration,
    /// Our server aliases, kept up across sessions until unlistened.
    listens: HashSet<u32>,
    /// Topics announced on every new session (until unannounced).
    announced: HashSet<[u8; 32]>,
    next_id: u32,
    generation: u64,
    events: VecDeque<ClientEvent>,
}

impl Base {
    /// A fresh id (stream alias, server alias or query id: one counter, never 0).
    fn id(&mut self) -> u32 {
        let a = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        a
    }

    fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The secret key custodial messages carry; `None` in non-custodial mode.
    fn custodial_key(&self) -> Option<SecretKey> {
        self.custodial.then(|| secret_key(&self.key))
    }
}

/// A stream of the current session.
struct StreamEntry {
    /// The relay's alias for it (the alias in its `data`/`end`/`destroy`).
    remote_alias: u32,
    local_ended: bool,
    remote_ended: bool,
}

/// An `announce` / `unannounce` / `lookup` awaiting `finished`.
enum Query {
    Announce {
        topic: [u8; 32],
    },
    Lookup {
        topic: [u8; 32],
        found: Vec<[u8; 32]>,
    },
}

impl Query {
    fn topic(&self) -> [u8; 32] {
        match self {
            Query::Announce { topic } | Query::Lookup { topic, .. } => *topic,
        }
    }
}

/// The protocol state of one relay session.
struct Live {
    codec: RelayCodec,
    last_recv: Instant,
    /// Connects awaiting `open`, by our alias: the remote key.
    pending: HashMap<u32, [u8; 32]>,
    /// By our alias.
    streams: HashMap<u32, StreamEntry>,
    /// The relay's stream alias → ours.
    by_remote: HashMap<u32, u32>,
    /// The relay's server alias → our server alias.
    servers: HashMap<u32, u32>,
    /// Queries awaiting `finished`, by our query id.
    queries: HashMap<u32, Query>,
    /// Our server aliases whose `listening` has not arrived.
    unconfirmed: HashSet<u32>,
    /// Non-custodial Noise handshakes in progress or awaiting their stream, by the relay's
    /// handshake id.
    handshakes: HashMap<u32, PeerHandshake>,
    /// The `dat-social/ice/v1` exchange.
    ice: IceExchange,
    opened: bool,
    connected: bool,
}

/// The relay client's sans-IO core (see the module docs).
pub(crate) struct ClientCore {
    base: Base,
    /// The current session; `None` between sessions.
    live: Option<Live>,
}

impl ClientCore {
    /// A core for key pair `key` (non-custodial unless `custodial`) that considers a session
    /// dead after `idle_timeout` without a frame from the relay.
    pub(crate) fn new(key: SigningKey, custodial: bool, idle_timeout: Duration) -> Self {
        ClientCore {
            base: Base {
                key,
                custodial,
                idle_timeout,
                listens: HashSet::new(),
                announced: HashSet::new(),
                next_id: 1,
                generation: 0,
                events: VecDeque::new(),
            },
            live: None,
        }
    }

    /// The current session's number (counts sessions from 1; 0 before the first). Stream
    /// handles carry it so that a stale handle cannot touch a later session's stream.
    pub(crate) fn generation(&self) -> u64 {
        self.base.generation
    }

    /// True once the current session reached [`ClientEvent::Connected`].
    pub(crate) fn is_connected(&self) -> bool {
        self.live.as_ref().is_some_and(|l| l.connected)
    }

    /// A transport to the relay is open: starts a session (dropping any previous one without a
    /// word) with `handshake`, the ICE channel's `open` and `request`, every `listen` and every
    /// recorded announce queued.
    pub(crate) fn start_session(&mut self, now: Instant) {
        self.base.generation += 1;
        let mut live = Live {
            codec: RelayCodec::new(),
            last_recv: now,
            pending: HashMap::new(),
            streams: HashMap::new(),
            by_remote: HashMap::new(),
            servers: HashMap::new(),
            queries: HashMap::new(),
            unconfirmed: HashSet::new(),
            handshakes: HashMap::new(),
            ice: IceExchange::new(),
            opened: false,
            connected: false,
        };
        let b = &mut self.base;
        live.send(&Message::Handshake(Handshake {
            public_key: b.public_key(),
            secret_key: b.custodial_key(),
        }));
        // After the handshake, so that the relay knows whom the credentials are for.
        live.codec.open_ice();
        live.ask_ice();
        for alias in b.listens.clone() {
            live.listen(b, alias);
        }
        for topic in b.announced.clone() {
            live.announce(b, topic, true);
        }
        self.live = Some(live);
    }

    /// Queues the protomux `close` of the relay channel (the client is stopping).
    pub(crate) fn close(&mut self) {
        if let Some(live) = self.live.as_mut() {
            live.codec.close();
        }
    }

    /// The session is gone (transport lost, [`SessionError`], or stopping): every connect,
    /// stream and query still on it fails with `reason`, as [`ClientEvent`]s. Frames not yet
    /// taken are dropped.
    pub(crate) fn end_session(&mut self, reason: &str) {
        let Some(mut live) = self.live.take() else {
            return;
        };
        let events = &mut self.base.events;
        for (id, q) in live.queries.drain() {
            events.push_back(ClientEvent::QueryFailed {
                id,
                topic: q.topic(),
                reason: reason.to_string(),
            });
        }
        for (alias, peer) in live.pending.drain() {
            events.push_back(ClientEvent::ConnectFailed {
                alias,
                peer,
                reason: reason.to_string(),
            });
        }
        for (alias, _) in live.streams.drain() {
            events.push_back(ClientEvent::StreamClosed {
                alias,
                reason: reason.to_string(),
            });
        }
    }

    /// Handles one protomux frame from the relay, received at `now` (which counts as activity
    /// for the idle timeout). Messages go out through [`ClientCore::poll_transmit`], results
    /// through [`ClientCore::poll_event`]; without a session the frame is ignored.
    ///
    /// Errors (the driver ends the session): [`SessionError::BadFrame`] for a frame the codec
    /// refuses, [`SessionError::ChannelClosed`] when the relay closed the channel. Messages
    /// decoded before the failure are handled.
    pub(crate) fn handle_frame(&mut self, frame: &[u8], now: Instant) -> Result<(), SessionError> {
        let Some(live) = self.live.as_mut() else {
            return Ok(());
        };
        live.last_recv = now;
        let result = live.codec.handle_frame(frame);
        while let Some(ev) = live.codec.poll_event() {
            match ev {
                RelayEvent::Opened => {
                    live.opened = true;
                    live.check_connected(&mut self.base);
                }
                RelayEvent::Closed => return Err(SessionError::ChannelClosed),
                RelayEvent::Message(m) => live.on_message(&mut self.base, m),
                RelayEvent::Ice(ev) => {
                    let event = match live.ice.handle_event(ev, now) {
                        Some(IceOutcome::Servers { servers, expires }) => {
                            ClientEvent::IceServers { servers, expires }
                        }
                        Some(IceOutcome::Refused) => ClientEvent::IceRefused,
                        None => continue,
                    };
                    self.base.events.push_back(event);
                }
            }
        }
        result.map_err(SessionError::from)
    }

    /// When [`ClientCore::handle_timeout`] must be called: the idle deadline of the session
    /// (its last frame + the idle timeout) or the renewal of its ICE credentials, whichever
    /// comes first; `None` without a session.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let live = self.live.as_ref()?;
        let idle = crate::time::later(live.last_recv, self.base.idle_timeout);
        Some(
            live.ice
                .poll_timeout()
                .map_or(idle, |renew| renew.min(idle)),
        )
    }

    /// Time passes: asks for fresh ICE credentials when due. Errors: [`SessionError::Idle`]
    /// once nothing arrived from the relay for the idle timeout (the driver ends the session).
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        let Some(live) = self.live.as_mut() else {
            return Ok(());
        };
        if now >= crate::time::later(live.last_recv, self.base.idle_timeout) {
            return Err(SessionError::Idle(self.base.idle_timeout));
        }
        if live.ice.handle_timeout(now) {
            live.ask_ice();
        }
        Ok(())
    }

    /// The next frame to write to the relay, oldest first.
    pub(crate) fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.live.as_mut()?.codec.poll_transmit()
    }

    /// The next event, oldest first.
    pub(crate) fn poll_event(&mut self) -> Option<ClientEvent> {
        self.base.events.pop_front()
    }

    /// Connects to `remote_public_key` (`connect`); the answer is [`ClientEvent::Opened`] or
    /// [`ClientEvent::ConnectFailed`] with the returned alias. `None` without a session.
    pub(crate) fn connect(&mut self, remote_public_key: [u8; 32]) -> Option<u32> {
        let live = self.live.as_mut()?;
        let b = &mut self.base;
        let alias = b.id();
        live.pending.insert(alias, remote_public_key);
        live.send(&Message::Connect(Connect {
            alias,
            public_key: b.public_key(),
            secret_key: b.custodial_key(),
            remote_public_key,
        }));
        Some(alias)
    }

    /// Listens on our key, now (if a session is up) and on every later session, until
    /// [`ClientCore::unlisten`]; returns the listen's id (our server alias), which
    /// [`ClientEvent::Incoming`] names.
    pub(crate) fn listen(&mut self) -> u32 {
        let alias = self.base.id();
        self.base.listens.insert(alias);
        if let Some(live) = self.live.as_mut() {
            live.listen(&self.base, alias);
        }
        alias
    }

    /// Stops the listen `alias` (`close` to the relay if it was confirmed).
    pub(crate) fn unlisten(&mut self, alias: u32) {
        self.base.listens.remove(&alias);
        let Some(live) = self.live.as_mut() else {
            return;
        };
        live.unconfirmed.remove(&alias);
        let remote = live
            .servers
            .iter()
            .find(|(_, ours)| **ours == alias)
            .map(|(r, _)| *r);
        if let Some(remote) = remote {
            live.servers.remove(&remote);
            live.send(&Message::Close(AliasRef { alias }));
        }
    }

    /// Records `topic` as announced (`add`) or not for every later session and, if a session
    /// is up, sends `announce` / `unannounce` now: its query id, answered by
    /// [`ClientEvent::QueryFinished`] or [`ClientEvent::QueryFailed`]. `None` without a session.
    pub(crate) fn announce(&mut self, topic: [u8; 32], add: bool) -> Option<u32> {
        if add {
            self.base.announced.insert(topic);
        } else {
            self.base.announced.remove(&topic);
        }
        let live = self.live.as_mut()?;
        Some(live.announce(&mut self.base, topic, add))
    }

    /// Sends `lookup` on `topic`: its query id, answered by [`ClientEvent::QueryFinished`]
    /// (with the announcers) or [`ClientEvent::QueryFailed`]. `None` without a session.
    pub(crate) fn lookup(&mut self, topic: [u8; 32]) -> Option<u32> {
        let live = self.live.as_mut()?;
        let id = self.base.id();
        live.send(&Message::Lookup(Lookup { id, topic }));
        let found = Vec::new();
        live.queries.insert(id, Query::Lookup { topic, found });
        Some(id)
    }
}

impl Live {
    fn send(&mut self, m: &Message) {
        // Fails only once the channel is closed, and then the session is ending anyway.
        let _ = self.codec.send(m);
    }

    /// Sends an ICE `request` (nothing if the relay refused the channel).
    fn ask_ice(&mut self) {
        let _ = self.codec.send_ice(&IceMessage::Request);
    }

    /// Sends `listen` for our server `alias` (non-custodial: the relay then asks us to sign).
    fn listen(&mut self, b: &Base, alias: u32) {
        self.unconfirmed.insert(alias);
        self.send(&Message::Listen(Listen {
            alias,
            public_key: b.public_key(),
            secret_key: b.custodial_key(),
        }));
    }

    /// Sends `announce` (`add`) or `unannounce` of our key on `topic`; returns the query id.
    fn announce(&mut self, b: &mut Base, topic: [u8; 32], add: bool) -> u32 {
        let id = b.id();
        let record = Announce {
            id,
            topic,
            public_key: b.public_key(),
            secret_key: b.custodial_key(),
        };
        self.send(&if add {
            Message::Announce(record)
        } else {
            Message::Unannounce(record)
        });
        self.queries.insert(id, Query::Announce { topic });
        id
    }

    /// Reports [`ClientEvent::Connected`] once the relay's channel is open and every listen
    /// confirmed.
    fn check_connected(&mut self, b: &mut Base) {
        if self.opened && self.unconfirmed.is_empty() && !self.connected {
            self.connected = true;
            b.events.push_back(ClientEvent::Connected);
        }
    }

    fn on_message(&mut self, b: &mut Base, m: Message) {
        match m {
            Message::Ping => self.send(&Message::Pong),
            Message::Listening(l) => {
                if self.unconfirmed.remove(&l.remote_alias) {
                    self.servers.insert(l.alias, l.remote_alias);
                }
                self.check_connected(b);
            }
            Message::Incoming(inc) => {
                // The firewall: accept every peer on a key we listen on; the lobby decides
                // who plays.
                let reply = IdRef { id: inc.id };
                self.send(&if self.listening(b, inc.server_alias).is_some() {
                    Message::Accept(reply)
                } else {
                    Message::Deny(reply)
                });
            }
            Message::Connection(c) => self.on_connection(b, c),
            Message::Open(o) => self.on_open(b, o),
            Message::Destroy(x) => self.on_destroy(b, x),
            Message::Data(data) => {
                if let Some(&alias) = self.by_remote.get(&data.alias) {
                    let chunks = data.chunks;
                    b.events
                        .push_back(ClientEvent::StreamData { alias, chunks });
                }
            }
            Message::End(AliasRef { alias }) => self.on_end(b, alias),
            Message::Result(r) => self.on_result(r),
            Message::Finished(IdRef { id }) => self.on_finished(b, id),
            Message::NoiseSend(m) => self.on_noise_send(b, m),
            Message::NoiseReceive(m) => self.on_noise_receive(b, m),
            Message::SignAnnounce(m) => self.on_sign(b, m, true),
            Message::SignUnannounce(m) => self.on_sign(b, m, false),
            other => debug!(message = ?other.message_type(), "relay client: ignored"),
        }
    }

    /// Our listen behind the relay's server alias, if we still listen on it.
    fn listening(&self, b: &Base, server_alias: u32) -> Option<u32> {
        let ours = *self.servers.get(&server_alias)?;
        b.listens.contains(&ours).then_some(ours)
    }

    /// Refuses a stream the relay paired for us (`destroy` with the relay's alias as remote).
    fn destroy_remote(&mut self, remote_alias: u32, why: &str) {
        self.send(&Message::Destroy(Destroy {
            target: DestroyTarget::Unpaired { remote_alias },
            error: Some(why.to_string()),
        }));
    }

    /// A `result` of a query: a lookup collects the peers' public keys (each once).
    fn on_result(&mut self, r: QueryResult) {
        let Some(Query::Lookup { found, .. }) = self.queries.get_mut(&r.id) else {
            return; // An announce's results (the DHT nodes that stored it): nothing to do.
        };
        match r.announcers() {
            Ok(record) => {
                for peer in record.peers {
                    if !found.contains(&peer.public_key) {
                        found.push(peer.public_key);
                    }
                }
            }
            Err(e) => debug!(error = %e, "relay client: undecodable lookup result ignored"),
        }
    }

    fn on_finished(&mut self, b: &mut Base, id: u32) {
        let peers = match self.queries.remove(&id) {
            Some(Query::Lookup { found, .. }) => found,
            Some(Query::Announce { .. }) => Vec::new(),
            None => return,
        };
        b.events.push_back(ClientEvent::QueryFinished { id, peers });
    }
}
