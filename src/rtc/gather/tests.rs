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

/// A gatherer started on one STUN server (in a batch that is the last one or not), whose
/// Binding has been answered with 203.0.113.7:6000; the `Mapped` event is taken.
fn answered_binding(last: bool) -> (Gatherer, Instant) {
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
    g.start(&[server], &[a("10.0.0.2:5000"), a("[::1]:5001")], last, now);
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
    (g, now)
}

#[test]
fn a_binding_answer_becomes_a_mapped_event_and_ends_gathering() {
    let (mut g, _) = answered_binding(true);
    assert_eq!(g.poll_event(), Some(GatherEvent::Done));
}

#[test]
fn gathering_is_not_over_while_servers_are_still_being_dialed() {
    // The UDP servers come first; TCP TURN servers follow once connected.
    let (mut g, now) = answered_binding(false);
    assert_eq!(g.poll_event(), None);
    g.handle_timeout(now + Duration::from_secs(1));
    assert_eq!(g.poll_event(), None, "not done before the last batch");
    g.start(
        &[],
        &[a("10.0.0.2:5000")],
        true,
        now + Duration::from_secs(1),
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
    g.start(&[server], &[a("10.0.0.2:5000")], true, now);
    assert!(g.poll_transmit(now).is_none());
    assert_eq!(g.wrap(a("10.0.0.2:5000"), a("10.0.0.3:1"), b"x", now), None);
}

/// A gatherer given a TURN server over UDP, then the same server over TCP (the dialer's two
/// batches); the UDP transmissions (a Binding, an Allocate) are taken.
fn turn_over_udp_and_tcp() -> (Gatherer, Instant, Vec<Out>) {
    let now = Instant::now();
    let mut g = Gatherer::new(now, now + Duration::from_secs(10), false);
    let turn = Some(("user".to_string(), "pass".to_string()));
    let udp = ServerTarget {
        addr: a("192.0.2.1:3478"),
        turn: turn.clone(),
        tcp_local: None,
    };
    let tcp = ServerTarget {
        addr: a("192.0.2.1:3478"),
        turn,
        tcp_local: Some(a("10.0.0.2:40000")),
    };
    g.start(&[udp], &[a("10.0.0.2:5000")], false, now);
    g.start(&[tcp], &[a("10.0.0.2:5000")], true, now);
    let sent: Vec<Out> = std::iter::from_fn(|| g.poll_transmit(now)).collect();
    assert!(sent.len() >= 2 && sent.iter().all(|o| !o.tcp), "{sent:?}");
    (g, now, sent)
}

#[test]
fn turn_over_tcp_is_dropped_when_the_server_answers_over_udp() {
    use turn_client_proto::stun::types::attribute::XorMappedAddress;
    use turn_client_proto::stun::types::message::{
        Message, MessageWrite, MessageWriteExt, MessageWriteVec,
    };
    let (mut g, now, sent) = turn_over_udp_and_tcp();
    let binding = sent
        .iter()
        .map(|o| Message::from_bytes(&o.data).unwrap())
        .find(|m| m.method() == turn_client_proto::stun::types::message::BINDING)
        .expect("a Binding to the TURN server");
    let mut resp = Message::builder_success(&binding, MessageWriteVec::new());
    resp.add_attribute(&XorMappedAddress::new(
        a("203.0.113.7:6000"),
        binding.transaction_id(),
    ))
    .unwrap();
    let resp = resp.finish();
    g.handle_datagram(a("10.0.0.2:5000"), a("192.0.2.1:3478"), &resp, now);
    let events: Vec<_> = std::iter::from_fn(|| g.poll_event()).collect();
    assert!(
        events.contains(&GatherEvent::StreamUnused(a("10.0.0.2:40000"))),
        "{events:?}"
    );
    g.handle_timeout(now + TCP_HOLD);
    assert!(
        std::iter::from_fn(|| g.poll_transmit(now + TCP_HOLD)).all(|o| !o.tcp),
        "no allocation over TCP"
    );
}

#[test]
fn turn_over_tcp_starts_when_udp_stays_silent_for_the_hold() {
    let (mut g, now, _) = turn_over_udp_and_tcp();
    g.handle_timeout(now + TCP_HOLD / 2);
    assert!(std::iter::from_fn(|| g.poll_transmit(now + TCP_HOLD / 2)).all(|o| !o.tcp));
    assert!(g.poll_timeout(now).is_some_and(|t| t <= now + TCP_HOLD));
    g.handle_timeout(now + TCP_HOLD);
    let sent: Vec<Out> = std::iter::from_fn(|| g.poll_transmit(now + TCP_HOLD)).collect();
    assert!(
        sent.iter()
            .any(|o| o.tcp && o.from == a("10.0.0.2:40000") && o.to == a("192.0.2.1:3478")),
        "an Allocate on the TCP stream: {sent:?}"
    );
}
