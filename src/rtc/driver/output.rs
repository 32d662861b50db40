//! The str0m output of the task: datagrams to send and events to report, polled after every
//! input until str0m names its next timeout.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::Ordering;
use std::time::Instant;

use str0m::channel::ChannelId;
use str0m::net::Transmit;
use str0m::{Event, Output};

use super::{Chan, Driver};
use crate::rtc::gather::frame::{classify, PacketClass};
use crate::rtc::{ChannelParams, DisconnectReason, RtcEvent, SelectedPath};
use crate::sync::lock;

impl Driver {
    /// Polls str0m until it returns its next timeout: sends its datagrams, reports its events.
    pub(super) async fn drain(&mut self) {
        while self.rtc.is_alive() {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.rtc_timeout = t;
                    return;
                }
                Ok(Output::Transmit(t)) => self.transmit(t).await,
                Ok(Output::Event(e)) => self.on_rtc_event(e).await,
                Err(e) => {
                    tracing::warn!("str0m failed: {e}");
                    self.fail_now(DisconnectReason::Error(e.to_string()));
                    return;
                }
            }
        }
    }

    pub(super) async fn transmit(&mut self, t: Transmit) {
        if let Some(path) = self.note_path(&t) {
            // Before `Connected` the owner reads the first path with `path()`.
            if self.connected {
                self.emit(RtcEvent::PathChanged { path }).await;
            }
        }
        if let Some(g) = &mut self.gather {
            let now = Instant::now();
            match g.wrap(t.source, t.destination, &t.contents, now) {
                // Not from a relayed address: a host socket sends it.
                None => {}
                Some(wrapped) => {
                    let mut outs: Vec<_> = wrapped.into_iter().collect();
                    // A permission or channel bind the wrap asked for goes out too.
                    while let Some(o) = g.poll_transmit(now) {
                        outs.push(o);
                    }
                    for o in outs {
                        self.send_out(o).await;
                    }
                    return;
                }
            }
        }
        // str0m names the local candidate to send from; that is one of our sockets.
        let idx = self.addrs.iter().position(|a| *a == t.source).or_else(|| {
            self.addrs
                .iter()
                .position(|a| a.is_ipv4() == t.destination.is_ipv4())
        });
        let Some(idx) = idx else {
            tracing::debug!("no socket for {} -> {}", t.source, t.destination);
            return;
        };
        // A candidate pair that cannot route is normal during ICE checks.
        let _ = self.send_udp(idx, &t.contents, t.destination).await;
    }

    /// Sends one datagram from socket `idx` (waiting if its buffer is full) and counts it.
    /// Failures are logged at debug and returned.
    pub(super) async fn send_udp(
        &self,
        idx: usize,
        data: &[u8],
        to: std::net::SocketAddr,
    ) -> io::Result<usize> {
        let sock = &self.sockets[idx];
        let res = match sock.try_send_to(data, to) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => sock.send_to(data, to).await,
            r => r,
        };
        match &res {
            Ok(n) => {
                self.shared
                    .bytes_sent
                    .fetch_add(*n as u64, Ordering::Relaxed);
            }
            Err(e) => tracing::debug!("send to {to} failed: {e}"),
        }
        res
    }

    /// Records the pair DTLS and SCTP go on as the connection's path (STUN checks probe
    /// every pair and say nothing); returns the new path when it changed.
    fn note_path(&mut self, t: &Transmit) -> Option<SelectedPath> {
        if classify(&t.contents) == PacketClass::Stun {
            return None;
        }
        let relay_server = self.gather.as_ref().and_then(|g| g.relay_server(t.source));
        let path = self
            .remote_kinds
            .path(t.source, t.destination, relay_server);
        let mut current = lock(&self.shared.path);
        if current.as_ref() != Some(&path) {
            tracing::debug!(
                "path {}: {} -> {} (relay {:?})",
                path.kind,
                path.local,
                path.remote,
                path.relay
            );
            *current = Some(path.clone());
            return Some(path);
        }
        None
    }

    pub(super) async fn on_rtc_event(&mut self, e: Event) {
        match e {
            Event::Connected => {
                tracing::debug!("ICE and DTLS connected");
                self.connected = true;
                self.last_recv = Instant::now();
                self.check_up();
            }
            Event::ChannelOpen(id, label) => {
                let params = self
                    .rtc
                    .channel(id)
                    .and_then(|c| c.config().map(ChannelParams::from_config))
                    .unwrap_or_default();
                let ch = self.chans.entry(id).or_insert_with(|| Chan {
                    open: false,
                    lossy: params.is_lossy(),
                    queue: VecDeque::new(),
                });
                ch.open = true;
                self.waiting.remove(&id);
                self.check_up();
                self.emit(RtcEvent::ChannelOpen {
                    channel: id,
                    label,
                    params,
                })
                .await;
            }
            Event::ChannelData(d) => {
                self.emit(RtcEvent::Message {
                    channel: d.id,
                    data: d.data,
                    binary: d.binary,
                })
                .await;
            }
            Event::ChannelClose(id) => self.channel_closed(id).await,
            Event::Closed => {
                tracing::debug!("the peer closed the connection");
                self.begin_end(DisconnectReason::RemoteClosed);
            }
            Event::IceConnectionStateChange(s) => {
                tracing::debug!("ICE state {s:?}");
                self.ice_checking = s == str0m::IceConnectionState::Checking;
            }
            _ => {}
        }
    }

    /// Clears the connect deadline once ICE+DTLS are up and our own channels are open.
    pub(super) fn check_up(&mut self) {
        if self.connected && self.waiting.is_empty() {
            self.connect_deadline = None;
        }
    }

    pub(super) async fn channel_closed(&mut self, id: ChannelId) {
        if let Some(ch) = self.chans.get(&id) {
            let was_open = ch.open;
            self.drop_queue(id);
            self.chans.remove(&id);
            if was_open {
                self.emit(RtcEvent::ChannelClosed { channel: id }).await;
            }
        }
    }

    /// Reports an event; waits while the application's queue is full.
    pub(super) async fn emit(&mut self, ev: RtcEvent) {
        if self.owner_gone {
            return;
        }
        if self.ev_tx.send(ev).await.is_err() {
            self.owner_gone = true;
            self.begin_end(DisconnectReason::LocalClosed);
        }
    }
}
