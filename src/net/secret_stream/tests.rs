//! Unit tests of the sans-IO secret stream: handshakes, framing, encryption and tampering.

use super::*;

fn run_pair() -> (
    SessionInfo,
    Encryptor,
    Decryptor,
    SessionInfo,
    Encryptor,
    Decryptor,
) {
    let ka = SigningKey::generate(&mut OsRng);
    let kb = SigningKey::generate(&mut OsRng);
    let mut a = Handshake::new(true, &ka).unwrap();
    let mut b = Handshake::new(false, &kb).unwrap();
    let (mut fa, mut fb) = (FrameDecoder::new(), FrameDecoder::new());
    for _ in 0..10 {
        fb.push(&a.take_outgoing());
        while let Some(f) = fb.next_frame() {
            b.on_frame(&f).unwrap();
        }
        fa.push(&b.take_outgoing());
        while let Some(f) = fa.next_frame() {
            a.on_frame(&f).unwrap();
        }
        if a.is_done() && b.is_done() {
            break;
        }
    }
    let (ia, ea, da) = a.finish().unwrap();
    let (ib, eb, db) = b.finish().unwrap();
    (ia, ea, da, ib, eb, db)
}

/// Two ends started from one IK handshake exchange headers and records over a byte stream
/// cut at arbitrary places (as relay `data` chunks carry it).
#[test]
fn streams_from_a_finished_ik_handshake_talk_over_split_bytes() {
    use crate::net::noise::NoiseIk;
    let (ka, kb) = (
        SigningKey::from_bytes(&[1; 32]),
        SigningKey::from_bytes(&[2; 32]),
    );
    let mut i = NoiseIk::initiator(&ka, kb.verifying_key().to_bytes(), b"x");
    let mut r = NoiseIk::responder(&kb, b"x");
    r.read_message(&i.write_message(b"").unwrap()).unwrap();
    i.read_message(&r.write_message(b"").unwrap()).unwrap();
    let pa = ka.verifying_key().to_bytes();
    let pb = kb.verifying_key().to_bytes();
    let (ia, mut ea, ha, mut da) = from_handshake(i.outcome().unwrap(), true, pa);
    let (ib, mut eb, hb, mut db) = from_handshake(r.outcome().unwrap(), false, pb);
    assert_eq!((ia.remote_public_key, ib.remote_public_key), (pb, pa));
    assert_eq!(ia.handshake_hash, ib.handshake_hash);
    assert_eq!((ha.len(), &ha[..3]), (59, &[56u8, 0, 0][..]));
    let mut bytes = ha.clone();
    for m in [&b"one"[..], b"", &[5u8; 3000]] {
        bytes.extend(ea.encrypt(m).unwrap());
    }
    let mut dec = FrameDecoder::new();
    let mut got = Vec::new();
    for chunk in bytes.chunks(7) {
        dec.push(chunk);
        while let Some(f) = dec.next_frame() {
            let ready = db.is_ready();
            let m = db.decrypt(&f).unwrap();
            if ready {
                got.push(m);
            }
        }
    }
    assert_eq!(got, vec![b"one".to_vec(), Vec::new(), vec![5u8; 3000]]);
    // The other way, and a header sent by the wrong role is refused.
    let mut dec = FrameDecoder::new();
    dec.push(&hb);
    dec.push(&eb.encrypt(b"back").unwrap());
    assert!(da.decrypt(&dec.next_frame().unwrap()).unwrap().is_empty());
    assert_eq!(da.decrypt(&dec.next_frame().unwrap()).unwrap(), b"back");
    let (_, _, _, mut fresh) = from_handshake(i.outcome().unwrap(), true, pa);
    assert!(matches!(
        fresh.decrypt(&ha[3..]),
        Err(SecretStreamError::BadStreamId)
    ));
}

#[test]
fn frame_decoder_handles_split_and_joined_input() {
    let mut d = FrameDecoder::new();
    let mut bytes = frame(b"hello");
    bytes.extend(frame(b""));
    bytes.extend(frame(&[7u8; 300]));
    for chunk in bytes.chunks(2) {
        d.push(chunk);
    }
    assert_eq!(d.next_frame().unwrap(), b"hello");
    assert_eq!(d.next_frame().unwrap(), b"");
    assert_eq!(d.next_frame().unwrap(), vec![7u8; 300]);
    assert!(d.next_frame().is_none());
    // A max-length prefix with no body just waits for more.
    d.push(&[0xff, 0xff, 0xff, 1, 2]);
    assert!(d.next_frame().is_none());
    assert_eq!(d.buffered(), 5);
    assert_eq!(d.announced_len(), Some(MAX_FRAME));
    assert_eq!(FrameDecoder::new().announced_len(), None);
}

#[test]
fn handshake_then_messages_both_ways() {
    let (ia, mut ea, mut da, ib, mut eb, mut db) = run_pair();
    assert_eq!(ia.handshake_hash, ib.handshake_hash);
    assert_eq!(ia.remote_public_key, ib.public_key);
    assert_eq!(ib.remote_public_key, ia.public_key);
    let mut dec = FrameDecoder::new();
    for msg in [&b"one"[..], b"", &[9u8; 5000]] {
        dec.push(&ea.encrypt(msg).unwrap());
        let f = dec.next_frame().unwrap();
        assert_eq!(f.len(), msg.len() + ABYTES);
        assert_eq!(db.decrypt(&f).unwrap(), msg);
    }
    dec.push(&eb.encrypt(b"back").unwrap());
    assert_eq!(da.decrypt(&dec.next_frame().unwrap()).unwrap(), b"back");
}

#[test]
fn tampered_or_short_messages_are_errors() {
    let (_, mut ea, _, _, _, mut db) = run_pair();
    let mut f = ea.encrypt(b"payload").unwrap();
    f[5] ^= 0x80;
    assert!(matches!(
        db.decrypt(&f[3..]),
        Err(SecretStreamError::Decrypt)
    ));
    assert!(matches!(
        db.decrypt(&[1, 2, 3]),
        Err(SecretStreamError::ShortMessage(3))
    ));
}

#[test]
fn garbage_handshake_frames_are_errors() {
    let kb = SigningKey::generate(&mut OsRng);
    let mut b = Handshake::new(false, &kb).unwrap();
    assert!(b.on_frame(&[0u8; 3]).is_err());
    let mut b = Handshake::new(false, &kb).unwrap();
    // A well-sized message 1 carrying a small-order point fails when we reply.
    let mut m = [0u8; 32];
    m[0] = 1;
    assert!(b.on_frame(&m).is_err());
}

#[test]
fn wrong_header_is_rejected() {
    let ka = SigningKey::generate(&mut OsRng);
    let kb = SigningKey::generate(&mut OsRng);
    let mut a = Handshake::new(true, &ka).unwrap();
    let mut b = Handshake::new(false, &kb).unwrap();
    let mut fb = FrameDecoder::new();
    fb.push(&a.take_outgoing());
    b.on_frame(&fb.next_frame().unwrap()).unwrap();
    let mut fa = FrameDecoder::new();
    fa.push(&b.take_outgoing());
    a.on_frame(&fa.next_frame().unwrap()).unwrap();
    fb.push(&a.take_outgoing());
    b.on_frame(&fb.next_frame().unwrap()).unwrap(); // msg3
    let mut hdr = fb.next_frame().unwrap(); // a's id+header
    hdr[0] ^= 1;
    assert!(matches!(
        b.on_frame(&hdr),
        Err(SecretStreamError::BadStreamId)
    ));
}
