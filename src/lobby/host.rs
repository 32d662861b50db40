//! Hosting a lobby.
//!
//! One task (the lobby) owns the membership and `session.json`; one task per connection runs
//! the signalling for that joiner (`serve`) and reports to the lobby. A connection's failure
//! ends only that connection.
//!
//! Joiners arrive over TCP (always) and, with [`HostOptions::relay`], through a
//! `@hyperswarm/dht-relay` relay where the host listens on its identity key (non-custodial by
//! default: the host runs the Noise handshakes and the relay carries only ciphertext; custodial
//! on request: the relay holds the key and runs them). Both kinds end up as a
//! [`Connection`] and are served by the same code.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use super::{
    rtc_config_for, ChatIn, ChatOut, Hello, LobbyEvent, CHAT_LABEL, LOBBY_PROTOCOL, MAX_CHAT_BYTES,
};
use crate::archive::{self, ArchiveError};
use crate::home::{ArchiveLock, Home, HomeError};
use crate::hypercore::Core;
use crate::identity::{DatUrl, Identity};
use crate::net::{Connection, ConnectionConfig, ConnectionEvent, NetError, SharedCore};
use crate::relay::client::{
    ClientOptions, Listener, RelayClient, RelayState, RelayStream, RelayUrl,
};
use crate::rtc::{self, ChannelId, RtcEvent, RtcSender};
use crate::schema::{now_ms, Session};
use crate::signal::message::{unb64, verify_offer};
use crate::signal::{pake, RejectReason, Signal, SignalError};

/// How long a stopping host keeps connections open after writing the ended `session.json`,
/// so that connected readers receive it (a block reaches a live reader in about a millisecond).
const ENDED_GRACE: Duration = Duration::from_millis(200);

/// Most connections served at once (joiners in signalling plus players).
pub const MAX_CONNECTIONS: usize = 1024;

/// How a lobby is hosted.
#[derive(Clone, Debug)]
pub struct HostOptions {
    /// The lobby's name; `None`: the host's profile name.
    pub name: Option<String>,
    /// Most players (the host not counted), 1 to 256. Default 8.
    pub max_peers: u32,
    /// The password players must know; `None`: an open lobby.
    pub password: Option<Vec<u8>>,
    /// TCP address to listen on, `host:port`. Default `0.0.0.0:0` (every interface, any port).
    pub listen: String,
    /// Period of `session.json` heartbeats. Default 300 s.
    pub heartbeat: Duration,
    /// How long a joiner may take from connecting to an open data channel. Default 15 s.
    pub admission_timeout: Duration,
    /// Also listen through this relay, on the host's identity key. `None` (default): TCP only.
    pub relay: Option<HostRelay>,
    /// Admit mutual friends only: players the host's `profile.json` lists and whose own
    /// profile (fetched from them while they join) lists the host. Others are rejected with
    /// [`RejectReason::FriendsOnly`]. Default `false`.
    pub friends_only: bool,
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
            listen: "0.0.0.0:0".to_string(),
            heartbeat: Duration::from_secs(300),
            admission_timeout: Duration::from_secs(15),
            friends_only: false,
            relay: None,
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
    /// The lobby task ended unexpectedly.
    #[error("the lobby task failed: {0}")]
    Task(String),
    /// The relay can't be used (the relay client stopped).
    #[error("relay: {0}")]
    Relay(String),
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
    events: mpsc::UnboundedReceiver<LobbyEvent>,
    commands: mpsc::UnboundedSender<Command>,
    task: tokio::task::JoinHandle<Result<(), LobbyError>>,
}

