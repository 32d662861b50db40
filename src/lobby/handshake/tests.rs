//! The two machines pumped into each other in memory, every signal sealed into a block and
//! opened again as the logs would carry it.

use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;

use super::host::MAX_CHAT_STREAM;
use super::join::OfferParams;
use super::*;
use crate::keys::LogKey;
use crate::signal::{RejectReason, Signal, SignalError};

const TIMEOUT: Duration = Duration::from_secs(15);

/// A joiner and a host machine for one join, with the keys of both logs.
struct Pair {
    host: HostHandshake,
    join: JoinHandshake,
    lobby_key: SigningKey,
    log_key: SigningKey,
    identity: SigningKey,
    /// What the host's driver decides when asked for admission.
    admission: Admission,
    /// Everything each side surfaced, in order.
    host_events: Vec<HostEvent>,
    join_events: Vec<JoinEvent>,
    now: Instant,
}

impl Pair {
    fn new(lobby_password: Option<&[u8]>, joiner_password: Option<&[u8]>) -> Pair {
        Pair::offering(lobby_password, joiner_password, None)
    }

    /// As [`Pair::new`], the joiner offering a pre-negotiated chat on `chat_stream`.
    fn offering(
        lobby_password: Option<&[u8]>,
        joiner_password: Option<&[u8]>,
        chat_stream: Option<u16>,
    ) -> Pair {
        let lobby_key = SigningKey::from_bytes(&[1; 32]);
        let log_key = SigningKey::from_bytes(&[2; 32]);
        let identity = SigningKey::from_bytes(&[3; 32]);
        let (lobby_pub, log_pub) = (pub_of(&lobby_key), pub_of(&log_key));
        let now = Instant::now();
        let offer = OfferParams {
            sdp: "offer-sdp".into(),
            identity: &identity,
            name: "ann".into(),
            password: joiner_password,
            chat_stream,
        };
        Pair {
            host: HostHandshake::new(
                lobby_pub,
                log_pub,
                lobby_password.map(<[u8]>::to_vec),
                TIMEOUT,
                now,
            ),
            join: JoinHandshake::new(offer, log_pub, lobby_pub, now + TIMEOUT),
            admission: Admission::Admit,
            host_events: Vec::new(),
            join_events: Vec::new(),
            lobby_key,
            log_key,
            identity,
            now,
        }
    }

    /// Moves signals both ways (through sealed blocks) and answers the host's requests until
    /// neither side has anything more to say.
    fn pump(&mut self) {
        for _ in 0..100 {
            let mut moved = false;
            while let Some(signal) = self.join.poll_transmit() {
                moved = true;
                self.deliver_to_host(&signal);
            }
            while let Some(signal) = self.host.poll_transmit() {
                moved = true;
                let block = signal.to_block(&self.host.joiner_log()).unwrap();
                let opened = Signal::from_block(&block, &self.log_key).unwrap().unwrap();
                self.join.handle_signal(opened, self.now);
            }
            while let Some(event) = self.host.poll_event() {
                moved = true;
                match &event {
                    HostEvent::NeedAdmission { .. } => {
                        self.host.handle_admission(self.admission, self.now)
                    }
                    HostEvent::NeedAnswer { offer, .. } => {
                        assert_eq!(offer, "offer-sdp");
                        self.host.handle_answer("answer-sdp".into(), self.now)
                    }
                    _ => {}
                }
                self.host_events.push(event);
            }
            while let Some(event) = self.join.poll_event() {
                moved = true;
                self.join_events.push(event);
            }
            if !moved {
                return;
            }
        }
        panic!("the machines never settled");
    }

    /// Writes `signal` to the joiner's log, addressed to the lobby.
    fn deliver_to_host(&mut self, signal: &Signal) {
        let block = signal.to_block(&pub_of(&self.lobby_key)).unwrap();
        match Signal::from_block(&block, &self.lobby_key) {
            Ok(Some(opened)) => self.host.handle_signal(opened, self.now),
            Ok(None) => panic!("a block for someone else"),
            Err(e) => self.host.handle_malformed(e, self.now),
        }
    }

