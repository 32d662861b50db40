//! Fuzz targets: hypercore's wire (JS hypercore 11 `lib/messages.js`) as it arrives from a peer.
//!
//! - every message decoder ([`Request`], [`Data`], [`Manifest`], [`Sync`], ...) on raw bytes and
//!   on mutations of valid encodings of random messages: no panic, and whatever decodes
//!   re-encodes to bytes that decode to the same message;
//! - proof verification ([`Core::verify_and_apply`]) of mutated proofs a real writer made: no
//!   panic, and a replica never holds a block that differs from the writer's;
//! - live replication between two [`Replicator`]s while a man in the middle alters one message
//!   (or injects random ones): no panic, the replica only ever holds the writer's blocks, and an
//!   untouched exchange replicates everything.

mod fuzz_common;

use std::fmt::Debug;

use dat_social::hypercore::encoding::CompactEncoding;
use dat_social::hypercore::messages::{
    Bitfield, Cancel, Data, DataBlock, DataHash, DataSeek, DataUpgrade, Extension, Handshake,
    Manifest, NoData, Prologue, Range, Request, RequestBlock, RequestSeek, RequestUpgrade,
    SignatureAlgorithm, Signer, Sync, TreeNode, Want,
};
use dat_social::hypercore::Core;
use dat_social::net::replication::Replicator;
use ed25519_dalek::SigningKey;
use fuzz_common::{fuzz, mutated_from, raw, tamper, Tamper};
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

// ---- message decoders -------------------------------------------------------------------

fn node() -> impl Strategy<Value = TreeNode> + Clone {
    (any::<u64>(), any::<u64>(), any::<[u8; 32]>()).prop_map(|(index, size, hash)| TreeNode {
        index,
        size,
        hash,
    })
}

fn nodes() -> impl Strategy<Value = Vec<TreeNode>> + Clone {
    prop::collection::vec(node(), 0..4)
}

fn small() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![0u64..300, any::<u64>()]
}

fn request() -> impl Strategy<Value = Request> + Clone {
    let block = (small(), small()).prop_map(|(index, nodes)| RequestBlock { index, nodes });
    (
        (small(), small(), any::<bool>(), small()),
        prop::option::of(block.clone()),
        prop::option::of(block),
        prop::option::of(
            (small(), small()).prop_map(|(bytes, padding)| RequestSeek { bytes, padding }),
        ),
        prop::option::of(
            (small(), small()).prop_map(|(start, length)| RequestUpgrade { start, length }),
        ),
    )
        .prop_map(
            |((id, fork, manifest, priority), block, hash, seek, upgrade)| Request {
                id,
                fork,
                block,
                hash,
                seek,
                upgrade,
                manifest,
                priority,
            },
        )
}

fn manifest() -> impl Strategy<Value = Manifest> + Clone {
    let signer =
        (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(namespace, public_key)| Signer {
            signature: SignatureAlgorithm::Ed25519,
            namespace,
            public_key,
        });
    (
        (0u64..4, any::<bool>(), small()),
        prop::collection::vec(signer, 0..3),
        prop::option::of(
            (any::<[u8; 32]>(), small()).prop_map(|(hash, length)| Prologue { hash, length }),
        ),
        prop::option::of(prop::collection::vec(any::<[u8; 32]>(), 0..3)),
        prop::option::of(raw(20)),
    )
        .prop_map(
            |((version, allow_patch, quorum), signers, prologue, linked, user_data)| Manifest {
                version,
                allow_patch,
                quorum,
                signers,
                prologue,
                linked,
                user_data,
                ..Manifest::default()
            },
        )
}

fn data() -> impl Strategy<Value = Data> + Clone {
    (
        (small(), small()),
        prop::option::of(
            (small(), raw(40), nodes()).prop_map(|(index, value, nodes)| DataBlock {
                index,
                value,
                nodes,
            }),
        ),
        prop::option::of((small(), nodes()).prop_map(|(index, nodes)| DataHash { index, nodes })),
        prop::option::of((small(), nodes()).prop_map(|(bytes, nodes)| DataSeek { bytes, nodes })),
        prop::option::of(
            (
                small(),
                small(),
                nodes(),
                nodes(),
                prop_oneof![Just(vec![]), raw(64)],
            )
                .prop_map(|(start, length, nodes, additional_nodes, signature)| {
                    DataUpgrade {
                        start,
                        length,
                        nodes,
                        additional_nodes,
                        signature,
                    }
                }),
        ),
        // Version 0 manifests have several encodings of one meaning: keep the canonical one.
        prop::option::of(manifest().prop_map(|m| Manifest::from_bytes(&m.to_bytes()).ok()))
            .prop_map(Option::flatten),
    )
        .prop_map(
            |((request, fork), block, hash, seek, upgrade, manifest)| Data {
                request,
                fork,
                block,
                hash,
                seek,
                upgrade,
                manifest,
            },
        )
}

