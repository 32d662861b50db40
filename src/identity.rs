//! Identities and `dat://` URLs.
//!
//! A user's identity is an ed25519 key pair. Its public key (32 bytes) is also the key of the
//! user's archive core, so the URL `dat://<64 lowercase hex>` names both the user and their
//! archive. A URL may carry a connection hint: `?peer=<host>:<port>` (a TCP address of a peer that
//! serves the core: a DNS name, an IPv4 address or a bracketed IPv6 address, and a port of
//! 1-65535; at most [`MAX_PEER_CHARS`] characters) and, for relays, `?relay=<url>` (`ws://`,
//! `wss://` or `tcp://`, at most [`MAX_RELAY_CHARS`] characters).
//!
//! Key files are JSON (`{"public_key": hex, "secret_key": hex}`, the secret being the 32-byte
//! ed25519 seed), written with mode 0600 through a temporary file and a rename so that a crash never
//! leaves a half-written key.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::keys::{CoreKey, IdentityKey};

/// Longest `peer=` hint accepted, in characters: a 253-character DNS name, `:` and a port.
pub const MAX_PEER_CHARS: usize = 259;

/// Longest `relay=` hint accepted, in characters.
pub const MAX_RELAY_CHARS: usize = 512;

#[cfg(feature = "native")]
mod key_file;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The text is not a `dat://<64 hex>[?peer=host:port][&relay=url]` URL; the string says why.
    #[error("invalid dat URL {url:?}: {reason}")]
    InvalidUrl {
        /// The text that was parsed (its first 200 characters when longer).
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
    /// The core's public key (for a user: their archive key, which is their identity key,
    /// [`IdentityKey::from_core`]; for a lobby: the host's lobby log key).
    pub key: CoreKey,
    /// `peer=host:port`: a TCP address that served this core (a hint, not authenticated).
    pub peer: Option<String>,
    /// `relay=url`: a relay through which the core's owner can be reached.
    pub relay: Option<String>,
    /// `lobby=<64 hex>`: the key of the lobby log of the session the owner hosts (an invite's
    /// hint, not authenticated): a joiner starts signalling on it while it reads the owner's
    /// `session.json`, and goes on only if `session.json` names the same lobby.
    pub lobby: Option<CoreKey>,
}

impl DatUrl {
    /// A URL with no hints for `key` (a core key, or an identity or log key: their cores).
    pub fn new(key: impl Into<CoreKey>) -> Self {
        DatUrl {
            key: key.into(),
            peer: None,
            relay: None,
            lobby: None,
        }
    }

    /// The key as 64 lowercase hex characters.
    pub fn key_hex(&self) -> String {
        self.key.to_hex()
    }

    /// The key as a user's identity key (a user's URL names their archive core, whose key is
    /// their identity key).
    pub fn identity(&self) -> IdentityKey {
        IdentityKey::from_core(self.key)
    }

    /// The URL without hints: `dat://<64 hex>`.
    pub fn base(&self) -> String {
        format!("dat://{}", self.key_hex())
    }

    /// Checks that the key can be someone's identity: a valid ed25519 public key (a point on the
    /// curve) that is not all zeros and not of small order (a key anyone could forge
    /// signatures for). Parsing checks only the syntax; call this before trusting a key given
    /// by a user, e.g. before following it.
    ///
    /// Errors: [`IdentityError::InvalidUrl`] saying which.
    pub fn check_key(&self) -> Result<(), IdentityError> {
        let bad = |reason: &str| IdentityError::InvalidUrl {
            url: self.base(),
            reason: reason.to_string(),
        };
        if self.key.as_bytes() == &[0u8; 32] {
            return Err(bad("the key is all zeros, which is nobody's public key"));
        }
        let key = VerifyingKey::from_bytes(self.key.as_bytes())
            .map_err(|_| bad("the key is not an ed25519 public key (not a curve point)"))?;
        if key.is_weak() {
            return Err(bad(
                "the key is a small-order ed25519 point, which is nobody's public key",
            ));
        }
        Ok(())
    }
}

