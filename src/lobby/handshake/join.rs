//! The joiner's side of the signalling: writes the offer, answers a password challenge, and
//! waits for the host's answer or reject.

use std::collections::VecDeque;
use std::time::Instant;

use ed25519_dalek::SigningKey;

use crate::keys::LogKey;
use crate::signal::message::{b64, sign_offer, unb64};
use crate::signal::{pake, RejectReason, Signal};

/// What the joiner's machine tells its driver.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum JoinEvent {
    /// The host trickled an ICE candidate: add it to the pending offer or peer connection.
    AddCandidate {
        /// The candidate, as the host wrote it.
        candidate: String,
    },
    /// The host's answer (browser JSON form): apply it.
    Answer {
        /// The answer's session description JSON.
        sdp: String,
        /// The stream id of the pre-negotiated chat channel the host opened too; `None`: open
        /// chat in band.
        chat_stream: Option<u16>,
    },
    /// The host turned us away (or ended the lobby: [`RejectReason::Ended`]).
    Rejected {
        /// Why.
        reason: RejectReason,
    },
    /// The host broke the protocol (an unexpected or malformed signal).
    Protocol {
        /// What was wrong.
        message: String,
    },
    /// No answer before the deadline.
    TimedOut,
}

/// What the joiner sends in its offer.
pub(crate) struct OfferParams<'a> {
    /// The offer's session description JSON.
    pub sdp: String,
    /// The joiner's identity, which signs the offer.
    pub identity: &'a SigningKey,
    /// The joiner's display name.
    pub name: String,
    /// The lobby password, if the joiner has one.
    pub password: Option<&'a [u8]>,
    /// The stream id of a pre-negotiated chat channel, offered to the host.
    pub chat_stream: Option<u16>,
}

/// The joiner's signalling with one host.
pub(crate) struct JoinHandshake {
    /// The password exchange between the offer and the challenge.
    pake: Option<pake::Joiner>,
    /// `None` once the outcome is settled.
    deadline: Option<Instant>,
    transmit: VecDeque<Signal>,
    events: VecDeque<JoinEvent>,
}

impl JoinHandshake {
    /// Starts signalling on the joiner's log `joiner_log` (public key) to the lobby whose log
    /// key is `lobby_log`: queues the offer for [`Self::poll_transmit`]. The answer must come
    /// by `deadline`.
    pub(crate) fn new(
        offer: OfferParams<'_>,
        joiner_log: LogKey,
        lobby_log: LogKey,
        deadline: Instant,
    ) -> Self {
        let (pake, msg_a) = match offer.password {
            Some(pw) => {
                let (state, msg_a) = pake::Joiner::start(pw, &joiner_log, &lobby_log);
                (Some(state), Some(b64(&msg_a)))
            }
            None => (None, None),
        };
        let offer = Signal::Offer {
            sdp: offer.sdp,
            identity: hex::encode(offer.identity.verifying_key().to_bytes()),
            name: offer.name,
            signature: sign_offer(offer.identity, &lobby_log, &joiner_log),
            pake: msg_a,
            chat_stream: offer.chat_stream,
        };
        JoinHandshake {
            pake,
            deadline: Some(deadline),
            transmit: VecDeque::from([offer]),
            events: VecDeque::new(),
        }
    }

    /// A signal from the lobby log addressed to the joiner's log.
    pub(crate) fn handle_signal(&mut self, signal: Signal, _now: Instant) {
        if self.deadline.is_none() {
            // Settled: only trickled candidates still matter.
            if let Signal::Candidate { candidate } = signal {
                self.events.push_back(JoinEvent::AddCandidate { candidate });
            }
            return;
        }
        match signal {
            Signal::Challenge { pake, mac } => self.challenge(&pake, &mac),
            Signal::Answer { sdp, chat_stream } => {
                self.settle(JoinEvent::Answer { sdp, chat_stream })
            }
            Signal::Reject { reason } => self.settle(JoinEvent::Rejected { reason }),
            Signal::Candidate { candidate } => {
                self.events.push_back(JoinEvent::AddCandidate { candidate })
            }
            other => self.settle(JoinEvent::Protocol {
                message: format!("unexpected signal {other:?}"),
            }),
        }
    }

    /// A block for the joiner that is not a valid signal: the host broke the protocol.
    pub(crate) fn handle_malformed(&mut self, message: String, _now: Instant) {
        if self.deadline.is_some() {
            self.settle(JoinEvent::Protocol { message });
        }
    }

    /// When the answer is due, until it came.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Time passed: past the deadline without an answer, [`JoinEvent::TimedOut`].
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_some_and(|d| now >= d) {
            self.settle(JoinEvent::TimedOut);
        }
    }

    /// The next signal to append to the joiner's log, sealed to the lobby log key.
    pub(crate) fn poll_transmit(&mut self) -> Option<Signal> {
        self.transmit.pop_front()
    }

    /// The next request or outcome for the driver.
    pub(crate) fn poll_event(&mut self) -> Option<JoinEvent> {
        self.events.pop_front()
    }

    fn challenge(&mut self, msg_b: &str, mac: &str) {
        // A challenge without a password of ours (or a second one): we can't enter.
        let Some(state) = self.pake.take() else {
            return self.settle(JoinEvent::Rejected {
                reason: RejectReason::Password,
            });
        };
        let (msg_b, mac) = match (unb64(msg_b), unb64(mac)) {
            (Ok(msg_b), Ok(mac)) => (msg_b, mac),
            (Err(e), _) | (_, Err(e)) => {
                return self.settle(JoinEvent::Protocol {
                    message: e.to_string(),
                })
            }
        };
        let confirm = match state.finish(&msg_b, &mac) {
            Ok(mac) => b64(&mac),
            // Wrong password: confirm with garbage so the host answers with its reject.
            Err(_) => b64(&[0u8; 32]),
        };
        self.transmit.push_back(Signal::Confirm { mac: confirm });
    }

    fn settle(&mut self, event: JoinEvent) {
        self.deadline = None;
        self.pake = None;
        self.events.push_back(event);
    }
}
