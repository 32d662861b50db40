//! Unit tests of [`ClientCore`]: a relay-side [`RelayCodec`] driven by hand talks to the core in
//! memory, with an explicit clock; no sockets, no tasks.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signature, SigningKey, Verifier};

use super::{ClientCore, ClientEvent, SessionError};
use crate::hypercore::encoding::CompactEncoding;
use crate::net::hyperdht::{self, NoisePayload};
use crate::net::noise::NoiseIk;
use crate::relay::messages::{
    AliasRef, Announcers, Connection, Data, Destroy, DestroyTarget, IdRef, Incoming, Listening,
    Node, NoiseReceive, NoiseReplyStep, NoiseSend, Open, Peer, QueryResult, SignRequest,
    StreamHandshake,
};
use crate::relay::{Message, RelayCodec, RelayEvent};

const IDLE: Duration = Duration::from_secs(45);

/// A client core with a session up, and the relay's end of the channel.
struct Harness {
    core: ClientCore,
    relay: RelayCodec,
    key: SigningKey,
    now: Instant,
}

fn harness(custodial: bool) -> Harness {
    let key = SigningKey::from_bytes(&[0x21; 32]);
    let mut core = ClientCore::new(key.clone(), custodial, IDLE);
    let now = Instant::now();
    core.start_session(now);
    let mut h = Harness {
        core,
        relay: RelayCodec::new(),
        key,
        now,
    };
    let sent = h.sent();
    let [Message::Handshake(hs)] = sent.as_slice() else {
        panic!("expected the handshake, got {sent:?}")
    };
    assert_eq!(hs.public_key, h.key.verifying_key().to_bytes());
    assert_eq!(hs.secret_key.is_some(), custodial);
    // No listens to confirm: the open channel is enough.
    assert!(matches!(h.events().as_slice(), [ClientEvent::Connected]));
    h
}

