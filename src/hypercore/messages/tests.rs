//! Unit tests of the replication message codecs: round trips and the JS byte vectors.

use super::*;

fn node(index: u64, size: u64, fill: u8) -> TreeNode {
    TreeNode {
        index,
        size,
        hash: [fill; 32],
    }
}

/// Vectors produced by running JS hypercore 11.37.1 `c.encode(m.wire.request, ...)` (see
/// `tests/js/messages.js`).
#[test]
fn request_matches_js_bytes() {
    let req = Request {
        id: 7,
        fork: 0,
        block: Some(RequestBlock {
            index: 300,
            nodes: 2,
        }),
        hash: None,
        seek: None,
        upgrade: Some(RequestUpgrade {
            start: 5,
            length: 70000,
        }),
        manifest: true,
        priority: 0,
    };
    let bytes = req.to_bytes();
    assert_eq!(
        hex::encode(&bytes),
        include_str!("../testdata/request1.hex").trim()
    );
    assert_eq!(Request::from_bytes(&bytes).unwrap(), req);

    let req2 = Request {
        id: 1,
        fork: 3,
        block: None,
        hash: Some(RequestBlock { index: 9, nodes: 0 }),
        seek: Some(RequestSeek {
            bytes: 1000,
            padding: 0,
        }),
        upgrade: None,
        manifest: false,
        priority: 2,
    };
    let bytes = req2.to_bytes();
    assert_eq!(
        hex::encode(&bytes),
        include_str!("../testdata/request2.hex").trim()
    );
    assert_eq!(Request::from_bytes(&bytes).unwrap(), req2);
}

fn sample_data() -> Data {
    Data {
        request: 7,
        fork: 0,
        block: Some(DataBlock {
            index: 2,
            value: b"hello".to_vec(),
            nodes: vec![node(6, 10, 1), node(1, 9, 2)],
        }),
        hash: None,
        seek: Some(DataSeek {
            bytes: 12,
            nodes: vec![node(3, 40, 3)],
        }),
        upgrade: Some(DataUpgrade {
            start: 0,
            length: 4,
            nodes: vec![node(3, 40, 4)],
            additional_nodes: vec![node(9, 5, 5)],
            signature: vec![0xaa; 64],
        }),
        manifest: None,
    }
}

#[test]
fn data_matches_js_bytes() {
    let data = sample_data();
    let bytes = data.to_bytes();
    assert_eq!(
        hex::encode(&bytes),
        include_str!("../testdata/data1.hex").trim()
    );
    assert_eq!(Data::from_bytes(&bytes).unwrap(), data);
}

#[test]
fn manifest_versions_match_js_bytes() {
    let signer = Signer {
        signature: SignatureAlgorithm::Ed25519,
        namespace: [0x11; 32],
        public_key: [0x22; 32],
    };
    let v1 = Manifest {
        version: 1,
        quorum: 1,
        signers: vec![signer.clone()],
        ..Default::default()
    };
    let v0 = Manifest {
        version: 0,
        quorum: 1,
        signers: vec![signer],
        ..Default::default()
    };
    let data = Data {
        request: 1,
        manifest: Some(v1.clone()),
        ..Default::default()
    };
    assert_eq!(
        hex::encode(data.to_bytes()),
        include_str!("../testdata/data_manifest_v1.hex").trim()
    );
    assert_eq!(Data::from_bytes(&data.to_bytes()).unwrap(), data);
    assert_eq!(
        hex::encode(v0.to_bytes()),
        include_str!("../testdata/manifest_v0.hex").trim()
    );
    assert_eq!(Manifest::from_bytes(&v0.to_bytes()).unwrap(), v0);
}

#[test]
fn truncated_data_is_an_error_at_every_cut() {
    let bytes = sample_data().to_bytes();
    for cut in 0..bytes.len() {
        assert!(Data::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
    }
}

#[test]
fn hostile_inputs_never_panic() {
    // Deterministic pseudo-random garbage, plus huge length prefixes.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for len in 0..400usize {
        let buf: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let _ = Data::from_bytes(&buf);
        let _ = Request::from_bytes(&buf);
        let _ = Manifest::from_bytes(&buf);
    }
    let huge = [
        0x0f, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ];
    assert!(Data::from_bytes(&huge).is_err());
}

#[test]
fn control_messages_round_trip() {
    let s = Sync {
        fork: 1,
        length: 300,
        remote_length: 2,
        can_upgrade: true,
        downloading: true,
        ..Default::default()
    };
    assert_eq!(s.to_bytes(), vec![5, 1, 0xfd, 0x2c, 0x01, 2]);
    assert_eq!(Sync::from_bytes(&s.to_bytes()).unwrap(), s);
    let r = Range {
        drop: false,
        start: 4,
        length: 1,
    };
    assert_eq!(r.to_bytes(), vec![2, 4]);
    assert_eq!(Range::from_bytes(&r.to_bytes()).unwrap(), r);
    let n = NoData {
        request: 3,
        reason: 0,
    };
    assert_eq!(n.to_bytes(), vec![3, 0]);
    assert_eq!(NoData::from_bytes(&[3]).unwrap(), n);
    let w = Want {
        start: 0,
        length: 1024,
        any: false,
    };
    assert_eq!(Want::from_bytes(&w.to_bytes()).unwrap(), w);
    let b = Bitfield {
        start: 0,
        bitfield: vec![0xffff_ffff, 1],
    };
    assert_eq!(Bitfield::from_bytes(&b.to_bytes()).unwrap(), b);
    let e = Extension {
        name: "x".into(),
        message: vec![1, 2],
    };
    assert_eq!(e.to_bytes(), vec![1, b'x', 1, 2]);
    assert_eq!(Extension::from_bytes(&e.to_bytes()).unwrap(), e);
    let h = Handshake {
        seeks: true,
        capability: [9; 32],
    };
    assert_eq!(Handshake::from_bytes(&h.to_bytes()).unwrap(), h);
}
