//! Framing of STUN and ChannelData on a TCP stream (RFC 8656 §3.1, §12.5): a STUN message is
//! its 20-byte header plus the header's length; ChannelData is 4 bytes plus its length,
//! padded to a multiple of 4 bytes. Sans-IO: bytes in, frames out.

/// The largest frame: a STUN header and 65,535 bytes of attributes, or padded ChannelData.
const MAX_FRAME: usize = 20 + 65_535 + 3;

/// The stream is not STUN/ChannelData: the first two bits of a frame are neither 00 nor 01.
/// The driver closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a STUN message or ChannelData (first byte {0:#04x})")]
pub struct FramingError(pub u8);

/// Splits a client's TCP byte stream into frames. Holds at most one partial frame
/// (at most 65,558 bytes).
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: Vec<u8>,
}

impl StreamFramer {
    /// An empty framer.
    pub fn new() -> Self {
        StreamFramer::default()
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame (a STUN message, or ChannelData with its padding), `None`
    /// until one is complete.
    ///
    /// # Errors
    /// [`FramingError`] when the bytes at a frame boundary are neither STUN nor ChannelData.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FramingError> {
        let Some(len) = self.frame_len()? else {
            return Ok(None);
        };
        if self.buf.len() < len {
            if self.buf.capacity() < len.min(MAX_FRAME) {
                self.buf.reserve(len - self.buf.len());
            }
            return Ok(None);
        }
        let rest = self.buf.split_off(len);
        Ok(Some(std::mem::replace(&mut self.buf, rest)))
    }

    /// How many bytes are buffered (at most one partial frame after `next_frame` returned
    /// `None`).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn frame_len(&self) -> Result<Option<usize>, FramingError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
        match self.buf[0] >> 6 {
            0 => Ok(Some(20 + len)),
            1 => Ok(Some((4 + len).next_multiple_of(4))),
            _ => Err(FramingError(self.buf[0])),
        }
    }
}
