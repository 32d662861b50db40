//! Both ends non-custodial: the relay carries their Noise IK handshake (`noiseSend` /
//! `noiseReceive` → `noiseReply`, [`NoiseStep`] by step; the server's firewall answers inside
//! message 1's reply) and joins the pair with each client's own handshake id; it never sees a
//! key or a plaintext byte.

use crate::relay::messages::{
    NoiseReceive, NoiseReply, NoiseReplyStep, NoiseSend, PublicKey, StreamHandshake,
};
use crate::relay::server::network::Network;
use crate::relay::server::noncustodial::{NoiseStep, RELAY_NOISE_PAYLOAD};
use crate::relay::server::{CloseReason, PendingId, SessionId};
use crate::relay::Message;

use super::super::pairing::Joined;
use super::super::Relay;
use super::{pending_mut, Establish};

/// The relayed handshake: `client_hs` is the handshake id towards the connecting client,
/// `server_hs` towards the server's client.
#[derive(Debug)]
pub(in crate::relay::server::hub) struct Relayed {
    pub(in crate::relay::server::hub) client_hs: u32,
    pub(in crate::relay::server::hub) server_hs: Option<u32>,
    step: NoiseStep,
    /// The connecting client's key as the server's Noise handshake proved it.
    remote_public_key: Option<PublicKey>,
}

impl<N: Network> Relay<N> {
    /// Starts a relayed connect: the connecting client starts its Noise IK handshake.
    pub(super) fn start_relayed(
        &mut self,
        sid: SessionId,
        pending_id: PendingId,
        alias: u32,
    ) -> Establish {
        let client_hs = self.ask_client_noise(sid, pending_id, alias);
        Establish::Relayed(Relayed {
            client_hs,
            server_hs: None,
            step: NoiseStep::Msg1,
            remote_public_key: None,
        })
    }

    /// One step of a relayed Noise handshake: carries the answer of one client to the other
    /// (see [`NoiseStep`]); one out of order closes the sender's session.
    pub(super) fn on_relayed_reply(
        &mut self,
        sid: SessionId,
        pending_id: PendingId,
        r: NoiseReply,
    ) -> Result<(), CloseReason> {
        let Some((
            client,
            server,
            Establish::Relayed(Relayed {
                client_hs,
                server_hs,
                step,
                remote_public_key,
            }),
        )) = pending_mut(&mut self.pending, pending_id)
        else {
            return Ok(());
        };
        let client_hs = *client_hs;
        match (*step, r.step) {
            (NoiseStep::Msg1, NoiseReplyStep::Initiator) => {
                let Some(srv) = self.live_server(pending_id, server) else {
                    return Ok(());
                };
                let hs = srv.next_alias();
                srv.noise_in.insert(hs, pending_id);
                if let Some((
                    _,
                    _,
                    Establish::Relayed(Relayed {
                        server_hs, step, ..
                    }),
                )) = pending_mut(&mut self.pending, pending_id)
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
}
