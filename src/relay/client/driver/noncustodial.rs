//! The non-custodial half of a relay session (PROTOCOL.md §4-§5; `@hyperswarm/dht-relay` 0.4.3
//! `lib/handshake.js`, `lib/signee.js`; hyperdht 6.34.0 `lib/noise-wrap.js`): we run the Noise
//! IK handshakes the relay carries and sign the announce records it asks for, with a key that
//! never leaves this process.
//!
//! Connect (we initiate): `noiseSend{initiator, id, our alias, payload}` → we write IK message 1
//! around the payload (`noiseReply{initiator}`); `noiseReceive{initiator, id, msg2}` → we read
//! it (`noiseReply{initiator, complete, remote's payload, remoteId, holepunchSecret}`); then
//! `open{handshakeId = id}` starts the secret-stream.
//!
//! Listen (we respond): `noiseReceive{id, serverAlias, msg1}` → we read it and run the firewall
//! (`noiseReply{payload = the remote's noisePayload, remotePublicKey}`, an empty payload denies);
//! `noiseSend{id, payload}` → we write message 2 (`noiseReply{complete, msg2, …}`); then
//! `connection{handshakeId = id}` starts the secret-stream.

use tracing::debug;

use super::{Driver, Session};
use crate::net::hyperdht::{self, NoisePayload};
use crate::net::noise::{HandshakeOutcome, NoiseIk};
use crate::net::secret_stream::stream_id;
use crate::relay::client::RelayClientError;
use crate::relay::messages::{NoiseReceive, NoiseReply, NoiseReplyStep, NoiseSend, SignRequest};
use crate::relay::messages::{Signature as SignatureMessage, StreamHandshake};
use crate::relay::Message;

/// One IK handshake the relay is carrying for us, by the relay's handshake id.
pub(super) struct PeerHandshake {
    noise: NoiseIk,
    /// Initiator: our alias of the pending connect it is for.
    connect_alias: Option<u32>,
}

/// A finished handshake's values for the relay: the remote's stream id (hyperdht
/// `NoiseWrap.final`: `id(hash, !isInitiator)`; the JS relay client sends `id(hash, true)`
/// either way, no relay of ours or hyperdht's reads it) and the holepunch secret.
fn complete_step(outcome: &HandshakeOutcome, is_initiator: bool) -> NoiseReplyStep {
    NoiseReplyStep::Complete {
        is_initiator,
        remote_id: stream_id(&outcome.handshake_hash, !is_initiator),
        holepunch_secret: hyperdht::holepunch_secret(&outcome.handshake_hash),
    }
}

impl Session {
    /// `noiseSend`: write our next IK message around the relay's `noisePayload`. An id or alias
    /// we don't know is ignored (as JS); a payload that is not a `noisePayload` or a failing
    /// handshake fails the connect (initiator) or drops the handshake (responder).
    pub(super) fn on_noise_send(&mut self, d: &mut Driver, m: NoiseSend) {
        if d.options.custodial {
            return debug!("relay client: noiseSend in custodial mode, ignored");
        }
        let valid = NoisePayload::decode(&m.payload).map_err(|e| e.to_string());
        match m.remote_stream_alias {
            Some(alias) => {
                let Some((peer, _)) = self.pending.get(&alias) else {
                    return;
                };
                if self.handshakes.contains_key(&m.id) {
                    return self.fail_connect(alias, "the relay reused a handshake id".into());
                }
                let mut noise = NoiseIk::initiator(&d.key, *peer, &hyperdht::ns_peer_handshake());
                let msg =
                    valid.and_then(|_| noise.write_message(&m.payload).map_err(|e| e.to_string()));
                match msg {
                    Ok(payload) => {
                        self.handshakes.insert(
                            m.id,
                            PeerHandshake {
                                noise,
                                connect_alias: Some(alias),
                            },
                        );
                        self.send(&Message::NoiseReply(NoiseReply {
                            id: m.id,
                            payload,
                            step: NoiseReplyStep::Initiator,
                        }));
                    }
                    Err(e) => self.fail_connect(alias, format!("noise handshake failed: {e}")),
                }
            }
            None => {
                let Some(hs) = self.handshakes.get_mut(&m.id) else {
                    return;
                };
                if hs.noise.is_initiator() {
                    self.drop_handshake(m.id, "noiseSend for the responder of an outgoing one");
                    return;
                }
                let msg = valid.and_then(|_| {
                    hs.noise
                        .write_message(&m.payload)
                        .map_err(|e| e.to_string())
                });
                let step = hs.noise.outcome().map(|o| complete_step(o, false));
                match (msg, step) {
                    (Ok(payload), Some(step)) => self.send(&Message::NoiseReply(NoiseReply {
                        id: m.id,
                        payload,
                        step,
                    })),
                    (Err(e), _) => self.drop_handshake(m.id, &e),
                    (Ok(_), None) => self.drop_handshake(m.id, "handshake not complete"),
                }
            }
        }
    }

