//! The NAT lab checks itself: each router kind behaves as its name says, measured with real
//! STUN against coturn on the public segment (RFC 5780 discovery with `turnutils_natdiscovery`,
//! and Binding requests from test sockets), and UDP hole punching between homes succeeds or
//! fails as NAT.md §3.1's table says. Needs root, iproute2, nftables, conntrack and coturn, as CI
//! has (`.ci/run`); fails under `CI` without them, skips with a note elsewhere.

mod natlab;
mod support;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use natlab::coturn::{self, Coturn};
use natlab::{stun, Home, Lab, NatKind};

/// A lab with one home of `kind` (`hosts` hosts) and coturn on port 3478; `None` when skipped.
fn lab_with(tag: &str, kind: NatKind, hosts: usize) -> Option<(Lab, Home, Coturn)> {
    let mut lab = Lab::new(tag)?;
    let home = lab.add_home(kind, hosts);
    let coturn = Coturn::start(&lab, 3478)?;
    Some((lab, home, coturn))
}

/// `turnutils_natdiscovery -m -f` from the only host of a `kind` home; `None` when skipped.
fn discover(tag: &str, kind: NatKind) -> Option<(Home, coturn::NatReport)> {
    let (lab, home, coturn) = lab_with(tag, kind, 1)?;
    let report = coturn::nat_discovery(&lab, &home.host().netns, &coturn);
    Some((home, report))
}

/// Fails unless coturn concluded `mapping` and `filtering` (RFC 5780 §4.3, §4.4).
fn assert_verdicts(report: &coturn::NatReport, mapping: &str, filtering: Option<&str>) {
    assert_eq!(
        report.mapping.as_deref(),
        Some(mapping),
        "{}",
        report.output
    );
    if let Some(filtering) = filtering {
        assert_eq!(
            report.filtering.as_deref(),
            Some(filtering),
            "{}",
            report.output
        );
    }
}

#[test]
fn a_cone_router_maps_endpoint_independently_and_filters_by_address_and_port() {
    let Some((home, report)) = discover("cone", NatKind::Cone) else {
        return;
    };
    assert_verdicts(
        &report,
        "Endpoint Independent Mapping",
        Some("Address and Port Dependent Filtering"),
    );
    let wan = home.wan.unwrap();
    assert!(
        !report.reflexive.is_empty() && report.reflexive.iter().all(|a| a.ip() == wan),
        "{}",
        report.output
    );
}

#[test]
fn a_symmetric_router_maps_each_destination_to_another_port() {
    let Some((_, report)) = discover("sym", NatKind::Symmetric) else {
        return;
    };
    assert_verdicts(&report, "Address and Port Dependent Mapping", None);
    // The mapping test's first two answers (to two server addresses) came from one socket.
    let ports: Vec<u16> = report.reflexive.iter().take(2).map(|a| a.port()).collect();
    assert!(
        ports.len() == 2 && ports[0] != ports[1],
        "{}",
        report.output
    );
}

#[test]
fn a_full_cone_router_filters_endpoint_independently() {
    let Some((_, report)) = discover("full", NatKind::FullCone) else {
        return;
    };
    assert_verdicts(
        &report,
        "Endpoint Independent Mapping",
        Some("Endpoint Independent Filtering"),
    );
}

#[test]
fn a_udp_blocked_network_gets_no_stun_answer_over_udp_but_reaches_out_over_tcp() {
    let Some((lab, home, coturn)) = lab_with("udpb", NatKind::UdpBlocked, 1) else {
        return;
    };
    let netns = &home.host().netns;
    let report = coturn::nat_discovery(&lab, netns, &coturn);
    assert!(
        report.mapping.is_none() && report.reflexive.is_empty(),
        "{}",
        report.output
    );
    assert_eq!(coturn::mapped_from(&lab, netns, 0, &coturn), None);

    let mut stream = lab
        .tcp_connect(netns, coturn.addr(), Duration::from_secs(5))
        .expect("TCP to coturn passes a UDP-blocking network");
    let mapped = stun::mapped_tcp(&mut stream, Duration::from_secs(5)).expect("STUN over TCP");
    assert_eq!(mapped.ip(), home.wan.unwrap());
}

#[test]
fn an_open_home_is_seen_at_its_own_address() {
    let Some((lab, home, coturn)) = lab_with("open", NatKind::Open, 1) else {
        return;
    };
    let host = home.host();
    let mapped = coturn::mapped_from(&lab, &host.netns, 40000, &coturn);
    assert_eq!(mapped, Some(SocketAddr::from((host.ip, 40000))));
}

#[test]
fn two_hosts_behind_one_router_share_its_public_address() {
    let Some((lab, home, coturn)) = lab_with("two", NatKind::Cone, 2) else {
        return;
    };
    // Both bind the same local port: the router keeps it for one and picks another for the
    // other, on the same public address.
    let a = lab.udp_socket(&home.hosts[0].netns, 40000);
    let b = lab.udp_socket(&home.hosts[1].netns, 40000);
    let a = stun::mapped_udp(&a, coturn.addr(), 5).expect("host 0 mapped");
    let b = stun::mapped_udp(&b, coturn.addr(), 5).expect("host 1 mapped");
    let wan = home.wan.unwrap();
    assert_eq!((a.ip(), b.ip()), (wan.into(), wan.into()));
    assert_ne!(a.port(), b.port());
}

