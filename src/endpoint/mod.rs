//! The front door to the network: an [`Endpoint`] owns an identity, its TCP listener, one relay
//! session per relay URL (shared by listening, connecting, announcing and lookups) and the
//! address lookups ([`crate::discovery`]: hints, LAN, relays; the DHT will be one more).
//!
//! - [`Endpoint::connect`] reaches the owner of a key: it resolves routes through every lookup
//!   and tries them, best first, until one authenticates as that key.
//! - [`Endpoint::acceptor`] yields the connections others open to us, over TCP and through every
//!   relay, before their handshake (so that a server can count them per source first); see
//!   [`Incoming`].
//! - [`Endpoint::publish`] makes an archive findable on the LAN and the relays.
//! - A [`Router`] serves each accepted connection: the channels the remote opens go to the
//!   [`ProtocolHandler`] of their protomux protocol ([`ArchiveServer`] for `hypercore/alpha`,
//!   the lobby host for `dat-social/lobby`).
//!
//! ```no_run
//! # async fn demo(identity: dat_social::identity::Identity, friend: dat_social::keys::IdentityKey) -> Result<(), Box<dyn std::error::Error>> {
//! use dat_social::endpoint::{Endpoint, EndpointOptions};
//! let endpoint = Endpoint::bind(identity, EndpointOptions {
//!     relays: vec!["ws://relay.example:49443".parse()?],
//!     ..EndpointOptions::default()
//! }).await?;
//! let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
//! let connected = endpoint.connect(friend, &Default::default(), deadline).await?;
//! println!("reached along {}", connected.route.address());
//! # Ok(()) }
//! ```

mod accept;
mod archive_server;
pub(crate) mod dial;
mod router;

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use tokio::net::TcpListener;
use tokio::time::Instant;

pub use accept::{Accepted, Acceptor, Incoming};
pub use archive_server::ArchiveServer;
pub use router::{
    HandlerTask, Inbound, ProtocolHandler, RouteError, Router, MAX_UNROUTED_CHANNELS,
};

use crate::discovery::{
    default_lookups, Discovery, Hints, LookupError, Publication, Record, RelayPool,
};
use crate::ice::IceServer;
use crate::identity::Identity;
use crate::keys::{DiscoveryKey, IdentityKey};
use crate::net::Connection;
use crate::relay::client::{ClientOptions, RelayClient, RelayUrl};
use crate::remote::{ReachError, RemoteError, Route};

/// Longest [`Endpoint::ice_servers`] waits for a relay's first answer: 500 ms (a relay answers
/// one round trip after its session opens; a relay that does not serve ICE refuses at once).
pub const ICE_SERVERS_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// How an [`Endpoint`] reaches and is reached.
#[derive(Clone, Debug, Default)]
pub struct EndpointOptions {
    /// The TCP address to accept connections on (`host:port`; port 0 picks a free one). `None`:
    /// no TCP listener (an endpoint that only connects out, or only through relays).
    pub listen: Option<String>,
    /// Relays to listen on (once [`Endpoint::acceptor`] is called), to publish on and to look
    /// users up on. Users' hinted relays are looked up as well.
    pub relays: Vec<RelayUrl>,
    /// Also look up and publish on the local network with multicast DNS.
    pub lan: bool,
    /// Options of every relay session (custodial or not, TLS roots, reconnect back-off).
    pub relay_client: ClientOptions,
}

/// Errors setting an endpoint up.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The TCP listener could not be bound (address in use, no permission, not an address).
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// [`Endpoint::acceptor`] was called twice: the listeners have one owner.
    #[error("the endpoint's listeners are already taken")]
    AcceptorTaken,
    /// A relay client stopped before it could listen.
    #[error("cannot listen through {url}: {source}")]
    RelayListen {
        /// The relay.
        url: String,
        /// What the relay client reported.
        #[source]
        source: crate::relay::client::RelayClientError,
    },
}

