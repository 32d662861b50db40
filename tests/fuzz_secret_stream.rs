//! Fuzz targets: secret-stream's byte-stream framing ([`FrameDecoder`]), its handshake
//! ([`Handshake::on_frame`]: Noise XX messages then the id+header frame) and its record
//! decryption ([`Decryptor::decrypt`]).
//!
//! - the frame decoder gets random byte streams cut into random chunks, and must agree with a
//!   plain reference split;
//! - the handshake runs live between two real parties while one frame is altered (mutated or
//!   replaced by random bytes): no panic; untouched, both sides finish with each other's keys
//!   and exchange a record; altered, the alteration is caught by the first record at the latest;
//! - the decryptor gets a real header and real records with one altered, inserted, dropped or
//!   replayed: no panic, every record before the first alteration decrypts to its plaintext,
//!   and an altered record never decrypts.

mod fuzz_common;

use dat_social::net::noise::HandshakeOutcome;
use dat_social::net::secret_stream::{
    frame, from_handshake, FrameDecoder, Handshake, SecretStreamError,
};
use ed25519_dalek::SigningKey;
use fuzz_common::{fuzz, raw, tamper, Edit, Tamper};
use proptest::prelude::*;

/// The frames a reference parser finds in `stream` (complete ones only).
fn reference_frames(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while stream.len() - at >= 3 {
        let len =
            stream[at] as usize | (stream[at + 1] as usize) << 8 | (stream[at + 2] as usize) << 16;
        if stream.len() - at - 3 < len {
            break;
        }
        out.push(stream[at + 3..at + 3 + len].to_vec());
        at += 3 + len;
    }
    out
}

fn decode_in_chunks(stream: &[u8], cuts: &[usize]) -> Result<(), TestCaseError> {
    let mut d = FrameDecoder::new();
    let mut got = Vec::new();
    let mut at = 0;
    for cut in cuts.iter().copied().chain([usize::MAX]) {
        let end = if cut == usize::MAX {
            stream.len()
        } else {
            (at + cut % 64).min(stream.len())
        };
        d.push(&stream[at..end]);
        at = end;
        while let Some(f) = d.next_frame() {
            got.push(f);
        }
        if at == stream.len() {
            break;
        }
    }
    let want = reference_frames(stream);
    let consumed: usize = want.iter().map(|f| 3 + f.len()).sum();
    prop_assert_eq!(got, want);
    prop_assert_eq!(d.buffered(), stream.len() - consumed);
    prop_assert_eq!(d.take_rest(), stream[consumed..].to_vec());
    Ok(())
}

#[test]
fn secret_stream_frame_decoder_raw() {
    fuzz(
        "secret_stream_frame_decoder_raw",
        2_000,
        (raw(300), prop::collection::vec(any::<usize>(), 0..10)),
        |(stream, cuts)| decode_in_chunks(&stream, &cuts),
    );
}

#[test]
fn secret_stream_frame_decoder_round_trip() {
    let bodies = prop::collection::vec(raw(100), 0..6);
    fuzz(
        "secret_stream_frame_decoder_round_trip",
        2_000,
        (bodies, prop::collection::vec(any::<usize>(), 0..10), raw(2)),
        |(bodies, cuts, tail)| {
            let mut stream: Vec<u8> = bodies.iter().flat_map(|b| frame(b)).collect();
            stream.extend_from_slice(&tail);
            prop_assert_eq!(reference_frames(&stream)[..bodies.len()].to_vec(), bodies);
            decode_in_chunks(&stream, &cuts)
        },
    );
}

