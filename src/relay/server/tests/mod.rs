//! Unit tests of the sans-IO relay core: clients are [`RelayCodec`]s, time is passed in. This
//! file holds the harness (a [`Relay`] and its clients in memory); the tests are grouped by
//! concern: [`custodial`] (pairing, data, back-pressure, limits, heartbeat, rendezvous),
//! [`noncustodial`] (relayed Noise handshakes, signatures) and [`bridged`] (mixed modes).

use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;

use super::*;
use crate::relay::messages::*;
use crate::relay::{Message, RelayCodec, RelayEvent};

mod bridged;
mod custodial;
mod errors;
mod ice;
mod noncustodial;

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
        self.listen(server, 100, (spk, ssk));
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
        let ns = self.connect_nc(c, 1, keys(cseed).0, keys(sseed).0);
        assert_eq!(ns.remote_stream_alias, Some(1));
        // A valid hyperdht noisePayload: the server's firewall decodes it.
        assert_eq!(ns.payload, [1, 0, 0, 0]);
        let chs = ns.id;
        self.reply_initiator(c, chs, b"msg1".to_vec());
        let [Message::NoiseReceive(nr)] = &self.recv(s)[..] else {
            panic!("noiseReceive to the responder")
        };
        assert_eq!(nr.server_alias, Some(server_alias));
        assert_eq!(nr.payload, b"msg1");
        (chs, nr.id)
    }
}

// ---------------------------------------------------------------------------------------------
// One-message steps the scripts repeat (each asserts what the relay answers, where it always
// answers the same).

impl World {
    /// A custodial listen with key pair `(pk, sk)` under `alias`; asserts `listening`.
    fn listen(&mut self, s: &mut Client, alias: u32, (pk, sk): (PublicKey, SecretKey)) {
        self.send(
            s,
            &Message::Listen(Listen {
                alias,
                public_key: pk,
                secret_key: Some(sk),
            }),
        );
        assert!(matches!(self.recv(s)[..], [Message::Listening(_)]));
    }

    /// A non-custodial connect from `public_key` to `remote_public_key` under `alias`; returns
    /// the `noiseSend` the relay answers with (anything else panics).
    fn connect_nc(
        &mut self,
        c: &mut Client,
        alias: u32,
        public_key: PublicKey,
        remote_public_key: PublicKey,
    ) -> NoiseSend {
        self.send(
            c,
            &Message::Connect(Connect {
                alias,
                public_key,
                secret_key: None,
                remote_public_key,
            }),
        );
        match &self.recv(c)[..] {
            [Message::NoiseSend(ns)] => ns.clone(),
            other => panic!("noiseSend expected, got {other:?}"),
        }
    }

    /// The initiator's reply to `noiseSend` `id`, carrying `payload` (a Noise message).
    fn reply_initiator(&mut self, c: &mut Client, id: u32, payload: Vec<u8>) {
        self.send(
            c,
            &Message::NoiseReply(NoiseReply {
                id,
                payload,
                step: NoiseReplyStep::Initiator,
            }),
        );
    }

    /// Sends `chunks` on `from`'s stream `alias` and asserts that `to` receives exactly them on
    /// its stream `to_alias`.
    fn relay_data(
        &mut self,
        (from, alias): (&mut Client, u32),
        (to, to_alias): (&mut Client, u32),
        chunks: Vec<Vec<u8>>,
    ) {
        self.send(
            from,
            &Message::Data(Data {
                alias,
                chunks: chunks.clone(),
            }),
        );
        assert_eq!(
            self.recv(to),
            vec![Message::Data(Data {
                alias: to_alias,
                chunks
            })]
        );
    }

    /// Asserts that session `id`, silent since `self.now`, is closed as idle at the default
    /// idle timeout (45 s) and not a second before.
    fn expect_idle_close(&mut self, id: SessionId) {
        self.now += Duration::from_secs(44);
        self.relay.handle_timeout(id, self.now);
        assert_eq!(self.relay.close_reason(id), None);
        self.now += Duration::from_secs(1);
        self.relay.handle_timeout(id, self.now);
        assert!(matches!(
            self.relay.close_reason(id),
            Some(CloseReason::Idle(_))
        ));
    }

    /// A relay whose streams buffer at most 10,000 bytes, with client 2 connected to server 1
    /// and sending 1,000-byte frames until the relay stops reading it; returns the world, the
    /// server, the client and how many frames the client got in (at most 100).
    fn blocked_sender() -> (World, Client, Client, usize) {
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
        (w, s, c, sent)
    }

    /// The one `destroy` the relay queued for `c` (anything else panics).
    fn recv_destroy(&mut self, c: &mut Client) -> Destroy {
        match &self.recv(c)[..] {
            [Message::Destroy(d)] => d.clone(),
            other => panic!("destroy expected, got {other:?}"),
        }
    }
}
