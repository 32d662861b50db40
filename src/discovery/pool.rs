//! One relay session per relay URL and key, shared by everything that goes through that relay:
//! listening, connecting, announcing and lookups. Without it every reach opened a WebSocket
//! session of its own, so a watcher following a hundred friends through one relay held a hundred
//! sessions to it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use ed25519_dalek::SigningKey;

use crate::ice::server::MAX_ICE_SERVERS;
use crate::ice::IceServer;
use crate::relay::client::{ClientOptions, RelayClient, RelayUrl};

/// Relay sessions by relay URL and the public key they authenticate with.
type Sessions = HashMap<(String, [u8; 32]), RelayClient>;

/// The relay sessions of one process or endpoint, keyed by relay URL and the key a session
/// authenticates with (a session listens and connects with one key pair). Cloning shares the
/// sessions. A session lives as long as the pool (or a [`RelayClient`], stream or listener
/// taken from it); its client task reconnects on its own, so a session taken once stays usable
/// across relay restarts.
#[derive(Clone, Default)]
pub struct RelayPool {
    options: ClientOptions,
    sessions: Arc<Mutex<Sessions>>,
}

impl std::fmt::Debug for RelayPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayPool")
            .field("sessions", &self.len())
            .finish()
    }
}

impl RelayPool {
    /// A pool whose sessions use `options` (custodial or not, TLS roots, back-off).
    pub fn new(options: ClientOptions) -> Self {
        RelayPool {
            options,
            sessions: Arc::default(),
        }
    }

    /// The session to `url` that authenticates with `key`, started (in the background: see
    /// [`RelayClient::start`]) if there is none. Requires a tokio runtime.
    pub fn session(&self, url: &RelayUrl, key: &SigningKey) -> RelayClient {
        let id = (url.to_string(), key.verifying_key().to_bytes());
        self.lock()
            .entry(id)
            .or_insert_with(|| RelayClient::start(url.clone(), key.clone(), self.options.clone()))
            .clone()
    }

    /// Any session to `url`, for what needs no particular key (a `lookup`): an existing one if
    /// there is one, else a new session with a throwaway key, kept for the next lookup.
    pub fn any_session(&self, url: &RelayUrl) -> RelayClient {
        let name = url.to_string();
        if let Some(client) = self
            .lock()
            .iter()
            .find(|((u, _), _)| *u == name)
            .map(|(_, c)| c.clone())
        {
            return client;
        }
        let throwaway = SigningKey::generate(&mut rand::rngs::OsRng);
        self.session(url, &throwaway)
    }

    /// The STUN/TURN servers the pool's relays give (`dat-social/ice/v1`), each once, in the
    /// order of the sessions, at most [`MAX_ICE_SERVERS`]: waits up to `bound` for relays that
    /// have not answered yet (all at once; a relay that does not serve ICE refuses at once; a
    /// relay that is down is not waited for once its first connection attempt failed).
    pub async fn ice_servers(&self, bound: std::time::Duration) -> Vec<IceServer> {
        let clients: Vec<RelayClient> = self.lock().values().cloned().collect();
        let waits = clients.iter().map(|c| c.wait_ice_servers(bound));
        union(futures_util::future::join_all(waits).await)
    }

    /// As [`RelayPool::ice_servers`], without waiting: what the relays answered so far.
    pub fn ice_servers_now(&self) -> Vec<IceServer> {
        union(self.lock().values().map(RelayClient::ice_servers).collect())
    }

    /// How many sessions the pool holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the pool holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The map (it holds only handles, which stay consistent if a holder panicked).
    fn lock(&self) -> MutexGuard<'_, Sessions> {
        crate::sync::lock(&self.sessions)
    }
}

/// The servers of `lists`, each once, in order, at most [`MAX_ICE_SERVERS`].
fn union(lists: Vec<Vec<IceServer>>) -> Vec<IceServer> {
    let mut all: Vec<IceServer> = Vec::new();
    for server in lists.into_iter().flatten() {
        if all.len() < MAX_ICE_SERVERS && !all.contains(&server) {
            all.push(server);
        }
    }
    all
}
