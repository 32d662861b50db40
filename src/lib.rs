//! dat-social: Dat-style social networking and WebRTC signalling over hypercore logs.
//!
//! The layers, bottom up: [`identity`] (ed25519 key pairs and `dat://` URLs), hypercore cores and
//! their replication, the archive holding `profile.json` / `session.json`, the signalling logs of a
//! lobby, and WebRTC data channels. See `README.md` for the map.

#![warn(missing_docs)]

pub mod archive;
pub mod discovery;
pub mod endpoint;
pub mod friends;
pub mod home;
pub mod hypercore;
pub mod identity;
pub mod lobby;
pub mod net;
pub mod relay;
pub mod remote;
pub mod rtc;
pub mod schema;
pub mod signal;
pub mod time;
