//! How the task ends: the reason recorded once, a graceful close that lingers for SCTP shutdown
//! and DTLS close_notify, and the last events (every channel closed, then `Disconnected`).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Driver;
use crate::rtc::{DisconnectReason, RtcEvent};

/// How long a local close may take to flush SCTP shutdown and DTLS close_notify.
const CLOSE_LINGER: Duration = Duration::from_millis(500);

impl Driver {
    /// Records why the connection ends and refuses further sends.
    pub(super) fn begin_end(&mut self, reason: DisconnectReason) {
        if self.ending.is_none() {
            tracing::debug!("connection ending: {reason}");
            *crate::sync::lock(&self.shared.reason) = Some(reason.clone());
            self.ending = Some(reason);
            self.shared.closed.store(true, Ordering::Release);
            self.shared.drained.notify_waiters();
            // Closing flushes SCTP shutdown and DTLS close_notify; give it a moment.
            self.close_deadline = Some(Instant::now() + CLOSE_LINGER);
            self.connect_deadline = None;
        }
    }

    /// Ends the connection: gracefully (SCTP shutdown, DTLS close_notify) when we close it,
    /// at once when it failed.
    pub(super) async fn end(&mut self, reason: DisconnectReason) {
        if self.ending.is_some() {
            return;
        }
        let graceful = reason == DisconnectReason::LocalClosed;
        self.begin_end(reason);
        if graceful {
            if let Err(e) = self.rtc.close() {
                tracing::debug!("close: {e}");
                self.rtc.disconnect();
            }
            self.drain().await;
        } else {
            self.rtc.disconnect();
        }
    }

    pub(super) fn fail_now(&mut self, reason: DisconnectReason) {
        self.begin_end(reason);
        self.rtc.disconnect();
    }

    /// Reports the end: every open channel closed, then `Disconnected`. TURN allocations are
    /// deleted, then sockets and the `Rtc` released, so a slow reader holds no network
    /// resources.
    pub(super) async fn finish(mut self) {
        self.release_allocations().await;
        let Driver {
            rtc,
            sockets,
            chans,
            ev_tx,
            shared,
            ending,
            owner_gone,
            ..
        } = self;
        drop(rtc);
        drop(sockets);
        shared.closed.store(true, Ordering::Release);
        let queued: usize = chans
            .values()
            .flat_map(|c| c.queue.iter())
            .map(|(d, _)| d.len())
            .sum();
        shared.queued_bytes.fetch_sub(queued, Ordering::AcqRel);
        shared.drained.notify_waiters();
        if owner_gone {
            return;
        }
        let open = chans.iter().filter(|(_, c)| c.open).map(|(id, _)| *id);
        for channel in open {
            if ev_tx
                .send(RtcEvent::ChannelClosed { channel })
                .await
                .is_err()
            {
                return;
            }
        }
        let reason = ending.unwrap_or(DisconnectReason::LocalClosed);
        let _ = ev_tx.send(RtcEvent::Disconnected { reason }).await;
    }
}
