//! The disk backend of [`Store`]: a core's files in a directory, read and written with
//! positioned IO, fsynced in parallel, the header in two alternating checksummed slots (see the
//! parent module's docs for the layout).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::{FileKind, Header, HEADER_NAME};
use crate::hypercore::{Error, Result};

/// Size of one header slot in the `header` file.
const SLOT: usize = 4096;
/// Sequence (8) and length (4) before the header bytes in a slot.
const SLOT_PREFIX: usize = 12;

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
    /// Why a slot could not be used on the last [`DiskStore::read_header`], if one was damaged.
    damage: Option<String>,
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

impl DiskStore {
    /// Opens (creating missing files) the store in `dir`, creating `dir` if needed.
    pub fn open(dir: &Path) -> Result<DiskStore> {
        std::fs::create_dir_all(dir).map_err(io_err(dir.to_owned()))?;
        let mut files = HashMap::new();
        for kind in FileKind::ALL {
            files.insert(kind, open_rw(&dir.join(kind.name()))?);
        }
        let header = open_rw(&dir.join(HEADER_NAME))?;
        Ok(DiskStore {
            dir: dir.to_owned(),
            files,
            header,
            next_seq: 0,
            current_slot: None,
            damage: None,
        })
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, kind: FileKind) -> PathBuf {
        self.dir.join(kind.name())
    }

    /// Reads up to `buf.len()` bytes at `offset`; returns how many were available (short at EOF).
    pub fn read_at(&self, kind: FileKind, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let f = &self.files[&kind];
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

    /// Writes `bytes` at `offset`, growing the file as needed.
    pub fn write_at(&mut self, kind: FileKind, offset: u64, bytes: &[u8]) -> Result<()> {
        pwrite_all(&self.files[&kind], bytes, offset).map_err(io_err(self.path(kind)))
    }

    /// Current length of a file in bytes.
    pub fn len(&self, kind: FileKind) -> Result<u64> {
        self.files[&kind]
            .metadata()
            .map(|m| m.len())
            .map_err(io_err(self.path(kind)))
    }

    /// Truncates (or extends with zeros) a file to `len` bytes.
    pub fn set_len(&mut self, kind: FileKind, len: u64) -> Result<()> {
        self.files[&kind]
            .set_len(len)
            .map_err(io_err(self.path(kind)))
    }

    /// Flushes every file's data to stable storage. The four files are fdatasync'ed in
    /// parallel threads: the journal commits overlap, which halves the cost of an append.
    pub fn sync(&mut self) -> Result<()> {
        let results: Vec<(FileKind, std::io::Result<()>)> = std::thread::scope(|s| {
            let handles: Vec<_> = FileKind::ALL
                .iter()
                .map(|kind| {
                    let f = &self.files[kind];
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
            r.map_err(io_err(self.dir.join(kind.name())))?;
        }
        Ok(())
    }

    /// The committed header: the valid slot with the highest sequence. `Ok(None)` when no header
    /// was ever written. Errors: [`Error::Corrupt`] naming `header` when no slot is valid.
    pub fn read_header(&mut self) -> Result<Option<Header>> {
        let path = self.dir.join(HEADER_NAME);
        let len = self.header.metadata().map_err(io_err(path.clone()))?.len();
        if len == 0 {
            return Ok(None);
        }
        let mut buf = vec![0u8; (2 * SLOT).min(len as usize)];
        let mut done = 0;
        while done < buf.len() {
            match pread(&self.header, &mut buf[done..], done as u64) {
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
                self.next_seq = max_seq + 1;
                self.current_slot = Some(slot_no);
                // A damaged slot that claims an older commit than the one we use is the
                // previous state: nothing newer can be lost with it.
                self.damage = damaged
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

    /// What was wrong with a header slot on the last [`DiskStore::read_header`], if anything.
    pub fn header_damage(&self) -> Option<&str> {
        self.damage.as_deref()
    }

    /// Commits `header`: overwrites the older slot and fsyncs (the first commit also fsyncs the
    /// directory, making the new files durable).
    pub fn write_header(&mut self, header: &Header) -> Result<()> {
        let path = self.dir.join(HEADER_NAME);
        let bytes = header.to_bytes();
        if bytes.len() > SLOT - SLOT_PREFIX {
            return Err(Error::Corrupt {
                path,
                reason: format!("header of {} bytes does not fit a slot", bytes.len()),
            });
        }
        let mut slot = Vec::with_capacity(SLOT_PREFIX + bytes.len());
        slot.extend_from_slice(&self.next_seq.to_le_bytes());
        slot.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        slot.extend_from_slice(&bytes);
        let slot_no = match self.current_slot {
            Some(current) => 1 - current,
            None => (self.next_seq % 2) as usize,
        };
        let offset = (slot_no * SLOT) as u64;
        pwrite_all(&self.header, &slot, offset).map_err(io_err(path.clone()))?;
        self.header.sync_data().map_err(io_err(path))?;
        if self.next_seq == 0 {
            sync_dir(&self.dir)?;
        }
        self.next_seq += 1;
        self.current_slot = Some(slot_no);
        Ok(())
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
