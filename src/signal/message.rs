//! The blocks of lobby signalling logs.
//!
//! Every block is a JSON envelope `{"to": "<64 hex>", "box": "<base64>"}`: `to` is the public key
//! that can open the box (the recipient's signalling log key), and `box` a sealed [`Signal`]
//! (see [`super::seal`]). So a log shows who talks to whom and when, never what is said: SDP
//! carries addresses and ICE credentials.
//!
//! A joiner writes to its own log: `offer`, then `confirm` when the lobby is protected. The host
//! writes to its lobby log, addressed to a joiner's log key: `challenge` (protected lobbies),
//! `answer` or `reject` (`ended` when the lobby ends before the answer). Either may add
//! `candidate`s after the offer. The order is enforced by `crate::lobby::handshake`.

use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::seal::{self, SealError};
use crate::keys::{IdentityKey, LogKey};

/// Largest signalling block accepted, in bytes.
pub const MAX_BLOCK_BYTES: usize = 64 * 1024;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Errors reading or writing signalling blocks.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// The block breaks the signalling protocol in a way the text describes (e.g. a signal
    /// that is not the one expected now).
    #[error("malformed signalling block: {0}")]
    Malformed(String),
    /// The block is not an envelope, or its sealed payload is not a [`Signal`] (JSON of the
    /// wrong shape); serde's error is the source.
    #[error("malformed signalling block: {0}")]
    Json(#[from] serde_json::Error),
    /// A base64 field (the sealed payload, a PAKE message) does not decode; the decoder's error
    /// is the source.
    #[error("malformed signalling block: bad base64: {0}")]
    Base64(#[from] base64::DecodeError),
    /// The block is larger than [`MAX_BLOCK_BYTES`].
    #[error("signalling block of {0} bytes is over the limit of {MAX_BLOCK_BYTES}")]
    TooLarge(usize),
    /// Sealing or opening failed.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// An offer's identity signature does not verify.
    #[error("the offer's identity signature is invalid")]
    BadSignature,
}

/// Why a host turned a joiner away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RejectReason {
    /// The lobby has `max_peers` players.
    Full,
    /// The password was wrong or missing.
    Password,
    /// The lobby admits mutual friends only.
    FriendsOnly,
    /// The lobby ended before the host answered (the host writes it to every joiner still
    /// signalling when it stops).
    Ended,
    /// The joiner's messages broke the protocol.
    Protocol,
}

impl RejectReason {
    /// The reason as written on the wire and in `--json` output (`"full"`, `"password"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Full => "full",
            RejectReason::Password => "password",
            RejectReason::FriendsOnly => "friends-only",
            RejectReason::Ended => "ended",
            RejectReason::Protocol => "protocol",
        }
    }
}

/// One signalling message, before sealing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Signal {
    /// Joiner → host: a WebRTC offer (`{"type":"offer","sdp":...}` JSON, as browsers write it).
    Offer {
        /// The offer's session description JSON.
        sdp: String,
        /// The joiner's identity key, 64 hex.
        identity: String,
        /// The joiner's display name.
        name: String,
        /// Identity signature (128 hex) over [`offer_signable`]; binds the log to the identity.
        signature: String,
        /// SPAKE2 `msg_a`, base64, when the joiner has a password.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pake: Option<String>,
        /// The SCTP stream id on which the joiner opens its chat channel pre-negotiated (both
        /// sides open it themselves, with no DCEP round trip), if the host does the same and
        /// says so in its answer. Absent (as from joiners before this field): the joiner opens
        /// chat in band.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chat_stream: Option<u16>,
    },
    /// Host → joiner: SPAKE2 `msg_b` and the host's key confirmation, base64.
    Challenge {
        /// SPAKE2 `msg_b`, base64.
        pake: String,
        /// Host MAC, base64.
        mac: String,
    },
    /// Joiner → host: the joiner's key confirmation, base64.
    Confirm {
        /// Joiner MAC, base64.
        mac: String,
    },
    /// Host → joiner: the WebRTC answer JSON.
    Answer {
        /// The answer's session description JSON.
        sdp: String,
        /// The offer's `chat_stream`, echoed when the host opened its chat channel
        /// pre-negotiated on that stream id. Absent: the joiner opens chat in band.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chat_stream: Option<u16>,
    },
    /// Host → joiner: no entry.
    Reject {
        /// Why.
        reason: RejectReason,
    },
    /// Either way: a trickled ICE candidate (`candidate:...` line).
    Candidate {
        /// The candidate attribute.
        candidate: String,
    },
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    to: String,
    #[serde(rename = "box")]
    sealed: String,
}

/// The bytes an offer's identity signature covers: a label, the lobby log key and the joiner's
/// signalling log key.
pub fn offer_signable(lobby_log: &LogKey, joiner_log: &LogKey) -> Vec<u8> {
    [
        b"dat-social/offer/v1".as_slice(),
        lobby_log.as_bytes(),
        joiner_log.as_bytes(),
    ]
    .concat()
}

/// Signs an offer's binding of `joiner_log` to `identity` for `lobby_log`; 128 hex characters.
pub fn sign_offer(identity: &SigningKey, lobby_log: &LogKey, joiner_log: &LogKey) -> String {
    hex::encode(
        identity
            .sign(&offer_signable(lobby_log, joiner_log))
            .to_bytes(),
    )
}

