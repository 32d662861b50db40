//! Our own hypercore: a signed, append-only log whose merkle proofs are byte-compatible on the
//! wire with JS hypercore 11.37.1 in *compat* mode (core key = the writer's ed25519 public key).
//!
//! Modules, bottom up:
//! - [`encoding`]: compact-encoding primitives (npm `compact-encoding` 3.x wire format).
//! - [`messages`]: the replication messages of JS `lib/messages.js` (`wire.request`, `wire.data`, ...).
//! - [`flat_tree`]: flat-tree index math (npm `flat-tree` 1.x).
//! - [`crypto`]: BLAKE2b node hashes, namespaces, signables and the discovery key
//!   (npm `hypercore-crypto` 3.x and hypercore `lib/caps.js`).
//! - `merkle` (internal): proof generation and verification (JS `lib/merkle-tree.js`).
//! - [`storage`]: our own crash-safe on-disk (or in-memory) format; not JS-compatible on disk.
//! - `core` (internal): [`Core`], one hypercore: append, get, create_proof, verify_and_apply.
//!
//! Disk compatibility with JS is a non-goal (JS 11 keeps cores in RocksDB); wire compatibility is.

#![warn(missing_docs)]

pub(crate) mod bitfield;
pub(crate) mod core;
pub mod crypto;
pub mod encoding;
pub mod flat_tree;
pub(crate) mod merkle;
pub mod messages;
pub mod storage;

use std::path::PathBuf;

pub use self::core::{Applied, Core, HeaderDamage};
pub use bitfield::Bitfield;
pub use encoding::DecodeError;

/// Errors of the hypercore module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of the core could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file (or directory) involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file of the core is damaged: too short for what the header promises, a bad checksum, a
    /// header signature that does not verify, or block bytes that do not match their tree hash.
    #[error("core file {path} is corrupt: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// `Core::create` found an existing core in the directory.
    #[error("a core already exists in {0}")]
    Exists(PathBuf),
    /// `Core::open` found no core in the directory.
    #[error("no core in {0}")]
    NotFound(PathBuf),
    /// The stored core has a different key than the one given.
    #[error("core key mismatch: expected {expected}, found {found}")]
    WrongKey {
        /// Hex key the caller expected.
        expected: String,
        /// Hex key stored in the core.
        found: String,
    },
    /// A write (`append`) on a core opened without its signing key.
    #[error("core is not writable (opened without its signing key)")]
    NotWritable,
    /// A wire message could not be decoded.
    #[error("decode error: {0}")]
    Decode(#[from] DecodeError),
    /// A peer's proof does not verify: a node hash mismatch, a missing or unexpected node, a
    /// signature missing, or a block/upgrade that does not fit our tree. The string says which.
    #[error("invalid proof: {0}")]
    InvalidProof(String),
    /// The upgrade's signature does not verify under the core key.
    #[error("invalid signature on upgrade to length {length}")]
    InvalidSignature {
        /// The length the signature claimed to cover.
        length: u64,
    },
    /// A peer's request cannot be answered because it is malformed (JS replies `noData` with
    /// reason `INVALID_REQUEST` = 2): an upgrade past our length, `nodes` out of bounds, a bad seek.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The peer is on another fork (truncations are not supported by this implementation).
    #[error("fork mismatch: ours {ours}, theirs {theirs}")]
    ForkMismatch {
        /// Our fork id.
        ours: u64,
        /// The peer's fork id.
        theirs: u64,
    },
    /// The core's writer signed two different trees: a peer proved (with a valid signature) a
    /// tree whose first `length` blocks differ from the signed tree we hold. The archive forked
    /// (a restored backup or a copied data directory writing on its own); our verified copy is
    /// kept and nothing from the other tree is stored.
    #[error("the archive forked: two different signed trees at length {length}")]
    Conflict {
        /// The length at which the two signed trees disagree (the shorter tree's length).
        length: u64,
    },
    /// Something this implementation deliberately does not do (non-compat manifests, truncation).
    #[error("unsupported: {0}")]
    Unsupported(String),
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;
