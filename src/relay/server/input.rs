//! Bounded partial input: the bytes of frames a client has started but not finished sending.
//!
//! Each session reads into an [`InputBuffer`]. Up to [`SESSION_ALLOWANCE`] bytes of partial
//! input are free (so small frames, pongs included, are never held up); beyond that, every byte
//! is drawn from one [`InputBudget`] shared by all sessions ([`super::Limits::input_budget`]).
//! A session whose next read would exceed both waits (it is not read) until other sessions
//! complete frames or close; a session that never completes its frame is closed at the idle
//! timeout, since only complete frames count as activity. Reads never go past the end of the
//! frame being received once the allowance is used, and the buffer gives its memory back when
//! a frame completes, so a session that once sent a large frame keeps none of it.
//!
//! So the partial input held by the relay is at most `input_budget + SESSION_ALLOWANCE ×
//! sessions` bytes, whatever the clients do.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::Notify;

/// Bytes of partial input a session may hold without drawing on the [`InputBudget`]: 16 KiB.
pub(crate) const SESSION_ALLOWANCE: usize = 16 << 10;
/// Most bytes read ahead of the frame being received (within the allowance): 4 KiB, so an idle
/// session waiting in `read` holds only this much.
const READ_AHEAD: usize = 4 << 10;
/// Most bytes one read takes for a frame known to be larger (drawn from the budget).
const READ_LARGE: usize = 64 << 10;

/// The bytes of partial input all sessions may hold beyond their allowance.
#[derive(Debug)]
pub(crate) struct InputBudget {
    max: usize,
    used: Mutex<usize>,
    freed: Notify,
}

impl InputBudget {
    /// A budget of `max` bytes.
    pub(super) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            used: Mutex::new(0),
            freed: Notify::new(),
        })
    }

    /// Bytes drawn now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        *crate::sync::lock(&self.used)
    }

    fn try_take(&self, n: usize) -> bool {
        let mut used = crate::sync::lock(&self.used);
        match used.checked_add(n) {
            Some(total) if total <= self.max => {
                *used = total;
                true
            }
            _ => false,
        }
    }

    fn give(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut used = crate::sync::lock(&self.used);
        *used = used.saturating_sub(n);
        drop(used);
        self.freed.notify_waiters();
    }
}

/// One session's received bytes not yet consumed as frames, with its share of the budget.
#[derive(Debug)]
pub(crate) struct InputBuffer {
    buf: Vec<u8>,
    budget: Arc<InputBudget>,
    /// Bytes drawn from `budget`.
    held: usize,
}

impl InputBuffer {
    /// A buffer starting with `initial` (bytes that arrived with a handshake; small).
    pub(super) fn new(budget: Arc<InputBudget>, initial: Vec<u8>) -> Self {
        let mut b = Self {
            buf: initial,
            budget,
            held: 0,
        };
        // A handshake's leftover is at most a few KiB: within the allowance.
        b.settle(0);
        b
    }

