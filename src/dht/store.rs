//! What a persistent hyperdht node stores for others (hyperdht 6.34.0 `lib/persistent.js`):
//! signed announce records per topic, and the "forward" record of a server that announced its
//! own key (its target is the hash of the key; the node becomes that server's relay), and
//! mutable and immutable values. Sans-IO and bounded: at most [`MAX_TOPICS`] topics (new ones
//! are refused when full), [`PER_TOPIC`] records each (the oldest is replaced), every record
//! forgotten after [`MAX_AGE`]; at most [`MAX_VALUES`] mutable and as many immutable values,
//! each kept [`VALUE_MAX_AGE`].
//!
//! Announces are checked as JS does: an Ed25519 signature by the record's key over the announce
//! signable, which binds the topic, this node's id and the token this node gave the announcer's
//! address ([`super::announce_signable`]). Relay addresses are cut to 3.

use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use ed25519_dalek::{Signature, VerifyingKey};

use super::messages::{
    error, Announce, LookupRawReply, MutableGetResponse, MutablePutRequest, Peer,
};
use super::payload::{announce_signable, mutable_signable, server_target};
use crate::hypercore::encoding::CompactEncoding;

/// Most topics stored: 65,536 (hyperdht's records cache `maxSize`).
pub const MAX_TOPICS: usize = 65_536;
/// Most records per topic, and per lookup reply: 20.
pub const PER_TOPIC: usize = 20;
/// How long a record lives without being announced again: 20 minutes (hyperdht's `maxAge`).
pub const MAX_AGE: Duration = Duration::from_secs(20 * 60);
/// Most mutable values, and most immutable values: 32,768 each (hyperdht's).
pub const MAX_VALUES: usize = 32_768;
/// How long a value is kept: 48 hours (hyperdht's).
pub const VALUE_MAX_AGE: Duration = Duration::from_secs(48 * 3600);

#[derive(Debug, Clone)]
struct Stored {
    record: Peer,
    at: Instant,
}

/// The store (see the module docs).
#[derive(Debug, Default)]
pub struct Store {
    topics: HashMap<[u8; 32], Vec<Stored>>,
    /// Servers that announced themselves: target → (the announcing node, record).
    forwards: HashMap<[u8; 32], (SocketAddrV4, Stored)>,
    /// hash(public key) → (seq, encoded `mutableGetResponse`, stored at).
    mutables: HashMap<[u8; 32], (u64, Vec<u8>, Instant)>,
    /// hash(value) → (value, stored at).
    immutables: HashMap<[u8; 32], (Vec<u8>, Instant)>,
}

/// What became of a MUTABLE_PUT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// Stored: answer with an empty reply.
    Stored,
    /// Refused with this hyperdht error ([`super::messages::error`]: SEQ_REUSED, SEQ_TOO_LOW).
    Refused(u64),
    /// Malformed, unsigned, for another target, or the store is full: no answer (as JS).
    Ignored,
}

/// Why an announce was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceError {
    /// The value does not decode, or has no record.
    #[error("not an announce record")]
    Malformed,
    /// A refresh-only or refresh-carrying announce (not supported yet).
    #[error("refreshes are not supported")]
    Refresh,
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// The store holds [`MAX_TOPICS`] topics.
    #[error("the store is full")]
    Full,
}

fn hash(bytes: &[u8]) -> [u8; 32] {
    Blake2b::<U32>::digest(bytes).into()
}

impl Store {
    /// Checks and stores (or, `add` false, removes) the announce `value` for `target`, sent by
    /// `from` with `token` (which the caller checked was ours for `from`); `node_id` is ours.
    ///
    /// Errors: [`AnnounceError`]; nothing changes then.
    #[allow(clippy::too_many_arguments)]
    pub fn announce(
        &mut self,
        now: Instant,
        add: bool,
        target: &[u8; 32],
        node_id: &[u8; 32],
        token: &[u8; 32],
        from: SocketAddrV4,
        value: &[u8],
    ) -> Result<(), AnnounceError> {
        let ann = Announce::from_bytes(value).map_err(|_| AnnounceError::Malformed)?;
        if ann.refresh.is_some() {
            return Err(AnnounceError::Refresh);
        }
        let (Some(mut peer), Some(signature)) = (ann.peer, ann.signature) else {
            return Err(AnnounceError::Malformed);
        };
        let signable = announce_signable(
            add,
            target,
            node_id,
            token,
            &peer.public_key,
            &peer.relay_addresses,
        );
        let key =
            VerifyingKey::from_bytes(&peer.public_key).map_err(|_| AnnounceError::Signature)?;
        key.verify_strict(&signable, &Signature::from_bytes(&signature))
            .map_err(|_| AnnounceError::Signature)?;
        self.expire(now);
        let is_self = server_target(&peer.public_key) == *target;
        if !add {
            if is_self {
                self.forwards.remove(target);
            }
            if let Some(list) = self.topics.get_mut(target) {
                list.retain(|s| s.record.public_key != peer.public_key);
            }
            return Ok(());
        }
        peer.relay_addresses.truncate(3);
        let stored = Stored {
            record: peer,
            at: now,
        };
        if is_self {
            self.forwards.insert(*target, (from, stored));
            return Ok(());
        }
        if !self.topics.contains_key(target) && self.topics.len() >= MAX_TOPICS {
            return Err(AnnounceError::Full);
        }
        let list = self.topics.entry(*target).or_default();
        list.retain(|s| s.record.public_key != stored.record.public_key);
        if list.len() >= PER_TOPIC {
            list.remove(0);
        }
        list.push(stored);
        Ok(())
    }

