//! The pending connects of [`Relay`] (PROTOCOL.md §4): what every `connect` shares (alias and
//! limit checks, finding the server, failing with `destroy`, the firewall answers, the routing
//! of `noiseReply` by handshake id), and one small machine per mode, each in its own file:
//! [`custodial`] (both ends custodial: the relay runs Noise XX with the two keys it holds),
//! [`relayed`] (both non-custodial: the relay carries their IK handshake), [`bridged`] (a
//! custodial client: the relay is the IK initiator for it) and [`server_bridged`] (a custodial
//! server: the relay is the IK responder for it).

use std::collections::HashMap;

use crate::relay::messages::{
    Connect, Destroy, DestroyTarget, NoiseReply, NoiseReplyStep, NoiseSend,
};
use crate::relay::server::network::{Network, ServerRef};
use crate::relay::server::noncustodial::RELAY_NOISE_PAYLOAD;
use crate::relay::server::session::{signing_key, Session};
use crate::relay::server::{CloseReason, PendingId, SessionId};
use crate::relay::Message;

use super::Relay;

mod bridged;
mod custodial;
mod relayed;
mod server_bridged;

use bridged::Bridged;
pub use custodial::custodial_handshake;
use custodial::Custodial;
use relayed::Relayed;
use server_bridged::ServerBridged;

/// How a pending connect gets established: one machine per mode, each in its own file.
#[derive(Debug)]
pub(super) enum Establish {
    /// Both ends custodial.
    Custodial(Custodial),
    /// A custodial client connecting to a non-custodial server.
    Bridged(Bridged),
    /// A non-custodial client connecting to a custodial server.
    ServerBridged(ServerBridged),
    /// Both ends non-custodial.
    Relayed(Relayed),
}

/// A `connect` not yet paired: waiting for the server's firewall or for the Noise handshake.
#[derive(Debug)]
pub(in crate::relay::server::hub) struct PendingConnect {
    pub(in crate::relay::server::hub) client: SessionId,
    pub(in crate::relay::server::hub) client_alias: u32,
    pub(in crate::relay::server::hub) server: ServerRef,
    pub(in crate::relay::server::hub) how: Establish,
}

impl<N: Network> Relay<N> {
    pub(super) fn on_connect(&mut self, sid: SessionId, c: Connect) -> Result<(), CloseReason> {
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
                self.start_custodial(pending_id, server, &c, client_key, server_key)
            }
            (None, None) => self.start_relayed(sid, pending_id, c.alias),
            (Some(client_key), None) => {
                match self.start_bridged(pending_id, server, &c, &client_key) {
                    Ok(how) => how,
                    Err(e) => return fail(self, &format!("handshake failed: {e}")),
                }
            }
            (None, Some(server_key)) => {
                self.start_server_bridged(sid, pending_id, c.alias, &server_key)
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
    pub(super) fn fail_pending(&mut self, pending_id: PendingId, error: &str) {
        let Some(p) = self.pending.remove(&pending_id) else {
            return;
        };
        match p.how {
            Establish::Custodial(Custodial { firewall_id, .. }) => {
                if let Some(s) = self.sessions.get_mut(&p.server.session) {
                    s.firewall.remove(&firewall_id);
                }
            }
            Establish::Bridged(Bridged { server_hs, .. }) => {
                if let Some(s) = self.sessions.get_mut(&p.server.session) {
                    s.noise_in.remove(&server_hs);
                }
            }
            Establish::ServerBridged(ServerBridged {
                client_hs,
                firewall_id,
                ..
            }) => {
                if let Some(s) = self.sessions.get_mut(&p.client) {
                    s.noise_out.remove(&client_hs);
                }
                if let (Some(s), Some(id)) = (self.sessions.get_mut(&p.server.session), firewall_id)
                {
                    s.firewall.remove(&id);
                }
            }
            Establish::Relayed(Relayed {
                client_hs,
                server_hs,
                ..
            }) => {
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

    pub(super) fn on_firewall(
        &mut self,
        sid: SessionId,
        id: u32,
        accept: bool,
    ) -> Result<(), CloseReason> {
        let Some(pending_id) = self.session(sid).firewall.get(&id).copied() else {
            return Ok(()); // unknown or stale request: JS ignores it too
        };
        if !accept {
            self.fail_pending(pending_id, "connection denied by the server's firewall");
            return Ok(());
        }
        self.session(sid).firewall.remove(&id);
        match self.pending.get(&pending_id).map(|p| &p.how) {
            Some(Establish::ServerBridged(_)) => self.on_server_bridged_accept(pending_id),
            Some(Establish::Custodial(_)) => self.on_custodial_accept(pending_id),
            // The firewall map only holds custodial and server-bridged connects.
            _ => Ok(()),
        }
    }

    /// A client's `noiseReply`: handed to the machine of the connect its handshake id names
    /// (`noiseSend` ids are the connecting client's, `noiseReceive` ids the server's). A reply
    /// for an unknown handshake is ignored (stale).
    pub(super) fn on_noise_reply(
        &mut self,
        sid: SessionId,
        r: NoiseReply,
    ) -> Result<(), CloseReason> {
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
        match self.pending.get(&pending_id).map(|p| &p.how) {
            Some(Establish::Relayed(_)) => self.on_relayed_reply(sid, pending_id, r),
            Some(Establish::Bridged(_)) => self.on_bridged_reply(sid, pending_id, r),
            Some(Establish::ServerBridged(_)) => self.on_server_bridged_reply(sid, pending_id, r),
            Some(Establish::Custodial(_)) | None => Ok(()),
        }
    }

    /// The session of `server` while it is open; else fails the pending connect `pending_id`
    /// (`PEER_NOT_FOUND`) and returns `None`.
    fn live_server(&mut self, pending_id: PendingId, server: ServerRef) -> Option<&mut Session> {
        let open = self
            .sessions
            .get(&server.session)
            .is_some_and(|s| s.closing.is_none());
        if !open {
            self.fail_pending(pending_id, "PEER_NOT_FOUND: the server went away");
            return None;
        }
        self.sessions.get_mut(&server.session)
    }

    /// Asks the connecting client of `sid` to start its Noise IK handshake for its connect
    /// `alias` (`noiseSend` as initiator); returns the handshake id towards it.
    fn ask_client_noise(&mut self, sid: SessionId, pending_id: PendingId, alias: u32) -> u32 {
        let client_hs = self.session(sid).next_alias();
        self.session(sid).noise_out.insert(client_hs, pending_id);
        let m = Message::NoiseSend(NoiseSend {
            id: client_hs,
            remote_stream_alias: Some(alias),
            payload: RELAY_NOISE_PAYLOAD.to_vec(),
        });
        self.send(sid, &m, None);
        client_hs
    }
}

/// The pending connect `pending_id` of `pending`: its client's session, its server, and its
/// machine (the prologue every machine's handler shares; a free function so that the caller
/// keeps the rest of the relay).
fn pending_mut(
    pending: &mut HashMap<PendingId, PendingConnect>,
    pending_id: PendingId,
) -> Option<(SessionId, ServerRef, &mut Establish)> {
    let p = pending.get_mut(&pending_id)?;
    Some((p.client, p.server, &mut p.how))
}