    /// `noiseReceive`: read the peer's IK message. Initiator: message 2 completes our connect's
    /// handshake. Responder: message 1 of a new incoming connection, and our firewall's answer.
    pub(super) fn on_noise_receive(&mut self, d: &mut Driver, m: NoiseReceive) {
        if d.options.custodial {
            return debug!("relay client: noiseReceive in custodial mode, ignored");
        }
        match m.server_alias {
            None => {
                let Some(hs) = self.handshakes.get_mut(&m.id) else {
                    return;
                };
                let Some(alias) = hs.connect_alias else {
                    self.drop_handshake(m.id, "noiseReceive for the initiator of an incoming one");
                    return;
                };
                let read = hs.noise.read_message(&m.payload).map_err(|e| e.to_string());
                // The responder's payload must be a noisePayload (hyperdht decodes it too).
                let read = read.and_then(|p| {
                    NoisePayload::decode(&p)
                        .map(|_| p)
                        .map_err(|e| format!("bad noisePayload: {e}"))
                });
                let step = hs.noise.outcome().map(|o| complete_step(o, true));
                match (read, step) {
                    (Ok(payload), Some(step)) => self.send(&Message::NoiseReply(NoiseReply {
                        id: m.id,
                        payload,
                        step,
                    })),
                    (Err(e), _) => {
                        self.handshakes.remove(&m.id);
                        self.fail_connect(alias, format!("noise handshake failed: {e}"));
                    }
                    (Ok(_), None) => {
                        self.handshakes.remove(&m.id);
                        self.fail_connect(alias, "noise handshake incomplete".into());
                    }
                }
            }
            Some(server_alias) => {
                if self.handshakes.contains_key(&m.id) {
                    return debug!(id = m.id, "relay client: repeated noiseReceive ignored");
                }
                let mut noise = NoiseIk::responder(&d.key, &hyperdht::ns_peer_handshake());
                let read = noise.read_message(&m.payload);
                let remote_public_key = noise.remote_public_key().unwrap_or([0; 32]);
                // The firewall: every peer on a key we listen on is welcome (the lobby decides
                // who plays), if its handshake and payload are well-formed.
                let listening = self
                    .servers
                    .get(&server_alias)
                    .is_some_and(|a| d.listens.contains_key(a));
                let accepted = match read {
                    Ok(p) if listening && NoisePayload::decode(&p).is_ok() => Some(p),
                    Ok(_) => None,
                    Err(e) => {
                        debug!(id = m.id, error = %e, "relay client: bad incoming handshake");
                        None
                    }
                };
                let payload = match accepted {
                    Some(p) => {
                        self.handshakes.insert(
                            m.id,
                            PeerHandshake {
                                noise,
                                connect_alias: None,
                            },
                        );
                        p
                    }
                    None => Vec::new(), // denied
                };
                self.send(&Message::NoiseReply(NoiseReply {
                    id: m.id,
                    payload,
                    step: NoiseReplyStep::Responder { remote_public_key },
                }));
            }
        }
    }

    /// `signAnnounce` / `signUnannounce` (`add`): sign the record for one of our listens
    /// (target = hash of our key) or announces (target = the topic). Unknown signees are
    /// ignored, as JS.
    pub(super) fn on_sign(&mut self, d: &Driver, m: SignRequest, add: bool) {
        if d.options.custodial {
            return;
        }
        let public_key = d.key.verifying_key().to_bytes();
        let target = if let Some(topic) = self.query_topic(m.signee) {
            topic
        } else if d.listens.contains_key(&m.signee) {
            hyperdht::server_target(&public_key)
        } else {
            return debug!(
                signee = m.signee,
                "relay client: sign request for nothing of ours"
            );
        };
        let record = hyperdht::announce_signable(
            add,
            &target,
            m.peer_id.as_deref().unwrap_or(&[]),
            &m.token,
            &public_key,
            &m.relay_addresses,
        );
        use ed25519_dalek::Signer;
        let signature = d.key.sign(&record).to_bytes().to_vec();
        self.send(&Message::Signature(SignatureMessage {
            id: m.id,
            signature,
        }));
    }

