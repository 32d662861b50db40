//! Hosting a lobby.
//!
//! One task (the lobby, `task`) owns the membership (`roster`: slots, players, `session.json`)
//! and the limits on connections (`gate`); one task per connection (`serve`) runs the
//! signalling for that joiner (`crate::lobby::handshake`) and its player's data channels, and
//! reports to the lobby. A connection's failure ends only that connection. The user's
//! commands (`task::HostCommand`) and the connection tasks' reports (`task::Report`) are
//! separate types; friends-only admission is `policy`, chat delivery `chat`, and what the host
//! adds to its endpoint's connections (limits, the router of protocols) `listen`.
//!
//! The host knows no transport: joiners arrive through its [`Endpoint`]'s acceptor, over TCP
//! and through every relay the endpoint listens on (with [`HostNetwork::relay`], a
//! `@hyperswarm/dht-relay` relay where the host listens on its identity key: non-custodial by
//! default, the host runs the Noise handshakes and the relay carries only ciphertext; custodial
//! on request, the relay holds the key and runs them). Every kind ends up as a
//! [`crate::net::Connection`] and is served by the same code.
//!
//! Anyone can connect, so connections that are not players yet are kept cheap and bounded
//! (docs/PROTOCOL.md, "What a host accepts from peers it has not admitted"): a short handshake
//! ([`HANDSHAKE_TIMEOUT`]), small records and buffers ([`MAX_FRAME_BYTES`],
//! [`MAX_UNACCEPTED_BYTES`]), a per-address count ([`MAX_UNADMITTED_PER_ADDRESS`]) and, when
//! all [`MAX_CONNECTIONS`] are taken, eviction from the address holding the most; refusals are
//! counted into one warning per [`REFUSALS_REPORT_INTERVAL`].

mod chat;
mod gate;
mod listen;
mod policy;
mod roster;
mod serve;
mod task;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use tokio::sync::{mpsc, oneshot, watch};

pub use chat::HostChat;
use gate::Gate;
use listen::{advertised, router};
use policy::Policy;
use roster::Roster;
use task::{HostCommand, Inputs, LobbyTask, Report};

use super::HostEvent;
use crate::archive::{self, ArchiveError};
use crate::endpoint::{Endpoint, EndpointError, EndpointOptions};
use crate::home::{Home, HomeError};
use crate::hypercore::Core;
use crate::ice::IceConfig;
use crate::identity::{DatUrl, Identity};
use crate::net::SharedCore;
use crate::relay::client::{ClientOptions, RelayUrl};
use crate::schema::{now_ms, Session};

/// How long a stopping host keeps connections open after writing the ended `session.json`,
/// so that connected readers receive it (a block reaches a live reader in about a millisecond).
const ENDED_GRACE: Duration = Duration::from_millis(200);

/// Shortest [`HostOptions::heartbeat`]: 1 ms (`session.json` states it in whole ms).
pub const MIN_HEARTBEAT: Duration = Duration::from_millis(1);
/// Longest [`HostOptions::heartbeat`]: 1 day.
pub const MAX_HEARTBEAT: Duration = Duration::from_secs(86_400);

/// Most connections served at once (joiners in signalling, readers and players): 1,024.
/// When every one is taken, a new connection from a source holding fewer unadmitted
/// connections than the biggest holder replaces that holder's oldest unadmitted connection
/// (so a flood from a few sources can't keep a player out); otherwise it is refused.
pub const MAX_CONNECTIONS: usize = 1024;

/// Most connections from one source address that are not players (still in the handshake,
/// signalling, or reading the archive): 16. A source is an IPv4 address or an IPv6 /64; a
/// player's connection stops counting once its slot is reserved. More are refused at once.
pub const MAX_UNADMITTED_PER_ADDRESS: usize = 16;

/// Most relayed connections at once that are not players (the relay hides their addresses,
/// so they share one budget): 64.
pub const MAX_UNADMITTED_RELAYED: usize = 64;

