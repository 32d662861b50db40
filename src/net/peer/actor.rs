//! The task side of a [`Connection`]: the actor that owns the protomux and the replicators,
//! the writer task, and the forwarders that turn a core's change feed into a command.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};

use super::{
    AppChannel, AppMessage, ChannelState, Command, ConnectionConfig, ConnectionEvent,
    MAX_APP_UNREAD, MAX_QUEUED_WRITE,
};
use crate::net::protomux::{ChannelId, ChannelKey, Mux, MuxEvent};
use crate::net::replication::{Replicator, PROTOCOL};
use crate::net::secret_stream::SessionInfo;
use crate::net::shared_core::SharedCore;
use crate::net::transport::{FrameReader, FrameWriter};
use crate::net::NetError;

/// Bytes handed to the writer task and not yet written, plus a wake-up when it drains.
#[derive(Default)]
struct WriteQueue {
    bytes: AtomicUsize,
    drained: Notify,
}

/// What ties the actor to its [`Connection`]: commands in, events and the final result out.
pub(super) struct Links {
    /// For forwarders; weak so that they don't keep the connection alive.
    pub(super) cmd_tx: mpsc::WeakUnboundedSender<Command>,
    pub(super) cmd_rx: mpsc::UnboundedReceiver<Command>,
    pub(super) events: mpsc::UnboundedSender<ConnectionEvent>,
    /// Only [`ConnectionEvent::RemoteOpen`] is wanted ([`super::Connection::take_remote_opens`]).
    pub(super) opens_only: Arc<AtomicBool>,
    pub(super) closed: watch::Sender<Option<Result<(), Arc<NetError>>>>,
}

/// Starts the writer task and the actor task of one connection over `reader` / `writer`.
pub(super) fn spawn<R: FrameReader, W: FrameWriter>(
    info: SessionInfo,
    reader: R,
    writer: W,
    config: ConnectionConfig,
    links: Links,
) {
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let queue = Arc::new(WriteQueue::default());
    let writer_task = tokio::spawn(run_writer(writer, out_rx, queue.clone()));
    let mut mux = Mux::new();
    mux.set_max_buffered(config.max_unaccepted_bytes);
    let actor = Actor {
        info,
        config,
        mux,
        out: out_tx,
        queue,
        cmd_tx: links.cmd_tx,
        events: links.events,
        opens_only: links.opens_only,
        cores: HashMap::new(),
        replicas: HashMap::new(),
        apps: HashMap::new(),
        last_send: tokio::time::Instant::now(),
        last_recv: tokio::time::Instant::now(),
    };
    let closed = links.closed;
    let cmd_rx = links.cmd_rx;
    tokio::spawn(async move {
        let result = actor.run(reader, cmd_rx, writer_task).await;
        if let Err(e) = &result {
            tracing::debug!(error = %e, "connection ended with an error");
        }
        let _ = closed.send(Some(result.map_err(Arc::new)));
    });
}

/// Sends `event` to the connection's event stream, unless its consumer wants only remote
/// opens (`opens_only`): a router would otherwise be woken for nothing by every length change
/// while logs grow.
fn emit(
    events: &mpsc::UnboundedSender<ConnectionEvent>,
    opens_only: &AtomicBool,
    event: ConnectionEvent,
) {
    let wanted =
        matches!(event, ConnectionEvent::RemoteOpen(_)) || !opens_only.load(Ordering::Relaxed);
    if wanted {
        let _ = events.send(event);
    }
}

struct CoreEntry {
    core: SharedCore,
    channel: Option<ChannelId>,
}

struct AppEntry {
    messages: mpsc::UnboundedSender<AppMessage>,
    /// Payload bytes sent to `messages` and not yet received by the [`AppChannel`].
    unread: Arc<AtomicUsize>,
    state: watch::Sender<ChannelState>,
}

