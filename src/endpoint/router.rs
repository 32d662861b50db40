//! Dispatch by protomux protocol: a [`Router`] serves one accepted connection by handing the
//! channels the remote opens to the [`ProtocolHandler`] registered for their protocol (as
//! iroh's `Router` hands a QUIC connection to the `ProtocolHandler` of its ALPN; here one
//! connection multiplexes several protocols, so it is dispatched per channel).
//!
//! One connection may reach several handlers: a lobby joiner replicates the host's archive
//! ([`super::ArchiveServer`], protocol `hypercore/alpha`) and opens `dat-social/lobby`; a
//! reader only replicates. Channels no handler takes are left pending (their buffered bytes
//! bounded by [`crate::net::ConnectionConfig::max_unaccepted_bytes`]) and counted: past
//! [`MAX_UNROUTED_CHANNELS`] the connection is closed.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::net::{ChannelKey, Connection, NetError};

/// Most channels the remote may open on one connection that no handler takes (an unknown
/// protocol, or a channel its handler declines, e.g. a core nobody serves yet): 16. A lobby
/// joiner opens two that the lobby takes later (its signalling log and, for friends-only, its
/// archive). One more closes the connection with [`RouteError::Unrouted`].
pub const MAX_UNROUTED_CHANNELS: usize = 16;

/// A connection being served, as its handlers see it.
#[derive(Clone, Debug)]
pub struct Inbound {
    /// The connection, authenticated (its remote key is the peer's identity key). Handlers
    /// share it; the last one dropped closes it.
    pub connection: Arc<Connection>,
    /// The server's id for the connection (e.g. to count it against its source).
    pub id: u64,
    /// Who connected, for logs: the TCP address or `relay:<remote key hex>`.
    pub label: String,
    /// The local IP address the connection runs from (where WebRTC should bind to reach the
    /// same peer).
    pub local_ip: IpAddr,
}

/// What a handler runs for one channel it took; the [`Router`] drives it to completion.
pub type HandlerTask = BoxFuture<'static, ()>;

/// A protocol served on accepted connections, registered on a [`Router`] under its protomux
/// protocol name (e.g. `hypercore/alpha`, `dat-social/lobby`).
pub trait ProtocolHandler: Send + Sync + 'static {
    /// Called once per connection before any channel is dispatched, in registration order:
    /// e.g. the archive server starts replicating the cores it serves, so that they flow with
    /// the first messages. Default: nothing.
    ///
    /// Errors: the connection failed; the router stops serving it.
    fn on_connect<'a>(&'a self, inbound: &'a Inbound) -> BoxFuture<'a, Result<(), NetError>> {
        let _ = inbound;
        Box::pin(async { Ok(()) })
    }

    /// The remote opened `channel`, of this handler's protocol, on `inbound`. `Some`: the
    /// handler takes it and the router drives the task (which owns whatever it needs of
    /// `inbound`; a handler done with the connection closes it). `None`: declined, the channel
    /// stays pending and counts against [`MAX_UNROUTED_CHANNELS`].
    fn accept(&self, inbound: &Inbound, channel: &ChannelKey) -> Option<HandlerTask>;
}

/// Why a [`Router`] stopped serving a connection before it ended.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The connection failed (or had ended) before it was served.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The remote opened more than [`MAX_UNROUTED_CHANNELS`] channels no handler took; the
    /// connection was closed.
    #[error("the peer opened {count} channels no handler takes (last: {protocol})")]
    Unrouted {
        /// How many.
        count: usize,
        /// The protocol of the last one.
        protocol: String,
    },
}

/// The handlers of an endpoint's accepted connections, by protomux protocol. Build it once and
/// share it (`Arc`); [`Router::serve`] each connection.
#[derive(Default)]
pub struct Router {
    /// In registration order (the order of [`ProtocolHandler::on_connect`]).
    handlers: Vec<(String, Arc<dyn ProtocolHandler>)>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let protocols: Vec<&str> = self.handlers.iter().map(|(p, _)| p.as_str()).collect();
        f.debug_struct("Router")
            .field("protocols", &protocols)
            .finish()
    }
}

impl Router {
    /// A router with no handler (every channel is unrouted).
    pub fn new() -> Self {
        Router::default()
    }

