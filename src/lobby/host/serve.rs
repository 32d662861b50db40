//! One connection's driver: runs its handshake and serves it through the host's router
//! (`super::listen::router`: the archive and lobby log to everyone); for a joiner, reads its
//! hello, drives a [`HostHandshake`] between its signalling log and the lobby log
//! (admission through the [`super::policy::Policy`] and the lobby task's roster), answers with
//! WebRTC, and relays the player's chat and game data until it leaves.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::chat::deliver;
use super::listen::peer_config;
use super::roster::Member;
use super::task::{Link, Report};
use super::Context;
use crate::endpoint::{Inbound, Incoming, RouteError, Router};
use crate::hypercore::Core;
use crate::identity::DatUrl;
use crate::keys::IdentityKey;
use crate::lobby::chat::{wait_for_chat, ChannelEvent, ChannelLabels, ChatIn, ChatWait};
use crate::lobby::handshake::{Admission, HostEvent, HostHandshake};
use crate::lobby::signal_log::{LogError, Read, SignalLog};
use crate::lobby::trickle::trickle_until;
use crate::lobby::{negotiated_chat, rtc_config_for, Hello, LOBBY_PROTOCOL, MAX_CHAT_BYTES};
use crate::net::{AppChannel, Connection, NetError, SharedCore};
use crate::rtc::{self, ChannelId, PeerConnection, MAX_REMOTE_CANDIDATES};
use crate::signal::{RejectReason, SignalError};

/// How long a rejected joiner's connection stays open so that it can read its reject.
const REJECT_LINGER: Duration = Duration::from_secs(5);

/// How long a joiner still signalling when the lobby ends may take to read its
/// [`RejectReason::Ended`] (the lobby task waits 2 s for every connection task).
const ENDED_LINGER: Duration = Duration::from_secs(1);

