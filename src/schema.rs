//! The JSON files of an archive: `profile.json` and `session.json`.
//!
//! The serde types here and `schemas/profile.schema.json` / `schemas/session.schema.json` (JSON
//! Schema 2020-12) describe the same documents; `tests/schemas.rs` validates real files against
//! both. Times are milliseconds since the Unix epoch; keys are `dat://<64 lowercase hex>` URLs.

use serde::{Deserialize, Serialize};

/// Longest `name` accepted, in characters (Unicode scalar values).
pub const MAX_NAME_CHARS: usize = 100;
/// Most friends a profile may list.
pub const MAX_FRIENDS: usize = 10_000;
/// Largest `max_peers` a lobby may have.
pub const MAX_PEERS_LIMIT: u32 = 256;
/// Largest JSON file accepted when reading an archive, in bytes.
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// Errors of this module: the document breaks the schema.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// Not JSON, or JSON of the wrong shape (a missing or mistyped field, an unknown field).
    #[error("{file}: {source}")]
    Json {
        /// `profile.json` or `session.json`.
        file: &'static str,
        /// The serde error, with line and column.
        source: serde_json::Error,
    },
    /// A field's value is outside what the schema allows.
    #[error("{file}: {field}: {reason}")]
    Invalid {
        /// `profile.json` or `session.json`.
        file: &'static str,
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("{file}: {size} bytes is larger than the limit of {MAX_FILE_BYTES}")]
    TooLarge {
        /// `profile.json` or `session.json`.
        file: &'static str,
        /// Its size in bytes.
        size: usize,
    },
}

/// `profile.json`: who a user is and whom they follow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Display name, 1 to [`MAX_NAME_CHARS`] characters.
    pub name: String,
    /// When the identity was created, in ms since the epoch.
    pub created: u64,
    /// Followed users as `dat://<64 hex>` URLs, at most [`MAX_FRIENDS`], no duplicates.
    pub friends: Vec<String>,
}

/// `session.json`: the lobby a user hosts, while they host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Session {
    /// The lobby's name, 1 to [`MAX_NAME_CHARS`] characters.
    pub name: String,
    /// `dat://<64 hex>`: the key of the host's lobby log.
    pub url: String,
    /// The heartbeat: when the host last rewrote this file, in ms since the epoch.
    pub last_update: u64,
    /// Players connected now (the host not counted).
    pub peers: u32,
    /// Most players the lobby admits, 1 to [`MAX_PEERS_LIMIT`].
    pub max_peers: u32,
    /// Whether joining needs a password.
    pub protected: bool,
    /// The heartbeat period in ms: readers treat the lobby as gone when `last_update` is older
    /// than twice this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<u64>,
    /// When the host ended the lobby, in ms since the epoch; absent while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<u64>,
}

impl Session {
    /// Whether the lobby is live at `now_ms`: not ended, and (when it states its heartbeat) its
    /// `last_update` is no older than twice the heartbeat.
    pub fn is_live(&self, now_ms: u64) -> bool {
        if self.ended.is_some() {
            return false;
        }
        match self.heartbeat {
            Some(period) => now_ms.saturating_sub(self.last_update) <= period.saturating_mul(2),
            None => true,
        }
    }
}

fn invalid(file: &'static str, field: &'static str, reason: impl Into<String>) -> SchemaError {
    SchemaError::Invalid {
        file,
        field,
        reason: reason.into(),
    }
}

fn check_name(file: &'static str, name: &str) -> Result<(), SchemaError> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(invalid(
            file,
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} characters, got {chars}"),
        ));
    }
    Ok(())
}

fn check_dat_url(file: &'static str, field: &'static str, url: &str) -> Result<(), SchemaError> {
    let ok = url.len() == 70
        && url.starts_with("dat://")
        && url[6..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !ok {
        return Err(invalid(
            file,
            field,
            format!("{url:?} is not dat://<64 lowercase hex>"),
        ));
    }
    Ok(())
}

fn parse<T: serde::de::DeserializeOwned>(
    file: &'static str,
    bytes: &[u8],
) -> Result<T, SchemaError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(SchemaError::TooLarge {
            file,
            size: bytes.len(),
        });
    }
    serde_json::from_slice(bytes).map_err(|source| SchemaError::Json { file, source })
}

