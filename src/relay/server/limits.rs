//! [`Limits`]: what one relay process and each of its clients may use, with safe defaults.

use std::time::Duration;

/// Operator-set limits of a relay. A client that exceeds a per-client limit, sends an oversized
/// frame or stays silent too long has its session closed with a [`super::CloseReason`]; other
/// sessions are not affected. The JS relay (`@hyperswarm/dht-relay` 0.4.3) has none of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Sessions (client connections) held at once; connections beyond it are refused at accept.
    /// Default 10,000.
    pub max_sessions: usize,
    /// Relayed streams per client (open, half-closed, and connects waiting for the server's
    /// firewall answer, on either side). Default 256.
    pub max_streams: usize,
    /// Servers (`listen`) per client. Default 16.
    pub max_servers: usize,
    /// Queries per client: lookups/announces in flight plus the standing announcements the
    /// client made (each `announce` stays until `unannounce` or the session ends). Default 64.
    pub max_queries: usize,
    /// Largest protomux frame accepted from a client, in bytes (one WebSocket message, or one
    /// decrypted secret-stream message). Default 4 MiB.
    pub max_frame: usize,
    /// Bytes of `data` queued by the relay towards one side of one stream. Beyond it, the relay
    /// stops reading from the sending client until the receiver drains below it (back-pressure;
    /// the JS relay buffers without bound). Default 1 MiB.
    pub stream_buffer: usize,
    /// Bytes of non-stream frames (pongs, results, ...) queued towards one client. Beyond it the
    /// relay stops reading that client's requests until it reads its answers. Default 256 KiB.
    pub control_buffer: usize,
    /// How often the relay sends `ping` (PROTOCOL.md §3 "Heartbeat": 15 s in JS).
    pub ping_interval: Duration,
    /// A session with no frame received and nothing written for this long is closed (the JS
    /// failsafe is 45 s).
    pub idle_timeout: Duration,
    /// Time allowed for the WebSocket upgrade or the TCP secret-stream handshake. Default 10 s.
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
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(45),
            handshake_timeout: Duration::from_secs(10),
        }
    }
}
