//! The 28 relay messages of `@hyperswarm/dht-relay` 0.4.3 (`lib/messages.js`, `lib/codecs.js`),
//! byte-compatible with the JS encodings (compact-encoding 2.19.2, compact-encoding-net 1.x).
//!
//! Spec: `shared/reference/dht-relay/PROTOCOL.md` §1 (primitives) and §3 (layouts). Conventions:
//! - ids and aliases are fixed-width `uint32` LE (JS codec `id`), never varints;
//! - a "flags" byte comes first; JS reserves it and patches it after writing the body, which gives
//!   the same bytes as computing the flags up front (what we do);
//! - relay `buffer` decodes a zero length as an empty buffer, `peerId` as `None`;
//! - `ipv4Address` is 4 address bytes (network order) + `uint16` LE port.
//!
//! Modes that JS expresses as a flag plus fields that are present or `null` are Rust enums or
//! `Option`s here, so a value that JS could not encode can't be built (e.g. custodial without a
//! secret key). Decoding is as lenient as JS: unknown flag bits and trailing bytes are ignored,
//! invalid UTF-8 in strings becomes U+FFFD. Encoding is canonical, so `encode(decode(b)) == b` for
//! every frame JS writes (checked against real captures in `tests/relay_captures.rs`).

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::hypercore::encoding::{CompactEncoding, DecodeError, Decoder, Encoder, MAX_ARRAY_LEN};

use super::RelayCodecError;

/// An ed25519 public key, 32 bytes (JS codec `publicKey` = `fixed32`).
pub type PublicKey = [u8; 32];

/// A libsodium ed25519 secret key, 64 bytes = 32-byte seed ‖ 32-byte public key (JS codec
/// `secretKey` = `fixed64`). Sent by custodial clients; `Debug` prints no key bytes so messages
/// can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(pub [u8; 64]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Flag bit 1 of `handshake`, `connect`, `connection`, `listen`, `open`, `announce`: custodial.
const FLAG_CUSTODIAL: u8 = 1;
/// Flag bit 1 of `destroy`: the alias is the sender's own (paired) alias.
const FLAG_PAIRED: u8 = 1;
/// Flag bit 2 of `destroy`: an error string follows.
const FLAG_ERROR: u8 = 2;
/// Flag bit 1 of `noiseSend` / `noiseReceive` / `noiseReply`: the relayed side is the initiator.
const FLAG_INITIATOR: u8 = 1;
/// Flag bit 2 of `noiseReply`: the handshake is complete.
const FLAG_COMPLETE: u8 = 2;

/// The relay message types: the protomux message type on the relay channel (PROTOCOL.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// 0, C→R: session start, the client's key pair.
    Handshake = 0,
    /// 1: heartbeat request (R→C every 15 s).
    Ping = 1,
    /// 2: heartbeat answer.
    Pong = 2,
    /// 3, C→R: connect to a remote peer.
    Connect = 3,
    /// 4, R→C: a relayed server got a connection.
    Connection = 4,
    /// 5, C→R: the client's alias for a `connection`.
    Connected = 5,
    /// 6, R→C: firewall question for a custodial server.
    Incoming = 6,
    /// 7, C→R: firewall answer "reject".
    Deny = 7,
    /// 8, C→R: firewall answer "allow".
    Accept = 8,
    /// 9, both: tear a stream down.
    Destroy = 9,
    /// 10, C→R: start a server.
    Listen = 10,
    /// 11, R→C: the server is listening.
    Listening = 11,
    /// 12, C→R: stop a server.
    Close = 12,
    /// 13, R→C: the server stopped.
    Closed = 13,
    /// 14, R→C: a client connect succeeded.
    Open = 14,
    /// 15, both: end of a stream's data.
    End = 15,
    /// 16, both: stream data.
    Data = 16,
    /// 17, R→C: one query reply.
    Result = 17,
    /// 18, R→C: a query is done.
    Finished = 18,
    /// 19, C→R: look a topic up.
    Lookup = 19,
    /// 20, C→R: announce on a topic.
    Announce = 20,
    /// 21, C→R: unannounce from a topic.
    Unannounce = 21,
    /// 22, R→C: please sign an announce.
    SignAnnounce = 22,
    /// 23, R→C: please sign an unannounce.
    SignUnannounce = 23,
    /// 24, C→R: the requested signature.
    Signature = 24,
    /// 25, R→C: non-custodial Noise: encrypt this payload.
    NoiseSend = 25,
    /// 26, R→C: non-custodial Noise: decrypt this message.
    NoiseReceive = 26,
    /// 27, C→R: non-custodial Noise: the result.
    NoiseReply = 27,
}

impl MessageType {
    /// Every type, in wire order (index = type number).
    pub const ALL: [MessageType; 28] = [
        Self::Handshake,
        Self::Ping,
        Self::Pong,
        Self::Connect,
        Self::Connection,
        Self::Connected,
        Self::Incoming,
        Self::Deny,
        Self::Accept,
        Self::Destroy,
        Self::Listen,
        Self::Listening,
        Self::Close,
        Self::Closed,
        Self::Open,
        Self::End,
        Self::Data,
        Self::Result,
        Self::Finished,
        Self::Lookup,
        Self::Announce,
        Self::Unannounce,
        Self::SignAnnounce,
        Self::SignUnannounce,
        Self::Signature,
        Self::NoiseSend,
        Self::NoiseReceive,
        Self::NoiseReply,
    ];

    /// The type for a wire number, `None` for numbers >= 28 (which JS protomux ignores).
    pub fn from_u64(n: u64) -> Option<Self> {
        usize::try_from(n)
            .ok()
            .and_then(|i| Self::ALL.get(i))
            .copied()
    }

    /// The wire number (0..=27).
    pub fn as_u64(self) -> u64 {
        self as u64
    }

    /// The JS name (`lib/messages.js` export), e.g. `"noiseReply"`, for logs and errors.
    pub fn name(self) -> &'static str {
        const NAMES: [&str; 28] = [
            "handshake",
            "ping",
            "pong",
            "connect",
            "connection",
            "connected",
            "incoming",
            "deny",
            "accept",
            "destroy",
            "listen",
            "listening",
            "close",
            "closed",
            "open",
            "end",
            "data",
            "result",
            "finished",
            "lookup",
            "announce",
            "unannounce",
            "signAnnounce",
            "signUnannounce",
            "signature",
            "noiseSend",
            "noiseReceive",
            "noiseReply",
        ];
        NAMES[self as usize]
    }
}

// ---------------------------------------------------------------------------------------------
// Field helpers (JS `lib/codecs.js`)

/// compact-encoding-net `ipv4Address`: 4 bytes in network order, then the port as `uint16` LE.
fn put_ipv4(enc: &mut Encoder, addr: &SocketAddrV4) {
    enc.raw(&addr.ip().octets()).uint16(addr.port());
}

