//! Sans-IO Noise `XX` and `IK` handshakes, byte-compatible with npm `noise-handshake` 4.2.0
//! using the `noise-curve-ed` 2.1.0 DH: `XX` is what `@hyperswarm/secret-stream` 6.9.2 runs
//! (`Noise_XX_Ed25519_ChaChaPoly_BLAKE2b`, empty prologue), `IK` is what hyperdht 6.34.0 runs
//! between peers (`Noise_IK_Ed25519_ChaChaPoly_BLAKE2b`, prologue `NS.PEER_HANDSHAKE`, payloads
//! = `noisePayload`), and what a non-custodial `@hyperswarm/dht-relay` 0.4.3 client runs itself.
//!
//! How it differs from textbook Noise (all taken from the JS modules, because interop depends on it):
//! - DH keys are **ed25519** key pairs (static and ephemeral). `DH(sk, P)` = compressed Edwards
//!   point `clamp(sha512(seed)[0..32]) * P` (libsodium `crypto_scalarmult_ed25519_noclamp`).
//! - HASH is BLAKE2b-512, HMAC is HMAC-BLAKE2b (block 128), HKDF outputs are 64 bytes and cipher
//!   keys are their first 32 bytes.
//! - The ChaChaPoly nonce is 4 zero bytes, the counter as u32 LE, then 4 zero bytes.
//! - XX: prologue is empty, handshake payloads are empty. The handshake hash (64 bytes) is
//!   exported.
//!
//! XX messages: initiator `-> e` (32 bytes), responder `<- e, ee, s, es` (96 bytes), initiator
//! `-> s, se` (64 bytes). [`NoiseXx`] neither frames nor does IO; see `secret_stream`.
//!
//! IK ([`NoiseIk`]): the initiator knows the responder's static key in advance (`<- s`
//! pre-message); `-> e, es, s, ss` + payload (96 + payload bytes), `<- e, ee, se` + payload
//! (48 + payload bytes).

use blake2::digest::{FixedOutput, Mac};
use blake2::{Blake2b512, Blake2bMac, Digest};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_dalek::SigningKey;
use rand::rngs::OsRng;

mod ik;
mod xx;

pub use ik::NoiseIk;
pub use xx::NoiseXx;

/// BLAKE2b-512 output length, the Noise `HASHLEN` of this suite.
pub const HASHLEN: usize = 64;
/// Length of an ed25519 public key / DH output.
pub const PKLEN: usize = 32;
/// Poly1305 tag length.
const MACLEN: usize = 16;
/// The protocol name hashed into the initial state (`noise-handshake` builds it the same way:
/// `Noise_<pattern>_<curve.ALG>_ChaChaPoly_BLAKE2b`).
const PROTOCOL_NAME: &[u8] = b"Noise_XX_Ed25519_ChaChaPoly_BLAKE2b";
/// The IK protocol name (`new NoiseHandshake('IK', …, { curve: noise-curve-ed })`).
const IK_PROTOCOL_NAME: &[u8] = b"Noise_IK_Ed25519_ChaChaPoly_BLAKE2b";
/// Largest handshake message `noise-handshake` peers exchange (a Noise message limit).
pub const MAX_MESSAGE_LEN: usize = 65535;

/// Why the handshake failed. Any of these ends the connection; none is a bug on our side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoiseError {
    /// A handshake message had the wrong size for its step (`expected`/`got` in bytes).
    #[error("noise handshake message {step} has {got} bytes, expected {expected}")]
    BadLength {
        /// Message number, 1..=3.
        step: u8,
        /// Bytes the XX pattern requires.
        expected: usize,
        /// Bytes received.
        got: usize,
    },
    /// The peer's key is not a usable ed25519 point (not canonical, small order, or outside the
    /// prime-order subgroup), so DH with it is refused, as libsodium does.
    #[error("noise handshake: remote sent an invalid ed25519 public key")]
    BadPublicKey,
    /// An encrypted part of a handshake message did not authenticate.
    #[error("noise handshake: decryption failed (wrong keys or tampered message)")]
    Decrypt,
    /// `send`/`recv` called out of turn (a local bug or a peer sending extra messages).
    #[error("noise handshake: unexpected message at this step")]
    OutOfTurn,
}

