//! The encrypted, authenticated byte-message stream of npm `@hyperswarm/secret-stream` 6.9.2
//! (what JS `core.replicate(isInitiator)` speaks on a raw socket).
//!
//! Wire format, all frames `uint24le length || body`:
//! 1. Noise XX handshake ([`super::noise`]), three frames, initiator first.
//! 2. Each side then sends one 56-byte frame: `stream id (32) || secretstream header (24)`, where
//!    the id is `BLAKE2b-256(key = handshake hash, NS_INITIATOR | NS_RESPONDER)` of the sender's
//!    role (namespace `hyperswarm/secret-stream`).
//! 3. Every later frame is one message encrypted with libsodium
//!    `crypto_secretstream_xchacha20poly1305` (TAG_MESSAGE, no AD): `len = plaintext + 17`.
//!    Zero-length plaintexts are keep-alives (JS sends one every 5 s from hypercore).
//!
//! The pieces here are sans-IO: [`FrameDecoder`] (bytes in, frames out), [`Handshake`] (frames
//! in, frames out, outcome), [`Encryptor`] / [`Decryptor`] (plaintext <-> frames). The async
//! [`handshake`] drives them over any tokio `AsyncRead + AsyncWrite`. [`from_handshake`] skips
//! step 1 when the keys come from a Noise handshake run elsewhere (hyperdht's IK).

use std::time::Duration;

use crypto_secretstream::{Header, Key, PullStream, PushStream, Tag};
use ed25519_dalek::SigningKey;
use rand::rngs::OsRng;

use super::noise::{keyed_hash32, HandshakeOutcome, NoiseError, NoiseXx};
use crate::hypercore::crypto::namespace;

/// Largest frame body: the uint24 length prefix allows 2^24 - 1 bytes (JS `MAX_ATOMIC_WRITE`).
pub const MAX_FRAME: usize = 0xff_ffff;
/// Bytes secretstream adds to each message (tag byte + Poly1305 MAC).
pub const ABYTES: usize = 17;
/// Largest plaintext one message can carry.
pub const MAX_MESSAGE: usize = MAX_FRAME - ABYTES;
/// Size of the id+header frame sent after the handshake.
const ID_HEADER_BYTES: usize = 32 + Header::BYTES;
/// Default limit for the whole handshake (3 Noise messages + header frames).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the secure stream failed. Every variant ends the connection it happened on.
#[derive(Debug, thiserror::Error)]
pub enum SecretStreamError {
    /// The Noise handshake failed (bad message, bad key, tampering).
    #[error(transparent)]
    Noise(#[from] NoiseError),
    /// The frame after the handshake was not `id || header` of 56 bytes.
    #[error("secret-stream: invalid header message ({0} bytes, expected 56)")]
    BadHeaderLength(usize),
    /// The header's stream id does not match the handshake (wrong peer or replayed header).
    #[error("secret-stream: invalid header received (stream id mismatch)")]
    BadStreamId,
    /// A frame shorter than the 17-byte secretstream overhead.
    #[error("secret-stream: message of {0} bytes is shorter than the 17-byte overhead")]
    ShortMessage(usize),
    /// A message failed to decrypt/authenticate (tampering, or the stream lost sync).
    #[error("secret-stream: message failed authentication")]
    Decrypt,
    /// The remote ended the secretstream with a FINAL tag and then sent more.
    #[error("secret-stream: message after the final tag")]
    AfterFinal,
    /// A plaintext larger than [`MAX_MESSAGE`] was given to [`Encryptor::encrypt`].
    #[error("secret-stream: message of {0} bytes exceeds the maximum of {MAX_MESSAGE}")]
    TooLarge(usize),
    /// The peer closed the connection before the handshake finished.
    #[error("secret-stream: connection closed during the handshake")]
    ClosedDuringHandshake,
    /// The handshake did not finish in time.
    #[error("secret-stream: handshake timed out after {0:?}")]
    Timeout(Duration),
    /// The peer announced a frame larger than this connection accepts (see
    /// [`crate::net::ConnectionConfig::max_frame_bytes`]); refused before buffering it.
    #[error("secret-stream: the peer announced a frame of {len} bytes; this connection accepts at most {max}")]
    FrameTooLarge {
        /// The announced frame length, in bytes.
        len: usize,
        /// The limit, in bytes.
        max: usize,
    },
    /// Socket error.
    #[error("secret-stream: io error: {0}")]
    Io(#[from] std::io::Error),
}

/// Splits a byte stream into `uint24le`-prefixed frames. Never panics; a frame is at most
/// [`MAX_FRAME`] bytes by construction, so memory per frame is bounded at 16 MiB.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    pos: usize,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        // Compact lazily so that a stream of small frames does not shift the buffer every time.
        if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame body, if one has fully arrived.
    pub fn next_frame(&mut self) -> Option<Vec<u8>> {
        let avail = &self.buf[self.pos..];
        if avail.len() < 3 {
            return None;
        }
        let len = avail[0] as usize | (avail[1] as usize) << 8 | (avail[2] as usize) << 16;
        if avail.len() < 3 + len {
            return None;
        }
        let frame = avail[3..3 + len].to_vec();
        self.pos += 3 + len;
        Some(frame)
    }

    /// The length the next frame's `uint24le` prefix announces, once those 3 bytes arrived
    /// (whether or not its body is complete): lets a reader refuse a huge frame before
    /// buffering it.
    pub fn announced_len(&self) -> Option<usize> {
        let avail = &self.buf[self.pos..];
        (avail.len() >= 3)
            .then(|| avail[0] as usize | (avail[1] as usize) << 8 | (avail[2] as usize) << 16)
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Takes the unconsumed bytes (e.g. to hand them from the handshake to the transport).
    pub fn take_rest(&mut self) -> Vec<u8> {
        let rest = self.buf[self.pos..].to_vec();
        self.buf.clear();
        self.pos = 0;
        rest
    }
}

/// Prefixes `body` with its `uint24le` length. `body.len()` must be at most [`MAX_FRAME`].
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + body.len());
    write_frame_header(&mut out, body.len());
    out.extend_from_slice(body);
    out
}

