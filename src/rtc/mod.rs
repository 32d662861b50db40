//! WebRTC peer connections with data channels, for the lobby.
//!
//! A joiner calls [`create_offer`] and sends the offer JSON to the host (through the signalling
//! logs); the host calls [`accept_offer`] and sends back the answer JSON; the joiner calls
//! [`PendingOffer::accept_answer`]. Both then hold a [`PeerConnection`]: read [`RtcEvent`]s with
//! [`PeerConnection::next_event`], send with [`PeerConnection::send`] or a cloned
//! [`RtcSender`].
//!
//! Offers and answers are the browser's `RTCSessionDescriptionInit` JSON
//! (`{"type":"offer","sdp":"..."}`), so a browser can be either peer. All local candidates are in
//! the SDP (no trickle needed); [`PeerConnection::add_remote_candidate`] takes trickled ones.
//!
//! Built on str0m 0.25.0 (sans-IO WebRTC: ICE, DTLS 1.2, SCTP, DCEP per RFC 8831/8832), driven
//! by one tokio task per connection that owns its UDP sockets. No STUN/TURN: candidates are the
//! host's own interface addresses (see [`RtcConfig::bind_ip`]), so peers must reach each other
//! directly (same machine, LAN, or public addresses).
//!
//! ```no_run
//! # async fn demo() -> Result<(), dat_social::rtc::RtcError> {
//! use dat_social::rtc::{self, Reliability, RtcConfig, RtcEvent};
//! let cfg = RtcConfig::default(); // loopback
//! let (pending, offer) = rtc::create_offer(&cfg, &[("chat", Reliability::Reliable)]).await?;
//! let (answer, mut host) = rtc::accept_offer(&cfg, &offer).await?; // on the host
//! let joiner = pending.accept_answer(&answer).await?; // channels are open now
//! joiner.send(joiner.channels()[0], b"hello")?;
//! while let Some(ev) = host.next_event().await {
//!     if let RtcEvent::Message { data, .. } = ev {
//!         assert_eq!(data, b"hello");
//!         break;
//!     }
//! }
//! # Ok(()) }
//! ```

mod description;
mod driver;
mod error;
mod local;

use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use str0m::change::SdpPendingOffer;
use str0m::channel::ChannelConfig;
use str0m::crypto::CryptoProvider;
use str0m::{Candidate, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

pub use description::MAX_DESCRIPTION_BYTES;
pub use error::RtcError;
/// Identifies a data channel within one [`PeerConnection`] (not the SCTP stream id).
pub use str0m::channel::ChannelId;

use description::Kind;
use driver::{Command, Driver, Handles, Shared, Timing};

/// Longest channel label accepted, in bytes (DCEP allows 65535; labels are short names).
pub const MAX_LABEL_BYTES: usize = 1024;

/// SCTP send buffer per connection, in bytes (str0m's default). A message must fit in it.
const SCTP_BUFFER_BYTES: usize = 128 * 1024;

/// Most trickled candidates a [`PendingOffer`] keeps until its answer arrives: 64 (a host
/// has a few per interface; browsers gather fewer than 20).
pub const MAX_REMOTE_CANDIDATES: usize = 64;

/// Settings for one peer connection.
#[derive(Clone, Debug)]
pub struct RtcConfig {
    /// Where to bind the connection's UDP sockets. A specific address (the default,
    /// `127.0.0.1`) binds one socket there, which is the only candidate. The unspecified
    /// address (`0.0.0.0` or `::`, see [`RtcConfig::all_interfaces`]) binds one socket per
    /// interface address of that family, loopback always included, each a host candidate:
    /// what real use across machines needs.
    pub bind_ip: IpAddr,
    /// How long the channels may take to open once the answer is applied (offerer), or the
    /// connection to come up once the answer is made (answerer). Default 10 s.
    pub connect_timeout: Duration,
    /// Silence after which an open connection counts as lost ([`DisconnectReason::Timeout`]).
    /// ICE consent checks run every `idle_timeout / 4` (clamped to 0.2-3 s) on both ends, so a
    /// live peer is never this quiet. Default 5 s.
    pub idle_timeout: Duration,
    /// Largest message [`RtcSender::send`] accepts, in bytes; at most 128 KiB (the SCTP send
    /// buffer). Browsers accept up to 256 KiB. Default 64 KiB.
    pub max_message_bytes: usize,
    /// Most bytes that may wait to be sent on one connection before [`RtcSender::send`] fails
    /// with [`RtcError::QueueFull`]. Default 1 MiB.
    pub max_queued_bytes: usize,
}

impl Default for RtcConfig {
    /// Loopback only (`127.0.0.1`): tests and two peers on one machine. Use
    /// [`RtcConfig::all_interfaces`] for peers on other machines.
    fn default() -> Self {
        RtcConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(5),
            max_message_bytes: 64 * 1024,
            max_queued_bytes: 1024 * 1024,
        }
    }
}

