//! What a user knows about their friends that stays on their machine: aliases, the address hints
//! a friend was last reached at, and when. Stored as `friends.json` in the data directory:
//!
//! ```json
//! {"version":1,"friends":{"<64 hex key>":{"alias":"bob","peer":"10.0.0.2:41234",
//!   "relay":"ws://relay.example:49443","seen":1763750000000,"changed":1763740000000}}}
//! ```
//!
//! The friend list itself is `profile.json`'s `friends` array (public); this file only annotates
//! it. Writes replace the file atomically (temporary file, fsync, rename), under an exclusive
//! lock on `friends.lock` so that two processes (a `sessions --watch` and a `friends add`) never
//! lose each other's changes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::FriendsError;
use crate::keys::IdentityKey;

/// Longest alias, in characters.
pub const MAX_ALIAS_CHARS: usize = 64;

/// Largest `friends.json` read, in bytes: far above what [`crate::schema::MAX_FRIENDS`] entries
/// take, so a damaged or hostile file can't exhaust memory.
const MAX_LOCAL_BYTES: u64 = 16 << 20;

/// Local notes on one friend.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FriendNotes {
    /// The local name chosen with `friends add --alias` (never published).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// The TCP address (`host:port`) the friend was last reached at, or the invite's `peer=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The relay URL the friend was last reached through, or the invite's `relay=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<String>,
    /// When the friend was last reached, in ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen: Option<u64>,
    /// When their archive was last seen to grow, in ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<u64>,
    /// The length of their archive (blocks) when it last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
}

/// The whole `friends.json`: notes by friend key (64 lowercase hex).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalFriends {
    /// Format version, 1.
    pub version: u32,
    /// Notes per friend.
    pub friends: BTreeMap<String, FriendNotes>,
}

impl FriendNotes {
    /// The address hints for [`crate::discovery::Discovery::routes`].
    pub fn hints(&self) -> crate::discovery::Hints {
        crate::discovery::Hints {
            peer: self.peer.clone(),
            relay: self.relay.clone(),
        }
    }
}

impl LocalFriends {
    /// The notes on `key`, if any.
    pub fn get(&self, key: &IdentityKey) -> Option<&FriendNotes> {
        self.friends.get(&key.to_hex())
    }

    /// The key whose alias is `alias` (exact match).
    pub fn by_alias(&self, alias: &str) -> Option<IdentityKey> {
        self.friends
            .iter()
            .find(|(_, n)| n.alias.as_deref() == Some(alias))
            .and_then(|(k, _)| crate::keys::decode_hex32(k).ok())
            .map(IdentityKey::from_bytes)
    }
}

/// `friends.json` in a data directory, with its lock.
#[derive(Clone, Debug)]
pub struct LocalStore {
    path: PathBuf,
    lock: PathBuf,
}

impl LocalStore {
    /// The store in data directory `root`.
    pub fn new(root: &Path) -> Self {
        LocalStore {
            path: root.join("friends.json"),
            lock: root.join("friends.lock"),
        }
    }

    /// Reads the notes; a missing file is empty notes.
    ///
    /// Errors: [`FriendsError::Local`] for an unreadable, oversized or malformed file (it is left
    /// as it is, for the user to inspect).
    pub fn load(&self) -> Result<LocalFriends, FriendsError> {
        let local = |source: Box<dyn std::error::Error + Send + Sync>| FriendsError::Local {
            path: self.path.clone(),
            source,
        };
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(LocalFriends {
                    version: 1,
                    ..LocalFriends::default()
                })
            }
            Err(e) => return Err(local(e.into())),
        };
        let size = file.metadata().map_err(|e| local(e.into()))?.len();
        if size > MAX_LOCAL_BYTES {
            return Err(local(
                format!("{size} bytes is over the limit of {MAX_LOCAL_BYTES}").into(),
            ));
        }
        let notes: LocalFriends =
            serde_json::from_reader(std::io::BufReader::new(file)).map_err(|e| local(e.into()))?;
        if notes.version != 1 {
            return Err(local(format!("unknown version {}", notes.version).into()));
        }
        Ok(notes)
    }

    /// Reads the notes, lets `change` edit them, and writes them back atomically, all under the
    /// lock. Returns what `change` returned.
    ///
    /// Errors: as [`LocalStore::load`]; [`FriendsError::Local`] when writing fails (the old file
    /// stays whole); `change`'s own error.
    pub fn update<T>(
        &self,
        change: impl FnOnce(&mut LocalFriends) -> Result<T, FriendsError>,
    ) -> Result<T, FriendsError> {
        let _lock = self.lock()?;
        let mut notes = self.load()?;
        let out = change(&mut notes)?;
        self.write(&notes)?;
        Ok(out)
    }

    fn lock(&self) -> Result<File, FriendsError> {
        let io = |e: std::io::Error| FriendsError::Local {
            path: self.lock.clone(),
            source: Box::new(e),
        };
        if let Some(dir) = self.lock.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .map_err(io)?;
        file.lock().map_err(io)?;
        Ok(file)
    }

    fn write(&self, notes: &LocalFriends) -> Result<(), FriendsError> {
        let io = |e: std::io::Error| FriendsError::Local {
            path: self.path.clone(),
            source: Box::new(e),
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        let bytes = serde_json::to_vec_pretty(notes).expect("notes serialize");
        tmp.write_all(&bytes).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(&self.path).map_err(|e| io(e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_round_trip_and_updates_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        assert!(store.load().unwrap().friends.is_empty());
        let key = IdentityKey::from_bytes([7u8; 32]);
        store
            .update(|n| {
                n.friends.entry(hex::encode(key)).or_default().alias = Some("bob".into());
                Ok(())
            })
            .unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.by_alias("bob"), Some(key));
        assert_eq!(loaded.get(&key).unwrap().alias.as_deref(), Some("bob"));
    }

    #[test]
    fn a_malformed_file_is_an_error_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        std::fs::write(
            dir.path().join("friends.json"),
            b"{\"version\":1,\"friends\":",
        )
        .unwrap();
        let err = store.load().unwrap_err();
        assert!(err.to_string().contains("friends.json"), "{err}");
        // The parser's error is kept, not only its text.
        let source = std::error::Error::source(&err).expect("a source");
        let json = source.downcast_ref::<serde_json::Error>();
        assert!(json.is_some_and(|e| e.is_eof()), "{source:?}");
        assert!(store.update(|_| Ok(())).is_err());
        assert_eq!(
            std::fs::read(dir.path().join("friends.json")).unwrap(),
            b"{\"version\":1,\"friends\":"
        );
    }
}
