//! Replays real `@hyperswarm/dht-relay` 0.4.3 sessions (captured from the npm packages on
//! loopback, see `shared/reference/dht-relay/PROTOCOL.md` §5 and §7) through two
//! [`RelayCodec`]s, a client and a relay. For every frame of every capture:
//! - the receiving side decodes it to the expected event, field by field;
//! - the sending side, given the decoded message, writes exactly the captured bytes.
//!
//! The captures are copied from `shared/reference/dht-relay/captures/*.json` into
//! `tests/data/relay-captures/` so the test needs nothing outside the repository.

use std::collections::BTreeSet;
use std::path::PathBuf;

use dat_social::relay::messages::{
    AliasRef, Announce, Announcers, Connect, Connected, Connection, Data, Handshake, IdRef,
    Incoming, Listen, Listening, Lookup, Node, NoiseReceive, NoiseReply, NoiseReplyStep, NoiseSend,
    Open, Peer, PublicKey, QueryResult, SecretKey, StreamHandshake,
};
use dat_social::relay::{Message, RelayCodec, RelayEvent};
use ed25519_dalek::SigningKey;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/relay-captures")
}

#[derive(serde::Deserialize)]
struct Frame {
    dir: String,
    hex: String,
}

fn load(name: &str) -> Vec<Frame> {
    let path = data_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// What a frame should decode to.
enum Expect {
    /// The protomux `open` of the relay channel.
    ChannelOpen,
    /// A relay message.
    Msg(Message),
}
use Expect::{ChannelOpen, Msg};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn k32(s: &str) -> [u8; 32] {
    h(s).try_into().unwrap()
}

fn k64(s: &str) -> [u8; 64] {
    h(s).try_into().unwrap()
}

/// libsodium secret key for a fixed seed byte: seed×32 ‖ public key. Also checks that `pk` is the
/// ed25519 public key of that seed, as the captures claim.
fn sk(seed: u8, pk: &PublicKey) -> Option<SecretKey> {
    let derived = SigningKey::from_bytes(&[seed; 32])
        .verifying_key()
        .to_bytes();
    assert_eq!(&derived, pk, "capture key is not the key of seed {seed:#x}");
    let mut out = [seed; 64];
    out[32..].copy_from_slice(pk);
    Some(SecretKey(out))
}

/// Replays `name`: feeds each frame to the receiving codec and checks the event, then makes the
/// sending codec write the same message and checks the bytes.
fn replay(name: &str, expected: Vec<Expect>) {
    let frames = load(name);
    assert_eq!(frames.len(), expected.len(), "{name}: frame count");
    let mut client = RelayCodec::new();
    let mut relay = RelayCodec::new();
    for (i, (frame, exp)) in frames.iter().zip(expected).enumerate() {
        let bytes = h(&frame.hex);
        let (sender, receiver) = match frame.dir.as_str() {
            "C->R" => (&mut client, &mut relay),
            "R->C" => (&mut relay, &mut client),
            d => panic!("{name}#{i}: bad dir {d}"),
        };
        receiver
            .handle_frame(&bytes)
            .unwrap_or_else(|e| panic!("{name}#{i}: {e}"));
        let event = receiver.poll_event();
        assert_eq!(
            receiver.poll_event(),
            None,
            "{name}#{i}: one event per frame"
        );
        match exp {
            ChannelOpen => assert_eq!(event, Some(RelayEvent::Opened), "{name}#{i}"),
            Msg(m) => {
                assert_eq!(event, Some(RelayEvent::Message(m.clone())), "{name}#{i}");
                sender.send(&m).unwrap();
            }
        }
        let written = sender.poll_transmit().expect("sender has a frame");
        assert_eq!(hex::encode(written), frame.hex, "{name}#{i}: re-encoding");
        assert_eq!(sender.poll_transmit(), None, "{name}#{i}");
    }
    assert!(client.is_open() && relay.is_open());
}

fn capture_1() -> Vec<Expect> {
    let pk = k32("d04ab232742bb4ab3a1368bd4615e4e6d0224ab71a016baf8520a332c9778737");
    let remote = k32("a09aa5f47a6759802ff955f8dc2d2a14a5c99d23be97f864127ff9383455a4f0");
    vec![
        ChannelOpen,
        Msg(Message::Handshake(Handshake {
            public_key: pk,
            secret_key: sk(0x11, &pk),
        })),
        ChannelOpen,
        Msg(Message::Connect(Connect {
            alias: 1,
            public_key: pk,
            secret_key: sk(0x11, &pk),
            remote_public_key: remote,
        })),
        Msg(Message::Open(Open {
            alias: 2,
            remote_alias: 1,
            handshake: StreamHandshake::Hash(k64(
                "9ea1d912c266fcca58434723dba0019552a3cd4e8bafd66c10405b0ade0e184c\
                 f11438f18179e0a781189fa3f26d56e4e161513964a078dc248620acb6f4541a",
            )),
        })),
        Msg(Message::Data(Data {
            alias: 1,
            chunks: vec![b"hello".to_vec()],
        })),
        Msg(Message::Data(Data {
            alias: 2,
            chunks: vec![b"echo:hello".to_vec()],
        })),
        Msg(Message::End(AliasRef { alias: 1 })),
        Msg(Message::End(AliasRef { alias: 2 })),
    ]
}

fn capture_2() -> Vec<Expect> {
    let pk = k32("17cb79fb2b4120f2b1ec65e4198d6e08b28e813feb01e4a400839b85e18080ce");
    let server = k32("d759793bbc13a2819a827c76adb6fba8a49aee007f49f2d0992d99b825ad2c48");
    let remote = k32("c6822637c7d310ec57627be00ba259d253749f4aaf644470cffbe53a35f73242");
    vec![
        ChannelOpen,
        Msg(Message::Handshake(Handshake {
            public_key: pk,
            secret_key: sk(0x33, &pk),
        })),
        ChannelOpen,
        Msg(Message::Listen(Listen {
            alias: 3,
            public_key: server,
            secret_key: sk(0x44, &server),
        })),
        Msg(Message::Listening(Listening {
            alias: 4,
            remote_alias: 3,
            address: "127.0.0.1:54908".parse().unwrap(),
        })),
        Msg(Message::Incoming(Incoming {
            id: 5,
            server_alias: 4,
            remote_public_key: remote,
            payload: h("011a0000017f000001c7e40100fe3294a32e0001"),
        })),
        Msg(Message::Accept(IdRef { id: 5 })),
        Msg(Message::Connection(Connection {
            alias: 6,
            server_alias: 4,
            remote_public_key: remote,
            handshake: StreamHandshake::Hash(k64(
                "7feeacbf90c56bd37ac28b2ce1ec01b66ddb02fcbf95ba52c11784c0362c79b3\
                 be2bb074b7aa5fa68c2af20bde995e2d6882fc0e74df8714028d08c092834101",
            )),
        })),
        Msg(Message::Data(Data {
            alias: 6,
            chunks: vec![b"hi".to_vec()],
        })),
        Msg(Message::Connected(Connected {
            alias: 7,
            remote_alias: 6,
        })),
        Msg(Message::Data(Data {
            alias: 7,
            chunks: vec![b"echo:hi".to_vec()],
        })),
        Msg(Message::End(AliasRef { alias: 6 })),
        Msg(Message::End(AliasRef { alias: 7 })),
        Msg(Message::Close(AliasRef { alias: 3 })),
        Msg(Message::Closed(AliasRef { alias: 4 })),
    ]
}

/// The three `result.data` records of capture 3: (data hex, token prefix, from port).
const LOOKUP_RESULTS: [(&str, u16); 3] = [
    ("090753e3aa72087aa3a344193aca9e280f1960e31c09987a8c90263d99e682e32026fe6ae9a1f45137757384c3a60c80571a6153a27c3c6d3dea8fe8f987b995ce7f0000014bc2007f0000017cd601c853ad0f0cd2b619aea92ceec4fd56a24d6499d584ce79257e45cfd8139b60a700", 49739),
    ("49d620a0c3f0af46a9c96581cb3f3b6a0304b2ba73c48a422d151744d5b0cea120ea50f55683100864aa622153cff29c6f99eea9e753f8e211d6b01e0a8af2ac6c7f0000014ac2007f0000017cd601c853ad0f0cd2b619aea92ceec4fd56a24d6499d584ce79257e45cfd8139b60a700", 49738),
    ("589cd774f15366329396d35ac50aa967986affe0c303ecf044517c523afa2f2120b89d3be56fb053503c63dc487b8071b8c0087fdda43036e02151a3a1e86fd74a7f0000014cc2007f0000017cd601c853ad0f0cd2b619aea92ceec4fd56a24d6499d584ce79257e45cfd8139b60a700", 49740),
];

/// The key announced in capture 4 (seed 0x77), found by the lookup of capture 3.
const ANNOUNCED: &str = "c853ad0f0cd2b619aea92ceec4fd56a24d6499d584ce79257e45cfd8139b60a7";

fn capture_3() -> Vec<Expect> {
    let pk = k32("b2491d9502ae28630a2bacb2e0c74510ffcdd328c334ff3e1393e75b2d31e7dc");
    let mut out = vec![
        ChannelOpen,
        Msg(Message::Handshake(Handshake {
            public_key: pk,
            secret_key: sk(0x88, &pk),
        })),
        ChannelOpen,
        Msg(Message::Lookup(Lookup {
            id: 9,
            topic: [0xaa; 32],
        })),
    ];
    for (data, _) in LOOKUP_RESULTS {
        out.push(Msg(Message::Result(QueryResult {
            id: 9,
            data: h(data),
        })));
    }
    out.push(Msg(Message::Finished(IdRef { id: 9 })));
    out
}

fn capture_4() -> Vec<Expect> {
    let pk = k32("34b4d9043156cb6dcf0beb0a2949b7559c940d2bcb6dbe8c53a9b30278e3a746");
    let announced = k32(ANNOUNCED);
    vec![
        ChannelOpen,
        Msg(Message::Handshake(Handshake {
            public_key: pk,
            secret_key: sk(0x66, &pk),
        })),
        ChannelOpen,
        Msg(Message::Announce(Announce {
            id: 8,
            topic: [0xaa; 32],
            public_key: announced,
            secret_key: sk(0x77, &announced),
        })),
        Msg(Message::Finished(IdRef { id: 8 })),
    ]
}

fn capture_5() -> Vec<Expect> {
    let pk = k32("332ebe8d27cb7323b3a401c1c13b5dd64bccc0e10ecda1c2b5d11a03779a85e5");
    assert_eq!(
        SigningKey::from_bytes(&[0x99; 32])
            .verifying_key()
            .to_bytes(),
        pk
    );
    vec![
        ChannelOpen,
        Msg(Message::Handshake(Handshake {
            public_key: pk,
            secret_key: None,
        })),
        ChannelOpen,
        Msg(Message::Connect(Connect {
            alias: 10,
            public_key: pk,
            secret_key: None,
            remote_public_key: k32("a09aa5f47a6759802ff955f8dc2d2a14a5c99d23be97f864127ff9383455a4f0"),
        })),
        Msg(Message::NoiseSend(NoiseSend {
            id: 12,
            remote_stream_alias: Some(10),
            payload: h("011a0000017f0000014dc20100feed1a51b60001"),
        })),
        Msg(Message::NoiseReply(NoiseReply {
            id: 12,
            payload: h("269b03f7896002aa2a828ad28b376e7282fc27c7b7bdac68b3fd95d7c7bc80b00e49281a34c12d5e38cccfded632f6643667ed37b14693f879c9a0de744da6fd16c4e4bcc19f4aafd3b1a340f04ca3f964b076aa2134e00f3d6e7dd7a87753137822c4bdd33be804c59607fdc82873a5caec5107"),
            step: NoiseReplyStep::Initiator,
        })),
        Msg(Message::NoiseReceive(NoiseReceive {
            id: 12,
            server_alias: None,
            payload: h("00000000000000000000000000000000000000000000000000000000000000008668f42790eddf847ed22fd425f9323f47cdaead2bb50ece8038c98343051d690318ed012c3649d7958c1e6bc34f7123c5c7365927f786dc9691032c6d"),
        })),
        Msg(Message::NoiseReply(NoiseReply {
            id: 12,
            payload: h("015a0001027f00000116e67f00000116e60100fe0f1db2be0001037f0000014bc27f0000014ac27f0000014cc2"),
            step: NoiseReplyStep::Complete {
                is_initiator: true,
                remote_id: k32("36b601ff46cbfc6b0fd6cc6447c8df1e4505f640a776114a8220e79c82babed1"),
                holepunch_secret: k32("4956bfe278966d4417697130195c219f9c14836a3c3a8725e7734b89de191ed8"),
            },
        })),
        Msg(Message::Open(Open {
            alias: 11,
            remote_alias: 10,
            handshake: StreamHandshake::Id(12),
        })),
        Msg(Message::Data(Data {
            alias: 10,
            chunks: vec![h("38000036b601ff46cbfc6b0fd6cc6447c8df1e4505f640a776114a8220e79c82babed1c6502d4e127f4a741bf8688ec07ba439bce9ce0c0dab02fa")],
        })),
        Msg(Message::Data(Data {
            alias: 10,
            chunks: vec![h("160000a59aca043e010192ba90368d755f67af128332c33f34")],
        })),
        Msg(Message::Data(Data {
            alias: 11,
            chunks: vec![h("380000ed85f849d9000404baf20ac646465c986c13756b8352225c09a11932467ee1cfe3677bf1df6dec2d4c30df32de0a68147ca63c9736f62a9a1b00009f6563686f3a68656c6c6f17853397b7b47f2cd7a677a672d146fc")],
        })),
        Msg(Message::End(AliasRef { alias: 10 })),
        Msg(Message::End(AliasRef { alias: 11 })),
    ]
}

/// The captures and their expectations; `every_capture_is_replayed` fails on a file not listed.
/// A capture name and the function building its expected events.
type Capture = (&'static str, fn() -> Vec<Expect>);

fn captures() -> Vec<Capture> {
    vec![
        ("1-custodial-connect", capture_1 as fn() -> Vec<Expect>),
        ("2-custodial-listen-incoming", capture_2),
        ("3-lookup", capture_3),
        ("4-announce", capture_4),
        ("5-noncustodial-connect", capture_5),
    ]
}

#[test]
fn every_capture_is_replayed() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(data_dir())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".json").map(str::to_string)
        })
        .collect();
    let listed: BTreeSet<String> = captures().iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(on_disk, listed);
    let mut frames = 0;
    for (name, expected) in captures() {
        frames += load(name).len();
        replay(name, expected());
    }
    assert_eq!(frames, 9 + 15 + 8 + 5 + 14);
}

