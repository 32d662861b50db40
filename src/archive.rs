//! The user's archive: a hypercore, keyed by the identity key, holding `profile.json` and
//! `session.json`.
//!
//! Layout (see `docs/ARCHIVE.md`): every block is one UTF-8 JSON object.
//! - block 0: `{"type":"header","protocol":"dat-social/archive","version":1}`
//! - a write: `{"type":"put","path":"profile.json","value":"<the file's text>"}`
//! - a removal: `{"type":"del","path":"session.json"}`
//!
//! A file's current content is the value of the last `put` of its path not followed by a `del`.
//! Each write is one block, appended and signed as a unit by the core, so a crash leaves either
//! the old file or the new one, never half of it.

use serde::{Deserialize, Serialize};

use crate::hypercore::{self, Core};
use crate::schema::{Profile, SchemaError, Session, MAX_FILE_BYTES};

/// `profile.json`.
pub const PROFILE: &str = "profile.json";
/// `session.json`.
pub const SESSION: &str = "session.json";
/// The `protocol` value of an archive's header block.
pub const PROTOCOL: &str = "dat-social/archive";

/// Errors of the archive.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The core underneath failed (I/O, corruption, a bad signature).
    #[error(transparent)]
    Core(#[from] hypercore::Error),
    /// Block 0 is not the header, a header is not at block 0, or a block is too large.
    #[error("block {index} of the archive is not a dat-social archive entry: {reason}")]
    BadEntry {
        /// The block's index.
        index: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A block is not an archive entry's JSON (bad JSON, an unknown type); serde's error is the
    /// source.
    #[error("block {index} of the archive is not a dat-social archive entry: {source}")]
    BadJson {
        /// The block's index.
        index: u64,
        /// Why it does not parse.
        source: serde_json::Error,
    },
    /// A file in the archive breaks its schema.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// The archive has no `profile.json` yet (a replica that has not downloaded it, or a core
    /// that is not an archive).
    #[error("the archive has no profile.json")]
    NoProfile,
    /// A block the reader needs is not downloaded yet.
    #[error("block {0} of the archive is not downloaded")]
    Missing(u64),
}

/// One block of an archive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Entry {
    /// Block 0: what this core is.
    Header {
        /// Always [`PROTOCOL`].
        protocol: String,
        /// Layout version, 1.
        version: u32,
    },
    /// A file's new content.
    Put {
        /// The file's name, e.g. `profile.json`.
        path: String,
        /// Its full text.
        value: String,
    },
    /// A file's removal.
    Del {
        /// The file's name.
        path: String,
    },
}

impl Entry {
    /// The header block of layout version 1.
    pub fn header() -> Self {
        Entry::Header {
            protocol: PROTOCOL.to_string(),
            version: 1,
        }
    }

    /// The block's bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("entries serialize")
    }

    /// Parses block `index`. Errors: [`ArchiveError::BadJson`], [`ArchiveError::BadEntry`].
    pub fn decode(index: u64, block: &[u8]) -> Result<Self, ArchiveError> {
        let bad = |reason: String| ArchiveError::BadEntry { index, reason };
        if block.len() > MAX_FILE_BYTES + 1024 {
            return Err(bad(format!(
                "{} bytes is larger than the limit of {}",
                block.len(),
                MAX_FILE_BYTES + 1024
            )));
        }
        let entry: Entry = serde_json::from_slice(block)
            .map_err(|source| ArchiveError::BadJson { index, source })?;
        match (&entry, index) {
            (Entry::Header { protocol, .. }, 0) if protocol == PROTOCOL => Ok(entry),
            (Entry::Header { .. }, 0) => Err(bad("header names another protocol".into())),
            (_, 0) => Err(bad("block 0 must be the header".into())),
            (Entry::Header { .. }, _) => Err(bad("a header after block 0".into())),
            _ => Ok(entry),
        }
    }
}