/// What connection tasks and the user tell the lobby task.
enum Command {
    /// May one more joiner start its data channel? Reserves a slot when yes.
    Admit(oneshot::Sender<bool>),
    /// A reserved slot is not needed after all.
    Release,
    /// A player's data channel opened (its reserved slot becomes a player).
    Joined(Player),
    /// A player's data channel closed.
    Left(u64),
    /// Chat from a player.
    Chat(u64, String),
    /// A joiner was turned away.
    Rejected(String, RejectReason),
    /// A connection failed.
    Warning(String),
    /// The host's own chat line.
    Say(String),
    /// A player opened another data channel.
    Channel(u64, String, ChannelId),
    /// A message on a player's other data channel: (player, label, bytes).
    Data(u64, String, Vec<u8>),
    /// Game data from the host to one player (by URL) or all, on channels with this label.
    Send(Option<String>, String, Vec<u8>),
    /// End the lobby.
    Shutdown(oneshot::Sender<()>),
}

struct Player {
    id: u64,
    url: String,
    name: String,
    sender: RtcSender,
    channel: ChannelId,
    /// The player's other data channels by label (e.g. [`super::GAME_LABEL`]).
    channels: HashMap<String, ChannelId>,
}

/// What every connection task needs.
struct Context {
    identity: Identity,
    archive: SharedCore,
    lobby: SharedCore,
    lobby_key: SigningKey,
    password: Option<Vec<u8>>,
    /// With `friends_only`: the keys the host's profile lists; `None`: everyone may join.
    friends_only: Option<HashSet<[u8; 32]>>,
    timeout: Duration,
    commands: mpsc::UnboundedSender<Command>,
    shutdown: watch::Receiver<bool>,
}

impl Host {
    /// Starts hosting: takes the archive's write lock, binds `options.listen`, writes
    /// `session.json`, and serves joiners until [`Host::shutdown`].
    ///
    /// With [`HostOptions::relay`] it also listens through the relay; it does not wait for the
    /// relay (which may be down and come back): [`LobbyEvent::Relay`] reports its state.
    ///
    /// Errors: [`LobbyError::Home`] (no identity, archive busy or corrupt),
    /// [`LobbyError::Listen`], [`LobbyError::Archive`] (an invalid name or max_peers),
    /// [`LobbyError::Relay`] (the relay client stopped at once).
    pub async fn start(
        home: &Home,
        identity: Identity,
        options: HostOptions,
    ) -> Result<Host, LobbyError> {
        let lock = home.lock_archive()?;
        // The crypto backend's one-time setup, now rather than on the first joiner's path.
        tokio::task::spawn_blocking(crate::rtc::warm_up);
        let core = home.open_archive(&identity)?;
        let profile = archive::read_files(&core)?.profile;
        let profile_name = profile
            .as_ref()
            .map(|p| p.name.clone())
            .unwrap_or_else(|| "lobby".to_string());
        let friends_only = options.friends_only.then(|| {
            let friends = profile.map(|p| p.friends).unwrap_or_default();
            friends
                .iter()
                .filter_map(|f| f.parse::<DatUrl>().ok().map(|u| u.key))
                .collect::<HashSet<_>>()
        });
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
        let listener =
            TcpListener::bind(&options.listen)
                .await
                .map_err(|source| LobbyError::Listen {
                    addr: options.listen.clone(),
                    source,
                })?;
        let listen = listener.local_addr().map_err(|source| LobbyError::Listen {
            addr: options.listen.clone(),
            source,
        })?;
        write_session(&archive, &session)?;

        let (commands, command_rx) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let (shutdown_tx, shutdown) = watch::channel(false);
        let mut invite = identity.url();
        invite.peer = Some(advertised(listen).to_string());
        invite.relay = options.relay.as_ref().map(|r| r.url.to_string());
        let relay = match &options.relay {
            Some(r) => {
                let client = RelayClient::start(
                    r.url.clone(),
                    identity.signing_key().clone(),
                    ClientOptions {
                        custodial: r.custodial,
                        ..r.client.clone()
                    },
                );
                let listener = client
                    .listen()
                    .await
                    .map_err(|e| LobbyError::Relay(e.to_string()))?;
                announce_archive(&client, archive.discovery_key());
                Some((client, listener))
            }
            None => None,
        };
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
            friends_only,
            timeout: options.admission_timeout,
            commands: commands.clone(),
            shutdown,
        });
        let state = State {
            ctx: ctx.clone(),
            session,
            players: HashMap::new(),
            reserved: 0,
            events: events_tx,
            _lock: lock,
        };
        let task =
            tokio::spawn(state.run(listener, relay, command_rx, shutdown_tx, options.heartbeat));
        Ok(Host {
            info,
            events,
            commands,
            task,
        })
    }

    /// Where the lobby is.
    pub fn info(&self) -> HostingInfo {
        self.info.clone()
    }

    /// The next lobby event; `None` once the lobby has ended.
    pub async fn next_event(&mut self) -> Option<LobbyEvent> {
        self.events.recv().await
    }

    /// Sends the host's chat line to every player.
    pub fn say(&self, text: &str) {
        let _ = self.commands.send(Command::Say(text.to_string()));
    }

    /// Sends game bytes on the data channel labelled `label` of player `to` (a `dat://`
    /// identity URL as in [`LobbyEvent::PeerJoined`]), or of every player when `to` is `None`.
    /// Players open such channels with [`super::Joined::open_channel`]; a player without one
    /// is skipped. Delivery follows the channel's reliability (an unreliable channel may drop).
    pub fn send(&self, to: Option<&str>, label: &str, data: &[u8]) {
        let _ = self.commands.send(Command::Send(
            to.map(str::to_string),
            label.to_string(),
            data.to_vec(),
        ));
    }

    /// Ends the lobby: closes every player's data channel and connection, and writes
    /// `session.json` with `ended` set. Errors: the final write failed.
    pub async fn shutdown(self) -> Result<(), LobbyError> {
        let (tx, rx) = oneshot::channel();
        let _ = self.commands.send(Command::Shutdown(tx));
        let _ = rx.await;
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(LobbyError::Task(e.to_string())),
        }
    }
}

