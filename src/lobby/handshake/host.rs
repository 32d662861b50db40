//! The host's side of one joiner's signalling: reads the offer, asks for an admission
//! decision, runs the password exchange, asks for and writes the answer, or rejects.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::keys::{IdentityKey, LogKey};
use crate::signal::message::{b64, unb64, verify_offer};
use crate::signal::{pake, RejectReason, Signal, SignalError};

/// The host's decision about a joiner whose offer is valid (asked for by
/// [`HostEvent::NeedAdmission`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// A slot is reserved for the joiner: go on (password, then answer).
    Admit,
    /// Every slot is taken: reject with [`RejectReason::Full`].
    Full,
    /// The lobby admits mutual friends only and the joiner is not one: reject with
    /// [`RejectReason::FriendsOnly`].
    FriendsOnly,
}

/// What the host's machine asks of its driver, or tells it.
#[derive(Debug)]
pub(crate) enum HostEvent {
    /// A valid offer arrived: decide with [`HostHandshake::handle_admission`].
    NeedAdmission {
        /// The joiner's identity key (the offer is signed with it).
        identity: IdentityKey,
        /// The joiner's display name, cut to `schema::MAX_NAME_CHARS` characters.
        name: String,
    },
    /// The joiner may connect: create an answer to this offer (browser JSON form) and give it
    /// to [`HostHandshake::handle_answer`].
    NeedAnswer {
        /// The offer's session description JSON.
        offer: String,
        /// Open the chat channel pre-negotiated on this SCTP stream id (the joiner's offer
        /// asked for it, at most [`MAX_CHAT_STREAM`]); `None`: the joiner opens it in band.
        chat_stream: Option<u16>,
    },
    /// The joiner trickled an ICE candidate (`candidate:...` line or `RTCIceCandidateInit`
    /// JSON): add it to the peer connection (buffer it until there is one).
    AddCandidate {
        /// The candidate, as the joiner wrote it.
        candidate: String,
    },
    /// The joiner was turned away (the reject is queued for [`HostHandshake::poll_transmit`]).
    Rejected {
        /// Why.
        reason: RejectReason,
        /// For [`RejectReason::Protocol`]: the joiner's signal that broke the protocol.
        cause: Option<SignalError>,
    },
    /// The joiner did not send what the host waited for in time.
    TimedOut {
        /// What was awaited: "the offer" or "the password confirmation".
        waiting_for: &'static str,
    },
}

enum State {
    /// Waiting for the offer, until the deadline.
    Offer,
    /// A valid offer: waiting for the driver's admission decision.
    Admission {
        offer: String,
        pake: Option<Vec<u8>>,
    },
    /// Challenge sent: waiting for the joiner's confirm, until the deadline.
    Confirm { offer: String, pake: pake::Host },
    /// Waiting for the driver's answer.
    Answer,
    /// Answered: only trickled candidates are expected.
    Answered,
    /// Rejected or timed out: nothing more.
    Done,
}

/// One joiner's signalling at the host. Created when the joiner's hello names its log.
pub(crate) struct HostHandshake {
    lobby_log: LogKey,
    joiner_log: LogKey,
    password: Option<Vec<u8>>,
    /// How long the joiner may take to send each awaited signal.
    timeout: Duration,
    deadline: Option<Instant>,
    state: State,
    /// The offer's pre-negotiated chat stream id, once a valid offer asked for one.
    chat_stream: Option<u16>,
    transmit: VecDeque<Signal>,
    events: VecDeque<HostEvent>,
}

/// Highest pre-negotiated chat stream id a host goes along with: 1023 (every WebRTC stack
/// offers at least 1024 SCTP streams). Above it the joiner's chat opens in band.
pub(crate) const MAX_CHAT_STREAM: u16 = 1023;

