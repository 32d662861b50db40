//! The client's side of the `dat-social/ice/v1` channel ([`crate::relay::ice`]), sans-IO: ask
//! for the relay's STUN/TURN servers when a session starts, and again at three quarters of the
//! credentials' lifetime (then, if no answer came, every half of what is left, at least
//! [`MIN_RENEW`] apart). A relay that rejects the channel (the JS relay, or ours with ICE off)
//! gives none.

use std::time::{Duration, Instant};

use crate::ice::IceServer;
use crate::relay::ice::IceMessage;
use crate::relay::IceEvent;
use crate::time::later;

/// Shortest wait between two requests of one session: 30 s (the relay's request budget
/// refills at least this fast, so renewals are never dropped).
pub(crate) const MIN_RENEW: Duration = Duration::from_secs(30);

/// What the exchange tells the core.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum IceOutcome {
    /// Fresh servers, whose credentials expire at `expires`.
    Servers {
        servers: Vec<IceServer>,
        expires: Instant,
    },
    /// The relay gives no ICE servers on this connection.
    Refused,
}

/// The exchange of one relay session.
#[derive(Debug)]
pub(crate) struct IceExchange {
    /// When to ask again; `None` while the first answer is awaited, or after a refusal.
    renew_at: Option<Instant>,
    /// When the last credentials expire.
    expires: Option<Instant>,
}

impl IceExchange {
    /// The first request went out with the session's first frames.
    pub(crate) fn new() -> Self {
        Self {
            renew_at: None,
            expires: None,
        }
    }

    /// An event of the ICE channel at `now`: what to tell the driver, if anything.
    pub(crate) fn handle_event(&mut self, event: IceEvent, now: Instant) -> Option<IceOutcome> {
        match event {
            IceEvent::Message(IceMessage::Servers { ttl_s, servers }) => {
                let ttl = Duration::from_secs(ttl_s);
                let expires = later(now, ttl);
                self.expires = Some(expires);
                self.renew_at = Some(later(now, (ttl / 4 * 3).max(MIN_RENEW)));
                Some(IceOutcome::Servers { servers, expires })
            }
            IceEvent::Closed => {
                self.renew_at = None;
                Some(IceOutcome::Refused)
            }
            IceEvent::Opened | IceEvent::Message(IceMessage::Request) => None,
        }
    }

    /// When [`IceExchange::handle_timeout`] must run: the next renewal, if one is due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.renew_at
    }

    /// `true` when a request should go out now (the renewal is due); the next one is then
    /// planned in case this one goes unanswered.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> bool {
        match self.renew_at {
            Some(at) if now >= at => {
                let left = self
                    .expires
                    .map_or(Duration::ZERO, |e| e.saturating_duration_since(now));
                self.renew_at = Some(later(now, (left / 2).max(MIN_RENEW)));
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(ttl_s: u64) -> IceEvent {
        IceEvent::Message(IceMessage::Servers {
            ttl_s,
            servers: vec![IceServer {
                urls: vec!["stun:a:1".into()],
                username: None,
                credential: None,
            }],
        })
    }

    #[test]
    fn renews_at_three_quarters_then_halves_what_is_left() {
        let t0 = Instant::now();
        let mut x = IceExchange::new();
        assert_eq!(x.poll_timeout(), None);
        assert!(!x.handle_timeout(t0 + Duration::from_secs(10_000)));
        let Some(IceOutcome::Servers { expires, .. }) = x.handle_event(servers(3600), t0) else {
            panic!("servers expected")
        };
        assert_eq!(expires, t0 + Duration::from_secs(3600));
        let renew = t0 + Duration::from_secs(2700);
        assert_eq!(x.poll_timeout(), Some(renew));
        assert!(!x.handle_timeout(renew - Duration::from_secs(1)));
        assert!(x.handle_timeout(renew));
        // No answer: again after half of the 900 s left, then at least 30 s apart.
        assert_eq!(x.poll_timeout(), Some(renew + Duration::from_secs(450)));
        assert!(x.handle_timeout(t0 + Duration::from_secs(3590)));
        assert_eq!(
            x.poll_timeout(),
            Some(t0 + Duration::from_secs(3590) + MIN_RENEW)
        );
        // An answer starts over.
        let t1 = t0 + Duration::from_secs(3600);
        x.handle_event(servers(3600), t1);
        assert_eq!(x.poll_timeout(), Some(t1 + Duration::from_secs(2700)));
    }

    #[test]
    fn a_short_lifetime_is_renewed_no_faster_than_min_renew_and_a_reject_stops_it() {
        let t0 = Instant::now();
        let mut x = IceExchange::new();
        x.handle_event(servers(0), t0);
        assert_eq!(x.poll_timeout(), Some(t0 + MIN_RENEW));
        assert_eq!(x.handle_event(IceEvent::Opened, t0), None);
        assert_eq!(
            x.handle_event(IceEvent::Closed, t0),
            Some(IceOutcome::Refused)
        );
        assert_eq!(x.poll_timeout(), None);
    }
}
