//! The client core in non-custodial mode: the Noise IK handshakes the relay carries for us (as
//! initiator and responder, hostile messages included) and the signatures of our listens.

use ed25519_dalek::{Signature, SigningKey, Verifier};

use super::{addr, harness, ClientEvent};
use crate::dht::{self as hyperdht, NoisePayload};
use crate::net::noise::NoiseIk;
use crate::relay::messages::{
    Connection, Listening, NoiseReceive, NoiseReplyStep, NoiseSend, Open, SignRequest,
    StreamHandshake,
};
use crate::relay::Message;

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