impl HostHandshake {
    /// A machine for the joiner whose signalling log is `joiner_log`, in the lobby whose log
    /// key is `lobby_log`, protected by `password` if any. The joiner has `timeout` from `now`
    /// to send its offer (and again from the challenge to confirm).
    pub(crate) fn new(
        lobby_log: LogKey,
        joiner_log: LogKey,
        password: Option<Vec<u8>>,
        timeout: Duration,
        now: Instant,
    ) -> Self {
        HostHandshake {
            lobby_log,
            joiner_log,
            password,
            timeout,
            deadline: Some(crate::time::later(now, timeout)),
            state: State::Offer,
            chat_stream: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The joiner's signalling log key: every signal from [`Self::poll_transmit`] is sealed to it.
    pub(crate) fn joiner_log(&self) -> LogKey {
        self.joiner_log
    }

    /// Whether the machine has answered (the driver waits for the data channel now).
    #[cfg(test)]
    pub(crate) fn is_answered(&self) -> bool {
        matches!(self.state, State::Answered)
    }

    /// A signal from the joiner's log addressed to the lobby.
    pub(crate) fn handle_signal(&mut self, signal: Signal, _now: Instant) {
        match (std::mem::replace(&mut self.state, State::Done), signal) {
            (
                State::Offer,
                Signal::Offer {
                    sdp,
                    identity,
                    name,
                    signature,
                    pake,
                    chat_stream,
                },
            ) => {
                self.chat_stream = chat_stream.filter(|id| *id <= MAX_CHAT_STREAM);
                self.offer(sdp, &identity, &name, &signature, pake)
            }
            (State::Offer, other) => self.refuse(SignalError::Malformed(format!(
                "expected an offer, got {other:?}"
            ))),
            (
                state @ (State::Confirm { .. } | State::Answered),
                Signal::Candidate { candidate },
            ) => {
                self.state = state;
                self.events.push_back(HostEvent::AddCandidate { candidate });
            }
            (State::Confirm { offer, pake }, Signal::Confirm { mac }) => {
                let confirmed = unb64(&mac).is_ok_and(|mac| pake.check(&mac).is_ok());
                if confirmed {
                    self.need_answer(offer);
                } else {
                    self.reject(RejectReason::Password, None);
                }
            }
            // Anything but a confirm after a challenge: the joiner doesn't know the password.
            (State::Confirm { .. }, _) => self.reject(RejectReason::Password, None),
            // Late or stray signals once the outcome is settled change nothing.
            (state, _) => self.state = state,
        }
    }

    /// A block in the joiner's log addressed to the lobby that is not a valid signal: before
    /// the answer, a protocol reject; afterwards ignored.
    pub(crate) fn handle_malformed(&mut self, error: SignalError, _now: Instant) {
        if matches!(self.state, State::Offer | State::Confirm { .. }) {
            self.refuse(error);
        }
    }

    /// The driver's decision after [`HostEvent::NeedAdmission`]; ignored in any other state.
    pub(crate) fn handle_admission(&mut self, admission: Admission, now: Instant) {
        let State::Admission { offer, pake } = std::mem::replace(&mut self.state, State::Done)
        else {
            return;
        };
        match admission {
            Admission::Full => self.reject(RejectReason::Full, None),
            Admission::FriendsOnly => self.reject(RejectReason::FriendsOnly, None),
            Admission::Admit => match self.password.clone() {
                None => self.need_answer(offer),
                Some(password) => self.challenge(&password, offer, pake, now),
            },
        }
    }

    /// The answer (browser JSON form) to the offer of [`HostEvent::NeedAnswer`]: queued for the
    /// joiner. Ignored in any other state.
    pub(crate) fn handle_answer(&mut self, answer: String, _now: Instant) {
        if matches!(self.state, State::Answer) {
            self.state = State::Answered;
            self.transmit.push_back(Signal::Answer {
                sdp: answer,
                chat_stream: self.chat_stream,
            });
        }
    }

    /// The host ends the lobby: a joiner still waiting for its answer gets
    /// [`RejectReason::Ended`]; one already answered or rejected gets nothing.
    pub(crate) fn handle_end(&mut self, _now: Instant) {
        if !matches!(self.state, State::Answered | State::Done) {
            self.reject(RejectReason::Ended, None);
        }
    }

    /// When the joiner's next signal is due, if the machine waits for one.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Time passed: past the deadline, the handshake ends with [`HostEvent::TimedOut`].
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.deadline else {
            return;
        };
        if now < deadline {
            return;
        }
        let waiting_for = match self.state {
            State::Offer => "the offer",
            State::Confirm { .. } => "the password confirmation",
            _ => return,
        };
        self.state = State::Done;
        self.deadline = None;
        self.events.push_back(HostEvent::TimedOut { waiting_for });
    }

    /// The next signal to write to the lobby log, sealed to [`Self::joiner_log`].
    pub(crate) fn poll_transmit(&mut self) -> Option<Signal> {
        self.transmit.pop_front()
    }

    /// The next request or outcome for the driver.
    pub(crate) fn poll_event(&mut self) -> Option<HostEvent> {
        self.events.pop_front()
    }

    fn offer(
        &mut self,
        sdp: String,
        identity: &str,
        name: &str,
        signature: &str,
        pake: Option<String>,
    ) {
        let checked = verify_offer(identity, signature, &self.lobby_log, &self.joiner_log)
            .and_then(|key| Ok((key, pake.map(|p| unb64(&p)).transpose()?)));
        match checked {
            Ok((identity, pake)) => {
                self.deadline = None;
                self.state = State::Admission { offer: sdp, pake };
                let name = name.chars().take(crate::schema::MAX_NAME_CHARS).collect();
                self.events
                    .push_back(HostEvent::NeedAdmission { identity, name });
            }
            Err(e) => self.refuse(e),
        }
    }

    fn challenge(&mut self, password: &[u8], offer: String, msg_a: Option<Vec<u8>>, now: Instant) {
        let Some(msg_a) = msg_a else {
            return self.reject(RejectReason::Password, None);
        };
        match pake::Host::respond(password, &self.joiner_log, &self.lobby_log, &msg_a) {
            Ok((pake, msg_b, mac)) => {
                self.transmit.push_back(Signal::Challenge {
                    pake: b64(&msg_b),
                    mac: b64(&mac),
                });
                self.deadline = Some(crate::time::later(now, self.timeout));
                self.state = State::Confirm { offer, pake };
            }
            Err(_) => self.reject(RejectReason::Password, None),
        }
    }

    fn need_answer(&mut self, offer: String) {
        self.deadline = None;
        self.state = State::Answer;
        self.events.push_back(HostEvent::NeedAnswer {
            offer,
            chat_stream: self.chat_stream,
        });
    }

    /// A protocol reject for a signal that broke the protocol.
    fn refuse(&mut self, cause: SignalError) {
        self.reject(RejectReason::Protocol, Some(cause));
    }

    fn reject(&mut self, reason: RejectReason, cause: Option<SignalError>) {
        self.deadline = None;
        self.state = State::Done;
        self.transmit.push_back(Signal::Reject { reason });
        self.events.push_back(HostEvent::Rejected { reason, cause });
    }
}
