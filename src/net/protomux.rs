//! Sans-IO protocol multiplexer, wire-compatible with npm `protomux` 3.12.1.
//!
//! Every secret-stream message is one protomux frame: `uint channel || uint type || payload`,
//! where `channel` is the **sender's** local channel id. Channel 0 is the control channel:
//! - type 0 `batch`: `uint channel`, then repeated `uint len || item`; a `len` of 0 is followed by
//!   a new `uint channel`. Each item is `uint type || payload` for that channel.
//! - type 1 `open`: `uint localId || string protocol || optionalBuffer id || handshake bytes`.
//! - type 2 `reject`: `uint localId` (the opener's id being refused).
//! - type 3 `close`: `uint localId` (the closer's id).
//!
//! Channels are paired by `(protocol, id)`: an `open` from the remote pairs with our own
//! not-yet-paired channel of the same key; otherwise it waits (its messages buffered) until we open
//! the same key ([`Mux::open`] accepts it) or [`Mux::reject`] it. [`Mux`] takes received messages
//! with [`Mux::on_message`] and gives out events ([`Mux::poll_event`]) and messages to send
//! ([`Mux::poll_transmit`]). It never does IO and never panics on input.

use std::collections::{HashMap, VecDeque};

use crate::hypercore::encoding::{DecodeError, Decoder, Encoder};

/// A local channel id (`>= 1`), unique for the life of the [`Mux`] (ids are never reused, so a
/// stale id can't address a newer channel).
pub type ChannelId = u64;

/// Most incoming opens we keep waiting for an accept/reject before we call the peer hostile.
pub const MAX_PENDING_OPENS: usize = 256;
/// Most bytes we buffer for channels the remote opened and we have not accepted yet.
pub const MAX_BUFFERED_BYTES: usize = 4 * 1024 * 1024;

/// A protocol error from the remote. The connection should be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MuxError {
    /// A message could not be decoded (truncated, bad varint, bad UTF-8...).
    #[error("protomux: malformed message: {0}")]
    Decode(#[from] DecodeError),
    /// An `open` reused a live remote id, or skipped ahead more than one id.
    #[error("protomux: invalid open message (remote channel id {0})")]
    InvalidOpen(u64),
    /// A `reject` named a channel we never opened.
    #[error("protomux: invalid reject message (local channel id {0})")]
    InvalidReject(u64),
    /// The remote opened more than [`MAX_PENDING_OPENS`] channels that nobody accepted.
    #[error("protomux: remote opened too many channels nobody accepted")]
    TooManyPendingOpens,
    /// The remote sent more than [`MAX_BUFFERED_BYTES`] (or the limit set with
    /// [`Mux::set_max_buffered`]) to channels nobody accepted.
    #[error("protomux: remote buffered too much data on unaccepted channels")]
    BufferOverflow,
}

/// Local misuse of the API (not a remote fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// A channel with this protocol and id is already open on this connection.
    #[error("protomux: channel {0} is already open")]
    AlreadyOpen(String),
    /// The channel was closed or never existed.
    #[error("protomux: channel {0} is closed")]
    Closed(ChannelId),
}

/// What identifies a channel kind: protocol name and optional id bytes (JS `toKey`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelKey {
    /// Protocol name, e.g. `hypercore/alpha`.
    pub protocol: String,
    /// Optional id, e.g. a core's 32-byte discovery key. JS treats an empty id as none.
    pub id: Option<Vec<u8>>,
}

impl ChannelKey {
    /// Builds a key; an empty `id` is normalized to `None` as JS `optionalBuffer` does.
    pub fn new(protocol: &str, id: Option<&[u8]>) -> Self {
        Self {
            protocol: protocol.to_string(),
            id: id.filter(|b| !b.is_empty()).map(|b| b.to_vec()),
        }
    }
}

impl std::fmt::Display for ChannelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.id {
            Some(id) => write!(f, "{}##{}", self.protocol, hex::encode(id)),
            None => write!(f, "{}##", self.protocol),
        }
    }
}

/// What happened on the multiplexer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MuxEvent {
    /// The remote opened a channel we have not opened. Accept with [`Mux::open`] on the same key,
    /// or refuse with [`Mux::reject`]. Its messages are buffered meanwhile.
    RemoteOpen {
        /// Protocol and id of the channel.
        key: ChannelKey,
    },
    /// One of our channels is now paired with the remote's; `handshake` is the remote's handshake
    /// bytes from its `open` message (empty if the protocol has none).
    Opened {
        /// Our channel.
        channel: ChannelId,
        /// Its key.
        key: ChannelKey,
        /// Raw handshake bytes sent by the remote.
        handshake: Vec<u8>,
    },
    /// A message on an open channel.
    Message {
        /// Our channel.
        channel: ChannelId,
        /// Message type (index in the protocol's message list).
        message_type: u64,
        /// The encoded message.
        payload: Vec<u8>,
    },
    /// The remote closed or rejected one of our channels.
    Closed {
        /// Our channel (now gone).
        channel: ChannelId,
        /// Its key.
        key: ChannelKey,
    },
}

