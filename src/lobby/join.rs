//! Joining a lobby: find the host, read its `session.json`, offer, wait for the answer, open the
//! data channel.

use std::time::Duration;

use ed25519_dalek::SigningKey;
use tokio::time::Instant;

use super::chat::{chat_in, wait_for_chat, ChannelLabels, ChatWait};
use super::handshake::{JoinEvent, JoinHandshake, OfferParams};
use super::ice::LobbyIce;
use super::signal_log::{LogError, Read, SignalLog};
use super::trickle::{next_step, send_candidate, trickle_until, Step};
use super::{
    check_chat, negotiated_chat, rtc_config_for, ChatError, Hello, PlayerEvent, CHAT_LABEL,
    CHAT_STREAM, LOBBY_PROTOCOL,
};
use crate::archive::ArchiveError;
use crate::endpoint::Endpoint;
use crate::hypercore::Core;
use crate::ice::IceConfig;
use crate::identity::{DatUrl, Identity};
use crate::keys::CoreKey;
use crate::net::{Connection, NetError, SharedCore};
use crate::remote::{self, ReachError, RemoteError};
use crate::rtc::{self, ChannelId, PeerConnection, Reliability};
use crate::schema::now_ms;
use crate::signal::{RejectReason, SignalError};

/// How to join.
#[derive(Clone, Debug)]
pub struct JoinOptions {
    /// The host's archive URL; its `peer` hint is used when `peer` is `None`.
    pub url: DatUrl,
    /// The host's TCP address `host:port`, overriding the URL's hints.
    pub peer: Option<String>,
    /// A relay where the host listens, overriding the URL's hints (but not `peer`).
    /// Without `peer` and `relay`, the URL's `relay=` hint is used first, then its `peer=`.
    pub relay: Option<crate::relay::client::RelayUrl>,
    /// The lobby password, if it is protected.
    pub password: Option<Vec<u8>>,
    /// The name the host shows for this player.
    pub name: String,
    /// How long the whole join may take, from connecting to an open data channel. Default 15 s.
    pub timeout: Duration,
    /// The joiner's own archive (read-only is enough), offered to the host on the connection so
    /// that a friends-only host can check that the joiner lists it. `None`: not offered; a
    /// friends-only host then rejects the join.
    pub archive: Option<SharedCore>,
    /// STUN/TURN servers of the user's own (`--ice-servers`) and the ICE policy
    /// (`--ice-policy`). The servers the relays of the join's endpoint give are added to
    /// these at join time. Default: none of the user's, every path.
    pub ice: IceConfig,
}

impl Default for JoinOptions {
    fn default() -> Self {
        JoinOptions {
            url: DatUrl::new(crate::keys::CoreKey::from_bytes([0; 32])),
            peer: None,
            relay: None,
            password: None,
            name: "player".to_string(),
            timeout: Duration::from_secs(15),
            archive: None,
            ice: IceConfig::default(),
        }
    }
}

/// Errors of [`join()`]. The CLI maps each to its own exit code.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// Neither the URL nor the options give the host's address.
    #[error("no address for the host: the URL has no ?peer= or ?relay= hint; pass --peer HOST:PORT or --relay URL")]
    NoAddress,
    /// The host could not be reached, or the connection broke before the lobby answered.
    #[error("cannot reach the host at {addr}: {source}")]
    Unreachable {
        /// The address tried.
        addr: String,
        /// What happened.
        #[source]
        source: ReachError,
    },
    /// The host turned us away.
    #[error("the host rejected the join: {}", .0.as_str())]
    Rejected(RejectReason),
    /// The host hosts no lobby now (no `session.json`, or it is marked ended).
    #[error("{0} is not hosting a lobby")]
    NotHosting(String),
    /// A step did not finish within the timeout.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The host's archive or signals are invalid (a description of what is wrong).
    #[error("the host broke the protocol: {0}")]
    Protocol(String),
    /// A signalling block from the host could not be read (malformed, too large, not sealed
    /// for us, a bad signature); the [`SignalError`] is the source.
    #[error("the host broke the protocol: {0}")]
    Signal(#[from] SignalError),
    /// The host's archive could not be read or verified.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// WebRTC failed.
    #[error(transparent)]
    Rtc(#[from] rtc::RtcError),
}

impl From<RemoteError> for JoinError {
    fn from(e: RemoteError) -> Self {
        match e {
            RemoteError::Unreachable { addr, source } => JoinError::Unreachable { addr, source },
            RemoteError::WrongPeer { .. } => JoinError::Protocol(e.to_string()),
            RemoteError::Timeout(_) => JoinError::Timeout("the host's archive"),
            RemoteError::Archive(e) => JoinError::Archive(e),
        }
    }
}

impl From<LogError> for JoinError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::Signal(e) => e.into(),
            LogError::Core(e) => e.into(),
        }
    }
}

