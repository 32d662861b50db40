//! Sans-IO Noise `XX` handshake, byte-compatible with npm `noise-handshake` 4.x using the
//! `noise-curve-ed` DH, which is what `@hyperswarm/secret-stream` 6.9.2 runs
//! (`Noise_XX_Ed25519_ChaChaPoly_BLAKE2b`).
//!
//! How it differs from textbook Noise (all taken from the JS modules, because interop depends on it):
//! - DH keys are **ed25519** key pairs (static and ephemeral). `DH(sk, P)` = compressed Edwards
//!   point `clamp(sha512(seed)[0..32]) * P` (libsodium `crypto_scalarmult_ed25519_noclamp`).
//! - HASH is BLAKE2b-512, HMAC is HMAC-BLAKE2b (block 128), HKDF outputs are 64 bytes and cipher
//!   keys are their first 32 bytes.
//! - The ChaChaPoly nonce is 4 zero bytes, the counter as u32 LE, then 4 zero bytes.
//! - Prologue is empty, handshake payloads are empty. The handshake hash (64 bytes) is exported.
//!
//! Messages: initiator `-> e` (32 bytes), responder `<- e, ee, s, es` (96 bytes), initiator
//! `-> s, se` (64 bytes). [`NoiseXx`] neither frames nor does IO; see `secret_stream`.

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
/// The protocol name hashed into the initial state (`noise-handshake` builds it the same way).
const PROTOCOL_NAME: &[u8] = b"Noise_XX_Ed25519_ChaChaPoly_BLAKE2b";

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
    fn new() -> Self {
        // Name fits in HASHLEN, so h = name zero-padded; ck = h; then mixHash(empty prologue).
        let mut h = [0u8; HASHLEN];
        h[..PROTOCOL_NAME.len()].copy_from_slice(PROTOCOL_NAME);
        let mut s = Self {
            ck: h,
            h,
            key: None,
            counter: 0,
        };
        s.mix_hash(&[]);
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
            sym: Symmetric::new(),
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
