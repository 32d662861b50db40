//! Property-based fuzzing of the relay frame decoder ([`RelayCodec::handle_frame`]) and
//! [`Message::decode`]: random bytes, random relay-channel messages, and mutated real frames from
//! `tests/data/relay-captures/`. Nothing may panic; whatever decodes must re-encode to a message
//! that decodes to itself. Case counts are small by default so the whole file runs in a few
//! seconds; `DAT_FUZZ_CASES` raises them for a campaign (`scripts/fuzz`, docs/TESTING.md).

mod fuzz_common;

use std::path::PathBuf;

use dat_social::relay::{Message, RelayCodec, RelayEvent};
use fuzz_common::{fuzz, mutate, Mutation};
use proptest::prelude::*;

/// The relay channel's protomux open frame (PROTOCOL.md §2).
const OPEN_FRAME: &str = "00010115406879706572737761726d2f6468742d72656c617900";

/// Every frame of every capture, as bytes.
fn capture_frames() -> Vec<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct Frame {
        hex: String,
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/relay-captures");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let frames: Vec<Frame> =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            out.extend(frames.into_iter().map(|f| hex::decode(f.hex).unwrap()));
        }
    }
    assert!(out.len() >= 50, "captures found: {}", out.len());
    out
}

/// A codec whose relay channel is paired, so message frames reach the message decoders.
fn paired_codec() -> RelayCodec {
    let mut c = RelayCodec::new();
    c.handle_frame(&hex::decode(OPEN_FRAME).unwrap()).unwrap();
    assert_eq!(c.poll_event(), Some(RelayEvent::Opened));
    c
}

/// Feeds `frames`, then checks that every decoded message survives a re-encode. The number of
/// events is bounded by the input (at most one per input byte, plus opens/closes).
fn feed(codec: &mut RelayCodec, frames: &[Vec<u8>]) -> Result<(), TestCaseError> {
    for frame in frames {
        let _ = codec.handle_frame(frame);
        while let Some(event) = codec.poll_event() {
            if let RelayEvent::Message(m) = event {
                let again = Message::decode(m.message_type(), &m.encode());
                prop_assert_eq!(again.as_ref(), Ok(&m));
            }
        }
        // Whatever the codec wants to send (e.g. rejects) is well-formed and bounded.
        let mut n = 0;
        while codec.poll_transmit().is_some() {
            n += 1;
            prop_assert!(n < 1000);
        }
    }
    Ok(())
}

/// Arbitrary bytes as protomux frames, to a fresh and to a paired codec.
#[test]
fn random_frames_never_panic() {
    fuzz(
        "relay_random_frames",
        2000,
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..6),
        |frames| {
            feed(&mut RelayCodec::new(), &frames)?;
            feed(&mut paired_codec(), &frames)
        },
    );
}

/// Frames on the relay channel (`01 <type> <random payload>`), so every message decoder sees
/// random input; types above 27 exercise the "ignore unknown" path.
#[test]
fn random_relay_messages_never_panic() {
    fuzz(
        "relay_random_messages",
        2000,
        (0u8..34, prop::collection::vec(any::<u8>(), 0..400)),
        |(t, payload)| {
            let mut frame = vec![1, t];
            frame.extend_from_slice(&payload);
            feed(&mut paired_codec(), &[frame])
        },
    );
}

/// `Message::decode` on any type and bytes: no panic, re-encoding is stable and (but for
/// `destroy`) never longer than the input (decoding consumes a prefix; trailing bytes are
/// ignored as in JS).
#[test]
fn message_decode_is_total_and_stable() {
    fuzz(
        "relay_message_decode",
        2000,
        (0u64..40, prop::collection::vec(any::<u8>(), 0..400)),
        |(t, payload)| {
            if let Ok(m) = Message::decode(t, &payload) {
                let bytes = m.encode();
                // Except `destroy`: invalid UTF-8 in its error string becomes U+FFFD (3 bytes), as JS.
                if t != 9 {
                    prop_assert!(bytes.len() <= payload.len());
                }
                prop_assert_eq!(Message::decode(t, &bytes), Ok(m));
            }
            Ok(())
        },
    );
}

/// Real frames from the captures with a few bytes changed, inserted, removed or cut off.
#[test]
fn mutated_capture_frames_never_panic() {
    let mutation = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
    ];
    fuzz(
        "relay_mutated_captures",
        3000,
        (
            prop::sample::select(capture_frames()),
            prop::collection::vec(mutation, 1..5),
        ),
        |(frame, mutations)| {
            let mutated = mutate(frame, &mutations);
            feed(&mut paired_codec(), std::slice::from_ref(&mutated))?;
            feed(&mut RelayCodec::new(), &[mutated])
        },
    );
}

/// Real frames under the full set of mutations (bit flips, varint prefixes, duplicated
/// slices, ...), several frames of a session in a row.
#[test]
fn mutated_capture_sessions_never_panic() {
    fuzz(
        "relay_mutated_sessions",
        2000,
        prop::collection::vec(fuzz_common::mutated(capture_frames()), 1..4),
        |frames| feed(&mut paired_codec(), &frames),
    );
}

/// A hostile frame claiming huge lengths is refused without allocating what it claims.
#[test]
fn hostile_lengths_are_refused() {
    let mut c = paired_codec();
    // data{alias 1, array count 2^20} with no elements.
    let frame = [1, 16, 1, 0, 0, 0, 0xfe, 0x00, 0x00, 0x10, 0x00];
    assert!(c.handle_frame(&frame).is_err());
    // result{id 1, buffer of 2^64-1 bytes}.
    let mut frame = vec![1, 17, 1, 0, 0, 0, 0xff];
    frame.extend_from_slice(&[0xff; 8]);
    assert!(c.handle_frame(&frame).is_err());
    // A batch item claiming 4 GiB.
    let mut c = paired_codec();
    assert!(c
        .handle_frame(&[0, 0, 1, 0xfe, 0xff, 0xff, 0xff, 0xff, 1, 1])
        .is_err());
    assert_eq!(c.poll_event(), None);
}
