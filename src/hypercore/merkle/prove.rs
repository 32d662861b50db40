//! Proof generation: `generateProof` and its helpers (`blockAndSeekProof`, `upgradeProof`,
//! `additionalUpgradeProof`, `getByteOffset`) of JS hypercore 11.37.1 `lib/merkle-tree.js`,
//! step for step, so a JS peer accepts the node lists in the order we send them.

use super::{NodeSource, TreeState, MAX_WALK};
use crate::hypercore::flat_tree::{self, Iterator, MAX_INDEX};
use crate::hypercore::messages::{
    DataBlock, DataHash, DataSeek, DataUpgrade, Request, RequestSeek, RequestUpgrade, TreeNode,
};
use crate::hypercore::{Error, Result};

/// The node lists of a proof before block values are filled in (`TreeProof.pending`).
#[derive(Debug, Default)]
struct Pending {
    node: Option<Vec<TreeNode>>,
    seek: Option<Vec<TreeNode>>,
    upgrade: Option<Vec<TreeNode>>,
    additional: Option<Vec<TreeNode>>,
}

/// The parts of a proof answering a [`Request`], without the block value (the caller reads it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Proof {
    /// Block proof: index and nodes (value to be filled in).
    pub block: Option<DataBlock>,
    /// Hash proof.
    pub hash: Option<DataHash>,
    /// Seek proof.
    pub seek: Option<DataSeek>,
    /// Upgrade proof, with the signature of `state`.
    pub upgrade: Option<DataUpgrade>,
}

/// A proven block or node (`normalizeIndexed`).
struct Indexed {
    value: bool,
    index: u64,
    nodes: u64,
    last_index: u64,
}

/// Why a proof could not be made: the request is bad, or we lack a node (sparse replica).
fn missing(index: u64) -> Error {
    Error::InvalidRequest(format!("tree node {index} not stored"))
}

struct Prover<'a, S: NodeSource> {
    src: &'a S,
    state: &'a TreeState,
}

