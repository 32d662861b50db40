//! dht-rpc 6.27.0 datagrams (`lib/io.js` `_encodeRequest`, `_sendReply`, `Request.decode`,
//! `decodeReply`): the Kademlia requests and responses every Hyperswarm DHT node exchanges over
//! UDP, and the node id a node must prove (`lib/peer.js` `id`).
//!
//! A datagram starts with `(type << 4) | 3`: `0x03` a request, `0x13` a response. Then, all
//! little-endian compact-encoding:
//!
//! - request: `uint flags`, `u16 tid`, `ipv4 to`, `[fixed32 id]` (flag 1), `[fixed32 token]`
//!   (2), flag 4 = internal command, `uint command`, `[fixed32 target]` (8), `[buffer value]`
//!   (16);
//! - response: `uint flags`, `u16 tid`, `ipv4 to`, `[fixed32 id]` (1), `[fixed32 token]` (2),
//!   `[array(ipv4) closerNodes]` (4), `[uint error]` (8), `[buffer value]` (16).
//!
//! `to` is the address the sender sees the receiver at (how a node learns its public address).
//! As in JS, unknown flag bits and trailing bytes are ignored. Decoding never panics and never
//! allocates more than the input holds.

use std::net::SocketAddrV4;

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};

use super::wire::{bit, get_ipv4, get_ipv4_array, optional, put_ipv4, put_ipv4_array};
use crate::hypercore::encoding::{DecodeError, Decoder, Encoder};

/// The protocol version in the low 4 bits of byte 0.
pub const VERSION: u8 = 3;
/// Byte 0 of a request (`REQUEST_ID`).
pub const REQUEST_ID: u8 = VERSION;
/// Byte 0 of a response (`RESPONSE_ID`).
pub const RESPONSE_ID: u8 = (1 << 4) | VERSION;

/// dht-rpc's own ("internal") commands (`lib/commands.js`); others belong to the application
/// (hyperdht: [`super::messages::command`]).
pub mod command {
    /// Liveness check; empty reply.
    pub const PING: u64 = 0;
    /// "Can you reach my server socket?": value = the port (u16 LE) to answer to.
    pub const PING_NAT: u64 = 1;
    /// Closest nodes to `target`.
    pub const FIND_NODE: u64 = 2;
    /// value = an ipv4 address of a node believed down; the receiver re-pings it.
    pub const DOWN_HINT: u64 = 3;
    /// A ping answered after value = u32 LE milliseconds (at most 10 s).
    pub const DELAYED_PING: u64 = 4;
}

/// `error` values of a response (`lib/errors.js`).
pub mod error {
    /// The receiver does not serve this command.
    pub const UNKNOWN_COMMAND: u64 = 1;
    /// The request's token is not one the receiver issued to this address.
    pub const INVALID_TOKEN: u64 = 2;
}

/// A node id: BLAKE2b-256 of the node's `ipv4` encoding (4 address bytes + u16 LE port), 32
/// bytes. A response or request's `id` counts only if it equals this for the datagram's source
/// (`validateId`): ids cannot be chosen, so neither can a place in the table.
pub fn node_id(addr: &SocketAddrV4) -> [u8; 32] {
    let mut e = Encoder::with_capacity(6);
    put_ipv4(&mut e, addr);
    Blake2b::<U32>::digest(e.as_slice()).into()
}

/// A request datagram (type `0x03`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Transaction id: the response carries the same (matched by tid alone, since relayed
    /// replies come from another node).
    pub tid: u16,
    /// The receiver's address as the sender sees it.
    pub to: SocketAddrV4,
    /// The sender's node id (only persistent nodes send one, from their server socket).
    pub id: Option<[u8; 32]>,
    /// A token the receiver gave the sender earlier: needed by writes (announce, put).
    pub token: Option<[u8; 32]>,
    /// A dht-rpc command ([`command`]) rather than an application one.
    pub internal: bool,
    /// The command number.
    pub command: u64,
    /// The key the request is about (FIND_NODE, hyperdht lookups).
    pub target: Option<[u8; 32]>,
    /// The command's argument.
    pub value: Option<Vec<u8>>,
}

/// A response datagram (type `0x13`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The tid of the request answered.
    pub tid: u16,
    /// The requester's address as the responder sees it (a sample of the requester's NAT).
    pub to: SocketAddrV4,
    /// The responder's node id (persistent nodes only).
    pub id: Option<[u8; 32]>,
    /// A token for the requester's address, to be echoed in a later write.
    pub token: Option<[u8; 32]>,
    /// Nodes closer to the request's target (encoded only when not empty, as JS).
    pub closer_nodes: Vec<SocketAddrV4>,
    /// 0, or an [`error`] code (encoded only when not 0).
    pub error: u64,
    /// The command's result.
    pub value: Option<Vec<u8>>,
}

