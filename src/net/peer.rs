//! The tokio driver: a [`Connection`] is one protomux + the replication of any number of cores
//! and application channels over one frame transport ([`super::transport`]): a secret stream
//! on a socket ([`Connection::connect`]), or an already-authenticated message stream such as a
//! custodial relay stream ([`Connection::from_frames`]).
//!
//! Tasks per connection (`peer/actor.rs`): an actor that owns the [`FrameReader`], the
//! [`Mux`](super::protomux::Mux) and the [`Replicator`](super::replication::Replicator)s; a
//! writer that owns the [`FrameWriter`] (so a slow transport never blocks
//! reading); and one tiny forwarder per replicated core that turns its
//! [`SharedCore`] change feed into a command for the actor (so local appends are announced at
//! once). Everything that fails ends only this connection, with the error in
//! [`Connection::closed`].

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch};

use super::protomux::{ChannelId, ChannelKey};
use super::secret_stream::{handshake, SessionInfo, DEFAULT_HANDSHAKE_TIMEOUT};
use super::shared_core::SharedCore;
use super::transport::{
    FrameLimit, FrameReader, FrameWriter, SecretStreamReader, SecretStreamWriter,
};
use super::NetError;
use crate::keys::IdentityKey;

mod actor;

/// Above this many bytes queued for the socket, we stop reading from the peer until the writer
/// catches up (a peer that sends requests but never reads can't grow our memory without bound).
pub const MAX_QUEUED_WRITE: usize = 8 * 1024 * 1024;

/// Most bytes of messages received on one [`AppChannel`] and not yet taken by
/// [`AppChannel::recv`]; a message that would go past it ends the connection with
/// [`NetError::AppFlood`], unless nothing else is waiting (one message of any size, as the frame
/// limit allows, may always wait alone). Application channels carry small control messages (the
/// lobby's hello and mirrored signals, each under 64 KiB), so 1 MiB is far above any honest
/// backlog.
pub const MAX_APP_UNREAD: usize = 1024 * 1024;

/// Settings of a [`Connection`].
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Limit for the whole secret-stream handshake (default 10 s).
    pub handshake_timeout: Duration,
    /// Requests in flight per replicated core (default 64).
    pub max_inflight: usize,
    /// Send an empty keep-alive message after this much send silence (default 5 s, as JS
    /// hypercore's `setKeepAlive(5000)`); `None` disables.
    pub keep_alive: Option<Duration>,
    /// End the connection with [`NetError::IdleTimeout`] when nothing (not even a keep-alive)
    /// arrived for this long: a peer that vanished without closing (default 30 s; JS hypercore
    /// peers send keep-alives every 5 s). `None` disables.
    pub idle_timeout: Option<Duration>,
    /// Largest secret-stream record accepted from the peer, in bytes (ciphertext: plaintext +
    /// 17). A larger one is refused when its length prefix arrives, before it is buffered, and
    /// ends the connection with [`super::secret_stream::SecretStreamError::FrameTooLarge`].
    /// Default [`super::secret_stream::MAX_FRAME`] (16 MiB, the format's limit); change it
    /// later with [`Connection::set_max_frame_bytes`]. Applies to secret streams
    /// ([`Connection::connect`]); a [`Connection::from_frames`] transport bounds its own
    /// frames.
    pub max_frame_bytes: usize,
    /// Most bytes buffered for channels the peer opened that nobody accepted yet, in bytes
    /// (default [`super::protomux::MAX_BUFFERED_BYTES`], 4 MiB); past it the connection ends.
    pub max_unaccepted_bytes: usize,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_inflight: super::replication::DEFAULT_MAX_INFLIGHT,
            keep_alive: Some(Duration::from_secs(5)),
            idle_timeout: Some(Duration::from_secs(30)),
            max_frame_bytes: super::secret_stream::MAX_FRAME,
            max_unaccepted_bytes: super::protomux::MAX_BUFFERED_BYTES,
        }
    }
}

/// Something the application may want to react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionEvent {
    /// The remote opened a channel nobody opened here yet (an app protocol, or a core we don't
    /// replicate). Call [`Connection::open_app_channel`] / [`Connection::replicate`] to accept it;
    /// it stays pending (its messages buffered) until then.
    RemoteOpen(ChannelKey),
    /// Replication of the core with this discovery key started (both sides opened the channel,
    /// capabilities checked).
    ReplicationStarted([u8; 32]),
    /// The remote closed replication of this core.
    ReplicationClosed([u8; 32]),
    /// The remote said (in a `sync`) that its copy of the core with this discovery key has
    /// `length` blocks. A reader knows it is up to date once its own length reaches it.
    RemoteLength {
        /// The core's discovery key.
        discovery_key: [u8; 32],
        /// The remote's length, in blocks.
        length: u64,
    },
}