fn get_ipv4(dec: &mut Decoder<'_>) -> Result<SocketAddrV4, DecodeError> {
    let ip: [u8; 4] = dec
        .take(4)?
        .try_into()
        .map_err(|_| DecodeError::Invalid("ipv4 length".into()))?;
    Ok(SocketAddrV4::new(Ipv4Addr::from(ip), dec.uint16()?))
}

/// JS `secretKey.decode` when the custodial flag is set, else nothing on the wire.
fn get_secret_key(
    dec: &mut Decoder<'_>,
    custodial: bool,
) -> Result<Option<SecretKey>, DecodeError> {
    Ok(if custodial {
        Some(SecretKey(dec.fixed64()?))
    } else {
        None
    })
}

fn custodial_flag(secret_key: &Option<SecretKey>) -> u8 {
    if secret_key.is_some() {
        FLAG_CUSTODIAL
    } else {
        0
    }
}

/// `c.array(T)` where every element takes at least `min_len` bytes. Refuses counts above
/// [`MAX_ARRAY_LEN`] (JS "Array is too big") and counts the remaining input can't possibly hold,
/// before allocating anything, so a hostile count costs nothing.
fn get_array<T>(
    dec: &mut Decoder<'_>,
    min_len: u64,
    mut f: impl FnMut(&mut Decoder<'_>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let at = dec.position();
    let count = dec.uint()?;
    if count > MAX_ARRAY_LEN {
        return Err(DecodeError::ArrayTooBig(count));
    }
    let needed = count * min_len;
    if needed > dec.remaining() as u64 {
        return Err(DecodeError::OutOfBounds {
            at,
            needed,
            remaining: dec.remaining(),
        });
    }
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        out.push(f(dec)?);
    }
    Ok(out)
}

/// `relayAddresses` = `array(ipv4Address)`.
fn get_addresses(dec: &mut Decoder<'_>) -> Result<Vec<SocketAddrV4>, DecodeError> {
    get_array(dec, 6, get_ipv4)
}

fn put_addresses(enc: &mut Encoder, addrs: &[SocketAddrV4]) {
    enc.array(addrs, put_ipv4);
}

/// Relay `buffer`: a zero length is an empty buffer.
fn get_buffer(dec: &mut Decoder<'_>) -> Result<Vec<u8>, DecodeError> {
    Ok(dec.buffer()?.to_vec())
}

/// `peerId` (compact-encoding 2.x nullable `buffer`): a zero length is `None`.
fn get_peer_id(dec: &mut Decoder<'_>) -> Result<Option<Vec<u8>>, DecodeError> {
    Ok(dec.optional_buffer()?.map(<[u8]>::to_vec))
}

// ---------------------------------------------------------------------------------------------
// Shared payload shapes

/// How a relayed stream was authenticated, carried by `open` and `connection` (flag bit 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamHandshake {
    /// Custodial: R ran the Noise handshake; this is its 64-byte handshake hash (`handshakeHash`).
    Hash([u8; 64]),
    /// Non-custodial: the id of the `noiseSend`/`noiseReceive`/`noiseReply` exchange whose keys
    /// the client uses for its own secret-stream (`handshakeId`).
    Id(u32),
}

impl StreamHandshake {
    fn flag(&self) -> u8 {
        match self {
            Self::Hash(_) => FLAG_CUSTODIAL,
            Self::Id(_) => 0,
        }
    }

    fn encode(&self, enc: &mut Encoder) {
        match self {
            Self::Hash(h) => enc.fixed64(h),
            Self::Id(id) => enc.uint32(*id),
        };
    }

    fn decode(dec: &mut Decoder<'_>, custodial: bool) -> Result<Self, DecodeError> {
        Ok(if custodial {
            Self::Hash(dec.fixed64()?)
        } else {
            Self::Id(dec.uint32()?)
        })
    }
}

/// A message that is only a request/query/firewall id: `deny`, `accept`, `finished`
/// (`id:u32`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdRef {
    /// The id (firewall request id for `deny`/`accept`, query id for `finished`).
    pub id: u32,
}

/// A message that is only an alias: `close`, `closed`, `end` (`alias:u32`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasRef {
    /// The sender's own alias of the server (`close`/`closed`) or stream (`end`).
    pub alias: u32,
}

impl CompactEncoding for IdRef {
    fn encode(&self, enc: &mut Encoder) {
        enc.uint32(self.id);
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Self { id: dec.uint32()? })
    }
}

impl CompactEncoding for AliasRef {
    fn encode(&self, enc: &mut Encoder) {
        enc.uint32(self.alias);
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            alias: dec.uint32()?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The messages, in wire order

/// 0 `handshake` (C→R): `flags:u8` `publicKey:32` `[secretKey:64 if custodial]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// The client's public key.
    pub public_key: PublicKey,
    /// `Some` = custodial session (flag bit 1): R may act with this key.
    pub secret_key: Option<SecretKey>,
}

impl CompactEncoding for Handshake {
    fn encode(&self, enc: &mut Encoder) {
        enc.uint8(custodial_flag(&self.secret_key));
        enc.fixed32(&self.public_key);
        if let Some(sk) = &self.secret_key {
            enc.fixed64(&sk.0);
        }
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let custodial = dec.uint8()? & FLAG_CUSTODIAL != 0;
        Ok(Self {
            public_key: dec.fixed32()?,
            secret_key: get_secret_key(dec, custodial)?,
        })
    }
}

/// 3 `connect` (C→R): `flags:u8` `alias:u32` `publicKey:32` `[secretKey:64]` `remotePublicKey:32`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// The client's alias for the new stream.
    pub alias: u32,
    /// The key pair's public key the connection is made with.
    pub public_key: PublicKey,
    /// `Some` = custodial (flag bit 1).
    pub secret_key: Option<SecretKey>,
    /// The server to connect to.
    pub remote_public_key: PublicKey,
}

impl CompactEncoding for Connect {
    fn encode(&self, enc: &mut Encoder) {
        enc.uint8(custodial_flag(&self.secret_key));
        enc.uint32(self.alias).fixed32(&self.public_key);
        if let Some(sk) = &self.secret_key {
            enc.fixed64(&sk.0);
        }
        enc.fixed32(&self.remote_public_key);
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let custodial = dec.uint8()? & FLAG_CUSTODIAL != 0;
        Ok(Self {
            alias: dec.uint32()?,
            public_key: dec.fixed32()?,
            secret_key: get_secret_key(dec, custodial)?,
            remote_public_key: dec.fixed32()?,
        })
    }
}

