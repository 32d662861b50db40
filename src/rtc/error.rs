//! The errors of [`crate::rtc`].

use std::time::Duration;

use super::DisconnectReason;

/// Everything that can go wrong setting up or using a WebRTC peer connection.
///
/// Errors a remote peer can cause (a malformed offer, answer or candidate; a peer that never
/// answers) are values here, never panics.
#[derive(Debug, thiserror::Error)]
pub enum RtcError {
    /// The offer/answer string is not the browser's session description JSON
    /// (`{"type":"offer"|"answer","sdp":"..."}`), has the wrong `type`, is too large, or its SDP
    /// does not parse or has no data channel (`m=application`) section. Ask the peer for a new
    /// offer/answer.
    #[error("invalid session description: {0}")]
    InvalidDescription(String),

    /// An ICE candidate string is neither a `candidate:...` attribute (optionally prefixed
    /// `a=`) nor the browser's `RTCIceCandidateInit` JSON, or names an unusable address.
    #[error("invalid ICE candidate: {0}")]
    InvalidCandidate(String),

    /// The offer/answer exchange can't go on, for a reason this crate states (the stack made
    /// no offer, a parser panicked on the peer's description, a channel would need a new
    /// offer/answer).
    #[error("offer/answer negotiation failed: {0}")]
    Negotiation(String),

    /// The SDP parsed but the WebRTC stack (str0m) refused it (e.g. an answer that does not
    /// match our offer, or incompatible DTLS/ICE parameters); str0m's error is the source.
    #[error("offer/answer negotiation failed: {0}")]
    Refused(#[source] str0m::RtcError),

    /// No UDP socket could be bound on the configured address ([`super::RtcConfig::bind_ip`]).
    #[error("cannot bind a UDP socket on {ip}: {source}")]
    Bind {
        /// The address we tried.
        ip: std::net::IpAddr,
        /// Why it failed.
        source: std::io::Error,
    },

    /// [`super::create_offer`] was given no channel; a WebRTC offer without a data channel
    /// cannot carry any.
    #[error("an offer needs at least one data channel")]
    NoChannels,

    /// A channel label longer than [`super::MAX_LABEL_BYTES`] bytes.
    #[error("channel label of {0} bytes is longer than the limit of {max}", max = super::MAX_LABEL_BYTES)]
    LabelTooLong(usize),

    /// The data channels did not open within [`super::RtcConfig::connect_timeout`]: the peer is
    /// unreachable from every local candidate, or never applied the answer.
    #[error("the connection did not open within {0:?}")]
    ConnectTimeout(Duration),

    /// [`crate::ice::IcePolicy::Relay`] and no TURN server gave a relayed candidate within
    /// [`super::RtcConfig::connect_timeout`]: the text names each server and why (wrong
    /// credentials, no answer, unresolvable name, none configured).
    #[error("ICE policy relay: no TURN server gave a relayed candidate ({0})")]
    NoRelayedCandidate(String),

    /// The connection ended before its channels opened.
    #[error("the connection ended before it opened: {0}")]
    ConnectFailed(DisconnectReason),

    /// The peer connection has ended (closed locally or remotely, timed out); nothing more can
    /// be sent on it.
    #[error("the peer connection is closed")]
    Closed,

    /// A message larger than [`super::RtcConfig::max_message_bytes`].
    #[error("message of {len} bytes is larger than the limit of {max} bytes")]
    MessageTooLarge {
        /// The message size in bytes.
        len: usize,
        /// The configured limit in bytes.
        max: usize,
    },

    /// The send queue of this connection already holds
    /// [`super::RtcConfig::max_queued_bytes`]: the peer reads more slowly than we write. Slow
    /// down, or drop the peer.
    #[error("send queue full: {queued} bytes waiting, limit {max}")]
    QueueFull {
        /// Bytes queued, not yet accepted by SCTP.
        queued: usize,
        /// The configured limit in bytes.
        max: usize,
    },
}
