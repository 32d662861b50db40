//! The relay client's task: one relay session at a time over a transport, reconnecting with
//! back-off when it is lost. The protocol state of a session lives in [`Session`]; the task
//! owns the reader, a writer task owns the transport's write half (so a slow relay never
//! blocks reading).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use rand::Rng;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::debug;

use super::stream::{ReadCrypto, RelayStreamReader, RelayStreamWriter, StreamInput};
use super::transport::{self, Reader, Writer};
use super::{
    secret_key, ClientOptions, Cmd, Listener, RelayClientError, RelayState, RelayStream, RelayUrl,
};
use crate::net::secret_stream::{self, FrameDecoder};
use crate::net::transport::FrameLimit;
use crate::net::SessionInfo;
use crate::relay::messages::{
    AliasRef, Announce, Connect, Connected, Data, Destroy, DestroyTarget, Handshake, IdRef, Listen,
    Lookup, QueryResult,
};
use crate::relay::{Message, RelayCodec, RelayEvent};

mod noncustodial;
use noncustodial::{PeerHandshake, StreamKeys};

/// A `listen` the client keeps up across sessions.
struct ListenEntry {
    tx: mpsc::UnboundedSender<RelayStream>,
}

/// State that outlives sessions.
struct Driver {
    url: RelayUrl,
    key: SigningKey,
    options: ClientOptions,
    weak: mpsc::WeakUnboundedSender<Cmd>,
    state: watch::Sender<RelayState>,
    /// By our server alias.
    listens: HashMap<u32, ListenEntry>,
    /// Topics announced on every new session (RelayClient::announce until unannounce).
    announced: HashSet<[u8; 32]>,
    next_alias: u32,
    generation: u64,
}

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
) {
    let mut d = Driver {
        url,
        key,
        options,
        weak,
        state,
        listens: HashMap::new(),
        announced: HashSet::new(),
        next_alias: 1,
        generation: 0,
    };
    let mut attempt = 0u32;
    loop {
        let opened = {
            let (url, options) = (d.url.clone(), d.options.clone());
            let open = transport::open(&url, &options);
            tokio::pin!(open);
            loop {
                tokio::select! {
                    r = &mut open => break r,
                    cmd = cmd_rx.recv() => match cmd {
                        Some(c) => d.offline(c),
                        None => return,
                    },
                }
            }
        };
        let error = match opened {
            Ok((reader, writer, local_ip)) => {
                d.generation += 1;
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
        let delay = backoff(&d.options, attempt);
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
                    Some(c) => d.offline(c),
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
    /// The secret key custodial messages carry; `None` in non-custodial mode.
    fn custodial_key(&self) -> Option<crate::relay::messages::SecretKey> {
        self.options.custodial.then(|| secret_key(&self.key))
    }

    fn alias(&mut self) -> u32 {
        let a = self.next_alias;
        self.next_alias = self.next_alias.wrapping_add(1).max(1);
        a
    }

    fn sender(&self) -> Option<mpsc::UnboundedSender<Cmd>> {
        self.weak.upgrade()
    }

    /// Commands while no session is up.
    fn offline(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Connect { reply, .. } => {
                let _ = reply.send(Err(RelayClientError::NotConnected(self.url.to_string())));
            }
            Cmd::Listen { reply } => {
                let _ = reply.send(self.add_listen().map(|(l, _)| l));
            }
            Cmd::Unlisten(alias) => {
                self.listens.remove(&alias);
            }
            // Streams of a lost session were already told; dropping `done` fails the write.
            Cmd::Announce { .. } | Cmd::Lookup { .. } => self.offline_query(cmd),
            Cmd::Data { .. } | Cmd::End { .. } | Cmd::Dropped { .. } => {}
        }
    }

    fn add_listen(&mut self) -> Result<(Listener, u32), RelayClientError> {
        let cmd = self.sender().ok_or(RelayClientError::Stopped)?;
        let alias = self.alias();
        let (tx, rx) = mpsc::unbounded_channel();
        self.listens.insert(alias, ListenEntry { tx });
        Ok((Listener { rx, cmd, alias }, alias))
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
        let mut s = Session {
            generation: self.generation,
            codec: RelayCodec::new(),
            out,
            local_ip,
            pending: HashMap::new(),
            streams: HashMap::new(),
            by_remote: HashMap::new(),
            servers: HashMap::new(),
            unconfirmed: HashSet::new(),
            queries: HashMap::new(),
            handshakes: HashMap::new(),
            opened: false,
            connected: false,
        };
        let public_key = self.key.verifying_key().to_bytes();
        s.send(&Message::Handshake(Handshake {
            public_key,
            secret_key: self.custodial_key(),
        }));
        let aliases: Vec<u32> = self.listens.keys().copied().collect();
        for alias in aliases {
            s.listen(alias, self);
        }
        s.reannounce(self);
        s.flush(None);
        let mut frames = Vec::new();
        let mut last_recv = Instant::now();
        let end = loop {
            let idle = last_recv + self.options.idle_timeout;
            let step = tokio::select! {
                r = reader.read(&mut frames) => match r {
                    Ok(true) => {
                        last_recv = Instant::now();
                        let mut result = Ok(());
                        for f in frames.drain(..) {
                            result = s.on_frame(self, &f);
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
                    Some(c) => { s.on_cmd(self, c); Ok(()) }
                    None => break End::Exit,
                },
                _ = &mut write_task => Err("writing to the relay failed".to_string()),
                _ = tokio::time::sleep_until(idle) => {
                    Err(format!("nothing from the relay for {:?}", self.options.idle_timeout))
                }
            };
            s.flush(None);
            if let Err(e) = step {
                break End::Lost(e, s.connected);
            }
        };
        // Tell everyone still waiting on this session.
        s.fail_queries("the relay connection was lost");
        for (_, (peer, reply)) in s.pending.drain() {
            let _ = reply.send(Err(RelayClientError::ConnectFailed {
                peer: hex::encode(peer),
                reason: "the relay connection was lost".into(),
            }));
        }
        for (_, st) in s.streams.drain() {
            let _ = st
                .tx
                .send(StreamInput::Error("the relay connection was lost".into()));
        }
        if matches!(end, End::Exit) {
            s.codec.close();
            s.flush(None);
        }
        drop(s.out);
        if tokio::time::timeout(Duration::from_secs(2), &mut write_task)
            .await
            .is_err()
        {
            write_task.abort();
        }
        end
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

/// A stream of this session.
struct StreamEntry {
    /// The relay's alias for it (the alias in its `data`/`end`/`destroy`).
    remote_alias: u32,
    tx: mpsc::UnboundedSender<StreamInput>,
    local_ended: bool,
    remote_ended: bool,
}

/// One relay session's protocol state.
struct Session {
    generation: u64,
    codec: RelayCodec,
    out: mpsc::UnboundedSender<Outgoing>,
    local_ip: IpAddr,
    /// Connects awaiting `open`, by our alias: (remote key, reply).
    pending: HashMap<u32, ([u8; 32], ConnectReply)>,
    /// By our alias.
    streams: HashMap<u32, StreamEntry>,
    /// The relay's stream alias → ours.
    by_remote: HashMap<u32, u32>,
    /// The relay's server alias → our server alias.
    servers: HashMap<u32, u32>,
    /// Queries awaiting `finished`, by our query id.
    queries: HashMap<u32, Query>,
    /// Our server aliases whose `listening` has not arrived.
    unconfirmed: HashSet<u32>,
    /// Non-custodial Noise handshakes in progress or awaiting their stream, by the relay's
    /// handshake id.
    handshakes: HashMap<u32, PeerHandshake>,
    opened: bool,
    connected: bool,
}

type ConnectReply = oneshot::Sender<Result<RelayStream, RelayClientError>>;

impl Session {
    fn send(&mut self, m: &Message) {
        // Fails only once the channel is closed, and then the session is ending anyway.
        let _ = self.codec.send(m);
    }

    /// Hands queued frames to the writer (with `done` acknowledging them).
    fn flush(&mut self, done: Option<oneshot::Sender<()>>) {
        let frames: Vec<Vec<u8>> = std::iter::from_fn(|| self.codec.poll_transmit()).collect();
        if frames.is_empty() {
            if let Some(done) = done {
                let _ = done.send(());
            }
            return;
        }
        let _ = self.out.send((frames, done));
    }

    /// Sends `listen` for our server `alias` (non-custodial: the relay then asks us to sign).
    fn listen(&mut self, alias: u32, d: &Driver) {
        self.unconfirmed.insert(alias);
        self.send(&Message::Listen(Listen {
            alias,
            public_key: d.key.verifying_key().to_bytes(),
            secret_key: d.custodial_key(),
        }));
    }

    /// Publishes `Connected` once the relay's channel is open and every listen confirmed.
    fn check_connected(&mut self, d: &Driver) {
        if self.opened && self.unconfirmed.is_empty() && !self.connected {
            self.connected = true;
            debug!(url = %d.url, "relay client: connected");
            d.state.send_replace(RelayState::Connected);
        }
    }

    /// Registers a stream the relay opened and builds its handle. Non-custodial: starts our
    /// secret-stream from the handshake's keys and sends its id+header first.
    fn new_stream(
        &mut self,
        d: &mut Driver,
        remote_alias: u32,
        remote_public_key: [u8; 32],
        keys: StreamKeys,
        is_initiator: bool,
        alias: u32,
    ) -> Option<RelayStream> {
        let cmd = d.sender()?;
        let public_key = d.key.verifying_key().to_bytes();
        let (info, crypto, encryptor) = match keys {
            StreamKeys::Custodial(handshake_hash) => {
                let info = SessionInfo {
                    is_initiator,
                    public_key,
                    remote_public_key,
                    handshake_hash,
                };
                (info, None, None)
            }
            StreamKeys::Own(keys) => {
                let (info, enc, header, dec) =
                    secret_stream::from_handshake(&keys, is_initiator, public_key);
                // Our id+header goes out before anything the stream's writer sends.
                self.send(&Message::Data(Data {
                    alias,
                    chunks: vec![header],
                }));
                let crypto = ReadCrypto {
                    frames: FrameDecoder::new(),
                    decryptor: dec,
                };
                (info, Some(Box::new(crypto)), Some(Box::new(enc)))
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        self.streams.insert(
            alias,
            StreamEntry {
                remote_alias,
                tx,
                local_ended: false,
                remote_ended: false,
            },
        );
        self.by_remote.insert(remote_alias, alias);
        Some(RelayStream {
            info,
            local_ip: self.local_ip,
            reader: RelayStreamReader {
                rx,
                cmd: cmd.clone(),
                generation: self.generation,
                alias,
                after: None,
                crypto,
                limit: FrameLimit::default(),
            },
            writer: RelayStreamWriter {
                cmd,
                generation: self.generation,
                alias,
                encryptor,
            },
        })
    }

    fn forget(&mut self, alias: u32) {
        if let Some(st) = self.streams.remove(&alias) {
            self.by_remote.remove(&st.remote_alias);
        }
    }

    fn on_frame(&mut self, d: &mut Driver, frame: &[u8]) -> Result<(), String> {
        self.codec
            .handle_frame(frame)
            .map_err(|e| format!("bad frame from the relay: {e}"))?;
        while let Some(ev) = self.codec.poll_event() {
            match ev {
                RelayEvent::Opened => {
                    self.opened = true;
                    self.check_connected(d);
                }
                RelayEvent::Closed => return Err("the relay closed the channel".into()),
                RelayEvent::Message(m) => self.on_message(d, m),
            }
        }
        Ok(())
    }

    fn on_message(&mut self, d: &mut Driver, m: Message) {
        match m {
            Message::Ping => self.send(&Message::Pong),
            Message::Listening(l) => {
                if self.unconfirmed.remove(&l.remote_alias) {
                    self.servers.insert(l.alias, l.remote_alias);
                }
                self.check_connected(d);
            }
            Message::Incoming(inc) => {
                // The firewall: accept every peer on a key we listen on; the lobby decides
                // who plays.
                let ours = self.servers.get(&inc.server_alias);
                let listening = ours.is_some_and(|a| d.listens.contains_key(a));
                let reply = IdRef { id: inc.id };
                self.send(&if listening {
                    Message::Accept(reply)
                } else {
                    Message::Deny(reply)
                });
            }
            Message::Connection(c) => {
                let ours = self.servers.get(&c.server_alias).copied();
                let keys = match self.take_handshake(d, &c.handshake, false) {
                    Ok(keys) => keys,
                    Err(why) => {
                        debug!(%why, "relay client: refused a connection");
                        self.destroy_remote(c.alias, &why);
                        return;
                    }
                };
                let alias = d.alias();
                let Some(tx) = ours.and_then(|a| d.listens.get(&a)).map(|l| l.tx.clone()) else {
                    self.destroy_remote(c.alias, "not listening");
                    return;
                };
                self.send(&Message::Connected(Connected {
                    alias,
                    remote_alias: c.alias,
                }));
                if let Some(stream) =
                    self.new_stream(d, c.alias, c.remote_public_key, keys, false, alias)
                {
                    if tx.send(stream).is_err() {
                        self.forget(alias);
                    }
                }
            }
            Message::Open(o) => {
                let destroy = Message::Destroy(Destroy {
                    target: DestroyTarget::Paired {
                        alias: o.remote_alias,
                    },
                    error: None,
                });
                let Some((peer, reply)) = self.pending.remove(&o.remote_alias) else {
                    if !self.streams.contains_key(&o.remote_alias) {
                        // A connect that already failed here (e.g. its handshake): don't leave
                        // the relay's pair behind.
                        self.send(&destroy);
                    }
                    return;
                };
                let keys =
                    self.take_handshake(d, &o.handshake, true)
                        .and_then(|keys| match &keys {
                            StreamKeys::Own(k) if k.remote_public_key != peer => {
                                Err("the handshake was with another key".into())
                            }
                            _ => Ok(keys),
                        });
                self.forget_handshakes_of(o.remote_alias);
                let keys = match keys {
                    Ok(keys) => keys,
                    Err(reason) => {
                        let _ = reply.send(Err(RelayClientError::ConnectFailed {
                            peer: hex::encode(peer),
                            reason,
                        }));
                        self.send(&destroy);
                        return;
                    }
                };
                if let Some(stream) = self.new_stream(d, o.alias, peer, keys, true, o.remote_alias)
                {
                    if let Err(Ok(stream)) = reply.send(Ok(stream)) {
                        // The caller gave up: its reader's drop destroys the stream.
                        drop(stream);
                    }
                }
            }
            Message::Destroy(x) => match x.target {
                DestroyTarget::Unpaired { remote_alias } => {
                    if let Some((peer, reply)) = self.pending.remove(&remote_alias) {
                        self.forget_handshakes_of(remote_alias);
                        let _ = reply.send(Err(RelayClientError::ConnectFailed {
                            peer: hex::encode(peer),
                            reason: x.error.unwrap_or_else(|| "refused".into()),
                        }));
                    } else if let Some(st) = self.streams.get(&remote_alias) {
                        let _ = st.tx.send(StreamInput::Error(
                            x.error.unwrap_or_else(|| "destroyed by the relay".into()),
                        ));
                        self.forget(remote_alias);
                    }
                }
                DestroyTarget::Paired { alias } => {
                    if let Some(ours) = self.by_remote.get(&alias).copied() {
                        if let Some(st) = self.streams.get(&ours) {
                            let _ = st.tx.send(StreamInput::Error(
                                x.error
                                    .unwrap_or_else(|| "the remote destroyed the stream".into()),
                            ));
                        }
                        self.forget(ours);
                    }
                }
            },
            Message::Data(data) => {
                if let Some(st) = self
                    .by_remote
                    .get(&data.alias)
                    .and_then(|a| self.streams.get(a))
                {
                    let _ = st.tx.send(StreamInput::Data(data.chunks));
                }
            }
            Message::Result(r) => self.on_result(r),
            Message::NoiseSend(m) => self.on_noise_send(d, m),
            Message::NoiseReceive(m) => self.on_noise_receive(d, m),
            Message::SignAnnounce(m) => self.on_sign(d, m, true),
            Message::SignUnannounce(m) => self.on_sign(d, m, false),
            Message::Finished(IdRef { id }) => self.on_finished(id),
            Message::End(AliasRef { alias }) => {
                if let Some(ours) = self.by_remote.get(&alias).copied() {
                    if let Some(st) = self.streams.get_mut(&ours) {
                        st.remote_ended = true;
                        let _ = st.tx.send(StreamInput::End);
                        if st.local_ended {
                            self.forget(ours);
                        }
                    }
                }
            }
            other => debug!(message = ?other.message_type(), "relay client: ignored"),
        }
    }

    /// Refuses a stream the relay paired for us (`destroy` with the relay's alias as remote).
    fn destroy_remote(&mut self, remote_alias: u32, why: &str) {
        self.send(&Message::Destroy(Destroy {
            target: DestroyTarget::Unpaired { remote_alias },
            error: Some(why.to_string()),
        }));
    }

    fn on_cmd(&mut self, d: &mut Driver, cmd: Cmd) {
        match cmd {
            Cmd::Connect {
                remote_public_key,
                reply,
            } => {
                let alias = d.alias();
                self.pending.insert(alias, (remote_public_key, reply));
                self.send(&Message::Connect(Connect {
                    alias,
                    public_key: d.key.verifying_key().to_bytes(),
                    secret_key: d.custodial_key(),
                    remote_public_key,
                }));
            }
            Cmd::Listen { reply } => match d.add_listen() {
                Ok((listener, alias)) => {
                    self.listen(alias, d);
                    let _ = reply.send(Ok(listener));
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Cmd::Announce { topic, add, reply } => self.announce(d, topic, add, Some(reply)),
            Cmd::Lookup { topic, reply } => self.lookup(d, topic, reply),
            Cmd::Unlisten(alias) => {
                d.listens.remove(&alias);
                self.unconfirmed.remove(&alias);
                if let Some(remote) = self
                    .servers
                    .iter()
                    .find(|(_, ours)| **ours == alias)
                    .map(|(r, _)| *r)
                {
                    self.servers.remove(&remote);
                    self.send(&Message::Close(AliasRef { alias }));
                }
            }
            Cmd::Data {
                generation,
                alias,
                chunks,
                done,
            } => {
                let live = generation == self.generation
                    && self.streams.get(&alias).is_some_and(|s| !s.local_ended);
                if live {
                    self.send(&Message::Data(Data { alias, chunks }));
                    self.flush(Some(done));
                }
                // Else `done` drops: the write fails, the stream is gone.
            }
            Cmd::End { generation, alias } => {
                if generation != self.generation {
                    return;
                }
                if let Some(st) = self.streams.get_mut(&alias) {
                    if !st.local_ended {
                        st.local_ended = true;
                        let forget = st.remote_ended;
                        self.send(&Message::End(AliasRef { alias }));
                        if forget {
                            self.forget(alias);
                        }
                    }
                }
            }
            Cmd::Dropped { generation, alias } => {
                if generation != self.generation {
                    return;
                }
                if let Some(st) = self.streams.get(&alias) {
                    if !st.remote_ended {
                        self.send(&Message::Destroy(Destroy {
                            target: DestroyTarget::Paired { alias },
                            error: None,
                        }));
                    }
                    self.forget(alias);
                }
            }
        }
    }
}

/// An `announce` / `unannounce` / `lookup` awaiting `finished`.
enum Query {
    /// `reply` is None for the re-announces of a new session.
    Announce {
        topic: [u8; 32],
        reply: Option<oneshot::Sender<Result<(), RelayClientError>>>,
    },
    Lookup {
        topic: [u8; 32],
        found: Vec<[u8; 32]>,
        reply: oneshot::Sender<Result<Vec<[u8; 32]>, RelayClientError>>,
    },
}

impl Driver {
    /// Announce/lookup commands while no session is up: announces are recorded (and go out on
    /// the next session), every caller hears `NotConnected`.
    fn offline_query(&mut self, cmd: Cmd) {
        let not_connected = || RelayClientError::NotConnected(self.url.to_string());
        match cmd {
            Cmd::Announce { topic, add, reply } => {
                if add {
                    self.announced.insert(topic);
                } else {
                    self.announced.remove(&topic);
                }
                let _ = reply.send(Err(not_connected()));
            }
            Cmd::Lookup { reply, .. } => {
                let _ = reply.send(Err(not_connected()));
            }
            _ => {}
        }
    }
}

impl Session {
    /// Sends custodial `announce` (`add`) or `unannounce` of our key on `topic`, records the
    /// topic for later sessions (or forgets it), and waits for `finished` with `reply`.
    fn announce(
        &mut self,
        d: &mut Driver,
        topic: [u8; 32],
        add: bool,
        reply: Option<oneshot::Sender<Result<(), RelayClientError>>>,
    ) {
        if add {
            d.announced.insert(topic);
        } else {
            d.announced.remove(&topic);
        }
        let id = d.alias();
        let record = Announce {
            id,
            topic,
            public_key: d.key.verifying_key().to_bytes(),
            secret_key: d.custodial_key(),
        };
        self.send(&if add {
            Message::Announce(record)
        } else {
            Message::Unannounce(record)
        });
        self.queries.insert(id, Query::Announce { topic, reply });
    }

    /// Re-sends every recorded announce on a new session (nobody waits for these).
    fn reannounce(&mut self, d: &mut Driver) {
        let topics: Vec<[u8; 32]> = d.announced.iter().copied().collect();
        for topic in topics {
            self.announce(d, topic, true, None);
        }
    }

    fn lookup(
        &mut self,
        d: &mut Driver,
        topic: [u8; 32],
        reply: oneshot::Sender<Result<Vec<[u8; 32]>, RelayClientError>>,
    ) {
        let id = d.alias();
        self.send(&Message::Lookup(Lookup { id, topic }));
        self.queries.insert(
            id,
            Query::Lookup {
                topic,
                found: Vec::new(),
                reply,
            },
        );
    }

    /// A `result` of a query: a lookup collects the peers' public keys (each once).
    fn on_result(&mut self, r: QueryResult) {
        let Some(Query::Lookup { found, .. }) = self.queries.get_mut(&r.id) else {
            return; // An announce's results (the DHT nodes that stored it): nothing to do.
        };
        match r.announcers() {
            Ok(record) => {
                for peer in record.peers {
                    if !found.contains(&peer.public_key) {
                        found.push(peer.public_key);
                    }
                }
            }
            Err(e) => debug!(error = %e, "relay client: undecodable lookup result ignored"),
        }
    }

    fn on_finished(&mut self, id: u32) {
        match self.queries.remove(&id) {
            Some(Query::Announce {
                reply: Some(reply), ..
            }) => {
                let _ = reply.send(Ok(()));
            }
            Some(Query::Lookup { found, reply, .. }) => {
                let _ = reply.send(Ok(found));
            }
            Some(Query::Announce { reply: None, .. }) | None => {}
        }
    }

    /// Tells every caller still waiting for a query that it failed with `why`.
    fn fail_queries(&mut self, why: &str) {
        let fail = |topic: &[u8; 32]| RelayClientError::QueryFailed {
            topic: hex::encode(topic),
            reason: why.to_string(),
        };
        for (_, q) in self.queries.drain() {
            match q {
                Query::Announce {
                    topic,
                    reply: Some(reply),
                } => {
                    let _ = reply.send(Err(fail(&topic)));
                }
                Query::Lookup { topic, reply, .. } => {
                    let _ = reply.send(Err(fail(&topic)));
                }
                Query::Announce { reply: None, .. } => {}
            }
        }
    }
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
