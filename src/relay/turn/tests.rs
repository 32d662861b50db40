//! Unit tests of the sans-IO TURN core: authentication, peer filtering, quotas, bandwidth,
//! relaying both ways, expiry driven by `now`, TCP framing.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use stun_types::attribute::{AttributeWrite, ErrorCode, Nonce, Realm, Username, XorMappedAddress};
use stun_types::message::{
    IntegrityAlgorithm, LongTermKeyCredentials, Message, MessageClass, MessageWrite,
    MessageWriteExt, MessageWriteVec, Method, TransactionId, BINDING,
};
use turn_types::attribute::{
    ChannelNumber, Data, Lifetime, RequestedTransport, XorPeerAddress, XorRelayedAddress,
};
use turn_types::message::{ALLOCATE, CHANNEL_BIND, CREATE_PERMISSION, DATA, REFRESH, SEND};

use super::*;
use crate::ice::rest;

const SECRET: &[u8] = b"test secret";
const UNIX0: u64 = 1_800_000_000;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn tuple(client: &str) -> FiveTuple {
    FiveTuple {
        transport: ClientTransport::Udp,
        client: addr(client),
        server: addr("198.51.100.1:3478"),
    }
}

fn server(configure: impl FnOnce(&mut TurnConfig)) -> (TurnServer, Instant) {
    let mut config = TurnConfig::new(SECRET.to_vec());
    configure(&mut config);
    let now = Instant::now();
    (TurnServer::new(config, now, UNIX0), now)
}

/// A client's credentials: username, password, and the nonce last received.
struct Creds {
    user: String,
    pass: String,
    nonce: String,
}

fn creds(name: &str, expires: u64) -> Creds {
    let c = rest::mint(SECRET, name, expires).unwrap();
    Creds {
        user: c.username,
        pass: c.password,
        nonce: String::new(),
    }
}

fn request(method: Method, attrs: &[&dyn AttributeWrite], creds: Option<&Creds>) -> Vec<u8> {
    let mut w = Message::builder_request(method, MessageWriteVec::new());
    let txn = w.transaction_id();
    build(&mut w, txn, attrs, creds);
    w.finish()
}

fn build(
    w: &mut MessageWriteVec,
    _txn: TransactionId,
    attrs: &[&dyn AttributeWrite],
    creds: Option<&Creds>,
) {
    for a in attrs {
        w.add_attribute(*a).unwrap();
    }
    if let Some(c) = creds {
        w.add_attribute(&Username::new(&c.user).unwrap()).unwrap();
        w.add_attribute(&Realm::new(DEFAULT_REALM).unwrap())
            .unwrap();
        w.add_attribute(&Nonce::new(&c.nonce).unwrap()).unwrap();
        let key: stun_types::message::MessageIntegrityCredentials =
            LongTermKeyCredentials::new(c.user.clone(), c.pass.clone(), DEFAULT_REALM.to_owned())
                .into();
        w.add_message_integrity(&key, IntegrityAlgorithm::Sha1)
            .unwrap();
    }
}

/// The next datagram to a client.
fn to_client(s: &mut TurnServer) -> Vec<u8> {
    match s.poll_transmit() {
        Some(Transmit::Client { data, .. }) => data,
        other => panic!("expected an answer to the client, got {other:?}"),
    }
}

fn code(bytes: &[u8]) -> Option<u16> {
    Message::from_bytes(bytes)
        .unwrap()
        .attribute::<ErrorCode>()
        .ok()
        .map(|e| e.code())
}

/// Sends `msg` from `t`; returns the answer.
fn ask(s: &mut TurnServer, t: FiveTuple, msg: &[u8], now: Instant) -> Vec<u8> {
    s.handle_client(t, msg, now);
    to_client(s)
}

/// Gets a nonce into `c` with an unauthenticated Allocate (401).
fn challenge(s: &mut TurnServer, t: FiveTuple, c: &mut Creds, now: Instant) {
    let answer = ask(
        s,
        t,
        &request(ALLOCATE, &[&RequestedTransport::new(17)], None),
        now,
    );
    assert_eq!(code(&answer), Some(401));
    let msg = Message::from_bytes(&answer).unwrap();
    assert_eq!(msg.attribute::<Realm>().unwrap().realm(), DEFAULT_REALM);
    c.nonce = msg.attribute::<Nonce>().unwrap().nonce().to_owned();
}

