//! Unit tests of the sans-IO relay core: clients are [`RelayCodec`]s, time is passed in.

use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;

use super::*;
use crate::relay::messages::*;
use crate::relay::{Message, RelayCodec, RelayEvent};

fn keys(seed: u8) -> (PublicKey, SecretKey) {
    let pk = SigningKey::from_bytes(&[seed; 32])
        .verifying_key()
        .to_bytes();
    let mut sk = [0u8; 64];
    sk[..32].copy_from_slice(&[seed; 32]);
    sk[32..].copy_from_slice(&pk);
    (pk, SecretKey(sk))
}

struct Client {
    id: SessionId,
    codec: RelayCodec,
}

struct World {
    relay: Relay<LocalNetwork>,
    now: Instant,
}

impl World {
    fn new(limits: Limits) -> Self {
        Self {
            relay: Relay::new(limits, LocalNetwork::default()),
            now: Instant::now(),
        }
    }

    fn client(&mut self, seed: u8) -> Client {
        let id = self
            .relay
            .open_session(format!("test {seed}"), self.now)
            .unwrap();
        let mut c = Client {
            id,
            codec: RelayCodec::new(),
        };
        let (public_key, sk) = keys(seed);
        self.send(
            &mut c,
            &Message::Handshake(Handshake {
                public_key,
                secret_key: Some(sk),
            }),
        );
        c
    }

    fn send(&mut self, c: &mut Client, m: &Message) {
        c.codec.send(m).unwrap();
        while let Some(f) = c.codec.poll_transmit() {
            self.relay.handle_frame(c.id, &f, self.now);
        }
    }

    /// Everything the relay queued for `c`, decoded (pings included).
    fn recv(&mut self, c: &mut Client) -> Vec<Message> {
        while let Some(f) = self.relay.poll_transmit(c.id, self.now) {
            c.codec.receive(&f).unwrap();
        }
        std::iter::from_fn(|| c.codec.poll_event())
            .filter_map(|e| match e {
                RelayEvent::Message(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    /// Listens with `server` on its seed's key and connects `client` to it; returns the
    /// client's and the server's relay aliases of the stream.
    fn connect(
        &mut self,
        server: &mut Client,
        sseed: u8,
        client: &mut Client,
        cseed: u8,
    ) -> (u32, u32) {
        let (spk, ssk) = keys(sseed);
        let (cpk, csk) = keys(cseed);
        self.send(
            server,
            &Message::Listen(Listen {
                alias: 100,
                public_key: spk,
                secret_key: Some(ssk),
            }),
        );
        assert!(matches!(self.recv(server)[..], [Message::Listening(_)]));
        self.send(
            client,
            &Message::Connect(Connect {
                alias: 1,
                public_key: cpk,
                secret_key: Some(csk),
                remote_public_key: spk,
            }),
        );
        let [Message::Incoming(inc)] = &self.recv(server)[..] else {
            panic!("incoming")
        };
        assert_eq!(inc.remote_public_key, cpk);
        self.send(server, &Message::Accept(IdRef { id: inc.id }));
        let [Message::Connection(conn)] = &self.recv(server)[..] else {
            panic!("connection")
        };
        let [Message::Open(open)] = &self.recv(client)[..] else {
            panic!("open")
        };
        assert_eq!(conn.remote_public_key, cpk);
        assert_eq!(open.remote_alias, 1);
        // Both sides get the hash of one Noise XX run between the two custodial key pairs.
        let (StreamHandshake::Hash(a), StreamHandshake::Hash(b)) =
            (&open.handshake, &conn.handshake)
        else {
            panic!("custodial")
        };
        assert_eq!(a, b);
        self.send(
            server,
            &Message::Connected(Connected {
                alias: 200,
                remote_alias: conn.alias,
            }),
        );
        (open.alias, conn.alias)
    }
}

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
    w.send(
        &mut c,
        &Message::Data(Data {
            alias: 1,
            chunks: vec![b"hi".to_vec()],
        }),
    );
    assert_eq!(
        w.recv(&mut s),
        vec![Message::Data(Data {
            alias: s_alias,
            chunks: vec![b"hi".to_vec()]
        })]
    );
    w.send(
        &mut s,
        &Message::Data(Data {
            alias: 200,
            chunks: vec![b"yo".to_vec()],
        }),
    );
    assert_eq!(
        w.recv(&mut c),
        vec![Message::Data(Data {
            alias: c_alias,
            chunks: vec![b"yo".to_vec()]
        })]
    );
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
    let [Message::Destroy(d)] = &w.recv(&mut c)[..] else {
        panic!("destroy")
    };
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
    let [Message::Destroy(d)] = &w.recv(&mut c)[..] else {
        panic!("destroy")
    };
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
    let [Message::Destroy(d)] = &w.recv(&mut c)[..] else {
        panic!("destroy")
    };
    assert_eq!(d.target, DestroyTarget::Unpaired { remote_alias: 2 });
}

#[test]
fn a_full_stream_buffer_stops_reading_the_sender() {
    let limits = Limits {
        stream_buffer: 10_000,
        ..Limits::default()
    };
    let mut w = World::new(limits);
    let (mut s, mut c) = (w.client(1), w.client(2));
    w.connect(&mut s, 1, &mut c, 2);
    let mut sent = 0;
    while w.relay.wants_read(c.id) {
        w.send(
            &mut c,
            &Message::Data(Data {
                alias: 1,
                chunks: vec![vec![0; 1000]],
            }),
        );
        sent += 1;
        assert!(sent < 100, "back-pressure never applied");
    }
    assert_eq!(sent, 10); // 10 frames of ~1 KiB exceed 10,000 bytes
                          // The server reading its frames unblocks the client.
    let got = w.recv(&mut s).len();
    assert_eq!(got, 10);
    assert!(w.relay.wants_read(c.id));
    assert!(w.relay.take_wakeups().contains(&c.id));
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
    w.now += Duration::from_secs(44);
    w.relay.handle_timeout(c.id, w.now);
    assert!(w.relay.close_reason(c.id).is_none());
    w.now += Duration::from_secs(1);
    w.relay.handle_timeout(c.id, w.now);
    assert!(matches!(
        w.relay.close_reason(c.id),
        Some(CloseReason::Idle(_))
    ));
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
