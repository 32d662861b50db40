//! Address lookups: the sources that turn a user's key into candidate routes ([`AddressLookup::resolve`])
//! and make our own archive findable ([`AddressLookup::publish`]). Three today, in the order their
//! routes are tried: address hints seen before ([`HintLookup`]), the local network
//! ([`LanLookup`], multicast DNS) and relays ([`RelayLookup`], `announce` / `lookup` of the
//! discovery key). The Hyperswarm DHT will be one more implementation.
//!
//! A route is only a candidate: whoever connects along it authenticates the peer's key before
//! anything is read, so a stale or hostile answer costs one failed connection, never wrong data.

use std::time::Duration;

use ed25519_dalek::SigningKey;
use futures_util::future::BoxFuture;

use super::mdns::{Announcement, MdnsDiscovery, MdnsError};
use super::pool::RelayPool;
use super::Hints;
use crate::keys::{DiscoveryKey, IdentityKey, Topic};
use crate::relay::client::{RelayClient, RelayClientError, RelayUrl};
use crate::remote::Route;

/// How long a multicast DNS lookup may take.
const LAN_LOOKUP_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long a relay `lookup` may take, connecting to the relay included.
const RELAY_LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a relay `announce` may take before it is left to the relay client, which repeats it
/// on every new session anyway.
const RELAY_ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whom to find: a user's identity key, its archive's discovery key and what is known of where
/// it was before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The user's identity key (the archive's public key).
    pub key: IdentityKey,
    /// The archive's discovery key ([`crate::hypercore::crypto::discovery_key`] of `key`), the
    /// topic that is announced and looked up: the key itself never leaves us.
    pub discovery_key: DiscoveryKey,
    /// Addresses seen before for this user.
    pub hints: Hints,
}

impl Target {
    /// The target for `key` with `hints`.
    pub fn new(key: IdentityKey, hints: Hints) -> Self {
        Target {
            key,
            discovery_key: key.discovery_key(),
            hints,
        }
    }
}

/// What to make findable: our archive's discovery key, and where we accept connections.
#[derive(Clone, Debug)]
pub struct Record {
    /// The discovery key of the archive we serve.
    pub discovery_key: DiscoveryKey,
    /// The TCP port we accept connections on, if we listen on TCP.
    pub tcp_port: Option<u16>,
}

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// Multicast DNS could not start or announce.
    #[error("LAN announce: {0}")]
    Lan(#[from] MdnsError),
    /// The relay refused or did not confirm the announcement in time (it is repeated on every
    /// new relay session regardless).
    #[error("relay announce on {url}: {source}")]
    Relay {
        /// The relay.
        url: String,
        /// What the relay client reported.
        #[source]
        source: RelayClientError,
    },
}

/// A live publication ([`AddressLookup::publish`]). Dropping it stops a LAN announcement; a
/// relay announcement lasts while its relay session does (the session re-announces after every
/// reconnect), and [`Publication::stop`] withdraws it at once.
#[derive(Debug)]
pub struct Publication(Published);

#[derive(Debug)]
enum Published {
    Lan(Announcement),
    Relay {
        client: RelayClient,
        topic: Topic,
        /// Waits for the relay's first confirmation, only to log a failure; aborted on drop so
        /// that no task outlives the publication.
        confirm: tokio::task::JoinHandle<()>,
    },
    /// Stopped.
    Gone,
}

impl Publication {
    /// Withdraws the publication: a LAN goodbye, or a relay `unannounce` (waits up to 5 s for
    /// either). Failures are logged at debug level: the record expires anyway.
    pub async fn stop(mut self) {
        let published = std::mem::replace(&mut self.0, Published::Gone);
        let result = match published {
            Published::Lan(a) => a.stop().await.map_err(|e| e.to_string()),
            Published::Relay { client, topic, .. } => client
                .unannounce(topic, Duration::from_secs(5))
                .await
                .map_err(|e| e.to_string()),
            Published::Gone => Ok(()),
        };
        if let Err(e) = result {
            tracing::debug!("withdrawing a publication: {e}");
        }
    }
}

