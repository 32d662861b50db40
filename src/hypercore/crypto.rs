//! Hashes, namespaces, signables and keys of hypercore, as npm `hypercore-crypto` 3.7.0 and JS
//! hypercore 11.37.1 `lib/caps.js`.
//!
//! All hashes are BLAKE2b-256 (libsodium `crypto_generichash` with a 32-byte output):
//! - leaf:   `H(0x00 ‖ u64le(len) ‖ data)`
//! - parent: `H(0x01 ‖ u64le(left.size + right.size) ‖ left.hash ‖ right.hash)` (left = lower index)
//! - tree:   `H(0x02 ‖ for each root: hash ‖ u64le(index) ‖ u64le(size))`
//! - discovery key: BLAKE2b-256 keyed with the core key over the bytes `"hypercore"`.
//! - namespaces: `ns = H("hypercore")`, then entry `i` is `H(ns ‖ byte i)`.

use blake2::digest::{consts::U32, Mac};
use blake2::{Blake2b, Blake2bMac, Digest};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};

use super::messages::TreeNode;

type Blake2b256 = Blake2b<U32>;

/// Domain separation byte of leaf hashes.
const LEAF_TYPE: u8 = 0;
/// Domain separation byte of parent hashes.
const PARENT_TYPE: u8 = 1;
/// Domain separation byte of tree (roots) hashes.
const ROOT_TYPE: u8 = 2;

/// Index of the TREE namespace in `crypto.namespace('hypercore', 6)` (caps.js order: TREE,
/// REPLICATE_INITIATOR, REPLICATE_RESPONDER, MANIFEST, DEFAULT_NAMESPACE, DEFAULT_ENCRYPTION).
const NS_TREE: u8 = 0;
const NS_REPLICATE_INITIATOR: u8 = 1;
const NS_REPLICATE_RESPONDER: u8 = 2;
const NS_MANIFEST: u8 = 3;
const NS_DEFAULT: u8 = 4;

