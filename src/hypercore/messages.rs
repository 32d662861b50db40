//! Hypercore 11 replication messages, field for field as JS hypercore 11.37.1 `lib/messages.js`
//! (`wire.*` and `manifest`), encoded with [`super::encoding`].
//!
//! The proof-bearing pair is [`Request`] / [`Data`]; the rest ([`Handshake`], [`Sync`], [`Range`],
//! ...) are the small control messages of the same protomux channel. Optional fields are signalled
//! by a leading `flags` uint exactly as JS does, so a message encodes to the same bytes JS's
//! `c.encode(m.wire.X, msg)` produces. Decoding ignores trailing bytes, as JS does.

use super::encoding::{CompactEncoding, DecodeError, Decoder, Encoder};

/// A merkle tree node as sent on the wire (`node` in messages.js): flat-tree `index`, byte `size`
/// of the span it covers, and its 32-byte BLAKE2b `hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TreeNode {
    /// Flat-tree index (leaf `i` has index `2*i`).
    pub index: u64,
    /// Total bytes of the blocks under this node.
    pub size: u64,
    /// BLAKE2b-256 node hash.
    pub hash: [u8; 32],
}

impl CompactEncoding for TreeNode {
    fn encode(&self, enc: &mut Encoder) {
        enc.uint(self.index).uint(self.size).fixed32(&self.hash);
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            index: dec.uint()?,
            size: dec.uint()?,
            hash: dec.fixed32()?,
        })
    }
}

fn encode_nodes(enc: &mut Encoder, nodes: &[TreeNode]) {
    enc.array(nodes, |e, n| n.encode(e));
}

fn decode_nodes(dec: &mut Decoder<'_>) -> Result<Vec<TreeNode>, DecodeError> {
    dec.array(TreeNode::decode)
}

/// `requestBlock`: ask for block `index` (or, in [`Request::hash`], tree node `index`) with a proof.
/// `nodes` is how many of the lower proof nodes the requester already has (JS fills it from
/// `MerkleTree.missingNodes`); 0 asks for the full path to a root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestBlock {
    /// Block index (or flat-tree node index for hash requests).
    pub index: u64,
    /// Number of proof nodes to skip, counted upwards from the block.
    pub nodes: u64,
}

/// `requestSeek`: ask for the block containing byte offset `bytes` (`padding` bytes per block are
/// not counted, used by encrypted cores; 0 for us).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestSeek {
    /// Byte offset into the core's concatenated blocks.
    pub bytes: u64,
    /// Per-block padding to subtract (0 when unencrypted).
    pub padding: u64,
}

/// `requestUpgrade`: "I have `start` blocks, prove and sign the tree up to `start + length`".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestUpgrade {
    /// The requester's current length.
    pub start: u64,
    /// How many blocks to upgrade by.
    pub length: u64,
}

/// `wire.request` (message type 1 of the hypercore protomux channel in 11.x). Flags bits:
/// 1 block, 2 hash, 4 seek, 8 upgrade, 16 manifest, 32 priority.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// Request id (non-zero; the response's [`Data::request`] echoes it).
    pub id: u64,
    /// The fork the requester is on.
    pub fork: u64,
    /// Ask for a block plus its proof.
    pub block: Option<RequestBlock>,
    /// Ask for a tree node hash plus its proof (no block value).
    pub hash: Option<RequestBlock>,
    /// Ask for the block at a byte offset.
    pub seek: Option<RequestSeek>,
    /// Ask for a signed upgrade to a longer tree.
    pub upgrade: Option<RequestUpgrade>,
    /// Ask the peer to include its manifest (JS never sends one for compat cores).
    pub manifest: bool,
    /// Request priority; 0 means "not set" and is not encoded.
    pub priority: u64,
}

