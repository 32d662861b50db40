//! Identities and `dat://` URLs.
//!
//! A user's identity is an ed25519 key pair. Its public key (32 bytes) is also the key of the
//! user's archive core, so the URL `dat://<64 lowercase hex>` names both the user and their
//! archive. A URL may carry a connection hint: `?peer=<host>:<port>` (a TCP address of a peer that
//! serves the core) and, for relays, `?relay=<url>`.
//!
//! Key files are JSON (`{"public_key": hex, "secret_key": hex}`, the secret being the 32-byte
//! ed25519 seed), written with mode 0600 through a temporary file and a rename so that a crash never
//! leaves a half-written key.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The text is not a `dat://<64 hex>[?peer=host:port][&relay=url]` URL; the string says why.
    #[error("invalid dat URL {url:?}: {reason}")]
    InvalidUrl {
        /// The text that was parsed.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key file exists already where a new identity would be written (`init` never overwrites).
    #[error("an identity already exists at {0}; refusing to overwrite it")]
    Exists(PathBuf),
    /// No key file at the path: the user has not run `dat-social init`.
    #[error("no identity at {0}; create one with `dat-social init --name NAME`")]
    Missing(PathBuf),
    /// The key file exists but cannot be used (bad JSON, wrong lengths, or a public key that does
    /// not belong to the secret key).
    #[error("key file {path} is corrupt: {reason}; restore it from a backup")]
    Corrupt {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing the key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// A parsed `dat://` URL: a 32-byte core key plus optional connection hints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatUrl {
    /// The core's public key (for a user: their archive key, which is their identity key).
    pub key: [u8; 32],
    /// `peer=host:port`: a TCP address that served this core (a hint, not authenticated).
    pub peer: Option<String>,
    /// `relay=url`: a relay through which the core's owner can be reached.
    pub relay: Option<String>,
}

impl DatUrl {
    /// A URL with no hints for `key`.
    pub fn new(key: [u8; 32]) -> Self {
        DatUrl {
            key,
            peer: None,
            relay: None,
        }
    }

    /// The key as 64 lowercase hex characters.
    pub fn key_hex(&self) -> String {
        hex::encode(self.key)
    }

    /// The URL without hints: `dat://<64 hex>`.
    pub fn base(&self) -> String {
        format!("dat://{}", self.key_hex())
    }
}

impl fmt::Display for DatUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dat://{}", self.key_hex())?;
        let mut sep = '?';
        if let Some(peer) = &self.peer {
            write!(f, "{sep}peer={peer}")?;
            sep = '&';
        }
        if let Some(relay) = &self.relay {
            write!(f, "{sep}relay={relay}")?;
        }
        Ok(())
    }
}

impl FromStr for DatUrl {
    type Err = IdentityError;

    /// Parses `dat://<64 hex>[/][?peer=host:port][&relay=url]`. Hex is case-insensitive. Unknown
    /// query parameters are ignored (forward compatibility); a `peer` without a port is an error.
    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| IdentityError::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let rest = url
            .strip_prefix("dat://")
            .ok_or_else(|| bad("must start with dat://"))?;
        let (key_part, query) = match rest.split_once('?') {
            Some((k, q)) => (k, Some(q)),
            None => (rest, None),
        };
        let key_part = key_part.strip_suffix('/').unwrap_or(key_part);
        let key = parse_key_hex(key_part).map_err(|r| bad(&r))?;
        let mut out = DatUrl::new(key);
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "peer" => {
                    let (host, port) = value
                        .rsplit_once(':')
                        .ok_or_else(|| bad("peer must be host:port"))?;
                    if host.is_empty() || port.parse::<u16>().is_err() {
                        return Err(bad("peer must be host:port with a port of 0-65535"));
                    }
                    out.peer = Some(value.to_string());
                }
                "relay" if !value.is_empty() => out.relay = Some(value.to_string()),
                "relay" => return Err(bad("relay must not be empty")),
                _ => {}
            }
        }
        Ok(out)
    }
}

/// Parses a 32-byte key written as 64 hex characters; the error says what is wrong.
pub fn parse_key_hex(text: &str) -> Result<[u8; 32], String> {
    if text.len() != 64 {
        return Err(format!(
            "the key must be 64 hex characters, got {}",
            text.len()
        ));
    }
    let mut key = [0u8; 32];
    hex::decode_to_slice(text, &mut key).map_err(|_| "the key is not hex".to_string())?;
    Ok(key)
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    public_key: String,
    secret_key: String,
}

/// A user's ed25519 identity.
#[derive(Clone)]
pub struct Identity {
    signing_key: SigningKey,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({})", self.url())
    }
}

