//! Following friends live: a [`Watcher`] keeps a connection to every reachable friend, replicates
//! their archive as it grows, and turns what it sees into typed [`FriendEvent`]s: friends coming
//! online and going away, profile changes, and lobbies going up, changing and down.
//!
//! One task per friend reaches them (routes and connections from the [`Endpoint`]), syncs their replica, then
//! follows it live until the connection ends, and tries again with back-off. One task drives the
//! sans-IO [`FriendsView`] (what every friend last published, and which lobbies are live: see
//! [`super`]); it feeds it every update and the time, and wakes exactly when a heartbeat goes
//! stale, so a lobby that fills, ends or whose host dies changes the view at once, not at the next
//! poll.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::status::{fetch, note_route, url_of, ReplicaStore};
use super::view::{FriendsView, Update};
use super::{Friend, FriendsError, LiveLobby, LocalStore, Replica};
use crate::endpoint::Endpoint;
use crate::home::Home;
use crate::identity::DatUrl;
use crate::keys::IdentityKey;
use crate::remote::Route;
use crate::schema::{now_ms, Profile};

/// How often where friends were reached is saved to `friends.json`.
const SAVE_NOTES_EVERY: Duration = Duration::from_secs(2);

/// Friends reached (connect and first sync) at once.
const REACHING_AT_ONCE: usize = 64;

/// How a [`Watcher`] follows (where it looks is the endpoint's: its relays, the LAN).
#[derive(Clone, Debug)]
pub struct WatcherOptions {
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
        key: IdentityKey,
        /// The route that worked.
        route: Route,
    },
    /// The connection to a friend ended, or they could not be reached after being online.
    Offline {
        /// The friend's key.
        key: IdentityKey,
        /// What happened.
        reason: String,
    },
    /// A friend's verified profile, first seen or changed (also from the replica on disk at
    /// start).
    Profile {
        /// The friend's key.
        key: IdentityKey,
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
        key: IdentityKey,
        /// Why.
        reason: DownReason,
    },
    /// Something went wrong with one friend (their archive is invalid, a replica was damaged
    /// and refetched); the others go on.
    Warning {
        /// The friend's key.
        key: IdentityKey,
        /// What happened.
        message: String,
    },
}

/// A running follow of every friend. Dropping it stops every task.
pub struct Watcher {
    events: mpsc::UnboundedReceiver<FriendEvent>,
    tasks: tokio::task::JoinSet<()>,
}

impl Watcher {
    /// Starts following every friend in the profile of `endpoint`'s identity, and those added
    /// later, reaching them through `endpoint` (its lookups, and one relay session per relay
    /// however many friends are followed through it).
    ///
    /// Errors: the user's own data can't be read (identity, archive, `friends.json`).
    pub async fn start(
        home: &Home,
        endpoint: Arc<Endpoint>,
        options: WatcherOptions,
    ) -> Result<Watcher, FriendsError> {
        let friends = super::list(home, endpoint.identity())?;
        let replicas = ReplicaStore::open(home)?;
        let (events_tx, events) = mpsc::unbounded_channel();
        let (updates_tx, updates) = mpsc::unbounded_channel();
        let mut tasks = tokio::task::JoinSet::new();
        let ctx = Arc::new(FriendCtx {
            me: endpoint.identity().url().base(),
            endpoint,
            replicas,
            options,
            updates: updates_tx,
            reaching: tokio::sync::Semaphore::new(REACHING_AT_ONCE),
        });
        let view = FriendsView::new(ctx.me.clone());
        let store = LocalStore::new(home.root());
        tasks.spawn(drive_view(view, store, updates, events_tx));
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
    endpoint: Arc<Endpoint>,
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
    let mut running: HashMap<IdentityKey, tokio::task::AbortHandle> = HashMap::new();
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
        match super::list(&home, ctx.endpoint.identity()) {
            Ok(friends) => wanted = friends,
            Err(e) => tracing::warn!("cannot re-read the friend list: {e}"),
        }
    }
}

/// Follows one friend for as long as the watcher runs. The replica is open (files, memory) only
/// while the friend is being reached or is connected, so following many friends who are offline
/// costs little; every stored byte is verified the first time only.
async fn follow(ctx: Arc<FriendCtx>, key: IdentityKey, mut notes: super::FriendNotes) {
    match open_replica(&ctx, key, true) {
        Some(replica) => publish_files(&ctx, &replica, key),
        None => return,
    }
    let mut wait = ctx.options.retry_min;
    loop {
        let routes = ctx.endpoint.routes(key, &notes.hints()).await;
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
    key: IdentityKey,
    routes: Vec<Route>,
) -> bool {
    for route in routes {
        let permit = ctx.reaching.acquire().await;
        let deadline = crate::time::deadline_after(ctx.options.timeout);
        let fetched = fetch(&ctx.endpoint, &route, replica, key, deadline).await;
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
fn open_replica(ctx: &FriendCtx, key: IdentityKey, verify: bool) -> Option<Replica> {
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
    key: IdentityKey,
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

fn publish_files(ctx: &FriendCtx, replica: &Replica, key: IdentityKey) {
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

/// Runs `view`: feeds it the friends' updates and the time, forwards its events to `events`, and
/// saves the routes friends were reached along to `store` in batches (one write of
/// `friends.json` per [`SAVE_NOTES_EVERY`], not one per friend).
async fn drive_view(
    mut view: FriendsView,
    store: LocalStore,
    mut updates: mpsc::UnboundedReceiver<Update>,
    events: mpsc::UnboundedSender<FriendEvent>,
) {
    let mut save = tokio::time::interval(SAVE_NOTES_EVERY);
    loop {
        tokio::select! {
            update = updates.recv() => match update {
                Some(update) => view.handle_update(update, now_ms()),
                None => return,
            },
            _ = sleep_until_ms(view.poll_timeout()) => view.handle_timeout(now_ms()),
            _ = save.tick() => {
                save_reached(&store, view.take_reached());
                view.handle_timeout(now_ms());
            }
        }
        while let Some(event) = view.poll_event() {
            let _ = events.send(event);
        }
    }
}

/// Notes in `friends.json` that each friend in `reached` was reached along its route, now.
fn save_reached(store: &LocalStore, reached: HashMap<IdentityKey, Route>) {
    if reached.is_empty() {
        return;
    }
    let now = now_ms();
    let saved = store.update(|notes| {
        for (key, route) in &reached {
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

async fn sleep_until_ms(at: Option<u64>) {
    match at {
        Some(at) => {
            let wait = at.saturating_sub(now_ms());
            tokio::time::sleep(Duration::from_millis(wait)).await
        }
        None => std::future::pending().await,
    }
}

/// A friend's URL with the route and their lobby's key as hints, to join their lobby along it.
pub fn join_url(lobby: &LiveLobby) -> DatUrl {
    let mut url = DatUrl::new(lobby.host);
    match &lobby.route {
        Route::Tcp(addr) => url.peer = Some(addr.clone()),
        Route::Relay(relay) => url.relay = Some(relay.to_string()),
    }
    url.lobby = lobby
        .session
        .url
        .parse::<DatUrl>()
        .ok()
        .map(|lobby_url| lobby_url.key);
    url
}
