//! The tokio task that owns one peer connection: its UDP sockets and its str0m `Rtc`.
//!
//! str0m is sans-IO (str0m 0.25, "Run loop" in its crate docs): every mutation of the `Rtc`
//! (a datagram, a timeout, a write, a candidate) must be followed by polling its output until it
//! returns a timeout. This task is the only place that touches the `Rtc`; the application talks
//! to it through a command queue (many senders) and reads its events from a bounded queue. An
//! application that stops reading events stops this task reading the network: SCTP flow
//! control then slows the peer down, and if the pause outlasts the peer's idle timeout the
//! peer drops the connection.

use std::collections::{HashMap, HashSet};
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, ChannelId};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Input, Rtc};
use tokio::io::ReadBuf;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::gather::{Gatherer, Incoming};
use super::path::RemoteKinds;
use super::{DisconnectReason, RtcError, RtcEvent, SelectedPath};
use crate::ice::IceConfig;
use crate::sync::lock;

mod end;
mod ice;
mod output;
mod queue;
mod sdp;

use ice::TcpLink;
use queue::Chan;
pub(crate) use sdp::SdpRequest;

/// Receive buffer: larger than any datagram str0m or a browser sends (MTU ~1200-1500).
const RECV_BUF: usize = 2048;

/// Events the application may leave unread before this task stops reading the network.
const EVENT_QUEUE: usize = 1024;

/// What [`Driver::spawn`] gives the application.
pub(crate) struct Handles {
    pub cmd_tx: mpsc::UnboundedSender<Command>,
    pub ev_rx: mpsc::Receiver<RtcEvent>,
    pub shared: Arc<Shared>,
    pub task: tokio::task::JoinHandle<()>,
}

/// A request from the application to the task.
pub(crate) enum Command {
    /// Queue one message on a channel.
    Send {
        channel: ChannelId,
        data: Vec<u8>,
        binary: bool,
    },
    /// Open a new channel; the reply carries its id.
    Open {
        config: ChannelConfig,
        reply: oneshot::Sender<Result<ChannelId, RtcError>>,
    },
    /// Close one channel (SCTP stream reset).
    CloseChannel(ChannelId),
    /// A trickled remote ICE candidate.
    AddCandidate(Candidate),
    /// Make the offer (with these channels) or the answer, once the policy allows (see
    /// [`SdpRequest`]).
    Sdp(SdpRequest),
    /// Apply the answer to our offer; the reply says whether str0m took it.
    ApplyAnswer {
        answer: SdpAnswer,
        /// The answer's SDP text, for its candidates' kinds and TURN permissions.
        sdp: String,
        reply: oneshot::Sender<Result<(), RtcError>>,
    },
    /// Close the whole connection gracefully.
    Close,
}

/// State the task shares with the application's handles.
pub(crate) struct Shared {
    /// Set once the connection is ending; sends are refused from then on.
    pub closed: AtomicBool,
    /// Bytes handed to `send` and not yet accepted by SCTP (or dropped).
    pub queued_bytes: AtomicUsize,
    /// Woken (every waiter) whenever `queued_bytes` shrinks or the connection ends: what
    /// `RtcSender::send_wait` waits on.
    pub drained: tokio::sync::Notify,
    pub bytes_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    pub messages_dropped: AtomicU64,
    pub remote_addr: Mutex<Option<SocketAddr>>,
    pub local_addrs: Vec<SocketAddr>,
    /// The candidate pair traffic flows on, once connected.
    pub path: Mutex<Option<SelectedPath>>,
    /// Why the connection ended, once it is ending (set before any end event is reported).
    pub reason: Mutex<Option<DisconnectReason>>,
    /// STUN Binding transactions answered (srflx gathering; on loopback the mapped address is
    /// the socket's own, so this shows the round trip worked).
    pub bindings_answered: AtomicU64,
    /// Server-reflexive candidates found (mapped address differs from the socket's).
    pub srflx_found: AtomicU64,
    /// TURN allocations made (relayed candidates).
    pub relayed_found: AtomicU64,
}

