//! [`Limits`]: what one relay process and each of its clients may use, with safe defaults, and
//! the range each may take ([`Limits::validate`], [`LimitsError`]).

use std::ops::RangeInclusive;
use std::time::Duration;

/// Operator-set limits of a relay. A client that exceeds a per-client limit, sends an oversized
/// frame or stays silent too long has its session closed with a [`super::CloseReason`]; other
/// sessions are not affected. The JS relay (`@hyperswarm/dht-relay` 0.4.3) has none of these.
///
/// Each field has a range ([`Limits::RANGES`], checked by [`Limits::validate`], which
/// [`super::RelayServer::bind`] runs). The sans-IO core ([`super::Relay`]) accepts any value
/// without panicking (time arithmetic saturates), but values outside the ranges make little
/// sense (e.g. `max_sessions: 0` refuses every client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Sessions (client connections) held at once; connections beyond it are refused at accept.
    /// Default 10,000; range 1 to 1,000,000.
    pub max_sessions: usize,
    /// Relayed streams per client (open, half-closed, and connects waiting for the server's
    /// firewall answer, on either side). Default 256; range 1 to 65,536.
    pub max_streams: usize,
    /// Servers (`listen`) per client. Default 16; range 1 to 65,536.
    pub max_servers: usize,
    /// Queries per client: lookups/announces in flight plus the standing announcements the
    /// client made (each `announce` stays until `unannounce` or the session ends). Default 64;
    /// range 1 to 65,536.
    pub max_queries: usize,
    /// Largest protomux frame accepted from a client, in bytes (one WebSocket message, or one
    /// decrypted secret-stream message). Default 4 MiB; range 4 KiB to 8 MiB (the TCP
    /// transport's secret-stream messages carry at most 16 MiB).
    pub max_frame: usize,
    /// Bytes of `data` queued by the relay towards one side of one stream. Beyond it, the relay
    /// stops reading from the sending client until the receiver drains below it (back-pressure;
    /// the JS relay buffers without bound). Default 1 MiB; range 1 KiB to 1 GiB.
    pub stream_buffer: usize,
    /// Bytes of non-stream frames (pongs, results, ...) queued towards one client. Beyond it the
    /// relay stops reading that client's requests until it reads its answers. Default 256 KiB;
    /// range 1 KiB to 64 MiB.
    pub control_buffer: usize,
    /// Bytes of partly received frames held by all sessions together, beyond the first 16 KiB
    /// of each session (which a session may always hold, so small frames such as pongs are
    /// never held up). A session whose next bytes would pass both waits (is not read) until
    /// other sessions complete their frames or are closed; a session that does not complete its
    /// frame is closed at [`Limits::idle_timeout`]. So the relay holds at most
    /// `input_budget + 16 KiB × sessions` of partial input, whatever clients do. Default
    /// 64 MiB; range [`Limits::max_frame`] to 64 GiB.
    pub input_budget: usize,
    /// How often the relay sends `ping` (PROTOCOL.md §3 "Heartbeat": 15 s in JS). Default 15 s;
    /// range 100 ms to 1 day, and less than [`Limits::idle_timeout`].
    pub ping_interval: Duration,
    /// A session from which no complete frame (a pong, or anything else) arrived for this long
    /// is closed (the JS failsafe is 45 s). The relay's own writes, pings included, do not
    /// count, nor do the bytes of a frame still incomplete: a frame must be completed within
    /// this time. The clock stops while the relay itself does not read the client because of
    /// back-pressure from a stream's receiver. Default 45 s; range 1 s to 1 day.
    pub idle_timeout: Duration,
    /// Time allowed for the WebSocket upgrade or the TCP secret-stream handshake. Default 10 s;
    /// range 100 ms to 1 hour.
    pub handshake_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_sessions: 10_000,
            max_streams: 256,
            max_servers: 16,
            max_queries: 64,
            max_frame: 4 << 20,
            stream_buffer: 1 << 20,
            control_buffer: 256 << 10,
            input_budget: 64 << 20,
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(45),
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// A [`Limits`] field outside its range (see [`Limits::validate`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("relay limit {field} = {value} is out of range: {range}")]
pub struct LimitsError {
    /// The field's name, e.g. `max_sessions`.
    pub field: &'static str,
    /// The value given, as text (durations in `Debug` form, e.g. `0ns`).
    pub value: String,
    /// The allowed range, as text.
    pub range: String,
}

impl Limits {
    /// Range of [`Limits::max_sessions`].
    pub const MAX_SESSIONS_RANGE: RangeInclusive<usize> = 1..=1_000_000;
    /// Range of [`Limits::max_streams`], [`Limits::max_servers`] and [`Limits::max_queries`].
    pub const PER_CLIENT_RANGE: RangeInclusive<usize> = 1..=65_536;
    /// Range of [`Limits::max_frame`]: 4 KiB to 8 MiB.
    pub const MAX_FRAME_RANGE: RangeInclusive<usize> = (4 << 10)..=(8 << 20);
    /// Range of [`Limits::stream_buffer`]: 1 KiB to 1 GiB.
    pub const STREAM_BUFFER_RANGE: RangeInclusive<usize> = (1 << 10)..=(1 << 30);
    /// Range of [`Limits::control_buffer`]: 1 KiB to 64 MiB.
    pub const CONTROL_BUFFER_RANGE: RangeInclusive<usize> = (1 << 10)..=(64 << 20);
    /// Largest [`Limits::input_budget`]: 64 GiB (saturates on 32-bit targets).
    pub const MAX_INPUT_BUDGET: usize = if usize::BITS > 36 {
        1 << 36
    } else {
        usize::MAX
    };
    /// Smallest [`Limits::ping_interval`] and [`Limits::handshake_timeout`]: 100 ms.
    pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
    /// Largest [`Limits::ping_interval`] and [`Limits::idle_timeout`]: 1 day.
    pub const MAX_IDLE: Duration = Duration::from_secs(86_400);
    /// Largest [`Limits::handshake_timeout`]: 1 hour.
    pub const MAX_HANDSHAKE: Duration = Duration::from_secs(3_600);

