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

use super::{Base, ClientEvent, Live, Query};
use crate::dht::{self as hyperdht, NoisePayload};
use crate::net::noise::{HandshakeOutcome, NoiseIk};
use crate::net::secret_stream::stream_id;
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

impl Live {
    /// `noiseSend`: write our next IK message around the relay's `noisePayload`. An id or alias
    /// we don't know is ignored (as JS); a payload that is not a `noisePayload` or a failing
    /// handshake fails the connect (initiator) or drops the handshake (responder).
    pub(super) fn on_noise_send(&mut self, b: &mut Base, m: NoiseSend) {
        if b.custodial {
            return debug!("relay client: noiseSend in custodial mode, ignored");
        }
        let valid = NoisePayload::decode(&m.payload).map_err(|e| e.to_string());
        match m.remote_stream_alias {
            Some(alias) => {
                let Some(peer) = self.pending.get(&alias) else {
                    return;
                };
                if self.handshakes.contains_key(&m.id) {
                    return self.fail_connect(b, alias, "the relay reused a handshake id".into());
                }
                let mut noise = NoiseIk::initiator(&b.key, *peer, &hyperdht::ns_peer_handshake());
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
                    Err(e) => self.fail_connect(b, alias, format!("noise handshake failed: {e}")),
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
    pub(super) fn on_noise_receive(&mut self, b: &mut Base, m: NoiseReceive) {
        if b.custodial {
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
                        self.fail_connect(b, alias, format!("noise handshake failed: {e}"));
                    }
                    (Ok(_), None) => {
                        self.handshakes.remove(&m.id);
                        self.fail_connect(b, alias, "noise handshake incomplete".into());
                    }
                }
            }
            Some(server_alias) => {
                if self.handshakes.contains_key(&m.id) {
                    return debug!(id = m.id, "relay client: repeated noiseReceive ignored");
                }
                let mut noise = NoiseIk::responder(&b.key, &hyperdht::ns_peer_handshake());
                let read = noise.read_message(&m.payload);
                let remote_public_key = noise.remote_public_key().unwrap_or([0; 32]);
                // The firewall: every peer on a key we listen on is welcome (the lobby decides
                // who plays), if its handshake and payload are well-formed.
                let listening = self
                    .servers
                    .get(&server_alias)
                    .is_some_and(|a| b.listens.contains(a));
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
    pub(super) fn on_sign(&mut self, b: &Base, m: SignRequest, add: bool) {
        if b.custodial {
            return;
        }
        let public_key = b.public_key();
        let target = if let Some(topic) = self.query_topic(m.signee) {
            topic
        } else if b.listens.contains(&m.signee) {
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
        let signature = b.key.sign(&record).to_bytes().to_vec();
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
        b: &Base,
        handshake: &StreamHandshake,
        initiator: bool,
    ) -> Result<StreamKeys, String> {
        match (handshake, b.custodial) {
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
    fn fail_connect(&mut self, b: &mut Base, alias: u32, reason: String) {
        self.forget_handshakes_of(alias);
        if let Some(peer) = self.pending.remove(&alias) {
            debug!(peer = %hex::encode(peer), %reason, "relay client: connect failed");
            b.events.push_back(ClientEvent::ConnectFailed {
                alias,
                peer,
                reason,
            });
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

impl Live {
    /// The topic of our announce query `id`, if it is one.
    fn query_topic(&self, id: u32) -> Option<[u8; 32]> {
        match self.queries.get(&id) {
            Some(Query::Announce { topic }) => Some(*topic),
            _ => None,
        }
    }
}
