//! Fuzz target: what a UDX stream reads from anyone who can send it a datagram
//! (src/udx/): [`Packet::parse`] and [`Stream::handle_packet`] with timeouts and transmits in
//! between, on a stream that has data in flight and some received.
//!
//! Inputs: sequences of raw datagrams and of valid packets with hostile fields (any flags,
//! offsets, seq, ack, window, SACK blocks). Nothing may panic; the stream never delivers more
//! bytes than the packets carried, and what it sends parses.

mod fuzz_common;

use std::time::{Duration, Instant};

use dat_social::udx::header::{flags, write_sacks, Header, Packet};
use dat_social::udx::{Stream, StreamEvent, MAX_PAYLOAD};
use fuzz_common::{fuzz, raw};
use proptest::prelude::*;

/// A packet for stream 1 with these fields (seq and ack near the stream's, or anywhere).
fn packet() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u8>(),
        prop_oneof![Just(0u8), any::<u8>()],
        prop_oneof![0u32..40, any::<u32>()],
        prop_oneof![0u32..40, any::<u32>()],
        any::<u32>(),
        proptest::collection::vec((0u32..60, 0u32..60), 0..6),
        proptest::collection::vec(any::<u8>(), 0..1400),
    )
        .prop_map(|(f, offset, seq, ack, rwnd, sacks, payload)| {
            let mut out = Vec::new();
            Header {
                flags: f,
                data_offset: offset,
                stream_id: 1,
                rwnd,
                seq,
                ack,
            }
            .write(&mut out);
            if f & flags::SACK != 0 {
                write_sacks(&sacks, &mut out);
            }
            out.extend_from_slice(&payload);
            out
        })
}

#[test]
fn udx_stream_packets() {
    fuzz(
        "udx_stream_packets",
        1_000,
        proptest::collection::vec(prop_oneof![raw(80), packet()], 1..40),
        |datagrams| {
            let mut s = Stream::new(1);
            s.connect(2);
            s.write(&vec![1u8; 20 * MAX_PAYLOAD]);
            let mut now = Instant::now();
            let mut carried = 0usize;
            let mut delivered = 0usize;
            for d in &datagrams {
                while let Some(out) = s.poll_transmit(now) {
                    prop_assert!(Packet::parse(&out).is_some(), "we send valid packets");
                }
                if let Some(p) = Packet::parse(d) {
                    // A packet flagged both DATA and MESSAGE is both (as in libudx).
                    for f in [flags::DATA, flags::MESSAGE] {
                        if p.header.flags & f != 0 {
                            carried += p.payload.len();
                        }
                    }
                    s.handle_packet(now, &p);
                }
                now += Duration::from_millis(150);
                s.handle_timeout(now);
                while let Some(e) = s.poll_event() {
                    if let StreamEvent::Data(b) | StreamEvent::Message(b) = e {
                        delivered += b.len();
                    }
                }
            }
            prop_assert!(delivered <= carried, "{delivered} > {carried}");
            Ok(())
        },
    );
}