#[derive(Debug)]
struct LocalChannel {
    key: ChannelKey,
    /// The remote's id for the paired channel, 0 while unpaired.
    remote_id: u64,
}

#[derive(Debug)]
enum RemoteSlot {
    /// Paired with our channel.
    Paired(ChannelId),
    /// Opened by the remote, waiting for us; messages buffered.
    Pending {
        key: ChannelKey,
        handshake: Vec<u8>,
        buffered: Vec<(u64, Vec<u8>)>,
    },
    /// Paired with a channel we closed before the remote's open arrived: ignore its traffic.
    Ignored,
}

/// The multiplexer state of one connection.
#[derive(Debug, Default)]
pub struct Mux {
    next_local: ChannelId,
    local: HashMap<ChannelId, LocalChannel>,
    /// Index = remote id - 1; `None` = free/closed.
    remote: Vec<Option<RemoteSlot>>,
    /// Our opened channels waiting for the remote's open, oldest first, per key. Holds ids of
    /// channels we already closed too (so the remote's late open is matched and ignored).
    outgoing: HashMap<ChannelKey, VecDeque<ChannelId>>,
    /// Remote opens waiting for us, oldest first, per key.
    incoming: HashMap<ChannelKey, VecDeque<u64>>,
    pending_opens: usize,
    buffered_bytes: usize,
    /// `None`: [`MAX_BUFFERED_BYTES`]; see [`Mux::set_max_buffered`].
    max_buffered: Option<usize>,
    events: VecDeque<MuxEvent>,
    transmit: VecDeque<Vec<u8>>,
}

impl Mux {
    /// A multiplexer with no channels.
    pub fn new() -> Self {
        Self {
            next_local: 1,
            ..Self::default()
        }
    }

    /// Lowers (or raises) the most bytes buffered for channels the remote opened and we have
    /// not accepted yet (default [`MAX_BUFFERED_BYTES`]); past it the remote gets
    /// [`MuxError::BufferOverflow`]. A host sets a small value for peers it has not admitted.
    pub fn set_max_buffered(&mut self, bytes: usize) {
        self.max_buffered = Some(bytes);
    }

    /// Next event, if any.
    pub fn poll_event(&mut self) -> Option<MuxEvent> {
        self.events.pop_front()
    }

    /// Next message to send (one secret-stream message each), if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    /// True if one of our channels with this key is open or opening.
    pub fn is_open(&self, key: &ChannelKey) -> bool {
        self.local.values().any(|c| &c.key == key)
    }