/// A full Allocate for `t`; returns the relayed address the server advertised.
fn allocate(
    s: &mut TurnServer,
    t: FiveTuple,
    c: &mut Creds,
    relayed: &str,
    now: Instant,
) -> SocketAddr {
    challenge(s, t, c, now);
    s.handle_client(
        t,
        &request(ALLOCATE, &[&RequestedTransport::new(17)], Some(c)),
        now,
    );
    match s.poll_event() {
        Some(TurnEvent::BindRelay { tuple, .. }) => assert_eq!(tuple, t),
        other => panic!("expected BindRelay, got {other:?}: {:?}", s.poll_transmit()),
    }
    s.handle_relay_bound(t, Ok(addr(relayed)), now);
    assert!(matches!(
        s.poll_event(),
        Some(TurnEvent::AllocationCreated { .. })
    ));
    let answer = to_client(s);
    let msg = Message::from_bytes(&answer).unwrap();
    assert_eq!(msg.class(), MessageClass::Success, "{:?}", code(&answer));
    let key = LongTermKeyCredentials::new(c.user.clone(), c.pass.clone(), DEFAULT_REALM.to_owned())
        .into();
    msg.validate_integrity(&key)
        .expect("the answer is signed with the client's key");
    assert_eq!(
        msg.attribute::<XorMappedAddress>()
            .unwrap()
            .addr(msg.transaction_id()),
        t.client
    );
    msg.attribute::<XorRelayedAddress>()
        .unwrap()
        .addr(msg.transaction_id())
}

fn peer_request(method: Method, peer: SocketAddr, channel: Option<u16>, c: &Creds) -> Vec<u8> {
    let mut w = Message::builder_request(method, MessageWriteVec::new());
    let txn = w.transaction_id();
    let p = XorPeerAddress::new(peer, txn);
    match channel {
        Some(n) => build(&mut w, txn, &[&ChannelNumber::new(n), &p], Some(c)),
        None => build(&mut w, txn, &[&p], Some(c)),
    }
    w.finish()
}

fn channel_data(number: u16, data: &[u8]) -> Vec<u8> {
    super::reply::channel_data(number, data, false)
}

#[test]
fn binding_answers_the_reflexive_address_without_credentials() {
    let (mut s, now) = server(|_| {});
    let t = tuple("203.0.113.5:5000");
    let answer = ask(&mut s, t, &request(BINDING, &[], None), now);
    let msg = Message::from_bytes(&answer).unwrap();
    assert_eq!(msg.class(), MessageClass::Success);
    assert_eq!(
        msg.attribute::<XorMappedAddress>()
            .unwrap()
            .addr(msg.transaction_id()),
        t.client
    );
}

#[test]
fn allocate_needs_credentials_and_gets_the_relayed_address() {
    let (mut s, now) = server(|_| {});
    let t = tuple("203.0.113.5:5000");
    let mut c = creds("alice", UNIX0 + 600);
    let relayed = allocate(&mut s, t, &mut c, "198.51.100.1:50000", now);
    assert_eq!(relayed, addr("198.51.100.1:50000"));
    assert_eq!(s.allocation_count(), 1);
}

#[test]
fn external_ip_is_advertised_with_the_real_port() {
    let (mut s, now) = server(|c| c.external_ip = Some("192.0.2.7".parse().unwrap()));
    let mut c = creds("alice", UNIX0 + 600);
    let relayed = allocate(
        &mut s,
        tuple("203.0.113.5:5000"),
        &mut c,
        "10.0.0.4:50002",
        now,
    );
    assert_eq!(relayed, addr("192.0.2.7:50002"));
}

