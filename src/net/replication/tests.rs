//! Unit tests of the replicator: two replicators pumped in memory, JS-shaped messages, hostile input.

use super::*;

#[test]
fn remote_ranges_track_has_and_drop() {
    let mut r = Remote::default();
    r.set_range(10, 20, true);
    assert!(!r.has(9) && r.has(10) && r.has(19) && !r.has(20));
    r.set_range(0, 10, true);
    assert_eq!(r.contiguous, 20);
    assert!(r.ranges.is_empty());
    r.set_range(5, 8, false);
    assert!(r.has(4) && !r.has(5) && !r.has(7) && r.has(8) && r.has(19));
    r.set_range(30, 40, true);
    r.set_range(35, 50, true);
    assert!(r.has(45) && !r.has(50) && !r.has(29));
    r.set_range(0, u64::MAX, false);
    assert!(!r.has(0) && !r.has(45));
    r.set_range(u64::MAX - 1, u64::MAX, true);
    assert!(r.has(u64::MAX - 1));
    // Scattered announcements are bounded.
    let mut r = Remote::default();
    for i in 0..(MAX_REMOTE_RANGES as u64 + 10) {
        r.set_range(10 + 2 * i, 11 + 2 * i, true);
    }
    assert_eq!(r.ranges.len(), MAX_REMOTE_RANGES);
    assert!(r.has(10));
}

use crate::hypercore::Core;
use ed25519_dalek::SigningKey;

/// Delivers queued messages both ways until neither side has anything to say.
fn pump(a: &mut Replicator, ca: &mut Core, b: &mut Replicator, cb: &mut Core) -> usize {
    let mut rounds = 0;
    for _ in 0..10_000 {
        let (oa, ob) = (a.poll_transmit(), b.poll_transmit());
        if oa.is_empty() && ob.is_empty() {
            break;
        }
        rounds += 1;
        for (t, p) in oa {
            b.on_message(cb, t, &p).unwrap();
        }
        for (t, p) in ob {
            a.on_message(ca, t, &p).unwrap();
        }
        // What the driver does after each batch: tell both sides their core may have changed.
        a.on_local_change(ca);
        b.on_local_change(cb);
    }
    rounds
}

#[test]
fn sans_io_writer_and_reader_converge_live() {
    let hash = [5u8; 64];
    let mut writer = Core::in_memory(SigningKey::from_bytes(&[8; 32]));
    for i in 0..300u32 {
        writer.append(&[format!("b{i}").as_bytes()]).unwrap();
    }
    let mut reader = Core::in_memory_replica(writer.key());
    let mut a = Replicator::new(writer.key(), true, hash);
    let mut b = Replicator::new(writer.key(), false, hash);
    a.set_max_inflight(16);
    b.on_open(&mut reader, &a.local_handshake()).unwrap();
    a.on_open(&mut writer, &b.local_handshake()).unwrap();
    pump(&mut a, &mut writer, &mut b, &mut reader);
    assert_eq!(reader.length(), 300);
    assert_eq!(reader.contiguous_length(), 300);
    for i in 0..5u32 {
        writer.append(&[format!("live{i}").as_bytes()]).unwrap();
        a.on_local_change(&mut writer);
        pump(&mut a, &mut writer, &mut b, &mut reader);
        assert_eq!(
            reader.get(300 + i as u64).unwrap().unwrap(),
            format!("live{i}").as_bytes()
        );
    }
    assert_eq!(reader.tree_hash(), writer.tree_hash());
    assert!(b.stats().data_applied >= 305);
    assert_eq!(b.stats().data_invalid, 0);
}

/// Replicates `reader` from `writer` over a fresh pair of replicators until quiet; returns
/// the reader's side.
fn sync_from(writer: &mut Core, reader: &mut Core) -> Replicator {
    let hash = [6u8; 64];
    let mut a = Replicator::new(writer.key(), true, hash);
    let mut b = Replicator::new(writer.key(), false, hash);
    b.on_open(reader, &a.local_handshake()).unwrap();
    a.on_open(writer, &b.local_handshake()).unwrap();
    pump(&mut a, writer, &mut b, reader);
    b
}

