//! Short-lived TURN credentials in the "TURN REST API" style (draft-uberti-behave-turn-rest-00),
//! the scheme coturn's `--use-auth-secret --static-auth-secret=SECRET` checks.
//!
//! The username is `"<expiry>:<name>"` (expiry in Unix seconds, name free text without `:`)
//! and the password is `base64(HMAC-SHA1(secret, username))`. Whoever knows the secret (the
//! relay) can mint them; a TURN server with the same secret recomputes the password from the
//! username alone, so no state is shared and a credential dies at its expiry.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// A minted credential, ready to put in an [`super::IceServer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestCredential {
    /// `"<expiry>:<name>"`.
    pub username: String,
    /// `base64(HMAC-SHA1(secret, username))`, 28 characters.
    pub password: String,
    /// When it stops working, in Unix seconds.
    pub expires_unix_s: u64,
}

/// Why a REST username was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestError {
    /// The username is not `"<unix seconds>:<name>"`.
    #[error("not a TURN REST username (expected \"<expiry unix seconds>:<name>\")")]
    Malformed,
    /// The expiry has passed.
    #[error("the TURN credential expired at {expired_unix_s} (now {now_unix_s})")]
    Expired {
        /// The expiry in the username, Unix seconds.
        expired_unix_s: u64,
        /// The time of the check, Unix seconds.
        now_unix_s: u64,
    },
    /// A name containing `:`, which would make the username ambiguous.
    #[error("a TURN REST name may not contain ':'")]
    BadName,
}

/// Mints a credential for `name` that works until `expires_unix_s`.
///
/// # Errors
/// [`RestError::BadName`] if `name` contains `:`.
pub fn mint(secret: &[u8], name: &str, expires_unix_s: u64) -> Result<RestCredential, RestError> {
    if name.contains(':') {
        return Err(RestError::BadName);
    }
    let username = format!("{expires_unix_s}:{name}");
    Ok(RestCredential {
        password: password(secret, &username),
        username,
        expires_unix_s,
    })
}

/// The password that belongs to `username` under `secret`: `base64(HMAC-SHA1(secret,
/// username))` (standard alphabet, padded). A TURN server derives its long-term key
/// (RFC 8489 §9.2.2) from this, after [`check_username`].
pub fn password(secret: &[u8], username: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks that `username` is a REST username that has not expired at `now_unix_s`, and returns
/// its expiry (Unix seconds). A credential is valid up to and including its expiry second.
///
/// # Errors
/// [`RestError::Malformed`] if it is not `"<unix seconds>:<name>"`; [`RestError::Expired`] if
/// the expiry is before `now_unix_s`.
pub fn check_username(username: &str, now_unix_s: u64) -> Result<u64, RestError> {
    let (expiry, _name) = username.split_once(':').ok_or(RestError::Malformed)?;
    if expiry.is_empty() || !expiry.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RestError::Malformed);
    }
    let expiry: u64 = expiry.parse().map_err(|_| RestError::Malformed)?;
    if expiry < now_unix_s {
        return Err(RestError::Expired {
            expired_unix_s: expiry,
            now_unix_s,
        });
    }
    Ok(expiry)
}
