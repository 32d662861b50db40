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
            c.codec.handle_frame(&f).unwrap();
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
    let limits = Limits {
        stream_buffer: 10_000,
        ..Limits::default()
    };
    let mut w = World::new(limits);
    let (mut s, mut c) = (w.client(1), w.client(2));
    w.connect(&mut s, 1, &mut c, 2);
    while w.relay.wants_read(c.id) {
        w.send(
            &mut c,
            &Message::Data(Data {
                alias: 1,
                chunks: vec![vec![0; 1000]],
            }),
        );
    }
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
    w.now += Duration::from_secs(44);
    w.relay.handle_timeout(c.id, w.now);
    assert_eq!(w.relay.close_reason(c.id), None);
    w.now += Duration::from_secs(1);
    w.relay.handle_timeout(c.id, w.now);
    assert!(matches!(
        w.relay.close_reason(c.id),
        Some(CloseReason::Idle(_))
    ));
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

// ---------------------------------------------------------------------------------------------
// Non-custodial mode: the clients keep their keys. The relay carries their Noise messages
// without reading them, so opaque bytes stand in for them here; the real Noise IK and
// secret-stream run in tests/relay_interop.rs (npm client, `custodial: false`).

impl World {
    /// A client that sends a non-custodial `handshake` (public key only).
    fn client_nc(&mut self, seed: u8) -> Client {
        let id = self
            .relay
            .open_session(format!("test nc {seed}"), self.now)
            .unwrap();
        let mut c = Client {
            id,
            codec: RelayCodec::new(),
        };
        let public_key = keys(seed).0;
        self.send(
            &mut c,
            &Message::Handshake(Handshake {
                public_key,
                secret_key: None,
            }),
        );
        c
    }

    /// Answers a `signAnnounce` as the JS client's `Signee` does (`target` = what it signs for).
    fn sign(&mut self, c: &mut Client, seed: u8, req: &SignRequest, target: &[u8; 32]) {
        use ed25519_dalek::Signer;
        let key = SigningKey::from_bytes(&[seed; 32]);
        let peer_id = req.peer_id.clone().expect("a peer id");
        let record = super::noncustodial::signable(
            true,
            target,
            &peer_id,
            &req.token,
            &key.verifying_key().to_bytes(),
        );
        let signature = key.sign(&record).to_bytes().to_vec();
        self.send(
            c,
            &Message::Signature(Signature {
                id: req.id,
                signature,
            }),
        );
    }

    /// A non-custodial listen on `seed`'s key, proven with a signature; returns the relay's
    /// server alias.
    fn listen_nc(&mut self, s: &mut Client, seed: u8) -> u32 {
        let spk = keys(seed).0;
        self.send(
            s,
            &Message::Listen(Listen {
                alias: 100,
                public_key: spk,
                secret_key: None,
            }),
        );
        let [Message::SignAnnounce(req)] = &self.recv(s)[..] else {
            panic!("signAnnounce")
        };
        assert_eq!(req.signee, 100);
        let target = super::noncustodial::server_target(&spk);
        self.sign(s, seed, &req.clone(), &target);
        let [Message::Listening(l)] = &self.recv(s)[..] else {
            panic!("listening")
        };
        assert_eq!(l.remote_alias, 100);
        l.alias
    }