/// Why a connection ended before its player joined.
#[derive(Debug, thiserror::Error)]
pub(super) enum ServeError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Signal(#[from] SignalError),
    #[error(transparent)]
    Log(#[from] LogError),
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

/// Serves one connection until it ends, the lobby ends or its service is stopped: its
/// secret-stream handshake (within [`super::HANDSHAKE_TIMEOUT`]), then the host's [`Router`]
/// (archive replication for everyone, [`serve_lobby`] for a joiner). Returns `id`, so that the
/// lobby stops counting it.
pub(super) async fn serve(
    ctx: Arc<Context>,
    router: Arc<Router>,
    id: u64,
    incoming: Incoming,
) -> u64 {
    let mut shutdown = ctx.shutdown.clone();
    let label = incoming.label();
    let connected = tokio::select! {
        c = incoming.connect(ctx.identity.signing_key(), peer_config()) => c,
        _ = shutdown.wait_for(|s| *s) => return id,
    };
    let result = match connected {
        Ok((conn, local_ip)) => {
            let inbound = Inbound {
                connection: Arc::new(conn),
                id,
                label: label.clone(),
                local_ip,
            };
            let stop = async move {
                let _ = shutdown.wait_for(|s| *s).await;
            };
            router.serve(inbound, stop).await
        }
        Err(e) => Err(RouteError::Net(e)),
    };
    // Anyone can open a socket: failures before the lobby are counted, not logged (the lobby
    // reports its own).
    if let Err(e) = result {
        tracing::debug!("connection from {label}: {e}");
        let _ = ctx.reports.send(Report::EarlyFailure);
    }
    id
}

/// Serves a joiner, whose connection opened the lobby channel: signalling, then the player's
/// data channel until it closes. The peer must keep to the lobby's deadlines (hello, offer:
/// the admission timeout), and its failures are worth a warning. Closes the connection when
/// done.
pub(super) async fn serve_lobby(ctx: Arc<Context>, inbound: Inbound) {
    let mut shutdown = ctx.shutdown.clone();
    // While the joiner signals, its handshake outlives `serve_inner` when the lobby ends, so
    // that the joiner can be told.
    let mut signalling: Option<HostHandshake> = None;
    let result = tokio::select! {
        r = serve_inner(&ctx, &inbound, &mut signalling) => r,
        _ = shutdown.wait_for(|s| *s) => Err(ServeError::Ending),
    };
    if let Err(ServeError::Ending) = result {
        tell_ended(&ctx, &inbound.connection, &mut signalling).await;
    }
    match result {
        Ok(()) | Err(ServeError::Ending) | Err(ServeError::Rejected(_)) => {}
        Err(e) => {
            let _ = ctx.reports.send(Report::Warning {
                message: format!("connection from {}: {e}", inbound.label),
            });
        }
    }
    inbound.connection.close();
}

/// The lobby ended while this joiner waited for its answer: writes its
/// [`RejectReason::Ended`] and keeps the connection a moment so that it can read it.
async fn tell_ended(ctx: &Context, conn: &Connection, signalling: &mut Option<HostHandshake>) {
    let Some(handshake) = signalling.as_mut() else {
        return;
    };
    handshake.handle_end(std::time::Instant::now());
    let mut told = false;
    while let Some(signal) = handshake.poll_transmit() {
        if let Ok(block) = signal.to_block(&handshake.joiner_log()) {
            told |= ctx.lobby.append(&block).is_ok();
        }
    }
    if told {
        let _ = tokio::time::timeout(ENDED_LINGER, conn.closed()).await;
    }
}

async fn serve_inner(
    ctx: &Arc<Context>,
    inbound: &Inbound,
    signalling: &mut Option<HostHandshake>,
) -> Result<(), ServeError> {
    let conn = &*inbound.connection;
    let (log_key, channel) = read_hello(ctx, conn).await?;
    let log_key = crate::keys::LogKey::from_bytes(log_key);
    let joiner_log = SharedCore::new(Core::in_memory_replica(log_key.into()));
    conn.replicate(joiner_log.clone()).await?;
    let handshake = signalling.insert(HostHandshake::new(
        crate::keys::LogKey::from_core(ctx.lobby.key()),
        log_key,
        ctx.password.clone(),
        ctx.timeout,
        std::time::Instant::now(),
    ));
    let signals = SignalLog::new(
        joiner_log,
        0,
        ctx.lobby_key.clone(),
        ctx.lobby.clone(),
        log_key,
    )
    .with_channel(channel);
    let mut driver = Signalling {
        ctx,
        id: inbound.id,
        conn,
        local_ip: inbound.local_ip,
        label: &inbound.label,
        signals,
        joiner: None,
        reserved: false,
        candidates: Vec::new(),
    };
    let admitted = driver.run(handshake).await;
    if admitted.is_err() && driver.reserved {
        // The slot reserved for this joiner is not needed after all.
        let _ = ctx.reports.send(Report::Release);
    }
    let (pc, chat) = admitted?;
    *signalling = None;
    let (peer, name) = driver.joiner.take().unwrap_or_default();
    // Closes the lobby channel: nothing is read from it while the player plays.
    drop(driver);
    play(ctx, inbound.id, pc, chat, peer, name).await;
    Ok(())
}

/// Opens the host's side of the lobby channel and reads the joiner's hello: its signalling
/// log key. The channel stays open for the signals mirrored on it ([`SignalLog::with_channel`]).
async fn read_hello(
    ctx: &Context,
    conn: &Connection,
) -> Result<([u8; 32], AppChannel), ServeError> {
    let mut channel = conn
        .open_app_channel(LOBBY_PROTOCOL, Some(ctx.lobby.key().as_ref()))
        .await?;
    let hello = tokio::time::timeout(ctx.timeout, channel.recv())
        .await
        .map_err(|_| ServeError::Timeout("the joiner's hello"))?
        .ok_or(ServeError::Net(NetError::Closed))?;
    let hello: Hello = serde_json::from_slice(&hello.payload)
        .map_err(|e| ServeError::Protocol(format!("bad hello: {e}")))?;
    let key = crate::identity::parse_key_hex(&hello.log).map_err(ServeError::Protocol)?;
    Ok((key, channel))
}

/// The IO around one joiner's [`HostHandshake`].
struct Signalling<'a> {
    ctx: &'a Context,
    id: u64,
    conn: &'a Connection,
    local_ip: std::net::IpAddr,
    /// Who connected (address), for a reject before the offer named the joiner.
    label: &'a str,
    signals: SignalLog,
    /// The joiner's identity URL and name, once its offer is valid.
    joiner: Option<(String, String)>,
    /// A slot is reserved for the joiner: released unless it joins.
    reserved: bool,
    /// Candidates the joiner trickled before the peer connection exists.
    candidates: Vec<String>,
}

impl Signalling<'_> {
    /// Runs the handshake to an open chat channel, or to its reject or failure.
    async fn run(
        &mut self,
        handshake: &mut HostHandshake,
    ) -> Result<(PeerConnection, ChannelId), ServeError> {
        loop {
            // Signals first: a decision may have queued one (the challenge).
            self.transmit(handshake)?;
            if let Some(event) = handshake.poll_event() {
                match event {
                    HostEvent::NeedAdmission { identity, name } => {
                        let admission = self.admission(identity, name).await;
                        handshake.handle_admission(admission, std::time::Instant::now());
                    }
                    HostEvent::NeedAnswer { offer, chat_stream } => {
                        return self.answer(handshake, &offer, chat_stream).await
                    }
                    HostEvent::AddCandidate { candidate } => {
                        if self.candidates.len() < MAX_REMOTE_CANDIDATES {
                            self.candidates.push(candidate);
                        }
                    }
                    HostEvent::Rejected { reason, cause } => {
                        self.transmit(handshake)?;
                        return Err(self.rejected(reason, cause).await);
                    }
                    HostEvent::TimedOut { waiting_for } => {
                        return Err(ServeError::Timeout(waiting_for))
                    }
                }
                continue;
            }
            let Some(deadline) = handshake.poll_timeout() else {
                return Err(ServeError::Protocol("the handshake stalled".into()));
            };
            let read = self.signals.next_until(Instant::from_std(deadline)).await?;
            let now = std::time::Instant::now();
            match read {
                Read::Signal(signal) => handshake.handle_signal(signal, now),
                Read::Malformed(e) => handshake.handle_malformed(e, now),
                Read::TimedOut => handshake.handle_timeout(now),
            }
        }
    }

    /// Writes the machine's signals to the lobby log.
    fn transmit(&self, handshake: &mut HostHandshake) -> Result<(), ServeError> {
        while let Some(signal) = handshake.poll_transmit() {
            self.signals.send(&signal)?;
        }
        Ok(())
    }

    /// Friends-only first (it may read the joiner's archive), then a slot from the roster.
    async fn admission(&mut self, identity: IdentityKey, name: String) -> Admission {
        let peer = DatUrl::new(identity).base();
        let ctx = self.ctx;
        let decision = if !ctx.policy.admits(self.conn, &peer, ctx.timeout).await {
            Admission::FriendsOnly
        } else if reserve_slot(ctx, self.id, &peer).await {
            self.reserved = true;
            Admission::Admit
        } else {
            Admission::Full
        };
        self.joiner = Some((peer, name));
        decision
    }

    /// Answers the offer (opening the chat channel pre-negotiated on `chat_stream`, if the
    /// joiner asked), writes the answer, and waits for the chat channel to open.
    async fn answer(
        &mut self,
        handshake: &mut HostHandshake,
        offer: &str,
        chat_stream: Option<u16>,
    ) -> Result<(PeerConnection, ChannelId), ServeError> {
        let mut cfg = rtc_config_for(
            self.local_ip,
            self.ctx.timeout,
            &self.ctx.ice.config().await,
        );
        cfg.negotiated = chat_stream.map(negotiated_chat).into_iter().collect();
        let (answer, mut pc) = rtc::accept_offer(&cfg, offer).await?;
        for candidate in self.candidates.drain(..) {
            if let Err(e) = pc.add_remote_candidate(&candidate) {
                tracing::debug!("a trickled candidate not added: {e}");
            }
        }
        handshake.handle_answer(answer, std::time::Instant::now());
        self.transmit(handshake)?;
        // Candidates keep trickling both ways until the chat channel is open.
        let mut trickle = pc.trickle();
        let deadline = crate::time::deadline_after(self.ctx.timeout);
        let open = wait_for_chat(&mut pc, None, None);
        let opened = trickle_until(open, &mut trickle, &mut self.signals, deadline).await;
        let chat = opened.map_err(|e| match e {
            ChatWait::Disconnected(reason) => {
                ServeError::Protocol(format!("data channel never opened: {reason}"))
            }
            ChatWait::TimedOut => ServeError::Timeout("the data channel"),
        })?;
        Ok((pc, chat))
    }

    /// The reject is written: keeps the connection open a moment so the joiner can read it,
    /// then tells the lobby. The error ending the connection.
    async fn rejected(&self, reason: RejectReason, cause: Option<SignalError>) -> ServeError {
        let _ = tokio::time::timeout(REJECT_LINGER, self.conn.closed()).await;
        let peer = match &self.joiner {
            Some((peer, _)) => peer.clone(),
            None => self.label.to_string(),
        };
        let _ = self.ctx.reports.send(Report::Rejected { peer, reason });
        match cause {
            Some(e) => ServeError::Signal(e),
            None => ServeError::Rejected(reason),
        }
    }
}

