//! The pieces of hyperdht 6.34.0 that a non-custodial `@hyperswarm/dht-relay` 0.4.3 client
//! (and our relay) need without running a DHT: the namespaces (`lib/constants.js`), the
//! `noisePayload` codec that peers embed in their Noise IK messages (`lib/messages.js`), the
//! values a finished IK handshake yields (`lib/noise-wrap.js`: holepunch secret, stream ids) and
//! the announce record a server signs (`annSignable` as `@hyperswarm/dht-relay` `lib/signee.js`
//! computes it).
//!
//! Decoding never panics: truncated input, unknown flag bits and huge counts are errors or
//! ignored, never a crash or an allocation larger than the input.

use std::net::{Ipv6Addr, SocketAddrV4, SocketAddrV6};

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};

use super::wire::{count, get_ipv4, get_ipv4_array, put_ipv4, put_ipv4_array};
use crate::hypercore::crypto::namespace;
use crate::hypercore::encoding::{DecodeError, Decoder, Encoder};
use crate::net::noise::keyed_hash32;

/// BLAKE2b with a 32-byte output (libsodium `crypto_generichash` with its default length).
type Blake2b256 = Blake2b<U32>;

/// hyperdht command numbers naming its namespaces (`COMMANDS` in `lib/constants.js` 6.34.0).
const CMD_PEER_HANDSHAKE: usize = 0;
const CMD_PEER_HOLEPUNCH: usize = 1;
const CMD_ANNOUNCE: usize = 4;
const CMD_UNANNOUNCE: usize = 5;
const CMD_MUTABLE_PUT: usize = 6;

/// A hyperdht namespace: `blake2b256(blake2b256("hyperswarm/dht") ‖ command)` (hypercore-crypto
/// `namespace('hyperswarm/dht', …)`), 32 bytes.
fn ns(command: usize) -> [u8; 32] {
    namespace(b"hyperswarm/dht", (command + 1) as u8)[command]
}

/// `NS.PEER_HANDSHAKE` (32 bytes): the prologue of the peers' Noise IK handshake
/// (`14d6d4b4…4e3a`).
pub fn ns_peer_handshake() -> [u8; 32] {
    ns(CMD_PEER_HANDSHAKE)
}

/// `NS.PEER_HOLEPUNCH` (32 bytes): hashed with the handshake hash into the holepunch secret.
pub fn ns_peer_holepunch() -> [u8; 32] {
    ns(CMD_PEER_HOLEPUNCH)
}

/// What a mutable value's signature covers: `NS.MUTABLE_PUT ‖ blake2b256(mutableSignable)`, 64
/// bytes (hyperdht `signMutable` / `verifyMutable`), for the value `value` at `seq`.
pub fn mutable_signable(seq: u64, value: &[u8]) -> [u8; 64] {
    let mut signable = Encoder::new();
    signable.uint(seq).buffer(value);
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&ns(CMD_MUTABLE_PUT));
    out[32..].copy_from_slice(&Blake2b256::digest(signable.as_slice()));
    out
}

/// `crypto_generichash(NS.PEER_HOLEPUNCH, key = handshakeHash)`: the 32-byte holepunch secret of
/// a finished IK handshake (hyperdht `NoiseWrap.final`, dht-relay `lib/handshake.js`).
pub fn holepunch_secret(handshake_hash: &[u8; 64]) -> [u8; 32] {
    keyed_hash32(handshake_hash, &[&ns_peer_holepunch()])
}

/// `blake2b256(public key)`: the DHT target a server's key is announced under (hypercore-crypto
/// `hash`, what a listening relayed client signs its announce records for).
pub fn server_target(public_key: &[u8; 32]) -> [u8; 32] {
    Blake2b256::digest(public_key).into()
}

/// The 64 bytes a server or announcer signs for an announce (`add`) or unannounce record:
/// `NS.ANNOUNCE|NS.UNANNOUNCE ‖ blake2b256(target ‖ peerId ‖ token ‖ peer)` with
/// `peer = publicKey:32 ‖ array(ipv4Address) relayAddresses` (hyperdht `annSignable`, computed
/// by `@hyperswarm/dht-relay` 0.4.3 `lib/signee.js` from a `signAnnounce`/`signUnannounce`).
/// `peer_id` is the DHT node id of the request (empty when the request had none).
pub fn announce_signable(
    add: bool,
    target: &[u8; 32],
    peer_id: &[u8],
    token: &[u8; 32],
    public_key: &[u8; 32],
    relay_addresses: &[SocketAddrV4],
) -> [u8; 64] {
    let mut peer = Encoder::new();
    peer.fixed32(public_key);
    put_ipv4_array(&mut peer, relay_addresses);
    let mut h = Blake2b256::new();
    h.update(target);
    h.update(peer_id);
    h.update(token);
    h.update(peer.as_slice());
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&ns(if add { CMD_ANNOUNCE } else { CMD_UNANNOUNCE }));
    out[32..].copy_from_slice(&h.finalize());
    out
}