/// Runs a full secret-stream handshake, frame by frame, altering frame number `t.at`.
fn handshake(seed: u8, t: Tamper) -> Result<(), TestCaseError> {
    let ka = SigningKey::from_bytes(&[seed; 32]);
    let kb = SigningKey::from_bytes(&[seed ^ 0x55; 32]);
    let mut sides = [
        Handshake::new(true, &ka).expect("initiator starts"),
        Handshake::new(false, &kb).expect("responder starts"),
    ];
    let mut decoders = [FrameDecoder::new(), FrameDecoder::new()];
    let mut changed = false;
    let mut failed = false;
    let mut n = 0;
    // Frames: XX 1, XX 2, XX 3 + initiator header, responder header.
    'run: for _round in 0..8 {
        let mut moved = false;
        for from in 0..2 {
            let out = sides[from].take_outgoing();
            if out.is_empty() {
                continue;
            }
            moved = true;
            let to = 1 - from;
            decoders[to].push(&out);
            while let Some(body) = decoders[to].next_frame() {
                let (body, c) = t.apply(n, body);
                n += 1;
                changed |= c;
                if sides[to].on_frame(&body).is_err() {
                    failed = true;
                    break 'run;
                }
            }
        }
        if !moved {
            break;
        }
    }
    let [a, b] = sides;
    let (done_a, done_b) = (a.is_done(), b.is_done());
    if !changed {
        prop_assert!(
            !failed && done_a && done_b,
            "untouched handshake did not finish"
        );
    }
    if let (Some((ia, mut ea, mut da)), Some((ib, mut eb, mut db))) = (a.finish(), b.finish()) {
        // Both finished: the Noise messages went through untouched (they are authenticated),
        // so each side knows the other's real key.
        prop_assert_eq!(ia.remote_public_key, kb.verifying_key().to_bytes());
        prop_assert_eq!(ib.remote_public_key, ka.verifying_key().to_bytes());
        prop_assert_eq!(ia.handshake_hash, ib.handshake_hash);
        // The id+header frames are not authenticated on their own (the header is the nonce): an
        // altered one is caught by the first record, which then fails to decrypt.
        let ab = db.decrypt(&ea.encrypt(b"ping").unwrap()[3..]);
        let ba = da.decrypt(&eb.encrypt(b"pong").unwrap()[3..]);
        if changed {
            prop_assert!(
                ab.is_err() || ba.is_err(),
                "an altered handshake went unnoticed"
            );
        } else {
            prop_assert_eq!(ab.ok(), Some(b"ping".to_vec()));
            prop_assert_eq!(ba.ok(), Some(b"pong".to_vec()));
        }
    }
    Ok(())
}

#[test]
fn secret_stream_handshake() {
    fuzz(
        "secret_stream_handshake",
        300,
        (any::<u8>(), tamper(5, 120)),
        |(seed, t)| handshake(seed, t),
    );
}

/// What happens to the record stream on its way.
#[derive(Debug, Clone)]
enum Fault {
    /// Record `i` (0 = the id+header frame) altered.
    Alter(usize, Edit),
    /// Random bytes inserted as a record before record `i`.
    Insert(usize, Vec<u8>),
    /// Record `i` dropped.
    Drop(usize),
    /// Record `i` sent twice.
    Replay(usize),
    /// Nothing.
    None,
}

fn fault() -> impl Strategy<Value = Fault> {
    let edit = prop_oneof![
        3 => fuzz_common::mutations().prop_map(Edit::Mutate),
        1 => raw(80).prop_map(Edit::Replace),
    ];
    prop_oneof![
        4 => (0usize..6, edit).prop_map(|(i, e)| Fault::Alter(i, e)),
        1 => (0usize..6, raw(80)).prop_map(|(i, b)| Fault::Insert(i, b)),
        1 => (0usize..6).prop_map(Fault::Drop),
        1 => (1usize..6).prop_map(Fault::Replay),
        1 => Just(Fault::None),
    ]
}

fn outcome(tx: [u8; 32], rx: [u8; 32], remote: [u8; 32]) -> HandshakeOutcome {
    HandshakeOutcome {
        tx,
        rx,
        handshake_hash: [9; 64],
        remote_public_key: remote,
    }
}