#[test]
fn expired_forged_and_foreign_credentials_get_no_allocation() {
    let (mut s, now) = server(|_| {});
    let t = tuple("203.0.113.5:5000");
    let alloc = |c: &Creds| request(ALLOCATE, &[&RequestedTransport::new(17)], Some(c));
    // Expired username: 401.
    let mut old = creds("alice", UNIX0 - 1);
    challenge(&mut s, t, &mut old, now);
    assert_eq!(code(&ask(&mut s, t, &alloc(&old), now)), Some(401));
    // Forged password: 401.
    let mut forged = creds("alice", UNIX0 + 600);
    challenge(&mut s, t, &mut forged, now);
    forged.pass = "AAAAAAAAAAAAAAAAAAAAAAAAAAA=".into();
    assert_eq!(code(&ask(&mut s, t, &alloc(&forged), now)), Some(401));
    // Minted with another secret: 401.
    let other = rest::mint(b"other", "alice", UNIX0 + 600).unwrap();
    forged.user = other.username;
    forged.pass = other.password;
    assert_eq!(code(&ask(&mut s, t, &alloc(&forged), now)), Some(401));
    // A nonce from another IP, or a stale one: 438.
    let mut c = creds("alice", UNIX0 + 3600);
    challenge(&mut s, tuple("203.0.113.6:5000"), &mut c, now);
    assert_eq!(code(&ask(&mut s, t, &alloc(&c), now)), Some(438));
    challenge(&mut s, t, &mut c, now);
    let later = now + Duration::from_secs(auth::NONCE_LIFETIME_S + 1);
    assert_eq!(code(&ask(&mut s, t, &alloc(&c), later)), Some(438));
    assert!(s.poll_event().is_none(), "no socket was asked for");
    assert_eq!(s.allocation_count(), 0);
    assert!(s.stats().unauthorized >= 5);
}

#[test]
fn loopback_and_private_peers_are_forbidden_by_default() {
    let (mut s, now) = server(|_| {});
    let t = tuple("203.0.113.5:5000");
    let mut c = creds("alice", UNIX0 + 600);
    allocate(&mut s, t, &mut c, "198.51.100.1:50000", now);
    for peer in [
        "127.0.0.1:9",
        "10.1.2.3:9",
        "192.168.1.1:9",
        "169.254.0.1:9",
        "0.0.0.0:9",
        "224.0.0.1:9",
    ] {
        let answer = ask(
            &mut s,
            t,
            &peer_request(CREATE_PERMISSION, addr(peer), None, &c),
            now,
        );
        assert_eq!(code(&answer), Some(403), "{peer}");
        let answer = ask(
            &mut s,
            t,
            &peer_request(CHANNEL_BIND, addr(peer), Some(0x4000), &c),
            now,
        );
        assert_eq!(code(&answer), Some(403), "{peer}");
    }
    // A NAT lab's TEST-NET-2 peer is public.
    let answer = ask(
        &mut s,
        t,
        &peer_request(CREATE_PERMISSION, addr("198.51.100.2:9"), None, &c),
        now,
    );
    assert_eq!(code(&answer), None);
}

#[test]
fn allow_flags_open_loopback_and_private_peers() {
    let (mut s, now) = server(|c| {
        c.allow_loopback_peers = true;
        c.allow_private_peers = true;
    });
    let t = tuple("203.0.113.5:5000");
    let mut c = creds("alice", UNIX0 + 600);
    allocate(&mut s, t, &mut c, "198.51.100.1:50000", now);
    for peer in ["127.0.0.1:9", "10.1.2.3:9", "[fd00::1]:9"] {
        let answer = ask(
            &mut s,
            t,
            &peer_request(CREATE_PERMISSION, addr(peer), None, &c),
            now,
        );
        let expect = if peer.starts_with('[') {
            Some(443)
        } else {
            None
        };
        assert_eq!(code(&answer), expect, "{peer}");
    }
}

