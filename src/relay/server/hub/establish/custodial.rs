//! Both ends custodial (the JS client's default): the relay asks the server's client through
//! its firewall (`incoming` → `accept` / `deny`), then runs the Noise XX handshake between the
//! two key pairs it holds, so both sides get the same handshake hash, and joins the pair.

use ed25519_dalek::SigningKey;

use crate::net::noise::{NoiseError, NoiseXx};
use crate::relay::messages::{Connect, Destroy, DestroyTarget, Incoming, StreamHandshake};
use crate::relay::server::network::{Network, ServerRef};
use crate::relay::server::noncustodial::RELAY_NOISE_PAYLOAD;
use crate::relay::server::{CloseReason, PendingId};
use crate::relay::Message;

use super::super::pairing::Joined;
use super::super::Relay;
use super::Establish;

/// Waiting for the server's `accept`/`deny` to the `incoming` with `firewall_id`; then the
/// relay runs the handshake with the two keys it holds.
#[derive(Debug)]
pub(in crate::relay::server::hub) struct Custodial {
    // Boxed: keys are large next to the other machines (clippy large_enum_variant).
    client_key: Box<SigningKey>,
    server_key: Box<SigningKey>,
    pub(in crate::relay::server::hub) firewall_id: u32,
}

impl<N: Network> Relay<N> {
    /// Starts a custodial connect `c`: asks the server's client through its firewall.
    pub(super) fn start_custodial(
        &mut self,
        pending_id: PendingId,
        server: ServerRef,
        c: &Connect,
        client_key: SigningKey,
        server_key: SigningKey,
    ) -> Establish {
        let srv = self.session(server.session);
        let firewall_id = srv.next_alias();
        srv.firewall.insert(firewall_id, pending_id);
        let incoming = Message::Incoming(Incoming {
            id: firewall_id,
            server_alias: server.relay_alias,
            remote_public_key: c.public_key,
            payload: RELAY_NOISE_PAYLOAD.to_vec(),
        });
        self.send(server.session, &incoming, None);
        Establish::Custodial(Custodial {
            client_key: Box::new(client_key),
            server_key: Box::new(server_key),
            firewall_id,
        })
    }

    /// The server accepted custodial connect `pending_id`: run the handshake and join.
    pub(super) fn on_custodial_accept(&mut self, pending_id: PendingId) -> Result<(), CloseReason> {
        let p = self.pending.remove(&pending_id).expect("pending connect");
        let Establish::Custodial(Custodial {
            client_key,
            server_key,
            ..
        }) = p.how
        else {
            return Ok(()); // the caller checked the mode
        };
        let Some(client) = self
            .sessions
            .get_mut(&p.client)
            .filter(|s| s.closing.is_none())
        else {
            return Ok(());
        };
        client.connecting.remove(&p.client_alias);
        let hash = match custodial_handshake(&client_key, &server_key) {
            Ok(h) => h,
            Err(e) => {
                // Cannot happen with keys we checked; fail the connect rather than the session.
                let m = Message::Destroy(Destroy {
                    target: DestroyTarget::Unpaired {
                        remote_alias: p.client_alias,
                    },
                    error: Some(format!("handshake failed: {e}")),
                });
                self.send(p.client, &m, None);
                return Ok(());
            }
        };
        let joined = Joined {
            bridge: None,
            client: p.client,
            client_alias: p.client_alias,
            server: p.server,
            client_public_key: client_key.verifying_key().to_bytes(),
            client_handshake: StreamHandshake::Hash(hash),
            server_handshake: StreamHandshake::Hash(hash),
        };
        self.join(joined);
        Ok(())
    }
}

/// Runs the Noise XX handshake between the two key pairs the relay holds in custody, as the
/// two clients would over a direct connection, and returns the 64-byte handshake hash both
/// sides report (`open.handshakeHash` / `connection.handshakeHash`).
///
/// Errors: [`NoiseError`] only for keys that are not valid ed25519 points.
pub fn custodial_handshake(
    initiator: &SigningKey,
    responder: &SigningKey,
) -> Result<[u8; 64], NoiseError> {
    let mut i = NoiseXx::new(true, initiator);
    let mut r = NoiseXx::new(false, responder);
    r.read_message(&i.write_message()?)?;
    i.read_message(&r.write_message()?)?;
    r.read_message(&i.write_message()?)?;
    let (io, ro) = match (i.outcome(), r.outcome()) {
        (Some(a), Some(b)) => (a, b),
        _ => return Err(NoiseError::OutOfTurn),
    };
    debug_assert_eq!(io.handshake_hash, ro.handshake_hash);
    debug_assert_eq!(io.remote_public_key, responder.verifying_key().to_bytes());
    Ok(io.handshake_hash)
}