impl<S: NodeSource> Prover<'_, S> {
    fn get(&self, index: u64) -> Result<TreeNode> {
        self.src.node(index)?.ok_or_else(|| missing(index))
    }

    fn unpadded(&self, node: &TreeNode, padding: u64) -> u64 {
        node.size
            .saturating_sub(padding.saturating_mul(flat_tree::count_leaves(node.index)))
    }

    fn byte_offset(&self, index: u64) -> Result<u64> {
        byte_offset(self.src, self.state, index)
    }

    /// `seekTrustedTree`: the node holding byte `bytes` within `root`.
    fn seek_trusted(&self, root: u64, mut bytes: u64, padding: u64) -> Result<u64> {
        if bytes == 0 {
            return Ok(root);
        }
        let mut ite = Iterator::new(root);
        let mut steps = 0;
        while ite.index & 1 == 1 {
            steps += 1;
            if steps > MAX_WALK {
                return Err(Error::InvalidRequest("seek walk too long".into()));
            }
            match self.src.node(ite.left_child())? {
                Some(l) => {
                    let size = self.unpadded(&l, padding);
                    if size == bytes {
                        return Ok(ite.index);
                    }
                    if size > bytes {
                        continue;
                    }
                    bytes -= size;
                    ite.sibling();
                }
                None => {
                    ite.parent();
                    return Ok(ite.index);
                }
            }
        }
        Ok(ite.index)
    }

    /// `seekFromHead`: the node holding byte `bytes` in the tree of `head / 2` blocks.
    fn seek_from_head(&self, head: u64, mut bytes: u64, padding: u64) -> Result<u64> {
        for root in flat_tree::full_roots(head) {
            let node = self.get(root)?;
            let size = self.unpadded(&node, padding);
            if bytes == size {
                return Ok(root);
            }
            if bytes > size {
                bytes -= size;
                continue;
            }
            return self.seek_trusted(root, bytes, padding);
        }
        Ok(head)
    }

    /// `seekUntrustedTree`: like seek_trusted, but first checks `bytes` falls inside `root`.
    fn seek_untrusted(&self, root: u64, bytes: u64, padding: u64) -> Result<u64> {
        let pad = if padding > 0 {
            padding.saturating_mul(flat_tree::left_span(root) / 2)
        } else {
            0
        };
        let offset = self.byte_offset(root)?.saturating_sub(pad);
        if offset > bytes {
            return Err(Error::InvalidRequest("invalid seek".into()));
        }
        if offset == bytes {
            return Ok(root);
        }
        let bytes = bytes - offset;
        let node = self.get(root)?;
        if self.unpadded(&node, padding) <= bytes {
            return Err(Error::InvalidRequest("invalid seek".into()));
        }
        self.seek_trusted(root, bytes, padding)
    }

    /// `seekProof`: the seek root then its uncles up to `root`.
    fn seek_proof(&self, seek_root: u64, root: u64, p: &mut Pending) -> Result<()> {
        let mut ite = Iterator::new(seek_root);
        let mut out = vec![self.get(ite.index)?];
        let mut steps = 0;
        while ite.index != root {
            steps += 1;
            if steps > MAX_WALK {
                return Err(Error::InvalidRequest("bad seek proof".into()));
            }
            ite.sibling();
            out.push(self.get(ite.index)?);
            ite.parent();
        }
        p.seek = Some(out);
        Ok(())
    }

    /// `blockAndSeekProof`.
    fn block_and_seek_proof(
        &self,
        node: Option<&Indexed>,
        seek: bool,
        seek_root: u64,
        root: u64,
        p: &mut Pending,
    ) -> Result<()> {
        let Some(node) = node else {
            return self.seek_proof(seek_root, root, p);
        };
        let mut ite = Iterator::new(node.index);
        let mut out = Vec::new();
        if !node.value {
            out.push(self.get(ite.index)?);
        }
        let mut steps = 0;
        while ite.index != root {
            steps += 1;
            if steps > MAX_WALK {
                return Err(Error::InvalidRequest("bad block proof".into()));
            }
            ite.sibling();
            if seek && ite.contains(seek_root) && ite.index != seek_root {
                self.seek_proof(seek_root, ite.index, p)?;
            } else {
                out.push(self.get(ite.index)?);
            }
            ite.parent();
        }
        p.node = Some(out);
        Ok(())
    }

    /// `upgradeProof`.
    fn upgrade_proof(
        &self,
        node: Option<&Indexed>,
        seek: bool,
        from: u64,
        to: u64,
        sub_tree: u64,
        p: &mut Pending,
    ) -> Result<()> {
        if from == 0 {
            p.upgrade = Some(Vec::new());
        }
        let mut ite = Iterator::new(0);
        while ite.full_root(to) {
            self.upgrade_step(&mut ite, node, seek, from, sub_tree, p)?;
            ite.next_tree();
        }
        Ok(())
    }

    fn upgrade_step(
        &self,
        ite: &mut Iterator,
        node: Option<&Indexed>,
        seek: bool,
        from: u64,
        sub_tree: u64,
        p: &mut Pending,
    ) -> Result<()> {
        // The requester already has this root.
        if ite.index + ite.factor / 2 < from {
            return Ok(());
        }
        // Connect the requester's last root to the new root containing it.
        if p.upgrade.is_none() && ite.contains(from - 2) {
            p.upgrade = Some(Vec::new());
            let root = ite.index;
            let target = from - 2;
            ite.seek(target);
            let mut steps = 0;
            while ite.index != root {
                steps += 1;
                if steps > MAX_WALK {
                    return Err(Error::InvalidRequest("bad upgrade proof".into()));
                }
                ite.sibling();
                if ite.index > target {
                    if p.node.is_none() && p.seek.is_none() && ite.contains(sub_tree) {
                        self.block_and_seek_proof(node, seek, sub_tree, ite.index, p)?;
                    } else {
                        let n = self.get(ite.index)?;
                        p.upgrade.get_or_insert_with(Vec::new).push(n);
                    }
                }
                ite.parent();
            }
            return Ok(());
        }
        if p.upgrade.is_none() {
            p.upgrade = Some(Vec::new());
        }
        // The block/seek proof's subtree is inside this root: send that instead of the root.
        if p.node.is_none() && p.seek.is_none() && ite.contains(sub_tree) {
            return self.block_and_seek_proof(node, seek, sub_tree, ite.index, p);
        }
        let n = self.get(ite.index)?;
        p.upgrade.get_or_insert_with(Vec::new).push(n);
        Ok(())
    }

    /// `additionalUpgradeProof`: roots from `from` up to `to`.
    fn additional_upgrade_proof(&self, from: u64, to: u64, p: &mut Pending) -> Result<()> {
        let mut out: Option<Vec<TreeNode>> = (from == 0).then(Vec::new);
        let mut ite = Iterator::new(0);
        while ite.full_root(to) {
            if ite.index + ite.factor / 2 < from {
                ite.next_tree();
                continue;
            }
            if out.is_none() && ite.contains(from - 2) {
                let mut list = Vec::new();
                let root = ite.index;
                let target = from - 2;
                ite.seek(target);
                let mut steps = 0;
                while ite.index != root {
                    steps += 1;
                    if steps > MAX_WALK {
                        return Err(Error::InvalidRequest("bad additional proof".into()));
                    }
                    ite.sibling();
                    if ite.index > target {
                        list.push(self.get(ite.index)?);
                    }
                    ite.parent();
                }
                out = Some(list);
                ite.next_tree();
                continue;
            }
            out.get_or_insert_with(Vec::new).push(self.get(ite.index)?);
            ite.next_tree();
        }
        p.additional = out;
        Ok(())
    }
}

