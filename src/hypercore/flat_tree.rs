//! Flat-tree index math, as npm `flat-tree` 1.13.0 (used by JS hypercore 11.37.1).
//!
//! A binary tree laid out in one array: leaves (blocks) sit at even indexes (`2 * block`), a
//! parent sits between its children. Depth `d` nodes are at `(2 * offset + 1) * 2^d - 1`.
//! ```text
//!        3
//!    1       5
//!  0   2   4   6
//! ```
//! All functions take and return flat-tree indexes (`u64`). Inputs come from peers, so every
//! function is total: no panics for any `u64`, and exact results for indexes below
//! [`MAX_INDEX`] (callers reject peer-supplied indexes above it).

/// Largest flat-tree index this implementation works with (2^62): far beyond any real core.
pub const MAX_INDEX: u64 = 1 << 62;

/// Depth of `index` (0 for leaves).
pub fn depth(index: u64) -> u32 {
    (!index).trailing_zeros()
}

/// Offset of `index` within its depth (leaf `2k` has offset `k`).
pub fn offset(index: u64) -> u64 {
    let d = depth(index);
    index.checked_shr(d + 1).unwrap_or(0)
}

/// Index of the node at `depth`, `offset`.
pub fn index(depth: u32, offset: u64) -> u64 {
    ((offset << 1) | 1).wrapping_shl(depth).wrapping_sub(1)
}

/// Parent of `index`.
pub fn parent(i: u64) -> u64 {
    let d = depth(i);
    index(d + 1, offset(i) >> 1)
}

/// Sibling of `index`.
pub fn sibling(i: u64) -> u64 {
    let d = depth(i);
    index(d, offset(i) ^ 1)
}

/// Left child, or `None` for a leaf.
pub fn left_child(i: u64) -> Option<u64> {
    let d = depth(i);
    (d > 0).then(|| index(d - 1, offset(i) << 1))
}

/// Right child, or `None` for a leaf.
pub fn right_child(i: u64) -> Option<u64> {
    let d = depth(i);
    (d > 0).then(|| index(d - 1, (offset(i) << 1) + 1))
}

/// Leftmost leaf under `index`.
pub fn left_span(i: u64) -> u64 {
    let d = depth(i);
    if d == 0 {
        i
    } else {
        offset(i).wrapping_shl(d + 1)
    }
}

/// Rightmost leaf under `index`.
pub fn right_span(i: u64) -> u64 {
    let d = depth(i);
    if d == 0 {
        i
    } else {
        (offset(i).wrapping_add(1))
            .wrapping_shl(d + 1)
            .wrapping_sub(2)
    }
}

/// `(left_span, right_span)`.
pub fn spans(i: u64) -> (u64, u64) {
    (left_span(i), right_span(i))
}

/// Number of leaves (blocks) under `index`.
pub fn count_leaves(i: u64) -> u64 {
    1u64.wrapping_shl(depth(i))
}

/// The roots of the complete subtrees that cover leaves `[0, head)`, where `head` is an even
/// index (`2 * length`), left to right. Odd `head` yields the roots of `head - 1`.
pub fn full_roots(head: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut remaining = head / 2;
    let mut off = 0u64;
    while remaining > 0 {
        // Largest power of two not above `remaining`.
        let factor = 1u64 << (63 - remaining.leading_zeros());
        out.push(off + factor - 1);
        off += 2 * factor;
        remaining -= factor;
    }
    out
}

/// A cursor over flat-tree indexes, mirroring the JS `flat.iterator` (same field meaning:
/// `factor` is twice the number of leaves under `index`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Iterator {
    /// Current index.
    pub index: u64,
    /// Offset of the current index at its depth.
    pub offset: u64,
    /// `2 * count_leaves(index)`.
    pub factor: u64,
}

impl Iterator {
    /// A cursor at `index`.
    pub fn new(index: u64) -> Self {
        let mut it = Iterator {
            index: 0,
            offset: 0,
            factor: 0,
        };
        it.seek(index);
        it
    }

    /// Moves to `index`.
    pub fn seek(&mut self, index: u64) {
        self.index = index;
        self.offset = offset(index);
        self.factor = 2u64.wrapping_shl(depth(index));
    }

    /// Is the current node a left child?
    pub fn is_left(&self) -> bool {
        self.offset & 1 == 0
    }

    /// Does the subtree rooted at the current node contain `index`?
    pub fn contains(&self, index: u64) -> bool {
        let half = self.factor / 2;
        if index > self.index {
            index < self.index.wrapping_add(half)
        } else if index < self.index {
            // `index > self.index - half`, written so a left-edge subtree cannot underflow.
            index.wrapping_add(half) > self.index
        } else {
            true
        }
    }

    /// Leaves under the current node.
    pub fn count_leaves(&self) -> u64 {
        self.factor / 2
    }

    /// Next node at the same depth (JS `next`).
    pub fn step_right(&mut self) -> u64 {
        self.offset = self.offset.wrapping_add(1);
        self.index = self.index.wrapping_add(self.factor);
        self.index
    }

    /// Previous node at the same depth, staying put at offset 0 (JS `prev`).
    pub fn step_left(&mut self) -> u64 {
        if self.offset == 0 {
            return self.index;
        }
        self.offset -= 1;
        self.index -= self.factor;
        self.index
    }

