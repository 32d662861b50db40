//! hyperdht 6.34.0 messages (`lib/messages.js`): what travels in the `value` of its dht-rpc
//! requests and responses (the Noise payload is [`super::NoisePayload`]). Each type implements
//! [`CompactEncoding`] field for field as its JS codec, so `to_bytes` / `from_bytes` are
//! `c.encode` / `c.decode`; `tests/dht_codec_js.rs` checks both against bytes the JS package
//! produced.
//!
//! As in JS, unknown flag bits and trailing bytes are ignored and an empty `buffer` is the same as
//! an absent one. Decoding never panics and never allocates more than the input holds.

use std::net::SocketAddrV4;

use super::wire::{bit, count, get_ipv4, get_ipv4_array, optional, put_ipv4, put_ipv4_array};
use crate::hypercore::encoding::{CompactEncoding, DecodeError, Decoder, Encoder};

/// hyperdht's application commands (`COMMANDS` in `lib/constants.js`), sent as non-internal
/// dht-rpc commands.
pub mod command {
    /// Route a Noise handshake to the server of a key ([`super::Handshake`]).
    pub const PEER_HANDSHAKE: u64 = 0;
    /// Route a holepunch message ([`super::Holepunch`]).
    pub const PEER_HOLEPUNCH: u64 = 1;
    /// The record of a server that announced its own key (target = hash of the key).
    pub const FIND_PEER: u64 = 2;
    /// Records announced under a topic ([`super::LookupRawReply`]).
    pub const LOOKUP: u64 = 3;
    /// Store a signed record ([`super::Announce`]).
    pub const ANNOUNCE: u64 = 4;
    /// Remove one.
    pub const UNANNOUNCE: u64 = 5;
    /// Store a signed mutable value ([`super::MutablePutRequest`]).
    pub const MUTABLE_PUT: u64 = 6;
    /// Read one ([`super::MutableGetResponse`]).
    pub const MUTABLE_GET: u64 = 7;
    /// Store a value under its hash.
    pub const IMMUTABLE_PUT: u64 = 8;
    /// Read one.
    pub const IMMUTABLE_GET: u64 = 9;
    /// Plugin request.
    pub const PLUGIN: u64 = 10;
}

/// How a [`Handshake`] or [`Holepunch`] is travelling (`lib/router.js`).
pub mod mode {
    /// From the client to the node it asked.
    pub const FROM_CLIENT: u64 = 0;
    /// From the server, back toward the client.
    pub const FROM_SERVER: u64 = 1;
    /// Forwarded by the relay node the server announced to.
    pub const FROM_RELAY: u64 = 2;
    /// Forwarded by a second relay.
    pub const FROM_SECOND_RELAY: u64 = 3;
    /// The answer delivered to the client.
    pub const REPLY: u64 = 4;
}

/// hyperdht `ERROR` codes carried in payloads (`lib/constants.js`).
pub mod error {
    /// No error.
    pub const NONE: u64 = 0;
    /// The other side gave up.
    pub const ABORTED: u64 = 1;
    /// The payload's version is not 1.
    pub const VERSION_MISMATCH: u64 = 2;
    /// A randomized holepunch is already running: try again later.
    pub const TRY_LATER: u64 = 3;
    /// A mutable put reused a sequence number with another value.
    pub const SEQ_REUSED: u64 = 16;
    /// A mutable put's sequence number is below the stored one.
    pub const SEQ_TOO_LOW: u64 = 17;
}

/// `handshake`: a Noise IK message on its way between client and server through DHT nodes:
/// `uint flags (1 peerAddress, 2 relayAddress)`, `uint mode`, `buffer noise`, then the addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// A [`mode`] value.
    pub mode: u64,
    /// The Noise message (its payload is a [`super::NoisePayload`]).
    pub noise: Vec<u8>,
    /// The client's or server's address, as a relay saw it.
    pub peer_address: Option<SocketAddrV4>,
    /// The first relay's address (mode FROM_SECOND_RELAY).
    pub relay_address: Option<SocketAddrV4>,
}

