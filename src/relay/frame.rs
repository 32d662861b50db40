//! [`RelayCodec`]: the relay's single protomux channel, sans-IO (PROTOCOL.md §2), as JS
//! `lib/protocol.js` of `@hyperswarm/dht-relay` 0.4.3 sets it up on `protomux` 3.12.1.
//!
//! Both sides open the channel `"@hyperswarm/dht-relay"` (no id, no handshake) at once, without
//! waiting, and send every message on their **own** local channel id (1 on a fresh stream):
//! `uint localId` `uint type` `payload`. Channel pairing, batches and control frames are the job of
//! [`crate::net::protomux::Mux`]; this module adds the relay channel's life cycle and turns
//! channel messages into [`Message`]s.

use std::collections::VecDeque;

use tracing::debug;

use super::{Message, RelayCodecError};
use crate::net::protomux::{ChannelId, Mux, MuxEvent};

/// The protomux protocol name of the relay channel. It is also the protocol's only "version": a
/// breaking change would rename it (PROTOCOL.md §2, "Versioning").
pub const PROTOCOL: &str = "@hyperswarm/dht-relay";

/// What [`RelayCodec::receive`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEvent {
    /// The remote's `open` for the relay channel arrived: the channel is paired. (We may send
    /// before this; JS does.)
    Opened,
    /// A relay message from the remote.
    Message(Message),
    /// The remote closed (or rejected) the relay channel. Nothing more can be sent.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Our `open` is queued/sent, the remote's has not arrived.
    Opening,
    /// Paired.
    Open,
    /// Closed by either side.
    Closed,
}

/// One side (client or relay, the protocol is symmetric at this layer) of a relay connection:
/// protomux frames in, [`RelayEvent`]s out; [`Message`]s in, frames out. Never does IO.
///
/// Frames are whole protomux messages: one binary WebSocket message, or one decrypted
/// `@hyperswarm/secret-stream` message (PROTOCOL.md §6). An empty frame is a keep-alive.
#[derive(Debug)]
pub struct RelayCodec {
    mux: Mux,
    channel: ChannelId,
    state: State,
    events: VecDeque<RelayEvent>,
}

impl Default for RelayCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl RelayCodec {
    /// A fresh connection. The protomux `open` frame for the relay channel is already queued (the
    /// first [`RelayCodec::poll_transmit`]): `00 01 01 15 "@hyperswarm/dht-relay" 00`, 26 bytes.
    pub fn new() -> Self {
        let mut mux = Mux::new();
        // A fresh Mux has no channel with this key, so `open` cannot fail.
        let channel = mux
            .open(PROTOCOL, None, &[])
            .expect("a fresh protomux has no channels");
        Self {
            mux,
            channel,
            state: State::Opening,
            events: VecDeque::new(),
        }
    }

    /// Our protomux local id of the relay channel (the first uint of every message frame we send;
    /// 1 on a fresh connection).
    pub fn local_id(&self) -> u64 {
        self.channel
    }

    /// True once the remote's `open` arrived and until either side closes.
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// True after [`RelayCodec::close`] or the remote's `close`/`reject`.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Handles one received protomux frame (a plain message, a control `open`/`close`/`reject`, or
    /// a `batch`); the results are queued for [`RelayCodec::poll_event`]. Remote `open`s of other
    /// protocols (or a second relay channel) are rejected, as JS does with no pairing handler.
    /// Messages of unknown types (>= 28) are ignored, as JS protomux does.
    ///
    /// Errors (the caller should close the connection, as JS protomux destroys the stream):
    /// [`RelayCodecError::Mux`] for invalid framing, [`RelayCodecError::Decode`] for an invalid
    /// relay message; messages decoded before the bad one in the same batch stay queued.
    pub fn receive(&mut self, frame: &[u8]) -> Result<(), RelayCodecError> {
        let result = self
            .mux
            .on_message(frame)
            .map_err(RelayCodecError::from)
            .and_then(|()| self.drain_mux());
        if result.is_err() {
            // Whatever the mux still holds comes after the failure point: JS never sees it.
            while self.mux.poll_event().is_some() {}
        }
        result
    }

    fn drain_mux(&mut self) -> Result<(), RelayCodecError> {
        while let Some(event) = self.mux.poll_event() {
            match event {
                MuxEvent::RemoteOpen { key } => {
                    debug!(%key, "relay: rejecting a channel we don't serve");
                    self.mux.reject(&key);
                }
                MuxEvent::Opened { channel, .. } if channel == self.channel => {
                    self.state = State::Open;
                    self.events.push_back(RelayEvent::Opened);
                }
                MuxEvent::Message {
                    channel,
                    message_type,
                    payload,
                } if channel == self.channel => match Message::decode(message_type, &payload) {
                    Ok(message) => self.events.push_back(RelayEvent::Message(message)),
                    Err(RelayCodecError::UnknownType(t)) => {
                        debug!(message_type = t, "relay: ignoring unknown message type");
                    }
                    Err(e) => return Err(e),
                },
                MuxEvent::Closed { channel, .. } if channel == self.channel => {
                    self.state = State::Closed;
                    self.events.push_back(RelayEvent::Closed);
                }
                // Events of other channels can't happen: we never open any.
                _ => {}
            }
        }
        Ok(())
    }

    /// Next received event, oldest first.
    pub fn poll_event(&mut self) -> Option<RelayEvent> {
        self.events.pop_front()
    }

    /// Queues `message` as one frame on our channel: `uint localId` `uint type` payload. Allowed
    /// before [`RelayEvent::Opened`] (the remote buffers it, as JS).
    ///
    /// Errors: [`RelayCodecError::ChannelClosed`] once the channel is closed.
    pub fn send(&mut self, message: &Message) -> Result<(), RelayCodecError> {
        if self.state == State::Closed {
            return Err(RelayCodecError::ChannelClosed);
        }
        self.mux
            .send(self.channel, message.message_type(), &message.encode())
            .map_err(|_| RelayCodecError::ChannelClosed)
    }

    /// Closes the relay channel (queues protomux `close`, `00 03 uint(localId)`). Idempotent.
    pub fn close(&mut self) {
        if self.state != State::Closed {
            self.mux.close(self.channel);
            self.state = State::Closed;
        }
    }

    /// Next frame to write to the transport, oldest first.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.mux.poll_transmit()
    }
}
