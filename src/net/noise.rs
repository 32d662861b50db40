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

/// Where in the three-message XX pattern we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Next: message 1 (initiator sends, responder receives).
    Msg1,
    /// Next: message 2.
    Msg2,
    /// Next: message 3.
    Msg3,
    /// Finished.
    Done,
}

/// Sizes of XX messages with empty payloads: e | e,ee,s,es | s,se.
const MSG1_LEN: usize = PKLEN;
const MSG2_LEN: usize = PKLEN + (PKLEN + MACLEN) + MACLEN;
const MSG3_LEN: usize = (PKLEN + MACLEN) + MACLEN;

/// The XX handshake state machine. Call [`NoiseXx::write_message`] when it is our turn and
/// [`NoiseXx::read_message`] with each received (unframed) message; [`NoiseXx::outcome`] is
/// `Some` once all three messages have been processed.
pub struct NoiseXx {
    initiator: bool,
    sym: Symmetric,
    s: DhKeyPair,
    e: Option<DhKeyPair>,
    re: Option<[u8; PKLEN]>,
    rs: Option<[u8; PKLEN]>,
    step: Step,
    outcome: Option<HandshakeOutcome>,
}

impl std::fmt::Debug for NoiseXx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoiseXx")
            .field("initiator", &self.initiator)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl NoiseXx {
    /// A new handshake. `static_key` is our ed25519 identity; its public key is what the remote
    /// learns as our `remote_public_key`.
    pub fn new(initiator: bool, static_key: &SigningKey) -> Self {
        Self {
            initiator,
            sym: Symmetric::new(PROTOCOL_NAME, &[]),
            s: DhKeyPair::from_signing_key(static_key),
            e: None,
            re: None,
            rs: None,
            step: Step::Msg1,
            outcome: None,
        }
    }

    /// Test hook: use the ed25519 key from `seed` as our ephemeral key (JS vectors set `noise.e`).
    #[cfg(test)]
    fn set_ephemeral_seed(&mut self, seed: [u8; 32]) {
        self.e = Some(DhKeyPair::from_signing_key(&SigningKey::from_bytes(&seed)));
    }

    /// True when the next message is ours to write.
    pub fn is_my_turn(&self) -> bool {
        match self.step {
            Step::Msg1 | Step::Msg3 => self.initiator,
            Step::Msg2 => !self.initiator,
            Step::Done => false,
        }
    }

    /// Keys and remote identity, once the handshake has finished.
    pub fn outcome(&self) -> Option<&HandshakeOutcome> {
        self.outcome.as_ref()
    }

    /// Writes our next handshake message (empty payload), unframed.
    ///
    /// Errors: [`NoiseError::OutOfTurn`] if it is not our turn; [`NoiseError::BadPublicKey`] if
    /// a DH with the remote's keys fails.
    pub fn write_message(&mut self) -> Result<Vec<u8>, NoiseError> {
        if !self.is_my_turn() {
            return Err(NoiseError::OutOfTurn);
        }
        let mut out = Vec::with_capacity(MSG2_LEN);
        match self.step {
            Step::Msg1 => {
                let e = self.e.take().unwrap_or_else(DhKeyPair::generate);
                self.sym.mix_hash(&e.public);
                out.extend_from_slice(&e.public);
                self.e = Some(e);
                out.extend(self.sym.encrypt_and_hash(&[]));
                self.step = Step::Msg2;
            }
            Step::Msg2 => {
                let e = self.e.take().unwrap_or_else(DhKeyPair::generate);
                self.sym.mix_hash(&e.public);
                out.extend_from_slice(&e.public);
                let re = self.re.ok_or(NoiseError::OutOfTurn)?;
                self.sym.mix_key(&e.dh(&re)?); // ee
                self.e = Some(e);
                let s_pub = self.s.public;
                out.extend(self.sym.encrypt_and_hash(&s_pub)); // s
                self.sym.mix_key(&self.s.dh(&re)?); // es (responder: local s, remote e)
                out.extend(self.sym.encrypt_and_hash(&[]));
                self.step = Step::Msg3;
            }
            Step::Msg3 => {
                let s_pub = self.s.public;
                out.extend(self.sym.encrypt_and_hash(&s_pub)); // s
                let re = self.re.ok_or(NoiseError::OutOfTurn)?;
                self.sym.mix_key(&self.s.dh(&re)?); // se (initiator: local s, remote e)
                out.extend(self.sym.encrypt_and_hash(&[]));
                self.finish()?;
            }
            Step::Done => return Err(NoiseError::OutOfTurn),
        }
        Ok(out)
    }

    /// Processes one received handshake message (unframed). Returns its decrypted payload
    /// (always empty with secret-stream peers).
    ///
    /// Errors: [`NoiseError::OutOfTurn`] if we expected to write; [`NoiseError::BadLength`] if
    /// the size is wrong for the step; [`NoiseError::BadPublicKey`] / [`NoiseError::Decrypt`] if
    /// the peer's keys or ciphertexts are invalid.
    pub fn read_message(&mut self, msg: &[u8]) -> Result<Vec<u8>, NoiseError> {
        if self.is_my_turn() || self.step == Step::Done {
            return Err(NoiseError::OutOfTurn);
        }
        // Payloads are empty in secret-stream, but accept (and return) any payload after the
        // fixed part, as noise-handshake does.
        let (step_no, min) = match self.step {
            Step::Msg1 => (1, MSG1_LEN),
            Step::Msg2 => (2, MSG2_LEN),
            _ => (3, MSG3_LEN),
        };
        if msg.len() < min || msg.len() > 65535 {
            return Err(NoiseError::BadLength {
                step: step_no,
                expected: min,
                got: msg.len(),
            });
        }
        let payload = match self.step {
            Step::Msg1 => {
                let re = to_key(&msg[..PKLEN]);
                self.sym.mix_hash(&re);
                self.re = Some(re);
                let p = self.sym.decrypt_and_hash(&msg[PKLEN..])?;
                self.step = Step::Msg2;
                p
            }
            Step::Msg2 => {
                let re = to_key(&msg[..PKLEN]);
                self.sym.mix_hash(&re);
                self.re = Some(re);
                let e = self.e.as_ref().ok_or(NoiseError::OutOfTurn)?;
                let ee = e.dh(&re)?;
                self.sym.mix_key(&ee);
                let rs = self
                    .sym
                    .decrypt_and_hash(&msg[PKLEN..PKLEN + PKLEN + MACLEN])?;
                let rs = to_key(&rs);
                self.rs = Some(rs);
                let es = e.dh(&rs)?; // es (initiator: local e, remote s)
                self.sym.mix_key(&es);
                let p = self.sym.decrypt_and_hash(&msg[PKLEN + PKLEN + MACLEN..])?;
                self.step = Step::Msg3;
                p
            }
            _ => {
                let rs = self.sym.decrypt_and_hash(&msg[..PKLEN + MACLEN])?;
                let rs = to_key(&rs);
                self.rs = Some(rs);
                let e = self.e.as_ref().ok_or(NoiseError::OutOfTurn)?;
                let se = e.dh(&rs)?; // se (responder: local e, remote s)
                self.sym.mix_key(&se);
                let p = self.sym.decrypt_and_hash(&msg[PKLEN + MACLEN..])?;
                self.finish()?;
                p
            }
        };
        Ok(payload)
    }

    fn finish(&mut self) -> Result<(), NoiseError> {
        let (k1, k2) = self.sym.split();
        let (tx, rx) = if self.initiator { (k1, k2) } else { (k2, k1) };
        let remote_public_key = self.rs.ok_or(NoiseError::OutOfTurn)?;
        self.outcome = Some(HandshakeOutcome {
            tx,
            rx,
            handshake_hash: self.sym.h,
            remote_public_key,
        });
        self.e = None;
        self.step = Step::Done;
        Ok(())
    }
}