/// Owns the protocol state of one connection. Runs in its own task.
struct Actor {
    info: SessionInfo,
    config: ConnectionConfig,
    mux: Mux,
    /// Plaintext messages for the writer task.
    out: mpsc::UnboundedSender<Vec<u8>>,
    queue: Arc<WriteQueue>,
    /// For forwarders; weak so that they don't keep the connection alive.
    cmd_tx: mpsc::WeakUnboundedSender<Command>,
    events: mpsc::UnboundedSender<ConnectionEvent>,
    opens_only: Arc<AtomicBool>,
    /// Cores replicated here, by discovery key.
    cores: HashMap<[u8; 32], CoreEntry>,
    replicas: HashMap<ChannelId, ([u8; 32], Replicator)>,
    apps: HashMap<ChannelId, AppEntry>,
    last_send: tokio::time::Instant,
    last_recv: tokio::time::Instant,
}

impl Actor {
    async fn run<R: FrameReader>(
        mut self,
        mut reader: R,
        mut cmd_rx: mpsc::UnboundedReceiver<Command>,
        mut writer: tokio::task::JoinHandle<Result<(), NetError>>,
    ) -> Result<(), NetError> {
        let result = self.run_loop(&mut reader, &mut cmd_rx, &mut writer).await;
        self.shutdown_channels();
        // Let the writer send what is queued (e.g. our close), then end the socket.
        drop(self.out);
        if !writer.is_finished() {
            let _ = tokio::time::timeout(Duration::from_secs(2), &mut writer).await;
            writer.abort();
        }
        result
    }

    async fn run_loop<R: FrameReader>(
        &mut self,
        reader: &mut R,
        cmd_rx: &mut mpsc::UnboundedReceiver<Command>,
        writer: &mut tokio::task::JoinHandle<Result<(), NetError>>,
    ) -> Result<(), NetError> {
        self.flush();
        let mut frames = Vec::new();
        let keep_alive = self.config.keep_alive.unwrap_or(Duration::from_secs(3600));
        let idle = self
            .config
            .idle_timeout
            .unwrap_or(Duration::from_secs(3600));
        loop {
            let ka_deadline = self.last_send + keep_alive;
            let idle_deadline = self.last_recv + idle;
            let can_read = self.queue.bytes.load(Ordering::Acquire) < MAX_QUEUED_WRITE;
            let drained = self.queue.drained.notified();
            tokio::select! {
                cmd = cmd_rx.recv() => match cmd {
                    None | Some(Command::Close) => return Ok(()),
                    Some(c) => self.on_command(c)?,
                },
                _ = drained, if !can_read => {
                    self.last_recv = tokio::time::Instant::now();
                }
                more = reader.read_frames(&mut frames), if can_read => {
                    if !more? {
                        return Ok(()); // the remote ended the stream
                    }
                    self.last_recv = tokio::time::Instant::now();
                    self.process_frames(&mut frames)?;
                }
                w = &mut *writer => {
                    return match w {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(e),
                        Err(e) => Err(NetError::Io(std::io::Error::other(e))),
                    };
                }
                _ = tokio::time::sleep_until(ka_deadline), if self.config.keep_alive.is_some() => {
                    self.send_raw(Vec::new());
                }
                // While we are not reading (write backpressure) the peer is not idle.
                _ = tokio::time::sleep_until(idle_deadline), if can_read && self.config.idle_timeout.is_some() => {
                    return Err(NetError::IdleTimeout(idle));
                }
            }
            self.flush();
        }
    }

    fn send_raw(&mut self, m: Vec<u8>) {
        self.last_send = tokio::time::Instant::now();
        self.queue.bytes.fetch_add(m.len(), Ordering::AcqRel);
        let _ = self.out.send(m);
    }

    /// Moves everything protomux queued to the writer.
    fn flush(&mut self) {
        while let Some(m) = self.mux.poll_transmit() {
            self.send_raw(m);
        }
    }

    fn process_frames(&mut self, frames: &mut Vec<Vec<u8>>) -> Result<(), NetError> {
        for frame in frames.drain(..) {
            self.mux.on_message(&frame)?;
            self.process_mux_events()?;
        }
        Ok(())
    }

    fn process_mux_events(&mut self) -> Result<(), NetError> {
        while let Some(ev) = self.mux.poll_event() {
            match ev {
                MuxEvent::RemoteOpen { key } => self.on_remote_open(key)?,
                MuxEvent::Opened {
                    channel, handshake, ..
                } => self.on_opened(channel, &handshake)?,
                MuxEvent::Message {
                    channel,
                    message_type,
                    payload,
                } => self.on_channel_message(channel, message_type, &payload)?,
                MuxEvent::Closed { channel, .. } => self.on_closed(channel),
            }
        }
        Ok(())
    }

