//! Opening a [`Core`] from a directory (feature `native`): create, open, recover, open a
//! replica, and mend a damaged `tree` file. Checks the files against the signed header on open
//! and truncates what an interrupted append left behind.

use std::path::Path;

use ed25519_dalek::SigningKey;

use super::{Core, HeaderDamage};
use crate::hypercore::bitfield::Bitfield;
use crate::hypercore::crypto;
use crate::hypercore::flat_tree;
use crate::hypercore::merkle::{self, Batch, NodeSource, TreeState};
use crate::hypercore::storage::{self, FileKind, Header, Store, INDEX_RECORD, NODE_RECORD};
use crate::hypercore::{Error, Result};
use crate::keys::CoreKey;

/// How [`Core::load`] treats a damaged header slot with a longer tree in the files.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Damaged {
    /// Writers refuse to open; readers open at the surviving slot and report it.
    Refuse,
    /// Re-sign the tree the files hold (writer only): [`Core::recover`].
    Recover,
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
    pub fn open_replica(dir: &Path, public_key: CoreKey) -> Result<Core> {
        let public_key = *public_key.as_bytes();
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
