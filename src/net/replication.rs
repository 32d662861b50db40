//! Sans-IO hypercore replication of one core over one protomux channel, following JS hypercore
//! 11.37.1 `lib/replicator.js` (the `hypercore/alpha` protocol) and `lib/messages.js`.
//!
//! One [`Replicator`] per (connection, core). The driver feeds it the channel's open handshake
//! ([`Replicator::on_open`]), every channel message ([`Replicator::on_message`]) and every local
//! change of the core ([`Replicator::on_local_change`]), and sends what
//! [`Replicator::poll_transmit`] returns as protomux messages `(type, payload)` on the channel.
//!
//! Behaviour (the parts of JS `Peer` a live, full replica needs):
//! - open: the channel handshake carries `caps.replicate(isInitiator, key, handshakeHash)`; the
//!   remote's must equal `caps.replicate(!isInitiator, ...)`, else the connection is refused.
//!   Then `range { start: 0, length: contiguous }` and `sync` are sent (JS sends `sync` first;
//!   either order is valid, and ours lets a reader ask for blocks with its first upgrade).
//! - uploader: `request` → `create_proof` → `data`, or `noData` (reason 1 not available,
//!   2 invalid request). `want` → `range` of what we have.
//! - downloader (eager, live): when the remote's `sync` says it is longer, it can upgrade us, and
//!   it has acknowledged our length, request the upgrade (one at a time, as JS; an empty replica
//!   asks for block 0 in the same request, as JS `_requestRangeBlock` attaches an upgrade to a
//!   block past its length, which saves the reader a round trip); request every
//!   block below our length that we miss and the remote has announced (`range`/`bitfield`), with
//!   at most [`DEFAULT_MAX_INFLIGHT`] requests in flight.
//! - on every local change (append, or data verified from any peer) send `range` with the new
//!   contiguous length and `sync` with the new length, so the remote can ask at once.
//!
//! - fork check (our addition; JS does the like in `core.checkConflict`): when a proof from the
//!   remote fails to verify against our tree (once per remote length), and once per connection
//!   when a reader learns that the remote holds no more than it does (a writer never asks), we
//!   ask for the remote's last block we both should have, with an upgrade from
//!   length 0 (`request { block: { index: min(ours, theirs) - 1, nodes: 0 }, upgrade: { start:
//!   0, length: theirs } }`). That proof verifies against the signature alone; if the signed
//!   tree it proves differs from ours within the shorter length, the writer signed two trees:
//!   the core remembers the conflict ([`ReplicaCore::check_conflict`]), which readers waiting on
//!   the core report at once, and we download nothing more from that peer.
//!
//! Not implemented (JS features this project does not use): seeks, hash requests, pushes,
//! extensions (received ones are ignored), truncation (a fork id mismatch just stops the
//! download from that peer), manifests of non-compat cores.

use std::collections::{HashMap, HashSet};

mod download;
mod remote;

use remote::Remote;

use crate::hypercore::encoding::{CompactEncoding, DecodeError};
use crate::hypercore::messages::{
    Bitfield, Cancel, Data, Extension, Handshake, NoData, Range, Request, RequestBlock,
    RequestUpgrade, Sync, Want,
};
use crate::keys::CoreKey;

/// Protocol name of the hypercore channel (JS also accepts the alias `hypercore`).
pub const PROTOCOL: &str = "hypercore/alpha";
/// JS alias of [`PROTOCOL`], accepted on incoming opens.
pub const PROTOCOL_ALIAS: &str = "hypercore";

/// Message type ids on a hypercore channel, in JS `_makePeer` order.
pub mod msg_type {
    /// `wire.sync`
    pub const SYNC: u64 = 0;
    /// `wire.request`
    pub const REQUEST: u64 = 1;
    /// `wire.cancel`
    pub const CANCEL: u64 = 2;
    /// `wire.data`
    pub const DATA: u64 = 3;
    /// `wire.noData`
    pub const NO_DATA: u64 = 4;
    /// `wire.want`
    pub const WANT: u64 = 5;
    /// `wire.unwant`
    pub const UNWANT: u64 = 6;
    /// `wire.bitfield`
    pub const BITFIELD: u64 = 7;
    /// `wire.range`
    pub const RANGE: u64 = 8;
    /// `wire.extension`
    pub const EXTENSION: u64 = 9;
}