/// 4 `connection` (R→C): `flags:u8` `alias:u32` `serverAlias:u32` `remotePublicKey:32` then
/// `handshakeHash:64` (custodial) or `handshakeId:u32`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// R's alias for the new stream.
    pub alias: u32,
    /// R's alias of the server that got the connection.
    pub server_alias: u32,
    /// The connecting peer's public key.
    pub remote_public_key: PublicKey,
    /// Custodial hash or non-custodial handshake id (flag bit 1).
    pub handshake: StreamHandshake,
}

impl CompactEncoding for Connection {
    fn encode(&self, enc: &mut Encoder) {
        enc.uint8(self.handshake.flag());
        enc.uint32(self.alias).uint32(self.server_alias);
        enc.fixed32(&self.remote_public_key);
        self.handshake.encode(enc);
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let custodial = dec.uint8()? & FLAG_CUSTODIAL != 0;
        Ok(Self {
            alias: dec.uint32()?,
            server_alias: dec.uint32()?,
            remote_public_key: dec.fixed32()?,
            handshake: StreamHandshake::decode(dec, custodial)?,
        })
    }
}

/// 5 `connected` (C→R): `alias:u32` `remoteAlias:u32`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    /// The client's new alias for the stream.
    pub alias: u32,
    /// R's alias from the `connection` message.
    pub remote_alias: u32,
}

impl CompactEncoding for Connected {
    fn encode(&self, enc: &mut Encoder) {
        enc.uint32(self.alias).uint32(self.remote_alias);
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            alias: dec.uint32()?,
            remote_alias: dec.uint32()?,
        })
    }
}

/// 6 `incoming` (R→C): `id:u32` `serverAlias:u32` `remotePublicKey:32` `payload:buffer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// Firewall request id, answered by `accept`/`deny`.
    pub id: u32,
    /// R's alias of the server.
    pub server_alias: u32,
    /// The connecting peer's public key.
    pub remote_public_key: PublicKey,
    /// The peer's hyperdht `noisePayload` (compact-encoded, PROTOCOL.md §3 notes).
    pub payload: Vec<u8>,
}

impl CompactEncoding for Incoming {
    fn encode(&self, enc: &mut Encoder) {
        enc.uint32(self.id).uint32(self.server_alias);
        enc.fixed32(&self.remote_public_key).buffer(&self.payload);
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            id: dec.uint32()?,
            server_alias: dec.uint32()?,
            remote_public_key: dec.fixed32()?,
            payload: get_buffer(dec)?,
        })
    }
}

/// Which stream a `destroy` is about (flag bit 1 "paired").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestroyTarget {
    /// Flag 1 set: the sender's own alias of a paired stream.
    Paired {
        /// The sender's alias.
        alias: u32,
    },
    /// Flag 1 clear: the stream never paired (e.g. a failed connect); the receiver's alias.
    Unpaired {
        /// The alias the receiver chose for the stream.
        remote_alias: u32,
    },
}

/// 9 `destroy` (both): `flags:u8` (1 paired, 2 error) `alias|remoteAlias:u32` `[error:string]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destroy {
    /// The stream.
    pub target: DestroyTarget,
    /// Why (flag bit 2). `Some("")` is encoded with the flag set, so decoding round-trips; JS
    /// itself omits an empty error.
    pub error: Option<String>,
}

impl CompactEncoding for Destroy {
    fn encode(&self, enc: &mut Encoder) {
        let paired = matches!(self.target, DestroyTarget::Paired { .. });
        let flags = if paired { FLAG_PAIRED } else { 0 }
            | if self.error.is_some() { FLAG_ERROR } else { 0 };
        enc.uint8(flags);
        match self.target {
            DestroyTarget::Paired { alias } => enc.uint32(alias),
            DestroyTarget::Unpaired { remote_alias } => enc.uint32(remote_alias),
        };
        if let Some(e) = &self.error {
            enc.string(e);
        }
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let flags = dec.uint8()?;
        let target = if flags & FLAG_PAIRED != 0 {
            DestroyTarget::Paired {
                alias: dec.uint32()?,
            }
        } else {
            DestroyTarget::Unpaired {
                remote_alias: dec.uint32()?,
            }
        };
        let error = if flags & FLAG_ERROR != 0 {
            // JS decodes strings with replacement characters, never an error.
            Some(String::from_utf8_lossy(dec.buffer()?).into_owned())
        } else {
            None
        };
        Ok(Self { target, error })
    }
}

/// 10 `listen` (C→R): `flags:u8` `alias:u32` `publicKey:32` `[secretKey:64]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// The client's alias for the server.
    pub alias: u32,
    /// The server's public key.
    pub public_key: PublicKey,
    /// `Some` = custodial (flag bit 1).
    pub secret_key: Option<SecretKey>,
}

impl CompactEncoding for Listen {
    fn encode(&self, enc: &mut Encoder) {
        enc.uint8(custodial_flag(&self.secret_key));
        enc.uint32(self.alias).fixed32(&self.public_key);
        if let Some(sk) = &self.secret_key {
            enc.fixed64(&sk.0);
        }
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let custodial = dec.uint8()? & FLAG_CUSTODIAL != 0;
        Ok(Self {
            alias: dec.uint32()?,
            public_key: dec.fixed32()?,
            secret_key: get_secret_key(dec, custodial)?,
        })
    }
}

/// 11 `listening` (R→C): `alias:u32` `remoteAlias:u32` `ipv4Address`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listening {
    /// R's alias for the server.
    pub alias: u32,
    /// The client's alias from `listen`.
    pub remote_alias: u32,
    /// R's DHT address (host and port).
    pub address: SocketAddrV4,
}

impl CompactEncoding for Listening {
    fn encode(&self, enc: &mut Encoder) {
        enc.uint32(self.alias).uint32(self.remote_alias);
        put_ipv4(enc, &self.address);
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            alias: dec.uint32()?,
            remote_alias: dec.uint32()?,
            address: get_ipv4(dec)?,
        })
    }
}

/// 14 `open` (R→C): `flags:u8` `alias:u32` `remoteAlias:u32` then `handshakeHash:64` or
/// `handshakeId:u32`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// R's alias for the stream.
    pub alias: u32,
    /// The client's alias from `connect`.
    pub remote_alias: u32,
    /// Custodial hash or non-custodial handshake id (flag bit 1).
    pub handshake: StreamHandshake,
}

impl CompactEncoding for Open {
    fn encode(&self, enc: &mut Encoder) {
        enc.uint8(self.handshake.flag());
        enc.uint32(self.alias).uint32(self.remote_alias);
        self.handshake.encode(enc);
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let custodial = dec.uint8()? & FLAG_CUSTODIAL != 0;
        Ok(Self {
            alias: dec.uint32()?,
            remote_alias: dec.uint32()?,
            handshake: StreamHandshake::decode(dec, custodial)?,
        })
    }
}