/// Result of a finished handshake: the transport keys and what each side proved.
#[derive(Clone)]
pub struct HandshakeOutcome {
    /// Key for what we send (first 32 bytes of the HKDF output, as JS `noise.tx`).
    pub tx: [u8; 32],
    /// Key for what we receive.
    pub rx: [u8; 32],
    /// The 64-byte handshake hash; binds capabilities (hypercore `caps.replicate`) to this session.
    pub handshake_hash: [u8; HASHLEN],
    /// The remote's static ed25519 public key (its identity).
    pub remote_public_key: [u8; PKLEN],
}

impl std::fmt::Debug for HandshakeOutcome {
    // Never print keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandshakeOutcome")
            .field("remote_public_key", &hex::encode(self.remote_public_key))
            .finish_non_exhaustive()
    }
}

/// An ed25519 key pair used for DH: the seed (secret) and its public key.
struct DhKeyPair {
    scalar: [u8; 32],
    public: [u8; PKLEN],
}

impl DhKeyPair {
    fn from_signing_key(key: &SigningKey) -> Self {
        // libsodium stores the seed; the scalar is the clamped first half of sha512(seed).
        let digest = sha2::Sha512::digest(key.to_bytes());
        let mut scalar = [0u8; 32];
        scalar.copy_from_slice(&digest[..32]);
        scalar[0] &= 248;
        scalar[31] &= 127;
        scalar[31] |= 64;
        Self {
            scalar,
            public: key.verifying_key().to_bytes(),
        }
    }

    fn generate() -> Self {
        Self::from_signing_key(&SigningKey::generate(&mut OsRng))
    }

    /// `crypto_scalarmult_ed25519_noclamp(scalar, remote)` with libsodium's point checks.
    fn dh(&self, remote: &[u8; PKLEN]) -> Result<[u8; PKLEN], NoiseError> {
        let compressed = CompressedEdwardsY(*remote);
        let point = compressed.decompress().ok_or(NoiseError::BadPublicKey)?;
        // libsodium rejects non-canonical encodings, small-order points and points outside the
        // prime-order subgroup; mirror that so a hostile key can't force a weak shared secret.
        if point.compress() != compressed || point.is_small_order() || !point.is_torsion_free() {
            return Err(NoiseError::BadPublicKey);
        }
        let out = point.mul_clamped(self.scalar).compress().to_bytes();
        if out == IDENTITY {
            return Err(NoiseError::BadPublicKey);
        }
        Ok(out)
    }
}

/// Compressed encoding of the identity point (y = 1), which libsodium refuses as a DH result.
const IDENTITY: [u8; 32] = {
    let mut b = [0u8; 32];
    b[0] = 1;
    b
};

/// BLAKE2b-512 of the concatenation of `parts` (libsodium `crypto_generichash_batch`, 64 bytes).
fn hash(parts: &[&[u8]]) -> [u8; HASHLEN] {
    let mut h = Blake2b512::new();
    for p in parts {
        Digest::update(&mut h, p);
    }
    h.finalize().into()
}

/// HMAC-BLAKE2b as `noise-handshake/hmac.js` (block length 128, output 64).
fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; HASHLEN] {
    const BLOCKLEN: usize = 128;
    let mut k = [0u8; BLOCKLEN];
    if key.len() > BLOCKLEN {
        k[..HASHLEN].copy_from_slice(&hash(&[key]));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut ipad = [0u8; BLOCKLEN];
    let mut opad = [0u8; BLOCKLEN];
    for i in 0..BLOCKLEN {
        ipad[i] = k[i] ^ 0x36;
        opad[i] = k[i] ^ 0x5c;
    }
    let mut inner_parts: Vec<&[u8]> = vec![&ipad];
    inner_parts.extend_from_slice(parts);
    let inner = hash(&inner_parts);
    hash(&[&opad, &inner])
}

/// HKDF with two 64-byte outputs (`noise-handshake/hkdf.js` with empty info).
fn hkdf2(salt: &[u8], ikm: &[u8]) -> ([u8; HASHLEN], [u8; HASHLEN]) {
    let prk = hmac(salt, &[ikm]);
    let out1 = hmac(&prk, &[&[1u8]]);
    let out2 = hmac(&prk, &[&out1, &[2u8]]);
    (out1, out2)
}

/// ChaCha20-Poly1305 IETF nonce as `noise-handshake/cipher.js`: u32 LE counter at offset 4.
fn nonce(counter: u32) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..8].copy_from_slice(&counter.to_le_bytes());
    n
}

