//! What the relay needs for non-custodial clients (PROTOCOL.md §4, the client keeps its secret
//! key): the hyperdht namespaces, the announce record a client signs in answer to
//! `signAnnounce`/`signUnannounce`, and the steps of a Noise handshake that the relay carries
//! between two of its clients with `noiseSend`/`noiseReceive`/`noiseReply`.
//!
//! The relay never runs Noise itself in this mode: both clients run the hyperdht Noise IK
//! handshake (`noise-handshake` IK, `noise-curve-ed`, prologue `NS.PEER_HANDSHAKE`) and then
//! their own `@hyperswarm/secret-stream`, so the relay only sees handshake messages and
//! ciphertext.

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use ed25519_dalek::{Signature, VerifyingKey};

use crate::hypercore::encoding::CompactEncoding;
use crate::relay::messages::{Peer, PublicKey};

/// BLAKE2b with a 32-byte output (libsodium `crypto_generichash` with its default length).
type Blake2b256 = Blake2b<U32>;

/// hyperdht command numbers that name its namespaces (`hyperdht/lib/constants.js` 6.34.0;
/// `PEER_HANDSHAKE` = 0 names the clients' Noise prologue, checked in the tests).
const CMD_ANNOUNCE: u8 = 4;
const CMD_UNANNOUNCE: u8 = 5;

/// The hyperdht `noisePayload` the relay hands a client to embed in its Noise message
/// (`noiseSend.payload`): version 1, no flags, error NONE, firewall UNKNOWN. The peer's client
/// decodes it (a JS server runs its firewall on it), so it must be a valid `noisePayload`; no
/// addresses, because the relay, not a holepunch, joins the two ends.
pub(crate) const RELAY_NOISE_PAYLOAD: [u8; 4] = [1, 0, 0, 0];

/// A hyperdht namespace: `blake2b256(blake2b256("hyperswarm/dht") ‖ command)`
/// (hypercore-crypto `namespace`).
fn namespace(command: u8) -> [u8; 32] {
    let name = Blake2b256::digest(b"hyperswarm/dht");
    let mut h = Blake2b256::new();
    h.update(name);
    h.update([command]);
    h.finalize().into()
}

/// `blake2b256(public key)`: the DHT target a server's key is announced under
/// (`@hyperswarm/dht-relay` `crypto.hash`, the `target` a listening client signs for).
pub(crate) fn server_target(public_key: &PublicKey) -> [u8; 32] {
    Blake2b256::digest(public_key).into()
}

/// The 64 bytes a client signs for an announce (`add`) or unannounce record
/// (`lib/signee.js` 0.4.3, hyperdht `annSignable`):
/// `NS ‖ blake2b256(target ‖ peerId ‖ token ‖ encode(peer{publicKey, relayAddresses: []}))`.
pub(crate) fn signable(
    add: bool,
    target: &[u8; 32],
    peer_id: &[u8],
    token: &[u8; 32],
    public_key: &PublicKey,
) -> [u8; 64] {
    let ns = namespace(if add { CMD_ANNOUNCE } else { CMD_UNANNOUNCE });
    let peer = Peer {
        public_key: *public_key,
        relay_addresses: Vec::new(),
    }
    .to_bytes();
    let mut h = Blake2b256::new();
    h.update(target);
    h.update(peer_id);
    h.update(token);
    h.update(&peer);
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&ns);
    out[32..].copy_from_slice(&h.finalize());
    out
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
    fn namespaces_match_hyperdht() {
        // PROTOCOL.md §4: NS.PEER_HANDSHAKE of hyperdht 6.34.0.
        assert_eq!(
            hex::encode(namespace(0)),
            "14d6d4b49214ab1033ed204976caa258bae9e1e8543b9ad1fd996a910b0c4e3a"
        );
        assert_ne!(namespace(CMD_ANNOUNCE), namespace(CMD_UNANNOUNCE));
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