/// One dht-rpc datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

/// Why a datagram is not a dht-rpc message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcDecodeError {
    /// Shorter than 2 bytes (JS ignores these: on a shared socket they are holepunch probes).
    #[error("datagram of {0} bytes is too short for dht-rpc")]
    TooShort(usize),
    /// Byte 0 is neither `0x03` nor `0x13` (another protocol, or another version).
    #[error("byte 0 is {0:#04x}, not a dht-rpc v3 request (0x03) or response (0x13)")]
    NotRpc(u8),
    /// The fields do not decode.
    #[error("malformed dht-rpc message: {0}")]
    Malformed(#[from] DecodeError),
}

impl Message {
    /// Decodes one datagram.
    ///
    /// Errors: [`RpcDecodeError`]; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Message, RpcDecodeError> {
        if bytes.len() < 2 {
            return Err(RpcDecodeError::TooShort(bytes.len()));
        }
        let mut d = Decoder::new(&bytes[1..]);
        match bytes[0] {
            REQUEST_ID => Ok(Message::Request(Request::decode_fields(&mut d)?)),
            RESPONSE_ID => Ok(Message::Response(Response::decode_fields(&mut d)?)),
            other => Err(RpcDecodeError::NotRpc(other)),
        }
    }

    /// The datagram's bytes, as dht-rpc encodes it.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Message::Request(r) => r.encode(),
            Message::Response(r) => r.encode(),
        }
    }

    /// The transaction id.
    pub fn tid(&self) -> u16 {
        match self {
            Message::Request(r) => r.tid,
            Message::Response(r) => r.tid,
        }
    }
}

/// The header every message starts with after byte 0: flags, tid, to, id, token.
struct Head {
    flags: u64,
    tid: u16,
    to: SocketAddrV4,
    id: Option<[u8; 32]>,
    token: Option<[u8; 32]>,
}

impl Head {
    fn decode(d: &mut Decoder<'_>) -> Result<Head, DecodeError> {
        let flags = d.uint()?;
        let tid = d.uint16()?;
        let to = get_ipv4(d)?;
        let id = optional(d, flags & 1 != 0, Decoder::fixed32)?;
        let token = optional(d, flags & 2 != 0, Decoder::fixed32)?;
        Ok(Head {
            flags,
            tid,
            to,
            id,
            token,
        })
    }
}

/// Writes byte 0, the flags byte (JS writes it raw; every flag fits), tid, to, id and token.
fn put_head(
    e: &mut Encoder,
    type_id: u8,
    flags: u8,
    tid: u16,
    to: &SocketAddrV4,
    id: &Option<[u8; 32]>,
    token: &Option<[u8; 32]>,
) {
    e.uint8(type_id).uint8(flags).uint16(tid);
    put_ipv4(e, to);
    if let Some(id) = id {
        e.fixed32(id);
    }
    if let Some(token) = token {
        e.fixed32(token);
    }
}

impl Request {
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Request, DecodeError> {
        let head = Head::decode(d)?;
        let command = d.uint()?;
        let target = optional(d, head.flags & 8 != 0, Decoder::fixed32)?;
        let value = optional(d, head.flags & 16 != 0, |d| d.buffer().map(<[u8]>::to_vec))?;
        Ok(Request {
            tid: head.tid,
            to: head.to,
            id: head.id,
            token: head.token,
            internal: head.flags & 4 != 0,
            command,
            target,
            value,
        })
    }

    /// The datagram's bytes (`_encodeRequest`).
    pub fn encode(&self) -> Vec<u8> {
        // Every flag fits the one byte JS writes.
        let flags = (bit(self.id.is_some(), 1)
            | bit(self.token.is_some(), 2)
            | bit(self.internal, 4)
            | bit(self.target.is_some(), 8)
            | bit(self.value.is_some(), 16)) as u8;
        let mut e = Encoder::with_capacity(12 + 96 + self.value.as_ref().map_or(0, Vec::len));
        put_head(
            &mut e,
            REQUEST_ID,
            flags,
            self.tid,
            &self.to,
            &self.id,
            &self.token,
        );
        e.uint(self.command);
        if let Some(target) = &self.target {
            e.fixed32(target);
        }
        if let Some(value) = &self.value {
            e.buffer(value);
        }
        e.into_vec()
    }
}

