//! A sans-IO codec for the `@hyperswarm/dht-relay` 0.4.3 wire protocol (the protocol a browser or
//! other limited peer speaks to a relaying HyperDHT node), byte-compatible with the npm package.
//!
//! Spec: `shared/reference/dht-relay/PROTOCOL.md` (checked against real captures of the JS
//! packages, kept in `tests/data/relay-captures/`). Two layers:
//! - [`messages`]: the 28 relay messages ([`Message`]) and their compact encodings (§1, §3);
//! - `frame`: [`RelayCodec`], the single protomux channel `"@hyperswarm/dht-relay"` (§2), built on
//!   [`crate::net::protomux::Mux`]: protomux frames in, [`RelayEvent`]s out; [`Message`]s in, frames
//!   out;
//! - [`ice`]: the optional second channel `dat-social/ice/v1` on which our relay gives its
//!   clients STUN/TURN servers and short-lived credentials (JS clients never open it).
//!
//! The codec does no IO and keeps no timers: the transport (one frame per WebSocket message, or one
//! `@hyperswarm/secret-stream` message over TCP, §6) and the 15 s ping / 45 s failsafe heartbeat
//! (§3) belong to the server or client built on it. Aliases and ids inside messages are opaque to
//! the codec.
//!
//! ```
//! use dat_social::relay::{Message, RelayCodec, RelayEvent};
//! let (mut client, mut relay) = (RelayCodec::new(), RelayCodec::new());
//! client.send(&Message::Ping).unwrap(); // allowed before the remote's open arrives
//! while let Some(frame) = client.poll_transmit() {
//!     relay.handle_frame(&frame).unwrap();
//! }
//! assert_eq!(relay.poll_event(), Some(RelayEvent::Opened));
//! assert_eq!(relay.poll_event(), Some(RelayEvent::Message(Message::Ping)));
//! ```

#![warn(missing_docs)]

#[cfg(feature = "native")]
pub mod client;
pub(crate) mod frame;
pub mod ice;
pub mod messages;
#[cfg(feature = "relay-server")]
pub mod server;
#[cfg(feature = "relay-server")]
pub mod turn;

pub use frame::{IceEvent, RelayCodec, RelayEvent, PROTOCOL};
pub use messages::{Message, MessageType};

use crate::hypercore::encoding::DecodeError;
use crate::net::protomux::MuxError;

/// Why a relay message or frame could not be handled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayCodecError {
    /// The payload of a known message type is truncated or invalid. JS protomux destroys the
    /// stream on this; so should the caller.
    #[error("relay message {} ({}): {source}", message_type.name(), message_type.as_u64())]
    Decode {
        /// The message type being decoded.
        message_type: MessageType,
        /// What was wrong.
        source: DecodeError,
    },
    /// A message type >= 28. [`Message::decode`] returns this; [`RelayCodec`] ignores such
    /// messages, as JS protomux does.
    #[error("unknown relay message type {0}")]
    UnknownType(u64),
    /// The protomux framing is invalid (bad control message, hostile channel ids). The caller
    /// should close the connection.
    #[error(transparent)]
    Mux(#[from] MuxError),
    /// [`RelayCodec::send`] after the channel was closed (by us or by the remote), or
    /// [`RelayCodec::send_ice`] while the ICE channel is not open.
    #[error("the relay channel is closed")]
    ChannelClosed,
    /// [`RelayCodec::send_ice`] with a server list too long for one message.
    #[error(transparent)]
    IceTooLarge(#[from] ice::ServersTooLarge),
}
