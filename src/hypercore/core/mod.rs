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

use std::path::Path;

use ed25519_dalek::SigningKey;

use super::bitfield::Bitfield;
use super::crypto;
use super::flat_tree;
use super::merkle::{self, Batch, NodeSource, TreeState};
use super::messages::{Data, Manifest, Request, TreeNode};
use super::storage::{self, FileKind, Header, Store, INDEX_RECORD, NODE_RECORD};
use super::{Error, Result};

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

/// How [`Core::load`] treats a damaged header slot with a longer tree in the files.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Damaged {
    /// Writers refuse to open; readers open at the surviving slot and report it.
    Refuse,
    /// Re-sign the tree the files hold (writer only): [`Core::recover`].
    Recover,
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
    /// Creates a new, empty, writable core in `dir` (created if missing) for `signing_key`.
    /// Errors: [`Error::Exists`] if `dir` already holds a core; [`Error::Io`].
    pub fn create(dir: &Path, signing_key: SigningKey) -> Result<Core> {
        let mut store = Store::open_dir(dir)?;
        if store.read_header()?.is_some() {
            return Err(Error::Exists(dir.to_owned()));
        }
        Self::init(
            store,
            signing_key.verifying_key().to_bytes(),
            Some(signing_key),
        )
    }

    /// Reopens the core in `dir`. With `signing_key` the core is writable and the key must be the
    /// core's ([`Error::WrongKey`] otherwise); bytes past the committed state are truncated.
    /// Errors: [`Error::NotFound`], [`Error::Corrupt`] (bad header checksum or signature, roots
    /// that disagree with the tree file, files shorter than the header requires), [`Error::Io`].
    ///
    /// A newest header slot that is damaged while the files hold a longer tree that verifies
    /// (see [`HeaderDamage`]): a writer gets [`Error::Corrupt`] naming `header` (it must not sign
    /// a different tree at a length the damaged slot may have signed; [`Core::recover`] restores
    /// the newer state); a reader opens at the surviving slot, [`Core::header_damage`] says so
    /// and [`Core::verify_all`] fails.
    pub fn open(dir: &Path, signing_key: Option<SigningKey>) -> Result<Core> {
        let header = dir.join("header");
        if std::fs::metadata(&header).map_or(true, |m| m.len() == 0) {
            return Err(Error::NotFound(dir.to_owned()));
        }
        let store = Store::open_dir(dir)?;
        Self::load(store, signing_key, Damaged::Refuse)
    }

    /// Opens the writable core in `dir` like [`Core::open`], restoring the newest state when a
    /// header slot is damaged and the files hold a longer tree that extends the surviving slot's
    /// and verifies block by block (leaf hashes, stored parent nodes): that tree is signed again
    /// at its length (ed25519 signatures are deterministic, so a tree signed before gets the same
    /// signature) and committed. Never signs anything else, so never a second tree at a signed
    /// length. Returns the core and what was restored (`None`: nothing to do).
    ///
    /// Errors: as [`Core::open`] (including damage this cannot mend: a bad block, a bad root).
    pub fn recover(dir: &Path, signing_key: SigningKey) -> Result<(Core, Option<HeaderDamage>)> {
        let header = dir.join("header");
        if std::fs::metadata(&header).map_or(true, |m| m.len() == 0) {
            return Err(Error::NotFound(dir.to_owned()));
        }
        let store = Store::open_dir(dir)?;
        let mut core = Self::load(store, Some(signing_key), Damaged::Recover)?;
        let restored = core.header_damage.take();
        Ok((core, restored))
    }

    /// Opens the read-only replica of core `public_key` in `dir`, creating it empty if `dir` holds
    /// no core. Errors: [`Error::WrongKey`] if `dir` holds another core; as [`Core::open`].
    pub fn open_replica(dir: &Path, public_key: [u8; 32]) -> Result<Core> {
        let mut store = Store::open_dir(dir)?;
        if store.read_header()?.is_none() {
            return Self::init(store, public_key, None);
        }
        let core = Self::load(store, None, Damaged::Refuse)?;
        if core.key != public_key {
            return Err(Error::WrongKey {
                expected: hex::encode(public_key),
                found: hex::encode(core.key),
            });
        }
        Ok(core)
    }

    /// A writable core held in memory (lost on drop), for tests and ephemeral logs.
    pub fn in_memory(signing_key: SigningKey) -> Core {
        let key = signing_key.verifying_key().to_bytes();
        Self::init(Store::memory(), key, Some(signing_key)).expect("memory store cannot fail")
    }

    /// A read-only replica of core `public_key` held in memory.
    pub fn in_memory_replica(public_key: [u8; 32]) -> Core {
        Self::init(Store::memory(), public_key, None).expect("memory store cannot fail")
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

    fn load(mut store: Store, signing_key: Option<SigningKey>, damaged: Damaged) -> Result<Core> {
        let header_path = store.header_path();
        let h = store
            .read_header()?
            .ok_or_else(|| Error::NotFound(header_path.clone()))?;
        if let Some(sk) = &signing_key {
            let pk = sk.verifying_key().to_bytes();
            if pk != h.key {
                return Err(Error::WrongKey {
                    expected: hex::encode(pk),
                    found: hex::encode(h.key),
                });
            }
        }
        let corrupt = |path: std::path::PathBuf, reason: String| Error::Corrupt { path, reason };
        check_header(&h).map_err(|r| corrupt(header_path.clone(), r))?;

        let bitfield_len = store.len(FileKind::Bitfield)?;
        let mut bits = vec![0u8; bitfield_len.min(h.length.div_ceil(8)) as usize];
        store.read_at(FileKind::Bitfield, 0, &mut bits)?;
        let bitfield = Bitfield::from_bytes(&bits, h.length);
        let contiguous_length = bitfield.first_unset(0).min(h.length);

        let mut core = Core {
            key: h.key,
            discovery_key: crypto::discovery_key(&h.key),
            signing_key,
            state: TreeState {
                fork: h.fork,
                length: h.length,
                byte_length: h.byte_length,
                roots: h.roots,
                signature: h.signature,
            },
            bitfield,
            contiguous_length,
            store,
            header_damage: None,
            conflict: None,
            fork_checks: 0,
        };
        core.check_files()?;
        if let Some(reason) = core.store.header_damage().map(str::to_owned) {
            let (files_length, batch) = core.scan_ahead()?;
            if files_length > core.state.length {
                let damage = HeaderDamage {
                    reason,
                    header_length: core.state.length,
                    files_length,
                };
                match (damaged, &core.signing_key) {
                    (Damaged::Recover, Some(sk)) => {
                        let signature =
                            crypto::sign_tree(sk, &batch.roots, batch.length, batch.fork);
                        let state = TreeState {
                            fork: batch.fork,
                            length: batch.length,
                            byte_length: batch.byte_length,
                            roots: batch.roots,
                            signature: signature.to_vec(),
                        };
                        let mut bits = core.bitfield.clone();
                        for i in core.state.length..state.length {
                            bits.set(i, true);
                        }
                        core.commit(&state)?;
                        core.state = state;
                        core.bitfield = bits;
                        core.contiguous_length = core.state.length;
                        core.header_damage = Some(damage);
                    }
                    (_, Some(_)) => {
                        return Err(Error::Corrupt {
                            path: core.store.header_path(),
                            reason: format!(
                                "{damage}; refusing to write from the older state (that would \
                                 sign a second, different tree at an already signed length)"
                            ),
                        })
                    }
                    (_, None) => {
                        tracing::warn!(path = %core.store.header_path().display(), "{damage}");
                        core.header_damage = Some(damage);
                    }
                }
            } else {
                tracing::warn!(
                    path = %core.store.header_path().display(),
                    "{reason}; the other files hold nothing past the surviving slot"
                );
            }
        }
        if core.writable() {
            core.truncate_uncommitted()?;
        }
        Ok(core)
    }

    /// How far the files extend the committed tree: from the committed state, appends each
    /// following block whose bitfield bit is set, whose offset follows the previous block, whose
    /// leaf node is stored with a good checksum and matches the block's bytes, and whose new
    /// parent nodes are stored as computed. Returns the length reached (the committed length when
    /// nothing follows) and the grown batch. Reads at most what the `index` file holds.
    fn scan_ahead(&self) -> Result<(u64, Batch)> {
        let mut batch = Batch::new(&self.state);
        let mut good = batch.clone();
        let blocks = self.store.len(FileKind::Index)? / INDEX_RECORD;
        let bits_len = self.store.len(FileKind::Bitfield)?.min(blocks.div_ceil(8));
        let mut bits = vec![0u8; bits_len as usize];
        self.store.read_at(FileKind::Bitfield, 0, &mut bits)?;
        let bits = Bitfield::from_bytes(&bits, blocks);
        let data_len = self.store.len(FileKind::Data)?;
        for index in self.state.length..blocks {
            if !bits.get(index) {
                break;
            }
            let mut off = [0u8; 8];
            self.store
                .read_at(FileKind::Index, index * INDEX_RECORD, &mut off)?;
            if u64::from_le_bytes(off) != good.byte_length {
                break;
            }
            let Ok(Some(leaf)) = self.node(2 * index) else {
                break;
            };
            if leaf.size > data_len.saturating_sub(good.byte_length) {
                break;
            }
            let mut buf = vec![0u8; leaf.size as usize];
            if self
                .store
                .read_at(FileKind::Data, good.byte_length, &mut buf)?
                < buf.len()
                || crypto::leaf_hash(&buf) != leaf.hash
            {
                break;
            }
            let before = batch.nodes.len();
            batch.append(&buf);
            let stored = batch.nodes[before..]
                .iter()
                .all(|n| matches!(self.node(n.index), Ok(Some(s)) if s == *n));
            if !stored {
                break;
            }
            good = batch.clone();
            good.nodes.clear();
            batch.nodes.clear();
        }
        Ok((good.length, good))
    }

    /// Rebuilds the `tree` file of the writable core in `dir` from its blocks: reads every
    /// block of the committed length from `data` at the offsets in `index`, hashes them into a
    /// fresh tree, and only if its roots equal the signed header's rewrites every node record
    /// (and marks the blocks stored in `bitfield`). Mends a `tree` file damaged on disk while
    /// the blocks are intact; changes nothing signed. Never shortens a file.
    ///
    /// Returns `Ok(false)`, writing nothing, when the blocks do not hash to the signed roots
    /// (the blocks themselves are damaged) or `index` is unusable.
    /// Errors: [`Error::NotFound`], [`Error::WrongKey`], [`Error::Corrupt`] for an unreadable
    /// header, [`Error::Io`].
    pub fn rebuild_tree(dir: &Path, signing_key: &SigningKey) -> Result<bool> {
        let header = dir.join("header");
        if std::fs::metadata(&header).map_or(true, |m| m.len() == 0) {
            return Err(Error::NotFound(dir.to_owned()));
        }
        let mut store = Store::open_dir(dir)?;
        let h = store
            .read_header()?
            .ok_or_else(|| Error::NotFound(dir.to_owned()))?;
        let pk = signing_key.verifying_key().to_bytes();
        if pk != h.key {
            return Err(Error::WrongKey {
                expected: hex::encode(pk),
                found: hex::encode(h.key),
            });
        }
        check_header(&h).map_err(|reason| Error::Corrupt {
            path: store.header_path(),
            reason,
        })?;
        let len = h.length;
        let Some(index_bytes) = len
            .checked_mul(INDEX_RECORD)
            .and_then(|n| usize::try_from(n).ok())
        else {
            return Ok(false);
        };
        if store.len(FileKind::Index)? < index_bytes as u64 {
            return Ok(false);
        }
        let mut offsets = vec![0u8; index_bytes];
        if store.read_at(FileKind::Index, 0, &mut offsets)? < offsets.len() {
            return Ok(false);
        }
        let offset = |i: u64| {
            let at = (i * INDEX_RECORD) as usize;
            u64::from_le_bytes(offsets[at..at + 8].try_into().expect("8 bytes"))
        };
        let data_len = store.len(FileKind::Data)?;
        let mut batch = Batch::new(&TreeState {
            fork: h.fork,
            ..TreeState::default()
        });
        for i in 0..len {
            let start = offset(i);
            let end = if i + 1 < len {
                offset(i + 1)
            } else {
                h.byte_length
            };
            if start != batch.byte_length || end < start || end > data_len {
                return Ok(false);
            }
            let mut buf = vec![0u8; (end - start) as usize];
            if store.read_at(FileKind::Data, start, &mut buf)? < buf.len() {
                return Ok(false);
            }
            batch.append(&buf);
        }
        if batch.roots != h.roots || batch.byte_length != h.byte_length {
            return Ok(false);
        }
        // Every node of the tree at its place; the places of nodes that don't exist yet (a
        // parent still waiting for its right half) stay all zeros, "not stored".
        let mut records = vec![0u8; ((2 * len).saturating_sub(1) * NODE_RECORD) as usize];
        for n in &batch.nodes {
            let at = (n.index * NODE_RECORD) as usize;
            match records.get_mut(at..at + NODE_RECORD as usize) {
                Some(slot) => slot.copy_from_slice(&storage::encode_node(n)),
                None => return Ok(false),
            }
        }
        store.write_at(FileKind::Tree, 0, &records)?;
        let mut bits = Bitfield::new();
        for i in 0..len {
            bits.set(i, true);
        }
        let bytes: Vec<u8> = (0..len.div_ceil(8)).map(|b| bits.byte(b * 8)).collect();
        store.write_at(FileKind::Bitfield, 0, &bytes)?;
        store.sync()?;
        Ok(true)
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

    /// The stored nodes at the full roots of length `length` (at most ours): `None` when one is
    /// not stored (a sparse replica).
    fn roots_at(&self, length: u64) -> Result<Option<Vec<TreeNode>>> {
        let mut roots = Vec::new();
        for index in flat_tree::full_roots(2 * length.min(self.state.length)) {
            match self.node(index)? {
                Some(n) => roots.push(n),
                None => return Ok(None),
            }
        }
        Ok(Some(roots))
    }

    /// Compares our signed tree with `other`'s (the same core's, e.g. a copy fetched from a
    /// peer): `Some(length)` when both hold a verified tree and they differ within the shorter
    /// one's `length` blocks, which proves the writer signed two different trees. Compares the
    /// roots at that length when both store them, else every leaf both store.
    ///
    /// Errors: storage errors reading either core.
    pub fn diverges_from(&self, other: &Core) -> Result<Option<u64>> {
        if other.key != self.key {
            return Ok(None);
        }
        let m = self.state.length.min(other.state.length);
        if m == 0 {
            return Ok(None);
        }
        if let (Some(a), Some(b)) = (self.roots_at(m)?, other.roots_at(m)?) {
            return Ok((a != b).then_some(m));
        }
        for i in 0..m {
            if let (Some(a), Some(b)) = (self.node(2 * i)?, other.node(2 * i)?) {
                if a != b {
                    return Ok(Some(m));
                }
            }
        }
        Ok(None)
    }

    /// Checks a peer's answer to a fork check (a block proof with an upgrade from length 0, see
    /// `net::replication`): verifies it on its own, against the signature only, then compares
    /// that signed tree with ours ([`Core::diverges_from`]). A conflict is remembered
    /// ([`Core::conflict`]) and returned as `Some(length)`; nothing from the proof is stored.
    ///
    /// Errors: the proof does not verify ([`Error::InvalidProof`], [`Error::InvalidSignature`]).
    pub fn check_conflict(&mut self, data: &Data) -> Result<Option<u64>> {
        self.fork_checks += 1;
        let mut theirs = Core::in_memory_replica(self.key);
        theirs.verify_and_apply(data)?;
        let found = self.diverges_from(&theirs)?;
        if found.is_some() {
            self.conflict = found;
        }
        Ok(found)
    }

    /// Cheap consistency checks at open: stored roots equal the header's, and a complete core's
    /// files are long enough for its length.
    fn check_files(&self) -> Result<()> {
        let tree = self.store.path(FileKind::Tree);
        for root in &self.state.roots {
            match self.node(root.index)? {
                Some(n) if n == *root => {}
                Some(_) => {
                    return Err(Error::Corrupt {
                        path: tree,
                        reason: format!("root {} differs from the signed header", root.index),
                    })
                }
                None => {
                    return Err(Error::Corrupt {
                        path: tree,
                        reason: format!("root {} missing (file truncated?)", root.index),
                    })
                }
            }
        }
        let len = self.state.length;
        if len > 0 && self.contiguous_length == len {
            let need = [
                (FileKind::Data, self.state.byte_length),
                (FileKind::Index, len * INDEX_RECORD),
                (FileKind::Tree, (2 * len - 1) * NODE_RECORD),
            ];
            for (kind, need) in need {
                let have = self.store.len(kind)?;
                if have < need {
                    return Err(Error::Corrupt {
                        path: self.store.path(kind),
                        reason: format!("truncated: {have} bytes, the signed length needs {need}"),
                    });
                }
            }
        } else if self.writable() && self.contiguous_length != len {
            return Err(Error::Corrupt {
                path: self.store.path(FileKind::Bitfield),
                reason: format!(
                    "writer is missing block {} of {len}",
                    self.contiguous_length
                ),
            });
        }
        Ok(())
    }

    /// Drops bytes an interrupted append left past the committed state (writer only).
    fn truncate_uncommitted(&mut self) -> Result<()> {
        let len = self.state.length;
        let sizes = [
            (FileKind::Data, self.state.byte_length),
            (FileKind::Index, len * INDEX_RECORD),
            (FileKind::Tree, (2 * len).saturating_sub(1) * NODE_RECORD),
            (FileKind::Bitfield, len.div_ceil(8)),
        ];
        for (kind, size) in sizes {
            if self.store.len(kind)? > size {
                self.store.set_len(kind, size)?;
            }
        }
        if !len.is_multiple_of(8) {
            // Clear the stray bits of the last byte.
            let b = self.bitfield.byte(len - 1);
            self.store
                .write_at(FileKind::Bitfield, (len - 1) / 8, &[b])?;
        }
        Ok(())
    }

    /// The 32-byte core key (the writer's ed25519 public key).
    pub fn key(&self) -> [u8; 32] {
        self.key
    }

    /// The 32-byte discovery key (`hypercore-crypto` `discoveryKey(key)`), safe to announce.
    pub fn discovery_key(&self) -> [u8; 32] {
        self.discovery_key
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

    /// Answers a peer's request (JS replicator `_getProof` + `_fulfillRequest`).
    ///
    /// `Ok(None)`: we cannot serve it (other fork, block not stored); reply `wire.noData` with
    /// reason 1 (NOT_AVAILABLE). `Err(Error::InvalidRequest)`: malformed, reply reason 2
    /// (INVALID_REQUEST). Otherwise the `wire.data` to send, with `request = req.id`.
    /// Compat cores never send a manifest.
    pub fn create_proof(&self, req: &Request) -> Result<Option<Data>> {
        if req.fork != self.state.fork {
            return Ok(None);
        }
        if let Some(b) = &req.block {
            if !self.has(b.index) {
                return Ok(None);
            }
        }
        let proof = merkle::generate_proof(self, &self.state, req)?;
        let mut block = proof.block;
        if let Some(b) = &mut block {
            match self.get(b.index)? {
                Some(v) => b.value = v,
                None => return Ok(None),
            }
        }
        Ok(Some(Data {
            request: req.id,
            fork: self.state.fork,
            block,
            hash: proof.hash,
            seek: proof.seek,
            upgrade: proof.upgrade,
            manifest: None,
        }))
    }

    /// Verifies a peer's `wire.data` and stores what it proves: tree nodes, the block, and (for an
    /// upgrade to a longer tree) the new signed state, committed durably.
    ///
    /// Errors, with nothing stored: [`Error::ForkMismatch`]; [`Error::InvalidProof`] (missing,
    /// misplaced or unexpected nodes, hashes that do not lead to a node we trust, an upgrade
    /// sent to the writer); [`Error::Conflict`] for a signed upgrade to a length we hold whose
    /// roots differ from ours (remembered, see [`Core::conflict`]); [`Error::InvalidSignature`];
    /// [`Error::Unsupported`] for a non-compat manifest; [`Error::Io`]/[`Error::Corrupt`].
    pub fn verify_and_apply(&mut self, data: &Data) -> Result<Applied> {
        if data.fork != self.state.fork {
            return Err(Error::ForkMismatch {
                ours: self.state.fork,
                theirs: data.fork,
            });
        }
        if let Some(m) = &data.manifest {
            self.check_manifest(m)?;
        }
        let mut nodes = Vec::new();
        let root = merkle::verify_tree(
            data.block.as_ref(),
            data.hash.as_ref(),
            data.seek.as_ref(),
            &mut nodes,
        )?;

        let mut unverified = root;
        let mut new_state: Option<TreeState> = None;
        if let Some(up) = &data.upgrade {
            let mut batch = Batch::new(&self.state);
            if merkle::verify_upgrade(up, root, &mut batch)? {
                unverified = None;
            }
            if !crypto::verify_tree(
                &self.key,
                &batch.roots,
                batch.length,
                batch.fork,
                &up.signature,
            ) {
                return Err(Error::InvalidSignature {
                    length: batch.length,
                });
            }
            if batch.length > self.state.length {
                if self.writable() {
                    return Err(Error::InvalidProof(
                        "a peer signed a longer tree with our key (fork?)".into(),
                    ));
                }
                new_state = Some(TreeState {
                    fork: batch.fork,
                    length: batch.length,
                    byte_length: batch.byte_length,
                    roots: batch.roots.clone(),
                    signature: up.signature.clone(),
                });
            } else {
                // An upgrade to a length we already have: its roots must be our nodes.
                // It is signed: roots that differ from our nodes prove a fork.
                for r in &batch.roots {
                    match self.node(r.index)? {
                        Some(n) if n.hash == r.hash => {}
                        Some(_) => {
                            self.conflict = Some(batch.length);
                            return Err(Error::Conflict {
                                length: batch.length,
                            });
                        }
                        None => {
                            return Err(Error::InvalidProof(format!(
                                "upgrade root {} is not in our tree",
                                r.index
                            )))
                        }
                    }
                }
            }
            nodes.extend_from_slice(&batch.nodes);
        }
        if let Some(u) = unverified {
            match self.node(u.index)? {
                Some(n) if n.hash == u.hash => {}
                Some(_) => {
                    return Err(Error::InvalidProof(format!(
                        "invalid checksum at node {}",
                        u.index
                    )))
                }
                None => {
                    return Err(Error::InvalidProof(format!(
                        "proof ends at node {}, which we do not have",
                        u.index
                    )))
                }
            }
        }
        let state_after = new_state.as_ref().unwrap_or(&self.state).clone();
        if let Some(b) = &data.block {
            if b.index >= state_after.length {
                return Err(Error::InvalidProof(format!(
                    "block {} beyond length {}",
                    b.index, state_after.length
                )));
            }
        }

        // Everything verified: store.
        self.write_nodes(&mut nodes)?;
        let mut stored_block = None;
        let mut bits = None;
        if let Some(b) = &data.block {
            if !self.bitfield.get(b.index) {
                let offset =
                    merkle::byte_offset(self, &state_after, 2 * b.index).map_err(|e| match e {
                        Error::InvalidRequest(m) => Error::InvalidProof(m),
                        e => e,
                    })?;
                self.store.write_at(FileKind::Data, offset, &b.value)?;
                self.store.write_at(
                    FileKind::Index,
                    b.index * INDEX_RECORD,
                    &offset.to_le_bytes(),
                )?;
                let mut bf = self.bitfield.clone();
                bf.set(b.index, true);
                self.write_bitfield_range(&bf, b.index, b.index + 1)?;
                bits = Some(bf);
                stored_block = Some(b.index);
            }
        }
        let upgraded = new_state.is_some();
        if let Some(s) = new_state {
            self.commit(&s)?;
            self.state = s;
        }
        if let Some(bf) = bits {
            self.bitfield = bf;
        }
        self.contiguous_length = self
            .bitfield
            .first_unset(self.contiguous_length)
            .min(self.state.length);
        Ok(Applied {
            upgraded,
            block: stored_block,
            length: self.state.length,
        })
    }

    /// Checks every stored byte against the signed roots: each block `0..contiguous_length` is
    /// read (which checks it against its leaf node) and, when the core is complete, the blocks are
    /// hashed into a fresh tree whose roots must equal the header's, whose signature [`Core::open`]
    /// already checked. So a block, leaf or offset changed on disk since it was verified is found,
    /// even where the cheap checks at open pass. Cost: one read and hash of every block.
    ///
    /// A header slot damaged at open with a longer tree in the files ([`Core::header_damage`])
    /// also fails: what the core shows may be older than what it signed.
    ///
    /// Errors: [`Error::Corrupt`] naming the damaged file; [`Error::Io`].
    pub fn verify_all(&self) -> Result<()> {
        if let Some(d) = &self.header_damage {
            return Err(Error::Corrupt {
                path: self.store.header_path(),
                reason: d.to_string(),
            });
        }
        let mut rebuilt = Batch::new(&TreeState {
            fork: self.state.fork,
            length: 0,
            byte_length: 0,
            roots: Vec::new(),
            signature: Vec::new(),
        });
        for index in 0..self.contiguous_length {
            let block = self.get(index)?.ok_or_else(|| Error::Corrupt {
                path: self.store.path(FileKind::Bitfield),
                reason: format!("block {index} is marked stored but missing"),
            })?;
            rebuilt.append(&block);
        }
        if self.contiguous_length == self.state.length && rebuilt.roots != self.state.roots {
            return Err(Error::Corrupt {
                path: self.store.path(FileKind::Tree),
                reason: "the stored blocks do not hash to the signed roots".into(),
            });
        }
        Ok(())
    }

    /// Makes every write so far durable (fsync of all files).
    pub fn flush(&mut self) -> Result<()> {
        self.store.sync()
    }

    /// JS accepts a manifest for a compat core when it names the key as its only signer.
    fn check_manifest(&self, m: &Manifest) -> Result<()> {
        if m.signers.len() == 1 && m.signers[0].public_key == self.key {
            Ok(())
        } else {
            Err(Error::Unsupported(
                "manifest of a non-compat core (multisig or other key)".into(),
            ))
        }
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

/// Checks a header's internal consistency and signature; the reason on failure.
fn check_header(h: &Header) -> std::result::Result<(), String> {
    let want: Vec<u64> = flat_tree::full_roots(
        h.length
            .checked_mul(2)
            .filter(|n| *n < flat_tree::MAX_INDEX)
            .ok_or("length out of range")?,
    );
    let have: Vec<u64> = h.roots.iter().map(|r| r.index).collect();
    if want != have {
        return Err(format!("roots {have:?} do not fit length {}", h.length));
    }
    if merkle::total_size(&h.roots) != h.byte_length {
        return Err("byte length does not match the roots".into());
    }
    if h.length > 0 && !crypto::verify_tree(&h.key, &h.roots, h.length, h.fork, &h.signature) {
        return Err("signature does not verify under the core key".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypercore::encoding::CompactEncoding;
    use crate::hypercore::messages::{RequestBlock, RequestSeek, RequestUpgrade};

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn block(i: u64) -> Vec<u8> {
        format!("block {i}|")
            .repeat(i as usize % 3 + 1)
            .into_bytes()
    }

    fn writer_with(n: u64) -> Core {
        let mut w = Core::in_memory(key(1));
        let blocks: Vec<Vec<u8>> = (0..n).map(block).collect();
        let refs: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
        w.append(&refs).unwrap();
        w
    }

    fn req_block(r: &Core, index: u64, upgrade: bool, w: &Core) -> Request {
        Request {
            id: 1,
            block: Some(RequestBlock {
                index,
                nodes: r.missing_nodes(2 * index).unwrap(),
            }),
            upgrade: upgrade.then(|| RequestUpgrade {
                start: r.length(),
                length: w.length() - r.length(),
            }),
            ..Default::default()
        }
    }

    fn req_upgrade(r: &Core, w: &Core) -> Request {
        Request {
            id: 2,
            upgrade: Some(RequestUpgrade {
                start: r.length(),
                length: w.length() - r.length(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn upgrade_then_blocks_round_trip() {
        let w = writer_with(21);
        let mut r = Core::in_memory_replica(w.key());
        let up = w.create_proof(&req_upgrade(&r, &w)).unwrap().unwrap();
        let applied = r.verify_and_apply(&up).unwrap();
        assert_eq!(
            applied,
            Applied {
                upgraded: true,
                block: None,
                length: 21
            }
        );
        assert_eq!(r.byte_length(), w.byte_length());
        assert_eq!(r.signature(), w.signature());
        assert_eq!(r.contiguous_length(), 0);
        for i in (0..21).rev() {
            let d = w
                .create_proof(&req_block(&r, i, false, &w))
                .unwrap()
                .unwrap();
            let a = r.verify_and_apply(&d).unwrap();
            assert_eq!(a.block, Some(i));
            assert!(!a.upgraded);
            assert_eq!(r.get(i).unwrap().unwrap(), block(i));
        }
        assert_eq!(r.contiguous_length(), 21);
        // A replica can serve what it has.
        let mut r2 = Core::in_memory_replica(w.key());
        let d = r
            .create_proof(&req_block(&r2, 7, true, &r))
            .unwrap()
            .unwrap();
        r2.verify_and_apply(&d).unwrap();
        assert_eq!(r2.get(7).unwrap().unwrap(), block(7));
        assert_eq!(r2.get(8).unwrap(), None);
    }

    #[test]
    fn block_with_upgrade_and_live_appends() {
        let mut w = writer_with(5);
        let mut r = Core::in_memory_replica(w.key());
        for round in 0..6u64 {
            let idx = w.length() - 1;
            let d = w
                .create_proof(&req_block(&r, idx, true, &w))
                .unwrap()
                .unwrap();
            let a = r.verify_and_apply(&d).unwrap();
            assert!(a.upgraded, "round {round}");
            assert_eq!(a.block, Some(idx));
            assert_eq!(r.length(), w.length());
            assert_eq!(r.tree_hash(), w.tree_hash());
            let next = w.length();
            w.append(&[&block(next), &block(next + 1)]).unwrap();
        }
        // Partial upgrade: additional nodes carry the rest of the tree.
        let d = w
            .create_proof(&Request {
                id: 3,
                upgrade: Some(RequestUpgrade {
                    start: r.length(),
                    length: 1,
                }),
                ..Default::default()
            })
            .unwrap()
            .unwrap();
        assert!(!d.upgrade.as_ref().unwrap().additional_nodes.is_empty());
        r.verify_and_apply(&d).unwrap();
        assert_eq!(r.length(), w.length());
    }

    #[test]
    fn seek_with_upgrade() {
        let w = writer_with(19);
        let mut r = Core::in_memory_replica(w.key());
        let mut offset = 0;
        for i in 0..12 {
            offset += block(i).len() as u64;
        }
        let req = Request {
            id: 4,
            seek: Some(RequestSeek {
                bytes: offset + 2,
                padding: 0,
            }),
            upgrade: Some(RequestUpgrade {
                start: 0,
                length: 19,
            }),
            ..Default::default()
        };
        let d = w.create_proof(&req).unwrap().unwrap();
        assert!(d.seek.is_some());
        let a = r.verify_and_apply(&d).unwrap();
        assert!(a.upgraded);
        // The seek proof delivered the path to block 12's leaf.
        assert_eq!(r.missing_nodes(24).unwrap(), 0);
    }

    #[test]
    fn hash_request_round_trip() {
        let w = writer_with(16);
        let mut r = Core::in_memory_replica(w.key());
        r.verify_and_apply(&w.create_proof(&req_upgrade(&r, &w)).unwrap().unwrap())
            .unwrap();
        let req = Request {
            id: 5,
            hash: Some(RequestBlock {
                index: 5,
                nodes: r.missing_nodes(5).unwrap(),
            }),
            ..Default::default()
        };
        let d = w.create_proof(&req).unwrap().unwrap();
        r.verify_and_apply(&d).unwrap();
        assert_eq!(r.tree_node(5).unwrap(), w.tree_node(5).unwrap());
    }

    #[test]
    fn bad_proofs_are_rejected_and_store_nothing() {
        let w = writer_with(13);
        let fresh = Core::in_memory_replica(w.key());
        let good = w
            .create_proof(&req_block(&fresh, 6, true, &w))
            .unwrap()
            .unwrap();

        let mut bad_sig = good.clone();
        bad_sig.upgrade.as_mut().unwrap().signature[3] ^= 1;
        let mut no_sig = good.clone();
        no_sig.upgrade.as_mut().unwrap().signature.clear();
        let mut bad_value = good.clone();
        bad_value.block.as_mut().unwrap().value.push(0);
        let mut bad_node = good.clone();
        bad_node.block.as_mut().unwrap().nodes[0].hash[0] ^= 1;
        let mut missing_node = good.clone();
        missing_node.block.as_mut().unwrap().nodes.pop();
        let mut bad_upgrade_node = good.clone();
        bad_upgrade_node.upgrade.as_mut().unwrap().nodes[0].size += 1;
        let mut wrong_fork = good.clone();
        wrong_fork.fork = 1;

        let other = Core::in_memory(key(2));
        type Case = (&'static str, Data, fn(&Error) -> bool);
        let cases: Vec<Case> = vec![
            ("bad signature", bad_sig, |e| {
                matches!(e, Error::InvalidSignature { .. })
            }),
            ("no signature", no_sig, |e| {
                matches!(e, Error::InvalidSignature { .. })
            }),
            ("bad value", bad_value, |e| {
                matches!(e, Error::InvalidSignature { .. })
            }),
            ("bad node hash", bad_node, |e| {
                matches!(e, Error::InvalidSignature { .. })
            }),
            ("missing node", missing_node, |e| {
                matches!(e, Error::InvalidProof(_))
            }),
            ("bad upgrade node", bad_upgrade_node, |e| {
                matches!(e, Error::InvalidSignature { .. })
            }),
            ("wrong fork", wrong_fork, |e| {
                matches!(e, Error::ForkMismatch { .. })
            }),
        ];
        for (name, data, want) in cases {
            let mut r = Core::in_memory_replica(w.key());
            let err = r.verify_and_apply(&data).unwrap_err();
            assert!(want(&err), "{name}: {err}");
            assert_eq!(r.length(), 0, "{name}");
            assert_eq!(r.tree_node(12).unwrap(), None, "{name} stored nodes");
        }
        // Right proof, wrong core.
        let mut r = Core::in_memory_replica(other.key());
        assert!(matches!(
            r.verify_and_apply(&good),
            Err(Error::InvalidSignature { .. })
        ));

        // Without upgrade, a block proof must end at a node we trust.
        let mut r = Core::in_memory_replica(w.key());
        r.verify_and_apply(&w.create_proof(&req_upgrade(&r, &w)).unwrap().unwrap())
            .unwrap();
        let mut d = w
            .create_proof(&req_block(&r, 2, false, &w))
            .unwrap()
            .unwrap();
        d.block.as_mut().unwrap().value[0] ^= 1;
        assert!(matches!(
            r.verify_and_apply(&d),
            Err(Error::InvalidProof(_))
        ));
        assert!(!r.has(2));

        // Truncated wire bytes never decode.
        let bytes = good.to_bytes();
        for cut in [1, 10, bytes.len() / 2, bytes.len() - 1] {
            assert!(Data::from_bytes(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn invalid_and_unanswerable_requests() {
        let w = writer_with(8);
        // Upgrade past our length: INVALID_REQUEST.
        let req = Request {
            id: 1,
            upgrade: Some(RequestUpgrade {
                start: 0,
                length: 9,
            }),
            ..Default::default()
        };
        assert!(matches!(
            w.create_proof(&req),
            Err(Error::InvalidRequest(_))
        ));
        // nodes beyond the tree.
        let req = Request {
            id: 1,
            block: Some(RequestBlock {
                index: 1,
                nodes: 40,
            }),
            ..Default::default()
        };
        assert!(matches!(
            w.create_proof(&req),
            Err(Error::InvalidRequest(_))
        ));
        // Block we don't have / other fork: NOT_AVAILABLE.
        let mut r = Core::in_memory_replica(w.key());
        let req = Request {
            id: 1,
            block: Some(RequestBlock { index: 1, nodes: 0 }),
            ..Default::default()
        };
        assert_eq!(r.create_proof(&req).unwrap(), None);
        r.verify_and_apply(&w.create_proof(&req_upgrade(&r, &w)).unwrap().unwrap())
            .unwrap();
        assert_eq!(r.create_proof(&req).unwrap(), None);
        let req = Request { fork: 3, ..req };
        assert_eq!(w.create_proof(&req).unwrap(), None);
        // Replicas cannot append; writers refuse foreign upgrades to longer trees.
        assert!(matches!(r.append(&[b"x"]), Err(Error::NotWritable)));
    }

    /// xorshift64: deterministic pseudo-random numbers for the mutation tests.
    fn rng(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    fn mutate_num(n: &mut u64, r: u64) {
        *n = match r % 6 {
            0 => n.wrapping_add(1),
            1 => n.wrapping_sub(1),
            2 => u64::MAX - (r >> 8) % 3,
            3 => r >> (r % 64),
            4 => *n ^ (1 << (r % 64)),
            _ => 0,
        };
    }

    #[test]
    fn mutated_proofs_never_panic_or_corrupt() {
        let w = writer_with(27);
        let fresh = Core::in_memory_replica(w.key());
        let mut half = Core::in_memory_replica(w.key());
        half.verify_and_apply(&w.create_proof(&req_upgrade(&half, &w)).unwrap().unwrap())
            .unwrap();
        let seek = Request {
            id: 1,
            seek: Some(RequestSeek {
                bytes: 100,
                padding: 0,
            }),
            upgrade: Some(RequestUpgrade {
                start: 0,
                length: 27,
            }),
            ..Default::default()
        };
        let seeds = [
            w.create_proof(&req_block(&fresh, 9, true, &w))
                .unwrap()
                .unwrap(),
            w.create_proof(&req_block(&fresh, 26, true, &w))
                .unwrap()
                .unwrap(),
            w.create_proof(&seek).unwrap().unwrap(),
            w.create_proof(&req_block(&half, 3, false, &w))
                .unwrap()
                .unwrap(),
        ];
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        for round in 0..300 {
            let mut d = seeds[round % seeds.len()].clone();
            for _ in 0..(rng(&mut x) % 3 + 1) {
                let r = rng(&mut x);
                let mut nums: Vec<&mut u64> = vec![&mut d.fork, &mut d.request];
                if let Some(b) = &mut d.block {
                    nums.push(&mut b.index);
                    for n in &mut b.nodes {
                        nums.push(&mut n.index);
                        nums.push(&mut n.size);
                    }
                }
                if let Some(s) = &mut d.seek {
                    nums.push(&mut s.bytes);
                    for n in &mut s.nodes {
                        nums.push(&mut n.index);
                    }
                }
                if let Some(u) = &mut d.upgrade {
                    nums.push(&mut u.start);
                    nums.push(&mut u.length);
                    for n in u.nodes.iter_mut().chain(u.additional_nodes.iter_mut()) {
                        nums.push(&mut n.index);
                        nums.push(&mut n.size);
                    }
                }
                let k = (r >> 32) as usize % nums.len();
                mutate_num(nums[k], r);
                if r.is_multiple_of(11) {
                    if let Some(u) = &mut d.upgrade {
                        let n = u.nodes.pop();
                        u.additional_nodes.extend(n);
                    }
                }
            }
            for base in [&fresh, &half] {
                let mut r = Core::in_memory_replica(w.key());
                if base.length() > 0 {
                    r.verify_and_apply(&w.create_proof(&req_upgrade(&r, &w)).unwrap().unwrap())
                        .unwrap();
                }
                if r.verify_and_apply(&d).is_ok() {
                    // Whatever was accepted must be true.
                    assert!(
                        r.length() == 0 || r.tree_hash() == w.tree_hash(),
                        "round {round}"
                    );
                    for i in 0..r.length() {
                        if let Some(v) = r.get(i).unwrap() {
                            assert_eq!(v, block(i), "round {round}");
                        }
                    }
                }
            }
        }
        // Random requests: answered, or refused as invalid; never another error, never a panic.
        for _ in 0..3000 {
            let mut q = Request {
                id: 1,
                block: Some(RequestBlock {
                    index: rng(&mut x) % 40,
                    nodes: rng(&mut x) % 8,
                }),
                hash: None,
                seek: rng(&mut x).is_multiple_of(3).then(|| RequestSeek {
                    bytes: rng(&mut x) % 800,
                    padding: rng(&mut x) % 2,
                }),
                upgrade: rng(&mut x).is_multiple_of(2).then(|| RequestUpgrade {
                    start: rng(&mut x) % 30,
                    length: rng(&mut x) % 30,
                }),
                ..Default::default()
            };
            if rng(&mut x).is_multiple_of(2) {
                q.hash = q.block.take().map(|b| RequestBlock {
                    index: b.index * 2 + rng(&mut x) % 3,
                    ..b
                });
            }
            match w.create_proof(&q) {
                Ok(_) | Err(Error::InvalidRequest(_)) => {}
                Err(e) => panic!("{q:?}: {e}"),
            }
        }
    }

    #[test]
    fn empty_core_answers_with_nothing() {
        let w = Core::in_memory(key(3));
        let d = w
            .create_proof(&Request {
                id: 9,
                upgrade: Some(RequestUpgrade {
                    start: 0,
                    length: 0,
                }),
                ..Default::default()
            })
            .unwrap()
            .unwrap();
        assert_eq!(d.upgrade, None);
        assert_eq!(d.request, 9);
    }

    /// What a fork check asks: the last block both should hold, with an upgrade from 0.
    fn req_check(index: u64, theirs: u64) -> Request {
        Request {
            id: 7,
            block: Some(RequestBlock { index, nodes: 0 }),
            upgrade: Some(RequestUpgrade {
                start: 0,
                length: theirs,
            }),
            ..Default::default()
        }
    }

    /// A full replica of `w`.
    fn replica_of(w: &Core) -> Core {
        let mut r = Core::in_memory_replica(w.key());
        r.verify_and_apply(&w.create_proof(&req_upgrade(&r, w)).unwrap().unwrap())
            .unwrap();
        for i in 0..w.length() {
            let d = w
                .create_proof(&req_block(&r, i, false, w))
                .unwrap()
                .unwrap();
            r.verify_and_apply(&d).unwrap();
        }
        r
    }

    #[test]
    fn two_signed_trees_at_one_length_are_a_conflict() {
        // Two writers with the same key and history, then different blocks: a forked archive.
        let mut a = writer_with(6);
        let mut b = writer_with(6);
        a.append(&[b"written by copy a"]).unwrap();
        b.append(&[b"written by copy b"]).unwrap();
        let mut r = replica_of(&a);
        assert_eq!(r.conflict(), None);

        // b is as long as our replica: its signed tree at 7 differs from ours.
        let d = b.create_proof(&req_check(6, 7)).unwrap().unwrap();
        assert_eq!(r.check_conflict(&d).unwrap(), Some(7));
        assert_eq!(r.conflict(), Some(7));
        assert_eq!(
            r.get(6).unwrap().unwrap(),
            b"written by copy a",
            "ours is kept"
        );

        // b is longer: its tree at 9 does not contain ours at 7.
        b.append(&[b"x", b"y"]).unwrap();
        let mut r = replica_of(&a);
        let d = b.create_proof(&req_check(6, 9)).unwrap().unwrap();
        assert_eq!(r.check_conflict(&d).unwrap(), Some(7));
        // The ordinary upgrade from our length fails to verify (what starts a fork check).
        assert!(r
            .verify_and_apply(&b.create_proof(&req_upgrade(&r, &b)).unwrap().unwrap())
            .is_err());
        assert_eq!(r.length(), 7);

        // b is shorter and a prefix of ours: no conflict.
        let mut r = replica_of(&a);
        let c = writer_with(6);
        let d = c.create_proof(&req_check(5, 6)).unwrap().unwrap();
        assert_eq!(r.check_conflict(&d).unwrap(), None);
        // The honest writer, longer: no conflict either.
        a.append(&[b"more from a"]).unwrap();
        let d = a.create_proof(&req_check(6, 8)).unwrap().unwrap();
        assert_eq!(r.check_conflict(&d).unwrap(), None);
        assert_eq!(r.conflict(), None);

        // A proof that does not verify is an error, not a conflict.
        let mut d = b.create_proof(&req_check(6, 9)).unwrap().unwrap();
        d.upgrade.as_mut().unwrap().signature[0] ^= 1;
        assert!(r.check_conflict(&d).is_err());
        assert_eq!(r.conflict(), None);
    }

    #[cfg(unix)]
    mod disk {
        use super::*;
        use std::fs::OpenOptions;
        use std::io::Write as _;

        fn make(dir: &Path, n: u64) -> Core {
            let mut c = Core::create(dir, key(1)).unwrap();
            for i in 0..n {
                c.append(&[&block(i)]).unwrap();
            }
            c
        }

        #[test]
        fn reopen_preserves_everything() {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("core");
            let c = make(&dir, 10);
            let (hash, sig) = (c.tree_hash(), c.signature());
            drop(c);
            assert!(matches!(Core::create(&dir, key(1)), Err(Error::Exists(_))));
            let mut c = Core::open(&dir, Some(key(1))).unwrap();
            assert_eq!((c.length(), c.tree_hash(), c.signature()), (10, hash, sig));
            for i in 0..10 {
                assert_eq!(c.get(i).unwrap().unwrap(), block(i));
            }
            c.append(&[b"more"]).unwrap();
            drop(c);
            let c = Core::open(&dir, None).unwrap();
            assert!(!c.writable());
            assert_eq!(c.get(10).unwrap().unwrap(), b"more");
        }

        #[test]
        fn wrong_key_and_missing_core() {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("core");
            drop(make(&dir, 2));
            assert!(matches!(
                Core::open(&dir, Some(key(2))),
                Err(Error::WrongKey { .. })
            ));
            assert!(matches!(
                Core::open_replica(&dir, key(2).verifying_key().to_bytes()),
                Err(Error::WrongKey { .. })
            ));
            assert!(matches!(
                Core::open(&tmp.path().join("nothing"), None),
                Err(Error::NotFound(_))
            ));
        }

        #[test]
        fn interrupted_append_leaves_previous_state() {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("core");
            let c = make(&dir, 6);
            let hash = c.tree_hash();
            drop(c);
            // What a crash between the data writes and the header commit leaves behind.
            for name in ["data", "index", "tree", "bitfield"] {
                let mut f = OpenOptions::new()
                    .append(true)
                    .open(dir.join(name))
                    .unwrap();
                f.write_all(&[0xab; 100]).unwrap();
            }
            // ... and a header commit torn halfway (7 commits so far: the next goes to slot 1).
            let f = OpenOptions::new()
                .write(true)
                .open(dir.join("header"))
                .unwrap();
            let mut torn = 7u64.to_le_bytes().to_vec();
            torn.extend_from_slice(&300u32.to_le_bytes());
            torn.extend_from_slice(b"DSHCORE1 half a header");
            std::os::unix::fs::FileExt::write_all_at(&f, &torn, 4096).unwrap();
            drop(f);
            let mut c = Core::open(&dir, Some(key(1))).unwrap();
            assert_eq!((c.length(), c.tree_hash()), (6, hash));
            // Garbage was cut away; appending continues cleanly.
            c.append(&[&block(6), &block(7)]).unwrap();
            drop(c);
            let c = Core::open(&dir, None).unwrap();
            for i in 0..8 {
                assert_eq!(c.get(i).unwrap().unwrap(), block(i));
            }
            // And the result is the same tree as an uninterrupted writer's.
            let w = writer_with(8);
            assert_eq!(c.tree_hash(), w.tree_hash());
        }

        fn expect_corrupt(dir: &Path, file: &str) {
            match Core::open(dir, None).and_then(|c| {
                for i in 0..c.length() {
                    c.get(i)?;
                }
                Ok(c)
            }) {
                Err(Error::Corrupt { path, reason }) => {
                    assert!(
                        path.ends_with(file),
                        "{path:?} ({reason}) should name {file}"
                    )
                }
                other => panic!("expected Corrupt({file}), got {other:?}"),
            }
        }

        #[test]
        fn truncated_files_are_reported() {
            for (file, keep) in [("data", 10u64), ("index", 8), ("tree", 48), ("header", 20)] {
                let tmp = tempfile::tempdir().unwrap();
                let dir = tmp.path().join("core");
                drop(make(&dir, 5));
                let f = OpenOptions::new().write(true).open(dir.join(file)).unwrap();
                f.set_len(keep).unwrap();
                drop(f);
                expect_corrupt(&dir, file);
            }
        }

        #[test]
        fn damaged_newest_header_slot_falls_back_one_commit() {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("core");
            // create + 5 appends = commits 0..=5; commit 5 sits in slot 1, commit 4 in slot 0.
            drop(make(&dir, 5));
            let path = dir.join("header");
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[4096 + 40] ^= 0x10;
            std::fs::write(&path, &bytes).unwrap();
            let c = Core::open(&dir, None).unwrap();
            assert_eq!(c.length(), 4);
            // Both slots damaged: a clear error.
            bytes[40] ^= 0x10;
            std::fs::write(&path, &bytes).unwrap();
            expect_corrupt(&dir, "header");
        }

        #[test]
        fn flipped_bytes_are_reported() {
            for (file, at) in [("data", 3u64), ("tree", 48 * 2 + 9)] {
                let tmp = tempfile::tempdir().unwrap();
                let dir = tmp.path().join("core");
                drop(make(&dir, 5));
                let path = dir.join(file);
                let mut bytes = std::fs::read(&path).unwrap();
                bytes[at as usize] ^= 0x10;
                std::fs::write(&path, bytes).unwrap();
                expect_corrupt(&dir, file);
            }
        }

        #[test]
        fn damaged_newest_slot_refuses_the_writer_and_recover_restores_the_same_tree() {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("core");
            // create + 5 appends = commits 0..=5; commit 5 (length 5) sits in slot 1.
            let c = make(&dir, 5);
            let (hash, sig) = (c.tree_hash(), c.signature());
            drop(c);
            let path = dir.join("header");
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[4096 + 40] ^= 0x10;
            std::fs::write(&path, &bytes).unwrap();
            // The writer must not append at length 4 a block other than the signed block 4.
            match Core::open(&dir, Some(key(1))) {
                Err(Error::Corrupt { path, reason }) => {
                    assert!(path.ends_with("header"), "{path:?}");
                    assert!(reason.contains("refusing"), "{reason}");
                }
                other => panic!("expected Corrupt(header), got {other:?}"),
            }
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing written");
            // A reader sees the older state, but is told it is not the newest.
            let r = Core::open(&dir, None).unwrap();
            assert_eq!(r.length(), 4);
            let d = r.header_damage().unwrap().clone();
            assert_eq!((d.header_length, d.files_length), (4, 5));
            assert!(matches!(r.verify_all(), Err(Error::Corrupt { .. })));
            drop(r);
            // Recovery signs the very same tree again: same length, roots and signature.
            let (mut c, restored) = Core::recover(&dir, key(1)).unwrap();
            assert_eq!(restored.map(|d| d.files_length), Some(5));
            assert_eq!((c.length(), c.tree_hash(), c.signature()), (5, hash, sig));
            c.verify_all().unwrap();
            c.append(&[&block(5)]).unwrap();
            drop(c);
            let c = Core::open(&dir, Some(key(1))).unwrap();
            c.verify_all().unwrap();
            assert_eq!(c.header_damage(), None);
            assert_eq!(c.tree_hash(), writer_with(6).tree_hash());
            // Nothing left to recover.
            drop(c);
            assert_eq!(Core::recover(&dir, key(1)).unwrap().1, None);
        }

        #[test]
        fn a_flipped_sequence_number_does_not_roll_back() {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("core");
            drop(make(&dir, 5));
            let path = dir.join("header");
            let mut bytes = std::fs::read(&path).unwrap();
            // Commit 5 (length 5) in slot 1: its sequence, outside the checksum, becomes 1.
            bytes[4096] ^= 0x04;
            std::fs::write(&path, &bytes).unwrap();
            let mut c = Core::open(&dir, Some(key(1))).unwrap();
            assert_eq!(c.length(), 5);
            c.append(&[&block(5)]).unwrap();
            drop(c);
            let c = Core::open(&dir, Some(key(1))).unwrap();
            assert_eq!(c.length(), 6);
            c.verify_all().unwrap();
            assert_eq!(c.tree_hash(), writer_with(6).tree_hash());
        }

        #[test]
        fn rebuild_tree_mends_a_damaged_tree_file_only_from_intact_blocks() {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("core");
            let c = make(&dir, 5);
            let hash = c.tree_hash();
            drop(c);
            let tree = dir.join("tree");
            let mut bytes = std::fs::read(&tree).unwrap();
            bytes[9] ^= 0x01; // node 0's hash
            std::fs::write(&tree, &bytes).unwrap();
            expect_corrupt(&dir, "tree");
            assert!(Core::rebuild_tree(&dir, &key(1)).unwrap());
            let c = Core::open(&dir, Some(key(1))).unwrap();
            c.verify_all().unwrap();
            assert_eq!(c.tree_hash(), hash);
            drop(c);
            // A changed block can't be mended: nothing is written.
            let data = dir.join("data");
            let mut d = std::fs::read(&data).unwrap();
            d[2] ^= 0x01;
            std::fs::write(&data, &d).unwrap();
            let before = std::fs::read(&tree).unwrap();
            assert!(!Core::rebuild_tree(&dir, &key(1)).unwrap());
            assert_eq!(std::fs::read(&tree).unwrap(), before);
        }

        #[test]
        fn replica_on_disk_survives_reopen() {
            let tmp = tempfile::tempdir().unwrap();
            let w = writer_with(9);
            let dir = tmp.path().join("replica");
            let mut r = Core::open_replica(&dir, w.key()).unwrap();
            let d = w
                .create_proof(&req_block(&r, 4, true, &w))
                .unwrap()
                .unwrap();
            r.verify_and_apply(&d).unwrap();
            let d = w
                .create_proof(&req_block(&r, 0, false, &w))
                .unwrap()
                .unwrap();
            r.verify_and_apply(&d).unwrap();
            r.flush().unwrap();
            drop(r);
            let r = Core::open_replica(&dir, w.key()).unwrap();
            assert_eq!(r.length(), 9);
            assert_eq!(r.get(4).unwrap().unwrap(), block(4));
            assert_eq!(r.get(0).unwrap().unwrap(), block(0));
            assert_eq!(r.get(1).unwrap(), None);
            assert_eq!(r.contiguous_length(), 1);
        }
    }
}
