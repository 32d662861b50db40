//! Friends: whom a user follows, replicas of their archives, and the lobbies they host.
//!
//! - The friend list is the public `friends` array of the user's `profile.json` (`dat://<hex>`
//!   strings, the seeds' format); [`add`] and [`remove`] rewrite it in the archive.
//! - Local notes (`local`: aliases, the addresses a friend was last reached at) stay in
//!   `friends.json` and are never published.
//! - Every friend's archive is kept as a verified replica on disk (`replica`), refreshed by
//!   [`refresh`] (once) or live by a [`Watcher`], and readable offline.
//! - A friend's lobby is *live* when its `session.json` is not ended, its `last_update` is no
//!   older than twice its heartbeat ([`crate::schema::Session::is_live`]), and the friend is
//!   reachable now.

pub(crate) mod local;
pub(crate) mod replica;
pub(crate) mod status;
mod view;
pub(crate) mod watch;

use std::path::PathBuf;

use crate::archive::ArchiveError;
use crate::home::{Home, HomeError};
use crate::identity::{DatUrl, Identity};
use crate::keys::IdentityKey;
use crate::schema::{Profile, MAX_FRIENDS};

pub use crate::discovery::Hints;
pub use local::{FriendNotes, LocalFriends, LocalStore, MAX_ALIAS_CHARS};
pub use replica::{OpenState, Replica, FORK_CHECK_WAIT, MAX_REPLICA_BYTES};
pub use status::{
    offline_files, pick_quick, read_offline, refresh, FriendStatus, LiveLobby, RefreshOptions,
};
pub use watch::{join_url, DownReason, FriendEvent, Watcher, WatcherOptions};