    /// The keys of the finished handshake `handshake` names, for a stream the relay opened
    /// (`open` / `connection`); `initiator`: which side we must have been. `Err` says why the
    /// stream cannot be used: the relay claims it ran the handshake (a custodial hash for a
    /// non-custodial client: it could be anyone), or the id names no finished handshake of
    /// ours in that role.
    pub(super) fn take_handshake(
        &mut self,
        d: &Driver,
        handshake: &StreamHandshake,
        initiator: bool,
    ) -> Result<StreamKeys, String> {
        match (handshake, d.options.custodial) {
            (StreamHandshake::Hash(hash), true) => Ok(StreamKeys::Custodial(*hash)),
            (StreamHandshake::Id(_), true) => {
                Err("the relay opened a non-custodial stream for a custodial client".into())
            }
            (StreamHandshake::Hash(_), false) => Err(
                "the relay ran the handshake itself (custodial) for a non-custodial client".into(),
            ),
            (StreamHandshake::Id(id), false) => {
                let hs = self
                    .handshakes
                    .remove(id)
                    .ok_or_else(|| format!("no handshake {id} of ours"))?;
                match hs.noise.outcome() {
                    Some(o) if hs.noise.is_initiator() == initiator => {
                        Ok(StreamKeys::Own(Box::new(o.clone())))
                    }
                    _ => Err(format!("handshake {id} is not finished")),
                }
            }
        }
    }

    /// Forgets every handshake of the connect `alias` was (it ended).
    pub(super) fn forget_handshakes_of(&mut self, alias: u32) {
        self.handshakes
            .retain(|_, h| h.connect_alias != Some(alias));
    }

    fn drop_handshake(&mut self, id: u32, why: &str) {
        debug!(id, why, "relay client: handshake dropped");
        self.handshakes.remove(&id);
    }

    /// Ends a pending connect with an error. The relay is not told (as JS, which sends
    /// nothing for an unpaired stream); if it opens the stream anyway, `open` finds no pending
    /// connect and destroys it.
    fn fail_connect(&mut self, alias: u32, reason: String) {
        self.forget_handshakes_of(alias);
        if let Some((peer, reply)) = self.pending.remove(&alias) {
            debug!(peer = %hex::encode(peer), %reason, "relay client: connect failed");
            let _ = reply.send(Err(RelayClientError::ConnectFailed {
                peer: hex::encode(peer),
                reason,
            }));
        }
    }
}

/// How a stream the relay opened is keyed.
pub(super) enum StreamKeys {
    /// The relay ran the handshake (custodial): its hash; data is plaintext to us.
    Custodial([u8; 64]),
    /// Our own IK handshake: the secret-stream keys.
    Own(Box<HandshakeOutcome>),
}