    fn host_rejection(&self) -> Option<RejectReason> {
        self.host_events.iter().find_map(|e| match e {
            HostEvent::Rejected { reason, .. } => Some(*reason),
            _ => None,
        })
    }
}

/// The public key of a log's (or an identity's) key pair, as a log key.
fn pub_of(key: &SigningKey) -> LogKey {
    LogKey::from_bytes(key.verifying_key().to_bytes())
}

fn rejected(reason: RejectReason) -> JoinEvent {
    JoinEvent::Rejected { reason }
}

#[test]
fn an_open_lobby_admits_and_answers() {
    let mut pair = Pair::new(None, None);
    pair.pump();
    assert_eq!(
        pair.join_events,
        vec![JoinEvent::Answer {
            sdp: "answer-sdp".into(),
            chat_stream: None,
        }]
    );
    match &pair.host_events[0] {
        HostEvent::NeedAdmission { identity, name } => {
            assert_eq!(identity.as_bytes(), pub_of(&pair.identity).as_bytes());
            assert_eq!(name, "ann");
        }
        other => panic!("expected an admission request, got {other:?}"),
    }
    assert!(pair.host.is_answered());
    assert_eq!(pair.host.poll_timeout(), None);
    assert_eq!(pair.join.poll_timeout(), None);
}

#[test]
fn a_full_lobby_rejects() {
    let mut pair = Pair::new(None, None);
    pair.admission = Admission::Full;
    pair.pump();
    assert_eq!(pair.join_events, vec![rejected(RejectReason::Full)]);
    assert_eq!(pair.host_rejection(), Some(RejectReason::Full));
    assert!(!pair.host.is_answered());
}

#[test]
fn a_friends_only_lobby_rejects_strangers() {
    let mut pair = Pair::new(None, None);
    pair.admission = Admission::FriendsOnly;
    pair.pump();
    assert_eq!(pair.join_events, vec![rejected(RejectReason::FriendsOnly)]);
    assert_eq!(pair.host_rejection(), Some(RejectReason::FriendsOnly));
}

#[test]
fn the_right_password_is_challenged_confirmed_and_answered() {
    let mut pair = Pair::new(Some(b"secret"), Some(b"secret"));
    pair.pump();
    assert_eq!(
        pair.join_events,
        vec![JoinEvent::Answer {
            sdp: "answer-sdp".into(),
            chat_stream: None,
        }]
    );
    assert!(pair.host.is_answered());
}

#[test]
fn a_wrong_password_is_rejected_after_the_challenge() {
    let mut pair = Pair::new(Some(b"secret"), Some(b"guess"));
    pair.pump();
    assert_eq!(pair.join_events, vec![rejected(RejectReason::Password)]);
    assert_eq!(pair.host_rejection(), Some(RejectReason::Password));
}

#[test]
fn a_missing_password_is_rejected_without_a_challenge() {
    let mut pair = Pair::new(Some(b"secret"), None);
    // The offer reaches the host, which rejects before any challenge.
    let offer = pair.join.poll_transmit().unwrap();
    pair.deliver_to_host(&offer);
    pair.host.handle_admission(Admission::Admit, pair.now);
    assert_eq!(
        pair.host.poll_transmit(),
        Some(Signal::Reject {
            reason: RejectReason::Password
        })
    );
}

#[test]
fn a_challenge_to_a_joiner_without_a_password_is_a_password_rejection() {
    let mut pair = Pair::new(None, None);
    pair.join.handle_signal(
        Signal::Challenge {
            pake: "AAAA".into(),
            mac: "AAAA".into(),
        },
        pair.now,
    );
    assert_eq!(
        pair.join.poll_event(),
        Some(rejected(RejectReason::Password))
    );
}

