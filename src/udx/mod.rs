//! UDX, the reliable transport under the Hyperswarm DHT's connections, wire-compatible with
//! libudx / udx-native 1.21.3 (`../shared/reference/HYPERDHT.md` §1.1): streams of bytes over
//! UDP with packet-numbered acks, SACK, half-close, reset and unreliable datagrams.
//!
//! - [`header`]: the 20-byte packet header and SACK blocks.
//! - [`Stream`]: one stream, sans-IO (packets and time in, packets and events out).
//! - [`UdxSocket`] / [`UdxStream`] (feature `native`): the tokio driver that owns a UDP socket
//!   and the streams on it.
//!
//! A stream has no handshake: each side picks a 32-bit id and learns the other's out of band
//! (hyperdht carries them in its Noise payload), then connects to it.

pub mod header;
#[cfg(feature = "native")]
mod socket;
mod stream;

#[cfg(feature = "native")]
pub use socket::{SocketClosed, UdxSocket, UdxStream, UdxWriter, HIGH_WATERMARK};
pub use stream::{Stream, StreamError, StreamEvent, MAX_OUT_OF_ORDER, MAX_PAYLOAD, RECV_WINDOW};
