//! The `dat-social/ice/v1` channel in the relay core: answered with fresh TURN REST
//! credentials for the session's key, only after its `handshake`, within the request budget;
//! rejected when the relay has no ICE config.

use super::*;
use crate::ice::rest;
use crate::relay::ice::IceMessage;
use crate::relay::IceEvent;

const UNIX_T0: u64 = 1_800_000_000;

fn ice_world() -> World {
    let mut w = World::new(Limits::default());
    let config = RelayIce {
        secret: b"shared".to_vec(),
        urls: vec![
            "stun:198.51.100.7:3478".parse().unwrap(),
            "turn:198.51.100.7:3478?transport=udp".parse().unwrap(),
            "turn:198.51.100.7:3478?transport=tcp".parse().unwrap(),
        ],
        ttl: Duration::from_secs(600),
    };
    w.relay
        .set_ice(Some(config), w.now, Duration::from_secs(UNIX_T0));
    w
}

/// Opens `c`'s ICE channel and sends `requests` requests.
fn ask(w: &mut World, c: &mut Client, requests: usize) {
    c.codec.open_ice();
    for _ in 0..requests {
        c.codec.send_ice(&IceMessage::Request).unwrap();
    }
    while let Some(f) = c.codec.poll_transmit() {
        w.relay.handle_frame(c.id, &f, w.now);
    }
}

/// The ICE events the relay sent `c`.
fn ice_events(w: &mut World, c: &mut Client) -> Vec<IceEvent> {
    while let Some(f) = w.relay.poll_transmit(c.id, w.now) {
        c.codec.handle_frame(&f).unwrap();
    }
    std::iter::from_fn(|| c.codec.poll_event())
        .filter_map(|e| match e {
            RelayEvent::Ice(ev) => Some(ev),
            _ => None,
        })
        .collect()
}

fn servers(events: &[IceEvent]) -> Vec<(u64, Vec<crate::ice::IceServer>)> {
    events
        .iter()
        .filter_map(|e| match e {
            IceEvent::Message(IceMessage::Servers { ttl_s, servers }) => {
                Some((*ttl_s, servers.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_session_gets_stun_and_turn_with_valid_credentials_for_its_key() {
    let mut w = ice_world();
    let mut c = w.client(0x61);
    w.now += Duration::from_secs(5);
    ask(&mut w, &mut c, 1);
    let events = ice_events(&mut w, &mut c);
    assert_eq!(events[0], IceEvent::Opened);
    let got = servers(&events);
    let [(600, list)] = got.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(list[0].urls, vec!["stun:198.51.100.7:3478"]);
    let turn = &list[1];
    let user = turn.username.as_deref().unwrap();
    assert_eq!(rest::check_username(user, UNIX_T0 + 5), Ok(UNIX_T0 + 605));
    assert!(user.ends_with(&credential_name(&keys(0x61).0)));
    assert_eq!(
        turn.credential.as_deref(),
        Some(rest::password(b"shared", user).as_str())
    );
}

#[test]
fn a_request_before_the_handshake_is_answered_after_it_and_a_flood_is_dropped() {
    let mut w = ice_world();
    let id = w.relay.open_session("early".into(), w.now).unwrap();
    let mut c = Client {
        id,
        codec: RelayCodec::new(),
    };
    ask(&mut w, &mut c, 1);
    assert!(servers(&ice_events(&mut w, &mut c)).is_empty());
    let (public_key, _) = keys(0x62);
    w.send(
        &mut c,
        &Message::Handshake(Handshake {
            public_key,
            secret_key: None,
        }),
    );
    assert_eq!(servers(&ice_events(&mut w, &mut c)).len(), 1);
    // The budget: the burst less the one used, then one per quarter of the lifetime.
    for _ in 0..10 {
        c.codec.send_ice(&IceMessage::Request).unwrap();
    }
    while let Some(f) = c.codec.poll_transmit() {
        w.relay.handle_frame(c.id, &f, w.now);
    }
    let answered = servers(&ice_events(&mut w, &mut c)).len();
    assert_eq!(answered as u32, ICE_REQUEST_BURST - 1);
    w.now += Duration::from_secs(150);
    w.send(&mut c, &Message::Pong); // keeps the session alive; any frame will do
    c.codec.send_ice(&IceMessage::Request).unwrap();
    c.codec.send_ice(&IceMessage::Request).unwrap();
    while let Some(f) = c.codec.poll_transmit() {
        w.relay.handle_frame(c.id, &f, w.now);
    }
    assert_eq!(servers(&ice_events(&mut w, &mut c)).len(), 1);
    assert!(w.relay.close_reason(c.id).is_none(), "the session goes on");
}

#[test]
fn without_ice_the_channel_is_rejected_and_the_session_goes_on() {
    let mut w = World::new(Limits::default());
    let mut c = w.client(0x63);
    ask(&mut w, &mut c, 1);
    assert_eq!(ice_events(&mut w, &mut c), vec![IceEvent::Closed]);
    w.send(&mut c, &Message::Ping);
    assert_eq!(w.recv(&mut c), vec![Message::Pong]);
    assert!(w.relay.close_reason(c.id).is_none());
}