fn write_frame_header(out: &mut Vec<u8>, len: usize) {
    debug_assert!(len <= MAX_FRAME);
    out.extend_from_slice(&[len as u8, (len >> 8) as u8, (len >> 16) as u8]);
}

/// `streamId(handshakeHash, isInitiator)` of secret-stream: keyed BLAKE2b-256 of the role's
/// namespace constant, keyed with the 64-byte handshake hash.
pub fn stream_id(handshake_hash: &[u8; 64], is_initiator: bool) -> [u8; 32] {
    let ns = namespace(b"hyperswarm/secret-stream", 2);
    let input = if is_initiator { ns[0] } else { ns[1] };
    keyed_hash32(handshake_hash, &[&input])
}

/// What both sides know after a successful handshake.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Whether we initiated (sent Noise message 1).
    pub is_initiator: bool,
    /// Our ed25519 public key.
    pub public_key: [u8; 32],
    /// The remote's ed25519 public key, proven by the handshake.
    pub remote_public_key: [u8; 32],
    /// The 64-byte Noise handshake hash (input of hypercore capabilities).
    pub handshake_hash: [u8; 64],
}

/// Sans-IO secret-stream handshake: feed received frames with [`Handshake::on_frame`], send what
/// [`Handshake::take_outgoing`] returns, until [`Handshake::is_done`].
pub struct Handshake {
    noise: NoiseXx,
    is_initiator: bool,
    public_key: [u8; 32],
    outgoing: Vec<u8>,
    keys: Option<HandshakeOutcome>,
    decryptor: Option<Decryptor>,
    encryptor: Option<Encryptor>,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("is_initiator", &self.is_initiator)
            .field("done", &self.is_done())
            .finish_non_exhaustive()
    }
}

impl Handshake {
    /// Starts a handshake with our identity key. The initiator's first message is queued at once.
    pub fn new(is_initiator: bool, key: &SigningKey) -> Result<Self, SecretStreamError> {
        let mut hs = Self {
            noise: NoiseXx::new(is_initiator, key),
            is_initiator,
            public_key: key.verifying_key().to_bytes(),
            outgoing: Vec::new(),
            keys: None,
            decryptor: None,
            encryptor: None,
        };
        if is_initiator {
            let m = hs.noise.write_message()?;
            hs.outgoing.extend(frame(&m));
        }
        Ok(hs)
    }

