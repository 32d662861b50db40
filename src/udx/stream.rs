//! One UDX stream as a sans-IO state machine: packets and time in, packets and events out. It
//! speaks libudx's wire (holepunchto/libudx `src/udx.c`, udx-native 1.21.3): packet-numbered
//! seq and cumulative ack, SACK blocks, END half-close, DESTROY reset, HEARTBEAT probes and
//! MESSAGE datagrams, the receive window.
//!
//! The sender is deliberately simpler than libudx's BBR and RACK, which are sender-local and
//! not part of the wire: a NewReno-style window (10 packets to start, halved on loss), loss
//! found by SACK (three packets acknowledged past a hole) or by the retransmission timeout
//! (RFC 6298, at least 200 ms, doubling to 30 s; the stream fails after 6 timeouts in a row, as
//! libudx's `UDX_MAX_RTO_TIMEOUTS`). Payloads are at most [`MAX_PAYLOAD`] bytes, what libudx
//! sends at its base MTU of 1200, so no path MTU probing is needed.
//!
//! Use: [`Stream::new`], [`Stream::connect`] with the remote's id (learnt out of band, e.g. a
//! hyperdht Noise payload), then [`Stream::write`] / [`Stream::end`] /
//! [`Stream::send_message`], feed every packet for this stream to [`Stream::handle_packet`],
//! call [`Stream::handle_timeout`] at [`Stream::poll_timeout`], and send what
//! [`Stream::poll_transmit`] gives until it gives nothing; read [`Stream::poll_event`].

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::header::{flags, write_sacks, Header, Packet, HEADER_LEN, MAX_SACKS};

/// Largest payload of one packet, bytes: 1152, libudx's at its base MTU of 1200 over IPv4
/// (`mtu - 20 IP - 8 UDP - 20 UDX`).
pub const MAX_PAYLOAD: usize = 1152;
/// Receive window advertised when nothing is buffered, bytes (libudx's `UDX_DEFAULT_RWND_MAX`).
pub const RECV_WINDOW: u32 = 4 * 1024 * 1024;
/// Most packets kept out of order, waiting for a hole to fill (beyond it they are dropped and
/// the sender retransmits): a receive window's worth.
pub const MAX_OUT_OF_ORDER: u32 = RECV_WINDOW / MAX_PAYLOAD as u32 + 1;
/// Initial congestion window, packets (libudx's).
const INITIAL_CWND: f64 = 10.0;
/// Retransmission timeout before the first RTT sample (libudx's).
const INITIAL_RTO: Duration = Duration::from_millis(1000);
/// Shortest retransmission timeout.
const MIN_RTO: Duration = Duration::from_millis(200);
/// Longest retransmission timeout (libudx's `UDX_RTO_MAX_MS`).
const MAX_RTO: Duration = Duration::from_secs(30);
/// Timeouts in a row after which the stream fails (libudx's `UDX_MAX_RTO_TIMEOUTS`).
const MAX_RTO_TIMEOUTS: u32 = 6;
/// Packets acknowledged past a hole that make it lost.
const DUPACK_THRESHOLD: usize = 3;

/// `a - b` in sequence space (wrapping).
fn diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// What the stream reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// Stream bytes, in order.
    Data(Vec<u8>),
    /// An unreliable datagram ([`flags::MESSAGE`]).
    Message(Vec<u8>),
    /// The remote ended its side: every byte it wrote has been delivered.
    End,
    /// The stream is closed: `None` after both sides ended cleanly (or a local destroy).
    Closed(Option<StreamError>),
}

/// Why a stream closed abnormally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The remote destroyed the stream (libudx `ECONNRESET`).
    #[error("the remote reset the stream")]
    Reset,
    /// A packet went unacknowledged through 6 retransmission timeouts (libudx `ETIMEDOUT`).
    #[error("the remote stopped acknowledging (timed out)")]
    TimedOut,
}

/// A packet this side sent and the remote has not cumulatively acknowledged.
#[derive(Debug)]
struct Sent {
    flags: u8,
    payload: Vec<u8>,
    /// When last sent; `None` while queued for (re)transmission.
    sent_at: Option<Instant>,
    transmits: u32,
    sacked: bool,
}

