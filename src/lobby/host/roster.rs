//! Who is in the lobby: reserved slots, players, and the `session.json` that says so. A pure
//! state machine (no IO, no clock: `now_ms` in): each change that `session.json` must show
//! yields [`RosterEvent::Publish`] with the session to write, and each one the host's user
//! sees yields a [`RosterEvent::Host`] event. docs/PROTOCOL.md, "A join, step by step": a slot
//! is reserved when an offer is admitted and becomes a player when its data channel opens.

use std::collections::{HashMap, VecDeque};

use crate::lobby::HostEvent;
use crate::schema::Session;

/// A player: its connection id, identity and name, and what the lobby task keeps to reach it
/// (`link`; dropping it ends the player's connection task).
pub(super) struct Member<T> {
    /// The connection the player came on.
    pub id: u64,
    /// The player's identity URL, `dat://<64 hex>`.
    pub url: String,
    /// The player's name, as its offer gave it.
    pub name: String,
    /// The lobby task's handle on the player's connection.
    pub link: T,
    /// The path its connection took, when its chat channel opened (boxed: it is large and
    /// rides in every lobby report).
    pub path: Option<Box<crate::rtc::SelectedPath>>,
}

/// What a change of the roster asks of the lobby task, in order.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum RosterEvent {
    /// Write this `session.json` (the player count or the heartbeat changed).
    Publish(Session),
    /// Tell the host's user.
    Host(HostEvent),
}

/// The lobby's slots and players, and its `session.json`.
pub(super) struct Roster<T> {
    session: Session,
    players: HashMap<u64, Member<T>>,
    /// Slots admitted whose data channel has not opened yet.
    reserved: u32,
    events: VecDeque<RosterEvent>,
}

impl<T> Roster<T> {
    /// An empty lobby described by `session` (its `max_peers` bounds the slots).
    pub(super) fn new(session: Session) -> Self {
        Roster {
            session,
            players: HashMap::new(),
            reserved: 0,
            events: VecDeque::new(),
        }
    }

    /// The session as last published.
    pub(super) fn session(&self) -> &Session {
        &self.session
    }

    /// Players and reserved slots together.
    pub(super) fn taken(&self) -> u32 {
        self.players.len() as u32 + self.reserved
    }

    /// Reserves a slot for the joiner `peer` (identity URL) if one is free; `true` when
    /// reserved. The same identity rejoining (e.g. after a crash) first loses its old slot:
    /// its offer is signed by that identity, so nobody else can take a slot over.
    pub(super) fn admit(&mut self, peer: &str, now_ms: u64) -> bool {
        let ghost = self.players.values().find(|p| p.url == peer).map(|p| p.id);
        if let Some(old) = ghost {
            self.left(old, now_ms);
        }
        let free = self.taken() < self.session.max_peers;
        if free {
            self.reserved += 1;
        }
        free
    }

    /// A reserved slot is not needed after all (the join failed, or nobody took the reply).
    pub(super) fn release(&mut self) {
        self.reserved = self.reserved.saturating_sub(1);
    }

    /// A reserved slot's data channel opened: it becomes `member`.
    pub(super) fn joined(&mut self, member: Member<T>, now_ms: u64) {
        self.reserved = self.reserved.saturating_sub(1);
        let (peer, name, path) = (
            member.url.clone(),
            member.name.clone(),
            member.path.as_deref().cloned(),
        );
        self.players.insert(member.id, member);
        self.publish(now_ms);
        self.events
            .push_back(RosterEvent::Host(HostEvent::PeerJoined {
                peer,
                name,
                peers: self.players.len() as u32,
                path,
            }));
    }

    /// Player `id`'s connection moved to `path`: recorded and announced. Nothing happens for
    /// an id that is not a player.
    pub(super) fn path(&mut self, id: u64, path: Box<crate::rtc::SelectedPath>) {
        if let Some(player) = self.players.get_mut(&id) {
            let event = HostEvent::PeerPath {
                peer: player.url.clone(),
                name: player.name.clone(),
                path: (*path).clone(),
            };
            player.path = Some(path);
            self.events.push_back(RosterEvent::Host(event));
        }
    }

    /// Player `id` left, vanished or was replaced: removed (its link dropped) and announced.
    /// Nothing happens for an id that is not a player.
    pub(super) fn left(&mut self, id: u64, now_ms: u64) {
        if let Some(player) = self.players.remove(&id) {
            self.publish(now_ms);
            self.events
                .push_back(RosterEvent::Host(HostEvent::PeerLeft {
                    peer: player.url,
                    name: player.name,
                    peers: self.players.len() as u32,
                }));
        }
    }

    /// The heartbeat: `session.json` again with a fresh `last_update`.
    pub(super) fn heartbeat(&mut self, now_ms: u64) {
        self.publish(now_ms);
    }

    /// The lobby ends: the final `session.json`, with `ended` set and no peers.
    pub(super) fn end(&mut self, now_ms: u64) -> Session {
        self.session.ended = Some(now_ms);
        self.session.peers = 0;
        self.session.last_update = now_ms;
        self.session.clone()
    }

    /// Player `id`, if it is one.
    pub(super) fn player(&self, id: u64) -> Option<&Member<T>> {
        self.players.get(&id)
    }

    /// Player `id`, to change its link.
    pub(super) fn player_mut(&mut self, id: u64) -> Option<&mut Member<T>> {
        self.players.get_mut(&id)
    }

    /// Every player, in no order.
    pub(super) fn players(&self) -> impl Iterator<Item = &Member<T>> {
        self.players.values()
    }