#[test]
fn peer_filter_table() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    for denied in [
        "127.0.0.1",
        "::1",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.0.1",
        "169.254.1.1",
        "100.64.0.1",
        "fc00::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "0.0.0.0",
        "::",
    ] {
        assert!(!peer_allowed(ip(denied), false, false), "{denied}");
    }
    for always in ["224.0.0.1", "255.255.255.255", "ff02::1", "0.0.0.0"] {
        assert!(!peer_allowed(ip(always), true, true), "{always}");
    }
    for public in ["198.51.100.100", "203.0.113.1", "8.8.8.8", "2001:db8::1"] {
        assert!(peer_allowed(ip(public), false, false), "{public}");
    }
    assert!(peer_allowed(ip("127.0.0.1"), true, false));
    assert!(!peer_allowed(ip("10.0.0.1"), true, false));
    assert!(peer_allowed(ip("10.0.0.1"), false, true));
}

#[test]
fn allocation_quotas_answer_486() {
    let (mut s, now) = server(|c| {
        c.limits.max_allocations_per_user = 2;
        c.limits.max_allocations_per_ip = 3;
        c.limits.max_allocations = 4;
    });
    let mut alice = creds("alice", UNIX0 + 600);
    allocate(
        &mut s,
        tuple("203.0.113.5:1"),
        &mut alice,
        "198.51.100.1:50001",
        now,
    );
    allocate(
        &mut s,
        tuple("203.0.113.5:2"),
        &mut alice,
        "198.51.100.1:50002",
        now,
    );
    let quota = |s: &mut TurnServer, t: FiveTuple, c: &mut Creds| {
        challenge(s, t, c, now);
        code(&ask(
            s,
            t,
            &request(ALLOCATE, &[&RequestedTransport::new(17)], Some(c)),
            now,
        ))
    };
    assert_eq!(
        quota(&mut s, tuple("203.0.113.5:3"), &mut alice),
        Some(486),
        "per user"
    );
    let mut bob = creds("bob", UNIX0 + 600);
    allocate(
        &mut s,
        tuple("203.0.113.5:4"),
        &mut bob,
        "198.51.100.1:50004",
        now,
    );
    assert_eq!(
        quota(&mut s, tuple("203.0.113.5:5"), &mut bob),
        Some(486),
        "per IP"
    );
    allocate(
        &mut s,
        tuple("203.0.113.9:1"),
        &mut bob,
        "198.51.100.1:50005",
        now,
    );
    let mut carol = creds("carol", UNIX0 + 600);
    assert_eq!(
        quota(&mut s, tuple("203.0.113.10:1"), &mut carol),
        Some(486),
        "in total"
    );
    assert_eq!(s.stats().quota_refused, 3);
    // Freeing one (Refresh 0) makes room again.
    let t = tuple("203.0.113.9:1");
    let answer = ask(
        &mut s,
        t,
        &request(REFRESH, &[&Lifetime::new(0)], Some(&bob)),
        now,
    );
    assert_eq!(code(&answer), None);
    assert!(matches!(
        s.poll_event(),
        Some(TurnEvent::AllocationClosed {
            reason: AllocationEnd::Deleted,
            ..
        })
    ));
    allocate(
        &mut s,
        tuple("203.0.113.10:1"),
        &mut carol,
        "198.51.100.1:50006",
        now,
    );
}