    /// Keys the remote opened that wait for [`Mux::open`] or [`Mux::reject`].
    pub fn pending_remote_opens(&self) -> Vec<ChannelKey> {
        self.incoming
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Opens a channel (JS `createChannel` + `open`) with our `handshake` bytes. If the remote
    /// already opened this key, the channel pairs at once: an [`MuxEvent::Opened`] is queued,
    /// followed by the messages the remote sent meanwhile.
    ///
    /// Errors: [`ChannelError::AlreadyOpen`] if this key is already open here (channels are unique
    /// per key, as JS `unique: true`).
    pub fn open(
        &mut self,
        protocol: &str,
        id: Option<&[u8]>,
        handshake: &[u8],
    ) -> Result<ChannelId, ChannelError> {
        let key = ChannelKey::new(protocol, id);
        if self.is_open(&key) {
            return Err(ChannelError::AlreadyOpen(key.to_string()));
        }
        let local_id = self.next_local;
        self.next_local += 1;

        let mut enc = Encoder::new();
        enc.uint(0).uint(1).uint(local_id).string(&key.protocol);
        enc.optional_buffer(key.id.as_deref()).raw(handshake);
        self.transmit.push_back(enc.into_vec());

        let waiting = self.incoming.get_mut(&key).and_then(|q| q.pop_front());
        let mut chan = LocalChannel {
            key: key.clone(),
            remote_id: 0,
        };
        match waiting {
            Some(remote_id) => {
                chan.remote_id = remote_id;
                self.pending_opens = self.pending_opens.saturating_sub(1);
                let slot = self
                    .remote
                    .get_mut(remote_id as usize - 1)
                    .and_then(|s| s.replace(RemoteSlot::Paired(local_id)));
                self.local.insert(local_id, chan);
                if let Some(RemoteSlot::Pending {
                    handshake,
                    buffered,
                    ..
                }) = slot
                {
                    self.events.push_back(MuxEvent::Opened {
                        channel: local_id,
                        key,
                        handshake,
                    });
                    for (message_type, payload) in buffered {
                        self.buffered_bytes = self.buffered_bytes.saturating_sub(payload.len());
                        self.events.push_back(MuxEvent::Message {
                            channel: local_id,
                            message_type,
                            payload,
                        });
                    }
                }
            }
            None => {
                self.outgoing.entry(key).or_default().push_back(local_id);
                self.local.insert(local_id, chan);
            }
        }
        Ok(local_id)
    }

    /// Queues a message of `message_type` on `channel`.
    ///
    /// Errors: [`ChannelError::Closed`] if the channel is gone.
    pub fn send(
        &mut self,
        channel: ChannelId,
        message_type: u64,
        payload: &[u8],
    ) -> Result<(), ChannelError> {
        if !self.local.contains_key(&channel) {
            return Err(ChannelError::Closed(channel));
        }
        self.transmit
            .push_back(encode_message(channel, message_type, payload));
        Ok(())
    }

    /// Closes our channel (sends `close`). Closing a closed channel does nothing.
    pub fn close(&mut self, channel: ChannelId) {
        let Some(chan) = self.local.remove(&channel) else {
            return;
        };
        if chan.remote_id > 0 {
            if let Some(slot) = self.remote.get_mut(chan.remote_id as usize - 1) {
                *slot = None;
            }
        }
        // If still unpaired, the id stays in `outgoing` so the remote's late open is matched.
        let mut enc = Encoder::new();
        enc.uint(0).uint(3).uint(channel);
        self.transmit.push_back(enc.into_vec());
    }

    /// Refuses the oldest waiting remote open for `key` (sends `reject`). Does nothing if none.
    pub fn reject(&mut self, key: &ChannelKey) {
        let Some(remote_id) = self.incoming.get_mut(key).and_then(|q| q.pop_front()) else {
            return;
        };
        self.pending_opens = self.pending_opens.saturating_sub(1);
        if let Some(slot) = self.remote.get_mut(remote_id as usize - 1) {
            if let Some(RemoteSlot::Pending { buffered, .. }) = slot.take() {
                let bytes: usize = buffered.iter().map(|(_, p)| p.len()).sum();
                self.buffered_bytes = self.buffered_bytes.saturating_sub(bytes);
            }
        }
        let mut enc = Encoder::new();
        enc.uint(0).uint(2).uint(remote_id);
        self.transmit.push_back(enc.into_vec());
    }

    /// Processes one received (decrypted) message.
    ///
    /// Errors: any [`MuxError`]; the caller should close the connection.
    pub fn on_message(&mut self, msg: &[u8]) -> Result<(), MuxError> {
        if msg.is_empty() {
            return Ok(()); // keep-alive
        }
        let mut dec = Decoder::new(msg);
        let remote_id = dec.uint()?;
        self.decode_one(remote_id, &mut dec)
    }

    fn decode_one(&mut self, remote_id: u64, dec: &mut Decoder<'_>) -> Result<(), MuxError> {
        let message_type = dec.uint()?;
        if remote_id == 0 {
            return self.on_control(message_type, dec);
        }
        let payload = dec.rest();
        let Some(slot) = self
            .remote
            .get_mut((remote_id - 1) as usize)
            .and_then(|s| s.as_mut())
        else {
            return Ok(()); // closed channel: could be a message in flight, ignore as JS does
        };
        match slot {
            RemoteSlot::Paired(channel) => self.events.push_back(MuxEvent::Message {
                channel: *channel,
                message_type,
                payload: payload.to_vec(),
            }),
            RemoteSlot::Pending { buffered, .. } => {
                self.buffered_bytes += payload.len();
                if self.buffered_bytes > self.max_buffered.unwrap_or(MAX_BUFFERED_BYTES) {
                    return Err(MuxError::BufferOverflow);
                }
                buffered.push((message_type, payload.to_vec()));
            }
            RemoteSlot::Ignored => {}
        }
        Ok(())
    }

    fn on_control(&mut self, message_type: u64, dec: &mut Decoder<'_>) -> Result<(), MuxError> {
        match message_type {
            0 => self.on_batch(dec),
            1 => self.on_open(dec),
            2 => self.on_reject(dec),
            3 => self.on_close(dec),
            _ => Ok(()), // unknown control messages are ignored, as JS does
        }
    }

    fn on_batch(&mut self, dec: &mut Decoder<'_>) -> Result<(), MuxError> {
        let mut remote_id = dec.uint()?;
        while !dec.is_empty() {
            let len = dec.uint()?;
            if len == 0 {
                remote_id = dec.uint()?;
                continue;
            }
            let item = dec.take(len)?;
            // A batch inside a batch would recurse once per level (a 1 MB message overflows the
            // stack); JS never nests them (uncork writes one flat batch), so refuse them.
            if remote_id == 0 && Decoder::new(item).uint() == Ok(0) {
                return Err(DecodeError::Invalid("batch nested in a batch".into()).into());
            }
            self.decode_one(remote_id, &mut Decoder::new(item))?;
        }
        Ok(())
    }

    fn on_open(&mut self, dec: &mut Decoder<'_>) -> Result<(), MuxError> {
        let remote_id = dec.uint()?;
        let protocol = dec.string()?;
        let id = dec.optional_buffer()?;
        let handshake = dec.rest().to_vec();
        let key = ChannelKey::new(protocol, id);
        if remote_id == 0 {
            // The control channel can't be opened: reject, as JS does.
            let mut enc = Encoder::new();
            enc.uint(0).uint(2).uint(0);
            self.transmit.push_back(enc.into_vec());
            return Ok(());
        }
        let rid = (remote_id - 1) as usize;
        // The remote may grow its ids by one at a time only (bounds our table).
        if rid == self.remote.len() {
            self.remote.push(None);
        }
        if rid >= self.remote.len() || self.remote[rid].is_some() {
            return Err(MuxError::InvalidOpen(remote_id));
        }
        if let Some(local_id) = self.outgoing.get_mut(&key).and_then(|q| q.pop_front()) {
            self.gc_outgoing(&key);
            match self.local.get_mut(&local_id) {
                Some(chan) => {
                    chan.remote_id = remote_id;
                    self.remote[rid] = Some(RemoteSlot::Paired(local_id));
                    self.events.push_back(MuxEvent::Opened {
                        channel: local_id,
                        key,
                        handshake,
                    });
                }
                // We closed it before the remote answered; our close is on its way.
                None => self.remote[rid] = Some(RemoteSlot::Ignored),
            }
            return Ok(());
        }
        self.pending_opens += 1;
        if self.pending_opens > MAX_PENDING_OPENS {
            return Err(MuxError::TooManyPendingOpens);
        }
        self.remote[rid] = Some(RemoteSlot::Pending {
            key: key.clone(),
            handshake,
            buffered: Vec::new(),
        });
        self.incoming
            .entry(key.clone())
            .or_default()
            .push_back(remote_id);
        self.events.push_back(MuxEvent::RemoteOpen { key });
        Ok(())
    }

    fn on_reject(&mut self, dec: &mut Decoder<'_>) -> Result<(), MuxError> {
        let local_id = dec.uint()?;
        let key = self
            .outgoing
            .iter()
            .find(|(_, q)| q.contains(&local_id))
            .map(|(k, _)| k.clone())
            .ok_or(MuxError::InvalidReject(local_id))?;
        if let Some(q) = self.outgoing.get_mut(&key) {
            q.retain(|id| *id != local_id);
        }
        self.gc_outgoing(&key);
        if self.local.remove(&local_id).is_some() {
            self.events.push_back(MuxEvent::Closed {
                channel: local_id,
                key,
            });
        }
        Ok(())
    }

    fn on_close(&mut self, dec: &mut Decoder<'_>) -> Result<(), MuxError> {
        let remote_id = dec.uint()?;
        if remote_id == 0 {
            return Ok(());
        }
        let Some(slot) = self
            .remote
            .get_mut((remote_id - 1) as usize)
            .and_then(|s| s.take())
        else {
            return Ok(());
        };
        match slot {
            RemoteSlot::Paired(channel) => {
                if let Some(chan) = self.local.remove(&channel) {
                    self.events.push_back(MuxEvent::Closed {
                        channel,
                        key: chan.key,
                    });
                }
            }
            RemoteSlot::Pending { key, buffered, .. } => {
                // Opened and closed before we accepted: forget it.
                let bytes: usize = buffered.iter().map(|(_, p)| p.len()).sum();
                self.buffered_bytes = self.buffered_bytes.saturating_sub(bytes);
                if let Some(q) = self.incoming.get_mut(&key) {
                    q.retain(|id| *id != remote_id);
                    if q.is_empty() {
                        self.incoming.remove(&key);
                    }
                }
                self.pending_opens = self.pending_opens.saturating_sub(1);
            }
            RemoteSlot::Ignored => {}
        }
        Ok(())
    }

    fn gc_outgoing(&mut self, key: &ChannelKey) {
        if self.outgoing.get(key).is_some_and(|q| q.is_empty()) {
            self.outgoing.remove(key);
        }
    }
}

/// `uint channel || uint type || payload`: one channel message.
pub fn encode_message(channel: ChannelId, message_type: u64, payload: &[u8]) -> Vec<u8> {
    let mut enc = Encoder::with_capacity(payload.len() + 4);
    enc.uint(channel).uint(message_type).raw(payload);
    enc.into_vec()
}

#[cfg(test)]
mod tests;