/// JS `NOT_AVAILABLE` noData reason.
pub const NOT_AVAILABLE: u64 = 1;
/// JS `INVALID_REQUEST` noData reason.
pub const INVALID_REQUEST: u64 = 2;
/// Default bound on requests in flight per peer (JS uses 16..512 depending on latency).
pub const DEFAULT_MAX_INFLIGHT: usize = 64;
/// Most scattered block ranges remembered per peer (beyond the contiguous prefix).
pub const MAX_REMOTE_RANGES: usize = 65_536;
/// Largest `bitfield` message processed, in 32-bit words (JS pages are 1024 words).
pub const MAX_BITFIELD_WORDS: usize = 16 * 1024;
/// While downloading, `range` announcements are sent every this many new contiguous blocks.
pub const RANGE_STEP: u64 = 256;
/// Invalid data messages tolerated before the peer is dropped (JS `MAX_INVALID_REQUESTS`).
pub const MAX_INVALID: u32 = 64;

/// What the replicator needs from a core. Implemented for [`crate::hypercore::Core`] in
/// `shared_core`; a trait so the protocol logic does not depend on storage details.
pub trait ReplicaCore {
    /// The 32-byte core key.
    fn key(&self) -> [u8; 32];
    /// Current fork id.
    fn fork(&self) -> u64;
    /// Current length in blocks (the signed tree length; blocks may be missing in a replica).
    fn length(&self) -> u64;
    /// Number of blocks from 0 we hold without a gap.
    fn contiguous_length(&self) -> u64;
    /// Whether block `index` is stored.
    fn has(&self, index: u64) -> bool;
    /// JS `MerkleTree.missingNodes(2 * index, length)`: tree levels we lack above the leaf.
    fn missing_nodes(&self, index: u64) -> u64;
    /// JS `MerkleTree.proof`: `Ok(None)` when we cannot serve it, `Err` for an invalid request
    /// (or our own storage failing: [`crate::hypercore::Error::Corrupt`], `Io`).
    fn create_proof(&mut self, request: &Request) -> Result<Option<Data>, crate::hypercore::Error>;
    /// Verifies a proof and stores what it brings (an upgrade and/or a block). Errors: the
    /// proof does not verify, or storing failed.
    fn verify_and_apply(&mut self, data: &Data) -> Result<(), crate::hypercore::Error>;
    /// Verifies the answer to a fork check on its own (against the signature only) and compares
    /// the tree it proves with ours: `Ok(Some(length))` when they differ within `length` blocks
    /// (the core remembers it), `Ok(None)` when they agree, `Err` when the proof is invalid.
    /// The default never finds a conflict.
    fn check_conflict(&mut self, _data: &Data) -> Result<Option<u64>, crate::hypercore::Error> {
        Ok(None)
    }
    /// The remote could not answer a fork check (`noData`). The default does nothing.
    fn fork_check_refused(&mut self) {}
    /// Whether this side signs the core (a writer never asks its readers to prove their tree).
    fn writable(&self) -> bool {
        false
    }
}

/// Why replication with a peer failed; the connection should be closed (as JS destroys the
/// stream on these).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicationError {
    /// The remote's channel handshake capability does not prove it knows the core key in this
    /// session (JS `INVALID_CAPABILITY`).
    #[error("remote sent an invalid replication capability for core {0}")]
    InvalidCapability(String),
    /// A message on the channel could not be decoded.
    #[error("malformed hypercore message (type {message_type}): {source}")]
    Decode {
        /// The message type id.
        message_type: u64,
        /// What was wrong.
        source: DecodeError,
    },
    /// The remote sent more than [`MAX_INVALID`] proofs that did not verify.
    #[error("remote sent {0} invalid proofs; giving up on it")]
    TooManyInvalid(u32),
}

/// Counters for tests, benchmarks and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicationStats {
    /// `data` messages we verified and applied.
    pub data_applied: u64,
    /// `data` messages whose proof failed.
    pub data_invalid: u64,
    /// `data` messages skipped because another peer had already brought what they carry.
    pub data_stale: u64,
    /// Requests we answered with `data`.
    pub requests_served: u64,
    /// Requests we answered with `noData`.
    pub requests_refused: u64,
    /// `sync` messages sent.
    pub syncs_sent: u64,
}

