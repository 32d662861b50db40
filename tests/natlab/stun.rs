//! A minimal STUN Binding client (RFC 8489) for sockets a lab test owns: it asks a STUN server
//! (coturn on the public segment) what address a socket's traffic comes from, over UDP or TCP.
//! A test aid, not the product's client (that one lives in `src/`): one request type, one
//! attribute read, and a decoder that returns `None` on anything unexpected.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

/// RFC 8489 §5: the magic cookie in every message header.
const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Binding request and Binding success response (RFC 8489 §18.2).
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
/// MAPPED-ADDRESS (RFC 8489 §14.1) and XOR-MAPPED-ADDRESS (§14.2).
const MAPPED_ADDRESS: u16 = 0x0001;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;

/// A Binding request with a random transaction id: (the 20-byte message, the id).
fn request() -> ([u8; 20], [u8; 12]) {
    let id: [u8; 12] = rand::random();
    let mut msg = [0u8; 20];
    msg[0..2].copy_from_slice(&BINDING_REQUEST.to_be_bytes());
    // Length 0: no attributes.
    msg[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    msg[8..20].copy_from_slice(&id);
    (msg, id)
}

/// The mapped address in a Binding success response for transaction `id`; `None` for any other
/// message or a malformed one.
pub fn parse_response(msg: &[u8], id: &[u8; 12]) -> Option<SocketAddr> {
    let header = msg.get(..20)?;
    let kind = u16::from_be_bytes([header[0], header[1]]);
    let len = u16::from_be_bytes([header[2], header[3]]) as usize;
    if kind != BINDING_SUCCESS || header[4..8] != MAGIC_COOKIE.to_be_bytes() || &header[8..] != id {
        return None;
    }
    let mut attrs = msg.get(20..20 + len)?;
    let mut plain = None;
    while attrs.len() >= 4 {
        let kind = u16::from_be_bytes([attrs[0], attrs[1]]);
        let len = u16::from_be_bytes([attrs[2], attrs[3]]) as usize;
        let value = attrs.get(4..4 + len)?;
        match kind {
            XOR_MAPPED_ADDRESS => return ipv4_address(value, true),
            MAPPED_ADDRESS => plain = ipv4_address(value, false),
            _ => {}
        }
        // Attributes are padded to 4 bytes (RFC 8489 §14).
        attrs = attrs.get((4 + len).next_multiple_of(4)..).unwrap_or(&[]);
    }
    plain
}

/// An IPv4 (XOR-)MAPPED-ADDRESS value: reserved, family 0x01, port, address.
fn ipv4_address(value: &[u8], xor: bool) -> Option<SocketAddr> {
    if value.len() != 8 || value[1] != 0x01 {
        return None;
    }
    let mut port = u16::from_be_bytes([value[2], value[3]]);
    let mut ip = u32::from_be_bytes([value[4], value[5], value[6], value[7]]);
    if xor {
        port ^= (MAGIC_COOKIE >> 16) as u16;
        ip ^= MAGIC_COOKIE;
    }
    Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port))
}

/// The address `server` sees `socket`'s datagrams come from: up to `tries` requests, 300 ms
/// apart; `None` if no answer came.
pub fn mapped_udp(socket: &UdpSocket, server: SocketAddr, tries: usize) -> Option<SocketAddr> {
    let (msg, id) = request();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 1500];
    for _ in 0..tries {
        socket.send_to(&msg, server).ok()?;
        // Up to 8 unrelated datagrams per try; the read timeout bounds each wait.
        for _ in 0..8 {
            match socket.recv_from(&mut buf) {
                Ok((n, from)) if from == server => {
                    if let Some(addr) = parse_response(&buf[..n], &id) {
                        return Some(addr);
                    }
                }
                Ok(_) => continue,
                Err(_) => break,
            }
        }
    }
    None
}

/// The address `stream`'s server sees it connect from (STUN over TCP, RFC 8489 §6.2.2: the
/// messages are sent back to back, no extra framing), answered within `timeout`.
pub fn mapped_tcp(stream: &mut TcpStream, timeout: Duration) -> std::io::Result<SocketAddr> {
    let (msg, id) = request();
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(&msg)?;
    let mut header = [0u8; 20];
    stream.read_exact(&mut header)?;
    let len = u16::from_be_bytes([header[2], header[3]]) as usize;
    let mut full = header.to_vec();
    full.resize(20 + len, 0);
    stream.read_exact(&mut full[20..])?;
    parse_response(&full, &id).ok_or_else(|| std::io::Error::other("not a Binding success"))
}