    /// Checks every field against its documented range (see each field), and that
    /// `ping_interval < idle_timeout` and `input_budget >= max_frame`.
    ///
    /// Errors: [`LimitsError`] naming the first field out of range.
    pub fn validate(&self) -> Result<(), LimitsError> {
        let sizes = [
            ("max_sessions", self.max_sessions, Self::MAX_SESSIONS_RANGE),
            ("max_streams", self.max_streams, Self::PER_CLIENT_RANGE),
            ("max_servers", self.max_servers, Self::PER_CLIENT_RANGE),
            ("max_queries", self.max_queries, Self::PER_CLIENT_RANGE),
            ("max_frame", self.max_frame, Self::MAX_FRAME_RANGE),
            (
                "stream_buffer",
                self.stream_buffer,
                Self::STREAM_BUFFER_RANGE,
            ),
            (
                "control_buffer",
                self.control_buffer,
                Self::CONTROL_BUFFER_RANGE,
            ),
        ];
        for (field, value, range) in sizes {
            if !range.contains(&value) {
                return Err(LimitsError {
                    field,
                    value: value.to_string(),
                    range: format!("{} to {}", range.start(), range.end()),
                });
            }
        }
        if !(self.max_frame..=Self::MAX_INPUT_BUDGET).contains(&self.input_budget) {
            return Err(LimitsError {
                field: "input_budget",
                value: self.input_budget.to_string(),
                range: format!(
                    "max_frame ({}) to {}",
                    self.max_frame,
                    Self::MAX_INPUT_BUDGET
                ),
            });
        }
        let durations = [
            (
                "idle_timeout",
                self.idle_timeout,
                Duration::from_secs(1)..=Self::MAX_IDLE,
            ),
            (
                "ping_interval",
                self.ping_interval,
                Self::MIN_INTERVAL..=Self::MAX_IDLE,
            ),
            (
                "handshake_timeout",
                self.handshake_timeout,
                Self::MIN_INTERVAL..=Self::MAX_HANDSHAKE,
            ),
        ];
        for (field, value, range) in durations {
            if !range.contains(&value) {
                return Err(LimitsError {
                    field,
                    value: format!("{value:?}"),
                    range: format!("{:?} to {:?}", range.start(), range.end()),
                });
            }
        }
        if self.ping_interval >= self.idle_timeout {
            return Err(LimitsError {
                field: "ping_interval",
                value: format!("{:?}", self.ping_interval),
                range: format!("less than idle_timeout ({:?})", self.idle_timeout),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Limits::default().validate(), Ok(()));
        assert_eq!(Limits::MAX_INPUT_BUDGET as u64, 1u64 << 36);
    }

    #[test]
    fn every_field_out_of_range_is_named() {
        type Set = fn(&mut Limits);
        let cases: [(&str, Set); 16] = [
            ("max_sessions", |l| l.max_sessions = 0),
            ("max_sessions", |l| l.max_sessions = 2305843009213693952),
            ("max_streams", |l| l.max_streams = 0),
            ("max_servers", |l| l.max_servers = usize::MAX),
            ("max_queries", |l| l.max_queries = 0),
            ("max_frame", |l| l.max_frame = 0),
            ("max_frame", |l| l.max_frame = 1 << 30),
            ("stream_buffer", |l| l.stream_buffer = 0),
            ("control_buffer", |l| l.control_buffer = usize::MAX),
            ("input_budget", |l| l.input_budget = (4 << 20) - 1),
            ("input_budget", |l| l.input_budget = usize::MAX),
            ("idle_timeout", |l| {
                l.idle_timeout = Duration::from_secs(9223372036854775807)
            }),
            ("idle_timeout", |l| l.idle_timeout = Duration::ZERO),
            ("ping_interval", |l| l.ping_interval = Duration::ZERO),
            ("ping_interval", |l| l.ping_interval = l.idle_timeout),
            ("handshake_timeout", |l| l.handshake_timeout = Duration::MAX),
        ];
        for (field, set) in cases {
            let mut l = Limits::default();
            set(&mut l);
            let e = l.validate().expect_err(field);
            assert_eq!(e.field, field, "{e}");
            assert!(e.to_string().contains(field), "{e}");
        }
    }

    #[test]
    fn range_ends_are_valid() {
        let mut l = Limits {
            max_sessions: 1_000_000,
            max_streams: 1,
            max_servers: 65_536,
            max_queries: 1,
            max_frame: 8 << 20,
            stream_buffer: 1 << 10,
            control_buffer: 64 << 20,
            input_budget: 8 << 20,
            ping_interval: Duration::from_millis(100),
            idle_timeout: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(3_600),
        };
        assert_eq!(l.validate(), Ok(()));
        l.idle_timeout = Limits::MAX_IDLE;
        l.ping_interval = Duration::from_secs(86_399);
        l.input_budget = Limits::MAX_INPUT_BUDGET;
        assert_eq!(l.validate(), Ok(()));
    }
}
