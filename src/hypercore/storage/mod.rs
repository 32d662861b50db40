//! Where a core keeps its bytes: our own format (JS 11 uses RocksDB; only the wire is shared).
//!
//! A core directory holds:
//! - `header`: the signed state (key, fork, length, byte length, signature, roots) in two
//!   4 KiB slots used alternately, each `u64 LE sequence ‖ u32 LE length ‖ header bytes` (the
//!   bytes end in a BLAKE2b checksum). A commit overwrites the slot that does not hold the
//!   current header and fsyncs; on open the valid slot with the greater signed length wins (then
//!   the higher sequence: lengths only grow, and the sequence is outside the checksum), so a
//!   write torn by a crash falls back to the previous state. A slot that is damaged, or blank
//!   while the other has seen later commits, is reported ([`Store::header_damage`]): the core
//!   then checks whether the other files hold a newer signed state than the surviving slot, and
//!   refuses to write from the older one (see `Core::open`). The header is the commit point:
//!   whatever the other files hold beyond what it describes is an interrupted write and is
//!   ignored (and, for a writer, truncated on open, unless a damaged slot may have described it).
//! - `data`: block bytes, block `i` at its byte offset in the core (sparse on replicas).
//! - `index`: u64 LE byte offset of each block, 8 bytes per block.
//! - `tree`: merkle nodes, 48 bytes at `48 * flat_index`: u64 LE size, 32-byte hash, and an
//!   8-byte checksum (FNV-1a 64 of index, size and hash) that catches torn or flipped records. All
//!   zeros means "not stored".
//! - `bitfield`: one bit per stored block (see [`super::Bitfield`]).
//!
//! [`Store`] has a disk backend ([`disk`], feature `native`) and an in-memory backend with the same
//! layout.

#[cfg(feature = "native")]
mod disk;

#[cfg(feature = "native")]
pub use disk::DiskStore;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::crypto::hash_batch;
use super::encoding::{CompactEncoding, Decoder, Encoder};
use super::messages::TreeNode;
use super::{Error, Result};

/// Bytes per tree node record in the `tree` file.
pub const NODE_RECORD: u64 = 48;
/// Bytes per block record in the `index` file.
pub const INDEX_RECORD: u64 = 8;

const HEADER_MAGIC: &[u8; 8] = b"DSHCORE1";
const HEADER_NAME: &str = "header";

/// The four append/overwrite files of a core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// Block bytes.
    Data,
    /// Block byte offsets.
    Index,
    /// Merkle nodes.
    Tree,
    /// Stored-blocks bitfield.
    Bitfield,
}

impl FileKind {
    /// Every kind, for the disk backend that opens one file per kind.
    #[cfg(feature = "native")]
    const ALL: [FileKind; 4] = [Self::Data, Self::Index, Self::Tree, Self::Bitfield];

    /// File name inside the core directory.
    pub fn name(self) -> &'static str {
        match self {
            Self::Data => "data",
            Self::Index => "index",
            Self::Tree => "tree",
            Self::Bitfield => "bitfield",
        }
    }
}

/// The committed, signed state of a core as stored in `header`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Core key (ed25519 public key).
    pub key: [u8; 32],
    /// Fork id.
    pub fork: u64,
    /// Signed length in blocks.
    pub length: u64,
    /// Total bytes of the signed blocks.
    pub byte_length: u64,
    /// 64-byte signature over the tree, or empty when `length == 0`.
    pub signature: Vec<u8>,
    /// The full roots of the signed tree.
    pub roots: Vec<TreeNode>,
}

