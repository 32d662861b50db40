//! Fuzz targets: the Noise handshake message readers ([`NoiseXx::read_message`] of
//! secret-stream, [`NoiseIk::read_message`] of hyperdht / the relay) and hyperdht's
//! `noisePayload` decoder ([`NoisePayload::decode`]).
//!
//! The handshakes run live between two real parties while a man in the middle alters one
//! message (mutates it or replaces it with random bytes): nothing may panic, an untouched
//! exchange must complete with matching keys, and an altered one must never complete on both
//! sides with matching keys.

mod fuzz_common;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use dat_social::dht::{ns_peer_handshake, HolepunchInfo, NoisePayload, RelayThroughInfo, UdxInfo};
use dat_social::net::noise::{HandshakeOutcome, NoiseIk, NoiseXx};
use ed25519_dalek::SigningKey;
use fuzz_common::{fuzz, mutated_from, raw, tamper, Tamper};
use proptest::prelude::*;

fn keys(seed: u8) -> (SigningKey, SigningKey) {
    (
        SigningKey::from_bytes(&[seed; 32]),
        SigningKey::from_bytes(&[seed.wrapping_add(1); 32]),
    )
}

/// The two outcomes agree: each side's tx is the other's rx, same hash, and each knows the
/// other's real key.
fn agree(a: &HandshakeOutcome, b: &HandshakeOutcome, ka: &SigningKey, kb: &SigningKey) -> bool {
    a.tx == b.rx
        && a.rx == b.tx
        && a.handshake_hash == b.handshake_hash
        && a.remote_public_key == kb.verifying_key().to_bytes()
        && b.remote_public_key == ka.verifying_key().to_bytes()
}

/// The end of a run (`changed`: a message was altered): both ends completed and agree exactly
/// when nothing was altered; an untouched `name` handshake completes.
fn check_outcome(
    i: Option<&HandshakeOutcome>,
    r: Option<&HandshakeOutcome>,
    ka: &SigningKey,
    kb: &SigningKey,
    changed: bool,
    name: &str,
) -> Result<(), TestCaseError> {
    match (i, r) {
        (Some(a), Some(b)) => {
            let ok = agree(a, b, ka, kb);
            prop_assert!(
                ok != changed,
                "agreement {ok} with an altered message: {changed}"
            );
        }
        _ => prop_assert!(changed, "untouched {name} handshake did not complete"),
    }
    Ok(())
}

fn xx(seed: u8, t: Tamper) -> Result<(), TestCaseError> {
    let (ka, kb) = keys(seed);
    let mut i = NoiseXx::new(true, &ka);
    let mut r = NoiseXx::new(false, &kb);
    let mut changed = false;
    // Messages 0 and 2 go initiator -> responder, message 1 the other way.
    for n in 0..3 {
        let (from, to) = if n == 1 {
            (&mut r, &mut i)
        } else {
            (&mut i, &mut r)
        };
        let Ok(m) = from.write_message() else { break };
        let (m, c) = t.apply(n, m);
        changed |= c;
        if to.read_message(&m).is_err() {
            break;
        }
    }
    check_outcome(i.outcome(), r.outcome(), &ka, &kb, changed, "XX")
}

fn ik(seed: u8, p1: Vec<u8>, p2: Vec<u8>, t: Tamper) -> Result<(), TestCaseError> {
    let (ka, kb) = keys(seed);
    let prologue = ns_peer_handshake();
    let mut i = NoiseIk::initiator(&ka, kb.verifying_key().to_bytes(), &prologue);
    let mut r = NoiseIk::responder(&kb, &prologue);
    let mut changed = false;
    'run: {
        let m1 = i.write_message(&p1).expect("initiator writes message 1");
        let (m1, c) = t.apply(0, m1);
        changed |= c;
        let Ok(got1) = r.read_message(&m1) else {
            break 'run;
        };
        if !changed {
            prop_assert_eq!(&got1, &p1);
            prop_assert_eq!(r.remote_public_key(), Some(ka.verifying_key().to_bytes()));
        }
        let Ok(m2) = r.write_message(&p2) else {
            break 'run;
        };
        let (m2, c) = t.apply(1, m2);
        changed |= c;
        let Ok(got2) = i.read_message(&m2) else {
            break 'run;
        };
        if !changed {
            prop_assert_eq!(&got2, &p2);
        }
    }
    check_outcome(i.outcome(), r.outcome(), &ka, &kb, changed, "IK")
}

