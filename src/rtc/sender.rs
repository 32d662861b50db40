//! [`RtcSender`]: sending on a connection from any task, with the message and queue limits
//! of [`super::RtcConfig`].

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::connection::check_label;
use super::driver::{Command, Shared};
use super::{ChannelId, Reliability, RtcError};

/// A cloneable handle that sends on a [`PeerConnection`] from any task. Cheap to clone; all
/// clones feed one queue.
#[derive(Clone)]
pub struct RtcSender {
    pub(super) cmd: mpsc::UnboundedSender<Command>,
    pub(super) shared: Arc<Shared>,
    pub(super) max_message: usize,
    pub(super) max_queued: usize,
}

impl fmt::Debug for RtcSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtcSender")
            .field("local_addrs", &self.shared.local_addrs)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl RtcSender {
    /// Queues `data` as one binary message on `channel`. Returns at once; reliable channels
    /// deliver in order, unreliable ones may drop it. A message for a channel that is not open
    /// yet waits for it; for an unknown or closed channel it is dropped (counted in
    /// [`PeerStats::messages_dropped`]).
    ///
    /// Errors: [`RtcError::Closed`] once the connection has ended,
    /// [`RtcError::MessageTooLarge`] above [`RtcConfig::max_message_bytes`],
    /// [`RtcError::QueueFull`] when [`RtcConfig::max_queued_bytes`] are already waiting.
    pub fn send(&self, channel: ChannelId, data: &[u8]) -> Result<(), RtcError> {
        self.enqueue(channel, data.to_vec(), true)
    }

    /// Like [`RtcSender::send`], as a text message (a browser receives a string).
    pub fn send_text(&self, channel: ChannelId, text: &str) -> Result<(), RtcError> {
        self.enqueue(channel, text.as_bytes().to_vec(), false)
    }

    /// Like [`RtcSender::send`], but when [`RtcConfig::max_queued_bytes`] are already waiting
    /// it waits for SCTP to take enough of them instead of failing: back-pressure for a
    /// producer (e.g. pasted chat) that must not lose messages. Cancel-safe (nothing is queued
    /// until it returns `Ok`). Bound the wait with a timeout if the peer may stall.
    ///
    /// Errors: [`RtcError::Closed`] once the connection has ended (also while waiting),
    /// [`RtcError::MessageTooLarge`].
    pub async fn send_wait(&self, channel: ChannelId, data: &[u8]) -> Result<(), RtcError> {
        self.enqueue_wait(channel, data, true).await
    }

    /// [`RtcSender::send_wait`] as a text message.
    pub async fn send_text_wait(&self, channel: ChannelId, text: &str) -> Result<(), RtcError> {
        self.enqueue_wait(channel, text.as_bytes(), false).await
    }

    async fn enqueue_wait(
        &self,
        channel: ChannelId,
        data: &[u8],
        binary: bool,
    ) -> Result<(), RtcError> {
        loop {
            // Register for the wake-up before trying, so that a drain in between is not missed.
            let drained = self.shared.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            match self.enqueue(channel, data.to_vec(), binary) {
                Err(RtcError::QueueFull { .. }) => drained.await,
                other => return other,
            }
        }
    }

    fn enqueue(&self, channel: ChannelId, data: Vec<u8>, binary: bool) -> Result<(), RtcError> {
        if self.is_closed() {
            return Err(RtcError::Closed);
        }
        let len = data.len();
        if len > self.max_message {
            return Err(RtcError::MessageTooLarge {
                len,
                max: self.max_message,
            });
        }
        let before = self.shared.queued_bytes.fetch_add(len, Ordering::AcqRel);
        if before + len > self.max_queued {
            self.shared.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            return Err(RtcError::QueueFull {
                queued: before,
                max: self.max_queued,
            });
        }
        self.cmd
            .send(Command::Send {
                channel,
                data,
                binary,
            })
            .map_err(|_| {
                self.shared.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                RtcError::Closed
            })
    }

    /// Opens another data channel (announced in-band, no new offer/answer). Returns its id at
    /// once; [`RtcEvent::ChannelOpen`] follows when the peer has it, and messages sent before
    /// then wait.
    ///
    /// Errors: [`RtcError::Closed`], [`RtcError::LabelTooLong`].
    pub async fn open_channel(
        &self,
        label: &str,
        reliability: Reliability,
    ) -> Result<ChannelId, RtcError> {
        check_label(label)?;
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Command::Open {
                config: reliability.channel_config(label),
                reply,
            })
            .map_err(|_| RtcError::Closed)?;
        rx.await.map_err(|_| RtcError::Closed)?
    }

    /// Closes one data channel (SCTP stream reset); both sides then see
    /// [`RtcEvent::ChannelClosed`]. Messages still queued for it are dropped.
    ///
    /// Errors: [`RtcError::Closed`].
    pub fn close_channel(&self, channel: ChannelId) -> Result<(), RtcError> {
        self.cmd
            .send(Command::CloseChannel(channel))
            .map_err(|_| RtcError::Closed)
    }

    /// Whether the connection has ended (sends fail from then on).
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}
