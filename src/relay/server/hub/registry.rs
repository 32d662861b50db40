//! Listens, announces and lookups of [`Relay`]: the rendezvous the relay's clients share
//! through its [`Network`], and, for non-custodial clients, the `signAnnounce` /
//! `signUnannounce` round trips that prove they hold the key they listen or announce with.

use ed25519_dalek::SigningKey;

use crate::hypercore::encoding::CompactEncoding;
use crate::relay::messages::{
    AliasRef, Announce, IdRef, Listen, Listening, PublicKey, QueryResult, SignRequest, Signature,
};
use crate::relay::server::network::{Network, ServerRef};
use crate::relay::server::noncustodial::{server_target, signable, verify};
use crate::relay::server::session::{signing_key, PendingSign, ServerEntry, SignPurpose};
use crate::relay::server::{CloseReason, PendingId, SessionId};
use crate::relay::Message;

use super::Relay;

impl<N: Network> Relay<N> {
    /// `lookup{id, topic}`: one `result` per record the network knows, then `finished`.
    pub(super) fn on_lookup(&mut self, sid: SessionId, id: u32, topic: [u8; 32]) {
        for record in self.network.lookup(&topic) {
            let data = record.to_bytes();
            self.send(sid, &Message::Result(QueryResult { id, data }), None);
        }
        self.send(sid, &Message::Finished(IdRef { id }), None);
    }

    pub(super) fn on_listen(&mut self, sid: SessionId, l: Listen) -> Result<(), CloseReason> {
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
    pub(super) fn start_server(
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
    pub(super) fn ask_signature(&mut self, sid: SessionId, signee: u32, purpose: SignPurpose) {
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
    pub(super) fn on_signature(
        &mut self,
        sid: SessionId,
        sig: Signature,
    ) -> Result<(), CloseReason> {
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

    pub(super) fn on_close_server(&mut self, sid: SessionId, alias: u32) {
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

    pub(super) fn on_announce(
        &mut self,
        sid: SessionId,
        a: Announce,
        add: bool,
    ) -> Result<(), CloseReason> {
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
    pub(super) fn record_announce(
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
