//! Converts between `std::time::Instant` (the driver's clock) and the `sans-io-time` instants
//! `turn-client-proto` counts in (nanoseconds since a base instant).

use std::time::{Duration, Instant};

use turn_client_proto::stun::Instant as TurnInstant;

/// A base instant: `TurnInstant` zero.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    base: Instant,
}

impl Clock {
    /// A clock whose zero is `base` (instants before it map to zero).
    pub(crate) fn new(base: Instant) -> Self {
        Clock { base }
    }

    /// `now` as the TURN client's instant.
    pub(crate) fn to_turn(self, now: Instant) -> TurnInstant {
        let nanos = now.saturating_duration_since(self.base).as_nanos();
        TurnInstant::from_nanos(i64::try_from(nanos).unwrap_or(i64::MAX))
    }

    /// A TURN client instant as a std instant; one past [`FAR`] (a client with nothing to do
    /// may name the end of time) is clamped to `FAR` from the base.
    pub(crate) fn to_std(self, t: TurnInstant) -> Instant {
        let since = t.saturating_duration_since(TurnInstant::ZERO).min(FAR);
        self.base.checked_add(since).unwrap_or(self.base + FAR)
    }
}

/// The farthest wake-up a TURN client may ask for: a day (its timers are minutes at most).
const FAR: Duration = Duration::from_secs(24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let base = Instant::now();
        let c = Clock::new(base);
        let t = base + Duration::from_millis(1234);
        assert_eq!(c.to_std(c.to_turn(t)), t);
        assert_eq!(c.to_turn(base), TurnInstant::ZERO);
        // The end of time does not overflow.
        assert_eq!(c.to_std(TurnInstant::from_nanos(i64::MAX)), base + FAR);
    }
}
