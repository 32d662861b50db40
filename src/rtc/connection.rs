//! Creating and running a WebRTC connection: the offer and answer ([`create_offer`],
//! [`accept_offer`], [`PendingOffer::accept_answer`]), and the handles of a running one
//! ([`PeerConnection`], [`RtcSender`]) that talk to its driver task.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use str0m::channel::ChannelConfig;
use str0m::crypto::CryptoProvider;
use str0m::{Candidate, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use error::RtcError;
/// Identifies a data channel within one [`PeerConnection`] (not the SCTP stream id).
use str0m::channel::ChannelId;

use super::description;
use super::driver::{Command, Driver, Handles, SdpRequest, Setup, Timing};
use super::sender::RtcSender;
use super::trickle::{GatherStats, Trickle};
use crate::ice::IcePolicy;

/// Local candidates gathered but not yet read by the application, at most (a few per server).
const MAX_LOCAL_CANDIDATES: usize = 64;

use super::*;

/// The process' crypto backend (aws-lc-rs), shared by every connection.
fn crypto() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(str0m::crypto::from_feature_flags()))
        .clone()
}

/// Does the crypto backend's one-time initialisation now (about 60-80 ms of CPU on the first
/// DTLS certificate, measured with aws-lc-rs 1.19 in a release build), so the first
/// [`create_offer`] / [`accept_offer`] of the process does not pay it. Optional; cheap after the
/// first call. Blocking: call it at startup or from `spawn_blocking`.
pub fn warm_up() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let _ = crypto().dtls_provider.generate_certificate();
    });
}

/// First retransmission of an ICE connectivity check: 100 ms (str0m's default is 250 ms; the
/// next ones double from there). Across two NATs the first check each side sends is dropped by
/// the other side's NAT until that side has sent too, and str0m does no triggered checks
/// (RFC 8445 §7.3.1.4), so the retransmission is what gets through: at 250 ms it cost cone↔cone
/// joins a quarter of a second (BENCHMARKS.md). libwebrtc re-pings a pair that has not
/// answered yet every 48 ms.
const CHECK_RTO: Duration = Duration::from_millis(100);

fn build_rtc(cfg: &RtcConfig) -> Rtc {
    let mut b = Rtc::builder()
        .set_crypto_provider(crypto())
        .set_sctp_max_buffered_amount(SCTP_BUFFER_BYTES);
    // Consent checks on the chosen pair run at most this far apart; they are what the idle
    // timeout listens for.
    b.set_max_stun_rto(cfg.keepalive());
    b.set_initial_stun_rto(CHECK_RTO);
    b.build(Instant::now())
}

/// Polls an `Rtc` that has no remote peer yet until its next timeout, as str0m requires after
/// each change. Without remote candidates there is nothing to send.
fn settle(rtc: &mut Rtc) {
    for _ in 0..64 {
        match rtc.poll_output() {
            Ok(str0m::Output::Timeout(_)) | Err(_) => return,
            Ok(other) => tracing::trace!("before connecting: {other:?}"),
        }
    }
}

/// Binds the sockets and makes an `Rtc` with their addresses as host candidates (none under
/// `IcePolicy::Relay`: only relayed candidates may be used then).
async fn prepare(cfg: &RtcConfig) -> Result<(Rtc, Vec<(UdpSocket, SocketAddr)>), RtcError> {
    let sockets = local::bind(cfg.bind_ip).await?;
    let mut rtc = build_rtc(cfg);
    settle(&mut rtc);
    if cfg.ice.policy == IcePolicy::Relay {
        return Ok((rtc, sockets));
    }
    let mut added = 0;
    for (_, addr) in &sockets {
        match Candidate::host(*addr, "udp") {
            Ok(c) => {
                if rtc.add_local_candidate(c).is_some() {
                    added += 1;
                }
                settle(&mut rtc);
            }
            Err(e) => tracing::warn!("{addr} cannot be a candidate: {e}"),
        }
    }
    if added == 0 {
        return Err(RtcError::Bind {
            ip: cfg.bind_ip,
            source: std::io::Error::other("no bound address is usable as an ICE candidate"),
        });
    }
    Ok((rtc, sockets))
}