/// `getByteOffset`: byte offset of the first block under flat-tree `index` in the tree of
/// `state`, summing the left siblings on the way down from a root (which must be stored).
/// Errors with [`Error::InvalidRequest`] if `index` is outside the tree or a node is missing.
pub(crate) fn byte_offset<S: NodeSource>(src: &S, state: &TreeState, index: u64) -> Result<u64> {
    if index == 2 * state.length {
        return Ok(state.byte_length);
    }
    let index = if index & 1 == 1 {
        flat_tree::left_span(index)
    } else {
        index
    };
    let mut head = 0u64;
    let mut offset = 0u64;
    for root in &state.roots {
        head += 2 * (root.index - head + 1);
        if index >= head {
            offset += root.size;
            continue;
        }
        let mut ite = Iterator::new(root.index);
        let mut steps = 0;
        while ite.index != index {
            steps += 1;
            if steps > MAX_WALK {
                break;
            }
            if index < ite.index {
                ite.left_child();
            } else {
                let left = ite.left_child();
                offset += src.node(left)?.ok_or_else(|| missing(left))?.size;
                ite.sibling();
            }
        }
        return Ok(offset);
    }
    Err(Error::InvalidRequest(format!(
        "no byte offset for node {index}"
    )))
}

/// `nodesToRoot`: walks `nodes` levels up from `index`; errors if that leaves the tree of `head`.
fn nodes_to_root(index: u64, nodes: u64, head: u64) -> Result<u64> {
    let mut ite = Iterator::new(index);
    for _ in 0..nodes.min(MAX_WALK as u64 + 1) {
        ite.parent();
        if ite.contains(head) {
            return Err(Error::InvalidRequest("nodes is out of bounds".into()));
        }
    }
    if nodes > MAX_WALK as u64 {
        return Err(Error::InvalidRequest("nodes is out of bounds".into()));
    }
    Ok(ite.index)
}