/// Checks an offer's `identity` (64 hex) and `signature` (128 hex) fields; returns the identity
/// key. Errors: [`SignalError::BadSignature`] (either field malformed, or the signature wrong).
pub fn verify_offer(
    identity_hex: &str,
    signature_hex: &str,
    lobby_log: &LogKey,
    joiner_log: &LogKey,
) -> Result<IdentityKey, SignalError> {
    let key = crate::keys::decode_hex32(identity_hex)
        .map(IdentityKey::from_bytes)
        .map_err(|_| SignalError::BadSignature)?;
    let mut sig = [0u8; 64];
    hex::decode_to_slice(signature_hex, &mut sig).map_err(|_| SignalError::BadSignature)?;
    let vk = VerifyingKey::from_bytes(key.as_bytes()).map_err(|_| SignalError::BadSignature)?;
    vk.verify(
        &offer_signable(lobby_log, joiner_log),
        &ed25519_dalek::Signature::from_bytes(&sig),
    )
    .map_err(|_| SignalError::BadSignature)?;
    Ok(key)
}

impl Signal {
    /// Seals this message to `to` (a signalling log key) and returns the block bytes.
    pub fn to_block(&self, to: &LogKey) -> Result<Vec<u8>, SignalError> {
        let plain = serde_json::to_vec(self).expect("signals serialize");
        let sealed = seal::seal(to.as_bytes(), &plain)?;
        let block = serde_json::to_vec(&Envelope {
            to: to.to_hex(),
            sealed: B64.encode(sealed),
        })
        .expect("envelopes serialize");
        if block.len() > MAX_BLOCK_BYTES {
            return Err(SignalError::TooLarge(block.len()));
        }
        Ok(block)
    }

    /// Reads a block: `Ok(None)` if it is addressed to another key, the message if it is for
    /// `me`. Errors: malformed, oversized, or unopenable blocks.
    pub fn from_block(block: &[u8], me: &SigningKey) -> Result<Option<Signal>, SignalError> {
        if block.len() > MAX_BLOCK_BYTES {
            return Err(SignalError::TooLarge(block.len()));
        }
        let env: Envelope = serde_json::from_slice(block)?;
        if env.to != hex::encode(me.verifying_key().to_bytes()) {
            return Ok(None);
        }
        let sealed = B64.decode(env.sealed)?;
        let plain = seal::open(me, &sealed)?;
        Ok(Some(serde_json::from_slice(&plain)?))
    }
}

/// Base64 (standard alphabet, padded) of `bytes`, as used inside signals.
pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// Decodes base64 from a signal field. Errors: [`SignalError::Base64`].
pub fn unb64(text: &str) -> Result<Vec<u8>, SignalError> {
    Ok(B64.decode(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undecodable_blocks_keep_the_decoders_error() {
        use std::error::Error;
        let me = SigningKey::from_bytes(&[3; 32]);
        let err = Signal::from_block(b"{not json", &me).unwrap_err();
        assert!(matches!(err, SignalError::Json(_)), "{err:?}");
        assert!(err.source().unwrap().is::<serde_json::Error>());
        let to = hex::encode(me.verifying_key().to_bytes());
        let block = format!(r#"{{"to":"{to}","box":"@@@"}}"#);
        let err = Signal::from_block(block.as_bytes(), &me).unwrap_err();
        assert!(matches!(err, SignalError::Base64(_)), "{err:?}");
        assert!(err.source().unwrap().is::<base64::DecodeError>());
        assert!(matches!(unb64("%%"), Err(SignalError::Base64(_))));
    }

    #[test]
    fn blocks_open_only_for_their_recipient() {
        let host = SigningKey::from_bytes(&[3; 32]);
        let other = SigningKey::from_bytes(&[4; 32]);
        let msg = Signal::Reject {
            reason: RejectReason::Full,
        };
        let to = LogKey::from_bytes(host.verifying_key().to_bytes());
        let block = msg.to_block(&to).unwrap();
        assert!(!String::from_utf8_lossy(&block).contains("full"));
        assert_eq!(Signal::from_block(&block, &host).unwrap(), Some(msg));
        assert_eq!(Signal::from_block(&block, &other).unwrap(), None);
    }

    #[test]
    fn hostile_blocks_are_errors() {
        let me = SigningKey::from_bytes(&[3; 32]);
        let me_hex = hex::encode(me.verifying_key().to_bytes());
        for block in [
            b"garbage".to_vec(),
            format!(r#"{{"to":"{me_hex}","box":"!!"}}"#).into_bytes(),
            format!(r#"{{"to":"{me_hex}","box":"AAAA"}}"#).into_bytes(),
            vec![b' '; MAX_BLOCK_BYTES + 1],
        ] {
            assert!(Signal::from_block(&block, &me).is_err());
        }
    }

    #[test]
    fn offer_signature_binds_both_logs() {
        let id = SigningKey::from_bytes(&[5; 32]);
        let id_hex = hex::encode(id.verifying_key().to_bytes());
        let log = |b| LogKey::from_bytes([b; 32]);
        let sig = sign_offer(&id, &log(1), &log(2));
        let key = verify_offer(&id_hex, &sig, &log(1), &log(2)).unwrap();
        assert_eq!(key.to_string(), id_hex);
        assert!(verify_offer(&id_hex, &sig, &log(1), &log(9)).is_err());
        assert!(verify_offer(&id_hex, &sig, &log(2), &log(1)).is_err());
    }
}