impl Shared {
    pub(crate) fn new(local_addrs: Vec<SocketAddr>) -> Self {
        Shared {
            closed: AtomicBool::new(false),
            queued_bytes: AtomicUsize::new(0),
            drained: tokio::sync::Notify::new(),
            bytes_sent: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            messages_dropped: AtomicU64::new(0),
            remote_addr: Mutex::new(None),
            local_addrs,
            path: Mutex::new(None),
            reason: Mutex::new(None),
            bindings_answered: AtomicU64::new(0),
            srflx_found: AtomicU64::new(0),
            relayed_found: AtomicU64::new(0),
        }
    }
}

/// Timing knobs, from [`super::RtcConfig`].
pub(crate) struct Timing {
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
}

/// How a connection starts: which side it is and what it may gather.
pub(crate) struct Setup {
    /// The answerer: its connect deadline runs from the start. The offerer's runs from the
    /// answer.
    pub answerer: bool,
    /// STUN/TURN servers and policy.
    pub ice: IceConfig,
    /// Where trickled local candidates go (`candidate:...` strings).
    pub candidates: mpsc::Sender<String>,
}

/// Most DTLS datagrams held while str0m does not know the path yet (a handshake flight).
const MAX_EARLY_DTLS: usize = 4;

/// The pace of ICE connectivity checks while ICE is checking: one check at most every 10 ms
/// (RFC 8445 §14.2's Ta, which may go down to 5 ms; str0m's own is 50 ms). str0m sends one
/// check per timeout input, the pair that has waited longest first, and with host,
/// server-reflexive and relayed candidates on both sides a dozen pairs queue up: at 50 ms the
/// retransmission that gets a check through a freshly opened NAT waited half a second behind
/// them (BENCHMARKS.md, "Join across the NAT lab"). Feeding the timeout this often while
/// checking, and only then, makes that the pace.
const CHECK_PACE: Duration = Duration::from_millis(10);

/// The state of one connection's task (see the module docs).
pub(crate) struct Driver {
    rtc: Rtc,
    sockets: Vec<UdpSocket>,
    addrs: Vec<SocketAddr>,
    buf: Vec<u8>,
    next_socket: usize,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    cmd_closed: bool,
    ev_tx: mpsc::Sender<RtcEvent>,
    owner_gone: bool,
    shared: Arc<Shared>,
    chans: HashMap<ChannelId, Chan>,
    /// Messages queued over all channels; 0 lets `flush` return at once.
    queued: usize,
    /// When str0m next wants `Input::Timeout`.
    rtc_timeout: Instant,
    /// Channels that must open before the connection counts as up (the offerer's own).
    waiting: HashSet<ChannelId>,
    connected: bool,
    /// ICE is checking pairs: str0m's timeout is fed every [`CHECK_PACE`].
    ice_checking: bool,
    /// When str0m last had `Input::Timeout`.
    last_tick: Instant,
    /// Until the connection is up; `None` after.
    connect_deadline: Option<Instant>,
    timing: Timing,
    last_recv: Instant,
    remote: Option<SocketAddr>,
    /// DTLS datagrams str0m refused because they came before it chose the path: (source,
    /// destination, bytes), at most [`MAX_EARLY_DTLS`]; offered again after each input.
    early_dtls: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
    /// Why the connection is ending, once it is.
    ending: Option<DisconnectReason>,
    close_deadline: Option<Instant>,
    /// STUN/TURN gathering; `None` without ICE servers (host candidates only).
    gather: Option<Gatherer>,
    /// `IcePolicy::Relay`: only relayed candidates are added to str0m.
    relay_only: bool,
    /// ICE servers still to resolve and dial (a task does it; this receives its batches).
    dial: Option<mpsc::Receiver<ice::Dialed>>,
    /// TCP streams to TURN servers.
    tcp: Vec<TcpLink>,
    /// Receive buffer for the TCP streams.
    tcp_buf: Vec<u8>,
    /// Trickled local candidates go here until gathering is over.
    cand_tx: Option<mpsc::Sender<String>>,
    /// The offer or answer waiting for the policy (a relayed candidate under `Relay`).
    sdp_wait: Option<SdpRequest>,
    /// Our offer, until its answer is applied.
    pending_offer: Option<SdpPendingOffer>,
    /// The remote description is applied: remote candidates can be added.
    negotiated: bool,
    /// Remote candidates trickled before the remote description, applied with it.
    early_remote: Vec<Candidate>,
    /// The kinds of the remote candidates, by address, for [`SelectedPath`].
    remote_kinds: RemoteKinds,
    /// Why servers gave nothing (the last few), for a `Relay` policy error.
    gather_failures: Vec<String>,
}

