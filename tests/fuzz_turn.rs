//! Fuzz targets: the STUN/TURN server core of `dat-social relay` (src/relay/turn) fed
//! arbitrary and mutated client input: STUN requests and indications (Binding, Allocate with
//! and without credentials, Refresh, CreatePermission, ChannelBind, Send), ChannelData, over
//! UDP and TCP 5-tuples; and the TCP stream framer.
//!
//! Nothing may panic; a relayed socket is asked for only when the input is an Allocate whose
//! MESSAGE-INTEGRITY checks out with the TURN REST password of a live username; nothing is
//! ever relayed to a loopback or private peer (the default filter).

mod fuzz_common;

use std::net::SocketAddr;
use std::time::Instant;

use dat_social::ice::rest;
use dat_social::relay::turn::{
    peer_allowed, ClientTransport, FiveTuple, StreamFramer, Transmit, TurnConfig, TurnEvent,
    TurnServer, DEFAULT_REALM,
};
use fuzz_common::{fuzz, mutated, raw};
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use stun_types::attribute::{AttributeWrite, Nonce, Realm, Username};
use stun_types::message::{
    IntegrityAlgorithm, LongTermKeyCredentials, Message, MessageIntegrityCredentials, MessageWrite,
    MessageWriteExt, MessageWriteVec, Method, BINDING,
};
use turn_types::attribute::{ChannelNumber, Data, Lifetime, RequestedTransport, XorPeerAddress};
use turn_types::message::{ALLOCATE, CHANNEL_BIND, CREATE_PERMISSION, REFRESH, SEND};

const SECRET: &[u8] = b"fuzz secret";
const UNIX0: u64 = 1_800_000_000;

fn tuple(transport: ClientTransport) -> FiveTuple {
    FiveTuple {
        transport,
        client: "203.0.113.5:5000".parse().unwrap(),
        server: "198.51.100.1:3478".parse().unwrap(),
    }
}

/// A fresh server at Unix time [`UNIX0`].
fn server() -> (TurnServer, Instant) {
    let now = Instant::now();
    (
        TurnServer::new(TurnConfig::new(SECRET.to_vec()), now, UNIX0),
        now,
    )
}

/// The nonce the server hands our client (from a 401).
fn nonce() -> String {
    let (mut s, now) = server();
    let req = Message::builder_request(ALLOCATE, MessageWriteVec::new()).finish();
    s.handle_client(tuple(ClientTransport::Udp), &req, now);
    let Some(Transmit::Client { data, .. }) = s.poll_transmit() else {
        panic!("no 401")
    };
    Message::from_bytes(&data)
        .unwrap()
        .attribute::<Nonce>()
        .unwrap()
        .nonce()
        .to_owned()
}

/// Adds our fuzzer's live credentials (USERNAME, REALM, NONCE, MESSAGE-INTEGRITY) to `w`.
fn sign(w: &mut MessageWriteVec, nonce: &str) {
    let cred = rest::mint(SECRET, "fuzzer", UNIX0 + 600).unwrap();
    w.add_attribute(&Username::new(&cred.username).unwrap())
        .unwrap();
    w.add_attribute(&Realm::new(DEFAULT_REALM).unwrap())
        .unwrap();
    w.add_attribute(&Nonce::new(nonce).unwrap()).unwrap();
    let key: MessageIntegrityCredentials =
        LongTermKeyCredentials::new(cred.username, cred.password, DEFAULT_REALM.into()).into();
    w.add_message_integrity(&key, IntegrityAlgorithm::Sha1)
        .unwrap();
}

fn signed(method: Method, attrs: &[&dyn AttributeWrite], nonce: &str) -> Vec<u8> {
    let mut w = Message::builder_request(method, MessageWriteVec::new());
    for a in attrs {
        w.add_attribute(*a).unwrap();
    }
    sign(&mut w, nonce);
    w.add_fingerprint().unwrap();
    w.finish()
}

fn with_peer(method: Method, peer: &str, channel: Option<u16>, nonce: &str) -> Vec<u8> {
    // XOR-PEER-ADDRESS depends on the transaction id: build it on the message's own id.
    let mut w = Message::builder_request(method, MessageWriteVec::new());
    let p = XorPeerAddress::new(peer.parse().unwrap(), w.transaction_id());
    if let Some(n) = channel {
        w.add_attribute(&ChannelNumber::new(n)).unwrap();
    }
    w.add_attribute(&p).unwrap();
    sign(&mut w, nonce);
    w.finish()
}