    fn on_remote_open(&mut self, key: ChannelKey) -> Result<(), NetError> {
        // A core we replicate whose channel is not open (e.g. the remote re-opened it): accept.
        if key.protocol == PROTOCOL {
            if let Some(dk) = key
                .id
                .as_deref()
                .and_then(|id| <[u8; 32]>::try_from(id).ok())
            {
                if self.cores.get(&dk).is_some_and(|c| c.channel.is_none()) {
                    return self.open_replica_channel(dk);
                }
            }
        }
        emit(
            &self.events,
            &self.opens_only,
            ConnectionEvent::RemoteOpen(key),
        );
        Ok(())
    }

    fn on_opened(&mut self, channel: ChannelId, handshake: &[u8]) -> Result<(), NetError> {
        if let Some(app) = self.apps.get(&channel) {
            app.state.send_replace(ChannelState::Open);
            return Ok(());
        }
        let Some((dk, rep)) = self.replicas.get_mut(&channel) else {
            return Ok(());
        };
        let dk = *dk;
        let core = self.cores[&dk].core.clone();
        core.with_core(|c| rep.on_open(c, handshake))?;
        let out = rep.poll_transmit();
        self.send_channel(channel, out);
        emit(
            &self.events,
            &self.opens_only,
            ConnectionEvent::ReplicationStarted(dk),
        );
        Ok(())
    }

    fn on_channel_message(
        &mut self,
        channel: ChannelId,
        message_type: u64,
        payload: &[u8],
    ) -> Result<(), NetError> {
        if let Some(app) = self.apps.get(&channel) {
            // One message of any size (the frame limit bounds it) may wait alone; more must
            // fit in the bound together.
            let before = app.unread.fetch_add(payload.len(), Ordering::AcqRel);
            if before > 0 && before + payload.len() > MAX_APP_UNREAD {
                return Err(NetError::AppFlood(MAX_APP_UNREAD));
            }
            let _ = app.messages.send(AppMessage {
                message_type,
                payload: payload.to_vec(),
            });
            return Ok(());
        }
        let Some((dk, rep)) = self.replicas.get_mut(&channel) else {
            return Ok(());
        };
        let core = self.cores[&*dk].core.clone();
        let remote_length = rep.remote_length();
        core.with_core_flag(|c| {
            let before = rep.stats().data_applied;
            let r = rep.on_message(c, message_type, payload);
            (r, rep.stats().data_applied != before)
        })?;
        if rep.remote_length() != remote_length {
            let event = ConnectionEvent::RemoteLength {
                discovery_key: *dk,
                length: rep.remote_length(),
            };
            emit(&self.events, &self.opens_only, event);
        }
        let out = rep.poll_transmit();
        self.send_channel(channel, out);
        Ok(())
    }

    fn on_closed(&mut self, channel: ChannelId) {
        if let Some(app) = self.apps.remove(&channel) {
            app.state.send_replace(ChannelState::Closed);
            return;
        }
        if let Some((dk, _)) = self.replicas.remove(&channel) {
            if let Some(c) = self.cores.get_mut(&dk) {
                c.channel = None;
            }
            emit(
                &self.events,
                &self.opens_only,
                ConnectionEvent::ReplicationClosed(dk),
            );
        }
    }

    fn send_channel(&mut self, channel: ChannelId, msgs: Vec<(u64, Vec<u8>)>) {
        for (t, p) in msgs {
            // The channel exists: it was just looked up, and sends don't close it.
            let _ = self.mux.send(channel, t, &p);
        }
    }

