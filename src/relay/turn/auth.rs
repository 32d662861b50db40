//! Long-term credential checks of the TURN server (RFC 8489 §9.2) with TURN REST passwords
//! ([`crate::ice::rest`]) and stateless nonces.
//!
//! A nonce is `<expiry unix seconds, 16 hex digits><HMAC-SHA1(secret, "nonce" | expiry |
//! client IP), first 8 bytes in hex>`: the server keeps no per-client nonce state (nothing to
//! bound), a nonce only works from the IP address it was given to, and it goes stale after
//! [`NONCE_LIFETIME_S`] (then 438 Stale Nonce with a fresh one, RFC 8489 §9.2.4).

use std::net::IpAddr;

use hmac::{Hmac, Mac};
use sha1::Sha1;
use stun_types::attribute::{
    AttributeStaticType, MessageIntegrity, MessageIntegritySha256, Nonce, Realm, Username,
};
use stun_types::message::{IntegrityAlgorithm, IntegrityKey, LongTermKeyCredentials, Message};

use crate::ice::rest::{self, RestError};

/// How long a nonce is accepted, in seconds.
pub(crate) const NONCE_LIFETIME_S: u64 = 600;

/// Why a request was not authenticated (each maps to a STUN error code).
#[derive(Debug)]
pub(crate) enum AuthFailure {
    /// No MESSAGE-INTEGRITY: 401 with REALM and NONCE (the first leg of RFC 8489 §9.2.4).
    NoCredentials,
    /// MESSAGE-INTEGRITY without USERNAME, REALM or NONCE: 400.
    Incomplete,
    /// The nonce is expired or not ours: 438 with a fresh nonce.
    StaleNonce,
    /// The username is not a live TURN REST username (malformed or expired): 401.
    BadUsername(#[allow(dead_code)] RestError),
    /// MESSAGE-INTEGRITY does not match the REST password: 401.
    BadIntegrity,
}

/// A request that passed authentication.
#[derive(Debug, Clone)]
pub(crate) struct Authed {
    /// The TURN REST username.
    pub(crate) username: String,
    /// The long-term key (MD5 of `username:realm:password`), to sign answers with.
    pub(crate) key: IntegrityKey,
}

/// The nonce the server hands `client` at `unix_s`.
pub(crate) fn make_nonce(secret: &[u8], client: IpAddr, unix_s: u64) -> String {
    let expiry = unix_s.saturating_add(NONCE_LIFETIME_S);
    format!("{expiry:016x}{}", nonce_tag(secret, client, expiry))
}

fn nonce_tag(secret: &[u8], client: IpAddr, expiry: u64) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(b"nonce");
    mac.update(&expiry.to_be_bytes());
    match client {
        IpAddr::V4(v4) => mac.update(&v4.octets()),
        IpAddr::V6(v6) => mac.update(&v6.octets()),
    }
    hex::encode(&mac.finalize().into_bytes()[..8])
}

/// Whether `nonce` was made by [`make_nonce`] for `client` and is still fresh at `unix_s`.
fn nonce_fresh(secret: &[u8], client: IpAddr, nonce: &str, unix_s: u64) -> bool {
    if nonce.len() != 32 || !nonce.is_ascii() {
        return false;
    }
    let (expiry_hex, tag) = nonce.split_at(16);
    let Ok(expiry) = u64::from_str_radix(expiry_hex, 16) else {
        return false;
    };
    expiry >= unix_s && constant_eq(tag.as_bytes(), nonce_tag(secret, client, expiry).as_bytes())
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks `msg` from `client` at `unix_s` (RFC 8489 §9.2.4 order: integrity present, then
/// USERNAME/REALM/NONCE present, then nonce, then username, then integrity).
pub(crate) fn authenticate(
    msg: &Message<'_>,
    secret: &[u8],
    realm: &str,
    client: IpAddr,
    unix_s: u64,
) -> Result<Authed, AuthFailure> {
    if !msg.has_attribute(MessageIntegrity::TYPE)
        && !msg.has_attribute(MessageIntegritySha256::TYPE)
    {
        return Err(AuthFailure::NoCredentials);
    }
    let (Ok(user), Ok(msg_realm), Ok(nonce)) = (
        msg.attribute::<Username>(),
        msg.attribute::<Realm>(),
        msg.attribute::<Nonce>(),
    ) else {
        return Err(AuthFailure::Incomplete);
    };
    if msg_realm.realm() != realm || !nonce_fresh(secret, client, nonce.nonce(), unix_s) {
        return Err(AuthFailure::StaleNonce);
    }
    let username = user.username().to_owned();
    rest::check_username(&username, unix_s).map_err(AuthFailure::BadUsername)?;
    let password = rest::password(secret, &username);
    let key = LongTermKeyCredentials::new(username.clone(), password, realm.to_owned())
        .make_key(IntegrityAlgorithm::Sha1);
    msg.validate_integrity_with_key(&key)
        .map_err(|_| AuthFailure::BadIntegrity)?;
    Ok(Authed { username, key })
}
