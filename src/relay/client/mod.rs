//! Our `@hyperswarm/dht-relay` 0.4.3 client (PROTOCOL.md §3-§6): reach peers through a relay
//! over `ws://` or `tcp://` URLs, custodial mode (the client hands the relay the secret key of
//! the key pair it listens or connects with; the relay runs the Noise handshake with the remote,
//! as the JS client's default `new DHT(stream)`).
//!
//! - [`RelayClient::start`] spawns the client's task: it opens the transport, sends `handshake`,
//!   answers `ping`s, and **reconnects on its own** when the relay goes away (exponential
//!   back-off with jitter, capped), re-sending every `listen`, so a server stays reachable.
//!   [`RelayClient::state`] reports [`RelayState`] changes.
//! - [`RelayClient::listen`] listens on the client's key pair: each incoming connection is
//!   accepted (`incoming` → `accept`) and handed out by [`Listener::accept`].
//! - [`RelayClient::connect`] connects to a public key.
//! - A [`RelayStream`] is message-oriented (one relay `data` chunk = one protomux frame) and
//!   carries the remote's public key and the handshake hash the relay reported: exactly what
//!   [`crate::net::Connection::from_frames`] needs ([`RelayStream::into_connection`]), as JS
//!   `core.replicate(stream)` sits on a relayed stream.
//!
//! Not yet: non-custodial mode (`noiseSend`/`noiseReceive`/`noiseReply`), `wss://` (TLS),
//! announce/lookup.

#![warn(missing_docs)]

mod driver;
mod stream;
mod transport;

use std::fmt;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use tokio::sync::{mpsc, oneshot, watch};

pub use stream::{Listener, RelayStream, RelayStreamReader, RelayStreamWriter};

/// A relay address: `ws://host:port[/path]` or `tcp://host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayUrl {
    /// WebSocket; the full URL.
    Ws(String),
    /// TCP with `@hyperswarm/secret-stream` framing; `host:port`.
    Tcp(String),
}

impl fmt::Display for RelayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelayUrl::Ws(u) => f.write_str(u),
            RelayUrl::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

impl std::str::FromStr for RelayUrl {
    type Err = RelayClientError;

    /// Parses `ws://host:port[/path]` or `tcp://host:port`.
    ///
    /// Errors: [`RelayClientError::BadUrl`] for another scheme, a missing host or port, or
    /// `wss://` (TLS is not built in yet).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| RelayClientError::BadUrl {
            url: s.to_string(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = s.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let authority = rest.split('/').next().unwrap_or("");
        let port_ok = authority
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        match scheme {
            "ws" if port_ok => Ok(RelayUrl::Ws(s.to_string())),
            "tcp" if port_ok && !rest.contains('/') => Ok(RelayUrl::Tcp(rest.to_string())),
            "ws" | "tcp" => Err(bad("expected host:port")),
            "wss" => Err(bad(
                "wss:// is not supported yet: use ws:// (e.g. to a TLS-terminating proxy on the same host) or tcp://",
            )),
            _ => Err(bad("the scheme must be ws:// or tcp://")),
        }
    }
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
    /// The transport to the relay could not be opened (refused, timed out, WebSocket upgrade
    /// or TCP secret-stream handshake failed).
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
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(45),
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
    /// Starts a custodial client of `url` with key pair `key` (its secret key is sent to the
    /// relay, which uses it for listens and connects). Returns at once; the task connects in
    /// the background and keeps reconnecting. Requires a tokio runtime.
    pub fn start(url: RelayUrl, key: SigningKey, options: ClientOptions) -> RelayClient {
        let (cmd, cmd_rx) = mpsc::unbounded_channel();
        let (state_tx, state) = watch::channel(RelayState::Connecting);
        let weak = cmd.downgrade();
        tokio::spawn(driver::run(
            url.clone(),
            key,
            options,
            cmd_rx,
            weak,
            state_tx,
        ));
        RelayClient { url, cmd, state }
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

    /// Connects to `remote_public_key` through the relay (custodial `connect`); resolves on
    /// the relay's `open`, with the stream's handshake hash.
    ///
    /// Errors: [`RelayClientError::NotConnected`] when no session is up;
    /// [`RelayClientError::ConnectFailed`] when the relay answers `destroy` (nobody listens on
    /// the key, the server denied it) or the session is lost meanwhile;
    /// [`RelayClientError::Stopped`].
    pub async fn connect(
        &self,
        remote_public_key: [u8; 32],
    ) -> Result<RelayStream, RelayClientError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Connect {
                remote_public_key,
                reply,
            })
            .map_err(|_| RelayClientError::Stopped)?;
        rx.await.map_err(|_| RelayClientError::Stopped)?
    }

    /// Listens on the client's key pair (custodial `listen`), now and after every reconnect,
    /// until the [`Listener`] is dropped. Returns at once (the `listen` goes out on the current
    /// session, or the next one); [`RelayState::Connected`] means it was confirmed.
    ///
    /// Errors: [`RelayClientError::Stopped`].
    pub async fn listen(&self) -> Result<Listener, RelayClientError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Listen { reply })
            .map_err(|_| RelayClientError::Stopped)?;
        rx.await.map_err(|_| RelayClientError::Stopped)?
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
        assert_eq!(ws, RelayUrl::Ws("ws://127.0.0.1:49443".into()));
        assert_eq!(ws.to_string(), "ws://127.0.0.1:49443");
        let path: RelayUrl = "ws://relay.example:80/dht".parse().unwrap();
        assert_eq!(path.to_string(), "ws://relay.example:80/dht");
        let tcp: RelayUrl = "tcp://[::1]:4000".parse().unwrap();
        assert_eq!(tcp, RelayUrl::Tcp("[::1]:4000".into()));
        assert_eq!(tcp.to_string(), "tcp://[::1]:4000");
        for bad in [
            "127.0.0.1:4000",
            "http://a:1",
            "ws://nohost",
            "ws://:80",
            "tcp://a:99999",
            "tcp://a:1/x",
            "wss://a:443",
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