/// The files of an archive at one length.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Files {
    /// The core length these files were read at.
    pub length: u64,
    /// `profile.json`, if written.
    pub profile: Option<Profile>,
    /// `session.json`, if present (also while ended: see [`Session::ended`]).
    pub session: Option<Session>,
}

/// Reads the current `profile.json` and `session.json` of an archive core, scanning back from its
/// last block. Errors: a missing block ([`ArchiveError::Missing`]), a bad entry, a file that
/// breaks its schema.
pub fn read_files(core: &Core) -> Result<Files, ArchiveError> {
    let length = core.length();
    let mut files = Files {
        length,
        ..Files::default()
    };
    let (mut profile_done, mut session_done) = (false, false);
    for index in (0..length).rev() {
        if profile_done && session_done {
            break;
        }
        let block = core.get(index)?.ok_or(ArchiveError::Missing(index))?;
        match Entry::decode(index, &block)? {
            Entry::Put { path, value } if path == PROFILE && !profile_done => {
                files.profile = Some(Profile::from_json(value.as_bytes())?);
                profile_done = true;
            }
            Entry::Put { path, value } if path == SESSION && !session_done => {
                files.session = Some(Session::from_json(value.as_bytes())?);
                session_done = true;
            }
            Entry::Del { path } if path == PROFILE => profile_done = true,
            Entry::Del { path } if path == SESSION => session_done = true,
            _ => {}
        }
    }
    Ok(files)
}

/// Appends a `put` of `profile.json`. Errors: an invalid profile, a core error.
pub fn put_profile(core: &mut Core, profile: &Profile) -> Result<u64, ArchiveError> {
    profile.validate()?;
    put(
        core,
        PROFILE,
        serde_json::to_string(profile).expect("profiles serialize"),
    )
}

/// Appends a `put` of `session.json`. Errors: an invalid session, a core error.
pub fn put_session(core: &mut Core, session: &Session) -> Result<u64, ArchiveError> {
    session.validate()?;
    put(
        core,
        SESSION,
        serde_json::to_string(session).expect("sessions serialize"),
    )
}

fn put(core: &mut Core, path: &str, value: String) -> Result<u64, ArchiveError> {
    let entry = Entry::Put {
        path: path.to_string(),
        value,
    };
    Ok(core.append(&[&entry.encode()])?)
}

/// Writes a new archive into an empty writable core: the header and `profile.json`, as one batch.
pub fn initialize(core: &mut Core, profile: &Profile) -> Result<u64, ArchiveError> {
    profile.validate()?;
    let put = Entry::Put {
        path: PROFILE.to_string(),
        value: serde_json::to_string(profile).expect("profiles serialize"),
    };
    Ok(core.append(&[&Entry::header().encode(), &put.encode()])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_header_must_come_first() {
        let put = Entry::Put {
            path: PROFILE.into(),
            value: "{}".into(),
        };
        assert_eq!(Entry::decode(1, &put.encode()).unwrap(), put);
        assert_eq!(
            Entry::decode(0, &Entry::header().encode()).unwrap(),
            Entry::header()
        );
        assert!(Entry::decode(0, &put.encode()).is_err());
        assert!(Entry::decode(3, &Entry::header().encode()).is_err());
        assert!(Entry::decode(3, b"\xff\x00").is_err());
        assert!(Entry::decode(3, br#"{"type":"rename"}"#).is_err());
    }

    #[test]
    fn a_block_that_is_not_json_keeps_serdes_error() {
        let err = Entry::decode(3, b"\xff\x00").unwrap_err();
        assert!(
            matches!(err, ArchiveError::BadJson { index: 3, .. }),
            "{err:?}"
        );
        let source = std::error::Error::source(&err).expect("a source");
        let json = source
            .downcast_ref::<serde_json::Error>()
            .expect("serde's error");
        assert!(json.is_syntax(), "{json}");
        // A well-formed entry in the wrong place is described, not parsed badly.
        let err = Entry::decode(3, &Entry::header().encode()).unwrap_err();
        assert!(
            matches!(err, ArchiveError::BadEntry { index: 3, .. }),
            "{err:?}"
        );
    }
}
