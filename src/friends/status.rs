//! One look at every friend: reach each (bounded in time and concurrency), bring their replica up
//! to date, and report who is online, what they last published, and which lobbies are live.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Friend, FriendsError, LocalStore, OpenState, Replica};
use crate::archive::Files;
use crate::endpoint::Endpoint;
use crate::home::Home;
use crate::hypercore::Core;
use crate::identity::{DatUrl, Identity};
use crate::keys::IdentityKey;
use crate::remote::Route;
use crate::schema::{now_ms, Profile, Session};

/// How [`refresh`] looks (where it looks is the endpoint's: its relays, the LAN).
#[derive(Clone, Debug)]
pub struct RefreshOptions {
    /// How long reaching and syncing one friend may take. Default 5 s.
    pub timeout: Duration,
    /// Friends contacted at once. Default 64.
    pub concurrency: usize,
}

impl Default for RefreshOptions {
    fn default() -> Self {
        RefreshOptions {
            timeout: Duration::from_secs(5),
            concurrency: 64,
        }
    }
}

/// What is known about one friend after a look.
#[derive(Clone, Debug)]
pub struct FriendStatus {
    /// The friend.
    pub friend: Friend,
    /// Their last verified `profile.json`, from the network now or the replica on disk.
    pub profile: Option<Profile>,
    /// Their last verified `session.json`.
    pub session: Option<Session>,
    /// Reached during this look; the route that worked.
    pub online: Option<Route>,
    /// They list us in their `friends`.
    pub mutual: bool,
    /// Blocks in the verified replica.
    pub length: u64,
    /// What opening the replica found (e.g. a damaged replica discarded).
    pub replica: OpenState,
    /// Why the replica on disk can't be trusted, when a read-only look ([`read_offline`]) found
    /// it damaged: it is left as it is (a look that reaches the friend replaces it).
    pub damaged: Option<String>,
    /// Why they could not be reached or read, when they weren't.
    pub error: Option<String>,
}

impl FriendStatus {
    /// Their lobby, if it is live at `now_ms` (see [`super`]): not ended, fresh heartbeat, and
    /// the friend reached.
    pub fn live_lobby(&self, now_ms: u64) -> Option<LiveLobby> {
        LiveLobby::of(
            self.friend.key,
            self.profile.as_ref(),
            self.session.as_ref(),
            self.online.as_ref(),
            now_ms,
        )
    }
}

/// A friend's live lobby.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveLobby {
    /// The host's key (their archive).
    pub host: IdentityKey,
    /// The host's profile name.
    pub host_name: String,
    /// Their `session.json`.
    pub session: Session,
    /// How the host was reached: join along it.
    pub route: Route,
}

impl LiveLobby {
    /// The lobby of `host` if it is live at `now_ms`: `session` live by its heartbeat and not
    /// ended, and the host reached along `route` (`None`: not reachable now).
    pub fn of(
        host: IdentityKey,
        profile: Option<&Profile>,
        session: Option<&Session>,
        route: Option<&Route>,
        now_ms: u64,
    ) -> Option<LiveLobby> {
        let route = route?.clone();
        let session = session.filter(|s| s.is_live(now_ms))?.clone();
        let host_name = profile.map(|p| p.name.clone()).unwrap_or_default();
        Some(LiveLobby {
            host,
            host_name,
            session,
            route,
        })
    }

    /// Milliseconds since the last heartbeat at `now_ms`.
    pub fn age_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.session.last_update)
    }

    /// Whether a player can still get in (`peers < max_peers`).
    pub fn has_room(&self) -> bool {
        self.session.peers < self.session.max_peers
    }
}

/// The lobby `join --quick` picks: among lobbies with room and no password, the one with the
/// most players; ties go to the freshest heartbeat, then the lowest host key (so every user
/// picks the same). `None` when there is none.
pub fn pick_quick(lobbies: &[LiveLobby]) -> Option<&LiveLobby> {
    lobbies
        .iter()
        .filter(|l| l.has_room() && !l.session.protected)
        .max_by(|a, b| {
            (a.session.peers, a.session.last_update)
                .cmp(&(b.session.peers, b.session.last_update))
                .then(b.host.cmp(&a.host))
        })
}

/// The files of `key`'s replica on disk, read-only and verified; `None` if there is none, it is
/// incomplete, or it fails verification (never shown as valid).
pub fn offline_files(home: &Home, key: &IdentityKey) -> Option<Files> {
    match read_replica(home, key) {
        OnDisk::Files(files) => Some(files),
        _ => None,
    }
}

/// What a read-only look at a replica on disk found.
enum OnDisk {
    /// No replica, or an incomplete one.
    Nothing,
    /// A verified replica and its files.
    Files(Files),
    /// The stored bytes fail verification (or are another core's): the reason.
    Damaged(String),
    /// Verified, but the friend's signed archive breaks the format or schemas: the reason.
    Invalid(String),
}