impl Driver {
    /// Starts the task for `rtc`, whose local candidates are `sockets`' addresses (host
    /// candidates already added unless the policy is `Relay`), and returns the application's
    /// handles. Gathering from the ICE servers of `setup` starts at once; the offer or answer
    /// is asked for with [`Command::Sdp`].
    pub(crate) fn spawn(
        rtc: Rtc,
        sockets: Vec<(UdpSocket, SocketAddr)>,
        setup: Setup,
        timing: Timing,
    ) -> Handles {
        let now = Instant::now();
        let (sockets, addrs): (Vec<_>, Vec<_>) = sockets.into_iter().unzip();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
        let shared = Arc::new(Shared::new(addrs.clone()));
        let span = tracing::debug_span!("rtc", local = %addrs[0]);
        let gather_deadline = crate::time::later(now, timing.connect_timeout);
        let relay_only = setup.ice.policy == crate::ice::IcePolicy::Relay;
        let (gather, dial) = if setup.ice.servers.is_empty() {
            (None, None)
        } else {
            let dial = ice::spawn_dial(setup.ice.servers.clone(), &addrs, timing.connect_timeout);
            (
                Some(Gatherer::new(now, gather_deadline, relay_only)),
                Some(dial),
            )
        };
        let cand_tx = gather.is_some().then_some(setup.candidates);
        let connect_deadline = setup
            .answerer
            .then(|| crate::time::later(now, timing.connect_timeout));
        let driver = Driver {
            rtc,
            sockets,
            addrs,
            buf: vec![0; RECV_BUF],
            next_socket: 0,
            cmd_rx,
            cmd_closed: false,
            ev_tx,
            owner_gone: false,
            shared: shared.clone(),
            chans: HashMap::new(),
            queued: 0,
            rtc_timeout: now,
            waiting: HashSet::new(),
            connected: false,
            ice_checking: false,
            last_tick: now,
            connect_deadline,
            timing,
            last_recv: now,
            remote: None,
            early_dtls: Vec::new(),
            ending: None,
            close_deadline: None,
            gather,
            relay_only,
            dial,
            tcp: Vec::new(),
            tcp_buf: vec![0; RECV_BUF],
            cand_tx,
            sdp_wait: None,
            pending_offer: None,
            negotiated: false,
            early_remote: Vec::new(),
            remote_kinds: RemoteKinds::default(),
            gather_failures: Vec::new(),
        };
        let task = tokio::spawn(tracing::Instrument::instrument(driver.run(), span));
        Handles {
            cmd_tx,
            ev_rx,
            shared,
            task,
        }
    }