    /// The LOOKUP answer for `topic`: up to [`PER_TOPIC`] records (the forward record too),
    /// encoded; `None` when there is none.
    pub fn lookup(&mut self, now: Instant, topic: &[u8; 32]) -> Option<Vec<u8>> {
        self.expire(now);
        let mut peers: Vec<Peer> = self
            .topics
            .get(topic)
            .into_iter()
            .flatten()
            .map(|s| s.record.clone())
            .take(PER_TOPIC)
            .collect();
        if peers.len() < PER_TOPIC {
            if let Some((_, s)) = self.forwards.get(topic) {
                peers.push(s.record.clone());
            }
        }
        (!peers.is_empty()).then(|| LookupRawReply { peers, bump: 0 }.to_bytes())
    }

    /// The FIND_PEER answer for `target`: the forward record, if a server announced itself.
    pub fn find_peer(&mut self, now: Instant, target: &[u8; 32]) -> Option<Vec<u8>> {
        self.expire(now);
        self.forwards.get(target).map(|(_, s)| s.record.to_bytes())
    }

    /// Topics stored.
    pub fn topics(&self) -> usize {
        self.topics.len()
    }

    /// MUTABLE_PUT of `value` (a `mutablePutRequest`) at `target`, which must be the hash of its
    /// key; its signature must cover (seq, value). A lower seq than stored, or the same seq
    /// with another value, is refused.
    pub fn mutable_put(&mut self, now: Instant, target: &[u8; 32], value: &[u8]) -> PutOutcome {
        let Ok(p) = MutablePutRequest::from_bytes(value) else {
            return PutOutcome::Ignored;
        };
        if server_target(&p.public_key) != *target {
            return PutOutcome::Ignored;
        }
        let signable = mutable_signable(p.seq, &p.value);
        let verified = VerifyingKey::from_bytes(&p.public_key)
            .and_then(|k| k.verify_strict(&signable, &Signature::from_bytes(&p.signature)));
        if verified.is_err() {
            return PutOutcome::Ignored;
        }
        self.expire(now);
        if let Some((seq, stored, _)) = self.mutables.get(target) {
            let existing = MutableGetResponse::from_bytes(stored).map(|r| r.value);
            if *seq == p.seq && existing.is_ok_and(|v| v != p.value) {
                return PutOutcome::Refused(error::SEQ_REUSED);
            }
            if p.seq < *seq {
                return PutOutcome::Refused(error::SEQ_TOO_LOW);
            }
        } else if self.mutables.len() >= MAX_VALUES {
            return PutOutcome::Ignored;
        }
        let stored = MutableGetResponse {
            seq: p.seq,
            value: p.value,
            signature: p.signature,
        }
        .to_bytes();
        self.mutables.insert(*target, (p.seq, stored, now));
        PutOutcome::Stored
    }

    /// MUTABLE_GET: the stored `mutableGetResponse` at `target` if its seq is at least `seq`.
    pub fn mutable_get(&mut self, now: Instant, target: &[u8; 32], seq: u64) -> Option<Vec<u8>> {
        self.expire(now);
        let (stored_seq, bytes, _) = self.mutables.get(target)?;
        (*stored_seq >= seq).then(|| bytes.clone())
    }

    /// IMMUTABLE_PUT: stores `value` when `target` is its hash. Whether it was stored.
    pub fn immutable_put(&mut self, now: Instant, target: &[u8; 32], value: &[u8]) -> bool {
        if hash(value) != *target {
            return false;
        }
        self.expire(now);
        if !self.immutables.contains_key(target) && self.immutables.len() >= MAX_VALUES {
            return false;
        }
        self.immutables.insert(*target, (value.to_vec(), now));
        true
    }

    /// IMMUTABLE_GET: the value whose hash is `target`.
    pub fn immutable_get(&mut self, now: Instant, target: &[u8; 32]) -> Option<Vec<u8>> {
        self.expire(now);
        self.immutables.get(target).map(|(v, _)| v.clone())
    }

