//! The tokio driver of the TURN server ([`TurnDriver`]): a UDP listener and a TCP listener on
//! the same port number (RFC 8656 §3.1), one task per TCP connection and per relayed UDP
//! socket, all feeding the sans-IO [`TurnServer`] from one loop that also sends its
//! transmits and runs its timer.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::Rng as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::ice::rest::{self, RestError};
use crate::ice::{IceServer, IceTransport, IceUrl, IceUrlScheme};

use super::{
    ClientTransport, FiveTuple, StreamFramer, Transmit, TurnConfig, TurnEvent, TurnLimitsError,
    TurnServer,
};

/// Frames queued per TCP client before more are dropped (TURN data is lossy like UDP).
const TCP_WRITE_QUEUE: usize = 256;
/// Inputs queued from the socket tasks to the server loop.
const INPUT_QUEUE: usize = 1024;
/// Ports tried when binding a relayed socket in the range.
const BIND_ATTEMPTS: usize = 64;
/// TCP connections allowed beyond `max_allocations` (clients doing only Binding or auth).
const EXTRA_TCP_CONNECTIONS: usize = 64;
/// Inputs handled per wake-up of the server loop beyond the first, when more are ready: a
/// burst of relayed packets costs one pass through the loop's `select!` rather than one each.
const BATCH: usize = 32;
/// How far ahead the loop's timer sleeps when no allocation exists.
const IDLE_TIMER: Duration = Duration::from_secs(3600);

/// Where and how a [`TurnDriver`] listens.
#[derive(Clone, Debug)]
pub struct TurnDriverConfig {
    /// The UDP and TCP listening address (the same port number for both). Port 0 picks one
    /// free for both.
    pub listen: SocketAddr,
    /// The ports relayed sockets bind in (on `listen`'s IP), inclusive. coturn's default is
    /// 49152..=65535; open them (UDP) in the firewall.
    pub relay_ports: RangeInclusive<u16>,
    /// The server's configuration.
    pub turn: TurnConfig,
}

/// Errors of the TURN driver.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    /// Binding a listener failed.
    #[error("TURN: {context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: io::Error,
    },
    /// A limit is out of its range.
    #[error("TURN: {0}")]
    Limits(#[from] TurnLimitsError),
    /// The relayed port range is empty.
    #[error("TURN: the relayed port range {0:?} is empty")]
    EmptyPortRange(RangeInclusive<u16>),
}

/// What other parts need to hand out TURN credentials for this server: its addresses, the
/// realm, the REST secret, and the URLs to put in an [`IceServer`].
#[derive(Clone, Debug)]
pub struct TurnInfo {
    /// The UDP listener's address.
    pub udp: SocketAddr,
    /// The TCP listener's address (same port).
    pub tcp: SocketAddr,
    /// The IP address clients are told to use: `--external-ip`, else the listening IP, else
    /// (listening on every interface) the first non-loopback interface address.
    pub public_ip: IpAddr,
    /// The realm of its long-term credentials.
    pub realm: String,
    /// The TURN REST secret ([`crate::ice::rest`]).
    pub secret: Vec<u8>,
}

impl TurnInfo {
    /// `stun:IP:PORT`, `turn:IP:PORT?transport=udp`, `turn:IP:PORT?transport=tcp`.
    pub fn urls(&self) -> Vec<IceUrl> {
        let url = |scheme, transport| IceUrl {
            scheme,
            host: self.public_ip.to_string(),
            port: self.udp.port(),
            transport,
        };
        vec![
            url(IceUrlScheme::Stun, IceTransport::Udp),
            url(IceUrlScheme::Turn, IceTransport::Udp),
            url(IceUrlScheme::Turn, IceTransport::Tcp),
        ]
    }

    /// An `RTCIceServer` with [`TurnInfo::urls`] and a REST credential for `name` that works
    /// until `expires_unix_s` (Unix seconds).
    ///
    /// # Errors
    /// [`RestError::BadName`] if `name` contains `:`.
    pub fn ice_server(&self, name: &str, expires_unix_s: u64) -> Result<IceServer, RestError> {
        let cred = rest::mint(&self.secret, name, expires_unix_s)?;
        Ok(IceServer {
            urls: self.urls().iter().map(|u| u.to_string()).collect(),
            username: Some(cred.username),
            credential: Some(cred.password),
        })
    }
}

