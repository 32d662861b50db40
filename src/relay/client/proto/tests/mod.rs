//! Unit tests of [`ClientCore`]: a relay-side [`RelayCodec`] driven by hand talks to the core in
//! memory, with an explicit clock; no sockets, no tasks. The non-custodial Noise handshakes and
//! signatures are in [`noncustodial`].

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;

use super::{ClientCore, ClientEvent, SessionError};
use crate::hypercore::encoding::CompactEncoding;
use crate::relay::messages::{
    AliasRef, Announcers, Connection, Data, Destroy, DestroyTarget, IdRef, Incoming, Listening,
    Node, Open, Peer, QueryResult, StreamHandshake,
};
use crate::relay::{Message, RelayCodec, RelayEvent};

mod ice;
mod noncustodial;

const IDLE: Duration = Duration::from_secs(45);

/// A client core with a session up, and the relay's end of the channel.
struct Harness {
    core: ClientCore,
    relay: RelayCodec,
    key: SigningKey,
    now: Instant,
}

/// The relay's end: it pairs the ICE channel but answers only when a test makes it (`ice`).
fn relay_end() -> RelayCodec {
    let mut relay = RelayCodec::new();
    relay.serve_ice(true);
    relay
}

fn harness(custodial: bool) -> Harness {
    let key = SigningKey::from_bytes(&[0x21; 32]);
    let mut core = ClientCore::new(key.clone(), custodial, IDLE);
    let now = Instant::now();
    core.start_session(now);
    let mut h = Harness {
        core,
        relay: relay_end(),
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
        relay: relay_end(),
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
    h.relay = relay_end();
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
