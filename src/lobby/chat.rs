//! What travels on a player's data channels, for the host and the player alike: the chat JSON
//! ([`ChatIn`], [`ChatOut`]), the wait for the chat channel to open ([`wait_for_chat`]), and
//! the demultiplexing of a peer connection's events by channel label ([`ChannelLabels`]).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::CHAT_LABEL;
use crate::rtc::{ChannelId, DisconnectReason, PeerConnection, RtcEvent};

/// Chat as a player sends it: `{"text": "..."}`.
#[derive(Serialize, Deserialize)]
pub(crate) struct ChatIn {
    /// The line, at most [`super::MAX_CHAT_BYTES`] bytes.
    pub text: String,
}

/// Chat as the host relays it: `{"from": "dat://<key>", "name": "...", "text": "..."}`.
#[derive(Serialize, Deserialize)]
pub(crate) struct ChatOut {
    /// The sender's identity URL.
    pub from: String,
    /// The sender's name.
    pub name: String,
    /// The line.
    pub text: String,
}

/// The JSON of a player's chat line.
pub(crate) fn chat_in(text: &str) -> String {
    serde_json::to_string(&ChatIn {
        text: text.to_string(),
    })
    .expect("chat serializes")
}

/// The JSON of a chat line as the host relays it.
pub(crate) fn chat_out(from: &str, name: &str, text: &str) -> String {
    serde_json::to_string(&ChatOut {
        from: from.to_string(),
        name: name.to_string(),
        text: text.to_string(),
    })
    .expect("chat serializes")
}

/// Why the chat channel did not open.
#[derive(Debug)]
pub(crate) enum ChatWait {
    /// The connection failed first.
    Disconnected(DisconnectReason),
    /// The deadline passed, or the connection ended without a reason.
    TimedOut,
}

/// Waits for the [`CHAT_LABEL`] channel of a new connection to open (the one with id `want`,
/// if given; at most until `deadline`, if any); other events before it are dropped (their
/// channels open again as [`RtcEvent::ChannelOpen`] only once, so a peer opens its other
/// channels after chat).
pub(crate) async fn wait_for_chat(
    pc: &mut PeerConnection,
    want: Option<ChannelId>,
    deadline: Option<Instant>,
) -> Result<ChannelId, ChatWait> {
    loop {
        let event = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, pc.next_event())
                .await
                .map_err(|_| ChatWait::TimedOut)?,
            None => pc.next_event().await,
        };
        match event {
            Some(RtcEvent::ChannelOpen { channel, label, .. })
                if label == CHAT_LABEL && want.is_none_or(|w| w == channel) =>
            {
                return Ok(channel)
            }
            Some(RtcEvent::Disconnected { reason }) => return Err(ChatWait::Disconnected(reason)),
            Some(_) => {}
            None => return Err(ChatWait::TimedOut),
        }
    }
}

/// A peer connection's event, sorted by channel.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ChannelEvent {
    /// A message on the chat channel (JSON, not yet parsed).
    Chat(Vec<u8>),
    /// A channel other than chat opened (now known by its label).
    Opened {
        /// The channel's label, e.g. [`super::GAME_LABEL`].
        label: String,
        /// Its id.
        channel: ChannelId,
    },
    /// A message on another labelled channel.
    Data {
        /// The channel's label.
        label: String,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The connection's traffic moved to another candidate pair ([`RtcEvent::PathChanged`]).
    Path(crate::rtc::SelectedPath),
    /// The chat channel closed or the connection ended: the player is gone.
    Gone,
    /// Nothing for the lobby (statistics, a message on an unknown channel, ...).
    Ignored,
}

/// A connection's data channels other than chat, by id and by label: the demultiplexer of
/// both the host's player loop and [`super::Joined`].
#[derive(Debug, Default)]
pub(crate) struct ChannelLabels {
    labels: HashMap<ChannelId, String>,
    channels: HashMap<String, ChannelId>,
}

impl ChannelLabels {
    /// Records that `channel` carries `label` (opened here or by the peer).
    pub(crate) fn insert(&mut self, channel: ChannelId, label: &str) {
        self.labels.insert(channel, label.to_string());
        self.channels.insert(label.to_string(), channel);
    }

    /// The channel labelled `label`, if one is open.
    pub(crate) fn channel(&self, label: &str) -> Option<ChannelId> {
        self.channels.get(label).copied()
    }

    /// Sorts `event` of the connection whose chat channel is `chat`, learning the labels of
    /// channels as they open.
    pub(crate) fn classify(&mut self, chat: ChannelId, event: RtcEvent) -> ChannelEvent {
        match event {
            RtcEvent::Message { channel, data, .. } if channel == chat => ChannelEvent::Chat(data),
            RtcEvent::Message { channel, data, .. } => match self.labels.get(&channel) {
                Some(label) => ChannelEvent::Data {
                    label: label.clone(),
                    data,
                },
                None => ChannelEvent::Ignored,
            },
            RtcEvent::ChannelOpen { channel, label, .. } if channel != chat => {
                self.insert(channel, &label);
                ChannelEvent::Opened { label, channel }
            }
            RtcEvent::ChannelClosed { channel } if channel == chat => ChannelEvent::Gone,
            RtcEvent::Disconnected { .. } => ChannelEvent::Gone,
            RtcEvent::PathChanged { path } => ChannelEvent::Path(path),
            _ => ChannelEvent::Ignored,
        }
    }
}
