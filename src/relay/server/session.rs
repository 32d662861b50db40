//! [`Session`]: the relay's state for one client connection, sans-IO. It owns the relay channel
//! codec, the heartbeat (PROTOCOL.md §3: `ping` every 15 s, failsafe 45 s), the `handshake`
//! gate, the client's alias tables and the outbox with its byte accounting. Messages that need
//! other sessions (connect, data, listen, lookup, ...) are handed to the relay core
//! ([`super::Relay`]) which routes them.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use crate::time::later;

use ed25519_dalek::SigningKey;

use crate::relay::ice::IceMessage;
use crate::relay::messages::{PublicKey, SecretKey};
use crate::relay::{IceEvent, Message, RelayCodec, RelayEvent};

use super::ice::IceRequests;
use super::{CloseReason, Limits, PairId, PendingId};

/// One side of one relayed stream: `(pair, side)`, side 0 = the connecting client, 1 = the
/// server's client.
pub(crate) type StreamRef = (PairId, usize);

/// A server a client listens with.
#[derive(Debug, Clone)]
pub(crate) struct ServerEntry {
    pub relay_alias: u32,
    pub public_key: PublicKey,
    /// `Some` = custodial (the relay holds the key); `None` = non-custodial (the client runs
    /// the Noise handshakes itself through `noiseReceive`/`noiseSend`/`noiseReply`).
    pub key: Option<SigningKey>,
}

/// What a `signAnnounce`/`signUnannounce` sent to the client is for (non-custodial mode: the
/// client proves it holds the secret key before the relay records anything).
#[derive(Debug, Clone)]
pub(crate) enum SignPurpose {
    /// A non-custodial `listen` with the client's server alias.
    Listen { alias: u32, public_key: PublicKey },
    /// A non-custodial `announce` with the client's query id.
    Announce {
        id: u32,
        topic: [u8; 32],
        public_key: PublicKey,
    },
}

/// A signature the relay waits for, by `signAnnounce` id.
#[derive(Debug, Clone)]
pub(crate) struct PendingSign {
    pub purpose: SignPurpose,
    /// The 32-byte token put in the request (fresh per request, so a signature can't be replayed).
    pub token: [u8; 32],
}

/// A frame waiting to be written, tagged with the stream whose buffer it counts against.
#[derive(Debug)]
struct Outgoing {
    frame: Vec<u8>,
    stream: Option<StreamRef>,
}

/// Per-client state. Created by [`super::Relay::open_session`].
#[derive(Debug)]
pub(crate) struct Session {
    /// Who the client is, for logs (socket address, or X-Forwarded-For behind a proxy).
    pub peer: String,
    codec: RelayCodec,
    /// The client's `handshake` public key, once received.
    pub default_key: Option<PublicKey>,
    /// Paired streams by the client's alias (its `connect` alias, or its `connected` alias).
    pub streams: HashMap<u32, StreamRef>,
    /// Streams by the relay's alias (the one in `open`/`connection`).
    pub relay_aliases: HashMap<u32, StreamRef>,
    /// Connects of this client waiting for the server's firewall, by the client's alias.
    pub connecting: HashMap<u32, PendingId>,
    /// Firewall requests (`incoming`) sent to this client, by request id.
    pub firewall: HashMap<u32, PendingId>,
    /// Non-custodial handshakes in which this client is the Noise initiator, by handshake id.
    pub noise_out: HashMap<u32, PendingId>,
    /// Non-custodial handshakes in which this client (a server) is the responder, by id.
    pub noise_in: HashMap<u32, PendingId>,
    /// Signatures asked of this client, by `signAnnounce`/`signUnannounce` id.
    pub signing: HashMap<u32, PendingSign>,
    /// Servers by the client's alias.
    pub servers: HashMap<u32, ServerEntry>,
    /// Standing announcements `(topic, public key)`.
    pub announcements: HashSet<([u8; 32], PublicKey)>,
    outbox: VecDeque<Outgoing>,
    /// Bytes of untagged frames in the outbox.
    control_bytes: usize,
    next_alias: u32,
    /// When the last complete frame arrived from the client (or the session opened). Only
    /// what the client sends counts: our own writes (pings included) say nothing about it.
    last_received: Instant,
    next_ping: Instant,
    /// `Some` once the session is closing: nothing more is read or routed.
    pub closing: Option<CloseReason>,
    /// The stream whose full buffer stops us reading from this client.
    pub blocked_on: Option<StreamRef>,
    /// Our protomux `open` frame is still first in the outbox.
    open_pending: bool,
    /// Requests on the `dat-social/ice/v1` channel (paired only when the relay has ICE).
    pub ice: IceRequests,
}