/// The channels the remote opens that nobody opened here yet, in order
/// ([`Connection::take_remote_opens`]).
#[derive(Debug)]
pub struct RemoteOpens {
    events: mpsc::UnboundedReceiver<ConnectionEvent>,
}

impl RemoteOpens {
    /// The next channel the remote opened (see [`ConnectionEvent::RemoteOpen`]); `None` once
    /// the connection has ended.
    pub async fn next(&mut self) -> Option<ChannelKey> {
        loop {
            // Other events may have been queued before the stream was taken.
            if let ConnectionEvent::RemoteOpen(key) = self.events.recv().await? {
                return Some(key);
            }
        }
    }
}

/// State of an application channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelState {
    /// We opened it; the remote has not opened its side yet.
    Opening,
    /// Both sides opened it.
    Open,
    /// Closed by either side, or the connection ended.
    Closed,
}

enum Command {
    Replicate {
        core: SharedCore,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    CoreChanged([u8; 32]),
    OpenApp {
        key: ChannelKey,
        reply: oneshot::Sender<Result<AppChannel, NetError>>,
    },
    AppSend {
        channel: ChannelId,
        message_type: u64,
        payload: Vec<u8>,
    },
    AppClose(ChannelId),
    Close,
}

/// An encrypted, multiplexed connection to one peer. Dropping it closes the connection.
pub struct Connection {
    info: SessionInfo,
    frame_limit: FrameLimit,
    cmd: mpsc::UnboundedSender<Command>,
    closed: watch::Receiver<Option<Result<(), Arc<NetError>>>>,
    events: std::sync::Mutex<Option<mpsc::UnboundedReceiver<ConnectionEvent>>>,
    /// Set by [`Connection::take_remote_opens`]: the actor then sends only
    /// [`ConnectionEvent::RemoteOpen`].
    opens_only: Arc<AtomicBool>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field(
                "remote_public_key",
                &hex::encode(self.info.remote_public_key),
            )
            .field("is_initiator", &self.info.is_initiator)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Runs the secret-stream handshake on `io` as `is_initiator` with our `identity` key, and
    /// starts the connection's tasks (requires a tokio runtime).
    ///
    /// Errors: [`NetError::SecretStream`] if the handshake fails, times out (10 s) or the peer
    /// disconnects during it.
    pub async fn connect<S>(
        io: S,
        identity: &SigningKey,
        is_initiator: bool,
    ) -> Result<Self, NetError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        Self::connect_with(io, identity, is_initiator, ConnectionConfig::default()).await
    }

    /// [`Connection::connect`] on a TCP stream, with `TCP_NODELAY` set first: without it, Nagle's
    /// algorithm delays small replication messages by up to ~40 ms each.
    ///
    /// Errors: as [`Connection::connect`], plus [`NetError::Io`] if the option can't be set.
    pub async fn connect_tcp(
        tcp: tokio::net::TcpStream,
        identity: &SigningKey,
        is_initiator: bool,
    ) -> Result<Self, NetError> {
        tcp.set_nodelay(true)?;
        Self::connect(tcp, identity, is_initiator).await
    }

