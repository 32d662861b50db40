//! Deadlines from durations a user or a peer chose, computed without panicking.
//!
//! `Instant + Duration` panics when the sum overflows the platform's clock (e.g. `--timeout
//! 9223372036854775807`); every deadline built from a duration that did not come from a
//! constant goes through [`later`] or [`deadline_after`] instead.

use std::time::{Duration, Instant};

/// A century: what "never" means for a deadline.
const CENTURY: Duration = Duration::from_secs(100 * 365 * 86_400);

/// `t + d`, or `t` plus a century when that overflows (or `t` itself if even that does):
/// a duration too long to represent means "never", not a panic.
pub fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(d.min(CENTURY)))
        .unwrap_or(t)
}

/// The tokio deadline `d` from now, saturating as [`later`] does.
pub fn deadline_after(d: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    tokio::time::Instant::from_std(later(now.into_std(), d))
}

/// The tokio instant `d` after `t`, saturating as [`later`] does.
pub fn tokio_later(t: tokio::time::Instant, d: Duration) -> tokio::time::Instant {
    tokio::time::Instant::from_std(later(t.into_std(), d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_durations_mean_never_not_a_panic() {
        let now = Instant::now();
        assert_eq!(
            later(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        let never = later(now, Duration::from_secs(u64::MAX));
        assert!(never >= now + Duration::from_secs(365 * 86_400));
        let never = deadline_after(Duration::MAX);
        assert!(never > tokio::time::Instant::now() + Duration::from_secs(86_400));
    }
}