/// The address to put in invites: the bound one, or for `0.0.0.0` a local interface address
/// (the first non-loopback IPv4 one, else loopback).
fn advertised(listen: SocketAddr) -> SocketAddr {
    if !listen.ip().is_unspecified() {
        return listen;
    }
    let ip = if_addrs::get_if_addrs()
        .ok()
        .and_then(|ifs| {
            ifs.into_iter()
                .map(|i| i.ip())
                .find(|ip| ip.is_ipv4() && !ip.is_loopback())
        })
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    SocketAddr::new(ip, listen.port())
}

fn write_session(archive: &SharedCore, session: &Session) -> Result<(), ArchiveError> {
    archive.with_core(|core| archive::put_session(core, session).map(|_| ()))
}

/// The lobby task's state.
struct State {
    ctx: Arc<Context>,
    session: Session,
    players: HashMap<u64, Player>,
    reserved: u32,
    events: mpsc::UnboundedSender<LobbyEvent>,
    _lock: ArchiveLock,
}

impl State {
    async fn run(
        mut self,
        listener: TcpListener,
        relay: Option<(RelayClient, Listener)>,
        mut commands: mpsc::UnboundedReceiver<Command>,
        shutdown: watch::Sender<bool>,
        heartbeat: Duration,
    ) -> Result<(), LobbyError> {
        let mut connections = JoinSet::new();
        let mut next_id = 0u64;
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        let (relay_url, mut relay_state, mut relay_listener) = match relay {
            Some((client, listener)) => (
                client.url().to_string(),
                Some(client.state()),
                Some(listener),
            ),
            None => (String::new(), None, None),
        };
        let done = loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((tcp, addr)) if connections.len() < MAX_CONNECTIONS => {
                        next_id += 1;
                        connections.spawn(serve(self.ctx.clone(), next_id, Incoming::Tcp(tcp, addr)));
                    }
                    Ok((_, addr)) => self.warn(format!("refused {addr}: {MAX_CONNECTIONS} connections open")),
                    Err(e) => self.warn(format!("accept failed: {e}")),
                },
                stream = accept_relayed(&mut relay_listener) => match stream {
                    Some(stream) if connections.len() < MAX_CONNECTIONS => {
                        next_id += 1;
                        connections.spawn(serve(self.ctx.clone(), next_id, Incoming::Relay(stream)));
                    }
                    // Dropping the stream destroys it at the relay.
                    Some(_) => self.warn(format!("refused a relayed connection: {MAX_CONNECTIONS} connections open")),
                    None => {
                        self.warn(format!("the relay client for {relay_url} stopped"));
                        relay_listener = None;
                    }
                },
                changed = relay_changed(&mut relay_state) => match changed {
                    Some(state) if state != RelayState::Connecting => {
                        self.emit(LobbyEvent::Relay { url: relay_url.clone(), state });
                    }
                    Some(_) => {}
                    None => relay_state = None,
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                _ = ticker.tick() => self.publish()?,
                command = commands.recv() => match command {
                    Some(Command::Shutdown(done)) => break Some(done),
                    Some(command) => self.handle(command)?,
                    None => break None,
                },
            }
        };
        // Mark the session ended first, while readers are still connected, and give live
        // replication a moment to carry that block to them before the connections close.
        self.session.ended = Some(now_ms());
        self.session.peers = 0;
        self.session.last_update = now_ms();
        let written = write_session(&self.ctx.archive, &self.session);
        tokio::time::sleep(ENDED_GRACE).await;
        // Then tell every connection task to close its data channel and connection, and wait a
        // little for them so that players see a clean close rather than a timeout.
        let _ = shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        connections.abort_all();
        written?;
        if let Some(done) = done {
            let _ = done.send(());
        }
        Ok(())
    }

    fn handle(&mut self, command: Command) -> Result<(), LobbyError> {
        match command {
            Command::Admit(reply) => {
                let free = (self.players.len() as u32 + self.reserved) < self.session.max_peers;
                if free {
                    self.reserved += 1;
                }
                let _ = reply.send(free);
            }
            Command::Release => self.reserved = self.reserved.saturating_sub(1),
            Command::Joined(player) => {
                self.reserved = self.reserved.saturating_sub(1);
                let (url, name) = (player.url.clone(), player.name.clone());
                self.players.insert(player.id, player);
                self.publish()?;
                self.emit(LobbyEvent::PeerJoined {
                    peer: url,
                    name,
                    peers: self.players.len() as u32,
                });
            }
            Command::Left(id) => {
                if let Some(player) = self.players.remove(&id) {
                    self.publish()?;
                    self.emit(LobbyEvent::PeerLeft {
                        peer: player.url,
                        name: player.name,
                        peers: self.players.len() as u32,
                    });
                }
            }
            Command::Chat(id, text) => {
                if let Some(player) = self.players.get(&id) {
                    let (url, name) = (player.url.clone(), player.name.clone());
                    self.broadcast(Some(id), &url, &name, &text);
                }
            }
            Command::Say(text) => {
                let url = self.ctx.identity.url().base();
                let name = self.session.name.clone();
                self.broadcast(None, &url, &name, &text);
            }
            Command::Channel(id, label, channel) => {
                if let Some(player) = self.players.get_mut(&id) {
                    player.channels.insert(label, channel);
                }
            }
            Command::Data(id, label, data) => {
                if let Some(player) = self.players.get(&id) {
                    self.emit(LobbyEvent::Data {
                        from: player.url.clone(),
                        label,
                        data,
                    });
                }
            }
            Command::Send(to, label, data) => {
                let targets = self
                    .players
                    .values()
                    .filter(|p| to.as_deref().is_none_or(|url| url == p.url));
                for player in targets {
                    if let Some(channel) = player.channels.get(&label) {
                        if let Err(e) = player.sender.send(*channel, &data) {
                            tracing::debug!(player = %player.url, "game data not sent: {e}");
                        }
                    }
                }
            }
            Command::Rejected(peer, reason) => self.emit(LobbyEvent::Rejected { peer, reason }),
            Command::Warning(message) => self.warn(message),
            Command::Shutdown(_) => unreachable!("handled by run"),
        }
        Ok(())
    }

    /// Shows chat to the host and passes it to every player but its sender.
    fn broadcast(&mut self, sender: Option<u64>, from: &str, name: &str, text: &str) {
        let line = serde_json::to_string(&ChatOut {
            from: from.to_string(),
            name: name.to_string(),
            text: text.to_string(),
        })
        .expect("chat serializes");
        for (id, player) in &self.players {
            if Some(*id) != sender {
                if let Err(e) = player.sender.send_text(player.channel, &line) {
                    tracing::warn!(player = %player.url, "chat not delivered: {e}");
                }
            }
        }
        if sender.is_some() {
            self.emit(LobbyEvent::Message {
                from: from.to_string(),
                name: name.to_string(),
                text: text.to_string(),
            });
        }
    }

    /// Rewrites `session.json` with the current player count and a fresh heartbeat.
    fn publish(&mut self) -> Result<(), LobbyError> {
        self.session.peers = self.players.len() as u32;
        self.session.last_update = now_ms();
        write_session(&self.ctx.archive, &self.session)?;
        Ok(())
    }

    fn emit(&self, event: LobbyEvent) {
        let _ = self.events.send(event);
    }

    fn warn(&self, message: String) {
        tracing::warn!("{message}");
        self.emit(LobbyEvent::Warning { message });
    }
}

