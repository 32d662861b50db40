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
//! - `bitfield`: one bit per stored block (see [`super::bitfield`]).
//!
//! [`Store`] has a disk and an in-memory backend with the same layout.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
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
/// Size of one header slot in the `header` file.
const SLOT: usize = 4096;
/// Sequence (8) and length (4) before the header bytes in a slot.
const SLOT_PREFIX: usize = 12;

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
    Disk(DiskStore),
    /// Byte vectors.
    Memory(MemStore),
}

/// Disk backend: open file handles in a directory.
#[derive(Debug)]
pub struct DiskStore {
    dir: PathBuf,
    files: HashMap<FileKind, File>,
    header: File,
    /// Sequence number of the next header commit (0: no header yet).
    next_seq: u64,
    /// The slot (0 or 1) holding the current header, if any: the next commit goes to the other.
    current_slot: Option<usize>,
    /// Why a slot could not be used on the last [`Store::read_header`], if one was damaged.
    damage: Option<String>,
}

/// Memory backend.
#[derive(Debug, Default)]
pub struct MemStore {
    files: HashMap<FileKind, Vec<u8>>,
    header: Option<Header>,
}

fn io_err(path: PathBuf) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { path, source }
}

#[cfg(unix)]
fn pread(f: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(f, buf, offset)
}
#[cfg(unix)]
fn pwrite_all(f: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, buf, offset)
}
#[cfg(windows)]
fn pread(f: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(f, buf, offset)
}
#[cfg(windows)]
fn pwrite_all(f: &File, mut buf: &[u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(f, buf, offset)?;
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

impl Store {
    /// Opens (creating missing files) the store in `dir`, creating `dir` if needed.
    pub fn open_dir(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(io_err(dir.to_owned()))?;
        let mut files = HashMap::new();
        for kind in FileKind::ALL {
            files.insert(kind, open_rw(&dir.join(kind.name()))?);
        }
        let header = open_rw(&dir.join(HEADER_NAME))?;
        Ok(Store::Disk(DiskStore {
            dir: dir.to_owned(),
            files,
            header,
            next_seq: 0,
            current_slot: None,
            damage: None,
        }))
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
            Store::Disk(d) => d.dir.join(name),
            Store::Memory(_) => Path::new("<memory>").join(name),
        }
    }

    /// Reads up to `buf.len()` bytes at `offset`; returns how many were available (short at EOF).
    pub fn read_at(&self, kind: FileKind, offset: u64, buf: &mut [u8]) -> Result<usize> {
        match self {
            Store::Disk(d) => {
                let f = &d.files[&kind];
                let mut done = 0;
                while done < buf.len() {
                    match pread(f, &mut buf[done..], offset + done as u64) {
                        Ok(0) => break,
                        Ok(n) => done += n,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Err(io_err(self.path(kind))(e)),
                    }
                }
                Ok(done)
            }
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
            Store::Disk(d) => {
                let path = d.dir.join(kind.name());
                pwrite_all(&d.files[&kind], bytes, offset).map_err(io_err(path))
            }
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
            Store::Disk(d) => d.files[&kind]
                .metadata()
                .map(|m| m.len())
                .map_err(io_err(self.path(kind))),
            Store::Memory(m) => Ok(m.files.get(&kind).map_or(0, |v| v.len() as u64)),
        }
    }

    /// Truncates (or extends with zeros) a file to `len` bytes.
    pub fn set_len(&mut self, kind: FileKind, len: u64) -> Result<()> {
        match self {
            Store::Disk(d) => d.files[&kind]
                .set_len(len)
                .map_err(io_err(d.dir.join(kind.name()))),
            Store::Memory(m) => {
                m.files.entry(kind).or_default().resize(len as usize, 0);
                Ok(())
            }
        }
    }

    /// Flushes every file's data to stable storage. The four files are fdatasync'ed in
    /// parallel threads: the journal commits overlap, which halves the cost of an append.
    pub fn sync(&mut self) -> Result<()> {
        let Store::Disk(d) = self else {
            return Ok(());
        };
        let results: Vec<(FileKind, std::io::Result<()>)> = std::thread::scope(|s| {
            let handles: Vec<_> = FileKind::ALL
                .iter()
                .map(|kind| {
                    let f = &d.files[kind];
                    (*kind, s.spawn(move || f.sync_data()))
                })
                .collect();
            handles
                .into_iter()
                .map(|(k, h)| {
                    let r = h
                        .join()
                        .unwrap_or_else(|_| Err(std::io::Error::other("fsync thread panicked")));
                    (k, r)
                })
                .collect()
        });
        for (kind, r) in results {
            r.map_err(io_err(d.dir.join(kind.name())))?;
        }
        Ok(())
    }

    /// The committed header: the valid slot with the highest sequence. `Ok(None)` when no header
    /// was ever written. Errors: [`Error::Corrupt`] naming `header` when no slot is valid.
    pub fn read_header(&mut self) -> Result<Option<Header>> {
        match self {
            Store::Disk(d) => {
                let path = d.dir.join(HEADER_NAME);
                let len = d.header.metadata().map_err(io_err(path.clone()))?.len();
                if len == 0 {
                    return Ok(None);
                }
                let mut buf = vec![0u8; (2 * SLOT).min(len as usize)];
                let mut done = 0;
                while done < buf.len() {
                    match pread(&d.header, &mut buf[done..], done as u64) {
                        Ok(0) => break,
                        Ok(n) => done += n,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Err(io_err(path)(e)),
                    }
                }
                buf.truncate(done);
                let mut best: Option<(usize, u64, Header)> = None;
                let mut last_err = None;
                let mut damaged: Vec<(usize, Option<u64>, String)> = Vec::new();
                let mut blank = Vec::new();
                let mut max_seq = None::<u64>;
                for (slot_no, slot) in buf.chunks(SLOT).enumerate() {
                    match parse_slot(slot, &path) {
                        Ok(Some((seq, h))) => {
                            max_seq = max_seq.max(Some(seq));
                            let newer = best
                                .as_ref()
                                .is_none_or(|(_, s, b)| (h.length, seq) > (b.length, *s));
                            if newer {
                                best = Some((slot_no, seq, h));
                            }
                        }
                        Ok(None) => blank.push(slot_no),
                        Err(e) => {
                            let e = match e {
                                Error::Corrupt { reason, .. } => reason,
                                e => e.to_string(),
                            };
                            let seq = slot
                                .get(..8)
                                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
                            last_err = Some(Error::Corrupt {
                                path: path.clone(),
                                reason: e.clone(),
                            });
                            damaged.push((slot_no, seq, e));
                        }
                    }
                }
                if buf.len() <= SLOT {
                    blank.push(1);
                }
                match best {
                    Some((slot_no, seq, h)) => {
                        let max_seq = max_seq.unwrap_or(seq);
                        d.next_seq = max_seq + 1;
                        d.current_slot = Some(slot_no);
                        // A damaged slot that claims an older commit than the one we use is the
                        // previous state: nothing newer can be lost with it.
                        d.damage = damaged
                            .into_iter()
                            .find(|(_, claimed, _)| claimed.is_none_or(|c| c > seq))
                            .map(|(n, claimed, reason)| match claimed {
                                Some(c) => format!(
                                    "header slot {n} (claiming commit {c}; the other holds commit {seq}) is damaged: {reason}"
                                ),
                                None => format!("header slot {n} is damaged: {reason}"),
                            })
                            .or_else(|| {
                                // After two commits both slots are written for good: a blank one
                                // was wiped.
                                (seq >= 1 && !blank.is_empty()).then(|| {
                                    format!(
                                        "header slot {} is blank although the other holds commit {seq}",
                                        blank[0]
                                    )
                                })
                            });
                        Ok(Some(h))
                    }
                    None => Err(last_err.unwrap_or_else(|| Error::Corrupt {
                        path,
                        reason: "no valid header slot".into(),
                    })),
                }
            }
            Store::Memory(m) => Ok(m.header.clone()),
        }
    }

    /// What was wrong with a header slot on the last [`Store::read_header`]: a slot that fails
    /// its checksum, or one blank although the other holds a later commit. `None` when both
    /// slots are sound (or never written), and always for the memory backend.
    pub fn header_damage(&self) -> Option<&str> {
        match self {
            Store::Disk(d) => d.damage.as_deref(),
            Store::Memory(_) => None,
        }
    }

    /// Commits `header`: overwrites the older slot and fsyncs (the first commit also fsyncs the
    /// directory, making the new files durable). Call [`Store::sync`] first so the header never
    /// describes data that is not yet durable.
    pub fn write_header(&mut self, header: &Header) -> Result<()> {
        match self {
            Store::Disk(d) => {
                let path = d.dir.join(HEADER_NAME);
                let bytes = header.to_bytes();
                if bytes.len() > SLOT - SLOT_PREFIX {
                    return Err(Error::Corrupt {
                        path,
                        reason: format!("header of {} bytes does not fit a slot", bytes.len()),
                    });
                }
                let mut slot = Vec::with_capacity(SLOT_PREFIX + bytes.len());
                slot.extend_from_slice(&d.next_seq.to_le_bytes());
                slot.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                slot.extend_from_slice(&bytes);
                let slot_no = match d.current_slot {
                    Some(current) => 1 - current,
                    None => (d.next_seq % 2) as usize,
                };
                let offset = (slot_no * SLOT) as u64;
                pwrite_all(&d.header, &slot, offset).map_err(io_err(path.clone()))?;
                d.header.sync_data().map_err(io_err(path))?;
                if d.next_seq == 0 {
                    sync_dir(&d.dir)?;
                }
                d.next_seq += 1;
                d.current_slot = Some(slot_no);
                Ok(())
            }
            Store::Memory(m) => {
                m.header = Some(header.clone());
                Ok(())
            }
        }
    }
}

/// Parses one header slot: `Ok(None)` for a never-written (all-zero or empty) slot.
fn parse_slot(slot: &[u8], path: &Path) -> Result<Option<(u64, Header)>> {
    if slot.iter().all(|b| *b == 0) {
        return Ok(None);
    }
    let corrupt = |reason: &str| Error::Corrupt {
        path: path.to_owned(),
        reason: reason.into(),
    };
    if slot.len() < SLOT_PREFIX {
        return Err(corrupt("truncated header slot"));
    }
    let seq = u64::from_le_bytes(slot[..8].try_into().expect("8 bytes"));
    let len = u32::from_le_bytes(slot[8..12].try_into().expect("4 bytes")) as usize;
    let body = slot
        .get(SLOT_PREFIX..SLOT_PREFIX.saturating_add(len))
        .ok_or_else(|| corrupt("truncated header slot"))?;
    Ok(Some((seq, Header::from_bytes(body, path)?)))
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err(dir.to_owned()))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<()> {
    Ok(())
}

/// Opens (creating if needed, never truncating) one of a core's files for reading and writing.
fn open_rw(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_err(path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_corruption() {
        let h = Header {
            key: [1; 32],
            fork: 0,
            length: 3,
            byte_length: 12,
            signature: vec![9; 64],
            roots: vec![TreeNode {
                index: 1,
                size: 8,
                hash: [2; 32],
            }],
        };
        let bytes = h.to_bytes();
        let p = Path::new("x/header");
        assert_eq!(Header::from_bytes(&bytes, p).unwrap(), h);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(matches!(
                Header::from_bytes(&b, p),
                Err(Error::Corrupt { .. })
            ));
        }
        assert!(Header::from_bytes(&bytes[..bytes.len() - 1], p).is_err());
    }

    #[test]
    fn node_records() {
        let n = TreeNode {
            index: 5,
            size: 77,
            hash: [3; 32],
        };
        let rec = encode_node(&n);
        assert_eq!(decode_node(5, &rec).unwrap(), Some(n));
        assert!(decode_node(7, &rec).is_err(), "record at the wrong index");
        assert_eq!(decode_node(5, &[0; 48]).unwrap(), None);
        let mut bad = rec;
        bad[10] ^= 1;
        assert!(decode_node(5, &bad).is_err());
    }
}
