//! The client's side of `dat-social/ice/v1` in the core: the request goes out with the session,
//! an answer becomes [`ClientEvent::IceServers`], renewals follow the clock, and a relay that
//! does not serve the channel gives [`ClientEvent::IceRefused`] and nothing else changes.

use super::*;
use crate::ice::IceServer;
use crate::relay::ice::IceMessage;
use crate::relay::IceEvent;

fn ice_events(relay: &mut RelayCodec) -> Vec<IceEvent> {
    std::iter::from_fn(|| relay.poll_event())
        .filter_map(|e| match e {
            RelayEvent::Ice(ev) => Some(ev),
            _ => None,
        })
        .collect()
}

/// Pumps the core's frames into the relay; returns the relay's ICE events.
fn pump(h: &mut Harness) -> Vec<IceEvent> {
    while let Some(f) = h.core.poll_transmit() {
        h.relay.handle_frame(&f).unwrap();
    }
    ice_events(&mut h.relay)
}

fn stun() -> Vec<IceServer> {
    vec![IceServer {
        urls: vec!["stun:192.0.2.1:3478".into()],
        username: None,
        credential: None,
    }]
}

#[test]
fn the_session_asks_and_an_answer_is_an_event_then_renewed_before_expiry() {
    let key = SigningKey::from_bytes(&[0x31; 32]);
    let mut core = ClientCore::new(key, false, IDLE);
    let t0 = Instant::now();
    core.start_session(t0);
    let mut h = Harness {
        core,
        relay: relay_end(),
        key: SigningKey::from_bytes(&[0x31; 32]),
        now: t0,
    };
    assert_eq!(
        pump(&mut h),
        vec![IceEvent::Opened, IceEvent::Message(IceMessage::Request)]
    );
    let answer = IceMessage::Servers {
        ttl_s: 3600,
        servers: stun(),
    };
    h.relay.send_ice(&answer).unwrap();
    while let Some(f) = h.relay.poll_transmit() {
        h.core.handle_frame(&f, t0).unwrap();
    }
    let events = h.events();
    let [ClientEvent::Connected, ClientEvent::IceServers { servers, expires }] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(servers, &stun());
    assert_eq!(*expires, t0 + Duration::from_secs(3600));
    // The renewal comes before the idle deadline only if frames keep coming: pings do.
    let renew = t0 + Duration::from_secs(2700);
    let mut now = t0;
    while now < renew {
        now += Duration::from_secs(15);
        h.relay.send(&Message::Ping).unwrap();
        while let Some(f) = h.relay.poll_transmit() {
            h.core.handle_frame(&f, now).unwrap();
        }
        h.core.handle_timeout(now).unwrap();
        let asked = pump(&mut h);
        if now < renew {
            assert_eq!(asked, vec![], "at {:?}", now - t0);
        } else {
            assert_eq!(asked, vec![IceEvent::Message(IceMessage::Request)]);
        }
        assert!(h.core.poll_timeout().unwrap() > now);
    }
}

#[test]
fn a_relay_without_ice_refuses_and_the_session_goes_on() {
    let key = SigningKey::from_bytes(&[0x32; 32]);
    let mut core = ClientCore::new(key, true, IDLE);
    let now = Instant::now();
    core.start_session(now);
    let mut h = Harness {
        core,
        relay: RelayCodec::new(),
        key: SigningKey::from_bytes(&[0x32; 32]),
        now,
    };
    let sent = h.sent();
    assert!(
        matches!(sent.as_slice(), [Message::Handshake(_)]),
        "{sent:?}"
    );
    let sent = h.sent(); // the relay's reject reaches the core
    assert!(sent.is_empty(), "{sent:?}");
    let events = h.events();
    assert!(
        matches!(
            events.as_slice(),
            [ClientEvent::Connected, ClientEvent::IceRefused]
        ),
        "{events:?}"
    );
    // Nothing more is asked, and the relay channel works as before.
    h.core
        .handle_timeout(now + Duration::from_secs(40))
        .unwrap();
    assert!(h.sent().is_empty());
    assert!(h.core.lookup([1; 32]).is_some());
    assert!(matches!(h.sent().as_slice(), [Message::Lookup(_)]));
}
