//! [`Discovery`]: the one interface over every [`AddressLookup`], and the relay sessions reaching
//! users goes through. Sources, in the order their routes are tried:
//!
//! 1. address hints seen before: the `peer=` of the user's invite and the address they were
//!    last reached at ([`Hints::peer`]);
//! 2. the local network, with [`super::mdns`] (when the endpoint's `lan` is on): hosts that
//!    announce the archive's discovery key there;
//! 3. the relays: the configured relay and the one the friend was last reached through. A
//!    friend who hosts with `--relay` listens there on their key and announces their archive's
//!    discovery key; a relay route is offered only when a `lookup` of that discovery key on the
//!    relay finds the friend's key (so an offline friend costs one query, not a connect).
//!
//! The sources are asked at once; their routes are listed in the order above.

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use tokio::time::Instant;

use super::lookup::{
    AddressLookup, HintLookup, LanLookup, LookupError, Publication, Record, RelayLookup, Target,
};
use super::pool::RelayPool;
use crate::endpoint::dial;
use crate::identity::Identity;
use crate::keys::IdentityKey;
use crate::net::Connection;
use crate::relay::client::RelayUrl;
use crate::remote::{RemoteError, Route};

/// Addresses seen before for one user (e.g. [`crate::friends::FriendNotes`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hints {
    /// A TCP address `host:port` that served the archive.
    pub peer: Option<String>,
    /// A relay URL the user was reached through.
    pub relay: Option<String>,
}

/// The discovery interface: candidate routes to a user, and the relay sessions to reach them
/// through. Clones share the lookups and the sessions: one session per relay and key, however
/// many users are looked up or reached through it. Built by [`crate::endpoint::Endpoint`],
/// whose lookups publish and resolve with its identity.
#[derive(Clone)]
pub struct Discovery {
    lookups: Arc<Vec<Box<dyn AddressLookup>>>,
    pool: RelayPool,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.lookups.iter().map(|l| l.name()).collect();
        f.debug_struct("Discovery")
            .field("lookups", &names)
            .field("pool", &self.pool)
            .finish()
    }
}

impl Discovery {
    /// Discovery over `lookups`, asked in this order, reaching relays through `pool`.
    pub fn with_lookups(pool: RelayPool, lookups: Vec<Box<dyn AddressLookup>>) -> Self {
        Discovery {
            lookups: Arc::new(lookups),
            pool,
        }
    }

    /// The relay sessions.
    pub fn pool(&self) -> &RelayPool {
        &self.pool
    }

    /// The candidate routes to the owner of `key`, best first, without duplicates. `hints` are
    /// the addresses seen before for that user. Never fails: a source that errs contributes
    /// nothing (logged at debug level). Takes as long as the slowest source when nothing
    /// answers: up to the LAN lookup (1.5 s) or one relay lookup (3 s) per relay.
    pub async fn routes(&self, key: IdentityKey, hints: &Hints) -> Vec<Route> {
        let target = Target::new(key, hints.clone());
        let found =
            futures_util::future::join_all(self.lookups.iter().map(|l| l.resolve(&target))).await;
        let mut seen = std::collections::HashSet::new();
        found
            .into_iter()
            .flatten()
            .filter(|r| seen.insert(r.address()))
            .collect()
    }

    /// Makes `record` findable through every source that publishes (LAN, relays with a key).
    /// The publications last until dropped or stopped.
    ///
    /// Errors: the first source that failed ([`LookupError`]); what was published before it
    /// is withdrawn by the drop.
    pub async fn publish(&self, record: &Record) -> Result<Vec<Publication>, LookupError> {
        let mut all = Vec::new();
        for lookup in self.lookups.iter() {
            all.extend(lookup.publish(record).await?);
        }
        Ok(all)
    }

    /// Reaches the owner of `key` along `route` with `identity`: over TCP, or through the
    /// pool's session to the relay (started if needed, with `identity`'s key). Returns the
    /// connection and the local IP address it runs from.
    ///
    /// Errors: [`RemoteError::Unreachable`] (the address or relay did not answer, nobody
    /// listens on `key` at the relay, the handshake failed, `deadline`),
    /// [`RemoteError::WrongPeer`].
    pub async fn reach(
        &self,
        identity: &Identity,
        route: &Route,
        key: IdentityKey,
        deadline: Instant,
    ) -> Result<(Connection, std::net::IpAddr), RemoteError> {
        match route {
            Route::Relay(url) => {
                let client = self.pool.session(url, identity.signing_key());
                dial::relay(&client, key, deadline).await
            }
            Route::Tcp(addr) => dial::tcp(identity.signing_key(), addr, key, deadline).await,
        }
    }
}

/// The standard lookups, in order: hints, the LAN (when `lan`), then `relays` (plus each
/// target's hinted relay) through `pool`, publishing with `key` when given.
pub fn default_lookups(
    pool: RelayPool,
    relays: Vec<RelayUrl>,
    lan: bool,
    key: Option<SigningKey>,
) -> Vec<Box<dyn AddressLookup>> {
    let mut lookups: Vec<Box<dyn AddressLookup>> = vec![Box::new(HintLookup)];
    if lan {
        lookups.push(Box::new(LanLookup::default()));
    }
    lookups.push(Box::new(RelayLookup::new(pool, relays, key)));
    lookups
}
