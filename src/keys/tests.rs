//! Unit tests of the key newtypes: hex round trips and rejections, the `dat://` form, the
//! discovery key against hypercore-crypto, and the serde form.

use super::*;

/// The public key of the ed25519 seed `[7; 32]` and its discovery key, as hypercore-crypto
/// 3.x computes them (`keyPair(Buffer.alloc(32, 7))`, `discoveryKey(publicKey)`): the core of
/// `tests/hypercore_js_vectors.rs`.
const JS_KEY: &str = "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c";
const JS_DISCOVERY_KEY: &str = "e3ac68a2145739cf48b8c0c43ad54595216b4bcbd5914c35dab942fb8c0c571b";
/// hypercore-crypto's `discoveryKey(Buffer.alloc(32, 0xab))`.
const JS_AB_DISCOVERY_KEY: &str =
    "215b1a6f0b236ee6b85acda78a132f748f9ed68cdafbbd7a04d8bde2f6335e0f";

#[test]
fn hex_round_trips_in_lowercase() {
    let key: IdentityKey = JS_KEY.parse().unwrap();
    assert_eq!(key.to_string(), JS_KEY);
    let upper: LogKey = JS_KEY.to_uppercase().parse().unwrap();
    assert_eq!(upper.to_string(), JS_KEY, "printed lowercase");
    assert_eq!(upper.as_bytes(), key.as_bytes());
    let bytes = [0x0f; 32];
    assert_eq!(Topic::from_bytes(bytes).as_bytes(), &bytes);
    assert_eq!(CoreKey::from_bytes(bytes).to_string(), "0f".repeat(32));
    assert_eq!(
        format!("{:?}", DiscoveryKey::from_bytes(bytes)),
        "DiscoveryKey(0f0f0f0f)"
    );
}

#[test]
fn bad_hex_and_lengths_are_refused() {
    for (text, needle) in [
        ("", "64 hex characters, got 0"),
        (&"ab".repeat(31), "got 62"),
        (&"ab".repeat(33), "got 66"),
        (&format!("{}zz", "ab".repeat(31)), "not hex"),
        (&format!(" {}", &JS_KEY[1..]), "not hex"),
    ] {
        let err = text.parse::<Topic>().unwrap_err().to_string();
        assert!(err.contains(needle), "{text:?}: {err}");
        let err = text.parse::<IdentityKey>().unwrap_err().to_string();
        assert!(err.contains(needle), "{text:?}: {err}");
    }
    assert!(matches!(
        format!("{}g", &JS_KEY[1..]).parse::<DiscoveryKey>(),
        Err(KeyError::NotHex(_))
    ));
}

#[test]
fn identity_keys_parse_from_dat_urls() {
    let key: IdentityKey = format!("dat://{JS_KEY}?peer=127.0.0.1:4000")
        .parse()
        .unwrap();
    assert_eq!(key.to_string(), JS_KEY);
    let err = "dat://abcd".parse::<IdentityKey>().unwrap_err();
    assert!(matches!(err, KeyError::Url(_)), "{err:?}");
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(source.contains("64 hex"), "{source}");
    // Only identity keys name a user's URL; a topic is hex only.
    assert!(format!("dat://{JS_KEY}").parse::<Topic>().is_err());
}

#[test]
fn discovery_key_is_hypercore_cryptos() {
    let key: IdentityKey = JS_KEY.parse().unwrap();
    assert_eq!(key.discovery_key().to_string(), JS_DISCOVERY_KEY);
    assert_eq!(
        CoreKey::from_bytes([0xab; 32]).discovery_key().to_string(),
        JS_AB_DISCOVERY_KEY
    );
    let log = LogKey::from_bytes(*key.as_bytes());
    assert_eq!(CoreKey::from(log).discovery_key(), key.discovery_key());
    assert_eq!(
        key.discovery_key().topic().as_bytes(),
        key.discovery_key().as_bytes()
    );
    assert_ne!(key.discovery_key().as_bytes(), key.as_bytes());
}

#[test]
fn serde_is_the_lowercase_hex_string() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Record {
        key: IdentityKey,
        topic: Topic,
    }
    let json = format!(r#"{{"key":"{JS_KEY}","topic":"{}"}}"#, "00".repeat(32));
    let record: Record = serde_json::from_str(&json).unwrap();
    assert_eq!(record.key.to_string(), JS_KEY);
    assert_eq!(record.topic, Topic::from_bytes([0; 32]));
    assert_eq!(serde_json::to_string(&record).unwrap(), json);
    let upper = json.replace(JS_KEY, &JS_KEY.to_uppercase());
    assert_eq!(serde_json::from_str::<Record>(&upper).unwrap(), record);
    for bad in [
        r#"{"key":"abcd","topic":"00"}"#,
        r#"{"key":[1,2,3],"topic":"00"}"#,
    ] {
        assert!(serde_json::from_str::<Record>(bad).is_err(), "{bad}");
    }
}