    fn expire(&mut self, now: Instant) {
        let live = |s: &Stored| now.saturating_duration_since(s.at) < MAX_AGE;
        self.topics.retain(|_, list| {
            list.retain(live);
            !list.is_empty()
        });
        self.forwards.retain(|_, (_, s)| live(s));
        let kept = |at: &Instant| now.saturating_duration_since(*at) < VALUE_MAX_AGE;
        self.mutables.retain(|_, (_, _, at)| kept(at));
        self.immutables.retain(|_, (_, at)| kept(at));
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    fn announce(key: &SigningKey, add: bool, target: &[u8; 32], token: &[u8; 32]) -> Vec<u8> {
        let pk = key.verifying_key().to_bytes();
        let relays = vec!["10.0.0.1:1".parse().unwrap(); 5];
        let signable = announce_signable(add, target, &[9; 32], token, &pk, &relays);
        Announce {
            peer: Some(Peer {
                public_key: pk,
                relay_addresses: relays,
            }),
            refresh: None,
            signature: Some(key.sign(&signable).to_bytes()),
            bump: 0,
        }
        .to_bytes()
    }

    #[test]
    fn signed_records_are_stored_found_removed_and_expire() {
        let mut s = Store::default();
        let now = Instant::now();
        let from = "127.0.0.1:5".parse().unwrap();
        let key = SigningKey::from_bytes(&[1; 32]);
        let (topic, token) = ([7; 32], [8; 32]);
        let value = announce(&key, true, &topic, &token);
        // Signed for another node, topic or token: refused.
        assert_eq!(
            s.announce(now, true, &topic, &[0; 32], &token, from, &value),
            Err(AnnounceError::Signature)
        );
        assert_eq!(
            s.announce(now, true, &[6; 32], &[9; 32], &token, from, &value),
            Err(AnnounceError::Signature)
        );
        assert_eq!(
            s.announce(now, true, &topic, &[9; 32], &token, from, &value),
            Ok(())
        );
        let reply = LookupRawReply::from_bytes(&s.lookup(now, &topic).unwrap()).unwrap();
        assert_eq!(reply.peers.len(), 1);
        assert_eq!(reply.peers[0].relay_addresses.len(), 3, "cut to 3");
        assert_eq!(s.find_peer(now, &topic), None, "not a server's own key");
        let gone = announce(&key, false, &topic, &token);
        assert_eq!(
            s.announce(now, false, &topic, &[9; 32], &token, from, &gone),
            Ok(())
        );
        assert_eq!(s.lookup(now, &topic), None);
        // A server's own key: the forward record, found by FIND_PEER and LOOKUP; it expires.
        let own = server_target(&key.verifying_key().to_bytes());
        let value = announce(&key, true, &own, &token);
        assert_eq!(
            s.announce(now, true, &own, &[9; 32], &token, from, &value),
            Ok(())
        );
        assert!(s.find_peer(now, &own).is_some() && s.lookup(now, &own).is_some());
        assert_eq!(s.find_peer(now + MAX_AGE, &own), None);
        assert_eq!(
            s.announce(now, true, &topic, &[9; 32], &token, from, &[1, 2]),
            Err(AnnounceError::Malformed)
        );
    }

    #[test]
    fn mutable_values_keep_the_highest_seq_and_immutable_ones_their_hash() {
        let mut s = Store::default();
        let now = Instant::now();
        let key = SigningKey::from_bytes(&[2; 32]);
        let pk = key.verifying_key().to_bytes();
        let target = server_target(&pk);
        let put = |seq: u64, value: &[u8]| {
            MutablePutRequest {
                public_key: pk,
                seq,
                value: value.to_vec(),
                signature: key.sign(&mutable_signable(seq, value)).to_bytes(),
            }
            .to_bytes()
        };
        assert_eq!(
            s.mutable_put(now, &target, &put(5, b"five")),
            PutOutcome::Stored
        );
        assert_eq!(
            s.mutable_put(now, &target, &put(5, b"other")),
            PutOutcome::Refused(error::SEQ_REUSED)
        );
        assert_eq!(
            s.mutable_put(now, &target, &put(4, b"four")),
            PutOutcome::Refused(error::SEQ_TOO_LOW)
        );
        assert_eq!(
            s.mutable_put(now, &[0; 32], &put(6, b"six")),
            PutOutcome::Ignored
        );
        let mut forged = put(6, b"six");
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert_eq!(
            s.mutable_put(now, &target, &forged),
            PutOutcome::Ignored,
            "bad signature"
        );
        let got = MutableGetResponse::from_bytes(&s.mutable_get(now, &target, 5).unwrap()).unwrap();
        assert_eq!((got.seq, got.value.as_slice()), (5, &b"five"[..]));
        assert_eq!(s.mutable_get(now, &target, 6), None, "older than asked");
        assert!(!s.immutable_put(now, &[0; 32], b"value"));
        assert!(s.immutable_put(now, &hash(b"value"), b"value"));
        assert_eq!(
            s.immutable_get(now, &hash(b"value")).as_deref(),
            Some(&b"value"[..])
        );
        assert_eq!(s.immutable_get(now + VALUE_MAX_AGE, &hash(b"value")), None);
    }
}
