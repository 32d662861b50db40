//! Unit tests of the Noise handshakes: XX and IK round trips, the JS vectors, tampering,
//! wrong sizes and turns.

use super::*;

/// Asserts that both ends of a handshake derived what JS derived: the handshake hash `hash` and,
/// for the initiator, the keys `(tx, rx)` (hex), which the responder holds mirrored.
fn assert_js_outcome(
    oi: &HandshakeOutcome,
    or: &HandshakeOutcome,
    hash: &str,
    (tx, rx): (&str, &str),
) {
    assert_eq!(hex::encode(oi.handshake_hash), hash);
    assert_eq!(hex::encode(or.handshake_hash), hash);
    assert_eq!(
        (hex::encode(oi.tx), hex::encode(oi.rx)),
        (tx.into(), rx.into())
    );
    assert_eq!((oi.tx, oi.rx), (or.rx, or.tx));
}

fn pair() -> (NoiseXx, NoiseXx, SigningKey, SigningKey) {
    let a = SigningKey::generate(&mut OsRng);
    let b = SigningKey::generate(&mut OsRng);
    (NoiseXx::new(true, &a), NoiseXx::new(false, &b), a, b)
}

#[test]
fn xx_roundtrip_agrees_on_keys_and_hash() {
    let (mut i, mut r, a, b) = pair();
    let m1 = i.write_message().unwrap();
    assert_eq!(m1.len(), 32);
    r.read_message(&m1).unwrap();
    let m2 = r.write_message().unwrap();
    assert_eq!(m2.len(), 96);
    i.read_message(&m2).unwrap();
    let m3 = i.write_message().unwrap();
    assert_eq!(m3.len(), 64);
    r.read_message(&m3).unwrap();
    let (oi, or) = (i.outcome().unwrap(), r.outcome().unwrap());
    assert_eq!(oi.tx, or.rx);
    assert_eq!(oi.rx, or.tx);
    assert_ne!(oi.tx, oi.rx);
    assert_eq!(oi.handshake_hash, or.handshake_hash);
    assert_eq!(oi.remote_public_key, b.verifying_key().to_bytes());
    assert_eq!(or.remote_public_key, a.verifying_key().to_bytes());
}

/// Printed by `node tests/js/noise_vectors.js` (noise-handshake + noise-curve-ed as
/// secret-stream 6.9.2 uses them): statics from seeds 01.. / 03.., ephemerals 02.. / 04...
#[test]
fn handshake_matches_js_vectors() {
    const MSG1: &str = "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394";
    const MSG2: &str = "ca93ac1705187071d67b83c7ff0efe8108e8ec4530575d7726879333dbdabe7c4d9e7de3cc9a6378ec7fc7cfdae288cac5c0f41a9197adb9213804de129ddca06a55cc9062361dd6ea395fe2f6c25fdd2204cd9188549881c1e0dfad769ddbcc";
    const MSG3: &str = "4e7f5acd10d28ef757ccacec8caff9ca4f7f8b305f457914800d56c160e90feed0e601ca181e4a2af39f2d3bb8020f7b0554bc91296be4be0ee974372b9c6013";
    const HASH: &str = "6c66d9f3b7da972c50ec4867d6866862a7386b3c2a0a24dacfb8d33ae0f2610fc0b1ec8c9fc89e93a50038a04149805775f30d4d6a3eb003328e907a3d312d0f";
    const TX: &str = "da3ea403820846d555bdbbd22bd530d686fb57ae98daa541a15b5b4f12d02fae";
    const RX: &str = "42fa8a7e955cb0bef6c9112e7743f70205a60b4b1d246b728ca36b04ab7ede61";
    let mut i = NoiseXx::new(true, &SigningKey::from_bytes(&[1; 32]));
    let mut r = NoiseXx::new(false, &SigningKey::from_bytes(&[3; 32]));
    i.set_ephemeral_seed([2; 32]);
    r.set_ephemeral_seed([4; 32]);
    let m1 = i.write_message().unwrap();
    assert_eq!(hex::encode(&m1), MSG1);
    r.read_message(&m1).unwrap();
    let m2 = r.write_message().unwrap();
    assert_eq!(hex::encode(&m2), MSG2);
    i.read_message(&m2).unwrap();
    let m3 = i.write_message().unwrap();
    assert_eq!(hex::encode(&m3), MSG3);
    r.read_message(&m3).unwrap();
    let (oi, or) = (i.outcome().unwrap(), r.outcome().unwrap());
    assert_js_outcome(oi, or, HASH, (TX, RX));
}