/// Checks a `peer=` hint: `host:port` with a DNS name (RFC 1123 labels of letters, digits and
/// hyphens), an IPv4 address or a bracketed IPv6 address (`[::1]:4000`), a port of 1-65535, and
/// at most [`MAX_PEER_CHARS`] characters. Returns what is wrong.
pub fn check_peer(peer: &str) -> Result<(), String> {
    if peer.chars().count() > MAX_PEER_CHARS {
        return Err(format!(
            "peer must be at most {MAX_PEER_CHARS} characters, got {}",
            peer.chars().count()
        ));
    }
    let (host, port) = peer
        .rsplit_once(':')
        .ok_or_else(|| "peer must be host:port".to_string())?;
    if host.is_empty() {
        return Err("peer must be host:port with a host".to_string());
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 && !port.starts_with('+') => {}
        _ => {
            return Err(format!(
                "peer must be host:port with a port of 1-65535, got {port:?}"
            ))
        }
    }
    if let Some(inner) = host.strip_prefix('[') {
        let v6 = inner.strip_suffix(']').ok_or_else(|| {
            "peer's IPv6 address must be in brackets, [addr]:port: the ']' is missing".to_string()
        })?;
        return v6
            .parse::<std::net::Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| format!("peer's host {host:?} is not an IPv6 address"));
    }
    if host.contains(':') {
        return Err("peer's IPv6 address must be in brackets: [addr]:port".to_string());
    }
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return Ok(());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!(
            "peer's host {host:?} is not a DNS name, an IPv4 address or a bracketed IPv6 address"
        ));
    }
    // All-numeric names would be read as (invalid) IPv4 addresses by resolvers.
    if name
        .split('.')
        .all(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("peer's host {host:?} is not a valid IPv4 address"));
    }
    Ok(())
}

/// Checks a `relay=` hint: a relay URL ([`crate::relay::client::RelayUrl`]: `ws://`, `wss://`
/// or `tcp://`) of at most [`MAX_RELAY_CHARS`] characters. Returns what is wrong.
pub fn check_relay(relay: &str) -> Result<(), String> {
    if relay.is_empty() {
        return Err("relay must not be empty".to_string());
    }
    if relay.chars().count() > MAX_RELAY_CHARS {
        return Err(format!(
            "relay must be at most {MAX_RELAY_CHARS} characters, got {}",
            relay.chars().count()
        ));
    }
    if relay.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("relay must not contain spaces or control characters".to_string());
    }
    check_relay_url(relay)
}

/// The relay URL's scheme, host and port, as the relay client parses them.
#[cfg(feature = "native")]
fn check_relay_url(relay: &str) -> Result<(), String> {
    relay
        .parse::<crate::relay::client::RelayUrl>()
        .map(|_| ())
        .map_err(|e| format!("relay: {e}"))
}

/// Without the relay client (no `native` feature) only the scheme is checked: the full parser
/// lives with the client's transports.
#[cfg(not(feature = "native"))]
fn check_relay_url(relay: &str) -> Result<(), String> {
    match relay.split_once("://") {
        Some(("ws" | "wss" | "tcp", rest)) if !rest.is_empty() => Ok(()),
        _ => Err("relay: the scheme must be ws://, wss:// or tcp://".to_string()),
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
            sep = '&';
        }
        if let Some(lobby) = &self.lobby {
            write!(f, "{sep}lobby={}", lobby.to_hex())?;
        }
        Ok(())
    }
}

impl FromStr for DatUrl {
    type Err = IdentityError;

