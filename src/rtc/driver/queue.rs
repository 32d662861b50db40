//! The outgoing side of the task: opening channels and queuing each message until SCTP has room
//! for it (a lossy channel drops instead), with the byte counts `RtcSender` reads.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use str0m::change::SdpApi;
use str0m::channel::{ChannelConfig, ChannelId};

use super::Driver;
use crate::rtc::{ChannelParams, RtcError};

/// One data channel as the task tracks it.
pub(super) struct Chan {
    /// Opened (str0m said `ChannelOpen`): writable.
    pub(super) open: bool,
    /// Partially reliable or unordered: a message SCTP has no room for is dropped, not queued,
    /// since stale game state is worth less than fresh.
    pub(super) lossy: bool,
    /// Messages waiting for SCTP buffer space: (bytes, binary).
    pub(super) queue: VecDeque<(Vec<u8>, bool)>,
}

impl Chan {
    pub(super) fn new(cfg: &ChannelConfig) -> Self {
        Chan {
            open: false,
            lossy: ChannelParams::from_config(cfg).is_lossy(),
            queue: VecDeque::new(),
        }
    }
}

impl Driver {
    pub(super) fn open_channel(&mut self, config: ChannelConfig) -> Result<ChannelId, RtcError> {
        if self.ending.is_some() {
            return Err(RtcError::Closed);
        }
        let chan = Chan::new(&config);
        let mut api: SdpApi = self.rtc.sdp_api();
        let id = api.add_channel_with_config(config);
        // Both descriptions had a data channel section, so a further channel is announced
        // in-band (DCEP) and needs no new offer/answer.
        if api.apply().is_some() {
            return Err(RtcError::Negotiation(
                "opening this channel would need a new offer/answer".into(),
            ));
        }
        self.chans.insert(id, chan);
        Ok(id)
    }

    /// Writes queued messages while SCTP has room. Each accepted write is followed by a drain,
    /// as str0m requires.
    pub(super) async fn flush(&mut self) {
        let ids: Vec<ChannelId> = self
            .chans
            .iter()
            .filter(|(_, c)| c.open && !c.queue.is_empty())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            while let Some(ch) = self.chans.get_mut(&id) {
                let Some((data, binary)) = ch.queue.front() else {
                    break;
                };
                let lossy = ch.lossy;
                let len = data.len();
                let res = self.rtc.channel(id).map(|mut w| w.write(*binary, data));
                match res {
                    Some(Ok(true)) => {
                        self.pop(id, len, false);
                        self.drain().await;
                    }
                    Some(Ok(false)) if lossy => self.pop(id, len, true),
                    // Reliable and SCTP's buffer is full: wait for acknowledgements.
                    Some(Ok(false)) => break,
                    Some(Err(e)) => {
                        tracing::warn!("dropping a {len} byte message on {id:?}: {e}");
                        self.pop(id, len, true);
                    }
                    None => {
                        // Not writable although announced open: closed under us.
                        self.drop_queue(id);
                        break;
                    }
                }
            }
        }
    }

    pub(super) fn pop(&mut self, id: ChannelId, len: usize, dropped: bool) {
        if let Some(ch) = self.chans.get_mut(&id) {
            ch.queue.pop_front();
            self.queued = self.queued.saturating_sub(1);
        }
        self.release(len, dropped);
    }

    pub(super) fn drop_queue(&mut self, id: ChannelId) {
        if let Some(ch) = self.chans.get_mut(&id) {
            let n = ch.queue.len();
            let bytes: usize = ch.queue.drain(..).map(|(d, _)| d.len()).sum();
            self.queued = self.queued.saturating_sub(n);
            self.shared
                .messages_dropped
                .fetch_add(n as u64, Ordering::Relaxed);
            self.release(bytes, false);
        }
    }

    pub(super) fn release(&self, bytes: usize, dropped: bool) {
        self.shared.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
        self.shared.drained.notify_waiters();
        if dropped {
            self.shared.messages_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}
