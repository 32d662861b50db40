//! A friend's archive kept on disk: `<data dir>/replicas/<64 hex key>/`, a read-only hypercore
//! replica whose every block was verified against the friend's signature when it arrived.
//!
//! Opening checks all stored bytes again ([`Core::verify_all`]): a replica changed on disk
//! (a flipped byte, a truncated file, another core's files) is never read as the friend's; it is
//! deleted and fetched again from the friend.

use std::path::{Path, PathBuf};

use tokio::time::Instant;

use crate::archive::{self, Files};
use crate::hypercore::Core;
use crate::keys::IdentityKey;
use crate::net::{Connection, ConnectionEvent, SharedCore};

use super::FriendsError;

/// Largest friend archive kept, in bytes of blocks (64 MiB: an archive is two small JSON files
/// rewritten on every heartbeat, about 100 KiB a day at the default 300 s heartbeat).
pub const MAX_REPLICA_BYTES: u64 = 64 << 20;

/// Longest wait, after a replica caught up, for the peer's answer to the fork check
/// (`net::replication`) when the peer holds no more than the replica: one round trip with an
/// honest peer. Without an answer by then the sync succeeds (no evidence either way).
pub const FORK_CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A friend's archive replica, shared by every connection that updates it.
#[derive(Clone, Debug)]
pub struct Replica {
    core: SharedCore,
    dir: PathBuf,
}

/// What [`Replica::open`] found on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenState {
    /// Nothing stored yet.
    Empty,
    /// A verified replica of this many blocks.
    Verified(u64),
    /// The stored replica failed verification (the reason): it was deleted and starts empty.
    Discarded(String),
}

impl Replica {
    /// The replica directory of `key` under data directory `root`.
    pub fn dir(root: &Path, key: &IdentityKey) -> PathBuf {
        root.join("replicas").join(hex::encode(key))
    }