impl CompactEncoding for Handshake {
    fn encode(&self, e: &mut Encoder) {
        let flags = bit(self.peer_address.is_some(), 1) | bit(self.relay_address.is_some(), 2);
        e.uint(flags).uint(self.mode).buffer(&self.noise);
        put_optional_ipv4(e, &self.peer_address);
        put_optional_ipv4(e, &self.relay_address);
    }

    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let flags = d.uint()?;
        Ok(Handshake {
            mode: d.uint()?,
            noise: d.buffer()?.to_vec(),
            peer_address: optional(d, flags & 1 != 0, get_ipv4)?,
            relay_address: optional(d, flags & 2 != 0, get_ipv4)?,
        })
    }
}

/// `holepunch`: a sealed [`HolepunchPayload`] on its way between client and server:
/// `uint flags (1 peerAddress)`, `uint mode`, `uint id`, `buffer payload`, `[ipv4 peerAddress]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holepunch {
    /// A [`mode`] value.
    pub mode: u64,
    /// The server's holepunch session (from its Noise payload).
    pub id: u64,
    /// `nonce(24) ‖ secretbox(holepunchPayload)` under the holepunch secret.
    pub payload: Vec<u8>,
    /// The client's address, as the relay saw it.
    pub peer_address: Option<SocketAddrV4>,
}

impl CompactEncoding for Holepunch {
    fn encode(&self, e: &mut Encoder) {
        e.uint(bit(self.peer_address.is_some(), 1))
            .uint(self.mode)
            .uint(self.id)
            .buffer(&self.payload);
        put_optional_ipv4(e, &self.peer_address);
    }

    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let flags = d.uint()?;
        Ok(Holepunch {
            mode: d.uint()?,
            id: d.uint()?,
            payload: d.buffer()?.to_vec(),
            peer_address: optional(d, flags & 1 != 0, get_ipv4)?,
        })
    }
}

/// `holepunchPayload`, the plaintext of [`Holepunch::payload`]: `uint flags (1 connected,
/// 2 punching, 4 addresses, 8 remoteAddress, 16 token, 32 remoteToken)`, `uint error`,
/// `uint firewall`, `uint round`, then the optional fields in flag order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HolepunchPayload {
    /// An [`error`] code.
    pub error: u64,
    /// The sender's NAT ([`super::firewall`]).
    pub firewall: u64,
    /// The probe round.
    pub round: u64,
    /// The sender already has a connection.
    pub connected: bool,
    /// The sender is punching now.
    pub punching: bool,
    /// The sender's public addresses as the DHT sees them.
    pub addresses: Option<Vec<SocketAddrV4>>,
    /// The other side's address as the sender sees it.
    pub remote_address: Option<SocketAddrV4>,
    /// The sender's token for [`Self::remote_address`] (echoed back, it proves that address).
    pub token: Option<[u8; 32]>,
    /// The other side's token, echoed.
    pub remote_token: Option<[u8; 32]>,
}

impl CompactEncoding for HolepunchPayload {
    fn encode(&self, e: &mut Encoder) {
        let flags = bit(self.connected, 1)
            | bit(self.punching, 2)
            | bit(self.addresses.is_some(), 4)
            | bit(self.remote_address.is_some(), 8)
            | bit(self.token.is_some(), 16)
            | bit(self.remote_token.is_some(), 32);
        e.uint(flags)
            .uint(self.error)
            .uint(self.firewall)
            .uint(self.round);
        if let Some(a) = &self.addresses {
            put_ipv4_array(e, a);
        }
        put_optional_ipv4(e, &self.remote_address);
        if let Some(t) = &self.token {
            e.fixed32(t);
        }
        if let Some(t) = &self.remote_token {
            e.fixed32(t);
        }
    }

    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let flags = d.uint()?;
        Ok(HolepunchPayload {
            error: d.uint()?,
            firewall: d.uint()?,
            round: d.uint()?,
            connected: flags & 1 != 0,
            punching: flags & 2 != 0,
            addresses: optional(d, flags & 4 != 0, get_ipv4_array)?,
            remote_address: optional(d, flags & 8 != 0, get_ipv4)?,
            token: optional(d, flags & 16 != 0, Decoder::fixed32)?,
            remote_token: optional(d, flags & 32 != 0, Decoder::fixed32)?,
        })
    }
}