impl CompactEncoding for Request {
    fn encode(&self, enc: &mut Encoder) {
        let flags = (self.block.is_some() as u64)
            | (self.hash.is_some() as u64) << 1
            | (self.seek.is_some() as u64) << 2
            | (self.upgrade.is_some() as u64) << 3
            | (self.manifest as u64) << 4
            | ((self.priority != 0) as u64) << 5;
        enc.uint(flags).uint(self.id).uint(self.fork);
        if let Some(b) = &self.block {
            enc.uint(b.index).uint(b.nodes);
        }
        if let Some(h) = &self.hash {
            enc.uint(h.index).uint(h.nodes);
        }
        if let Some(s) = &self.seek {
            enc.uint(s.bytes).uint(s.padding);
        }
        if let Some(u) = &self.upgrade {
            enc.uint(u.start).uint(u.length);
        }
        if self.priority != 0 {
            enc.uint(self.priority);
        }
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let flags = dec.uint()?;
        let id = dec.uint()?;
        let fork = dec.uint()?;
        let block_like = |bit: u64, dec: &mut Decoder<'_>| -> Result<_, DecodeError> {
            Ok(if flags & bit != 0 {
                Some(RequestBlock {
                    index: dec.uint()?,
                    nodes: dec.uint()?,
                })
            } else {
                None
            })
        };
        let block = block_like(1, dec)?;
        let hash = block_like(2, dec)?;
        let seek = if flags & 4 != 0 {
            Some(RequestSeek {
                bytes: dec.uint()?,
                padding: dec.uint()?,
            })
        } else {
            None
        };
        let upgrade = if flags & 8 != 0 {
            Some(RequestUpgrade {
                start: dec.uint()?,
                length: dec.uint()?,
            })
        } else {
            None
        };
        let priority = if flags & 32 != 0 { dec.uint()? } else { 0 };
        Ok(Self {
            id,
            fork,
            block,
            hash,
            seek,
            upgrade,
            manifest: flags & 16 != 0,
            priority,
        })
    }
}

/// `dataBlock`: block `index`, its bytes, and the proof nodes from the block upwards.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataBlock {
    /// Block index.
    pub index: u64,
    /// The block's bytes.
    pub value: Vec<u8>,
    /// Sibling nodes on the path to a root the receiver trusts (or to the upgrade).
    pub nodes: Vec<TreeNode>,
}

/// `dataHash`: proof for tree node `index` (no value).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataHash {
    /// Flat-tree index of the proven node.
    pub index: u64,
    /// The node itself (unless skipped) followed by its uncles.
    pub nodes: Vec<TreeNode>,
}

/// `dataSeek`: proof for a byte seek: the nodes from the subtree holding `bytes` up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataSeek {
    /// The requested byte offset.
    pub bytes: u64,
    /// Seek root first, then its uncles upwards.
    pub nodes: Vec<TreeNode>,
}

/// `dataUpgrade`: proves the tree of length `start + length` (plus `additional_nodes` up to the
/// sender's full length) and carries the sender's signature over it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataUpgrade {
    /// The requester's old length.
    pub start: u64,
    /// Blocks added by this upgrade.
    pub length: u64,
    /// Nodes completing the new roots up to `start + length`.
    pub nodes: Vec<TreeNode>,
    /// Roots beyond `start + length`, up to the sender's length.
    pub additional_nodes: Vec<TreeNode>,
    /// Signature over the upgraded tree (`c.optionalBuffer`: empty means absent). 64 bytes for
    /// compat (single ed25519 signer) cores.
    pub signature: Vec<u8>,
}

/// Hash algorithm named in a manifest (`hashes` in messages.js; only id 0 exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashAlgorithm {
    /// id 0: BLAKE2b-256.
    #[default]
    Blake2b,
}

/// Signature algorithm of a manifest signer (`signatures` in messages.js; only id 0 exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignatureAlgorithm {
    /// id 0: ed25519.
    #[default]
    Ed25519,
}

/// A manifest signer: algorithm, 32-byte signing namespace, 32-byte public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// Signature algorithm.
    pub signature: SignatureAlgorithm,
    /// Namespace mixed into the signable (caps.DEFAULT_NAMESPACE by default).
    pub namespace: [u8; 32],
    /// ed25519 public key.
    pub public_key: [u8; 32],
}

/// Prologue of a manifest: a fixed tree hash at a fixed length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prologue {
    /// Tree hash at `length`.
    pub hash: [u8; 32],
    /// Length the prologue covers.
    pub length: u64,
}

/// `manifest` in messages.js (versions 0 to 3). Compat cores have no manifest on the wire; we
/// decode manifests so a peer's message parses, and encode them for tests and completeness.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    /// Manifest version (0..=3).
    pub version: u64,
    /// Tree hash algorithm.
    pub hash: HashAlgorithm,
    /// Multisig patches allowed.
    pub allow_patch: bool,
    /// Signatures needed.
    pub quorum: u64,
    /// Declared signers.
    pub signers: Vec<Signer>,
    /// Optional prologue.
    pub prologue: Option<Prologue>,
    /// Linked core keys (v2+).
    pub linked: Option<Vec<[u8; 32]>>,
    /// Opaque user data (v2+).
    pub user_data: Option<Vec<u8>>,
}

const MANIFEST_PATCH: u64 = 0b0001;
const MANIFEST_PROLOGUE: u64 = 0b0010;
const MANIFEST_LINKED: u64 = 0b0100;
const MANIFEST_USER_DATA: u64 = 0b1000;