impl From<crate::hypercore::Error> for JoinError {
    fn from(e: crate::hypercore::Error) -> Self {
        JoinError::Archive(e.into())
    }
}

/// About the lobby that was joined.
#[derive(Clone, Debug)]
pub struct JoinedInfo {
    /// The host's identity URL.
    pub host: String,
    /// The host's profile name.
    pub host_name: String,
    /// The lobby's name.
    pub lobby_name: String,
    /// The path the connection to the host took (host, srflx, prflx or relay, with the relay's
    /// address; docs/NAT.md) when the chat channel opened; `None` if not known.
    pub path: Option<crate::rtc::SelectedPath>,
}

/// A player's place in a lobby: the data channel to the host.
pub struct Joined {
    info: JoinedInfo,
    pc: PeerConnection,
    chat: ChannelId,
    /// Other data channels, by id and by label.
    labels: ChannelLabels,
    /// Kept open: the host's archive stays live-replicated while we play.
    _conn: Connection,
}

/// Joins the lobby hosted by `options.url` as `identity`, through an endpoint of its own
/// ([`Endpoint::dialer`]; see [`join_through`] to share one).
///
/// Errors: see [`JoinError`]; every wait is bounded by `options.timeout`.
pub async fn join(identity: &Identity, options: JoinOptions) -> Result<Joined, JoinError> {
    join_through(&Endpoint::dialer(identity.clone()), options).await
}

/// Joins the lobby hosted by `options.url` as the identity of `endpoint`, reaching the host
/// with [`Endpoint::reach`] (so that a relay route goes through the endpoint's session to that
/// relay, shared with whatever else it does).
///
/// With a `lobby=` hint in the URL (an invite's), signalling on that lobby starts at once,
/// while the host's `session.json` is read; the join goes on only if `session.json` names the
/// same lobby (else it starts over on the lobby `session.json` names).
///
/// Errors: see [`JoinError`]; every wait is bounded by `options.timeout`.
pub async fn join_through(endpoint: &Endpoint, options: JoinOptions) -> Result<Joined, JoinError> {
    let started = Instant::now();
    let deadline = crate::time::tokio_later(started, options.timeout);
    // The crypto backend's one-time setup costs tens of ms of CPU: do it while the network
    // round trips run, not on the path to the offer.
    drop(tokio::task::spawn_blocking(rtc::warm_up));
    let step = |what: &str| step(started, what);
    let route = remote::Route::pick(&options.url, options.peer.clone(), options.relay.clone())
        .map_err(|e| JoinError::Protocol(e.to_string()))?
        .ok_or(JoinError::NoAddress)?;
    let addr = route.address();
    let connected = endpoint
        .reach(&route, options.url.identity(), deadline)
        .await?;
    let (conn, local_ip) = (connected.connection, connected.local_ip);
    step("connected and authenticated");
    if let Some(own) = &options.archive {
        conn.replicate(own.clone())
            .await
            .map_err(|e| lost(&addr, e))?;
    }
    let ctx = Signalling {
        conn: &conn,
        endpoint,
        options: &options,
        local_ip,
        addr: &addr,
        deadline,
        started,
    };
    // The host's archive: its session.json names the lobby log (and says it is live).
    let archive = host_session(&conn, &options.url, deadline);
    let (lobby, (pc, chat)) = match options.url.lobby {
        None => {
            let lobby = archive.await?;
            step("read the host's archive");
            let connected = ctx.connect(lobby.key).await?;
            (lobby, connected)
        }
        Some(hint) => {
            // The invite names the lobby: connect on it while the archive is read, and keep
            // the connection only if session.json names the same lobby.
            let hinted = ctx.connect(hint);
            tokio::pin!(archive, hinted);
            let (lobby, done) = tokio::select! {
                lobby = &mut archive => (lobby?, None),
                connected = &mut hinted => (archive.await?, Some(connected)),
            };
            step("read the host's archive");
            let connected = match done {
                // A stale invite (an earlier lobby of this host): start over on the real one.
                _ if lobby.key != hint => ctx.connect(lobby.key).await?,
                Some(connected) => connected?,
                None => hinted.await?,
            };
            (lobby, connected)
        }
    };
    step("data channel open");
    Ok(Joined {
        info: JoinedInfo {
            host: options.url.base(),
            host_name: lobby.host_name,
            lobby_name: lobby.name,
            path: pc.path(),
        },
        pc,
        chat,
        labels: ChannelLabels::default(),
        _conn: conn,
    })
}

