//! The Noise `XX` pattern as `@hyperswarm/secret-stream` 6.9.2 runs it (empty prologue, empty
//! payloads): `-> e`, `<- e, ee, s, es`, `-> s, se`.

use ed25519_dalek::SigningKey;

use super::{HandshakeOutcome, HandshakeState, NoiseError, MACLEN, PKLEN, PROTOCOL_NAME};

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
#[derive(Debug)]
pub struct NoiseXx {
    hs: HandshakeState,
    step: Step,
}

impl NoiseXx {
    /// A new handshake. `static_key` is our ed25519 identity; its public key is what the remote
    /// learns as our `remote_public_key`.
    pub fn new(initiator: bool, static_key: &SigningKey) -> Self {
        Self {
            hs: HandshakeState::new(initiator, PROTOCOL_NAME, &[], static_key),
            step: Step::Msg1,
        }
    }

    /// Test hook: use the ed25519 key from `seed` as our ephemeral key (JS vectors set `noise.e`).
    #[cfg(test)]
    pub(super) fn set_ephemeral_seed(&mut self, seed: [u8; 32]) {
        self.hs.set_ephemeral_seed(seed);
    }

    /// True when the next message is ours to write.
    pub fn is_my_turn(&self) -> bool {
        match self.step {
            Step::Msg1 | Step::Msg3 => self.hs.initiator,
            Step::Msg2 => !self.hs.initiator,
            Step::Done => false,
        }
    }

    /// Keys and remote identity, once the handshake has finished.
    pub fn outcome(&self) -> Option<&HandshakeOutcome> {
        self.hs.outcome.as_ref()
    }

    /// Writes our next handshake message (empty payload), unframed.
    ///
    /// Errors: [`NoiseError::OutOfTurn`] if it is not our turn; [`NoiseError::BadPublicKey`] if
    /// a DH with the remote's keys fails.
    pub fn write_message(&mut self) -> Result<Vec<u8>, NoiseError> {
        if !self.is_my_turn() {
            return Err(NoiseError::OutOfTurn);
        }
        let hs = &mut self.hs;
        let mut out = Vec::with_capacity(MSG2_LEN);
        match self.step {
            Step::Msg1 => {
                let e = hs.write_e(&mut out);
                hs.e = Some(e);
                out.extend(hs.sym.encrypt_and_hash(&[]));
                self.step = Step::Msg2;
            }
            Step::Msg2 => {
                let e = hs.write_e(&mut out);
                let re = hs.remote_e()?;
                hs.sym.mix_key(&e.dh(&re)?); // ee
                hs.e = Some(e);
                hs.write_s(&mut out); // s
                hs.sym.mix_key(&hs.s.dh(&re)?); // es (responder: local s, remote e)
                out.extend(hs.sym.encrypt_and_hash(&[]));
                self.step = Step::Msg3;
            }
            Step::Msg3 => {
                hs.write_s(&mut out); // s
                let re = hs.remote_e()?;
                hs.sym.mix_key(&hs.s.dh(&re)?); // se (initiator: local s, remote e)
                out.extend(hs.sym.encrypt_and_hash(&[]));
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
        let hs = &mut self.hs;
        let payload = match self.step {
            Step::Msg1 => {
                hs.read_e(msg);
                let p = hs.sym.decrypt_and_hash(&msg[PKLEN..])?;
                self.step = Step::Msg2;
                p
            }
            Step::Msg2 => {
                let re = hs.read_e(msg);
                let ee = hs.local_e()?.dh(&re)?;
                hs.sym.mix_key(&ee);
                let rs = hs.read_s(&msg[PKLEN..PKLEN + PKLEN + MACLEN])?;
                let es = hs.local_e()?.dh(&rs)?; // es (initiator: local e, remote s)
                hs.sym.mix_key(&es);
                let p = hs.sym.decrypt_and_hash(&msg[PKLEN + PKLEN + MACLEN..])?;
                self.step = Step::Msg3;
                p
            }
            _ => {
                let rs = hs.read_s(&msg[..PKLEN + MACLEN])?;
                let se = hs.local_e()?.dh(&rs)?; // se (responder: local e, remote s)
                hs.sym.mix_key(&se);
                let p = hs.sym.decrypt_and_hash(&msg[PKLEN + MACLEN..])?;
                self.finish()?;
                p
            }
        };
        Ok(payload)
    }

    fn finish(&mut self) -> Result<(), NoiseError> {
        self.hs.finish()?;
        self.step = Step::Done;
        Ok(())
    }
}
