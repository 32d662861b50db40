//! The two signalling logs of one join, as either side uses them: one log to read the other
//! side's signals from (in order, skipping blocks addressed to someone else), and one to
//! append its own to, sealed to the other side's key. The host reads a joiner's log and writes
//! the lobby log; a joiner does the opposite (docs/PROTOCOL.md, "Logs").

use ed25519_dalek::SigningKey;
use tokio::time::Instant;

use crate::keys::LogKey;
use crate::net::SharedCore;
use crate::signal::{Signal, SignalError};

/// Errors of a [`SignalLog`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum LogError {
    /// A signal could not be sealed (e.g. over `signal::message::MAX_BLOCK_BYTES`).
    #[error(transparent)]
    Signal(#[from] SignalError),
    /// The log could not be read or appended to.
    #[error(transparent)]
    Core(#[from] crate::hypercore::Error),
}

/// What [`SignalLog::next_until`] found.
#[derive(Debug)]
pub(crate) enum Read {
    /// The next signal addressed to us.
    Signal(Signal),
    /// A block addressed to us (or unreadable as an envelope) that does not open to a signal.
    Malformed(SignalError),
    /// Nothing for us before the deadline.
    TimedOut,
}

/// One side's view of a join's signalling: reads `read` from block `next` on, appends to
/// `write`.
pub(crate) struct SignalLog {
    read: SharedCore,
    /// Opens the blocks addressed to us: the key of the log the other side writes to us.
    me: SigningKey,
    next: u64,
    write: SharedCore,
    /// The other side's log key, which our signals are sealed to.
    to: LogKey,
}

impl SignalLog {
    /// Reads `read` from block `from` on with `me`, writes `write` sealed to `to`.
    pub(crate) fn new(
        read: SharedCore,
        from: u64,
        me: SigningKey,
        write: SharedCore,
        to: LogKey,
    ) -> Self {
        SignalLog {
            read,
            me,
            next: from,
            write,
            to,
        }
    }

    /// The next signal addressed to us, waiting for it until `deadline`. Blocks for other
    /// joiners are skipped. Cancel-safe: a block counts as read only once it is returned.
    ///
    /// Errors: [`LogError::Core`] when the log can't be read.
    pub(crate) async fn next_until(&mut self, deadline: Instant) -> Result<Read, LogError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(block) = self.read.get_wait_timeout(self.next, left).await? else {
                return Ok(Read::TimedOut);
            };
            self.next += 1;
            match Signal::from_block(&block, &self.me) {
                Ok(Some(signal)) => return Ok(Read::Signal(signal)),
                Ok(None) => {}
                Err(e) => return Ok(Read::Malformed(e)),
            }
        }
    }

    /// Seals `signal` to the other side and appends it.
    ///
    /// Errors: [`LogError::Signal`] (too large to seal), [`LogError::Core`] (append failed).
    pub(crate) fn send(&self, signal: &Signal) -> Result<(), LogError> {
        self.write.append(&signal.to_block(&self.to)?)?;
        Ok(())
    }
}
