//! Fuzz targets: the WebRTC descriptions and ICE candidates a lobby receives from a peer.
//!
//! `src/rtc/description.rs` checks the offer/answer JSON and hands the SDP to str0m's parser
//! behind a panic guard; that module is private, so the SDP target calls the very parser it
//! wraps ([`SdpOffer::from_sdp_string`] / [`SdpAnswer::from_sdp_string`]) on mutations of a
//! browser's offer and of our own, and requires it not to panic (the guard is a last resort,
//! not a plan). Trickled candidates go through the public
//! [`dat_social::rtc::PendingOffer::add_remote_candidate`] (JSON, `a=` and bare forms).

mod fuzz_common;

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use dat_social::rtc::{self, Reliability, RtcConfig};
use fuzz_common::sys::current_thread_runtime as runtime;
use fuzz_common::{fuzz, mutated, raw};
use proptest::prelude::*;
use str0m::change::{SdpAnswer, SdpOffer};

/// A data-channel-only offer as Chromium writes it (addresses from the documentation range).
/// (CRLF line ends, as on the wire; shared with the unit tests of `src/rtc/description.rs`.)
const CHROME_OFFER_SDP: &str = include_str!("data/chrome-offer.sdp");

/// The SDP of an offer made by our own stack.
fn our_offer_sdp(rt: &tokio::runtime::Runtime) -> String {
    let (_pending, json) = rt
        .block_on(rtc::create_offer(
            &RtcConfig::default(),
            &[
                ("chat", Reliability::Reliable),
                ("game", Reliability::Unreliable),
            ],
        ))
        .expect("offer on loopback");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["sdp"].as_str().unwrap().to_owned()
}

#[test]
fn rtc_sdp() {
    let rt = runtime();
    let seeds = vec![
        CHROME_OFFER_SDP.as_bytes().to_vec(),
        our_offer_sdp(&rt).into_bytes(),
    ];
    fuzz(
        "rtc_sdp",
        1_000,
        prop_oneof![1 => raw(200), 6 => mutated(seeds)],
        |bytes| {
            let sdp = String::from_utf8_lossy(&bytes);
            let parsed = catch_unwind(AssertUnwindSafe(|| {
                let offer = SdpOffer::from_sdp_string(&sdp).map(|o| o.to_sdp_string());
                let answer = SdpAnswer::from_sdp_string(&sdp).map(|a| a.to_sdp_string());
                (offer, answer)
            }));
            let Ok((offer, answer)) = parsed else {
                return Err(TestCaseError::fail(format!(
                    "the SDP parser panicked on {sdp:?}"
                )));
            };
            // What parses prints as SDP that parses again (to the same text).
            if let Ok(text) = offer {
                let again = SdpOffer::from_sdp_string(&text).map(|o| o.to_sdp_string());
                prop_assert_eq!(again.ok(), Some(text));
            }
            prop_assert_eq!(answer.is_ok(), SdpAnswer::from_sdp_string(&sdp).is_ok());
            Ok(())
        },
    );
}

fn pending_offer(rt: &tokio::runtime::Runtime) -> rtc::PendingOffer {
    rt.block_on(rtc::create_offer(
        &RtcConfig::default(),
        &[("chat", Reliability::Reliable)],
    ))
    .expect("offer on loopback")
    .0
}

#[test]
fn rtc_candidate() {
    let rt = runtime();
    // A pending offer keeps every accepted candidate: start a fresh one now and then.
    let pending = RefCell::new((pending_offer(&rt), 0u32));
    let bare = "candidate:1 1 udp 2113937151 192.0.2.7 54321 typ host generation 0";
    let seeds: Vec<Vec<u8>> = [
        bare.to_owned(),
        format!("a={bare}\r\n"),
        format!(r#"{{"candidate":"{bare}","sdpMid":"0","sdpMLineIndex":0}}"#),
        "candidate:2 1 tcp 1518280447 2001:db8::1 9 typ host tcptype active".to_owned(),
        "candidate:3 1 udp 1686052607 198.51.100.1 4000 typ srflx raddr 10.0.0.1 rport 5000"
            .to_owned(),
    ]
    .map(String::into_bytes)
    .to_vec();
    fuzz(
        "rtc_candidate",
        2_000,
        prop_oneof![1 => raw(120), 4 => mutated(seeds)],
        |bytes| {
            let text = String::from_utf8_lossy(&bytes);
            let mut p = pending.borrow_mut();
            if p.1 as usize >= dat_social::rtc::MAX_REMOTE_CANDIDATES {
                *p = (pending_offer(&rt), 0);
            }
            // Errors are fine; panics are not (the candidate parser is guarded too).
            let r = catch_unwind(AssertUnwindSafe(|| p.0.add_remote_candidate(&text)));
            prop_assert!(r.is_ok(), "add_remote_candidate panicked on {:?}", text);
            if r.unwrap().is_ok() {
                p.1 += 1;
            }
            Ok(())
        },
    );
}