impl RtcConfig {
    /// The defaults, binding every IPv4 interface address (loopback included).
    pub fn all_interfaces() -> Self {
        RtcConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            ..RtcConfig::default()
        }
    }

    fn keepalive(&self) -> Duration {
        (self.idle_timeout / 4).clamp(Duration::from_millis(200), Duration::from_secs(3))
    }
}

/// How a data channel delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reliability {
    /// Every message arrives, in order (SCTP reliable, ordered): chat, commands.
    Reliable,
    /// Messages may be lost or reordered, never retransmitted (DCEP
    /// `DATA_CHANNEL_PARTIAL_RELIABLE_REXMIT_UNORDERED` with 0 retransmits; the browser's
    /// `{ordered: false, maxRetransmits: 0}`): game state, where only the newest counts.
    /// Messages SCTP has no room for are dropped rather than queued.
    Unreliable,
}

impl Reliability {
    fn channel_config(self, label: &str) -> ChannelConfig {
        let (ordered, reliability) = match self {
            Reliability::Reliable => (true, str0m::channel::Reliability::Reliable),
            Reliability::Unreliable => (
                false,
                str0m::channel::Reliability::MaxRetransmits { retransmits: 0 },
            ),
        };
        ChannelConfig {
            label: label.to_owned(),
            ordered,
            reliability,
            negotiated: None,
            protocol: String::new(),
        }
    }
}

/// A channel's delivery parameters as negotiated in-band (DCEP, RFC 8832 §5.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelParams {
    /// Messages are delivered in order.
    pub ordered: bool,
    /// `Some(n)`: a message is retransmitted at most `n` times (0 = sent once).
    pub max_retransmits: Option<u16>,
    /// `Some(ms)`: a message is retransmitted for at most this many milliseconds.
    pub max_packet_lifetime_ms: Option<u16>,
    /// The sub-protocol name the opener gave (often empty).
    pub protocol: String,
}

impl ChannelParams {
    fn from_config(c: &ChannelConfig) -> Self {
        let (max_retransmits, max_packet_lifetime_ms) = match c.reliability {
            str0m::channel::Reliability::Reliable => (None, None),
            str0m::channel::Reliability::MaxRetransmits { retransmits } => {
                (Some(retransmits), None)
            }
            str0m::channel::Reliability::MaxPacketLifetime { lifetime } => (None, Some(lifetime)),
        };
        ChannelParams {
            ordered: c.ordered,
            max_retransmits,
            max_packet_lifetime_ms,
            protocol: c.protocol.clone(),
        }
    }

    fn is_lossy(&self) -> bool {
        self.reliability() == Reliability::Unreliable
    }

    /// [`Reliability::Reliable`] for a fully reliable ordered channel, otherwise
    /// [`Reliability::Unreliable`] (any partial reliability or unordered delivery, e.g. a
    /// browser's `{maxRetransmits: 3}`).
    pub fn reliability(&self) -> Reliability {
        if self.ordered && self.max_retransmits.is_none() && self.max_packet_lifetime_ms.is_none() {
            Reliability::Reliable
        } else {
            Reliability::Unreliable
        }
    }
}

/// Why a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisconnectReason {
    /// We closed it ([`PeerConnection::close`], or the `PeerConnection` was dropped).
    LocalClosed,
    /// The peer closed it (SCTP shutdown / DTLS close_notify).
    RemoteClosed,
    /// Nothing was heard from the peer for [`RtcConfig::idle_timeout`]: it vanished.
    Timeout,
    /// The connection did not come up within [`RtcConfig::connect_timeout`].
    ConnectTimeout,
    /// The WebRTC stack or the socket failed; the text says how.
    Error(String),
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectReason::LocalClosed => f.write_str("closed locally"),
            DisconnectReason::RemoteClosed => f.write_str("closed by the peer"),
            DisconnectReason::Timeout => f.write_str("peer went silent"),
            DisconnectReason::ConnectTimeout => f.write_str("connect timeout"),
            DisconnectReason::Error(e) => write!(f, "error: {e}"),
        }
    }
}