/// What a request id was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inflight {
    /// An upgrade, with the block it also asked for (block 0 of an empty replica).
    Upgrade(Option<u64>),
    Block(u64),
    /// A fork check (see the module docs).
    Check,
}

/// Replication state of one core with one peer. See the module docs.
#[derive(Debug)]
pub struct Replicator {
    key: [u8; 32],
    is_initiator: bool,
    handshake_hash: [u8; 64],
    max_inflight: usize,
    remote: Remote,
    next_id: u64,
    inflight: HashMap<u64, Inflight>,
    upgrade_inflight: bool,
    blocks_inflight: HashSet<u64>,
    /// Blocks the remote answered `noData` for; retried after its next `sync`/`range`.
    unavailable: HashSet<u64>,
    /// Remote length for which it refused an upgrade; retried when its length changes.
    upgrade_refused_at: Option<u64>,
    /// Lowest block index that may be missing locally.
    cursor: u64,
    /// (fork, length, remote length, can upgrade) of the last `sync` we sent.
    last_sync: Option<(u64, u64, u64, bool)>,
    /// Contiguous length we last announced with `range`.
    announced: u64,
    invalid: u32,
    /// A proof failed against our tree: check the remote's tree for a fork.
    suspect: bool,
    /// Remote length at which a fork check after a failed proof was last sent (one per length).
    checked_at: Option<u64>,
    /// Whether the one check per connection of a remote that is not longer than us was sent.
    checked_once: bool,
    /// The remote proved a signed tree that conflicts with ours at this length: download
    /// nothing more from it.
    forked: Option<u64>,
    stats: ReplicationStats,
    out: Vec<(u64, Vec<u8>)>,
}

impl Replicator {
    /// A replicator for the core with `key`, on a connection where we are `is_initiator` and whose
    /// Noise handshake hash is `handshake_hash` (64 bytes).
    pub fn new(key: CoreKey, is_initiator: bool, handshake_hash: [u8; 64]) -> Self {
        Self {
            key: *key.as_bytes(),
            is_initiator,
            handshake_hash,
            max_inflight: DEFAULT_MAX_INFLIGHT,
            remote: Remote {
                uploading: true,
                ..Remote::default()
            },
            next_id: 1,
            inflight: HashMap::new(),
            upgrade_inflight: false,
            blocks_inflight: HashSet::new(),
            unavailable: HashSet::new(),
            upgrade_refused_at: None,
            cursor: 0,
            last_sync: None,
            announced: 0,
            invalid: 0,
            suspect: false,
            checked_at: None,
            checked_once: false,
            forked: None,
            stats: ReplicationStats::default(),
            out: Vec::new(),
        }
    }

    /// Sets the bound on requests in flight (at least 1).
    pub fn set_max_inflight(&mut self, max: usize) {
        self.max_inflight = max.max(1);
    }

    /// Our channel handshake (`wire.handshake { seeks: false, capability }`), encoded, to put in
    /// the protomux `open` message.
    pub fn local_handshake(&self) -> Vec<u8> {
        Handshake {
            seeks: false,
            capability: crate::hypercore::crypto::replicate_capability(
                self.is_initiator,
                &self.key,
                &self.handshake_hash,
            ),
        }
        .to_bytes()
    }

    /// Counters so far.
    pub fn stats(&self) -> ReplicationStats {
        self.stats
    }

    /// Whether the remote's channel is open and its capability checked.
    pub fn is_open(&self) -> bool {
        self.remote.opened
    }

    /// The remote's length as its last `sync` said.
    pub fn remote_length(&self) -> u64 {
        self.remote.length
    }

    /// The length at which the remote proved a signed tree that conflicts with ours, if it did.
    pub fn forked(&self) -> Option<u64> {
        self.forked
    }

    /// Drains the messages to send on the channel, `(message type, payload)`, oldest first:
    /// everything the inputs since the last call produced (empty when there is nothing to say).
    pub fn poll_transmit(&mut self) -> Vec<(u64, Vec<u8>)> {
        std::mem::take(&mut self.out)
    }

