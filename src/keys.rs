//! The 32-byte keys of the protocol, one type per role, so that a topic can't be passed where an
//! identity key is meant (as str0m's `ChannelId` and iroh's `EndpointId`).
//!
//! - [`IdentityKey`]: a user's ed25519 public key; also the key of the user's archive core, so
//!   `dat://<hex>` names both.
//! - [`LogKey`]: the ed25519 public key of a lobby signalling log (a host's lobby log or a
//!   joiner's log); signals addressed to a log are sealed to this key.
//! - [`CoreKey`]: the public key of any hypercore (an archive, a replica, a signalling log); what
//!   a `dat://` URL names. An identity key or a log key widens into it (`From`); the way back is
//!   named ([`IdentityKey::from_core`], [`LogKey::from_core`]) because it is a claim about the core.
//! - [`DiscoveryKey`]: hypercore's `crypto.discoveryKey(key)`, what peers announce instead of the
//!   key (BLAKE2b-256 keyed by the core key over `"hypercore"`).
//! - [`Topic`]: a relay or DHT announce topic (we announce a core's discovery key).
//!
//! Every type is `Copy + Eq + Hash + Ord`, prints as 64 lowercase hex ([`fmt::Display`]; `Debug`
//! shows the first 8), parses from 64 hex characters of either case ([`FromStr`], [`KeyError`]),
//! and is serialized with serde as the 64 lowercase hex string. None converts from a bare
//! `[u8; 32]` implicitly: [`IdentityKey::from_bytes`] and its siblings say which key is meant.
//! Sans-IO: no feature needed.

use std::fmt;
use std::str::FromStr;

/// Why a text is not a key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The text is not 64 characters long.
    #[error("the key must be 64 hex characters, got {0}")]
    Length(usize),
    /// The text has 64 characters, not all hex digits.
    #[error("the key is not hex")]
    NotHex(#[source] hex::FromHexError),
    /// The text starts with `dat://` but is not a valid URL.
    #[error("the key's URL is invalid")]
    Url(#[source] Box<crate::identity::IdentityError>),
}

/// Decodes 64 hex characters (either case) into 32 bytes.
///
/// Errors: [`KeyError::Length`] for another length, [`KeyError::NotHex`] for a non-hex digit.
pub fn decode_hex32(text: &str) -> Result<[u8; 32], KeyError> {
    if text.len() != 64 {
        return Err(KeyError::Length(text.len()));
    }
    let mut key = [0u8; 32];
    hex::decode_to_slice(text, &mut key).map_err(KeyError::NotHex)?;
    Ok(key)
}

/// Defines a 32-byte key newtype with the shared vocabulary of this module.
macro_rules! key_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; 32]);

        impl $name {
            /// The key whose 32 bytes are `bytes` (no check that they are a curve point).
            pub const fn from_bytes(bytes: [u8; 32]) -> Self {
                $name(bytes)
            }

            /// The key's 32 bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The key as 64 lowercase hex characters (what `Display` prints).
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            /// `Name(<first 8 hex>)`: enough to tell keys apart in logs.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), &self.to_hex()[..8])
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                decode_hex32(&text)
                    .map($name)
                    .map_err(serde::de::Error::custom)
            }
        }
    };
}

/// `FromStr` as 64 hex characters of either case.
macro_rules! from_hex_str {
    ($name:ident) => {
        impl FromStr for $name {
            type Err = KeyError;

            /// Parses 64 hex characters (either case). Errors: [`KeyError`].
            fn from_str(text: &str) -> Result<Self, KeyError> {
                decode_hex32(text).map($name)
            }
        }
    };
}

key_type!(
    /// A user's ed25519 public key (32 bytes), which is also the key of the user's archive core.
    /// Parses from 64 hex or a `dat://` URL ([`crate::identity::DatUrl`]).
    IdentityKey
);
key_type!(
    /// The ed25519 public key (32 bytes) of a lobby signalling log: the lobby log of a host or the
    /// log of a joiner. Signals for a log's writer are sealed to it (`crate::signal::seal`).
    LogKey
);
key_type!(
    /// The public key (32 bytes) of a hypercore: what a `dat://` URL names.
    CoreKey
);
key_type!(
    /// A hypercore's discovery key (32 bytes): BLAKE2b-256 keyed by the core key over
    /// `"hypercore"` (hypercore-crypto's `discoveryKey`); see [`CoreKey::discovery_key`].
    DiscoveryKey
);
key_type!(
    /// A relay or DHT announce topic (32 bytes): peers announce their key on it and look it up.
    Topic
);
from_hex_str!(LogKey);
from_hex_str!(CoreKey);
from_hex_str!(DiscoveryKey);
from_hex_str!(Topic);

impl FromStr for IdentityKey {
    type Err = KeyError;

    /// Parses 64 hex characters (either case) or a `dat://<64 hex>[?hints]` URL (its key; the
    /// hints are checked and dropped). Errors: [`KeyError`].
    fn from_str(text: &str) -> Result<Self, KeyError> {
        if text.starts_with("dat://") {
            let url: crate::identity::DatUrl =
                text.parse().map_err(|e| KeyError::Url(Box::new(e)))?;
            return Ok(IdentityKey::from_core(url.key));
        }
        decode_hex32(text).map(IdentityKey)
    }
}

impl IdentityKey {
    /// The identity whose archive core has key `core` (a user's archive key is their identity
    /// key): say so when a `dat://` URL names a user.
    pub const fn from_core(core: CoreKey) -> Self {
        IdentityKey(core.0)
    }

    /// The discovery key of this identity's archive core.
    pub fn discovery_key(&self) -> DiscoveryKey {
        CoreKey::from(*self).discovery_key()
    }
}

impl LogKey {
    /// The signalling log whose core has key `core`: say so when a `dat://` URL names a lobby.
    pub const fn from_core(core: CoreKey) -> Self {
        LogKey(core.0)
    }
}

impl CoreKey {
    /// This core's discovery key: `crypto.discoveryKey(key)` of hypercore-crypto.
    pub fn discovery_key(&self) -> DiscoveryKey {
        DiscoveryKey(crate::hypercore::crypto::discovery_key(&self.0))
    }
}

impl DiscoveryKey {
    /// The topic a core is announced on: its discovery key (never the core key, which would let
    /// anyone watching the relay or the DHT read the core).
    pub const fn topic(&self) -> Topic {
        Topic(self.0)
    }
}

impl From<IdentityKey> for CoreKey {
    /// A user's archive core: its key is the identity key.
    fn from(key: IdentityKey) -> Self {
        CoreKey(key.0)
    }
}

impl From<LogKey> for CoreKey {
    /// A signalling log is a core keyed by its log key.
    fn from(key: LogKey) -> Self {
        CoreKey(key.0)
    }
}

/// Compares a core's key with a key of a role: a user's archive is keyed by their identity key, a
/// signalling log by its log key.
macro_rules! same_core {
    ($role:ident) => {
        impl PartialEq<$role> for CoreKey {
            fn eq(&self, other: &$role) -> bool {
                self.0 == other.0
            }
        }

        impl PartialEq<CoreKey> for $role {
            fn eq(&self, other: &CoreKey) -> bool {
                self.0 == other.0
            }
        }
    };
}
same_core!(IdentityKey);
same_core!(LogKey);

#[cfg(test)]
mod tests;