/// Noise symmetric state: chaining key, hash and the current cipher key.
struct Symmetric {
    ck: [u8; HASHLEN],
    h: [u8; HASHLEN],
    key: Option<[u8; 32]>,
    counter: u32,
}

impl Symmetric {
    /// `initialise(prologue)` of noise-handshake for a protocol `name` of at most HASHLEN bytes:
    /// h = name zero-padded; ck = h; then mixHash(prologue).
    fn new(name: &[u8], prologue: &[u8]) -> Self {
        let mut h = [0u8; HASHLEN];
        h[..name.len()].copy_from_slice(name);
        let mut s = Self {
            ck: h,
            h,
            key: None,
            counter: 0,
        };
        s.mix_hash(prologue);
        s
    }

    fn mix_hash(&mut self, data: &[u8]) {
        self.h = hash(&[&self.h, data]);
    }

    fn mix_key(&mut self, dh: &[u8]) {
        let (ck, k) = hkdf2(&self.ck, dh);
        self.ck = ck;
        let mut key = [0u8; 32];
        key.copy_from_slice(&k[..32]);
        self.key = Some(key);
        self.counter = 0;
    }

    fn encrypt_and_hash(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let out = match self.key {
            None => plaintext.to_vec(),
            Some(key) => {
                let cipher = ChaCha20Poly1305::new(&key.into());
                let payload = Payload {
                    msg: plaintext,
                    aad: &self.h,
                };
                let ct = cipher
                    .encrypt(&nonce(self.counter).into(), payload)
                    .expect("chacha20poly1305 encryption of a handshake field cannot fail");
                self.counter += 1;
                ct
            }
        };
        self.mix_hash(&out);
        out
    }

    fn decrypt_and_hash(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>, NoiseError> {
        let out = match self.key {
            None => ciphertext.to_vec(),
            Some(key) => {
                let cipher = ChaCha20Poly1305::new(&key.into());
                let payload = Payload {
                    msg: ciphertext,
                    aad: &self.h,
                };
                let pt = cipher
                    .decrypt(&nonce(self.counter).into(), payload)
                    .map_err(|_| NoiseError::Decrypt)?;
                self.counter += 1;
                pt
            }
        };
        self.mix_hash(ciphertext);
        Ok(out)
    }

    fn split(&self) -> ([u8; 32], [u8; 32]) {
        let (k1, k2) = hkdf2(&self.ck, &[]);
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        a.copy_from_slice(&k1[..32]);
        b.copy_from_slice(&k2[..32]);
        (a, b)
    }
}

/// The state both handshake patterns share (`HandshakeState` of the Noise spec §5.3): the
/// symmetric state, our static and ephemeral key pairs, the remote's keys as they are learned,
/// and the outcome once the pattern is finished. [`NoiseXx`] and [`NoiseIk`] keep only their
/// step and the order of the tokens.
struct HandshakeState {
    initiator: bool,
    sym: Symmetric,
    s: DhKeyPair,
    e: Option<DhKeyPair>,
    re: Option<[u8; PKLEN]>,
    rs: Option<[u8; PKLEN]>,
    outcome: Option<HandshakeOutcome>,
}

impl std::fmt::Debug for HandshakeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.debug_struct("HandshakeState")
            .field("initiator", &self.initiator)
            .field("finished", &self.outcome.is_some())
            .finish_non_exhaustive()
    }
}

