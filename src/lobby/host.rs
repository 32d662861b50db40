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
//!
//! Anyone can connect, so connections that are not players yet are kept cheap and bounded
//! (docs/PROTOCOL.md, "What a host accepts from peers it has not admitted"): a short handshake
//! ([`HANDSHAKE_TIMEOUT`]), small records and buffers ([`MAX_FRAME_BYTES`],
//! [`MAX_UNACCEPTED_BYTES`]), a per-address count ([`MAX_UNADMITTED_PER_ADDRESS`]) and, when
//! all [`MAX_CONNECTIONS`] are taken, eviction from the address holding the most; refusals are
//! counted into one warning per [`REFUSALS_REPORT_INTERVAL`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::{AbortHandle, JoinSet};

use super::chat::{ChatIn, ChatOut};
use super::{
    check_chat, rtc_config_for, ChatError, Hello, LobbyEvent, CHAT_LABEL, LOBBY_PROTOCOL,
    MAX_CHAT_BYTES,
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
    /// TCP address to listen on, `host:port`. Default `0.0.0.0:0` (every interface, any port).
    pub listen: String,
    /// Period of `session.json` heartbeats, [`MIN_HEARTBEAT`] to [`MAX_HEARTBEAT`] (1 ms to
    /// 1 day; the CLI takes whole seconds). Default 300 s.
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
    /// [`HostOptions::heartbeat`] is outside [`MIN_HEARTBEAT`]..=[`MAX_HEARTBEAT`].
    #[error("heartbeat of {0:?} is outside 1 ms to 1 day")]
    Heartbeat(Duration),
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
    /// May connection `id`, the joiner `peer` (identity URL), start its data channel? Reserves
    /// a slot when yes (replacing `peer`'s own old slot if it is still a player).
    Admit {
        id: u64,
        peer: String,
        reply: oneshot::Sender<bool>,
    },
    /// A reserved slot is not needed after all.
    Release,
    /// A player's data channel opened (its reserved slot becomes a player).
    Joined(Player),
    /// A player's data channel closed.
    Left(u64),
    /// Chat from a player: shown to the host; the reply says who else gets it (the
    /// player's connection task delivers it, waiting for room, which slows that player down
    /// rather than dropping lines).
    Chat(u64, String, oneshot::Sender<ChatTargets>),
    /// A joiner was turned away.
    Rejected(String, RejectReason),
    /// A joiner's connection failed, or a player sent something refused.
    Warning(String),
    /// A connection failed before it opened the lobby channel (counted, not logged).
    EarlyFailure,
    /// The host's own chat line (sent without waiting).
    Say(String),
    /// The host's own chat line: who should get it (see [`HostChat::say`]).
    Recipients(oneshot::Sender<ChatTargets>),
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
    /// Dropping it ends the player's connection task (a rejoin by the same identity).
    _kick: oneshot::Sender<()>,
}