/// Logs a step of the join with its time since `started`, in ms (`RUST_LOG=dat_social=debug`).
fn step(started: Instant, what: &str) {
    let ms = started.elapsed().as_secs_f64() * 1e3;
    tracing::debug!(ms, "join: {what}");
}

/// The connection to the host at `addr` failed.
fn lost(addr: &str, e: NetError) -> JoinError {
    JoinError::Unreachable {
        addr: addr.to_string(),
        source: e.into(),
    }
}

/// What the host's archive says of the lobby it hosts.
struct HostedLobby {
    /// The lobby log's key (`session.json` `url`).
    key: CoreKey,
    /// The lobby's name.
    name: String,
    /// The host's profile name.
    host_name: String,
}

/// Reads the host's archive; its `session.json` must be live.
async fn host_session(
    conn: &Connection,
    url: &DatUrl,
    deadline: Instant,
) -> Result<HostedLobby, JoinError> {
    let (files, _host_archive) = remote::read_archive(conn, url.identity(), deadline).await?;
    let session = files
        .session
        .filter(|s| s.ended.is_none() && s.is_live(now_ms()))
        .ok_or_else(|| JoinError::NotHosting(url.base()))?;
    let lobby_url: DatUrl = session
        .url
        .parse()
        .map_err(|e| JoinError::Protocol(format!("session.json url: {e}")))?;
    Ok(HostedLobby {
        key: lobby_url.key,
        name: session.name,
        host_name: files.profile.map(|p| p.name).unwrap_or_default(),
    })
}

/// What signalling on one lobby needs.
struct Signalling<'a> {
    conn: &'a Connection,
    endpoint: &'a Endpoint,
    options: &'a JoinOptions,
    local_ip: std::net::IpAddr,
    addr: &'a str,
    deadline: Instant,
    /// When the join started (for the timestamps of its steps).
    started: Instant,
}

/// An offer the host answered.
struct Offered {
    pending: rtc::PendingOffer,
    answer: String,
    /// The chat stream id the answer echoes.
    chat_stream: Option<u16>,
    /// The pre-negotiated chat channel of the offer.
    negotiated: ChannelId,
    signals: SignalLog,
}

