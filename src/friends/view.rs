//! The watcher's view of every friend, sans-IO: what each friend last published and whether
//! they are reachable go in ([`FriendsView::handle_update`], with `now`), the live lobbies are
//! recomputed, and the differences come out as [`FriendEvent`]s ([`FriendsView::poll_event`]).
//! [`FriendsView::poll_timeout`] says when the earliest live lobby's heartbeat goes stale, so
//! the driver ([`super::watch`]) wakes exactly then and calls [`FriendsView::handle_timeout`].
//!
//! No clock, no channel, no file: the driver reads the clock, forwards the events and saves the
//! routes it takes with [`FriendsView::take_reached`] to `friends.json`.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::watch::{DownReason, FriendEvent};
use super::LiveLobby;
use crate::archive::Files;
use crate::keys::IdentityKey;
use crate::remote::Route;

/// What the per-friend tasks report to the view.
#[derive(Debug)]
pub(super) enum Update {
    /// The friend was reached along this route.
    Online(IdentityKey, Route),
    /// The connection to the friend ended: why.
    Offline(IdentityKey, String),
    /// The friend's verified files, read from their replica.
    Files(IdentityKey, Files),
    /// Something went wrong with this friend: what.
    Warning(IdentityKey, String),
    /// The friend left the friend list.
    Unfollowed(IdentityKey),
}

/// What the view knows of one friend.
#[derive(Default)]
struct Known {
    online: Option<Route>,
    files: Option<Files>,
}

/// Every friend's last known state and the live set last reported, as a state machine.
pub(super) struct FriendsView {
    /// Our own `dat://` URL, to tell whether a friend lists us back.
    me: String,
    /// Where friends were reached since the last [`FriendsView::take_reached`].
    reached: HashMap<IdentityKey, Route>,
    friends: HashMap<IdentityKey, Known>,
    /// The live lobbies as last reported in events.
    live: BTreeMap<IdentityKey, LiveLobby>,
    events: VecDeque<FriendEvent>,
}

impl FriendsView {
    /// An empty view for the user whose URL is `me` (`dat://<64 hex>`).
    pub(super) fn new(me: String) -> FriendsView {
        FriendsView {
            me,
            reached: HashMap::new(),
            friends: HashMap::new(),
            live: BTreeMap::new(),
            events: VecDeque::new(),
        }
    }

    /// Applies what a friend's task saw at `now` (ms since the epoch), then recomputes the live
    /// set.
    pub(super) fn handle_update(&mut self, update: Update, now: u64) {
        self.apply(update);
        self.recompute(now);
    }

    /// Time passed: recomputes the live set at `now` (ms since the epoch), e.g. when
    /// [`FriendsView::poll_timeout`] is reached and a heartbeat went stale.
    pub(super) fn handle_timeout(&mut self, now: u64) {
        self.recompute(now);
    }

    /// When the earliest live lobby's heartbeat goes stale (1 ms after twice its period), in ms
    /// since the epoch; `None` while no live lobby states a heartbeat.
    pub(super) fn poll_timeout(&self) -> Option<u64> {
        self.live
            .values()
            .filter_map(|l| {
                // A friend's heartbeat is theirs to choose: saturate rather than wrap around
                // (a wrapped time is in the past, and the watcher would spin).
                let period = l.session.heartbeat?;
                Some(
                    l.session
                        .last_update
                        .saturating_add(period.saturating_mul(2))
                        .saturating_add(1),
                )
            })
            .min()
    }

    /// The next event, oldest first.
    pub(super) fn poll_event(&mut self) -> Option<FriendEvent> {
        self.events.pop_front()
    }

    /// The routes friends were reached along since the last call, to save in `friends.json`
    /// (in batches: one write per period, not one per friend).
    pub(super) fn take_reached(&mut self) -> HashMap<IdentityKey, Route> {
        std::mem::take(&mut self.reached)
    }

    fn apply(&mut self, update: Update) {
        match update {
            Update::Online(key, route) => {
                self.friends.entry(key).or_default().online = Some(route.clone());
                self.reached.insert(key, route.clone());
                self.events.push_back(FriendEvent::Online { key, route });
            }
            Update::Offline(key, reason) => {
                self.friends.entry(key).or_default().online = None;
                self.events.push_back(FriendEvent::Offline { key, reason });
            }
            Update::Files(key, files) => self.apply_files(key, files),
            Update::Warning(key, message) => {
                self.events.push_back(FriendEvent::Warning { key, message })
            }
            Update::Unfollowed(key) => {
                self.friends.remove(&key);
            }
        }
    }

    /// Keeps `key`'s files; reports their profile when it is new or changed.
    fn apply_files(&mut self, key: IdentityKey, files: Files) {
        let known = self.friends.entry(key).or_default();
        let old_profile = known.files.as_ref().and_then(|f| f.profile.clone());
        let profile = files.profile.clone();
        known.files = Some(files);
        if let Some(profile) = profile.filter(|p| Some(p) != old_profile.as_ref()) {
            let mutual = profile.friends.contains(&self.me);
            self.events.push_back(FriendEvent::Profile {
                key,
                profile,
                mutual,
            });
        }
    }

    /// Diffs the live set at `now` against the last one reported.
    fn recompute(&mut self, now: u64) {
        let mut live = BTreeMap::new();
        for (key, known) in &self.friends {
            if let Some(lobby) = lobby_of(key, known, now) {
                live.insert(*key, lobby);
            }
        }
        for (key, old) in &self.live {
            match live.get(key) {
                None => self.events.push_back(FriendEvent::SessionDown {
                    key: *key,
                    reason: down_reason(self.friends.get(key), now),
                }),
                Some(new) if new.session_view() != old.session_view() => self
                    .events
                    .push_back(FriendEvent::SessionChanged(new.clone())),
                Some(_) => {}
            }
        }
        for (key, lobby) in &live {
            if !self.live.contains_key(key) {
                self.events.push_back(FriendEvent::SessionUp(lobby.clone()));
            }
        }
        self.live = live;
    }
}

/// Why the lobby of a friend known as `known` (`None`: unfollowed) is no longer live at `now`.
fn down_reason(known: Option<&Known>, now: u64) -> DownReason {
    let Some(known) = known else {
        return DownReason::Gone;
    };
    match known.files.as_ref().and_then(|f| f.session.as_ref()) {
        None => DownReason::Gone,
        Some(s) if s.ended.is_some() => DownReason::Ended,
        Some(s) if !s.is_live(now) => DownReason::Stale,
        Some(_) => DownReason::Offline,
    }
}

fn lobby_of(key: &IdentityKey, known: &Known, now: u64) -> Option<LiveLobby> {
    let files = known.files.as_ref()?;
    LiveLobby::of(
        *key,
        files.profile.as_ref(),
        files.session.as_ref(),
        known.online.as_ref(),
        now,
    )
}

impl LiveLobby {
    /// What watchers are told about when it changes: everything but the heartbeat time.
    fn session_view(&self) -> (String, String, u32, u32, bool) {
        let s = &self.session;
        (
            s.name.clone(),
            s.url.clone(),
            s.peers,
            s.max_peers,
            s.protected,
        )
    }
}

#[cfg(test)]
mod tests;
