//! Following friends live: a [`Watcher`] keeps a connection to every reachable friend, replicates
//! their archive as it grows, and turns what it sees into typed [`FriendEvent`]s: friends coming
//! online and going away, profile changes, and lobbies going up, changing and down.
//!
//! One task per friend reaches them (routes from [`Discovery`]), syncs their replica, then
//! follows it live until the connection ends, and tries again with back-off. One state task owns
//! what every friend last published and decides which lobbies are live (see [`super`]); it wakes
//! for every update and exactly when a heartbeat goes stale, so a lobby that fills, ends or whose
//! host dies changes the view at once, not at the next poll.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::status::{fetch, note_route, url_of, ReplicaStore};
use super::{Discovery, Friend, FriendsError, LiveLobby, LocalStore, Replica};
use crate::archive::Files;
use crate::home::Home;
use crate::identity::{DatUrl, Identity};
use crate::remote::Route;
use crate::schema::{now_ms, Profile};

/// How often where friends were reached is saved to `friends.json`.
const SAVE_NOTES_EVERY: Duration = Duration::from_secs(2);

/// Friends reached (connect and first sync) at once.
const REACHING_AT_ONCE: usize = 64;

/// How a [`Watcher`] follows.
#[derive(Clone, Debug)]
pub struct WatcherOptions {
    /// Where to find friends.
    pub discovery: Discovery,
    /// First wait before trying an unreachable friend again; doubles up to `retry_max`.
    /// Default 250 ms.
    pub retry_min: Duration,
    /// Longest wait between tries. Default 2 s: the worst-case delay before a friend who starts
    /// hosting is seen.
    pub retry_max: Duration,
    /// How long reaching and syncing a friend may take. Default 5 s.
    pub timeout: Duration,
    /// How often the own friend list is re-read, to follow friends added or removed meanwhile.
    /// Default 2 s.
    pub list_poll: Duration,
}

impl Default for WatcherOptions {
    fn default() -> Self {
        WatcherOptions {
            discovery: Discovery::default(),
            retry_min: Duration::from_millis(250),
            retry_max: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            list_poll: Duration::from_secs(2),
        }
    }
}

/// Why a lobby left the live set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DownReason {
    /// The host marked it ended.
    Ended,
    /// Its heartbeat is older than twice its period.
    Stale,
    /// The host can't be reached any more.
    Offline,
    /// `session.json` was removed, or the friend was unfollowed.
    Gone,
}

/// What a [`Watcher`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FriendEvent {
    /// A friend was reached along `route`.
    Online {
        /// The friend's key.
        key: [u8; 32],
        /// The route that worked.
        route: Route,
    },
    /// The connection to a friend ended, or they could not be reached after being online.
    Offline {
        /// The friend's key.
        key: [u8; 32],
        /// What happened.
        reason: String,
    },
    /// A friend's verified profile, first seen or changed (also from the replica on disk at
    /// start).
    Profile {
        /// The friend's key.
        key: [u8; 32],
        /// Their `profile.json`.
        profile: Profile,
        /// They list us back.
        mutual: bool,
    },
    /// A friend's lobby became live.
    SessionUp(LiveLobby),
    /// A live lobby changed (players, name, limits, protection).
    SessionChanged(LiveLobby),
    /// A lobby is no longer live.
    SessionDown {
        /// The host's key.
        key: [u8; 32],
        /// Why.
        reason: DownReason,
    },
    /// Something went wrong with one friend (their archive is invalid, a replica was damaged
    /// and refetched); the others go on.
    Warning {
        /// The friend's key.
        key: [u8; 32],
        /// What happened.
        message: String,
    },
}

/// A running follow of every friend. Dropping it stops every task.
pub struct Watcher {
    events: mpsc::UnboundedReceiver<FriendEvent>,
    tasks: tokio::task::JoinSet<()>,
}

/// From a friend's task to the state task.
enum Update {
    Online([u8; 32], Route),
    Offline([u8; 32], String),
    Files([u8; 32], Files),
    Warning([u8; 32], String),
    Unfollowed([u8; 32]),
}