impl Signalling<'_> {
    /// Connects over WebRTC through the lobby whose log key is `lobby_key`: the offer, the
    /// host's answer, ICE and DTLS, and the chat channel open.
    async fn connect(&self, lobby_key: CoreKey) -> Result<(PeerConnection, ChannelId), JoinError> {
        let Offered {
            mut pending,
            answer,
            chat_stream,
            negotiated,
            mut signals,
        } = self.offer(lobby_key).await?;
        step(self.started, "got the answer");
        // Candidates keep trickling both ways while the answer is applied and ICE checks run.
        let mut trickle = pending.trickle();
        let accept = pending.accept_answer(&answer);
        let mut pc = trickle_until(accept, &mut trickle, &mut signals, self.deadline).await?;
        let chat = if chat_stream == Some(CHAT_STREAM) {
            negotiated
        } else {
            // A host that opens no pre-negotiated chat: open it in band (DCEP) as hosts expect.
            pc.open_channel(CHAT_LABEL, Reliability::Reliable).await?
        };
        let chat = wait_for_chat(&mut pc, Some(chat), Some(self.deadline))
            .await
            .map_err(|e| match e {
                ChatWait::Disconnected(reason) => JoinError::Unreachable {
                    addr: self.addr.to_string(),
                    source: ReachError::DataChannel(reason),
                },
                ChatWait::TimedOut => JoinError::Timeout("the data channel to open"),
            })?;
        Ok((pc, chat))
    }

    /// Signals on the lobby whose log key is `lobby_key`: replicates the lobby log and our
    /// signalling log, says hello on the lobby channel, makes the offer and runs the handshake
    /// to the host's answer.
    async fn offer(&self, lobby_key: CoreKey) -> Result<Offered, JoinError> {
        let net = |e| lost(self.addr, e);
        let lobby = SharedCore::new(Core::in_memory_replica(lobby_key));
        self.conn.replicate(lobby.clone()).await.map_err(net)?;
        // Our signalling log, announced on the lobby channel.
        let log_key = SigningKey::generate(&mut rand::rngs::OsRng);
        let log_pub = log_key.verifying_key().to_bytes();
        let log = SharedCore::new(Core::in_memory(log_key.clone()));
        self.conn.replicate(log.clone()).await.map_err(net)?;
        let channel = self
            .conn
            .open_app_channel(LOBBY_PROTOCOL, Some(lobby_key.as_bytes()))
            .await
            .map_err(net)?;
        let hello = serde_json::to_vec(&Hello {
            log: hex::encode(log_pub),
        })
        .expect("hello serializes");
        channel.send(&hello).map_err(net)?;

        let ice = LobbyIce::new(self.options.ice.clone(), self.endpoint)
            .config()
            .await;
        let mut cfg = rtc_config_for(self.local_ip, self.options.timeout, &ice);
        // Chat pre-negotiated, if the host goes along (its answer says so); else in band.
        cfg.negotiated = vec![negotiated_chat(CHAT_STREAM)];
        let _ = tokio::task::spawn_blocking(rtc::warm_up).await;
        let (mut pending, offer) = rtc::create_offer(&cfg, &[]).await?;
        let negotiated = pending.channels()[0];
        let offer = OfferParams {
            sdp: offer,
            identity: self.endpoint.identity().signing_key(),
            name: self.options.name.clone(),
            password: self.options.password.as_deref(),
            chat_stream: Some(CHAT_STREAM),
        };
        let (log_pub, lobby_log) = (
            crate::keys::LogKey::from_bytes(log_pub),
            crate::keys::LogKey::from_core(lobby_key),
        );
        let mut handshake = JoinHandshake::new(offer, log_pub, lobby_log, self.deadline.into_std());
        // Replies come after the offer: the lobby log is read from its length now.
        let from = lobby.status().length;
        let mut signals = SignalLog::new(lobby.clone(), from, log_key, log.clone(), lobby_log)
            .with_channel(channel);
        let (answer, chat_stream) =
            signal(&mut handshake, &mut signals, &mut pending, self.deadline).await?;
        Ok(Offered {
            pending,
            answer,
            chat_stream,
            negotiated,
            signals,
        })
    }
}

/// Drives the joiner's handshake over the logs until the host answers: writes our signals and
/// our trickled candidates, reads the host's, adds its trickled candidates to the pending offer.
/// Returns the answer and the chat stream id it echoes.
async fn signal(
    handshake: &mut JoinHandshake,
    signals: &mut SignalLog,
    pending: &mut rtc::PendingOffer,
    deadline: Instant,
) -> Result<(String, Option<u16>), JoinError> {
    let mut local_open = true;
    loop {
        while let Some(signal) = handshake.poll_transmit() {
            signals.send(&signal)?;
        }
        while let Some(event) = handshake.poll_event() {
            match event {
                JoinEvent::AddCandidate { candidate } => {
                    pending.add_remote_candidate(&candidate)?
                }
                JoinEvent::Answer { sdp, chat_stream } => return Ok((sdp, chat_stream)),
                JoinEvent::Rejected { reason } => return Err(JoinError::Rejected(reason)),
                JoinEvent::Protocol { message } => return Err(JoinError::Protocol(message)),
                JoinEvent::TimedOut => return Err(JoinError::Timeout("the host's answer")),
            }
        }
        let Some(answer_due) = handshake.poll_timeout() else {
            return Err(JoinError::Timeout("the host's answer"));
        };
        let due = Instant::from_std(answer_due).min(deadline);
        let read = match next_step(signals, pending.next_local_candidate(), local_open, due).await {
            Step::Local(Some(candidate)) => {
                send_candidate(signals, candidate);
                continue;
            }
            Step::Local(None) => {
                local_open = false;
                continue;
            }
            Step::Read(read) => read?,
        };
        let now = std::time::Instant::now();
        match read {
            Read::Signal(signal) => handshake.handle_signal(signal, now),
            Read::Malformed(e) => handshake.handle_malformed(e.to_string(), now),
            Read::TimedOut => handshake.handle_timeout(now),
        }
    }
}

