//! The accepting side of an [`super::Endpoint`]: one stream of what arrives on the TCP listener
//! and on every relay we listen through, each connection handed out before its handshake.

use std::net::{IpAddr, SocketAddr};

use ed25519_dalek::SigningKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::net::{Connection, ConnectionConfig, NetError};
use crate::relay::client::{Listener, RelayClient, RelayState, RelayStream};

/// Relay events waiting to be taken. A full queue makes the relay tasks wait (the relay then
/// holds the streams), so a server that stops accepting is not flooded.
const RELAY_QUEUE: usize = 64;

/// A connection someone opened to us, before its handshake: a server decides from
/// [`Incoming::peer_addr`] whether to spend a handshake on it, then calls
/// [`Incoming::connect`].
#[derive(Debug)]
pub enum Incoming {
    /// A TCP socket from this address: the secret-stream handshake (Noise XX) is still to run.
    Tcp(TcpStream, SocketAddr),
    /// A stream through a relay, its handshake done (ours, non-custodial; or the relay's,
    /// custodial).
    Relay(RelayStream),
}

impl Incoming {
    /// The TCP peer's address; `None` for a relayed stream (whose address only the relay
    /// knows).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        match self {
            Incoming::Tcp(_, addr) => Some(*addr),
            Incoming::Relay(_) => None,
        }
    }

    /// Who connected, for logs and warnings: the TCP address, or `relay:<remote key hex>`.
    pub fn label(&self) -> String {
        match self {
            Incoming::Tcp(_, addr) => addr.to_string(),
            Incoming::Relay(s) => format!("relay:{}", hex::encode(s.remote_public_key())),
        }
    }

    /// Runs the connection with our key pair `key` and `config` (handshake timeout, frame
    /// limits). Returns it and the local IP address it runs from (where WebRTC should bind to
    /// reach the same peer).
    ///
    /// Errors: [`NetError`] when the handshake fails or times out, or the socket is gone.
    pub async fn connect(
        self,
        key: &SigningKey,
        config: ConnectionConfig,
    ) -> Result<(Connection, IpAddr), NetError> {
        match self {
            Incoming::Tcp(tcp, _) => {
                // Signalling is many small messages: Nagle's algorithm would add ~40 ms to
                // each round trip.
                let _ = tcp.set_nodelay(true);
                let local_ip = tcp.local_addr().map(|a| a.ip()).map_err(NetError::Io)?;
                let conn = Connection::connect_with(tcp, key, false, config).await?;
                Ok((conn, local_ip))
            }
            Incoming::Relay(stream) => {
                let local_ip = stream.local_ip();
                Ok((stream.into_connection(config), local_ip))
            }
        }
    }
}

/// What an [`Acceptor`] yields.
#[derive(Debug)]
pub enum Accepted {
    /// A new connection.
    Incoming(Incoming),
    /// A relay session changed state (connected, or reconnecting with the error).
    Relay {
        /// The relay.
        url: String,
        /// Its new state (never [`RelayState::Connecting`], the initial state).
        state: RelayState,
    },
    /// A relay client stopped: nothing more arrives through that relay.
    RelayStopped {
        /// The relay.
        url: String,
    },
    /// Accepting on the TCP listener failed (e.g. out of file descriptors); the listener stays
    /// open. The caller should pause briefly before the next call so that a lasting error does
    /// not spin.
    Failed(std::io::Error),
}

/// The connections arriving at an endpoint ([`super::Endpoint::acceptor`]). The relay
/// listeners run in tasks owned here: dropping the acceptor stops listening everywhere.
#[derive(Debug)]
pub struct Acceptor {
    tcp: Option<TcpListener>,
    relayed: mpsc::Receiver<Accepted>,
    /// Whether a relay task may still send.
    relays_open: bool,
    _tasks: JoinSet<()>,
}

impl Acceptor {
    /// An acceptor over `tcp` and the relay `listeners` (each with its client).
    pub(super) fn new(tcp: Option<TcpListener>, listeners: Vec<(RelayClient, Listener)>) -> Self {
        let (tx, relayed) = mpsc::channel(RELAY_QUEUE);
        let mut tasks = JoinSet::new();
        for (client, listener) in listeners {
            tasks.spawn(follow_relay(client, listener, tx.clone()));
        }
        Acceptor {
            tcp,
            relayed,
            relays_open: !tasks.is_empty(),
            _tasks: tasks,
        }
    }

    /// The next arrival. `None` once there is nothing left to listen on (no TCP listener and
    /// every relay client stopped).
    pub async fn next(&mut self) -> Option<Accepted> {
        loop {
            tokio::select! {
                accepted = accept_tcp(self.tcp.as_ref()), if self.tcp.is_some() => {
                    return Some(accepted);
                }
                relayed = self.relayed.recv(), if self.relays_open => match relayed {
                    Some(accepted) => return Some(accepted),
                    None => self.relays_open = false,
                },
                else => return None,
            }
        }
    }
}

/// The next connection on `tcp` (never called without one).
async fn accept_tcp(tcp: Option<&TcpListener>) -> Accepted {
    let Some(listener) = tcp else {
        return std::future::pending().await;
    };
    match listener.accept().await {
        Ok((stream, addr)) => Accepted::Incoming(Incoming::Tcp(stream, addr)),
        Err(e) => Accepted::Failed(e),
    }
}

/// Forwards one relay's streams and state changes until its client stops or the acceptor is
/// gone.
async fn follow_relay(client: RelayClient, mut listener: Listener, tx: mpsc::Sender<Accepted>) {
    let url = client.url().to_string();
    let mut state: watch::Receiver<RelayState> = client.state();
    let mut watching = true;
    loop {
        let event = tokio::select! {
            stream = listener.accept() => match stream {
                Some(stream) => Accepted::Incoming(Incoming::Relay(stream)),
                None => {
                    let _ = tx.send(Accepted::RelayStopped { url }).await;
                    return;
                }
            },
            changed = state.changed(), if watching => match changed {
                Ok(()) => {
                    let now = state.borrow_and_update().clone();
                    if now == RelayState::Connecting {
                        continue;
                    }
                    Accepted::Relay { url: url.clone(), state: now }
                }
                Err(_) => {
                    watching = false;
                    continue;
                }
            },
        };
        if tx.send(event).await.is_err() {
            return;
        }
    }
}