/// `firewall` values of a [`NoisePayload`] (`FIREWALL` in `lib/constants.js`).
pub mod firewall {
    /// Unknown NAT behaviour.
    pub const UNKNOWN: u64 = 0;
    /// Reachable directly.
    pub const OPEN: u64 = 1;
    /// Consistent port mapping.
    pub const CONSISTENT: u64 = 2;
    /// Random port mapping.
    pub const RANDOM: u64 = 3;
}

/// `holepunch` of a [`NoisePayload`] (flag 1): `uint id`, `array(relayInfo)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolepunchInfo {
    /// The holepunch session id.
    pub id: u64,
    /// `(relayAddress, peerAddress)` pairs of DHT nodes that can relay the holepunch.
    pub relays: Vec<(SocketAddrV4, SocketAddrV4)>,
}

/// `udx` of a [`NoisePayload`] (flag 8): `uint version`, `uint features` (bit 1 = reusable
/// socket), `uint id`, `uint seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdxInfo {
    /// Always encoded as 1 by hyperdht 6.34.
    pub version: u64,
    /// Feature bit 1.
    pub reusable_socket: bool,
    /// The UDX stream id.
    pub id: u64,
    /// The UDX stream's first sequence number.
    pub seq: u64,
}

/// `relayThrough` of a [`NoisePayload`] (flag 32): `uint version`, `uint flags` (ignored),
/// `publicKey:32`, `token:32`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayThroughInfo {
    /// Always encoded as 1 by hyperdht 6.34.
    pub version: u64,
    /// The blind relay's public key.
    pub public_key: [u8; 32],
    /// The pairing token.
    pub token: [u8; 32],
}

/// The payload hyperdht 6.34.0 peers put in their Noise IK messages (`noisePayload` of
/// `lib/messages.js`): `uint version (1)`, `uint flags`, `uint error`, `uint firewall`, then the
/// optional fields in flag order: holepunch (1), addresses4 (2), addresses6 (4), udx (8),
/// secretStream (16), relayThrough (32), relayAddresses (64).
///
/// As in JS, a version other than 1 decodes to that version with every other field at its
/// default (the rest is not looked at), unknown flag bits are ignored and so are trailing bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoisePayload {
    /// Protocol version; 1 today.
    pub version: u64,
    /// An `ERROR` code (0 none, 1 aborted, 2 version mismatch, 3 try later).
    pub error: u64,
    /// One of the [`firewall`] values.
    pub firewall: u64,
    /// Holepunch session (flag 1).
    pub holepunch: Option<HolepunchInfo>,
    /// The peer's IPv4 addresses (flag 2, only encoded when non-empty).
    pub addresses4: Vec<SocketAddrV4>,
    /// The peer's IPv6 addresses (flag 4, only encoded when non-empty).
    pub addresses6: Vec<SocketAddrV6>,
    /// UDX stream parameters (flag 8).
    pub udx: Option<UdxInfo>,
    /// `Some(version)` when the peer speaks secret-stream (flag 16).
    pub secret_stream: Option<u64>,
    /// Blind-relay pairing (flag 32).
    pub relay_through: Option<RelayThroughInfo>,
    /// Relay addresses (flag 64; `Some(vec![])` is encoded, unlike empty address lists).
    pub relay_addresses: Option<Vec<SocketAddrV4>>,
}

impl Default for NoisePayload {
    /// Version 1, no error, firewall UNKNOWN, nothing optional: `01 00 00 00`.
    fn default() -> Self {
        NoisePayload {
            version: 1,
            error: 0,
            firewall: firewall::UNKNOWN,
            holepunch: None,
            addresses4: Vec::new(),
            addresses6: Vec::new(),
            udx: None,
            secret_stream: None,
            relay_through: None,
            relay_addresses: None,
        }
    }
}

