//! Fuzz targets: the signalling blocks a lobby reads from other people's logs
//! (src/signal): [`Signal::from_block`] (JSON envelope, base64, sealed box, JSON signal),
//! [`seal::open`], the offer signature check [`verify_offer`], and the SPAKE2 password messages
//! ([`pake::Host::respond`], [`pake::Joiner::finish`], [`pake::Host::check`]).
//!
//! Inputs: random bytes, mutated real blocks, and real sealed boxes around mutated signal JSON
//! (so the inner parser is reached). Nothing may panic; whatever opens re-seals to itself; an
//! altered box never opens; an altered PAKE exchange never succeeds.

mod fuzz_common;

use dat_social::keys::LogKey;
use dat_social::signal::message::{b64, sign_offer, unb64, verify_offer};
use dat_social::signal::{pake, seal, RejectReason, Signal};
use ed25519_dalek::SigningKey;
use fuzz_common::{fuzz, mutated, mutated_from, raw, tamper, Tamper};
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

fn me() -> SigningKey {
    SigningKey::from_bytes(&[21; 32])
}

fn me_pub() -> LogKey {
    LogKey::from_bytes(me().verifying_key().to_bytes())
}

/// Two log keys (`[1; 32]`, `[2; 32]`) that offers and password exchanges are bound to.
fn logs() -> (LogKey, LogKey) {
    (LogKey::from_bytes([1; 32]), LogKey::from_bytes([2; 32]))
}

fn signals() -> Vec<Signal> {
    let ident = SigningKey::from_bytes(&[22; 32]);
    vec![
        Signal::Offer {
            sdp: r#"{"type":"offer","sdp":"v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"}"#.into(),
            identity: hex::encode(ident.verifying_key().to_bytes()),
            name: "bob".into(),
            signature: sign_offer(&ident, &logs().0, &logs().1),
            pake: Some(b64(&[9; 33])),
            chat_stream: Some(0),
        },
        Signal::Challenge {
            pake: b64(&[8; 33]),
            mac: b64(&[7; 32]),
        },
        Signal::Confirm { mac: b64(&[6; 32]) },
        Signal::Answer {
            sdp: r#"{"type":"answer","sdp":"v=0\r\n"}"#.into(),
            chat_stream: Some(0),
        },
        Signal::Reject {
            reason: RejectReason::FriendsOnly,
        },
        Signal::Candidate {
            candidate: "candidate:1 1 udp 2113937151 192.0.2.7 54321 typ host".into(),
        },
    ]
}

/// A block with `plain` (any bytes) sealed to us, as a sender would write it.
fn block_around(plain: &[u8]) -> Vec<u8> {
    let sealed = seal::seal(me_pub().as_bytes(), plain).expect("our key is a valid recipient");
    format!(
        r#"{{"to":"{}","box":"{}"}}"#,
        hex::encode(me_pub()),
        b64(&sealed)
    )
    .into_bytes()
}

fn check_block(block: &[u8]) -> TestCaseResult {
    let key = me();
    if let Ok(Some(sig)) = Signal::from_block(block, &key) {
        let again = sig.to_block(&me_pub()).expect("a signal that fit re-seals");
        prop_assert_eq!(Signal::from_block(&again, &key).ok().flatten(), Some(sig));
    }
    Ok(())
}

#[test]
fn signal_block_raw_and_mutated() {
    let key = me_pub();
    let seeds: Vec<Vec<u8>> = signals()
        .iter()
        .map(|s| s.to_block(&key).unwrap())
        .collect();
    fuzz(
        "signal_block_raw_and_mutated",
        2_000,
        prop_oneof![raw(300), mutated(seeds)],
        |b| check_block(&b),
    );
}

#[test]
fn signal_block_inner_json() {
    let seeds: Vec<Vec<u8>> = signals()
        .iter()
        .map(|s| serde_json::to_vec(s).unwrap())
        .collect();
    fuzz(
        "signal_block_inner_json",
        1_000,
        prop_oneof![raw(100), mutated(seeds)],
        |plain| check_block(&block_around(&plain)),
    );
}