/// How long an incoming TCP connection may take to finish the secret-stream handshake: 5 s
/// (a handshake is three small messages; a half-open socket is closed after this).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest secret-stream record the host accepts from a peer, in bytes: 128 KiB (a
/// signalling block of at most 64 KiB, `signal::message::MAX_BLOCK_BYTES`, with its merkle
/// proof; replication requests are tiny). Refused before it is buffered, so an
/// unauthenticated peer makes the host hold at most this plus a 16 KiB read buffer.
pub const MAX_FRAME_BYTES: usize = 128 * 1024;

/// Most bytes the host buffers for channels a peer opened and it did not accept: 64 KiB.
pub const MAX_UNACCEPTED_BYTES: usize = 64 * 1024;

/// Largest record while the host reads a friends-only joiner's archive (a `profile.json` of
/// up to `schema::MAX_FILE_BYTES`, 1 MiB, in one block): 2 MiB.
pub const FRIEND_ARCHIVE_FRAME_BYTES: usize = 2 * 1024 * 1024;

/// Most connections that may use [`FRIEND_ARCHIVE_FRAME_BYTES`] at once: 8 (16 MiB in total);
/// others wait for a turn within their admission timeout.
pub const MAX_FRIEND_ARCHIVE_READS: usize = 8;

/// Period of the one warning that sums up refused, evicted and failed connections: 10 s.
pub const REFUSALS_REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// Most warnings about single connections (a joiner's failure, a refused chat line) per
/// [`REFUSALS_REPORT_INTERVAL`]: 10; the rest are counted into the summary.
pub const MAX_WARNINGS_PER_INTERVAL: u32 = 10;

/// How long [`HostChat::say`] waits for one player's send queue to have room: 10 s.
pub const CHAT_SEND_WAIT: Duration = Duration::from_secs(10);

/// How a lobby is hosted.
#[derive(Clone, Debug)]
pub struct HostOptions {
    /// The lobby's name; `None`: the host's profile name.
    pub name: Option<String>,
    /// Most players (the host not counted), 1 to 256. Default 8.
    pub max_peers: u32,
    /// The password players must know; `None`: an open lobby.
    pub password: Option<Vec<u8>>,
    /// Period of `session.json` heartbeats, [`MIN_HEARTBEAT`] to [`MAX_HEARTBEAT`] (1 ms to
    /// 1 day; the CLI takes whole seconds). Default 300 s.
    pub heartbeat: Duration,
    /// How long a joiner may take from connecting to an open data channel. Default 15 s.
    pub admission_timeout: Duration,
    /// Admit mutual friends only: players the host's `profile.json` lists and whose own
    /// profile (fetched from them while they join) lists the host. Others are rejected with
    /// [`crate::signal::RejectReason::FriendsOnly`]. Default `false`.
    pub friends_only: bool,
    /// STUN/TURN servers of the user's own (`--ice-servers`) and the ICE policy
    /// (`--ice-policy`). The servers the endpoint's relays give are added to these for each
    /// joiner. Default: none of the user's, every path.
    pub ice: IceConfig,
}

/// Where a lobby is reachable: what [`HostNetwork::bind`] builds the host's [`Endpoint`] from
/// (a library user may bind one of their own instead, and share it).
#[derive(Clone, Debug)]
pub struct HostNetwork {
    /// TCP address to listen on, `host:port`. Default `0.0.0.0:0` (every interface, any port).
    pub listen: String,
    /// Also listen through this relay, on the host's identity key. `None` (default): TCP only.
    pub relay: Option<HostRelay>,
    /// Also announce the archive on the local network (multicast DNS, its discovery key and
    /// the TCP port), so that friends looking there find the lobby with no relay or address.
    /// Default `false`.
    pub lan: bool,
}

impl Default for HostNetwork {
    fn default() -> Self {
        HostNetwork {
            listen: "0.0.0.0:0".to_string(),
            relay: None,
            lan: false,
        }
    }
}