impl Session {
    /// A session; `serve_ice`: pair the client's `dat-social/ice/v1` channel.
    pub(super) fn new(peer: String, now: Instant, limits: &Limits, serve_ice: bool) -> Self {
        let mut codec = RelayCodec::new();
        codec.serve_ice(serve_ice);
        let mut s = Self {
            peer,
            codec,
            default_key: None,
            streams: HashMap::new(),
            relay_aliases: HashMap::new(),
            connecting: HashMap::new(),
            firewall: HashMap::new(),
            noise_out: HashMap::new(),
            noise_in: HashMap::new(),
            signing: HashMap::new(),
            servers: HashMap::new(),
            announcements: HashSet::new(),
            outbox: VecDeque::new(),
            control_bytes: 0,
            next_alias: 1,
            last_received: now,
            next_ping: later(now, limits.ping_interval),
            closing: None,
            blocked_on: None,
            open_pending: true,
            ice: IceRequests::new(now),
        };
        // The relay sends its protomux `open` at once, as JS does.
        s.drain_codec(None);
        s
    }

    /// A fresh relay-side alias/id. Per session, starting at 1 (PROTOCOL.md §3 allows this:
    /// receivers use them only as map keys).
    pub(super) fn next_alias(&mut self) -> u32 {
        let a = self.next_alias;
        self.next_alias = self.next_alias.wrapping_add(1).max(1);
        a
    }

    /// Streams counted against [`Limits::max_streams`] (a connect of this client in a Noise
    /// handshake is in `connecting` already; `noise_out` is not counted twice).
    pub(super) fn stream_count(&self) -> usize {
        self.relay_aliases.len() + self.connecting.len() + self.firewall.len() + self.noise_in.len()
    }

    /// Queries counted against [`Limits::max_queries`]: standing announcements and announces
    /// waiting for their signature (lookups finish at once locally).
    pub(super) fn query_count(&self) -> usize {
        let signing = self
            .signing
            .values()
            .filter(|p| matches!(p.purpose, SignPurpose::Announce { .. }))
            .count();
        self.announcements.len() + signing
    }

    /// The non-custodial listen with client alias `alias` waiting for its signature, if any.
    pub(super) fn pending_listen(&self, alias: u32) -> Option<u32> {
        self.signing.iter().find_map(|(id, p)| match p.purpose {
            SignPurpose::Listen { alias: a, .. } if a == alias => Some(*id),
            _ => None,
        })
    }

    /// Servers counted against [`Limits::max_servers`] (listening or waiting for a signature).
    pub(super) fn server_count(&self) -> usize {
        let signing = self
            .signing
            .values()
            .filter(|p| matches!(p.purpose, SignPurpose::Listen { .. }))
            .count();
        self.servers.len() + signing
    }

    /// Decodes one frame. Returns the messages for the relay core; heartbeat and the handshake
    /// are handled here. Errors: the reason to close the session.
    pub(super) fn on_frame(
        &mut self,
        frame: &[u8],
        now: Instant,
        limits: &Limits,
    ) -> Result<Vec<Message>, CloseReason> {
        self.last_received = now;
        if frame.len() > limits.max_frame {
            return Err(CloseReason::Limit(format!(
                "frame of {} bytes exceeds the limit of {}",
                frame.len(),
                limits.max_frame
            )));
        }
        self.codec
            .handle_frame(frame)
            .map_err(|e| CloseReason::Protocol(e.to_string()))?;
        // Control frames the codec queued itself (a `reject` of a channel we don't serve, our
        // `open` pairing the ICE channel) go out now, not with our next message.
        self.drain_codec(None);
        let mut out = Vec::new();
        while let Some(event) = self.codec.poll_event() {
            match event {
                RelayEvent::Opened => {}
                RelayEvent::Closed => return Err(CloseReason::ClientGone),
                RelayEvent::Message(Message::Ping) => {
                    self.send(&Message::Pong, None);
                }
                RelayEvent::Message(Message::Pong) => {}
                // Answered by the relay core, which holds the ICE config.
                RelayEvent::Ice(IceEvent::Message(IceMessage::Request)) => self.ice.pending = true,
                RelayEvent::Ice(_) => {}
                RelayEvent::Message(Message::Handshake(h)) => {
                    if self.default_key.is_none() {
                        if let Some(sk) = &h.secret_key {
                            signing_key(&h.public_key, sk)?;
                        }
                        self.default_key = Some(h.public_key);
                    }
                }
                RelayEvent::Message(m) if self.default_key.is_none() => {
                    return Err(CloseReason::Protocol(format!(
                        "{} before handshake",
                        m.kind().name()
                    )));
                }
                RelayEvent::Message(m) => out.push(m),
            }
        }
        Ok(out)
    }

