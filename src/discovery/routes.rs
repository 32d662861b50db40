//! Finding a user's archive without an address in hand: the one interface over every source
//! of routes. Sources, in the order their routes are tried:
//!
//! 1. address hints seen before: the `peer=` of the user's invite and the address they were
//!    last reached at ([`Hints::peer`]);
//! 2. the local network, with [`super::mdns`] (when [`DiscoveryOptions::lan`]): hosts that
//!    announce the archive's discovery key there;
//! 3. the relays: the configured relay and the one the friend was last reached through. A
//!    friend who hosts with `--relay` listens there on their key and announces their archive's
//!    discovery key; a relay route is offered only when a `lookup` of that discovery key on the
//!    relay finds the friend's key (so an offline friend costs one query, not a connect).
//!
//! A route is only a candidate: [`crate::remote::reach`] authenticates the peer's key before
//! anything is read, so a stale or hostile hint costs one failed connection, never wrong data.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::relay::client::{ClientOptions, RelayClient, RelayUrl};
use crate::remote::Route;

use super::mdns::MdnsDiscovery;

/// Addresses seen before for one user (e.g. [`crate::friends::FriendNotes`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hints {
    /// A TCP address `host:port` that served the archive.
    pub peer: Option<String>,
    /// A relay URL the user was reached through.
    pub relay: Option<String>,
}

/// How long a multicast DNS lookup may take.
const LAN_LOOKUP_TIMEOUT: Duration = Duration::from_millis(1500);

/// Where to look for friends.
#[derive(Clone, Debug, Default)]
pub struct DiscoveryOptions {
    /// A relay to reach friends through (besides the ones their notes name).
    pub relay: Option<RelayUrl>,
    /// Contact nobody: no routes at all (show what is on disk).
    pub offline: bool,
    /// Also look on the local network with multicast DNS (sends multicast on every interface
    /// that is up).
    pub lan: bool,
}

/// How long a relay `lookup` may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// The discovery interface: candidate routes to a friend's archive. Clones share the relay
/// sessions used for lookups (one per relay, with a throwaway key: a lookup needs no identity).
#[derive(Clone, Default)]
pub struct Discovery {
    options: DiscoveryOptions,
    lookups: Arc<tokio::sync::Mutex<HashMap<String, RelayClient>>>,
    mdns: Arc<tokio::sync::OnceCell<Option<MdnsDiscovery>>>,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("options", &self.options)
            .finish()
    }
}

impl Discovery {
    /// Discovery with these sources.
    pub fn new(options: DiscoveryOptions) -> Self {
        Discovery {
            options,
            ..Discovery::default()
        }
    }

    /// Discovery that finds nobody (offline reads of the replicas).
    pub fn offline() -> Self {
        Discovery::new(DiscoveryOptions {
            offline: true,
            ..DiscoveryOptions::default()
        })
    }

    /// The candidate routes to the owner of `key`, best first, without duplicates. `hints` are
    /// the addresses seen before for that user. Never fails: a source that errs contributes
    /// nothing (logged at debug level). Takes up to the LAN lookup (1.5 s) plus one relay
    /// lookup (3 s) per relay when nothing answers.
    pub async fn routes(&self, key: [u8; 32], hints: &Hints) -> Vec<Route> {
        let mut routes = Vec::new();
        if self.options.offline {
            return routes;
        }
        if let Some(peer) = &hints.peer {
            routes.push(Route::Tcp(peer.clone()));
        }
        let topic = crate::hypercore::crypto::discovery_key(&key);
        routes.extend(self.lan_routes(topic).await);
        let relays = [self.options.relay.clone(), hint_relay(hints)];
        for relay in relays.into_iter().flatten() {
            if self.relay_has(&relay, topic, key).await {
                routes.push(Route::Relay(relay));
            }
        }
        let mut seen = std::collections::HashSet::new();
        routes.retain(|r| seen.insert(r.address()));
        routes
    }
}

impl Discovery {
    /// TCP routes to the hosts that announce `topic` on the local network.
    async fn lan_routes(&self, topic: [u8; 32]) -> Vec<Route> {
        if !self.options.lan {
            return Vec::new();
        }
        let mdns = self
            .mdns
            .get_or_init(|| async {
                MdnsDiscovery::new()
                    .map_err(|e| tracing::warn!("LAN discovery is off: {e}"))
                    .ok()
            })
            .await;
        let Some(mdns) = mdns else { return Vec::new() };
        match mdns.lookup(topic, LAN_LOOKUP_TIMEOUT).await {
            Ok(found) => found
                .into_iter()
                .map(|a| Route::Tcp(a.to_string()))
                .collect(),
            Err(e) => {
                tracing::debug!("LAN lookup: {e}");
                Vec::new()
            }
        }
    }

    /// Whether a `lookup` of `topic` on `relay` finds `key` among its announcers.
    async fn relay_has(&self, relay: &RelayUrl, topic: [u8; 32], key: [u8; 32]) -> bool {
        let client = {
            let mut clients = self.lookups.lock().await;
            clients
                .entry(relay.to_string())
                .or_insert_with(|| {
                    let throwaway = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
                    RelayClient::start(relay.clone(), throwaway, ClientOptions::default())
                })
                .clone()
        };
        if let Err(e) = client.wait_connected(LOOKUP_TIMEOUT).await {
            tracing::debug!("lookup on {relay}: {e}");
            return false;
        }
        match client.lookup(topic, LOOKUP_TIMEOUT).await {
            Ok(found) => found.contains(&key),
            Err(e) => {
                tracing::debug!("lookup on {relay}: {e}");
                false
            }
        }
    }
}

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
