//! [`Core`]: one hypercore (compat mode: key = ed25519 public key of its only writer).
//!
//! A writer appends blocks and signs the new tree once per batch; a replica learns blocks and
//! signed upgrades from peers through [`Core::verify_and_apply`]. [`Core::create_proof`]
//! answers a peer's `wire.request` with a `wire.data`, as JS hypercore 11.37.1's replicator does
//! (`_getProof` / `MerkleTree.proof`), and [`Core::verify_and_apply`] checks a `wire.data` the way
//! `core.verify` / `MerkleTree.verify` / `Verifier` (compat signer) do.
//!
//! Durability: `append` and every upgrade fsync the data files, then commit the header (one of
//! two alternating checksummed slots, see [`super::storage`]), so a crash at any point leaves the
//! previous signed state readable. Blocks received without an upgrade are written without fsync
//! (call [`Core::flush`] to make them durable): a process crash keeps them, but after a power
//! loss before `flush` a block's bitfield bit may survive without its bytes, and `get` then
//! reports [`Error::Corrupt`] for that block.

use ed25519_dalek::SigningKey;

#[cfg(feature = "native")]
mod open;
mod proof;
#[cfg(test)]
mod tests;

use super::bitfield::Bitfield;
use super::crypto;
use super::merkle::{self, Batch, NodeSource, TreeState};
use super::messages::TreeNode;
use super::storage::{self, FileKind, Header, Store, INDEX_RECORD, NODE_RECORD};
use super::{Error, Result};
use crate::keys::{CoreKey, DiscoveryKey};

/// What [`Core::verify_and_apply`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    /// The signed length grew (the upgrade was newer than ours).
    pub upgraded: bool,
    /// Index of a block that was newly stored (`None` if there was no block, or we had it).
    pub block: Option<u64>,
    /// The core's length after applying.
    pub length: u64,
}

/// A header slot found damaged at open while the other files hold a longer tree that extends
/// the surviving slot's and verifies block by block: the damaged slot may well have signed (and
/// served) that longer tree, so writing from the older state could sign a second, different tree
/// at an already signed length. See [`Core::open`] and [`Core::recover`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderDamage {
    /// What is wrong with the slot (from the storage layer).
    pub reason: String,
    /// The signed length of the surviving slot, in blocks.
    pub header_length: u64,
    /// The length, in blocks, of the tree the files hold and verify.
    pub files_length: u64,
}

impl std::fmt::Display for HeaderDamage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}; the surviving slot is signed at length {} but the files hold a tree of {} blocks \
             that may have been signed and served",
            self.reason, self.header_length, self.files_length
        )
    }
}

/// One hypercore log. See the module docs.
#[derive(Debug)]
pub struct Core {
    key: [u8; 32],
    discovery_key: [u8; 32],
    signing_key: Option<SigningKey>,
    state: TreeState,
    bitfield: Bitfield,
    contiguous_length: u64,
    store: Store,
    /// Set at open when a header slot is damaged and the files hold more (see [`HeaderDamage`]).
    header_damage: Option<HeaderDamage>,
    /// Set when a peer proved a conflicting signed tree (the length where they disagree).
    conflict: Option<u64>,
    /// Fork checks answered (or refused) by peers since open.
    fork_checks: u64,
}

impl NodeSource for Core {
    fn node(&self, index: u64) -> Result<Option<TreeNode>> {
        let mut rec = [0u8; NODE_RECORD as usize];
        let offset = index
            .checked_mul(NODE_RECORD)
            .ok_or_else(|| Error::InvalidRequest(format!("node index {index} out of range")))?;
        let n = self.store.read_at(FileKind::Tree, offset, &mut rec)?;
        if n < rec.len() {
            return Ok(None);
        }
        storage::decode_node(index, &rec).map_err(|reason| Error::Corrupt {
            path: self.store.path(FileKind::Tree),
            reason,
        })
    }
}
impl Core {
    /// A writable core held in memory (lost on drop), for tests and ephemeral logs.
    pub fn in_memory(signing_key: SigningKey) -> Core {
        let key = signing_key.verifying_key().to_bytes();
        Self::init(Store::memory(), key, Some(signing_key)).expect("memory store cannot fail")
    }

    /// A read-only replica of core `public_key` held in memory.
    pub fn in_memory_replica(public_key: CoreKey) -> Core {
        Self::init(Store::memory(), *public_key.as_bytes(), None).expect("memory store cannot fail")
    }

