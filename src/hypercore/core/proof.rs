//! Proofs: answering a peer's `wire.request` ([`Core::create_proof`]), checking and storing a
//! peer's `wire.data` ([`Core::verify_and_apply`]), fork checks and full verification.

use super::{Applied, Core};
use crate::hypercore::crypto;
use crate::hypercore::flat_tree;
use crate::hypercore::merkle::{self, Batch, NodeSource, TreeState};
use crate::hypercore::messages::{Data, Manifest, Request, TreeNode};
use crate::hypercore::storage::{FileKind, INDEX_RECORD};
use crate::hypercore::{Error, Result};

impl Core {
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
        let mut theirs = Core::in_memory_replica(self.key());
        theirs.verify_and_apply(data)?;
        let found = self.diverges_from(&theirs)?;
        if found.is_some() {
            self.conflict = found;
        }
        Ok(found)
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
}
