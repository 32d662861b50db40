//! The relay core with non-custodial clients: the relay carries their Noise messages
//! without reading them, so opaque bytes stand in for them here; the real Noise IK and
//! secret-stream run in tests/relay_interop.rs (npm client, `custodial: false`).

use super::*;

#[test]
fn noncustodial_connect_relays_the_noise_handshake_and_ciphertext() {
    let mut w = World::new(Limits::default());
    let (mut s, mut c) = (w.client_nc(1), w.client_nc(2));
    let (chs, shs) = w.noise_to_firewall(&mut s, 1, &mut c, 2);
    let cpk = keys(2).0;
    // The server's firewall lets it in: its answer is the initiator's decrypted payload.
    w.send(
        &mut s,
        &Message::NoiseReply(NoiseReply {
            id: shs,
            payload: vec![1, 0, 0, 0],
            step: NoiseReplyStep::Responder {
                remote_public_key: cpk,
            },
        }),
    );
    let [Message::NoiseSend(ns)] = &w.recv(&mut s)[..] else {
        panic!("noiseSend to the responder")
    };
    assert_eq!((ns.id, ns.remote_stream_alias), (shs, None));
    w.send(
        &mut s,
        &Message::NoiseReply(NoiseReply {
            id: shs,
            payload: b"msg2".to_vec(),
            step: NoiseReplyStep::Complete {
                is_initiator: false,
                remote_id: [3; 32],
                holepunch_secret: [4; 32],
            },
        }),
    );
    assert!(w.recv(&mut s).is_empty(), "the server waits for the client");
    let [Message::NoiseReceive(nr)] = &w.recv(&mut c)[..] else {
        panic!("noiseReceive to the initiator")
    };
    assert_eq!((nr.id, nr.server_alias), (chs, None));
    assert_eq!(nr.payload, b"msg2");
    w.send(
        &mut c,
        &Message::NoiseReply(NoiseReply {
            id: chs,
            payload: vec![1, 0, 0, 0],
            step: NoiseReplyStep::Complete {
                is_initiator: true,
                remote_id: [5; 32],
                holepunch_secret: [4; 32],
            },
        }),
    );
    // Both get their own handshake id, not a hash: they build their secret-streams from it.
    let [Message::Open(open)] = &w.recv(&mut c)[..] else {
        panic!("open")
    };
    assert_eq!(open.remote_alias, 1);
    assert_eq!(open.handshake, StreamHandshake::Id(chs));
    let [Message::Connection(conn)] = &w.recv(&mut s)[..] else {
        panic!("connection")
    };
    assert_eq!(conn.handshake, StreamHandshake::Id(shs));
    assert_eq!(conn.remote_public_key, cpk);
    w.send(
        &mut s,
        &Message::Connected(Connected {
            alias: 200,
            remote_alias: conn.alias,
        }),
    );
    // Ciphertext both ways, byte for byte.
    let bytes = vec![0x38, 0, 0, 0xde, 0xad];
    w.send(
        &mut c,
        &Message::Data(Data {
            alias: 1,
            chunks: vec![bytes.clone()],
        }),
    );
    assert_eq!(
        w.recv(&mut s),
        vec![Message::Data(Data {
            alias: conn.alias,
            chunks: vec![bytes.clone()]
        })]
    );
    w.send(
        &mut s,
        &Message::Data(Data {
            alias: 200,
            chunks: vec![bytes.clone()],
        }),
    );
    assert_eq!(
        w.recv(&mut c),
        vec![Message::Data(Data {
            alias: open.alias,
            chunks: vec![bytes]
        })]
    );
    // The handshake ids are spent: a late reply is ignored, the sessions go on.
    w.reply_initiator(&mut c, chs, vec![]);
    assert!(w.recv(&mut c).is_empty());
    assert!(w.relay.close_reason(c.id).is_none());
    assert!(w.relay.close_reason(s.id).is_none());
}

#[test]
fn noncustodial_firewall_denial_and_vanishing_server_fail_the_connect() {
    let mut w = World::new(Limits::default());
    let (mut s, mut c) = (w.client_nc(1), w.client_nc(2));
    let (_, shs) = w.noise_to_firewall(&mut s, 1, &mut c, 2);
    // Empty payload = the server's firewall said no (JS `noiseReply{payload: null}`).
    w.send(
        &mut s,
        &Message::NoiseReply(NoiseReply {
            id: shs,
            payload: vec![],
            step: NoiseReplyStep::Responder {
                remote_public_key: keys(2).0,
            },
        }),
    );
    let d = w.recv_destroy(&mut c);
    assert_eq!(d.target, DestroyTarget::Unpaired { remote_alias: 1 });
    assert!(w.recv(&mut s).is_empty());
    // Another connect, then the server's session goes away mid-handshake.
    let ns = w.connect_nc(&mut c, 2, keys(2).0, keys(1).0);
    w.reply_initiator(&mut c, ns.id, b"msg1".to_vec());
    w.relay.remove_session(s.id);
    let d = w.recv_destroy(&mut c);
    assert_eq!(d.target, DestroyTarget::Unpaired { remote_alias: 2 });
    // A server that goes away before the connecting client's first Noise message: the connect
    // fails at once, and the late message is ignored.
    let mut s2 = w.client_nc(1);
    w.listen_nc(&mut s2, 1);
    let ns = w.connect_nc(&mut c, 3, keys(2).0, keys(1).0);
    w.relay.remove_session(s2.id);
    let d = w.recv_destroy(&mut c);
    assert_eq!(d.target, DestroyTarget::Unpaired { remote_alias: 3 });
    w.reply_initiator(&mut c, ns.id, b"msg1".to_vec());
    assert!(w.recv(&mut c).is_empty());
    assert!(w.relay.close_reason(c.id).is_none());
}

