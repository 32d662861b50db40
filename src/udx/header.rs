//! The UDX packet header and SACK blocks, as libudx writes and reads them (`udx_write_header`,
//! `process_packet` and `send_ack` in holepunchto/libudx `src/udx.c`; udx-native 1.21.3 on the
//! wire).
//!
//! A packet is a 20-byte header, then `data_offset` bytes to skip (padding of an MTU probe, or
//! the SACK blocks of a packet that also carries data), then the payload:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | magic `0xff` |
//! | 1 | 1 | version `1` |
//! | 2 | 1 | type flags ([`flags`]) |
//! | 3 | 1 | `data_offset` |
//! | 4 | 4 | the receiver's stream id (u32 LE) |
//! | 8 | 4 | the sender's receive window, bytes |
//! | 12 | 4 | seq: the packet's number (DATA, END and DESTROY take one; others carry the next) |
//! | 16 | 4 | ack: the next seq the sender expects (everything before it arrived) |
//!
//! SACK blocks are `(start u32 LE, end u32 LE)` pairs, `end` exclusive, up to [`MAX_SACKS`]:
//! libudx sends them as the whole payload of an ACK (`data_offset` 0) and reads them from the
//! first `data_offset` bytes when that is set and shorter than the payload.

/// Byte 0 of every UDX packet.
pub const MAGIC: u8 = 0xff;
/// Byte 1: the protocol version.
pub const VERSION: u8 = 1;
/// Length of the header, bytes.
pub const HEADER_LEN: usize = 20;
/// Most SACK blocks libudx reads or writes in one packet (`UDX_MAX_SACKS`).
pub const MAX_SACKS: usize = 50;

/// The type flags of byte 2 (`include/udx.h`).
pub mod flags {
    /// Carries stream bytes.
    pub const DATA: u8 = 0x01;
    /// The sender's last packet: after it, the stream is ended (half-closed) that way.
    pub const END: u8 = 0x02;
    /// The payload holds SACK blocks.
    pub const SACK: u8 = 0x04;
    /// An unreliable datagram on the stream (no seq taken).
    pub const MESSAGE: u8 = 0x08;
    /// The sender destroyed the stream (a reset).
    pub const DESTROY: u8 = 0x10;
    /// A keep-alive or window probe: the receiver answers with an ACK.
    pub const HEARTBEAT: u8 = 0x20;
}

/// The 20-byte header of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// [`flags`] bits.
    pub flags: u8,
    /// Bytes between the header and the payload.
    pub data_offset: u8,
    /// The receiving stream's id.
    pub stream_id: u32,
    /// The sender's free receive buffer, bytes.
    pub rwnd: u32,
    /// The packet's sequence number.
    pub seq: u32,
    /// The next sequence number the sender expects.
    pub ack: u32,
}

/// A received packet, split: its header, the SACK blocks it carries and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The header.
    pub header: Header,
    /// SACK blocks `(start, end)`, `end` exclusive (empty without [`flags::SACK`]).
    pub sacks: Vec<(u32, u32)>,
    /// The bytes after the header and `data_offset`.
    pub payload: &'a [u8],
}

impl Header {
    /// Writes the header into the first 20 bytes of `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[MAGIC, VERSION, self.flags, self.data_offset]);
        for n in [self.stream_id, self.rwnd, self.seq, self.ack] {
            out.extend_from_slice(&n.to_le_bytes());
        }
    }

    /// Reads a header, or `None` when `bytes` is not a UDX packet (shorter than 20 bytes, wrong
    /// magic or version): on a shared socket, such a datagram belongs to someone else.
    pub fn read(bytes: &[u8]) -> Option<Header> {
        if bytes.len() < HEADER_LEN || bytes[0] != MAGIC || bytes[1] != VERSION {
            return None;
        }
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        Some(Header {
            flags: bytes[2],
            data_offset: bytes[3],
            stream_id: u32_at(4),
            rwnd: u32_at(8),
            seq: u32_at(12),
            ack: u32_at(16),
        })
    }
}

impl<'a> Packet<'a> {
    /// Splits one datagram. `None` when it is not a UDX packet ([`Header::read`]) or its
    /// `data_offset` runs past its end (libudx drops those).
    pub fn parse(bytes: &'a [u8]) -> Option<Packet<'a>> {
        let header = Header::read(bytes)?;
        let body = &bytes[HEADER_LEN..];
        let offset = usize::from(header.data_offset);
        if offset > body.len() {
            return None;
        }
        let mut sacks = Vec::new();
        if header.flags & flags::SACK != 0 {
            // libudx: the SACK area is data_offset bytes when set and shorter than the rest,
            // else the whole rest.
            let area = if offset > 0 && offset < body.len() {
                &body[..offset]
            } else {
                body
            };
            sacks = area
                .chunks_exact(8)
                .take(MAX_SACKS)
                .map(|c| {
                    let start = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    let end = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
                    (start, end)
                })
                .collect();
        }
        Some(Packet {
            header,
            sacks,
            payload: &body[offset..],
        })
    }
}

/// Appends SACK blocks (`(start, end)`, at most [`MAX_SACKS`]) as an ACK's payload.
pub fn write_sacks(sacks: &[(u32, u32)], out: &mut Vec<u8>) {
    for (start, end) in sacks.iter().take(MAX_SACKS) {
        out.extend_from_slice(&start.to_le_bytes());
        out.extend_from_slice(&end.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_writes_as_libudx_does_and_reads_back() {
        let h = Header {
            flags: flags::DATA | flags::END,
            data_offset: 0,
            stream_id: 0x0102_0304,
            rwnd: 4 * 1024 * 1024,
            seq: 7,
            ack: 0xffff_ffff,
        };
        let mut out = Vec::new();
        h.write(&mut out);
        assert_eq!(
            hex::encode(&out),
            "ff0103000403020100004000070000\
             00ffffffff"
        );
        assert_eq!(Header::read(&out), Some(h));
    }

    #[test]
    fn probe_padding_is_skipped_and_sacks_are_read_from_the_payload() {
        // An MTU probe: data_offset 3 bytes of padding before the data.
        let mut p = Vec::new();
        Header {
            flags: flags::DATA,
            data_offset: 3,
            ..Header::default()
        }
        .write(&mut p);
        p.extend_from_slice(&[0, 0, 0, b'h', b'i']);
        assert_eq!(Packet::parse(&p).unwrap().payload, b"hi");
        // An ACK with two SACK blocks as its payload.
        let mut a = Vec::new();
        Header {
            flags: flags::SACK,
            ..Header::default()
        }
        .write(&mut a);
        write_sacks(&[(5, 7), (9, 10)], &mut a);
        let parsed = Packet::parse(&a).unwrap();
        assert_eq!(parsed.sacks, vec![(5, 7), (9, 10)]);
    }

    #[test]
    fn foreign_and_broken_datagrams_are_not_udx() {
        assert!(Packet::parse(&[]).is_none());
        assert!(Packet::parse(&[0x03; 30]).is_none(), "dht-rpc");
        assert!(
            Packet::parse(&[0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
                .is_none()
        );
        let mut p = Vec::new();
        Header {
            data_offset: 10,
            ..Header::default()
        }
        .write(&mut p);
        p.extend_from_slice(&[0; 9]);
        assert!(Packet::parse(&p).is_none(), "offset past the end");
    }
}