    /// Runs the connection until it ends, then reports the end as events.
    pub(crate) async fn run(mut self) {
        // The Rtc was mutated (offer/answer applied) before it reached us.
        self.drain().await;
        // The ICE agent schedules nothing until its first timeout input; without this kick
        // the answerer would send no check until the offerer's first one arrives.
        if let Err(e) = self.rtc.handle_input(Input::Timeout(Instant::now())) {
            self.fail_now(DisconnectReason::Error(e.to_string()));
        }
        self.drain().await;
        while !self.finished() {
            let wake = self.next_wake();
            tokio::select! {
                r = recv_any(&self.sockets, &mut self.buf, &mut self.next_socket) => {
                    self.on_datagram(r).await;
                }
                r = ice::recv_tcp(&mut self.tcp, &mut self.tcp_buf), if !self.tcp.is_empty() => {
                    self.on_tcp(r).await;
                }
                d = ice::dialed(&mut self.dial), if self.dial.is_some() => {
                    self.on_dialed(d).await;
                }
                c = self.cmd_rx.recv(), if !self.cmd_closed => match c {
                    Some(c) => self.on_command(c).await,
                    None => self.cmd_closed = true,
                },
                _ = self.ev_tx.closed(), if !self.owner_gone => {
                    // The PeerConnection was dropped: nobody will read events any more.
                    self.owner_gone = true;
                    self.end(DisconnectReason::LocalClosed).await;
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            self.on_time().await;
            if self.queued > 0 && self.ending.is_none() {
                self.flush().await;
            }
        }
        self.finish().await;
    }

    fn finished(&self) -> bool {
        match (&self.ending, self.close_deadline) {
            (None, _) => false,
            (Some(_), Some(d)) => !self.rtc.is_alive() || Instant::now() >= d,
            (Some(_), None) => true,
        }
    }

    /// The earliest instant something is due: str0m's timer or one of our deadlines.
    fn next_wake(&mut self) -> Instant {
        let mut wake = self.rtc_timeout;
        if self.ice_checking {
            wake = wake.min(self.last_tick + CHECK_PACE);
        }
        if let Some(d) = self.connect_deadline {
            wake = wake.min(d);
        }
        if self.connected {
            wake = wake.min(self.last_recv + self.timing.idle_timeout);
        }
        if let Some(d) = self.close_deadline {
            wake = wake.min(d);
        }
        if let Some(t) = self.gather_timeout() {
            wake = wake.min(t);
        }
        wake
    }

    /// Feeds str0m its due timeout and enforces the connect and idle deadlines. Called after
    /// every wake-up, so timers run even while traffic keeps the other branches busy.
    async fn on_time(&mut self) {
        let now = Instant::now();
        self.gather_time(now).await;
        let paced = self.ice_checking && now >= self.last_tick + CHECK_PACE;
        if (now >= self.rtc_timeout || paced) && self.rtc.is_alive() {
            self.last_tick = now;
            if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                self.end(DisconnectReason::Error(e.to_string())).await;
                return;
            }
            self.drain().await;
        }
        if self.ending.is_some() {
            return;
        }
        if self.connect_deadline.is_some_and(|d| now >= d) {
            self.end(DisconnectReason::ConnectTimeout).await;
        } else if self.connected && now >= self.last_recv + self.timing.idle_timeout {
            // Both ends run ICE consent checks every keepalive interval (< idle_timeout / 3),
            // so this much silence means the peer is gone.
            self.end(DisconnectReason::Timeout).await;
        }
    }

    async fn on_datagram(&mut self, r: (usize, io::Result<(usize, SocketAddr)>)) {
        let (idx, res) = r;
        let (len, source) = match res {
            Ok(v) => v,
            // ICMP port unreachable from a peer that is gone, reported on the next read: the
            // idle timer decides, not one error.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
                ) =>
            {
                return;
            }
            Err(e) => {
                tracing::warn!("UDP receive failed: {e}");
                self.end(DisconnectReason::Error(format!("UDP receive: {e}")))
                    .await;
                return;
            }
        };
        let now = Instant::now();
        let local = self.addrs[idx];
        if let Some(g) = &mut self.gather {
            match g.handle_datagram(local, source, &self.buf[..len], now) {
                Incoming::NotOurs => {}
                Incoming::Handled => {
                    self.pump_gather(now).await;
                    return;
                }
                Incoming::Relayed {
                    relayed,
                    peer,
                    data,
                } => {
                    self.pump_gather(now).await;
                    self.receive(now, peer, relayed, &data).await;
                    return;
                }
            }
        }
        if self.relay_only {
            // Under the Relay policy host sockets carry nothing but TURN.
            return;
        }
        let data = std::mem::take(&mut self.buf);
        self.receive(now, source, local, &data[..len]).await;
        self.buf = data;
    }