#[test]
fn mixed_modes_fail_the_connect_and_out_of_order_replies_close_the_session() {
    let mut w = World::new(Limits::default());
    let (mut s, mut c) = (w.client(1), w.client_nc(2));
    let (spk, ssk) = keys(1);
    w.listen(&mut s, 100, (spk, ssk));
    // A non-custodial connect to a custodial server (bridged: the relay answers as the
    // server) whose message 1 is garbage: the connect fails, the sessions go on.
    let ns = w.connect_nc(&mut c, 1, keys(2).0, spk);
    w.reply_initiator(&mut c, ns.id, vec![7; 120]);
    let d = w.recv_destroy(&mut c);
    assert!(d.error.as_deref().unwrap().contains("handshake"), "{d:?}");
    assert!(w.relay.close_reason(c.id).is_none());
    assert!(w.recv(&mut s).iter().all(|m| matches!(m, Message::Ping)));
    let mut s = w.client_nc(11);
    w.listen_nc(&mut s, 11);
    // A non-custodial client that answers `noiseSend` with a "complete" reply breaks the
    // protocol: its session is closed, the server's goes on.
    let mut n = w.client_nc(3);
    let ns = w.connect_nc(&mut n, 1, keys(3).0, keys(11).0);
    w.send(
        &mut n,
        &Message::NoiseReply(NoiseReply {
            id: ns.id,
            payload: vec![],
            step: NoiseReplyStep::Complete {
                is_initiator: true,
                remote_id: [0; 32],
                holepunch_secret: [0; 32],
            },
        }),
    );
    assert!(matches!(
        w.relay.close_reason(n.id),
        Some(CloseReason::Protocol(_))
    ));
    assert!(w.relay.close_reason(s.id).is_none());
}

#[test]
fn noncustodial_listen_and_announce_need_a_valid_signature() {
    let mut w = World::new(Limits::default());
    let mut a = w.client_nc(1);
    // Announce: recorded (and `finished`) only after the signature over the topic.
    let pk = keys(1).0;
    w.send(
        &mut a,
        &Message::Announce(Announce {
            id: 3,
            topic: [5; 32],
            public_key: pk,
            secret_key: None,
        }),
    );
    let [Message::SignAnnounce(req)] = &w.recv(&mut a)[..] else {
        panic!("signAnnounce")
    };
    assert_eq!(req.signee, 3);
    w.sign(&mut a, 1, &req.clone(), &[5; 32]);
    assert_eq!(w.recv(&mut a), vec![Message::Finished(IdRef { id: 3 })]);
    let mut b = w.client_nc(2);
    w.send(
        &mut b,
        &Message::Lookup(Lookup {
            id: 4,
            topic: [5; 32],
        }),
    );
    let got = w.recv(&mut b);
    let [Message::Result(r), Message::Finished(_)] = &got[..] else {
        panic!("{got:?}")
    };
    assert_eq!(r.announcers().unwrap().peers[0].public_key, pk);
    // Unannounce needs no signature (a session only removes its own records).
    w.send(
        &mut a,
        &Message::Unannounce(Announce {
            id: 6,
            topic: [5; 32],
            public_key: pk,
            secret_key: None,
        }),
    );
    assert_eq!(w.recv(&mut a), vec![Message::Finished(IdRef { id: 6 })]);
    // A listen on someone else's key: the signature doesn't match, the session is closed and
    // nothing listens there.
    let victim = keys(9).0;
    w.send(
        &mut b,
        &Message::Listen(Listen {
            alias: 7,
            public_key: victim,
            secret_key: None,
        }),
    );
    let [Message::SignAnnounce(req)] = &w.recv(&mut b)[..] else {
        panic!("signAnnounce")
    };
    let target = crate::relay::server::noncustodial::server_target(&victim);
    w.sign(&mut b, 2, &req.clone(), &target);
    assert!(matches!(
        w.relay.close_reason(b.id),
        Some(CloseReason::Protocol(_))
    ));
    let mut c = w.client_nc(4);
    w.send(
        &mut c,
        &Message::Connect(Connect {
            alias: 1,
            public_key: keys(4).0,
            secret_key: None,
            remote_public_key: victim,
        }),
    );
    let d = w.recv_destroy(&mut c);
    assert!(d.error.as_deref().unwrap().starts_with("PEER_NOT_FOUND"));
}