    /// Queues `message`, counting its bytes against `stream` (or the control buffer). Returns
    /// the bytes queued. Does nothing once closing.
    pub(super) fn send(&mut self, message: &Message, stream: Option<StreamRef>) -> usize {
        if self.closing.is_some() || self.codec.send(message).is_err() {
            return 0;
        }
        self.drain_codec(stream)
    }

    /// Queues `message` on the ICE channel (counted as control bytes). Does nothing once
    /// closing or when the channel is not open.
    pub(super) fn send_ice(&mut self, message: &IceMessage) {
        if self.closing.is_none() && self.codec.send_ice(message).is_ok() {
            self.drain_codec(None);
        }
    }

    fn drain_codec(&mut self, stream: Option<StreamRef>) -> usize {
        let mut n = 0;
        while let Some(frame) = self.codec.poll_transmit() {
            n += frame.len();
            if stream.is_none() {
                self.control_bytes += frame.len();
            }
            self.outbox.push_back(Outgoing { frame, stream });
        }
        n
    }

    /// Next frame to write, with the stream it was counted against.
    pub(super) fn poll_transmit(&mut self) -> Option<(Vec<u8>, Option<StreamRef>)> {
        let o = self.outbox.pop_front()?;
        self.open_pending = false;
        if o.stream.is_none() {
            self.control_bytes -= o.frame.len();
        }
        // Writing says nothing about the client being alive (a silent client's kernel buffer
        // takes our pings for ever): only frames received count, see `on_frame`.
        Some((o.frame, o.stream))
    }

    /// True if the relay should read the next frame from this client.
    pub(super) fn wants_read(&self, limits: &Limits) -> bool {
        self.closing.is_none()
            && self.blocked_on.is_none()
            && self.control_bytes <= limits.control_buffer
    }

    /// When [`Session::on_timeout`] must run next.
    pub(super) fn poll_timeout(&self, limits: &Limits) -> Instant {
        self.next_ping
            .min(later(self.last_received, limits.idle_timeout))
    }

    /// Sends the heartbeat `ping`; errors with [`CloseReason::Idle`] when no frame arrived from
    /// the client for [`Limits::idle_timeout`]. While the relay itself stops reading the client
    /// because a stream it sends on is full (back-pressure, the receiver's fault), the idle
    /// clock does not run: the client's frames, its pongs included, wait in the socket.
    pub(super) fn on_timeout(&mut self, now: Instant, limits: &Limits) -> Result<(), CloseReason> {
        if self.blocked_on.is_some() {
            self.last_received = now;
        }
        if now >= later(self.last_received, limits.idle_timeout) {
            return Err(CloseReason::Idle(limits.idle_timeout));
        }
        if now >= self.next_ping {
            self.send_ping();
            self.next_ping = later(now, limits.ping_interval);
        }
        Ok(())
    }

    /// Queues a `ping` ahead of the frames waiting in the outbox (after our protomux `open`),
    /// so that a client busy reading stream data sees it, and answers, without first taking
    /// up to a stream buffer of data.
    fn send_ping(&mut self) {
        if self.closing.is_some() || self.codec.send(&Message::Ping).is_err() {
            return;
        }
        let at = usize::from(self.open_pending).min(self.outbox.len());
        let mut i = at;
        while let Some(frame) = self.codec.poll_transmit() {
            self.control_bytes += frame.len();
            self.outbox.insert(
                i,
                Outgoing {
                    frame,
                    stream: None,
                },
            );
            i += 1;
        }
    }

    /// Starts closing: drops what is queued and queues the protomux channel `close`.
    pub(super) fn close(&mut self, reason: CloseReason) {
        if self.closing.is_some() {
            return;
        }
        // Keep our protomux `open` if it was never sent, so the client sees open, then close.
        let open = self.open_pending.then(|| self.outbox.pop_front()).flatten();
        self.outbox.clear();
        self.control_bytes = 0;
        if let Some(o) = open {
            self.control_bytes += o.frame.len();
            self.outbox.push_back(o);
        }
        self.codec.close();
        self.drain_codec(None);
        self.closing = Some(reason);
        self.blocked_on = None;
    }

    /// True when closing and everything queued has been taken.
    pub(super) fn is_drained(&self) -> bool {
        self.outbox.is_empty()
    }
}

/// The ed25519 signing key of a custodial message, checked against its public key.
///
/// Errors: [`CloseReason::Protocol`] if `secret_key` (libsodium `seed ‖ public key`) does not
/// belong to `public_key`.
pub(crate) fn signing_key(
    public_key: &PublicKey,
    secret_key: &SecretKey,
) -> Result<SigningKey, CloseReason> {
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&secret_key.0[..32]);
    let key = SigningKey::from_bytes(&seed);
    if key.verifying_key().as_bytes() != public_key || &secret_key.0[32..] != public_key {
        return Err(CloseReason::Protocol(
            "secret key does not match its public key".into(),
        ));
    }
    Ok(key)
}
