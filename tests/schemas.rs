//! `schemas/*.schema.json` and the serde types describe the same documents: real files written by
//! the binary validate against the schemas, and documents that break one break the other.

mod support;

use dat_social::archive::Entry;
use dat_social::hypercore::Core;
use dat_social::schema::{Profile, Session};
use serde_json::{json, Value};
use support::{host, User};

fn validator(name: &str) -> jsonschema::Validator {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(name);
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).expect("a valid JSON Schema")
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc).map(|e| e.to_string()).collect()
}

/// Every `put` in an archive, as (path, exact text written).
fn files_written(dir: &std::path::Path) -> Vec<(String, String)> {
    let core = Core::open(dir, None).unwrap();
    (0..core.length())
        .filter_map(
            |i| match Entry::decode(i, &core.get(i).unwrap().unwrap()).unwrap() {
                Entry::Put { path, value } => Some((path, value)),
                _ => None,
            },
        )
        .collect()
}

#[test]
fn files_written_by_the_binary_validate_against_the_schemas() {
    let alice = User::new("alice");
    let out = alice.run(&["profile", "set", "--name", "Alice Ω"]);
    assert!(out.status.success());
    let pw = alice.password_file("secret");
    let (mut lobby, _) = host(
        &alice,
        &["--password-file", pw.to_str().unwrap(), "--max-peers", "2"],
    );
    lobby.signal("INT");
    assert!(lobby.wait_exit(support::WAIT).success());

    let (profile_schema, session_schema) = (
        validator("profile.schema.json"),
        validator("session.schema.json"),
    );
    let written = files_written(&alice.data_dir().join("archive"));
    let mut seen = (0, 0);
    for (path, text) in &written {
        let doc: Value = serde_json::from_str(text).unwrap();
        match path.as_str() {
            "profile.json" => {
                assert_eq!(
                    errors(&profile_schema, &doc),
                    Vec::<String>::new(),
                    "{text}"
                );
                Profile::from_json(text.as_bytes()).unwrap();
                seen.0 += 1;
            }
            "session.json" => {
                assert_eq!(
                    errors(&session_schema, &doc),
                    Vec::<String>::new(),
                    "{text}"
                );
                Session::from_json(text.as_bytes()).unwrap();
                seen.1 += 1;
            }
            other => panic!("unexpected file {other}"),
        }
    }
    // init, profile set; host start and the ended mark.
    assert!(seen.0 >= 2 && seen.1 >= 2, "{written:?}");
    let last_session: Value = serde_json::from_str(
        &written
            .iter()
            .rev()
            .find(|(p, _)| p == "session.json")
            .unwrap()
            .1,
    )
    .unwrap();
    assert_eq!(last_session["protected"], true);
    assert!(last_session["ended"].is_u64());
}

fn good_profile() -> Value {
    json!({ "name": "alice", "created": 1_700_000_000_000u64, "friends": [format!("dat://{}", "ab".repeat(32))] })
}

fn good_session() -> Value {
    json!({
        "name": "lobby", "url": format!("dat://{}", "cd".repeat(32)), "last_update": 1_700_000_000_000u64,
        "peers": 2, "max_peers": 8, "protected": false, "heartbeat": 300_000
    })
}

fn with(mut doc: Value, key: &str, value: Value) -> Value {
    doc[key] = value;
    doc
}

fn without(mut doc: Value, key: &str) -> Value {
    doc.as_object_mut().unwrap().remove(key);
    doc
}

#[test]
fn schema_and_serde_agree_on_what_is_valid() {
    let ps = validator("profile.schema.json");
    let profiles = [
        (good_profile(), true),
        (with(good_profile(), "name", json!("")), false),
        (with(good_profile(), "name", json!("x".repeat(101))), false),
        (with(good_profile(), "name", json!("é".repeat(100))), true),
        (with(good_profile(), "created", json!(-1)), false),
        (with(good_profile(), "created", json!("yesterday")), false),
        (with(good_profile(), "friends", json!(["dat://ABC"])), false),
        (
            with(
                good_profile(),
                "friends",
                json!([format!("dat://{}", "AB".repeat(32))]),
            ),
            false,
        ),
        (
            with(
                good_profile(),
                "friends",
                json!([
                    format!("dat://{}", "ab".repeat(32)),
                    format!("dat://{}", "ab".repeat(32))
                ]),
            ),
            false,
        ),
        (with(good_profile(), "extra", json!(1)), false),
        (without(good_profile(), "friends"), false),
    ];
    for (doc, valid) in profiles {
        let bytes = serde_json::to_vec(&doc).unwrap();
        assert_eq!(ps.is_valid(&doc), valid, "schema on {doc}");
        assert_eq!(Profile::from_json(&bytes).is_ok(), valid, "serde on {doc}");
    }

    let ss = validator("session.schema.json");
    let sessions = [
        (good_session(), true),
        (without(good_session(), "heartbeat"), true),
        (
            with(good_session(), "ended", json!(1_700_000_000_001u64)),
            true,
        ),
        (with(good_session(), "max_peers", json!(0)), false),
        (with(good_session(), "max_peers", json!(257)), false),
        (with(good_session(), "peers", json!(-1)), false),
        (with(good_session(), "protected", json!("no")), false),
        (
            with(good_session(), "url", json!("https://example.com")),
            false,
        ),
        (with(good_session(), "heartbeat", json!(0)), false),
        (without(good_session(), "last_update"), false),
        (with(good_session(), "host", json!("x")), false),
    ];
    for (doc, valid) in sessions {
        let bytes = serde_json::to_vec(&doc).unwrap();
        assert_eq!(ss.is_valid(&doc), valid, "schema on {doc}");
        assert_eq!(Session::from_json(&bytes).is_ok(), valid, "serde on {doc}");
    }
}
