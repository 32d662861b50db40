//! The relay client's task: one relay session at a time over a transport, reconnecting with
//! back-off when it is lost. The protocol state lives in the sans-IO [`ClientCore`]
//! (`proto`); this task owns the sockets and maps the core's ids (stream aliases, query ids,
//! server aliases) to the callers' oneshots and the streams' channels, as quinn's
//! `ConnectionDriver` does around `quinn-proto`. A writer task owns the transport's write half
//! (so a slow relay never blocks reading).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use rand::Rng;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::debug;

use super::proto::{ClientCore, ClientEvent, NewStream};
use super::stream::{ReadCrypto, RelayStreamReader, RelayStreamWriter, StreamInput};
use super::transport::{self, Reader, Writer};
use super::{
    ClientOptions, Cmd, IceState, Listener, RelayClientError, RelayState, RelayStream, RelayUrl,
};
use crate::net::secret_stream::FrameDecoder;
use crate::net::transport::FrameLimit;

/// The client's task: the [`ClientCore`] and, by the core's ids, who waits for what.
struct Driver {
    url: RelayUrl,
    weak: mpsc::WeakUnboundedSender<Cmd>,
    state: watch::Sender<RelayState>,
    /// The relay's latest ICE servers.
    ice: watch::Sender<IceState>,
    core: ClientCore,
    /// The current session's writer queue; `None` between sessions.
    out: Option<mpsc::UnboundedSender<Outgoing>>,
    /// The local address of the current session's socket.
    local_ip: IpAddr,
    /// Connects awaiting the relay's `open`, by our alias.
    connects: HashMap<u32, ConnectReply>,
    /// Listens, by our server alias.
    listeners: HashMap<u32, mpsc::UnboundedSender<RelayStream>>,
    /// Readers of the streams of the current session, by our alias.
    streams: HashMap<u32, mpsc::UnboundedSender<StreamInput>>,
    /// `announce` / `unannounce` callers awaiting `finished`, by query id.
    announces: HashMap<u32, oneshot::Sender<Result<(), RelayClientError>>>,
    /// `lookup` callers awaiting `finished`, by query id.
    lookups: HashMap<u32, LookupReply>,
}

type ConnectReply = oneshot::Sender<Result<RelayStream, RelayClientError>>;
/// Where a lookup's announcers (public keys) go.
type LookupReply = oneshot::Sender<Result<Vec<[u8; 32]>, RelayClientError>>;

/// Why a session ended.
enum End {
    /// Every handle is gone: stop.
    Exit,
    /// The relay went away; reconnect. `true` if the session had reached `Connected`.
    Lost(String, bool),
}

pub(super) async fn run(
    url: RelayUrl,
    key: SigningKey,
    options: ClientOptions,
    mut cmd_rx: mpsc::UnboundedReceiver<Cmd>,
    weak: mpsc::WeakUnboundedSender<Cmd>,
    state: watch::Sender<RelayState>,
    ice: watch::Sender<IceState>,
) {
    let mut d = Driver {
        url,
        weak,
        state,
        ice,
        core: ClientCore::new(key, options.custodial, options.idle_timeout),
        out: None,
        local_ip: IpAddr::from([0, 0, 0, 0]),
        connects: HashMap::new(),
        listeners: HashMap::new(),
        streams: HashMap::new(),
        announces: HashMap::new(),
        lookups: HashMap::new(),
    };
    let mut attempt = 0u32;
    loop {
        let opened = {
            let url = d.url.clone();
            let open = transport::open(&url, &options);
            tokio::pin!(open);
            loop {
                tokio::select! {
                    r = &mut open => break r,
                    cmd = cmd_rx.recv() => match cmd {
                        Some(c) => d.on_cmd(c),
                        None => return,
                    },
                }
            }
        };
        let error = match opened {
            Ok((reader, writer, local_ip)) => {
                match d.session(reader, writer, local_ip, &mut cmd_rx).await {
                    End::Exit => return,
                    End::Lost(error, was_connected) => {
                        if was_connected {
                            attempt = 0;
                        }
                        error
                    }
                }
            }
            Err(e) => e.to_string(),
        };
        attempt = attempt.saturating_add(1);
        let delay = backoff(&options, attempt);
        debug!(url = %d.url, attempt, ?delay, %error, "relay client: reconnecting");
        d.state.send_replace(RelayState::Reconnecting {
            attempt,
            delay,
            error,
        });
        let wake = tokio::time::sleep(delay);
        tokio::pin!(wake);
        loop {
            tokio::select! {
                _ = &mut wake => break,
                cmd = cmd_rx.recv() => match cmd {
                    Some(c) => d.on_cmd(c),
                    None => return,
                },
            }
        }
    }
}

/// Exponential back-off from `backoff_min`, doubling per failed attempt up to `backoff_max`,
/// with jitter: a uniform pick in [delay/2, delay], so that many clients of a restarted relay
/// don't come back in lockstep.
fn backoff(options: &ClientOptions, attempt: u32) -> Duration {
    let base = options
        .backoff_min
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
        .min(options.backoff_max);
    let ms = base.as_millis().max(1) as u64;
    Duration::from_millis(rand::thread_rng().gen_range(ms / 2..=ms))
}