/// What happens on a connection, in order. Every `ChannelOpen` is followed by exactly one
/// `ChannelClosed` for that channel, and `Disconnected` is the last event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RtcEvent {
    /// A data channel is open (opened by either side); messages can flow.
    ChannelOpen {
        /// Its id on this connection.
        channel: ChannelId,
        /// The label the opener gave it.
        label: String,
        /// Its delivery parameters.
        params: ChannelParams,
    },
    /// A message arrived.
    Message {
        /// The channel it came on.
        channel: ChannelId,
        /// Its bytes.
        data: Vec<u8>,
        /// Sent as binary (`true`) or as a string (`false`, UTF-8 from a browser).
        binary: bool,
    },
    /// A data channel closed (by either side, or because the connection ended).
    ChannelClosed {
        /// Its id.
        channel: ChannelId,
    },
    /// The connection ended; no more events follow.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
    },
}

/// Traffic counters of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStats {
    /// The local candidates (bound UDP sockets).
    pub local_addrs: Vec<SocketAddr>,
    /// The peer address traffic last came from, once connected.
    pub remote_addr: Option<SocketAddr>,
    /// UDP payload bytes sent (ICE, DTLS, SCTP together).
    pub bytes_sent: u64,
    /// UDP payload bytes received from the peer.
    pub bytes_received: u64,
    /// Message bytes given to `send` and not yet taken by SCTP.
    pub queued_bytes: usize,
    /// Messages dropped: no room on an unreliable channel, their channel closed, or refused by
    /// the peer's message size limit.
    pub messages_dropped: u64,
}

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