/// One UDX stream (see the module docs).
#[derive(Debug)]
pub struct Stream {
    local_id: u32,
    remote_id: Option<u32>,
    // Sending.
    /// The next seq to take.
    seq: u32,
    /// Everything before it is acknowledged.
    remote_acked: u32,
    /// Packets `remote_acked..seq`, in order.
    sent: VecDeque<Sent>,
    /// Payload bytes in `sent` (kept, not summed: the driver asks on every loop).
    sent_bytes: usize,
    /// Bytes written and not yet in a packet.
    queued: VecDeque<u8>,
    end_wanted: bool,
    end_queued: bool,
    /// Our END was acknowledged.
    ended: bool,
    cwnd: f64,
    ssthresh: f64,
    /// The remote's receive window, bytes.
    send_rwnd: u32,
    /// Highest seq sent when loss recovery began (one window cut per loss event).
    recovery: Option<u32>,
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
    rto_at: Option<Instant>,
    rto_timeouts: u32,
    // Receiving.
    /// The next seq expected.
    ack: u32,
    incoming: BTreeMap<u32, (u8, Vec<u8>)>,
    incoming_bytes: usize,
    remote_ended: Option<u32>,
    ended_remote: bool,
    ack_needed: bool,
    // Output.
    control: VecDeque<Vec<u8>>,
    events: VecDeque<StreamEvent>,
    closed: bool,
}

impl Stream {
    /// A stream with id `local_id` (what the remote puts in its packets' header), not yet
    /// connected: packets that arrive before [`Stream::connect`] are kept and acknowledged
    /// once connected, as libudx does.
    pub fn new(local_id: u32) -> Stream {
        Stream {
            local_id,
            remote_id: None,
            seq: 0,
            remote_acked: 0,
            sent: VecDeque::new(),
            sent_bytes: 0,
            queued: VecDeque::new(),
            end_wanted: false,
            end_queued: false,
            ended: false,
            cwnd: INITIAL_CWND,
            ssthresh: f64::MAX,
            send_rwnd: RECV_WINDOW,
            recovery: None,
            srtt: None,
            rttvar: Duration::ZERO,
            rto: INITIAL_RTO,
            rto_at: None,
            rto_timeouts: 0,
            ack: 0,
            incoming: BTreeMap::new(),
            incoming_bytes: 0,
            remote_ended: None,
            ended_remote: false,
            ack_needed: false,
            control: VecDeque::new(),
            events: VecDeque::new(),
            closed: false,
        }
    }

    /// This stream's id.
    pub fn local_id(&self) -> u32 {
        self.local_id
    }

    /// Sets the remote stream's id: from now on packets go out.
    pub fn connect(&mut self, remote_id: u32) {
        self.remote_id = Some(remote_id);
        if std::mem::take(&mut self.ack_needed) {
            self.queue_ack();
        }
    }

    /// Queues `data` to send. Returns the bytes queued and in flight, so that a caller can
    /// stop writing above a bound of its own (back-pressure).
    pub fn write(&mut self, data: &[u8]) -> usize {
        if !self.end_wanted && !self.closed {
            self.queued.extend(data);
        }
        self.buffered()
    }

    /// Bytes written and not yet acknowledged.
    pub fn buffered(&self) -> usize {
        self.queued.len() + self.sent_bytes
    }

    /// Ends this side after the bytes written so far (a half-close: the remote still writes).
    pub fn end(&mut self) {
        self.end_wanted = true;
    }

    /// Sends `data` as one unreliable datagram on the stream (at most [`MAX_PAYLOAD`] bytes;
    /// longer is truncated). Dropped while not connected.
    pub fn send_message(&mut self, data: &[u8]) {
        if self.remote_id.is_some() && !self.closed {
            let len = data.len().min(MAX_PAYLOAD);
            let packet = self.packet(flags::MESSAGE, self.seq, &[], &data[..len]);
            self.control.push_back(packet);
        }
    }

