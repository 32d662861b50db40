//! Sealed boxes: a payload encrypted to one recipient's ed25519 key.
//!
//! The format is libsodium's `crypto_box_seal` (X25519 + XSalsa20-Poly1305 with an ephemeral
//! sender key; 48 bytes of overhead), so a browser with libsodium can open it. The recipient's
//! ed25519 keys are converted to X25519 the way `crypto_sign_ed25519_pk_to_curve25519` and
//! `crypto_sign_ed25519_sk_to_curve25519` do.

use ed25519_dalek::{SigningKey, VerifyingKey};

/// Bytes a sealed box adds to its plaintext (32-byte ephemeral key + 16-byte tag).
pub const SEAL_OVERHEAD: usize = 48;

/// Errors of sealing and opening.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The recipient key is not a valid ed25519 public key.
    #[error("the recipient key is not a valid ed25519 public key")]
    BadRecipient,
    /// The box was not sealed to this key, or was altered, or is shorter than [`SEAL_OVERHEAD`].
    #[error("cannot open the sealed box: not addressed to this key, or corrupted")]
    Open,
}

/// Encrypts `plaintext` to the holder of the ed25519 secret key for `recipient` (32 bytes).
/// Output: `plaintext.len() + SEAL_OVERHEAD` bytes.
pub fn seal(recipient: &[u8; 32], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    let ed = VerifyingKey::from_bytes(recipient).map_err(|_| SealError::BadRecipient)?;
    let x = crypto_box::PublicKey::from(ed.to_montgomery().to_bytes());
    x.seal(&mut rand::rngs::OsRng, plaintext)
        .map_err(|_| SealError::BadRecipient)
}

/// Decrypts a box made by [`seal`] for `recipient`'s public key.
pub fn open(recipient: &SigningKey, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(SealError::Open);
    }
    let x = crypto_box::SecretKey::from(recipient.to_scalar_bytes());
    x.unseal(sealed).map_err(|_| SealError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_recipient_opens() {
        let alice = SigningKey::from_bytes(&[7; 32]);
        let eve = SigningKey::from_bytes(&[8; 32]);
        let sealed = seal(&alice.verifying_key().to_bytes(), b"v=0 sdp").unwrap();
        assert_eq!(sealed.len(), 7 + SEAL_OVERHEAD);
        assert_eq!(open(&alice, &sealed).unwrap(), b"v=0 sdp");
        assert!(open(&eve, &sealed).is_err());
        let mut flipped = sealed.clone();
        flipped[50] ^= 1;
        assert!(open(&alice, &flipped).is_err());
        assert!(open(&alice, &sealed[..10]).is_err());
    }
}
