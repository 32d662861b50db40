//! Fuzz targets: the JSON a user reads from other people's archives and from their own disk:
//! `profile.json` / `session.json` ([`Profile::from_json`], [`Session::from_json`]), archive
//! blocks ([`Entry::decode`]), `dat://` URLs ([`DatUrl`]), the identity key file
//! ([`Identity::load`]) and `friends.json` ([`LocalStore::load`]).
//!
//! Inputs: random bytes and mutations of valid documents. Nothing may panic; whatever parses
//! is valid and survives a write + parse unchanged.

mod fuzz_common;

use std::str::FromStr;

use dat_social::archive::Entry;
use dat_social::friends::LocalStore;
use dat_social::identity::{DatUrl, Identity};
use dat_social::schema::{Profile, Session};
use fuzz_common::{fuzz, mutated, raw};
use proptest::prelude::*;

const KEY_HEX: &str = "ab01cd23ef45ab01cd23ef45ab01cd23ef45ab01cd23ef45ab01cd23ef45ab01";

fn documents() -> Vec<Vec<u8>> {
    let url = format!("dat://{KEY_HEX}");
    vec![
        format!(r#"{{"name":"alice","created":1700000000000,"friends":["{url}"]}}"#).into_bytes(),
        br#"{"name":"\u00e9\ud83d\ude00 bob","created":0,"friends":[]}"#.to_vec(),
        format!(
            r#"{{"name":"lobby","url":"{url}","last_update":1700000000000,"peers":2,"max_peers":8,"protected":true,"heartbeat":300000}}"#
        )
        .into_bytes(),
        format!(
            r#"{{"name":"x","url":"{url}","last_update":1,"peers":0,"max_peers":256,"protected":false,"ended":5}}"#
        )
        .into_bytes(),
    ]
}

fn entries() -> Vec<Vec<u8>> {
    let mut out = vec![Entry::header().encode()];
    for doc in documents() {
        out.push(
            Entry::Put {
                path: "profile.json".into(),
                value: String::from_utf8(doc).unwrap(),
            }
            .encode(),
        );
    }
    out.push(
        Entry::Del {
            path: "session.json".into(),
        }
        .encode(),
    );
    out
}

#[test]
fn schema_profile_and_session() {
    fuzz(
        "schema_profile_and_session",
        2_000,
        prop_oneof![raw(200), mutated(documents())],
        |bytes| {
            if let Ok(p) = Profile::from_json(&bytes) {
                prop_assert!(p.validate().is_ok());
                let again = Profile::from_json(&serde_json::to_vec(&p).unwrap());
                prop_assert_eq!(again.ok(), Some(p));
            }
            if let Ok(s) = Session::from_json(&bytes) {
                prop_assert!(s.validate().is_ok());
                for now in [0, s.last_update, u64::MAX] {
                    let _ = s.is_live(now);
                }
                let again = Session::from_json(&serde_json::to_vec(&s).unwrap());
                prop_assert_eq!(again.ok(), Some(s));
            }
            Ok(())
        },
    );
}

#[test]
fn schema_archive_entry() {
    fuzz(
        "schema_archive_entry",
        2_000,
        (prop_oneof![raw(200), mutated(entries())], 0u64..3),
        |(bytes, index)| {
            if let Ok(e) = Entry::decode(index, &bytes) {
                prop_assert_eq!(Entry::decode(index, &e.encode()).ok(), Some(e));
            }
            Ok(())
        },
    );
}

#[test]
fn schema_dat_url() {
    let urls: Vec<Vec<u8>> = [
        format!("dat://{KEY_HEX}"),
        format!("dat://{}/", KEY_HEX.to_uppercase()),
        format!("dat://{KEY_HEX}?peer=192.0.2.1:4000&relay=wss://relay.example:49443"),
        format!("dat://{KEY_HEX}/?peer=[::1]:4000&x=y&relay=tcp://r:1"),
    ]
    .map(String::into_bytes)
    .to_vec();
    fuzz(
        "schema_dat_url",
        2_000,
        prop_oneof![raw(100), mutated(urls)],
        |bytes| {
            let text = String::from_utf8_lossy(&bytes);
            if let Ok(url) = DatUrl::from_str(&text) {
                prop_assert_eq!(DatUrl::from_str(&url.to_string()).ok(), Some(url));
            }
            Ok(())
        },
    );
}

#[test]
fn schema_key_file_and_friends_file() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("identity.key");
    let id = Identity::from_seed([42; 32]);
    id.save_new(&key_path).unwrap();
    let key_file = std::fs::read(&key_path).unwrap();
    let friends = format!(
        r#"{{"version":1,"friends":{{"{KEY_HEX}":{{"alias":"bob","peer":"10.0.0.2:41234","relay":"ws://relay.example:49443","seen":1763750000000,"changed":1763740000000,"length":7}}}}}}"#
    )
    .into_bytes();
    let store = LocalStore::new(dir.path());
    fuzz(
        "schema_key_file_and_friends_file",
        500,
        prop_oneof![raw(200), mutated(vec![key_file, friends])],
        |bytes| {
            std::fs::write(&key_path, &bytes).unwrap();
            if let Ok(loaded) = Identity::load(&key_path) {
                // Only the real key file (or a whitespace/case variant of it) loads as our key.
                prop_assert_eq!(loaded.public_key(), id.public_key());
            }
            std::fs::write(dir.path().join("friends.json"), &bytes).unwrap();
            if let Ok(notes) = store.load() {
                prop_assert_eq!(notes.version, 1);
            }
            Ok(())
        },
    );
}