#[test]
fn noise_xx_handshake() {
    fuzz(
        "noise_xx_handshake",
        500,
        (any::<u8>(), tamper(3, 200)),
        |(seed, t)| xx(seed, t),
    );
}

#[test]
fn noise_ik_handshake() {
    let payload = prop_oneof![raw(80), valid_payload().prop_map(|p| p.encode())];
    fuzz(
        "noise_ik_handshake",
        500,
        (any::<u8>(), payload.clone(), payload, tamper(2, 300)),
        |(seed, p1, p2, t)| ik(seed, p1, p2, t),
    );
}

fn v4() -> impl Strategy<Value = SocketAddrV4> + Clone {
    (any::<u32>(), any::<u16>()).prop_map(|(ip, port)| SocketAddrV4::new(Ipv4Addr::from(ip), port))
}

/// Any payload hyperdht could send (the encoder writes version 1 for the payload, udx and
/// relayThrough, so those are 1 here).
fn valid_payload() -> impl Strategy<Value = NoisePayload> + Clone {
    let v6 = (any::<u128>(), any::<u16>())
        .prop_map(|(ip, port)| SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, 0));
    let holepunch = (any::<u64>(), prop::collection::vec((v4(), v4()), 0..3))
        .prop_map(|(id, relays)| HolepunchInfo { id, relays });
    let udx = (any::<bool>(), any::<u64>(), any::<u64>()).prop_map(|(r, id, seq)| UdxInfo {
        version: 1,
        reusable_socket: r,
        id,
        seq,
    });
    let relay =
        (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(public_key, token)| RelayThroughInfo {
            version: 1,
            public_key,
            token,
        });
    (
        (any::<u64>(), 0u64..4),
        prop::option::of(holepunch),
        prop::collection::vec(v4(), 0..3),
        prop::collection::vec(v6, 0..3),
        prop::option::of(udx),
        prop::option::of(0u64..3),
        prop::option::of(relay),
        prop::option::of(prop::collection::vec(v4(), 0..3)),
    )
        .prop_map(
            |((error, firewall), holepunch, a4, a6, udx, ss, relay_through, relay_addresses)| {
                NoisePayload {
                    version: 1,
                    error,
                    firewall,
                    holepunch,
                    addresses4: a4,
                    addresses6: a6,
                    udx,
                    // The encoder always writes secretStream version 1.
                    secret_stream: ss.map(|_| 1),
                    relay_through,
                    relay_addresses,
                }
            },
        )
}

#[test]
fn noise_payload_round_trip() {
    fuzz("noise_payload_round_trip", 2_000, valid_payload(), |p| {
        prop_assert_eq!(NoisePayload::decode(&p.encode()), Ok(p));
        Ok(())
    });
}

/// Whatever decodes is stable: re-encoding it decodes to the same payload.
fn payload_decode(bytes: Vec<u8>) -> Result<(), TestCaseError> {
    if let Ok(p) = NoisePayload::decode(&bytes) {
        if p.version == 1 {
            let normal = NoisePayload::decode(&p.encode()).expect("re-encoding decodes");
            prop_assert_eq!(NoisePayload::decode(&normal.encode()), Ok(normal));
        }
    }
    Ok(())
}

#[test]
fn noise_payload_decode() {
    let input = prop_oneof![
        raw(120),
        mutated_from(valid_payload().prop_map(|p| p.encode()))
    ];
    fuzz("noise_payload_decode", 2_000, input, payload_decode);
}
