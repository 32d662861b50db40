//! Which blocks of a core are stored locally: one bit per block.
//!
//! In memory a `Vec<u64>`; on disk (see [`super::storage`]) the same bits as bytes, block `i` at
//! byte `i / 8`, bit `i % 8` (least significant first), which is also how JS hypercore lays out
//! `wire.bitfield` words (u32 LE, bit `i % 32` of word `i / 32`).

/// A growable set of block indexes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bitfield {
    words: Vec<u64>,
}

impl Bitfield {
    /// An empty bitfield.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the on-disk byte layout; only the first `len` blocks are kept (bits past the signed
    /// length are leftovers of an interrupted write).
    pub fn from_bytes(bytes: &[u8], len: u64) -> Self {
        let keep = bytes.len().min(len.div_ceil(8) as usize);
        let mut words = vec![0u64; keep.div_ceil(8)];
        for (i, b) in bytes[..keep].iter().enumerate() {
            words[i / 8] |= (*b as u64) << ((i % 8) * 8);
        }
        let mut bf = Bitfield { words };
        bf.clear_from(len);
        bf
    }

    /// Is block `index` present?
    pub fn get(&self, index: u64) -> bool {
        let w = (index / 64) as usize;
        self.words
            .get(w)
            .is_some_and(|x| x >> (index % 64) & 1 == 1)
    }

    /// Marks block `index` present (or absent).
    pub fn set(&mut self, index: u64, value: bool) {
        let w = (index / 64) as usize;
        if w >= self.words.len() {
            if !value {
                return;
            }
            self.words.resize(w + 1, 0);
        }
        if value {
            self.words[w] |= 1 << (index % 64);
        } else {
            self.words[w] &= !(1 << (index % 64));
        }
    }

    /// Clears every bit at or after `index`.
    pub fn clear_from(&mut self, index: u64) {
        let w = (index / 64) as usize;
        if w < self.words.len() {
            self.words.truncate(w + 1);
            let keep = index % 64;
            self.words[w] &= if keep == 0 {
                0
            } else {
                u64::MAX >> (64 - keep)
            };
        }
    }

    /// The first absent block at or after `from` (blocks past the end are absent).
    pub fn first_unset(&self, from: u64) -> u64 {
        let mut w = (from / 64) as usize;
        let mut mask = u64::MAX << (from % 64);
        while w < self.words.len() {
            let missing = !self.words[w] & mask;
            if missing != 0 {
                return w as u64 * 64 + missing.trailing_zeros() as u64;
            }
            mask = u64::MAX;
            w += 1;
        }
        from.max(self.words.len() as u64 * 64)
    }

    /// The byte holding block `index`, as stored on disk.
    pub fn byte(&self, index: u64) -> u8 {
        let w = (index / 64) as usize;
        self.words
            .get(w)
            .map_or(0, |x| (x >> (((index / 8) % 8) * 8)) as u8)
    }

    /// 32-bit words covering blocks `[start, start + 32 * count)` (`start` a multiple of 32), as
    /// `wire.bitfield` carries them.
    pub fn words32(&self, start: u64, count: usize) -> Vec<u32> {
        (0..count as u64)
            .map(|i| {
                let bit = start + 32 * i;
                let w = (bit / 64) as usize;
                self.words.get(w).map_or(0, |x| (x >> (bit % 64)) as u32)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_and_contiguous() {
        let mut b = Bitfield::new();
        assert_eq!(b.first_unset(0), 0);
        for i in 0..70 {
            b.set(i, true);
        }
        b.set(100, true);
        assert!(b.get(69) && !b.get(70) && b.get(100) && !b.get(1_000_000));
        assert_eq!(b.first_unset(0), 70);
        assert_eq!(b.first_unset(100), 101);
        assert_eq!(b.first_unset(500), 500);
        b.set(5, false);
        assert_eq!(b.first_unset(0), 5);
        assert_eq!(b.byte(64), 0b0011_1111);
        assert_eq!(b.words32(64, 1), vec![0b11_1111]);
    }

    #[test]
    fn bytes_round_trip_and_truncate() {
        let mut b = Bitfield::new();
        for i in [0u64, 9, 63, 64, 130] {
            b.set(i, true);
        }
        let bytes: Vec<u8> = (0..17).map(|i| b.byte(i * 8)).collect();
        assert_eq!(Bitfield::from_bytes(&bytes, 131), b);
        let cut = Bitfield::from_bytes(&bytes, 64);
        assert!(cut.get(63) && !cut.get(64) && !cut.get(130));
    }
}