    /// [`Connection::connect`] with explicit settings.
    pub async fn connect_with<S>(
        mut io: S,
        identity: &SigningKey,
        is_initiator: bool,
        config: ConnectionConfig,
    ) -> Result<Self, NetError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (info, encryptor, decryptor, rest) =
            handshake(&mut io, identity, is_initiator, config.handshake_timeout).await?;
        let (reader, writer) = tokio::io::split(io);
        let limit = FrameLimit::new(config.max_frame_bytes);
        let mut conn = Self::from_frames(
            info,
            SecretStreamReader::new(reader, decryptor, &rest).with_limit(limit.clone()),
            SecretStreamWriter::new(writer, encryptor),
            config,
        );
        conn.frame_limit = limit;
        Ok(conn)
    }

    /// Shares `limit` with the transport's reader, so that [`Connection::set_max_frame_bytes`]
    /// reaches it (a reader built outside this module, e.g. a relayed stream's).
    pub(crate) fn with_frame_limit(mut self, limit: FrameLimit) -> Self {
        self.frame_limit = limit;
        self
    }

    /// Starts a connection on a transport that is already authenticated and carries whole
    /// protomux frames, skipping the secret-stream handshake: e.g. a custodial
    /// `@hyperswarm/dht-relay` stream, where the relay ran the Noise handshake and told us
    /// `info` (the remote's public key, the 64-byte handshake hash and whether we initiated;
    /// hypercore capabilities are derived from the hash, so both sides must hold the same one).
    /// Everything above the transport (protomux, replication, app channels, keep-alives, idle
    /// timeout) runs as with [`Connection::connect`]. Requires a tokio runtime.
    pub fn from_frames<R: FrameReader, W: FrameWriter>(
        info: SessionInfo,
        reader: R,
        writer: W,
        config: ConnectionConfig,
    ) -> Self {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (closed_tx, closed_rx) = watch::channel(None);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let opens_only = Arc::new(AtomicBool::new(false));
        let frame_limit = FrameLimit::new(config.max_frame_bytes);
        let links = actor::Links {
            cmd_tx: cmd_tx.downgrade(),
            cmd_rx,
            events: events_tx,
            opens_only: opens_only.clone(),
            closed: closed_tx,
        };
        actor::spawn(info.clone(), reader, writer, config, links);
        Self {
            info,
            frame_limit,
            cmd: cmd_tx,
            closed: closed_rx,
            events: std::sync::Mutex::new(Some(events_rx)),
            opens_only,
        }
    }

    /// The remote's ed25519 public key, proven by the handshake.
    pub fn remote_public_key(&self) -> IdentityKey {
        IdentityKey::from_bytes(self.info.remote_public_key)
    }

    /// Changes the largest record accepted from the peer (see
    /// [`ConnectionConfig::max_frame_bytes`]), e.g. raised once the peer is trusted; applies
    /// to the next record read. Clamped to 16 MiB.
    pub fn set_max_frame_bytes(&self, bytes: usize) {
        self.frame_limit.set(bytes);
    }

    /// The largest record accepted from the peer now, in bytes.
    pub fn max_frame_bytes(&self) -> usize {
        self.frame_limit.get()
    }

    /// Whether we initiated the handshake.
    pub fn is_initiator(&self) -> bool {
        self.info.is_initiator
    }

    /// The 64-byte Noise handshake hash of this session.
    pub fn handshake_hash(&self) -> [u8; 64] {
        self.info.handshake_hash
    }

    /// Starts replicating `core` with the peer (either side may call it first; cores pair by
    /// discovery key). Returns once the channel is opened locally; replication then runs until
    /// the connection ends: missing blocks are downloaded, requests are answered, and local
    /// appends are announced at once.
    ///
    /// Errors: [`NetError::Closed`] if the connection ended; [`NetError::AlreadyReplicating`] if
    /// this core already replicates on this connection.
    pub async fn replicate(&self, core: SharedCore) -> Result<(), NetError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Replicate { core, reply })?;
        rx.await.map_err(|_| NetError::Closed)?
    }

    /// Opens an application channel `protocol` (with optional `id` bytes) on this connection,
    /// e.g. `"dat-social/lobby"`. It pairs with the remote's channel of the same protocol and id
    /// whenever the remote opens it (before or after us). Messages sent before that are buffered
    /// by the remote.
    ///
    /// Errors: [`NetError::Closed`]; [`NetError::Channel`] if the same channel is already open.
    pub async fn open_app_channel(
        &self,
        protocol: &str,
        id: Option<&[u8]>,
    ) -> Result<AppChannel, NetError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::OpenApp {
            key: ChannelKey::new(protocol, id),
            reply,
        })?;
        rx.await.map_err(|_| NetError::Closed)?
    }

    /// The event stream ([`ConnectionEvent`]). Can be taken once; later calls return `None`.
    pub fn take_events(&self) -> Option<mpsc::UnboundedReceiver<ConnectionEvent>> {
        self.events.lock().ok()?.take()
    }

    /// The event stream for a consumer that only dispatches channels (a
    /// [`crate::endpoint::Router`]): from now on the connection sends it only
    /// [`ConnectionEvent::RemoteOpen`], so that replication progress (every
    /// [`ConnectionEvent::RemoteLength`] while logs grow) does not wake it. Taken once, like
    /// [`Connection::take_events`] (either one); later calls return `None`.
    pub fn take_remote_opens(&self) -> Option<RemoteOpens> {
        let events = self.take_events()?;
        self.opens_only.store(true, Ordering::Relaxed);
        Some(RemoteOpens { events })
    }

    /// Closes the connection (pending outgoing messages are still sent).
    pub fn close(&self) {
        let _ = self.cmd.send(Command::Close);
    }

    /// Waits until the connection has ended. `Ok(())` for a clean end (either side closed),
    /// `Err` with the reason otherwise (bad data from the peer, socket error...).
    pub async fn closed(&self) -> Result<(), Arc<NetError>> {
        let mut rx = self.closed.clone();
        loop {
            if let Some(r) = rx.borrow_and_update().clone() {
                return r;
            }
            if rx.changed().await.is_err() {
                return Err(Arc::new(NetError::Closed));
            }
        }
    }

    /// True once the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.closed.borrow().is_some()
    }

    fn command(&self, c: Command) -> Result<(), NetError> {
        self.cmd.send(c).map_err(|_| NetError::Closed)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let _ = self.cmd.send(Command::Close);
    }
}

