//! What the host adds to its endpoint's connections ([`crate::endpoint`]): the limits every
//! joiner's connection runs with ([`peer_config`]) and the address put in invites.

use std::net::SocketAddr;

use super::{HANDSHAKE_TIMEOUT, MAX_FRAME_BYTES, MAX_UNACCEPTED_BYTES};
use crate::net::ConnectionConfig;

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