impl Harness {
    /// Pumps frames both ways; returns every message the client sent since the last call.
    fn sent(&mut self) -> Vec<Message> {
        while let Some(f) = self.relay.poll_transmit() {
            self.core.handle_frame(&f, self.now).unwrap();
        }
        while let Some(f) = self.core.poll_transmit() {
            self.relay.handle_frame(&f).unwrap();
        }
        std::iter::from_fn(|| self.relay.poll_event())
            .filter_map(|e| match e {
                RelayEvent::Message(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    /// The relay sends `m`; returns what the client sent in answer.
    fn deliver(&mut self, m: Message) -> Vec<Message> {
        self.relay.send(&m).unwrap();
        self.sent()
    }

    fn events(&mut self) -> Vec<ClientEvent> {
        std::iter::from_fn(|| self.core.poll_event()).collect()
    }

    /// Starts a connect to `remote`; returns our alias.
    fn connect(&mut self, remote: [u8; 32]) -> u32 {
        let alias = self.core.connect(remote).expect("a session is up");
        let sent = self.sent();
        let [Message::Connect(c)] = sent.as_slice() else {
            panic!("expected connect, got {sent:?}")
        };
        assert_eq!(c.alias, alias);
        assert_eq!(c.remote_public_key, remote);
        alias
    }

    /// The reason of the one `ConnectFailed` event of connect `alias`.
    fn failed(&mut self, alias: u32) -> String {
        match self.events().as_slice() {
            [ClientEvent::ConnectFailed {
                alias: a, reason, ..
            }] if *a == alias => reason.clone(),
            other => panic!("expected connect {alias} to fail, got {other:?}"),
        }
    }

    fn handshakes(&self) -> usize {
        self.core.live.as_ref().unwrap().handshakes.len()
    }
}

fn noise_send(id: u32, alias: Option<u32>, payload: &[u8]) -> Message {
    Message::NoiseSend(NoiseSend {
        id,
        remote_stream_alias: alias,
        payload: payload.to_vec(),
    })
}

fn reply_of(sent: &[Message]) -> (Vec<u8>, NoiseReplyStep) {
    match sent {
        [Message::NoiseReply(r)] => (r.payload.clone(), r.step.clone()),
        other => panic!("expected one noiseReply, got {other:?}"),
    }
}

fn addr() -> SocketAddrV4 {
    "127.0.0.1:1".parse().unwrap()
}

/// A `result` whose data is an announcers record naming `peers`.
fn announcers(id: u32, peers: &[[u8; 32]]) -> Message {
    let record = Announcers {
        token: [0; 32],
        from: Node {
            id: None,
            address: addr(),
        },
        to: Node {
            id: None,
            address: addr(),
        },
        peers: peers
            .iter()
            .map(|pk| Peer {
                public_key: *pk,
                relay_addresses: Vec::new(),
            })
            .collect(),
    };
    Message::Result(QueryResult {
        id,
        data: record.to_bytes(),
    })
}

#[test]
fn a_custodial_connect_pairs_by_alias_and_carries_data_and_end_both_ways() {
    let mut h = harness(true);
    let remote = [0x33; 32];
    let first = h.connect(remote);
    let second = h.connect([0x44; 32]);
    assert_ne!(first, second);
    // The relay refuses the second: only that connect fails, with the relay's reason.
    assert!(h
        .deliver(Message::Destroy(Destroy {
            target: DestroyTarget::Unpaired {
                remote_alias: second
            },
            error: Some("PEER_NOT_FOUND".into()),
        }))
        .is_empty());
    assert_eq!(h.failed(second), "PEER_NOT_FOUND");
    // It opens the first with the hash of the handshake it ran.
    assert!(h
        .deliver(Message::Open(Open {
            alias: 70,
            remote_alias: first,
            handshake: StreamHandshake::Hash([5; 64]),
        }))
        .is_empty());
    let (alias, generation) = match h.events().as_slice() {
        [ClientEvent::Opened(s)] => {
            assert_eq!(s.info.remote_public_key, remote);
            assert_eq!(s.info.handshake_hash, [5; 64]);
            assert!(s.info.is_initiator);
            assert!(s.crypto.is_none(), "custodial: plaintext");
            (s.alias, s.generation)
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(alias, first);
    // The relay's alias 70 routes to our stream.
    h.deliver(Message::Data(Data {
        alias: 70,
        chunks: vec![b"hi".to_vec()],
    }));
    h.deliver(Message::Data(Data {
        alias: 71,
        chunks: vec![b"not ours".to_vec()],
    }));
    assert!(matches!(
        h.events().as_slice(),
        [ClientEvent::StreamData { alias: a, chunks }] if *a == first && chunks == &[b"hi".to_vec()]
    ));
    // Ours goes out under our alias.
    assert!(h.core.send_data(generation, first, vec![b"yo".to_vec()]));
    assert!(matches!(
        h.sent().as_slice(),
        [Message::Data(d)] if d.alias == first && d.chunks == [b"yo".to_vec()]
    ));
    // The remote ends, then we do: `end` once, and the stream is forgotten.
    h.deliver(Message::End(AliasRef { alias: 70 }));
    assert!(matches!(h.events().as_slice(), [ClientEvent::StreamEnd { alias: a }] if *a == first));
    h.core.end_stream(generation, first);
    h.core.end_stream(generation, first);
    assert!(matches!(
        h.sent().as_slice(),
        [Message::End(AliasRef { alias: a })] if *a == first
    ));
    assert!(!h.core.send_data(generation, first, vec![b"late".to_vec()]));
    assert!(h.core.live.as_ref().unwrap().streams.is_empty());
}

#[test]
fn a_dropped_stream_is_destroyed_and_a_destroyed_one_closes() {
    let mut h = harness(true);
    let open = |alias, remote_alias| {
        Message::Open(Open {
            alias,
            remote_alias,
            handshake: StreamHandshake::Hash([1; 64]),
        })
    };
    let a = h.connect([0x33; 32]);
    h.deliver(open(80, a));
    let b = h.connect([0x33; 32]);
    h.deliver(open(81, b));
    h.events();
    let generation = h.core.generation();
    // Our reader of `a` is gone: destroy it at the relay.
    h.core.drop_stream(generation, a);
    assert!(matches!(
        h.sent().as_slice(),
        [Message::Destroy(Destroy { target: DestroyTarget::Paired { alias }, .. })] if *alias == a
    ));
    // The remote destroys `b`: its reader hears why.
    h.deliver(Message::Destroy(Destroy {
        target: DestroyTarget::Paired { alias: 81 },
        error: Some("gone".into()),
    }));
    assert!(matches!(
        h.events().as_slice(),
        [ClientEvent::StreamClosed { alias, reason }] if *alias == b && reason == "gone"
    ));
    // A stale handle of an older session touches nothing.
    assert!(!h.core.send_data(generation - 1, b, vec![vec![1]]));
    assert!(h.sent().is_empty());
}

#[test]
fn a_listen_is_confirmed_then_connected_and_the_firewall_accepts_only_our_servers() {
    let key = SigningKey::from_bytes(&[0x21; 32]);
    let mut core = ClientCore::new(key, true, IDLE);
    // Listening before any session: it goes out when one starts.
    let listen = core.listen();
    let mut h = Harness {
        core,
        relay: RelayCodec::new(),
        key: SigningKey::from_bytes(&[0x21; 32]),
        now: Instant::now(),
    };
    h.core.start_session(h.now);
    let sent = h.sent();
    assert!(
        matches!(sent.as_slice(), [Message::Handshake(_), Message::Listen(l)] if l.alias == listen),
        "{sent:?}"
    );
    // The channel is open, but the listen is not confirmed yet.
    assert!(h.events().is_empty());
    assert!(!h.core.is_connected());
    h.deliver(Message::Listening(Listening {
        alias: 50,
        remote_alias: listen,
        address: addr(),
    }));
    assert!(matches!(h.events().as_slice(), [ClientEvent::Connected]));
    assert!(h.core.is_connected());
    let incoming = |id, server_alias| {
        Message::Incoming(Incoming {
            id,
            server_alias,
            remote_public_key: [0x55; 32],
            payload: Vec::new(),
        })
    };
    assert_eq!(
        h.deliver(incoming(1, 50)),
        [Message::Accept(IdRef { id: 1 })]
    );
    assert_eq!(h.deliver(incoming(2, 51)), [Message::Deny(IdRef { id: 2 })]);
    // The relay pairs one: we answer `connected` with a fresh alias of ours.
    let sent = h.deliver(Message::Connection(Connection {
        alias: 60,
        server_alias: 50,
        remote_public_key: [0x55; 32],
        handshake: StreamHandshake::Hash([2; 64]),
    }));
    let [Message::Connected(c)] = sent.as_slice() else {
        panic!("{sent:?}")
    };
    assert_eq!(c.remote_alias, 60);
    match h.events().as_slice() {
        [ClientEvent::Incoming { listen: l, stream }] => {
            assert_eq!(*l, listen);
            assert_eq!(stream.alias, c.alias);
            assert!(!stream.info.is_initiator);
            assert_eq!(stream.info.remote_public_key, [0x55; 32]);
        }
        other => panic!("{other:?}"),
    }
    // Unlistened: `close`, and later connections are denied.
    h.core.unlisten(listen);
    assert_eq!(h.sent(), [Message::Close(AliasRef { alias: listen })]);
    assert_eq!(h.deliver(incoming(3, 50)), [Message::Deny(IdRef { id: 3 })]);
}

#[test]
fn announces_and_lookups_pair_by_query_id_and_fail_when_the_session_ends() {
    let mut h = harness(false);
    let topic = [0x66; 32];
    let announce = h.core.announce(topic, true).unwrap();
    let lookup = h.core.lookup(topic).unwrap();
    let pending = h.core.lookup([0x67; 32]).unwrap();
    let sent = h.sent();
    assert!(
        matches!(sent.as_slice(), [Message::Announce(a), Message::Lookup(l), Message::Lookup(_)]
            if a.id == announce && a.secret_key.is_none() && l.id == lookup && l.topic == topic),
        "{sent:?}"
    );
    // Results of the lookup collect each peer once; the announce's results are not peers.
    for m in [
        announcers(lookup, &[[1; 32], [2; 32]]),
        announcers(lookup, &[[2; 32], [3; 32]]),
        announcers(announce, &[[9; 32]]),
        Message::Result(QueryResult {
            id: lookup,
            data: vec![0xff],
        }),
        Message::Finished(IdRef { id: lookup }),
        Message::Finished(IdRef { id: announce }),
        Message::Finished(IdRef { id: 999 }),
    ] {
        assert!(h.deliver(m).is_empty());
    }
    let events = h.events();
    assert!(
        matches!(events.as_slice(), [
            ClientEvent::QueryFinished { id: l, peers },
            ClientEvent::QueryFinished { id: a, peers: none },
        ] if *l == lookup && peers == &[[1; 32], [2; 32], [3; 32]] && *a == announce && none.is_empty()),
        "{events:?}"
    );
    // A connect and a query still waiting when the session is lost fail with the reason.
    let connect = h.connect([0x77; 32]);
    h.core.end_session("lost");
    let events = h.events();
    assert!(events.iter().any(|e| matches!(e,
        ClientEvent::QueryFailed { id, topic: t, reason } if *id == pending && *t == [0x67; 32] && reason == "lost")));
    assert!(
        events.iter().any(|e| matches!(e,
        ClientEvent::ConnectFailed { alias, reason, .. } if *alias == connect && reason == "lost"))
    );
    assert_eq!(events.len(), 2);
    // Without a session nothing can be asked, but the announce is kept for the next one.
    assert!(h.core.connect([0x77; 32]).is_none());
    assert!(h.core.lookup(topic).is_none());
    assert!(h.core.announce([0x68; 32], true).is_none());
    assert!(h.core.poll_timeout().is_none());
    h.core.start_session(h.now);
    h.relay = RelayCodec::new();
    let sent = h.sent();
    let mut topics: Vec<[u8; 32]> = sent
        .iter()
        .filter_map(|m| match m {
            Message::Announce(a) => Some(a.topic),
            _ => None,
        })
        .collect();
    topics.sort();
    assert_eq!(topics, [topic, [0x68; 32]]);
}

#[test]
fn hostile_and_unexpected_frames_are_errors_or_ignored_never_panics() {
    let mut h = harness(true);
    // Messages about aliases and ids we never used: nothing happens.
    for m in [
        Message::Data(Data {
            alias: 5,
            chunks: vec![vec![1]],
        }),
        Message::End(AliasRef { alias: 5 }),
        Message::Destroy(Destroy {
            target: DestroyTarget::Paired { alias: 5 },
            error: None,
        }),
        Message::Destroy(Destroy {
            target: DestroyTarget::Unpaired { remote_alias: 5 },
            error: None,
        }),
        Message::Finished(IdRef { id: 5 }),
        Message::Listening(Listening {
            alias: 5,
            remote_alias: 5,
            address: addr(),
        }),
        // Client-to-relay messages coming back.
        Message::Pong,
        Message::Accept(IdRef { id: 5 }),
    ] {
        assert!(h.deliver(m.clone()).is_empty(), "{m:?}");
    }
    // An `open` for a connect we never made is destroyed, a `connection` for a server we
    // don't have refused.
    let sent = h.deliver(Message::Open(Open {
        alias: 9,
        remote_alias: 77,
        handshake: StreamHandshake::Hash([0; 64]),
    }));
    assert!(matches!(sent.as_slice(), [Message::Destroy(_)]), "{sent:?}");
    let sent = h.deliver(Message::Connection(Connection {
        alias: 9,
        server_alias: 77,
        remote_public_key: [0; 32],
        handshake: StreamHandshake::Hash([0; 64]),
    }));
    assert!(matches!(sent.as_slice(), [Message::Destroy(_)]), "{sent:?}");
    assert!(h.events().is_empty());
    // A frame the codec refuses is an error of the session, as is the relay closing it.
    let e = h.core.handle_frame(&[0, 1, 9], h.now).unwrap_err();
    assert!(matches!(e, SessionError::BadFrame(_)), "{e}");
    assert!(std::error::Error::source(&e).is_some(), "keeps its source");
    h.relay.close();
    let close = h.relay.poll_transmit().unwrap();
    assert!(matches!(
        h.core.handle_frame(&close, h.now),
        Err(SessionError::ChannelClosed)
    ));
}

#[test]
fn pings_are_answered_and_only_frames_from_the_relay_hold_off_the_idle_timeout() {
    let mut h = harness(true);
    let start = h.now;
    assert_eq!(h.core.poll_timeout(), Some(start + IDLE));
    assert!(h.core.handle_timeout(start + IDLE / 2).is_ok());
    // A ping 30 s in: answered, and the deadline moves.
    h.now = start + Duration::from_secs(30);
    assert_eq!(h.deliver(Message::Ping), [Message::Pong]);
    assert_eq!(h.core.poll_timeout(), Some(h.now + IDLE));
    assert!(h.core.handle_timeout(start + IDLE).is_ok());
    // Our own sends don't count.
    h.core.lookup([1; 32]);
    h.sent();
    assert_eq!(h.core.poll_timeout(), Some(h.now + IDLE));
    let late = h.now + IDLE;
    assert!(matches!(
        h.core.handle_timeout(late),
        Err(SessionError::Idle(d)) if d == IDLE
    ));
}

#[test]
fn hostile_noise_messages_fail_a_connect_cleanly_and_a_good_one_opens() {
    let mut h = harness(false);
    let server = SigningKey::from_bytes(&[0x22; 32]);
    let server_pk = server.verifying_key().to_bytes();
    let prologue = hyperdht::ns_peer_handshake();

    // 1. The payload to embed is not a noisePayload.
    let alias = h.connect(server_pk);
    assert!(h.deliver(noise_send(7, Some(alias), &[0xfe])).is_empty());
    let e = h.failed(alias);
    assert!(e.contains("noise handshake failed"), "{e}");
    // The relay opens it anyway: we destroy it.
    let sent = h.deliver(Message::Open(Open {
        alias: 90,
        remote_alias: alias,
        handshake: StreamHandshake::Id(7),
    }));
    assert!(matches!(sent.as_slice(), [Message::Destroy(_)]), "{sent:?}");

    // 2. Message 2 is garbage, or 3. its payload is not a noisePayload, or 4. it is
    // truncated: each fails the connect.
    for (n, msg2) in [
        (2u32, Some(vec![0x42; 80])),
        (3, None),
        (4, Some(vec![1; 20])),
    ] {
        let alias = h.connect(server_pk);
        let (msg1, step) = reply_of(&h.deliver(noise_send(n, Some(alias), &[1, 0, 0, 0])));
        assert_eq!(step, NoiseReplyStep::Initiator);
        let mut r = NoiseIk::responder(&server, &prologue);
        assert_eq!(r.read_message(&msg1).unwrap(), [1, 0, 0, 0]);
        let msg2 = msg2.unwrap_or_else(|| r.write_message(&[0xff, 0xff]).unwrap());
        let sent = h.deliver(Message::NoiseReceive(NoiseReceive {
            id: n,
            server_alias: None,
            payload: msg2,
        }));
        assert!(sent.is_empty(), "{sent:?}");
        let e = h.failed(alias);
        assert!(e.contains("noise handshake failed"), "{e}");
        assert_eq!(h.handshakes(), 0);
    }

    // 5. A good handshake, then `open` with its id: a stream keyed by our own handshake,
    // whose id+header goes out first.
    let alias = h.connect(server_pk);
    let (msg1, _) = reply_of(&h.deliver(noise_send(5, Some(alias), &[1, 0, 0, 0])));
    let mut r = NoiseIk::responder(&server, &prologue);
    r.read_message(&msg1).unwrap();
    let msg2 = r.write_message(&NoisePayload::default().encode()).unwrap();
    let (payload, step) = reply_of(&h.deliver(Message::NoiseReceive(NoiseReceive {
        id: 5,
        server_alias: None,
        payload: msg2,
    })));
    assert_eq!(payload, [1, 0, 0, 0]);
    let hash = r.outcome().unwrap().handshake_hash;
    assert_eq!(
        step,
        NoiseReplyStep::Complete {
            is_initiator: true,
            remote_id: crate::net::secret_stream::stream_id(&hash, false),
            holepunch_secret: hyperdht::holepunch_secret(&hash),
        }
    );
    let sent = h.deliver(Message::Open(Open {
        alias: 91,
        remote_alias: alias,
        handshake: StreamHandshake::Id(5),
    }));
    match sent.as_slice() {
        [Message::Data(d)] => {
            assert_eq!(d.alias, alias);
            assert_eq!(d.chunks.len(), 1);
            assert_eq!(d.chunks[0].len(), 59);
        }
        other => panic!("expected the id+header, got {other:?}"),
    }
    match h.events().as_slice() {
        [ClientEvent::Opened(s)] => {
            assert_eq!(s.alias, alias);
            assert_eq!(s.info.remote_public_key, server_pk);
            assert_eq!(s.info.handshake_hash, hash);
            assert!(s.info.is_initiator);
            assert!(s.crypto.is_some(), "our own secret-stream");
        }
        other => panic!("{other:?}"),
    }

    // 6. A relay that claims it ran the handshake (a custodial hash) is refused.
    let alias = h.connect(server_pk);
    let sent = h.deliver(Message::Open(Open {
        alias: 92,
        remote_alias: alias,
        handshake: StreamHandshake::Hash([7; 64]),
    }));
    assert!(matches!(sent.as_slice(), [Message::Destroy(_)]), "{sent:?}");
    assert!(h.failed(alias).contains("custodial"));
}

#[test]
fn a_listen_is_signed_and_hostile_incoming_handshakes_are_denied() {
    let mut h = harness(false);
    let our_pk = h.key.verifying_key().to_bytes();
    let prologue = hyperdht::ns_peer_handshake();
    let listen_alias = h.core.listen();
    let sent = h.sent();
    let Some(Message::Listen(l)) = sent.first() else {
        panic!("{sent:?}")
    };
    assert!(l.secret_key.is_none());
    assert_eq!(l.alias, listen_alias);

    // The relay asks us to sign the announce record of our server.
    let sent = h.deliver(Message::SignAnnounce(SignRequest {
        id: 40,
        signee: listen_alias,
        token: [3; 32],
        peer_id: Some(vec![4; 32]),
        relay_addresses: Vec::new(),
    }));
    let [Message::Signature(sig)] = sent.as_slice() else {
        panic!("{sent:?}")
    };
    assert_eq!(sig.id, 40);
    let record = hyperdht::announce_signable(
        true,
        &hyperdht::server_target(&our_pk),
        &[4; 32],
        &[3; 32],
        &our_pk,
        &[],
    );
    let key = h.key.verifying_key();
    key.verify(&record, &Signature::from_slice(&sig.signature).unwrap())
        .unwrap();
    // A request for nothing of ours is not answered.
    let mut other = SignRequest {
        id: 41,
        signee: 999,
        token: [3; 32],
        peer_id: None,
        relay_addresses: Vec::new(),
    };
    assert!(h.deliver(Message::SignAnnounce(other.clone())).is_empty());
    other.signee = listen_alias;
    assert!(matches!(
        h.deliver(Message::SignUnannounce(other)).as_slice(),
        [Message::Signature(_)]
    ));
    h.deliver(Message::Listening(Listening {
        alias: 50,
        remote_alias: listen_alias,
        address: addr(),
    }));

    let denied = |sent: Vec<Message>| {
        let (payload, step) = reply_of(&sent);
        assert!(payload.is_empty(), "denied with an empty payload");
        assert!(matches!(step, NoiseReplyStep::Responder { .. }));
    };
    // Garbage, a handshake for another key, a payload that is not a noisePayload, and a
    // server alias we don't know: all denied, none kept.
    let client = SigningKey::from_bytes(&[0x23; 32]);
    let client_pk = client.verifying_key().to_bytes();
    let receive = |id, server_alias, payload| {
        Message::NoiseReceive(NoiseReceive {
            id,
            server_alias: Some(server_alias),
            payload,
        })
    };
    denied(h.deliver(receive(1, 50, vec![1, 2, 3])));
    let mut i = NoiseIk::initiator(&client, [0x99; 32], &prologue);
    if let Ok(m) = i.write_message(&[1, 0, 0, 0]) {
        denied(h.deliver(receive(2, 50, m)));
    }
    let mut i = NoiseIk::initiator(&client, our_pk, &prologue);
    denied(h.deliver(receive(3, 50, i.write_message(&[0xfd, 1]).unwrap())));
    let mut i = NoiseIk::initiator(&client, our_pk, &prologue);
    denied(h.deliver(receive(4, 77, i.write_message(&[1, 0, 0, 0]).unwrap())));
    assert_eq!(h.handshakes(), 0);

    // A good one is accepted; a garbage payload for message 2 drops it, and the relay's
    // `connection` for it is then refused.
    let mut i = NoiseIk::initiator(&client, our_pk, &prologue);
    let (payload, step) =
        reply_of(&h.deliver(receive(5, 50, i.write_message(&[1, 0, 0, 0]).unwrap())));
    assert_eq!(payload, [1, 0, 0, 0]);
    assert_eq!(
        step,
        NoiseReplyStep::Responder {
            remote_public_key: client_pk
        }
    );
    assert!(h.deliver(noise_send(5, None, &[0xff])).is_empty());
    let connection = |alias, id| {
        Message::Connection(Connection {
            alias,
            server_alias: 50,
            remote_public_key: client_pk,
            handshake: StreamHandshake::Id(id),
        })
    };
    assert!(matches!(
        h.deliver(connection(60, 5)).as_slice(),
        [Message::Destroy(_)]
    ));

    // The whole exchange: a stream keyed by our handshake reaches the listener.
    let mut i = NoiseIk::initiator(&client, our_pk, &prologue);
    reply_of(&h.deliver(receive(6, 50, i.write_message(&[1, 0, 0, 0]).unwrap())));
    let (msg2, step) = reply_of(&h.deliver(noise_send(6, None, &[1, 0, 0, 0])));
    assert_eq!(i.read_message(&msg2).unwrap(), [1, 0, 0, 0]);
    let hash = i.outcome().unwrap().handshake_hash;
    assert!(matches!(
        step,
        NoiseReplyStep::Complete { is_initiator: false, remote_id, .. }
            if remote_id == crate::net::secret_stream::stream_id(&hash, true)
    ));
    let sent = h.deliver(connection(61, 6));
    assert!(
        matches!(sent.as_slice(), [Message::Connected(_), Message::Data(d)] if d.chunks[0].len() == 59),
        "{sent:?}"
    );
    match h.events().as_slice() {
        [ClientEvent::Incoming { listen, stream }] => {
            assert_eq!(*listen, listen_alias);
            assert_eq!(stream.info.remote_public_key, client_pk);
            assert_eq!(stream.info.handshake_hash, hash);
            assert!(!stream.info.is_initiator);
        }
        other => panic!("{other:?}"),
    }
}