impl Driver {
    /// A command from a handle, with or without a session (the core answers `None` to what
    /// needs one: the caller hears `NotConnected`).
    fn on_cmd(&mut self, cmd: Cmd) {
        let not_connected = || RelayClientError::NotConnected(self.url.to_string());
        match cmd {
            Cmd::Connect {
                remote_public_key,
                reply,
            } => match self.core.connect(remote_public_key) {
                Some(alias) => {
                    self.connects.insert(alias, reply);
                }
                None => {
                    let _ = reply.send(Err(not_connected()));
                }
            },
            Cmd::Listen { reply } => {
                let _ = reply.send(self.add_listen());
            }
            Cmd::Unlisten(alias) => {
                self.listeners.remove(&alias);
                self.core.unlisten(alias);
            }
            // Announces are recorded either way (and go out on the next session).
            Cmd::Announce { topic, add, reply } => match self.core.announce(topic, add) {
                Some(id) => {
                    self.announces.insert(id, reply);
                }
                None => {
                    let _ = reply.send(Err(not_connected()));
                }
            },
            Cmd::Lookup { topic, reply } => match self.core.lookup(topic) {
                Some(id) => {
                    self.lookups.insert(id, reply);
                }
                None => {
                    let _ = reply.send(Err(not_connected()));
                }
            },
            Cmd::Data {
                generation,
                alias,
                chunks,
                done,
            } => {
                if self.core.send_data(generation, alias, chunks) {
                    self.flush(Some(done));
                }
                // Else `done` drops: the write fails, the stream is gone.
            }
            Cmd::End { generation, alias } => self.core.end_stream(generation, alias),
            Cmd::Dropped { generation, alias } => {
                if generation == self.core.generation() {
                    self.streams.remove(&alias);
                }
                self.core.drop_stream(generation, alias);
            }
        }
    }

    fn add_listen(&mut self) -> Result<Listener, RelayClientError> {
        let cmd = self.weak.upgrade().ok_or(RelayClientError::Stopped)?;
        let alias = self.core.listen();
        let (tx, rx) = mpsc::unbounded_channel();
        self.listeners.insert(alias, tx);
        Ok(Listener { rx, cmd, alias })
    }

