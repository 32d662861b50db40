//! The bounds of the TURN server ([`TurnLimits`]): allocations per username, per source IP and
//! in total, allocation lifetimes, permissions and channels per allocation, bytes per second
//! per allocation. Each field has a documented range ([`TurnLimits::validate`]); the CLI flags
//! of `dat-social relay` check the same ranges.

use std::ops::RangeInclusive;
use std::time::Duration;

/// The limits of a [`super::TurnServer`]. `Default` gives the documented safe defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TurnLimits {
    /// Most allocations (and Allocates waiting for their socket) at once, all clients
    /// together. Default 1,000; range [`TurnLimits::TOTAL_RANGE`]. Past it: 486.
    pub max_allocations: usize,
    /// Most allocations per TURN username (one client's credential). Default 32 (a host
    /// with a full lobby of peer connections); range [`TurnLimits::PER_CLIENT_RANGE`].
    pub max_allocations_per_user: usize,
    /// Most allocations per client source IP address (many players may share one home NAT).
    /// Default 64; range [`TurnLimits::PER_CLIENT_RANGE`].
    pub max_allocations_per_ip: usize,
    /// Lifetime of an allocation when the client asks for less or nothing (RFC 8656 §7.2:
    /// 600 s). Range [`TurnLimits::LIFETIME_RANGE`], at most `max_lifetime`.
    pub default_lifetime: Duration,
    /// Longest lifetime granted (RFC 8656 §7.2: 3600 s). Range [`TurnLimits::LIFETIME_RANGE`].
    pub max_lifetime: Duration,
    /// Most permissions (peer IP addresses) per allocation. Default 32; range
    /// [`TurnLimits::PER_ALLOCATION_RANGE`]. Past it: 508 Insufficient Capacity.
    pub max_permissions: usize,
    /// Most channel bindings per allocation. Default 32; range
    /// [`TurnLimits::PER_ALLOCATION_RANGE`] (RFC 8656 §12 has 4,096 channel numbers). Past it: 508.
    pub max_channels: usize,
    /// Relayed application bytes per second per allocation, both directions together, with a
    /// burst of one second's worth (a token bucket); excess packets are dropped and counted
    /// ([`super::TurnStats::dropped_bandwidth`]). Default 2,000,000 (16 Mbit/s); range
    /// [`TurnLimits::BANDWIDTH_RANGE`].
    pub bandwidth: u64,
}

impl Default for TurnLimits {
    fn default() -> Self {
        TurnLimits {
            max_allocations: 1_000,
            max_allocations_per_user: 32,
            max_allocations_per_ip: 64,
            default_lifetime: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
            max_permissions: 32,
            max_channels: 32,
            bandwidth: 2_000_000,
        }
    }
}

/// A [`TurnLimits`] field out of its range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} is {value}, outside {min}..={max}")]
pub struct TurnLimitsError {
    /// The field's name (`max_allocations`, ...), as the CLI flag without `--turn-`.
    pub field: &'static str,
    /// The value given (seconds for durations).
    pub value: u64,
    /// The smallest allowed.
    pub min: u64,
    /// The largest allowed.
    pub max: u64,
}

impl TurnLimits {
    /// Range of `max_allocations`.
    pub const TOTAL_RANGE: RangeInclusive<u64> = 1..=1_000_000;
    /// Range of `max_allocations_per_user` and `max_allocations_per_ip`.
    pub const PER_CLIENT_RANGE: RangeInclusive<u64> = 1..=65_536;
    /// Range of the lifetimes, in seconds (RFC 8656 §7.2 caps at 3600).
    pub const LIFETIME_RANGE: RangeInclusive<u64> = 60..=3600;
    /// Range of `max_permissions` and `max_channels`.
    pub const PER_ALLOCATION_RANGE: RangeInclusive<u64> = 1..=4096;
    /// Range of `bandwidth`, bytes per second (1 KB/s to 1 GB/s).
    pub const BANDWIDTH_RANGE: RangeInclusive<u64> = 1_000..=1_000_000_000;

    /// Checks every field against its range, and `default_lifetime <= max_lifetime`.
    ///
    /// # Errors
    /// [`TurnLimitsError`] naming the first field out of range.
    pub fn validate(&self) -> Result<(), TurnLimitsError> {
        let n = |v: usize| v as u64;
        let checks: [(&'static str, u64, &RangeInclusive<u64>); 8] = [
            (
                "max_allocations",
                n(self.max_allocations),
                &Self::TOTAL_RANGE,
            ),
            (
                "max_allocations_per_user",
                n(self.max_allocations_per_user),
                &Self::PER_CLIENT_RANGE,
            ),
            (
                "max_allocations_per_ip",
                n(self.max_allocations_per_ip),
                &Self::PER_CLIENT_RANGE,
            ),
            (
                "max_lifetime",
                self.max_lifetime.as_secs(),
                &Self::LIFETIME_RANGE,
            ),
            (
                "max_permissions",
                n(self.max_permissions),
                &Self::PER_ALLOCATION_RANGE,
            ),
            (
                "max_channels",
                n(self.max_channels),
                &Self::PER_ALLOCATION_RANGE,
            ),
            ("bandwidth", self.bandwidth, &Self::BANDWIDTH_RANGE),
            (
                "default_lifetime",
                self.default_lifetime.as_secs(),
                &Self::LIFETIME_RANGE,
            ),
        ];
        for (field, value, range) in checks {
            if !range.contains(&value) {
                return Err(TurnLimitsError {
                    field,
                    value,
                    min: *range.start(),
                    max: *range.end(),
                });
            }
        }
        if self.default_lifetime > self.max_lifetime {
            return Err(TurnLimitsError {
                field: "default_lifetime",
                value: self.default_lifetime.as_secs(),
                min: *Self::LIFETIME_RANGE.start(),
                max: self.max_lifetime.as_secs(),
            });
        }
        Ok(())
    }

    /// The lifetime granted for a request asking for `requested` seconds (RFC 8656 §7.2:
    /// the default when absent or shorter, else at most `max_lifetime`).
    pub fn lifetime(&self, requested: Option<u32>) -> Duration {
        match requested.map(|s| Duration::from_secs(u64::from(s))) {
            Some(r) if r > self.default_lifetime => r.min(self.max_lifetime),
            _ => self.default_lifetime,
        }
    }
}
