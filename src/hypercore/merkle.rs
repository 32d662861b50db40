//! Merkle tree proofs: generation ([`generate_proof`]) and verification ([`verify_tree`],
//! [`verify_upgrade`]), step for step as JS hypercore 11.37.1 `lib/merkle-tree.js`
//! (`generateProof`, `blockAndSeekProof`, `upgradeProof`, `additionalUpgradeProof`,
//! `verifyTree`, `verifyUpgrade`, `MerkleTreeBatch.appendRoot`), so that a JS peer accepts the
//! proofs we send and we accept the ones it sends: the *order* of nodes in each list matters.
//!
//! Everything here is pure: tree nodes are read through a [`NodeSource`], nothing is written.

use super::crypto::{leaf_node, parent_node};
use super::flat_tree::{self, Iterator, MAX_INDEX};
use super::messages::{
    DataBlock, DataHash, DataSeek, DataUpgrade, Request, RequestSeek, RequestUpgrade, TreeNode,
};
use super::{Error, Result};

/// Longest node list a valid proof path can have (a path from a leaf to a root of a tree with
/// fewer than 2^62 blocks has at most 63 nodes; upgrades add at most that many roots).
pub const MAX_PROOF_NODES: usize = 256;

/// Bound for every walk up or down the tree (JS asserts at 1024 steps; 64 levels is the most a
/// u64 index has).
const MAX_WALK: usize = 128;

/// Read access to stored tree nodes. `Ok(None)` means "not stored" (sparse replicas).
pub trait NodeSource {
    /// The stored node at flat-tree `index`, if any.
    fn node(&self, index: u64) -> Result<Option<TreeNode>>;
}

/// The signed state of a tree: what an upgrade starts from and what a writer signs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TreeState {
    /// Fork id.
    pub fork: u64,
    /// Number of blocks.
    pub length: u64,
    /// Total bytes of all blocks.
    pub byte_length: u64,
    /// Full roots, left to right (`flat_tree::full_roots(2 * length)`).
    pub roots: Vec<TreeNode>,
    /// Signature over (tree hash, length, fork); empty when length is 0 and nothing was signed.
    pub signature: Vec<u8>,
}

/// A tree being grown (`MerkleTreeBatch`): by appends on a writer, by upgrade proofs on a reader.
/// `nodes` collects every node added, for storage.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Fork id.
    pub fork: u64,
    /// Length after the additions.
    pub length: u64,
    /// Byte length after the additions.
    pub byte_length: u64,
    /// Roots after the additions.
    pub roots: Vec<TreeNode>,
    /// Every new node (leaves, parents, upgrade nodes), in the order they were added.
    pub nodes: Vec<TreeNode>,
    /// True once anything was appended.
    pub upgraded: bool,
}

impl Batch {
    /// A batch starting at `state`.
    pub fn new(state: &TreeState) -> Self {
        Batch {
            fork: state.fork,
            length: state.length,
            byte_length: state.byte_length,
            roots: state.roots.clone(),
            nodes: Vec::new(),
            upgraded: false,
        }
    }

    /// Appends one block (writer side, `MerkleTreeBatch.append`).
    pub fn append(&mut self, data: &[u8]) {
        let head = self.length * 2;
        let mut ite = Iterator::new(head);
        self.append_root(leaf_node(head, data), &mut ite);
    }

    /// `appendRoot`: adds a full subtree root at the cursor, merging equal-sized neighbours.
    pub fn append_root(&mut self, node: TreeNode, ite: &mut Iterator) {
        self.upgraded = true;
        self.length = self.length.wrapping_add(ite.factor / 2);
        self.byte_length = self.byte_length.wrapping_add(node.size);
        self.roots.push(node);
        self.nodes.push(node);
        while self.roots.len() > 1 {
            let a = self.roots[self.roots.len() - 1];
            let b = self.roots[self.roots.len() - 2];
            if ite.sibling() != b.index {
                ite.sibling(); // undo, so the cursor stays on the last root
                break;
            }
            let parent = parent_node(ite.parent(), &a, &b);
            self.nodes.push(parent);
            self.roots.pop();
            self.roots.pop();
            self.roots.push(parent);
        }
    }
}

/// `NodeQueue`: hands out proof nodes in the order the verifier needs them; `extra` (a root
/// computed from another part of the proof) is served first when its index is asked for.
struct NodeQueue<'a> {
    nodes: &'a [TreeNode],
    i: usize,
    extra: Option<TreeNode>,
}

