//! The Kademlia routing table of a DHT node (kademlia-routing-table 1.0.6, as dht-rpc 6.27.0
//! uses it): 256 rows by the length of the prefix a node id shares with ours, at most
//! [`K`] nodes per row, and the [`K`] closest nodes to any target by XOR distance.
//!
//! Only nodes whose id was verified (the hash of the address they answered from, see
//! [`super::rpc::node_id`]) belong here, so a peer cannot choose its place. A full row keeps
//! its nodes (the oldest is the caller's to re-ping and replace, [`Table::oldest_in_row`]).

use std::net::SocketAddrV4;

/// Nodes per row, and nodes a lookup returns: 20.
pub const K: usize = 20;

/// A node in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    /// Its verified id.
    pub id: [u8; 32],
    /// Where it answers.
    pub addr: SocketAddrV4,
    /// When it was last seen (milliseconds on the caller's clock).
    pub seen_ms: u64,
}

/// The table (see the module docs).
#[derive(Debug, Clone)]
pub struct Table {
    id: [u8; 32],
    rows: Vec<Vec<Node>>,
}

/// What [`Table::add`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// A new node.
    Inserted,
    /// It was there; its address and time were refreshed.
    Refreshed,
    /// Its row is full: it was not added.
    RowFull,
    /// It is us.
    Own,
}

/// Length of the common prefix of `a` and `b` in bits (256 when equal).
fn common_prefix(a: &[u8; 32], b: &[u8; 32]) -> usize {
    for i in 0..32 {
        let x = a[i] ^ b[i];
        if x != 0 {
            return i * 8 + x.leading_zeros() as usize;
        }
    }
    256
}

/// `a XOR b`, compared as a big-endian number.
pub fn distance(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

impl Table {
    /// An empty table around our id.
    pub fn new(id: [u8; 32]) -> Table {
        Table {
            id,
            rows: vec![Vec::new(); 256],
        }
    }

    /// Our id.
    pub fn id(&self) -> &[u8; 32] {
        &self.id
    }

    /// Nodes in the table.
    pub fn len(&self) -> usize {
        self.rows.iter().map(Vec::len).sum()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds or refreshes `node`.
    pub fn add(&mut self, node: Node) -> Added {
        let prefix = common_prefix(&self.id, &node.id);
        if prefix == 256 {
            return Added::Own;
        }
        let row = &mut self.rows[prefix];
        if let Some(n) = row.iter_mut().find(|n| n.id == node.id) {
            *n = node;
            return Added::Refreshed;
        }
        if row.len() >= K {
            return Added::RowFull;
        }
        row.push(node);
        Added::Inserted
    }

    /// Removes the node with `id` (it stopped answering).
    pub fn remove(&mut self, id: &[u8; 32]) -> Option<Node> {
        let row = &mut self.rows[common_prefix(&self.id, id).min(255)];
        let i = row.iter().position(|n| &n.id == id)?;
        Some(row.remove(i))
    }

    /// The node with `id`, if present.
    pub fn get(&self, id: &[u8; 32]) -> Option<&Node> {
        self.rows[common_prefix(&self.id, id).min(255)]
            .iter()
            .find(|n| &n.id == id)
    }

    /// The least recently seen node of the row `id` would go in (to re-ping when that row is
    /// full).
    pub fn oldest_in_row(&self, id: &[u8; 32]) -> Option<&Node> {
        self.rows[common_prefix(&self.id, id).min(255)]
            .iter()
            .min_by_key(|n| n.seen_ms)
    }

    /// Up to `k` nodes closest to `target` by XOR distance, closest first.
    pub fn closest(&self, target: &[u8; 32], k: usize) -> Vec<Node> {
        let mut all: Vec<Node> = self.rows.iter().flatten().copied().collect();
        all.sort_by_key(|n| distance(&n.id, target));
        all.truncate(k);
        all
    }

    /// Every node.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.rows.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: [u8; 32], port: u16) -> Node {
        Node {
            id,
            addr: SocketAddrV4::new([127, 0, 0, 1].into(), port),
            seen_ms: u64::from(port),
        }
    }

    #[test]
    fn rows_fill_up_to_k_and_closest_sorts_by_xor_distance() {
        let mut t = Table::new([0; 32]);
        // Every id with a first byte of 0x80.. shares no prefix with ours: one row.
        for i in 0..30u8 {
            let mut id = [0u8; 32];
            id[0] = 0x80;
            id[31] = i;
            let added = t.add(node(id, 1000 + u16::from(i)));
            assert_eq!(
                added,
                if i < 20 {
                    Added::Inserted
                } else {
                    Added::RowFull
                }
            );
        }
        assert_eq!(t.len(), K);
        assert_eq!(t.add(node([0; 32], 1)), Added::Own);
        let mut near = [0u8; 32];
        near[31] = 1;
        assert_eq!(t.add(node(near, 2)), Added::Inserted);
        let closest = t.closest(&[0; 32], 3);
        assert_eq!(closest[0].id, near);
        assert_eq!(closest[1].id[31], 0, "then 0x80..00");
        assert_eq!(closest.len(), 3);
        assert_eq!(t.oldest_in_row(&closest[1].id).unwrap().seen_ms, 1000);
        assert!(t.remove(&near).is_some() && t.get(&near).is_none());
    }
}
