//! Finding the peers that serve an archive, identified by its 32-byte discovery key
//! ([`crate::hypercore::crypto::discovery_key`]: BLAKE2b-256 keyed by the archive's public key,
//! so that whoever hears the discovery key cannot learn the public key from it).
//!
//! [`Discovery`] is the one interface the rest of the crate uses: candidate routes to an
//! archive's owner from address hints, the local network ([`mdns`], multicast DNS / DNS-SD, no
//! relay needed) and relays (announce/lookup of the discovery key).
pub mod mdns;
mod routes;

pub use routes::{Discovery, DiscoveryOptions, Hints};
