//! Unit tests of [`Core`]: proofs round trips, bad and mutated proofs, conflicts.

use super::*;
use crate::hypercore::encoding::CompactEncoding;
use crate::hypercore::messages::{Data, Request, RequestBlock, RequestSeek, RequestUpgrade};

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn block(i: u64) -> Vec<u8> {
    format!("block {i}|")
        .repeat(i as usize % 3 + 1)
        .into_bytes()
}

fn writer_with(n: u64) -> Core {
    let mut w = Core::in_memory(key(1));
    let blocks: Vec<Vec<u8>> = (0..n).map(block).collect();
    let refs: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
    w.append(&refs).unwrap();
    w
}

fn req_block(r: &Core, index: u64, upgrade: bool, w: &Core) -> Request {
    Request {
        id: 1,
        block: Some(RequestBlock {
            index,
            nodes: r.missing_nodes(2 * index).unwrap(),
        }),
        upgrade: upgrade.then(|| RequestUpgrade {
            start: r.length(),
            length: w.length() - r.length(),
        }),
        ..Default::default()
    }
}

fn req_upgrade(r: &Core, w: &Core) -> Request {
    Request {
        id: 2,
        upgrade: Some(RequestUpgrade {
            start: r.length(),
            length: w.length() - r.length(),
        }),
        ..Default::default()
    }
}

#[test]
fn upgrade_then_blocks_round_trip() {
    let w = writer_with(21);
    let mut r = Core::in_memory_replica(w.key());
    let up = w.create_proof(&req_upgrade(&r, &w)).unwrap().unwrap();
    let applied = r.verify_and_apply(&up).unwrap();
    assert_eq!(
        applied,
        Applied {
            upgraded: true,
            block: None,
            length: 21
        }
    );
    assert_eq!(r.byte_length(), w.byte_length());
    assert_eq!(r.signature(), w.signature());
    assert_eq!(r.contiguous_length(), 0);
    for i in (0..21).rev() {
        let d = w
            .create_proof(&req_block(&r, i, false, &w))
            .unwrap()
            .unwrap();
        let a = r.verify_and_apply(&d).unwrap();
        assert_eq!(a.block, Some(i));
        assert!(!a.upgraded);
        assert_eq!(r.get(i).unwrap().unwrap(), block(i));
    }
    assert_eq!(r.contiguous_length(), 21);
    // A replica can serve what it has.
    let mut r2 = Core::in_memory_replica(w.key());
    let d = r
        .create_proof(&req_block(&r2, 7, true, &r))
        .unwrap()
        .unwrap();
    r2.verify_and_apply(&d).unwrap();
    assert_eq!(r2.get(7).unwrap().unwrap(), block(7));
    assert_eq!(r2.get(8).unwrap(), None);
}

