//! Key files (feature `native`): an [`Identity`] saved as JSON
//! (`{"public_key": hex, "secret_key": hex}`, the secret being the 32-byte ed25519 seed), written
//! with mode 0600 through a temporary file and a hard link so that a crash never leaves a
//! half-written key and an existing key is never overwritten.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{parse_key_hex, Identity, IdentityError};

#[derive(Serialize, Deserialize)]
struct KeyFile {
    public_key: String,
    secret_key: String,
}

impl Identity {
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
            public_key: self.public_key().to_hex(),
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
        if identity.public_key().as_bytes() != &public {
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
