//! A non-custodial client connecting to a custodial server: the relay answers the client's
//! Noise IK handshake as the server (with the key in its custody), asking the server's client
//! through its firewall (`incoming`) between message 1 and message 2, then speaks the
//! secret-stream with the client on the server's behalf (a bridged pair).

use std::collections::HashMap;

use crate::dht as hyperdht;
use crate::net::noise::NoiseIk;
use crate::relay::messages::{Incoming, NoiseReceive, NoiseReply, NoiseReplyStep, StreamHandshake};
use crate::relay::server::network::{Network, ServerRef};
use crate::relay::server::noncustodial::{NoiseStep, RELAY_NOISE_PAYLOAD};
use crate::relay::server::{CloseReason, PendingId, SessionId};
use crate::relay::Message;

use super::super::pairing::{Bridge, Joined};
use super::super::Relay;
use super::{pending_mut, Establish, PendingConnect};

/// The relay's IK handshake as the custodial server (handshake id `client_hs` towards the
/// connecting client); `firewall_id` while the server's `accept` is awaited.
#[derive(Debug)]
pub(in crate::relay::server::hub) struct ServerBridged {
    pub(in crate::relay::server::hub) client_hs: u32,
    noise: Box<NoiseIk>,
    pub(in crate::relay::server::hub) firewall_id: Option<u32>,
    step: NoiseStep,
}

impl<N: Network> Relay<N> {
    /// Starts a server-bridged connect: the client starts its IK, the relay will answer it.
    pub(super) fn start_server_bridged(
        &mut self,
        sid: SessionId,
        pending_id: PendingId,
        alias: u32,
        server_key: &ed25519_dalek::SigningKey,
    ) -> Establish {
        let client_hs = self.ask_client_noise(sid, pending_id, alias);
        Establish::ServerBridged(ServerBridged {
            client_hs,
            noise: Box::new(NoiseIk::responder(
                server_key,
                &hyperdht::ns_peer_handshake(),
            )),
            firewall_id: None,
            step: NoiseStep::Msg1,
        })
    }

    /// The connecting client's answers in a server-bridged connect (the relay is the IK
    /// responder for a custodial server): message 1 (`Initiator`), which the relay reads and
    /// hands to the server's firewall (`incoming`); then, after message 2, `Complete`, which
    /// joins the pair. Anything else closes the client's session; a message 1 that does not
    /// decrypt fails only the connect.
    pub(super) fn on_server_bridged_reply(
        &mut self,
        sid: SessionId,
        pending_id: PendingId,
        r: NoiseReply,
    ) -> Result<(), CloseReason> {
        let Some((_, server, sb)) = server_bridged(&mut self.pending, pending_id) else {
            return Ok(());
        };
        let (client_hs, noise, firewall_id, step) = (
            sb.client_hs,
            &mut sb.noise,
            &mut sb.firewall_id,
            &mut sb.step,
        );
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
                // Borrows only the sessions: the connect's state is still in use.
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
                self.join(Joined {
                    bridge: Some(Bridge::new(1, &keys, false, [0; 32])),
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
    pub(super) fn on_server_bridged_accept(
        &mut self,
        pending_id: PendingId,
    ) -> Result<(), CloseReason> {
        let Some((client, _, sb)) = server_bridged(&mut self.pending, pending_id) else {
            return Ok(());
        };
        let msg2 = match sb.noise.write_message(&RELAY_NOISE_PAYLOAD) {
            Ok(m) => m,
            Err(e) => {
                self.fail_pending(pending_id, &format!("handshake failed: {e}"));
                return Ok(());
            }
        };
        sb.firewall_id = None;
        sb.step = NoiseStep::Complete;
        let m = Message::NoiseReceive(NoiseReceive {
            id: sb.client_hs,
            server_alias: None,
            payload: msg2,
        });
        self.send(client, &m, None);
        Ok(())
    }
}

/// The server-bridged connect `pending_id` of `pending` (the prologue both handlers share): its
/// client's session, its server and its state.
fn server_bridged(
    pending: &mut HashMap<PendingId, PendingConnect>,
    pending_id: PendingId,
) -> Option<(SessionId, ServerRef, &mut ServerBridged)> {
    match pending_mut(pending, pending_id)? {
        (client, server, Establish::ServerBridged(sb)) => Some((client, server, sb)),
        _ => None,
    }
}