impl Drop for Publication {
    fn drop(&mut self) {
        if let Published::Relay { confirm, .. } = &self.0 {
            confirm.abort();
        }
    }
}

/// A source of routes to users, which may also publish our own archive. Implementations never
/// fail a resolve: a source that errs contributes nothing (logged at debug level).
pub trait AddressLookup: Send + Sync + 'static {
    /// A short name for logs (`hints`, `lan`, `relay`).
    fn name(&self) -> &'static str;

    /// Candidate routes to `target`'s owner, best first.
    fn resolve<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Vec<Route>>;

    /// Makes `record` findable through this source. `Ok(empty)`: nothing to publish here (e.g.
    /// hints, or a LAN lookup with no TCP port to announce).
    fn publish<'a>(
        &'a self,
        record: &'a Record,
    ) -> BoxFuture<'a, Result<Vec<Publication>, LookupError>>;
}

/// Address hints seen before: the `peer=` of an invite and the address a user was last reached
/// at. Publishes nothing.
#[derive(Debug, Default)]
pub struct HintLookup;

impl AddressLookup for HintLookup {
    fn name(&self) -> &'static str {
        "hints"
    }

    fn resolve<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Vec<Route>> {
        let routes = target.hints.peer.iter().cloned().map(Route::Tcp).collect();
        Box::pin(std::future::ready(routes))
    }

    fn publish<'a>(
        &'a self,
        _: &'a Record,
    ) -> BoxFuture<'a, Result<Vec<Publication>, LookupError>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }
}

/// The local network, by multicast DNS ([`super::mdns`]): resolves to the TCP addresses of the
/// hosts announcing the discovery key (waits up to 1.5 s), publishes our TCP port. The daemon
/// starts on first use and sends multicast on every interface that is up.
#[derive(Default)]
pub struct LanLookup {
    mdns: tokio::sync::OnceCell<Option<MdnsDiscovery>>,
}

impl std::fmt::Debug for LanLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LanLookup")
            .field("started", &self.mdns.initialized())
            .finish()
    }
}

impl LanLookup {
    /// The daemon, started on first use; `None` if it cannot start (logged once).
    async fn daemon(&self) -> Option<&MdnsDiscovery> {
        self.mdns
            .get_or_init(|| async {
                MdnsDiscovery::new()
                    .map_err(|e| tracing::warn!("LAN discovery is off: {e}"))
                    .ok()
            })
            .await
            .as_ref()
    }
}

impl AddressLookup for LanLookup {
    fn name(&self) -> &'static str {
        "lan"
    }

    fn resolve<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Vec<Route>> {
        Box::pin(async move {
            let Some(mdns) = self.daemon().await else {
                return Vec::new();
            };
            match mdns
                .lookup(*target.discovery_key.as_bytes(), LAN_LOOKUP_TIMEOUT)
                .await
            {
                Ok(found) => found
                    .into_iter()
                    .map(|a| Route::Tcp(a.to_string()))
                    .collect(),
                Err(e) => {
                    tracing::debug!("LAN lookup: {e}");
                    Vec::new()
                }
            }
        })
    }

    fn publish<'a>(
        &'a self,
        record: &'a Record,
    ) -> BoxFuture<'a, Result<Vec<Publication>, LookupError>> {
        Box::pin(async move {
            let Some(port) = record.tcp_port else {
                return Ok(Vec::new());
            };
            // Unlike a lookup, an announcement the user asked for must not fail silently: when
            // the daemon could not start, starting it again gives the reason.
            let Some(mdns) = self.daemon().await else {
                return Err(MdnsDiscovery::new()
                    .err()
                    .unwrap_or(MdnsError::Stopped)
                    .into());
            };
            let announcement = mdns.announce(*record.discovery_key.as_bytes(), port)?;
            Ok(vec![Publication(Published::Lan(announcement))])
        })
    }
}