/// Who gets the host's chat line as [`HostChat`] sends it: the host's URL and name, and each
/// player's URL and chat channel.
struct ChatTargets {
    from: String,
    name: String,
    players: Vec<(String, RtcSender, ChannelId)>,
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
    /// Turns to read a friends-only joiner's archive with large records.
    large_frames: Semaphore,
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
    /// [`LobbyError::Relay`] (the relay client stopped at once), [`LobbyError::Heartbeat`].
    pub async fn start(
        home: &Home,
        identity: Identity,
        options: HostOptions,
    ) -> Result<Host, LobbyError> {
        if !(MIN_HEARTBEAT..=MAX_HEARTBEAT).contains(&options.heartbeat) {
            return Err(LobbyError::Heartbeat(options.heartbeat));
        }
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
            large_frames: Semaphore::new(MAX_FRIEND_ARCHIVE_READS),
        });
        let state = State {
            ctx: ctx.clone(),
            session,
            players: HashMap::new(),
            reserved: 0,
            events: events_tx,
            gate: Gate::default(),
            session_unsaved: false,
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

    /// Sends the host's chat line to every player without waiting: a line longer than
    /// [`MAX_CHAT_BYTES`] is refused, and a player whose send queue is full misses it; both
    /// are reported as [`LobbyEvent::Warning`]. [`Host::chat`] waits for room instead.
    pub fn say(&self, text: &str) {
        let _ = self.commands.send(Command::Say(text.to_string()));
    }

    /// A handle that sends the host's chat lines from any task, with back-pressure (see
    /// [`HostChat::say`]).
    pub fn chat(&self) -> HostChat {
        HostChat {
            commands: self.commands.clone(),
        }
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

/// Sends the host's chat lines to every player; cheap to clone, usable from any task (e.g.
/// one that reads stdin while another reads lobby events).
#[derive(Clone)]
pub struct HostChat {
    commands: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for HostChat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostChat")
    }
}

impl HostChat {
    /// Sends one chat line to every player, waiting (up to [`CHAT_SEND_WAIT`] per player)
    /// while a player's send queue is full, so that a pasted burst is slowed down to what the
    /// network carries instead of dropped. A player still full after that, or gone meanwhile,
    /// misses the line: reported as a [`LobbyEvent::Warning`].
    ///
    /// Errors: [`ChatError::TooLong`] above [`MAX_CHAT_BYTES`] (nothing is sent),
    /// [`ChatError::Closed`] once the lobby has ended.
    pub async fn say(&self, text: &str) -> Result<(), ChatError> {
        check_chat(text)?;
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Recipients(reply))
            .map_err(|_| ChatError::Closed)?;
        let targets = rx.await.map_err(|_| ChatError::Closed)?;
        deliver(&self.commands, targets, text).await;
        Ok(())
    }
}

/// Sends a chat line to `targets`, waiting (up to [`CHAT_SEND_WAIT`] per player) while a
/// player's send queue is full; a player that misses it is reported as a warning.
async fn deliver(commands: &mpsc::UnboundedSender<Command>, targets: ChatTargets, text: &str) {
    let line = chat_out(&targets.from, &targets.name, text);
    for (url, sender, channel) in targets.players {
        let sent =
            tokio::time::timeout(CHAT_SEND_WAIT, sender.send_text_wait(channel, &line)).await;
        let problem = match sent {
            Ok(Ok(())) => continue,
            Ok(Err(rtc::RtcError::Closed)) => continue, // left meanwhile: PeerLeft says so
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("its send queue stayed full for {CHAT_SEND_WAIT:?}"),
        };
        let _ = commands.send(Command::Warning(format!(
            "chat line not delivered to {url}: {problem}"
        )));
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

/// The JSON of a chat line as the host relays it.
fn chat_out(from: &str, name: &str, text: &str) -> String {
    serde_json::to_string(&ChatOut {
        from: from.to_string(),
        name: name.to_string(),
        text: text.to_string(),
    })
    .expect("chat serializes")
}

fn write_session(archive: &SharedCore, session: &Session) -> Result<(), ArchiveError> {
    archive.with_core(|core| archive::put_session(core, session).map(|_| ()))
}

/// Where a connection comes from, for the per-source limits: an IPv4 address, an IPv6 /64
/// (one subscriber's usual allocation), or any relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Source {
    V4([u8; 4]),
    V6([u8; 8]),
    Relay,
}

impl Source {
    fn of(addr: &SocketAddr) -> Source {
        match addr.ip() {
            IpAddr::V4(ip) => Source::V4(ip.octets()),
            IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4.octets()),
                None => {
                    let o = ip.octets();
                    Source::V6([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
                }
            },
        }
    }

    fn limit(self) -> usize {
        match self {
            Source::Relay => MAX_UNADMITTED_RELAYED,
            _ => MAX_UNADMITTED_PER_ADDRESS,
        }
    }
}

/// What the gate decided about a new connection.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// Serve it.
    Accept,
    /// Serve it after closing this older unadmitted connection.
    Evict(u64),
    /// Its source already holds [`Source::limit`] unadmitted connections.
    RefusePerSource,
    /// Every slot is taken and its source holds as many as anyone.
    RefuseFull,
}

/// The connections that are not players yet (handshaking, signalling, readers), by source,
/// and the counters of what was refused: the host's defence against one client holding every
/// slot. Counts are reported as one warning every [`REFUSALS_REPORT_INTERVAL`].
#[derive(Default)]
struct Gate {
    /// Unadmitted connections: id -> (source, abort handle).
    open: HashMap<u64, (Source, Option<AbortHandle>)>,
    /// Unadmitted connection ids per source, oldest first.
    by_source: HashMap<Source, VecDeque<u64>>,
    refused_per_source: u64,
    refused_full: u64,
    evicted: u64,
    failed_early: u64,
    accept_errors: u64,
    warnings: u32,
    suppressed: u64,
}

