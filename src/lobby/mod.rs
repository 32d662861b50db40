//! Game lobbies: a host admits up to `max_peers` players; each player's WebRTC offer and the
//! host's answer travel through hypercore logs (see `docs/PROTOCOL.md`).
//!
//! - [`Host`] ([`host`]): publishes `session.json`, accepts connections, replicates its archive
//!   and lobby log to each, reads offers from the players' signalling logs, answers, relays chat.
//! - [`join()`]: finds the host, reads its `session.json`, writes an offer to a fresh
//!   signalling log, waits for the answer, and opens the data channel.
//!
//! Both drive the same protocol: the signalling order is two sans-IO machines in `handshake`
//! (host and joiner), the logs are read and written through one `signal_log::SignalLog`, and
//! the chat JSON, the wait for the chat channel and the per-label channel demux are `chat`.
//!
//! The host sees [`HostEvent`]s (joins, leaves, rejections, chat, game data, warnings); a
//! player sees [`PlayerEvent`]s (chat, game data from the host, the end of its connection).
//!
//! Chat travels on the reliable data channel labelled [`CHAT_LABEL`] as JSON: a player sends
//! `{"text": "..."}`; the host sends every player `{"from": "dat://<key>", "name": "...",
//! "text": "..."}`.

mod chat;
mod event;
mod handshake;
pub mod host;
mod ice;
pub mod join;
mod signal_log;
mod trickle;

use serde::{Deserialize, Serialize};

pub use event::{ChannelData, ChatMessage, HostEvent, PlayerEvent};
pub use host::{Host, HostChat, HostNetwork, HostOptions, HostRelay, HostingInfo, LobbyError};
pub use join::{join, join_through, JoinError, JoinOptions, Joined, JoinedInfo, PlayerChat};

/// Label of the reliable, ordered data channel that carries chat.
pub const CHAT_LABEL: &str = "chat";
/// The SCTP stream id a joiner asks to open its chat channel on, pre-negotiated (offer
/// `chat_stream`, docs/PROTOCOL.md): with a host that echoes it, chat opens as soon as SCTP is
/// up, one round trip before a DCEP open/ack would.
pub const CHAT_STREAM: u16 = 0;

/// The chat channel pre-negotiated on stream `id`.
pub(crate) fn negotiated_chat(id: u16) -> crate::rtc::NegotiatedChannel {
    crate::rtc::NegotiatedChannel {
        label: CHAT_LABEL.to_owned(),
        reliability: crate::rtc::Reliability::Reliable,
        id,
    }
}

/// Label of the unreliable, unordered data channel a game may use for state updates.
pub const GAME_LABEL: &str = "game";
/// The protomux protocol of the lobby's application channel; its id is the lobby log key and its
/// one message is the hello `{"log": "<64 hex>"}`: the player's signalling log key.
pub const LOBBY_PROTOCOL: &str = "dat-social/lobby";
/// Longest chat message, in bytes of UTF-8 text: 16 KiB (16,384). The same limit holds both
/// ways: a player's [`PlayerChat::say`] and a host's [`HostChat::say`] / [`Host::say`] refuse
/// longer text with [`ChatError::TooLong`], and a host refuses (with a
/// [`HostEvent::Warning`]) a longer message from a player whose client did not check.
pub const MAX_CHAT_BYTES: usize = 16 * 1024;

/// Why a chat line was not sent.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The text is longer than [`MAX_CHAT_BYTES`].
    #[error("chat line of {len} bytes refused: the limit is {max} bytes")]
    TooLong {
        /// The text's length, in bytes.
        len: usize,
        /// The limit, in bytes ([`MAX_CHAT_BYTES`]).
        max: usize,
    },
    /// The connection to the host (player side) or the lobby (host side) has ended.
    #[error("chat line not sent: the lobby connection is closed")]
    Closed,
    /// The WebRTC layer refused the message (e.g. a line of mostly control characters whose
    /// JSON escapes exceed the data channel's message size); its error is the source.
    #[error("chat line not sent: {0}")]
    NotSent(#[source] crate::rtc::RtcError),
}

/// Refuses `text` longer than [`MAX_CHAT_BYTES`].
pub(crate) fn check_chat(text: &str) -> Result<(), ChatError> {
    if text.len() > MAX_CHAT_BYTES {
        return Err(ChatError::TooLong {
            len: text.len(),
            max: MAX_CHAT_BYTES,
        });
    }
    Ok(())
}

/// The first message on the lobby channel: the player's signalling log key, so that the host
/// can replicate it.
#[derive(Serialize, Deserialize)]
pub(crate) struct Hello {
    /// 64 hex.
    pub log: String,
}

/// The RTC settings for a connection reached over a TCP socket whose local address is `local`:
/// loopback stays on loopback (a machine whose only interface is `lo`), anything else binds
/// every interface so that the peer can pick a route. `ice`: the STUN/TURN servers and policy
/// for this connection (the user's merged with the relays', `ice::LobbyIce`).
pub(crate) fn rtc_config_for(
    local: std::net::IpAddr,
    timeout: std::time::Duration,
    ice: &crate::ice::IceConfig,
) -> crate::rtc::RtcConfig {
    let mut cfg = if local.is_loopback() {
        crate::rtc::RtcConfig {
            bind_ip: local,
            ..crate::rtc::RtcConfig::default()
        }
    } else {
        crate::rtc::RtcConfig::all_interfaces()
    };
    cfg.connect_timeout = timeout;
    cfg.ice = ice.clone();
    cfg
}
