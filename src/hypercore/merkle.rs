//! Merkle tree proofs: generation ([`generate_proof`]) and verification ([`verify_tree`],
//! [`verify_upgrade`]), step for step as JS hypercore 11.37.1 `lib/merkle-tree.js`
//! (`generateProof`, `blockAndSeekProof`, `upgradeProof`, `additionalUpgradeProof`,
//! `verifyTree`, `verifyUpgrade`, `MerkleTreeBatch.appendRoot`), so that a JS peer accepts the
//! proofs we send and we accept the ones it sends: the *order* of nodes in each list matters.
//!
//! Everything here is pure: tree nodes are read through a [`NodeSource`], nothing is written.

mod prove;
mod verify;

pub(crate) use prove::{byte_offset, generate_proof};
pub(crate) use verify::{verify_tree, verify_upgrade};

use super::crypto::{leaf_node, parent_node};
use super::flat_tree::Iterator;
use super::messages::TreeNode;
use super::{Error, Result};

/// Longest node list a valid proof path can have (a path from a leaf to a root of a tree with
/// fewer than 2^62 blocks has at most 63 nodes; upgrades add at most that many roots).
pub(crate) const MAX_PROOF_NODES: usize = 256;

/// Bound for every walk up or down the tree (JS asserts at 1024 steps; 64 levels is the most a
/// u64 index has).
const MAX_WALK: usize = 128;

/// Read access to stored tree nodes. `Ok(None)` means "not stored" (sparse replicas).
pub(crate) trait NodeSource {
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
pub(crate) struct Batch {
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
    pub(crate) fn new(state: &TreeState) -> Self {
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
    pub(crate) fn append(&mut self, data: &[u8]) {
        let head = self.length * 2;
        let mut ite = Iterator::new(head);
        self.append_root(leaf_node(head, data), &mut ite);
    }

    /// `appendRoot`: adds a full subtree root at the cursor, merging equal-sized neighbours.
    pub(crate) fn append_root(&mut self, node: TreeNode, ite: &mut Iterator) {
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

/// `MerkleTree.missingNodes(index, length)`: how many nodes on the path up from flat-tree
/// `index` (itself included) the receiver lacks, stopping at the first stored one or at the edge
/// of the tree of `length` blocks. This is the `nodes` field to put in a block/hash request.
pub(crate) fn missing_nodes<S: NodeSource>(src: &S, index: u64, length: u64) -> Result<u64> {
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

/// Total byte size of `roots` (checked against a stored header when a core opens from disk).
#[cfg(feature = "native")]
pub(crate) fn total_size(roots: &[TreeNode]) -> u64 {
    roots.iter().fold(0u64, |a, r| a.wrapping_add(r.size))
}
