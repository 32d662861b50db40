//! The relayed stream pairs of [`Relay`]: joining two clients' streams once a connect is
//! established, routing `data` / `end` / `destroy` between them with back-pressure (bounded
//! bytes queued per side), and the relay's own secret-stream on a bridged pair.

use crate::net::noise::HandshakeOutcome;
use crate::net::secret_stream::{self, Decryptor, Encryptor, FrameDecoder};
use crate::relay::messages::{
    AliasRef, Connected, Connection, Data, Destroy, DestroyTarget, Open, PublicKey, StreamHandshake,
};
use crate::relay::server::network::{Network, ServerRef};
use crate::relay::server::{CloseReason, PairId, SessionId};
use crate::relay::Message;

use super::Relay;

/// One side of a relayed stream.
#[derive(Debug)]
pub(super) struct Side {
    pub(super) session: SessionId,
    /// The relay's alias of the stream towards this side's client.
    pub(super) relay_alias: u32,
    /// The client's own alias (known at once for the connecting side, after `connected` for
    /// the server side).
    pub(super) client_alias: Option<u32>,
    /// Bytes of `data` queued towards this side's client.
    pub(super) buffered: usize,
    /// This side's client sent `end`.
    pub(super) ended: bool,
}

/// Two clients' streams joined by the relay.
#[derive(Debug)]
pub(super) struct Pair {
    pub(super) sides: [Side; 2],
    /// One end custodial, the other not: the relay speaks the secret-stream with the
    /// non-custodial end on the custodial end's behalf.
    pub(super) bridge: Option<Box<Bridge>>,
}

/// The relay's end of a secret-stream it runs for a custodial client (`@hyperswarm/secret-stream`
/// 6.9.2 from the IK handshake it ran with that client's key, as hyperdht would for it): each
/// plaintext chunk from the custodial side becomes one record to the other side; the other
/// side's records, reassembled from its byte stream, become one chunk each.
pub(super) struct Bridge {
    /// The pair side (0 connecting client, 1 server) whose key is in the relay's custody.
    pub(super) custodial_side: usize,
    pub(super) encryptor: Encryptor,
    pub(super) frames: FrameDecoder,
    pub(super) decryptor: Decryptor,
    /// The framed id+header record, sent to the server when the pair is joined.
    pub(super) header: Option<Vec<u8>>,
}

impl Bridge {
    /// The relay's secret-stream for the custodial end `custodial_side` (0 the connecting
    /// client, 1 the server), from the IK handshake the relay ran for it (`is_initiator`: as the
    /// connecting client); its id+header waits in `header` until the pair is joined.
    pub(super) fn new(
        custodial_side: usize,
        keys: &HandshakeOutcome,
        is_initiator: bool,
        public_key: PublicKey,
    ) -> Box<Self> {
        let (_, encryptor, header, decryptor) =
            secret_stream::from_handshake(keys, is_initiator, public_key);
        Box::new(Bridge {
            custodial_side,
            encryptor,
            frames: FrameDecoder::new(),
            decryptor,
            header: Some(header),
        })
    }
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bridge")
    }
}

/// A connect established: what [`Relay::join`] needs to pair the two streams.
#[derive(Debug)]
pub(super) struct Joined {
    /// Bridged connects: the relay's secret-stream towards the server.
    pub(super) bridge: Option<Box<Bridge>>,
    pub(super) client: SessionId,
    pub(super) client_alias: u32,
    pub(super) server: ServerRef,
    /// The connecting client's key, reported to the server in `connection`.
    pub(super) client_public_key: PublicKey,
    pub(super) client_handshake: StreamHandshake,
    pub(super) server_handshake: StreamHandshake,
}

impl<N: Network> Relay<N> {
    /// Accounts `len` bytes written towards `side` of `pair_id` and unblocks its sender.
    pub(super) fn drained(&mut self, pair_id: PairId, side: usize, len: usize) {
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

    /// Pairs the two streams of an established connect and tells both clients: `open` to the
    /// connecting client, `connection` to the server's (which answers `connected`).
    pub(super) fn join(&mut self, j: Joined) {
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

    pub(super) fn on_connected(&mut self, sid: SessionId, c: Connected) -> Result<(), CloseReason> {
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
    pub(super) fn route(
        &self,
        sid: SessionId,
        alias: u32,
    ) -> Option<(PairId, usize, SessionId, u32)> {
        let &(pair_id, side) = self.sessions.get(&sid)?.streams.get(&alias)?;
        let other = &self.pairs.get(&pair_id)?.sides[1 - side];
        Some((pair_id, side, other.session, other.relay_alias))
    }

    pub(super) fn on_data(&mut self, sid: SessionId, d: Data) {
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
    pub(super) fn bridge_chunks(
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

    pub(super) fn on_end(&mut self, sid: SessionId, alias: u32) {
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

    pub(super) fn on_destroy(&mut self, sid: SessionId, d: Destroy) {
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
    pub(super) fn destroy_pair(&mut self, pair_id: PairId, from: SessionId, error: Option<String>) {
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

    pub(super) fn remove_pair(&mut self, pair_id: PairId) {
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
}
