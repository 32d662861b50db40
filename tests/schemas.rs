//! `schemas/*.schema.json` and the serde types describe the same documents: real files written by
//! the binary validate against the schemas, and documents that break one break the other; and
//! every `--json` line the binary prints, in a scenario that makes it print nearly every kind of
//! event, validates against `events.schema.json`.

mod support;

use std::collections::BTreeSet;
use std::process::ExitStatus;

use dat_social::archive::Entry;
use dat_social::hypercore::Core;
use dat_social::schema::{Profile, Session};
use serde_json::{json, Value};
use support::{host, Proc, User, WAIT};

/// A schema of `schemas/`, parsed.
fn schema(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A validator for `schemas/<name>`; the schemas it may refer to (`profile.schema.json` and
/// `session.schema.json`, by their `$id`) are loaded from `schemas/` too.
fn validator(name: &str) -> jsonschema::Validator {
    let mut options = jsonschema::options();
    for referred in ["profile.schema.json", "session.schema.json"] {
        let doc = schema(referred);
        let id = doc["$id"].as_str().unwrap().to_string();
        options.with_resource(id, jsonschema::Resource::from_contents(doc).unwrap());
    }
    options.build(&schema(name)).expect("a valid JSON Schema")
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

/// Every `--json` line printed during a scenario, with the command that printed it.
#[derive(Default)]
struct Printed(Vec<(String, Value)>);

impl Printed {
    fn keep(&mut self, by: &str, event: Value) -> Value {
        self.0.push((by.to_string(), event.clone()));
        event
    }

    /// Runs a command to completion (see [`User::run`]) and keeps its lines.
    fn run(&mut self, user: &User, args: &[&str]) -> support::Output {
        let out = user.run(args);
        for event in out.events() {
            self.keep(&format!("{} {args:?}", user.name), event);
        }
        out
    }

    /// The first line of `proc` naming `event`, kept.
    fn expect(&mut self, by: &str, proc: &mut Proc, event: &str) -> Value {
        let value = proc.expect(event);
        self.keep(by, value)
    }

    /// The first line of `proc` that satisfies `pred`, kept.
    fn expect_where(
        &mut self,
        by: &str,
        proc: &mut Proc,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let value = proc.expect_where(WAIT, what, pred);
        self.keep(by, value)
    }

    /// Waits for `proc` to exit and keeps every line it printed that no `expect` took.
    fn finish(&mut self, by: &str, mut proc: Proc) -> ExitStatus {
        let status = proc.wait_exit(WAIT);
        for event in proc.drain(WAIT) {
            self.keep(by, event);
        }
        status
    }

    /// Ends `proc` as Ctrl-C does, then [`Printed::finish`].
    fn interrupt(&mut self, by: &str, proc: Proc) -> ExitStatus {
        proc.signal("INT");
        self.finish(by, proc)
    }
}

/// Events the scenario can't make the binary print, and why.
const NOT_PRINTED: &[(&str, &str)] = &[
    (
        "data",
        "the CLI sends chat only; other data channels are opened by library users",
    ),
    (
        "path-changed",
        "ICE moves a connection to a better pair after it opened only across NATs; \
         tests/e2e_nat.rs sees it in the NAT lab",
    ),
];

/// Runs every command with `--json`: init (and init again: an error), a relay and a host
/// listening through it, profile set, whoami, a host with one slot, friends add/list/remove,
/// show, sessions and sessions --watch, join --quick, a join turned away (full), chat both
/// ways, a chat line too long, leaving, the host ending under a player, and check. Every line
/// must validate against `events.schema.json`, and every event the schema lists must appear
/// (but [`NOT_PRINTED`]).
#[test]
fn every_json_line_the_binary_prints_validates_against_the_events_schema() {
    let mut p = Printed::default();

    // A user's first init, and a second one: refused with an error event.
    let dave = User {
        dir: tempfile::tempdir().unwrap(),
        name: "dave".into(),
    };
    assert!(p.run(&dave, &["init", "--name", "dave"]).status.success());
    assert_eq!(p.run(&dave, &["init", "--name", "dave"]).code(), 1);

    // A relay, and a host listening through it.
    let mut relay = dave.spawn(&[
        "relay",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--turn-port",
        "0",
    ]);
    let ws = p.expect("relay", &mut relay, "listening")["ws"]
        .as_str()
        .unwrap()
        .to_string();
    let (mut relayed, hosting) = host(&dave, &["--relay", &ws]);
    p.keep("dave host", hosting);
    p.expect_where("dave host", &mut relayed, "relay connected", |v| {
        v["event"] == "relay" && v["state"] == "connected"
    });
    assert!(p.interrupt("dave host", relayed).success());
    assert!(p.interrupt("relay", relay).success());
    // A DHT node: the first of a private network.
    let mut dht = dave.spawn(support::DHT_BOOTSTRAPPER);
    p.expect("dht-node", &mut dht, "dht-node");
    assert!(p.interrupt("dht-node", dht).success());

    // Alice hosts a lobby with one slot.
    let alice = User::new("alice");
    assert!(p
        .run(&alice, &["profile", "set", "--name", "Alice"])
        .status
        .success());
    let (mut lobby, hosting) = host(&alice, &["--max-peers", "1"]);
    let invite = p.keep("alice host", hosting)["invite"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(p.run(&alice, &["whoami"]).status.success());

    // Bob follows her, looks at her and her lobby, and watches.
    let bob = User::new("bob");
    assert!(p.run(&bob, &["whoami"]).status.success());
    let friend = ["friends", "add", &invite, "--alias", "al"];
    assert!(p.run(&bob, &friend).status.success());
    assert!(p.run(&bob, &["show", &invite]).status.success());
    assert!(p.run(&bob, &["friends", "list"]).status.success());
    assert!(p.run(&bob, &["sessions"]).status.success());
    let mut watch = bob.spawn(&["sessions", "--watch"]);
    for event in ["watching", "friend-online", "friend-profile", "session-up"] {
        p.expect("bob watch", &mut watch, event);
    }

    // Bob joins the best lobby among his friends': hers. Carol finds it full.
    let mut bob_join = bob.spawn(&["join", "--quick"]);
    p.expect("bob join", &mut bob_join, "picked");
    p.expect("bob join", &mut bob_join, "connected");
    p.expect("alice host", &mut lobby, "peer-joined");
    p.expect_where(
        "bob watch",
        &mut watch,
        "session-changed to 1 player",
        |v| v["event"] == "session-changed" && v["peers"] == 1,
    );
    let carol = User::new("carol");
    assert_eq!(p.run(&carol, &["join", &invite]).code(), 4);
    p.expect("alice host", &mut lobby, "peer-rejected");

    // Chat both ways, and a line too long for chat.
    bob_join.say("hello alice");
    p.expect("alice host", &mut lobby, "message");
    lobby.say("hello bob");
    p.expect("bob join", &mut bob_join, "message");
    bob_join.say(&"x".repeat(16 * 1024 + 1));
    p.expect("bob join", &mut bob_join, "warning");

    // Bob leaves; Carol takes the slot; Alice ends the lobby under her.
    assert!(p.interrupt("bob join", bob_join).success());
    p.expect("alice host", &mut lobby, "peer-left");
    let mut carol_join = carol.spawn(&["join", &invite]);
    p.expect("carol join", &mut carol_join, "connected");
    assert!(p.interrupt("alice host", lobby).success());
    p.expect("carol join", &mut carol_join, "disconnected");
    assert!(p.finish("carol join", carol_join).success());
    p.expect("bob watch", &mut watch, "session-down");
    p.expect("bob watch", &mut watch, "friend-offline");
    assert!(p.interrupt("bob watch", watch).success());

    // Bob checks what he holds on disk, and unfollows her.
    assert!(p.run(&bob, &["check"]).status.success());
    assert!(p.run(&bob, &["friends", "remove", "al"]).status.success());

    let events = validator("events.schema.json");
    let mut seen = BTreeSet::new();
    for (by, event) in &p.0 {
        assert_eq!(
            errors(&events, event),
            Vec::<String>::new(),
            "{by} printed {event}"
        );
        seen.insert(event["event"].as_str().unwrap().to_string());
    }
    let listed: BTreeSet<String> = schema("events.schema.json")["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["$ref"].as_str().unwrap().replace("#/$defs/", ""))
        .collect();
    let not_printed: BTreeSet<String> = NOT_PRINTED.iter().map(|(e, _)| e.to_string()).collect();
    let missing: Vec<&String> = listed.difference(&seen).collect();
    assert_eq!(
        missing,
        not_printed.iter().collect::<Vec<_>>(),
        "events the schema lists that the scenario did not print"
    );
    assert!(seen.is_subset(&listed), "{seen:?}");
}