impl Watcher {
    /// Starts following every friend of `identity`'s profile, and those added later.
    ///
    /// Errors: the user's own data can't be read (identity, archive, `friends.json`).
    pub async fn start(
        home: &Home,
        identity: &Identity,
        options: WatcherOptions,
    ) -> Result<Watcher, FriendsError> {
        let friends = super::list(home, identity)?;
        let replicas = ReplicaStore::open(home)?;
        let (events_tx, events) = mpsc::unbounded_channel();
        let (updates_tx, updates) = mpsc::unbounded_channel();
        let mut tasks = tokio::task::JoinSet::new();
        // One relay session per relay for every lookup and connect of the watcher.
        let options = WatcherOptions {
            discovery: options.discovery.keyed(identity.signing_key()),
            ..options
        };
        let ctx = Arc::new(FriendCtx {
            identity: identity.clone(),
            replicas,
            options: options.clone(),
            updates: updates_tx,
            me: identity.url().base(),
            reaching: tokio::sync::Semaphore::new(REACHING_AT_ONCE),
        });
        let state = State {
            me: ctx.me.clone(),
            unsaved: HashMap::new(),
            store: LocalStore::new(home.root()),
            friends: HashMap::new(),
            live: BTreeMap::new(),
            events: events_tx,
        };
        tasks.spawn(state.run(updates));
        tasks.spawn(follow_list(home.clone(), ctx, friends));
        Ok(Watcher { events, tasks })
    }

    /// The next event; `None` once the watcher stopped.
    pub async fn next_event(&mut self) -> Option<FriendEvent> {
        self.events.recv().await
    }

    /// Stops following.
    pub fn stop(&mut self) {
        self.tasks.abort_all();
    }
}

struct FriendCtx {
    identity: Identity,
    replicas: ReplicaStore,
    options: WatcherOptions,
    updates: mpsc::UnboundedSender<Update>,
    me: String,
    /// Bounds the friends being reached at once (connect and first sync), so that starting to
    /// follow a thousand friends is not a thousand simultaneous handshakes.
    reaching: tokio::sync::Semaphore,
}

/// Runs one task per friend; re-reads the friend list every `list_poll` and starts or stops
/// tasks for friends added or removed meanwhile.
async fn follow_list(home: Home, ctx: Arc<FriendCtx>, initial: Vec<Friend>) {
    let mut running: HashMap<[u8; 32], tokio::task::AbortHandle> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut wanted = initial;
    loop {
        for friend in &wanted {
            if let std::collections::hash_map::Entry::Vacant(slot) = running.entry(friend.key) {
                let task = follow(ctx.clone(), friend.key, friend.notes.clone());
                slot.insert(tasks.spawn(task));
            }
        }
        running.retain(|key, handle| {
            let keep = wanted.iter().any(|f| f.key == *key);
            if !keep {
                handle.abort();
                let _ = ctx.updates.send(Update::Unfollowed(*key));
            }
            keep
        });
        tokio::time::sleep(ctx.options.list_poll).await;
        match super::list(&home, &ctx.identity) {
            Ok(friends) => wanted = friends,
            Err(e) => tracing::warn!("cannot re-read the friend list: {e}"),
        }
    }
}

/// Follows one friend for as long as the watcher runs. The replica is open (files, memory) only
/// while the friend is being reached or is connected, so following many friends who are offline
/// costs little; every stored byte is verified the first time only.
async fn follow(ctx: Arc<FriendCtx>, key: [u8; 32], mut notes: super::FriendNotes) {
    match open_replica(&ctx, key, true) {
        Some(replica) => publish_files(&ctx, &replica, key),
        None => return,
    }
    let mut wait = ctx.options.retry_min;
    loop {
        let routes = ctx.options.discovery.routes(key, &notes.hints()).await;
        let reached = match routes.is_empty() {
            true => false,
            false => match open_replica(&ctx, key, false) {
                Some(replica) => try_routes(&ctx, &mut notes, &replica, key, routes).await,
                None => false,
            },
        };
        wait = if reached {
            ctx.options.retry_min
        } else {
            wait.saturating_mul(2).min(ctx.options.retry_max)
        };
        tokio::time::sleep(jitter(wait)).await;
    }
}

