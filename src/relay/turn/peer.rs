//! Which peer addresses an allocation may relay to (not an open proxy): the relay machine's
//! loopback and the private, link-local, shared (CGNAT), unspecified, multicast and broadcast
//! ranges are refused unless allowed, as coturn's `--allow-loopback-peers` and its default
//! `--denied-peer-ip` advice. TEST-NET and other public ranges are allowed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether a TURN allocation may relay to `ip`. Unspecified, multicast and broadcast
/// addresses are always refused; loopback (127.0.0.0/8, ::1) only with `allow_loopback`;
/// private and local ranges (RFC 1918 10/8, 172.16/12, 192.168/16; 169.254/16 link-local;
/// 100.64/10 shared; 0/8 "this network"; fc00::/7 ULA; fe80::/10 link-local) only with
/// `allow_private`. IPv4-mapped IPv6 addresses are judged as their IPv4 address.
pub fn peer_allowed(ip: IpAddr, allow_loopback: bool, allow_private: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_allowed(v4, allow_loopback, allow_private),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4_allowed(v4, allow_loopback, allow_private),
            None => v6_allowed(v6, allow_loopback, allow_private),
        },
    }
}

fn v4_allowed(ip: Ipv4Addr, allow_loopback: bool, allow_private: bool) -> bool {
    let [a, b, ..] = ip.octets();
    if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        return false;
    }
    if ip.is_loopback() {
        return allow_loopback;
    }
    let shared = a == 100 && (64..128).contains(&b);
    if ip.is_private() || ip.is_link_local() || shared || a == 0 {
        return allow_private;
    }
    true
}

fn v6_allowed(ip: Ipv6Addr, allow_loopback: bool, allow_private: bool) -> bool {
    let first = ip.segments()[0];
    if ip.is_unspecified() || ip.is_multicast() {
        return false;
    }
    if ip.is_loopback() {
        return allow_loopback;
    }
    let ula = first & 0xfe00 == 0xfc00;
    let link_local = first & 0xffc0 == 0xfe80;
    if ula || link_local {
        return allow_private;
    }
    true
}