/// Relays: resolves by a `lookup` of the discovery key on each relay (the configured ones and
/// the one the user was last reached through), offering a relay route only when the user's key
/// is among the announcers (so an offline user costs one query, not a connect); publishes by
/// `announce` on the configured relays with `key`. Sessions come from a shared [`RelayPool`]:
/// with a key, lookups go out on that key's session, the one that connects and listens too.
pub struct RelayLookup {
    pool: RelayPool,
    relays: Vec<RelayUrl>,
    key: Option<SigningKey>,
}

impl std::fmt::Debug for RelayLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let relays: Vec<String> = self.relays.iter().map(|r| r.to_string()).collect();
        f.debug_struct("RelayLookup")
            .field("relays", &relays)
            .field("publishes", &self.key.is_some())
            .finish()
    }
}

impl RelayLookup {
    /// Looks up on `relays` (and each target's hinted relay) through `pool`; publishes with
    /// `key` (an identity's key pair), or never when `None`.
    pub fn new(pool: RelayPool, relays: Vec<RelayUrl>, key: Option<SigningKey>) -> Self {
        RelayLookup { pool, relays, key }
    }

    /// Whether a `lookup` of `target`'s discovery key on `relay` finds its key. The lookup
    /// goes out on our own session when we have a key (the one connects will use), else on any.
    async fn has(&self, relay: &RelayUrl, target: &Target) -> bool {
        let client = match &self.key {
            Some(key) => self.pool.session(relay, key),
            None => self.pool.any_session(relay),
        };
        if let Err(e) = client.wait_connected(RELAY_LOOKUP_TIMEOUT).await {
            tracing::debug!("lookup on {relay}: {e}");
            return false;
        }
        match client
            .lookup(target.discovery_key.topic(), RELAY_LOOKUP_TIMEOUT)
            .await
        {
            Ok(found) => found.contains(&target.key),
            Err(e) => {
                tracing::debug!("lookup on {relay}: {e}");
                false
            }
        }
    }
}

impl AddressLookup for RelayLookup {
    fn name(&self) -> &'static str {
        "relay"
    }

    fn resolve<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Vec<Route>> {
        Box::pin(async move {
            let mut relays = self.relays.clone();
            relays.extend(hint_relay(&target.hints));
            let mut routes = Vec::new();
            for relay in relays {
                if self.has(&relay, target).await {
                    routes.push(Route::Relay(relay));
                }
            }
            routes
        })
    }

    fn publish<'a>(
        &'a self,
        record: &'a Record,
    ) -> BoxFuture<'a, Result<Vec<Publication>, LookupError>> {
        Box::pin(async move {
            let Some(key) = &self.key else {
                return Ok(Vec::new());
            };
            let mut published = Vec::new();
            for url in &self.relays {
                let client = self.pool.session(url, key);
                // Registered at once and repeated on every new session; only the first
                // confirmation is waited for, in the background, as a relay that is down now
                // must not stop the caller.
                let announcing = client.clone();
                let topic = record.discovery_key.topic();
                let confirm = tokio::spawn(async move {
                    if let Err(source) = announcing.announce(topic, RELAY_ANNOUNCE_TIMEOUT).await {
                        let e = LookupError::Relay {
                            url: announcing.url().to_string(),
                            source,
                        };
                        tracing::debug!("{e}");
                    }
                });
                published.push(Publication(Published::Relay {
                    client,
                    topic,
                    confirm,
                }));
            }
            Ok(published)
        })
    }
}

/// The relay a user was last reached through, if the hint parses.
fn hint_relay(hints: &Hints) -> Option<RelayUrl> {
    let text = hints.relay.as_deref()?;
    match text.parse() {
        Ok(url) => Some(url),
        Err(e) => {
            tracing::debug!("ignoring the relay hint {text:?}: {e}");
            None
        }
    }
}