impl Profile {
    /// Checks the constraints the JSON Schema states beyond types.
    pub fn validate(&self) -> Result<(), SchemaError> {
        const FILE: &str = "profile.json";
        check_name(FILE, &self.name)?;
        if self.friends.len() > MAX_FRIENDS {
            return Err(invalid(
                FILE,
                "friends",
                format!("at most {MAX_FRIENDS} friends, got {}", self.friends.len()),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for friend in &self.friends {
            check_dat_url(FILE, "friends", friend)?;
            if !seen.insert(friend) {
                return Err(invalid(
                    FILE,
                    "friends",
                    format!("{friend} is listed twice"),
                ));
            }
        }
        Ok(())
    }

    /// Parses and validates `profile.json` bytes (at most [`MAX_FILE_BYTES`]).
    pub fn from_json(bytes: &[u8]) -> Result<Self, SchemaError> {
        let profile: Profile = parse("profile.json", bytes)?;
        profile.validate()?;
        Ok(profile)
    }
}

impl Session {
    /// Checks the constraints the JSON Schema states beyond types.
    pub fn validate(&self) -> Result<(), SchemaError> {
        const FILE: &str = "session.json";
        check_name(FILE, &self.name)?;
        check_dat_url(FILE, "url", &self.url)?;
        if self.max_peers == 0 || self.max_peers > MAX_PEERS_LIMIT {
            return Err(invalid(
                FILE,
                "max_peers",
                format!("must be 1 to {MAX_PEERS_LIMIT}, got {}", self.max_peers),
            ));
        }
        if self.peers > self.max_peers {
            return Err(invalid(
                FILE,
                "peers",
                format!("{} is more than max_peers {}", self.peers, self.max_peers),
            ));
        }
        if self.heartbeat == Some(0) {
            return Err(invalid(FILE, "heartbeat", "must be at least 1 ms"));
        }
        Ok(())
    }

    /// Parses and validates `session.json` bytes (at most [`MAX_FILE_BYTES`]).
    pub fn from_json(bytes: &[u8]) -> Result<Self, SchemaError> {
        let session: Session = parse("session.json", bytes)?;
        session.validate()?;
        Ok(session)
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            name: "lobby".into(),
            url: format!("dat://{}", "ab".repeat(32)),
            last_update: 1_000,
            peers: 0,
            max_peers: 8,
            protected: false,
            heartbeat: Some(300_000),
            ended: None,
        }
    }

    #[test]
    fn liveness_follows_heartbeat_and_ended() {
        let s = session();
        assert!(s.is_live(1_000 + 600_000));
        assert!(!s.is_live(1_000 + 600_001));
        let ended = Session {
            ended: Some(2_000),
            ..s
        };
        assert!(!ended.is_live(2_000));
    }

    #[test]
    fn invalid_documents_are_rejected() {
        assert!(Profile::from_json(br#"{"name":"a","created":1}"#).is_err());
        assert!(Profile::from_json(br#"{"name":"","created":1,"friends":[]}"#).is_err());
        assert!(Profile::from_json(br#"{"name":"a","created":1,"friends":["dat://x"]}"#).is_err());
        let long = format!(
            r#"{{"name":"{}","created":1,"friends":[]}}"#,
            "x".repeat(101)
        );
        assert!(Profile::from_json(long.as_bytes()).is_err());
        let mut s = session();
        s.peers = 9;
        assert!(s.validate().is_err());
        let big = vec![b' '; MAX_FILE_BYTES + 1];
        assert!(matches!(
            Session::from_json(&big),
            Err(SchemaError::TooLarge { .. })
        ));
    }
}
