//! Unit tests of [`FriendsView`]: friends' updates and explicit times in, the live-lobby diff
//! (up / changed / down and why) out.

use super::*;
use crate::keys::IdentityKey;
use crate::schema::{Profile, Session};

const HOST: IdentityKey = IdentityKey::from_bytes([7; 32]);
const ME: &str = "dat://0101010101010101010101010101010101010101010101010101010101010101";
/// The heartbeat period every test lobby states, in ms.
const PERIOD: u64 = 1_000;
/// The heartbeat time of the first `session.json`, in ms since the epoch.
const T0: u64 = 1_000_000;

fn route() -> Route {
    Route::Tcp("127.0.0.1:4000".into())
}

fn session(last_update: u64, peers: u32) -> Session {
    Session {
        name: "lobby".into(),
        url: format!("dat://{}", "ab".repeat(32)),
        last_update,
        peers,
        max_peers: 8,
        protected: false,
        heartbeat: Some(PERIOD),
        ended: None,
    }
}

fn files(friends: &[&str], session: Option<Session>) -> Files {
    Files {
        length: 3,
        profile: Some(Profile {
            name: "ada".into(),
            created: 1,
            friends: friends.iter().map(|f| f.to_string()).collect(),
        }),
        session,
    }
}

fn events(view: &mut FriendsView) -> Vec<FriendEvent> {
    std::iter::from_fn(|| view.poll_event()).collect()
}

/// A view where HOST is online with a live lobby (heartbeat at T0, 2 players), events drained.
fn view_with_live_lobby() -> FriendsView {
    let mut view = FriendsView::new(ME.into());
    view.handle_update(Update::Online(HOST, route()), T0);
    view.handle_update(Update::Files(HOST, files(&[], Some(session(T0, 2)))), T0);
    let up = events(&mut view);
    assert!(
        matches!(up.last(), Some(FriendEvent::SessionUp(_))),
        "{up:?}"
    );
    view
}

#[test]
fn a_reached_friend_with_a_fresh_heartbeat_comes_up() {
    let mut view = FriendsView::new(ME.into());
    view.handle_update(Update::Online(HOST, route()), T0 + 10);
    assert_eq!(
        events(&mut view),
        vec![FriendEvent::Online {
            key: HOST,
            route: route()
        }]
    );
    view.handle_update(
        Update::Files(HOST, files(&[ME], Some(session(T0, 2)))),
        T0 + 10,
    );
    let got = events(&mut view);
    assert_eq!(got.len(), 2, "{got:?}");
    let FriendEvent::Profile { key, mutual, .. } = &got[0] else {
        panic!("expected the profile first: {got:?}")
    };
    assert_eq!((*key, *mutual), (HOST, true));
    let FriendEvent::SessionUp(lobby) = &got[1] else {
        panic!("expected session-up: {got:?}")
    };
    assert_eq!(lobby.host, HOST);
    assert_eq!(lobby.host_name, "ada");
    assert_eq!(lobby.session.peers, 2);
    assert_eq!(lobby.route, route());
}

#[test]
fn a_lobby_is_not_up_before_its_host_is_reached() {
    let mut view = FriendsView::new(ME.into());
    view.handle_update(Update::Files(HOST, files(&[], Some(session(T0, 2)))), T0);
    let got = events(&mut view);
    assert!(
        matches!(got.as_slice(), [FriendEvent::Profile { mutual: false, .. }]),
        "{got:?}"
    );
    assert_eq!(view.poll_timeout(), None);
}

#[test]
fn a_new_player_count_is_a_change_and_a_new_heartbeat_is_not() {
    let mut view = view_with_live_lobby();
    view.handle_update(
        Update::Files(HOST, files(&[], Some(session(T0 + PERIOD, 2)))),
        T0 + PERIOD,
    );
    assert_eq!(events(&mut view), vec![], "only the heartbeat moved");
    view.handle_update(
        Update::Files(HOST, files(&[], Some(session(T0 + 2 * PERIOD, 3)))),
        T0 + 2 * PERIOD,
    );
    let got = events(&mut view);
    let [FriendEvent::SessionChanged(lobby)] = got.as_slice() else {
        panic!("expected one session-changed: {got:?}")
    };
    assert_eq!(lobby.session.peers, 3);
}