/// Reads `key`'s replica on disk without writing anything (no repair, no creation), checking
/// every stored byte.
fn read_replica(home: &Home, key: &IdentityKey) -> OnDisk {
    let dir = Replica::dir(home.root(), key);
    if !dir.join("header").exists() {
        return OnDisk::Nothing;
    }
    let core = match Core::open(&dir, None) {
        Ok(core) => core,
        Err(e) => return OnDisk::Damaged(e.to_string()),
    };
    if core.key() != *key {
        return OnDisk::Damaged(format!("it holds core {}", hex::encode(core.key())));
    }
    if let Err(e) = core.verify_all() {
        return OnDisk::Damaged(e.to_string());
    }
    if core.length() == 0 || core.contiguous_length() < core.length() {
        return OnDisk::Nothing;
    }
    match crate::archive::read_files(&core) {
        Ok(files) => OnDisk::Files(files),
        Err(e) => OnDisk::Invalid(e.to_string()),
    }
}

/// Every friend's status from what is on disk alone, contacting nobody and writing nothing (not
/// `friends.json`, not a lock file, not a replica, not even to discard a damaged one): what
/// `friends list --offline` shows, and works on a read-only or full disk. Each friend is
/// offline; a damaged replica is reported in [`FriendStatus::damaged`] and not shown.
///
/// Errors: only for the user's own data (identity, archive, `friends.json`).
pub fn read_offline(home: &Home, identity: &Identity) -> Result<Vec<FriendStatus>, FriendsError> {
    let friends = super::list(home, identity)?;
    Ok(friends
        .into_iter()
        .map(|friend| {
            let (files, damaged, error) = match read_replica(home, &friend.key) {
                OnDisk::Nothing => (None, None, None),
                OnDisk::Files(files) => (Some(files), None, None),
                OnDisk::Damaged(reason) => (None, Some(reason), None),
                OnDisk::Invalid(reason) => (None, None, Some(reason)),
            };
            let state = match &files {
                Some(files) => OpenState::Verified(files.length),
                None => OpenState::Empty,
            };
            let mut status = status(friend, files, None, state, error, identity);
            status.damaged = damaged;
            status
        })
        .collect())
}

/// Looks at every friend once: reaches each along the routes `endpoint` finds (with its
/// lookups and relay sessions: one session per relay for the whole look), brings
/// their replica up to date, and returns their status in friend-list order. Friends who can't
/// be reached are reported offline with their last verified files. Each friend takes at most
/// `options.timeout`; `options.concurrency` at once. `friends.json` is rewritten only when a
/// friend was reached; for a look that writes nothing at all, see [`read_offline`].
///
/// Errors: only for the user's own data (identity, archive, `friends.json`); a friend's failure
/// is in their [`FriendStatus::error`].
pub async fn refresh(
    home: &Home,
    endpoint: &Arc<Endpoint>,
    options: &RefreshOptions,
) -> Result<Vec<FriendStatus>, FriendsError> {
    let friends = super::list(home, endpoint.identity())?;
    let replicas = ReplicaStore::open(home)?;
    let limit = Arc::new(tokio::sync::Semaphore::new(options.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, friend) in friends.into_iter().enumerate() {
        let (endpoint, replicas, limit) = (endpoint.clone(), replicas.clone(), limit.clone());
        let options = options.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let status = look(&endpoint, friend, &replicas, &options).await;
            (index, status)
        });
    }
    let mut out = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok((index, status)) = done {
            out.push((index, status?));
        }
    }
    out.sort_by_key(|(i, _)| *i);
    let mut out: Vec<FriendStatus> = out.into_iter().map(|(_, s)| s).collect();
    let notes = remember(home, &out)?;
    for s in &mut out {
        if let Some(n) = notes.get(&s.friend.key) {
            s.friend.notes = n.clone();
        }
    }
    Ok(out)
}

/// Where replicas live for this process: on disk when it can take `replicas.lock`, else (a
/// watcher in another process owns them) fresh in-memory copies, so two processes never write
/// one replica.
#[derive(Clone)]
pub(crate) struct ReplicaStore {
    home: Home,
    /// `replicas.lock`, held while this process owns the replicas on disk.
    lock: Option<Arc<std::fs::File>>,
}

impl ReplicaStore {
    pub(crate) fn open(home: &Home) -> Result<Self, FriendsError> {
        let lock = home.try_lock_file("replicas.lock")?;
        Ok(ReplicaStore {
            home: home.clone(),
            lock: lock.map(Arc::new),
        })
    }

    /// The replica of `key`: on disk if this process owns the replicas (every stored byte
    /// checked when `verify`), else in memory.
    pub(crate) fn replica(
        &self,
        key: IdentityKey,
        verify: bool,
    ) -> Result<(Replica, OpenState), FriendsError> {
        if self.lock.is_some() {
            Replica::open(self.home.root(), key, verify)
        } else {
            Ok((Replica::in_memory(key), OpenState::Empty))
        }
    }

    /// The files of `key` to show when this look fetched nothing: an in-memory replica starts
    /// empty, so read the one on disk (read-only, verified); a disk replica already is it.
    fn last_known(&self, key: &IdentityKey) -> Option<Files> {
        match self.lock {
            Some(_) => None,
            None => offline_files(&self.home, key),
        }
    }
}