impl Header {
    /// Serialises: magic, compact-encoded fields, then a 32-byte BLAKE2b checksum of all before.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.raw(HEADER_MAGIC)
            .fixed32(&self.key)
            .uint(self.fork)
            .uint(self.length)
            .uint(self.byte_length)
            .buffer(&self.signature)
            .array(&self.roots, |e, n| n.encode(e));
        let sum = hash_batch(&[e.as_slice()]);
        e.raw(&sum);
        e.into_vec()
    }

    /// Parses [`Header::to_bytes`]; `path` names the file in errors ([`Error::Corrupt`]).
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let corrupt = |reason: String| Error::Corrupt {
            path: path.to_owned(),
            reason,
        };
        if bytes.len() < HEADER_MAGIC.len() + 32 || &bytes[..8] != HEADER_MAGIC {
            return Err(corrupt("not a core header (bad magic or too short)".into()));
        }
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        if hash_batch(&[body]) != sum {
            return Err(corrupt("checksum mismatch".into()));
        }
        let mut d = Decoder::new(&body[8..]);
        let parse = |d: &mut Decoder<'_>| -> std::result::Result<Header, super::DecodeError> {
            Ok(Header {
                key: d.fixed32()?,
                fork: d.uint()?,
                length: d.uint()?,
                byte_length: d.uint()?,
                signature: d.buffer()?.to_vec(),
                roots: d.array(TreeNode::decode)?,
            })
        };
        let h = parse(&mut d).map_err(|e| corrupt(format!("undecodable: {e}")))?;
        if !d.is_empty() {
            return Err(corrupt("trailing bytes".into()));
        }
        Ok(h)
    }
}

/// Encodes a tree node record (size, hash, checksum).
pub fn encode_node(node: &TreeNode) -> [u8; NODE_RECORD as usize] {
    let mut out = [0u8; NODE_RECORD as usize];
    out[..8].copy_from_slice(&node.size.to_le_bytes());
    out[8..40].copy_from_slice(&node.hash);
    let sum = node_checksum(node.index, &out[..40]);
    out[40..].copy_from_slice(&sum);
    out
}

/// FNV-1a 64 over the index and record body: catches torn writes and flipped bits. Not a MAC
/// (nodes are authenticated by the signed tree); chosen over BLAKE2b because every node read and
/// write goes through it.
fn node_checksum(index: u64, body: &[u8]) -> [u8; 8] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in index.to_le_bytes().iter().chain(body) {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h.to_le_bytes()
}

/// Decodes a tree node record read for flat-tree `index`: `Ok(None)` for an all-zero (absent)
/// record, `Err` (a reason string) for a bad checksum.
pub fn decode_node(
    index: u64,
    rec: &[u8; NODE_RECORD as usize],
) -> Result<Option<TreeNode>, String> {
    if rec.iter().all(|b| *b == 0) {
        return Ok(None);
    }
    if node_checksum(index, &rec[..40]) != rec[40..] {
        return Err(format!("tree node {index}: checksum mismatch"));
    }
    let mut size = [0u8; 8];
    size.copy_from_slice(&rec[..8]);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&rec[8..40]);
    Ok(Some(TreeNode {
        index,
        size: u64::from_le_bytes(size),
        hash,
    }))
}

/// A core's files: on disk, or in memory for tests and ephemeral cores.
#[derive(Debug)]
pub enum Store {
    /// Files in a directory.
    #[cfg(feature = "native")]
    Disk(DiskStore),
    /// Byte vectors.
    Memory(MemStore),
}

/// Memory backend.
#[derive(Debug, Default)]
pub struct MemStore {
    files: HashMap<FileKind, Vec<u8>>,
    header: Option<Header>,
}

impl Store {
    /// Opens (creating missing files) the store in `dir`, creating `dir` if needed.
    #[cfg(feature = "native")]
    pub fn open_dir(dir: &Path) -> Result<Store> {
        DiskStore::open(dir).map(Store::Disk)
    }

    /// An empty in-memory store.
    pub fn memory() -> Store {
        Store::Memory(MemStore::default())
    }

    /// Path of a file, for error messages (`<memory>/name` for the memory backend).
    pub fn path(&self, kind: FileKind) -> PathBuf {
        self.path_of(kind.name())
    }

    /// Path of the header file.
    pub fn header_path(&self) -> PathBuf {
        self.path_of(HEADER_NAME)
    }

