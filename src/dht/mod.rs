//! The Hyperswarm DHT (HyperDHT), wire-compatible with npm `hyperdht` 6.34.0 and `dht-rpc`
//! 6.27.0: how a user is found by public key and reached through NATs with no server of ours.
//!
//! Bottom up (see docs/ARCHITECTURE.md and `../shared/reference/HYPERDHT.md`):
//! - [`rpc`]: the dht-rpc datagrams (requests, responses, node ids) every DHT node exchanges.
//! - [`messages`]: hyperdht's messages carried in them (handshake and holepunch routing,
//!   records, announces, mutable values).
//! - [`table`]: the Kademlia routing table; [`node`]: a dht-rpc node as a sans-IO state
//!   machine (answers dht-rpc's commands and, persistent, hyperdht's record commands from its
//!   [`store`]; requests with retries, iterative lookups);
//!   [`DhtNode`] (feature `native`): its tokio driver.
//! - the Noise payload, namespaces and announce signable ([`NoisePayload`],
//!   [`announce_signable`]), which the relay also uses.
//!
//! Everything but the driver is sans-IO and builds for `wasm32-unknown-unknown`; decoders never
//! panic.

#[cfg(feature = "native")]
mod driver;
pub mod messages;
pub mod node;
mod payload;
pub mod rpc;
pub mod store;
pub mod table;
mod wire;

#[cfg(feature = "native")]
pub use driver::{DhtError, DhtNode};

/// The public Hyperswarm bootstrap nodes (hyperdht 6.34.0 `lib/constants.js`, by the IP
/// addresses it suggests for node1..node3.hyperdht.org): where a node joins the public network
/// unless told otherwise.
pub const PUBLIC_BOOTSTRAP: [&str; 3] = [
    "88.99.3.86:49737",
    "142.93.90.113:49737",
    "138.68.147.8:49737",
];

/// hyperdht's default port: 49737.
pub const DEFAULT_PORT: u16 = 49737;
pub use payload::{
    announce_signable, firewall, holepunch_secret, mutable_signable, ns_peer_handshake,
    ns_peer_holepunch, server_target, HolepunchInfo, NoisePayload, RelayThroughInfo, UdxInfo,
};