/// Binds, makes the `Rtc` and starts its task (gathering from the ICE servers begins).
async fn start(cfg: &RtcConfig, answerer: bool) -> Result<(Handles, Trickle), RtcError> {
    let (rtc, sockets) = prepare(cfg).await?;
    let (candidates, local) = mpsc::channel(MAX_LOCAL_CANDIDATES);
    let setup = Setup {
        answerer,
        ice: cfg.ice.clone(),
        candidates,
    };
    let handles = Driver::spawn(rtc, sockets, setup, timing(cfg));
    let trickle = Trickle {
        cmd: handles.cmd_tx.clone(),
        local: Some(local),
    };
    Ok((handles, trickle))
}

/// Asks the task for the offer or answer and waits for it (under `IcePolicy::Relay`, until the
/// first relayed candidate, at most the connect timeout).
async fn request<T>(
    handles: &Handles,
    make: impl FnOnce(oneshot::Sender<Result<T, RtcError>>) -> SdpRequest,
) -> Result<T, RtcError> {
    let (reply, rx) = oneshot::channel();
    handles
        .cmd_tx
        .send(Command::Sdp(make(reply)))
        .map_err(|_| RtcError::Closed)?;
    rx.await.map_err(|_| RtcError::Closed)?
}

pub(super) fn check_label(label: &str) -> Result<(), RtcError> {
    if label.len() > MAX_LABEL_BYTES {
        return Err(RtcError::LabelTooLong(label.len()));
    }
    Ok(())
}

/// Starts a connection as the offerer (the joiner): binds its UDP sockets, creates the given
/// data channels and returns the offer JSON (`{"type":"offer","sdp":"..."}`, host candidates
/// included) with the state that waits for the answer. Candidates gathered from
/// [`RtcConfig::ice`] servers come later from [`PendingOffer::next_local_candidate`].
///
/// `channels` are (label, reliability) pairs; their ids, in the same order, are
/// [`PendingOffer::channels`].
///
/// Errors: [`RtcError::NoChannels`] for an empty list, [`RtcError::LabelTooLong`],
/// [`RtcError::Bind`] when no socket can be bound on [`RtcConfig::bind_ip`],
/// [`RtcError::NoRelayedCandidate`] under [`IcePolicy::Relay`] when no TURN server allocates.
pub async fn create_offer(
    cfg: &RtcConfig,
    channels: &[(&str, Reliability)],
) -> Result<(PendingOffer, String), RtcError> {
    if channels.is_empty() && cfg.negotiated.is_empty() {
        return Err(RtcError::NoChannels);
    }
    let labels = channels.iter().map(|(label, _)| *label);
    for label in labels.chain(cfg.negotiated.iter().map(|n| n.label.as_str())) {
        check_label(label)?;
    }
    check_negotiated(&cfg.negotiated)?;
    let (handles, trickle) = start(cfg, false).await?;
    let channels = channels
        .iter()
        .map(|(label, r)| r.channel_config(label))
        .chain(cfg.negotiated.iter().map(NegotiatedChannel::channel_config))
        .collect();
    let (json, local) = request(&handles, |reply| SdpRequest::Offer { channels, reply }).await?;
    Ok((
        PendingOffer {
            handles,
            local,
            cfg: cfg.clone(),
            trickle,
            remote_candidates: 0,
        },
        json,
    ))
}

/// An offer waiting for its answer: a handle to the connection's task, which holds the bound
/// sockets and the WebRTC state and gathers candidates meanwhile. Dropping it abandons the
/// offer and frees the sockets.
pub struct PendingOffer {
    handles: Handles,
    local: Vec<(ChannelId, ChannelConfig)>,
    cfg: RtcConfig,
    trickle: Trickle,
    /// Trickled answerer candidates so far (bounded by [`MAX_REMOTE_CANDIDATES`]).
    remote_candidates: usize,
}

impl fmt::Debug for PendingOffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingOffer")
            .field("local_addrs", &self.local_addrs())
            .field("channels", &self.channels())
            .finish()
    }
}

impl PendingOffer {
    /// The ids of the channels asked for in [`create_offer`], in the same order.
    pub fn channels(&self) -> Vec<ChannelId> {
        self.local.iter().map(|(id, _)| *id).collect()
    }

