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
    /// The user's own archive failed verification on open: a file changed since it was
    /// written (a flipped bit, an edited block, a damaged header slot). Nothing was written.
    #[error("archive damaged: {source}; run `dat-social check`")]
    Damaged {
        /// What [`Core::verify_all`] (or the open) found, naming the file.
        source: crate::hypercore::Error,
    },
}

/// What [`Home::check`] found for one core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckItem {
    /// `archive` for the user's own archive, `replica` for a friend's.
    pub kind: &'static str,
    /// The core's directory.
    pub path: PathBuf,
    /// The core's key (hex), when known.
    pub key: Option<String>,
    /// Its signed length in blocks (after a repair, the repaired length; 0 when unreadable).
    pub length: u64,
    /// The verdict.
    pub state: CheckState,
}

/// The verdict of [`Home::check`] on one core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckState {
    /// Every stored byte verifies against the signed tree.
    Ok,
    /// It fails verification (the reason); nothing was changed.
    Damaged(String),
    /// It failed (the first string) and was repaired (the second says how); it verifies now.
    Repaired(String, String),
    /// A damaged replica (the reason) was deleted; it is fetched again from the friend.
    Discarded(String),
}

impl CheckState {
    /// Whether the core is sound now (ok or repaired, or a replica discarded for refetching).
    pub fn is_sound(&self) -> bool {
        !matches!(self, CheckState::Damaged(_))
    }

    /// `ok`, `damaged`, `repaired` or `discarded`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CheckState::Ok => "ok",
            CheckState::Damaged(_) => "damaged",
            CheckState::Repaired(..) => "repaired",
            CheckState::Discarded(_) => "discarded",
        }
    }
}

/// Maps a core error met while opening or verifying the user's own archive: damage becomes
/// [`HomeError::Damaged`], anything else (I/O, a missing archive, another key) stays itself.
fn archive_error(e: crate::hypercore::Error) -> HomeError {
    match e {
        e @ crate::hypercore::Error::Corrupt { .. } => HomeError::Damaged { source: e },
        e => HomeError::Archive(ArchiveError::from(e)),
    }
}

/// Opens and fully verifies the own archive in `dir` (read-only, or writable with `key`): the
/// header, every block against the signed roots ([`Core::verify_all`]) and completeness.
///
/// A reader may race a running `host` committing a header slot (a read of the slot while it is
/// being written looks damaged): a read-only open that finds damage tries again, at most
/// [`READ_RETRIES`] times [`READ_RETRY_DELAY`] apart, before reporting it.
fn open_verified(dir: &Path, key: Option<&Identity>) -> Result<Core, HomeError> {
    let mut tries = 0;
    loop {
        match open_verified_once(dir, key) {
            Err(HomeError::Damaged { .. }) if key.is_none() && tries < READ_RETRIES => {
                tries += 1;
                std::thread::sleep(READ_RETRY_DELAY);
            }
            other => return other,
        }
    }
}

/// How many times a read-only open of the own archive that finds damage is tried again.
pub const READ_RETRIES: u32 = 2;
/// The pause before such a retry.
pub const READ_RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(25);

