//! Lobby passwords: SPAKE2 with key confirmation.
//!
//! A password is never written to a log in a form that allows an offline guess: the logs carry
//! only SPAKE2 messages (Ed25519 group, the `spake2` crate) and MACs keyed by the SPAKE2 session
//! key. An eavesdropper who reads every log learns nothing to test passwords against; a joiner
//! who talks to the host gets one guess per attempt, which the host answers with a reject.
//!
//! Flow (joiner = side A, host = side B; identities bind the run to both logs' keys):
//! 1. joiner: [`Joiner::start`] → `msg_a`, sent in the offer;
//! 2. host: [`Host::respond`] → `msg_b` and `host_mac`, sent in a challenge;
//! 3. joiner: [`Joiner::finish`] checks `host_mac` and returns `joiner_mac`, sent in a confirm;
//! 4. host: [`Host::check`] accepts or rejects `joiner_mac`.

use blake2::digest::{FixedOutput, KeyInit, Mac};
use spake2::{Ed25519Group, Identity, Password, Spake2};

use crate::keys::LogKey;

/// Errors of the password exchange.
#[derive(Debug, thiserror::Error)]
pub enum PakeError {
    /// The other side's SPAKE2 message is malformed.
    #[error("malformed SPAKE2 message")]
    Malformed,
    /// The MACs don't match: the two sides used different passwords.
    #[error("wrong password")]
    WrongPassword,
}

type Blake2bMac256 = blake2::Blake2bMac<blake2::digest::consts::U32>;

/// A BLAKE2b MAC keyed with the SPAKE2 session key, over a label and the length-prefixed transcript.
fn mac_state(key: &[u8], label: &[u8], transcript: &[&[u8]]) -> Blake2bMac256 {
    let mut m = <Blake2bMac256 as KeyInit>::new_from_slice(key).expect("32-byte key fits BLAKE2b");
    m.update(label);
    for part in transcript {
        m.update(&(part.len() as u32).to_le_bytes());
        m.update(part);
    }
    m
}

fn mac(key: &[u8], label: &[u8], transcript: &[&[u8]]) -> [u8; 32] {
    mac_state(key, label, transcript).finalize_fixed().into()
}

/// Constant-time check of `tag` against the MAC of the transcript.
fn mac_matches(key: &[u8], label: &[u8], transcript: &[&[u8]], tag: &[u8]) -> bool {
    mac_state(key, label, transcript).verify_slice(tag).is_ok()
}

fn identities(joiner_log: &LogKey, lobby_log: &LogKey) -> (Identity, Identity) {
    (
        Identity::new(joiner_log.as_bytes()),
        Identity::new(lobby_log.as_bytes()),
    )
}

/// The joiner's side of one password exchange.
pub struct Joiner {
    state: Spake2<Ed25519Group>,
    msg_a: Vec<u8>,
}

impl Joiner {
    /// Starts an exchange for `password`, bound to the joiner's signalling log key and the host's
    /// lobby log key. Returns the state and `msg_a` (33 bytes) for the offer.
    pub fn start(password: &[u8], joiner_log: &LogKey, lobby_log: &LogKey) -> (Self, Vec<u8>) {
        let (a, b) = identities(joiner_log, lobby_log);
        let (state, msg_a) = Spake2::<Ed25519Group>::start_a(&Password::new(password), &a, &b);
        (
            Joiner {
                state,
                msg_a: msg_a.clone(),
            },
            msg_a,
        )
    }

    /// Finishes with the host's `msg_b` and `host_mac`; returns the `joiner_mac` (32 bytes) for
    /// the confirm. Errors: [`PakeError::WrongPassword`] if the host's MAC does not match.
    pub fn finish(self, msg_b: &[u8], host_mac: &[u8]) -> Result<[u8; 32], PakeError> {
        let key = self.state.finish(msg_b).map_err(|_| PakeError::Malformed)?;
        let transcript = [self.msg_a.as_slice(), msg_b];
        if !mac_matches(&key, b"dat-social/pake/host", &transcript, host_mac) {
            return Err(PakeError::WrongPassword);
        }
        Ok(mac(&key, b"dat-social/pake/joiner", &transcript))
    }
}

/// The host's side of one password exchange, between its challenge and the joiner's confirm.
pub struct Host {
    key: Vec<u8>,
    msg_a: Vec<u8>,
    msg_b: Vec<u8>,
}

impl Host {
    /// Answers the joiner's `msg_a` for `password`. Returns the state, `msg_b` (33 bytes) and
    /// `host_mac` (32 bytes) for the challenge. Errors: [`PakeError::Malformed`].
    pub fn respond(
        password: &[u8],
        joiner_log: &LogKey,
        lobby_log: &LogKey,
        msg_a: &[u8],
    ) -> Result<(Self, Vec<u8>, [u8; 32]), PakeError> {
        let (a, b) = identities(joiner_log, lobby_log);
        let (state, msg_b) = Spake2::<Ed25519Group>::start_b(&Password::new(password), &a, &b);
        let key = state.finish(msg_a).map_err(|_| PakeError::Malformed)?;
        let transcript = [msg_a, msg_b.as_slice()];
        let host_mac = mac(&key, b"dat-social/pake/host", &transcript);
        let host = Host {
            key,
            msg_a: msg_a.to_vec(),
            msg_b: msg_b.clone(),
        };
        Ok((host, msg_b, host_mac))
    }

    /// Checks the joiner's confirm. Errors: [`PakeError::WrongPassword`].
    pub fn check(&self, joiner_mac: &[u8]) -> Result<(), PakeError> {
        let transcript = [self.msg_a.as_slice(), self.msg_b.as_slice()];
        if mac_matches(
            &self.key,
            b"dat-social/pake/joiner",
            &transcript,
            joiner_mac,
        ) {
            Ok(())
        } else {
            Err(PakeError::WrongPassword)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(joiner_pw: &[u8], host_pw: &[u8]) -> Result<(), PakeError> {
        let (j, l) = (LogKey::from_bytes([1; 32]), LogKey::from_bytes([2; 32]));
        let (joiner, msg_a) = Joiner::start(joiner_pw, &j, &l);
        let (host, msg_b, host_mac) = Host::respond(host_pw, &j, &l, &msg_a)?;
        let joiner_mac = joiner.finish(&msg_b, &host_mac)?;
        host.check(&joiner_mac)
    }

    #[test]
    fn same_password_confirms_and_different_fails() {
        run(b"hunter2", b"hunter2").unwrap();
        assert!(matches!(
            run(b"hunter3", b"hunter2"),
            Err(PakeError::WrongPassword)
        ));
    }

    #[test]
    fn malformed_message_is_an_error() {
        assert!(matches!(
            Host::respond(
                b"pw",
                &LogKey::from_bytes([1; 32]),
                &LogKey::from_bytes([2; 32]),
                b"short"
            ),
            Err(PakeError::Malformed)
        ));
    }
}