/// Printed by `node tests/js/noise_ik_vectors.js` (noise-handshake 4.2.0 IK + noise-curve-ed
/// as hyperdht 6.34.0 runs it): initiator static seed 06.., ephemeral 07..; responder static
/// 05.., ephemeral 08..; prologue NS.PEER_HANDSHAKE; payloads are noisePayloads.
#[test]
fn ik_handshake_matches_js_vectors() {
    const PROLOGUE: &str = "14d6d4b49214ab1033ed204976caa258bae9e1e8543b9ad1fd996a910b0c4e3a";
    const P1: &str = "011a0001017f00000149c20101070001";
    const P2: &str = "01000000";
    const MSG1: &str = "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c38ffdd3bf8cf7b345e2a3c3099e617e54dbb3dd6d9f9f0ec999e53b7482bdb4f25b694f689d8c0856cef8221f6dabdaf5c5e222f0e6e009c5b4ff044d275ff73e472d90b9fe1c9c5435b15f97f5a49c9";
    const MSG2: &str = "1398f62c6d1a457c51ba6a4b5f3dbd2f69fca93216218dc8997e416bd17d93ca3b996bb3e8af6697bc7684c58112784d6c5204b9";
    const HASH: &str = "ea6a17c46c9ab6290bd8db38474be3cf48c7289107e8799c4d80357871320dc4fa9d455adb313607967c35b712b17ededf9ce77010adb57896e3e36d599edc59";
    const TX: &str = "44c52671976283c2424e72b1e5e66a59b92ed38fe25fb547bdec089340c72990";
    const RX: &str = "1654f9623469102fcbb53511b756a5513b0db9286ac17fcc48af91dabbf22a28";
    let prologue = hex::decode(PROLOGUE).unwrap();
    let server = SigningKey::from_bytes(&[5; 32]);
    let client = SigningKey::from_bytes(&[6; 32]);
    let mut i = NoiseIk::initiator(&client, server.verifying_key().to_bytes(), &prologue);
    let mut r = NoiseIk::responder(&server, &prologue);
    i.set_ephemeral_seed([7; 32]);
    r.set_ephemeral_seed([8; 32]);
    assert!(i.is_my_turn() && !r.is_my_turn());
    let m1 = i.write_message(&hex::decode(P1).unwrap()).unwrap();
    assert_eq!(hex::encode(&m1), MSG1);
    assert_eq!(hex::encode(r.read_message(&m1).unwrap()), P1);
    assert_eq!(
        r.remote_public_key(),
        Some(client.verifying_key().to_bytes())
    );
    let m2 = r.write_message(&hex::decode(P2).unwrap()).unwrap();
    assert_eq!(hex::encode(&m2), MSG2);
    assert_eq!(hex::encode(i.read_message(&m2).unwrap()), P2);
    let (oi, or) = (i.outcome().unwrap(), r.outcome().unwrap());
    assert_js_outcome(oi, or, HASH, (TX, RX));
    assert_eq!(oi.remote_public_key, server.verifying_key().to_bytes());
    assert_eq!(or.remote_public_key, client.verifying_key().to_bytes());
    // Both messages are spent.
    assert_eq!(i.write_message(&[]), Err(NoiseError::OutOfTurn));
    assert_eq!(r.read_message(&m1), Err(NoiseError::OutOfTurn));
}