/// Sends a player's chat lines to the host; cheap to clone, usable from any task (e.g. one
/// that reads stdin while another reads lobby events).
#[derive(Clone, Debug)]
pub struct PlayerChat {
    sender: rtc::RtcSender,
    channel: ChannelId,
}

impl PlayerChat {
    /// Sends one chat line, waiting while the connection's send queue is full (so a pasted
    /// burst is slowed down to what the network carries, never dropped).
    ///
    /// Errors: [`ChatError::TooLong`] above [`super::MAX_CHAT_BYTES`] (nothing is sent),
    /// [`ChatError::Closed`] once the connection to the host has ended.
    pub async fn say(&self, text: &str) -> Result<(), ChatError> {
        check_chat(text)?;
        self.sender
            .send_text_wait(self.channel, &chat_in(text))
            .await
            .map_err(|e| match e {
                rtc::RtcError::Closed => ChatError::Closed,
                // The JSON of a 16 KiB line fits in a message unless it is mostly escapes.
                other => ChatError::NotSent(other),
            })
    }
}

impl Joined {
    /// About the lobby.
    pub fn info(&self) -> JoinedInfo {
        self.info.clone()
    }

    /// Sends a chat line to the host (which passes it to every other player), without
    /// waiting: a line longer than [`super::MAX_CHAT_BYTES`] or one the full send queue has no
    /// room for is not sent (logged). [`Joined::chat`] reports both and waits for room.
    pub fn say(&self, text: &str) {
        let sent = check_chat(text).map_err(|e| e.to_string()).and_then(|()| {
            self.pc
                .send_text(self.chat, &chat_in(text))
                .map_err(|e| e.to_string())
        });
        if let Err(e) = sent {
            tracing::warn!("chat not sent: {e}");
        }
    }

    /// A handle that sends chat lines from any task, with back-pressure and errors (see
    /// [`PlayerChat::say`]).
    pub fn chat(&self) -> PlayerChat {
        PlayerChat {
            sender: self.pc.sender(),
            channel: self.chat,
        }
    }

    /// The next event: chat from the lobby, game data from the host, or
    /// [`PlayerEvent::Disconnected`]; `None` once the connection is gone.
    pub async fn next_event(&mut self) -> Option<PlayerEvent> {
        loop {
            let event = self.pc.next_event().await?;
            let sorted = self.labels.classify(self.chat, event);
            if let Some(event) = PlayerEvent::from_channel(&self.info.host, sorted) {
                return Some(event);
            }
        }
    }

    /// Opens another data channel to the host, e.g. [`super::GAME_LABEL`] with
    /// [`Reliability::Unreliable`] (unordered, no retransmits) for game state. The host sees its
    /// messages as [`super::HostEvent::Data`] and can answer with [`super::Host::send`].
    /// Errors: the connection is closed, or the label is too long.
    pub async fn open_channel(
        &mut self,
        label: &str,
        reliability: Reliability,
    ) -> Result<(), rtc::RtcError> {
        let channel = self.pc.open_channel(label, reliability).await?;
        self.labels.insert(channel, label);
        Ok(())
    }

    /// Sends bytes on the channel labelled `label` (opened by [`Joined::open_channel`] or by the
    /// host). Errors: no such channel ([`rtc::RtcError::Closed`]), or the send queue is full.
    pub fn send(&self, label: &str, data: &[u8]) -> Result<(), rtc::RtcError> {
        let channel = self.labels.channel(label).ok_or(rtc::RtcError::Closed)?;
        self.pc.send(channel, data)
    }

    /// The WebRTC connection to the host, for statistics or lower-level use.
    pub fn peer_connection(&self) -> &PeerConnection {
        &self.pc
    }

    /// Leaves the lobby: closes the data channel, which frees the slot at the host.
    pub async fn leave(self) {
        self.pc.close().await;
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use super::*;

    #[test]
    fn a_bad_signal_keeps_its_signal_error_as_the_source() {
        let err = JoinError::from(LogError::Signal(SignalError::TooLarge(70_000)));
        assert!(matches!(err, JoinError::Signal(_)), "{err:?}");
        let source = err.source().expect("a source");
        assert!(
            matches!(
                source.downcast_ref::<SignalError>(),
                Some(SignalError::TooLarge(70_000))
            ),
            "{source:?}"
        );
        assert!(err.to_string().starts_with("the host broke the protocol: "));
    }
}
