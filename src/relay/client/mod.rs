//! Our `@hyperswarm/dht-relay` 0.4.3 client (PROTOCOL.md §3-§6): reach peers through a relay
//! over `ws://`, `wss://` or `tcp://` URLs.
//!
//! Two modes ([`ClientOptions::custodial`]):
//! - **non-custodial** (our default; JS `new DHT(stream, { custodial: false })`): the client
//!   keeps its secret key. It runs hyperdht's Noise IK handshake itself with the messages the
//!   relay carries (`noiseSend` / `noiseReceive` → `noiseReply`), proves listens (and
//!   announces) by signing the relay's `signAnnounce` / `signUnannounce`, and then speaks its
//!   own `@hyperswarm/secret-stream` with the remote inside the relay's `data` messages: the
//!   relay sees only ciphertext and cannot impersonate either end.
//! - **custodial** (JS's default `new DHT(stream)`): the client hands the relay the secret key
//!   of the key pair it listens or connects with; the relay runs the Noise handshake with the
//!   remote and sees the stream in plaintext.
//!
//! The two ends of a connection need not share a mode: our relay bridges a custodial end to a
//! non-custodial one (it runs the Noise handshake and the secret-stream for the custodial end;
//! docs/RELAY.md, "Mixed modes").
//!
//! - [`RelayClient::start`] spawns the client's task: it opens the transport, sends `handshake`,
//!   answers `ping`s, and **reconnects on its own** when the relay goes away (exponential
//!   back-off with jitter, capped), re-sending every `listen`, so a server stays reachable.
//!   [`RelayClient::state`] reports [`RelayState`] changes.
//! - [`RelayClient::listen`] listens on the client's key pair: each incoming connection is
//!   accepted (custodial: `incoming` → `accept`; non-custodial: every well-formed handshake)
//!   and handed out by [`Listener::accept`].
//! - [`RelayClient::connect`] connects to a public key.
//! - A [`RelayStream`] is message-oriented (custodial: one relay `data` chunk = one protomux
//!   frame; non-custodial: one secret-stream record = one frame) and carries the remote's
//!   public key and the handshake hash: exactly what [`crate::net::Connection::from_frames`]
//!   needs ([`RelayStream::into_connection`]), as JS `core.replicate(stream)` sits on a
//!   relayed stream.
//!
//! `wss://` verifies the relay's certificate and host name against the system's CA certificates
//! (honouring `SSL_CERT_FILE` / `SSL_CERT_DIR`) plus [`ClientOptions::extra_roots`] (see
//! [`load_pem_certificates`] for a private CA).
//!
//! - [`RelayClient::announce`] / [`RelayClient::unannounce`] / [`RelayClient::lookup`]:
//!   `announce` / `unannounce` / `lookup` queries on a 32-byte topic (PROTOCOL.md §5); announces
//!   are re-sent after every reconnect.
//! - [`RelayClient::ice_servers`] / [`RelayClient::wait_ice_servers`]: the STUN/TURN servers
//!   and short-lived TURN credentials our relay gives on its `dat-social/ice/v1` channel
//!   ([`crate::relay::ice`]), asked for on every session and renewed before they expire; none
//!   from a relay that does not serve it (the JS relay).

#![warn(missing_docs)]

mod driver;
mod proto;
mod stream;
mod transport;

use std::fmt;
use std::path::Path;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use tokio::sync::{mpsc, oneshot, watch};

use crate::ice::IceServer;
use crate::keys::{IdentityKey, Topic};

pub use rustls_pki_types::CertificateDer;
pub use stream::{Listener, RelayStream, RelayStreamReader, RelayStreamWriter};