    /// Parses `dat://<64 hex>[/][?peer=host:port][&relay=url][&lobby=<64 hex>]`. Hex is
    /// case-insensitive. Unknown
    /// query parameters are ignored (forward compatibility); hints are checked strictly
    /// ([`check_peer`], [`check_relay`]). Only the key's syntax is checked here; see
    /// [`DatUrl::check_key`] for whether it can be anyone's key.
    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| IdentityError::InvalidUrl {
            url: shorten(url),
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
        let mut out = DatUrl::new(CoreKey::from_bytes(key));
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "peer" => {
                    check_peer(value).map_err(|r| bad(&r))?;
                    out.peer = Some(value.to_string());
                }
                "relay" => {
                    check_relay(value).map_err(|r| bad(&r))?;
                    out.relay = Some(value.to_string());
                }
                "lobby" => {
                    let key = parse_key_hex(value).map_err(|r| bad(&format!("lobby: {r}")))?;
                    out.lobby = Some(CoreKey::from_bytes(key));
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// `text` cut to its first 200 characters (and `…`), to quote a long input in a message.
fn shorten(text: &str) -> String {
    const KEEP: usize = 200;
    match text.char_indices().nth(KEEP) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// Parses 32 bytes written as 64 hex characters (a key, or a key file's secret seed); the error
/// says what is wrong ([`crate::keys::decode_hex32`]'s message).
pub fn parse_key_hex(text: &str) -> Result<[u8; 32], String> {
    crate::keys::decode_hex32(text).map_err(|e| e.to_string())
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

    /// The public key: the identity key, also the key of the user's archive core.
    pub fn public_key(&self) -> IdentityKey {
        IdentityKey::from_bytes(self.signing_key.verifying_key().to_bytes())
    }

    /// The verifying (public) key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing_key.verifying_key()
    }

    /// `dat://<public key hex>`.
    pub fn url(&self) -> DatUrl {
        DatUrl::new(self.public_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_round_trip_with_hints() {
        let key = CoreKey::from_bytes([0xab; 32]);
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
    fn an_invite_round_trips_with_its_lobby_hint() {
        let mut url = DatUrl::new(CoreKey::from_bytes([0xab; 32]));
        url.relay = Some("ws://relay.example:49443".into());
        url.lobby = Some(CoreKey::from_bytes([0xcd; 32]));
        let text = url.to_string();
        assert_eq!(
            text,
            format!(
                "dat://{}?relay=ws://relay.example:49443&lobby={}",
                "ab".repeat(32),
                "cd".repeat(32)
            )
        );
        assert_eq!(text.parse::<DatUrl>().unwrap(), url);
        let bad = format!("dat://{}?lobby=abcd", "ab".repeat(32));
        let err = bad.parse::<DatUrl>().unwrap_err().to_string();
        assert!(err.contains("lobby"), "{err}");
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
    fn hints_are_checked_strictly() {
        let key = "00".repeat(32);
        for (query, needle) in [
            ("peer=[::1", "brackets"),
            ("peer=[::1]", "host:port"),
            ("peer=::1:4000", "brackets"),
            ("peer=[zz]:4000", "IPv6"),
            ("peer=h:0", "1-65535"),
            ("peer=h:+80", "1-65535"),
            ("peer=a_b:80", "DNS name"),
            ("peer=-a.example:80", "DNS name"),
            ("peer=999.1.1.1:80", "IPv4"),
            ("peer=h%0a:80", "DNS name"),
            ("relay=gopher://x", "ws://"),
            ("relay=", "empty"),
            ("relay=ws://", "host"),
        ] {
            let text = format!("dat://{key}?{query}");
            let err = text.parse::<DatUrl>().unwrap_err().to_string();
            assert!(err.contains(needle), "{query}: {err}");
        }
        let long = format!("dat://{key}?peer={}:80", "a".repeat(5000));
        let err = long.parse::<DatUrl>().unwrap_err().to_string();
        assert!(err.contains("at most 259"), "{err}");
        assert!(
            err.len() < 400,
            "the whole input is echoed: {} bytes",
            err.len()
        );
        let long = format!("dat://{key}?relay=ws://{}", "a".repeat(600));
        let err = long.parse::<DatUrl>().unwrap_err().to_string();
        assert!(err.contains("at most 512"), "{err}");

        for (query, peer, relay) in [
            ("peer=127.0.0.1:4000", Some("127.0.0.1:4000"), None),
            ("peer=[::1]:4000", Some("[::1]:4000"), None),
            (
                "peer=host-1.example.org.:65535",
                Some("host-1.example.org.:65535"),
                None,
            ),
            (
                "relay=tcp://127.0.0.1:49444",
                None,
                Some("tcp://127.0.0.1:49444"),
            ),
            (
                "relay=wss://relay.example/x",
                None,
                Some("wss://relay.example/x"),
            ),
        ] {
            let url: DatUrl = format!("dat://{key}?{query}").parse().unwrap();
            assert_eq!(url.peer.as_deref(), peer, "{query}");
            assert_eq!(url.relay.as_deref(), relay, "{query}");
        }
    }

    #[test]
    fn keys_that_are_nobodys_are_refused_by_check_key() {
        let zero = DatUrl::new(CoreKey::from_bytes([0; 32]))
            .check_key()
            .unwrap_err()
            .to_string();
        assert!(zero.contains("all zeros"), "{zero}");
        // 0xab repeated is not on the curve.
        let off = DatUrl::new(CoreKey::from_bytes([0xab; 32]))
            .check_key()
            .unwrap_err()
            .to_string();
        assert!(off.contains("not an ed25519"), "{off}");
        // The identity point (y = 1) has order 1.
        let mut one = [0u8; 32];
        one[0] = 1;
        let weak = DatUrl::new(CoreKey::from_bytes(one))
            .check_key()
            .unwrap_err()
            .to_string();
        assert!(weak.contains("small-order"), "{weak}");
        assert!(Identity::generate().url().check_key().is_ok());
    }
}
