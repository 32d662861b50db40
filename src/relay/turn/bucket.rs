//! A token bucket in bytes: the per-allocation bandwidth limit of the TURN server.

use std::time::Instant;

/// Bytes allowed at `rate` bytes per second with a burst of one second's worth.
#[derive(Clone, Debug)]
pub(crate) struct TokenBucket {
    rate: u64,
    tokens: u64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(rate: u64, now: Instant) -> Self {
        TokenBucket {
            rate,
            tokens: rate,
            last: now,
        }
    }

    /// Takes `bytes` if the bucket holds them at `now`; otherwise takes nothing.
    pub(crate) fn take(&mut self, bytes: u64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        // Refill in whole bytes; keep the remainder of time by advancing `last` only as far
        // as the bytes credited.
        let credit = (elapsed.as_nanos() * u128::from(self.rate) / 1_000_000_000) as u64;
        if credit > 0 {
            self.tokens = (self.tokens.saturating_add(credit)).min(self.rate);
            self.last = now;
        }
        if self.tokens >= bytes {
            self.tokens -= bytes;
            true
        } else {
            false
        }
    }
}