/// Sizes of the fixed parts of IK messages: `e, es, s(encrypted), ss` + payload MAC, and
/// `e, ee, se` + payload MAC.
const IK_MSG1_MIN: usize = PKLEN + (PKLEN + MACLEN) + MACLEN;
const IK_MSG2_MIN: usize = PKLEN + MACLEN;

/// Where in the two-message IK pattern we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IkStep {
    /// Next: message 1 (initiator sends, responder receives).
    Msg1,
    /// Next: message 2 (responder sends, initiator receives).
    Msg2,
    /// Finished (or failed: a failed handshake never continues).
    Done,
}

/// The Noise IK handshake as hyperdht 6.34.0 runs it between two peers (`lib/noise-wrap.js`:
/// `new NoiseHandshake('IK', isInitiator, keyPair, { curve: noise-curve-ed })`,
/// `initialise(NS.PEER_HANDSHAKE, remotePublicKey)`), and as a non-custodial
/// `@hyperswarm/dht-relay` 0.4.3 client runs it (`lib/handshake.js`) with the messages the relay
/// carries. Unlike [`NoiseXx`] the messages carry payloads (hyperdht: an encoded
/// `noisePayload`, see [`super::hyperdht::NoisePayload`]).
///
/// The initiator calls [`NoiseIk::write_message`] then [`NoiseIk::read_message`]; the
/// responder the other way round. [`NoiseIk::outcome`] is `Some` after the second message.
/// Any error leaves the state finished without an outcome.
pub struct NoiseIk {
    initiator: bool,
    sym: Symmetric,
    s: DhKeyPair,
    e: Option<DhKeyPair>,
    re: Option<[u8; PKLEN]>,
    rs: Option<[u8; PKLEN]>,
    step: IkStep,
    outcome: Option<HandshakeOutcome>,
}

