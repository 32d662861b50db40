//! [`RelayCodec`]: the relay's single protomux channel, sans-IO (PROTOCOL.md §2), as JS
//! `lib/protocol.js` of `@hyperswarm/dht-relay` 0.4.3 sets it up on `protomux` 3.12.1.
//!
//! Both sides open the channel `"@hyperswarm/dht-relay"` (no id, no handshake) at once, without
//! waiting, and send every message on their **own** local channel id (1 on a fresh stream):
//! `uint localId` `uint type` `payload`. Channel pairing, batches and control frames are the job of
//! [`crate::net::protomux::Mux`]; this module adds the relay channel's life cycle and turns
//! channel messages into [`Message`]s. The optional second channel `dat-social/ice/v1`
//! ([`super::ice`]) rides on the same mux: a client opens it with [`RelayCodec::open_ice`], a
//! relay pairs it only after [`RelayCodec::serve_ice`]; otherwise it is rejected like any
//! protocol we don't serve, as JS does.

use std::collections::VecDeque;

use tracing::debug;

use super::ice::{IceMessage, ICE_PROTOCOL};
use super::{Message, RelayCodecError};
use crate::net::protomux::{ChannelId, ChannelKey, Mux, MuxEvent};

/// The protomux protocol name of the relay channel. It is also the protocol's only "version": a
/// breaking change would rename it (PROTOCOL.md §2, "Versioning").
pub const PROTOCOL: &str = "@hyperswarm/dht-relay";

/// What [`RelayCodec::handle_frame`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEvent {
    /// The remote's `open` for the relay channel arrived: the channel is paired. (We may send
    /// before this; JS does.)
    Opened,
    /// A relay message from the remote.
    Message(Message),
    /// The remote closed (or rejected) the relay channel. Nothing more can be sent.
    Closed,
    /// Something happened on the `dat-social/ice/v1` channel.
    Ice(IceEvent),
}