    /// The channel paired: checks the remote's capability, then announces our state.
    ///
    /// Errors: [`ReplicationError::InvalidCapability`], or [`ReplicationError::Decode`] (type 0
    /// stands for the handshake here).
    pub fn on_open(
        &mut self,
        core: &mut dyn ReplicaCore,
        remote_handshake: &[u8],
    ) -> Result<(), ReplicationError> {
        let hs =
            Handshake::from_bytes(remote_handshake).map_err(|source| ReplicationError::Decode {
                message_type: 0,
                source,
            })?;
        let expected = crate::hypercore::crypto::replicate_capability(
            !self.is_initiator,
            &self.key,
            &self.handshake_hash,
        );
        if hs.capability != expected {
            return Err(ReplicationError::InvalidCapability(hex::encode(self.key)));
        }
        if self.remote.opened {
            return Ok(());
        }
        self.remote.opened = true;
        // `range` before `sync`: a reader that learns our length already knows what we hold,
        // so its first request can carry a block with the upgrade (see `update`).
        self.announce_range(core);
        self.send_sync(core, true);
        Ok(())
    }

    /// Our core changed (local append, or data applied from any peer): tell the remote, and ask for
    /// whatever is now requestable.
    pub fn on_local_change(&mut self, core: &mut dyn ReplicaCore) {
        if !self.remote.opened {
            return;
        }
        self.announce_range(core);
        self.send_sync(core, false);
        self.update(core);
    }

    /// Handles one message received on the channel.
    ///
    /// Errors: [`ReplicationError::Decode`] for malformed messages,
    /// [`ReplicationError::TooManyInvalid`] after too many bad proofs.
    pub fn on_message(
        &mut self,
        core: &mut dyn ReplicaCore,
        message_type: u64,
        payload: &[u8],
    ) -> Result<(), ReplicationError> {
        let dec = |source| ReplicationError::Decode {
            message_type,
            source,
        };
        match message_type {
            msg_type::SYNC => self.on_sync(core, Sync::from_bytes(payload).map_err(dec)?),
            msg_type::REQUEST => self.on_request(core, Request::from_bytes(payload).map_err(dec)?),
            msg_type::CANCEL => {
                // Requests are answered as they arrive, so there is nothing left to cancel.
                Cancel::from_bytes(payload).map_err(dec)?;
            }
            msg_type::DATA => return self.on_data(core, Data::from_bytes(payload).map_err(dec)?),
            msg_type::NO_DATA => self.on_no_data(core, NoData::from_bytes(payload).map_err(dec)?),
            msg_type::WANT => self.on_want(core, Want::from_bytes(payload).map_err(dec)?),
            msg_type::UNWANT => {
                Want::from_bytes(payload).map_err(dec)?;
            }
            msg_type::BITFIELD => {
                self.on_bitfield(core, Bitfield::from_bytes(payload).map_err(dec)?)
            }
            msg_type::RANGE => self.on_range(core, Range::from_bytes(payload).map_err(dec)?),
            msg_type::EXTENSION => {
                let ext = Extension::from_bytes(payload).map_err(dec)?;
                tracing::debug!(name = %ext.name, "ignoring hypercore extension message");
            }
            other => tracing::debug!(other, "ignoring unknown hypercore message type"),
        }
        Ok(())
    }

    fn push<M: CompactEncoding>(&mut self, message_type: u64, m: &M) {
        self.out.push((message_type, m.to_bytes()));
    }

    /// JS `sendSync`. Skips a sync identical to the last one unless `force`.
    fn send_sync(&mut self, core: &mut dyn ReplicaCore, force: bool) {
        let (fork, length) = (core.fork(), core.length());
        let same_fork = fork == self.remote.fork;
        let remote_length = if same_fork { self.remote.length } else { 0 };
        // JS `_canUpgrade`: we can prove an upgrade from the remote's length to ours.
        let can_upgrade = same_fork && (self.remote.length == 0 || self.remote.length < length);
        let state = (fork, length, remote_length, can_upgrade);
        if !force && self.last_sync == Some(state) {
            return;
        }
        self.last_sync = Some(state);
        self.stats.syncs_sent += 1;
        self.push(
            msg_type::SYNC,
            &Sync {
                fork,
                length,
                remote_length,
                can_upgrade,
                uploading: true,
                downloading: true,
                has_manifest: false,
                allow_push: false,
            },
        );
    }

