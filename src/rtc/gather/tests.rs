//! Unit tests of the gatherer's bookkeeping (no sockets): which host socket allocates,
//! deadlines, and Binding outcomes as events.

use std::time::Duration;

use super::*;

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn allocations_go_from_a_socket_that_fits_the_server() {
    let hosts = [a("127.0.0.1:1000"), a("10.0.0.2:1001"), a("[::1]:1002")];
    assert_eq!(best_host(&hosts, a("127.0.0.1:3478")), Some(hosts[0]));
    assert_eq!(best_host(&hosts, a("198.51.100.1:3478")), Some(hosts[1]));
    assert_eq!(best_host(&hosts, a("[2001:db8::1]:3478")), Some(hosts[2]));
    assert_eq!(
        best_host(&hosts[..1], a("198.51.100.1:3478")),
        Some(hosts[0])
    );
    assert_eq!(best_host(&hosts[..2], a("[2001:db8::1]:3478")), None);
}

#[test]
fn gathering_ends_at_the_deadline_even_unstarted() {
    let now = Instant::now();
    let mut g = Gatherer::new(now, now + Duration::from_secs(1), false);
    assert_eq!(g.poll_timeout(now), Some(now + Duration::from_secs(1)));
    g.handle_timeout(now + Duration::from_secs(1));
    assert_eq!(g.poll_event(), Some(GatherEvent::Done));
    assert!(g.is_done());
}

#[test]
fn a_binding_answer_becomes_a_mapped_event_and_ends_gathering() {
    use turn_client_proto::stun::types::attribute::XorMappedAddress;
    use turn_client_proto::stun::types::message::{
        Message, MessageWrite, MessageWriteExt, MessageWriteVec,
    };
    let now = Instant::now();
    let mut g = Gatherer::new(now, now + Duration::from_secs(10), false);
    let server = ServerTarget {
        addr: a("192.0.2.1:3478"),
        turn: None,
        tcp_local: None,
    };
    g.start(&[server], &[a("10.0.0.2:5000"), a("[::1]:5001")], now);
    let out = g.poll_transmit(now).expect("a Binding request");
    assert_eq!(
        (out.from, out.to, out.tcp),
        (a("10.0.0.2:5000"), a("192.0.2.1:3478"), false)
    );
    assert!(
        g.poll_transmit(now).is_none(),
        "one request per socket of the family"
    );
    // Something from a stranger is not ours.
    assert_eq!(
        g.handle_datagram(a("10.0.0.2:5000"), a("192.0.2.9:1"), &out.data, now),
        Incoming::NotOurs
    );
    let req = Message::from_bytes(&out.data).unwrap();
    let mut resp = Message::builder_success(&req, MessageWriteVec::new());
    resp.add_attribute(&XorMappedAddress::new(
        a("203.0.113.7:6000"),
        req.transaction_id(),
    ))
    .unwrap();
    let resp = resp.finish();
    assert_eq!(
        g.handle_datagram(a("10.0.0.2:5000"), a("192.0.2.1:3478"), &resp, now),
        Incoming::Handled
    );
    assert_eq!(
        g.poll_event(),
        Some(GatherEvent::Mapped {
            mapped: a("203.0.113.7:6000"),
            base: a("10.0.0.2:5000")
        })
    );
    assert_eq!(g.poll_event(), Some(GatherEvent::Done));
}

#[test]
fn relay_only_sends_no_binding_and_str0m_traffic_is_not_wrapped_without_allocation() {
    let now = Instant::now();
    let mut g = Gatherer::new(now, now + Duration::from_secs(10), true);
    let server = ServerTarget {
        addr: a("192.0.2.1:3478"),
        turn: None,
        tcp_local: None,
    };
    g.start(&[server], &[a("10.0.0.2:5000")], now);
    assert!(g.poll_transmit(now).is_none());
    assert_eq!(g.wrap(a("10.0.0.2:5000"), a("10.0.0.3:1"), b"x", now), None);
}
