//! [`RelayServer`]: the tokio driver of [`Relay`] over WebSocket and TCP (PROTOCOL.md §6).
//!
//! - WebSocket (`@hyperswarm/dht-relay/ws`): one binary message = one protomux frame, nothing
//!   else (our own RFC 6455 server side, `ws.rs`). Messages above [`Limits::max_frame`] are
//!   refused from their header. With a [`TlsConfig`] the WebSocket listener speaks TLS
//!   (`wss://`, rustls on aws-lc-rs).
//! - TCP (`@hyperswarm/dht-relay/tcp`): `@hyperswarm/secret-stream` 6.9.2 as the responder, with
//!   a fresh random key pair per connection (as JS: encrypted, not authenticated); one
//!   decrypted message = one protomux frame.
//!
//! Each connection runs three loops: read (paused while [`Relay::wants_read`] is false: that is
//! the back-pressure), write (frames from [`Relay::poll_transmit`]) and timer (heartbeat, idle
//! timeout, and a forced close if a closing session's client does not take its last frames).
//! Partial input (a frame still arriving) is bounded per session and in total (`input.rs`,
//! [`Limits::input_budget`]).

use std::collections::HashMap;
use std::future::Future;
use std::net::{SocketAddr, SocketAddrV4};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use rand::rngs::OsRng;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use crate::net::secret_stream::{self, ABYTES};

use super::input::{InputBudget, InputBuffer};
use super::ws;
use super::{
    CloseReason, Limits, LocalNetwork, Relay, RelayError, RelayIce, ServerEvent, SessionId,
};
use crate::time::later;

mod serve;
mod stream;

use serve::serve;
pub(super) use stream::{frame_too_large, io_error};
use stream::{Io, Reader, Writer};

/// How long [`RelayServer::run`] waits for sessions to close at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Where and how a [`RelayServer`] listens.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// WebSocket listening address (e.g. `0.0.0.0:49443`); `None` = no WebSocket.
    pub ws: Option<SocketAddr>,
    /// TCP (secret-stream) listening address; `None` = no TCP.
    pub tcp: Option<SocketAddr>,
    /// Limits per relay and per client.
    pub limits: Limits,
    /// Behind a reverse proxy: name WebSocket clients in logs by the first address of their
    /// `X-Forwarded-For` header instead of the socket's peer address.
    pub behind_proxy: bool,
    /// `Some` = the WebSocket listener speaks TLS (`wss://`) with this certificate; `None` =
    /// plain `ws://`. The TCP transport is unchanged (it has its own secret-stream encryption).
    pub tls: Option<TlsConfig>,
    /// `Some` = give clients these STUN/TURN servers and TURN REST credentials on the
    /// `dat-social/ice/v1` channel (docs/RELAY.md, "ICE servers for clients"); `None` = no ICE
    /// servers (the channel is rejected).
    pub ice: Option<RelayIce>,
}