    /// Resets the stream: sends DESTROY (when connected) and closes at once.
    pub fn destroy(&mut self) {
        if self.closed {
            return;
        }
        if self.remote_id.is_some() {
            let packet = self.packet(flags::DESTROY, self.seq, &[], &[]);
            self.seq = self.seq.wrapping_add(1);
            self.control.push_back(packet);
        }
        self.close(None);
    }

    /// Whether the stream has closed (its last packets may still be in [`Stream::poll_transmit`]).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<StreamEvent> {
        self.events.pop_front()
    }

    /// When [`Stream::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            None
        } else {
            self.rto_at
        }
    }

    /// Handles one received packet addressed to this stream (parsed by [`Packet::parse`]).
    pub fn handle_packet(&mut self, now: Instant, packet: &Packet<'_>) {
        if self.closed {
            return;
        }
        let h = &packet.header;
        if h.flags & flags::HEARTBEAT != 0 {
            self.queue_ack();
            return;
        }
        if diff(h.seq, self.ack) >= 0 {
            if h.flags & (flags::DATA | flags::END) != 0 {
                self.receive(h.flags, h.seq, packet.payload);
            }
            if h.flags & flags::END != 0 {
                self.remote_ended = Some(h.seq);
            }
            if h.flags & flags::DESTROY != 0 {
                self.close(Some(StreamError::Reset));
                return;
            }
        }
        if h.flags & flags::MESSAGE != 0 {
            self.events
                .push_back(StreamEvent::Message(packet.payload.to_vec()));
        }
        self.drain_in_order();
        // An ack beyond what we sent is bogus: ignore the rest, as libudx does.
        if diff(self.seq, h.ack) < 0 {
            return;
        }
        if diff(h.ack, self.remote_acked) >= 0 {
            self.send_rwnd = h.rwnd;
        }
        self.on_ack(now, h.ack, &packet.sacks);
        if h.flags & (flags::DATA | flags::END) != 0 {
            self.queue_ack();
        }
        self.check_ends();
    }

    /// Handles the retransmission timer (call at [`Stream::poll_timeout`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(at) = self.rto_at else { return };
        if now < at || self.closed {
            return;
        }
        self.rto_timeouts += 1;
        if self.ended_remote
            && self.sent.iter().all(|p| p.payload.is_empty())
            && self.rto_timeouts > 1
        {
            // Every byte was delivered and the remote ended; only our END is unanswered. libudx
            // closes as soon as it acks that END, with no TIME_WAIT, so a lost final ack would
            // otherwise hold this side until it times out.
            self.close(None);
            return;
        }
        if self.rto_timeouts >= MAX_RTO_TIMEOUTS {
            self.close(Some(StreamError::TimedOut));
            return;
        }
        // Everything unacknowledged is presumed lost: send it again, from one packet.
        for p in self.sent.iter_mut().filter(|p| !p.sacked) {
            p.sent_at = None;
        }
        self.ssthresh = (self.cwnd / 2.0).max(2.0);
        self.cwnd = 1.0;
        self.recovery = Some(self.seq);
        self.rto = (self.rto * 2).min(MAX_RTO);
        self.rto_at = Some(now + self.rto);
    }

    /// The next packet to send to the remote, if any: acks and control packets first, then
    /// retransmissions, then new data, as the windows allow.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if let Some(p) = self.control.pop_front() {
            return Some(p);
        }
        if self.closed || self.remote_id.is_none() {
            return None;
        }
        let in_flight = self.in_flight();
        if (in_flight as f64) >= self.cwnd.floor().max(1.0) {
            return None;
        }
        if let Some(i) = self.sent.iter().position(|p| p.sent_at.is_none()) {
            return Some(self.transmit(now, i));
        }
        self.new_packet(now, in_flight)
    }

    /// Packets sent, not acknowledged (cumulatively or by SACK) and not presumed lost.
    fn in_flight(&self) -> usize {
        self.sent
            .iter()
            .filter(|p| p.sent_at.is_some() && !p.sacked)
            .count()
    }

    /// Builds the next new packet from the queued bytes (and the END), if the windows allow.
    fn new_packet(&mut self, now: Instant, in_flight: usize) -> Option<Vec<u8>> {
        let end = self.end_wanted && !self.end_queued;
        if self.queued.is_empty() && !end {
            return None;
        }
        let len = self.queued.len().min(MAX_PAYLOAD);
        let window: usize = self
            .sent
            .iter()
            .filter(|p| !p.sacked)
            .map(|p| p.payload.len())
            .sum();
        // The remote's window bounds the bytes outstanding; with nothing outstanding one
        // packet may go anyway (it probes a closed window).
        if in_flight > 0 && window + len > self.send_rwnd as usize {
            return None;
        }
        let payload: Vec<u8> = self.queued.drain(..len).collect();
        let mut f = if payload.is_empty() { 0 } else { flags::DATA };
        if self.end_wanted && self.queued.is_empty() {
            f |= flags::END;
            self.end_queued = true;
        }
        self.sent_bytes += payload.len();
        self.sent.push_back(Sent {
            flags: f,
            payload,
            sent_at: None,
            transmits: 0,
            sacked: false,
        });
        self.seq = self.seq.wrapping_add(1);
        Some(self.transmit(now, self.sent.len() - 1))
    }

    /// Sends `sent[i]` (again), with the current ack and window.
    fn transmit(&mut self, now: Instant, i: usize) -> Vec<u8> {
        let seq = self.remote_acked.wrapping_add(i as u32);
        let p = &mut self.sent[i];
        p.sent_at = Some(now);
        p.transmits += 1;
        let (f, payload) = (p.flags, std::mem::take(&mut p.payload));
        let bytes = self.packet(f, seq, &[], &payload);
        self.sent[i].payload = payload;
        if self.rto_at.is_none() {
            self.rto_at = Some(now + self.rto);
        }
        bytes
    }

    /// A packet with the current ack and receive window.
    fn packet(&self, f: u8, seq: u32, sacks: &[(u32, u32)], payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + sacks.len() * 8 + payload.len());
        Header {
            flags: f,
            data_offset: 0,
            stream_id: self.remote_id.unwrap_or(0),
            rwnd: self.recv_window(),
            seq,
            ack: self.ack,
        }
        .write(&mut out);
        write_sacks(sacks, &mut out);
        out.extend_from_slice(payload);
        out
    }

    /// The receive window to advertise: what the out-of-order buffer leaves free.
    fn recv_window(&self) -> u32 {
        RECV_WINDOW.saturating_sub(self.incoming_bytes as u32)
    }

    /// Queues an ACK (with SACK blocks for what arrived out of order).
    fn queue_ack(&mut self) {
        if self.remote_id.is_none() {
            self.ack_needed = true;
            return;
        }
        let sacks = self.sack_blocks();
        let f = if sacks.is_empty() { 0 } else { flags::SACK };
        let packet = self.packet(f, self.seq, &sacks, &[]);
        self.control.push_back(packet);
    }

    /// The runs of seqs held out of order, lowest first, at most [`MAX_SACKS`].
    fn sack_blocks(&self) -> Vec<(u32, u32)> {
        let mut blocks: Vec<(u32, u32)> = Vec::new();
        for &seq in self.incoming.keys() {
            if let Some((_, end)) = blocks.last_mut().filter(|(_, end)| *end == seq) {
                *end = seq.wrapping_add(1);
            } else if blocks.len() < MAX_SACKS {
                blocks.push((seq, seq.wrapping_add(1)));
            } else {
                break;
            }
        }
        blocks
    }

    /// Stores or delivers one DATA/END packet at `seq` (not before `ack`).
    fn receive(&mut self, f: u8, seq: u32, payload: &[u8]) {
        if self.ended_remote || self.incoming.contains_key(&seq) {
            return;
        }
        if seq == self.ack && f & flags::DATA != 0 {
            self.ack = self.ack.wrapping_add(1);
            self.events.push_back(StreamEvent::Data(payload.to_vec()));
            return;
        }
        let ahead = diff(seq, self.ack) as u32;
        if ahead >= MAX_OUT_OF_ORDER || self.incoming_bytes + payload.len() > RECV_WINDOW as usize {
            return;
        }
        self.incoming_bytes += payload.len();
        self.incoming.insert(seq, (f, payload.to_vec()));
    }

    /// Delivers what the out-of-order buffer holds from `ack` on.
    fn drain_in_order(&mut self) {
        while let Some((f, payload)) = self.incoming.remove(&self.ack) {
            self.incoming_bytes -= payload.len();
            self.ack = self.ack.wrapping_add(1);
            if f & flags::DATA != 0 && !payload.is_empty() {
                self.events.push_back(StreamEvent::Data(payload));
            }
        }
    }

    /// Applies a cumulative ack and SACK blocks from the remote.
    fn on_ack(&mut self, now: Instant, ack: u32, sacks: &[(u32, u32)]) {
        let newly = diff(ack, self.remote_acked).max(0) as usize;
        let mut acked_any = false;
        for _ in 0..newly.min(self.sent.len()) {
            let p = self.sent.pop_front().expect("counted");
            self.sent_bytes -= p.payload.len();
            if p.transmits == 1 {
                if let Some(at) = p.sent_at {
                    self.rtt_sample(now.saturating_duration_since(at));
                }
            }
            if p.flags & flags::END != 0 {
                self.ended = true;
            }
            acked_any = true;
            self.grow();
        }
        if newly > 0 {
            // A reordered, older ack must not move it back.
            self.remote_acked = ack;
        }
        for &(start, end) in sacks {
            // Only blocks inside what is outstanding count (offsets from `remote_acked`).
            let from = start.wrapping_sub(self.remote_acked) as usize;
            let to = end.wrapping_sub(self.remote_acked) as usize;
            if from >= to || to > self.sent.len() {
                continue;
            }
            for p in self.sent.range_mut(from..to) {
                if !p.sacked && p.sent_at.is_some() {
                    p.sacked = true;
                    acked_any = true;
                }
            }
        }
        self.detect_loss();
        if let Some(r) = self.recovery {
            if diff(self.remote_acked, r) >= 0 {
                self.recovery = None;
            }
        }
        if acked_any {
            self.rto_timeouts = 0;
            self.rto_at = self.sent.iter().any(|p| !p.sacked).then(|| now + self.rto);
        }
    }

    /// Marks sent packets with [`DUPACK_THRESHOLD`] SACKed packets after them as lost (to be
    /// retransmitted), and halves the window once per loss event.
    fn detect_loss(&mut self) {
        let mut sacked_after = 0;
        let mut lost = false;
        for p in self.sent.iter_mut().rev() {
            if p.sacked {
                sacked_after += 1;
            } else if sacked_after >= DUPACK_THRESHOLD && p.sent_at.is_some() {
                p.sent_at = None;
                lost = true;
            }
        }
        if lost && self.recovery.is_none() {
            self.ssthresh = (self.cwnd / 2.0).max(2.0);
            self.cwnd = self.ssthresh;
            self.recovery = Some(self.seq);
        }
    }

    /// Grows the window by one acknowledged packet: slow start, then one packet per window.
    fn grow(&mut self) {
        if self.recovery.is_some() {
            return;
        }
        if self.cwnd < self.ssthresh {
            self.cwnd += 1.0;
        } else {
            self.cwnd += 1.0 / self.cwnd;
        }
    }

    /// RFC 6298 smoothing.
    fn rtt_sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let delta = rtt.abs_diff(srtt);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(rtt);
        self.rto = (srtt + self.rttvar * 4).clamp(MIN_RTO, MAX_RTO);
    }

    /// Reports the remote's end once every byte before it is delivered, and closes once both
    /// sides have ended.
    fn check_ends(&mut self) {
        if let Some(e) = self.remote_ended {
            if !self.ended_remote && diff(self.ack, e) > 0 {
                self.ended_remote = true;
                self.events.push_back(StreamEvent::End);
            }
        }
        if self.ended && self.ended_remote {
            self.close(None);
        }
    }

    fn close(&mut self, error: Option<StreamError>) {
        if !self.closed {
            self.closed = true;
            self.rto_at = None;
            self.events.push_back(StreamEvent::Closed(error));
        }
    }
}

#[cfg(test)]
mod tests;
