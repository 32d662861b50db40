//! The relay core bridging mixed modes: it runs the Noise IK handshake and the secret-stream
//! on behalf of the custodial end.

use super::*;
use crate::dht as hyperdht;
use crate::net::noise::{HandshakeOutcome, NoiseIk};
use crate::net::secret_stream::{from_handshake, Decryptor, Encryptor, FrameDecoder};

/// The far end of a bridged pair once the relay joined it: the server's client answers
/// `connected` (alias 200) to `conn`, and the non-custodial end starts its secret-stream from
/// its handshake `keys` (`initiator`, its key `public_key`) and checks the relay's id+header
/// (the first chunk of `header`). Returns its encryptor, its own id+header, its decryptor and
/// the decoder of the relay's records.
fn join_bridged(
    w: &mut World,
    s: &mut Client,
    (conn, header): (&Connection, &Data),
    keys: &HandshakeOutcome,
    initiator: bool,
    public_key: PublicKey,
) -> (Encryptor, Vec<u8>, Decryptor, FrameDecoder) {
    w.send(
        s,
        &Message::Connected(Connected {
            alias: 200,
            remote_alias: conn.alias,
        }),
    );
    let (_, enc, our_header, mut dec) = from_handshake(keys, initiator, public_key);
    let mut frames = FrameDecoder::new();
    frames.push(&header.chunks[0]);
    assert!(dec
        .decrypt(&frames.next_frame().unwrap())
        .unwrap()
        .is_empty());
    (enc, our_header, dec, frames)
}

/// A custodial client reaches a non-custodial server: the relay runs the Noise IK handshake
/// with the client's key against the server's client (which answers as a real IK responder
/// here), then the secret-stream: the client's plaintext chunks reach the server as records it
/// decrypts, the server's records (cut anywhere) reach the client as plaintext chunks; bytes
/// that don't decrypt end the stream both ways. A denial fails the connect.
#[test]
fn a_custodial_client_is_bridged_to_a_noncustodial_server() {
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
    let d = w.recv_destroy(&mut c);
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
    let (mut enc, our_header, mut dec, mut frames) =
        join_bridged(&mut w, &mut s, (conn, header), &keys_s, false, spk);

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
    let mut w = World::new(Limits::default());
    let (mut s, mut c) = (w.client(1), w.client_nc(2));
    let (spk, ssk) = keys(1);
    let cpk = keys(2).0;
    w.listen(&mut s, 100, (spk, ssk));
    let ns = w.connect_nc(&mut c, 1, cpk, spk);
    assert_eq!(ns.remote_stream_alias, Some(1));
    let client_key = SigningKey::from_bytes(&[2; 32]);
    let mut ik = NoiseIk::initiator(&client_key, spk, &hyperdht::ns_peer_handshake());
    let msg1 = ik.write_message(&ns.payload).unwrap();
    w.reply_initiator(&mut c, ns.id, msg1);
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
    let (mut enc, our_header, mut dec, mut frames) =
        join_bridged(&mut w, &mut s, (conn, header), &keys_c, true, cpk);
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