/// Tries `routes` in order; on the first that works, follows the friend live until the
/// connection ends. Returns whether one worked.
async fn try_routes(
    ctx: &FriendCtx,
    notes: &mut super::FriendNotes,
    replica: &Replica,
    key: [u8; 32],
    routes: Vec<Route>,
) -> bool {
    for route in routes {
        let permit = ctx.reaching.acquire().await;
        let deadline = crate::time::deadline_after(ctx.options.timeout);
        let fetched = fetch(
            &ctx.options.discovery,
            &ctx.identity,
            &route,
            replica,
            key,
            deadline,
        )
        .await;
        drop(permit);
        let conn = match fetched {
            Ok(conn) => conn,
            Err(e) => {
                tracing::debug!("{}: {}: {e}", url_of(&key), route.address());
                continue;
            }
        };
        note_route(notes, &route, now_ms());
        let _ = ctx.updates.send(Update::Online(key, route.clone()));
        publish_files(ctx, replica, key);
        let reason = follow_live(ctx, replica, key, &conn).await;
        let _ = ctx.updates.send(Update::Offline(key, reason));
        return true;
    }
    false
}

/// Opens `key`'s replica (checking every stored byte when `verify`); reports a damaged replica
/// (discarded, to be fetched again) or an error as a warning.
fn open_replica(ctx: &FriendCtx, key: [u8; 32], verify: bool) -> Option<Replica> {
    match ctx.replicas.replica(key, verify) {
        Ok((replica, state)) => {
            if let super::OpenState::Discarded(reason) = state {
                let message =
                    format!("the replica on disk was damaged ({reason}): fetching it again");
                let _ = ctx.updates.send(Update::Warning(key, message));
            }
            Some(replica)
        }
        Err(e) => {
            let _ = ctx.updates.send(Update::Warning(key, e.to_string()));
            None
        }
    }
}

/// Publishes the replica's files each time it grows, until the connection ends; returns why it
/// ended.
async fn follow_live(
    ctx: &FriendCtx,
    replica: &Replica,
    key: [u8; 32],
    conn: &crate::net::Connection,
) -> String {
    let mut status = replica.core().subscribe();
    loop {
        tokio::select! {
            changed = status.changed() => {
                if changed.is_err() {
                    return "the replica closed".into();
                }
                let s = *status.borrow_and_update();
                if let Err(e) = replica.check_size() {
                    let _ = ctx.updates.send(Update::Warning(key, e.to_string()));
                    return e.to_string();
                }
                if s.contiguous_length >= s.length {
                    if let Err(e) = replica.flush() {
                        tracing::warn!("{e}");
                    }
                    publish_files(ctx, replica, key);
                }
            }
            closed = conn.closed() => {
                return match closed {
                    Ok(()) => "the connection closed".into(),
                    Err(e) => e.to_string(),
                };
            }
        }
    }
}

fn publish_files(ctx: &FriendCtx, replica: &Replica, key: [u8; 32]) {
    match replica.files() {
        Ok(Some(files)) => {
            let _ = ctx.updates.send(Update::Files(key, files));
        }
        Ok(None) => {}
        Err(e) => {
            let message = format!("their archive is invalid: {e}");
            let _ = ctx.updates.send(Update::Warning(key, message));
        }
    }
}

/// ±20 % so that many watchers don't retry in lock step; saturates at `Duration::MAX` (a
/// caller's huge `retry_max` never panics).
fn jitter(d: Duration) -> Duration {
    use rand::Rng;
    let factor = rand::thread_rng().gen_range(0.8..1.2);
    Duration::try_from_secs_f64(d.as_secs_f64() * factor).unwrap_or(Duration::MAX)
}

/// What the state task knows of one friend.
#[derive(Default)]
struct Known {
    online: Option<Route>,
    files: Option<Files>,
}

/// Owns every friend's last known state and the live set; emits the events.
struct State {
    me: String,
    /// Where friends were reached since the last save to `friends.json`.
    unsaved: HashMap<[u8; 32], Route>,
    store: LocalStore,
    friends: HashMap<[u8; 32], Known>,
    live: BTreeMap<[u8; 32], LiveLobby>,
    events: mpsc::UnboundedSender<FriendEvent>,
}

impl State {
    async fn run(mut self, mut updates: mpsc::UnboundedReceiver<Update>) {
        // Notes are saved in batches: one write of friends.json per period, not one per friend.
        let mut save = tokio::time::interval(SAVE_NOTES_EVERY);
        loop {
            let next_stale = self.next_stale();
            tokio::select! {
                update = updates.recv() => match update {
                    Some(update) => self.apply(update),
                    None => return,
                },
                _ = sleep_until_ms(next_stale) => {}
                _ = save.tick() => self.save_notes(),
            }
            self.recompute();
        }
    }