/// Feeds `first` to a fresh host machine as the joiner's first signal; returns the joiner's
/// outcome and the host's rejection.
fn garbage_first(first: Signal) -> (Vec<JoinEvent>, Vec<HostEvent>) {
    let mut pair = Pair::new(None, None);
    let _real_offer = pair.join.poll_transmit();
    pair.deliver_to_host(&first);
    pair.pump();
    (pair.join_events, pair.host_events)
}

fn assert_protocol_reject(events: (Vec<JoinEvent>, Vec<HostEvent>), cause: &str) {
    assert_eq!(events.0, vec![rejected(RejectReason::Protocol)]);
    match &events.1[..] {
        [HostEvent::Rejected {
            reason: RejectReason::Protocol,
            cause: Some(e),
        }] => assert!(e.to_string().contains(cause), "{e}"),
        other => panic!("expected one protocol rejection, got {other:?}"),
    }
}

#[test]
fn garbage_instead_of_an_offer_is_a_protocol_rejection() {
    let confirm = Signal::Confirm { mac: "AAAA".into() };
    assert_protocol_reject(garbage_first(confirm), "expected an offer");
    let early = Signal::Candidate {
        candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host".into(),
    };
    assert_protocol_reject(garbage_first(early), "expected an offer");
}

#[test]
fn an_offer_with_a_bad_signature_or_pake_is_a_protocol_rejection() {
    let forged = Signal::Offer {
        sdp: "offer-sdp".into(),
        identity: hex::encode([3; 32]),
        name: "mallory".into(),
        signature: "00".repeat(64),
        pake: None,
        chat_stream: None,
    };
    assert_protocol_reject(garbage_first(forged), "signature");

    let pair = Pair::new(None, None);
    let log_pub = pub_of(&pair.log_key);
    let lobby_pub = pub_of(&pair.lobby_key);
    let bad_pake = Signal::Offer {
        sdp: "offer-sdp".into(),
        identity: hex::encode(pub_of(&pair.identity)),
        name: "ann".into(),
        signature: crate::signal::message::sign_offer(&pair.identity, &lobby_pub, &log_pub),
        pake: Some("!!".into()),
        chat_stream: None,
    };
    assert_protocol_reject(garbage_first(bad_pake), "base64");
}

#[test]
fn an_unopenable_block_is_a_protocol_rejection() {
    let mut pair = Pair::new(None, None);
    pair.host
        .handle_malformed(SignalError::Malformed("not json".into()), pair.now);
    pair.pump();
    assert_eq!(pair.host_rejection(), Some(RejectReason::Protocol));
    assert!(pair.join_events.contains(&rejected(RejectReason::Protocol)));
}

#[test]
fn a_joiner_treats_an_unexpected_or_malformed_signal_as_a_protocol_error() {
    let mut pair = Pair::new(None, None);
    pair.join
        .handle_signal(Signal::Confirm { mac: "AAAA".into() }, pair.now);
    assert!(matches!(
        pair.join.poll_event(),
        Some(JoinEvent::Protocol { message }) if message.contains("unexpected signal")
    ));
    let mut pair = Pair::new(None, None);
    pair.join.handle_malformed("bad box".into(), pair.now);
    assert_eq!(
        pair.join.poll_event(),
        Some(JoinEvent::Protocol {
            message: "bad box".into()
        })
    );
}

#[test]
fn trickled_candidates_become_requests_to_add_them() {
    let candidate = "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host".to_string();
    let trickle = Signal::Candidate {
        candidate: candidate.clone(),
    };
    let mut pair = Pair::new(Some(b"secret"), Some(b"secret"));
    // The offer, then the host's challenge (the confirm stays queued at the joiner).
    let offer = pair.join.poll_transmit().unwrap();
    pair.deliver_to_host(&offer);
    let _ = pair.host.poll_event(); // NeedAdmission
    pair.host.handle_admission(Admission::Admit, pair.now);
    // The joiner trickles while the host waits for its confirm.
    pair.deliver_to_host(&trickle);
    assert!(matches!(
        pair.host.poll_event(),
        Some(HostEvent::AddCandidate { candidate: c }) if c == candidate
    ));
    // The host trickles one before its answer, and one after.
    pair.join.handle_signal(trickle.clone(), pair.now);
    pair.pump();
    pair.join.handle_signal(trickle.clone(), pair.now);
    pair.deliver_to_host(&trickle);
    pair.pump();
    let added = |c: &str| JoinEvent::AddCandidate {
        candidate: c.to_string(),
    };
    assert_eq!(
        pair.join_events,
        vec![
            added(&candidate),
            JoinEvent::Answer {
                sdp: "answer-sdp".into(),
                chat_stream: None,
            },
            added(&candidate)
        ]
    );
    // Also after the answer, the host passes the joiner's candidates on.
    assert!(matches!(
        pair.host_events.last(),
        Some(HostEvent::AddCandidate { .. })
    ));
}