fn build_rtc(cfg: &RtcConfig) -> Rtc {
    let mut b = Rtc::builder()
        .set_crypto_provider(crypto())
        .set_sctp_max_buffered_amount(SCTP_BUFFER_BYTES);
    // Consent checks on the chosen pair run at most this far apart; they are what the idle
    // timeout listens for.
    b.set_max_stun_rto(cfg.keepalive());
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

/// Binds the sockets and makes an `Rtc` with their addresses as host candidates.
async fn prepare(cfg: &RtcConfig) -> Result<(Rtc, Vec<(UdpSocket, SocketAddr)>), RtcError> {
    let sockets = local::bind(cfg.bind_ip).await?;
    let mut rtc = build_rtc(cfg);
    settle(&mut rtc);
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

fn check_label(label: &str) -> Result<(), RtcError> {
    if label.len() > MAX_LABEL_BYTES {
        return Err(RtcError::LabelTooLong(label.len()));
    }
    Ok(())
}

/// Starts a connection as the offerer (the joiner): binds its UDP sockets, creates the given
/// data channels and returns the offer JSON (`{"type":"offer","sdp":"..."}`, local candidates
/// included) with the state that waits for the answer.
///
/// `channels` are (label, reliability) pairs; their ids, in the same order, are
/// [`PendingOffer::channels`].
///
/// Errors: [`RtcError::NoChannels`] for an empty list, [`RtcError::LabelTooLong`],
/// [`RtcError::Bind`] when no socket can be bound on [`RtcConfig::bind_ip`].
pub async fn create_offer(
    cfg: &RtcConfig,
    channels: &[(&str, Reliability)],
) -> Result<(PendingOffer, String), RtcError> {
    if channels.is_empty() {
        return Err(RtcError::NoChannels);
    }
    for (label, _) in channels {
        check_label(label)?;
    }
    let (mut rtc, sockets) = prepare(cfg).await?;
    let mut api = rtc.sdp_api();
    let local: Vec<(ChannelId, ChannelConfig)> = channels
        .iter()
        .map(|(label, r)| {
            let config = r.channel_config(label);
            (api.add_channel_with_config(config.clone()), config)
        })
        .collect();
    let (offer, pending) = api
        .apply()
        .ok_or_else(|| RtcError::Negotiation("str0m made no offer".into()))?;
    settle(&mut rtc);
    let json = description::to_json(Kind::Offer, &offer.to_sdp_string());
    Ok((
        PendingOffer {
            rtc,
            sockets,
            pending,
            local,
            cfg: cfg.clone(),
            remote_candidates: Vec::new(),
        },
        json,
    ))
}

/// An offer waiting for its answer: holds the bound sockets and the WebRTC state. Dropping it
/// abandons the offer and frees the sockets.
pub struct PendingOffer {
    rtc: Rtc,
    sockets: Vec<(UdpSocket, SocketAddr)>,
    pending: SdpPendingOffer,
    local: Vec<(ChannelId, ChannelConfig)>,
    cfg: RtcConfig,
    /// Trickled answerer candidates, applied with the answer.
    remote_candidates: Vec<Candidate>,
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

    /// The local candidates (bound UDP sockets) the offer carries.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets.iter().map(|(_, a)| *a).collect()
    }

    /// Keeps a candidate the answerer trickled (forms as
    /// [`PeerConnection::add_remote_candidate`]); it is used once the answer is applied.
    /// Candidates trickled after [`PendingOffer::accept_answer`] has begun cannot be added:
    /// the answerer should put all its candidates in the answer (this module always does).
    ///
    /// Errors: [`RtcError::InvalidCandidate`] for a malformed candidate, or beyond
    /// [`MAX_REMOTE_CANDIDATES`] kept (a peer can't grow a pending offer without bound).
    pub fn add_remote_candidate(&mut self, candidate: &str) -> Result<(), RtcError> {
        let candidate = description::parse_candidate(candidate)?;
        if self.remote_candidates.len() >= MAX_REMOTE_CANDIDATES {
            return Err(RtcError::InvalidCandidate(format!(
                "more than {MAX_REMOTE_CANDIDATES} trickled candidates"
            )));
        }
        self.remote_candidates.push(candidate);
        Ok(())
    }

    /// Applies the answer JSON (`{"type":"answer","sdp":"..."}`) and waits until every channel
    /// of the offer is open, at most [`RtcConfig::connect_timeout`]. The returned connection's
    /// first events are those channels' [`RtcEvent::ChannelOpen`].
    ///
    /// Errors: [`RtcError::InvalidDescription`] for a malformed answer,
    /// [`RtcError::Negotiation`] for one that does not fit the offer,
    /// [`RtcError::ConnectTimeout`] when the channels do not open in time (peer unreachable, or
    /// not running), [`RtcError::ConnectFailed`] when the peer closes first.
    pub async fn accept_answer(self, answer_json: &str) -> Result<PeerConnection, RtcError> {
        let answer = description::parse_answer(answer_json)?;
        let PendingOffer {
            mut rtc,
            sockets,
            pending,
            local,
            cfg,
            remote_candidates,
        } = self;
        let applied = catch_unwind(AssertUnwindSafe(|| {
            rtc.sdp_api().accept_answer(pending, answer)
        }));
        match applied {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(RtcError::Negotiation(e.to_string())),
            Err(_) => {
                return Err(RtcError::Negotiation(
                    "the answer crashed the parser".into(),
                ))
            }
        }
        let handles = Driver::spawn(rtc, sockets, &local, true, timing(&cfg));
        for c in remote_candidates {
            // The task applies these after its first drain, as str0m requires.
            let _ = handles.cmd_tx.send(Command::AddCandidate(c));
        }
        let mut pc = PeerConnection::new(handles, &cfg);
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
/// end with `Disconnected { reason: ConnectTimeout }`.
///
/// Errors: [`RtcError::InvalidDescription`] for malformed JSON/SDP or an offer without a data
/// channel, [`RtcError::Negotiation`] for an offer the stack refuses, [`RtcError::Bind`].
pub async fn accept_offer(
    cfg: &RtcConfig,
    offer_json: &str,
) -> Result<(String, PeerConnection), RtcError> {
    let offer = description::parse_offer(offer_json)?;
    let (mut rtc, sockets) = prepare(cfg).await?;
    let answer = match catch_unwind(AssertUnwindSafe(|| rtc.sdp_api().accept_offer(offer))) {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => return Err(RtcError::Negotiation(e.to_string())),
        Err(_) => return Err(RtcError::Negotiation("the offer crashed the parser".into())),
    };
    let json = description::to_json(Kind::Answer, &answer.to_sdp_string());
    let handles = Driver::spawn(rtc, sockets, &[], false, timing(cfg));
    Ok((json, PeerConnection::new(handles, cfg)))
}

/// A cloneable handle that sends on a [`PeerConnection`] from any task. Cheap to clone; all
/// clones feed one queue.
#[derive(Clone)]
pub struct RtcSender {
    cmd: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    max_message: usize,
    max_queued: usize,
}

impl fmt::Debug for RtcSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtcSender")
            .field("local_addrs", &self.shared.local_addrs)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl RtcSender {
    /// Queues `data` as one binary message on `channel`. Returns at once; reliable channels
    /// deliver in order, unreliable ones may drop it. A message for a channel that is not open
    /// yet waits for it; for an unknown or closed channel it is dropped (counted in
    /// [`PeerStats::messages_dropped`]).
    ///
    /// Errors: [`RtcError::Closed`] once the connection has ended,
    /// [`RtcError::MessageTooLarge`] above [`RtcConfig::max_message_bytes`],
    /// [`RtcError::QueueFull`] when [`RtcConfig::max_queued_bytes`] are already waiting.
    pub fn send(&self, channel: ChannelId, data: &[u8]) -> Result<(), RtcError> {
        self.enqueue(channel, data.to_vec(), true)
    }

    /// Like [`RtcSender::send`], as a text message (a browser receives a string).
    pub fn send_text(&self, channel: ChannelId, text: &str) -> Result<(), RtcError> {
        self.enqueue(channel, text.as_bytes().to_vec(), false)
    }

    /// Like [`RtcSender::send`], but when [`RtcConfig::max_queued_bytes`] are already waiting
    /// it waits for SCTP to take enough of them instead of failing: back-pressure for a
    /// producer (e.g. pasted chat) that must not lose messages. Cancel-safe (nothing is queued
    /// until it returns `Ok`). Bound the wait with a timeout if the peer may stall.
    ///
    /// Errors: [`RtcError::Closed`] once the connection has ended (also while waiting),
    /// [`RtcError::MessageTooLarge`].
    pub async fn send_wait(&self, channel: ChannelId, data: &[u8]) -> Result<(), RtcError> {
        self.enqueue_wait(channel, data, true).await
    }

    /// [`RtcSender::send_wait`] as a text message.
    pub async fn send_text_wait(&self, channel: ChannelId, text: &str) -> Result<(), RtcError> {
        self.enqueue_wait(channel, text.as_bytes(), false).await
    }

    async fn enqueue_wait(
        &self,
        channel: ChannelId,
        data: &[u8],
        binary: bool,
    ) -> Result<(), RtcError> {
        loop {
            // Register for the wake-up before trying, so that a drain in between is not missed.
            let drained = self.shared.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            match self.enqueue(channel, data.to_vec(), binary) {
                Err(RtcError::QueueFull { .. }) => drained.await,
                other => return other,
            }
        }
    }

    fn enqueue(&self, channel: ChannelId, data: Vec<u8>, binary: bool) -> Result<(), RtcError> {
        if self.is_closed() {
            return Err(RtcError::Closed);
        }
        let len = data.len();
        if len > self.max_message {
            return Err(RtcError::MessageTooLarge {
                len,
                max: self.max_message,
            });
        }
        let before = self.shared.queued_bytes.fetch_add(len, Ordering::AcqRel);
        if before + len > self.max_queued {
            self.shared.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            return Err(RtcError::QueueFull {
                queued: before,
                max: self.max_queued,
            });
        }
        self.cmd
            .send(Command::Send {
                channel,
                data,
                binary,
            })
            .map_err(|_| {
                self.shared.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                RtcError::Closed
            })
    }

    /// Opens another data channel (announced in-band, no new offer/answer). Returns its id at
    /// once; [`RtcEvent::ChannelOpen`] follows when the peer has it, and messages sent before
    /// then wait.
    ///
    /// Errors: [`RtcError::Closed`], [`RtcError::LabelTooLong`].
    pub async fn open_channel(
        &self,
        label: &str,
        reliability: Reliability,
    ) -> Result<ChannelId, RtcError> {
        check_label(label)?;
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Command::Open {
                config: reliability.channel_config(label),
                reply,
            })
            .map_err(|_| RtcError::Closed)?;
        rx.await.map_err(|_| RtcError::Closed)?
    }

    /// Closes one data channel (SCTP stream reset); both sides then see
    /// [`RtcEvent::ChannelClosed`]. Messages still queued for it are dropped.
    ///
    /// Errors: [`RtcError::Closed`].
    pub fn close_channel(&self, channel: ChannelId) -> Result<(), RtcError> {
        self.cmd
            .send(Command::CloseChannel(channel))
            .map_err(|_| RtcError::Closed)
    }

    /// Whether the connection has ended (sends fail from then on).
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
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
}

impl fmt::Debug for PeerConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerConnection")
            .field("stats", &self.stats())
            .finish()
    }
}

impl PeerConnection {
    fn new(h: Handles, cfg: &RtcConfig) -> Self {
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

#[cfg(test)]
mod tests;