/// A message received on an [`AppChannel`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppMessage {
    /// The protomux message type (0 for [`AppChannel::send`]).
    pub message_type: u64,
    /// The bytes as sent.
    pub payload: Vec<u8>,
}

/// An application channel on a [`Connection`] (JS: a protomux channel with raw messages).
/// Dropping it closes the channel.
pub struct AppChannel {
    channel: ChannelId,
    key: ChannelKey,
    cmd: mpsc::WeakUnboundedSender<Command>,
    messages: mpsc::UnboundedReceiver<AppMessage>,
    /// Payload bytes in `messages` (bounded by [`MAX_APP_UNREAD`] in the actor).
    unread: Arc<AtomicUsize>,
    state: watch::Receiver<ChannelState>,
}

impl std::fmt::Debug for AppChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppChannel")
            .field("key", &self.key.to_string())
            .field("state", &*self.state.borrow())
            .finish()
    }
}

impl AppChannel {
    /// The channel's protocol and id.
    pub fn key(&self) -> &ChannelKey {
        &self.key
    }

    /// Current state.
    pub fn state(&self) -> ChannelState {
        *self.state.borrow()
    }

    /// Waits until the remote has opened its side. Errors: [`NetError::Closed`] if the channel
    /// closed (rejected by the remote, or the connection ended) instead.
    pub async fn opened(&self) -> Result<(), NetError> {
        let mut rx = self.state.clone();
        loop {
            match *rx.borrow_and_update() {
                ChannelState::Open => return Ok(()),
                ChannelState::Closed => return Err(NetError::Closed),
                ChannelState::Opening => {}
            }
            if rx.changed().await.is_err() {
                return Err(NetError::Closed);
            }
        }
    }

    /// Sends `payload` as message type 0.
    ///
    /// Errors: [`NetError::Closed`] if the connection ended.
    pub fn send(&self, payload: &[u8]) -> Result<(), NetError> {
        self.send_typed(0, payload)
    }

    /// Sends `payload` as message type `message_type`.
    ///
    /// Errors: [`NetError::Closed`] if the connection ended or the channel is closed.
    pub fn send_typed(&self, message_type: u64, payload: &[u8]) -> Result<(), NetError> {
        if self.state() == ChannelState::Closed {
            return Err(NetError::Closed);
        }
        let cmd = self.cmd.upgrade().ok_or(NetError::Closed)?;
        cmd.send(Command::AppSend {
            channel: self.channel,
            message_type,
            payload: payload.to_vec(),
        })
        .map_err(|_| NetError::Closed)
    }

    /// The next message; `None` once the channel is closed and everything was read.
    pub async fn recv(&mut self) -> Option<AppMessage> {
        let message = self.messages.recv().await?;
        self.unread
            .fetch_sub(message.payload.len(), Ordering::AcqRel);
        Some(message)
    }

    /// Closes the channel (the remote sees it closed).
    pub fn close(&self) {
        if let Some(cmd) = self.cmd.upgrade() {
            let _ = cmd.send(Command::AppClose(self.channel));
        }
    }
}

impl Drop for AppChannel {
    /// Dropping the handle closes the channel (the remote sees it closed).
    fn drop(&mut self) {
        if self.state() != ChannelState::Closed {
            self.close();
        }
    }
}

#[cfg(test)]
mod tests;