    /// The bound UDP sockets' addresses (the host candidates the offer carries, unless the
    /// policy is `Relay`).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.handles.shared.local_addrs.clone()
    }

    /// Keeps a candidate the answerer trickled (forms as
    /// [`PeerConnection::add_remote_candidate`]); it is used once the answer is applied.
    /// While [`PendingOffer::accept_answer`] runs, and after, a [`Trickle`] from
    /// [`PendingOffer::trickle`] adds them.
    ///
    /// Errors: [`RtcError::InvalidCandidate`] for a malformed candidate, or beyond
    /// [`MAX_REMOTE_CANDIDATES`] kept (a peer can't grow a pending offer without bound).
    pub fn add_remote_candidate(&mut self, candidate: &str) -> Result<(), RtcError> {
        let candidate = description::parse_candidate(candidate)?;
        if self.remote_candidates >= MAX_REMOTE_CANDIDATES {
            return Err(RtcError::InvalidCandidate(format!(
                "more than {MAX_REMOTE_CANDIDATES} trickled candidates"
            )));
        }
        self.remote_candidates += 1;
        // A task that has ended takes no candidate; accept_answer then reports why.
        let _ = self.handles.cmd_tx.send(Command::AddCandidate(candidate));
        Ok(())
    }

    /// The next local candidate gathered from [`RtcConfig::ice`] servers (server-reflexive or
    /// relayed), as a `candidate:...` string for the answerer's
    /// [`PeerConnection::add_remote_candidate`]; waits for it. `None` once gathering is over
    /// (at once without ICE servers): stop asking then. Cancel-safe.
    pub async fn next_local_candidate(&mut self) -> Option<String> {
        self.trickle.next_local_candidate().await
    }

    /// A handle that keeps trickling both ways while [`PendingOffer::accept_answer`] runs and
    /// after: it takes over this offer's local candidates (so
    /// [`PendingOffer::next_local_candidate`] returns `None` from then on).
    pub fn trickle(&mut self) -> Trickle {
        Trickle {
            cmd: self.handles.cmd_tx.clone(),
            local: self.trickle.local.take(),
        }
    }

    /// What gathering has found so far.
    pub fn gather_stats(&self) -> GatherStats {
        GatherStats::of(&self.handles.shared)
    }

    /// Applies the answer JSON (`{"type":"answer","sdp":"..."}`) and waits until every channel
    /// of the offer is open, at most [`RtcConfig::connect_timeout`]. The returned connection's
    /// first events are those channels' [`RtcEvent::ChannelOpen`].
    ///
    /// Errors: [`RtcError::InvalidDescription`] for a malformed answer,
    /// [`RtcError::Refused`] for one that does not fit the offer,
    /// [`RtcError::ConnectTimeout`] when the channels do not open in time (peer unreachable, or
    /// not running), [`RtcError::ConnectFailed`] when the peer closes first.
    pub async fn accept_answer(self, answer_json: &str) -> Result<PeerConnection, RtcError> {
        let (answer, sdp) = description::parse_answer(answer_json)?;
        let PendingOffer {
            handles,
            local,
            cfg,
            trickle,
            ..
        } = self;
        let (reply, rx) = oneshot::channel();
        handles
            .cmd_tx
            .send(Command::ApplyAnswer { answer, sdp, reply })
            .map_err(|_| RtcError::Closed)?;
        rx.await.map_err(|_| RtcError::Closed)??;
        let mut pc = PeerConnection::new(handles, &cfg, trickle);
        pc.wait_open(
            local.iter().map(|(id, _)| *id).collect(),
            cfg.connect_timeout,
        )
        .await?;
        Ok(pc)
    }
}

fn timing(cfg: &RtcConfig) -> Timing {
    Timing {
        connect_timeout: cfg.connect_timeout,
        idle_timeout: cfg.idle_timeout,
    }
}

/// Answers an offer JSON (`{"type":"offer","sdp":"..."}`) as the host: binds UDP sockets and
/// returns the answer JSON to send back, with the connection. The connection comes up once the
/// offerer applies the answer; the offerer's channels then arrive as
/// [`RtcEvent::ChannelOpen`]. If it is not up within [`RtcConfig::connect_timeout`], the events
/// end with `Disconnected { reason: ConnectTimeout }`. Candidates gathered from
/// [`RtcConfig::ice`] servers come from [`PeerConnection::next_local_candidate`].
///
/// Errors: [`RtcError::InvalidDescription`] for malformed JSON/SDP or an offer without a data
/// channel, [`RtcError::Refused`] for an offer the stack refuses, [`RtcError::Bind`],
/// [`RtcError::NoRelayedCandidate`] under [`IcePolicy::Relay`] when no TURN server allocates.
pub async fn accept_offer(
    cfg: &RtcConfig,
    offer_json: &str,
) -> Result<(String, PeerConnection), RtcError> {
    let (offer, sdp) = description::parse_offer(offer_json)?;
    for n in &cfg.negotiated {
        check_label(&n.label)?;
    }
    check_negotiated(&cfg.negotiated)?;
    let (handles, trickle) = start(cfg, true).await?;
    let channels = cfg
        .negotiated
        .iter()
        .map(NegotiatedChannel::channel_config)
        .collect();
    let json = request(&handles, |reply| SdpRequest::Answer {
        offer,
        sdp,
        channels,
        reply,
    })
    .await?;
    Ok((json, PeerConnection::new(handles, cfg, trickle)))
}

