//! The relay core with custodial clients: pairing, data, end and destroy, the firewall,
//! back-pressure, limits, heartbeat and idle timeout, announce and lookup.

use super::*;

#[test]
fn custodial_handshake_is_consistent() {
    let (a, b) = (
        SigningKey::from_bytes(&[1; 32]),
        SigningKey::from_bytes(&[2; 32]),
    );
    let h1 = custodial_handshake(&a, &b).unwrap();
    let h2 = custodial_handshake(&a, &b).unwrap();
    // Fresh ephemeral keys every run: a new session hash each time.
    assert_ne!(h1, h2);
}

#[test]
fn connect_relays_data_end_and_destroy() {
    let mut w = World::new(Limits::default());
    let (mut s, mut c) = (w.client(1), w.client(2));
    let (c_alias, s_alias) = w.connect(&mut s, 1, &mut c, 2);
    w.relay_data((&mut c, 1), (&mut s, s_alias), vec![b"hi".to_vec()]);
    w.relay_data((&mut s, 200), (&mut c, c_alias), vec![b"yo".to_vec()]);
    w.send(&mut c, &Message::End(AliasRef { alias: 1 }));
    assert_eq!(
        w.recv(&mut s),
        vec![Message::End(AliasRef { alias: s_alias })]
    );
    w.send(
        &mut s,
        &Message::Destroy(Destroy {
            target: DestroyTarget::Paired { alias: 200 },
            error: Some("bye".into()),
        }),
    );
    assert_eq!(
        w.recv(&mut c),
        vec![Message::Destroy(Destroy {
            target: DestroyTarget::Paired { alias: c_alias },
            error: Some("bye".into())
        })]
    );
    // Unknown key: the connect fails with an unpaired destroy, the session goes on.
    let (cpk, csk) = keys(2);
    w.send(
        &mut c,
        &Message::Connect(Connect {
            alias: 5,
            public_key: cpk,
            secret_key: Some(csk),
            remote_public_key: [9; 32],
        }),
    );
    let d = w.recv_destroy(&mut c);
    assert_eq!(d.target, DestroyTarget::Unpaired { remote_alias: 5 });
    assert!(w.relay.close_reason(c.id).is_none());
}

#[test]
fn deny_and_a_vanishing_server_fail_the_connect() {
    let mut w = World::new(Limits::default());
    let (mut s, mut c) = (w.client(1), w.client(2));
    let (spk, ssk) = keys(1);
    let (cpk, csk) = keys(2);
    w.send(
        &mut s,
        &Message::Listen(Listen {
            alias: 100,
            public_key: spk,
            secret_key: Some(ssk),
        }),
    );
    w.recv(&mut s);
    w.send(
        &mut c,
        &Message::Connect(Connect {
            alias: 1,
            public_key: cpk,
            secret_key: Some(csk.clone()),
            remote_public_key: spk,
        }),
    );
    let [Message::Incoming(inc)] = &w.recv(&mut s)[..] else {
        panic!("incoming")
    };
    w.send(&mut s, &Message::Deny(IdRef { id: inc.id }));
    let d = w.recv_destroy(&mut c);
    assert_eq!(d.target, DestroyTarget::Unpaired { remote_alias: 1 });
    w.send(
        &mut c,
        &Message::Connect(Connect {
            alias: 2,
            public_key: cpk,
            secret_key: Some(csk),
            remote_public_key: spk,
        }),
    );
    w.recv(&mut s);
    w.relay.remove_session(s.id);
    let d = w.recv_destroy(&mut c);
    assert_eq!(d.target, DestroyTarget::Unpaired { remote_alias: 2 });
}

#[test]
fn a_full_stream_buffer_stops_reading_the_sender() {
    let (mut w, mut s, c, sent) = World::blocked_sender();
    assert_eq!(sent, 10); // 10 frames of ~1 KiB exceed 10,000 bytes
                          // The server reading its frames unblocks the client.
    let got = w.recv(&mut s).len();
    assert_eq!(got, 10);
    assert!(w.relay.wants_read(c.id));
    let woken: Vec<_> = std::iter::from_fn(|| w.relay.poll_event()).collect();
    assert!(woken.contains(&ServerEvent::Wakeup(c.id)));
}

#[test]
fn limits_and_violations_close_only_the_offender() {
    let limits = Limits {
        max_servers: 1,
        ..Limits::default()
    };
    let mut w = World::new(limits);
    let (mut a, mut b) = (w.client(1), w.client(2));
    let (pk, sk) = keys(1);
    for alias in [1, 2] {
        w.send(
            &mut a,
            &Message::Listen(Listen {
                alias,
                public_key: pk,
                secret_key: Some(sk.clone()),
            }),
        );
    }
    assert!(matches!(
        w.relay.close_reason(a.id),
        Some(CloseReason::Limit(_))
    ));
    assert!(w.relay.close_reason(b.id).is_none());
    // A closing session queues only the protomux close.
    w.recv(&mut a);
    assert!(a.codec.is_closed());
    assert!(w.relay.is_finished(a.id));
    // The listen went away with the session.
    let (bpk, bsk) = keys(2);
    w.send(
        &mut b,
        &Message::Connect(Connect {
            alias: 1,
            public_key: bpk,
            secret_key: Some(bsk),
            remote_public_key: pk,
        }),
    );
    assert!(matches!(w.recv(&mut b)[..], [Message::Destroy(_)]));
    w.relay.handle_frame(b.id, &[1, 3, 0], w.now);
    assert!(matches!(
        w.relay.close_reason(b.id),
        Some(CloseReason::Protocol(_))
    ));
}