    /// Registers `handler` for the channels of `protocol`, replacing an earlier one.
    pub fn accept(self, protocol: &str, handler: impl ProtocolHandler) -> Self {
        self.register(protocol, Arc::new(handler))
    }

    /// Registers the handler of `protocol` for the channels of `alias` too (e.g. `hypercore`
    /// for `hypercore/alpha`): one handler, whose `on_connect` runs once. Nothing if
    /// `protocol` has no handler.
    pub fn alias(self, alias: &str, protocol: &str) -> Self {
        match self.handler(protocol) {
            Some(handler) => self.register(alias, handler),
            None => self,
        }
    }

    fn register(mut self, protocol: &str, handler: Arc<dyn ProtocolHandler>) -> Self {
        self.handlers.retain(|(p, _)| p != protocol);
        self.handlers.push((protocol.to_string(), handler));
        self
    }

    /// The handler registered for `protocol`.
    fn handler(&self, protocol: &str) -> Option<Arc<dyn ProtocolHandler>> {
        let (_, handler) = self.handlers.iter().find(|(p, _)| p == protocol)?;
        Some(handler.clone())
    }

    /// The protocols handled, in registration order.
    pub fn protocols(&self) -> impl Iterator<Item = &str> {
        self.handlers.iter().map(|(p, _)| p.as_str())
    }

    /// Serves `inbound`: runs every handler's [`ProtocolHandler::on_connect`], then dispatches
    /// each channel the remote opens, until the connection has ended and every handler task is
    /// done. Once `stop` completes, it returns as soon as no handler task runs (handlers watch
    /// for the end of the service themselves); the connection then closes unless a handler
    /// task kept it.
    ///
    /// Errors: [`RouteError::Net`] when `on_connect` fails or the event stream was taken;
    /// [`RouteError::Unrouted`] (the connection is closed at once, and the error returned once
    /// the running handler tasks are done).
    pub async fn serve(
        &self,
        inbound: Inbound,
        stop: impl Future<Output = ()>,
    ) -> Result<(), RouteError> {
        // Only the remote's opens: replication progress would wake the router for nothing.
        let mut opens = inbound
            .connection
            .take_remote_opens()
            .ok_or(RouteError::Net(NetError::Closed))?;
        for (i, (_, handler)) in self.handlers.iter().enumerate() {
            // A handler under several names (an alias) is prepared once.
            let earlier = self.handlers[..i].iter();
            if !earlier.into_iter().any(|(_, h)| Arc::ptr_eq(h, handler)) {
                handler.on_connect(&inbound).await?;
            }
        }
        let mut running = FuturesUnordered::new();
        let mut unrouted = 0;
        let mut refused = None;
        let (mut open, mut stopping) = (true, false);
        tokio::pin!(stop);
        loop {
            if running.is_empty() && (!open || stopping) {
                return refused.map_or(Ok(()), Err);
            }
            tokio::select! {
                opened = opens.next(), if open => match opened {
                    Some(channel) => {
                        match self.dispatch(&inbound, &channel) {
                            Some(task) => running.push(task),
                            None => unrouted += 1,
                        }
                        if unrouted > MAX_UNROUTED_CHANNELS {
                            // Closed; the handler tasks that run still finish their own way
                            // (a lobby releases its joiner's slot, a player's leave is
                            // reported), so they are driven to the end, not dropped.
                            inbound.connection.close();
                            open = false;
                            refused = Some(RouteError::Unrouted {
                                count: unrouted,
                                protocol: channel.protocol,
                            });
                        }
                    }
                    None => open = false,
                },
                Some(()) = running.next(), if !running.is_empty() => {}
                () = &mut stop, if !stopping => stopping = true,
            }
        }
    }

    /// The task of the handler that takes `channel`, if one does.
    fn dispatch(&self, inbound: &Inbound, channel: &ChannelKey) -> Option<HandlerTask> {
        let handler = self.handler(&channel.protocol)?;
        let task = handler.accept(inbound, channel);
        if task.is_none() {
            tracing::debug!(
                "{}: a {} channel nobody takes (yet)",
                inbound.label,
                channel.protocol
            );
        }
        task
    }
}

#[cfg(test)]
mod tests;