/// Negotiated stream ids must differ (str0m refuses a second channel on a stream id) and be
/// valid SCTP stream ids (65535 is reserved).
fn check_negotiated(list: &[NegotiatedChannel]) -> Result<(), RtcError> {
    let mut seen = std::collections::HashSet::new();
    for n in list {
        if n.id == u16::MAX || !seen.insert(n.id) {
            return Err(RtcError::Negotiation(format!(
                "negotiated channel {:?}: stream id {} is reserved or taken twice",
                n.label, n.id
            )));
        }
    }
    Ok(())
}

/// One WebRTC connection to a peer: a handle to the task that owns its UDP sockets and WebRTC
/// state. Dropping it closes the connection gracefully.
///
/// Read events promptly: up to 1024 unread events are kept; past that the task stops reading
/// the network until the application catches up (and the peer may time the connection out).
pub struct PeerConnection {
    sender: RtcSender,
    events: mpsc::Receiver<RtcEvent>,
    early: VecDeque<RtcEvent>,
    channels: Vec<ChannelId>,
    task: Option<tokio::task::JoinHandle<()>>,
    trickle: Trickle,
}

impl fmt::Debug for PeerConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerConnection")
            .field("stats", &self.stats())
            .finish()
    }
}

impl PeerConnection {
    fn new(h: Handles, cfg: &RtcConfig, trickle: Trickle) -> Self {
        let Handles {
            cmd_tx,
            ev_rx,
            shared,
            task,
        } = h;
        PeerConnection {
            sender: RtcSender {
                cmd: cmd_tx,
                shared,
                max_message: cfg.max_message_bytes.min(SCTP_BUFFER_BYTES),
                max_queued: cfg.max_queued_bytes,
            },
            events: ev_rx,
            early: VecDeque::new(),
            channels: Vec::new(),
            task: Some(task),
            trickle,
        }
    }

