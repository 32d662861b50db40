//! The Noise `IK` pattern as hyperdht 6.34.0 runs it between peers (and a non-custodial
//! `@hyperswarm/dht-relay` 0.4.3 client): `<- s` known in advance, `-> e, es, s, ss` + payload,
//! `<- e, ee, se` + payload.

use ed25519_dalek::SigningKey;

use super::{
    HandshakeOutcome, HandshakeState, NoiseError, IK_PROTOCOL_NAME, MACLEN, MAX_MESSAGE_LEN, PKLEN,
};

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
/// carries. Unlike [`super::NoiseXx`] the messages carry payloads (hyperdht: an encoded
/// `noisePayload`, see [`crate::dht::NoisePayload`]).
///
/// The initiator calls [`NoiseIk::write_message`] then [`NoiseIk::read_message`]; the
/// responder the other way round. [`NoiseIk::outcome`] is `Some` after the second message.
/// Any error leaves the state finished without an outcome.
#[derive(Debug)]
pub struct NoiseIk {
    hs: HandshakeState,
    step: IkStep,
}

impl NoiseIk {
    /// The initiator's side: `static_key` is our ed25519 identity, `remote_public_key` the
    /// responder's (32 bytes, known in advance), `prologue` any bytes both sides agree on
    /// (hyperdht: [`crate::dht::ns_peer_handshake`], 32 bytes).
    pub fn initiator(
        static_key: &SigningKey,
        remote_public_key: [u8; PKLEN],
        prologue: &[u8],
    ) -> Self {
        let mut ik = Self::new(true, static_key, prologue);
        // Pre-message `<- s`: both sides hash the responder's static key.
        ik.hs.sym.mix_hash(&remote_public_key);
        ik.hs.rs = Some(remote_public_key);
        ik
    }

    /// The responder's side: `static_key` is our identity (the key the initiator dialled).
    pub fn responder(static_key: &SigningKey, prologue: &[u8]) -> Self {
        let mut ik = Self::new(false, static_key, prologue);
        let s_pub = ik.hs.s.public;
        ik.hs.sym.mix_hash(&s_pub);
        ik
    }

    fn new(initiator: bool, static_key: &SigningKey, prologue: &[u8]) -> Self {
        Self {
            hs: HandshakeState::new(initiator, IK_PROTOCOL_NAME, prologue, static_key),
            step: IkStep::Msg1,
        }
    }

    /// Test hook: use the ed25519 key from `seed` as our ephemeral key (JS vectors set `noise.e`).
    #[cfg(test)]
    pub(super) fn set_ephemeral_seed(&mut self, seed: [u8; 32]) {
        self.hs.set_ephemeral_seed(seed);
    }

    /// True for the side that sent (or will send) message 1.
    pub fn is_initiator(&self) -> bool {
        self.hs.initiator
    }

    /// True when the next message is ours to write.
    pub fn is_my_turn(&self) -> bool {
        match self.step {
            IkStep::Msg1 => self.hs.initiator,
            IkStep::Msg2 => !self.hs.initiator,
            IkStep::Done => false,
        }
    }

    /// The remote's static public key: known from the start for the initiator, after reading
    /// message 1 for the responder.
    pub fn remote_public_key(&self) -> Option<[u8; PKLEN]> {
        self.hs.rs
    }

    /// Keys and remote identity, once both messages have been processed.
    pub fn outcome(&self) -> Option<&HandshakeOutcome> {
        self.hs.outcome.as_ref()
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
        let hs = &mut self.hs;
        let mut out = Vec::with_capacity(IK_MSG1_MIN + payload.len());
        let e = hs.write_e(&mut out);
        match self.step {
            IkStep::Msg1 => {
                let rs = hs.remote_s()?;
                hs.sym.mix_key(&e.dh(&rs)?); // es (initiator: local e, remote s)
                hs.write_s(&mut out); // s
                hs.sym.mix_key(&hs.s.dh(&rs)?); // ss
                out.extend(hs.sym.encrypt_and_hash(payload));
                hs.e = Some(e);
                self.step = IkStep::Msg2;
            }
            _ => {
                let re = hs.remote_e()?;
                let rs = hs.remote_s()?;
                hs.sym.mix_key(&e.dh(&re)?); // ee
                hs.sym.mix_key(&e.dh(&rs)?); // se (responder: local e, remote s)
                out.extend(hs.sym.encrypt_and_hash(payload));
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
        let hs = &mut self.hs;
        let re = hs.read_e(msg);
        match self.step {
            IkStep::Msg1 => {
                hs.sym.mix_key(&hs.s.dh(&re)?); // es (responder: local s, remote e)
                let rs = hs.read_s(&msg[PKLEN..PKLEN + PKLEN + MACLEN])?;
                hs.sym.mix_key(&hs.s.dh(&rs)?); // ss
                let p = hs.sym.decrypt_and_hash(&msg[PKLEN + PKLEN + MACLEN..])?;
                self.step = IkStep::Msg2;
                Ok(p)
            }
            _ => {
                let ee = hs.local_e()?.dh(&re)?;
                hs.sym.mix_key(&ee); // ee
                hs.sym.mix_key(&hs.s.dh(&re)?); // se (initiator: local s, remote e)
                let p = hs.sym.decrypt_and_hash(&msg[PKLEN..])?;
                self.finish()?;
                Ok(p)
            }
        }
    }

    fn fail(&mut self) {
        self.hs.fail();
        self.step = IkStep::Done;
    }

    fn finish(&mut self) -> Result<(), NoiseError> {
        self.hs.finish()?;
        self.step = IkStep::Done;
        Ok(())
    }
}