impl Session {
    /// The topic of our announce query `id`, if it is one.
    fn query_topic(&self, id: u32) -> Option<[u8; 32]> {
        match self.queries.get(&id) {
            Some(super::Query::Announce { topic, .. }) => Some(*topic),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use ed25519_dalek::{Signature, SigningKey, Verifier};
    use tokio::sync::{mpsc, oneshot, watch};

    use super::super::{Cmd, Driver, Session};
    use crate::net::hyperdht::{self, NoisePayload};
    use crate::net::noise::NoiseIk;
    use crate::relay::client::{ClientOptions, RelayClientError, RelayState, RelayStream};
    use crate::relay::messages::{
        Connection, Listening, NoiseReceive, NoiseReplyStep, NoiseSend, Open, SignRequest,
        StreamHandshake,
    };
    use crate::relay::{Message, RelayCodec, RelayEvent};

    /// A session of a non-custodial client, driven by hand through a relay-side codec: the
    /// relay's messages go in as frames, the client's come out as the relay decodes them.
    struct Harness {
        d: Driver,
        s: Session,
        relay: RelayCodec,
        _cmd: mpsc::UnboundedSender<Cmd>,
        _out: mpsc::UnboundedReceiver<super::super::Outgoing>,
    }

    fn harness() -> Harness {
        let (cmd, _cmd_rx) = mpsc::unbounded_channel();
        let (state, _) = watch::channel(RelayState::Connecting);
        let d = Driver {
            url: "ws://127.0.0.1:1".parse().unwrap(),
            key: SigningKey::from_bytes(&[0x21; 32]),
            options: ClientOptions::default(),
            weak: cmd.downgrade(),
            state,
            listens: HashMap::new(),
            announced: HashSet::new(),
            next_alias: 1,
            generation: 1,
        };
        let (out, out_rx) = mpsc::unbounded_channel();
        let s = Session {
            generation: 1,
            codec: RelayCodec::new(),
            out,
            local_ip: "127.0.0.1".parse().unwrap(),
            pending: HashMap::new(),
            streams: HashMap::new(),
            by_remote: HashMap::new(),
            servers: HashMap::new(),
            queries: HashMap::new(),
            unconfirmed: HashSet::new(),
            handshakes: HashMap::new(),
            opened: false,
            connected: false,
        };
        let mut h = Harness {
            d,
            s,
            relay: RelayCodec::new(),
            _cmd: cmd,
            _out: out_rx,
        };
        h.sent();
        h
    }

    impl Harness {
        /// Everything the client sent since the last call (and the relay's queued frames in).
        fn sent(&mut self) -> Vec<Message> {
            while let Some(f) = self.relay.poll_transmit() {
                self.s.on_frame(&mut self.d, &f).unwrap();
            }
            while let Some(f) = self.s.codec.poll_transmit() {
                self.relay.handle_frame(&f).unwrap();
            }
            std::iter::from_fn(|| self.relay.poll_event())
                .filter_map(|e| match e {
                    RelayEvent::Message(m) => Some(m),
                    _ => None,
                })
                .collect()
        }

        fn deliver(&mut self, m: Message) -> Vec<Message> {
            self.relay.send(&m).unwrap();
            self.sent()
        }

        /// Starts a connect to `remote`; returns our alias and the reply.
        fn connect(
            &mut self,
            remote: [u8; 32],
        ) -> (
            u32,
            oneshot::Receiver<Result<RelayStream, RelayClientError>>,
        ) {
            let (reply, rx) = oneshot::channel();
            self.s.on_cmd(
                &mut self.d,
                Cmd::Connect {
                    remote_public_key: remote,
                    reply,
                },
            );
            let sent = self.sent();
            let Some(Message::Connect(c)) = sent.first() else {
                panic!("expected connect, got {sent:?}")
            };
            assert!(c.secret_key.is_none(), "non-custodial connect");
            (c.alias, rx)
        }
    }

    fn noise_send(id: u32, alias: Option<u32>, payload: &[u8]) -> Message {
        Message::NoiseSend(NoiseSend {
            id,
            remote_stream_alias: alias,
            payload: payload.to_vec(),
        })
    }

    fn failed(
        rx: &mut oneshot::Receiver<Result<RelayStream, RelayClientError>>,
    ) -> RelayClientError {
        match rx.try_recv() {
            Ok(Err(e)) => e,
            Ok(Ok(_)) => panic!("connect succeeded"),
            Err(e) => panic!("no answer: {e}"),
        }
    }

    fn reply_of(sent: &[Message]) -> (Vec<u8>, NoiseReplyStep) {
        match sent {
            [Message::NoiseReply(r)] => (r.payload.clone(), r.step.clone()),
            other => panic!("expected one noiseReply, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn hostile_noise_messages_fail_a_connect_cleanly_and_a_good_one_opens() {
        let mut h = harness();
        let server = SigningKey::from_bytes(&[0x22; 32]);
        let server_pk = server.verifying_key().to_bytes();
        let prologue = hyperdht::ns_peer_handshake();

        // 1. The payload to embed is not a noisePayload.
        let (alias, mut rx) = h.connect(server_pk);
        assert!(h.deliver(noise_send(7, Some(alias), &[0xfe])).is_empty());
        let e = failed(&mut rx);
        assert!(e.to_string().contains("noise handshake failed"), "{e}");
        // The relay opens it anyway: we destroy it.
        let sent = h.deliver(Message::Open(Open {
            alias: 90,
            remote_alias: alias,
            handshake: StreamHandshake::Id(7),
        }));
        assert!(matches!(sent.as_slice(), [Message::Destroy(_)]), "{sent:?}");

        // 2. Message 2 is garbage, or 3. its payload is not a noisePayload, or 4. it is
        // truncated: each fails the connect.
        for (n, msg2) in [
            (2u32, Some(vec![0x42; 80])),
            (3, None),
            (4, Some(vec![1; 20])),
        ] {
            let (alias, mut rx) = h.connect(server_pk);
            let (msg1, step) = reply_of(&h.deliver(noise_send(n, Some(alias), &[1, 0, 0, 0])));
            assert_eq!(step, NoiseReplyStep::Initiator);
            let mut r = NoiseIk::responder(&server, &prologue);
            assert_eq!(r.read_message(&msg1).unwrap(), [1, 0, 0, 0]);
            let msg2 = msg2.unwrap_or_else(|| r.write_message(&[0xff, 0xff]).unwrap());
            let sent = h.deliver(Message::NoiseReceive(NoiseReceive {
                id: n,
                server_alias: None,
                payload: msg2,
            }));
            assert!(sent.is_empty(), "{sent:?}");
            let e = failed(&mut rx);
            assert!(e.to_string().contains("noise handshake failed"), "{e}");
            assert!(h.s.handshakes.is_empty());
        }

        // 5. A good handshake, then `open` with its id: a stream keyed by our own handshake,
        // whose id+header goes out first.
        let (alias, mut rx) = h.connect(server_pk);
        let (msg1, _) = reply_of(&h.deliver(noise_send(5, Some(alias), &[1, 0, 0, 0])));
        let mut r = NoiseIk::responder(&server, &prologue);
        r.read_message(&msg1).unwrap();
        let msg2 = r.write_message(&NoisePayload::default().encode()).unwrap();
        let (payload, step) = reply_of(&h.deliver(Message::NoiseReceive(NoiseReceive {
            id: 5,
            server_alias: None,
            payload: msg2,
        })));
        assert_eq!(payload, [1, 0, 0, 0]);
        let hash = r.outcome().unwrap().handshake_hash;
        assert_eq!(
            step,
            NoiseReplyStep::Complete {
                is_initiator: true,
                remote_id: crate::net::secret_stream::stream_id(&hash, false),
                holepunch_secret: hyperdht::holepunch_secret(&hash),
            }
        );
        let sent = h.deliver(Message::Open(Open {
            alias: 91,
            remote_alias: alias,
            handshake: StreamHandshake::Id(5),
        }));
        match sent.as_slice() {
            [Message::Data(d)] => {
                assert_eq!(d.alias, alias);
                assert_eq!(d.chunks.len(), 1);
                assert_eq!(d.chunks[0].len(), 59);
            }
            other => panic!("expected the id+header, got {other:?}"),
        }
        let stream = rx.try_recv().unwrap().unwrap();
        assert_eq!(stream.remote_public_key(), server_pk);
        assert_eq!(stream.handshake_hash(), hash);
        assert!(stream.is_initiator());

        // 6. A relay that claims it ran the handshake (a custodial hash) is refused.
        let (alias, mut rx) = h.connect(server_pk);
        let sent = h.deliver(Message::Open(Open {
            alias: 92,
            remote_alias: alias,
            handshake: StreamHandshake::Hash([7; 64]),
        }));
        assert!(matches!(sent.as_slice(), [Message::Destroy(_)]), "{sent:?}");
        assert!(failed(&mut rx).to_string().contains("custodial"));
    }

    #[tokio::test]
    async fn a_listen_is_signed_and_hostile_incoming_handshakes_are_denied() {
        let mut h = harness();
        let our_pk = h.d.key.verifying_key().to_bytes();
        let prologue = hyperdht::ns_peer_handshake();
        let (reply, mut rx) = oneshot::channel();
        h.s.on_cmd(&mut h.d, Cmd::Listen { reply });
        let mut listener = rx.try_recv().unwrap().unwrap();
        let sent = h.sent();
        let Some(Message::Listen(l)) = sent.first() else {
            panic!("{sent:?}")
        };
        assert!(l.secret_key.is_none());
        let listen_alias = l.alias;

        // The relay asks us to sign the announce record of our server.
        let sent = h.deliver(Message::SignAnnounce(SignRequest {
            id: 40,
            signee: listen_alias,
            token: [3; 32],
            peer_id: Some(vec![4; 32]),
            relay_addresses: Vec::new(),
        }));
        let [Message::Signature(sig)] = sent.as_slice() else {
            panic!("{sent:?}")
        };
        assert_eq!(sig.id, 40);
        let record = hyperdht::announce_signable(
            true,
            &hyperdht::server_target(&our_pk),
            &[4; 32],
            &[3; 32],
            &our_pk,
            &[],
        );
        let key = h.d.key.verifying_key();
        key.verify(&record, &Signature::from_slice(&sig.signature).unwrap())
            .unwrap();
        // A request for nothing of ours is not answered.
        let mut other = SignRequest {
            id: 41,
            signee: 999,
            token: [3; 32],
            peer_id: None,
            relay_addresses: Vec::new(),
        };
        assert!(h.deliver(Message::SignAnnounce(other.clone())).is_empty());
        other.signee = listen_alias;
        assert!(matches!(
            h.deliver(Message::SignUnannounce(other)).as_slice(),
            [Message::Signature(_)]
        ));
        h.deliver(Message::Listening(Listening {
            alias: 50,
            remote_alias: listen_alias,
            address: "127.0.0.1:1".parse().unwrap(),
        }));

        let denied = |sent: Vec<Message>| {
            let (payload, step) = reply_of(&sent);
            assert!(payload.is_empty(), "denied with an empty payload");
            assert!(matches!(step, NoiseReplyStep::Responder { .. }));
        };
        // Garbage, a handshake for another key, a payload that is not a noisePayload, and a
        // server alias we don't know: all denied, none kept.
        let client = SigningKey::from_bytes(&[0x23; 32]);
        let client_pk = client.verifying_key().to_bytes();
        let receive = |id, server_alias, payload| {
            Message::NoiseReceive(NoiseReceive {
                id,
                server_alias: Some(server_alias),
                payload,
            })
        };
        denied(h.deliver(receive(1, 50, vec![1, 2, 3])));
        let mut i = NoiseIk::initiator(&client, [0x99; 32], &prologue);
        if let Ok(m) = i.write_message(&[1, 0, 0, 0]) {
            denied(h.deliver(receive(2, 50, m)));
        }
        let mut i = NoiseIk::initiator(&client, our_pk, &prologue);
        denied(h.deliver(receive(3, 50, i.write_message(&[0xfd, 1]).unwrap())));
        let mut i = NoiseIk::initiator(&client, our_pk, &prologue);
        denied(h.deliver(receive(4, 77, i.write_message(&[1, 0, 0, 0]).unwrap())));
        assert!(h.s.handshakes.is_empty());

        // A good one is accepted; a garbage payload for message 2 drops it, and the relay's
        // `connection` for it is then refused.
        let mut i = NoiseIk::initiator(&client, our_pk, &prologue);
        let (payload, step) =
            reply_of(&h.deliver(receive(5, 50, i.write_message(&[1, 0, 0, 0]).unwrap())));
        assert_eq!(payload, [1, 0, 0, 0]);
        assert_eq!(
            step,
            NoiseReplyStep::Responder {
                remote_public_key: client_pk
            }
        );
        assert!(h.deliver(noise_send(5, None, &[0xff])).is_empty());
        let connection = |alias, id| {
            Message::Connection(Connection {
                alias,
                server_alias: 50,
                remote_public_key: client_pk,
                handshake: StreamHandshake::Id(id),
            })
        };
        assert!(matches!(
            h.deliver(connection(60, 5)).as_slice(),
            [Message::Destroy(_)]
        ));

        // The whole exchange: a stream keyed by our handshake reaches the listener.
        let mut i = NoiseIk::initiator(&client, our_pk, &prologue);
        reply_of(&h.deliver(receive(6, 50, i.write_message(&[1, 0, 0, 0]).unwrap())));
        let (msg2, step) = reply_of(&h.deliver(noise_send(6, None, &[1, 0, 0, 0])));
        assert_eq!(i.read_message(&msg2).unwrap(), [1, 0, 0, 0]);
        let hash = i.outcome().unwrap().handshake_hash;
        assert!(matches!(
            step,
            NoiseReplyStep::Complete { is_initiator: false, remote_id, .. }
                if remote_id == crate::net::secret_stream::stream_id(&hash, true)
        ));
        let sent = h.deliver(connection(61, 6));
        assert!(
            matches!(sent.as_slice(), [Message::Connected(_), Message::Data(d)] if d.chunks[0].len() == 59),
            "{sent:?}"
        );
        let stream = listener.rx.try_recv().unwrap();
        assert_eq!(stream.remote_public_key(), client_pk);
        assert_eq!(stream.handshake_hash(), hash);
        assert!(!stream.is_initiator());
    }
}