    /// Waits for `ids` to open, keeping the events for `next_event`.
    async fn wait_open(
        &mut self,
        mut ids: Vec<ChannelId>,
        timeout: Duration,
    ) -> Result<(), RtcError> {
        self.channels = ids.clone();
        // The task enforces the timeout; this margin only guards against a stalled task.
        let deadline =
            crate::time::deadline_after(timeout.saturating_add(Duration::from_millis(500)));
        while !ids.is_empty() {
            let ev = match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Err(_) => return Err(RtcError::ConnectTimeout(timeout)),
                Ok(None) => return Err(RtcError::Closed),
                Ok(Some(ev)) => ev,
            };
            match &ev {
                RtcEvent::ChannelOpen { channel, .. } => ids.retain(|id| id != channel),
                RtcEvent::Disconnected {
                    reason: DisconnectReason::ConnectTimeout,
                } => return Err(RtcError::ConnectTimeout(timeout)),
                RtcEvent::Disconnected { reason } => {
                    return Err(RtcError::ConnectFailed(reason.clone()))
                }
                _ => {}
            }
            self.early.push_back(ev);
        }
        Ok(())
    }

    /// The next event, waiting for it; `None` once the connection has ended and every event
    /// (the last being [`RtcEvent::Disconnected`]) has been read. Cancel-safe.
    pub async fn next_event(&mut self) -> Option<RtcEvent> {
        if let Some(ev) = self.early.pop_front() {
            return Some(ev);
        }
        self.events.recv().await
    }

    /// The ids of the channels this side offered (in [`create_offer`] order); empty on the
    /// answering side, which learns channels from [`RtcEvent::ChannelOpen`].
    pub fn channels(&self) -> &[ChannelId] {
        &self.channels
    }

    /// A cloneable sending handle for other tasks.
    pub fn sender(&self) -> RtcSender {
        self.sender.clone()
    }

    /// [`RtcSender::send`] on this connection.
    pub fn send(&self, channel: ChannelId, data: &[u8]) -> Result<(), RtcError> {
        self.sender.send(channel, data)
    }

    /// [`RtcSender::send_text`] on this connection.
    pub fn send_text(&self, channel: ChannelId, text: &str) -> Result<(), RtcError> {
        self.sender.send_text(channel, text)
    }

    /// [`RtcSender::open_channel`] on this connection.
    pub async fn open_channel(
        &self,
        label: &str,
        reliability: Reliability,
    ) -> Result<ChannelId, RtcError> {
        self.sender.open_channel(label, reliability).await
    }

    /// [`RtcSender::close_channel`] on this connection.
    pub fn close_channel(&self, channel: ChannelId) -> Result<(), RtcError> {
        self.sender.close_channel(channel)
    }

    /// Adds a remote ICE candidate trickled by the peer: `candidate:...`, `a=candidate:...`, or
    /// the browser's `{"candidate":"candidate:...",...}` JSON.
    ///
    /// Errors: [`RtcError::InvalidCandidate`] (mDNS `.local` names included: they cannot be
    /// resolved), [`RtcError::Closed`].
    pub fn add_remote_candidate(&self, candidate: &str) -> Result<(), RtcError> {
        let c = description::parse_candidate(candidate)?;
        self.sender
            .cmd
            .send(Command::AddCandidate(c))
            .map_err(|_| RtcError::Closed)
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Why the connection ended ([`DisconnectReason::Timeout`]: nothing heard from the peer
    /// for [`RtcConfig::idle_timeout`]), as soon as it is ending; `None` while it is up. Set
    /// before the end's events ([`RtcEvent::ChannelClosed`], [`RtcEvent::Disconnected`]) are
    /// queued, so a reader that saw them can ask here (e.g. through a wrapper that hides
    /// `Disconnected`).
    pub fn disconnect_reason(&self) -> Option<DisconnectReason> {
        crate::sync::lock(&self.sender.shared.reason).clone()
    }

    /// The next local candidate gathered from [`RtcConfig::ice`] servers, to send to the peer
    /// (see [`Trickle::next_local_candidate`]). `None` once gathering is over. Cancel-safe.
    pub async fn next_local_candidate(&mut self) -> Option<String> {
        self.trickle.next_local_candidate().await
    }

    /// A handle that trickles for this connection from another task; it takes over the local
    /// candidates ([`PeerConnection::next_local_candidate`] returns `None` from then on).
    pub fn trickle(&mut self) -> Trickle {
        Trickle {
            cmd: self.sender.cmd.clone(),
            local: self.trickle.local.take(),
        }
    }

    /// The path traffic takes: the candidate pair DTLS and SCTP are sent on, its kind (host,
    /// srflx, prflx, relay) and for a relayed path the TURN server. `None` until the first
    /// DTLS packet is sent.
    pub fn path(&self) -> Option<SelectedPath> {
        crate::sync::lock(&self.sender.shared.path).clone()
    }

    /// What gathering from the ICE servers found.
    pub fn gather_stats(&self) -> GatherStats {
        GatherStats::of(&self.sender.shared)
    }

    /// The peer's address traffic last came from; `None` until connected.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        *crate::sync::lock(&self.sender.shared.remote_addr)
    }

    /// Traffic counters.
    pub fn stats(&self) -> PeerStats {
        let s = &self.sender.shared;
        PeerStats {
            local_addrs: s.local_addrs.clone(),
            remote_addr: *crate::sync::lock(&s.remote_addr),
            bytes_sent: s.bytes_sent.load(Ordering::Relaxed),
            bytes_received: s.bytes_received.load(Ordering::Relaxed),
            queued_bytes: s.queued_bytes.load(Ordering::Relaxed),
            messages_dropped: s.messages_dropped.load(Ordering::Relaxed),
        }
    }

    /// Closes the connection gracefully (SCTP shutdown and DTLS close_notify, so the peer sees
    /// [`DisconnectReason::RemoteClosed`] at once) and waits, at most about a second, for the
    /// task to end. Messages still queued are dropped.
    pub async fn close(mut self) {
        let _ = self.sender.cmd.send(Command::Close);
        // Nobody reads events any more; the task must not wait on a full queue.
        self.events.close();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
        }
    }
}
