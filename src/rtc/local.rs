//! Local UDP sockets and the host candidates they become.
//!
//! str0m has no address discovery: the application binds sockets and tells it their addresses
//! (str0m 0.25 `Rtc::add_local_candidate`). Each datagram handed to str0m must name the local
//! address it arrived on, which a socket bound to `0.0.0.0` cannot tell without `IP_PKTINFO`, so
//! "all interfaces" is one socket per interface address (as libwebrtc does), each an ICE host
//! candidate. Loopback is left out when the machine has another address: ICE pairs every local
//! candidate with every remote one, a loopback socket can reach no remote address but loopback,
//! and each useless pair costs a check slot (one per 50 ms, str0m's Ta) while the useful pairs
//! wait; two peers on one machine still meet on its other addresses. With no other address,
//! loopback is the one candidate.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::UdpSocket;

use super::RtcError;

/// The addresses to bind for `bind_ip`: itself when it is a specific address; for the
/// unspecified address of a family, every usable non-loopback address of that family in
/// `interfaces`, or loopback alone when there is none.
///
/// Left out: link-local addresses (IPv4 169.254/16 is refused by str0m; IPv6 fe80::/10 needs a
/// scope id the SDP cannot carry), multicast, unspecified, and IPv4-mapped IPv6.
pub(crate) fn candidate_ips(bind_ip: IpAddr, interfaces: &[IpAddr]) -> Vec<IpAddr> {
    if !bind_ip.is_unspecified() {
        return vec![bind_ip];
    }
    let loopback = match bind_ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    };
    let mut ips = Vec::new();
    for &ip in interfaces {
        let fits = ip.is_ipv4() == bind_ip.is_ipv4() && !ip.is_loopback() && usable(ip);
        if fits && !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    if ips.is_empty() {
        ips.push(loopback);
    }
    ips
}

fn usable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => {
            !v.is_unspecified() && !v.is_link_local() && !v.is_multicast() && !v.is_broadcast()
        }
        IpAddr::V6(v) => {
            let link_local = (v.segments()[0] & 0xffc0) == 0xfe80;
            !v.is_unspecified() && !v.is_multicast() && !link_local && v.to_ipv4_mapped().is_none()
        }
    }
}

/// The machine's interface addresses; empty (with a warning) if they cannot be listed, in which
/// case only loopback is used.
fn interface_ips() -> Vec<IpAddr> {
    match if_addrs::get_if_addrs() {
        Ok(list) => list.iter().map(|i| i.ip()).collect(),
        Err(e) => {
            tracing::warn!("cannot list network interfaces ({e}); using loopback only");
            Vec::new()
        }
    }
}

/// Binds one UDP socket on an ephemeral port per candidate address of `bind_ip`.
///
/// Returns the sockets with their bound addresses (the host candidates). An address that cannot
/// be bound is skipped with a warning. Errors: [`RtcError::Bind`] when no socket could be bound.
pub(crate) async fn bind(bind_ip: IpAddr) -> Result<Vec<(UdpSocket, SocketAddr)>, RtcError> {
    let ips = if bind_ip.is_unspecified() {
        candidate_ips(bind_ip, &interface_ips())
    } else {
        vec![bind_ip]
    };
    let mut out = Vec::with_capacity(ips.len());
    let mut last_err = None;
    for ip in ips {
        match UdpSocket::bind(SocketAddr::new(ip, 0)).await {
            Ok(s) => match s.local_addr() {
                Ok(addr) => out.push((s, addr)),
                Err(e) => last_err = Some(e),
            },
            Err(e) => {
                tracing::warn!("cannot bind UDP on {ip}: {e}");
                last_err = Some(e);
            }
        }
    }
    if out.is_empty() {
        return Err(RtcError::Bind {
            ip: bind_ip,
            source: last_err.unwrap_or_else(|| std::io::Error::other("no address to bind")),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn specific_ip_is_used_alone() {
        assert_eq!(
            candidate_ips(ip("127.0.0.1"), &[ip("10.0.0.2")]),
            vec![ip("127.0.0.1")]
        );
    }

    #[test]
    fn unspecified_v4_takes_every_usable_v4_and_loopback_only_alone() {
        let ifs = [
            ip("127.0.0.1"),
            ip("10.0.0.2"),
            ip("169.254.1.1"),
            ip("fd00::1"),
            ip("192.168.1.5"),
            ip("10.0.0.2"),
        ];
        assert_eq!(
            candidate_ips(ip("0.0.0.0"), &ifs),
            vec![ip("10.0.0.2"), ip("192.168.1.5")]
        );
        // A machine with only loopback, or nothing listed, gets loopback.
        let lo = vec![ip("127.0.0.1")];
        assert_eq!(candidate_ips(ip("0.0.0.0"), &lo), lo);
        assert_eq!(candidate_ips(ip("0.0.0.0"), &[]), lo);
    }

    #[test]
    fn unspecified_v6_skips_link_local_and_mapped() {
        let ifs = [
            ip("::1"),
            ip("fe80::1"),
            ip("2001:db8::5"),
            ip("::ffff:10.0.0.1"),
            ip("10.0.0.2"),
        ];
        assert_eq!(candidate_ips(ip("::"), &ifs), vec![ip("2001:db8::5")]);
    }

    #[tokio::test]
    async fn binds_loopback() {
        let socks = bind(ip("127.0.0.1")).await.unwrap();
        assert_eq!(socks.len(), 1);
        assert_eq!(socks[0].1.ip(), ip("127.0.0.1"));
        assert_ne!(socks[0].1.port(), 0);
    }

    #[tokio::test]
    async fn all_interfaces_binds_each_address_of_the_machine() {
        let socks = bind(ip("0.0.0.0")).await.unwrap();
        let want = candidate_ips(ip("0.0.0.0"), &interface_ips());
        let got: Vec<IpAddr> = socks.iter().map(|(_, a)| a.ip()).collect();
        assert_eq!(got, want);
        assert!(socks.iter().all(|(_, a)| !a.ip().is_unspecified()));
    }

    #[tokio::test]
    async fn unbindable_address_is_an_error() {
        // TEST-NET-1 is never assigned to a local interface.
        let e = bind(ip("192.0.2.1")).await.unwrap_err();
        assert!(matches!(e, RtcError::Bind { .. }), "{e}");
    }
}
