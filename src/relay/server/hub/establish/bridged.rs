//! A custodial client connecting to a non-custodial server: the relay runs the Noise IK
//! handshake as the client (with the key in its custody) against the server's client, then
//! speaks the secret-stream with the server on the client's behalf (a bridged pair).

use crate::dht as hyperdht;
use crate::net::noise::NoiseIk;
use crate::relay::messages::{
    Connect, NoiseReceive, NoiseReply, NoiseReplyStep, NoiseSend, PublicKey, StreamHandshake,
};
use crate::relay::server::network::{Network, ServerRef};
use crate::relay::server::noncustodial::RELAY_NOISE_PAYLOAD;
use crate::relay::server::{CloseReason, PendingId, SessionId};
use crate::relay::Message;

use super::super::pairing::{Bridge, Joined};
use super::super::Relay;
use super::{pending_mut, Establish};

/// The relay's IK handshake as the custodial client (handshake id `server_hs` towards the
/// server's client); `firewall_passed` once the server accepted.
#[derive(Debug)]
pub(in crate::relay::server::hub) struct Bridged {
    noise: Box<NoiseIk>,
    pub(in crate::relay::server::hub) server_hs: u32,
    firewall_passed: bool,
    client_public_key: PublicKey,
}

impl<N: Network> Relay<N> {
    /// Starts a bridged connect `c`: IK message 1 with the custodial client's key, to the
    /// server's client. Errors: the handshake could not be written.
    pub(super) fn start_bridged(
        &mut self,
        pending_id: PendingId,
        server: ServerRef,
        c: &Connect,
        client_key: &ed25519_dalek::SigningKey,
    ) -> Result<Establish, crate::net::noise::NoiseError> {
        let mut noise = NoiseIk::initiator(
            client_key,
            c.remote_public_key,
            &hyperdht::ns_peer_handshake(),
        );
        let msg1 = noise.write_message(&RELAY_NOISE_PAYLOAD)?;
        let srv = self.session(server.session);
        let hs = srv.next_alias();
        srv.noise_in.insert(hs, pending_id);
        let m = Message::NoiseReceive(NoiseReceive {
            id: hs,
            server_alias: Some(server.relay_alias),
            payload: msg1,
        });
        self.send(server.session, &m, None);
        Ok(Establish::Bridged(Bridged {
            noise: Box::new(noise),
            server_hs: hs,
            firewall_passed: false,
            client_public_key: c.public_key,
        }))
    }

    /// The server's answers in a bridged connect (the relay is the IK initiator for a
    /// custodial client): its firewall (`Responder`: an empty payload denies), then IK message
    /// 2 (`Complete`), which the relay reads to finish the handshake and join the pair.
    /// Anything else from the server closes its session; a message 2 that does not decrypt
    /// fails only the connect.
    pub(super) fn on_bridged_reply(
        &mut self,
        sid: SessionId,
        pending_id: PendingId,
        r: NoiseReply,
    ) -> Result<(), CloseReason> {
        let Some((
            _,
            _,
            Establish::Bridged(Bridged {
                noise,
                server_hs,
                firewall_passed,
                client_public_key,
            }),
        )) = pending_mut(&mut self.pending, pending_id)
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
                self.join(Joined {
                    bridge: Some(Bridge::new(0, &keys, true, client_public_key)),
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
}