/// `peer`: a record of who serves a key or topic: `fixed32 publicKey`,
/// `array(ipv4) relayAddresses` (the DHT nodes that relay handshakes to it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The peer's ed25519 public key.
    pub public_key: [u8; 32],
    /// Where to send handshakes for it (at most 3 are kept by a storing node).
    pub relay_addresses: Vec<SocketAddrV4>,
}

impl CompactEncoding for Peer {
    fn encode(&self, e: &mut Encoder) {
        e.fixed32(&self.public_key);
        put_ipv4_array(e, &self.relay_addresses);
    }

    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Peer {
            public_key: d.fixed32()?,
            relay_addresses: get_ipv4_array(d)?,
        })
    }
}

/// `lookupRawReply`: the answer to LOOKUP: `array(peer) peers`, then `uint bump` if any bytes
/// are left (absent = 0).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LookupRawReply {
    /// The records stored under the topic.
    pub peers: Vec<Peer>,
    /// The topic's bump counter.
    pub bump: u64,
}

impl CompactEncoding for LookupRawReply {
    fn encode(&self, e: &mut Encoder) {
        e.uint(self.peers.len() as u64);
        for p in &self.peers {
            p.encode(e);
        }
        e.uint(self.bump);
    }

    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        // A peer takes at least 33 bytes (key + an empty address list).
        let n = count(d, 33)?;
        let mut peers = Vec::with_capacity(n);
        for _ in 0..n {
            peers.push(Peer::decode(d)?);
        }
        let bump = if d.is_empty() { 0 } else { d.uint()? };
        Ok(LookupRawReply { peers, bump })
    }
}

/// `announce`: the value of ANNOUNCE and UNANNOUNCE: `uint flags (1 peer, 2 refresh,
/// 4 signature, 8 bump)`, then the fields in flag order; `bump` is encoded only when not 0.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Announce {
    /// The record.
    pub peer: Option<Peer>,
    /// A refresh token, to renew an earlier announce without re-signing.
    pub refresh: Option<[u8; 32]>,
    /// Ed25519 signature over the announce signable ([`super::announce_signable`]).
    pub signature: Option<[u8; 64]>,
    /// The topic's bump counter (milliseconds).
    pub bump: u64,
}

impl CompactEncoding for Announce {
    fn encode(&self, e: &mut Encoder) {
        let flags = bit(self.peer.is_some(), 1)
            | bit(self.refresh.is_some(), 2)
            | bit(self.signature.is_some(), 4)
            | bit(self.bump != 0, 8);
        e.uint(flags);
        if let Some(p) = &self.peer {
            p.encode(e);
        }
        if let Some(r) = &self.refresh {
            e.fixed32(r);
        }
        if let Some(s) = &self.signature {
            e.fixed64(s);
        }
        if self.bump != 0 {
            e.uint(self.bump);
        }
    }

    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let flags = d.uint()?;
        Ok(Announce {
            peer: optional(d, flags & 1 != 0, Peer::decode)?,
            refresh: optional(d, flags & 2 != 0, Decoder::fixed32)?,
            signature: optional(d, flags & 4 != 0, Decoder::fixed64)?,
            bump: optional(d, flags & 8 != 0, Decoder::uint)?.unwrap_or(0),
        })
    }
}

/// `mutableSignable`: what a mutable value's signature covers (hashed, after `NS.MUTABLE_PUT`):
/// `uint seq`, `buffer value`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MutableSignable {
    /// The value's sequence number.
    pub seq: u64,
    /// The value.
    pub value: Vec<u8>,
}

