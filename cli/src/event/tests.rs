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
fn unknown_values_are_null_not_absent() {
    let event = Event::Listening {
        ws: Some("ws://127.0.0.1:1".into()),
        tcp: None,
    };
    assert_eq!(
        line(&event),
        json!({"event": "listening", "ws": "ws://127.0.0.1:1", "tcp": null})
    );
}