    /// Bytes (already framed) to write to the socket now.
    pub fn take_outgoing(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.outgoing)
    }

    /// True when the Noise handshake and the remote's header have both been processed.
    pub fn is_done(&self) -> bool {
        self.decryptor.as_ref().is_some_and(|d| d.is_ready())
    }

    /// Processes one received frame body.
    ///
    /// Errors: any [`NoiseError`], a bad header ([`SecretStreamError::BadHeaderLength`],
    /// [`SecretStreamError::BadStreamId`]), or a frame arriving after the handshake is done.
    pub fn on_frame(&mut self, body: &[u8]) -> Result<(), SecretStreamError> {
        if let Some(dec) = self.decryptor.as_mut() {
            if dec.is_ready() {
                return Err(NoiseError::OutOfTurn.into());
            }
            return dec.on_header(body);
        }
        self.noise.read_message(body)?;
        if self.noise.is_my_turn() {
            let m = self.noise.write_message()?;
            self.outgoing.extend(frame(&m));
        }
        if let Some(out) = self.noise.outcome().cloned() {
            // Handshake complete: send our id+header, expect theirs next.
            let (enc, header_frame) = Encryptor::new(&out, self.is_initiator);
            self.outgoing.extend(header_frame);
            self.decryptor = Some(Decryptor::new(&out, self.is_initiator));
            self.encryptor = Some(enc);
            self.keys = Some(out);
        }
        Ok(())
    }

    /// After [`Handshake::is_done`]: the session info and the two transport halves.
    /// Returns `None` before that.
    pub fn finish(self) -> Option<(SessionInfo, Encryptor, Decryptor)> {
        if !self.is_done() {
            return None;
        }
        let keys = self.keys?;
        let info = SessionInfo {
            is_initiator: self.is_initiator,
            public_key: self.public_key,
            remote_public_key: keys.remote_public_key,
            handshake_hash: keys.handshake_hash,
        };
        Some((info, self.encryptor?, self.decryptor?))
    }
}

/// Starts a secret-stream from a handshake that already finished elsewhere, as
/// `@hyperswarm/secret-stream` 6.9.2 `start(rawStream, { handshake: { tx, rx, hash, … } })` does
/// (what hyperdht 6.34.0 and a non-custodial `@hyperswarm/dht-relay` 0.4.3 client do after
/// their Noise IK handshake): no Noise messages on the stream, only the id+header exchange and
/// then encrypted records.
///
/// `keys`: our tx/rx (32 bytes each), the 64-byte handshake hash and the remote's key;
/// `is_initiator`: whether we sent Noise message 1 (it picks the stream id we send).
///
/// Returns the [`SessionInfo`] (with `public_key` = `our_public_key`), the [`Encryptor`], the
/// framed 59-byte id+header record that must be written first (`uint24le 56` + stream id + the
/// libsodium secretstream header), and a [`Decryptor`] that expects the remote's id+header as
/// its first frame (see [`Decryptor::decrypt`]).
pub fn from_handshake(
    keys: &HandshakeOutcome,
    is_initiator: bool,
    our_public_key: [u8; 32],
) -> (SessionInfo, Encryptor, Vec<u8>, Decryptor) {
    let (enc, header) = Encryptor::new(keys, is_initiator);
    let dec = Decryptor::new(keys, is_initiator);
    let info = SessionInfo {
        is_initiator,
        public_key: our_public_key,
        remote_public_key: keys.remote_public_key,
        handshake_hash: keys.handshake_hash,
    };
    (info, enc, header, dec)
}

/// Encrypts outgoing messages into frames (libsodium secretstream push, TAG_MESSAGE).
pub struct Encryptor {
    push: PushStream,
}

impl std::fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Encryptor")
    }
}