/// A valid encoding of a random message of a random type.
fn any_message() -> impl Strategy<Value = Vec<u8>> + Clone {
    let b = any::<bool>;
    prop_oneof![
        request().prop_map(|m| m.to_bytes()),
        data().prop_map(|m| m.to_bytes()),
        manifest().prop_map(|m| m.to_bytes()),
        (b(), any::<[u8; 32]>())
            .prop_map(|(seeks, capability)| Handshake { seeks, capability }.to_bytes()),
        (small(), small(), small(), any::<u8>()).prop_map(|(fork, length, remote_length, f)| {
            Sync {
                fork,
                length,
                remote_length,
                can_upgrade: f & 1 != 0,
                uploading: f & 2 != 0,
                downloading: f & 4 != 0,
                has_manifest: f & 8 != 0,
                allow_push: f & 16 != 0,
            }
            .to_bytes()
        }),
        small().prop_map(|request| Cancel { request }.to_bytes()),
        (small(), small()).prop_map(|(request, reason)| NoData { request, reason }.to_bytes()),
        (small(), small(), b())
            .prop_map(|(start, length, any)| Want { start, length, any }.to_bytes()),
        (b(), small(), small()).prop_map(|(drop, start, length)| Range {
            drop,
            start,
            length
        }
        .to_bytes()),
        (small(), prop::collection::vec(any::<u32>(), 0..5))
            .prop_map(|(start, bitfield)| Bitfield { start, bitfield }.to_bytes()),
        (".{0,12}", raw(20)).prop_map(|(name, message)| Extension { name, message }.to_bytes()),
        node().prop_map(|n| n.to_bytes()),
    ]
}

/// `M::decode` never panics; what decodes is a fixed point of encode-then-decode.
fn stable<M: CompactEncoding + PartialEq + Debug>(bytes: &[u8]) -> TestCaseResult {
    if let Ok(m) = M::from_bytes(bytes) {
        let again = M::from_bytes(&m.to_bytes());
        prop_assert_eq!(again.as_ref().ok(), Some(&m), "{:?}", again);
    }
    Ok(())
}

fn all_decoders(bytes: Vec<u8>) -> TestCaseResult {
    stable::<Request>(&bytes)?;
    stable::<Data>(&bytes)?;
    stable::<Manifest>(&bytes)?;
    stable::<Handshake>(&bytes)?;
    stable::<Sync>(&bytes)?;
    stable::<Cancel>(&bytes)?;
    stable::<NoData>(&bytes)?;
    stable::<Want>(&bytes)?;
    stable::<Range>(&bytes)?;
    stable::<Bitfield>(&bytes)?;
    stable::<Extension>(&bytes)?;
    stable::<TreeNode>(&bytes)?;
    Ok(())
}

/// A valid message of one of the two proof-carrying types.
#[derive(Debug, Clone)]
enum Valid {
    Request(Request),
    Data(Box<Data>),
}

#[test]
fn hypercore_messages_round_trip() {
    fuzz(
        "hypercore_messages_round_trip",
        2_000,
        prop_oneof![
            request().prop_map(Valid::Request),
            data().prop_map(|d| Valid::Data(Box::new(d)))
        ],
        |m| {
            match m {
                Valid::Request(r) => prop_assert_eq!(Request::from_bytes(&r.to_bytes()), Ok(r)),
                Valid::Data(d) => prop_assert_eq!(Data::from_bytes(&d.to_bytes()), Ok(*d)),
            }
            Ok(())
        },
    );
}

#[test]
fn hypercore_messages_decode() {
    fuzz(
        "hypercore_messages_decode",
        2_000,
        prop_oneof![raw(120), mutated_from(any_message())],
        all_decoders,
    );
}

// ---- proofs and live replication ---------------------------------------------------------

fn writer(blocks: usize) -> Core {
    let mut w = Core::in_memory(SigningKey::from_bytes(&[5; 32]));
    let data: Vec<Vec<u8>> = (0..blocks)
        .map(|i| format!("block {i}").repeat(i % 4 + 1).into_bytes())
        .collect();
    let refs: Vec<&[u8]> = data.iter().map(|b| b.as_slice()).collect();
    w.append(&refs).expect("in-memory append");
    w
}

