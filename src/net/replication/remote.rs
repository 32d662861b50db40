//! What the remote told us it has: its `sync` state and the block ranges of its `range` and
//! `bitfield` messages, bounded against hostile peers.

use std::collections::BTreeMap;

use super::MAX_REMOTE_RANGES;

/// The remote's state as its `sync`, `range` and `bitfield` messages told us.
#[derive(Debug, Default)]
pub(super) struct Remote {
    pub(super) opened: bool,
    pub(super) synced: bool,
    pub(super) fork: u64,
    pub(super) length: u64,
    /// Our length as the remote last acknowledged it (`sync.remoteLength`).
    pub(super) length_acked: u64,
    pub(super) can_upgrade: bool,
    pub(super) uploading: bool,
    /// Blocks `0..contiguous` the remote has.
    pub(super) contiguous: u64,
    /// Other block ranges the remote has: start -> end (exclusive), non-overlapping.
    pub(super) ranges: BTreeMap<u64, u64>,
}

impl Remote {
    pub(super) fn has(&self, index: u64) -> bool {
        if index < self.contiguous {
            return true;
        }
        self.ranges
            .range(..=index)
            .next_back()
            .is_some_and(|(_, end)| index < *end)
    }

    /// Marks `start..end` as present (`has`) or dropped.
    pub(super) fn set_range(&mut self, start: u64, end: u64, has: bool) {
        if start >= end {
            return;
        }
        if has && start <= self.contiguous {
            self.contiguous = self.contiguous.max(end);
        } else if !has && start < self.contiguous {
            // Keep what survives after the dropped part as a separate range.
            if end < self.contiguous {
                self.ranges.insert(end, self.contiguous);
            }
            self.contiguous = start;
        }
        // Cut [start, end) out of the stored ranges, re-adding the parts outside it.
        // Ranges are disjoint and sorted: overlaps start at the last range beginning at or
        // before `start`, so this costs O(log n + overlaps), not O(n).
        let first = self
            .ranges
            .range(..=start)
            .next_back()
            .map_or(start, |(s, _)| *s);
        let overlapping: Vec<(u64, u64)> = self
            .ranges
            .range(first..end)
            .filter(|(_, e)| **e > start)
            .map(|(s, e)| (*s, *e))
            .collect();
        let (mut lo, mut hi) = (start, end);
        for (s, e) in overlapping {
            self.ranges.remove(&s);
            if has {
                lo = lo.min(s);
                hi = hi.max(e);
            } else {
                if s < start {
                    self.ranges.insert(s, start);
                }
                if e > end {
                    self.ranges.insert(end, e);
                }
            }
        }
        if has && lo > self.contiguous {
            self.ranges.insert(lo, hi);
            // Bound memory against a peer announcing millions of scattered blocks: forget the
            // highest ranges (we just won't request those blocks from this peer).
            while self.ranges.len() > MAX_REMOTE_RANGES {
                self.ranges.pop_last();
            }
        }
        // Fold ranges that now touch the contiguous prefix into it.
        while let Some((&s, &e)) = self.ranges.iter().next() {
            if s > self.contiguous {
                break;
            }
            self.ranges.remove(&s);
            self.contiguous = self.contiguous.max(e);
        }
    }
}