fn open_verified_once(dir: &Path, key: Option<&Identity>) -> Result<Core, HomeError> {
    let core = Core::open(dir, key.map(|i| i.signing_key().clone())).map_err(archive_error)?;
    core.verify_all().map_err(archive_error)?;
    if core.contiguous_length() < core.length() {
        return Err(archive_error(crate::hypercore::Error::Corrupt {
            path: dir.join("bitfield"),
            reason: format!(
                "block {} of {} is missing from your own archive",
                core.contiguous_length(),
                core.length()
            ),
        }));
    }
    Ok(core)
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
    /// archive; a stale archive left by such a crash (no key file) is replaced. All or nothing:
    /// when any step fails (e.g. a full disk) the new archive (and the data directory, if this
    /// created it and it is empty) is removed again, so a later `init` starts clean.
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
        let created_root = !self.root.exists();
        let written = (|| -> Result<(), HomeError> {
            let mut core =
                Core::create(&dir, identity.signing_key().clone()).map_err(ArchiveError::from)?;
            archive::initialize(&mut core, &profile)?;
            drop(core);
            identity.save_new(&key_path)?;
            Ok(())
        })();
        if let Err(e) = written {
            // Never leave half an identity: the next `init` must find a clean directory.
            if !matches!(e, HomeError::Identity(IdentityError::Exists(_))) {
                let _ = std::fs::remove_dir_all(&dir);
                if created_root {
                    let _ = std::fs::remove_dir(&self.root);
                }
            }
            return Err(e);
        }
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

    /// Opens the user's archive core for writing (the caller should hold [`Home::lock_archive`]),
    /// after verifying every stored byte against the signed tree (one read and hash of each
    /// block), so that damage is reported before anything is served or written on top of it.
    ///
    /// Errors: [`HomeError::Damaged`] (naming the file and what is wrong; this includes a damaged
    /// header slot while the files hold a newer signed state, which must not be written over:
    /// `dat-social check --repair` restores it), [`HomeError::Archive`] (missing, another key,
    /// I/O).
    pub fn open_archive(&self, identity: &Identity) -> Result<Core, HomeError> {
        open_verified(&self.archive_dir(), Some(identity))
    }

    /// The user's archive opened read-only and verified as [`Home::open_archive`] does, to read
    /// or serve it to others (e.g. offered to a friends-only host while joining). Never repairs
    /// or writes the core.
    ///
    /// Errors: [`HomeError::Damaged`]; [`HomeError::Archive`] when it can't be opened or is
    /// another key's.
    pub fn archive_reader(&self, identity: &Identity) -> Result<crate::net::SharedCore, HomeError> {
        let core = open_verified(&self.archive_dir(), None)?;
        if core.key() != identity.public_key() {
            return Err(ArchiveError::from(crate::hypercore::Error::WrongKey {
                expected: identity.url().key_hex(),
                found: core.key().to_hex(),
            })
            .into());
        }
        Ok(crate::net::SharedCore::new(core))
    }

    /// Verifies the user's archive and every replica under `replicas/` (every stored byte
    /// against its signed tree), and with `repair` mends what can be mended safely:
    /// - the own archive, under its write lock: a damaged header slot whose newer state the
    ///   files still hold is restored ([`Core::recover`]: the same tree signed again at the same
    ///   length); a damaged `tree` file is rebuilt from `data` and `index` when the rebuilt
    ///   roots equal the signed ones. Anything else is left as it is and reported: the archive
    ///   is never rolled back or rewritten into a different tree at a signed length (peers that
    ///   hold the signed state would see a fork).
    /// - a damaged replica is deleted (under the replicas lock); it is fetched again from the
    ///   friend.
    ///
    /// Errors: no identity ([`HomeError::Identity`]); [`HomeError::Busy`] when repairing while a
    /// `host` holds the archive; [`HomeError::Io`] listing `replicas/`. Damage itself is in
    /// the report, never an error.
    pub fn check(&self, repair: bool) -> Result<Vec<CheckItem>, HomeError> {
        let identity = self.identity()?;
        let _lock = if repair {
            Some(self.lock_archive()?)
        } else {
            None
        };
        let mut items = vec![self.check_archive(&identity, repair)];
        let replicas = self.root.join("replicas");
        let mut dirs = Vec::new();
        match std::fs::read_dir(&replicas) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry.map_err(|source| HomeError::Io {
                        path: replicas.clone(),
                        source,
                    })?;
                    if entry.path().is_dir() {
                        dirs.push(entry.path());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(HomeError::Io {
                    path: replicas,
                    source,
                })
            }
        }
        dirs.sort();
        let replicas_lock = match repair && !dirs.is_empty() {
            true => self.try_lock_file("replicas.lock")?,
            false => None,
        };
        for dir in dirs {
            let mut item = check_replica(&dir);
            if let (CheckState::Damaged(reason), true) = (&item.state, repair) {
                item.state = match (&replicas_lock, std::fs::remove_dir_all(&dir)) {
                    (None, _) => CheckState::Damaged(format!(
                        "{reason} (not deleted: another dat-social process is updating replicas)"
                    )),
                    (Some(_), Ok(())) => CheckState::Discarded(reason.clone()),
                    (Some(_), Err(e)) => {
                        CheckState::Damaged(format!("{reason} (could not delete it: {e})"))
                    }
                };
            }
            items.push(item);
        }
        Ok(items)
    }

    fn check_archive(&self, identity: &Identity, repair: bool) -> CheckItem {
        let dir = self.archive_dir();
        let mut item = CheckItem {
            kind: "archive",
            path: dir.clone(),
            key: Some(identity.public_key().to_hex()),
            length: 0,
            state: CheckState::Ok,
        };
        let verdict = |core: &Core| -> Result<(), String> {
            core.verify_all().map_err(|e| e.to_string())?;
            if core.contiguous_length() < core.length() {
                return Err(format!("block {} is missing", core.contiguous_length()));
            }
            archive::read_files(core).map_err(|e| e.to_string())?;
            Ok(())
        };
        let found = match Core::open(&dir, None) {
            Ok(core) => {
                item.length = core.length();
                if core.key() != identity.public_key() {
                    Err(format!("the archive is another key's ({})", core.key()))
                } else {
                    verdict(&core)
                }
            }
            Err(e) => Err(e.to_string()),
        };
        let Err(reason) = found else {
            return item;
        };
        item.state = CheckState::Damaged(reason.clone());
        if !repair {
            return item;
        }
        let sk = identity.signing_key();
        let mut how = Vec::new();
        let mut last_err = None;
        match Core::recover(&dir, sk.clone()) {
            Ok((_, Some(d))) => how.push(format!(
                "restored the newest signed state ({} blocks, not the {} of the surviving \
                 header slot) from the files",
                d.files_length, d.header_length
            )),
            Ok((_, None)) => {}
            Err(e) => last_err = Some(e),
        }
        let reopened = |item: &mut CheckItem| -> Result<(), String> {
            let core = Core::open(&dir, None).map_err(|e| e.to_string())?;
            item.length = core.length();
            verdict(&core)
        };
        let mut now = if how.is_empty() {
            Err(reason.clone())
        } else {
            reopened(&mut item)
        };
        if now.is_err() {
            match Core::rebuild_tree(&dir, sk) {
                Ok(true) => {
                    how.push(
                        "rebuilt the tree file from the blocks, which hash to the signed roots"
                            .into(),
                    );
                    now = reopened(&mut item);
                }
                Ok(false) => {}
                Err(e) => last_err = Some(e),
            }
        }
        item.state = match (now, how.is_empty()) {
            (Ok(()), _) => CheckState::Repaired(reason, how.join("; ")),
            (Err(still), _) => CheckState::Damaged(format!(
                "{still}; not repaired{}{}: what is lost can't be rebuilt from this disk, and \
                 the archive is never rolled back or rewritten at a signed length (friends \
                 holding it would see a fork); restore the data directory from a backup",
                match how.is_empty() {
                    true => String::new(),
                    false => format!(" (after: {})", how.join("; ")),
                },
                match last_err {
                    Some(e) => format!(" ({e})"),
                    None => String::new(),
                }
            )),
        };
        item
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

/// Verifies one replica directory (its name must be the key it holds).
fn check_replica(dir: &Path) -> CheckItem {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut item = CheckItem {
        kind: "replica",
        path: dir.to_owned(),
        key: None,
        length: 0,
        state: CheckState::Ok,
    };
    // A replica directory is named by the friend's identity key.
    let key = match crate::keys::decode_hex32(&name) {
        Ok(k) => crate::keys::IdentityKey::from_bytes(k),
        Err(_) => {
            item.state =
                CheckState::Damaged("not a replica directory (its name is not a key)".into());
            return item;
        }
    };
    item.key = Some(name);
    if !dir.join("header").exists() {
        return item; // created, nothing stored yet
    }
    let verdict = match Core::open(dir, None) {
        Err(crate::hypercore::Error::NotFound(_)) => return item, // nothing stored yet
        opened => opened,
    };
    let verdict = verdict.and_then(|core| {
        item.length = core.length();
        if core.key() != key {
            return Err(crate::hypercore::Error::WrongKey {
                expected: key.to_hex(),
                found: core.key().to_hex(),
            });
        }
        core.verify_all()
    });
    if let Err(e) = verdict {
        item.state = CheckState::Damaged(e.to_string());
    }
    item
}
