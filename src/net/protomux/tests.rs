//! Unit tests of protomux: open/reject/close, batches, pairing and hostile frames.

use super::*;

/// Moves every queued message from `a` to `b`.
fn pump(a: &mut Mux, b: &mut Mux) {
    while let Some(m) = a.poll_transmit() {
        b.on_message(&m).unwrap();
    }
}

fn events(m: &mut Mux) -> Vec<MuxEvent> {
    std::iter::from_fn(|| m.poll_event()).collect()
}

/// Frames printed by `node tests/js/protomux_vectors.js` (protomux 3.12.1): a channel
/// `test` with id `0102` and a `c.uint` handshake of 5, a raw message `hi` of type 1, a corked
/// batch of `a` (type 0) and `bc` (type 1), then close.
const JS_OPEN: &str = "000101047465737402010205";
const JS_MESSAGE: &str = "01016869";
const JS_BATCH: &str = "00000102006103016263";
const JS_CLOSE: &str = "000301";

#[test]
fn frames_match_js_protomux() {
    let mut m = Mux::new();
    m.open("test", Some(&[1, 2]), &[5]).unwrap();
    assert_eq!(hex::encode(m.poll_transmit().unwrap()), JS_OPEN);
    m.send(1, 1, b"hi").unwrap();
    assert_eq!(hex::encode(m.poll_transmit().unwrap()), JS_MESSAGE);
    m.close(1);
    assert_eq!(hex::encode(m.poll_transmit().unwrap()), JS_CLOSE);

    // The same frames decoded by our side, as if a JS peer sent them.
    let mut r = Mux::new();
    r.on_message(&hex::decode(JS_OPEN).unwrap()).unwrap();
    let key = ChannelKey::new("test", Some(&[1, 2]));
    assert_eq!(
        r.poll_event(),
        Some(MuxEvent::RemoteOpen { key: key.clone() })
    );
    r.on_message(&hex::decode(JS_MESSAGE).unwrap()).unwrap();
    r.on_message(&hex::decode(JS_BATCH).unwrap()).unwrap();
    let ch = r.open("test", Some(&[1, 2]), &[]).unwrap();
    let msg = |t: u64, p: &[u8]| MuxEvent::Message {
        channel: ch,
        message_type: t,
        payload: p.to_vec(),
    };
    assert_eq!(
        events(&mut r),
        vec![
            MuxEvent::Opened {
                channel: ch,
                key: key.clone(),
                handshake: vec![5]
            },
            msg(1, b"hi"),
            msg(0, b"a"),
            msg(1, b"bc"),
        ]
    );
    r.on_message(&hex::decode(JS_CLOSE).unwrap()).unwrap();
    assert_eq!(events(&mut r), vec![MuxEvent::Closed { channel: ch, key }]);
}

#[test]
fn both_sides_open_pairs_channels() {
    let (mut a, mut b) = (Mux::new(), Mux::new());
    let ca = a.open("p", Some(b"x"), b"ha").unwrap();
    let cb = b.open("p", Some(b"x"), b"hb").unwrap();
    pump(&mut a, &mut b);
    pump(&mut b, &mut a);
    assert_eq!(
        events(&mut a),
        vec![MuxEvent::Opened {
            channel: ca,
            key: ChannelKey::new("p", Some(b"x")),
            handshake: b"hb".to_vec()
        }]
    );
    assert!(
        matches!(&events(&mut b)[..], [MuxEvent::Opened { handshake, .. }] if handshake == b"ha")
    );
    a.send(ca, 3, b"m").unwrap();
    pump(&mut a, &mut b);
    assert_eq!(
        events(&mut b),
        vec![MuxEvent::Message {
            channel: cb,
            message_type: 3,
            payload: b"m".to_vec()
        }]
    );
}

#[test]
fn remote_open_waits_buffers_and_accepts() {
    let (mut a, mut b) = (Mux::new(), Mux::new());
    let ca = a.open("lobby", None, b"").unwrap();
    a.send(ca, 0, b"early").unwrap();
    pump(&mut a, &mut b);
    assert_eq!(
        events(&mut b),
        vec![MuxEvent::RemoteOpen {
            key: ChannelKey::new("lobby", None)
        }]
    );
    let cb = b.open("lobby", None, b"").unwrap();
    let ev = events(&mut b);
    assert!(matches!(ev[0], MuxEvent::Opened { channel, .. } if channel == cb));
    assert_eq!(
        ev[1],
        MuxEvent::Message {
            channel: cb,
            message_type: 0,
            payload: b"early".to_vec()
        }
    );
    pump(&mut b, &mut a);
    assert!(matches!(events(&mut a)[..], [MuxEvent::Opened { .. }]));
}