#[test]
fn block_with_upgrade_and_live_appends() {
    let mut w = writer_with(5);
    let mut r = Core::in_memory_replica(w.key());
    for round in 0..6u64 {
        let idx = w.length() - 1;
        let d = w
            .create_proof(&req_block(&r, idx, true, &w))
            .unwrap()
            .unwrap();
        let a = r.verify_and_apply(&d).unwrap();
        assert!(a.upgraded, "round {round}");
        assert_eq!(a.block, Some(idx));
        assert_eq!(r.length(), w.length());
        assert_eq!(r.tree_hash(), w.tree_hash());
        let next = w.length();
        w.append(&[&block(next), &block(next + 1)]).unwrap();
    }
    // Partial upgrade: additional nodes carry the rest of the tree.
    let d = w
        .create_proof(&Request {
            id: 3,
            upgrade: Some(RequestUpgrade {
                start: r.length(),
                length: 1,
            }),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
    assert!(!d.upgrade.as_ref().unwrap().additional_nodes.is_empty());
    r.verify_and_apply(&d).unwrap();
    assert_eq!(r.length(), w.length());
}

#[test]
fn seek_with_upgrade() {
    let w = writer_with(19);
    let mut r = Core::in_memory_replica(w.key());
    let mut offset = 0;
    for i in 0..12 {
        offset += block(i).len() as u64;
    }
    let req = Request {
        id: 4,
        seek: Some(RequestSeek {
            bytes: offset + 2,
            padding: 0,
        }),
        upgrade: Some(RequestUpgrade {
            start: 0,
            length: 19,
        }),
        ..Default::default()
    };
    let d = w.create_proof(&req).unwrap().unwrap();
    assert!(d.seek.is_some());
    let a = r.verify_and_apply(&d).unwrap();
    assert!(a.upgraded);
    // The seek proof delivered the path to block 12's leaf.
    assert_eq!(r.missing_nodes(24).unwrap(), 0);
}

#[test]
fn hash_request_round_trip() {
    let w = writer_with(16);
    let mut r = Core::in_memory_replica(w.key());
    r.verify_and_apply(&w.create_proof(&req_upgrade(&r, &w)).unwrap().unwrap())
        .unwrap();
    let req = Request {
        id: 5,
        hash: Some(RequestBlock {
            index: 5,
            nodes: r.missing_nodes(5).unwrap(),
        }),
        ..Default::default()
    };
    let d = w.create_proof(&req).unwrap().unwrap();
    r.verify_and_apply(&d).unwrap();
    assert_eq!(r.tree_node(5).unwrap(), w.tree_node(5).unwrap());
}

#[test]
fn bad_proofs_are_rejected_and_store_nothing() {
    let w = writer_with(13);
    let fresh = Core::in_memory_replica(w.key());
    let good = w
        .create_proof(&req_block(&fresh, 6, true, &w))
        .unwrap()
        .unwrap();

    let mut bad_sig = good.clone();
    bad_sig.upgrade.as_mut().unwrap().signature[3] ^= 1;
    let mut no_sig = good.clone();
    no_sig.upgrade.as_mut().unwrap().signature.clear();
    let mut bad_value = good.clone();
    bad_value.block.as_mut().unwrap().value.push(0);
    let mut bad_node = good.clone();
    bad_node.block.as_mut().unwrap().nodes[0].hash[0] ^= 1;
    let mut missing_node = good.clone();
    missing_node.block.as_mut().unwrap().nodes.pop();
    let mut bad_upgrade_node = good.clone();
    bad_upgrade_node.upgrade.as_mut().unwrap().nodes[0].size += 1;
    let mut wrong_fork = good.clone();
    wrong_fork.fork = 1;

    let other = Core::in_memory(key(2));
    type Case = (&'static str, Data, fn(&Error) -> bool);
    let cases: Vec<Case> = vec![
        ("bad signature", bad_sig, |e| {
            matches!(e, Error::InvalidSignature { .. })
        }),
        ("no signature", no_sig, |e| {
            matches!(e, Error::InvalidSignature { .. })
        }),
        ("bad value", bad_value, |e| {
            matches!(e, Error::InvalidSignature { .. })
        }),
        ("bad node hash", bad_node, |e| {
            matches!(e, Error::InvalidSignature { .. })
        }),
        ("missing node", missing_node, |e| {
            matches!(e, Error::InvalidProof(_))
        }),
        ("bad upgrade node", bad_upgrade_node, |e| {
            matches!(e, Error::InvalidSignature { .. })
        }),
        ("wrong fork", wrong_fork, |e| {
            matches!(e, Error::ForkMismatch { .. })
        }),
    ];
    for (name, data, want) in cases {
        let mut r = Core::in_memory_replica(w.key());
        let err = r.verify_and_apply(&data).unwrap_err();
        assert!(want(&err), "{name}: {err}");
        assert_eq!(r.length(), 0, "{name}");
        assert_eq!(r.tree_node(12).unwrap(), None, "{name} stored nodes");
    }
    // Right proof, wrong core.
    let mut r = Core::in_memory_replica(other.key());
    assert!(matches!(
        r.verify_and_apply(&good),
        Err(Error::InvalidSignature { .. })
    ));

    // Without upgrade, a block proof must end at a node we trust.
    let mut r = Core::in_memory_replica(w.key());
    r.verify_and_apply(&w.create_proof(&req_upgrade(&r, &w)).unwrap().unwrap())
        .unwrap();
    let mut d = w
        .create_proof(&req_block(&r, 2, false, &w))
        .unwrap()
        .unwrap();
    d.block.as_mut().unwrap().value[0] ^= 1;
    assert!(matches!(
        r.verify_and_apply(&d),
        Err(Error::InvalidProof(_))
    ));
    assert!(!r.has(2));

    // Truncated wire bytes never decode.
    let bytes = good.to_bytes();
    for cut in [1, 10, bytes.len() / 2, bytes.len() - 1] {
        assert!(Data::from_bytes(&bytes[..cut]).is_err());
    }
}

#[test]
fn invalid_and_unanswerable_requests() {
    let w = writer_with(8);
    // Upgrade past our length: INVALID_REQUEST.
    let req = Request {
        id: 1,
        upgrade: Some(RequestUpgrade {
            start: 0,
            length: 9,
        }),
        ..Default::default()
    };
    assert!(matches!(
        w.create_proof(&req),
        Err(Error::InvalidRequest(_))
    ));
    // nodes beyond the tree.
    let req = Request {
        id: 1,
        block: Some(RequestBlock {
            index: 1,
            nodes: 40,
        }),
        ..Default::default()
    };
    assert!(matches!(
        w.create_proof(&req),
        Err(Error::InvalidRequest(_))
    ));
    // Block we don't have / other fork: NOT_AVAILABLE.
    let mut r = Core::in_memory_replica(w.key());
    let req = Request {
        id: 1,
        block: Some(RequestBlock { index: 1, nodes: 0 }),
        ..Default::default()
    };
    assert_eq!(r.create_proof(&req).unwrap(), None);
    r.verify_and_apply(&w.create_proof(&req_upgrade(&r, &w)).unwrap().unwrap())
        .unwrap();
    assert_eq!(r.create_proof(&req).unwrap(), None);
    let req = Request { fork: 3, ..req };
    assert_eq!(w.create_proof(&req).unwrap(), None);
    // Replicas cannot append; writers refuse foreign upgrades to longer trees.
    assert!(matches!(r.append(&[b"x"]), Err(Error::NotWritable)));
}

/// xorshift64: deterministic pseudo-random numbers for the mutation tests.
fn rng(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn mutate_num(n: &mut u64, r: u64) {
    *n = match r % 6 {
        0 => n.wrapping_add(1),
        1 => n.wrapping_sub(1),
        2 => u64::MAX - (r >> 8) % 3,
        3 => r >> (r % 64),
        4 => *n ^ (1 << (r % 64)),
        _ => 0,
    };
}

#[test]
fn mutated_proofs_never_panic_or_corrupt() {
    let w = writer_with(27);
    let fresh = Core::in_memory_replica(w.key());
    let mut half = Core::in_memory_replica(w.key());
    half.verify_and_apply(&w.create_proof(&req_upgrade(&half, &w)).unwrap().unwrap())
        .unwrap();
    let seek = Request {
        id: 1,
        seek: Some(RequestSeek {
            bytes: 100,
            padding: 0,
        }),
        upgrade: Some(RequestUpgrade {
            start: 0,
            length: 27,
        }),
        ..Default::default()
    };
    let seeds = [
        w.create_proof(&req_block(&fresh, 9, true, &w))
            .unwrap()
            .unwrap(),
        w.create_proof(&req_block(&fresh, 26, true, &w))
            .unwrap()
            .unwrap(),
        w.create_proof(&seek).unwrap().unwrap(),
        w.create_proof(&req_block(&half, 3, false, &w))
            .unwrap()
            .unwrap(),
    ];
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    for round in 0..300 {
        let mut d = seeds[round % seeds.len()].clone();
        for _ in 0..(rng(&mut x) % 3 + 1) {
            let r = rng(&mut x);
            let mut nums: Vec<&mut u64> = vec![&mut d.fork, &mut d.request];
            if let Some(b) = &mut d.block {
                nums.push(&mut b.index);
                for n in &mut b.nodes {
                    nums.push(&mut n.index);
                    nums.push(&mut n.size);
                }
            }
            if let Some(s) = &mut d.seek {
                nums.push(&mut s.bytes);
                for n in &mut s.nodes {
                    nums.push(&mut n.index);
                }
            }
            if let Some(u) = &mut d.upgrade {
                nums.push(&mut u.start);
                nums.push(&mut u.length);
                for n in u.nodes.iter_mut().chain(u.additional_nodes.iter_mut()) {
                    nums.push(&mut n.index);
                    nums.push(&mut n.size);
                }
            }
            let k = (r >> 32) as usize % nums.len();
            mutate_num(nums[k], r);
            if r.is_multiple_of(11) {
                if let Some(u) = &mut d.upgrade {
                    let n = u.nodes.pop();
                    u.additional_nodes.extend(n);
                }
            }
        }
        for base in [&fresh, &half] {
            let mut r = Core::in_memory_replica(w.key());
            if base.length() > 0 {
                r.verify_and_apply(&w.create_proof(&req_upgrade(&r, &w)).unwrap().unwrap())
                    .unwrap();
            }
            if r.verify_and_apply(&d).is_ok() {
                // Whatever was accepted must be true.
                assert!(
                    r.length() == 0 || r.tree_hash() == w.tree_hash(),
                    "round {round}"
                );
                for i in 0..r.length() {
                    if let Some(v) = r.get(i).unwrap() {
                        assert_eq!(v, block(i), "round {round}");
                    }
                }
            }
        }
    }
    // Random requests: answered, or refused as invalid; never another error, never a panic.
    for _ in 0..3000 {
        let mut q = Request {
            id: 1,
            block: Some(RequestBlock {
                index: rng(&mut x) % 40,
                nodes: rng(&mut x) % 8,
            }),
            hash: None,
            seek: rng(&mut x).is_multiple_of(3).then(|| RequestSeek {
                bytes: rng(&mut x) % 800,
                padding: rng(&mut x) % 2,
            }),
            upgrade: rng(&mut x).is_multiple_of(2).then(|| RequestUpgrade {
                start: rng(&mut x) % 30,
                length: rng(&mut x) % 30,
            }),
            ..Default::default()
        };
        if rng(&mut x).is_multiple_of(2) {
            q.hash = q.block.take().map(|b| RequestBlock {
                index: b.index * 2 + rng(&mut x) % 3,
                ..b
            });
        }
        match w.create_proof(&q) {
            Ok(_) | Err(Error::InvalidRequest(_)) => {}
            Err(e) => panic!("{q:?}: {e}"),
        }
    }
}

#[test]
fn empty_core_answers_with_nothing() {
    let w = Core::in_memory(key(3));
    let d = w
        .create_proof(&Request {
            id: 9,
            upgrade: Some(RequestUpgrade {
                start: 0,
                length: 0,
            }),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
    assert_eq!(d.upgrade, None);
    assert_eq!(d.request, 9);
}

/// What a fork check asks: the last block both should hold, with an upgrade from 0.
fn req_check(index: u64, theirs: u64) -> Request {
    Request {
        id: 7,
        block: Some(RequestBlock { index, nodes: 0 }),
        upgrade: Some(RequestUpgrade {
            start: 0,
            length: theirs,
        }),
        ..Default::default()
    }
}

/// A full replica of `w`.
fn replica_of(w: &Core) -> Core {
    let mut r = Core::in_memory_replica(w.key());
    r.verify_and_apply(&w.create_proof(&req_upgrade(&r, w)).unwrap().unwrap())
        .unwrap();
    for i in 0..w.length() {
        let d = w
            .create_proof(&req_block(&r, i, false, w))
            .unwrap()
            .unwrap();
        r.verify_and_apply(&d).unwrap();
    }
    r
}

#[test]
fn two_signed_trees_at_one_length_are_a_conflict() {
    // Two writers with the same key and history, then different blocks: a forked archive.
    let mut a = writer_with(6);
    let mut b = writer_with(6);
    a.append(&[b"written by copy a"]).unwrap();
    b.append(&[b"written by copy b"]).unwrap();
    let mut r = replica_of(&a);
    assert_eq!(r.conflict(), None);

    // b is as long as our replica: its signed tree at 7 differs from ours.
    let d = b.create_proof(&req_check(6, 7)).unwrap().unwrap();
    assert_eq!(r.check_conflict(&d).unwrap(), Some(7));
    assert_eq!(r.conflict(), Some(7));
    assert_eq!(
        r.get(6).unwrap().unwrap(),
        b"written by copy a",
        "ours is kept"
    );

    // b is longer: its tree at 9 does not contain ours at 7.
    b.append(&[b"x", b"y"]).unwrap();
    let mut r = replica_of(&a);
    let d = b.create_proof(&req_check(6, 9)).unwrap().unwrap();
    assert_eq!(r.check_conflict(&d).unwrap(), Some(7));
    // The ordinary upgrade from our length fails to verify (what starts a fork check).
    assert!(r
        .verify_and_apply(&b.create_proof(&req_upgrade(&r, &b)).unwrap().unwrap())
        .is_err());
    assert_eq!(r.length(), 7);

    // b is shorter and a prefix of ours: no conflict.
    let mut r = replica_of(&a);
    let c = writer_with(6);
    let d = c.create_proof(&req_check(5, 6)).unwrap().unwrap();
    assert_eq!(r.check_conflict(&d).unwrap(), None);
    // The honest writer, longer: no conflict either.
    a.append(&[b"more from a"]).unwrap();
    let d = a.create_proof(&req_check(6, 8)).unwrap().unwrap();
    assert_eq!(r.check_conflict(&d).unwrap(), None);
    assert_eq!(r.conflict(), None);

    // A proof that does not verify is an error, not a conflict.
    let mut d = b.create_proof(&req_check(6, 9)).unwrap().unwrap();
    d.upgrade.as_mut().unwrap().signature[0] ^= 1;
    assert!(r.check_conflict(&d).is_err());
    assert_eq!(r.conflict(), None);
}

#[cfg(all(unix, feature = "native"))]
mod disk;