/// A connection [`Endpoint::connect`] opened, authenticated as the key asked for.
#[derive(Debug)]
pub struct Connected {
    /// The connection (secret-stream over TCP or a relayed stream).
    pub connection: Connection,
    /// The local IP address the connection runs from (where WebRTC should bind to reach the
    /// same peer).
    pub local_ip: IpAddr,
    /// The route that worked.
    pub route: Route,
}

/// The front door (see the module docs). Cheap to share behind an `Arc`; dropping it closes the
/// relay sessions that nothing else holds.
pub struct Endpoint {
    identity: Identity,
    options: EndpointOptions,
    discovery: Discovery,
    local_addr: Option<SocketAddr>,
    /// The TCP listener (if any) until [`Endpoint::acceptor`] takes it; `None` once taken, so
    /// that a relay-only endpoint cannot listen twice either.
    listener: Mutex<Option<Option<TcpListener>>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("key", &hex::encode(self.identity.public_key()))
            .field("local_addr", &self.local_addr)
            .field("discovery", &self.discovery)
            .finish()
    }
}

impl Endpoint {
    /// Binds the TCP listener (if [`EndpointOptions::listen`]) and prepares the lookups. Relay
    /// sessions start when first used. Requires a tokio runtime.
    ///
    /// Errors: [`EndpointError::Listen`].
    pub async fn bind(identity: Identity, options: EndpointOptions) -> Result<Self, EndpointError> {
        let listener = match &options.listen {
            Some(addr) => {
                let listen = |source| EndpointError::Listen {
                    addr: addr.clone(),
                    source,
                };
                let listener = TcpListener::bind(addr).await.map_err(listen)?;
                Some(listener)
            }
            None => None,
        };
        let local_addr = match &listener {
            Some(l) => Some(l.local_addr().map_err(|source| EndpointError::Listen {
                addr: options.listen.clone().unwrap_or_default(),
                source,
            })?),
            None => None,
        };
        Ok(Endpoint::assemble(identity, options, listener, local_addr))
    }

    /// An endpoint that only dials out: no listener, no configured relay, no LAN (relay routes
    /// still go through a session of its own per relay). Needs no runtime until used.
    pub fn dialer(identity: Identity) -> Self {
        Endpoint::assemble(identity, EndpointOptions::default(), None, None)
    }

    /// The endpoint over an already bound `listener` (bound to `local_addr`).
    fn assemble(
        identity: Identity,
        options: EndpointOptions,
        listener: Option<TcpListener>,
        local_addr: Option<SocketAddr>,
    ) -> Self {
        let pool = RelayPool::new(options.relay_client.clone());
        let lookups = default_lookups(
            pool.clone(),
            options.relays.clone(),
            options.lan,
            Some(identity.signing_key().clone()),
        );
        Endpoint {
            identity,
            discovery: Discovery::with_lookups(pool, lookups),
            options,
            local_addr,
            listener: Mutex::new(Some(listener)),
        }
    }

    /// The identity the endpoint authenticates as.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The address the TCP listener is bound to, if there is one.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The relays the endpoint listens and publishes on ([`EndpointOptions::relays`]).
    pub fn relays(&self) -> &[RelayUrl] {
        &self.options.relays
    }

    /// The lookups and relay sessions, e.g. to reach along a route chosen elsewhere
    /// ([`Discovery::reach`]).
    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    /// The endpoint's session to the relay at `url` (started if needed), with its identity key.
    pub fn relay(&self, url: &RelayUrl) -> RelayClient {
        self.discovery
            .pool()
            .session(url, self.identity.signing_key())
    }

    /// The STUN/TURN servers (with short-lived TURN credentials) the endpoint's relay sessions
    /// got from their relays, each once, at most [`crate::ice::server::MAX_ICE_SERVERS`]: what WebRTC
    /// should gather candidates from. Waits up to [`ICE_SERVERS_WAIT`] for a session that has
    /// not had its relay's first answer yet. Empty without relay sessions, or when no relay
    /// gives any (the JS relay; ours without `--ice-url`).
    pub async fn ice_servers(&self) -> Vec<IceServer> {
        self.discovery.pool().ice_servers(ICE_SERVERS_WAIT).await
    }

