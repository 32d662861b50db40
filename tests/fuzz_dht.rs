//! Fuzz targets: the Hyperswarm DHT decoders, which read datagrams from anyone on the network
//! (src/dht/): dht-rpc requests and responses ([`rpc::Message`]), every hyperdht message
//! ([`messages`]) and the Noise payload ([`NoisePayload`]).
//!
//! Inputs: raw bytes and mutations of valid encodings (captured shapes: a PING, a FIND_NODE
//! response with closer nodes, each message with every optional field). Nothing may panic;
//! whatever decodes must encode to bytes that decode to the same value (the decoder and encoder
//! agree on every field).

mod fuzz_common;

use dat_social::dht::messages::{
    Announce, Handshake, Holepunch, HolepunchPayload, LookupRawReply, MutableGetResponse,
    MutablePutRequest, MutableSignable, Peer,
};
use dat_social::dht::rpc::{self, Message};
use dat_social::dht::NoisePayload;
use dat_social::hypercore::encoding::CompactEncoding;
use fuzz_common::{fuzz, raw_or_mutated};
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

fn addr(i: u8) -> std::net::SocketAddrV4 {
    std::net::SocketAddrV4::new([10, 0, 0, i].into(), 49737 + i as u16)
}

fn rpc_seeds() -> Vec<Vec<u8>> {
    let request = rpc::Request {
        tid: 0x1234,
        to: addr(1),
        id: Some([1; 32]),
        token: Some([2; 32]),
        internal: false,
        command: 2,
        target: Some([3; 32]),
        value: Some(vec![4; 40]),
    };
    let response = rpc::Response {
        tid: 7,
        to: addr(2),
        id: Some([5; 32]),
        token: Some([6; 32]),
        closer_nodes: (1..=20).map(addr).collect(),
        error: 2,
        value: Some(vec![7; 60]),
    };
    vec![
        hex::decode("030434127f0000014ac200").unwrap(),
        request.encode(),
        response.encode(),
    ]
}

#[test]
fn dht_rpc_message() {
    fuzz(
        "dht_rpc_message",
        3_000,
        raw_or_mutated(200, rpc_seeds()),
        |bytes| {
            if let Ok(m) = Message::decode(&bytes) {
                let again = Message::decode(&m.encode()).expect("our encoding decodes");
                prop_assert_eq!(again, m);
            }
            Ok(())
        },
    );
}

/// Decodes `bytes` as `T`; if that works, our encoding must decode to the same value.
fn round_trip<T: CompactEncoding + PartialEq + std::fmt::Debug>(bytes: &[u8]) -> TestCaseResult {
    if let Ok(m) = T::from_bytes(bytes) {
        let again = T::from_bytes(&m.to_bytes()).expect("our encoding decodes");
        prop_assert_eq!(again, m);
    }
    Ok(())
}

fn message_seeds() -> Vec<Vec<u8>> {
    let peer = Peer {
        public_key: [9; 32],
        relay_addresses: vec![addr(1), addr(2), addr(3)],
    };
    vec![
        Handshake {
            mode: 3,
            noise: vec![1; 96],
            peer_address: Some(addr(4)),
            relay_address: Some(addr(5)),
        }
        .to_bytes(),
        Holepunch {
            mode: 2,
            id: 9,
            payload: vec![2; 80],
            peer_address: Some(addr(6)),
        }
        .to_bytes(),
        HolepunchPayload {
            error: 0,
            firewall: 2,
            round: 1,
            connected: true,
            punching: true,
            addresses: Some(vec![addr(7)]),
            remote_address: Some(addr(8)),
            token: Some([3; 32]),
            remote_token: Some([4; 32]),
        }
        .to_bytes(),
        LookupRawReply {
            peers: vec![peer.clone(), peer.clone()],
            bump: 1 << 33,
        }
        .to_bytes(),
        Announce {
            peer: Some(peer),
            refresh: Some([5; 32]),
            signature: Some([6; 64]),
            bump: 5,
        }
        .to_bytes(),
        MutablePutRequest {
            public_key: [7; 32],
            seq: 300,
            value: vec![8; 50],
            signature: [9; 64],
        }
        .to_bytes(),
    ]
}

#[test]
fn dht_messages() {
    fuzz(
        "dht_messages",
        3_000,
        raw_or_mutated(300, message_seeds()),
        |bytes| {
            round_trip::<Handshake>(&bytes)?;
            round_trip::<Holepunch>(&bytes)?;
            round_trip::<HolepunchPayload>(&bytes)?;
            round_trip::<Peer>(&bytes)?;
            round_trip::<LookupRawReply>(&bytes)?;
            round_trip::<Announce>(&bytes)?;
            round_trip::<MutableSignable>(&bytes)?;
            round_trip::<MutablePutRequest>(&bytes)?;
            round_trip::<MutableGetResponse>(&bytes)?;
            if let Ok(p) = NoisePayload::decode(&bytes) {
                // Sub-versions are always encoded as 1 (as JS), so compare encodings.
                let once = p.encode();
                let again = NoisePayload::decode(&once).expect("our encoding decodes");
                prop_assert_eq!(again.encode(), once);
            }
            Ok(())
        },
    );
}

/// A live node (persistent, some requests of its own in flight and a lookup running) fed
/// hostile datagrams from a few addresses, with time passing: nothing panics, and every
/// datagram it sends is a dht-rpc message.
#[test]
fn dht_node_datagrams() {
    use dat_social::dht::node::{NodeConfig, Outgoing, RpcNode};
    use dat_social::dht::rpc::{command, node_id};
    use std::time::{Duration, Instant};

    fuzz(
        "dht_node_datagrams",
        1_000,
        proptest::collection::vec((0u8..4, raw_or_mutated(200, rpc_seeds())), 1..30),
        |datagrams| {
            let mut now = Instant::now();
            let me = addr(9);
            let config = NodeConfig {
                id: Some(node_id(&me)),
                secrets: [[1; 32], [2; 32]],
            };
            let mut node = RpcNode::new(now, config, [0; 32], 0x1234);
            node.request(now, Outgoing::internal(addr(1), command::PING));
            node.query(
                now,
                [3; 32],
                true,
                command::FIND_NODE,
                None,
                &[addr(2), addr(3)],
            );
            for (from, bytes) in &datagrams {
                node.handle_datagram(now, addr(*from), bytes);
                now += Duration::from_millis(300);
                node.handle_timeout(now);
                while let Some((_, out)) = node.poll_transmit() {
                    prop_assert!(Message::decode(&out).is_ok());
                }
                while node.poll_event().is_some() {}
            }
            Ok(())
        },
    );
}