    /// Hands the core's queued frames to the writer (with `done` acknowledging them).
    fn flush(&mut self, done: Option<oneshot::Sender<()>>) {
        let frames: Vec<Vec<u8>> = std::iter::from_fn(|| self.core.poll_transmit()).collect();
        match (&self.out, frames.is_empty()) {
            (Some(out), false) => {
                let _ = out.send((frames, done));
            }
            _ => {
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
        }
    }

    /// Delivers the core's events to whoever waits for them.
    fn deliver_events(&mut self) {
        while let Some(ev) = self.core.poll_event() {
            match ev {
                ClientEvent::Connected => {
                    debug!(url = %self.url, "relay client: connected");
                    self.state.send_replace(RelayState::Connected);
                }
                ClientEvent::Opened(new) => {
                    let alias = new.alias;
                    let Some(reply) = self.connects.remove(&alias) else {
                        continue;
                    };
                    match self.stream(new) {
                        Some(stream) => {
                            if let Err(Ok(stream)) = reply.send(Ok(stream)) {
                                // The caller gave up: its reader's drop destroys the stream.
                                drop(stream);
                            }
                        }
                        None => self.core.forget_stream(alias),
                    }
                }
                ClientEvent::ConnectFailed {
                    alias,
                    peer,
                    reason,
                } => {
                    if let Some(reply) = self.connects.remove(&alias) {
                        let peer = hex::encode(peer);
                        let _ = reply.send(Err(RelayClientError::ConnectFailed { peer, reason }));
                    }
                }
                ClientEvent::Incoming { listen, stream } => {
                    let alias = stream.alias;
                    let tx = self.listeners.get(&listen).cloned();
                    let delivered = match (tx, self.stream(stream)) {
                        (Some(tx), Some(stream)) => tx.send(stream).is_ok(),
                        _ => false,
                    };
                    if !delivered {
                        self.streams.remove(&alias);
                        self.core.forget_stream(alias);
                    }
                }
                ClientEvent::StreamData { alias, chunks } => {
                    if let Some(tx) = self.streams.get(&alias) {
                        let _ = tx.send(StreamInput::Data(chunks));
                    }
                }
                ClientEvent::StreamEnd { alias } => {
                    if let Some(tx) = self.streams.remove(&alias) {
                        let _ = tx.send(StreamInput::End);
                    }
                }
                ClientEvent::StreamClosed { alias, reason } => {
                    if let Some(tx) = self.streams.remove(&alias) {
                        let _ = tx.send(StreamInput::Error(reason));
                    }
                }
                ClientEvent::IceServers { servers, expires } => {
                    debug!(url = %self.url, count = servers.len(), "relay client: ICE servers");
                    self.ice.send_replace(IceState::Ready { servers, expires });
                }
                ClientEvent::IceRefused => {
                    self.ice.send_replace(IceState::None);
                }
                ClientEvent::QueryFinished { id, peers } => {
                    if let Some(reply) = self.announces.remove(&id) {
                        let _ = reply.send(Ok(()));
                    } else if let Some(reply) = self.lookups.remove(&id) {
                        let _ = reply.send(Ok(peers));
                    }
                }
                ClientEvent::QueryFailed { id, topic, reason } => {
                    let fail = RelayClientError::QueryFailed {
                        topic: hex::encode(topic),
                        reason,
                    };
                    if let Some(reply) = self.announces.remove(&id) {
                        let _ = reply.send(Err(fail));
                    } else if let Some(reply) = self.lookups.remove(&id) {
                        let _ = reply.send(Err(fail));
                    }
                }
            }
        }
    }

    /// The handles of a stream the core opened; its reader's sender goes into `streams`.
    /// `None` once every client handle is gone.
    fn stream(&mut self, new: NewStream) -> Option<RelayStream> {
        let cmd = self.weak.upgrade()?;
        let (tx, rx) = mpsc::unbounded_channel();
        self.streams.insert(new.alias, tx);
        let (encryptor, crypto) = match new.crypto {
            Some((enc, dec)) => {
                let crypto = ReadCrypto {
                    frames: FrameDecoder::new(),
                    decryptor: *dec,
                };
                (Some(enc), Some(Box::new(crypto)))
            }
            None => (None, None),
        };
        Some(RelayStream {
            info: new.info,
            local_ip: self.local_ip,
            reader: RelayStreamReader {
                rx,
                cmd: cmd.clone(),
                generation: new.generation,
                alias: new.alias,
                after: None,
                crypto,
                limit: FrameLimit::default(),
            },
            writer: RelayStreamWriter {
                cmd,
                generation: new.generation,
                alias: new.alias,
                encryptor,
            },
        })
    }

    async fn session(
        &mut self,
        mut reader: Reader,
        writer: Writer,
        local_ip: IpAddr,
        cmd_rx: &mut mpsc::UnboundedReceiver<Cmd>,
    ) -> End {
        let (out, out_rx) = mpsc::unbounded_channel();
        let mut write_task = tokio::spawn(write_loop(writer, out_rx));
        self.out = Some(out);
        self.local_ip = local_ip;
        self.core.start_session(std::time::Instant::now());
        self.flush(None);
        let mut frames = Vec::new();
        let end = loop {
            let idle = self.core.poll_timeout().map(Instant::from_std);
            let step = tokio::select! {
                r = reader.read(&mut frames) => match r {
                    Ok(true) => {
                        let now = std::time::Instant::now();
                        let mut result = Ok(());
                        for f in frames.drain(..) {
                            result = self.core.handle_frame(&f, now).map_err(|e| e.to_string());
                            if result.is_err() {
                                break;
                            }
                        }
                        frames.clear();
                        result
                    }
                    Ok(false) => Err("the relay closed the connection".to_string()),
                    Err(e) => Err(format!("reading from the relay failed: {e}")),
                },
                cmd = cmd_rx.recv() => match cmd {
                    Some(c) => { self.on_cmd(c); Ok(()) }
                    None => break End::Exit,
                },
                _ = &mut write_task => Err("writing to the relay failed".to_string()),
                _ = sleep_until(idle) => {
                    self.core.handle_timeout(std::time::Instant::now()).map_err(|e| e.to_string())
                }
            };
            self.deliver_events();
            self.flush(None);
            if let Err(e) = step {
                break End::Lost(e, self.core.is_connected());
            }
        };
        if matches!(end, End::Exit) {
            self.core.close();
            self.flush(None);
        }
        // Tell everyone still waiting on this session.
        self.core.end_session("the relay connection was lost");
        self.deliver_events();
        self.streams.clear();
        self.out = None;
        if tokio::time::timeout(Duration::from_secs(2), &mut write_task)
            .await
            .is_err()
        {
            write_task.abort();
        }
        end
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Frames for the writer task, and who to tell once they are on the socket.
type Outgoing = (Vec<Vec<u8>>, Option<oneshot::Sender<()>>);

/// Writes batches of frames; acknowledges a batch once it is on the socket.
async fn write_loop(mut writer: Writer, mut rx: mpsc::UnboundedReceiver<Outgoing>) {
    while let Some((frames, done)) = rx.recv().await {
        if let Err(e) = writer.write(&frames).await {
            debug!(error = %e, "relay client: write failed");
            return;
        }
        if let Some(done) = done {
            let _ = done.send(());
        }
    }
    writer.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let o = ClientOptions {
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
            ..ClientOptions::default()
        };
        for (attempt, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            for _ in 0..50 {
                let d = backoff(&o, attempt).as_millis() as u64;
                assert!((full / 2..=full).contains(&d), "attempt {attempt}: {d} ms");
            }
        }
    }
}