    fn save_notes(&mut self) {
        if self.unsaved.is_empty() {
            return;
        }
        let now = now_ms();
        let unsaved = std::mem::take(&mut self.unsaved);
        let saved = self.store.update(|notes| {
            for (key, route) in &unsaved {
                note_route(
                    notes.friends.entry(hex::encode(key)).or_default(),
                    route,
                    now,
                );
            }
            Ok(())
        });
        if let Err(e) = saved {
            tracing::warn!("cannot save where friends were reached: {e}");
        }
    }

    fn apply(&mut self, update: Update) {
        match update {
            Update::Online(key, route) => {
                self.friends.entry(key).or_default().online = Some(route.clone());
                self.unsaved.insert(key, route.clone());
                self.emit(FriendEvent::Online { key, route });
            }
            Update::Offline(key, reason) => {
                self.friends.entry(key).or_default().online = None;
                self.emit(FriendEvent::Offline { key, reason });
            }
            Update::Files(key, files) => {
                let known = self.friends.entry(key).or_default();
                let old_profile = known.files.as_ref().and_then(|f| f.profile.clone());
                let profile = files.profile.clone();
                known.files = Some(files);
                if let Some(profile) = profile.filter(|p| Some(p) != old_profile.as_ref()) {
                    let mutual = profile.friends.contains(&self.me);
                    self.emit(FriendEvent::Profile {
                        key,
                        profile,
                        mutual,
                    });
                }
            }
            Update::Warning(key, message) => self.emit(FriendEvent::Warning { key, message }),
            Update::Unfollowed(key) => {
                self.friends.remove(&key);
            }
        }
    }

    /// Diffs the live set against the last one emitted.
    fn recompute(&mut self) {
        let now = now_ms();
        let mut live = BTreeMap::new();
        for (key, known) in &self.friends {
            if let Some(lobby) = lobby_of(key, known, now) {
                live.insert(*key, lobby);
            }
        }
        let mut events = Vec::new();
        for (key, old) in &self.live {
            match live.get(key) {
                None => events.push(FriendEvent::SessionDown {
                    key: *key,
                    reason: self.down_reason(key, now),
                }),
                Some(new) if new.session_view() != old.session_view() => {
                    events.push(FriendEvent::SessionChanged(new.clone()))
                }
                Some(_) => {}
            }
        }
        for (key, lobby) in &live {
            if !self.live.contains_key(key) {
                events.push(FriendEvent::SessionUp(lobby.clone()));
            }
        }
        self.live = live;
        for e in events {
            self.emit(e);
        }
    }

    fn down_reason(&self, key: &[u8; 32], now: u64) -> DownReason {
        let Some(known) = self.friends.get(key) else {
            return DownReason::Gone;
        };
        match known.files.as_ref().and_then(|f| f.session.as_ref()) {
            None => DownReason::Gone,
            Some(s) if s.ended.is_some() => DownReason::Ended,
            Some(s) if !s.is_live(now) => DownReason::Stale,
            Some(_) => DownReason::Offline,
        }
    }

    /// When the earliest live lobby's heartbeat goes stale, in ms since the epoch.
    fn next_stale(&self) -> Option<u64> {
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

    fn emit(&self, event: FriendEvent) {
        let _ = self.events.send(event);
    }
}

fn lobby_of(key: &[u8; 32], known: &Known, now: u64) -> Option<LiveLobby> {
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

async fn sleep_until_ms(at: Option<u64>) {
    match at {
        Some(at) => {
            let wait = at.saturating_sub(now_ms());
            tokio::time::sleep(Duration::from_millis(wait)).await
        }
        None => std::future::pending().await,
    }
}

/// A friend's URL with the route as a hint, to join their lobby along it.
pub fn join_url(lobby: &LiveLobby) -> DatUrl {
    let mut url = DatUrl::new(lobby.host);
    match &lobby.route {
        Route::Tcp(addr) => url.peer = Some(addr.clone()),
        Route::Relay(relay) => url.relay = Some(relay.to_string()),
    }
    url
}