/// A TLS certificate chain and private key for the `wss://` listener (rustls 0.23 on aws-lc-rs,
/// TLS 1.2 and 1.3, ALPN `http/1.1`, no client certificates).
#[derive(Clone)]
pub struct TlsConfig {
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for TlsConfig {
    // Never print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig").finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// From PEM text: `cert_chain` holds one or more `CERTIFICATE` blocks (the server's first,
    /// then intermediates), `key` one private key (`PRIVATE KEY` PKCS#8, `RSA PRIVATE KEY` or
    /// `EC PRIVATE KEY`).
    ///
    /// Errors: [`RelayError::NoCertificate`], [`RelayError::Tls`] if a certificate or the key
    /// can't be read, or rustls refuses the pair (e.g. the key does not match the certificate,
    /// or an unsupported key type).
    pub fn from_pem(cert_chain: &[u8], key: &[u8]) -> Result<Self, RelayError> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        // Keeps the parser's or rustls's error as the source, `what` naming the step.
        fn tls<E: std::error::Error + Send + Sync + 'static>(
            what: &'static str,
        ) -> impl FnOnce(E) -> RelayError {
            move |e| RelayError::Tls {
                what,
                source: Box::new(e),
            }
        }
        let certs = CertificateDer::pem_slice_iter(cert_chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(tls("reading the certificate"))?;
        if certs.is_empty() {
            return Err(RelayError::NoCertificate);
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(tls("reading the key"))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(tls("TLS versions"))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(tls("certificate and key"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Reads PEM files (see [`TlsConfig::from_pem`]).
    ///
    /// Errors: [`RelayError::Io`] if a file cannot be read, [`RelayError::Tls`] as
    /// [`TlsConfig::from_pem`].
    pub fn from_pem_files(cert_chain: &Path, key: &Path) -> Result<Self, RelayError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| RelayError::Io {
                context: format!("cannot read {}", p.display()),
                source,
            })
        };
        Self::from_pem(&read(cert_chain)?, &read(key)?)
    }
}

/// Wake-ups of one connection's loops.
#[derive(Debug, Default)]
struct Wakers {
    read: Notify,
    write: Notify,
    timer: Notify,
}

struct State {
    relay: Relay<LocalNetwork>,
    wakers: HashMap<SessionId, Arc<Wakers>>,
}

impl State {
    /// Wakes the loops of every session the relay core named.
    fn wake(&mut self) {
        while let Some(ServerEvent::Wakeup(id)) = self.relay.poll_event() {
            if let Some(w) = self.wakers.get(&id) {
                w.read.notify_one();
                w.write.notify_one();
                w.timer.notify_one();
            }
        }
    }
}

struct Shared {
    state: Mutex<State>,
    limits: Limits,
    /// Partial input of all sessions beyond their allowance ([`Limits::input_budget`]).
    input: Arc<InputBudget>,
    behind_proxy: bool,
    tls: Option<TlsConfig>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a bug; keep serving the other sessions.
        crate::sync::lock(&self.state)
    }
}

/// A bound relay, ready to [`RelayServer::run`].
pub struct RelayServer {
    ws: Option<TcpListener>,
    tcp: Option<TcpListener>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RelayServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayServer")
            .field("ws", &self.ws_addr())
            .field("tcp", &self.tcp_addr())
            .finish_non_exhaustive()
    }
}

async fn bind(addr: Option<SocketAddr>, what: &str) -> Result<Option<TcpListener>, RelayError> {
    let Some(addr) = addr else { return Ok(None) };
    TcpListener::bind(addr)
        .await
        .map(Some)
        .map_err(|source| RelayError::Io {
            context: format!("cannot listen for {what} on {addr}"),
            source,
        })
}

impl RelayServer {
    /// Binds the listening sockets of `config` (port 0 picks a free port).
    ///
    /// Errors: [`RelayError::Limits`] if a limit is out of its range ([`Limits::validate`]),
    /// [`RelayError::Ice`] if the ICE config is unusable ([`RelayIce::validate`]),
    /// [`RelayError::Io`] if an address cannot be bound.
    pub async fn bind(config: RelayConfig) -> Result<Self, RelayError> {
        config.limits.validate()?;
        if let Some(ice) = &config.ice {
            ice.validate()?;
        }
        let ws = bind(config.ws, "WebSocket").await?;
        let tcp = bind(config.tcp, "TCP").await?;
        let reported = ws
            .as_ref()
            .or(tcp.as_ref())
            .and_then(|l| l.local_addr().ok())
            .and_then(|a| match a {
                SocketAddr::V4(v4) => Some(v4),
                SocketAddr::V6(_) => None,
            })
            .unwrap_or_else(|| SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0));
        let mut relay = Relay::new(config.limits.clone(), LocalNetwork::new(reported));
        // The wall clock is read here, once: the core derives credential expiries from it.
        let unix_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        relay.set_ice(config.ice, Instant::now(), unix_now);
        Ok(Self {
            ws,
            tcp,
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    relay,
                    wakers: HashMap::new(),
                }),
                input: InputBudget::new(config.limits.input_budget),
                limits: config.limits,
                behind_proxy: config.behind_proxy,
                tls: config.tls,
            }),
        })
    }

    /// The bound WebSocket address, if any.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The WebSocket URL clients use: `wss://HOST:PORT` with TLS, else `ws://HOST:PORT`.
    pub fn ws_url(&self) -> Option<String> {
        let scheme = if self.shared.tls.is_some() {
            "wss"
        } else {
            "ws"
        };
        self.ws_addr().map(|a| format!("{scheme}://{a}"))
    }

    /// The bound TCP address, if any.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves clients until `shutdown` resolves, then closes every session (reason
    /// [`CloseReason::Shutdown`]) and waits up to 3 s for them to flush.
    ///
    /// Errors: none so far (accept errors such as running out of file descriptors are logged and
    /// retried); the `Result` leaves room for fatal listener errors.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), RelayError> {
        // `bind` validated the limit; the `min` only keeps tokio's semaphore from panicking.
        let permits = Arc::new(Semaphore::new(
            self.shared.limits.max_sessions.min(Semaphore::MAX_PERMITS),
        ));
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let (stream, addr, is_ws) = tokio::select! {
                _ = &mut shutdown => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                r = accept(&self.ws) => match r {
                    Ok((s, a)) => (s, a, true),
                    Err(e) => { accept_error(e).await; continue }
                },
                r = accept(&self.tcp) => match r {
                    Ok((s, a)) => (s, a, false),
                    Err(e) => { accept_error(e).await; continue }
                },
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                warn!(%addr, max = self.shared.limits.max_sessions, "relay: session limit reached, refusing a connection");
                continue;
            };
            let shared = self.shared.clone();
            tasks.spawn(async move {
                let _ = stream.set_nodelay(true);
                if is_ws {
                    ws_connection(shared, stream, addr).await
                } else {
                    tcp_connection(shared, stream, addr).await
                }
                drop(permit);
            });
        }
        {
            let mut st = self.shared.lock();
            let ids: Vec<SessionId> = st.wakers.keys().copied().collect();
            for id in ids {
                st.relay.close_session(id, CloseReason::Shutdown);
            }
            st.wake();
        }
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
            tasks.abort_all();
        }
        Ok(())
    }
}