impl<'a> NodeQueue<'a> {
    fn new(nodes: &'a [TreeNode], extra: Option<TreeNode>) -> Self {
        NodeQueue { nodes, i: 0, extra }
    }

    fn len(&self) -> usize {
        self.nodes.len() - self.i + self.extra.is_some() as usize
    }

    fn shift(&mut self, index: u64) -> Result<TreeNode> {
        if let Some(extra) = self.extra {
            if extra.index == index {
                self.extra = None;
                return Ok(extra);
            }
        }
        let Some(node) = self.nodes.get(self.i) else {
            return Err(Error::InvalidProof(format!(
                "expected node {index}, got (nil)"
            )));
        };
        if node.index != index {
            return Err(Error::InvalidProof(format!(
                "expected node {index}, got node {}",
                node.index
            )));
        }
        self.i += 1;
        Ok(*node)
    }
}

fn check_nodes(what: &str, nodes: &[TreeNode]) -> Result<()> {
    if nodes.len() > MAX_PROOF_NODES {
        return Err(Error::InvalidProof(format!(
            "{what}: {} nodes (max {MAX_PROOF_NODES})",
            nodes.len()
        )));
    }
    if let Some(n) = nodes.iter().find(|n| n.index >= MAX_INDEX) {
        return Err(Error::InvalidProof(format!(
            "{what}: node index {} out of range",
            n.index
        )));
    }
    Ok(())
}

/// (flat index, value, nodes) of the block or node a proof proves.
type Untrusted<'a> = (u64, Option<&'a [u8]>, &'a [TreeNode]);

/// `verifyTree`: recomputes the subtree root proven by the block/hash/seek parts of `data`.
/// Returns that root (or `None` if there are no such parts) and pushes every node it saw or
/// computed onto `out`. Errors with [`Error::InvalidProof`] when nodes are missing or misplaced.
pub fn verify_tree(
    block: Option<&DataBlock>,
    hash: Option<&DataHash>,
    seek: Option<&DataSeek>,
    out: &mut Vec<TreeNode>,
) -> Result<Option<TreeNode>> {
    let untrusted: Option<Untrusted<'_>> = match (block, hash) {
        (Some(b), _) => {
            if b.index >= MAX_INDEX / 2 {
                return Err(Error::InvalidProof(format!(
                    "block index {} out of range",
                    b.index
                )));
            }
            check_nodes("block", &b.nodes)?;
            Some((2 * b.index, Some(&b.value[..]), &b.nodes[..]))
        }
        (None, Some(h)) => {
            if h.index >= MAX_INDEX {
                return Err(Error::InvalidProof(format!(
                    "hash index {} out of range",
                    h.index
                )));
            }
            check_nodes("hash", &h.nodes)?;
            Some((h.index, None, &h.nodes[..]))
        }
        (None, None) => None,
    };
    let seek_nodes = seek.map(|s| &s.nodes[..]).unwrap_or(&[]);
    check_nodes("seek", seek_nodes)?;
    if untrusted.is_none() && seek_nodes.is_empty() {
        return Ok(None);
    }

    let mut root = None;
    if let Some(first) = seek_nodes.first() {
        let mut ite = Iterator::new(first.index);
        let mut q = NodeQueue::new(seek_nodes, None);
        let mut r = q.shift(ite.index)?;
        out.push(r);
        while q.len() > 0 {
            let node = q.shift(ite.sibling())?;
            r = parent_node(ite.parent(), &r, &node);
            out.push(node);
            out.push(r);
        }
        root = Some(r);
    }

    let Some((index, value, nodes)) = untrusted else {
        return Ok(root);
    };
    let mut ite = Iterator::new(index);
    let mut q = NodeQueue::new(nodes, root);
    let mut r = match value {
        Some(v) => leaf_node(index, v),
        None => q.shift(index)?,
    };
    out.push(r);
    while q.len() > 0 {
        let node = q.shift(ite.sibling())?;
        r = parent_node(ite.parent(), &r, &node);
        out.push(node);
        out.push(r);
    }
    Ok(Some(r))
}