    /// The next thing to do about the changes so far.
    pub(super) fn poll_event(&mut self) -> Option<RosterEvent> {
        self.events.pop_front()
    }

    fn publish(&mut self, now_ms: u64) {
        self.session.peers = self.players.len() as u32;
        self.session.last_update = now_ms;
        self.events
            .push_back(RosterEvent::Publish(self.session.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roster(max_peers: u32) -> Roster<()> {
        Roster::new(Session {
            name: "lobby".into(),
            url: format!("dat://{}", "ab".repeat(32)),
            last_update: 0,
            peers: 0,
            max_peers,
            protected: false,
            heartbeat: Some(300_000),
            ended: None,
        })
    }

    fn member(id: u64, url: &str) -> Member<()> {
        Member {
            id,
            url: url.into(),
            name: format!("p{id}"),
            link: (),
            path: None,
        }
    }

    fn events(r: &mut Roster<()>) -> Vec<RosterEvent> {
        std::iter::from_fn(|| r.poll_event()).collect()
    }

    /// The `peers` count of each session published.
    fn published(events: &[RosterEvent]) -> Vec<(u32, u64)> {
        events
            .iter()
            .filter_map(|e| match e {
                RosterEvent::Publish(s) => Some((s.peers, s.last_update)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn admit_reserves_until_full_and_release_frees() {
        let mut r = roster(2);
        assert!(r.admit("dat://a", 1));
        assert!(r.admit("dat://b", 1));
        assert!(!r.admit("dat://c", 1), "two slots reserved: full");
        r.release();
        assert!(r.admit("dat://c", 2));
        // Reservations alone publish nothing: `peers` counts open channels.
        assert!(events(&mut r).is_empty());
    }

    #[test]
    fn joined_and_left_publish_the_count_then_tell_the_user() {
        let mut r = roster(8);
        assert!(r.admit("dat://a", 1));
        r.joined(member(7, "dat://a"), 10);
        assert_eq!(r.taken(), 1);
        let joined = events(&mut r);
        assert_eq!(published(&joined), vec![(1, 10)]);
        assert_eq!(
            joined[1],
            RosterEvent::Host(HostEvent::PeerJoined {
                peer: "dat://a".into(),
                name: "p7".into(),
                peers: 1,
                path: None,
            })
        );
        r.left(7, 20);
        let left = events(&mut r);
        assert_eq!(published(&left), vec![(0, 20)]);
        assert!(matches!(
            &left[1],
            RosterEvent::Host(HostEvent::PeerLeft { peers: 0, .. })
        ));
        r.left(7, 30);
        assert!(events(&mut r).is_empty(), "a second leave changes nothing");
        assert_eq!(r.taken(), 0);
    }

    #[test]
    fn a_path_change_is_recorded_and_told_without_publishing() {
        let mut r = roster(8);
        assert!(r.admit("dat://a", 1));
        r.joined(member(7, "dat://a"), 10);
        events(&mut r);
        let path = crate::rtc::SelectedPath {
            kind: crate::ice::PathKind::Srflx,
            local: "10.0.0.2:5000".parse().unwrap(),
            remote: "198.51.100.7:6000".parse().unwrap(),
            relay: None,
        };
        r.path(7, Box::new(path.clone()));
        assert_eq!(
            events(&mut r),
            vec![RosterEvent::Host(HostEvent::PeerPath {
                peer: "dat://a".into(),
                name: "p7".into(),
                path: path.clone(),
            })],
            "session.json has no path: nothing is published"
        );
        assert_eq!(r.player(7).and_then(|p| p.path.as_deref()), Some(&path));
        r.path(8, Box::new(path));
        assert!(events(&mut r).is_empty(), "not a player: nothing happens");
    }

    #[test]
    fn a_full_lobby_of_players_refuses_and_a_leave_makes_room() {
        let mut r = roster(1);
        assert!(r.admit("dat://a", 1));
        r.joined(member(1, "dat://a"), 1);
        assert!(!r.admit("dat://b", 2));
        r.left(1, 3);
        assert!(r.admit("dat://b", 4));
    }

    #[test]
    fn a_rejoin_replaces_the_old_slot_of_the_same_identity() {
        let mut r = roster(1);
        assert!(r.admit("dat://a", 1));
        r.joined(member(1, "dat://a"), 1);
        let _ = events(&mut r);
        // Full for anyone else, but the same identity takes its own slot over.
        assert!(!r.admit("dat://b", 2));
        assert!(r.admit("dat://a", 3));
        let replaced = events(&mut r);
        assert_eq!(published(&replaced), vec![(0, 3)]);
        assert!(matches!(
            &replaced[1],
            RosterEvent::Host(HostEvent::PeerLeft { peer, .. }) if peer == "dat://a"
        ));
        assert!(r.player(1).is_none());
        r.joined(member(2, "dat://a"), 4);
        assert_eq!(r.players().count(), 1);
        assert_eq!(r.player(2).map(|p| p.url.as_str()), Some("dat://a"));
    }

    #[test]
    fn the_heartbeat_publishes_a_fresh_session_and_the_end_marks_it_ended() {
        let mut r = roster(8);
        assert!(r.admit("dat://a", 1));
        r.joined(member(1, "dat://a"), 1);
        let _ = events(&mut r);
        r.heartbeat(300_001);
        assert_eq!(published(&events(&mut r)), vec![(1, 300_001)]);
        let ended = r.end(400_000);
        assert_eq!(ended.ended, Some(400_000));
        assert_eq!((ended.peers, ended.last_update), (0, 400_000));
        assert_eq!(r.session().ended, Some(400_000));
    }
}