    /// The bytes received and not consumed.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Reads once from `io`. `want` is how many more bytes the frame being received needs (at
    /// least 1); `extra` is partial input the caller holds elsewhere (a WebSocket message's
    /// earlier fragments). Waits for budget first if needed. Returns the bytes read (0 = end
    /// of stream).
    ///
    /// Errors: the IO error of the read.
    pub(super) async fn fill<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        want: usize,
        extra: usize,
    ) -> std::io::Result<usize> {
        let held = self.buf.len() + extra;
        let n = if held < SESSION_ALLOWANCE {
            // Within the allowance: up to READ_AHEAD past the frame, never past the allowance.
            want.max(READ_AHEAD).min(SESSION_ALLOWANCE - held)
        } else {
            // Beyond it: never past the frame being received.
            want.clamp(1, READ_LARGE)
        };
        self.reserve(held + n).await;
        if want > n {
            // The rest of a large frame will follow: room for all of it at once, so that growing
            // does not copy (the pages are touched only as bytes arrive). If the allocator says
            // no (strict overcommit), the buffer grows as usual.
            let _ = self.buf.try_reserve_exact(want);
        }
        let start = self.buf.len();
        self.buf.resize(start + n, 0);
        let r = io.read(&mut self.buf[start..]).await;
        self.buf.truncate(start + *r.as_ref().unwrap_or(&0));
        self.settle(extra);
        r
    }

    /// Drops the first `n` bytes (a consumed frame), gives back memory and budget. `extra` as
    /// in [`InputBuffer::fill`], after this frame.
    pub(super) fn consume(&mut self, n: usize, extra: usize) {
        self.buf.drain(..n.min(self.buf.len()));
        if self.buf.capacity() > SESSION_ALLOWANCE {
            self.buf.shrink_to(self.buf.len().max(READ_AHEAD));
        }
        self.settle(extra);
    }

    /// Waits until the session may hold `total` bytes of partial input.
    async fn reserve(&mut self, total: usize) {
        let need = total.saturating_sub(SESSION_ALLOWANCE);
        while need > self.held {
            let freed = self.budget.freed.notified();
            tokio::pin!(freed);
            // Registered before trying, so a release in between is not missed.
            freed.as_mut().enable();
            if self.budget.try_take(need - self.held) {
                self.held = need;
                return;
            }
            freed.await;
        }
    }

    /// Gives back the budget not needed for what is held now.
    fn settle(&mut self, extra: usize) {
        let need = (self.buf.len() + extra).saturating_sub(SESSION_ALLOWANCE);
        if need < self.held {
            self.budget.give(self.held - need);
            self.held = need;
        }
    }
}

impl Drop for InputBuffer {
    fn drop(&mut self) {
        self.budget.give(self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn large_frames_draw_on_the_budget_and_wait_for_it() {
        let budget = InputBudget::new(100 << 10);
        let (mut a_tx, mut a_rx) = tokio::io::duplex(1 << 20);
        let (mut b_tx, mut b_rx) = tokio::io::duplex(1 << 20);
        a_tx.write_all(&vec![1u8; 200 << 10]).await.unwrap();
        b_tx.write_all(&vec![2u8; 200 << 10]).await.unwrap();
        let mut a = InputBuffer::new(budget.clone(), Vec::new());
        // `a` takes the allowance plus the whole budget, and no more than it needs.
        while a.bytes().len() < SESSION_ALLOWANCE + (100 << 10) {
            let want = SESSION_ALLOWANCE + (100 << 10) - a.bytes().len();
            a.fill(&mut a_rx, want, 0).await.unwrap();
        }
        assert_eq!(a.bytes().len(), SESSION_ALLOWANCE + (100 << 10));
        assert_eq!(budget.used(), 100 << 10);
        // `b` gets its allowance, then waits.
        let mut b = InputBuffer::new(budget.clone(), Vec::new());
        while b.bytes().len() < SESSION_ALLOWANCE {
            b.fill(&mut b_rx, 64 << 10, 0).await.unwrap();
        }
        assert_eq!(b.bytes().len(), SESSION_ALLOWANCE);
        let blocked =
            tokio::time::timeout(Duration::from_millis(200), b.fill(&mut b_rx, 64 << 10, 0)).await;
        assert!(blocked.is_err(), "b read past the budget");
        // `a` completes its frame: its memory and budget go back, and `b` goes on.
        a.consume(SESSION_ALLOWANCE + (100 << 10), 0);
        assert_eq!(budget.used(), 0);
        assert!(a.buf.capacity() <= SESSION_ALLOWANCE);
        let n = tokio::time::timeout(Duration::from_secs(5), b.fill(&mut b_rx, 64 << 10, 0))
            .await
            .expect("b reads once a gave the budget back")
            .unwrap();
        assert!(n > 0);
        assert_eq!(budget.used(), b.bytes().len() - SESSION_ALLOWANCE);
        drop(b);
        assert_eq!(budget.used(), 0);
    }
}