    /// As [`Endpoint::ice_servers`], without waiting: what the relays have answered so far.
    pub fn ice_servers_now(&self) -> Vec<IceServer> {
        self.discovery.pool().ice_servers_now()
    }

    /// Takes the listeners: the TCP listener, and a `listen` on every configured relay. Once
    /// only.
    ///
    /// Errors: [`EndpointError::AcceptorTaken`]; [`EndpointError::RelayListen`] if a relay
    /// client has stopped.
    pub async fn acceptor(&self) -> Result<Acceptor, EndpointError> {
        let tcp = crate::sync::lock(&self.listener)
            .take()
            .ok_or(EndpointError::AcceptorTaken)?;
        let mut relays = Vec::new();
        for url in &self.options.relays {
            let client = self.relay(url);
            let listener = client
                .listen()
                .await
                .map_err(|source| EndpointError::RelayListen {
                    url: url.to_string(),
                    source,
                })?;
            relays.push((client, listener));
        }
        Ok(Acceptor::new(tcp, relays))
    }

    /// Publishes the archive with `discovery_key`: on the relays (`announce`, repeated on every
    /// new relay session) and, with [`EndpointOptions::lan`] and a TCP listener, on the LAN.
    /// Keep the publications; dropping one withdraws a LAN announcement.
    ///
    /// Errors: [`LookupError`] when multicast DNS cannot announce (a relay that is down now is
    /// not an error: the announcement goes out when it is back).
    pub async fn publish(
        &self,
        discovery_key: DiscoveryKey,
    ) -> Result<Vec<Publication>, LookupError> {
        let record = Record {
            discovery_key,
            tcp_port: self.local_addr.map(|a| a.port()),
        };
        self.discovery.publish(&record).await
    }

    /// The candidate routes to the owner of `key`, best first, from every lookup (`hints` are
    /// the addresses seen before); see [`Discovery::routes`]. Never fails: a lookup that errs
    /// adds nothing.
    pub async fn routes(&self, key: IdentityKey, hints: &Hints) -> Vec<Route> {
        self.discovery.routes(key, hints).await
    }

    /// Reaches the owner of `key`: resolves routes through every lookup (`hints` are the
    /// addresses seen before) and tries them in order until one authenticates as `key`.
    ///
    /// Errors: [`RemoteError::Unreachable`] when no route was found ([`ReachError::NoRoute`]) or
    /// none worked (the last route's reason, every route's in the log), or `deadline` passed;
    /// [`RemoteError::WrongPeer`] when the only route that answered was someone else.
    pub async fn connect(
        &self,
        key: IdentityKey,
        hints: &Hints,
        deadline: Instant,
    ) -> Result<Connected, RemoteError> {
        let routes = self.routes(key, hints).await;
        let mut last = None;
        for route in routes {
            match self.reach(&route, key, deadline).await {
                Ok(connected) => return Ok(connected),
                Err(e) => {
                    tracing::debug!("{}: {e}", route.address());
                    last = Some(e);
                }
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        Err(last.unwrap_or_else(|| RemoteError::Unreachable {
            addr: crate::identity::DatUrl::new(key).base(),
            source: ReachError::NoRoute,
        }))
    }

    /// Reaches the owner of `key` along `route` (through the shared relay session for relay
    /// routes).
    ///
    /// Errors: as [`Discovery::reach`].
    pub async fn reach(
        &self,
        route: &Route,
        key: IdentityKey,
        deadline: Instant,
    ) -> Result<Connected, RemoteError> {
        let (connection, local_ip) = self
            .discovery
            .reach(&self.identity, route, key, deadline)
            .await?;
        Ok(Connected {
            connection,
            local_ip,
            route: route.clone(),
        })
    }
}