#[test]
fn a_host_that_ends_the_lobby_tells_a_waiting_joiner() {
    let mut pair = Pair::new(None, None);
    let offer = pair.join.poll_transmit().unwrap();
    pair.deliver_to_host(&offer);
    // The host is still deciding when the lobby ends.
    assert!(matches!(
        pair.host.poll_event(),
        Some(HostEvent::NeedAdmission { .. })
    ));
    pair.host.handle_end(pair.now);
    pair.pump();
    assert_eq!(pair.join_events, vec![rejected(RejectReason::Ended)]);
    // A joiner already answered is not told anything more.
    let mut pair = Pair::new(None, None);
    pair.pump();
    pair.host.handle_end(pair.now);
    assert_eq!(pair.host.poll_transmit(), None);
}

#[test]
fn waits_end_at_their_deadline() {
    let mut pair = Pair::new(Some(b"secret"), Some(b"secret"));
    let later = pair.now + TIMEOUT;
    pair.host.handle_timeout(later - Duration::from_millis(1));
    assert!(pair.host.poll_event().is_none());
    pair.host.handle_timeout(later);
    assert!(matches!(
        pair.host.poll_event(),
        Some(HostEvent::TimedOut {
            waiting_for: "the offer"
        })
    ));
    pair.join.handle_timeout(later);
    assert_eq!(pair.join.poll_event(), Some(JoinEvent::TimedOut));

    // The confirm has its own deadline, from the challenge.
    let mut pair = Pair::new(Some(b"secret"), Some(b"secret"));
    let offer = pair.join.poll_transmit().unwrap();
    pair.deliver_to_host(&offer);
    let challenged = pair.now + Duration::from_secs(10);
    pair.host.handle_admission(Admission::Admit, challenged);
    assert_eq!(pair.host.poll_timeout(), Some(challenged + TIMEOUT));
    pair.host.handle_timeout(challenged + TIMEOUT);
    assert!(pair.host_events.is_empty());
    let events: Vec<_> = std::iter::from_fn(|| pair.host.poll_event()).collect();
    assert!(matches!(
        events.last(),
        Some(HostEvent::TimedOut {
            waiting_for: "the password confirmation"
        })
    ));
}

#[test]
fn a_pre_negotiated_chat_stream_is_echoed_in_the_answer() {
    let mut pair = Pair::offering(None, None, Some(0));
    pair.pump();
    assert!(pair.host_events.iter().any(|e| matches!(
        e,
        HostEvent::NeedAnswer {
            chat_stream: Some(0),
            ..
        }
    )));
    assert_eq!(
        pair.join_events,
        vec![JoinEvent::Answer {
            sdp: "answer-sdp".into(),
            chat_stream: Some(0),
        }]
    );
}

#[test]
fn a_chat_stream_above_the_limit_falls_back_to_in_band() {
    let mut pair = Pair::offering(None, None, Some(MAX_CHAT_STREAM + 1));
    pair.pump();
    assert!(pair.host_events.iter().any(|e| matches!(
        e,
        HostEvent::NeedAnswer {
            chat_stream: None,
            ..
        }
    )));
    assert_eq!(
        pair.join_events,
        vec![JoinEvent::Answer {
            sdp: "answer-sdp".into(),
            chat_stream: None,
        }]
    );
}