/// BLAKE2b-256 over the concatenation of `parts` (`crypto_generichash_batch`).
pub fn hash_batch(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Blake2b256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// `crypto.namespace(name, count)`: `count` 32-byte namespaces derived from `name`.
pub fn namespace(name: &[u8], count: u8) -> Vec<[u8; 32]> {
    let ns = hash_batch(&[name]);
    (0..count).map(|i| hash_batch(&[&ns, &[i]])).collect()
}

fn hypercore_namespace(i: u8) -> [u8; 32] {
    let ns = hash_batch(&[b"hypercore"]);
    hash_batch(&[&ns, &[i]])
}

/// caps.TREE: the namespace prefixed to compat tree signables.
pub fn tree_namespace() -> [u8; 32] {
    hypercore_namespace(NS_TREE)
}

/// caps.MANIFEST: prefix of manifest hashes.
pub fn manifest_namespace() -> [u8; 32] {
    hypercore_namespace(NS_MANIFEST)
}

/// caps.DEFAULT_NAMESPACE: the signer namespace of default manifests.
pub fn default_namespace() -> [u8; 32] {
    hypercore_namespace(NS_DEFAULT)
}

/// `crypto.data(block)`: leaf hash of a block.
pub fn leaf_hash(data: &[u8]) -> [u8; 32] {
    hash_batch(&[&[LEAF_TYPE], &(data.len() as u64).to_le_bytes(), data])
}

/// Leaf node for block data at flat-tree `index` (`blockNode` in merkle-tree.js).
pub fn leaf_node(index: u64, data: &[u8]) -> TreeNode {
    TreeNode {
        index,
        size: data.len() as u64,
        hash: leaf_hash(data),
    }
}

/// `crypto.parent(a, b)`: parent hash; children are ordered by index, whatever the argument order.
pub fn parent_hash(a: &TreeNode, b: &TreeNode) -> [u8; 32] {
    let (l, r) = if a.index > b.index { (b, a) } else { (a, b) };
    let size = l.size.wrapping_add(r.size);
    hash_batch(&[&[PARENT_TYPE], &size.to_le_bytes(), &l.hash, &r.hash])
}

/// Parent node at flat-tree `index` of `a` and `b` (`parentNode` in merkle-tree.js).
pub fn parent_node(index: u64, a: &TreeNode, b: &TreeNode) -> TreeNode {
    TreeNode {
        index,
        size: a.size.wrapping_add(b.size),
        hash: parent_hash(a, b),
    }
}

/// `crypto.tree(roots)`: the tree hash that signatures cover.
pub fn tree_hash(roots: &[TreeNode]) -> [u8; 32] {
    let mut h = Blake2b256::new();
    h.update([ROOT_TYPE]);
    for r in roots {
        h.update(r.hash);
        h.update(r.index.to_le_bytes());
        h.update(r.size.to_le_bytes());
    }
    h.finalize().into()
}

/// `caps.treeSignableCompat(hash, length, fork, false)`: the 80 bytes a compat core signs:
/// `TREE namespace ‖ tree hash ‖ u64le(length) ‖ u64le(fork)`.
pub fn signable_compat(tree_hash: &[u8; 32], length: u64, fork: u64) -> [u8; 80] {
    let mut out = [0u8; 80];
    out[..32].copy_from_slice(&tree_namespace());
    out[32..64].copy_from_slice(tree_hash);
    out[64..72].copy_from_slice(&length.to_le_bytes());
    out[72..].copy_from_slice(&fork.to_le_bytes());
    out
}

/// Signs the compat signable of (`roots`, `length`, `fork`): 64-byte ed25519 signature.
pub fn sign_tree(key: &SigningKey, roots: &[TreeNode], length: u64, fork: u64) -> [u8; 64] {
    let msg = signable_compat(&tree_hash(roots), length, fork);
    key.sign(&msg).to_bytes()
}

/// Verifies a compat tree signature under `public_key`. False for a malformed key or signature
/// (any length other than 64) as well as a wrong one.
pub fn verify_tree(
    public_key: &[u8; 32],
    roots: &[TreeNode],
    length: u64,
    fork: u64,
    signature: &[u8],
) -> bool {
    let Ok(sig) = <[u8; 64]>::try_from(signature) else {
        return false;
    };
    let Ok(vk) = VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    let msg = signable_compat(&tree_hash(roots), length, fork);
    vk.verify(&msg, &Signature::from_bytes(&sig)).is_ok()
}

/// `crypto.discoveryKey(key)`: BLAKE2b-256 keyed by the 32-byte core key, over `"hypercore"`.
/// Peers announce and look up this value instead of the key.
pub fn discovery_key(key: &[u8; 32]) -> [u8; 32] {
    let mut mac = <Blake2bMac<U32> as Mac>::new_from_slice(key).expect("32-byte key is valid");
    mac.update(b"hypercore");
    mac.finalize().into_bytes().into()
}

/// `caps.replicate(isInitiator, key, handshakeHash)`: the capability sent in `wire.handshake`,
/// BLAKE2b-256 keyed by the noise `handshake_hash` over `REPLICATE_{INITIATOR|RESPONDER} ‖ key`.
pub fn replicate_capability(is_initiator: bool, key: &[u8; 32], handshake_hash: &[u8]) -> [u8; 32] {
    let ns = hypercore_namespace(if is_initiator {
        NS_REPLICATE_INITIATOR
    } else {
        NS_REPLICATE_RESPONDER
    });
    // libsodium generichash accepts keys of 16..=64 bytes (and none); handshake hashes are 64.
    match <Blake2bMac<U32> as Mac>::new_from_slice(handshake_hash) {
        Ok(mut mac) => {
            mac.update(&ns);
            mac.update(key);
            mac.finalize().into_bytes().into()
        }
        Err(_) => hash_batch(&[&ns, key]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_derived_like_hypercore_crypto() {
        let all = namespace(b"hypercore", 6);
        assert_eq!(all[0], tree_namespace());
        assert_eq!(all[3], manifest_namespace());
        assert_eq!(all[4], default_namespace());
        // caps.TREE as printed by node (hypercore 11.37.1 lib/caps.js).
        assert_eq!(
            hex::encode(tree_namespace()),
            include_str!("testdata/caps_tree.hex").trim()
        );
        assert_eq!(
            hex::encode(default_namespace()),
            include_str!("testdata/caps_default_namespace.hex").trim()
        );
    }

    #[test]
    fn replicate_capability_matches_js() {
        // caps.replicate(isInitiator, 0x22 * 32, 0x33 * 64) from tests/js/messages.js.
        let key = [0x22; 32];
        let hh = [0x33; 64];
        assert_eq!(
            hex::encode(replicate_capability(true, &key, &hh)),
            include_str!("testdata/replicate_initiator.hex").trim()
        );
        assert_eq!(
            hex::encode(replicate_capability(false, &key, &hh)),
            include_str!("testdata/replicate_responder.hex").trim()
        );
    }

    #[test]
    fn parent_orders_children_by_index() {
        let a = leaf_node(0, b"a");
        let b = leaf_node(2, b"bb");
        assert_eq!(parent_hash(&a, &b), parent_hash(&b, &a));
        assert_eq!(parent_node(1, &a, &b).size, 3);
    }

    #[test]
    fn sign_and_verify() {
        let sk = SigningKey::from_bytes(&[7; 32]);
        let pk = sk.verifying_key().to_bytes();
        let roots = [leaf_node(0, b"x")];
        let sig = sign_tree(&sk, &roots, 1, 0);
        assert!(verify_tree(&pk, &roots, 1, 0, &sig));
        assert!(!verify_tree(&pk, &roots, 2, 0, &sig));
        assert!(!verify_tree(&pk, &roots, 1, 0, &sig[..63]));
    }
}
