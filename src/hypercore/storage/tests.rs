//! Unit tests of the storage encodings: header slots and node records.

use super::*;

#[test]
fn header_round_trip_and_corruption() {
    let h = Header {
        key: [1; 32],
        fork: 0,
        length: 3,
        byte_length: 12,
        signature: vec![9; 64],
        roots: vec![TreeNode {
            index: 1,
            size: 8,
            hash: [2; 32],
        }],
    };
    let bytes = h.to_bytes();
    let p = Path::new("x/header");
    assert_eq!(Header::from_bytes(&bytes, p).unwrap(), h);
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x40;
        assert!(matches!(
            Header::from_bytes(&b, p),
            Err(Error::Corrupt { .. })
        ));
    }
    assert!(Header::from_bytes(&bytes[..bytes.len() - 1], p).is_err());
}

#[test]
fn node_records() {
    let n = TreeNode {
        index: 5,
        size: 77,
        hash: [3; 32],
    };
    let rec = encode_node(&n);
    assert_eq!(decode_node(5, &rec).unwrap(), Some(n));
    assert!(decode_node(7, &rec).is_err(), "record at the wrong index");
    assert_eq!(decode_node(5, &[0; 48]).unwrap(), None);
    let mut bad = rec;
    bad[10] ^= 1;
    assert!(decode_node(5, &bad).is_err());
}