fn decode_hash_alg(dec: &mut Decoder<'_>) -> Result<HashAlgorithm, DecodeError> {
    match dec.uint()? {
        0 => Ok(HashAlgorithm::Blake2b),
        n => Err(DecodeError::Invalid(format!("unknown hash id {n}"))),
    }
}

fn decode_signer(dec: &mut Decoder<'_>) -> Result<Signer, DecodeError> {
    let signature = match dec.uint()? {
        0 => SignatureAlgorithm::Ed25519,
        n => return Err(DecodeError::Invalid(format!("unknown signature id {n}"))),
    };
    Ok(Signer {
        signature,
        namespace: dec.fixed32()?,
        public_key: dec.fixed32()?,
    })
}

fn encode_signer(enc: &mut Encoder, s: &Signer) {
    enc.uint(0).fixed32(&s.namespace).fixed32(&s.public_key);
}

impl Manifest {
    fn encode_v0(&self, enc: &mut Encoder) {
        enc.uint(0); // hash: blake2b
        if let (Some(p), true) = (&self.prologue, self.signers.is_empty()) {
            enc.uint(0).fixed32(&p.hash);
        } else if self.quorum == 1 && self.signers.len() == 1 && !self.allow_patch {
            enc.uint(1);
            encode_signer(enc, &self.signers[0]);
        } else {
            enc.uint(2).uint(self.allow_patch as u64).uint(self.quorum);
            enc.array(&self.signers, encode_signer);
        }
    }

    fn decode_v0(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let hash = decode_hash_alg(dec)?;
        let base = Manifest {
            version: 0,
            hash,
            ..Default::default()
        };
        match dec.uint()? {
            0 => Ok(Manifest {
                prologue: Some(Prologue {
                    hash: dec.fixed32()?,
                    length: 0,
                }),
                ..base
            }),
            1 => Ok(Manifest {
                quorum: 1,
                signers: vec![decode_signer(dec)?],
                ..base
            }),
            2 => {
                let flags = dec.uint()?;
                Ok(Manifest {
                    allow_patch: flags & 1 != 0,
                    quorum: dec.uint()?,
                    signers: dec.array(decode_signer)?,
                    ..base
                })
            }
            t => Err(DecodeError::Invalid(format!(
                "unknown manifest v0 type {t}"
            ))),
        }
    }
}

impl CompactEncoding for Manifest {
    fn encode(&self, enc: &mut Encoder) {
        enc.uint(self.version);
        if self.version == 0 {
            return self.encode_v0(enc);
        }
        let mut flags = 0;
        if self.allow_patch {
            flags |= MANIFEST_PATCH;
        }
        if self.prologue.is_some() {
            flags |= MANIFEST_PROLOGUE;
        }
        if self.linked.is_some() {
            flags |= MANIFEST_LINKED;
        }
        if self.user_data.is_some() {
            flags |= MANIFEST_USER_DATA;
        }
        enc.uint(flags).uint(0).uint(self.quorum);
        enc.array(&self.signers, encode_signer);
        if let Some(p) = &self.prologue {
            enc.fixed32(&p.hash).uint(p.length);
        }
        if let Some(l) = &self.linked {
            enc.array(l, |e, k| {
                e.fixed32(k);
            });
        }
        if let Some(u) = &self.user_data {
            enc.buffer(u);
        }
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let version = dec.uint()?;
        if version == 0 {
            return Self::decode_v0(dec);
        }
        if version > 3 {
            return Err(DecodeError::Invalid(format!(
                "unknown manifest version {version}"
            )));
        }
        let flags = dec.uint()?;
        let hash = decode_hash_alg(dec)?;
        let quorum = dec.uint()?;
        let signers = dec.array(decode_signer)?;
        let prologue = if flags & MANIFEST_PROLOGUE != 0 {
            Some(Prologue {
                hash: dec.fixed32()?,
                length: dec.uint()?,
            })
        } else {
            None
        };
        let linked = if flags & MANIFEST_LINKED != 0 {
            Some(dec.array(|d| d.fixed32())?)
        } else {
            None
        };
        let user_data = if flags & MANIFEST_USER_DATA != 0 {
            Some(dec.buffer()?.to_vec())
        } else {
            None
        };
        Ok(Self {
            version,
            hash,
            allow_patch: flags & MANIFEST_PATCH != 0,
            quorum,
            signers,
            prologue,
            linked,
            user_data,
        })
    }
}