impl Gate {
    fn count(&self, source: Source) -> usize {
        self.by_source.get(&source).map_or(0, VecDeque::len)
    }

    /// Whether a new connection from `source` may be served while `total` are.
    fn decide(&self, source: Source, total: usize) -> Decision {
        let mine = self.count(source);
        if mine >= source.limit() {
            return Decision::RefusePerSource;
        }
        if total < MAX_CONNECTIONS {
            return Decision::Accept;
        }
        let biggest = self
            .by_source
            .iter()
            .filter(|(_, ids)| !ids.is_empty())
            .max_by_key(|(_, ids)| ids.len());
        match biggest {
            Some((_, ids)) if ids.len() > mine + 1 => Decision::Evict(ids[0]),
            _ => Decision::RefuseFull,
        }
    }

    fn track(&mut self, id: u64, source: Source, abort: Option<AbortHandle>) {
        self.open.insert(id, (source, abort));
        self.by_source.entry(source).or_default().push_back(id);
    }

    /// Stops counting `id` (it became a player, or ended); its abort handle if it was counted.
    fn untrack(&mut self, id: u64) -> Option<Option<AbortHandle>> {
        let (source, abort) = self.open.remove(&id)?;
        if let Some(ids) = self.by_source.get_mut(&source) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.by_source.remove(&source);
            }
        }
        Some(abort)
    }

    /// Closes the unadmitted connection `id` to make room.
    fn evict(&mut self, id: u64) {
        if let Some(Some(abort)) = self.untrack(id) {
            abort.abort();
        }
        self.evicted += 1;
    }

    fn refuse(&mut self, decision: &Decision) {
        match decision {
            Decision::RefusePerSource => self.refused_per_source += 1,
            _ => self.refused_full += 1,
        }
    }

    /// The summary of the last interval, if anything happened; resets the counters.
    fn report(&mut self) -> Option<String> {
        let mut parts = Vec::new();
        let mut part = |n: &mut u64, what: String| {
            if *n > 0 {
                parts.push(format!("{n} {what}"));
                *n = 0;
            }
        };
        part(
            &mut self.refused_per_source,
            format!(
                "refused (over {MAX_UNADMITTED_PER_ADDRESS} unadmitted connections from one address)"
            ),
        );
        part(
            &mut self.refused_full,
            format!("refused ({MAX_CONNECTIONS} connections open)"),
        );
        part(
            &mut self.evicted,
            "closed to make room (their address held the most unadmitted connections)".into(),
        );
        part(
            &mut self.failed_early,
            "failed before reaching the lobby (handshake, timeout, bad data)".into(),
        );
        part(&mut self.accept_errors, "accept errors".into());
        part(&mut self.suppressed, "more warnings not shown".into());
        self.warnings = 0;
        (!parts.is_empty()).then(|| {
            format!(
                "connections in the last {} s: {}",
                REFUSALS_REPORT_INTERVAL.as_secs(),
                parts.join(", ")
            )
        })
    }
}