/// 16 `data` (both): `alias:u32` `array(buffer)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data {
    /// The sender's own alias of the stream.
    pub alias: u32,
    /// The chunks, in order; an empty chunk is a keep-alive.
    pub chunks: Vec<Vec<u8>>,
}

impl CompactEncoding for Data {
    fn encode(&self, enc: &mut Encoder) {
        enc.uint32(self.alias);
        enc.array(&self.chunks, |e, c| {
            e.buffer(c);
        });
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            alias: dec.uint32()?,
            chunks: get_array(dec, 1, get_buffer)?,
        })
    }
}

/// 17 `result` (R→C): `id:u32` `data:buffer` (an [`Announcers`] record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryResult {
    /// The query id from `lookup`/`announce`/`unannounce`.
    pub id: u32,
    /// The compact-encoded [`Announcers`] record, kept as bytes (JS does the same).
    pub data: Vec<u8>,
}

impl QueryResult {
    /// Decodes [`QueryResult::data`]. Errors: [`DecodeError`] if it is not an `announcers`
    /// record (trailing bytes are ignored, as JS).
    pub fn announcers(&self) -> Result<Announcers, DecodeError> {
        Announcers::from_bytes(&self.data)
    }
}

impl CompactEncoding for QueryResult {
    fn encode(&self, enc: &mut Encoder) {
        enc.uint32(self.id).buffer(&self.data);
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            id: dec.uint32()?,
            data: get_buffer(dec)?,
        })
    }
}

/// 19 `lookup` (C→R): `id:u32` `topic:32`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The client's query id.
    pub id: u32,
    /// The 32-byte topic.
    pub topic: [u8; 32],
}

impl CompactEncoding for Lookup {
    fn encode(&self, enc: &mut Encoder) {
        enc.uint32(self.id).fixed32(&self.topic);
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            id: dec.uint32()?,
            topic: dec.fixed32()?,
        })
    }
}

/// 20 `announce` / 21 `unannounce` (C→R): `flags:u8` `id:u32` `topic:32` `publicKey:32`
/// `[secretKey:64]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// The client's query id.
    pub id: u32,
    /// The 32-byte topic.
    pub topic: [u8; 32],
    /// The announced key pair's public key.
    pub public_key: PublicKey,
    /// `Some` = custodial (flag bit 1); else R asks for signatures with `signAnnounce`.
    pub secret_key: Option<SecretKey>,
}

impl CompactEncoding for Announce {
    fn encode(&self, enc: &mut Encoder) {
        enc.uint8(custodial_flag(&self.secret_key));
        enc.uint32(self.id)
            .fixed32(&self.topic)
            .fixed32(&self.public_key);
        if let Some(sk) = &self.secret_key {
            enc.fixed64(&sk.0);
        }
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let custodial = dec.uint8()? & FLAG_CUSTODIAL != 0;
        Ok(Self {
            id: dec.uint32()?,
            topic: dec.fixed32()?,
            public_key: dec.fixed32()?,
            secret_key: get_secret_key(dec, custodial)?,
        })
    }
}

/// 22 `signAnnounce` / 23 `signUnannounce` (R→C): `id:u32` `signee:u32` `token:32`
/// `peerId:buffer` `relayAddresses:array(ipv4Address)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignRequest {
    /// Signature request id, answered by `signature`.
    pub id: u32,
    /// The client's query id or server alias the signature is for.
    pub signee: u32,
    /// The DHT node's 32-byte round-trip token.
    pub token: [u8; 32],
    /// The DHT node's id; `None` when empty on the wire (JS `null`).
    pub peer_id: Option<Vec<u8>>,
    /// Relay addresses to put in the signed record.
    pub relay_addresses: Vec<SocketAddrV4>,
}

impl CompactEncoding for SignRequest {
    fn encode(&self, enc: &mut Encoder) {
        enc.uint32(self.id).uint32(self.signee).fixed32(&self.token);
        enc.optional_buffer(self.peer_id.as_deref());
        put_addresses(enc, &self.relay_addresses);
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            id: dec.uint32()?,
            signee: dec.uint32()?,
            token: dec.fixed32()?,
            peer_id: get_peer_id(dec)?,
            relay_addresses: get_addresses(dec)?,
        })
    }
}

/// 24 `signature` (C→R): `id:u32` `signature:buffer` (64-byte ed25519 signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The `signAnnounce`/`signUnannounce` id.
    pub id: u32,
    /// The signature bytes (not length-checked here: JS doesn't either).
    pub signature: Vec<u8>,
}

impl CompactEncoding for Signature {
    fn encode(&self, enc: &mut Encoder) {
        enc.uint32(self.id).buffer(&self.signature);
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            id: dec.uint32()?,
            signature: get_buffer(dec)?,
        })
    }
}

/// 25 `noiseSend` (R→C): `flags:u8` (1 initiator) `id:u32` `[remoteStreamAlias:u32 if
/// initiator]` `payload:buffer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoiseSend {
    /// Handshake id (chosen by R).
    pub id: u32,
    /// `Some` = the client is the Noise initiator (flag bit 1): the client's alias from `connect`.
    pub remote_stream_alias: Option<u32>,
    /// The plaintext hyperdht `noisePayload` to embed in the next Noise message.
    pub payload: Vec<u8>,
}

impl CompactEncoding for NoiseSend {
    fn encode(&self, enc: &mut Encoder) {
        // The alias is there exactly when the client initiates.
        encode_flagged_alias(enc, self.id, self.remote_stream_alias, true, &self.payload);
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let (id, remote_stream_alias, payload) = decode_flagged_alias(dec, true)?;
        Ok(Self {
            id,
            remote_stream_alias,
            payload,
        })
    }
}

/// Writes the shape `noiseSend` and `noiseReceive` share: `flags:u8` (1 initiator) `id:u32`
/// `[alias:u32]` `payload:buffer`, where the alias is present exactly when the initiator flag
/// equals `alias_when_initiator` (so the flag is derived from whether `alias` is `Some`).
fn encode_flagged_alias(
    enc: &mut Encoder,
    id: u32,
    alias: Option<u32>,
    alias_when_initiator: bool,
    payload: &[u8],
) {
    let initiator = alias.is_some() == alias_when_initiator;
    enc.uint8(if initiator { FLAG_INITIATOR } else { 0 })
        .uint32(id);
    if let Some(alias) = alias {
        enc.uint32(alias);
    }
    enc.buffer(payload);
}

/// Reads what [`encode_flagged_alias`] writes: `(id, alias, payload)`.
fn decode_flagged_alias(
    dec: &mut Decoder<'_>,
    alias_when_initiator: bool,
) -> Result<(u32, Option<u32>, Vec<u8>), DecodeError> {
    let initiator = dec.uint8()? & FLAG_INITIATOR != 0;
    let id = dec.uint32()?;
    let alias = if initiator == alias_when_initiator {
        Some(dec.uint32()?)
    } else {
        None
    };
    Ok((id, alias, get_buffer(dec)?))
}