impl CompactEncoding for MutableSignable {
    fn encode(&self, e: &mut Encoder) {
        e.uint(self.seq).buffer(&self.value);
    }

    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(MutableSignable {
            seq: d.uint()?,
            value: d.buffer()?.to_vec(),
        })
    }
}

/// `mutablePutRequest`: the value of MUTABLE_PUT: `fixed32 publicKey`, `uint seq`,
/// `buffer value`, `fixed64 signature`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutablePutRequest {
    /// The signer; the target is the hash of this key.
    pub public_key: [u8; 32],
    /// The value's sequence number.
    pub seq: u64,
    /// The value.
    pub value: Vec<u8>,
    /// Ed25519 signature over `NS.MUTABLE_PUT ‖ hash(mutableSignable)`.
    pub signature: [u8; 64],
}

impl CompactEncoding for MutablePutRequest {
    fn encode(&self, e: &mut Encoder) {
        e.fixed32(&self.public_key)
            .uint(self.seq)
            .buffer(&self.value)
            .fixed64(&self.signature);
    }

    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(MutablePutRequest {
            public_key: d.fixed32()?,
            seq: d.uint()?,
            value: d.buffer()?.to_vec(),
            signature: d.fixed64()?,
        })
    }
}

/// `mutableGetResponse`: the answer to MUTABLE_GET: `uint seq`, `buffer value`,
/// `fixed64 signature`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutableGetResponse {
    /// The stored value's sequence number.
    pub seq: u64,
    /// The stored value.
    pub value: Vec<u8>,
    /// Its signature.
    pub signature: [u8; 64],
}

impl CompactEncoding for MutableGetResponse {
    fn encode(&self, e: &mut Encoder) {
        e.uint(self.seq)
            .buffer(&self.value)
            .fixed64(&self.signature);
    }

    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(MutableGetResponse {
            seq: d.uint()?,
            value: d.buffer()?.to_vec(),
            signature: d.fixed64()?,
        })
    }
}

fn put_optional_ipv4(e: &mut Encoder, a: &Option<SocketAddrV4>) {
    if let Some(a) = a {
        put_ipv4(e, a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lookup_reply_without_bump_reads_as_zero() {
        let peer = Peer {
            public_key: [7; 32],
            relay_addresses: vec!["1.2.3.4:5".parse().unwrap()],
        };
        let mut bytes = LookupRawReply {
            peers: vec![peer.clone()],
            bump: 0,
        }
        .to_bytes();
        assert_eq!(bytes.pop(), Some(0), "bump 0 is one byte");
        let reply = LookupRawReply::from_bytes(&bytes).unwrap();
        assert_eq!((reply.peers, reply.bump), (vec![peer], 0));
    }

    #[test]
    fn truncated_messages_are_errors_not_panics() {
        let full = Announce {
            peer: Some(Peer {
                public_key: [1; 32],
                relay_addresses: vec!["9.9.9.9:9".parse().unwrap()],
            }),
            refresh: Some([2; 32]),
            signature: Some([3; 64]),
            bump: 1 << 40,
        }
        .to_bytes();
        assert_eq!(
            Announce::from_bytes(&full).unwrap().to_bytes(),
            full,
            "round trip"
        );
        for cut in 0..full.len() {
            assert!(Announce::from_bytes(&full[..cut]).is_err(), "{cut}");
        }
    }

    #[test]
    fn hostile_counts_do_not_allocate() {
        // 2^32 peers announced in 5 bytes.
        let bytes = [0xfe, 0xff, 0xff, 0xff, 0xff];
        assert!(LookupRawReply::from_bytes(&bytes).is_err());
        let mut payload = vec![4, 0, 0, 0];
        payload.extend_from_slice(&bytes);
        assert!(HolepunchPayload::from_bytes(&payload).is_err());
    }
}