impl HostNetwork {
    /// The host's endpoint, as `identity`: TCP on [`HostNetwork::listen`], the relay of
    /// [`HostNetwork::relay`] (custodial or not), announcing on the LAN with
    /// [`HostNetwork::lan`].
    ///
    /// Errors: [`LobbyError::Listen`] (the address is invalid or taken).
    pub async fn bind(&self, identity: Identity) -> Result<Endpoint, LobbyError> {
        let (relays, relay_client) = match &self.relay {
            Some(r) => (
                vec![r.url.clone()],
                ClientOptions {
                    custodial: r.custodial,
                    ..r.client.clone()
                },
            ),
            None => (Vec::new(), ClientOptions::default()),
        };
        let options = EndpointOptions {
            listen: Some(self.listen.clone()),
            relays,
            lan: self.lan,
            relay_client,
        };
        Ok(Endpoint::bind(identity, options).await?)
    }
}

/// Listening through a relay (`host --relay URL [--custodial]`).
#[derive(Clone, Debug)]
pub struct HostRelay {
    /// The relay.
    pub url: RelayUrl,
    /// Hand the relay the host's identity secret key (custodial mode, PROTOCOL.md §4), for
    /// relays that pair only custodial clients (e.g. to be reached by JS clients in their
    /// default custodial mode through our relay). `false` (recommended): non-custodial, the
    /// key stays here. Overrides `client.custodial`.
    pub custodial: bool,
    /// Reconnect and timeout settings of the relay client.
    pub client: ClientOptions,
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions {
            name: None,
            max_peers: 8,
            password: None,
            heartbeat: Duration::from_secs(300),
            admission_timeout: Duration::from_secs(15),
            friends_only: false,
            ice: IceConfig::default(),
        }
    }
}