fn seeds() -> Vec<Vec<u8>> {
    let n = nonce();
    let udp = RequestedTransport::new(RequestedTransport::UDP);
    let mut send = Message::builder_indication(SEND, MessageWriteVec::new());
    let p = XorPeerAddress::new("198.51.100.2:9".parse().unwrap(), send.transaction_id());
    send.add_attribute(&p).unwrap();
    send.add_attribute(&Data::new(b"hello")).unwrap();
    vec![
        Message::builder_request(BINDING, MessageWriteVec::new()).finish(),
        Message::builder_request(ALLOCATE, MessageWriteVec::new()).finish(),
        signed(ALLOCATE, &[&udp, &Lifetime::new(900)], &n),
        signed(REFRESH, &[&Lifetime::new(0)], &n),
        with_peer(CREATE_PERMISSION, "198.51.100.2:9", None, &n),
        with_peer(CREATE_PERMISSION, "127.0.0.1:9", None, &n),
        with_peer(CHANNEL_BIND, "198.51.100.2:9", Some(0x4000), &n),
        with_peer(CHANNEL_BIND, "10.0.0.1:9", Some(0x4001), &n),
        send.finish(),
        vec![0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0],
    ]
}

/// Whether `input` is an Allocate signed with the REST password of a username live at UNIX0.
fn validly_signed_allocate(input: &[u8]) -> bool {
    let Ok(msg) = Message::from_bytes(input) else {
        return false;
    };
    let Ok(user) = msg.attribute::<Username>() else {
        return false;
    };
    let user = user.username().to_owned();
    if !msg.has_method(ALLOCATE) || rest::check_username(&user, UNIX0).is_err() {
        return false;
    }
    let key: MessageIntegrityCredentials = LongTermKeyCredentials::new(
        user.clone(),
        rest::password(SECRET, &user),
        DEFAULT_REALM.into(),
    )
    .into();
    msg.validate_integrity(&key).is_ok()
}

/// Feeds `input` to a fresh server; checks the invariants.
fn check_fresh(input: &[u8], transport: ClientTransport) -> TestCaseResult {
    let (mut s, now) = server();
    s.handle_client(tuple(transport), input, now);
    while let Some(t) = s.poll_transmit() {
        prop_assert!(
            matches!(t, Transmit::Client { .. }),
            "relayed without an allocation: {t:?}"
        );
    }
    while let Some(e) = s.poll_event() {
        if let TurnEvent::BindRelay { .. } = e {
            prop_assert!(
                validly_signed_allocate(input),
                "a socket for an unauthenticated input"
            );
        }
    }
    Ok(())
}

/// Feeds `inputs` to a server holding an allocation; nothing goes to a forbidden peer.
fn check_allocated(inputs: &[Vec<u8>], allocate: &[u8]) -> TestCaseResult {
    let (mut s, now) = server();
    let t = tuple(ClientTransport::Udp);
    s.handle_client(t, allocate, now);
    let relayed: SocketAddr = "198.51.100.1:50000".parse().unwrap();
    s.handle_relay_bound(t, Ok(relayed), now);
    prop_assert_eq!(s.allocation_count(), 1);
    for input in inputs {
        s.handle_client(t, input, now);
        s.handle_peer(relayed, "198.51.100.2:9".parse().unwrap(), input, now);
        while let Some(tx) = s.poll_transmit() {
            if let Transmit::Peer { peer, .. } = tx {
                prop_assert!(peer_allowed(peer.ip(), false, false), "relayed to {peer}");
            }
        }
        while s.poll_event().is_some() {}
    }
    Ok(())
}

#[test]
fn turn_client_input_raw_and_mutated() {
    let seeds = seeds();
    fuzz(
        "turn_client_input_raw_and_mutated",
        3_000,
        (prop_oneof![raw(300), mutated(seeds)], any::<bool>()),
        |(input, tcp)| {
            let transport = if tcp {
                ClientTransport::Tcp
            } else {
                ClientTransport::Udp
            };
            check_fresh(&input, transport)
        },
    );
}

#[test]
fn turn_allocated_session_mutated() {
    let seeds = seeds();
    let allocate = seeds[2].clone();
    fuzz(
        "turn_allocated_session_mutated",
        1_000,
        prop::collection::vec(prop_oneof![raw(200), mutated(seeds)], 1..6),
        |inputs| check_allocated(&inputs, &allocate),
    );
}

#[test]
fn turn_tcp_framer_raw_and_mutated() {
    let seeds: Vec<Vec<u8>> = vec![seeds().concat()];
    fuzz(
        "turn_tcp_framer_raw_and_mutated",
        2_000,
        (prop_oneof![raw(600), mutated(seeds)], 1usize..64),
        |(stream, chunk)| {
            let mut f = StreamFramer::new();
            let mut out = Vec::new();
            for piece in stream.chunks(chunk) {
                f.push(piece);
                loop {
                    match f.next_frame() {
                        Ok(Some(frame)) => {
                            prop_assert!(frame.len() <= 20 + 65_535 + 3);
                            out.extend_from_slice(&frame);
                        }
                        Ok(None) => break,
                        Err(_) => return Ok(()),
                    }
                }
            }
            prop_assert_eq!(out.len() + f.buffered(), stream.len());
            prop_assert_eq!(&out[..], &stream[..out.len()]);
            Ok(())
        },
    );
}