#[test]
fn an_unchanged_profile_is_reported_once() {
    let mut view = FriendsView::new(ME.into());
    view.handle_update(Update::Files(HOST, files(&[], None)), T0);
    view.handle_update(Update::Files(HOST, files(&[], None)), T0 + 1);
    assert_eq!(events(&mut view).len(), 1);
    view.handle_update(Update::Files(HOST, files(&[ME], None)), T0 + 2);
    let got = events(&mut view);
    assert!(
        matches!(got.as_slice(), [FriendEvent::Profile { mutual: true, .. }]),
        "{got:?}"
    );
}

#[test]
fn a_host_that_goes_offline_takes_its_lobby_down() {
    let mut view = view_with_live_lobby();
    view.handle_update(Update::Offline(HOST, "closed".into()), T0 + 10);
    assert_eq!(
        events(&mut view),
        vec![
            FriendEvent::Offline {
                key: HOST,
                reason: "closed".into()
            },
            FriendEvent::SessionDown {
                key: HOST,
                reason: DownReason::Offline
            },
        ]
    );
}

#[test]
fn an_ended_lobby_goes_down_as_ended() {
    let mut view = view_with_live_lobby();
    let mut ended = session(T0 + 10, 0);
    ended.ended = Some(T0 + 10);
    view.handle_update(Update::Files(HOST, files(&[], Some(ended))), T0 + 10);
    assert_eq!(
        events(&mut view),
        vec![FriendEvent::SessionDown {
            key: HOST,
            reason: DownReason::Ended
        }]
    );
}

#[test]
fn a_removed_session_or_an_unfollowed_friend_is_gone() {
    for update in [
        Update::Files(HOST, files(&[], None)),
        Update::Unfollowed(HOST),
    ] {
        let mut view = view_with_live_lobby();
        view.handle_update(update, T0 + 10);
        assert_eq!(
            events(&mut view),
            vec![FriendEvent::SessionDown {
                key: HOST,
                reason: DownReason::Gone
            }]
        );
    }
}

#[test]
fn a_heartbeat_older_than_twice_its_period_is_stale() {
    let mut view = view_with_live_lobby();
    // The view asks to be woken 1 ms after the bound: last_update + 2 × period.
    assert_eq!(view.poll_timeout(), Some(T0 + 2 * PERIOD + 1));
    view.handle_timeout(T0 + 2 * PERIOD);
    assert_eq!(
        events(&mut view),
        vec![],
        "exactly at the bound: still live"
    );
    view.handle_timeout(T0 + 2 * PERIOD + 1);
    assert_eq!(
        events(&mut view),
        vec![FriendEvent::SessionDown {
            key: HOST,
            reason: DownReason::Stale
        }]
    );
    assert_eq!(
        view.poll_timeout(),
        None,
        "nothing live is left to go stale"
    );
}

#[test]
fn a_fresh_heartbeat_brings_a_stale_lobby_back_up() {
    let mut view = view_with_live_lobby();
    view.handle_timeout(T0 + 5 * PERIOD);
    assert_eq!(events(&mut view).len(), 1);
    let now = T0 + 6 * PERIOD;
    view.handle_update(Update::Files(HOST, files(&[], Some(session(now, 2)))), now);
    let got = events(&mut view);
    assert!(
        matches!(got.as_slice(), [FriendEvent::SessionUp(_)]),
        "{got:?}"
    );
    assert_eq!(view.poll_timeout(), Some(now + 2 * PERIOD + 1));
}

#[test]
fn a_huge_heartbeat_period_saturates_instead_of_wrapping() {
    let mut view = FriendsView::new(ME.into());
    let mut s = session(T0, 1);
    s.heartbeat = Some(u64::MAX / 2 + 1);
    view.handle_update(Update::Online(HOST, route()), T0);
    view.handle_update(Update::Files(HOST, files(&[], Some(s))), T0);
    assert_eq!(view.poll_timeout(), Some(u64::MAX));
}

#[test]
fn reached_routes_are_handed_out_once() {
    let mut view = FriendsView::new(ME.into());
    view.handle_update(Update::Online(HOST, route()), T0);
    view.handle_update(Update::Warning(HOST, "odd".into()), T0);
    assert_eq!(view.take_reached(), HashMap::from([(HOST, route())]));
    assert!(view.take_reached().is_empty());
    assert_eq!(
        events(&mut view).last(),
        Some(&FriendEvent::Warning {
            key: HOST,
            message: "odd".into()
        })
    );
}