/// `wire.data` (message type 4 in 11.x): the answer to a [`Request`], carrying block/hash/seek
/// proofs and/or a signed upgrade. Flags bits: 1 block, 2 hash, 4 seek, 8 upgrade, 16 manifest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Data {
    /// Id of the request this answers (0 for an unsolicited push).
    pub request: u64,
    /// The sender's fork.
    pub fork: u64,
    /// Block value and proof.
    pub block: Option<DataBlock>,
    /// Tree node proof.
    pub hash: Option<DataHash>,
    /// Seek proof.
    pub seek: Option<DataSeek>,
    /// Signed upgrade.
    pub upgrade: Option<DataUpgrade>,
    /// The sender's manifest (never for compat cores).
    pub manifest: Option<Manifest>,
}

impl CompactEncoding for Data {
    fn encode(&self, enc: &mut Encoder) {
        let flags = (self.block.is_some() as u64)
            | (self.hash.is_some() as u64) << 1
            | (self.seek.is_some() as u64) << 2
            | (self.upgrade.is_some() as u64) << 3
            | (self.manifest.is_some() as u64) << 4;
        enc.uint(flags).uint(self.request).uint(self.fork);
        if let Some(b) = &self.block {
            enc.uint(b.index).buffer(&b.value);
            encode_nodes(enc, &b.nodes);
        }
        if let Some(h) = &self.hash {
            enc.uint(h.index);
            encode_nodes(enc, &h.nodes);
        }
        if let Some(s) = &self.seek {
            enc.uint(s.bytes);
            encode_nodes(enc, &s.nodes);
        }
        if let Some(u) = &self.upgrade {
            enc.uint(u.start).uint(u.length);
            encode_nodes(enc, &u.nodes);
            encode_nodes(enc, &u.additional_nodes);
            enc.optional_buffer(Some(&u.signature));
        }
        if let Some(m) = &self.manifest {
            m.encode(enc);
        }
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let flags = dec.uint()?;
        let request = dec.uint()?;
        let fork = dec.uint()?;
        let block = if flags & 1 != 0 {
            Some(DataBlock {
                index: dec.uint()?,
                value: dec.buffer()?.to_vec(),
                nodes: decode_nodes(dec)?,
            })
        } else {
            None
        };
        let hash = if flags & 2 != 0 {
            Some(DataHash {
                index: dec.uint()?,
                nodes: decode_nodes(dec)?,
            })
        } else {
            None
        };
        let seek = if flags & 4 != 0 {
            Some(DataSeek {
                bytes: dec.uint()?,
                nodes: decode_nodes(dec)?,
            })
        } else {
            None
        };
        let upgrade = if flags & 8 != 0 {
            Some(DataUpgrade {
                start: dec.uint()?,
                length: dec.uint()?,
                nodes: decode_nodes(dec)?,
                additional_nodes: decode_nodes(dec)?,
                signature: dec.optional_buffer()?.unwrap_or_default().to_vec(),
            })
        } else {
            None
        };
        let manifest = if flags & 16 != 0 {
            Some(Manifest::decode(dec)?)
        } else {
            None
        };
        Ok(Self {
            request,
            fork,
            block,
            hash,
            seek,
            upgrade,
            manifest,
        })
    }
}

/// `wire.handshake`: sent once per channel open. `capability` is caps.replicate(...) over the
/// noise handshake hash.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Handshake {
    /// Peer supports seek requests (flags bit 1).
    pub seeks: bool,
    /// 32-byte replication capability proving knowledge of the core key.
    pub capability: [u8; 32],
}

impl CompactEncoding for Handshake {
    fn encode(&self, enc: &mut Encoder) {
        enc.uint(self.seeks as u64).fixed32(&self.capability);
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let flags = dec.uint()?;
        Ok(Self {
            seeks: flags & 1 != 0,
            capability: dec.fixed32()?,
        })
    }
}

/// `wire.sync`: the peer's fork/length and state flags.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sync {
    /// Sender's fork.
    pub fork: u64,
    /// Sender's length.
    pub length: u64,
    /// What the sender believes the receiver's length is.
    pub remote_length: u64,
    /// flags bit 1: the sender can upgrade the receiver.
    pub can_upgrade: bool,
    /// flags bit 2.
    pub uploading: bool,
    /// flags bit 4.
    pub downloading: bool,
    /// flags bit 8.
    pub has_manifest: bool,
    /// flags bit 16.
    pub allow_push: bool,
}

