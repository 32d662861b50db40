//! Converts between `std::time::Instant` (the driver's clock) and the `sans-io-time` instants
//! `turn-client-proto` counts in (nanoseconds since a base instant).

use std::time::Instant;

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

    /// A TURN client instant as a std instant.
    pub(crate) fn to_std(self, t: TurnInstant) -> Instant {
        if t < TurnInstant::ZERO {
            return self.base;
        }
        t.to_std(self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn round_trips() {
        let base = Instant::now();
        let c = Clock::new(base);
        let t = base + Duration::from_millis(1234);
        assert_eq!(c.to_std(c.to_turn(t)), t);
        assert_eq!(c.to_turn(base), TurnInstant::ZERO);
    }
}
