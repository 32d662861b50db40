//! The DHT codecs (`dat_social::dht::rpc`, `dat_social::dht::messages`) against bytes the JS
//! packages produced in this run: `node tests/js/dht_vectors.js` runs real dht-rpc 6.27.0 nodes
//! on loopback and records the requests one sends and the responses another answers (every
//! flag: id, token, internal, target, value, closer nodes, error), and `c.encode`s every hyperdht
//! 6.34.0 message codec. For each, our decoder must read exactly what JS read from the same
//! bytes, and our encoder must give the same bytes back.
//!
//! Needs node and `npm ci --prefix tests/js`; fails (never skips) without them.

mod support;

use std::net::SocketAddrV4;
use std::time::Duration;

use dat_social::dht::messages::{
    Announce, Handshake, Holepunch, HolepunchPayload, LookupRawReply, MutableGetResponse,
    MutablePutRequest, MutableSignable, Peer,
};
use dat_social::dht::rpc::{node_id, Message};
use dat_social::hypercore::encoding::CompactEncoding;
use serde_json::{json, Value};
use support::js::run_js;

fn vectors() -> Value {
    run_js("dht_vectors.js", &[], &[], Duration::from_secs(60))
}

fn hex_or_null<T: AsRef<[u8]>>(b: &Option<T>) -> Value {
    match b {
        Some(b) => json!(hex::encode(b)),
        None => Value::Null,
    }
}

/// A present `buffer`, as the script prints it (an empty one is `""`, not `null`).
fn buffer(b: &[u8]) -> Value {
    json!(hex::encode(b))
}

fn addr(a: &SocketAddrV4) -> Value {
    json!({ "host": a.ip().to_string(), "port": a.port() })
}

fn addrs(a: &[SocketAddrV4]) -> Value {
    Value::Array(a.iter().map(addr).collect())
}

fn opt_addr(a: &Option<SocketAddrV4>) -> Value {
    a.as_ref().map_or(Value::Null, addr)
}

/// What dht_vectors.js's `decodeRpc` reports, computed from our decoded message.
fn rpc_fields(m: &Message, flags: u8) -> Value {
    match m {
        Message::Request(r) => json!({
            "flags": flags, "tid": r.tid, "to": r.to.to_string(),
            "id": hex_or_null(&r.id), "token": hex_or_null(&r.token),
            "internal": r.internal, "command": r.command,
            "target": hex_or_null(&r.target),
            "value": r.value.as_deref().map_or(Value::Null, buffer),
        }),
        Message::Response(r) => json!({
            "flags": flags, "tid": r.tid, "to": r.to.to_string(),
            "id": hex_or_null(&r.id), "token": hex_or_null(&r.token),
            "closerNodes": if flags & 4 != 0 {
                Value::Array(r.closer_nodes.iter().map(|a| json!(a.to_string())).collect())
            } else {
                Value::Null
            },
            "error": r.error,
            "value": r.value.as_deref().map_or(Value::Null, buffer),
        }),
    }
}