#[test]
fn lookup_results_decode_to_announcers() {
    let localhost = |port| std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port);
    for (data, from_port) in LOOKUP_RESULTS {
        let data = h(data);
        let record = QueryResult {
            id: 9,
            data: data.clone(),
        }
        .announcers()
        .unwrap();
        assert_eq!(record.token.to_vec(), data[..32]);
        assert_eq!(record.from.id.as_ref().map(Vec::len), Some(32));
        assert_eq!(record.from.address, localhost(from_port));
        // `to` is the relay's own DHT node (no id; the `listening` port of capture 2's session).
        assert_eq!(
            record.to,
            Node {
                id: None,
                address: localhost(54908)
            }
        );
        assert_eq!(
            record.peers,
            vec![Peer {
                public_key: k32(ANNOUNCED),
                relay_addresses: vec![]
            }]
        );
        use dat_social::hypercore::encoding::CompactEncoding;
        assert_eq!(record.to_bytes(), data);
        assert_eq!(Announcers::from_bytes(&data).unwrap(), record);
    }
}

#[test]
fn protocol_md_section_7_reference_hex() {
    // PROTOCOL.md §7 lists these as the reproducible part of capture 1.
    let frames = load("1-custodial-connect");
    assert_eq!(
        frames[0].hex,
        "00010115406879706572737761726d2f6468742d72656c617900"
    );
    assert_eq!(frames[5].hex, "011001000000010568656c6c6f");
    assert_eq!(frames[6].hex, "011002000000010a6563686f3a68656c6c6f");
    assert_eq!(frames[7].hex, "010f01000000");
    assert_eq!(h(&frames[3].hex).len(), 135, "connect");
    assert_eq!(h(&frames[4].hex).len(), 75, "open");
}
