//! WebRTC peer connections with data channels, for the lobby.
//!
//! A joiner calls [`create_offer`] and sends the offer JSON to the host (through the signalling
//! logs); the host calls [`accept_offer`] and sends back the answer JSON; the joiner calls
//! [`PendingOffer::accept_answer`]. Both then hold a [`PeerConnection`]: read [`RtcEvent`]s with
//! [`PeerConnection::next_event`], send with [`PeerConnection::send`] or a cloned
//! [`RtcSender`].
//!
//! Offers and answers are the browser's `RTCSessionDescriptionInit` JSON
//! (`{"type":"offer","sdp":"..."}`), so a browser can be either peer. Host candidates (the
//! machine's own interface addresses, see [`RtcConfig::bind_ip`]) are in the SDP, written at
//! once. With STUN/TURN servers in [`RtcConfig::ice`], server-reflexive (STUN Binding,
//! RFC 8489) and relayed (TURN, RFC 8656, over UDP or TCP) candidates are gathered in the
//! background and **trickled**: read them with [`PendingOffer::next_local_candidate`] (the
//! offerer, before and while the answer is applied: see [`PendingOffer::trickle`]) or
//! [`PeerConnection::next_local_candidate`] (the answerer), and hand them to the peer, whose
//! [`PeerConnection::add_remote_candidate`] / [`PendingOffer::add_remote_candidate`] take them.
//! Under [`crate::ice::IcePolicy::Relay`] only relayed candidates are offered or used, and the
//! offer or answer waits for the first one (so its SDP carries it; at most the connect
//! timeout, then [`RtcError::NoRelayedCandidate`]).
//!
//! Which path the traffic took (host, srflx, prflx or relay; docs/NAT.md) is
//! [`PeerConnection::path`]. The best pair wins by ICE priority (RFC 8445 §5.1.2): host before
//! server-reflexive before relayed, so TURN carries traffic only where nothing direct works.
//!
//! Built on str0m 0.25.0 (sans-IO WebRTC: ICE, DTLS 1.2, SCTP, DCEP per RFC 8831/8832), driven
//! by one tokio task per connection that owns its UDP sockets and TCP streams to TURN servers.
//! str0m does no address discovery: the STUN and TURN clients are ours (`gather`, on the
//! sans-IO `turn-client-proto` crate).
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

mod connection;
mod description;
mod driver;
mod error;
mod gather;
mod local;
mod path;
mod sender;
mod trickle;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use str0m::channel::ChannelConfig;

pub use connection::{accept_offer, create_offer, warm_up, PeerConnection, PendingOffer};
pub use description::MAX_DESCRIPTION_BYTES;
pub use error::RtcError;
pub use path::SelectedPath;
pub use sender::RtcSender;
/// Identifies a data channel within one [`PeerConnection`] (not the SCTP stream id).
pub use str0m::channel::ChannelId;
pub use trickle::{GatherStats, Trickle};

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
    /// interface address of that family (loopback only when there is no other), each a host
    /// candidate: what real use across machines needs.
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
    /// STUN/TURN servers to gather server-reflexive and relayed candidates from, and the
    /// policy (the browser's `iceServers` and `iceTransportPolicy`). Default: no servers,
    /// policy `all`: host candidates only, as without this field.
    pub ice: crate::ice::IceConfig,
    /// Data channels opened out of band on stream ids agreed in signalling (the browser's
    /// `createDataChannel(label, {negotiated: true, id})`, RFC 8832 §4): no DCEP
    /// open/ack round trip, they open on both sides as soon as SCTP is up. The offerer's go
    /// into its offer ([`create_offer`], after its in-band channels), the answerer's are
    /// opened when it answers ([`accept_offer`]); both sides must list the same ids, labels and
    /// reliability. Default: none.
    pub negotiated: Vec<NegotiatedChannel>,
}

/// A data channel both sides open themselves on an agreed SCTP stream id
/// ([`RtcConfig::negotiated`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NegotiatedChannel {
    /// The label [`RtcEvent::ChannelOpen`] reports.
    pub label: String,
    /// How it delivers.
    pub reliability: Reliability,
    /// The SCTP stream id, 0 to 65534, the same on both sides. In-band channels take even ids
    /// on the DTLS client and odd ones on the server, skipping the ids taken here.
    pub id: u16,
}

impl NegotiatedChannel {
    fn channel_config(&self) -> ChannelConfig {
        ChannelConfig {
            negotiated: Some(self.id),
            ..self.reliability.channel_config(&self.label)
        }
    }
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
            ice: crate::ice::IceConfig::default(),
            negotiated: Vec::new(),
        }
    }
}

impl RtcConfig {
    /// The defaults, binding every IPv4 interface address (loopback only when there is no
    /// other).
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
    /// The connection's traffic moved to another candidate pair after it connected: ICE found
    /// a better pair than the one it first nominated (e.g. server-reflexive after relayed,
    /// RFC 8445 §8.1.1 lets the controlling agent nominate again) or the first one failed.
    /// [`PeerConnection::path`] returns the same from now on.
    PathChanged {
        /// The new path.
        path: SelectedPath,
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

#[cfg(test)]
mod tests;
