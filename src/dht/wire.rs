//! compact-encoding-net 1.3.0 addresses and the bounded counts every DHT codec reads: the
//! pieces `payload`, `rpc` and `messages` share.

use std::net::SocketAddrV4;

use crate::hypercore::encoding::{DecodeError, Decoder, Encoder};

/// An array count whose elements take at least `elem` bytes each: refused when the rest of the
/// input cannot hold that many (so a hostile count never allocates).
pub(crate) fn count(d: &mut Decoder<'_>, elem: usize) -> Result<usize, DecodeError> {
    let at = d.position();
    let n = d.uint()?;
    let remaining = d.remaining();
    if n > (remaining / elem) as u64 {
        return Err(DecodeError::OutOfBounds {
            at,
            needed: n.saturating_mul(elem as u64),
            remaining,
        });
    }
    Ok(n as usize)
}

/// compact-encoding `ipv4Address`: 4 address bytes (network order) + `uint16` LE port.
pub(crate) fn put_ipv4(e: &mut Encoder, a: &SocketAddrV4) {
    e.raw(&a.ip().octets()).uint16(a.port());
}

pub(crate) fn put_ipv4_array(e: &mut Encoder, addrs: &[SocketAddrV4]) {
    e.uint(addrs.len() as u64);
    for a in addrs {
        put_ipv4(e, a);
    }
}

pub(crate) fn get_ipv4(d: &mut Decoder<'_>) -> Result<SocketAddrV4, DecodeError> {
    let ip: [u8; 4] = d.take(4)?.try_into().expect("4 bytes");
    Ok(SocketAddrV4::new(ip.into(), d.uint16()?))
}

pub(crate) fn get_ipv4_array(d: &mut Decoder<'_>) -> Result<Vec<SocketAddrV4>, DecodeError> {
    let n = count(d, 6)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(get_ipv4(d)?);
    }
    Ok(out)
}

/// Reads a field that is present when `present` (a flag bit said so).
pub(crate) fn optional<'a, T>(
    d: &mut Decoder<'a>,
    present: bool,
    read: impl FnOnce(&mut Decoder<'a>) -> Result<T, DecodeError>,
) -> Result<Option<T>, DecodeError> {
    present.then(|| read(d)).transpose()
}

/// Flag bit `value` when `set`, else 0.
pub(crate) fn bit(set: bool, value: u64) -> u64 {
    if set {
        value
    } else {
        0
    }
}