impl std::fmt::Debug for NoiseIk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoiseIk")
            .field("initiator", &self.initiator)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl NoiseIk {
    /// The initiator's side: `static_key` is our ed25519 identity, `remote_public_key` the
    /// responder's (32 bytes, known in advance), `prologue` any bytes both sides agree on
    /// (hyperdht: [`super::hyperdht::ns_peer_handshake`], 32 bytes).
    pub fn initiator(
        static_key: &SigningKey,
        remote_public_key: [u8; PKLEN],
        prologue: &[u8],
    ) -> Self {
        let mut hs = Self::new(true, static_key, prologue);
        // Pre-message `<- s`: both sides hash the responder's static key.
        hs.sym.mix_hash(&remote_public_key);
        hs.rs = Some(remote_public_key);
        hs
    }

    /// The responder's side: `static_key` is our identity (the key the initiator dialled).
    pub fn responder(static_key: &SigningKey, prologue: &[u8]) -> Self {
        let mut hs = Self::new(false, static_key, prologue);
        let s_pub = hs.s.public;
        hs.sym.mix_hash(&s_pub);
        hs
    }

    fn new(initiator: bool, static_key: &SigningKey, prologue: &[u8]) -> Self {
        Self {
            initiator,
            sym: Symmetric::new(IK_PROTOCOL_NAME, prologue),
            s: DhKeyPair::from_signing_key(static_key),
            e: None,
            re: None,
            rs: None,
            step: IkStep::Msg1,
            outcome: None,
        }
    }

    /// Test hook: use the ed25519 key from `seed` as our ephemeral key (JS vectors set `noise.e`).
    #[cfg(test)]
    fn set_ephemeral_seed(&mut self, seed: [u8; 32]) {
        self.e = Some(DhKeyPair::from_signing_key(&SigningKey::from_bytes(&seed)));
    }

    /// True for the side that sent (or will send) message 1.
    pub fn is_initiator(&self) -> bool {
        self.initiator
    }

    /// True when the next message is ours to write.
    pub fn is_my_turn(&self) -> bool {
        match self.step {
            IkStep::Msg1 => self.initiator,
            IkStep::Msg2 => !self.initiator,
            IkStep::Done => false,
        }
    }

    /// The remote's static public key: known from the start for the initiator, after reading
    /// message 1 for the responder.
    pub fn remote_public_key(&self) -> Option<[u8; PKLEN]> {
        self.rs
    }

    /// Keys and remote identity, once both messages have been processed.
    pub fn outcome(&self) -> Option<&HandshakeOutcome> {
        self.outcome.as_ref()
    }

    /// Writes our next handshake message carrying `payload` (encrypted; at most
    /// [`MAX_MESSAGE_LEN`] minus the fixed part, 96 bytes for message 1 and 48 for message 2).
    ///
    /// Errors: [`NoiseError::OutOfTurn`] if it is not our turn; [`NoiseError::BadLength`] for a
    /// payload that makes the message too long; [`NoiseError::BadPublicKey`] if a DH with the
    /// remote's keys fails (the handshake is then over).
    pub fn write_message(&mut self, payload: &[u8]) -> Result<Vec<u8>, NoiseError> {
        if !self.is_my_turn() {
            return Err(NoiseError::OutOfTurn);
        }
        let (step_no, fixed) = match self.step {
            IkStep::Msg1 => (1, IK_MSG1_MIN),
            _ => (2, IK_MSG2_MIN),
        };
        if fixed + payload.len() > MAX_MESSAGE_LEN {
            return Err(NoiseError::BadLength {
                step: step_no,
                expected: MAX_MESSAGE_LEN,
                got: fixed + payload.len(),
            });
        }
        let r = self.write_inner(payload);
        if r.is_err() {
            self.fail();
        }
        r
    }

    fn write_inner(&mut self, payload: &[u8]) -> Result<Vec<u8>, NoiseError> {
        let mut out = Vec::with_capacity(IK_MSG1_MIN + payload.len());
        let e = self.e.take().unwrap_or_else(DhKeyPair::generate);
        self.sym.mix_hash(&e.public);
        out.extend_from_slice(&e.public);
        match self.step {
            IkStep::Msg1 => {
                let rs = self.rs.ok_or(NoiseError::OutOfTurn)?;
                self.sym.mix_key(&e.dh(&rs)?); // es (initiator: local e, remote s)
                let s_pub = self.s.public;
                out.extend(self.sym.encrypt_and_hash(&s_pub)); // s
                self.sym.mix_key(&self.s.dh(&rs)?); // ss
                out.extend(self.sym.encrypt_and_hash(payload));
                self.e = Some(e);
                self.step = IkStep::Msg2;
            }
            _ => {
                let re = self.re.ok_or(NoiseError::OutOfTurn)?;
                let rs = self.rs.ok_or(NoiseError::OutOfTurn)?;
                self.sym.mix_key(&e.dh(&re)?); // ee
                self.sym.mix_key(&e.dh(&rs)?); // se (responder: local e, remote s)
                out.extend(self.sym.encrypt_and_hash(payload));
                self.finish()?;
            }
        }
        Ok(out)
    }

    /// Processes one received handshake message and returns its decrypted payload.
    ///
    /// Errors: [`NoiseError::OutOfTurn`] if we expected to write (or the handshake is over);
    /// [`NoiseError::BadLength`] below the fixed size (96 bytes for message 1, 48 for message 2)
    /// or above [`MAX_MESSAGE_LEN`]; [`NoiseError::BadPublicKey`] / [`NoiseError::Decrypt`] for
    /// invalid keys or tampered ciphertext. After an error the handshake is over.
    pub fn read_message(&mut self, msg: &[u8]) -> Result<Vec<u8>, NoiseError> {
        if self.is_my_turn() || self.step == IkStep::Done {
            return Err(NoiseError::OutOfTurn);
        }
        let (step_no, min) = match self.step {
            IkStep::Msg1 => (1, IK_MSG1_MIN),
            _ => (2, IK_MSG2_MIN),
        };
        if msg.len() < min || msg.len() > MAX_MESSAGE_LEN {
            self.fail();
            return Err(NoiseError::BadLength {
                step: step_no,
                expected: min,
                got: msg.len(),
            });
        }
        let r = self.read_inner(msg);
        if r.is_err() {
            self.fail();
        }
        r
    }

    fn read_inner(&mut self, msg: &[u8]) -> Result<Vec<u8>, NoiseError> {
        let re = to_key(&msg[..PKLEN]);
        self.sym.mix_hash(&re);
        self.re = Some(re);
        match self.step {
            IkStep::Msg1 => {
                self.sym.mix_key(&self.s.dh(&re)?); // es (responder: local s, remote e)
                let rs = self
                    .sym
                    .decrypt_and_hash(&msg[PKLEN..PKLEN + PKLEN + MACLEN])?;
                let rs = to_key(&rs);
                self.rs = Some(rs);
                self.sym.mix_key(&self.s.dh(&rs)?); // ss
                let p = self.sym.decrypt_and_hash(&msg[PKLEN + PKLEN + MACLEN..])?;
                self.step = IkStep::Msg2;
                Ok(p)
            }
            _ => {
                let e = self.e.as_ref().ok_or(NoiseError::OutOfTurn)?;
                let ee = e.dh(&re)?;
                self.sym.mix_key(&ee); // ee
                self.sym.mix_key(&self.s.dh(&re)?); // se (initiator: local s, remote e)
                let p = self.sym.decrypt_and_hash(&msg[PKLEN..])?;
                self.finish()?;
                Ok(p)
            }
        }
    }

    fn fail(&mut self) {
        self.e = None;
        self.step = IkStep::Done;
        self.outcome = None;
    }

    fn finish(&mut self) -> Result<(), NoiseError> {
        let (k1, k2) = self.sym.split();
        let (tx, rx) = if self.initiator { (k1, k2) } else { (k2, k1) };
        let remote_public_key = self.rs.ok_or(NoiseError::OutOfTurn)?;
        self.outcome = Some(HandshakeOutcome {
            tx,
            rx,
            handshake_hash: self.sym.h,
            remote_public_key,
        });
        self.e = None;
        self.step = IkStep::Done;
        Ok(())
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
mod tests {
    use super::*;

    fn pair() -> (NoiseXx, NoiseXx, SigningKey, SigningKey) {
        let a = SigningKey::generate(&mut OsRng);
        let b = SigningKey::generate(&mut OsRng);
        (NoiseXx::new(true, &a), NoiseXx::new(false, &b), a, b)
    }

    #[test]
    fn xx_roundtrip_agrees_on_keys_and_hash() {
        let (mut i, mut r, a, b) = pair();
        let m1 = i.write_message().unwrap();
        assert_eq!(m1.len(), 32);
        r.read_message(&m1).unwrap();
        let m2 = r.write_message().unwrap();
        assert_eq!(m2.len(), 96);
        i.read_message(&m2).unwrap();
        let m3 = i.write_message().unwrap();
        assert_eq!(m3.len(), 64);
        r.read_message(&m3).unwrap();
        let (oi, or) = (i.outcome().unwrap(), r.outcome().unwrap());
        assert_eq!(oi.tx, or.rx);
        assert_eq!(oi.rx, or.tx);
        assert_ne!(oi.tx, oi.rx);
        assert_eq!(oi.handshake_hash, or.handshake_hash);
        assert_eq!(oi.remote_public_key, b.verifying_key().to_bytes());
        assert_eq!(or.remote_public_key, a.verifying_key().to_bytes());
    }

    /// Printed by `node tests/js/noise_vectors.js` (noise-handshake + noise-curve-ed as
    /// secret-stream 6.9.2 uses them): statics from seeds 01.. / 03.., ephemerals 02.. / 04...
    #[test]
    fn handshake_matches_js_vectors() {
        const MSG1: &str = "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394";
        const MSG2: &str = "ca93ac1705187071d67b83c7ff0efe8108e8ec4530575d7726879333dbdabe7c4d9e7de3cc9a6378ec7fc7cfdae288cac5c0f41a9197adb9213804de129ddca06a55cc9062361dd6ea395fe2f6c25fdd2204cd9188549881c1e0dfad769ddbcc";
        const MSG3: &str = "4e7f5acd10d28ef757ccacec8caff9ca4f7f8b305f457914800d56c160e90feed0e601ca181e4a2af39f2d3bb8020f7b0554bc91296be4be0ee974372b9c6013";
        const HASH: &str = "6c66d9f3b7da972c50ec4867d6866862a7386b3c2a0a24dacfb8d33ae0f2610fc0b1ec8c9fc89e93a50038a04149805775f30d4d6a3eb003328e907a3d312d0f";
        const TX: &str = "da3ea403820846d555bdbbd22bd530d686fb57ae98daa541a15b5b4f12d02fae";
        const RX: &str = "42fa8a7e955cb0bef6c9112e7743f70205a60b4b1d246b728ca36b04ab7ede61";
        let mut i = NoiseXx::new(true, &SigningKey::from_bytes(&[1; 32]));
        let mut r = NoiseXx::new(false, &SigningKey::from_bytes(&[3; 32]));
        i.set_ephemeral_seed([2; 32]);
        r.set_ephemeral_seed([4; 32]);
        let m1 = i.write_message().unwrap();
        assert_eq!(hex::encode(&m1), MSG1);
        r.read_message(&m1).unwrap();
        let m2 = r.write_message().unwrap();
        assert_eq!(hex::encode(&m2), MSG2);
        i.read_message(&m2).unwrap();
        let m3 = i.write_message().unwrap();
        assert_eq!(hex::encode(&m3), MSG3);
        r.read_message(&m3).unwrap();
        let (oi, or) = (i.outcome().unwrap(), r.outcome().unwrap());
        assert_eq!(hex::encode(oi.handshake_hash), HASH);
        assert_eq!(hex::encode(or.handshake_hash), HASH);
        assert_eq!(
            (hex::encode(oi.tx), hex::encode(oi.rx)),
            (TX.into(), RX.into())
        );
        assert_eq!((oi.tx, oi.rx), (or.rx, or.tx));
    }

    /// Printed by `node tests/js/noise_ik_vectors.js` (noise-handshake 4.2.0 IK + noise-curve-ed
    /// as hyperdht 6.34.0 runs it): initiator static seed 06.., ephemeral 07..; responder static
    /// 05.., ephemeral 08..; prologue NS.PEER_HANDSHAKE; payloads are noisePayloads.
    #[test]
    fn ik_handshake_matches_js_vectors() {
        const PROLOGUE: &str = "14d6d4b49214ab1033ed204976caa258bae9e1e8543b9ad1fd996a910b0c4e3a";
        const P1: &str = "011a0001017f00000149c20101070001";
        const P2: &str = "01000000";
        const MSG1: &str = "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c38ffdd3bf8cf7b345e2a3c3099e617e54dbb3dd6d9f9f0ec999e53b7482bdb4f25b694f689d8c0856cef8221f6dabdaf5c5e222f0e6e009c5b4ff044d275ff73e472d90b9fe1c9c5435b15f97f5a49c9";
        const MSG2: &str = "1398f62c6d1a457c51ba6a4b5f3dbd2f69fca93216218dc8997e416bd17d93ca3b996bb3e8af6697bc7684c58112784d6c5204b9";
        const HASH: &str = "ea6a17c46c9ab6290bd8db38474be3cf48c7289107e8799c4d80357871320dc4fa9d455adb313607967c35b712b17ededf9ce77010adb57896e3e36d599edc59";
        const TX: &str = "44c52671976283c2424e72b1e5e66a59b92ed38fe25fb547bdec089340c72990";
        const RX: &str = "1654f9623469102fcbb53511b756a5513b0db9286ac17fcc48af91dabbf22a28";
        let prologue = hex::decode(PROLOGUE).unwrap();
        let server = SigningKey::from_bytes(&[5; 32]);
        let client = SigningKey::from_bytes(&[6; 32]);
        let mut i = NoiseIk::initiator(&client, server.verifying_key().to_bytes(), &prologue);
        let mut r = NoiseIk::responder(&server, &prologue);
        i.set_ephemeral_seed([7; 32]);
        r.set_ephemeral_seed([8; 32]);
        assert!(i.is_my_turn() && !r.is_my_turn());
        let m1 = i.write_message(&hex::decode(P1).unwrap()).unwrap();
        assert_eq!(hex::encode(&m1), MSG1);
        assert_eq!(hex::encode(r.read_message(&m1).unwrap()), P1);
        assert_eq!(
            r.remote_public_key(),
            Some(client.verifying_key().to_bytes())
        );
        let m2 = r.write_message(&hex::decode(P2).unwrap()).unwrap();
        assert_eq!(hex::encode(&m2), MSG2);
        assert_eq!(hex::encode(i.read_message(&m2).unwrap()), P2);
        let (oi, or) = (i.outcome().unwrap(), r.outcome().unwrap());
        assert_eq!(hex::encode(oi.handshake_hash), HASH);
        assert_eq!(hex::encode(or.handshake_hash), HASH);
        assert_eq!(
            (hex::encode(oi.tx), hex::encode(oi.rx)),
            (TX.into(), RX.into())
        );
        assert_eq!((oi.tx, oi.rx), (or.rx, or.tx));
        assert_eq!(oi.remote_public_key, server.verifying_key().to_bytes());
        assert_eq!(or.remote_public_key, client.verifying_key().to_bytes());
        // Both messages are spent.
        assert_eq!(i.write_message(&[]), Err(NoiseError::OutOfTurn));
        assert_eq!(r.read_message(&m1), Err(NoiseError::OutOfTurn));
    }

    #[test]
    fn ik_to_the_wrong_key_or_tampered_fails_cleanly() {
        let server = SigningKey::generate(&mut OsRng);
        let other = SigningKey::generate(&mut OsRng);
        let client = SigningKey::generate(&mut OsRng);
        // The initiator dialled another key than the responder holds: msg1 does not decrypt.
        let mut i = NoiseIk::initiator(&client, other.verifying_key().to_bytes(), b"p");
        let mut r = NoiseIk::responder(&server, b"p");
        let m1 = i.write_message(b"hello").unwrap();
        assert_eq!(r.read_message(&m1), Err(NoiseError::Decrypt));
        assert_eq!(r.write_message(b""), Err(NoiseError::OutOfTurn));
        // Another prologue fails too.
        let mut i = NoiseIk::initiator(&client, server.verifying_key().to_bytes(), b"p");
        let mut r = NoiseIk::responder(&server, b"q");
        assert_eq!(
            r.read_message(&i.write_message(b"").unwrap()),
            Err(NoiseError::Decrypt)
        );
        // A tampered msg2, a short one, garbage and a small-order ephemeral are errors.
        let mut i = NoiseIk::initiator(&client, server.verifying_key().to_bytes(), b"p");
        let mut r = NoiseIk::responder(&server, b"p");
        assert_eq!(
            r.read_message(&i.write_message(b"x").unwrap()).unwrap(),
            b"x"
        );
        let mut m2 = r.write_message(b"y").unwrap();
        assert!(r.outcome().is_some());
        m2[40] ^= 1;
        assert_eq!(i.read_message(&m2), Err(NoiseError::Decrypt));
        assert!(i.outcome().is_none());
        let mut r = NoiseIk::responder(&server, b"p");
        assert!(matches!(
            r.read_message(&[0u8; 95]),
            Err(NoiseError::BadLength { step: 1, .. })
        ));
        let mut r = NoiseIk::responder(&server, b"p");
        let mut m1 = [0u8; 96];
        m1[0] = 1; // the identity point
        assert_eq!(r.read_message(&m1), Err(NoiseError::BadPublicKey));
        let mut r = NoiseIk::responder(&server, b"p");
        assert!(r.read_message(&[0x55; 200]).is_err());
        // A payload too large for one Noise message.
        let mut i = NoiseIk::initiator(&client, server.verifying_key().to_bytes(), b"p");
        assert!(matches!(
            i.write_message(&vec![0; MAX_MESSAGE_LEN]),
            Err(NoiseError::BadLength { .. })
        ));
    }

    #[test]
    fn tampered_message_fails_cleanly() {
        let (mut i, mut r, _, _) = pair();
        r.read_message(&i.write_message().unwrap()).unwrap();
        let mut m2 = r.write_message().unwrap();
        m2[40] ^= 1;
        assert_eq!(i.read_message(&m2), Err(NoiseError::Decrypt));
    }

    #[test]
    fn wrong_sizes_and_out_of_turn_are_errors() {
        let (mut i, mut r, _, _) = pair();
        assert!(matches!(
            r.read_message(&[0u8; 5]),
            Err(NoiseError::BadLength { step: 1, .. })
        ));
        assert_eq!(r.write_message(), Err(NoiseError::OutOfTurn));
        assert_eq!(i.read_message(&[0u8; 32]), Err(NoiseError::OutOfTurn));
    }

    #[test]
    fn invalid_remote_ephemeral_is_rejected() {
        let (_, mut r, _, _) = pair();
        // The identity point (y = 1) has small order.
        let mut m1 = [0u8; 32];
        m1[0] = 1;
        r.read_message(&m1).unwrap();
        assert_eq!(r.write_message(), Err(NoiseError::BadPublicKey));
    }

    #[test]
    fn namespaces_match_secret_stream_constants() {
        // NS_INITIATOR / NS_RESPONDER of @hyperswarm/secret-stream 6.9.2 (printed by node from
        // hypercore-crypto.namespace('hyperswarm/secret-stream', 3)).
        let ns = crate::hypercore::crypto::namespace(b"hyperswarm/secret-stream", 3);
        assert_eq!(
            hex::encode(ns[0]),
            "a931a0155b5c09e6d28628236af83c4b8a6af9af60986edeede9dc5d63192bf7"
        );
        assert_eq!(
            hex::encode(ns[1]),
            "742c9d833d430af4c48a8705e91631eecf295442bbca18996e597097723b1061"
        );
    }
}