/// A relay address: `ws://host[:port][/path]`, `wss://host[:port][/path]` or `tcp://host:port`
/// (the transports of npm `@hyperswarm/dht-relay` 0.4.3: `ws` and `tcp`; `wss` is `ws` over
/// TLS). A host is a DNS name, an IPv4 address or a bracketed IPv6 address (`[::1]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayUrl {
    /// WebSocket without TLS; the full URL. Port 80 if none is given.
    Ws(String),
    /// WebSocket over TLS; the full URL. Port 443 if none is given. The relay's certificate
    /// must chain to a trusted CA ([`ClientOptions::extra_roots`] or the system's) and be
    /// valid for the URL's host.
    Wss(String),
    /// TCP with `@hyperswarm/secret-stream` framing; `host:port`.
    Tcp(String),
}

impl fmt::Display for RelayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelayUrl::Ws(u) | RelayUrl::Wss(u) => f.write_str(u),
            RelayUrl::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

impl std::str::FromStr for RelayUrl {
    type Err = RelayClientError;

    /// Parses `ws://host[:port][/path]`, `wss://host[:port][/path]` or `tcp://host:port`.
    ///
    /// Errors: [`RelayClientError::BadUrl`] for another scheme, a missing host, a bad port, a
    /// `tcp://` URL without a port or with a path, or user info (`user@`) in the authority.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| RelayClientError::BadUrl {
            url: s.to_string(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = s.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let parsed = split_host_port(authority);
        match scheme {
            "ws" | "wss" => {
                parsed.ok_or_else(|| bad("expected host[:port][/path]"))?;
                Ok(if scheme == "ws" {
                    RelayUrl::Ws(s.to_string())
                } else {
                    RelayUrl::Wss(s.to_string())
                })
            }
            "tcp" => match parsed {
                Some((_, Some(_))) if authority == rest => Ok(RelayUrl::Tcp(rest.to_string())),
                _ => Err(bad("expected tcp://host:port")),
            },
            _ => Err(bad("the scheme must be ws://, wss:// or tcp://")),
        }
    }
}

/// Splits `host[:port]` (`[v6]` or `[v6]:port` for IPv6) into the host (without brackets) and
/// the port, if any. `None` if the host is empty, the port is not a `u16`, an IPv6 address is
/// not bracketed, or there is user info.
fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    if authority.contains('@') {
        return None;
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        host.parse::<std::net::Ipv6Addr>().ok()?;
        (host, port)
    } else {
        let (h, p) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        // An IPv6 address must be bracketed (else its colons read as a port).
        if h.is_empty() || p.is_some_and(|p| p.contains(':')) {
            return None;
        }
        (h, p)
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    Some((host.to_string(), port))
}

/// The host (brackets removed) and port (default 80 for `ws`, 443 for `wss`) of a WebSocket URL
/// that [`RelayUrl::from_str`](std::str::FromStr) accepted.
pub(crate) fn ws_host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (host, port) = split_host_port(authority)?;
    let default = if scheme == "wss" { 443 } else { 80 };
    Some((host, port.unwrap_or(default)))
}