/// `verifyUpgrade`: grows `batch` (which starts at the receiver's signed state) with the nodes of
/// `upgrade`, using `block_root` (from [`verify_tree`]) where the proof expects it. Returns true
/// when `block_root` was consumed, i.e. the block proof is anchored in the upgraded tree.
/// The caller must still verify the signature over the resulting roots.
pub fn verify_upgrade(
    upgrade: &DataUpgrade,
    block_root: Option<TreeNode>,
    batch: &mut Batch,
) -> Result<bool> {
    check_nodes("upgrade", &upgrade.nodes)?;
    check_nodes("additional", &upgrade.additional_nodes)?;
    let to = upgrade
        .start
        .checked_add(upgrade.length)
        .filter(|n| *n < MAX_INDEX / 2)
        .ok_or_else(|| Error::InvalidProof("upgrade length out of range".into()))?
        * 2;

    let mut q = NodeQueue::new(&upgrade.nodes, block_root);
    let mut grow = !batch.roots.is_empty();
    let mut i = 0;
    let mut ite = Iterator::new(0);
    while ite.full_root(to) {
        if i < batch.roots.len() && batch.roots[i].index == ite.index {
            i += 1;
        } else if grow && i < batch.roots.len() {
            // Our last roots merge into a bigger root of the new tree: add their uncles.
            grow = false;
            let root = ite.index;
            let last = batch.roots[batch.roots.len() - 1].index;
            ite.seek(last);
            let mut steps = 0;
            while ite.index != root {
                steps += 1;
                if steps > MAX_WALK {
                    return Err(Error::InvalidProof(
                        "upgrade does not reach its root".into(),
                    ));
                }
                let node = q.shift(ite.sibling())?;
                batch.append_root(node, &mut ite);
            }
        } else {
            grow = false;
            let node = q.shift(ite.index)?;
            batch.append_root(node, &mut ite);
        }
        ite.next_tree();
    }

    let extra = &upgrade.additional_nodes;
    let Some(last) = batch.roots.last() else {
        return Err(Error::InvalidProof("upgrade proves an empty tree".into()));
    };
    ite.seek(last.index);
    let mut i = 0;
    while i < extra.len() && extra[i].index == ite.sibling() {
        batch.append_root(extra[i], &mut ite);
        i += 1;
    }
    while i < extra.len() {
        let node = extra[i];
        i += 1;
        let mut steps = 0;
        while node.index != ite.index {
            steps += 1;
            if ite.factor == 2 || steps > MAX_WALK {
                return Err(Error::InvalidProof(format!(
                    "unexpected additional node {}",
                    node.index
                )));
            }
            ite.left_child();
        }
        batch.append_root(node, &mut ite);
        ite.sibling();
    }
    Ok(q.extra.is_none())
}

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
pub struct Proof {
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
pub fn byte_offset<S: NodeSource>(src: &S, state: &TreeState, index: u64) -> Result<u64> {
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
pub fn generate_proof<S: NodeSource>(src: &S, state: &TreeState, req: &Request) -> Result<Proof> {
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

/// `MerkleTree.missingNodes(index, length)`: how many nodes on the path up from flat-tree
/// `index` (itself included) the receiver lacks, stopping at the first stored one or at the edge
/// of the tree of `length` blocks. This is the `nodes` field to put in a block/hash request.
pub fn missing_nodes<S: NodeSource>(src: &S, index: u64, length: u64) -> Result<u64> {
    let head = 2 * length;
    let mut ite = Iterator::new(index);
    if ite.peek_right_span() >= head {
        return Ok(0);
    }
    let mut count = 0;
    while !ite.contains(head) && src.node(ite.index)?.is_none() {
        count += 1;
        if count > MAX_WALK as u64 {
            return Err(Error::InvalidRequest(format!(
                "bad arguments to missing_nodes index={index} length={length}"
            )));
        }
        ite.parent();
    }
    Ok(count)
}

/// `MerkleTree.upgradeLength(upgrade)`: the length a peer will have after applying `upgrade`.
pub fn upgrade_length(upgrade: &DataUpgrade) -> u64 {
    match upgrade.additional_nodes.last() {
        Some(last) => flat_tree::right_span(last.index) / 2 + 1,
        None => upgrade.start.saturating_add(upgrade.length),
    }
}

/// Total byte size of `roots`.
pub fn total_size(roots: &[TreeNode]) -> u64 {
    roots.iter().fold(0u64, |a, r| a.wrapping_add(r.size))
}
