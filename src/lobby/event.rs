//! What each side of a lobby sees: [`HostEvent`]s come from [`super::Host::next_event`],
//! [`PlayerEvent`]s from [`super::Joined::next_event`]. The two roles see different things (only
//! a host learns who joins, leaves or is turned away; only a player loses its one connection),
//! so they are two types; what both see (a chat line, bytes on a game channel) is one payload
//! type each, [`ChatMessage`] and [`ChannelData`].
//!
//! Identities are `dat://<64 hex>` URLs without hints, as in `session.json` and the offers.

use super::chat::{ChannelEvent, ChatOut};
use crate::relay::client::RelayState;
use crate::rtc::SelectedPath;
use crate::signal::RejectReason;

/// A chat line, as the host or a player receives it (on the [`super::CHAT_LABEL`] channel).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    /// The sender's identity URL, `dat://<64 hex>`: a player's (host side, or another player's
    /// line relayed by the host) or the host's own.
    pub from: String,
    /// The sender's name: a player's as their offer gave it, the host's the lobby's name.
    pub name: String,
    /// The line: UTF-8, at most [`super::MAX_CHAT_BYTES`] bytes.
    pub text: String,
}

/// Bytes on a data channel other than chat (e.g. [`super::GAME_LABEL`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelData {
    /// The sender's identity URL, `dat://<64 hex>`: a player's (host side) or the host's
    /// (player side).
    pub from: String,
    /// The data channel's label.
    pub label: String,
    /// The message's bytes as sent (one WebRTC data channel message).
    pub data: Vec<u8>,
}

/// What happens in a lobby as its host sees it ([`super::Host::next_event`]). `peer` is a
/// player's identity URL, `dat://<64 hex>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostEvent {
    /// A player's data channel opened; `peers` is the new count.
    PeerJoined {
        /// The player's identity URL.
        peer: String,
        /// The player's name, as their offer gave it.
        name: String,
        /// Players connected now, the host not counted.
        peers: u32,
        /// The path the player's connection took (host, srflx, prflx or relay, with the
        /// relay's address; docs/NAT.md); `None` if not known yet.
        path: Option<SelectedPath>,
    },
    /// A player's connection moved to another path after it joined: ICE settled on a better
    /// candidate pair than the first it nominated (e.g. `srflx` after `relay` across two cone
    /// NATs), or the first one failed.
    PeerPath {
        /// The player's identity URL.
        peer: String,
        /// The player's name.
        name: String,
        /// The new path.
        path: SelectedPath,
    },
    /// A player left or vanished; `peers` is the new count.
    PeerLeft {
        /// The player's identity URL.
        peer: String,
        /// The player's name.
        name: String,
        /// Players connected now, the host not counted.
        peers: u32,
    },
    /// A joiner was turned away (the lobby is full, a wrong password, friends only, ...).
    Rejected {
        /// The joiner's identity URL, or their address (`ip:port`) if they never sent a valid
        /// offer.
        peer: String,
        /// Why, as the joiner was told.
        reason: RejectReason,
    },
    /// A player's chat line (the host passes it on to every other player).
    Message(ChatMessage),
    /// Bytes from a player on a data channel other than chat.
    Data(ChannelData),
    /// Something went wrong with one connection, a chat line was refused or not delivered, or
    /// `session.json` could not be written; the lobby goes on.
    Warning {
        /// What happened, for a person to read.
        message: String,
    },
    /// A relay the host listens through (its endpoint's, e.g. [`super::HostNetwork::relay`])
    /// changed state: `Connected` (reachable through it, every listen confirmed) or `Reconnecting` (it went
    /// away; the client retries with back-off and listens again).
    Relay {
        /// The relay URL.
        url: String,
        /// The new state.
        state: RelayState,
    },
}

/// What happens in a lobby as a player sees it ([`super::Joined::next_event`]); the connection
/// itself is reported by [`super::join()`] returning a [`super::Joined`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlayerEvent {
    /// A chat line from another player or the host, relayed by the host.
    Message(ChatMessage),
    /// Bytes from the host on a data channel other than chat; `from` is the host's identity URL.
    Data(ChannelData),
    /// The connection to the host moved to another path after [`super::join()`] returned (its
    /// `path` was the first nominated; ICE settled on a better pair, or that one failed).
    Path(SelectedPath),
    /// The data channel to the host closed: the host left, ended the lobby or vanished, or this
    /// player's connection failed. The player is no longer in the lobby: stop reading here.
    Disconnected,
}

impl PlayerEvent {
    /// What a player sees of an event on its connection to the host (`host`: the host's
    /// identity URL): a chat line (host-relayed JSON, [`super::chat::ChatOut`]; one that does
    /// not parse is dropped), bytes on another channel, or the end; `None` for anything else.
    pub(crate) fn from_channel(host: &str, event: ChannelEvent) -> Option<PlayerEvent> {
        match event {
            ChannelEvent::Chat(data) => serde_json::from_slice::<ChatOut>(&data).ok().map(|chat| {
                PlayerEvent::Message(ChatMessage {
                    from: chat.from,
                    name: chat.name,
                    text: chat.text,
                })
            }),
            ChannelEvent::Data { label, data } => Some(PlayerEvent::Data(ChannelData {
                from: host.to_string(),
                label,
                data,
            })),
            ChannelEvent::Gone => Some(PlayerEvent::Disconnected),
            ChannelEvent::Path(path) => Some(PlayerEvent::Path(path)),
            ChannelEvent::Opened { .. } | ChannelEvent::Ignored => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lobby::chat::chat_out;

    const HOST: &str = "dat://host";

    #[test]
    fn a_player_sees_relayed_chat_with_its_sender_not_the_host() {
        let json = chat_out("dat://ann", "ann", "hi all");
        let event = PlayerEvent::from_channel(HOST, ChannelEvent::Chat(json.into_bytes()));
        assert_eq!(
            event,
            Some(PlayerEvent::Message(ChatMessage {
                from: "dat://ann".into(),
                name: "ann".into(),
                text: "hi all".into(),
            }))
        );
    }

    #[test]
    fn a_player_sees_game_data_as_from_the_host_and_the_end_as_disconnected() {
        let data = ChannelEvent::Data {
            label: "game".into(),
            data: vec![1, 2, 3],
        };
        assert_eq!(
            PlayerEvent::from_channel(HOST, data),
            Some(PlayerEvent::Data(ChannelData {
                from: HOST.into(),
                label: "game".into(),
                data: vec![1, 2, 3],
            }))
        );
        assert_eq!(
            PlayerEvent::from_channel(HOST, ChannelEvent::Gone),
            Some(PlayerEvent::Disconnected)
        );
    }

    #[test]
    fn a_player_sees_nothing_of_garbage_chat_or_channel_bookkeeping() {
        for event in [
            ChannelEvent::Chat(b"{\"text\":\"no sender\"}".to_vec()),
            ChannelEvent::Chat(b"not json".to_vec()),
            ChannelEvent::Ignored,
        ] {
            assert_eq!(PlayerEvent::from_channel(HOST, event), None);
        }
    }
}
