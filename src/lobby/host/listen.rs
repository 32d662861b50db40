//! What the host adds to its endpoint's connections ([`crate::endpoint`]): the limits every
//! joiner's connection runs with ([`peer_config`]), the address put in invites, and the
//! [`Router`] its connections are served by: the archive and the lobby log to everyone
//! ([`ArchiveServer`]), the lobby ([`LobbyHandler`]) to those who open it.

use std::net::SocketAddr;
use std::sync::Arc;

use super::serve::serve_lobby;
use super::{Context, HANDSHAKE_TIMEOUT, MAX_FRAME_BYTES, MAX_UNACCEPTED_BYTES};
use crate::endpoint::{ArchiveServer, HandlerTask, Inbound, ProtocolHandler, Router};
use crate::lobby::LOBBY_PROTOCOL;
use crate::net::{replication, ChannelKey, ConnectionConfig};

/// The address to put in invites: the bound one, or for `0.0.0.0` a local interface address
/// (the first non-loopback IPv4 one, else loopback).
pub(super) fn advertised(listen: SocketAddr) -> SocketAddr {
    if !listen.ip().is_unspecified() {
        return listen;
    }
    let ip = if_addrs::get_if_addrs()
        .ok()
        .and_then(|ifs| {
            ifs.into_iter()
                .map(|i| i.ip())
                .find(|ip| ip.is_ipv4() && !ip.is_loopback())
        })
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    SocketAddr::new(ip, listen.port())
}

/// The settings of every connection the host serves: a short handshake and small buffers
/// ([`HANDSHAKE_TIMEOUT`], [`MAX_FRAME_BYTES`], [`MAX_UNACCEPTED_BYTES`]).
pub(super) fn peer_config() -> ConnectionConfig {
    ConnectionConfig {
        handshake_timeout: HANDSHAKE_TIMEOUT,
        max_frame_bytes: MAX_FRAME_BYTES,
        max_unaccepted_bytes: MAX_UNACCEPTED_BYTES,
        ..ConnectionConfig::default()
    }
}

/// The host's handlers: its archive and lobby log replicate to every connection (a reader, a
/// friend following the archive or a JS hypercore, needs nothing else and never sees the lobby
/// protocol), and a connection that opens the lobby channel is a joiner.
pub(super) fn router(ctx: &Arc<Context>) -> Router {
    let archive = ArchiveServer::new([ctx.archive.clone(), ctx.lobby.clone()]);
    Router::new()
        .accept(replication::PROTOCOL, archive)
        .alias(replication::PROTOCOL_ALIAS, replication::PROTOCOL)
        .accept(
            LOBBY_PROTOCOL,
            LobbyHandler {
                ctx: Arc::clone(ctx),
            },
        )
}

/// The lobby as a [`ProtocolHandler`] for `dat-social/lobby`: takes the channel whose id is
/// this lobby's log key and runs the joiner's signalling and play on it
/// ([`super::serve::serve_lobby`]); other ids are declined.
pub(super) struct LobbyHandler {
    ctx: Arc<Context>,
}

impl ProtocolHandler for LobbyHandler {
    fn accept(&self, inbound: &Inbound, channel: &ChannelKey) -> Option<HandlerTask> {
        let ours = channel.id.as_deref() == Some(&self.ctx.lobby.key().as_bytes()[..]);
        ours.then(|| -> HandlerTask { Box::pin(serve_lobby(self.ctx.clone(), inbound.clone())) })
    }
}