#[test]
fn relays_both_ways_with_permissions_and_channels() {
    let (mut s, now) = server(|_| {});
    let t = tuple("203.0.113.5:5000");
    let relayed = addr("198.51.100.1:50000");
    let peer = addr("198.51.100.2:7000");
    let mut c = creds("alice", UNIX0 + 600);
    allocate(&mut s, t, &mut c, "198.51.100.1:50000", now);
    // No permission: the peer's datagram is dropped.
    s.handle_peer(relayed, peer, b"early", now);
    assert!(s.poll_transmit().is_none());
    assert_eq!(s.stats().dropped_no_permission, 1);
    assert_eq!(
        code(&ask(
            &mut s,
            t,
            &peer_request(CREATE_PERMISSION, peer, None, &c),
            now
        )),
        None
    );
    // Send indication out; Data indication in.
    let mut w = Message::builder_indication(SEND, MessageWriteVec::new());
    let p = XorPeerAddress::new(peer, w.transaction_id());
    w.add_attribute(&p).unwrap();
    w.add_attribute(&Data::new(b"hello")).unwrap();
    s.handle_client(t, &w.finish(), now);
    assert_eq!(
        s.poll_transmit(),
        Some(Transmit::Peer {
            relayed,
            peer,
            data: b"hello".to_vec()
        })
    );
    s.handle_peer(relayed, peer, b"hi", now);
    let data = to_client(&mut s);
    let msg = Message::from_bytes(&data).unwrap();
    assert!(msg.has_method(DATA));
    assert_eq!(msg.attribute::<Data>().unwrap().data(), b"hi");
    // A channel: ChannelData both ways.
    assert_eq!(
        code(&ask(
            &mut s,
            t,
            &peer_request(CHANNEL_BIND, peer, Some(0x4001), &c),
            now
        )),
        None
    );
    s.handle_client(t, &channel_data(0x4001, b"abc"), now);
    assert_eq!(
        s.poll_transmit(),
        Some(Transmit::Peer {
            relayed,
            peer,
            data: b"abc".to_vec()
        })
    );
    s.handle_peer(relayed, peer, b"xyz", now);
    assert_eq!(to_client(&mut s), channel_data(0x4001, b"xyz"));
    // The same number for another peer is refused.
    let other = addr("198.51.100.3:7000");
    assert_eq!(
        code(&ask(
            &mut s,
            t,
            &peer_request(CHANNEL_BIND, other, Some(0x4001), &c),
            now
        )),
        Some(400)
    );
    // Over TCP ChannelData is padded to 4 bytes.
    let mut tt = tuple("203.0.113.5:6000");
    tt.transport = ClientTransport::Tcp;
    allocate(&mut s, tt, &mut c, "198.51.100.1:50010", now);
    assert_eq!(
        code(&ask(
            &mut s,
            tt,
            &peer_request(CHANNEL_BIND, peer, Some(0x4002), &c),
            now
        )),
        None
    );
    s.handle_peer(addr("198.51.100.1:50010"), peer, b"xyz", now);
    assert_eq!(to_client(&mut s), [0x40, 0x02, 0, 3, b'x', b'y', b'z', 0]);
}

#[test]
fn other_users_cannot_touch_an_allocation() {
    let (mut s, now) = server(|_| {});
    let t = tuple("203.0.113.5:5000");
    let mut alice = creds("alice", UNIX0 + 600);
    allocate(&mut s, t, &mut alice, "198.51.100.1:50000", now);
    let mut mallory = creds("mallory", UNIX0 + 600);
    mallory.nonce = alice.nonce.clone();
    let answer = ask(
        &mut s,
        t,
        &request(REFRESH, &[&Lifetime::new(0)], Some(&mallory)),
        now,
    );
    assert_eq!(code(&answer), Some(441));
    assert_eq!(s.allocation_count(), 1);
}

#[test]
fn bandwidth_limit_drops_the_excess() {
    let (mut s, now) = server(|c| c.limits.bandwidth = 10_000);
    let t = tuple("203.0.113.5:5000");
    let relayed = addr("198.51.100.1:50000");
    let peer = addr("198.51.100.2:7000");
    let mut c = creds("alice", UNIX0 + 600);
    allocate(&mut s, t, &mut c, "198.51.100.1:50000", now);
    assert_eq!(
        code(&ask(
            &mut s,
            t,
            &peer_request(CHANNEL_BIND, peer, Some(0x4000), &c),
            now
        )),
        None
    );
    // 2 s of a 1000-byte packet every millisecond: 2,000,000 bytes offered.
    let packet = channel_data(0x4000, &[7u8; 1000]);
    let mut delivered = 0usize;
    for ms in 0..2000u64 {
        let at = now + Duration::from_millis(ms);
        s.handle_client(t, &packet, at);
        s.handle_peer(relayed, peer, &[1u8; 1000], at);
        while let Some(tx) = s.poll_transmit() {
            delivered += match tx {
                Transmit::Peer { data, .. } => data.len(),
                Transmit::Client { data, .. } => data.len() - 4,
            };
        }
    }
    // At most rate x time + one second of burst.
    assert!(delivered <= 10_000 * 2 + 10_000, "{delivered}");
    assert!(
        delivered >= 10_000 * 2,
        "the limit still lets the rate through: {delivered}"
    );
    assert!(s.stats().dropped_bandwidth > 3000);
}

