//! Building the server's STUN answers (RFC 8489 §6.3.3, §6.3.4): success and error responses
//! to a request, signed with the client's long-term key once authenticated, with FINGERPRINT
//! when the request carried one; and Data indications (RFC 8656 §11.4).

use std::net::SocketAddr;

use stun_types::attribute::{
    AttributeStaticType, AttributeWrite, ErrorCode, Fingerprint, Nonce, Realm, Software,
};
use stun_types::message::{
    IntegrityAlgorithm, IntegrityKey, Message, MessageWrite, MessageWriteExt, MessageWriteVec,
};
use turn_types::attribute::{Data, XorPeerAddress};
use turn_types::message::DATA;

/// The SOFTWARE attribute of our answers (RFC 8489 §14.14).
const SOFTWARE: &str = concat!("dat-social ", env!("CARGO_PKG_VERSION"));

/// How an answer is sealed: the key of an authenticated request, and whether to add
/// FINGERPRINT.
#[derive(Clone, Copy)]
pub(crate) struct Seal<'a> {
    pub(crate) key: Option<&'a IntegrityKey>,
    pub(crate) fingerprint: bool,
}

impl Seal<'_> {
    /// Unsigned, with FINGERPRINT if `request` had one.
    pub(crate) fn plain(request: &Message<'_>) -> Seal<'static> {
        Seal {
            key: None,
            fingerprint: request.has_attribute(Fingerprint::TYPE),
        }
    }
}

fn finish(mut w: MessageWriteVec, attrs: &[&dyn AttributeWrite], seal: Seal<'_>) -> Vec<u8> {
    // Our attributes are small and well-formed: a write error would be a bug; such an
    // attribute is left out rather than failing the whole answer.
    for a in attrs {
        let _ = w.add_attribute(*a);
    }
    if let Ok(software) = Software::new(SOFTWARE) {
        let _ = w.add_attribute(&software);
    }
    if let Some(key) = seal.key {
        let _ = w.add_message_integrity_with_key(key, IntegrityAlgorithm::Sha1);
    }
    if seal.fingerprint {
        let _ = w.add_fingerprint();
    }
    w.finish()
}

/// A success response to `request` carrying `attrs`.
pub(crate) fn success(
    request: &Message<'_>,
    attrs: &[&dyn AttributeWrite],
    seal: Seal<'_>,
) -> Vec<u8> {
    finish(
        Message::builder_success(request, MessageWriteVec::new()),
        attrs,
        seal,
    )
}

/// An error response to `request` with `code` (its default reason phrase) and `attrs`.
pub(crate) fn error(
    request: &Message<'_>,
    code: u16,
    attrs: &[&dyn AttributeWrite],
    seal: Seal<'_>,
) -> Vec<u8> {
    let w = Message::builder_error(request, MessageWriteVec::new());
    match ErrorCode::builder(code).build() {
        Ok(ec) => {
            let mut all: Vec<&dyn AttributeWrite> = vec![&ec];
            all.extend_from_slice(attrs);
            finish(w, &all, seal)
        }
        Err(_) => finish(w, attrs, seal),
    }
}

/// A 401 or 438 asking for (fresh) credentials: ERROR-CODE, REALM and NONCE, unsigned
/// (RFC 8489 §9.2.4).
pub(crate) fn challenge(request: &Message<'_>, code: u16, realm: &str, nonce: &str) -> Vec<u8> {
    let seal = Seal::plain(request);
    match (Realm::new(realm), Nonce::new(nonce)) {
        (Ok(r), Ok(n)) => error(request, code, &[&r, &n], seal),
        _ => error(request, code, &[], seal),
    }
}

/// A Data indication carrying `data` from `peer` (RFC 8656 §11.4).
pub(crate) fn data_indication(peer: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut w = Message::builder_indication(DATA, MessageWriteVec::with_capacity(data.len() + 48));
    let peer_attr = XorPeerAddress::new(peer, w.transaction_id());
    let _ = w.add_attribute(&peer_attr);
    let _ = w.add_attribute(&Data::new(data));
    w.finish()
}

/// A ChannelData message (RFC 8656 §12.4), padded to a multiple of 4 bytes on TCP (§12.5).
pub(crate) fn channel_data(number: u16, data: &[u8], pad: bool) -> Vec<u8> {
    let len = data.len().min(usize::from(u16::MAX));
    let mut out = Vec::with_capacity(len + 7);
    out.extend_from_slice(&number.to_be_bytes());
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&data[..len]);
    if pad {
        out.resize(out.len().next_multiple_of(4), 0);
    }
    out
}