    /// JS `broadcastRange(0, contiguous)`: readers only request blocks we announced. While we
    /// are still downloading, announce in steps of [`RANGE_STEP`] blocks instead of after every
    /// block (JS likewise skips per-block broadcasts far below the head).
    fn announce_range(&mut self, core: &mut dyn ReplicaCore) {
        let contig = core.contiguous_length();
        if contig == 0 || contig <= self.announced {
            return;
        }
        if contig < core.length() && contig - self.announced < RANGE_STEP {
            return;
        }
        self.announced = contig;
        self.send_contiguous_range(contig);
    }

    /// Sends `range { start: 0, length }`: we hold blocks `0..length`.
    fn send_contiguous_range(&mut self, length: u64) {
        self.push(
            msg_type::RANGE,
            &Range {
                drop: false,
                start: 0,
                length,
            },
        );
    }

    fn on_sync(&mut self, core: &mut dyn ReplicaCore, m: Sync) {
        let length_changed = m.length != self.remote.length;
        self.remote.synced = true;
        self.remote.fork = m.fork;
        self.remote.length = m.length;
        self.remote.length_acked = if m.fork == core.fork() {
            m.remote_length
        } else {
            0
        };
        self.remote.can_upgrade = m.can_upgrade;
        self.remote.uploading = m.uploading;
        if length_changed {
            self.upgrade_refused_at = None;
            self.unavailable.clear();
        }
        // JS onsync: if we are ahead (or the remote has our length wrong), tell it.
        if core.fork() == self.remote.fork
            && (core.length() > self.remote.length || self.remote.length_acked != core.length())
        {
            self.send_sync(core, false);
        }
        self.update(core);
    }

    fn on_request(&mut self, core: &mut dyn ReplicaCore, req: Request) {
        let refuse = |this: &mut Self, reason| {
            this.stats.requests_refused += 1;
            this.push(
                msg_type::NO_DATA,
                &NoData {
                    request: req.id,
                    reason,
                },
            );
        };
        if req.fork != core.fork() {
            return refuse(self, NOT_AVAILABLE);
        }
        if let Some(b) = &req.block {
            if !core.has(b.index) {
                return refuse(self, NOT_AVAILABLE);
            }
        }
        match core.create_proof(&req) {
            Ok(Some(data)) => {
                self.stats.requests_served += 1;
                self.push(msg_type::DATA, &data);
            }
            Ok(None) => refuse(self, NOT_AVAILABLE),
            Err(e) => {
                tracing::debug!(error = %e, id = req.id, "invalid hypercore request");
                refuse(self, INVALID_REQUEST)
            }
        }
    }

    fn on_want(&mut self, core: &mut dyn ReplicaCore, _m: Want) {
        // JS `_onwant`: answer with what we have contiguously (all our cores are contiguous
        // or nearly so); re-send even if announced before, the remote asked.
        let contig = core.contiguous_length();
        if contig > 0 {
            self.send_contiguous_range(contig);
        }
    }

    fn on_range(&mut self, core: &mut dyn ReplicaCore, m: Range) {
        let end = m.start.saturating_add(m.length);
        self.remote.set_range(m.start, end, !m.drop);
        if !m.drop {
            self.unavailable.clear();
            self.update(core);
        }
    }

    fn on_bitfield(&mut self, core: &mut dyn ReplicaCore, m: Bitfield) {
        // JS sends bitfields in pages of at most 32768 bits; ignore anything far larger.
        if m.bitfield.len() > MAX_BITFIELD_WORDS {
            tracing::debug!(
                words = m.bitfield.len(),
                "ignoring oversized bitfield message"
            );
            return;
        }
        // Bit i of word w is block start + 32 * w + i; turn runs of set bits into ranges.
        let mut run: Option<u64> = None;
        let total = m.bitfield.len() as u64 * 32;
        for bit in 0..=total {
            let set = bit < total && m.bitfield[(bit / 32) as usize] & (1 << (bit % 32)) != 0;
            match (set, run) {
                (true, None) => run = Some(bit),
                (false, Some(s)) => {
                    let start = m.start.saturating_add(s);
                    self.remote
                        .set_range(start, m.start.saturating_add(bit), true);
                    run = None;
                }
                _ => {}
            }
        }
        self.update(core);
    }
}

#[cfg(test)]
mod tests;