    /// Opens (creating if needed) the replica of `key` under `root`, checking every stored byte
    /// when `verify` (else only what [`Core::open`] checks: header signature, roots, file
    /// lengths). A replica that fails is deleted and reopened empty, and said so in the
    /// [`OpenState`].
    ///
    /// Errors: [`FriendsError::Replica`] when the directory can't be created or removed.
    pub fn open(
        root: &Path,
        key: IdentityKey,
        verify: bool,
    ) -> Result<(Replica, OpenState), FriendsError> {
        let dir = Self::dir(root, &key);
        let checked = Core::open_replica(&dir, key.into()).and_then(|core| {
            if verify {
                core.verify_all()?;
            }
            Ok(core)
        });
        let (core, state) = match checked {
            Ok(core) if core.length() == 0 => (core, OpenState::Empty),
            Ok(core) => {
                let length = core.length();
                (core, OpenState::Verified(length))
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), "discarding a damaged replica: {e}");
                std::fs::remove_dir_all(&dir).map_err(|io| replica_error(&dir, io))?;
                let core =
                    Core::open_replica(&dir, key.into()).map_err(|e| replica_error(&dir, e))?;
                (core, OpenState::Discarded(e.to_string()))
            }
        };
        Ok((
            Replica {
                core: SharedCore::new(core),
                dir,
            },
            state,
        ))
    }

    /// A replica of `key` held in memory only (when another process owns the replicas on disk).
    pub fn in_memory(key: IdentityKey) -> Replica {
        Replica {
            core: SharedCore::new(Core::in_memory_replica(key.into())),
            dir: PathBuf::new(),
        }
    }

    /// The replica's core, to hand to [`Connection::replicate`].
    pub fn core(&self) -> &SharedCore {
        &self.core
    }

    /// Its directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The files as of the replica's length, or `None` while it is empty or incomplete.
    ///
    /// Errors: [`FriendsError::Archive`] when the friend's archive breaks the format or schemas
    /// (a signed but invalid archive: shown as an error, not as data).
    pub fn files(&self) -> Result<Option<Files>, FriendsError> {
        let status = self.core.status();
        if status.length == 0 || status.contiguous_length < status.length {
            return Ok(None);
        }
        Ok(Some(self.core.with_core(|c| archive::read_files(c))?))
    }

    /// Replicates the replica on `conn` and waits until it holds everything the remote has
    /// (the remote's announced length, every block), then makes it durable.
    ///
    /// `events` must be `conn`'s event stream ([`Connection::take_events`]): the remote's length
    /// arrives there. Then waits (at most [`FORK_CHECK_WAIT`]) for the peer's answer to the fork
    /// check, so that a peer on another signed tree of the same length is reported too.
    /// Errors: [`FriendsError::Timeout`] at `deadline`, [`FriendsError::Net`] when the
    /// connection fails, [`FriendsError::Remote`] holding [`crate::hypercore::Error::Conflict`]
    /// when the friend's archive forked.
    pub async fn sync(
        &self,
        conn: &Connection,
        events: &mut tokio::sync::mpsc::UnboundedReceiver<ConnectionEvent>,
        deadline: Instant,
    ) -> Result<(), FriendsError> {
        let checks = self.core.status().fork_checks;
        conn.replicate(self.core.clone()).await?;
        let dk = self.core.discovery_key();
        let remote_length = loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_) => {
                    return Err(FriendsError::Timeout(IdentityKey::from_core(
                        self.core.key(),
                    )))
                }
                Ok(None) => return Err(crate::net::NetError::Closed.into()),
                Ok(Some(ConnectionEvent::RemoteLength {
                    discovery_key,
                    length,
                })) if discovery_key == *dk.as_bytes() => break length,
                Ok(Some(_)) => {}
            }
        };
        self.wait_for(remote_length, deadline).await?;
        if remote_length > 0 {
            // A peer on another signed tree of the same length shows nothing wrong until the
            // fork check is answered.
            let until = deadline.min(Instant::now() + FORK_CHECK_WAIT);
            let mut status = self.core.subscribe();
            loop {
                let s = *status.borrow_and_update();
                if let Some(length) = s.forked {
                    return Err(forked(length));
                }
                if s.fork_checks > checks {
                    break;
                }
                match tokio::time::timeout_at(until, status.changed()).await {
                    Ok(Ok(())) => {}
                    _ => break,
                }
            }
        }
        self.flush()
    }

    /// Waits until the replica has all of `0..length`.
    /// Errors: [`FriendsError::Timeout`] at `deadline`; [`FriendsError::TooLarge`] as soon as
    /// the archive is over [`MAX_REPLICA_BYTES`]; [`FriendsError::Remote`] holding
    /// [`crate::hypercore::Error::Conflict`] as soon as a peer proves a signed tree that
    /// conflicts with the replica's (the friend's archive forked: the verified copy is kept).
    pub async fn wait_for(&self, length: u64, deadline: Instant) -> Result<(), FriendsError> {
        let mut status = self.core.subscribe();
        loop {
            let s = *status.borrow_and_update();
            if let Some(length) = s.forked {
                return Err(forked(length));
            }
            self.check_size()?;
            if s.length >= length && s.contiguous_length >= s.length {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, status.changed()).await {
                Ok(Ok(())) => {}
                _ => {
                    return Err(FriendsError::Timeout(IdentityKey::from_core(
                        self.core.key(),
                    )))
                }
            }
        }
    }

    /// Errors with [`FriendsError::TooLarge`] when the friend's signed archive is over
    /// [`MAX_REPLICA_BYTES`]: a friend can't make us store without bound (the caller drops the
    /// connection; what arrived past the cap stays at most one batch of blocks).
    pub fn check_size(&self) -> Result<(), FriendsError> {
        let bytes = self.core.with_core(|c| c.byte_length());
        if bytes > MAX_REPLICA_BYTES {
            return Err(FriendsError::TooLarge {
                key: IdentityKey::from_core(self.core.key()),
                bytes,
            });
        }
        Ok(())
    }

    /// fsyncs the replica's files (nothing for an in-memory replica).
    pub fn flush(&self) -> Result<(), FriendsError> {
        self.core
            .with_core(|c| c.flush())
            .map_err(|e| replica_error(&self.dir, e))
    }
}

fn replica_error(dir: &Path, e: impl std::error::Error + Send + Sync + 'static) -> FriendsError {
    FriendsError::Replica {
        path: dir.to_owned(),
        source: Box::new(e),
    }
}

/// The error for a friend's archive that forked at `length` (two signed trees at one length).
fn forked(length: u64) -> FriendsError {
    crate::remote::RemoteError::Archive(crate::hypercore::Error::Conflict { length }.into()).into()
}