async fn accept(l: &Option<TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

async fn accept_error(e: std::io::Error) {
    warn!(error = %e, "relay: accept failed");
    // E.g. out of file descriptors: don't spin.
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn ws_connection(shared: Arc<Shared>, stream: TcpStream, addr: SocketAddr) {
    let limits = &shared.limits;
    // The TLS handshake (if any) and the WebSocket upgrade share one deadline.
    let deadline = later(Instant::now(), limits.handshake_timeout).into();
    let mut stream: Box<dyn Io> = match &shared.tls {
        None => Box::new(stream),
        Some(tls) => match tokio::time::timeout_at(deadline, tls.acceptor.accept(stream)).await {
            Ok(Ok(s)) => Box::new(s),
            Ok(Err(e)) => return debug!(%addr, error = %e, "relay: TLS handshake failed"),
            Err(_) => return debug!(%addr, "relay: TLS handshake timed out"),
        },
    };
    let upgrade = match tokio::time::timeout_at(deadline, ws::accept(&mut stream)).await {
        Ok(Ok(u)) => u,
        Ok(Err(e)) => return debug!(%addr, error = %e, "relay: WebSocket upgrade failed"),
        Err(_) => return debug!(%addr, "relay: WebSocket upgrade timed out"),
    };
    let peer = match upgrade.forwarded_for.filter(|_| shared.behind_proxy) {
        Some(f) => format!("ws {f} (via {addr})"),
        None => format!("ws {addr}"),
    };
    let input = InputBuffer::new(shared.input.clone(), upgrade.rest);
    let (read, write) = tokio::io::split(stream);
    let reader = Reader::Ws(ws::Reader::new(read, input, limits.max_frame));
    serve(shared, peer, reader, Writer::Ws(write)).await
}

async fn tcp_connection(shared: Arc<Shared>, mut stream: TcpStream, addr: SocketAddr) {
    // A fresh key pair per connection, as the JS TCP transport does by default.
    let key = SigningKey::generate(&mut OsRng);
    let timeout = shared.limits.handshake_timeout;
    let (_, enc, dec, rest) =
        match secret_stream::handshake(&mut stream, &key, false, timeout).await {
            Ok(r) => r,
            Err(e) => return debug!(%addr, error = %e, "relay: TCP secret-stream handshake failed"),
        };
    let (read, write) = stream.into_split();
    let reader = Reader::Tcp {
        read,
        input: InputBuffer::new(shared.input.clone(), rest),
        dec,
        max_body: shared.limits.max_frame + ABYTES,
    };
    let writer = Writer::Tcp { write, enc };
    serve(shared, format!("tcp {addr}"), reader, writer).await
}