    fn on_command(&mut self, c: Command) -> Result<(), NetError> {
        match c {
            Command::Replicate { core, reply } => {
                let _ = reply.send(self.add_core(core));
                self.process_mux_events()?;
            }
            Command::CoreChanged(dk) => self.on_core_changed(dk),
            Command::OpenApp { key, reply } => {
                let r = self.open_app(key);
                let _ = reply.send(r);
                self.process_mux_events()?;
            }
            Command::AppSend {
                channel,
                message_type,
                payload,
            } => {
                // A send racing a close is dropped, like a JS send on a closed channel.
                let _ = self.mux.send(channel, message_type, &payload);
            }
            Command::AppClose(channel) => {
                self.mux.close(channel);
                if let Some(app) = self.apps.remove(&channel) {
                    app.state.send_replace(ChannelState::Closed);
                }
            }
            Command::Close => {}
        }
        Ok(())
    }

    fn add_core(&mut self, core: SharedCore) -> Result<(), NetError> {
        let dk = *core.discovery_key().as_bytes();
        if self.cores.contains_key(&dk) {
            return Err(NetError::AlreadyReplicating(hex::encode(core.key())));
        }
        spawn_forwarder(&core, dk, self.cmd_tx.clone());
        self.cores.insert(
            dk,
            CoreEntry {
                core,
                channel: None,
            },
        );
        self.open_replica_channel(dk)
    }

    fn open_replica_channel(&mut self, dk: [u8; 32]) -> Result<(), NetError> {
        let entry = self.cores.get_mut(&dk).ok_or(NetError::Closed)?;
        let mut rep = Replicator::new(
            entry.core.key(),
            self.info.is_initiator,
            self.info.handshake_hash,
        );
        rep.set_max_inflight(self.config.max_inflight);
        let channel = self.mux.open(PROTOCOL, Some(&dk), &rep.local_handshake())?;
        entry.channel = Some(channel);
        self.replicas.insert(channel, (dk, rep));
        Ok(())
    }

    fn on_core_changed(&mut self, dk: [u8; 32]) {
        let Some(entry) = self.cores.get(&dk) else {
            return;
        };
        let Some(channel) = entry.channel else {
            return;
        };
        let core = entry.core.clone();
        let Some((_, rep)) = self.replicas.get_mut(&channel) else {
            return;
        };
        core.with_core(|c| rep.on_local_change(c));
        let out = rep.poll_transmit();
        self.send_channel(channel, out);
    }

    fn open_app(&mut self, key: ChannelKey) -> Result<AppChannel, NetError> {
        let channel = self.mux.open(&key.protocol, key.id.as_deref(), &[])?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (state_tx, state_rx) = watch::channel(ChannelState::Opening);
        let unread = Arc::new(AtomicUsize::new(0));
        self.apps.insert(
            channel,
            AppEntry {
                messages: tx,
                unread: unread.clone(),
                state: state_tx,
            },
        );
        Ok(AppChannel {
            channel,
            key,
            cmd: self.cmd_tx.clone(),
            messages: rx,
            unread,
            state: state_rx,
        })
    }

    fn shutdown_channels(&mut self) {
        for (_, app) in self.apps.drain() {
            app.state.send_replace(ChannelState::Closed);
        }
    }
}

/// Forwards a core's change notifications to the actor until the connection ends.
fn spawn_forwarder(core: &SharedCore, dk: [u8; 32], cmd: mpsc::WeakUnboundedSender<Command>) {
    let mut rx = core.subscribe();
    tokio::spawn(async move {
        loop {
            let Some(tx) = cmd.upgrade() else { break };
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() || tx.send(Command::CoreChanged(dk)).is_err() {
                        break;
                    }
                }
                _ = tx.closed() => break,
            }
        }
    });
}

/// Writes queued messages, coalescing bursts into one transport write.
async fn run_writer<W: FrameWriter>(
    mut w: W,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    queue: Arc<WriteQueue>,
) -> Result<(), NetError> {
    const MAX_WRITE: usize = 256 * 1024;
    let mut batch = Vec::new();
    while let Some(m) = rx.recv().await {
        batch.clear();
        let mut plain = m.len();
        batch.push(m);
        while plain < MAX_WRITE {
            match rx.try_recv() {
                Ok(m) => {
                    plain += m.len();
                    batch.push(m);
                }
                Err(_) => break,
            }
        }
        w.write_frames(&batch).await?;
        if queue.bytes.fetch_sub(plain, Ordering::AcqRel) - plain < MAX_QUEUED_WRITE {
            queue.drained.notify_one();
        }
    }
    w.shutdown().await;
    Ok(())
}