fn records(messages: Vec<Vec<u8>>, f: Fault) -> Result<(), TestCaseError> {
    let (k1, k2) = ([1u8; 32], [2u8; 32]);
    let (_, mut enc, header, _) = from_handshake(&outcome(k1, k2, [4; 32]), true, [3; 32]);
    let (_, _, _, mut dec) = from_handshake(&outcome(k2, k1, [3; 32]), false, [4; 32]);
    // Record bodies as they would come out of a FrameDecoder: the header, then the messages.
    let mut bodies = vec![header[3..].to_vec()];
    for m in &messages {
        bodies.push(enc.encrypt(m).expect("small message encrypts")[3..].to_vec());
    }
    // `sent[i]` = (body, Some(index of the original record) if delivered untouched).
    let mut sent: Vec<(Vec<u8>, Option<usize>)> = bodies
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, b)| (b, Some(i)))
        .collect();
    match f {
        Fault::Alter(i, e) if i < sent.len() => {
            let altered = e.apply(sent[i].0.clone());
            if altered != sent[i].0 {
                sent[i] = (altered, None);
            }
        }
        Fault::Insert(i, b) if i <= sent.len() => sent.insert(i, (b, None)),
        Fault::Drop(i) if i < sent.len() => {
            sent.remove(i);
        }
        Fault::Replay(i) if i < sent.len() => sent.insert(i + 1, (sent[i].0.clone(), None)),
        _ => {}
    }
    let mut expected_next = 0; // records must arrive in order, each once
                               // The id+header frame is not authenticated on its own (its 24 bytes are the nonce): an
                               // altered nonce is accepted, and then no record may decrypt any more.
    let mut poisoned = false;
    for (body, origin) in sent {
        let r = dec.decrypt(&body);
        match origin {
            Some(i) if i == expected_next && !poisoned => {
                let plain = r.map_err(|e| TestCaseError::fail(format!("record {i}: {e}")))?;
                let want = if i == 0 {
                    vec![]
                } else {
                    messages[i - 1].clone()
                };
                prop_assert_eq!(plain, want);
                expected_next += 1;
            }
            _ if expected_next == 0 && !poisoned && r.is_ok() => {
                // An altered header that kept its length and stream id.
                prop_assert_eq!(body.len(), 56);
                prop_assert_eq!(&body[..32], &bodies[0][..32]);
                poisoned = true;
            }
            _ => {
                // An altered, inserted, out-of-order or replayed record (or any record after
                // a forged nonce) must not decrypt.
                match r {
                    Err(
                        SecretStreamError::Decrypt
                        | SecretStreamError::ShortMessage(_)
                        | SecretStreamError::BadHeaderLength(_)
                        | SecretStreamError::BadStreamId,
                    ) => {}
                    other => {
                        return Err(TestCaseError::fail(format!(
                            "a bad record was accepted: {other:?}"
                        )))
                    }
                }
                // The connection is closed on the first bad record.
                break;
            }
        }
    }
    Ok(())
}

#[test]
fn secret_stream_records() {
    fuzz(
        "secret_stream_records",
        2_000,
        (prop::collection::vec(raw(60), 0..5), fault()),
        |(messages, f)| records(messages, f),
    );
}

/// Random bodies to a decryptor (as the first frame, then after a valid header).
#[test]
fn secret_stream_records_raw() {
    fuzz(
        "secret_stream_records_raw",
        2_000,
        prop::collection::vec(raw(100), 1..5),
        |frames| {
            let (k1, k2) = ([1u8; 32], [2u8; 32]);
            let (_, _, header, _) = from_handshake(&outcome(k1, k2, [4; 32]), true, [3; 32]);
            let (_, _, _, mut fresh) = from_handshake(&outcome(k2, k1, [3; 32]), false, [4; 32]);
            let (_, _, _, mut ready) = from_handshake(&outcome(k2, k1, [3; 32]), false, [4; 32]);
            ready.decrypt(&header[3..]).expect("real header accepted");
            for f in &frames {
                prop_assert!(fresh.decrypt(f).is_err());
                prop_assert!(ready.decrypt(f).is_err());
            }
            Ok(())
        },
    );
}