impl HandshakeState {
    fn new(initiator: bool, protocol_name: &[u8], prologue: &[u8], s: &SigningKey) -> Self {
        Self {
            initiator,
            sym: Symmetric::new(protocol_name, prologue),
            s: DhKeyPair::from_signing_key(s),
            e: None,
            re: None,
            rs: None,
            outcome: None,
        }
    }

    /// Test hook: use the ed25519 key from `seed` as our ephemeral key (JS vectors set `noise.e`).
    #[cfg(test)]
    fn set_ephemeral_seed(&mut self, seed: [u8; 32]) {
        self.e = Some(DhKeyPair::from_signing_key(&SigningKey::from_bytes(&seed)));
    }

    /// Token `e` (write): our ephemeral key (the test hook's, else a fresh one), hashed and
    /// appended to `out`. The caller puts it back in `self.e` once its DHs are done.
    fn write_e(&mut self, out: &mut Vec<u8>) -> DhKeyPair {
        let e = self.e.take().unwrap_or_else(DhKeyPair::generate);
        self.sym.mix_hash(&e.public);
        out.extend_from_slice(&e.public);
        e
    }

    /// Token `e` (read): the remote's ephemeral key, the first [`PKLEN`] bytes of `msg`.
    fn read_e(&mut self, msg: &[u8]) -> [u8; PKLEN] {
        let re = to_key(&msg[..PKLEN]);
        self.sym.mix_hash(&re);
        self.re = Some(re);
        re
    }

    /// Token `s` (write): our static public key, encrypted, appended to `out`.
    fn write_s(&mut self, out: &mut Vec<u8>) {
        let s_pub = self.s.public;
        out.extend(self.sym.encrypt_and_hash(&s_pub));
    }

    /// Token `s` (read): the remote's static key from its ciphertext (`PKLEN + MACLEN` bytes).
    fn read_s(&mut self, ciphertext: &[u8]) -> Result<[u8; PKLEN], NoiseError> {
        let rs = to_key(&self.sym.decrypt_and_hash(ciphertext)?);
        self.rs = Some(rs);
        Ok(rs)
    }

    /// The remote's ephemeral key, or [`NoiseError::OutOfTurn`] before it was read.
    fn remote_e(&self) -> Result<[u8; PKLEN], NoiseError> {
        self.re.ok_or(NoiseError::OutOfTurn)
    }

    /// The remote's static key, or [`NoiseError::OutOfTurn`] before it is known.
    fn remote_s(&self) -> Result<[u8; PKLEN], NoiseError> {
        self.rs.ok_or(NoiseError::OutOfTurn)
    }

    /// Our ephemeral key pair, or [`NoiseError::OutOfTurn`] before it was written.
    fn local_e(&self) -> Result<&DhKeyPair, NoiseError> {
        self.e.as_ref().ok_or(NoiseError::OutOfTurn)
    }

    /// Splits the symmetric state into the transport keys (initiator sends with the first) and
    /// records the outcome; the ephemeral key is dropped.
    fn finish(&mut self) -> Result<(), NoiseError> {
        let (k1, k2) = self.sym.split();
        let (tx, rx) = if self.initiator { (k1, k2) } else { (k2, k1) };
        let remote_public_key = self.remote_s()?;
        self.outcome = Some(HandshakeOutcome {
            tx,
            rx,
            handshake_hash: self.sym.h,
            remote_public_key,
        });
        self.e = None;
        Ok(())
    }

    /// Ends a failed handshake: no outcome, no ephemeral key.
    fn fail(&mut self) {
        self.e = None;
        self.outcome = None;
    }
}

fn to_key(b: &[u8]) -> [u8; PKLEN] {
    let mut k = [0u8; PKLEN];
    k.copy_from_slice(&b[..PKLEN]);
    k
}

/// Keyed BLAKE2b-256 (libsodium `crypto_generichash(out32, input, key)`), key up to 64 bytes.
pub(crate) fn keyed_hash32(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Blake2bMac<blake2::digest::consts::U32> as Mac>::new_from_slice(key)
        .expect("BLAKE2b keys of up to 64 bytes are valid");
    for p in parts {
        Mac::update(&mut mac, p);
    }
    mac.finalize_fixed().into()
}

#[cfg(test)]
mod tests;