#[test]
fn an_allocation_expires_and_is_cleaned_up_refresh_extends_it() {
    let (mut s, now) = server(|_| {});
    let t = tuple("203.0.113.5:5000");
    let mut c = creds("alice", UNIX0 + 7200);
    allocate(&mut s, t, &mut c, "198.51.100.1:50000", now);
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(600)));
    // A Refresh asking for an hour and a half gets the one-hour maximum.
    let later = now + Duration::from_secs(300);
    let answer = ask(
        &mut s,
        t,
        &request(REFRESH, &[&Lifetime::new(5400)], Some(&c)),
        later,
    );
    let msg = Message::from_bytes(&answer).unwrap();
    assert_eq!(msg.attribute::<Lifetime>().unwrap().seconds(), 3600);
    let expiry = later + Duration::from_secs(3600);
    assert_eq!(s.poll_timeout(), Some(expiry));
    s.handle_timeout(expiry - Duration::from_millis(1));
    assert_eq!(s.allocation_count(), 1);
    s.handle_timeout(expiry);
    assert_eq!(s.allocation_count(), 0);
    assert_eq!(
        s.poll_event(),
        Some(TurnEvent::AllocationClosed {
            tuple: t,
            relayed: addr("198.51.100.1:50000"),
            reason: AllocationEnd::Expired
        })
    );
    assert_eq!(s.poll_timeout(), None);
    // Its relayed address is forgotten; the quota is free.
    s.handle_peer(
        addr("198.51.100.1:50000"),
        addr("198.51.100.2:1"),
        b"x",
        expiry,
    );
    assert!(s.poll_transmit().is_none());
    assert!(s.per_user.is_empty() && s.per_ip.is_empty());
}

/// `poll_timeout` is cached (the driver asks after every packet): the cache follows every
/// allocation added, refreshed, deleted and expired.
#[test]
fn the_next_expiry_follows_creation_refresh_deletion_and_expiry() {
    let (mut s, now) = server(|_| {});
    let (a, b) = (tuple("203.0.113.5:5000"), tuple("203.0.113.6:5000"));
    let (mut ca, mut cb) = (creds("alice", UNIX0 + 7200), creds("bob", UNIX0 + 7200));
    let minutes = |m: u64| Duration::from_secs(60 * m);
    allocate(&mut s, a, &mut ca, "198.51.100.1:50000", now);
    assert_eq!(s.poll_timeout(), Some(now + minutes(10)));
    let t1 = now + minutes(1);
    allocate(&mut s, b, &mut cb, "198.51.100.1:50002", t1);
    // The earlier one still comes first.
    assert_eq!(s.poll_timeout(), Some(now + minutes(10)));
    // A refreshes to an hour: B's expiry is next.
    let t2 = now + minutes(2);
    ask(
        &mut s,
        a,
        &request(REFRESH, &[&Lifetime::new(3600)], Some(&ca)),
        t2,
    );
    assert_eq!(s.poll_timeout(), Some(t1 + minutes(10)));
    // B is deleted: A's hour.
    ask(
        &mut s,
        b,
        &request(REFRESH, &[&Lifetime::new(0)], Some(&cb)),
        t2,
    );
    assert_eq!(s.allocation_count(), 1);
    assert_eq!(s.poll_timeout(), Some(t2 + minutes(60)));
    // An early timeout changes nothing; at the expiry nothing is left.
    s.handle_timeout(t2);
    assert_eq!(s.poll_timeout(), Some(t2 + minutes(60)));
    s.handle_timeout(t2 + minutes(60));
    assert_eq!((s.allocation_count(), s.poll_timeout()), (0, None));
}