/// 26 `noiseReceive` (R→C): `flags:u8` (1 initiator) `id:u32` `[serverAlias:u32 if NOT
/// initiator]` `payload:buffer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoiseReceive {
    /// Handshake id.
    pub id: u32,
    /// `None` = the client is the initiator (flag bit 1); `Some` = responder, R's server alias.
    pub server_alias: Option<u32>,
    /// The Noise message from the peer, to decrypt.
    pub payload: Vec<u8>,
}

impl CompactEncoding for NoiseReceive {
    fn encode(&self, enc: &mut Encoder) {
        // The server alias is there exactly when the client responds.
        encode_flagged_alias(enc, self.id, self.server_alias, false, &self.payload);
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let (id, server_alias, payload) = decode_flagged_alias(dec, false)?;
        Ok(Self {
            id,
            server_alias,
            payload,
        })
    }
}

/// Where a `noiseReply` is in the handshake (flag bits 1 initiator, 2 complete).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoiseReplyStep {
    /// Flags 1: the initiator's Noise message (payload) to send to the peer.
    Initiator,
    /// Flags 0: the responder's answer to a `noiseReceive`: payload = the peer's decrypted
    /// `noisePayload` (empty = firewall denial) and the peer's public key.
    Responder {
        /// The initiating peer's public key.
        remote_public_key: PublicKey,
    },
    /// Flags 2 (| 1 if initiator): the handshake is done; payload = last message or peer payload.
    Complete {
        /// Flag bit 1.
        is_initiator: bool,
        /// The secret-stream id for the peer (`remoteId`, 32 bytes).
        remote_id: [u8; 32],
        /// `blake2b(NS.PEER_HOLEPUNCH, hash)`, 32 bytes.
        holepunch_secret: [u8; 32],
    },
}

/// 27 `noiseReply` (C→R): `flags:u8` `id:u32` `payload:buffer` `[remotePublicKey:32 if
/// !initiator && !complete]` `[remoteId:32 holepunchSecret:32 if complete]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoiseReply {
    /// Handshake id.
    pub id: u32,
    /// Noise message or decrypted payload (see [`NoiseReplyStep`]).
    pub payload: Vec<u8>,
    /// Role and progress, with the fields each carries.
    pub step: NoiseReplyStep,
}

impl CompactEncoding for NoiseReply {
    fn encode(&self, enc: &mut Encoder) {
        let flags = match self.step {
            NoiseReplyStep::Initiator => FLAG_INITIATOR,
            NoiseReplyStep::Responder { .. } => 0,
            NoiseReplyStep::Complete { is_initiator, .. } => {
                FLAG_COMPLETE | if is_initiator { FLAG_INITIATOR } else { 0 }
            }
        };
        enc.uint8(flags).uint32(self.id).buffer(&self.payload);
        match &self.step {
            NoiseReplyStep::Initiator => {}
            NoiseReplyStep::Responder { remote_public_key } => {
                enc.fixed32(remote_public_key);
            }
            NoiseReplyStep::Complete {
                remote_id,
                holepunch_secret,
                ..
            } => {
                enc.fixed32(remote_id).fixed32(holepunch_secret);
            }
        }
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let flags = dec.uint8()?;
        let is_initiator = flags & FLAG_INITIATOR != 0;
        let complete = flags & FLAG_COMPLETE != 0;
        let id = dec.uint32()?;
        let payload = get_buffer(dec)?;
        let step = if complete {
            NoiseReplyStep::Complete {
                is_initiator,
                remote_id: dec.fixed32()?,
                holepunch_secret: dec.fixed32()?,
            }
        } else if is_initiator {
            NoiseReplyStep::Initiator
        } else {
            NoiseReplyStep::Responder {
                remote_public_key: dec.fixed32()?,
            }
        };
        Ok(Self { id, payload, step })
    }
}

// ---------------------------------------------------------------------------------------------
// The `announcers` record inside `result.data` (lib/codecs.js)

/// A DHT node in an [`Announcers`] record: `peerId:buffer` `ipv4Address`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The node id (32 bytes in practice); `None` when empty on the wire.
    pub id: Option<Vec<u8>>,
    /// The node's address.
    pub address: SocketAddrV4,
}

impl CompactEncoding for Node {
    fn encode(&self, enc: &mut Encoder) {
        enc.optional_buffer(self.id.as_deref());
        put_ipv4(enc, &self.address);
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            id: get_peer_id(dec)?,
            address: get_ipv4(dec)?,
        })
    }
}

/// An announced peer: `publicKey:32` `relayAddresses:array(ipv4Address)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The peer's public key.
    pub public_key: PublicKey,
    /// Addresses of DHT nodes that relay to the peer.
    pub relay_addresses: Vec<SocketAddrV4>,
}

impl CompactEncoding for Peer {
    fn encode(&self, enc: &mut Encoder) {
        enc.fixed32(&self.public_key);
        put_addresses(enc, &self.relay_addresses);
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            public_key: dec.fixed32()?,
            relay_addresses: get_addresses(dec)?,
        })
    }
}

/// One DHT query reply, as R re-encodes it into `result.data`: `token:32` `from:node` `to:node`
/// `peers:array(peer)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcers {
    /// The replying node's round-trip token.
    pub token: [u8; 32],
    /// The replying node.
    pub from: Node,
    /// R's node as the replier saw it.
    pub to: Node,
    /// Peers announced on the topic.
    pub peers: Vec<Peer>,
}