/// Whether two sockets, each told the other's STUN-mapped address, hear each other: both send
/// every 100 ms for at most 3 s, and answer whatever source they hear from (peer-reflexive
/// learning, as ICE does). True once each has heard the other.
fn hole_punch(a: &UdpSocket, a_to: SocketAddr, b: &UdpSocket, b_to: SocketAddr) -> bool {
    let mut targets = [a_to, b_to];
    let mut heard = [false, false];
    let deadline = Instant::now() + Duration::from_secs(3);
    let sockets = [a, b];
    for s in sockets {
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    }
    while Instant::now() < deadline && !(heard[0] && heard[1]) {
        for (i, s) in sockets.iter().enumerate() {
            let _ = s.send_to(b"punch", targets[i]);
        }
        for (i, s) in sockets.iter().enumerate() {
            let mut buf = [0u8; 64];
            // At most a few datagrams per round; the read timeout bounds each wait.
            for _ in 0..4 {
                match s.recv_from(&mut buf) {
                    Ok((n, from)) if &buf[..n] == b"punch" => {
                        heard[i] = true;
                        targets[i] = from;
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    heard[0] && heard[1]
}

/// Two homes of these kinds, one socket on port 40000 in each, their STUN-mapped addresses, and
/// whether a hole punch between them works. `None` when skipped.
fn punch_between(tag: &str, a: NatKind, b: NatKind) -> Option<bool> {
    let mut lab = Lab::new(tag)?;
    let home_a = lab.add_home(a, 1);
    let home_b = lab.add_home(b, 1);
    let coturn = Coturn::start(&lab, 3478)?;
    let sa = lab.udp_socket(&home_a.host().netns, 40000);
    let sb = lab.udp_socket(&home_b.host().netns, 40000);
    let ma = stun::mapped_udp(&sa, coturn.addr(), 5).expect("home A mapped");
    let mb = stun::mapped_udp(&sb, coturn.addr(), 5).expect("home B mapped");
    assert_eq!(ma.ip(), home_a.public_ip());
    assert_eq!(mb.ip(), home_b.public_ip());
    Some(hole_punch(&sa, mb, &sb, ma))
}

#[test]
fn udp_hole_punching_between_two_cone_homes_succeeds() {
    let Some(punched) = punch_between("p-cc", NatKind::Cone, NatKind::Cone) else {
        return;
    };
    assert!(punched, "cone <-> cone must punch (NAT.md §3.1)");
}

#[test]
fn udp_hole_punching_between_cone_and_symmetric_homes_fails() {
    let Some(punched) = punch_between("p-cs", NatKind::Cone, NatKind::Symmetric) else {
        return;
    };
    assert!(!punched, "cone <-> symmetric needs TURN (NAT.md §3.1)");
}

#[test]
fn the_lab_removes_its_namespaces_when_dropped_even_on_panic() {
    let Some(mut lab) = Lab::new("drop") else {
        return;
    };
    let home = lab.add_home(NatKind::Cone, 1);
    let names = [
        lab.public().to_string(),
        home.router,
        home.hosts[0].netns.clone(),
    ];
    let listed = || {
        String::from_utf8_lossy(
            &std::process::Command::new("ip")
                .args(["netns", "list"])
                .output()
                .unwrap()
                .stdout,
        )
        .into_owned()
    };
    assert!(names.iter().all(|n| listed().contains(n.as_str())));
    let panicked = std::thread::spawn(move || {
        let _lab = lab;
        panic!("a test failing inside the lab");
    })
    .join();
    assert!(panicked.is_err());
    let after = listed();
    for name in &names {
        assert!(
            !after.contains(name.as_str()),
            "{name} left behind: {after}"
        );
    }
}

#[test]
fn a_delayed_home_adds_its_delay_each_way() {
    let Some(mut lab) = Lab::new("delay") else {
        return;
    };
    let delay = Duration::from_millis(20);
    let home = lab.add_home_with(
        NatKind::Cone,
        natlab::HomeOptions {
            hosts: 1,
            delay: Some(delay),
        },
    );
    // An echo on the public segment; the home's host measures round trips through its router.
    let echo = lab.udp_socket(lab.public(), 7000);
    echo.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let echo_thread = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        for _ in 0..5 {
            let Ok((n, from)) = echo.recv_from(&mut buf) else {
                return;
            };
            let _ = echo.send_to(&buf[..n], from);
        }
    });
    let socket = lab.udp_socket(&home.host().netns, 0);
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let to = SocketAddr::from((natlab::SERVER_IP, 7000));
    let mut rtts = Vec::new();
    for i in 0..5u8 {
        let sent = Instant::now();
        socket.send_to(&[i], to).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = socket
            .recv_from(&mut buf)
            .expect("echo through the delayed router");
        assert_eq!((n, buf[0], from), (1, i, to));
        rtts.push(sent.elapsed());
    }
    echo_thread.join().unwrap();
    assert!(rtts.iter().all(|&rtt| rtt >= 2 * delay), "{rtts:?}");
}
