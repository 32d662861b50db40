//! Fuzz target: the protomux frame decoder ([`Mux::on_message`]) as it runs on every decrypted
//! secret-stream message of a connection, driven together with the local API calls a peer makes
//! (accepting or rejecting the remote's opens, closing channels), so that hostile frames meet
//! every channel state. Inputs: raw bytes and mutations of valid open/reject/close/batch/message
//! frames. Nothing may panic; every event names a channel we opened.

mod fuzz_common;

use dat_social::hypercore::encoding::Encoder;
use dat_social::net::protomux::{encode_message, Mux, MuxEvent};
use fuzz_common::{fuzz, mutated, raw};
use proptest::prelude::*;

const PROTOCOLS: [&str; 2] = ["hypercore/alpha", "dat-social/archive"];

/// Valid frames of every kind, for ids 0..4 and both protocols.
fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for rid in 0..4u64 {
        for (p, proto) in PROTOCOLS.iter().enumerate() {
            let mut e = Encoder::new();
            e.uint(0).uint(1).uint(rid).string(proto);
            e.optional_buffer(if p == 0 { Some(&[7u8; 32][..]) } else { None });
            e.raw(b"handshake");
            out.push(e.into_vec());
        }
        for control in [2u64, 3, 4] {
            let mut e = Encoder::new();
            e.uint(0).uint(control).uint(rid);
            out.push(e.into_vec());
        }
        out.push(encode_message(rid, 1, b"payload"));
        // A batch for channel rid that switches to channel rid+1 half way.
        let mut e = Encoder::new();
        e.uint(0).uint(0).uint(rid);
        e.buffer(&encode_message(0, 3, b"ab")[1..]);
        e.uint(0).uint(rid + 1);
        e.buffer(&encode_message(0, 0, b"")[1..]);
        out.push(e.into_vec());
    }
    // A batch carrying a control open and a nested batch.
    let mut inner = Encoder::new();
    inner
        .uint(0)
        .uint(1)
        .string(PROTOCOLS[1])
        .optional_buffer(None);
    let mut e = Encoder::new();
    e.uint(0).uint(0).uint(0);
    e.buffer(&[&[1u8][..], inner.as_slice()].concat());
    e.buffer(&[0, 1, 1]);
    out.push(e.into_vec());
    out
}

/// One step of a connection's life: a received frame or a local API call.
#[derive(Debug, Clone)]
enum Step {
    Frame(Vec<u8>),
    /// Open (or accept) a channel of `PROTOCOLS[p]`, with or without the 32-byte id.
    Open(usize, bool),
    /// Reject the oldest pending remote open.
    RejectPending,
    /// Close our channel number `n` (mod the channels opened so far).
    Close(usize),
}

fn step(frames: BoxedStrategy<Vec<u8>>) -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => frames.prop_map(Step::Frame),
        1 => (0..PROTOCOLS.len(), any::<bool>()).prop_map(|(p, id)| Step::Open(p, id)),
        1 => Just(Step::RejectPending),
        1 => any::<usize>().prop_map(Step::Close),
    ]
}

fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let mut mux = Mux::new();
    let mut opened = Vec::new();
    for s in steps {
        match s {
            Step::Frame(f) => {
                if mux.on_message(&f).is_err() {
                    // The connection is closed on any error; nothing more is fed.
                    break;
                }
            }
            Step::Open(p, with_id) => {
                let id = with_id.then_some(&[7u8; 32][..]);
                if let Ok(c) = mux.open(PROTOCOLS[p], id, b"hs") {
                    opened.push(c);
                }
            }
            Step::RejectPending => {
                if let Some(k) = mux.pending_remote_opens().first() {
                    mux.reject(k);
                }
            }
            Step::Close(n) => {
                if !opened.is_empty() {
                    mux.close(opened[n % opened.len()]);
                }
            }
        }
        while let Some(ev) = mux.poll_event() {
            let channel = match ev {
                MuxEvent::RemoteOpen { .. } => continue,
                MuxEvent::Opened { channel, .. }
                | MuxEvent::Message { channel, .. }
                | MuxEvent::Closed { channel, .. } => channel,
            };
            prop_assert!(
                opened.contains(&channel),
                "event for unknown channel {channel}"
            );
        }
        while mux.poll_transmit().is_some() {}
    }
    Ok(())
}

#[test]
fn protomux_raw_frames() {
    let frames = raw(64).boxed();
    fuzz(
        "protomux_raw_frames",
        2_000,
        prop::collection::vec(step(frames), 1..12),
        run,
    );
}

#[test]
fn protomux_mutated_frames() {
    let frames = mutated(seeds()).boxed();
    fuzz(
        "protomux_mutated_frames",
        2_000,
        prop::collection::vec(step(frames), 1..12),
        run,
    );
}

/// Batches nested inside batches (`00 00 00 <len> 00 00 00 <len> ...`) must not exhaust the
/// stack (200,000 levels fit in under 1 MB, far below the 16 MB a secret-stream message may
/// carry, and used to abort the process): JS never nests batches, so they are refused.
#[test]
fn deeply_nested_batches_do_not_overflow_the_stack() {
    let depth = 200_000;
    // Item k = `uint type (0 = batch)` `uint channel (0)` `uint len(item k-1)` item k-1;
    // item 0 = `03 01` (close channel 1). Lengths first, then the prefixes outermost first.
    let inner = [3u8, 1];
    let mut lens = vec![inner.len()];
    for k in 1..depth {
        let prev = lens[k - 1];
        lens.push(2 + dat_social::hypercore::encoding::uint_len(prev as u64) + prev);
    }
    let mut e = Encoder::new();
    e.uint(0);
    for k in (0..depth).rev() {
        e.uint(0).uint(0).uint(lens[k] as u64);
    }
    e.raw(&inner);
    let frame = e.into_vec();
    // Run on a thread with a small stack, as tokio's workers (2 MiB) have.
    let handle = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || Mux::new().on_message(&frame))
        .unwrap();
    let result = handle.join().expect("the decoder thread must not panic");
    assert!(result.is_err(), "a nested batch was accepted: {result:?}");
}
