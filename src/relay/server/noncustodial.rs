//! What the relay needs for non-custodial clients (PROTOCOL.md §4, the client keeps its secret
//! key): the hyperdht namespaces, the announce record a client signs in answer to
//! `signAnnounce`/`signUnannounce`, and the steps of a Noise handshake that the relay carries
//! between two of its clients with `noiseSend`/`noiseReceive`/`noiseReply`.
//!
//! Between two non-custodial clients the relay never runs Noise itself: both run the hyperdht
//! Noise IK handshake (`noise-handshake` IK, `noise-curve-ed`, prologue `NS.PEER_HANDSHAKE`)
//! and then their own `@hyperswarm/secret-stream`, so the relay only sees handshake messages
//! and ciphertext. A custodial client connecting to a non-custodial server is bridged: the
//! relay runs the IK initiator and the secret-stream with the key in its custody (see
//! `hub.rs`), as hyperdht would on a JS relay; the reverse (a non-custodial client to a
//! custodial server) is refused.

use ed25519_dalek::{Signature, VerifyingKey};

use crate::dht as hyperdht;
use crate::relay::messages::PublicKey;

/// The hyperdht `noisePayload` the relay hands a client to embed in its Noise message
/// (`noiseSend.payload`): version 1, no flags, error NONE, firewall UNKNOWN. The peer's client
/// decodes it (a JS server runs its firewall on it), so it must be a valid `noisePayload`; no
/// addresses, because the relay, not a holepunch, joins the two ends.
pub(crate) const RELAY_NOISE_PAYLOAD: [u8; 4] = [1, 0, 0, 0];

/// `blake2b256(public key)`: the DHT target a server's key is announced under
/// (`@hyperswarm/dht-relay` `crypto.hash`, the `target` a listening client signs for).
pub(crate) fn server_target(public_key: &PublicKey) -> [u8; 32] {
    hyperdht::server_target(public_key)
}

/// The 64 bytes a client signs for an announce (`add`) or unannounce record
/// (`lib/signee.js` 0.4.3, hyperdht `annSignable`) with no relay addresses (the relay asks
/// with none): see [`hyperdht::announce_signable`], which our relay client signs with.
pub(crate) fn signable(
    add: bool,
    target: &[u8; 32],
    peer_id: &[u8],
    token: &[u8; 32],
    public_key: &PublicKey,
) -> [u8; 64] {
    hyperdht::announce_signable(add, target, peer_id, token, public_key, &[])
}

/// True if `signature` (64 bytes, ed25519 as libsodium `crypto_sign_detached`) signs `message`
/// with `public_key`. False for a key that is not a valid point or a signature of another size.
pub(crate) fn verify(public_key: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    let Ok(sig) = Signature::from_slice(signature) else {
        return false;
    };
    key.verify_strict(message, &sig).is_ok()
}

/// Where a relayed (non-custodial) Noise handshake between a connecting client C and a server's
/// client S is (PROTOCOL.md §5; the relay plays hyperdht's part for both):
/// `noiseSend`→C, C answers msg1; `noiseReceive{msg1}`→S, S answers C's payload (its firewall);
/// `noiseSend`→S, S answers msg2 (complete); `noiseReceive{msg2}`→C, C answers complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoiseStep {
    /// Waiting for C's first Noise message.
    Msg1,
    /// Waiting for S's firewall answer (C's decrypted payload, or an empty payload = deny).
    Firewall,
    /// Waiting for S's Noise reply (its handshake is then complete).
    Msg2,
    /// Waiting for C to report its handshake complete.
    Complete,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    #[test]
    fn the_relay_payload_is_a_valid_noise_payload() {
        let p = hyperdht::NoisePayload::decode(&RELAY_NOISE_PAYLOAD).unwrap();
        assert_eq!(p, hyperdht::NoisePayload::default());
        assert_eq!(p.encode(), RELAY_NOISE_PAYLOAD);
    }

    #[test]
    fn signatures_verify_only_for_their_record() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let pk = key.verifying_key().to_bytes();
        let target = server_target(&pk);
        let msg = signable(true, &target, &[9; 32], &[7; 32], &pk);
        let sig = key.sign(&msg).to_bytes();
        assert!(verify(&pk, &msg, &sig));
        // Another token, the unannounce namespace, another key or a short signature fail.
        assert!(!verify(
            &pk,
            &signable(true, &target, &[9; 32], &[8; 32], &pk),
            &sig
        ));
        assert!(!verify(
            &pk,
            &signable(false, &target, &[9; 32], &[7; 32], &pk),
            &sig
        ));
        let other = SigningKey::from_bytes(&[4; 32]).verifying_key().to_bytes();
        assert!(!verify(&other, &msg, &sig));
        assert!(!verify(&pk, &msg, &sig[..63]));
    }
}