/// Reads every PEM `CERTIFICATE` block of the file at `path` (e.g. a private CA's certificate,
/// as `dat-social relay --cert` takes them), for [`ClientOptions::extra_roots`].
///
/// Errors: [`RelayClientError::BadCertificates`] if the file cannot be read, is not PEM, or
/// holds no certificate.
pub fn load_pem_certificates(
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, RelayClientError> {
    use rustls_pki_types::pem::PemObject;
    let bad = |reason: String| RelayClientError::BadCertificates {
        path: path.display().to_string(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad("no CERTIFICATE block in it".into()));
    }
    Ok(certs)
}

/// Errors of the relay client.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RelayClientError {
    /// The relay URL is not usable.
    #[error("invalid relay URL {url:?}: {reason}")]
    BadUrl {
        /// The text given.
        url: String,
        /// Why.
        reason: String,
    },
    /// The transport to the relay could not be opened (refused, timed out, TLS handshake failed
    /// (e.g. a certificate from an untrusted CA or for another host), WebSocket upgrade or TCP
    /// secret-stream handshake failed).
    #[error("cannot reach the relay {url}: {reason}")]
    Connect {
        /// The relay URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// Not connected to the relay right now (it went away; the client is reconnecting), or
    /// the wait for it ended.
    #[error("not connected to the relay {0}")]
    NotConnected(String),
    /// The relay refused or failed a connect (e.g. `PEER_NOT_FOUND`: nobody listens on the key),
    /// or destroyed the stream.
    #[error("the relay could not connect to {peer}: {reason}")]
    ConnectFailed {
        /// The remote public key, 64 hex.
        peer: String,
        /// The relay's error text.
        reason: String,
    },
    /// The client's task has ended (every handle was dropped, or it failed).
    #[error("the relay client has stopped")]
    Stopped,
    /// An `announce` / `unannounce` / `lookup` did not finish: the relay did not answer
    /// `finished` in time, or the session was lost meanwhile.
    #[error("the relay query on topic {topic} did not finish: {reason}")]
    QueryFailed {
        /// The topic, 64 hex.
        topic: String,
        /// What happened.
        reason: String,
    },
    /// A CA certificate file given for `wss://` is unusable ([`load_pem_certificates`]).
    #[error("unusable CA certificate file {path}: {reason}")]
    BadCertificates {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Whether the client holds a live relay session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayState {
    /// The first connection attempt is under way.
    Connecting,
    /// The relay session is up, and every `listen` was confirmed (`listening`).
    Connected,
    /// The session was lost (or could not be opened); the next attempt is in `delay`.
    Reconnecting {
        /// Failed attempts in a row (1 for the first).
        attempt: u32,
        /// Wait before the next attempt.
        delay: Duration,
        /// What happened.
        error: String,
    },
}

impl RelayState {
    /// `connecting`, `connected` or `reconnecting` (the CLI's `relay` event `state`).
    pub fn name(&self) -> &'static str {
        match self {
            RelayState::Connecting => "connecting",
            RelayState::Connected => "connected",
            RelayState::Reconnecting { .. } => "reconnecting",
        }
    }
}

/// What the client knows of its relay's ICE servers.
#[derive(Clone, Debug)]
pub(crate) enum IceState {
    /// No answer yet.
    Waiting,
    /// The latest answer, valid until `expires`.
    Ready {
        servers: Vec<IceServer>,
        expires: std::time::Instant,
    },
    /// The relay gives none.
    None,
}

/// Settings of a [`RelayClient`].
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Limit for opening the transport (TCP connect + WebSocket upgrade or secret-stream
    /// handshake). Default 10 s.
    pub connect_timeout: Duration,
    /// First back-off delay after a lost session. Default 250 ms.
    pub backoff_min: Duration,
    /// Back-off cap (doubling stops here). Default 10 s.
    pub backoff_max: Duration,
    /// The session is considered dead when nothing arrived from the relay for this long (JS
    /// failsafe: 45 s; the relay pings every 15 s). Default 45 s.
    pub idle_timeout: Duration,
    /// CA certificates (DER) trusted for `wss://` relays in addition to the system's (read once
    /// per process from the OS store, or from `SSL_CERT_FILE` / `SSL_CERT_DIR` when set), e.g.
    /// a private CA or a self-signed relay certificate: see [`load_pem_certificates`]. The host
    /// name is verified either way. An unparsable one fails every `wss://` connect with
    /// [`RelayClientError::Connect`]. Default: none.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Custodial mode: hand the relay the secret key (in `handshake`, `listen`, `connect`,
    /// `announce`) so that it runs the Noise handshakes and sees the streams in plaintext, as
    /// the JS client does by default. Default `false`: non-custodial, the key never leaves
    /// this process (see the module docs).
    pub custodial: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(45),
            extra_roots: Vec::new(),
            custodial: false,
        }
    }
}