/// What happened on the `dat-social/ice/v1` channel ([`super::ice`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IceEvent {
    /// The channel is paired (the client opened it and the relay serves it).
    Opened,
    /// A message on it.
    Message(IceMessage),
    /// The remote rejected or closed it, or sent a malformed message (then we closed it): no
    /// ICE servers from this remote on this connection.
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
    /// Our ICE channel while it is open or opening.
    ice: Option<ChannelId>,
    /// Pair the remote's `open` of the ICE channel (a relay with ICE servers to give).
    serve_ice: bool,
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
            ice: None,
            serve_ice: false,
        }
    }

    /// Client side: opens the `dat-social/ice/v1` channel (queues its protomux `open`).
    /// [`IceEvent::Opened`] follows if the remote serves it, [`IceEvent::Closed`] if it rejects
    /// it. Does nothing if it is already open or opening.
    pub fn open_ice(&mut self) {
        if self.ice.is_none() && self.state != State::Closed {
            self.ice = self.mux.open(ICE_PROTOCOL, None, &[]).ok();
        }
    }

    /// Relay side: pair the remote's `open` of the `dat-social/ice/v1` channel (`true`), or
    /// reject it as any unknown protocol (`false`, the default).
    pub fn serve_ice(&mut self, serve: bool) {
        self.serve_ice = serve;
    }

    /// Queues `message` on the ICE channel.
    ///
    /// Errors: [`RelayCodecError::ChannelClosed`] if the ICE channel is not open;
    /// [`RelayCodecError::IceTooLarge`] for a server list too long for one message.
    pub fn send_ice(&mut self, message: &IceMessage) -> Result<(), RelayCodecError> {
        let channel = self.ice.ok_or(RelayCodecError::ChannelClosed)?;
        let payload = message.encode()?;
        self.mux
            .send(channel, message.message_type(), &payload)
            .map_err(|_| RelayCodecError::ChannelClosed)
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
    pub fn handle_frame(&mut self, frame: &[u8]) -> Result<(), RelayCodecError> {
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
                MuxEvent::RemoteOpen { key } => self.on_remote_open(&key),
                MuxEvent::Opened { channel, .. } if Some(channel) == self.ice => {
                    self.events.push_back(RelayEvent::Ice(IceEvent::Opened));
                }
                MuxEvent::Message {
                    channel,
                    message_type,
                    payload,
                } if Some(channel) == self.ice => self.on_ice_message(message_type, &payload),
                MuxEvent::Closed { channel, .. } if Some(channel) == self.ice => {
                    self.ice = None;
                    self.events.push_back(RelayEvent::Ice(IceEvent::Closed));
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

    /// Pairs the ICE channel if we serve it and it is not open yet; rejects anything else.
    fn on_remote_open(&mut self, key: &ChannelKey) {
        let ice = key.protocol == ICE_PROTOCOL && key.id.is_none();
        if ice && self.serve_ice && self.ice.is_none() && self.state != State::Closed {
            if let Ok(channel) = self.mux.open(ICE_PROTOCOL, None, &[]) {
                self.ice = Some(channel);
                return;
            }
        }
        debug!(%key, "relay: rejecting a channel we don't serve");
        self.mux.reject(key);
    }

    /// A message on the ICE channel: a malformed one closes that channel (the relay channel
    /// goes on: ICE servers are an extra); unknown types are ignored.
    fn on_ice_message(&mut self, message_type: u64, payload: &[u8]) {
        match IceMessage::decode(message_type, payload) {
            Ok(Some(m)) => self.events.push_back(RelayEvent::Ice(IceEvent::Message(m))),
            Ok(None) => debug!(message_type, "relay: ignoring unknown ICE message type"),
            Err(e) => {
                debug!(error = %e, "relay: closing the ICE channel");
                if let Some(channel) = self.ice.take() {
                    self.mux.close(channel);
                }
                self.events.push_back(RelayEvent::Ice(IceEvent::Closed));
            }
        }
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

    /// Closes the relay channel (queues protomux `close`, `00 03 uint(localId)`), then the ICE
    /// channel if it is open. Idempotent.
    pub fn close(&mut self) {
        if self.state != State::Closed {
            self.mux.close(self.channel);
            self.state = State::Closed;
        }
        if let Some(channel) = self.ice.take() {
            self.mux.close(channel);
        }
    }

    /// Next frame to write to the transport, oldest first.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.mux.poll_transmit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypercore::encoding::Encoder;
    use crate::relay::ice::IceMessage;
    use crate::relay::messages::{AliasRef, Data, IdRef};
    use crate::relay::MessageType;

    /// PROTOCOL.md §2: the relay channel's open frame on a fresh stream.
    const OPEN_FRAME: &str = "00010115406879706572737761726d2f6468742d72656c617900";

    fn events(c: &mut RelayCodec) -> Vec<RelayEvent> {
        std::iter::from_fn(|| c.poll_event()).collect()
    }

    fn pump(from: &mut RelayCodec, to: &mut RelayCodec) {
        while let Some(f) = from.poll_transmit() {
            to.handle_frame(&f).unwrap();
        }
    }

    fn paired() -> (RelayCodec, RelayCodec) {
        let (mut a, mut b) = (RelayCodec::new(), RelayCodec::new());
        pump(&mut a, &mut b);
        pump(&mut b, &mut a);
        assert_eq!(events(&mut a), vec![RelayEvent::Opened]);
        assert_eq!(events(&mut b), vec![RelayEvent::Opened]);
        (a, b)
    }

    #[test]
    fn open_frame_is_the_js_one() {
        let mut c = RelayCodec::new();
        assert_eq!(hex::encode(c.poll_transmit().unwrap()), OPEN_FRAME);
        assert_eq!(c.poll_transmit(), None);
        assert_eq!(c.local_id(), 1);
        assert!(!c.is_open());
        c.handle_frame(&hex::decode(OPEN_FRAME).unwrap()).unwrap();
        assert!(c.is_open());
        assert_eq!(events(&mut c), vec![RelayEvent::Opened]);
    }

    #[test]
    fn messages_flow_both_ways_and_may_precede_the_remote_open() {
        let (mut a, mut b) = (RelayCodec::new(), RelayCodec::new());
        // `a` sends before `b`'s open arrives, as the JS client does with `handshake`.
        a.send(&Message::Ping).unwrap();
        pump(&mut a, &mut b);
        assert_eq!(
            events(&mut b),
            vec![RelayEvent::Opened, RelayEvent::Message(Message::Ping)]
        );
        b.send(&Message::Pong).unwrap();
        pump(&mut b, &mut a); // b's open, then the pong
        assert_eq!(
            events(&mut a),
            vec![RelayEvent::Opened, RelayEvent::Message(Message::Pong)]
        );
        let end = Message::End(AliasRef { alias: 2 });
        a.send(&end).unwrap();
        assert_eq!(hex::encode(a.poll_transmit().unwrap()), "010f02000000");
    }

    #[test]
    fn batches_are_split_and_unknown_types_ignored() {
        let (_, mut b) = paired();
        let data = Message::Data(Data {
            alias: 1,
            chunks: vec![b"hi".to_vec()],
        });
        // 00 00 <remote channel 1> { len item }* where item = uint type + payload.
        let mut e = Encoder::new();
        e.uint(0).uint(0).uint(1);
        for (t, p) in [
            (16u64, data.encode()),
            (99, vec![1, 2]),
            (18, vec![9, 0, 0, 0]),
        ] {
            let mut item = Encoder::new();
            item.uint(t).raw(&p);
            e.buffer(item.as_slice());
        }
        b.handle_frame(e.as_slice()).unwrap();
        assert_eq!(
            events(&mut b),
            vec![
                RelayEvent::Message(data),
                RelayEvent::Message(Message::Finished(IdRef { id: 9 }))
            ]
        );
        // An unknown type as a plain frame is ignored too; so is an empty keep-alive frame.
        b.handle_frame(&[1, 28, 0xde, 0xad]).unwrap();
        b.handle_frame(&[]).unwrap();
        assert_eq!(events(&mut b), vec![]);
    }

    #[test]
    fn bad_messages_are_errors_after_the_good_ones() {
        let (_, mut b) = paired();
        let mut e = Encoder::new();
        e.uint(0).uint(0).uint(1);
        e.buffer(&[18, 9, 0, 0, 0]); // finished{9}
        e.buffer(&[15, 1, 0]); // end, alias truncated
        e.buffer(&[18, 10, 0, 0, 0]); // finished{10}: never seen, JS already destroyed the stream
        let err = b.handle_frame(e.as_slice()).unwrap_err();
        assert!(matches!(
            err,
            RelayCodecError::Decode {
                message_type: MessageType::End,
                ..
            }
        ));
        assert_eq!(
            events(&mut b),
            vec![RelayEvent::Message(Message::Finished(IdRef { id: 9 }))]
        );
        assert!(matches!(
            b.handle_frame(&[0, 1, 9]),
            Err(RelayCodecError::Mux(_))
        ));
    }

    #[test]
    fn other_protocols_are_rejected() {
        let (_, mut b) = paired();
        let mut e = Encoder::new();
        e.uint(0)
            .uint(1)
            .uint(2)
            .string("hypercore/alpha")
            .optional_buffer(None);
        b.handle_frame(e.as_slice()).unwrap();
        assert_eq!(events(&mut b), vec![]);
        assert_eq!(b.poll_transmit(), Some(vec![0, 2, 2]));
    }

    #[test]
    fn close_either_way() {
        let (mut a, mut b) = paired();
        a.close();
        a.close();
        assert!(a.is_closed());
        assert_eq!(a.send(&Message::Ping), Err(RelayCodecError::ChannelClosed));
        assert_eq!(a.poll_transmit(), Some(vec![0, 3, 1]));
        assert_eq!(a.poll_transmit(), None);
        b.handle_frame(&[0, 3, 1]).unwrap();
        assert_eq!(events(&mut b), vec![RelayEvent::Closed]);
        assert!(b.is_closed());
        assert_eq!(b.send(&Message::Pong), Err(RelayCodecError::ChannelClosed));
        // Late messages for the closed channel are ignored.
        b.handle_frame(&[1, 1]).unwrap();
        assert_eq!(events(&mut b), vec![]);
    }

    #[test]
    fn a_relay_that_does_not_serve_ice_rejects_it_and_the_relay_channel_goes_on() {
        let (mut client, mut relay) = paired();
        client.open_ice();
        client.send_ice(&IceMessage::Request).unwrap();
        let open = client.poll_transmit().unwrap();
        // 00 01 <localId 2> <len 17> "dat-social/ice/v1" <no id>
        assert_eq!(
            hex::encode(&open),
            format!("00010211{}00", hex::encode(ICE_PROTOCOL))
        );
        relay.handle_frame(&open).unwrap();
        pump(&mut client, &mut relay);
        assert_eq!(events(&mut relay), vec![]);
        pump(&mut relay, &mut client); // the reject: 00 02 02
        assert_eq!(events(&mut client), vec![RelayEvent::Ice(IceEvent::Closed)]);
        assert_eq!(
            client.send_ice(&IceMessage::Request),
            Err(RelayCodecError::ChannelClosed)
        );
        client.send(&Message::Ping).unwrap();
        pump(&mut client, &mut relay);
        assert_eq!(events(&mut relay), vec![RelayEvent::Message(Message::Ping)]);
    }

    #[test]
    fn a_relay_that_serves_ice_pairs_it_and_answers() {
        let (mut client, mut relay) = paired();
        relay.serve_ice(true);
        client.open_ice();
        client.send_ice(&IceMessage::Request).unwrap();
        pump(&mut client, &mut relay);
        assert_eq!(
            events(&mut relay),
            vec![
                RelayEvent::Ice(IceEvent::Opened),
                RelayEvent::Ice(IceEvent::Message(IceMessage::Request))
            ]
        );
        let servers = IceMessage::Servers {
            ttl_s: 60,
            servers: vec![],
        };
        relay.send_ice(&servers).unwrap();
        pump(&mut relay, &mut client);
        assert_eq!(
            events(&mut client),
            vec![
                RelayEvent::Ice(IceEvent::Opened),
                RelayEvent::Ice(IceEvent::Message(servers))
            ]
        );
        // A second open of the same channel while it is open is rejected.
        let mut e = Encoder::new();
        e.uint(0)
            .uint(1)
            .uint(3)
            .string(ICE_PROTOCOL)
            .optional_buffer(None);
        relay.handle_frame(e.as_slice()).unwrap();
        assert_eq!(relay.poll_transmit(), Some(vec![0, 2, 3]));
        // Closing the connection closes the ICE channel too.
        client.close();
        assert_eq!(client.poll_transmit(), Some(vec![0, 3, 1]));
        assert_eq!(client.poll_transmit(), Some(vec![0, 3, 2]));
    }

    #[test]
    fn a_malformed_ice_message_closes_only_the_ice_channel() {
        let (mut client, mut relay) = paired();
        relay.serve_ice(true);
        client.open_ice();
        pump(&mut client, &mut relay);
        pump(&mut relay, &mut client);
        assert_eq!(events(&mut client), vec![RelayEvent::Ice(IceEvent::Opened)]);
        events(&mut relay);
        // `servers` on the relay's ICE channel (its local id 2) with a truncated payload.
        client.handle_frame(&[2, 1, 5]).unwrap();
        assert_eq!(events(&mut client), vec![RelayEvent::Ice(IceEvent::Closed)]);
        let close = client.poll_transmit().unwrap();
        assert_eq!(close, vec![0, 3, 2]);
        relay.handle_frame(&close).unwrap();
        assert_eq!(events(&mut relay), vec![RelayEvent::Ice(IceEvent::Closed)]);
        assert!(client.is_open());
        // Unknown ICE message types are ignored.
        client.open_ice();
        pump(&mut client, &mut relay);
        pump(&mut relay, &mut client);
        assert_eq!(events(&mut client), vec![RelayEvent::Ice(IceEvent::Opened)]);
        // The relay's second ICE channel is its local id 3.
        client.handle_frame(&[3, 9, 1, 2, 3]).unwrap();
        assert_eq!(events(&mut client), vec![]);
        client.handle_frame(&[3, 1, 60, 2, b'[', b']']).unwrap();
        assert_eq!(
            events(&mut client),
            vec![RelayEvent::Ice(IceEvent::Message(IceMessage::Servers {
                ttl_s: 60,
                servers: vec![]
            }))]
        );
    }
}