    fn init(mut store: Store, key: [u8; 32], signing_key: Option<SigningKey>) -> Result<Core> {
        let header = Header {
            key,
            fork: 0,
            length: 0,
            byte_length: 0,
            signature: Vec::new(),
            roots: Vec::new(),
        };
        store.write_header(&header)?;
        Ok(Core {
            key,
            discovery_key: crypto::discovery_key(&key),
            signing_key,
            state: TreeState::default(),
            bitfield: Bitfield::new(),
            contiguous_length: 0,
            store,
            header_damage: None,
            conflict: None,
            fork_checks: 0,
        })
    }

    /// The header damage found at open (a reader's view; see [`HeaderDamage`]), if any.
    pub fn header_damage(&self) -> Option<&HeaderDamage> {
        self.header_damage.as_ref()
    }

    /// The length at which a peer proved a signed tree different from ours, if one did since
    /// this core was opened (see [`Error::Conflict`]).
    pub fn conflict(&self) -> Option<u64> {
        self.conflict
    }

    /// How many fork checks peers answered since open ([`Core::check_conflict`] calls plus
    /// [`Core::note_fork_check_refused`]): a reader that waits for one knows the peer's tree
    /// was compared with ours.
    pub fn fork_checks(&self) -> u64 {
        self.fork_checks
    }

    /// Counts a fork check the peer could not answer (it lacks the block): nothing was proven
    /// either way, but there is nothing more to wait for.
    pub fn note_fork_check_refused(&mut self) {
        self.fork_checks += 1;
    }

    /// The core key (the writer's ed25519 public key).
    pub fn key(&self) -> CoreKey {
        CoreKey::from_bytes(self.key)
    }

    /// The discovery key (`hypercore-crypto` `discoveryKey(key)`), safe to announce.
    pub fn discovery_key(&self) -> DiscoveryKey {
        DiscoveryKey::from_bytes(self.discovery_key)
    }

    /// Signed length in blocks.
    pub fn length(&self) -> u64 {
        self.state.length
    }

    /// Fork id (always 0 here: we never truncate).
    pub fn fork(&self) -> u64 {
        self.state.fork
    }

    /// Total bytes of the signed blocks.
    pub fn byte_length(&self) -> u64 {
        self.state.byte_length
    }

    /// Number of blocks stored from index 0 without a gap.
    pub fn contiguous_length(&self) -> u64 {
        self.contiguous_length
    }

    /// True when opened with the signing key.
    pub fn writable(&self) -> bool {
        self.signing_key.is_some()
    }

    /// The 64-byte signature over the current tree (`None` while the core is empty).
    pub fn signature(&self) -> Option<[u8; 64]> {
        self.state.signature.as_slice().try_into().ok()
    }

    /// The full roots of the current tree.
    pub fn roots(&self) -> &[TreeNode] {
        &self.state.roots
    }

    /// The tree hash (`crypto.tree(roots)`) the signature covers.
    pub fn tree_hash(&self) -> [u8; 32] {
        crypto::tree_hash(&self.state.roots)
    }

    /// The signed state (fork, length, byte length, roots, signature).
    pub fn tree_state(&self) -> &TreeState {
        &self.state
    }

    /// The stored-blocks bitfield (for `wire.bitfield` / `wire.range` announcements).
    pub fn bitfield(&self) -> &Bitfield {
        &self.bitfield
    }

    /// Is block `index` stored locally?
    pub fn has(&self, index: u64) -> bool {
        index < self.state.length && self.bitfield.get(index)
    }

    /// Stored tree node at flat-tree `index`.
    pub fn tree_node(&self, index: u64) -> Result<Option<TreeNode>> {
        self.node(index)
    }

    /// `nodes` for a block/hash request (JS `MerkleTree.missingNodes(state, index, length)`):
    /// how many nodes up from flat-tree `index` we lack. For block `i` pass `2 * i`.
    pub fn missing_nodes(&self, index: u64) -> Result<u64> {
        merkle::missing_nodes(self, index, self.state.length)
    }