/// What handles tell the client task.
pub(crate) enum Cmd {
    Connect {
        remote_public_key: [u8; 32],
        reply: oneshot::Sender<Result<RelayStream, RelayClientError>>,
    },
    Listen {
        reply: oneshot::Sender<Result<Listener, RelayClientError>>,
    },
    Unlisten(u32),
    /// `add`: announce `topic` (and keep announcing it after reconnects); else unannounce it.
    Announce {
        topic: [u8; 32],
        add: bool,
        reply: oneshot::Sender<Result<(), RelayClientError>>,
    },
    Lookup {
        topic: [u8; 32],
        reply: oneshot::Sender<Result<Vec<[u8; 32]>, RelayClientError>>,
    },
    Data {
        generation: u64,
        alias: u32,
        chunks: Vec<Vec<u8>>,
        done: oneshot::Sender<()>,
    },
    End {
        generation: u64,
        alias: u32,
    },
    Dropped {
        generation: u64,
        alias: u32,
    },
}

/// A handle to a relay client task (see the module docs). Cloneable; the task ends when every
/// handle, [`Listener`] and [`RelayStream`] is gone.
#[derive(Clone)]
pub struct RelayClient {
    url: RelayUrl,
    cmd: mpsc::UnboundedSender<Cmd>,
    state: watch::Receiver<RelayState>,
    ice: watch::Receiver<IceState>,
}

impl fmt::Debug for RelayClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayClient")
            .field("url", &self.url.to_string())
            .field("state", &*self.state.borrow())
            .finish()
    }
}

impl RelayClient {
    /// Starts a client of `url` with key pair `key`, the key it listens and connects with:
    /// non-custodial unless [`ClientOptions::custodial`] (then its secret key is sent to the
    /// relay). Returns at once; the task connects in the background and keeps reconnecting.
    /// Requires a tokio runtime.
    pub fn start(url: RelayUrl, key: SigningKey, options: ClientOptions) -> RelayClient {
        let (cmd, cmd_rx) = mpsc::unbounded_channel();
        let (state_tx, state) = watch::channel(RelayState::Connecting);
        let (ice_tx, ice) = watch::channel(IceState::Waiting);
        let weak = cmd.downgrade();
        tokio::spawn(driver::run(
            url.clone(),
            key,
            options,
            cmd_rx,
            weak,
            state_tx,
            ice_tx,
        ));
        RelayClient {
            url,
            cmd,
            state,
            ice,
        }
    }

    /// The relay's STUN/TURN servers as last received (`dat-social/ice/v1`, renewed by the
    /// client before they expire), or none: no answer yet, the relay gives none (a JS relay,
    /// or ours without ICE servers), or the credentials expired. Never waits.
    pub fn ice_servers(&self) -> Vec<IceServer> {
        match &*self.ice.borrow() {
            IceState::Ready { servers, expires } if std::time::Instant::now() < *expires => {
                servers.clone()
            }
            _ => Vec::new(),
        }
    }

    /// As [`RelayClient::ice_servers`], after waiting up to `bound` for the relay's first
    /// answer (or its refusal, which comes at once from a relay that does not serve ICE).
    /// Does not wait while the relay is unreachable ([`RelayState::Reconnecting`]).
    pub async fn wait_ice_servers(&self, bound: Duration) -> Vec<IceServer> {
        if matches!(*self.state.borrow(), RelayState::Reconnecting { .. }) {
            return self.ice_servers();
        }
        let mut rx = self.ice.clone();
        let answered = rx.wait_for(|s| !matches!(s, IceState::Waiting));
        let _ = tokio::time::timeout(bound, answered).await;
        self.ice_servers()
    }

    /// The relay's URL.
    pub fn url(&self) -> &RelayUrl {
        &self.url
    }

    /// State changes (the current value first).
    pub fn state(&self) -> watch::Receiver<RelayState> {
        self.state.clone()
    }