    /// Moves to the sibling.
    pub fn sibling(&mut self) -> u64 {
        if self.is_left() {
            self.step_right()
        } else {
            self.step_left()
        }
    }

    /// Moves to the parent.
    pub fn parent(&mut self) -> u64 {
        if self.offset & 1 == 1 {
            self.index = self.index.wrapping_sub(self.factor / 2);
            self.offset = (self.offset - 1) / 2;
        } else {
            self.index = self.index.wrapping_add(self.factor / 2);
            self.offset /= 2;
        }
        self.factor = self.factor.wrapping_mul(2);
        self.index
    }

    /// Moves to the left child (stays put on a leaf).
    pub fn left_child(&mut self) -> u64 {
        if self.factor == 2 {
            return self.index;
        }
        self.factor /= 2;
        self.index = self.index.wrapping_sub(self.factor / 2);
        self.offset = self.offset.wrapping_mul(2);
        self.index
    }

    /// Moves to the right child (stays put on a leaf).
    pub fn right_child(&mut self) -> u64 {
        if self.factor == 2 {
            return self.index;
        }
        self.factor /= 2;
        self.index = self.index.wrapping_add(self.factor / 2);
        self.offset = self.offset.wrapping_mul(2).wrapping_add(1);
        self.index
    }

    /// Rightmost leaf under the current node, without moving.
    pub fn peek_right_span(&self) -> u64 {
        self.index.wrapping_add(self.factor / 2).wrapping_sub(1)
    }

    /// Moves to the leaf right after the current subtree.
    pub fn next_tree(&mut self) -> u64 {
        self.index = self.index.wrapping_add(self.factor / 2).wrapping_add(1);
        self.offset = self.index / 2;
        self.factor = 2;
        self.index
    }

    /// JS `fullRoot(index)`: from a leaf, grows the cursor to the largest full subtree starting
    /// there that fits below `head`; false when the cursor is past `head` (or not on a leaf).
    pub fn full_root(&mut self, head: u64) -> bool {
        if head <= self.index || self.index & 1 == 1 {
            return false;
        }
        // Bounded: factor doubles each round and head < 2^64.
        while self.factor < (1 << 62) && head > self.index + self.factor + self.factor / 2 {
            self.index += self.factor / 2;
            self.factor *= 2;
            self.offset /= 2;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_relations() {
        assert_eq!(depth(0), 0);
        assert_eq!(depth(1), 1);
        assert_eq!(depth(3), 2);
        assert_eq!(depth(7), 3);
        assert_eq!(parent(0), 1);
        assert_eq!(parent(2), 1);
        assert_eq!(parent(1), 3);
        assert_eq!(parent(5), 3);
        assert_eq!(sibling(0), 2);
        assert_eq!(sibling(1), 5);
        assert_eq!(sibling(5), 1);
        assert_eq!(left_child(3), Some(1));
        assert_eq!(right_child(3), Some(5));
        assert_eq!(left_child(4), None);
        assert_eq!(spans(3), (0, 6));
        assert_eq!(spans(23), (16, 30));
        assert_eq!(count_leaves(7), 8);
        assert_eq!(index(2, 1), 11);
        assert_eq!(offset(11), 1);
    }

    #[test]
    fn full_roots_match_js() {
        // Values from npm flat-tree 1.13.0 `fullRoots`.
        assert_eq!(full_roots(0), Vec::<u64>::new());
        assert_eq!(full_roots(2), vec![0]);
        assert_eq!(full_roots(8), vec![3]);
        assert_eq!(full_roots(10), vec![3, 8]);
        assert_eq!(full_roots(16), vec![7]);
        assert_eq!(full_roots(18), vec![7, 16]);
        assert_eq!(full_roots(22), vec![7, 17, 20]);
        assert_eq!(
            full_roots(2 * 1000),
            vec![511, 1279, 1663, 1855, 1951, 1991]
        );
    }

    #[test]
    fn iterator_walks_like_js() {
        // Left-edge subtrees contain their leftmost leaf (JS computes 31 - 32 = -1 < 0 there).
        assert!(Iterator::new(31).contains(0));
        assert!(Iterator::new(31).contains(62));
        assert!(!Iterator::new(31).contains(63 + 1));
        assert!(!Iterator::new(5).contains(2));
        let mut it = Iterator::new(0);
        assert_eq!(it.parent(), 1);
        assert_eq!(it.parent(), 3);
        assert_eq!(it.sibling(), 11);
        assert_eq!(it.left_child(), 9);
        assert_eq!(it.right_child(), 10);
        assert_eq!(it.step_left(), 8);
        assert!(it.contains(8));
        let mut it = Iterator::new(0);
        // Roots of length 11 via full_root / next_tree, like merkle-tree.js loops.
        let mut roots = vec![];
        while it.full_root(22) {
            roots.push(it.index);
            it.next_tree();
        }
        assert_eq!(roots, full_roots(22));
        // Every index's parent/sibling agree with the free functions.
        for i in 0..200u64 {
            let mut it = Iterator::new(i);
            assert_eq!(it.sibling(), sibling(i));
            let mut it = Iterator::new(i);
            assert_eq!(it.parent(), parent(i));
            assert_eq!(Iterator::new(i).peek_right_span(), right_span(i));
        }
    }
}