#[test]
fn a_lowered_buffer_limit_refuses_data_for_unaccepted_channels() {
    let (mut a, mut b) = (Mux::new(), Mux::new());
    b.set_max_buffered(1000);
    let ca = a.open("unwanted", None, b"").unwrap();
    a.send(ca, 0, &[1u8; 600]).unwrap();
    pump(&mut a, &mut b);
    a.send(ca, 0, &[2u8; 600]).unwrap();
    let m = a.poll_transmit().unwrap();
    assert_eq!(b.on_message(&m), Err(MuxError::BufferOverflow));
}

#[test]
fn reject_and_close_notify_the_opener() {
    let (mut a, mut b) = (Mux::new(), Mux::new());
    let ca = a.open("nope", None, b"").unwrap();
    pump(&mut a, &mut b);
    events(&mut b);
    b.reject(&ChannelKey::new("nope", None));
    pump(&mut b, &mut a);
    assert!(matches!(events(&mut a)[..], [MuxEvent::Closed { channel, .. }] if channel == ca));
    assert_eq!(a.send(ca, 0, b""), Err(ChannelError::Closed(ca)));

    let ca = a.open("yes", None, b"").unwrap();
    let cb = b.open("yes", None, b"").unwrap();
    pump(&mut a, &mut b);
    pump(&mut b, &mut a);
    events(&mut a);
    events(&mut b);
    b.close(cb);
    pump(&mut b, &mut a);
    assert!(matches!(events(&mut a)[..], [MuxEvent::Closed { channel, .. }] if channel == ca));
}

#[test]
fn batch_frames_are_split_per_channel() {
    let (mut a, mut b) = (Mux::new(), Mux::new());
    let ca1 = a.open("one", None, b"").unwrap();
    let ca2 = a.open("two", None, b"").unwrap();
    let cb1 = b.open("one", None, b"").unwrap();
    let cb2 = b.open("two", None, b"").unwrap();
    pump(&mut a, &mut b);
    pump(&mut b, &mut a);
    events(&mut a);
    events(&mut b);
    // protomux batch: 00 00 <id> (len item)* 00 <id> (len item)*; items are "type payload".
    let batch = vec![
        0, 0, ca1 as u8, 2, 7, b'a', 3, 8, b'b', b'c', 0, ca2 as u8, 1, 9,
    ];
    b.on_message(&batch).unwrap();
    assert_eq!(
        events(&mut b),
        vec![
            MuxEvent::Message {
                channel: cb1,
                message_type: 7,
                payload: b"a".to_vec()
            },
            MuxEvent::Message {
                channel: cb1,
                message_type: 8,
                payload: b"bc".to_vec()
            },
            MuxEvent::Message {
                channel: cb2,
                message_type: 9,
                payload: vec![]
            },
        ]
    );
}

#[test]
fn hostile_input_is_an_error_not_a_panic() {
    let mut m = Mux::new();
    // Opens skipping ids, reusing ids, truncated fields, bogus lengths.
    assert!(m.on_message(&[0, 1, 5, 1, b'p', 0]).is_err());
    assert!(m.on_message(&[0, 1, 1, 1, b'p', 0]).is_ok());
    assert!(m.on_message(&[0, 1, 1, 1, b'p', 0]).is_err());
    assert!(m.on_message(&[0, 1, 2, 9, b'p']).is_err());
    assert!(m
        .on_message(&[0, 0, 1, 0xfe, 0xff, 0xff, 0xff, 0x7f])
        .is_err());
    assert!(m.on_message(&[0, 2, 77]).is_err());
    assert!(m.on_message(&[0xff]).is_err());
    assert!(m.on_message(&[]).is_ok());
    assert!(m.on_message(&[42, 1, 2, 3]).is_ok()); // unknown channel: ignored
                                                   // Deterministic pseudo-random garbage never panics.
    let mut x: u32 = 0x1234_5678;
    for _ in 0..20_000 {
        let len = (x % 24) as usize;
        let mut buf = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            buf.push((x & 0x7) as u8);
        }
        let _ = m.on_message(&buf);
    }
}

#[test]
fn too_many_pending_opens_is_an_error() {
    let mut m = Mux::new();
    let mut err = None;
    for i in 1..=(MAX_PENDING_OPENS as u64 + 1) {
        let mut enc = Encoder::new();
        enc.uint(0)
            .uint(1)
            .uint(i)
            .string("p")
            .optional_buffer(Some(&i.to_le_bytes()));
        if let Err(e) = m.on_message(enc.as_slice()) {
            err = Some(e);
            break;
        }
    }
    assert_eq!(err, Some(MuxError::TooManyPendingOpens));
}