#[test]
fn ik_to_the_wrong_key_or_tampered_fails_cleanly() {
    let server = SigningKey::generate(&mut OsRng);
    let other = SigningKey::generate(&mut OsRng);
    let client = SigningKey::generate(&mut OsRng);
    // The initiator dialled another key than the responder holds: msg1 does not decrypt.
    let mut i = NoiseIk::initiator(&client, other.verifying_key().to_bytes(), b"p");
    let mut r = NoiseIk::responder(&server, b"p");
    let m1 = i.write_message(b"hello").unwrap();
    assert_eq!(r.read_message(&m1), Err(NoiseError::Decrypt));
    assert_eq!(r.write_message(b""), Err(NoiseError::OutOfTurn));
    // Another prologue fails too.
    let mut i = NoiseIk::initiator(&client, server.verifying_key().to_bytes(), b"p");
    let mut r = NoiseIk::responder(&server, b"q");
    assert_eq!(
        r.read_message(&i.write_message(b"").unwrap()),
        Err(NoiseError::Decrypt)
    );
    // A tampered msg2, a short one, garbage and a small-order ephemeral are errors.
    let mut i = NoiseIk::initiator(&client, server.verifying_key().to_bytes(), b"p");
    let mut r = NoiseIk::responder(&server, b"p");
    assert_eq!(
        r.read_message(&i.write_message(b"x").unwrap()).unwrap(),
        b"x"
    );
    let mut m2 = r.write_message(b"y").unwrap();
    assert!(r.outcome().is_some());
    m2[40] ^= 1;
    assert_eq!(i.read_message(&m2), Err(NoiseError::Decrypt));
    assert!(i.outcome().is_none());
    let mut r = NoiseIk::responder(&server, b"p");
    assert!(matches!(
        r.read_message(&[0u8; 95]),
        Err(NoiseError::BadLength { step: 1, .. })
    ));
    let mut r = NoiseIk::responder(&server, b"p");
    let mut m1 = [0u8; 96];
    m1[0] = 1; // the identity point
    assert_eq!(r.read_message(&m1), Err(NoiseError::BadPublicKey));
    let mut r = NoiseIk::responder(&server, b"p");
    assert!(r.read_message(&[0x55; 200]).is_err());
    // A payload too large for one Noise message.
    let mut i = NoiseIk::initiator(&client, server.verifying_key().to_bytes(), b"p");
    assert!(matches!(
        i.write_message(&vec![0; MAX_MESSAGE_LEN]),
        Err(NoiseError::BadLength { .. })
    ));
}

#[test]
fn tampered_message_fails_cleanly() {
    let (mut i, mut r, _, _) = pair();
    r.read_message(&i.write_message().unwrap()).unwrap();
    let mut m2 = r.write_message().unwrap();
    m2[40] ^= 1;
    assert_eq!(i.read_message(&m2), Err(NoiseError::Decrypt));
}

#[test]
fn wrong_sizes_and_out_of_turn_are_errors() {
    let (mut i, mut r, _, _) = pair();
    assert!(matches!(
        r.read_message(&[0u8; 5]),
        Err(NoiseError::BadLength { step: 1, .. })
    ));
    assert_eq!(r.write_message(), Err(NoiseError::OutOfTurn));
    assert_eq!(i.read_message(&[0u8; 32]), Err(NoiseError::OutOfTurn));
}

#[test]
fn invalid_remote_ephemeral_is_rejected() {
    let (_, mut r, _, _) = pair();
    // The identity point (y = 1) has small order.
    let mut m1 = [0u8; 32];
    m1[0] = 1;
    r.read_message(&m1).unwrap();
    assert_eq!(r.write_message(), Err(NoiseError::BadPublicKey));
}

#[test]
fn namespaces_match_secret_stream_constants() {
    // NS_INITIATOR / NS_RESPONDER of @hyperswarm/secret-stream 6.9.2 (printed by node from
    // hypercore-crypto.namespace('hyperswarm/secret-stream', 3)).
    let ns = crate::hypercore::crypto::namespace(b"hyperswarm/secret-stream", 3);
    assert_eq!(
        hex::encode(ns[0]),
        "a931a0155b5c09e6d28628236af83c4b8a6af9af60986edeede9dc5d63192bf7"
    );
    assert_eq!(
        hex::encode(ns[1]),
        "742c9d833d430af4c48a8705e91631eecf295442bbca18996e597097723b1061"
    );
}