async fn look(
    endpoint: &Endpoint,
    friend: Friend,
    replicas: &ReplicaStore,
    options: &RefreshOptions,
) -> Result<FriendStatus, FriendsError> {
    let (replica, replica_state) = replicas.replica(friend.key, true)?;
    let deadline = crate::time::deadline_after(options.timeout);
    let mut online = None;
    let mut errors = Vec::new();
    for route in endpoint.routes(friend.key, &friend.notes.hints()).await {
        match fetch(endpoint, &route, &replica, friend.key, deadline).await {
            Ok(_conn) => {
                online = Some(route);
                break;
            }
            Err(e) => errors.push(format!("{}: {e}", route.address())),
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    let error = match (&online, errors.is_empty()) {
        (Some(_), _) => None,
        (None, true) => Some("no address known: no hint, relay or local peer".to_string()),
        (None, false) => Some(errors.join("; ")),
    };
    let (files, error) = match replica.files() {
        Ok(files) => (files.or_else(|| replicas.last_known(&friend.key)), error),
        Err(e) => (None, Some(e.to_string())),
    };
    Ok(status(
        friend,
        files,
        online,
        replica_state,
        error,
        endpoint.identity(),
    ))
}

fn status(
    friend: Friend,
    files: Option<Files>,
    online: Option<Route>,
    replica: OpenState,
    error: Option<String>,
    identity: &Identity,
) -> FriendStatus {
    let files = files.unwrap_or_default();
    let me = identity.url().base();
    FriendStatus {
        mutual: files
            .profile
            .as_ref()
            .is_some_and(|p| p.friends.contains(&me)),
        length: files.length,
        profile: files.profile,
        session: files.session,
        online,
        replica,
        damaged: None,
        error,
        friend,
    }
}

/// Reaches `key` along `route` (relays through `endpoint`'s shared sessions) and syncs
/// `replica` from it.
pub(crate) async fn fetch(
    endpoint: &Endpoint,
    route: &Route,
    replica: &Replica,
    key: IdentityKey,
    deadline: Instant,
) -> Result<crate::net::Connection, FriendsError> {
    let conn = endpoint.reach(route, key, deadline).await?.connection;
    let mut events = conn.take_events().ok_or(crate::net::NetError::Closed)?;
    replica.sync(&conn, &mut events, deadline).await?;
    Ok(conn)
}

/// Saves where each friend was reached and when their archive changed; returns the notes. Reads
/// only (no write, no lock) when nobody was reached: there is nothing new to save.
fn remember(home: &Home, statuses: &[FriendStatus]) -> Result<super::LocalFriends, FriendsError> {
    let now = now_ms();
    let store = LocalStore::new(home.root());
    if statuses.iter().all(|s| s.online.is_none()) {
        return store.load();
    }
    store.update(|notes| {
        for s in statuses {
            let Some(route) = &s.online else { continue };
            let entry = notes.friends.entry(hex::encode(s.friend.key)).or_default();
            note_route(entry, route, now);
            if entry.length != Some(s.length) {
                entry.length = Some(s.length);
                entry.changed = Some(now);
            }
        }
        Ok(notes.clone())
    })
}

/// Records that the friend was reached along `route` at `now` (ms).
pub(crate) fn note_route(entry: &mut super::FriendNotes, route: &Route, now: u64) {
    entry.seen = Some(now);
    match route {
        Route::Tcp(addr) => entry.peer = Some(addr.clone()),
        Route::Relay(url) => entry.relay = Some(url.to_string()),
    }
}

/// `dat://<hex>` of a key, for messages.
pub(crate) fn url_of(key: &IdentityKey) -> String {
    DatUrl::new(*key).base()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lobby(host: u8, peers: u32, max_peers: u32, last_update: u64, protected: bool) -> LiveLobby {
        LiveLobby {
            host: IdentityKey::from_bytes([host; 32]),
            host_name: format!("h{host}"),
            session: Session {
                name: "game".into(),
                url: format!("dat://{}", "00".repeat(32)),
                last_update,
                peers,
                max_peers,
                protected,
                heartbeat: Some(1000),
                ended: None,
            },
            route: Route::Tcp("127.0.0.1:1".into()),
        }
    }

    #[test]
    fn quick_picks_most_players_with_room_then_freshest_then_lowest_key() {
        let full = lobby(1, 4, 4, 100, false);
        let locked = lobby(2, 3, 8, 100, true);
        let two_old = lobby(3, 2, 8, 100, false);
        let two_new = lobby(4, 2, 8, 200, false);
        let one = lobby(5, 1, 8, 300, false);
        let all = [
            full.clone(),
            locked.clone(),
            two_old.clone(),
            two_new.clone(),
            one,
        ];
        assert_eq!(pick_quick(&all).unwrap().host.as_bytes(), &[4; 32]);
        let tie = [lobby(7, 2, 8, 200, false), two_new.clone()];
        assert_eq!(pick_quick(&tie).unwrap().host.as_bytes(), &[4; 32]);
        assert!(pick_quick(&[full, locked]).is_none());
        assert!(pick_quick(&[]).is_none());
    }
}