#[test]
fn a_forked_archive_is_reported_not_waited_for() {
    let key = SigningKey::from_bytes(&[8; 32]);
    let history = |core: &mut Core| {
        for i in 0..10u32 {
            core.append(&[format!("b{i}").as_bytes()]).unwrap();
        }
    };
    // Two copies of one writer: same history, then each writes its own block(s).
    let (mut a, mut b, mut c) = (
        Core::in_memory(key.clone()),
        Core::in_memory(key.clone()),
        Core::in_memory(key.clone()),
    );
    history(&mut a);
    history(&mut b);
    history(&mut c);
    a.append(&[b"session from copy a"]).unwrap();
    b.append(&[b"session from copy b"]).unwrap();
    c.append(&[b"session from copy c", b"and more"]).unwrap();

    let mut reader = Core::in_memory_replica(a.key());
    let rep = sync_from(&mut a, &mut reader);
    assert_eq!((reader.length(), reader.contiguous_length()), (11, 11));
    assert_eq!(rep.forked(), None, "the honest copy is no fork");
    assert_eq!(reader.conflict(), None);

    // As long as ours, another tree: found by the one check per connection.
    let rep = sync_from(&mut b, &mut reader);
    assert_eq!(rep.forked(), Some(11));
    assert_eq!(reader.conflict(), Some(11));
    assert_eq!(reader.get(10).unwrap().unwrap(), b"session from copy a");

    // Longer, another tree: its upgrade fails, the check proves why.
    let mut reader = Core::in_memory_replica(a.key());
    sync_from(&mut a, &mut reader);
    let rep = sync_from(&mut c, &mut reader);
    assert_eq!(rep.forked(), Some(11));
    assert_eq!(reader.length(), 11, "nothing from the other tree is taken");
    assert!(rep.stats().data_invalid >= 1);

    // The honest writer, longer: plain upgrade, no conflict.
    let mut reader = Core::in_memory_replica(a.key());
    sync_from(&mut a, &mut reader);
    a.append(&[b"heartbeat"]).unwrap();
    let rep = sync_from(&mut a, &mut reader);
    assert_eq!((reader.length(), rep.forked()), (12, None));
    assert_eq!(reader.conflict(), None);
}

#[test]
fn wrong_capability_and_garbage_are_errors() {
    let mut core = Core::in_memory(SigningKey::from_bytes(&[8; 32]));
    let mut a = Replicator::new(core.key(), true, [1; 64]);
    // A capability made for another session (different handshake hash).
    let other = Replicator::new(core.key(), false, [2; 64]);
    assert!(matches!(
        a.on_open(&mut core, &other.local_handshake()),
        Err(ReplicationError::InvalidCapability(_))
    ));
    assert!(matches!(
        a.on_open(&mut core, &[1, 2]),
        Err(ReplicationError::Decode { .. })
    ));
    let good = Replicator::new(core.key(), false, [1; 64]);
    a.on_open(&mut core, &good.local_handshake()).unwrap();
    for t in 0..10 {
        let r = a.on_message(&mut core, t, &[0xff]);
        assert!(
            matches!(r, Err(ReplicationError::Decode { .. })),
            "type {t}: {r:?}"
        );
    }
    // Unknown message types are ignored, as JS does.
    a.on_message(&mut core, 42, &[1, 2, 3]).unwrap();
}

#[test]
fn random_messages_never_panic() {
    let mut writer = Core::in_memory(SigningKey::from_bytes(&[8; 32]));
    for i in 0..40u32 {
        writer.append(&[format!("b{i}").as_bytes()]).unwrap();
    }
    let mut replica = Core::in_memory_replica(writer.key());
    let hash = [3u8; 64];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for core in [&mut writer, &mut replica] {
        let mut rep = Replicator::new(core.key(), true, hash);
        let peer = Replicator::new(core.key(), false, hash);
        rep.on_open(core, &peer.local_handshake()).unwrap();
        for _ in 0..20_000 {
            let t = next() % 11;
            let len = (next() % 48) as usize;
            // Small byte values make valid-looking varints, flags and lengths likely.
            let payload: Vec<u8> = (0..len).map(|_| (next() % 8) as u8).collect();
            let _ = rep.on_message(core, t, &payload);
            rep.poll_transmit();
        }
    }
    assert_eq!(writer.length(), 40);
}

#[test]
fn capability_is_checked_against_the_other_role() {
    let key = CoreKey::from_bytes([7u8; 32]);
    let hash = [9u8; 64];
    let a = Replicator::new(key, true, hash);
    let b = Replicator::new(key, false, hash);
    let ha = Handshake::from_bytes(&a.local_handshake()).unwrap();
    let hb = Handshake::from_bytes(&b.local_handshake()).unwrap();
    assert_ne!(ha.capability, hb.capability);
    // What b expects from a is a's capability.
    let expected_by_b = crate::hypercore::crypto::replicate_capability(true, key.as_bytes(), &hash);
    assert_eq!(ha.capability, expected_by_b);
}

