//! Finding the peers that serve an archive, identified by its 32-byte discovery key
//! ([`crate::hypercore::crypto::discovery_key`]: BLAKE2b-256 keyed by the archive's public key,
//! so that whoever hears the discovery key cannot learn the public key from it).
//!
//! Sources: [`mdns`], multicast DNS / DNS-SD on the local network (no relay needed).
pub mod mdns;