    /// Appends `blocks` (each any size, including empty) as one batch: writes them, signs the
    /// new tree once, fsyncs, then commits the header. Returns the new length.
    /// Errors: [`Error::NotWritable`], [`Error::Io`] (the previous state stays committed).
    pub fn append(&mut self, blocks: &[&[u8]]) -> Result<u64> {
        let Some(sk) = &self.signing_key else {
            return Err(Error::NotWritable);
        };
        if blocks.is_empty() {
            return Ok(self.state.length);
        }
        let old = self.state.length;
        let mut batch = Batch::new(&self.state);
        let mut data = Vec::with_capacity(blocks.iter().map(|b| b.len()).sum());
        let mut index = Vec::with_capacity(blocks.len() * INDEX_RECORD as usize);
        for b in blocks {
            index.extend_from_slice(&(self.state.byte_length + data.len() as u64).to_le_bytes());
            data.extend_from_slice(b);
            batch.append(b);
        }
        let signature = crypto::sign_tree(sk, &batch.roots, batch.length, batch.fork);

        self.store
            .write_at(FileKind::Data, self.state.byte_length, &data)?;
        self.store
            .write_at(FileKind::Index, old * INDEX_RECORD, &index)?;
        self.write_nodes(&mut batch.nodes)?;
        let mut bits = self.bitfield.clone();
        for i in old..batch.length {
            bits.set(i, true);
        }
        self.write_bitfield_range(&bits, old, batch.length)?;

        let new_state = TreeState {
            fork: batch.fork,
            length: batch.length,
            byte_length: batch.byte_length,
            roots: batch.roots,
            signature: signature.to_vec(),
        };
        self.commit(&new_state)?;
        self.state = new_state;
        self.bitfield = bits;
        if self.contiguous_length == old {
            self.contiguous_length = self.bitfield.first_unset(old).min(self.state.length);
        }
        Ok(self.state.length)
    }

    /// Block `index`, checked against its tree hash. `Ok(None)` when not stored locally.
    /// Errors: [`Error::Corrupt`] if the stored bytes, offset or leaf node are damaged.
    pub fn get(&self, index: u64) -> Result<Option<Vec<u8>>> {
        if !self.has(index) {
            return Ok(None);
        }
        let leaf = self.node(2 * index)?.ok_or_else(|| Error::Corrupt {
            path: self.store.path(FileKind::Tree),
            reason: format!("leaf of stored block {index} missing"),
        })?;
        let mut off = [0u8; 8];
        if self
            .store
            .read_at(FileKind::Index, index * INDEX_RECORD, &mut off)?
            < 8
        {
            return Err(Error::Corrupt {
                path: self.store.path(FileKind::Index),
                reason: format!("offset of block {index} missing (file truncated)"),
            });
        }
        let offset = u64::from_le_bytes(off);
        let data_path = self.store.path(FileKind::Data);
        let size = usize::try_from(leaf.size)
            .ok()
            .filter(|s| {
                offset
                    .checked_add(*s as u64)
                    .is_some_and(|e| e <= self.store.len(FileKind::Data).unwrap_or(0))
            })
            .ok_or_else(|| Error::Corrupt {
                path: data_path.clone(),
                reason: format!(
                    "block {index} ({} bytes at {offset}) lies past the end",
                    leaf.size
                ),
            })?;
        let mut buf = vec![0u8; size];
        let n = self.store.read_at(FileKind::Data, offset, &mut buf)?;
        if n < size || crypto::leaf_hash(&buf) != leaf.hash {
            return Err(Error::Corrupt {
                path: data_path,
                reason: format!("block {index} does not match its tree hash"),
            });
        }
        Ok(Some(buf))
    }

    /// Makes every write so far durable (fsync of all files).
    pub fn flush(&mut self) -> Result<()> {
        self.store.sync()
    }

    /// fsync, then atomically replace the header with `s`.
    fn commit(&mut self, s: &TreeState) -> Result<()> {
        self.store.sync()?;
        let header = Header {
            key: self.key,
            fork: s.fork,
            length: s.length,
            byte_length: s.byte_length,
            signature: s.signature.clone(),
            roots: s.roots.clone(),
        };
        self.store.write_header(&header)
    }

    /// Writes node records, coalescing runs of consecutive indexes into one write each.
    fn write_nodes(&mut self, nodes: &mut [TreeNode]) -> Result<()> {
        nodes.sort_unstable_by_key(|n| n.index);
        let mut i = 0;
        while i < nodes.len() {
            let start = nodes[i].index;
            let mut buf = Vec::new();
            let mut next = start;
            while i < nodes.len() && nodes[i].index <= next {
                if nodes[i].index == next {
                    buf.extend_from_slice(&storage::encode_node(&nodes[i]));
                    next += 1;
                }
                i += 1;
            }
            self.store
                .write_at(FileKind::Tree, start * NODE_RECORD, &buf)?;
        }
        Ok(())
    }

    /// Writes the bitfield bytes covering blocks `[from, to)`.
    fn write_bitfield_range(&mut self, bits: &Bitfield, from: u64, to: u64) -> Result<()> {
        let (first, last) = (from / 8, to.div_ceil(8));
        let bytes: Vec<u8> = (first..last).map(|b| bits.byte(b * 8)).collect();
        self.store.write_at(FileKind::Bitfield, first, &bytes)
    }
}