    /// Connects `c` (non-custodial, alias 1) up to the server's firewall step; returns the
    /// client's and the server's handshake ids.
    fn noise_to_firewall(
        &mut self,
        s: &mut Client,
        sseed: u8,
        c: &mut Client,
        cseed: u8,
    ) -> (u32, u32) {
        let server_alias = self.listen_nc(s, sseed);
        self.send(
            c,
            &Message::Connect(Connect {
                alias: 1,
                public_key: keys(cseed).0,
                secret_key: None,
                remote_public_key: keys(sseed).0,
            }),
        );
        let [Message::NoiseSend(ns)] = &self.recv(c)[..] else {
            panic!("noiseSend to the initiator")
        };
        assert_eq!(ns.remote_stream_alias, Some(1));
        // A valid hyperdht noisePayload: the server's firewall decodes it.
        assert_eq!(ns.payload, [1, 0, 0, 0]);
        let chs = ns.id;
        self.send(
            c,
            &Message::NoiseReply(NoiseReply {
                id: chs,
                payload: b"msg1".to_vec(),
                step: NoiseReplyStep::Initiator,
            }),
        );
        let [Message::NoiseReceive(nr)] = &self.recv(s)[..] else {
            panic!("noiseReceive to the responder")
        };
        assert_eq!(nr.server_alias, Some(server_alias));
        assert_eq!(nr.payload, b"msg1");
        (chs, nr.id)
    }
}

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
    w.send(
        &mut c,
        &Message::NoiseReply(NoiseReply {
            id: chs,
            payload: vec![],
            step: NoiseReplyStep::Initiator,
        }),
    );
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
    let [Message::Destroy(d)] = &w.recv(&mut c)[..] else {
        panic!("destroy")
    };
    assert_eq!(d.target, DestroyTarget::Unpaired { remote_alias: 1 });
    assert!(w.recv(&mut s).is_empty());
    // Another connect, then the server's session goes away mid-handshake.
    w.send(
        &mut c,
        &Message::Connect(Connect {
            alias: 2,
            public_key: keys(2).0,
            secret_key: None,
            remote_public_key: keys(1).0,
        }),
    );
    let [Message::NoiseSend(ns)] = &w.recv(&mut c)[..] else {
        panic!("noiseSend")
    };
    w.send(
        &mut c,
        &Message::NoiseReply(NoiseReply {
            id: ns.id,
            payload: b"msg1".to_vec(),
            step: NoiseReplyStep::Initiator,
        }),
    );
    w.relay.remove_session(s.id);
    let [Message::Destroy(d)] = &w.recv(&mut c)[..] else {
        panic!("destroy")
    };
    assert_eq!(d.target, DestroyTarget::Unpaired { remote_alias: 2 });
    // A server that goes away before the connecting client's first Noise message: the connect
    // fails at once, and the late message is ignored.
    let mut s2 = w.client_nc(1);
    w.listen_nc(&mut s2, 1);
    w.send(
        &mut c,
        &Message::Connect(Connect {
            alias: 3,
            public_key: keys(2).0,
            secret_key: None,
            remote_public_key: keys(1).0,
        }),
    );
    let [Message::NoiseSend(ns)] = &w.recv(&mut c)[..] else {
        panic!("noiseSend")
    };
    w.relay.remove_session(s2.id);
    let [Message::Destroy(d)] = &w.recv(&mut c)[..] else {
        panic!("destroy")
    };
    assert_eq!(d.target, DestroyTarget::Unpaired { remote_alias: 3 });
    w.send(
        &mut c,
        &Message::NoiseReply(NoiseReply {
            id: ns.id,
            payload: b"msg1".to_vec(),
            step: NoiseReplyStep::Initiator,
        }),
    );
    assert!(w.recv(&mut c).is_empty());
    assert!(w.relay.close_reason(c.id).is_none());
}