impl Identity {
    /// A fresh random identity (from the operating system's RNG).
    pub fn generate() -> Self {
        Identity {
            signing_key: SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    /// The identity whose ed25519 seed is `seed` (32 bytes); for tests and derived keys.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Identity {
            signing_key: SigningKey::from_bytes(&seed),
        }
    }

    /// The signing key (secret).
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing_key
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.signing_key.verifying_key().to_bytes()
    }

    /// The verifying (public) key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing_key.verifying_key()
    }

    /// `dat://<public key hex>`.
    pub fn url(&self) -> DatUrl {
        DatUrl::new(self.public_key())
    }

    /// Writes a new key file at `path` with mode 0600, creating parent directories.
    ///
    /// Errors: [`IdentityError::Exists`] if a file is already there (never overwritten),
    /// [`IdentityError::Io`] on a write failure (the partial temporary file is removed).
    pub fn save_new(&self, path: &Path) -> Result<(), IdentityError> {
        if path.exists() {
            return Err(IdentityError::Exists(path.to_path_buf()));
        }
        let io = |source| IdentityError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let body = serde_json::to_vec_pretty(&KeyFile {
            public_key: hex::encode(self.public_key()),
            secret_key: hex::encode(self.signing_key.to_bytes()),
        })
        .expect("key file serializes");
        let tmp = path.with_extension("tmp");
        let written = write_private(&tmp, &body).and_then(|_| {
            // A hard link fails if `path` appeared meanwhile: no overwrite even in a race.
            std::fs::hard_link(&tmp, path)
        });
        let _ = std::fs::remove_file(&tmp);
        match written {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(IdentityError::Exists(path.to_path_buf()))
            }
            other => other.map_err(io),
        }
    }

    /// Reads a key file written by [`Identity::save_new`].
    ///
    /// Errors: [`IdentityError::Missing`] if there is no file, [`IdentityError::Corrupt`] if it is
    /// not a valid key file, [`IdentityError::Io`] on other read failures.
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let bytes = std::fs::read(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                IdentityError::Missing(path.to_path_buf())
            } else {
                IdentityError::Io {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        let corrupt = |reason: String| IdentityError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let file: KeyFile =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("not a key file: {e}")))?;
        let seed =
            parse_key_hex(&file.secret_key).map_err(|r| corrupt(format!("secret_key: {r}")))?;
        let public =
            parse_key_hex(&file.public_key).map_err(|r| corrupt(format!("public_key: {r}")))?;
        let identity = Identity::from_seed(seed);
        if identity.public_key() != public {
            return Err(corrupt(
                "public_key does not belong to secret_key".to_string(),
            ));
        }
        Ok(identity)
    }
}

/// Writes `body` to a new file readable only by its owner, and syncs it.
fn write_private(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(body)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_round_trip_with_hints() {
        let key = [0xab; 32];
        let mut url = DatUrl::new(key);
        url.peer = Some("127.0.0.1:4000".into());
        let text = url.to_string();
        assert_eq!(
            text,
            format!("dat://{}?peer=127.0.0.1:4000", "ab".repeat(32))
        );
        assert_eq!(text.parse::<DatUrl>().unwrap(), url);
        let upper = format!("dat://{}/", "AB".repeat(32));
        assert_eq!(upper.parse::<DatUrl>().unwrap().key, key);
    }

    #[test]
    fn malformed_urls_are_rejected_with_a_reason() {
        for (text, needle) in [
            ("http://abc", "dat://"),
            ("dat://abcd", "64 hex"),
            (&format!("dat://{}", "zz".repeat(32)), "not hex"),
            (
                &format!("dat://{}?peer=localhost", "00".repeat(32)),
                "host:port",
            ),
            (&format!("dat://{}?peer=h:99999", "00".repeat(32)), "port"),
        ] {
            let err = text.parse::<DatUrl>().unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn key_file_is_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id/identity.key");
        let id = Identity::generate();
        id.save_new(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let err = Identity::generate().save_new(&path).unwrap_err();
        assert!(matches!(err, IdentityError::Exists(_)));
        assert_eq!(Identity::load(&path).unwrap().public_key(), id.public_key());
    }

    #[test]
    fn corrupt_and_missing_key_files_give_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        assert!(matches!(
            Identity::load(&path),
            Err(IdentityError::Missing(_))
        ));
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            Identity::load(&path),
            Err(IdentityError::Corrupt { .. })
        ));
        let a = Identity::from_seed([1; 32]);
        let mismatched = format!(
            r#"{{"public_key":"{}","secret_key":"{}"}}"#,
            "00".repeat(32),
            hex::encode(a.signing_key().to_bytes())
        );
        std::fs::write(&path, mismatched).unwrap();
        let err = Identity::load(&path).unwrap_err().to_string();
        assert!(err.contains("does not belong"), "{err}");
    }
}