/// The lobby task's state.
struct State {
    ctx: Arc<Context>,
    session: Session,
    players: HashMap<u64, Player>,
    reserved: u32,
    events: mpsc::UnboundedSender<LobbyEvent>,
    gate: Gate,
    /// The last `session.json` write failed (e.g. a full disk): retried at the next heartbeat,
    /// join or leave.
    session_unsaved: bool,
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
            tokio::time::interval_at(crate::time::deadline_after(heartbeat), heartbeat);
        let mut report = tokio::time::interval_at(
            tokio::time::Instant::now() + REFUSALS_REPORT_INTERVAL,
            REFUSALS_REPORT_INTERVAL,
        );
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
                    Ok((tcp, addr)) => {
                        let source = Source::of(&addr);
                        if self.admit_connection(source, connections.len()) {
                            next_id += 1;
                            let abort = connections.spawn(serve(self.ctx.clone(), next_id, Incoming::Tcp(tcp, addr)));
                            self.gate.track(next_id, source, Some(abort));
                        }
                    }
                    Err(e) => {
                        // E.g. out of file descriptors: counted, and a pause so that a
                        // persistent error does not spin.
                        tracing::debug!("accept failed: {e}");
                        self.gate.accept_errors += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                },
                stream = accept_relayed(&mut relay_listener) => match stream {
                    Some(stream) => {
                        // Dropping a refused stream destroys it at the relay.
                        if self.admit_connection(Source::Relay, connections.len()) {
                            next_id += 1;
                            let abort = connections.spawn(serve(self.ctx.clone(), next_id, Incoming::Relay(stream)));
                            self.gate.track(next_id, Source::Relay, Some(abort));
                        }
                    }
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
                Some(ended) = connections.join_next(), if !connections.is_empty() => {
                    if let Ok(id) = ended {
                        self.gate.untrack(id);
                    }
                }
                _ = ticker.tick() => self.publish(),
                _ = report.tick() => {
                    if let Some(summary) = self.gate.report() {
                        self.warn(summary);
                    }
                }
                command = commands.recv() => match command {
                    Some(Command::Shutdown(done)) => break Some(done),
                    Some(command) => self.handle(command),
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

    /// Whether to serve a new connection from `source` (`total` being served): applies the
    /// gate's decision, evicting or counting a refusal.
    fn admit_connection(&mut self, source: Source, total: usize) -> bool {
        match self.gate.decide(source, total) {
            Decision::Accept => true,
            Decision::Evict(id) => {
                self.gate.evict(id);
                true
            }
            refused => {
                self.gate.refuse(&refused);
                false
            }
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Admit { id, peer, reply } => {
                // A connection closed to make room meanwhile gets nothing.
                if !self.gate.open.contains_key(&id) {
                    let _ = reply.send(false);
                    return;
                }
                // The same identity rejoining (e.g. after a crash) replaces its old slot: its
                // offer is signed by that identity, so nobody else can take it over.
                let ghost = self.players.values().find(|p| p.url == peer).map(|p| p.id);
                if let Some(old) = ghost {
                    self.remove_player(old);
                }
                let free = (self.players.len() as u32 + self.reserved) < self.session.max_peers;
                if free {
                    // Admitted: no longer counted against its address, never evicted.
                    self.gate.untrack(id);
                    self.reserved += 1;
                }
                if reply.send(free).is_err() && free {
                    self.reserved -= 1;
                }
            }
            Command::Release => self.reserved = self.reserved.saturating_sub(1),
            Command::Joined(player) => {
                self.reserved = self.reserved.saturating_sub(1);
                let (url, name) = (player.url.clone(), player.name.clone());
                self.players.insert(player.id, player);
                self.publish();
                self.emit(LobbyEvent::PeerJoined {
                    peer: url,
                    name,
                    peers: self.players.len() as u32,
                });
            }
            Command::Left(id) => self.remove_player(id),
            Command::Chat(id, text, reply) => {
                if let Some(player) = self.players.get(&id) {
                    let (url, name) = (player.url.clone(), player.name.clone());
                    let players = self
                        .players
                        .values()
                        .filter(|p| p.id != id)
                        .map(|p| (p.url.clone(), p.sender.clone(), p.channel))
                        .collect();
                    let _ = reply.send(ChatTargets {
                        from: url.clone(),
                        name: name.clone(),
                        players,
                    });
                    self.emit(LobbyEvent::Message {
                        from: url,
                        name,
                        text,
                    });
                }
            }
            Command::Say(text) => {
                if let Err(e) = check_chat(&text) {
                    self.warn(format!("your {e}"));
                    return;
                }
                let url = self.ctx.identity.url().base();
                let name = self.session.name.clone();
                self.broadcast(&url, &name, &text);
            }
            Command::Recipients(reply) => {
                let players = self
                    .players
                    .values()
                    .map(|p| (p.url.clone(), p.sender.clone(), p.channel))
                    .collect();
                let _ = reply.send(ChatTargets {
                    from: self.ctx.identity.url().base(),
                    name: self.session.name.clone(),
                    players,
                });
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
            Command::Warning(message) => self.connection_warning(message),
            Command::EarlyFailure => self.gate.failed_early += 1,
            Command::Shutdown(_) => unreachable!("handled by run"),
        }
    }

    /// Removes player `id` (gone, or replaced by its own rejoin): its connection task ends,
    /// `session.json` is rewritten and [`LobbyEvent::PeerLeft`] emitted.
    fn remove_player(&mut self, id: u64) {
        if let Some(player) = self.players.remove(&id) {
            self.publish();
            self.emit(LobbyEvent::PeerLeft {
                peer: player.url,
                name: player.name,
                peers: self.players.len() as u32,
            });
        }
    }

    /// Passes the host's own line to every player without waiting ([`Host::say`]). A player
    /// whose send queue is full misses it (reported).
    fn broadcast(&mut self, from: &str, name: &str, text: &str) {
        let line = chat_out(from, name, text);
        let mut missed = Vec::new();
        for player in self.players.values() {
            if let Err(e) = player.sender.send_text(player.channel, &line) {
                if !matches!(e, rtc::RtcError::Closed) {
                    missed.push(format!("chat line not delivered to {}: {e}", player.url));
                }
            }
        }
        for message in missed {
            self.connection_warning(message);
        }
    }

    /// Rewrites `session.json` with the current player count and a fresh heartbeat. A failed
    /// write (e.g. a full disk) does not end the lobby: it is reported and retried at the next
    /// heartbeat, join or leave.
    fn publish(&mut self) {
        self.session.peers = self.players.len() as u32;
        self.session.last_update = now_ms();
        match write_session(&self.ctx.archive, &self.session) {
            Ok(()) => {
                if std::mem::take(&mut self.session_unsaved) {
                    tracing::info!("session.json written again");
                }
            }
            Err(e) => {
                self.session_unsaved = true;
                self.warn(format!(
                    "cannot write session.json (the lobby goes on; retrying at the next heartbeat, join or leave): {e}"
                ));
            }
        }
    }

    fn emit(&self, event: LobbyEvent) {
        let _ = self.events.send(event);
    }

    fn warn(&self, message: String) {
        tracing::warn!("{message}");
        self.emit(LobbyEvent::Warning { message });
    }

    /// A warning about one connection or player: at most [`MAX_WARNINGS_PER_INTERVAL`] per
    /// interval are shown, the rest counted into the summary.
    fn connection_warning(&mut self, message: String) {
        if self.gate.warnings < MAX_WARNINGS_PER_INTERVAL {
            self.gate.warnings += 1;
            self.warn(message);
        } else {
            tracing::debug!("{message}");
            self.gate.suppressed += 1;
        }
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
                let conn =
                    Connection::connect_with(tcp, ctx.identity.signing_key(), false, peer_config())
                        .await?;
                Ok((conn, local_ip))
            }
            Incoming::Relay(stream) => {
                let local_ip = stream.local_ip();
                Ok((stream.into_connection(peer_config()), local_ip))
            }
        }
    }
}

/// The settings of every connection the host serves: a short handshake and small buffers
/// ([`HANDSHAKE_TIMEOUT`], [`MAX_FRAME_BYTES`], [`MAX_UNACCEPTED_BYTES`]).
fn peer_config() -> ConnectionConfig {
    ConnectionConfig {
        handshake_timeout: HANDSHAKE_TIMEOUT,
        max_frame_bytes: MAX_FRAME_BYTES,
        max_unaccepted_bytes: MAX_UNACCEPTED_BYTES,
        ..ConnectionConfig::default()
    }
}

/// Serves one connection: signalling, then the player's data channel until it closes.
/// Returns `id`, so that the lobby stops counting it.
async fn serve(ctx: Arc<Context>, id: u64, incoming: Incoming) -> u64 {
    let mut shutdown = ctx.shutdown.clone();
    let label = incoming.label();
    let mut reached_lobby = false;
    let result = tokio::select! {
        r = serve_inner(&ctx, id, incoming, &label, &mut reached_lobby) => r,
        _ = shutdown.wait_for(|s| *s) => Err(ServeError::Ending),
    };
    match result {
        Ok(()) | Err(ServeError::Ending) | Err(ServeError::Rejected(_)) => {}
        // Anyone can open a socket: failures before the lobby are counted, not logged.
        Err(e) if !reached_lobby => {
            tracing::debug!("connection from {label}: {e}");
            let _ = ctx.commands.send(Command::EarlyFailure);
        }
        Err(e) => {
            let _ = ctx
                .commands
                .send(Command::Warning(format!("connection from {label}: {e}")));
        }
    }
    id
}

async fn serve_inner(
    ctx: &Arc<Context>,
    id: u64,
    incoming: Incoming,
    label: &str,
    reached_lobby: &mut bool,
) -> Result<(), ServeError> {
    let (conn, local_ip) = incoming.connect(ctx).await?;
    serve_connection(ctx, id, conn, local_ip, label, reached_lobby).await
}

/// The lobby's side of one joiner or reader on an authenticated connection, whatever carries
/// it (TCP or a relay).
async fn serve_connection(
    ctx: &Arc<Context>,
    id: u64,
    conn: Connection,
    local_ip: std::net::IpAddr,
    label: &str,
    reached_lobby: &mut bool,
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
    // Nothing else is read from the event stream: drop it rather than let it fill.
    drop(events);
    // From here on the peer must keep to the lobby's deadlines (hello, offer: the admission
    // timeout), and its failures are worth a warning.
    *reached_lobby = true;
    let mut channel = conn
        .open_app_channel(LOBBY_PROTOCOL, Some(&lobby_pub))
        .await?;
    let hello = tokio::time::timeout(ctx.timeout, channel.recv())
        .await
        .map_err(|_| ServeError::Timeout("the joiner's hello"))?
        .ok_or(ServeError::Net(NetError::Closed))?;
    // The hello is the channel's only message: close it so that nothing more is buffered.
    drop(channel);
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
    if !reserve_slot(ctx, id, &peer).await {
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
    let (kick, mut kicked) = oneshot::channel();
    let _ = ctx.commands.send(Command::Joined(Player {
        id,
        url: peer.clone(),
        name: name.clone(),
        sender: pc.sender(),
        channel: channel_id,
        channels: HashMap::new(),
        _kick: kick,
    }));
    // The player is in: relay its chat and game data until its chat channel closes, or the
    // lobby drops the player (its identity rejoined on another connection).
    let mut labels: HashMap<ChannelId, String> = HashMap::new();
    loop {
        let event = tokio::select! {
            event = pc.next_event() => match event {
                Some(event) => event,
                None => break,
            },
            _ = &mut kicked => break,
        };
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
                let refused = match serde_json::from_slice::<ChatIn>(&data) {
                    Ok(chat) if chat.text.len() <= MAX_CHAT_BYTES => {
                        // Relayed before this player's next message is read: a player who
                        // sends faster than the others receive is slowed down, not dropped.
                        let (reply, targets) = oneshot::channel();
                        let _ = ctx
                            .commands
                            .send(Command::Chat(id, chat.text.clone(), reply));
                        if let Ok(targets) = targets.await {
                            deliver(&ctx.commands, targets, &chat.text).await;
                        }
                        continue;
                    }
                    Ok(chat) => format!(
                        "a chat line of {} bytes (the limit is {MAX_CHAT_BYTES})",
                        chat.text.len()
                    ),
                    Err(e) => format!("a malformed chat message of {} bytes: {e}", data.len()),
                };
                let _ = ctx.commands.send(Command::Warning(format!(
                    "refused {refused} from {name} ({peer})"
                )));
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
    // Its profile may need records larger than the host's usual limit: a few friends at a
    // time get them.
    let deadline = crate::time::deadline_after(ctx.timeout.min(Duration::from_secs(5)));
    let Ok(Ok(_turn)) = tokio::time::timeout_at(deadline, ctx.large_frames.acquire()).await else {
        return false;
    };
    conn.set_max_frame_bytes(FRIEND_ARCHIVE_FRAME_BYTES);
    let read = crate::remote::read_archive(conn, url.key, deadline).await;
    conn.set_max_frame_bytes(MAX_FRAME_BYTES);
    let Ok((files, _)) = read else {
        return false;
    };
    let me = ctx.identity.url().base();
    files.profile.is_some_and(|p| p.friends.contains(&me))
}

/// Asks the lobby for a slot for connection `id`, the joiner `peer`.
async fn reserve_slot(ctx: &Context, id: u64, peer: &str) -> bool {
    let (reply, rx) = oneshot::channel();
    let _ = ctx.commands.send(Command::Admit {
        id,
        peer: peer.to_string(),
        reply,
    });
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
