//! Session descriptions and ICE candidates as the browser writes them.
//!
//! An offer/answer travels as the JSON of an `RTCSessionDescriptionInit`
//! (`{"type":"offer","sdp":"v=0\r\n..."}`, W3C WebRTC 1.0 §4.8.1), a trickled candidate as the
//! `candidate:...` attribute of RFC 8839 §5.1 or the JSON of an `RTCIceCandidateInit`. Parsing is
//! done here, before any socket is bound, and never panics: the SDP parser is str0m's, wrapped
//! so that a panic in it would become an error.

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::{Deserialize, Serialize};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::Candidate;

use super::RtcError;

/// Largest offer/answer JSON accepted, in bytes. A data-channel-only SDP with a dozen candidates
/// is about 1.5 KB; this also matches the signalling block limit.
pub const MAX_DESCRIPTION_BYTES: usize = 64 * 1024;

/// Largest candidate string accepted, in bytes.
const MAX_CANDIDATE_BYTES: usize = 2048;

/// Which side of the exchange a description is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Offer,
    Answer,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Offer => "offer",
            Kind::Answer => "answer",
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Description {
    #[serde(rename = "type")]
    kind: String,
    sdp: String,
}

/// The browser's description JSON for `sdp`.
pub(crate) fn to_json(kind: Kind, sdp: &str) -> String {
    let d = Description {
        kind: kind.as_str().to_owned(),
        sdp: sdp.to_owned(),
    };
    // Serializing two strings cannot fail.
    serde_json::to_string(&d).unwrap_or_default()
}

/// The SDP text of a description JSON, checked to be of `kind` and to carry a data channel
/// section.
fn sdp_text(json: &str, kind: Kind) -> Result<String, RtcError> {
    if json.len() > MAX_DESCRIPTION_BYTES {
        return Err(RtcError::InvalidDescription(format!(
            "{} bytes, more than the limit of {MAX_DESCRIPTION_BYTES}",
            json.len()
        )));
    }
    let d: Description = serde_json::from_str(json).map_err(|e| {
        RtcError::InvalidDescription(format!(
            "not {{\"type\":\"{}\",\"sdp\":\"...\"}} JSON: {e}",
            kind.as_str()
        ))
    })?;
    if d.kind != kind.as_str() {
        return Err(RtcError::InvalidDescription(format!(
            "expected type \"{}\", got \"{}\"",
            kind.as_str(),
            d.kind
        )));
    }
    // A description without an application m-line would negotiate no SCTP association, so no
    // channel could ever open; say so now instead of timing out later.
    if !d.sdp.lines().any(|l| l.starts_with("m=application")) {
        return Err(RtcError::InvalidDescription(
            "no data channel (m=application) section; create a data channel before the offer"
                .into(),
        ));
    }
    Ok(d.sdp)
}

/// Runs a parser, turning a panic into an error: the input came from another peer.
fn guarded<T, E: std::fmt::Display>(f: impl FnOnce() -> Result<T, E>) -> Result<T, RtcError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(RtcError::InvalidDescription(format!(
            "SDP does not parse: {e}"
        ))),
        Err(_) => Err(RtcError::InvalidDescription(
            "SDP parser panicked on this input".into(),
        )),
    }
}

/// Parses an offer JSON (`{"type":"offer","sdp":...}`).
///
/// Errors: [`RtcError::InvalidDescription`] for bad JSON, a wrong `type`, unparsable SDP, no
/// `m=application` section, or more than [`MAX_DESCRIPTION_BYTES`].
/// Returns it with its SDP text (whose candidate lines the driver reads).
pub(crate) fn parse_offer(json: &str) -> Result<(SdpOffer, String), RtcError> {
    let sdp = sdp_text(json, Kind::Offer)?;
    Ok((guarded(|| SdpOffer::from_sdp_string(&sdp))?, sdp))
}

/// Parses an answer JSON (`{"type":"answer","sdp":...}`); returns and errors as
/// [`parse_offer`].
pub(crate) fn parse_answer(json: &str) -> Result<(SdpAnswer, String), RtcError> {
    let sdp = sdp_text(json, Kind::Answer)?;
    Ok((guarded(|| SdpAnswer::from_sdp_string(&sdp))?, sdp))
}

#[derive(Deserialize)]
struct CandidateInit {
    candidate: String,
}