/// Why a connection ended before its player joined.
#[derive(Debug, thiserror::Error)]
enum ServeError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Signal(#[from] SignalError),
    #[error(transparent)]
    Core(#[from] crate::hypercore::Error),
    #[error(transparent)]
    Rtc(#[from] rtc::RtcError),
    #[error("{0}")]
    Protocol(String),
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("turned away: {}", .0.as_str())]
    Rejected(RejectReason),
    #[error("the lobby is ending")]
    Ending,
}

/// Announces the archive's discovery key on the relay, so that friends find the host by
/// `lookup` (docs/FRIENDS.md). The client re-announces after every reconnect; a failure now (the
/// relay is down) is logged, not fatal.
fn announce_archive(client: &RelayClient, discovery_key: [u8; 32]) {
    let client = client.clone();
    tokio::spawn(async move {
        if let Err(e) = client
            .announce(discovery_key, Duration::from_secs(10))
            .await
        {
            tracing::debug!("announcing the archive on the relay: {e}");
        }
    });
}

/// The next relayed connection; pending forever without a relay.
async fn accept_relayed(listener: &mut Option<Listener>) -> Option<RelayStream> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// The relay client's next state; pending forever without a relay, `None` once it stopped.
async fn relay_changed(state: &mut Option<watch::Receiver<RelayState>>) -> Option<RelayState> {
    match state {
        Some(rx) => match rx.changed().await {
            Ok(()) => Some(rx.borrow_and_update().clone()),
            Err(_) => None,
        },
        None => std::future::pending().await,
    }
}

/// A joiner's transport, before the [`Connection`] is up.
enum Incoming {
    /// A TCP socket: we run the secret-stream handshake.
    Tcp(TcpStream, SocketAddr),
    /// A relayed stream (our own IK handshake and secret-stream, or the relay's when custodial).
    Relay(RelayStream),
}

impl Incoming {
    /// Who connected, for warnings: the TCP address, or `relay:<remote key hex>`.
    fn label(&self) -> String {
        match self {
            Incoming::Tcp(_, addr) => addr.to_string(),
            Incoming::Relay(s) => format!("relay:{}", hex::encode(s.remote_public_key())),
        }
    }

    /// The connection, and the local IP address where WebRTC should bind to reach the peer.
    async fn connect(self, ctx: &Context) -> Result<(Connection, std::net::IpAddr), ServeError> {
        match self {
            Incoming::Tcp(tcp, _) => {
                let _ = tcp.set_nodelay(true);
                let local_ip = tcp.local_addr().map(|a| a.ip()).map_err(NetError::Io)?;
                let conn = Connection::connect(tcp, ctx.identity.signing_key(), false).await?;
                Ok((conn, local_ip))
            }
            Incoming::Relay(stream) => {
                let local_ip = stream.local_ip();
                Ok((
                    stream.into_connection(ConnectionConfig::default()),
                    local_ip,
                ))
            }
        }
    }
}

/// Serves one connection: signalling, then the player's data channel until it closes.
async fn serve(ctx: Arc<Context>, id: u64, incoming: Incoming) {
    let mut shutdown = ctx.shutdown.clone();
    let label = incoming.label();
    let result = tokio::select! {
        r = serve_inner(&ctx, id, incoming, &label) => r,
        _ = shutdown.wait_for(|s| *s) => Err(ServeError::Ending),
    };
    match result {
        Ok(()) | Err(ServeError::Ending) | Err(ServeError::Rejected(_)) => {}
        Err(e) => {
            let _ = ctx
                .commands
                .send(Command::Warning(format!("connection from {label}: {e}")));
        }
    }
}

async fn serve_inner(
    ctx: &Arc<Context>,
    id: u64,
    incoming: Incoming,
    label: &str,
) -> Result<(), ServeError> {
    let (conn, local_ip) = incoming.connect(ctx).await?;
    serve_connection(ctx, id, conn, local_ip, label).await
}

/// The lobby's side of one joiner or reader on an authenticated connection, whatever carries
/// it (TCP or a relay).
async fn serve_connection(
    ctx: &Arc<Context>,
    id: u64,
    conn: Connection,
    local_ip: std::net::IpAddr,
    label: &str,
) -> Result<(), ServeError> {
    conn.replicate(ctx.archive.clone()).await?;
    conn.replicate(ctx.lobby.clone()).await?;
    // A joiner opens the lobby channel; a peer that never does is a reader (a friend following
    // the archive, a JS hypercore) and keeps replicating the archive until it goes. The host
    // opens its side only then, so that readers never see a protocol they don't speak.
    let lobby_pub = ctx.lobby.key();
    let mut events = conn
        .take_events()
        .ok_or(ServeError::Net(NetError::Closed))?;
    loop {
        match events.recv().await {
            Some(ConnectionEvent::RemoteOpen(key))
                if key.protocol == LOBBY_PROTOCOL && key.id.as_deref() == Some(&lobby_pub[..]) =>
            {
                break
            }
            Some(_) => {}
            None => return Ok(()),
        }
    }
    let mut channel = conn
        .open_app_channel(LOBBY_PROTOCOL, Some(&lobby_pub))
        .await?;
    let hello = tokio::time::timeout(ctx.timeout, channel.recv())
        .await
        .map_err(|_| ServeError::Timeout("the joiner's hello"))?
        .ok_or(ServeError::Net(NetError::Closed))?;
    let hello: Hello = serde_json::from_slice(&hello.payload)
        .map_err(|e| ServeError::Protocol(format!("bad hello: {e}")))?;
    let log_key = crate::identity::parse_key_hex(&hello.log).map_err(ServeError::Protocol)?;
    let joiner_log = SharedCore::new(Core::in_memory_replica(log_key));
    conn.replicate(joiner_log.clone()).await?;

    let mut joiner = Signalling {
        ctx,
        log: joiner_log,
        log_key,
        next: 0,
    };
    let (sdp, peer, name, pake_a) = match joiner.offer().await {
        Ok(offer) => offer,
        Err(ServeError::Signal(e)) => {
            joiner.reject(label, RejectReason::Protocol, &conn).await;
            return Err(ServeError::Signal(e));
        }
        Err(e) => return Err(e),
    };
    if !is_admissible(ctx, &conn, &peer).await {
        joiner.reject(&peer, RejectReason::FriendsOnly, &conn).await;
        return Err(ServeError::Rejected(RejectReason::FriendsOnly));
    }
    if !reserve_slot(ctx).await {
        joiner.reject(&peer, RejectReason::Full, &conn).await;
        return Err(ServeError::Rejected(RejectReason::Full));
    }
    // From here on a slot is reserved: release it on every path that does not join.
    let outcome = joiner.admit(&peer, pake_a, local_ip, &sdp, &conn).await;
    let (mut pc, channel_id) = match outcome {
        Ok(open) => open,
        Err(e) => {
            let _ = ctx.commands.send(Command::Release);
            return Err(e);
        }
    };
    let _ = ctx.commands.send(Command::Joined(Player {
        id,
        url: peer.clone(),
        name: name.clone(),
        sender: pc.sender(),
        channel: channel_id,
        channels: HashMap::new(),
    }));
    // The player is in: relay its chat and game data until its chat channel closes.
    let mut labels: HashMap<ChannelId, String> = HashMap::new();
    while let Some(event) = pc.next_event().await {
        match event {
            RtcEvent::ChannelOpen { channel, label, .. } => {
                labels.insert(channel, label.clone());
                let _ = ctx.commands.send(Command::Channel(id, label, channel));
            }
            RtcEvent::Message { channel, data, .. } if labels.contains_key(&channel) => {
                let label = labels[&channel].clone();
                let _ = ctx.commands.send(Command::Data(id, label, data));
            }
            RtcEvent::Message { channel, data, .. } if channel == channel_id => {
                match serde_json::from_slice::<ChatIn>(&data) {
                    Ok(chat) if chat.text.len() <= MAX_CHAT_BYTES => {
                        let _ = ctx.commands.send(Command::Chat(id, chat.text));
                    }
                    _ => tracing::debug!(%peer, "ignored a malformed chat message"),
                }
            }
            RtcEvent::ChannelClosed { channel } if channel == channel_id => break,
            RtcEvent::Disconnected { .. } => break,
            _ => {}
        }
    }
    let _ = ctx.commands.send(Command::Left(id));
    pc.close().await;
    Ok(())
}

/// Whether the joiner `peer` (`dat://<hex>`, the identity its offer is signed with) may join a
/// friends-only lobby: the host lists them, and their own profile, replicated from them on this
/// connection (a joiner offers its archive), lists the host. Always true without friends-only.
async fn is_admissible(ctx: &Context, conn: &Connection, peer: &str) -> bool {
    let Some(friends) = &ctx.friends_only else {
        return true;
    };
    let Ok(url) = peer.parse::<DatUrl>() else {
        return false;
    };
    if !friends.contains(&url.key) {
        return false;
    }
    // Their archive comes over this connection; a joiner that doesn't offer it isn't admitted.
    let deadline = tokio::time::Instant::now() + ctx.timeout.min(Duration::from_secs(5));
    let Ok((files, _)) = crate::remote::read_archive(conn, url.key, deadline).await else {
        return false;
    };
    let me = ctx.identity.url().base();
    files.profile.is_some_and(|p| p.friends.contains(&me))
}

async fn reserve_slot(ctx: &Context) -> bool {
    let (tx, rx) = oneshot::channel();
    let _ = ctx.commands.send(Command::Admit(tx));
    rx.await.unwrap_or(false)
}

/// The host's side of one joiner's signalling: reads the joiner's log, writes the lobby log.
struct Signalling<'a> {
    ctx: &'a Context,
    log: SharedCore,
    log_key: [u8; 32],
    next: u64,
}

