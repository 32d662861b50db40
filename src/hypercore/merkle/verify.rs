//! Proof verification: `verifyTree` and `verifyUpgrade` of JS hypercore 11.37.1
//! `lib/merkle-tree.js`, step for step, so we accept the proofs a JS peer sends.

use super::{Batch, MAX_PROOF_NODES, MAX_WALK};
use crate::hypercore::crypto::{leaf_node, parent_node};
use crate::hypercore::flat_tree::{Iterator, MAX_INDEX};
use crate::hypercore::messages::{DataBlock, DataHash, DataSeek, DataUpgrade, TreeNode};
use crate::hypercore::{Error, Result};

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
pub(crate) fn verify_tree(
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
pub(crate) fn verify_upgrade(
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