impl CompactEncoding for Announcers {
    fn encode(&self, enc: &mut Encoder) {
        enc.fixed32(&self.token);
        self.from.encode(enc);
        self.to.encode(enc);
        enc.array(&self.peers, |e, p| p.encode(e));
    }
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            token: dec.fixed32()?,
            from: Node::decode(dec)?,
            to: Node::decode(dec)?,
            // A peer is at least 32 + 1 bytes.
            peers: get_array(dec, 33, Peer::decode)?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The message enum

/// One relay message, any of the 28 types (PROTOCOL.md §3). Variants are named like the JS
/// exports of `lib/messages.js`; messages sharing a JS encoding share a payload struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// 0 `handshake`.
    Handshake(Handshake),
    /// 1 `ping` (empty).
    Ping,
    /// 2 `pong` (empty).
    Pong,
    /// 3 `connect`.
    Connect(Connect),
    /// 4 `connection`.
    Connection(Connection),
    /// 5 `connected`.
    Connected(Connected),
    /// 6 `incoming`.
    Incoming(Incoming),
    /// 7 `deny`.
    Deny(IdRef),
    /// 8 `accept`.
    Accept(IdRef),
    /// 9 `destroy`.
    Destroy(Destroy),
    /// 10 `listen`.
    Listen(Listen),
    /// 11 `listening`.
    Listening(Listening),
    /// 12 `close`.
    Close(AliasRef),
    /// 13 `closed`.
    Closed(AliasRef),
    /// 14 `open`.
    Open(Open),
    /// 15 `end`.
    End(AliasRef),
    /// 16 `data`.
    Data(Data),
    /// 17 `result`.
    Result(QueryResult),
    /// 18 `finished`.
    Finished(IdRef),
    /// 19 `lookup`.
    Lookup(Lookup),
    /// 20 `announce`.
    Announce(Announce),
    /// 21 `unannounce`.
    Unannounce(Announce),
    /// 22 `signAnnounce`.
    SignAnnounce(SignRequest),
    /// 23 `signUnannounce`.
    SignUnannounce(SignRequest),
    /// 24 `signature`.
    Signature(Signature),
    /// 25 `noiseSend`.
    NoiseSend(NoiseSend),
    /// 26 `noiseReceive`.
    NoiseReceive(NoiseReceive),
    /// 27 `noiseReply`.
    NoiseReply(NoiseReply),
}

impl Message {
    /// The [`MessageType`] of this message.
    pub fn kind(&self) -> MessageType {
        use MessageType as T;
        match self {
            Self::Handshake(_) => T::Handshake,
            Self::Ping => T::Ping,
            Self::Pong => T::Pong,
            Self::Connect(_) => T::Connect,
            Self::Connection(_) => T::Connection,
            Self::Connected(_) => T::Connected,
            Self::Incoming(_) => T::Incoming,
            Self::Deny(_) => T::Deny,
            Self::Accept(_) => T::Accept,
            Self::Destroy(_) => T::Destroy,
            Self::Listen(_) => T::Listen,
            Self::Listening(_) => T::Listening,
            Self::Close(_) => T::Close,
            Self::Closed(_) => T::Closed,
            Self::Open(_) => T::Open,
            Self::End(_) => T::End,
            Self::Data(_) => T::Data,
            Self::Result(_) => T::Result,
            Self::Finished(_) => T::Finished,
            Self::Lookup(_) => T::Lookup,
            Self::Announce(_) => T::Announce,
            Self::Unannounce(_) => T::Unannounce,
            Self::SignAnnounce(_) => T::SignAnnounce,
            Self::SignUnannounce(_) => T::SignUnannounce,
            Self::Signature(_) => T::Signature,
            Self::NoiseSend(_) => T::NoiseSend,
            Self::NoiseReceive(_) => T::NoiseReceive,
            Self::NoiseReply(_) => T::NoiseReply,
        }
    }

    /// The protomux message type on the relay channel (0..=27).
    pub fn message_type(&self) -> u64 {
        self.kind().as_u64()
    }

    /// Appends the payload (without protomux channel/type header) to `enc`.
    pub fn encode_into(&self, enc: &mut Encoder) {
        match self {
            Self::Ping | Self::Pong => {}
            Self::Handshake(m) => m.encode(enc),
            Self::Connect(m) => m.encode(enc),
            Self::Connection(m) => m.encode(enc),
            Self::Connected(m) => m.encode(enc),
            Self::Incoming(m) => m.encode(enc),
            Self::Deny(m) | Self::Accept(m) | Self::Finished(m) => m.encode(enc),
            Self::Destroy(m) => m.encode(enc),
            Self::Listen(m) => m.encode(enc),
            Self::Listening(m) => m.encode(enc),
            Self::Close(m) | Self::Closed(m) | Self::End(m) => m.encode(enc),
            Self::Open(m) => m.encode(enc),
            Self::Data(m) => m.encode(enc),
            Self::Result(m) => m.encode(enc),
            Self::Lookup(m) => m.encode(enc),
            Self::Announce(m) | Self::Unannounce(m) => m.encode(enc),
            Self::SignAnnounce(m) | Self::SignUnannounce(m) => m.encode(enc),
            Self::Signature(m) => m.encode(enc),
            Self::NoiseSend(m) => m.encode(enc),
            Self::NoiseReceive(m) => m.encode(enc),
            Self::NoiseReply(m) => m.encode(enc),
        }
    }

    /// The payload bytes (what follows `uint channel` `uint type` in a protomux frame).
    pub fn encode(&self) -> Vec<u8> {
        let mut enc = Encoder::new();
        self.encode_into(&mut enc);
        enc.into_vec()
    }

    /// Decodes the payload of a message of `message_type`, as JS protomux + `lib/messages.js`:
    /// trailing bytes and unknown flag bits are ignored, `ping`/`pong` accept any bytes.
    ///
    /// Errors: [`RelayCodecError::UnknownType`] for types >= 28 (JS ignores those messages; the
    /// frame codec does too), [`RelayCodecError::Decode`] for a truncated or invalid payload (JS
    /// destroys the stream). Never panics; allocates at most in proportion to `payload.len()`.
    pub fn decode(message_type: u64, payload: &[u8]) -> Result<Message, RelayCodecError> {
        let kind = MessageType::from_u64(message_type)
            .ok_or(RelayCodecError::UnknownType(message_type))?;
        Self::decode_kind(kind, &mut Decoder::new(payload)).map_err(|source| {
            RelayCodecError::Decode {
                message_type: kind,
                source,
            }
        })
    }

