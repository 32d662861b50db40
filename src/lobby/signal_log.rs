//! The two signalling logs of one join, as either side uses them: one log to read the other
//! side's signals from (in order, skipping blocks addressed to someone else), and one to
//! append its own to, sealed to the other side's key. The host reads a joiner's log and writes
//! the lobby log; a joiner does the opposite (docs/PROTOCOL.md, "Logs").
//!
//! Each block appended is also mirrored on the lobby channel (message type [`MIRROR`]) when the
//! other side keeps it open: a log block reaches its reader only after a `sync`, a `request`
//! and a `data` (1.5 round trips, more when the reader has still to open the log), the mirror
//! in half a round trip. Whichever copy comes first is read; the other is skipped by its log
//! index. A side that does not mirror (an older version) is still read from the log.

use ed25519_dalek::SigningKey;
use tokio::time::Instant;

use crate::keys::LogKey;
use crate::net::{AppChannel, SharedCore};
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

/// The lobby channel's message type of a mirrored block: the block's index in its log (8 bytes,
/// little-endian) then the block as appended (docs/PROTOCOL.md, "The lobby channel"). Type 0 is
/// the hello.
pub(crate) const MIRROR: u64 = 1;

/// One side's view of a join's signalling: reads `read` from block `next` on, appends to
/// `write`; with a lobby channel, mirrors what it appends there and reads the other side's
/// mirrors.
pub(crate) struct SignalLog {
    read: SharedCore,
    /// Opens the blocks addressed to us: the key of the log the other side writes to us.
    me: SigningKey,
    next: u64,
    write: SharedCore,
    /// The other side's log key, which our signals are sealed to.
    to: LogKey,
    /// The lobby channel to the other side, while it is open.
    channel: Option<AppChannel>,
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
            channel: None,
        }
    }

    /// Mirrors every block appended from now on to `channel`, and reads the other side's
    /// mirrors from it (see the module docs).
    pub(crate) fn with_channel(mut self, channel: AppChannel) -> Self {
        self.channel = Some(channel);
        self
    }

    /// The next signal addressed to us, waiting for it until `deadline`. Blocks for other
    /// joiners are skipped. Cancel-safe: a block counts as read only once it is returned.
    ///
    /// Errors: [`LogError::Core`] when the log can't be read.
    pub(crate) async fn next_until(&mut self, deadline: Instant) -> Result<Read, LogError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mirrored = async {
                match self.channel.as_mut() {
                    Some(channel) => channel.recv().await,
                    None => std::future::pending().await,
                }
            };
            let block = tokio::select! {
                biased;
                message = mirrored => match message {
                    // The other side closed the channel (e.g. an older host after the hello).
                    None => {
                        self.channel = None;
                        continue;
                    }
                    Some(message) => match decode_mirror(message.message_type, &message.payload) {
                        Some((index, block)) if index >= self.next => {
                            self.next = index.saturating_add(1);
                            block.to_vec()
                        }
                        _ => continue,
                    },
                },
                read = self.read.get_wait_timeout(self.next, left) => {
                    let Some(block) = read? else {
                        return Ok(Read::TimedOut);
                    };
                    self.next += 1;
                    block
                }
            };
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
        let block = signal.to_block(&self.to)?;
        let length = self.write.append(&block)?;
        if let Some(channel) = &self.channel {
            // The log has it: a mirror that can't be sent (an older peer closed the channel)
            // only costs time.
            let _ = channel.send_typed(MIRROR, &encode_mirror(length - 1, &block));
        }
        Ok(())
    }
}

/// A [`MIRROR`] message: `index` (u64 little-endian) then `block`.
fn encode_mirror(index: u64, block: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(8 + block.len());
    message.extend_from_slice(&index.to_le_bytes());
    message.extend_from_slice(block);
    message
}

/// The log index and block of a [`MIRROR`] message; `None` for another type or a message too
/// short to hold an index.
fn decode_mirror(message_type: u64, payload: &[u8]) -> Option<(u64, &[u8])> {
    if message_type != MIRROR {
        return None;
    }
    let (index, block) = payload.split_first_chunk::<8>()?;
    Some((u64::from_le_bytes(*index), block))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mirror_round_trips_and_short_or_other_messages_are_not_mirrors() {
        let message = encode_mirror(7, b"block");
        assert_eq!(decode_mirror(MIRROR, &message), Some((7, &b"block"[..])));
        assert_eq!(decode_mirror(0, &message), None);
        assert_eq!(decode_mirror(MIRROR, &message[..7]), None);
        assert_eq!(decode_mirror(MIRROR, &message[..8]), Some((7, &b""[..])));
    }
}