/// Asks the lobby for a slot for connection `id`, the joiner `peer`.
async fn reserve_slot(ctx: &Context, id: u64, peer: &str) -> bool {
    let (reply, rx) = oneshot::channel();
    let _ = ctx.reports.send(Report::Admit {
        connection: id,
        peer: peer.to_string(),
        reply,
    });
    rx.await.unwrap_or(false)
}

/// The player is in: relays its chat and game data until its chat channel closes, or the
/// lobby drops the player (its identity rejoined on another connection).
async fn play(
    ctx: &Context,
    id: u64,
    mut pc: PeerConnection,
    chat: ChannelId,
    peer: String,
    name: String,
) {
    let (kick, mut kicked) = oneshot::channel();
    let _ = ctx.reports.send(Report::Joined {
        member: Member {
            id,
            url: peer.clone(),
            name: name.clone(),
            path: pc.path().map(Box::new),
            link: Link {
                sender: pc.sender(),
                chat,
                channels: ChannelLabels::default(),
                _kick: kick,
            },
        },
    });
    let mut labels = ChannelLabels::default();
    loop {
        let event = tokio::select! {
            event = pc.next_event() => match event {
                Some(event) => event,
                None => break,
            },
            _ = &mut kicked => break,
        };
        match labels.classify(chat, event) {
            ChannelEvent::Opened { label, channel } => {
                let _ = ctx.reports.send(Report::Channel {
                    connection: id,
                    label,
                    channel,
                });
            }
            ChannelEvent::Data { label, data } => {
                let _ = ctx.reports.send(Report::Data {
                    connection: id,
                    label,
                    data,
                });
            }
            ChannelEvent::Chat(data) => relay_chat(ctx, id, &data, &peer, &name).await,
            ChannelEvent::Path(path) => {
                let _ = ctx.reports.send(Report::Path {
                    connection: id,
                    path: Box::new(path),
                });
            }
            ChannelEvent::Gone => break,
            ChannelEvent::Ignored => {}
        }
    }
    let _ = ctx.reports.send(Report::Left { connection: id });
    pc.close().await;
}

/// A player's chat message: relayed to the others before this player's next message is read
/// (a player who sends faster than the others receive is slowed down, not dropped), or
/// refused with a warning.
async fn relay_chat(ctx: &Context, id: u64, data: &[u8], peer: &str, name: &str) {
    let refused = match serde_json::from_slice::<ChatIn>(data) {
        Ok(chat) if chat.text.len() <= MAX_CHAT_BYTES => {
            let (reply, targets) = oneshot::channel();
            let _ = ctx.reports.send(Report::Chat {
                connection: id,
                text: chat.text.clone(),
                reply,
            });
            if let Ok(targets) = targets.await {
                deliver(&ctx.reports, targets, &chat.text).await;
            }
            return;
        }
        Ok(chat) => format!(
            "a chat line of {} bytes (the limit is {MAX_CHAT_BYTES})",
            chat.text.len()
        ),
        Err(e) => format!("a malformed chat message of {} bytes: {e}", data.len()),
    };
    let _ = ctx.reports.send(Report::Warning {
        message: format!("refused {refused} from {name} ({peer})"),
    });
}