    fn decode_kind(kind: MessageType, d: &mut Decoder<'_>) -> Result<Message, DecodeError> {
        use MessageType as T;
        Ok(match kind {
            T::Handshake => Self::Handshake(Handshake::decode(d)?),
            T::Ping => Self::Ping,
            T::Pong => Self::Pong,
            T::Connect => Self::Connect(Connect::decode(d)?),
            T::Connection => Self::Connection(Connection::decode(d)?),
            T::Connected => Self::Connected(Connected::decode(d)?),
            T::Incoming => Self::Incoming(Incoming::decode(d)?),
            T::Deny => Self::Deny(IdRef::decode(d)?),
            T::Accept => Self::Accept(IdRef::decode(d)?),
            T::Destroy => Self::Destroy(Destroy::decode(d)?),
            T::Listen => Self::Listen(Listen::decode(d)?),
            T::Listening => Self::Listening(Listening::decode(d)?),
            T::Close => Self::Close(AliasRef::decode(d)?),
            T::Closed => Self::Closed(AliasRef::decode(d)?),
            T::Open => Self::Open(Open::decode(d)?),
            T::End => Self::End(AliasRef::decode(d)?),
            T::Data => Self::Data(Data::decode(d)?),
            T::Result => Self::Result(QueryResult::decode(d)?),
            T::Finished => Self::Finished(IdRef::decode(d)?),
            T::Lookup => Self::Lookup(Lookup::decode(d)?),
            T::Announce => Self::Announce(Announce::decode(d)?),
            T::Unannounce => Self::Unannounce(Announce::decode(d)?),
            T::SignAnnounce => Self::SignAnnounce(SignRequest::decode(d)?),
            T::SignUnannounce => Self::SignUnannounce(SignRequest::decode(d)?),
            T::Signature => Self::Signature(Signature::decode(d)?),
            T::NoiseSend => Self::NoiseSend(NoiseSend::decode(d)?),
            T::NoiseReceive => Self::NoiseReceive(NoiseReceive::decode(d)?),
            T::NoiseReply => Self::NoiseReply(NoiseReply::decode(d)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    fn sk(b: u8) -> Option<SecretKey> {
        Some(SecretKey([b; 64]))
    }

    /// At least one message of every type, with every flag combination.
    fn samples() -> Vec<Message> {
        let pk = [7u8; 32];
        let rpk = [9u8; 32];
        vec![
            Message::Handshake(Handshake {
                public_key: pk,
                secret_key: sk(1),
            }),
            Message::Handshake(Handshake {
                public_key: pk,
                secret_key: None,
            }),
            Message::Ping,
            Message::Pong,
            Message::Connect(Connect {
                alias: 1,
                public_key: pk,
                secret_key: sk(2),
                remote_public_key: rpk,
            }),
            Message::Connect(Connect {
                alias: u32::MAX,
                public_key: pk,
                secret_key: None,
                remote_public_key: rpk,
            }),
            Message::Connection(Connection {
                alias: 6,
                server_alias: 4,
                remote_public_key: rpk,
                handshake: StreamHandshake::Hash([3; 64]),
            }),
            Message::Connection(Connection {
                alias: 6,
                server_alias: 4,
                remote_public_key: rpk,
                handshake: StreamHandshake::Id(0x0102_0304),
            }),
            Message::Connected(Connected {
                alias: 7,
                remote_alias: 6,
            }),
            Message::Incoming(Incoming {
                id: 5,
                server_alias: 4,
                remote_public_key: rpk,
                payload: vec![1, 2, 3],
            }),
            Message::Incoming(Incoming {
                id: 5,
                server_alias: 4,
                remote_public_key: rpk,
                payload: vec![],
            }),
            Message::Deny(IdRef { id: 5 }),
            Message::Accept(IdRef { id: 5 }),
            Message::Destroy(Destroy {
                target: DestroyTarget::Paired { alias: 2 },
                error: None,
            }),
            Message::Destroy(Destroy {
                target: DestroyTarget::Unpaired { remote_alias: 1 },
                error: Some("PEER_NOT_FOUND: Peer not found".into()),
            }),
            Message::Destroy(Destroy {
                target: DestroyTarget::Paired { alias: 2 },
                error: Some(String::new()),
            }),
            Message::Listen(Listen {
                alias: 3,
                public_key: pk,
                secret_key: sk(4),
            }),
            Message::Listen(Listen {
                alias: 3,
                public_key: pk,
                secret_key: None,
            }),
            Message::Listening(Listening {
                alias: 4,
                remote_alias: 3,
                address: addr("127.0.0.1:54908"),
            }),
            Message::Close(AliasRef { alias: 3 }),
            Message::Closed(AliasRef { alias: 4 }),
            Message::Open(Open {
                alias: 2,
                remote_alias: 1,
                handshake: StreamHandshake::Hash([5; 64]),
            }),
            Message::Open(Open {
                alias: 11,
                remote_alias: 10,
                handshake: StreamHandshake::Id(12),
            }),
            Message::End(AliasRef { alias: 1 }),
            Message::Data(Data {
                alias: 1,
                chunks: vec![b"hello".to_vec(), vec![], vec![0xff; 300]],
            }),
            Message::Data(Data {
                alias: 1,
                chunks: vec![],
            }),
            Message::Result(QueryResult {
                id: 9,
                data: vec![1; 112],
            }),
            Message::Finished(IdRef { id: 9 }),
            Message::Lookup(Lookup {
                id: 9,
                topic: [0xaa; 32],
            }),
            Message::Announce(Announce {
                id: 8,
                topic: [0xaa; 32],
                public_key: pk,
                secret_key: sk(6),
            }),
            Message::Unannounce(Announce {
                id: 8,
                topic: [0xaa; 32],
                public_key: pk,
                secret_key: None,
            }),
            Message::SignAnnounce(SignRequest {
                id: 13,
                signee: 8,
                token: [0x11; 32],
                peer_id: Some(vec![0x22; 32]),
                relay_addresses: vec![addr("10.0.0.1:1"), addr("192.168.1.2:65535")],
            }),
            Message::SignUnannounce(SignRequest {
                id: 14,
                signee: 3,
                token: [0x11; 32],
                peer_id: None,
                relay_addresses: vec![],
            }),
            Message::Signature(Signature {
                id: 13,
                signature: vec![0x33; 64],
            }),
            Message::NoiseSend(NoiseSend {
                id: 12,
                remote_stream_alias: Some(10),
                payload: vec![1, 2],
            }),
            Message::NoiseSend(NoiseSend {
                id: 12,
                remote_stream_alias: None,
                payload: vec![],
            }),
            Message::NoiseReceive(NoiseReceive {
                id: 12,
                server_alias: None,
                payload: vec![4; 93],
            }),
            Message::NoiseReceive(NoiseReceive {
                id: 12,
                server_alias: Some(4),
                payload: vec![4; 5],
            }),
            Message::NoiseReply(NoiseReply {
                id: 12,
                payload: vec![5; 116],
                step: NoiseReplyStep::Initiator,
            }),
            Message::NoiseReply(NoiseReply {
                id: 12,
                payload: vec![],
                step: NoiseReplyStep::Responder {
                    remote_public_key: rpk,
                },
            }),
            Message::NoiseReply(NoiseReply {
                id: 12,
                payload: vec![6; 45],
                step: NoiseReplyStep::Complete {
                    is_initiator: true,
                    remote_id: [1; 32],
                    holepunch_secret: [2; 32],
                },
            }),
            Message::NoiseReply(NoiseReply {
                id: 12,
                payload: vec![6; 45],
                step: NoiseReplyStep::Complete {
                    is_initiator: false,
                    remote_id: [1; 32],
                    holepunch_secret: [2; 32],
                },
            }),
        ]
    }

    #[test]
    fn every_type_round_trips() {
        let samples = samples();
        let mut seen = std::collections::HashSet::new();
        for m in &samples {
            seen.insert(m.kind());
            assert_eq!(MessageType::from_u64(m.message_type()), Some(m.kind()));
            let bytes = m.encode();
            assert_eq!(
                &Message::decode(m.message_type(), &bytes).unwrap(),
                m,
                "{m:?}"
            );
        }
        assert_eq!(seen.len(), 28, "a sample per message type");
        for (i, t) in MessageType::ALL.iter().enumerate() {
            assert_eq!(t.as_u64(), i as u64);
        }
        assert_eq!(MessageType::NoiseReply.name(), "noiseReply");
    }

    #[test]
    fn layouts_match_protocol_md() {
        // §3 flag values and field order, built by hand.
        let m = Message::Open(Open {
            alias: 11,
            remote_alias: 10,
            handshake: StreamHandshake::Id(12),
        });
        assert_eq!(hex::encode(m.encode()), "000b0000000a0000000c000000");
        let m = Message::Listening(Listening {
            alias: 4,
            remote_alias: 3,
            address: addr("127.0.0.1:49737"),
        });
        assert_eq!(hex::encode(m.encode()), "04000000030000007f00000149c2");
        let m = Message::Destroy(Destroy {
            target: DestroyTarget::Unpaired { remote_alias: 1 },
            error: Some("x".into()),
        });
        assert_eq!(hex::encode(m.encode()), "0201000000".to_string() + "0178");
        let m = Message::NoiseReceive(NoiseReceive {
            id: 2,
            server_alias: Some(3),
            payload: vec![0xee],
        });
        assert_eq!(hex::encode(m.encode()), "00020000000300000001ee");
        let m = Message::NoiseReply(NoiseReply {
            id: 1,
            payload: vec![],
            step: NoiseReplyStep::Complete {
                is_initiator: false,
                remote_id: [0; 32],
                holepunch_secret: [0; 32],
            },
        });
        assert_eq!(m.encode()[..6], [2, 1, 0, 0, 0, 0]);
        assert!(Message::Ping.encode().is_empty());
    }

    #[test]
    fn truncation_is_an_error_and_trailing_bytes_are_ignored() {
        for m in samples() {
            let bytes = m.encode();
            for cut in 0..bytes.len() {
                let r = Message::decode(m.message_type(), &bytes[..cut]);
                assert!(
                    matches!(r, Err(RelayCodecError::Decode { message_type, .. }) if message_type == m.kind()),
                    "{m:?} cut at {cut}: {r:?}"
                );
            }
            let mut long = bytes.clone();
            long.extend_from_slice(&[0xaa, 0xbb, 0xcc]);
            assert_eq!(Message::decode(m.message_type(), &long).unwrap(), m);
        }
    }

    #[test]
    fn unknown_types_and_flag_bits() {
        assert_eq!(
            Message::decode(28, &[]),
            Err(RelayCodecError::UnknownType(28))
        );
        assert_eq!(
            Message::decode(u64::MAX, &[1]),
            Err(RelayCodecError::UnknownType(u64::MAX))
        );
        // Unknown flag bits are ignored, as JS `(flags & 1) !== 0`.
        let mut bytes = vec![0xfe];
        bytes.extend_from_slice(&[7; 32]);
        assert_eq!(
            Message::decode(0, &bytes).unwrap(),
            Message::Handshake(Handshake {
                public_key: [7; 32],
                secret_key: None
            })
        );
        // ping/pong are `none`: any bytes decode.
        assert_eq!(Message::decode(1, &[1, 2, 3]).unwrap(), Message::Ping);
    }

    #[test]
    fn hostile_lengths_fail_without_allocating() {
        // data: an array count at the JS limit, then nothing.
        let mut e = Encoder::new();
        e.uint32(1).uint(MAX_ARRAY_LEN);
        assert!(matches!(
            Message::decode(16, e.as_slice()),
            Err(RelayCodecError::Decode {
                source: DecodeError::OutOfBounds { .. },
                ..
            })
        ));
        let mut e = Encoder::new();
        e.uint32(1).uint(MAX_ARRAY_LEN + 1);
        assert!(matches!(
            Message::decode(16, e.as_slice()),
            Err(RelayCodecError::Decode {
                source: DecodeError::ArrayTooBig(_),
                ..
            })
        ));
        // A buffer claiming u64::MAX bytes.
        let mut e = Encoder::new();
        e.uint32(9).uint(u64::MAX);
        assert!(Message::decode(17, e.as_slice()).is_err());
        // signAnnounce with a count of addresses the input can't hold.
        let mut e = Encoder::new();
        e.uint32(1)
            .uint32(2)
            .fixed32(&[0; 32])
            .uint(0)
            .uint(1000)
            .raw(&[0; 100]);
        assert!(Message::decode(22, e.as_slice()).is_err());
    }

    #[test]
    fn destroy_error_with_invalid_utf8_is_replaced_like_js() {
        let bytes = [FLAG_PAIRED | FLAG_ERROR, 2, 0, 0, 0, 2, 0xff, b'a'];
        assert_eq!(
            Message::decode(9, &bytes).unwrap(),
            Message::Destroy(Destroy {
                target: DestroyTarget::Paired { alias: 2 },
                error: Some("\u{fffd}a".into())
            })
        );
    }

    #[test]
    fn announcers_record_from_a_real_lookup() {
        // captures/3-lookup: first `result` data (112 bytes).
        let data = hex::decode(
            "090753e3aa72087aa3a344193aca9e280f1960e31c09987a8c90263d99e682e3\
             2026fe6ae9a1f45137757384c3a60c80571a6153a27c3c6d3dea8fe8f987b995ce7f0000014bc2\
             007f0000017cd6\
             01c853ad0f0cd2b619aea92ceec4fd56a24d6499d584ce79257e45cfd8139b60a700",
        )
        .unwrap();
        let r = QueryResult {
            id: 9,
            data: data.clone(),
        };
        let a = r.announcers().unwrap();
        assert_eq!(a.token[..2], [0x09, 0x07]);
        assert_eq!(a.from.id.as_deref().map(|b| b.len()), Some(32));
        assert_eq!(a.from.address, addr("127.0.0.1:49739"));
        assert_eq!(
            a.to,
            Node {
                id: None,
                address: addr("127.0.0.1:54908")
            }
        );
        assert_eq!(a.peers.len(), 1);
        assert_eq!(a.peers[0].public_key[..2], [0xc8, 0x53]);
        assert!(a.peers[0].relay_addresses.is_empty());
        assert_eq!(a.to_bytes(), data);
        // A peer count the input can't hold.
        let mut bad = data[..data.len() - 34].to_vec();
        bad.push(200);
        assert!(Announcers::from_bytes(&bad).is_err());
    }

    #[test]
    fn secret_keys_are_not_printed() {
        let m = Message::Handshake(Handshake {
            public_key: [0; 32],
            secret_key: Some(SecretKey([0xab; 64])),
        });
        assert!(
            !format!("{m:?}").contains("171"),
            "no secret key bytes in Debug"
        );
    }
}
