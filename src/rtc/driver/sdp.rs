//! The offer/answer inside the task: the `Rtc` lives here from the start, so candidates found
//! while an offer waits for its answer reach it. Under `IcePolicy::Relay` the offer or answer
//! waits for the first relayed candidate (so its SDP carries one), bounded by the gathering
//! deadline (the connect timeout).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::channel::{ChannelConfig, ChannelId};
use str0m::Input;
use tokio::sync::oneshot;

use super::{Chan, Driver};
use crate::rtc::description::{self, Kind};
use crate::rtc::{DisconnectReason, RtcError};

/// The channels an offer opens, with their ids.
pub(crate) type OfferChannels = Vec<(ChannelId, ChannelConfig)>;

/// Timeout inputs fed to str0m as the answer is applied: the answerer's checks that came
/// earlier (one per pair it checked, up to three here) and then our own first check.
const EARLY_CHECK_INPUTS: usize = 4;

/// A description to make once the policy allows.
pub(crate) enum SdpRequest {
    /// Make the offer with these channels: replies with its JSON and the channels' ids.
    Offer {
        channels: Vec<ChannelConfig>,
        reply: oneshot::Sender<Result<(String, OfferChannels), RtcError>>,
    },
    /// Answer this offer (`sdp` is its text) and open these pre-negotiated channels: replies
    /// with the answer JSON.
    Answer {
        offer: SdpOffer,
        sdp: String,
        channels: Vec<ChannelConfig>,
        reply: oneshot::Sender<Result<String, RtcError>>,
    },
}

impl SdpRequest {
    fn fail(self, e: RtcError) {
        match self {
            SdpRequest::Offer { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            SdpRequest::Answer { reply, .. } => {
                let _ = reply.send(Err(e));
            }
        }
    }
}

impl Driver {
    pub(super) async fn on_sdp(&mut self, req: SdpRequest) {
        self.sdp_wait = Some(req);
        self.sdp_ready().await;
    }

    /// Makes the waiting description if the policy allows; under `Relay` without any relayed
    /// candidate once gathering is over, fails it (and the connection).
    pub(super) async fn sdp_ready(&mut self) {
        if self.sdp_wait.is_none() {
            return;
        }
        let relayed = self.shared.relayed_found.load(Ordering::Relaxed) > 0;
        let gathering = self.gather.as_ref().is_some_and(|g| !g.is_done());
        if self.relay_only && !relayed {
            if gathering {
                return;
            }
            let why = if self.gather_failures.is_empty() {
                "no TURN server configured".to_string()
            } else {
                self.gather_failures.join("; ")
            };
            if let Some(req) = self.sdp_wait.take() {
                req.fail(RtcError::NoRelayedCandidate(why.clone()));
            }
            self.fail_now(DisconnectReason::Error(format!(
                "no relayed candidate: {why}"
            )));
            return;
        }
        let Some(req) = self.sdp_wait.take() else {
            return;
        };
        match req {
            SdpRequest::Offer { channels, reply } => {
                let r = self.make_offer(channels);
                self.drain().await;
                let _ = reply.send(r);
            }
            SdpRequest::Answer {
                offer,
                sdp,
                channels,
                reply,
            } => {
                let r = self.make_answer(offer, &sdp, channels);
                self.drain().await;
                let _ = reply.send(r);
            }
        }
    }

    fn make_offer(
        &mut self,
        channels: Vec<ChannelConfig>,
    ) -> Result<(String, OfferChannels), RtcError> {
        let mut api = self.rtc.sdp_api();
        let local: OfferChannels = channels
            .into_iter()
            .map(|config| (api.add_channel_with_config(config.clone()), config))
            .collect();
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| RtcError::Negotiation("str0m made no offer".into()))?;
        self.pending_offer = Some(pending);
        for (id, cfg) in &local {
            self.chans.insert(*id, Chan::new(cfg));
            self.waiting.insert(*id);
        }
        Ok((
            description::to_json(Kind::Offer, &offer.to_sdp_string()),
            local,
        ))
    }

    fn make_answer(
        &mut self,
        offer: SdpOffer,
        sdp: &str,
        channels: Vec<ChannelConfig>,
    ) -> Result<String, RtcError> {
        let answer = match catch_unwind(AssertUnwindSafe(|| self.rtc.sdp_api().accept_offer(offer)))
        {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => return Err(RtcError::Refused(e)),
            Err(_) => return Err(RtcError::Negotiation("the offer crashed the parser".into())),
        };
        self.remote_described(sdp);
        // Pre-negotiated channels need no DCEP: each opens when SCTP is up (the offerer's
        // in-band ones still arrive as it opens them).
        for config in channels {
            let id = self.rtc.direct_api().create_data_channel(config.clone());
            self.chans.insert(id, Chan::new(&config));
        }
        Ok(description::to_json(Kind::Answer, &answer.to_sdp_string()))
    }

    /// Applies the answer to our offer; the connect deadline starts now.
    pub(super) async fn apply_answer(
        &mut self,
        answer: SdpAnswer,
        sdp: &str,
    ) -> Result<(), RtcError> {
        let pending = self
            .pending_offer
            .take()
            .ok_or_else(|| RtcError::Negotiation("no offer waits for an answer".into()))?;
        let applied = catch_unwind(AssertUnwindSafe(|| {
            self.rtc.sdp_api().accept_answer(pending, answer)
        }));
        match applied {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(RtcError::Refused(e)),
            Err(_) => {
                return Err(RtcError::Negotiation(
                    "the answer crashed the parser".into(),
                ))
            }
        }
        self.connect_deadline = Some(crate::time::later(
            Instant::now(),
            self.timing.connect_timeout,
        ));
        self.remote_described(sdp);
        // The answerer's checks that arrived before its answer wait in str0m's ICE agent, which
        // answers one of them per timeout input before it sends any check of its own (and then
        // waits a pace): feed a few inputs now so our first check is not held up by them.
        let now = Instant::now();
        for _ in 0..EARLY_CHECK_INPUTS {
            self.rtc
                .handle_input(Input::Timeout(now))
                .map_err(|e| RtcError::Negotiation(e.to_string()))?;
        }
        self.last_tick = now;
        self.drain().await;
        Ok(())
    }

    /// The remote description is applied: note its candidates (kinds, TURN permissions; str0m
    /// has them from the SDP) and add the ones trickled before it.
    fn remote_described(&mut self, sdp: &str) {
        self.negotiated = true;
        let now = Instant::now();
        for line in sdp.lines().filter(|l| l.starts_with("a=candidate:")) {
            if let Ok(c) = description::parse_candidate(line) {
                self.remote_kinds.insert(c.addr(), c.kind());
                if let Some(g) = &mut self.gather {
                    g.add_remote(c.addr(), now);
                }
            }
        }
        for c in std::mem::take(&mut self.early_remote) {
            self.rtc.add_remote_candidate(c);
        }
    }
}