/// `generateProof` + `TreeProof.settle`: the proof answering `req` from a tree in `state` whose
/// nodes are in `src`. Block values are left empty for the caller to fill.
///
/// Errors: [`Error::InvalidRequest`] for requests JS also refuses (upgrade beyond our length,
/// `nodes` out of bounds, bad seek, seek + block + upgrade) and when a needed node is not stored.
pub(crate) fn generate_proof<S: NodeSource>(
    src: &S,
    state: &TreeState,
    req: &Request,
) -> Result<Proof> {
    let prover = Prover { src, state };
    let head = 2 * state.length;
    if head == 0 {
        return Ok(Proof::default());
    }
    let upgrade: Option<RequestUpgrade> = req.upgrade;
    let seek: Option<RequestSeek> = req.seek;
    let (from, to) = match upgrade {
        Some(u) => {
            let from = u.start.checked_mul(2);
            let to = u.start.checked_add(u.length).and_then(|e| e.checked_mul(2));
            match (from, to) {
                (Some(f), Some(t)) => (f, t),
                _ => return Err(Error::InvalidRequest("invalid upgrade".into())),
            }
        }
        None => (0, head),
    };
    let node = if let Some(b) = req.block {
        if b.index >= state.length {
            return Err(Error::InvalidRequest(format!(
                "block {} beyond length {}",
                b.index, state.length
            )));
        }
        Some(Indexed {
            value: true,
            index: b.index * 2,
            nodes: b.nodes,
            last_index: b.index,
        })
    } else if let Some(h) = req.hash {
        if h.index >= MAX_INDEX {
            return Err(Error::InvalidRequest("hash index out of range".into()));
        }
        Some(Indexed {
            value: false,
            index: h.index,
            nodes: h.nodes,
            last_index: flat_tree::right_span(h.index) / 2,
        })
    } else {
        None
    };

    if from >= to || to > head {
        return Err(Error::InvalidRequest("invalid upgrade".into()));
    }
    if let (Some(_), Some(_), Some(n)) = (seek, upgrade, &node) {
        if n.index >= from {
            return Err(Error::InvalidRequest(
                "cannot both do a seek and block/hash request when upgrading".into(),
            ));
        }
    }

    let mut p = Pending::default();
    let mut sub_tree = head;
    match (&node, upgrade) {
        (Some(n), u) if u.is_none_or(|u| n.last_index < u.start) => {
            sub_tree = nodes_to_root(n.index, n.nodes, to)?;
            let seek_root = match seek {
                Some(s) => prover.seek_untrusted(sub_tree, s.bytes, s.padding)?,
                None => head,
            };
            prover.block_and_seek_proof(Some(n), seek.is_some(), seek_root, sub_tree, &mut p)?;
        }
        (n, Some(_)) if n.is_some() || seek.is_some() => {
            sub_tree = match (seek, n) {
                (Some(s), _) => prover.seek_from_head(to, s.bytes, s.padding)?,
                (None, Some(n)) => n.index,
                (None, None) => head,
            };
        }
        _ => {}
    }

    if upgrade.is_some() {
        prover.upgrade_proof(node.as_ref(), seek.is_some(), from, to, sub_tree, &mut p)?;
        if head > to {
            prover.additional_upgrade_proof(to, head, &mut p)?;
        }
    }

    // settle()
    let mut out = Proof::default();
    if let Some(b) = req.block {
        let nodes = p
            .node
            .take()
            .ok_or_else(|| Error::InvalidRequest("invalid block request".into()))?;
        out.block = Some(DataBlock {
            index: b.index,
            value: Vec::new(),
            nodes,
        });
    } else if let Some(h) = req.hash {
        let nodes = p
            .node
            .take()
            .ok_or_else(|| Error::InvalidRequest("invalid hash request".into()))?;
        out.hash = Some(DataHash {
            index: h.index,
            nodes,
        });
    }
    if let (Some(s), Some(nodes)) = (seek, p.seek.take()) {
        out.seek = Some(DataSeek {
            bytes: s.bytes,
            nodes,
        });
    }
    if let Some(u) = upgrade {
        out.upgrade = Some(DataUpgrade {
            start: u.start,
            length: u.length,
            nodes: p.upgrade.take().unwrap_or_default(),
            additional_nodes: p.additional.take().unwrap_or_default(),
            signature: state.signature.clone(),
        });
    }
    Ok(out)
}