/// Errors starting or ending a lobby.
#[derive(Debug, thiserror::Error)]
pub enum LobbyError {
    /// The data directory: no identity, a corrupt key, the archive busy or broken.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// Writing `session.json` failed.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The listen address is invalid or cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address given.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The lobby task ended unexpectedly (it panicked or was cancelled); the
    /// [`tokio::task::JoinError`] is the source.
    #[error("the lobby task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// [`HostOptions::heartbeat`] is outside [`MIN_HEARTBEAT`]..=[`MAX_HEARTBEAT`].
    #[error("heartbeat of {0:?} is outside 1 ms to 1 day")]
    Heartbeat(Duration),
    /// The relay can't be used (the relay client stopped before it could listen); the
    /// endpoint's error is the source.
    #[error("relay: {0}")]
    Relay(#[source] EndpointError),
    /// The endpoint has no TCP listener (a host needs one: `EndpointOptions::listen`).
    #[error("the endpoint has no TCP listener; a host needs one")]
    NoListener,
    /// The archive could not be announced on the local network ([`HostNetwork::lan`]).
    #[error(transparent)]
    Lan(#[from] crate::discovery::LookupError),
}

/// Where a running lobby can be found.
#[derive(Clone, Debug)]
pub struct HostingInfo {
    /// The lobby's name.
    pub name: String,
    /// The host's archive URL, `dat://<64 hex>`.
    pub url: String,
    /// The invite link: the archive URL with a `peer=host:port` hint, and `relay=<url>` when
    /// listening through a relay.
    pub invite: String,
    /// The lobby log's URL (`session.json`'s `url`).
    pub lobby: String,
    /// Most players.
    pub max_peers: u32,
    /// The bound TCP address.
    pub listen: SocketAddr,
    /// The relay the host listens through, if any.
    pub relay: Option<String>,
}

/// A running lobby. Drop it only after [`Host::shutdown`], which marks the session ended.
pub struct Host {
    info: HostingInfo,
    events: mpsc::UnboundedReceiver<HostEvent>,
    commands: mpsc::UnboundedSender<HostCommand>,
    reports: mpsc::UnboundedSender<Report>,
    task: tokio::task::JoinHandle<Result<(), LobbyError>>,
}

/// What every connection task needs.
struct Context {
    identity: Identity,
    archive: SharedCore,
    lobby: SharedCore,
    lobby_key: SigningKey,
    password: Option<Vec<u8>>,
    /// Who may join (everyone, or mutual friends).
    policy: Policy,
    /// The user's ICE config and the relay's servers, read for each joiner.
    ice: super::ice::LobbyIce,
    timeout: Duration,
    reports: mpsc::UnboundedSender<Report>,
    shutdown: watch::Receiver<bool>,
}

impl Host {
    /// Starts hosting on `endpoint` (bound as the archive's owner, e.g. by
    /// [`HostNetwork::bind`]): takes the archive's write lock, writes `session.json`, publishes
    /// the archive through the endpoint's lookups and serves joiners arriving through every
    /// listener of the endpoint (TCP, relays) until [`Host::shutdown`]. It does not wait for a
    /// relay (which may be down and come back): [`HostEvent::Relay`] reports its state.
    ///
    /// Errors: [`LobbyError::Heartbeat`], [`LobbyError::NoListener`], [`LobbyError::Home`] (no
    /// identity, archive busy or corrupt), [`LobbyError::Archive`] (an invalid name or
    /// max_peers), [`LobbyError::Relay`] (the endpoint's listeners are taken, or a relay client
    /// stopped at once), [`LobbyError::Lan`].
    pub async fn start(
        home: &Home,
        endpoint: Arc<Endpoint>,
        options: HostOptions,
    ) -> Result<Host, LobbyError> {
        if !(MIN_HEARTBEAT..=MAX_HEARTBEAT).contains(&options.heartbeat) {
            return Err(LobbyError::Heartbeat(options.heartbeat));
        }
        let listen = endpoint.local_addr().ok_or(LobbyError::NoListener)?;
        let identity = endpoint.identity().clone();
        let lock = home.lock_archive()?;
        // The crypto backend's one-time setup, now rather than on the first joiner's path.
        tokio::task::spawn_blocking(crate::rtc::warm_up);
        let core = home.open_archive(&identity)?;
        let profile = archive::read_files(&core)?.profile;
        let profile_name = profile
            .as_ref()
            .map(|p| p.name.clone())
            .unwrap_or_else(|| "lobby".to_string());
        let policy = Policy::new(
            options.friends_only,
            profile.as_ref(),
            identity.url().base(),
        );
        let archive = SharedCore::new(core);
        let lobby_key = SigningKey::generate(&mut rand::rngs::OsRng);
        let lobby = SharedCore::new(Core::in_memory(lobby_key.clone()));
        let name = options.name.clone().unwrap_or(profile_name);
        let session = Session {
            name: name.clone(),
            url: DatUrl::new(lobby.key()).base(),
            last_update: now_ms(),
            peers: 0,
            max_peers: options.max_peers,
            protected: options.password.is_some(),
            heartbeat: Some(options.heartbeat.as_millis() as u64),
            ended: None,
        };
        session.validate().map_err(ArchiveError::from)?;
        write_session(&archive, &session)?;

        let (commands, command_rx) = mpsc::unbounded_channel();
        let (reports, report_rx) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let (shutdown_tx, shutdown) = watch::channel(false);
        let mut invite = identity.url();
        invite.peer = Some(advertised(listen).to_string());
        invite.relay = endpoint.relays().first().map(|r| r.to_string());
        // Joiners holding the invite start signalling on the lobby at once (lobby::join).
        invite.lobby = Some(lobby.key());
        let acceptor = endpoint.acceptor().await?;
        // On the relay (repeated after every reconnect) and, with `lan`, on the local network.
        let publications = endpoint.publish(archive.discovery_key()).await?;
        let info = HostingInfo {
            name,
            url: identity.url().base(),
            invite: invite.to_string(),
            lobby: session.url.clone(),
            max_peers: options.max_peers,
            listen,
            relay: invite.relay.clone(),
        };
        let ctx = Arc::new(Context {
            identity,
            archive: archive.clone(),
            lobby,
            lobby_key,
            password: options.password.clone(),
            policy,
            ice: super::ice::LobbyIce::new(options.ice.clone(), &endpoint),
            timeout: options.admission_timeout,
            reports: reports.clone(),
            shutdown,
        });
        let lobby = LobbyTask {
            router: Arc::new(router(&ctx)),
            ctx,
            roster: Roster::new(session),
            events: events_tx,
            gate: Gate::default(),
            session_unsaved: false,
            _lock: lock,
        };
        let task = tokio::spawn(lobby.run(Inputs {
            endpoint,
            acceptor,
            publications,
            commands: command_rx,
            reports: report_rx,
            shutdown: shutdown_tx,
            heartbeat: options.heartbeat,
        }));
        Ok(Host {
            info,
            events,
            commands,
            reports,
            task,
        })
    }

    /// Where the lobby is.
    pub fn info(&self) -> HostingInfo {
        self.info.clone()
    }

    /// The next lobby event; `None` once the lobby has ended.
    pub async fn next_event(&mut self) -> Option<HostEvent> {
        self.events.recv().await
    }

    /// Sends the host's chat line to every player without waiting: a line longer than
    /// [`super::MAX_CHAT_BYTES`] is refused, and a player whose send queue is full misses it; both
    /// are reported as [`HostEvent::Warning`]. [`Host::chat`] waits for room instead.
    pub fn say(&self, text: &str) {
        let _ = self.commands.send(HostCommand::Say {
            text: text.to_string(),
        });
    }

    /// A handle that sends the host's chat lines from any task, with back-pressure (see
    /// [`HostChat::say`]).
    pub fn chat(&self) -> HostChat {
        HostChat {
            commands: self.commands.clone(),
            reports: self.reports.clone(),
        }
    }

    /// Sends game bytes on the data channel labelled `label` of player `to` (a `dat://`
    /// identity URL as in [`HostEvent::PeerJoined`]), or of every player when `to` is `None`.
    /// Players open such channels with [`super::Joined::open_channel`]; a player without one
    /// is skipped. Delivery follows the channel's reliability (an unreliable channel may drop).
    pub fn send(&self, to: Option<&str>, label: &str, data: &[u8]) {
        let _ = self.commands.send(HostCommand::Send {
            to: to.map(str::to_string),
            label: label.to_string(),
            data: data.to_vec(),
        });
    }

    /// Ends the lobby: closes every player's data channel and connection, and writes
    /// `session.json` with `ended` set. Errors: the final write failed.
    pub async fn shutdown(self) -> Result<(), LobbyError> {
        let (tx, rx) = oneshot::channel();
        let _ = self.commands.send(HostCommand::Shutdown { done: tx });
        let _ = rx.await;
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(LobbyError::Task(e)),
        }
    }
}

fn write_session(archive: &SharedCore, session: &Session) -> Result<(), ArchiveError> {
    archive.with_core(|core| archive::put_session(core, session).map(|_| ()))
}

impl From<EndpointError> for LobbyError {
    fn from(e: EndpointError) -> Self {
        match e {
            EndpointError::Listen { addr, source } => LobbyError::Listen { addr, source },
            other => LobbyError::Relay(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use super::*;

    #[test]
    fn an_endpoint_error_stays_the_source_of_a_lobby_error() {
        let err = LobbyError::from(EndpointError::AcceptorTaken);
        assert!(matches!(err, LobbyError::Relay(_)), "{err:?}");
        let source = err.source().expect("a source");
        assert!(matches!(
            source.downcast_ref::<EndpointError>(),
            Some(EndpointError::AcceptorTaken)
        ));
        // A bind failure is still its own variant, with the OS error as its source.
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "in use");
        let err = LobbyError::from(EndpointError::Listen {
            addr: "127.0.0.1:1".into(),
            source: io,
        });
        let LobbyError::Listen { addr, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(addr, "127.0.0.1:1");
        let io = err
            .source()
            .and_then(|e| e.downcast_ref::<std::io::Error>());
        assert_eq!(io.map(|e| e.kind()), Some(std::io::ErrorKind::AddrInUse));
    }

    #[tokio::test]
    async fn a_panicked_lobby_task_is_a_task_error_with_its_join_error() {
        let join = tokio::spawn(async { panic!("boom") }).await.unwrap_err();
        let err = LobbyError::Task(join);
        let source = err.source().expect("a source");
        let join = source
            .downcast_ref::<tokio::task::JoinError>()
            .expect("a JoinError");
        assert!(join.is_panic());
    }
}