impl CompactEncoding for Sync {
    fn encode(&self, enc: &mut Encoder) {
        let flags = (self.can_upgrade as u64)
            | (self.uploading as u64) << 1
            | (self.downloading as u64) << 2
            | (self.has_manifest as u64) << 3
            | (self.allow_push as u64) << 4;
        enc.uint(flags)
            .uint(self.fork)
            .uint(self.length)
            .uint(self.remote_length);
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let flags = dec.uint()?;
        Ok(Self {
            fork: dec.uint()?,
            length: dec.uint()?,
            remote_length: dec.uint()?,
            can_upgrade: flags & 1 != 0,
            uploading: flags & 2 != 0,
            downloading: flags & 4 != 0,
            has_manifest: flags & 8 != 0,
            allow_push: flags & 16 != 0,
        })
    }
}

/// `wire.cancel`: cancel request `request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cancel {
    /// Id of the request to cancel.
    pub request: u64,
}

impl CompactEncoding for Cancel {
    fn encode(&self, enc: &mut Encoder) {
        enc.uint(self.request);
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            request: dec.uint()?,
        })
    }
}

/// `wire.noData`: the peer cannot answer `request`; `reason` 0 means unspecified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NoData {
    /// Id of the request.
    pub request: u64,
    /// Reason code (omitted on the wire when 0; older peers send no flags at all).
    pub reason: u64,
}

impl CompactEncoding for NoData {
    fn encode(&self, enc: &mut Encoder) {
        enc.uint(self.request).uint((self.reason != 0) as u64);
        if self.reason != 0 {
            enc.uint(self.reason);
        }
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let request = dec.uint()?;
        let flags = if dec.is_empty() { 0 } else { dec.uint()? };
        let reason = if flags & 1 != 0 { dec.uint()? } else { 0 };
        Ok(Self { request, reason })
    }
}

/// `wire.want` / `wire.unwant`: interest in blocks `[start, start + length)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Want {
    /// First block.
    pub start: u64,
    /// Number of blocks.
    pub length: u64,
    /// flags bit 1 (only encoded when set).
    pub any: bool,
}

impl CompactEncoding for Want {
    fn encode(&self, enc: &mut Encoder) {
        enc.uint(self.start).uint(self.length);
        if self.any {
            enc.uint(1);
        }
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let start = dec.uint()?;
        let length = dec.uint()?;
        let flags = if dec.is_empty() { 0 } else { dec.uint()? };
        Ok(Self {
            start,
            length,
            any: flags & 1 != 0,
        })
    }
}

/// `wire.range`: the sender has (or, with `drop`, dropped) blocks `[start, start + length)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Range {
    /// flags bit 1.
    pub drop: bool,
    /// First block.
    pub start: u64,
    /// Number of blocks (1 is signalled by flags bit 2 and not encoded).
    pub length: u64,
}

impl CompactEncoding for Range {
    fn encode(&self, enc: &mut Encoder) {
        let flags = (self.drop as u64) | ((self.length == 1) as u64) << 1;
        enc.uint(flags).uint(self.start);
        if self.length != 1 {
            enc.uint(self.length);
        }
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let flags = dec.uint()?;
        let start = dec.uint()?;
        let length = if flags & 2 != 0 { 1 } else { dec.uint()? };
        Ok(Self {
            drop: flags & 1 != 0,
            start,
            length,
        })
    }
}

/// `wire.bitfield`: a bitfield page starting at block `start` (u32 words, bit i of word w is
/// block `start + 32*w + i`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bitfield {
    /// First block covered.
    pub start: u64,
    /// The words.
    pub bitfield: Vec<u32>,
}

impl CompactEncoding for Bitfield {
    fn encode(&self, enc: &mut Encoder) {
        enc.uint(self.start).uint32_array(&self.bitfield);
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            start: dec.uint()?,
            bitfield: dec.uint32_array()?,
        })
    }
}

/// `wire.reorgHint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReorgHint {
    /// Old fork.
    pub from: u64,
    /// New fork.
    pub to: u64,
    /// Common ancestor length.
    pub ancestors: u64,
}

impl CompactEncoding for ReorgHint {
    fn encode(&self, enc: &mut Encoder) {
        enc.uint(self.from).uint(self.to).uint(self.ancestors);
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            from: dec.uint()?,
            to: dec.uint()?,
            ancestors: dec.uint()?,
        })
    }
}

/// `wire.extension`: a named extension message; `message` is the rest of the frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extension {
    /// Extension name.
    pub name: String,
    /// Raw payload (all remaining bytes).
    pub message: Vec<u8>,
}

impl CompactEncoding for Extension {
    fn encode(&self, enc: &mut Encoder) {
        enc.string(&self.name).raw(&self.message);
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            name: dec.string()?.to_owned(),
            message: dec.rest().to_vec(),
        })
    }
}

#[cfg(test)]
mod tests;