/// Every block the replica holds is the writer's, and its length is one the writer signed.
fn authentic(replica: &Core, w: &Core) -> TestCaseResult {
    prop_assert!(replica.length() <= w.length());
    for i in 0..replica.length() {
        if replica.has(i) {
            let got = replica
                .get(i)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(got, w.get(i).unwrap(), "block {} differs", i);
        }
    }
    Ok(())
}

/// A proof request the writer can answer: a block, with or without an upgrade from `from`.
fn proof_request() -> impl Strategy<Value = (u64, u64, bool)> {
    (0u64..12, 0u64..12, any::<bool>())
}

fn proofs(req: (u64, u64, bool), edits: Vec<fuzz_common::Mutation>) -> TestCaseResult {
    let w = writer(12);
    let (block, nodes, upgrade) = req;
    let mut replica = Core::in_memory_replica(w.key());
    // First a genuine upgrade to a prefix (so block proofs without upgrade can verify too).
    if !upgrade {
        let r = Request {
            id: 1,
            upgrade: Some(RequestUpgrade {
                start: 0,
                length: 7,
            }),
            ..Request::default()
        };
        let d = w
            .create_proof(&r)
            .unwrap()
            .expect("writer proves an upgrade");
        replica
            .verify_and_apply(&d)
            .expect("genuine upgrade verifies");
    }
    let r = Request {
        id: 2,
        block: Some(RequestBlock {
            index: block,
            nodes: nodes % 4,
        }),
        upgrade: upgrade.then_some(RequestUpgrade {
            start: 0,
            length: 12,
        }),
        ..Request::default()
    };
    let Ok(Some(d)) = w.create_proof(&r) else {
        return Ok(());
    };
    let bytes = fuzz_common::mutate(d.to_bytes(), &edits);
    if let Ok(tampered) = Data::from_bytes(&bytes) {
        let _ = replica.verify_and_apply(&tampered);
    }
    authentic(&replica, &w)
}

#[test]
fn hypercore_proofs() {
    fuzz(
        "hypercore_proofs",
        1_000,
        (proof_request(), fuzz_common::mutations()),
        |(req, edits)| proofs(req, edits),
    );
}

/// Two replicators over one channel: the writer's (initiator) and a fresh replica's. Message
/// number `t.at` (either direction) is altered; `inject` random messages are delivered to the
/// replica's side first.
fn replicate(blocks: usize, t: Tamper, inject: Vec<(u64, Vec<u8>)>) -> TestCaseResult {
    let mut w = writer(blocks);
    let mut replica = Core::in_memory_replica(w.key());
    let hash = [3u8; 64];
    let mut a = Replicator::new(w.key(), true, hash);
    let mut b = Replicator::new(w.key(), false, hash);
    a.set_max_inflight(4);
    b.set_max_inflight(4);
    let (ha, hb) = (a.local_handshake(), b.local_handshake());
    a.on_open(&mut w, &hb).expect("genuine handshake");
    b.on_open(&mut replica, &ha).expect("genuine handshake");
    let mut changed = false;
    let mut failed = false;
    for (ty, payload) in inject {
        changed = true;
        if b.on_message(&mut replica, ty % 12, &payload).is_err() {
            failed = true;
        }
    }
    let mut n = 0;
    'run: for _ in 0..400 {
        let (out_a, out_b) = (a.poll_transmit(), b.poll_transmit());
        if out_a.is_empty() && out_b.is_empty() || failed {
            break;
        }
        for (ty, payload) in out_a {
            let (payload, c) = t.apply(n, payload);
            n += 1;
            changed |= c;
            let before = (replica.length(), replica.contiguous_length());
            if b.on_message(&mut replica, ty, &payload).is_err() {
                failed = true;
                break 'run;
            }
            if (replica.length(), replica.contiguous_length()) != before {
                b.on_local_change(&mut replica);
            }
        }
        for (ty, payload) in out_b {
            let (payload, c) = t.apply(n, payload);
            n += 1;
            changed |= c;
            if a.on_message(&mut w, ty, &payload).is_err() {
                failed = true;
                break 'run;
            }
        }
    }
    authentic(&replica, &w)?;
    if !changed {
        prop_assert!(!failed);
        prop_assert_eq!(replica.length(), w.length());
        prop_assert_eq!(replica.contiguous_length(), w.length());
    }
    Ok(())
}

#[test]
fn hypercore_replication() {
    let inject = prop::collection::vec(
        (0u64..12, prop_oneof![raw(40), mutated_from(any_message())]),
        0..2,
    );
    fuzz(
        "hypercore_replication",
        300,
        (
            1usize..10,
            tamper(24, 60),
            prop_oneof![3 => Just(vec![]), 1 => inject],
        ),
        |(blocks, t, inject)| replicate(blocks, t, inject),
    );
}
