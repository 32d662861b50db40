//! The data directory of one user: identity key, archive core, and replicas.
//!
//! ```text
//! <data dir>/
//!   identity.key     ed25519 key file, mode 0600 (see [`crate::identity`])
//!   archive/         the user's archive core (key = identity public key)
//!   archive.lock     held while a process writes the archive (host, profile set)
//!   friends.json     local notes on friends: aliases, last addresses (see crate::friends)
//!   replicas/<hex>/  verified replicas of friends' archives
//!   replicas.lock    held by the process that updates the replicas
//! ```
//!
//! The default data directory is the platform's data directory (e.g. `~/.local/share/dat-social`),
//! overridden by `DAT_SOCIAL_HOME` or the CLI's `--data-dir`.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::archive::{self, ArchiveError, Files};
use crate::hypercore::Core;
use crate::identity::{Identity, IdentityError};
use crate::schema::{now_ms, Profile};

/// Errors of the data directory.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// Creating, reading or locking a path failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The identity key file is missing, corrupt, or (on init) already there.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The archive could not be opened or read.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// Another process holds the archive (e.g. a running `dat-social host`).
    #[error("the archive in {0} is in use by another dat-social process (is `host` running?)")]
    Busy(PathBuf),
}

/// One user's data directory.
#[derive(Clone, Debug)]
pub struct Home {
    root: PathBuf,
}

/// Exclusive write access to a user's archive; released on drop.
pub struct ArchiveLock {
    _file: File,
}

impl Home {
    /// The data directory at `root` (not created until needed).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Home { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `identity.key`.
    pub fn identity_path(&self) -> PathBuf {
        self.root.join("identity.key")
    }

    /// `archive/`.
    pub fn archive_dir(&self) -> PathBuf {
        self.root.join("archive")
    }

    /// Creates a new identity and its archive holding `profile.json` (`name`, `created` = now,
    /// no friends).
    ///
    /// Never overwrites: errors with [`IdentityError::Exists`] if an identity is there. The
    /// archive is written before the key file appears, so a crash leaves no identity without an
    /// archive; a stale archive left by such a crash (no key file) is replaced.
    pub fn init(&self, name: &str) -> Result<(Identity, Profile), HomeError> {
        let key_path = self.identity_path();
        if key_path.exists() {
            return Err(IdentityError::Exists(key_path).into());
        }
        let profile = Profile {
            name: name.to_string(),
            created: now_ms(),
            friends: Vec::new(),
        };
        profile.validate().map_err(ArchiveError::from)?;
        let identity = Identity::generate();
        let dir = self.archive_dir();
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|source| HomeError::Io {
                path: dir.clone(),
                source,
            })?;
        }
        let mut core =
            Core::create(&dir, identity.signing_key().clone()).map_err(ArchiveError::from)?;
        archive::initialize(&mut core, &profile)?;
        drop(core);
        identity.save_new(&key_path)?;
        Ok((identity, profile))
    }

    /// Loads the identity. Errors: [`IdentityError::Missing`] / [`IdentityError::Corrupt`].
    pub fn identity(&self) -> Result<Identity, HomeError> {
        Ok(Identity::load(&self.identity_path())?)
    }

    /// Takes the archive's write lock, without waiting. Errors: [`HomeError::Busy`].
    pub fn lock_archive(&self) -> Result<ArchiveLock, HomeError> {
        match self.try_lock_file("archive.lock")? {
            Some(file) => Ok(ArchiveLock { _file: file }),
            None => Err(HomeError::Busy(self.root.clone())),
        }
    }

    /// Takes an exclusive lock on the lock file `name` in the data directory (created if
    /// missing), without waiting: `Ok(None)` when another process holds it. The lock lasts as
    /// long as the returned file is open.
    ///
    /// Errors: [`HomeError::Io`] when the directory or file can't be created or locked.
    pub fn try_lock_file(&self, name: &str) -> Result<Option<File>, HomeError> {
        let path = self.root.join(name);
        let io = |source| HomeError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.root).map_err(io)?;
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }

    /// Rewrites `profile.json`: takes the archive's write lock, reads the current profile,
    /// lets `change` edit it, and appends the result (validated). Returns the new profile.
    ///
    /// Errors: [`HomeError::Busy`] while another process (a `host`) holds the archive;
    /// [`HomeError::Archive`] when there is no profile or the new one breaks the schema;
    /// `change`'s own error, in which case nothing is written.
    pub fn update_profile<E: From<HomeError>>(
        &self,
        identity: &Identity,
        change: impl FnOnce(&mut Profile) -> Result<(), E>,
    ) -> Result<Profile, E> {
        let _lock = self.lock_archive()?;
        let mut core = self.open_archive(identity)?;
        let mut profile = archive::read_files(&core)
            .map_err(HomeError::from)?
            .profile
            .ok_or(HomeError::Archive(ArchiveError::NoProfile))?;
        change(&mut profile)?;
        archive::put_profile(&mut core, &profile).map_err(HomeError::from)?;
        Ok(profile)
    }

    /// Opens the user's archive core for writing (the caller should hold [`Home::lock_archive`]).
    pub fn open_archive(&self, identity: &Identity) -> Result<Core, HomeError> {
        Ok(
            Core::open(&self.archive_dir(), Some(identity.signing_key().clone()))
                .map_err(ArchiveError::from)?,
        )
    }

    /// The user's archive opened read-only, to serve it to others (e.g. offered to a
    /// friends-only host while joining). Never repairs or writes the core.
    ///
    /// Errors: [`HomeError::Archive`] when it can't be opened or is another key's.
    pub fn archive_reader(&self, identity: &Identity) -> Result<crate::net::SharedCore, HomeError> {
        let core = Core::open(&self.archive_dir(), None).map_err(ArchiveError::from)?;
        if core.key() != identity.public_key() {
            return Err(ArchiveError::from(crate::hypercore::Error::WrongKey {
                expected: identity.url().key_hex(),
                found: hex::encode(core.key()),
            })
            .into());
        }
        Ok(crate::net::SharedCore::new(core))
    }

    /// Reads the user's current files from their archive.
    ///
    /// Opens the core read-only, never repairing it: a running `host` may be appending, and a
    /// writer's open would cut off the bytes of its append in progress.
    pub fn files(&self, identity: &Identity) -> Result<Files, HomeError> {
        let core = self.archive_reader(identity)?;
        Ok(core.with_core(|c| archive::read_files(c))?)
    }
}