#[test]
fn dht_rpc_datagrams_from_js_nodes_decode_and_encode_byte_for_byte() {
    let v = vectors();
    let rpc = v["rpc"].as_array().expect("rpc vectors");
    let mut seen_flags = 0u8;
    let (mut requests, mut responses) = (0, 0);
    for (i, entry) in rpc.iter().enumerate() {
        let bytes = hex::decode(entry["hex"].as_str().unwrap()).unwrap();
        let m = Message::decode(&bytes).unwrap_or_else(|e| panic!("vector {i}: {e}"));
        match (&m, entry["kind"].as_str().unwrap()) {
            (Message::Request(_), "request") => requests += 1,
            (Message::Response(_), "response") => responses += 1,
            (m, kind) => panic!("vector {i}: a {kind} decoded as {m:?}"),
        }
        assert_eq!(
            rpc_fields(&m, bytes[1]),
            entry["fields"],
            "vector {i}: fields"
        );
        assert_eq!(m.encode(), bytes, "vector {i}: re-encoded");
        seen_flags |= bytes[1];
        // A persistent node's id is the hash of its address (here: the answering node, seen
        // as the response's source; its id is the same in every response).
        if let Message::Response(r) = &m {
            assert!(r.id.is_some(), "vector {i}: the answerer is persistent");
        }
    }
    assert!(
        requests >= 10 && responses >= 10,
        "{requests} / {responses}"
    );
    assert_eq!(seen_flags, 0x1f, "every flag appeared at least once");
    // Every response came from one node, and its id is the hash of one address.
    let ids: std::collections::HashSet<_> = rpc
        .iter()
        .filter(|e| e["kind"] == "response")
        .map(|e| e["fields"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 1);
    let port_of_id = (1..=u16::MAX).find(|p| {
        hex::encode(node_id(&SocketAddrV4::new([127, 0, 0, 1].into(), *p)))
            == *ids.iter().next().unwrap()
    });
    assert!(port_of_id.is_some(), "the id is H(127.0.0.1:port)");
}

/// Our decoding of one hyperdht message, in the shape `plain(c.decode(…))` prints.
fn message_json(codec: &str, bytes: &[u8]) -> (Value, Vec<u8>) {
    fn both<T: CompactEncoding>(bytes: &[u8], f: impl Fn(&T) -> Value) -> (Value, Vec<u8>) {
        let m = T::from_bytes(bytes).unwrap();
        (f(&m), m.to_bytes())
    }
    let peer = |p: &Peer| json!({ "publicKey": hex::encode(p.public_key), "relayAddresses": addrs(&p.relay_addresses) });
    match codec {
        "handshake" => both(bytes, |m: &Handshake| {
            json!({ "mode": m.mode, "noise": buffer(&m.noise),
                    "peerAddress": opt_addr(&m.peer_address), "relayAddress": opt_addr(&m.relay_address) })
        }),
        "holepunch" => both(bytes, |m: &Holepunch| {
            json!({ "mode": m.mode, "id": m.id, "payload": buffer(&m.payload),
                    "peerAddress": opt_addr(&m.peer_address) })
        }),
        "holepunchPayload" => both(bytes, |m: &HolepunchPayload| {
            json!({ "error": m.error, "firewall": m.firewall, "round": m.round,
                    "connected": m.connected, "punching": m.punching,
                    "addresses": m.addresses.as_deref().map_or(Value::Null, addrs),
                    "remoteAddress": opt_addr(&m.remote_address),
                    "token": hex_or_null(&m.token), "remoteToken": hex_or_null(&m.remote_token) })
        }),
        "peer" => both(bytes, peer),
        "lookupRawReply" => both(
            bytes,
            |m: &LookupRawReply| json!({ "peers": Value::Array(m.peers.iter().map(peer).collect()), "bump": m.bump }),
        ),
        "announce" => both(bytes, |m: &Announce| {
            json!({ "peer": m.peer.as_ref().map_or(Value::Null, peer),
                    "refresh": hex_or_null(&m.refresh),
                    "signature": hex_or_null(&m.signature.map(|s| s.to_vec())), "bump": m.bump })
        }),
        "mutableSignable" => both(
            bytes,
            |m: &MutableSignable| json!({ "seq": m.seq, "value": buffer(&m.value) }),
        ),
        "mutablePutRequest" => both(bytes, |m: &MutablePutRequest| {
            json!({ "publicKey": hex::encode(m.public_key), "seq": m.seq,
                    "value": buffer(&m.value), "signature": hex::encode(m.signature) })
        }),
        "mutableGetResponse" => both(
            bytes,
            |m: &MutableGetResponse| json!({ "seq": m.seq, "value": buffer(&m.value), "signature": hex::encode(m.signature) }),
        ),
        other => panic!("no codec for {other}"),
    }
}

#[test]
fn hyperdht_messages_encoded_by_js_decode_and_encode_byte_for_byte() {
    let v = vectors();
    let messages = v["messages"].as_array().expect("message vectors");
    let mut codecs = std::collections::HashSet::new();
    for entry in messages {
        let (codec, name) = (entry["codec"].as_str().unwrap(), &entry["name"]);
        let bytes = hex::decode(entry["hex"].as_str().unwrap()).unwrap();
        let (decoded, again) = message_json(codec, &bytes);
        assert_eq!(decoded, entry["decoded"], "{codec} {name}: fields");
        assert_eq!(again, bytes, "{codec} {name}: re-encoded");
        codecs.insert(codec.to_string());
    }
    assert_eq!(codecs.len(), 9, "{codecs:?}");
}
