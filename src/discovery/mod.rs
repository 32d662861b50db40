//! Finding the peers that serve an archive, identified by its 32-byte discovery key
//! ([`crate::hypercore::crypto::discovery_key`]: BLAKE2b-256 keyed by the archive's public key,
//! so that whoever hears the discovery key cannot learn the public key from it).
//!
//! [`Discovery`] is the one interface the rest of the crate uses: candidate routes to an
//! archive's owner from a list of [`AddressLookup`]s, each of which may also publish our own
//! archive: address hints, the local network ([`mdns`], multicast DNS / DNS-SD, no relay
//! needed) and relays (announce/lookup of the discovery key), with one relay session per relay
//! ([`RelayPool`]) however many users are looked up or reached through it.
mod lookup;
pub mod mdns;
mod pool;
mod routes;

pub use lookup::{
    AddressLookup, HintLookup, LanLookup, LookupError, Publication, Record, RelayLookup, Target,
};
pub use pool::RelayPool;
pub use routes::{default_lookups, Discovery, Hints};
