//! Unit tests of [`super::Event`]: the JSON each variant serializes to.

use super::*;
use serde_json::{json, Value};

fn line(event: &Event) -> Value {
    serde_json::to_value(event).unwrap()
}

#[test]
fn the_event_name_comes_first_in_kebab_case() {
    let event = Event::PeerJoined {
        peer: "dat://aa".into(),
        name: "bob".into(),
        peers: 2,
        path: None,
    };
    let text = serde_json::to_string(&event).unwrap();
    assert!(text.starts_with(r#"{"event":"peer-joined","#), "{text}");
    assert_eq!(
        line(&event),
        json!({"event": "peer-joined", "peer": "dat://aa", "name": "bob", "peers": 2})
    );
    assert_eq!(line(&Event::Ended), json!({"event": "ended"}));
}

#[test]
fn a_warning_names_a_friend_only_when_there_is_one() {
    let lobby = Event::Warning {
        url: None,
        message: "m".into(),
    };
    assert_eq!(line(&lobby), json!({"event": "warning", "message": "m"}));
    let watch = Event::Warning {
        url: Some("dat://aa".into()),
        message: "m".into(),
    };
    assert_eq!(
        line(&watch),
        json!({"event": "warning", "url": "dat://aa", "message": "m"})
    );
}

#[test]
fn relay_reconnect_details_come_only_with_the_reconnecting_state() {
    let connected = Event::Relay {
        url: "ws://r".into(),
        state: (&RelayState::Connected).into(),
    };
    assert_eq!(
        line(&connected),
        json!({"event": "relay", "url": "ws://r", "state": "connected"})
    );
    let lost = Event::Relay {
        url: "ws://r".into(),
        state: (&RelayState::Reconnecting {
            attempt: 3,
            delay: std::time::Duration::from_millis(1500),
            error: "reset".into(),
        })
            .into(),
    };
    assert_eq!(
        line(&lost),
        json!({"event": "relay", "url": "ws://r", "state": "reconnecting",
               "attempt": 3, "delay_ms": 1500, "error": "reset"})
    );
}

#[test]
fn text_spells_a_reason_as_json_does() {
    assert_eq!(spelling(&DownReason::Offline), "offline");
    assert_eq!(spelling(&RejectReason::FriendsOnly), "friends-only");
    assert_eq!(spelling(&3), "");
}

#[test]
fn unknown_values_are_null_not_absent() {
    let event = Event::Listening {
        ws: Some("ws://127.0.0.1:1".into()),
        tcp: None,
        turn_udp: None,
        turn_tcp: None,
        turn_urls: None,
    };
    assert_eq!(
        line(&event),
        json!({"event": "listening", "ws": "ws://127.0.0.1:1", "tcp": null,
               "turn_udp": null, "turn_tcp": null, "turn_urls": null})
    );
}

/// `schemas/events.schema.json`, with the `profile.json` and `session.json` schemas it refers
/// to, as a validator.
fn schema() -> (Value, jsonschema::Validator) {
    let parse = |text: &str| -> Value { serde_json::from_str(text).unwrap() };
    let events = parse(include_str!("../../../schemas/events.schema.json"));
    let mut options = jsonschema::options();
    for doc in [
        include_str!("../../../schemas/profile.schema.json"),
        include_str!("../../../schemas/session.schema.json"),
    ] {
        let doc = parse(doc);
        let id = doc["$id"].as_str().unwrap().to_string();
        options.with_resource(id, jsonschema::Resource::from_contents(doc).unwrap());
    }
    let validator = options.build(&events).expect("a valid JSON Schema");
    (events, validator)
}

/// The event names the schema lists, from its `oneOf`.
fn schema_names(events: &Value) -> std::collections::BTreeSet<String> {
    events["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["$ref"]
                .as_str()
                .unwrap()
                .trim_start_matches("#/$defs/")
                .to_string()
        })
        .collect()
}

fn profile() -> Profile {
    Profile {
        name: "alice".into(),
        created: 1_700_000_000_000,
        friends: vec![url('b')],
    }
}

fn session() -> Session {
    Session {
        name: "friday".into(),
        url: url('c'),
        last_update: 1_700_000_000_000,
        peers: 1,
        max_peers: 8,
        protected: false,
        heartbeat: Some(300_000),
        ended: None,
    }
}

fn url(c: char) -> String {
    format!("dat://{}", c.to_string().repeat(64))
}

fn lobby() -> LobbyInfo {
    LobbyInfo {
        host: url('a'),
        host_name: "alice".into(),
        name: "friday".into(),
        peers: 1,
        max_peers: 8,
        protected: true,
        age_ms: 1200,
        heartbeat: None,
        route: "relay ws://127.0.0.1:49443".into(),
        join: format!("{}?relay=ws://127.0.0.1:49443", url('a')),
    }
}

/// One event of every variant, the optional parts both present and absent where they can be.
fn samples() -> Vec<Event> {
    let s = |t: &str| t.to_string();
    vec![
        Event::Initialized {
            url: url('a'),
            profile: profile(),
            data_dir: s("/tmp/a"),
        },
        Event::Whoami {
            url: url('a'),
            profile: profile(),
            session: None,
        },
        Event::Whoami {
            url: url('a'),
            profile: profile(),
            session: Some(session()),
        },
        Event::Profile {
            url: url('a'),
            profile: profile(),
        },
        Event::Archive {
            url: url('a'),
            length: 3,
            profile: None,
            session: None,
            live: false,
        },
        Event::Archive {
            url: url('a'),
            length: 5,
            profile: Some(profile()),
            session: Some(session()),
            live: true,
        },
        Event::Hosting {
            url: url('a'),
            invite: format!("{}?peer=127.0.0.1:4000", url('a')),
            lobby: url('c'),
            max_peers: 8,
            listen: s("127.0.0.1:4000"),
            relay: None,
        },
        Event::PeerJoined {
            peer: url('b'),
            name: s("bob"),
            peers: 1,
            path: Some(PathInfo {
                kind: PathKind::Relay,
                relay: Some(s("198.51.100.1:3478")),
            }),
        },
        Event::PathChanged {
            peer: Some(url('b')),
            name: Some(s("bob")),
            path: PathInfo {
                kind: PathKind::Srflx,
                relay: None,
            },
        },
        Event::PeerLeft {
            peer: url('b'),
            name: s("bob"),
            peers: 0,
        },
        Event::PeerRejected {
            peer: s("127.0.0.1:5000"),
            reason: RejectReason::FriendsOnly,
        },
        Event::Message {
            from: url('b'),
            name: s("bob"),
            text: s("hi \u{1b}"),
        },
        Event::Data {
            from: url('b'),
            label: s("game"),
            bytes: 12,
        },
        Event::Relay {
            url: s("ws://r"),
            state: RelayStatus::Connecting,
        },
        Event::Relay {
            url: s("ws://r"),
            state: RelayStatus::Reconnecting {
                attempt: 1,
                delay_ms: 250,
                error: s("reset"),
            },
        },
        Event::Warning {
            url: None,
            message: s("too long"),
        },
        Event::Warning {
            url: Some(url('b')),
            message: s("damaged"),
        },
        Event::Ended,
        Event::Connected {
            peer: url('a'),
            name: s("friday"),
            host_name: s("alice"),
            ms: 16,
            path: Some(PathInfo {
                kind: PathKind::Host,
                relay: None,
            }),
        },
        Event::Rejected {
            reason: RejectReason::Full,
        },
        Event::Disconnected,
        Event::Picked(lobby()),
        Event::FriendAdded {
            url: url('b'),
            alias: Some(s("bob")),
        },
        Event::FriendRemoved {
            url: url('b'),
            alias: None,
        },
        Event::Friend(Box::new(FriendInfo {
            url: url('b'),
            alias: None,
            name: None,
            online: false,
            route: None,
            changed: None,
            seen: None,
            length: 0,
            mutual: false,
            hosting: None,
            error: Some(s("unreachable")),
            damaged: None,
        })),
        Event::Friend(Box::new(FriendInfo {
            url: url('b'),
            alias: Some(s("bob")),
            name: Some(s("Bob")),
            online: true,
            route: Some(s("127.0.0.1:4000")),
            changed: Some(1_700_000_000_000),
            seen: Some(1_700_000_000_001),
            length: 4,
            mutual: true,
            hosting: Some(lobby()),
            error: None,
            damaged: Some(s("bad signature")),
        })),
        Event::Session(lobby()),
        Event::Watching,
        Event::SessionUp(lobby()),
        Event::SessionChanged(lobby()),
        Event::SessionDown {
            host: url('a'),
            reason: DownReason::Stale,
        },
        Event::FriendOnline {
            url: url('a'),
            route: s("127.0.0.1:4000"),
        },
        Event::FriendOffline {
            url: url('a'),
            reason: s("closed"),
        },
        Event::FriendProfile {
            url: url('a'),
            profile: profile(),
            mutual: true,
        },
        Event::Check {
            kind: s("replica"),
            path: s("/tmp/a/replicas/x"),
            key: Some("d".repeat(64)),
            length: 0,
            state: s("repaired"),
            reason: Some(s("torn write")),
            repaired: Some(s("rebuilt the tree")),
        },
        Event::Listening {
            ws: Some(s("ws://127.0.0.1:49443")),
            tcp: None,
            turn_udp: None,
            turn_tcp: None,
            turn_urls: None,
        },
        Event::Listening {
            ws: Some(s("ws://127.0.0.1:49443")),
            tcp: Some(s("tcp://127.0.0.1:49444")),
            turn_udp: Some(s("0.0.0.0:3478")),
            turn_tcp: Some(s("0.0.0.0:3478")),
            turn_urls: Some(vec![
                s("stun:198.51.100.1:3478"),
                s("turn:198.51.100.1:3478?transport=udp"),
            ]),
        },
        Event::DhtNode {
            address: s("127.0.0.1:49737"),
            id: Some("e".repeat(64)),
            bootstrap: vec![s("127.0.0.1:49738")],
        },
        Event::Stopped,
        Event::Error {
            message: s("no identity"),
        },
    ]
}

#[test]
fn every_variant_validates_against_the_schema_which_lists_exactly_the_variants() {
    let (events, schema) = schema();
    let mut seen = std::collections::BTreeSet::new();
    for event in samples() {
        let doc = line(&event);
        let errors: Vec<String> = schema.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{doc}: {errors:?}");
        seen.insert(doc["event"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, schema_names(&events));
}

#[test]
fn the_schema_refuses_what_the_cli_never_prints() {
    let (_, schema) = schema();
    let valid = line(&Event::PeerJoined {
        peer: url('b'),
        name: "bob".into(),
        peers: 1,
        path: None,
    });
    assert!(schema.is_valid(&valid));
    let with = |key: &str, value: Value| {
        let mut doc = valid.clone();
        doc[key] = value;
        doc
    };
    let broken = [
        with("event", json!("peer-joind")),
        with("peers", json!(-1)),
        with("peer", json!("dat://AB")),
        with("extra", json!(1)),
        json!({"event": "peer-joined", "peer": url('b'), "name": "bob"}),
        json!({"event": "relay", "url": "ws://r", "state": "reconnecting"}),
        json!({"event": "relay", "url": "ws://r", "state": "connected", "attempt": 1}),
        json!({"event": "warning"}),
        json!({"event": "whoami", "url": url('a'), "profile": {"name": ""}, "session": null}),
        json!({"event": "session", "host": url('a')}),
        json!({"message": "no event field"}),
    ];
    for doc in broken {
        assert!(!schema.is_valid(&doc), "accepted {doc}");
    }
}

#[test]
fn the_path_is_its_kind_and_for_relay_the_relay_address() {
    let relayed = PathInfo {
        kind: PathKind::Relay,
        relay: Some("198.51.100.1:3478".into()),
    };
    assert_eq!(
        serde_json::to_value(&relayed).unwrap(),
        json!({"kind": "relay", "relay": "198.51.100.1:3478"})
    );
    assert_eq!(relayed.text(), "path relay via 198.51.100.1:3478");
    let direct = PathInfo {
        kind: PathKind::Srflx,
        relay: None,
    };
    assert_eq!(
        serde_json::to_value(&direct).unwrap(),
        json!({"kind": "srflx"})
    );
    assert_eq!(direct.text(), "path srflx");
    let joined = line(&Event::PeerJoined {
        peer: "dat://aa".into(),
        name: "bob".into(),
        peers: 1,
        path: Some(direct),
    });
    assert_eq!(joined["path"], json!({"kind": "srflx"}));
}

#[test]
fn a_path_change_names_the_player_on_the_host_and_nobody_on_a_join() {
    let path = PathInfo {
        kind: PathKind::Srflx,
        relay: None,
    };
    let host = line(&Event::PathChanged {
        peer: Some("dat://aa".into()),
        name: Some("bob".into()),
        path: path.clone(),
    });
    assert_eq!(
        host,
        json!({"event": "path-changed", "peer": "dat://aa", "name": "bob", "path": {"kind": "srflx"}})
    );
    let join = line(&Event::PathChanged {
        peer: None,
        name: None,
        path,
    });
    assert_eq!(
        join,
        json!({"event": "path-changed", "path": {"kind": "srflx"}})
    );
    let (_, schema) = schema();
    let join_doc = json!({"event": "path-changed", "path": {"kind": "srflx"}});
    assert!(schema.is_valid(&join_doc));
    let half = json!({"event": "path-changed", "peer": url('b'), "path": {"kind": "srflx"}});
    assert!(!schema.is_valid(&half), "a peer without its name");
}