/// Errors of the friends layer.
#[derive(Debug, thiserror::Error)]
pub enum FriendsError {
    /// The data directory, identity or own archive failed.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// An archive (own or a friend's) failed to read or write.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The URL is not a `dat://` URL.
    #[error(transparent)]
    Url(#[from] crate::identity::IdentityError),
    /// `friends.json` could not be read or written.
    #[error("{path}: {source}")]
    Local {
        /// The file.
        path: PathBuf,
        /// What went wrong: the IO or JSON error, or a description (too large, an unknown
        /// version).
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A replica directory could not be created, verified or removed.
    #[error("replica {path}: {source}")]
    Replica {
        /// The replica directory.
        path: PathBuf,
        /// What went wrong: the IO error, or the core's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The name, alias or URL given matches no friend.
    #[error("{0:?} is not one of your friends (see `dat-social friends list`)")]
    NotFriend(String),
    /// The name matches several friends.
    #[error("{0:?} names several friends: use an alias or the dat:// URL")]
    Ambiguous(String),
    /// Adding a friend who is already on the list.
    #[error("{0} is already your friend")]
    AlreadyFriend(String),
    /// Adding oneself.
    #[error("that is your own URL")]
    Yourself,
    /// The list already has [`MAX_FRIENDS`] entries.
    #[error("you follow {MAX_FRIENDS} users, the most profile.json allows")]
    TooMany,
    /// An alias that is empty, too long, looks like a URL, or is taken.
    #[error("invalid alias {alias:?}: {reason}")]
    BadAlias {
        /// The alias given.
        alias: String,
        /// Why it can't be used.
        reason: String,
    },
    /// A friend's archive is larger than [`MAX_REPLICA_BYTES`].
    #[error("the archive of dat://{} is {bytes} bytes, over the limit of {}", hex::encode(.key), replica::MAX_REPLICA_BYTES)]
    TooLarge {
        /// The friend's key.
        key: IdentityKey,
        /// Its signed byte length.
        bytes: u64,
    },
    /// A friend's archive did not arrive before the deadline.
    #[error("timed out waiting for the archive of dat://{}", hex::encode(.0))]
    Timeout(IdentityKey),
    /// The connection to a friend failed.
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    /// Reaching a friend failed.
    #[error(transparent)]
    Remote(#[from] crate::remote::RemoteError),
}

/// One entry of the friend list, with its local notes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Friend {
    /// The friend's archive (= identity) key.
    pub key: IdentityKey,
    /// The local alias, if one was given.
    pub alias: Option<String>,
    /// Local notes (hints, last seen).
    pub notes: FriendNotes,
}

impl Friend {
    /// `dat://<hex>` without hints.
    pub fn url(&self) -> String {
        DatUrl::new(self.key).base()
    }
}

/// The user's friend list: `profile.json`'s `friends`, in order, with the local notes.
///
/// Errors: the identity or archive can't be read; `friends.json` is malformed.
pub fn list(home: &Home, identity: &Identity) -> Result<Vec<Friend>, FriendsError> {
    let profile = own_profile(home, identity)?;
    let notes = LocalStore::new(home.root()).load()?;
    Ok(profile
        .friends
        .iter()
        .filter_map(|u| u.parse::<DatUrl>().ok())
        .map(|u| {
            let n = notes.get(&u.identity()).cloned().unwrap_or_default();
            Friend {
                key: u.identity(),
                alias: n.alias.clone(),
                notes: n,
            }
        })
        .collect())
}

/// Follows `url`: appends `dat://<hex>` to `profile.json`'s `friends` and keeps the URL's
/// `peer=`/`relay=` hints and `alias` in the local notes. Does not contact the friend.
///
/// Errors: [`FriendsError::Url`] when the key can't be anyone's ([`DatUrl::check_key`]: all
/// zeros, not an ed25519 point, or of small order), [`FriendsError::Yourself`], [`FriendsError::AlreadyFriend`], [`FriendsError::TooMany`],
/// [`FriendsError::BadAlias`] (empty, over [`MAX_ALIAS_CHARS`] characters, containing
/// `://` or control characters, or another friend's), [`HomeError::Busy`] while a `host` holds
/// the archive.
pub fn add(
    home: &Home,
    identity: &Identity,
    url: &DatUrl,
    alias: Option<&str>,
) -> Result<Friend, FriendsError> {
    url.check_key()?;
    if url.identity() == identity.public_key() {
        return Err(FriendsError::Yourself);
    }
    let store = LocalStore::new(home.root());
    if let Some(alias) = alias {
        check_alias(alias, &store.load()?, &url.identity())?;
    }
    let mut notes = FriendNotes::default();
    home.update_profile(identity, |profile| {
        let base = url.base();
        if profile.friends.contains(&base) {
            return Err(FriendsError::AlreadyFriend(base));
        }
        if profile.friends.len() >= MAX_FRIENDS {
            return Err(FriendsError::TooMany);
        }
        profile.friends.push(base);
        notes = store.update(|n| {
            let entry = n.friends.entry(url.key_hex()).or_default();
            if alias.is_some() {
                entry.alias = alias.map(str::to_string);
            }
            entry.peer = url.peer.clone().or(entry.peer.take());
            entry.relay = url.relay.clone().or(entry.relay.take());
            Ok(entry.clone())
        })?;
        Ok(())
    })?;
    Ok(Friend {
        key: url.identity(),
        alias: notes.alias.clone(),
        notes,
    })
}

/// Stops following the friend named by `which` (see [`resolve`]): removes them from
/// `profile.json`, and their local notes and replica.
///
/// Errors: as [`resolve`]; [`HomeError::Busy`] while a `host` holds the archive.
pub fn remove(home: &Home, identity: &Identity, which: &str) -> Result<Friend, FriendsError> {
    let friend = resolve(home, identity, which)?;
    let url = friend.url();
    home.update_profile(identity, |profile| {
        profile.friends.retain(|f| *f != url);
        Ok::<(), FriendsError>(())
    })?;
    LocalStore::new(home.root()).update(|n| {
        n.friends.remove(&hex::encode(friend.key));
        Ok(())
    })?;
    let dir = Replica::dir(home.root(), &friend.key);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| FriendsError::Replica {
            path: dir,
            source: Box::new(e),
        })?;
    }
    Ok(friend)
}

/// Finds a friend by local alias, `dat://` URL or 64-hex key, or the name in their last
/// verified profile.
///
/// Errors: [`FriendsError::NotFriend`], [`FriendsError::Ambiguous`] (two friends share the name).
pub fn resolve(home: &Home, identity: &Identity, which: &str) -> Result<Friend, FriendsError> {
    let friends = list(home, identity)?;
    // A `dat://` URL or 64 hex.
    if let Ok(key) = which.parse::<IdentityKey>() {
        return friends
            .into_iter()
            .find(|f| f.key == key)
            .ok_or_else(|| FriendsError::NotFriend(which.to_string()));
    }
    if let Some(f) = friends.iter().find(|f| f.alias.as_deref() == Some(which)) {
        return Ok(f.clone());
    }
    let named: Vec<&Friend> = friends
        .iter()
        .filter(|f| {
            status::offline_files(home, &f.key)
                .and_then(|files| files.profile)
                .is_some_and(|p| p.name == which)
        })
        .collect();
    match named.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(FriendsError::NotFriend(which.to_string())),
        _ => Err(FriendsError::Ambiguous(which.to_string())),
    }
}

fn own_profile(home: &Home, identity: &Identity) -> Result<Profile, FriendsError> {
    Ok(home
        .files(identity)?
        .profile
        .ok_or(ArchiveError::NoProfile)?)
}

fn check_alias(alias: &str, notes: &LocalFriends, key: &IdentityKey) -> Result<(), FriendsError> {
    let bad = |reason: &str| FriendsError::BadAlias {
        alias: alias.to_string(),
        reason: reason.to_string(),
    };
    let chars = alias.chars().count();
    if chars == 0 || chars > local::MAX_ALIAS_CHARS {
        return Err(bad(&format!(
            "must be 1 to {} characters",
            local::MAX_ALIAS_CHARS
        )));
    }
    if alias.contains("://") || alias.chars().any(char::is_control) {
        return Err(bad("must not contain :// or control characters"));
    }
    if crate::identity::parse_key_hex(alias).is_ok() {
        return Err(bad("must not look like a key"));
    }
    match notes.by_alias(alias) {
        Some(other) if other != *key => Err(bad("another friend has it")),
        _ => Ok(()),
    }
}