    fn path_of(&self, name: &str) -> PathBuf {
        match self {
            #[cfg(feature = "native")]
            Store::Disk(d) => d.dir().join(name),
            Store::Memory(_) => Path::new("<memory>").join(name),
        }
    }

    /// Reads up to `buf.len()` bytes at `offset`; returns how many were available (short at EOF).
    pub fn read_at(&self, kind: FileKind, offset: u64, buf: &mut [u8]) -> Result<usize> {
        match self {
            #[cfg(feature = "native")]
            Store::Disk(d) => d.read_at(kind, offset, buf),
            Store::Memory(m) => {
                let v = m.files.get(&kind).map(|v| &v[..]).unwrap_or(&[]);
                let start = (offset.min(v.len() as u64)) as usize;
                let n = buf.len().min(v.len() - start);
                buf[..n].copy_from_slice(&v[start..start + n]);
                Ok(n)
            }
        }
    }

    /// Writes `bytes` at `offset`, growing the file as needed.
    pub fn write_at(&mut self, kind: FileKind, offset: u64, bytes: &[u8]) -> Result<()> {
        match self {
            #[cfg(feature = "native")]
            Store::Disk(d) => d.write_at(kind, offset, bytes),
            Store::Memory(m) => {
                let v = m.files.entry(kind).or_default();
                let end = offset as usize + bytes.len();
                if v.len() < end {
                    v.resize(end, 0);
                }
                v[offset as usize..end].copy_from_slice(bytes);
                Ok(())
            }
        }
    }

    /// Current length of a file in bytes.
    pub fn len(&self, kind: FileKind) -> Result<u64> {
        match self {
            #[cfg(feature = "native")]
            Store::Disk(d) => d.len(kind),
            Store::Memory(m) => Ok(m.files.get(&kind).map_or(0, |v| v.len() as u64)),
        }
    }

    /// Truncates (or extends with zeros) a file to `len` bytes.
    pub fn set_len(&mut self, kind: FileKind, len: u64) -> Result<()> {
        match self {
            #[cfg(feature = "native")]
            Store::Disk(d) => d.set_len(kind, len),
            Store::Memory(m) => {
                m.files.entry(kind).or_default().resize(len as usize, 0);
                Ok(())
            }
        }
    }

    /// Flushes every file's data to stable storage (nothing to do in memory). See
    /// [`DiskStore::sync`].
    pub fn sync(&mut self) -> Result<()> {
        match self {
            #[cfg(feature = "native")]
            Store::Disk(d) => d.sync(),
            Store::Memory(_) => Ok(()),
        }
    }

    /// The committed header: the valid slot with the highest sequence. `Ok(None)` when no header
    /// was ever written. Errors: [`Error::Corrupt`] naming `header` when no slot is valid.
    pub fn read_header(&mut self) -> Result<Option<Header>> {
        match self {
            #[cfg(feature = "native")]
            Store::Disk(d) => d.read_header(),
            Store::Memory(m) => Ok(m.header.clone()),
        }
    }

    /// What was wrong with a header slot on the last [`Store::read_header`]: a slot that fails
    /// its checksum, or one blank although the other holds a later commit. `None` when both
    /// slots are sound (or never written), and always for the memory backend.
    pub fn header_damage(&self) -> Option<&str> {
        match self {
            #[cfg(feature = "native")]
            Store::Disk(d) => d.header_damage(),
            Store::Memory(_) => None,
        }
    }

    /// Commits `header`: overwrites the older slot and fsyncs (the first commit also fsyncs the
    /// directory, making the new files durable). Call [`Store::sync`] first so the header never
    /// describes data that is not yet durable.
    pub fn write_header(&mut self, header: &Header) -> Result<()> {
        match self {
            #[cfg(feature = "native")]
            Store::Disk(d) => d.write_header(header),
            Store::Memory(m) => {
                m.header = Some(header.clone());
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests;