impl Encryptor {
    /// A new push stream keyed with the handshake's `tx`, and the 56-byte id+header frame (framed)
    /// that must be sent before any message.
    fn new(keys: &HandshakeOutcome, is_initiator: bool) -> (Self, Vec<u8>) {
        let key = Key::from(keys.tx);
        let (header, push) = PushStream::init(OsRng, &key);
        let mut body = Vec::with_capacity(ID_HEADER_BYTES);
        body.extend_from_slice(&stream_id(&keys.handshake_hash, is_initiator));
        body.extend_from_slice(header.as_ref());
        (Self { push }, frame(&body))
    }

    /// Encrypts `plaintext` and appends the framed ciphertext (`3 + len + 17` bytes) to `out`.
    ///
    /// Errors: [`SecretStreamError::TooLarge`] above [`MAX_MESSAGE`] bytes.
    pub fn encrypt_into(
        &mut self,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SecretStreamError> {
        if plaintext.len() > MAX_MESSAGE {
            return Err(SecretStreamError::TooLarge(plaintext.len()));
        }
        let mut buf = Vec::with_capacity(plaintext.len() + ABYTES);
        buf.extend_from_slice(plaintext);
        self.push
            .push(&mut buf, &[], Tag::Message)
            .map_err(|_| SecretStreamError::Decrypt)?;
        write_frame_header(out, buf.len());
        out.extend_from_slice(&buf);
        Ok(())
    }

    /// Encrypts one message into a fresh framed buffer.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, SecretStreamError> {
        let mut out = Vec::with_capacity(3 + plaintext.len() + ABYTES);
        self.encrypt_into(plaintext, &mut out)?;
        Ok(out)
    }
}

/// Decrypts incoming frames: first the remote's id+header, then messages.
pub struct Decryptor {
    key: Key,
    expected_id: [u8; 32],
    pull: Option<PullStream>,
    finished: bool,
}

impl std::fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryptor")
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

impl Decryptor {
    fn new(keys: &HandshakeOutcome, is_initiator: bool) -> Self {
        Self {
            key: Key::from(keys.rx),
            expected_id: stream_id(&keys.handshake_hash, !is_initiator),
            pull: None,
            finished: false,
        }
    }

    /// True once the remote's header has been accepted.
    pub fn is_ready(&self) -> bool {
        self.pull.is_some()
    }

    fn on_header(&mut self, body: &[u8]) -> Result<(), SecretStreamError> {
        if body.len() != ID_HEADER_BYTES {
            return Err(SecretStreamError::BadHeaderLength(body.len()));
        }
        if body[..32] != self.expected_id {
            return Err(SecretStreamError::BadStreamId);
        }
        let header = Header::try_from(&body[32..]).map_err(|_| SecretStreamError::Decrypt)?;
        self.pull = Some(PullStream::init(header, &self.key));
        Ok(())
    }

    /// Decrypts one frame body into its plaintext (possibly empty: a keep-alive). Before the
    /// remote's header was accepted ([`Decryptor::is_ready`] false), the frame must be that
    /// 56-byte id+header and an empty plaintext is returned.
    ///
    /// Errors: [`SecretStreamError::ShortMessage`], [`SecretStreamError::Decrypt`] on
    /// tampering, [`SecretStreamError::AfterFinal`] after a FINAL tag.
    pub fn decrypt(&mut self, body: &[u8]) -> Result<Vec<u8>, SecretStreamError> {
        let Some(pull) = self.pull.as_mut() else {
            // Before the header, the first frame *is* the header.
            self.on_header(body)?;
            return Ok(Vec::new());
        };
        if self.finished {
            return Err(SecretStreamError::AfterFinal);
        }
        if body.len() < ABYTES {
            return Err(SecretStreamError::ShortMessage(body.len()));
        }
        let mut buf = body.to_vec();
        let tag = pull
            .pull(&mut buf, &[])
            .map_err(|_| SecretStreamError::Decrypt)?;
        if tag == Tag::Final {
            self.finished = true;
        }
        Ok(buf)
    }
}

#[cfg(feature = "native")]
mod driver;
#[cfg(feature = "native")]
pub use driver::handshake;

#[cfg(test)]
mod tests;
