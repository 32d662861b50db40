//! Telling apart what arrives from a STUN/TURN server, and framing STUN and TURN ChannelData on
//! a TCP stream. Pure functions: bytes in, bytes or lengths out.
//!
//! Demultiplexing follows RFC 7983 §7 (the first byte of a datagram: 0-3 STUN, 20-63 DTLS,
//! 64-79 TURN ChannelData, 128-191 RTP/RTCP). On TCP, RFC 8656 §12.5 frames a STUN message by
//! its header length (20 bytes + attributes, a multiple of 4) and a ChannelData message by its
//! 4-byte header plus the data padded to a multiple of 4.

/// What a packet is, by its first byte (RFC 7983 §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PacketClass {
    /// 0-3: a STUN message (Binding, TURN methods, connectivity checks).
    Stun,
    /// 20-63: DTLS.
    Dtls,
    /// 64-79: TURN ChannelData.
    ChannelData,
    /// Anything else (RTP/RTCP, junk, empty).
    Other,
}

/// Classifies `data` by its first byte (RFC 7983 §7).
pub(crate) fn classify(data: &[u8]) -> PacketClass {
    match data.first() {
        Some(0..=3) => PacketClass::Stun,
        Some(20..=63) => PacketClass::Dtls,
        Some(64..=79) => PacketClass::ChannelData,
        _ => PacketClass::Other,
    }
}

/// Largest STUN or ChannelData frame accepted on a TCP stream, in bytes: a frame is one UDP
/// datagram's worth (a ChannelData length is 16 bits, so at most 4 + 65535).
pub(crate) const MAX_FRAME_BYTES: usize = 4 + 65_535 + 3;

/// The length of the frame at the start of `buf`: `Some((frame, used))` where `frame` is the
/// message's own length (what the TURN client is given) and `used` the bytes it takes on the
/// stream (ChannelData padded to 4). `Ok(None)` when more bytes are needed; `Err(())` when the
/// stream does not start with STUN or ChannelData (the stream is then unusable).
pub(crate) fn tcp_frame_len(buf: &[u8]) -> Result<Option<(usize, usize)>, ()> {
    if buf.is_empty() {
        return Ok(None);
    }
    if !matches!(classify(buf), PacketClass::Stun | PacketClass::ChannelData) {
        return Err(());
    }
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    let (frame, used) = match classify(buf) {
        PacketClass::Stun => (20 + len, 20 + len),
        PacketClass::ChannelData => (4 + len, 4 + len.next_multiple_of(4)),
        _ => return Err(()),
    };
    if buf.len() < used {
        return Ok(None);
    }
    Ok(Some((frame, used)))
}

/// Bytes to write on a TCP stream for one message to a TURN server: STUN as it is, ChannelData
/// padded with zeros to a multiple of 4 (RFC 8656 §12.5; a UDP datagram is never padded).
pub(crate) fn tcp_pad(mut data: Vec<u8>) -> Vec<u8> {
    if classify(&data) == PacketClass::ChannelData {
        data.resize(data.len().next_multiple_of(4), 0);
    }
    data
}

/// Splits a TCP byte stream from a TURN server into whole frames.
#[derive(Debug, Default)]
pub(crate) struct TcpFramer {
    buf: Vec<u8>,
    broken: bool,
}

impl TcpFramer {
    /// Appends bytes read from the stream.
    pub(crate) fn push(&mut self, data: &[u8]) {
        if !self.broken {
            self.buf.extend_from_slice(data);
        }
    }

    /// The next whole frame (without ChannelData padding), if one is buffered. `Err(())` once
    /// the stream holds something that is neither STUN nor ChannelData, or a frame is longer
    /// than [`MAX_FRAME_BYTES`]: nothing more can be framed.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Vec<u8>>, ()> {
        if self.broken {
            return Err(());
        }
        match tcp_frame_len(&self.buf) {
            Ok(Some((frame, used))) => {
                let out = self.buf[..frame].to_vec();
                self.buf.drain(..used);
                Ok(Some(out))
            }
            Ok(None) if self.buf.len() > MAX_FRAME_BYTES => {
                self.broken = true;
                Err(())
            }
            Ok(None) => Ok(None),
            Err(()) => {
                self.broken = true;
                self.buf.clear();
                Err(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_byte_classes_follow_rfc_7983() {
        assert_eq!(classify(&[0]), PacketClass::Stun);
        assert_eq!(classify(&[3]), PacketClass::Stun);
        assert_eq!(classify(&[4]), PacketClass::Other);
        assert_eq!(classify(&[20]), PacketClass::Dtls);
        assert_eq!(classify(&[63]), PacketClass::Dtls);
        assert_eq!(classify(&[64]), PacketClass::ChannelData);
        assert_eq!(classify(&[79]), PacketClass::ChannelData);
        assert_eq!(classify(&[80]), PacketClass::Other);
        assert_eq!(classify(&[128]), PacketClass::Other);
        assert_eq!(classify(&[]), PacketClass::Other);
    }

    #[test]
    fn channel_data_is_padded_on_tcp_only_to_four() {
        let cd = vec![0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5];
        let padded = tcp_pad(cd.clone());
        assert_eq!(padded.len(), 12);
        assert_eq!(&padded[..9], &cd[..]);
        assert_eq!(&padded[9..], &[0, 0, 0]);
        // Already aligned, and STUN: unchanged.
        let aligned = vec![0x40, 0x01, 0x00, 0x04, 1, 2, 3, 4];
        assert_eq!(tcp_pad(aligned.clone()), aligned);
        let stun = vec![0x00, 0x01, 0x00, 0x00];
        assert_eq!(tcp_pad(stun.clone()), stun);
    }

    fn stun_header(len: u16) -> Vec<u8> {
        let mut h = vec![0x01, 0x01];
        h.extend_from_slice(&len.to_be_bytes());
        h.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        h.extend_from_slice(&[7; 12]);
        h.extend(std::iter::repeat_n(9, len as usize));
        h
    }

    #[test]
    fn framer_splits_stun_and_padded_channel_data_across_reads() {
        let stun = stun_header(8);
        let cd = vec![0x40, 0x00, 0x00, 0x03, 1, 2, 3, 0];
        let mut stream = stun.clone();
        stream.extend_from_slice(&cd);
        stream.extend_from_slice(&stun);
        let mut f = TcpFramer::default();
        let mut frames = Vec::new();
        // One byte at a time: every split point.
        for b in &stream {
            f.push(std::slice::from_ref(b));
            while let Some(frame) = f.next_frame().unwrap() {
                frames.push(frame);
            }
        }
        assert_eq!(frames, vec![stun.clone(), cd[..7].to_vec(), stun]);
    }

    #[test]
    fn framer_refuses_a_stream_that_is_not_stun_or_channel_data() {
        let mut f = TcpFramer::default();
        f.push(&[0x16, 0xfe, 0xfd, 0x00, 0x00]);
        assert!(f.next_frame().is_err());
        f.push(&stun_header(0));
        assert!(f.next_frame().is_err(), "stays broken");
    }

    #[test]
    fn frame_len_needs_the_whole_padded_frame() {
        assert_eq!(tcp_frame_len(&[]), Ok(None));
        assert_eq!(tcp_frame_len(&[0x40, 0]), Ok(None));
        assert_eq!(tcp_frame_len(&[0x40, 0, 0, 1, 9]), Ok(None));
        assert_eq!(
            tcp_frame_len(&[0x40, 0, 0, 1, 9, 0, 0, 0]),
            Ok(Some((5, 8)))
        );
        assert_eq!(tcp_frame_len(&[0x80, 0, 0, 0]), Err(()));
    }
}