impl NoisePayload {
    /// Encodes as hyperdht does (the version written is always 1, as JS).
    pub fn encode(&self) -> Vec<u8> {
        let mut flags = 0u64;
        let bits = [
            (self.holepunch.is_some(), 1),
            (!self.addresses4.is_empty(), 2),
            (!self.addresses6.is_empty(), 4),
            (self.udx.is_some(), 8),
            (self.secret_stream.is_some(), 16),
            (self.relay_through.is_some(), 32),
            (self.relay_addresses.is_some(), 64),
        ];
        for (set, bit) in bits {
            if set {
                flags |= bit;
            }
        }
        let mut e = Encoder::new();
        e.uint(1).uint(flags).uint(self.error).uint(self.firewall);
        if let Some(h) = &self.holepunch {
            e.uint(h.id);
            e.uint(h.relays.len() as u64);
            for (relay, peer) in &h.relays {
                put_ipv4(&mut e, relay);
                put_ipv4(&mut e, peer);
            }
        }
        if !self.addresses4.is_empty() {
            put_ipv4_array(&mut e, &self.addresses4);
        }
        if !self.addresses6.is_empty() {
            e.uint(self.addresses6.len() as u64);
            for a in &self.addresses6 {
                e.raw(&a.ip().octets()).uint16(a.port());
            }
        }
        if let Some(u) = &self.udx {
            e.uint(1)
                .uint(u64::from(u.reusable_socket))
                .uint(u.id)
                .uint(u.seq);
        }
        if self.secret_stream.is_some() {
            e.uint(1);
        }
        if let Some(r) = &self.relay_through {
            e.uint(1).uint(0).fixed32(&r.public_key).fixed32(&r.token);
        }
        if let Some(addrs) = &self.relay_addresses {
            put_ipv4_array(&mut e, addrs);
        }
        e.into_vec()
    }