impl Response {
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Response, DecodeError> {
        let head = Head::decode(d)?;
        let closer_nodes = optional(d, head.flags & 4 != 0, get_ipv4_array)?.unwrap_or_default();
        let error = optional(d, head.flags & 8 != 0, Decoder::uint)?.unwrap_or(0);
        let value = optional(d, head.flags & 16 != 0, |d| d.buffer().map(<[u8]>::to_vec))?;
        Ok(Response {
            tid: head.tid,
            to: head.to,
            id: head.id,
            token: head.token,
            closer_nodes,
            error,
            value,
        })
    }

    /// The datagram's bytes (`_sendReply`).
    pub fn encode(&self) -> Vec<u8> {
        let flags = (bit(self.id.is_some(), 1)
            | bit(self.token.is_some(), 2)
            | bit(!self.closer_nodes.is_empty(), 4)
            | bit(self.error > 0, 8)
            | bit(self.value.is_some(), 16)) as u8;
        let extra = self.closer_nodes.len() * 6 + self.value.as_ref().map_or(0, Vec::len);
        let mut e = Encoder::with_capacity(12 + 96 + extra);
        put_head(
            &mut e,
            RESPONSE_ID,
            flags,
            self.tid,
            &self.to,
            &self.id,
            &self.token,
        );
        if !self.closer_nodes.is_empty() {
            put_ipv4_array(&mut e, &self.closer_nodes);
        }
        if self.error > 0 {
            e.uint(self.error);
        }
        if let Some(value) = &self.value {
            e.buffer(value);
        }
        e.into_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// dht-rpc's PING to testnet node 1 (HYPERDHT.md §1.2, captured): internal, tid 0x1234, to
    /// 127.0.0.1:49738, command 0.
    const PING: &str = "030434127f0000014ac200";

    #[test]
    fn a_captured_ping_decodes_and_encodes_back() {
        let bytes = hex::decode(PING).unwrap();
        let Message::Request(r) = Message::decode(&bytes).unwrap() else {
            panic!("not a request")
        };
        assert_eq!(r.tid, 0x1234);
        assert_eq!(r.to, "127.0.0.1:49738".parse().unwrap());
        assert!(r.internal && r.command == command::PING);
        assert_eq!(
            (r.id, r.token, r.target, &r.value),
            (None, None, None, &None)
        );
        assert_eq!(Message::Request(r).encode(), bytes);
    }

    #[test]
    fn the_node_id_is_the_hash_of_the_address() {
        // dht-rpc `peer.id('127.0.0.1', 49738)`: blake2b-256 of 7f000001 4ac2.
        let id = node_id(&"127.0.0.1:49738".parse().unwrap());
        let expected: [u8; 32] = Blake2b::<U32>::digest([127, 0, 0, 1, 0x4a, 0xc2]).into();
        assert_eq!(id, expected);
        assert_ne!(id, node_id(&"127.0.0.1:49739".parse().unwrap()));
    }

    #[test]
    fn every_field_of_a_response_round_trips() {
        let r = Response {
            tid: 65535,
            to: "10.0.0.1:1".parse().unwrap(),
            id: Some([1; 32]),
            token: Some([2; 32]),
            closer_nodes: vec![
                "1.2.3.4:5".parse().unwrap(),
                "6.7.8.9:65535".parse().unwrap(),
            ],
            error: 300,
            value: Some(vec![9; 300]),
        };
        let bytes = r.encode();
        assert_eq!(bytes[0], RESPONSE_ID);
        assert_eq!(bytes[1], 1 | 2 | 4 | 8 | 16);
        assert_eq!(Message::decode(&bytes).unwrap(), Message::Response(r));
    }

    #[test]
    fn short_foreign_and_truncated_datagrams_are_errors() {
        assert_eq!(Message::decode(&[]), Err(RpcDecodeError::TooShort(0)));
        assert_eq!(Message::decode(&[0]), Err(RpcDecodeError::TooShort(1)));
        // A UDX packet (magic 0xff) on the shared socket.
        assert_eq!(
            Message::decode(&[0xff, 1, 0, 0]),
            Err(RpcDecodeError::NotRpc(0xff))
        );
        let bytes = hex::decode(PING).unwrap();
        for cut in 2..bytes.len() {
            assert!(
                matches!(
                    Message::decode(&bytes[..cut]),
                    Err(RpcDecodeError::Malformed(_))
                ),
                "{cut}"
            );
        }
        // A closer-nodes count far beyond the input is refused before allocating.
        let mut huge = hex::decode("130434127f0000014ac2").unwrap();
        huge[1] = 4;
        huge.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0x0f]);
        assert!(Message::decode(&huge).is_err());
    }
}