#[test]
fn heartbeat_and_idle_timeout() {
    let mut w = World::new(Limits::default());
    let mut c = w.client(1);
    w.recv(&mut c);
    let t = w.relay.poll_timeout(c.id).unwrap();
    assert_eq!(t, w.now + Duration::from_secs(15));
    w.now = t;
    w.relay.handle_timeout(c.id, w.now);
    assert_eq!(w.recv(&mut c), vec![Message::Ping]);
    w.send(&mut c, &Message::Pong);
    w.expect_idle_close(c.id);
}

/// The relay's own pings are writes, not activity: a client that takes them (its kernel does)
/// but never answers is closed at the idle timeout, counted from the last frame it sent.
#[test]
fn two_unanswered_pings_then_the_session_is_closed() {
    let mut w = World::new(Limits::default());
    let start = w.now;
    let mut c = w.client(1);
    w.recv(&mut c);
    for n in 1..=2u32 {
        w.now = w.relay.poll_timeout(c.id).unwrap();
        assert_eq!(w.now, start + Duration::from_secs(15) * n);
        w.relay.handle_timeout(c.id, w.now);
        // The driver writes the ping: the socket took it, the client says nothing.
        assert_eq!(w.recv(&mut c), vec![Message::Ping]);
        assert!(w.relay.close_reason(c.id).is_none());
    }
    w.now = w.relay.poll_timeout(c.id).unwrap();
    assert_eq!(w.now, start + Duration::from_secs(45));
    w.relay.handle_timeout(c.id, w.now);
    assert_eq!(
        w.relay.close_reason(c.id),
        Some(CloseReason::Idle(Duration::from_secs(45)))
    );
}

/// A client the relay stops reading because the receiver of its stream is slow is not idle:
/// its frames wait in the socket. Pings go ahead of queued data.
#[test]
fn back_pressure_stops_the_idle_clock_and_pings_jump_the_queue() {
    let (mut w, mut s, c, _) = World::blocked_sender();
    // 120 s: the receiver answers pings (from its end: it is alive, just slow), the blocked
    // sender cannot be read at all.
    for _ in 0..12 {
        w.now += Duration::from_secs(10);
        for id in [s.id, c.id] {
            w.relay.handle_timeout(id, w.now);
        }
        w.send(&mut s, &Message::Pong);
    }
    assert_eq!(w.relay.close_reason(c.id), None);
    assert_eq!(w.relay.close_reason(s.id), None);
    // The receiver's pings were queued after ~10 KB of data but come out first.
    let first = w.relay.poll_transmit(s.id, w.now).unwrap();
    s.codec.handle_frame(&first).unwrap();
    assert_eq!(
        s.codec.poll_event(),
        Some(RelayEvent::Message(Message::Ping))
    );
    // Draining unblocks the sender, which then has the idle timeout to speak again.
    w.recv(&mut s);
    assert!(w.relay.wants_read(c.id));
    w.expect_idle_close(c.id);
}

/// Library users may pass any `Limits`: huge durations saturate instead of panicking.
#[test]
fn huge_durations_do_not_panic() {
    let limits = Limits {
        idle_timeout: Duration::MAX,
        ping_interval: Duration::from_secs(9223372036854775807),
        max_sessions: usize::MAX,
        ..Limits::default()
    };
    assert!(limits.validate().is_err());
    let mut w = World::new(limits);
    let mut c = w.client(1);
    w.recv(&mut c);
    let t = w.relay.poll_timeout(c.id).unwrap();
    assert!(t > w.now + Duration::from_secs(86_400 * 365));
    w.relay.handle_timeout(c.id, w.now);
    w.now += Duration::from_secs(86_400);
    w.relay.handle_timeout(c.id, w.now);
    assert_eq!(w.relay.close_reason(c.id), None);
}

#[test]
fn announce_and_lookup() {
    let mut w = World::new(Limits::default());
    let (mut a, mut b) = (w.client(1), w.client(2));
    let (pk, sk) = keys(7);
    w.send(
        &mut a,
        &Message::Announce(Announce {
            id: 3,
            topic: [5; 32],
            public_key: pk,
            secret_key: Some(sk),
        }),
    );
    assert_eq!(w.recv(&mut a), vec![Message::Finished(IdRef { id: 3 })]);
    w.send(
        &mut b,
        &Message::Lookup(Lookup {
            id: 4,
            topic: [5; 32],
        }),
    );
    let got = w.recv(&mut b);
    let [Message::Result(r), Message::Finished(IdRef { id: 4 })] = &got[..] else {
        panic!("{got:?}")
    };
    assert_eq!(r.id, 4);
    assert_eq!(r.announcers().unwrap().peers[0].public_key, pk);
    w.relay.remove_session(a.id);
    w.send(
        &mut b,
        &Message::Lookup(Lookup {
            id: 5,
            topic: [5; 32],
        }),
    );
    assert_eq!(w.recv(&mut b), vec![Message::Finished(IdRef { id: 5 })]);
}