impl Signalling<'_> {
    /// The joiner's next signal addressed to the lobby, waiting for it.
    async fn next_signal(&mut self, what: &'static str) -> Result<Signal, ServeError> {
        loop {
            let block = self
                .log
                .get_wait_timeout(self.next, self.ctx.timeout)
                .await?
                .ok_or(ServeError::Timeout(what))?;
            self.next += 1;
            if let Some(signal) = Signal::from_block(&block, &self.ctx.lobby_key)? {
                return Ok(signal);
            }
        }
    }

    fn send(&self, signal: &Signal) -> Result<(), ServeError> {
        let block = signal.to_block(&self.log_key)?;
        self.ctx.lobby.append(&block)?;
        Ok(())
    }

    /// Reads the offer: (sdp, joiner identity URL, name, SPAKE2 msg_a).
    async fn offer(&mut self) -> Result<(String, String, String, Option<Vec<u8>>), ServeError> {
        match self.next_signal("the offer").await? {
            Signal::Offer {
                sdp,
                identity,
                name,
                signature,
                pake,
            } => {
                let key =
                    verify_offer(&identity, &signature, &self.ctx.lobby.key(), &self.log_key)?;
                let pake = pake.map(|p| unb64(&p)).transpose()?;
                let name: String = name.chars().take(crate::schema::MAX_NAME_CHARS).collect();
                Ok((sdp, DatUrl::new(key).base(), name, pake))
            }
            other => {
                Err(SignalError::Malformed(format!("expected an offer, got {other:?}")).into())
            }
        }
    }

    /// Appends a reject and keeps the connection open a moment so the joiner can read it.
    async fn reject(&self, peer: &str, reason: RejectReason, conn: &Connection) {
        if self.send(&Signal::Reject { reason }).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
        }
        let _ = self
            .ctx
            .commands
            .send(Command::Rejected(peer.to_string(), reason));
    }

    /// Checks the password (if any), answers the offer, and waits for the chat channel to open.
    async fn admit(
        &mut self,
        peer: &str,
        pake_a: Option<Vec<u8>>,
        local_ip: std::net::IpAddr,
        sdp: &str,
        conn: &Connection,
    ) -> Result<(rtc::PeerConnection, ChannelId), ServeError> {
        if let Some(password) = &self.ctx.password {
            if !self.password_ok(password, pake_a).await? {
                self.reject(peer, RejectReason::Password, conn).await;
                return Err(ServeError::Rejected(RejectReason::Password));
            }
        }
        let cfg = rtc_config_for(local_ip, self.ctx.timeout);
        let (answer, mut pc) = rtc::accept_offer(&cfg, sdp).await?;
        self.send(&Signal::Answer { sdp: answer })?;
        loop {
            match pc.next_event().await {
                Some(RtcEvent::ChannelOpen { channel, label, .. }) if label == CHAT_LABEL => {
                    return Ok((pc, channel))
                }
                Some(RtcEvent::Disconnected { reason }) => {
                    return Err(ServeError::Protocol(format!(
                        "data channel never opened: {reason}"
                    )))
                }
                Some(_) => {}
                None => return Err(ServeError::Timeout("the data channel")),
            }
        }
    }

    /// Runs the SPAKE2 exchange; `false` if the joiner's password is wrong or missing.
    async fn password_ok(
        &mut self,
        password: &[u8],
        pake_a: Option<Vec<u8>>,
    ) -> Result<bool, ServeError> {
        let Some(msg_a) = pake_a else {
            return Ok(false);
        };
        let lobby_pub = self.ctx.lobby.key();
        let Ok((host, msg_b, mac)) =
            pake::Host::respond(password, &self.log_key, &lobby_pub, &msg_a)
        else {
            return Ok(false);
        };
        self.send(&Signal::Challenge {
            pake: crate::signal::message::b64(&msg_b),
            mac: crate::signal::message::b64(&mac),
        })?;
        match self.next_signal("the password confirmation").await? {
            Signal::Confirm { mac } => Ok(host.check(&unb64(&mac)?).is_ok()),
            _ => Ok(false),
        }
    }
}