#[test]
fn mixed_modes_fail_the_connect_and_out_of_order_replies_close_the_session() {
    let mut w = World::new(Limits::default());
    let (mut s, mut c) = (w.client(1), w.client_nc(2));
    let (spk, ssk) = keys(1);
    w.send(
        &mut s,
        &Message::Listen(Listen {
            alias: 100,
            public_key: spk,
            secret_key: Some(ssk),
        }),
    );
    assert!(matches!(w.recv(&mut s)[..], [Message::Listening(_)]));
    // A non-custodial connect to a custodial server (bridged: the relay answers as the
    // server) whose message 1 is garbage: the connect fails, the sessions go on.
    w.send(
        &mut c,
        &Message::Connect(Connect {
            alias: 1,
            public_key: keys(2).0,
            secret_key: None,
            remote_public_key: spk,
        }),
    );
    let [Message::NoiseSend(ns)] = &w.recv(&mut c)[..] else {
        panic!("noiseSend")
    };
    w.send(
        &mut c,
        &Message::NoiseReply(NoiseReply {
            id: ns.id,
            payload: vec![7; 120],
            step: NoiseReplyStep::Initiator,
        }),
    );
    let [Message::Destroy(d)] = &w.recv(&mut c)[..] else {
        panic!("destroy")
    };
    assert!(d.error.as_deref().unwrap().contains("handshake"), "{d:?}");
    assert!(w.relay.close_reason(c.id).is_none());
    assert!(w.recv(&mut s).iter().all(|m| matches!(m, Message::Ping)));
    let mut s = w.client_nc(11);
    w.listen_nc(&mut s, 11);
    // A non-custodial client that answers `noiseSend` with a "complete" reply breaks the
    // protocol: its session is closed, the server's goes on.
    let mut n = w.client_nc(3);
    w.send(
        &mut n,
        &Message::Connect(Connect {
            alias: 1,
            public_key: keys(3).0,
            secret_key: None,
            remote_public_key: keys(11).0,
        }),
    );
    let [Message::NoiseSend(ns)] = &w.recv(&mut n)[..] else {
        panic!("noiseSend")
    };
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
    let target = super::noncustodial::server_target(&victim);
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
    let [Message::Destroy(d)] = &w.recv(&mut c)[..] else {
        panic!("destroy")
    };
    assert!(d.error.as_deref().unwrap().starts_with("PEER_NOT_FOUND"));
}

