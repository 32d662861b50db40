//! Finding a friend's archive without an address in hand: the one interface over every source
//! of routes. Sources, in the order their routes are tried:
//!
//! 1. address hints seen before: the `peer=` of the friend's invite and the address they were
//!    last reached at ([`FriendNotes::peer`]);
//! 2. the relays: the configured relay and the one the friend was last reached through. A
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

use super::FriendNotes;

/// Where to look for friends.
#[derive(Clone, Debug, Default)]
pub struct DiscoveryOptions {
    /// A relay to reach friends through (besides the ones their notes name).
    pub relay: Option<RelayUrl>,
    /// Contact nobody: no routes at all (show what is on disk).
    pub offline: bool,
}

/// How long a relay `lookup` may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// The discovery interface: candidate routes to a friend's archive. Clones share the relay
/// sessions used for lookups (one per relay, with a throwaway key: a lookup needs no identity).
#[derive(Clone, Default)]
pub struct Discovery {
    options: DiscoveryOptions,
    lookups: Arc<tokio::sync::Mutex<HashMap<String, RelayClient>>>,
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

    /// The candidate routes to the owner of `key`, best first, without duplicates. `notes` are
    /// the local notes on that friend. Never fails: a source that errs contributes nothing
    /// (logged at debug level).
    pub async fn routes(&self, key: [u8; 32], notes: &FriendNotes) -> Vec<Route> {
        let mut routes = Vec::new();
        if self.options.offline {
            return routes;
        }
        if let Some(peer) = &notes.peer {
            routes.push(Route::Tcp(peer.clone()));
        }
        let relays = [self.options.relay.clone(), notes_relay(notes)];
        let topic = crate::hypercore::crypto::discovery_key(&key);
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

fn notes_relay(notes: &FriendNotes) -> Option<RelayUrl> {
    let text = notes.relay.as_deref()?;
    match text.parse() {
        Ok(url) => Some(url),
        Err(e) => {
            tracing::debug!("ignoring the relay hint {text:?}: {e}");
            None
        }
    }
}