    /// Decodes a payload (see the type's docs for what is lenient).
    ///
    /// Errors: [`DecodeError`] for truncated input, a field's count larger than what the rest
    /// of the input could hold, or a number that does not fit 64 bits.
    pub fn decode(bytes: &[u8]) -> Result<NoisePayload, DecodeError> {
        let mut d = Decoder::new(bytes);
        let version = d.uint()?;
        if version != 1 {
            return Ok(NoisePayload {
                version,
                ..NoisePayload::default()
            });
        }
        let flags = d.uint()?;
        let mut p = NoisePayload {
            version,
            error: d.uint()?,
            firewall: d.uint()?,
            ..NoisePayload::default()
        };
        if flags & 1 != 0 {
            let id = d.uint()?;
            let n = count(&mut d, 12)?;
            let mut relays = Vec::with_capacity(n);
            for _ in 0..n {
                relays.push((get_ipv4(&mut d)?, get_ipv4(&mut d)?));
            }
            p.holepunch = Some(HolepunchInfo { id, relays });
        }
        if flags & 2 != 0 {
            p.addresses4 = get_ipv4_array(&mut d)?;
        }
        if flags & 4 != 0 {
            let n = count(&mut d, 18)?;
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let ip: [u8; 16] = d.take(16)?.try_into().expect("16 bytes");
                let port = d.uint16()?;
                out.push(SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, 0));
            }
            p.addresses6 = out;
        }
        if flags & 8 != 0 {
            let version = d.uint()?;
            let features = d.uint()?;
            p.udx = Some(UdxInfo {
                version,
                reusable_socket: features & 1 != 0,
                id: d.uint()?,
                seq: d.uint()?,
            });
        }
        if flags & 16 != 0 {
            p.secret_stream = Some(d.uint()?);
        }
        if flags & 32 != 0 {
            let version = d.uint()?;
            let _flags = d.uint()?;
            p.relay_through = Some(RelayThroughInfo {
                version,
                public_key: d.fixed32()?,
                token: d.fixed32()?,
            });
        }
        if flags & 64 != 0 {
            p.relay_addresses = Some(get_ipv4_array(&mut d)?);
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Printed by `node tests/js/noise_ik_vectors.js` (hyperdht 6.34.0 `noisePayload`).
    const FULL: &str = "017f0302fd2c01010a00000101000a000002020002c0a80102ffff0102030450000100000000000000000000000000000001bb010100fe701101000501010009090909090909090909090909090909090909090909090909090909090909090a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a01080808083500";

    fn full() -> NoisePayload {
        NoisePayload {
            version: 1,
            error: 3,
            firewall: firewall::CONSISTENT,
            holepunch: Some(HolepunchInfo {
                id: 300,
                relays: vec![("10.0.0.1:1".parse().unwrap(), "10.0.0.2:2".parse().unwrap())],
            }),
            addresses4: vec![
                "192.168.1.2:65535".parse().unwrap(),
                "1.2.3.4:80".parse().unwrap(),
            ],
            addresses6: vec!["[::1]:443".parse().unwrap()],
            udx: Some(UdxInfo {
                version: 1,
                reusable_socket: false,
                id: 70000,
                seq: 5,
            }),
            secret_stream: Some(1),
            relay_through: Some(RelayThroughInfo {
                version: 1,
                public_key: [9; 32],
                token: [10; 32],
            }),
            relay_addresses: Some(vec!["8.8.8.8:53".parse().unwrap()]),
        }
    }

    #[test]
    fn noise_payload_matches_js_bytes_both_ways() {
        assert_eq!(hex::encode(full().encode()), FULL);
        assert_eq!(
            NoisePayload::decode(&hex::decode(FULL).unwrap()).unwrap(),
            full()
        );
        // The payload a relay hands out, and one from a hyperdht peer (JS vectors).
        assert_eq!(NoisePayload::default().encode(), [1, 0, 0, 0]);
        let p = NoisePayload::decode(&hex::decode("011a0001017f00000149c20101070001").unwrap())
            .unwrap();
        assert_eq!(p.firewall, firewall::OPEN);
        assert_eq!(p.addresses4, vec!["127.0.0.1:49737".parse().unwrap()]);
        assert!(p
            .udx
            .as_ref()
            .is_some_and(|u| u.reusable_socket && u.id == 7));
        assert_eq!(p.secret_stream, Some(1));
        // An empty relayAddresses list is still flagged (JS tests `m.relayAddresses`).
        let empty = NoisePayload {
            relay_addresses: Some(Vec::new()),
            ..NoisePayload::default()
        };
        assert_eq!(hex::encode(empty.encode()), "0140000000");
        assert_eq!(NoisePayload::decode(&empty.encode()).unwrap(), empty);
    }

    #[test]
    fn noise_payload_decoding_is_lenient_where_js_is_and_never_panics() {
        // Another version: the rest is not read.
        let p = NoisePayload::decode(&[2, 0xff, 0xff]).unwrap();
        assert_eq!((p.version, p.firewall), (2, 0));
        // Unknown flag bits and trailing bytes are ignored.
        let p = NoisePayload::decode(&[1, 0x80, 0, 1, 9, 9]).unwrap();
        assert_eq!(p.firewall, 1);
        // Truncations of a full payload are errors.
        let bytes = hex::decode(FULL).unwrap();
        for n in 0..bytes.len() {
            assert!(
                NoisePayload::decode(&bytes[..n]).is_err(),
                "prefix of {n} bytes"
            );
        }
        // A huge count is refused without allocating.
        assert!(NoisePayload::decode(&[1, 2, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0x7f]).is_err());
        assert!(NoisePayload::decode(&[1, 1, 0, 0, 5, 0xff, 0xff]).is_err());
        // Every short input decodes or errors.
        for a in 0..=255u8 {
            for b in [0u8, 1, 2, 4, 8, 16, 32, 64, 127, 0xfd, 0xff] {
                let _ = NoisePayload::decode(&[1, b, a, 0, a, a]);
                let _ = NoisePayload::decode(&[a, b]);
            }
        }
    }

    #[test]
    fn namespaces_and_derived_values_match_hyperdht() {
        assert_eq!(
            hex::encode(ns_peer_handshake()),
            "14d6d4b49214ab1033ed204976caa258bae9e1e8543b9ad1fd996a910b0c4e3a"
        );
        // From noise_ik_vectors.js: the IK handshake hash and its holepunch secret.
        let hash: [u8; 64] = hex::decode("ea6a17c46c9ab6290bd8db38474be3cf48c7289107e8799c4d80357871320dc4fa9d455adb313607967c35b712b17ededf9ce77010adb57896e3e36d599edc59").unwrap().try_into().unwrap();
        assert_eq!(
            hex::encode(holepunch_secret(&hash)),
            "fc980d250748cf21429fd323029ccfffc592b7ee15c917be4b2580ea670d5dee"
        );
        assert_ne!(ns(CMD_ANNOUNCE), ns(CMD_UNANNOUNCE));
    }
}