/// A custodial client reaches a non-custodial server: the relay runs the Noise IK handshake
/// with the client's key against the server's client (which answers as a real IK responder
/// here), then the secret-stream: the client's plaintext chunks reach the server as records it
/// decrypts, the server's records (cut anywhere) reach the client as plaintext chunks; bytes
/// that don't decrypt end the stream both ways. A denial fails the connect.
#[test]
fn a_custodial_client_is_bridged_to_a_noncustodial_server() {
    use crate::net::hyperdht;
    use crate::net::noise::NoiseIk;
    use crate::net::secret_stream::{from_handshake, FrameDecoder};
    let mut w = World::new(Limits::default());
    let (mut s, mut c) = (w.client_nc(1), w.client(2));
    let server_alias = w.listen_nc(&mut s, 1);
    let (spk, cpk) = (keys(1).0, keys(2).0);
    let server_key = SigningKey::from_bytes(&[1; 32]);
    let connect = |alias| {
        Message::Connect(Connect {
            alias,
            public_key: cpk,
            secret_key: Some(keys(2).1),
            remote_public_key: spk,
        })
    };

    // Denied by the server's firewall.
    w.send(&mut c, &connect(1));
    let [Message::NoiseReceive(nr)] = &w.recv(&mut s)[..] else {
        panic!("noiseReceive")
    };
    w.send(
        &mut s,
        &Message::NoiseReply(NoiseReply {
            id: nr.id,
            payload: Vec::new(),
            step: NoiseReplyStep::Responder {
                remote_public_key: cpk,
            },
        }),
    );
    let [Message::Destroy(d)] = &w.recv(&mut c)[..] else {
        panic!("destroy")
    };
    assert!(d.error.as_deref().unwrap().contains("denied"), "{d:?}");

    // Accepted: a real IK responder on the server's side.
    w.send(&mut c, &connect(2));
    let [Message::NoiseReceive(nr)] = &w.recv(&mut s)[..] else {
        panic!("noiseReceive")
    };
    assert_eq!(nr.server_alias, Some(server_alias));
    let mut ik = NoiseIk::responder(&server_key, &hyperdht::ns_peer_handshake());
    assert_eq!(ik.read_message(&nr.payload).unwrap(), [1, 0, 0, 0]);
    assert_eq!(ik.remote_public_key(), Some(cpk));
    w.send(
        &mut s,
        &Message::NoiseReply(NoiseReply {
            id: nr.id,
            payload: vec![1, 0, 0, 0],
            step: NoiseReplyStep::Responder {
                remote_public_key: cpk,
            },
        }),
    );
    let [Message::NoiseSend(ns)] = &w.recv(&mut s)[..] else {
        panic!("noiseSend")
    };
    assert_eq!((ns.id, ns.remote_stream_alias), (nr.id, None));
    let msg2 = ik.write_message(&ns.payload).unwrap();
    let keys_s = ik.outcome().unwrap().clone();
    w.send(
        &mut s,
        &Message::NoiseReply(NoiseReply {
            id: nr.id,
            payload: msg2,
            step: NoiseReplyStep::Complete {
                is_initiator: false,
                remote_id: [0; 32],
                holepunch_secret: [0; 32],
            },
        }),
    );
    let [Message::Open(open)] = &w.recv(&mut c)[..] else {
        panic!("open")
    };
    assert_eq!(open.handshake, StreamHandshake::Hash(keys_s.handshake_hash));
    let got = w.recv(&mut s);
    let [Message::Connection(conn), Message::Data(header)] = &got[..] else {
        panic!("connection and the header: {got:?}")
    };
    assert_eq!(conn.handshake, StreamHandshake::Id(nr.id));
    assert_eq!(conn.remote_public_key, cpk);
    w.send(
        &mut s,
        &Message::Connected(Connected {
            alias: 200,
            remote_alias: conn.alias,
        }),
    );
    let (_, mut enc, our_header, mut dec) = from_handshake(&keys_s, false, spk);
    let mut frames = FrameDecoder::new();
    frames.push(&header.chunks[0]);
    assert!(dec
        .decrypt(&frames.next_frame().unwrap())
        .unwrap()
        .is_empty());

    // Client → server: each plaintext chunk arrives as one record.
    w.send(
        &mut c,
        &Message::Data(Data {
            alias: 2,
            chunks: vec![b"hello".to_vec(), Vec::new()],
        }),
    );
    let [Message::Data(d)] = &w.recv(&mut s)[..] else {
        panic!("data")
    };
    let plain: Vec<Vec<u8>> = d
        .chunks
        .iter()
        .map(|r| {
            frames.push(r);
            dec.decrypt(&frames.next_frame().unwrap()).unwrap()
        })
        .collect();
    assert_eq!(plain, vec![b"hello".to_vec(), Vec::new()]);

    // Server → client: header + two records, cut into 5-byte chunks.
    let mut bytes = our_header;
    bytes.extend(enc.encrypt(b"back").unwrap());
    bytes.extend(enc.encrypt(&[9; 100]).unwrap());
    let chunks: Vec<Vec<u8>> = bytes.chunks(5).map(<[u8]>::to_vec).collect();
    w.send(&mut s, &Message::Data(Data { alias: 200, chunks }));
    let got: Vec<Vec<u8>> = w
        .recv(&mut c)
        .into_iter()
        .flat_map(|m| match m {
            Message::Data(d) => d.chunks,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(got, vec![b"back".to_vec(), vec![9; 100]]);

    // Bytes that don't decrypt: both ends are told, the sessions go on.
    w.send(
        &mut s,
        &Message::Data(Data {
            alias: 200,
            chunks: vec![vec![20, 0, 0], vec![0x55; 20]],
        }),
    );
    assert!(matches!(w.recv(&mut c)[..], [Message::Destroy(_)]));
    assert!(matches!(w.recv(&mut s)[..], [Message::Destroy(_)]));
    assert!(w.relay.close_reason(c.id).is_none());
    assert!(w.relay.close_reason(s.id).is_none());
}

/// A non-custodial client reaches a custodial server: the relay answers the client's IK
/// handshake (a real initiator here) with the server's key, asks the server's firewall with
/// `incoming` in between, then runs the secret-stream towards the client.
#[test]
fn a_noncustodial_client_is_bridged_to_a_custodial_server() {
    use crate::net::hyperdht;
    use crate::net::noise::NoiseIk;
    use crate::net::secret_stream::{from_handshake, FrameDecoder};
    let mut w = World::new(Limits::default());
    let (mut s, mut c) = (w.client(1), w.client_nc(2));
    let (spk, ssk) = keys(1);
    let cpk = keys(2).0;
    w.send(
        &mut s,
        &Message::Listen(Listen {
            alias: 100,
            public_key: spk,
            secret_key: Some(ssk),
        }),
    );
    assert!(matches!(w.recv(&mut s)[..], [Message::Listening(_)]));
    w.send(
        &mut c,
        &Message::Connect(Connect {
            alias: 1,
            public_key: cpk,
            secret_key: None,
            remote_public_key: spk,
        }),
    );
    let [Message::NoiseSend(ns)] = &w.recv(&mut c)[..] else {
        panic!("noiseSend")
    };
    assert_eq!(ns.remote_stream_alias, Some(1));
    let client_key = SigningKey::from_bytes(&[2; 32]);
    let mut ik = NoiseIk::initiator(&client_key, spk, &hyperdht::ns_peer_handshake());
    let msg1 = ik.write_message(&ns.payload).unwrap();
    w.send(
        &mut c,
        &Message::NoiseReply(NoiseReply {
            id: ns.id,
            payload: msg1,
            step: NoiseReplyStep::Initiator,
        }),
    );
    let [Message::Incoming(inc)] = &w.recv(&mut s)[..] else {
        panic!("incoming")
    };
    assert_eq!(inc.remote_public_key, cpk, "the key the handshake proved");
    assert_eq!(inc.payload, [1, 0, 0, 0]);
    w.send(&mut s, &Message::Accept(IdRef { id: inc.id }));
    let [Message::NoiseReceive(nr)] = &w.recv(&mut c)[..] else {
        panic!("noiseReceive")
    };
    assert_eq!((nr.id, nr.server_alias), (ns.id, None));
    assert_eq!(ik.read_message(&nr.payload).unwrap(), [1, 0, 0, 0]);
    let keys_c = ik.outcome().unwrap().clone();
    w.send(
        &mut c,
        &Message::NoiseReply(NoiseReply {
            id: ns.id,
            payload: vec![1, 0, 0, 0],
            step: NoiseReplyStep::Complete {
                is_initiator: true,
                remote_id: [0; 32],
                holepunch_secret: [0; 32],
            },
        }),
    );
    let got = w.recv(&mut c);
    let [Message::Open(open), Message::Data(header)] = &got[..] else {
        panic!("open and the header: {got:?}")
    };
    assert_eq!(open.handshake, StreamHandshake::Id(ns.id));
    let [Message::Connection(conn)] = &w.recv(&mut s)[..] else {
        panic!("connection")
    };
    assert_eq!(conn.handshake, StreamHandshake::Hash(keys_c.handshake_hash));
    assert_eq!(conn.remote_public_key, cpk);
    w.send(
        &mut s,
        &Message::Connected(Connected {
            alias: 200,
            remote_alias: conn.alias,
        }),
    );
    let (_, mut enc, our_header, mut dec) = from_handshake(&keys_c, true, cpk);
    let mut frames = FrameDecoder::new();
    frames.push(&header.chunks[0]);
    assert!(dec
        .decrypt(&frames.next_frame().unwrap())
        .unwrap()
        .is_empty());
    // Server (plaintext) → client (a record), and client (records) → server (plaintext).
    w.send(
        &mut s,
        &Message::Data(Data {
            alias: 200,
            chunks: vec![b"hi".to_vec()],
        }),
    );
    let [Message::Data(d)] = &w.recv(&mut c)[..] else {
        panic!("data")
    };
    frames.push(&d.chunks[0]);
    assert_eq!(dec.decrypt(&frames.next_frame().unwrap()).unwrap(), b"hi");
    let mut bytes = our_header;
    bytes.extend(enc.encrypt(b"yo").unwrap());
    w.send(
        &mut c,
        &Message::Data(Data {
            alias: 1,
            chunks: vec![bytes],
        }),
    );
    let [Message::Data(d)] = &w.recv(&mut s)[..] else {
        panic!("data")
    };
    assert_eq!(d.chunks, vec![b"yo".to_vec()]);
}