    /// Gives one datagram from `source` to `destination` (a host socket or our relayed
    /// address) to str0m.
    async fn receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        let len = data.len();
        let Ok(receive) = Receive::new(Protocol::Udp, source, destination, data) else {
            // Not STUN, DTLS or RTP: not for us.
            return;
        };
        let input = Input::Receive(now, receive);
        if !self.rtc.accepts(&input) {
            self.hold_early_dtls(source, destination, data);
            tracing::trace!("ignoring a datagram from {source}");
            return;
        }
        let res = self.rtc.handle_input(input);
        self.last_recv = now;
        self.shared
            .bytes_received
            .fetch_add(len as u64, Ordering::Relaxed);
        if self.connected && self.remote != Some(source) {
            self.remote = Some(source);
            *lock(&self.shared.remote_addr) = Some(source);
        }
        if let Err(e) = res {
            self.end(DisconnectReason::Error(e.to_string())).await;
            return;
        }
        self.drain().await;
        self.replay_early_dtls(now).await;
    }

    /// Keeps a DTLS datagram (RFC 7983: first byte 20..=63) that str0m refused. The peer that
    /// nominates first sends its ClientHello at once; when it overtakes the binding response
    /// that completes our side's check, str0m does not know the path yet and refuses it, and
    /// the handshake then waits for the DTLS retransmission, a whole second.
    fn hold_early_dtls(&mut self, source: SocketAddr, destination: SocketAddr, data: &[u8]) {
        let dtls = data.first().is_some_and(|b| (20..=63).contains(b));
        if dtls && !self.connected && self.early_dtls.len() < MAX_EARLY_DTLS {
            self.early_dtls.push((source, destination, data.to_vec()));
        }
    }

    /// Offers the held DTLS datagrams to str0m again; those it still refuses stay held until
    /// the connection is up.
    async fn replay_early_dtls(&mut self, now: Instant) {
        for (source, destination, data) in std::mem::take(&mut self.early_dtls) {
            let Ok(receive) = Receive::new(Protocol::Udp, source, destination, &data) else {
                continue;
            };
            let input = Input::Receive(now, receive);
            if !self.rtc.accepts(&input) {
                if !self.connected {
                    self.early_dtls.push((source, destination, data));
                }
                continue;
            }
            tracing::debug!("a DTLS datagram from {source} that came early is taken now");
            if let Err(e) = self.rtc.handle_input(input) {
                self.end(DisconnectReason::Error(e.to_string())).await;
                return;
            }
            self.drain().await;
        }
    }

    async fn on_command(&mut self, c: Command) {
        match c {
            Command::Send {
                channel,
                data,
                binary,
            } => {
                if self.ending.is_some() {
                    self.release(data.len(), true);
                    return;
                }
                match self.chans.get_mut(&channel) {
                    Some(ch) => {
                        ch.queue.push_back((data, binary));
                        self.queued += 1;
                    }
                    None => {
                        tracing::debug!("dropping a message for unknown channel {channel:?}");
                        self.release(data.len(), true);
                    }
                }
                // `run` flushes after every command.
            }
            Command::Open { config, reply } => {
                let result = self.open_channel(config);
                let _ = reply.send(result);
                self.drain().await;
            }
            Command::CloseChannel(id) => {
                if self.chans.contains_key(&id) {
                    self.drop_queue(id);
                    self.rtc.direct_api().close_data_channel(id);
                    self.drain().await;
                }
            }
            Command::AddCandidate(c) => self.add_remote(c).await,
            Command::Sdp(req) => self.on_sdp(req).await,
            Command::ApplyAnswer { answer, sdp, reply } => {
                let r = self.apply_answer(answer, &sdp).await;
                let _ = reply.send(r);
            }
            Command::Close => self.end(DisconnectReason::LocalClosed).await,
        }
    }
}

/// Waits for a datagram on any socket, taking them in turn so none starves.
/// Returns the socket index and the datagram length and source (data in `buf`).
async fn recv_any(
    sockets: &[UdpSocket],
    buf: &mut [u8],
    next: &mut usize,
) -> (usize, io::Result<(usize, SocketAddr)>) {
    poll_fn(|cx| {
        let n = sockets.len();
        for k in 0..n {
            let i = (*next + k) % n;
            let mut rb = ReadBuf::new(buf);
            if let Poll::Ready(r) = sockets[i].poll_recv_from(cx, &mut rb) {
                *next = (i + 1) % n;
                let len = rb.filled().len();
                return Poll::Ready((i, r.map(|a| (len, a))));
            }
        }
        Poll::Pending
    })
    .await
}