/// Input from the socket tasks to the server loop.
enum Input {
    Client {
        tuple: FiveTuple,
        data: Vec<u8>,
    },
    ClientClosed {
        tuple: FiveTuple,
    },
    Peer {
        relayed: SocketAddr,
        peer: SocketAddr,
        data: Vec<u8>,
    },
}

/// A relayed socket and its reader task.
struct Relayed {
    socket: Arc<UdpSocket>,
    reader: JoinHandle<()>,
}

/// The STUN/TURN server on real sockets. [`TurnDriver::bind`], read [`TurnDriver::info`],
/// then [`TurnDriver::run`].
pub struct TurnDriver {
    udp: Arc<UdpSocket>,
    tcp: TcpListener,
    info: TurnInfo,
    relay_ports: RangeInclusive<u16>,
    core: TurnServer,
}

/// Unix seconds now.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> TurnError {
    let context = context.into();
    move |source| TurnError::Io { context, source }
}

/// The address to advertise when listening on every interface.
fn first_interface_ip(v4: bool) -> IpAddr {
    if_addrs::get_if_addrs()
        .ok()
        .and_then(|ifs| {
            ifs.into_iter()
                .map(|i| i.ip())
                .find(|ip| !ip.is_loopback() && ip.is_ipv4() == v4)
        })
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// Binds UDP and TCP on the same port (retrying a few ephemeral ports when `listen` has 0).
async fn bind_pair(listen: SocketAddr) -> Result<(UdpSocket, TcpListener), TurnError> {
    let mut last = None;
    for _ in 0..16 {
        let udp = UdpSocket::bind(listen)
            .await
            .map_err(io_err(format!("binding UDP {listen}")))?;
        let port = udp
            .local_addr()
            .map_err(io_err("UDP local address"))?
            .port();
        match TcpListener::bind(SocketAddr::new(listen.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if listen.port() == 0 => last = Some(e),
            Err(e) => return Err(io_err(format!("binding TCP {listen}"))(e)),
        }
    }
    Err(io_err(format!("binding TCP next to UDP on {listen}"))(
        last.unwrap_or_else(|| io::Error::other("no port")),
    ))
}

/// Binds a relayed UDP socket on `ip` at a random port of `ports` (an even one if `even`).
fn bind_relay(ip: IpAddr, ports: &RangeInclusive<u16>, even: bool) -> io::Result<UdpSocket> {
    let (lo, hi) = (u32::from(*ports.start()), u32::from(*ports.end()));
    let span = hi - lo + 1;
    let start = rand::thread_rng().gen_range(0..span);
    let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no free relayed port");
    for i in 0..(span as usize).min(BIND_ATTEMPTS) {
        let mut port = (lo + (start + i as u32) % span) as u16;
        if even && port % 2 == 1 {
            // The even neighbour inside the range, if any.
            port = match port.checked_sub(1) {
                Some(p) if p >= *ports.start() => p,
                _ if port < *ports.end() => port + 1,
                _ => continue,
            };
        }
        match std::net::UdpSocket::bind(SocketAddr::new(ip, port)) {
            Ok(s) => {
                s.set_nonblocking(true)?;
                return UdpSocket::from_std(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

impl TurnDriver {
    /// Binds the UDP and TCP listeners.
    ///
    /// # Errors
    /// [`TurnError::Limits`] for limits out of range, [`TurnError::EmptyPortRange`],
    /// [`TurnError::Io`] when a listener cannot be bound.
    pub async fn bind(config: TurnDriverConfig) -> Result<Self, TurnError> {
        config.turn.limits.validate()?;
        if config.relay_ports.is_empty() {
            return Err(TurnError::EmptyPortRange(config.relay_ports));
        }
        let (udp, tcp) = bind_pair(config.listen).await?;
        let udp_addr = udp.local_addr().map_err(io_err("UDP local address"))?;
        let tcp_addr = tcp.local_addr().map_err(io_err("TCP local address"))?;
        let mut turn = config.turn;
        let public_ip = match (turn.external_ip, udp_addr.ip()) {
            (Some(ip), _) => ip,
            (None, ip) if ip.is_unspecified() => first_interface_ip(ip.is_ipv4()),
            (None, ip) => ip,
        };
        // Relayed sockets on a wildcard address would advertise 0.0.0.0: use the public IP.
        if udp_addr.ip().is_unspecified() {
            turn.external_ip = Some(public_ip);
        }
        let info = TurnInfo {
            udp: udp_addr,
            tcp: tcp_addr,
            public_ip,
            realm: turn.realm.clone(),
            secret: turn.secret.clone(),
        };
        let core = TurnServer::new(turn, Instant::now(), unix_now());
        Ok(TurnDriver {
            udp: Arc::new(udp),
            tcp,
            info,
            relay_ports: config.relay_ports,
            core,
        })
    }

    /// The addresses, realm, secret and URLs of this server.
    pub fn info(&self) -> &TurnInfo {
        &self.info
    }

    /// Serves until `stop` completes. Socket errors of single packets or connections are
    /// logged and skipped; nothing ends the loop but `stop`.
    ///
    /// # Errors
    /// None today; the `Result` leaves room for fatal listener errors.
    pub async fn run(self, stop: impl Future<Output = ()>) -> Result<(), TurnError> {
        let TurnDriver {
            udp,
            tcp,
            info,
            relay_ports,
            mut core,
        } = self;
        let (tx, mut rx) = mpsc::channel::<Input>(INPUT_QUEUE);
        let mut state = LoopState {
            relayed: HashMap::new(),
            tcp_writers: HashMap::new(),
            tasks: Vec::new(),
        };
        let max_tcp = core.config().limits.max_allocations + EXTRA_TCP_CONNECTIONS;
        let idle = core.config().limits.max_lifetime;
        let mut buf = vec![0u8; 65_536];
        tokio::pin!(stop);
        // One timer, moved only when the next expiry changes (not re-armed per packet).
        let far = || tokio::time::Instant::now() + IDLE_TIMER;
        let timer = tokio::time::sleep_until(far());
        tokio::pin!(timer);
        let mut armed = None;
        loop {
            state.drain(&mut core, &udp, info.udp.ip(), &relay_ports, &tx);
            let deadline = core.poll_timeout();
            if deadline != armed {
                armed = deadline;
                let at = deadline.map_or_else(far, tokio::time::Instant::from_std);
                timer.as_mut().reset(at);
            }
            tokio::select! {
                _ = &mut stop => break,
                r = udp.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        let server = info.udp;
                        from_client(&mut core, server, from, &buf[..n]);
                        // More datagrams already waiting: take them in the same pass.
                        for _ in 0..BATCH {
                            let Ok((n, from)) = udp.try_recv_from(&mut buf) else { break };
                            from_client(&mut core, server, from, &buf[..n]);
                        }
                    }
                    Err(e) => tracing::debug!("TURN UDP receive: {e}"),
                },
                Some(input) = rx.recv() => {
                    state.input(&mut core, input);
                    for _ in 0..BATCH {
                        let Ok(input) = rx.try_recv() else { break };
                        state.input(&mut core, input);
                    }
                }
                r = tcp.accept() => match r {
                    Ok((stream, client)) if state.tcp_writers.len() < max_tcp => {
                        let tuple = FiveTuple { transport: ClientTransport::Tcp, client, server: info.tcp };
                        state.accept(stream, tuple, tx.clone(), idle);
                    }
                    Ok((_, client)) => tracing::warn!("TURN: refusing TCP client {client}: {max_tcp} connections open"),
                    Err(e) => tracing::debug!("TURN TCP accept: {e}"),
                },
                _ = &mut timer, if armed.is_some() => {
                    core.handle_timeout(Instant::now());
                    // Re-armed at the top of the loop from the new next expiry.
                    armed = None;
                    timer.as_mut().reset(far());
                }
            }
        }
        state.shutdown();
        Ok(())
    }
}

/// The sockets and tasks of a running driver.
struct LoopState {
    relayed: HashMap<SocketAddr, Relayed>,
    tcp_writers: HashMap<FiveTuple, mpsc::Sender<Vec<u8>>>,
    tasks: Vec<JoinHandle<()>>,
}

/// A datagram from a client on the UDP listener `server`.
fn from_client(core: &mut TurnServer, server: SocketAddr, client: SocketAddr, data: &[u8]) {
    let tuple = FiveTuple {
        transport: ClientTransport::Udp,
        client,
        server,
    };
    core.handle_client(tuple, data, Instant::now());
}

impl LoopState {
    /// Hands one input of a socket task to `core`.
    fn input(&mut self, core: &mut TurnServer, input: Input) {
        match input {
            Input::Client { tuple, data } => core.handle_client(tuple, &data, Instant::now()),
            Input::Peer {
                relayed,
                peer,
                data,
            } => core.handle_peer(relayed, peer, &data, Instant::now()),
            Input::ClientClosed { tuple } => {
                self.tcp_writers.remove(&tuple);
                core.handle_client_closed(tuple, Instant::now());
            }
        }
    }

    /// Sends every transmit and acts on every event of `core`.
    fn drain(
        &mut self,
        core: &mut TurnServer,
        udp: &UdpSocket,
        relay_ip: IpAddr,
        relay_ports: &RangeInclusive<u16>,
        tx: &mpsc::Sender<Input>,
    ) {
        loop {
            while let Some(t) = core.poll_transmit() {
                self.send(udp, t);
            }
            let Some(event) = core.poll_event() else {
                break;
            };
            match event {
                TurnEvent::BindRelay { tuple, even_port } => {
                    let bound = self.open_relay(relay_ip, relay_ports, even_port, tx);
                    core.handle_relay_bound(tuple, bound, Instant::now());
                }
                TurnEvent::AllocationClosed { relayed, .. } => {
                    if let Some(r) = self.relayed.remove(&relayed) {
                        r.reader.abort();
                    }
                }
                TurnEvent::AllocationCreated {
                    tuple,
                    relayed,
                    username,
                } => {
                    tracing::debug!(
                        "TURN allocation {relayed} for {} ({username})",
                        tuple.client
                    );
                }
            }
        }
        self.tasks.retain(|t| !t.is_finished());
    }

    /// Sends without waiting: a full socket buffer or queue drops the packet, as UDP would.
    fn send(&mut self, udp: &UdpSocket, t: Transmit) {
        match t {
            Transmit::Client { tuple, data } => match tuple.transport {
                ClientTransport::Udp => {
                    let _ = udp.try_send_to(&data, tuple.client);
                }
                ClientTransport::Tcp => {
                    if let Some(w) = self.tcp_writers.get(&tuple) {
                        let _ = w.try_send(data);
                    }
                }
            },
            Transmit::Peer {
                relayed,
                peer,
                data,
            } => {
                if let Some(r) = self.relayed.get(&relayed) {
                    let _ = r.socket.try_send_to(&data, peer);
                }
            }
        }
    }

    /// Binds a relayed socket and starts its reader task.
    fn open_relay(
        &mut self,
        ip: IpAddr,
        ports: &RangeInclusive<u16>,
        even: bool,
        tx: &mpsc::Sender<Input>,
    ) -> io::Result<SocketAddr> {
        let socket = Arc::new(bind_relay(ip, ports, even)?);
        let local = socket.local_addr()?;
        let (reader_socket, tx) = (socket.clone(), tx.clone());
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, peer)) = reader_socket.recv_from(&mut buf).await {
                let input = Input::Peer {
                    relayed: local,
                    peer,
                    data: buf[..n].to_vec(),
                };
                if tx.send(input).await.is_err() {
                    break;
                }
            }
        });
        self.relayed.insert(local, Relayed { socket, reader });
        Ok(local)
    }

    /// Starts the reader and writer tasks of a TCP client connection.
    fn accept(
        &mut self,
        stream: TcpStream,
        tuple: FiveTuple,
        tx: mpsc::Sender<Input>,
        idle: Duration,
    ) {
        let _ = stream.set_nodelay(true);
        let (mut read, mut write) = stream.into_split();
        let (wtx, mut wrx) = mpsc::channel::<Vec<u8>>(TCP_WRITE_QUEUE);
        self.tcp_writers.insert(tuple, wtx);
        self.tasks.push(tokio::spawn(async move {
            while let Some(frame) = wrx.recv().await {
                if write.write_all(&frame).await.is_err() {
                    break;
                }
            }
        }));
        self.tasks.push(tokio::spawn(async move {
            let mut framer = StreamFramer::new();
            let mut buf = vec![0u8; 16 * 1024];
            'conn: loop {
                let n = match tokio::time::timeout(idle, read.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => n,
                    _ => break,
                };
                framer.push(&buf[..n]);
                loop {
                    match framer.next_frame() {
                        Ok(Some(data)) => {
                            if tx.send(Input::Client { tuple, data }).await.is_err() {
                                break 'conn;
                            }
                        }
                        Ok(None) => break,
                        Err(_) => break 'conn,
                    }
                }
            }
            let _ = tx.send(Input::ClientClosed { tuple }).await;
        }));
    }

    fn shutdown(&mut self) {
        for (_, r) in self.relayed.drain() {
            r.reader.abort();
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}