/// The core's own error reaches the replicator as itself, not as text: a proof that does not
/// verify is [`crate::hypercore::Error`]'s proof or signature variant, so a caller can tell it
/// from a storage failure.
#[test]
fn a_bad_proof_is_the_cores_typed_error() {
    use crate::hypercore::messages::{Request, RequestBlock, RequestUpgrade};
    let mut writer = Core::in_memory(SigningKey::from_bytes(&[8; 32]));
    writer.append(&[b"one".as_slice(), b"two"]).unwrap();
    let mut reader = Core::in_memory_replica(writer.key());
    let request = Request {
        id: 1,
        block: Some(RequestBlock { index: 1, nodes: 0 }),
        upgrade: Some(RequestUpgrade {
            start: 0,
            length: 2,
        }),
        ..Request::default()
    };
    let mut data = ReplicaCore::create_proof(&mut writer, &request)
        .unwrap()
        .expect("the writer serves its own block");
    data.block.as_mut().unwrap().value = b"tampered".to_vec();
    let err = ReplicaCore::verify_and_apply(&mut reader, &data).unwrap_err();
    assert!(
        matches!(
            err,
            crate::hypercore::Error::InvalidProof(_)
                | crate::hypercore::Error::InvalidSignature { .. }
        ),
        "{err:?}"
    );
    assert_eq!(reader.length(), 0, "nothing of a bad proof is stored");
}

/// An empty replica of a writer with `n` blocks: the reader's first requests (after the
/// writer's `sync` and `range`) and the writer's answers to them, not yet delivered.
fn first_flight(n: u32) -> (Core, Replicator, Vec<(u64, Vec<u8>)>) {
    let hash = [7u8; 64];
    let mut writer = Core::in_memory(SigningKey::from_bytes(&[9; 32]));
    for i in 0..n {
        writer.append(&[format!("b{i}").as_bytes()]).unwrap();
    }
    let mut reader = Core::in_memory_replica(writer.key());
    let mut a = Replicator::new(writer.key(), true, hash);
    let mut b = Replicator::new(writer.key(), false, hash);
    b.on_open(&mut reader, &a.local_handshake()).unwrap();
    a.on_open(&mut writer, &b.local_handshake()).unwrap();
    let _ = b.poll_transmit(); // the reader's sync of length 0: nothing for the writer to do
    for (t, p) in a.poll_transmit() {
        b.on_message(&mut reader, t, &p).unwrap();
    }
    let requests = b.poll_transmit();
    for (t, p) in requests {
        a.on_message(&mut writer, t, &p).unwrap();
    }
    (reader, b, a.poll_transmit())
}

#[test]
fn an_empty_replica_gets_every_block_in_the_upgrades_round_trip() {
    // 21 blocks: three roots (16 + 4 + 1 leaves), so proofs end at roots of every depth.
    let (mut reader, mut b, answers) = first_flight(21);
    let datas = answers.iter().filter(|(t, _)| *t == msg_type::DATA).count();
    assert_eq!(
        datas, 21,
        "one request for the upgrade with block 0, one per other block"
    );
    for (t, p) in answers {
        b.on_message(&mut reader, t, &p).unwrap();
    }
    assert_eq!(reader.length(), 21);
    assert_eq!(reader.contiguous_length(), 21);
    assert_eq!(b.stats().data_applied, 21);
    assert_eq!(b.stats().data_invalid, 0);
}

#[test]
fn blocks_asked_ahead_that_arrive_before_the_upgrade_are_asked_again_not_held_against_the_peer() {
    let (mut reader, mut b, mut answers) = first_flight(5);
    // The upgrade (with block 0) last, as a peer answering out of order might.
    let upgrade = answers.remove(
        answers
            .iter()
            .position(|(t, p)| {
                *t == msg_type::DATA && Data::from_bytes(p).unwrap().upgrade.is_some()
            })
            .unwrap(),
    );
    answers.push(upgrade);
    for (t, p) in answers {
        b.on_message(&mut reader, t, &p).unwrap();
    }
    assert_eq!(reader.length(), 5);
    assert_eq!(b.stats().data_invalid, 0);
    let again: Vec<u64> = b
        .poll_transmit()
        .into_iter()
        .filter(|(t, _)| *t == msg_type::REQUEST)
        .map(|(_, p)| Request::from_bytes(&p).unwrap().block.unwrap().index)
        .collect();
    assert_eq!(again, vec![1, 2, 3, 4]);
}