    /// Waits until the state is [`RelayState::Connected`], up to `timeout`.
    ///
    /// Errors: [`RelayClientError::NotConnected`] with the last error seen when `timeout`
    /// passes; [`RelayClientError::Stopped`].
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), RelayClientError> {
        let mut rx = self.state.clone();
        let wait = async {
            rx.wait_for(|s| *s == RelayState::Connected)
                .await
                .map(|_| ())
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(RelayClientError::Stopped),
            Err(_) => {
                let why = match &*self.state.borrow() {
                    RelayState::Reconnecting { error, .. } => format!("{}: {error}", self.url),
                    _ => format!("{}: timed out", self.url),
                };
                Err(RelayClientError::NotConnected(why))
            }
        }
    }

    /// Connects to the peer listening on `remote` (its identity key, the static key of its
    /// Noise handshake) through the relay (`connect`); resolves on the relay's
    /// `open`, once the Noise handshake is done (non-custodial: ours, through `noiseSend` /
    /// `noiseReceive`; custodial: the relay's).
    ///
    /// Errors: [`RelayClientError::NotConnected`] when no session is up;
    /// [`RelayClientError::ConnectFailed`] when the relay answers `destroy` (nobody listens on
    /// the key, the server denied it), the Noise handshake fails (a wrong key, a tampered or
    /// malformed message or `noisePayload` from the relay), the relay answers in the other
    /// mode, or the session is lost meanwhile; [`RelayClientError::Stopped`].
    pub async fn connect(&self, remote: IdentityKey) -> Result<RelayStream, RelayClientError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Connect {
                remote_public_key: *remote.as_bytes(),
                reply,
            })
            .map_err(|_| RelayClientError::Stopped)?;
        rx.await.map_err(|_| RelayClientError::Stopped)?
    }

    /// Listens on the client's key pair (`listen`; non-custodial: proven by signing the
    /// relay's `signAnnounce`), now and after every reconnect, until the [`Listener`] is
    /// dropped. Returns at once (the `listen` goes out on the current session, or the next
    /// one); [`RelayState::Connected`] means it was confirmed (`listening`).
    ///
    /// Errors: [`RelayClientError::Stopped`].
    pub async fn listen(&self) -> Result<Listener, RelayClientError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Listen { reply })
            .map_err(|_| RelayClientError::Stopped)?;
        rx.await.map_err(|_| RelayClientError::Stopped)?
    }

    /// Announces the client's public key on `topic` (`announce{id, topic, pk}`; custodial: with
    /// the secret key, the relay signs; non-custodial: we sign each `signAnnounce` the relay
    /// asks), stored on the DHT by the JS relay, among its own clients by ours. Now and again on
    /// every new session until [`RelayClient::unannounce`] (not refreshed within a session:
    /// hyperdht 6.34 keeps a record about 20 minutes). Waits up to `timeout` for the relay's
    /// `finished` of this announce (a DHT query on the JS relay: seconds).
    ///
    /// Errors (the topic stays registered and is announced on the next session either way):
    /// [`RelayClientError::NotConnected`] when no session is up;
    /// [`RelayClientError::QueryFailed`] when `timeout` passes or the session is lost before
    /// `finished`; [`RelayClientError::Stopped`].
    pub async fn announce(&self, topic: Topic, timeout: Duration) -> Result<(), RelayClientError> {
        self.query(topic, timeout, |reply| Cmd::Announce {
            topic: *topic.as_bytes(),
            add: true,
            reply,
        })
        .await
    }

    /// Stops announcing `topic` (`unannounce`, which removes the record; the JS relay runs
    /// hyperdht's `lookupAndUnannounce`) and waits up to `timeout` for the relay's `finished`.
    ///
    /// Errors (the topic is no longer re-announced either way):
    /// [`RelayClientError::NotConnected`] when no session is up;
    /// [`RelayClientError::QueryFailed`] when `timeout` passes or the session is lost first;
    /// [`RelayClientError::Stopped`].
    pub async fn unannounce(
        &self,
        topic: Topic,
        timeout: Duration,
    ) -> Result<(), RelayClientError> {
        self.query(topic, timeout, |reply| Cmd::Announce {
            topic: *topic.as_bytes(),
            add: false,
            reply,
        })
        .await
    }

    /// The identity keys announced on `topic` (`lookup{id, topic}` → `result{announcers}`* →
    /// `finished`): every peer key of every result, each once, in order of arrival. Waits up to
    /// `timeout` for `finished`.
    ///
    /// Errors: [`RelayClientError::NotConnected`] when no session is up;
    /// [`RelayClientError::QueryFailed`] when `timeout` passes or the session is lost first;
    /// [`RelayClientError::Stopped`].
    pub async fn lookup(
        &self,
        topic: Topic,
        timeout: Duration,
    ) -> Result<Vec<IdentityKey>, RelayClientError> {
        let found = self
            .query(topic, timeout, |reply| Cmd::Lookup {
                topic: *topic.as_bytes(),
                reply,
            })
            .await?;
        Ok(found.into_iter().map(IdentityKey::from_bytes).collect())
    }

    /// Sends the command `make` builds and waits up to `timeout` for its reply.
    async fn query<T>(
        &self,
        topic: Topic,
        timeout: Duration,
        make: impl FnOnce(oneshot::Sender<Result<T, RelayClientError>>) -> Cmd,
    ) -> Result<T, RelayClientError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(make(reply))
            .map_err(|_| RelayClientError::Stopped)?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(r) => r.map_err(|_| RelayClientError::Stopped)?,
            Err(_) => Err(RelayClientError::QueryFailed {
                topic: topic.to_hex(),
                reason: format!("no `finished` from the relay within {timeout:?}"),
            }),
        }
    }
}