/// Parses a remote ICE candidate in any of the forms a peer may send: `candidate:...`,
/// `a=candidate:...` (an SDP line), or `{"candidate":"candidate:...", ...}`.
///
/// Errors: [`RtcError::InvalidCandidate`] for anything else, an unparsable attribute, or an
/// mDNS (`.local`) host name, which this stack cannot resolve.
pub(crate) fn parse_candidate(s: &str) -> Result<Candidate, RtcError> {
    let s = s.trim();
    if s.len() > MAX_CANDIDATE_BYTES {
        return Err(RtcError::InvalidCandidate(format!(
            "{} bytes, more than the limit of {MAX_CANDIDATE_BYTES}",
            s.len()
        )));
    }
    let attr = if s.starts_with('{') {
        serde_json::from_str::<CandidateInit>(s)
            .map_err(|e| RtcError::InvalidCandidate(format!("not RTCIceCandidateInit JSON: {e}")))?
            .candidate
    } else {
        s.strip_prefix("a=").unwrap_or(s).to_owned()
    };
    let attr = attr.trim_end_matches(['\r', '\n']);
    if attr.contains(".local ") {
        return Err(RtcError::InvalidCandidate(
            "mDNS (.local) candidates cannot be resolved; start Chromium with \
             --disable-features=WebRtcHideLocalIpsWithMdns"
                .into(),
        ));
    }
    match catch_unwind(|| Candidate::from_sdp_string(attr)) {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(RtcError::InvalidCandidate(format!("{e} in {attr:?}"))),
        Err(_) => Err(RtcError::InvalidCandidate(format!(
            "parser panicked on {attr:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A data-channel-only offer as Chromium writes it (addresses from the documentation range).
    // (CRLF line ends, as on the wire; shared with the fuzz seeds of tests/fuzz_rtc.rs.)
    const CHROME_OFFER_SDP: &str = include_str!("../../tests/data/chrome-offer.sdp");

    fn chrome_offer_json() -> String {
        to_json(Kind::Offer, CHROME_OFFER_SDP)
    }

    #[test]
    fn browser_offer_parses_and_round_trips_json_shape() {
        let json = chrome_offer_json();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["type"], "offer");
        assert_eq!(v["sdp"], CHROME_OFFER_SDP);
        let (offer, _) = parse_offer(&json).unwrap();
        assert!(offer.to_sdp_string().contains("m=application"));
    }

    #[test]
    fn offer_with_mdns_candidates_still_parses() {
        // Chromium hides local addresses behind `<uuid>.local` names unless started with
        // --disable-features=WebRtcHideLocalIpsWithMdns. The SDP still parses (the candidate is
        // skipped); the connection then relies on the browser reaching our candidates.
        let sdp =
            CHROME_OFFER_SDP.replace("192.0.2.7", "4b1c5d2e-8d2c-4a4e-9a51-3d1c1c9f2f11.local");
        assert!(parse_offer(&to_json(Kind::Offer, &sdp)).is_ok());
    }

    #[test]
    fn wrong_type_is_rejected() {
        let json = to_json(Kind::Answer, CHROME_OFFER_SDP);
        let e = parse_offer(&json).unwrap_err();
        assert!(e.to_string().contains("expected type \"offer\""), "{e}");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            "",
            "null",
            "{}",
            "not json",
            r#"{"type":"offer"}"#,
            r#"{"type":"offer","sdp":42}"#,
            r#"{"type":"offer","sdp":"hello"}"#,
            r#"{"type":"offer","sdp":"m=application 9 UDP/DTLS/SCTP webrtc-datachannel"}"#,
        ] {
            assert!(
                matches!(parse_offer(bad), Err(RtcError::InvalidDescription(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn no_data_channel_section_is_explained() {
        let sdp = CHROME_OFFER_SDP.replace("m=application", "m=audio");
        let e = parse_offer(&to_json(Kind::Offer, &sdp)).unwrap_err();
        assert!(e.to_string().contains("m=application"), "{e}");
    }

    #[test]
    fn every_truncation_of_an_offer_is_handled() {
        // Cut the SDP at every byte: each must parse or fail, never panic.
        let mut errors = 0;
        for cut in 0..CHROME_OFFER_SDP.len() {
            if !CHROME_OFFER_SDP.is_char_boundary(cut) {
                continue;
            }
            if parse_offer(&to_json(Kind::Offer, &CHROME_OFFER_SDP[..cut])).is_err() {
                errors += 1;
            }
        }
        assert!(errors > 0);
    }

    #[test]
    fn oversized_description_is_rejected() {
        let big = "x".repeat(MAX_DESCRIPTION_BYTES + 1);
        let e = parse_offer(&big).unwrap_err();
        assert!(e.to_string().contains("limit"), "{e}");
    }

    #[test]
    fn candidate_forms() {
        let attr = "candidate:1 1 udp 2113937151 127.0.0.1 5000 typ host";
        let want: std::net::SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(parse_candidate(attr).unwrap().addr(), want);
        assert_eq!(
            parse_candidate(&format!("a={attr}\r\n")).unwrap().addr(),
            want
        );
        let init = format!(r#"{{"candidate":"{attr}","sdpMid":"0","sdpMLineIndex":0}}"#);
        assert_eq!(parse_candidate(&init).unwrap().addr(), want);
    }

    #[test]
    fn bad_candidates_are_errors() {
        for bad in [
            "",
            "candidate:",
            "candidate:1 1 udp x 127.0.0.1 5000 typ host",
            "{\"sdpMid\":\"0\"}",
            "candidate:1 1 udp 2113937151 4b1c5d2e-8d2c-4a4e-9a51-3d1c1c9f2f11.local 5000 typ host",
        ] {
            assert!(
                matches!(parse_candidate(bad), Err(RtcError::InvalidCandidate(_))),
                "{bad:?}"
            );
        }
    }
}
