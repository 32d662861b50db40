//! dat-social: Dat-style social networking and WebRTC signalling over hypercore logs.
//!
//! The layers, bottom up: [`identity`] (ed25519 key pairs and `dat://` URLs) and [`keys`] (one
//! type per 32-byte key: identity, log, core, discovery key, topic), hypercore cores and
//! their replication, the archive holding `profile.json` / `session.json`, the signalling logs of a
//! lobby, and WebRTC data channels. See `README.md` for the map.
//!
//! Features: without `native` (on by default) the crate is the sans-IO protocol core, which
//! builds for `wasm32-unknown-unknown`: [`identity`], [`hypercore`] (in memory), [`archive`],
//! [`schema`], [`signal`], the [`net`] codecs (Noise, secret-stream framing and crypto, protomux,
//! replication), the [`dht`] codecs, the [`udx`] stream core and the [`relay`] codec. `native`
//! adds the tokio drivers, WebRTC, LAN discovery and the file system; `relay-server` adds
//! `relay::server`. See `Cargo.toml` for the list.

#![warn(missing_docs)]
#![warn(unreachable_pub)]

pub mod archive;
pub mod dht;
#[cfg(feature = "native")]
pub mod discovery;
#[cfg(feature = "native")]
pub mod endpoint;
#[cfg(feature = "native")]
pub mod friends;
#[cfg(feature = "native")]
pub mod home;
pub mod hypercore;
pub mod ice;
pub mod identity;
pub mod keys;
#[cfg(feature = "native")]
pub mod lobby;
pub mod net;
pub mod relay;
#[cfg(feature = "native")]
pub mod remote;
#[cfg(feature = "native")]
pub mod rtc;
pub mod schema;
pub mod signal;
#[cfg(feature = "native")]
mod sync;
#[cfg(feature = "native")]
pub mod time;
pub mod udx;