#[test]
fn permissions_and_channels_are_bounded() {
    let (mut s, now) = server(|c| {
        c.limits.max_permissions = 2;
        c.limits.max_channels = 1;
    });
    let t = tuple("203.0.113.5:5000");
    let mut c = creds("alice", UNIX0 + 600);
    allocate(&mut s, t, &mut c, "198.51.100.1:50000", now);
    for (i, expect) in [(1, None), (2, None), (3, Some(508))] {
        let peer = addr(&format!("198.51.100.{i}:9"));
        assert_eq!(
            code(&ask(
                &mut s,
                t,
                &peer_request(CREATE_PERMISSION, peer, None, &c),
                now
            )),
            expect
        );
    }
    let bind = |n, p: &str| peer_request(CHANNEL_BIND, addr(p), Some(n), &c);
    assert_eq!(
        code(&ask(&mut s, t, &bind(0x4000, "198.51.100.1:9"), now)),
        None
    );
    assert_eq!(
        code(&ask(&mut s, t, &bind(0x4001, "198.51.100.2:9"), now)),
        Some(508)
    );
    // Permissions expire after 300 s, making room.
    let later = now + Duration::from_secs(301);
    let answer = ask(
        &mut s,
        t,
        &peer_request(CREATE_PERMISSION, addr("198.51.100.3:9"), None, &c),
        later,
    );
    assert_eq!(code(&answer), None);
}

#[test]
fn a_closed_tcp_client_loses_its_allocation() {
    let (mut s, now) = server(|_| {});
    let mut t = tuple("203.0.113.5:5000");
    t.transport = ClientTransport::Tcp;
    let mut c = creds("alice", UNIX0 + 600);
    allocate(&mut s, t, &mut c, "198.51.100.1:50000", now);
    s.handle_client_closed(t, now);
    assert!(matches!(
        s.poll_event(),
        Some(TurnEvent::AllocationClosed {
            reason: AllocationEnd::ClientGone,
            ..
        })
    ));
    assert_eq!(s.allocation_count(), 0);
}

#[test]
fn garbage_is_dropped_unanswered() {
    let (mut s, now) = server(|_| {});
    let t = tuple("203.0.113.5:5000");
    for bytes in [
        &b""[..],
        &[0xff; 40],
        &[0x00, 0x01, 0x00, 0x08],
        &[0x40, 0x00, 0xff, 0xff, 1],
    ] {
        s.handle_client(t, bytes, now);
    }
    assert!(s.poll_transmit().is_none());
    assert_eq!(s.stats().dropped_invalid, 4);
}

#[test]
fn the_tcp_framer_splits_stun_and_padded_channel_data() {
    let stun = request(BINDING, &[], None);
    let cd = super::reply::channel_data(0x4000, b"abcde", true);
    assert_eq!(cd.len(), 12);
    let mut stream = stun.clone();
    stream.extend_from_slice(&cd);
    stream.extend_from_slice(&stun[..7]);
    let mut f = StreamFramer::new();
    for chunk in stream.chunks(5) {
        f.push(chunk);
    }
    assert_eq!(f.next_frame().unwrap(), Some(stun.clone()));
    assert_eq!(f.next_frame().unwrap(), Some(cd));
    assert_eq!(f.next_frame().unwrap(), None);
    assert_eq!(f.buffered(), 7);
    let mut bad = StreamFramer::new();
    bad.push(&[0xc0, 0, 0, 0]);
    assert_eq!(bad.next_frame(), Err(FramingError(0xc0)));
}

#[test]
fn limits_have_ranges_and_rfc_lifetimes() {
    let l = TurnLimits::default();
    assert_eq!(l.validate(), Ok(()));
    assert_eq!(l.lifetime(None), Duration::from_secs(600));
    assert_eq!(l.lifetime(Some(30)), Duration::from_secs(600));
    assert_eq!(l.lifetime(Some(1200)), Duration::from_secs(1200));
    assert_eq!(l.lifetime(Some(u32::MAX)), Duration::from_secs(3600));
    let bad = TurnLimits {
        bandwidth: 1,
        ..TurnLimits::default()
    };
    assert_eq!(bad.validate().unwrap_err().field, "bandwidth");
    let inverted = TurnLimits {
        default_lifetime: Duration::from_secs(3600),
        max_lifetime: Duration::from_secs(60),
        ..l
    };
    assert_eq!(inverted.validate().unwrap_err().field, "default_lifetime");
}