#[test]
fn signal_sealed_box() {
    let seeds: Vec<Vec<u8>> = (0..4)
        .map(|n| seal::seal(me_pub().as_bytes(), &vec![n; n as usize * 10]).unwrap())
        .collect();
    fuzz(
        "signal_sealed_box",
        2_000,
        prop_oneof![raw(120), mutated(seeds.clone())],
        |sealed| {
            let opened = seal::open(&me(), &sealed);
            if let Ok(plain) = &opened {
                // Only an untouched box opens (the MAC covers everything).
                prop_assert!(seeds.contains(&sealed), "an altered box opened");
                prop_assert_eq!(plain.len() + seal::SEAL_OVERHEAD, sealed.len());
            }
            let _ = unb64(&String::from_utf8_lossy(&sealed));
            Ok(())
        },
    );
}

#[test]
fn signal_offer_signature() {
    let ident = SigningKey::from_bytes(&[22; 32]);
    let id_hex = hex::encode(ident.verifying_key().to_bytes()).into_bytes();
    let sig_hex = sign_offer(&ident, &logs().0, &logs().1).into_bytes();
    fuzz(
        "signal_offer_signature",
        1_000,
        (
            prop_oneof![raw(70), mutated_from(Just(id_hex.clone()))],
            prop_oneof![raw(130), mutated_from(Just(sig_hex.clone()))],
        ),
        |(id, sig)| {
            let (id, sig) = (String::from_utf8_lossy(&id), String::from_utf8_lossy(&sig));
            if verify_offer(&id, &sig, &logs().0, &logs().1).is_ok() {
                // Hex is case-insensitive; anything else that verifies would be a forgery.
                prop_assert_eq!(id.to_lowercase().into_bytes(), id_hex.clone());
                prop_assert_eq!(sig.to_lowercase().into_bytes(), sig_hex.clone());
            }
            Ok(())
        },
    );
}

/// One password exchange: joiner `msg_a` (message 0) -> host `msg_b`, `host_mac` (1, 2) ->
/// joiner `joiner_mac` (3), with message `t.at` altered.
fn pake_exchange(same_password: bool, t: Tamper) -> TestCaseResult {
    let (jl, ll) = logs();
    let host_pw: &[u8] = if same_password {
        b"hunter2"
    } else {
        b"hunter3"
    };
    let (joiner, msg_a) = pake::Joiner::start(b"hunter2", &jl, &ll);
    let (msg_a, c0) = t.apply(0, msg_a);
    let Ok((host, msg_b, host_mac)) = pake::Host::respond(host_pw, &jl, &ll, &msg_a) else {
        prop_assert!(c0, "host refused a genuine msg_a");
        return Ok(());
    };
    let (msg_b, c1) = t.apply(1, msg_b);
    let (host_mac, c2) = t.apply(2, host_mac.to_vec());
    let changed = c0 || c1 || c2;
    match joiner.finish(&msg_b, &host_mac) {
        Ok(joiner_mac) => {
            prop_assert!(
                same_password && !changed,
                "joiner accepted a wrong or altered challenge"
            );
            let (joiner_mac, c3) = t.apply(3, joiner_mac.to_vec());
            prop_assert_eq!(host.check(&joiner_mac).is_ok(), !c3);
        }
        Err(_) => prop_assert!(changed || !same_password, "genuine exchange failed"),
    }
    Ok(())
}

#[test]
fn signal_pake() {
    fuzz(
        "signal_pake",
        300,
        (any::<bool>(), tamper(4, 40)),
        |(same, t)| pake_exchange(same, t),
    );
}

/// Random joiner messages and confirmations straight to a host.
#[test]
fn signal_pake_raw() {
    fuzz(
        "signal_pake_raw",
        500,
        (raw(40), raw(40)),
        |(msg_a, mac)| {
            if let Ok((host, _, _)) = pake::Host::respond(b"pw", &logs().0, &logs().1, &msg_a) {
                prop_assert!(host.check(&mac).is_err());
            }
            Ok(())
        },
    );
}