/// A libsodium-style 64-byte secret key (seed ‖ public key), what custodial messages carry.
pub(crate) fn secret_key(key: &SigningKey) -> crate::relay::messages::SecretKey {
    crate::relay::messages::SecretKey(key.to_keypair_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_print() {
        let ws: RelayUrl = "ws://127.0.0.1:49443".parse().unwrap();
        assert_eq!(
            ws_host_port("ws://127.0.0.1:49443"),
            Some(("127.0.0.1".into(), 49443))
        );
        assert_eq!(ws, RelayUrl::Ws("ws://127.0.0.1:49443".into()));
        assert_eq!(ws.to_string(), "ws://127.0.0.1:49443");
        let path: RelayUrl = "ws://relay.example:80/dht".parse().unwrap();
        assert_eq!(path.to_string(), "ws://relay.example:80/dht");
        let tcp: RelayUrl = "tcp://[::1]:4000".parse().unwrap();
        assert_eq!(tcp, RelayUrl::Tcp("[::1]:4000".into()));
        assert_eq!(tcp.to_string(), "tcp://[::1]:4000");
        let wss: RelayUrl = "wss://relay.example/dht".parse().unwrap();
        assert_eq!(wss, RelayUrl::Wss("wss://relay.example/dht".into()));
        assert_eq!(wss.to_string(), "wss://relay.example/dht");
        assert_eq!(
            ws_host_port("wss://relay.example/dht"),
            Some(("relay.example".into(), 443))
        );
        assert_eq!(ws_host_port("ws://nohost"), Some(("nohost".into(), 80)));
        assert_eq!(
            ws_host_port("wss://[::1]:8443/x?y"),
            Some(("::1".into(), 8443))
        );
        for bad in [
            "127.0.0.1:4000",
            "http://a:1",
            "ws://:80",
            "wss://",
            "wss://a:99999",
            "wss://u@a:1",
            "ws://::1:80",
            "ws://[::1",
            "ws://[nope]:1",
            "tcp://a:99999",
            "tcp://a",
            "tcp://a:1/x",
        ] {
            assert!(bad.parse::<RelayUrl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_key_is_seed_then_public_key() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let sk = secret_key(&key);
        assert_eq!(&sk.0[..32], &[9; 32]);
        assert_eq!(&sk.0[32..], key.verifying_key().as_bytes());
    }
}
