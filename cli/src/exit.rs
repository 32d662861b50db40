//! The exit codes of `dat-social` (in `--help`, README.md and the `rejected` event's doc): 0
//! success, 1 any other error, 2 usage (clap's), and one per way a `join` fails.

use dat_social::lobby::JoinError;
use dat_social::signal::RejectReason;

/// The host could not be reached (connection refused, timed out, or it vanished mid-handshake).
pub const UNREACHABLE: u8 = 3;
/// The lobby is full.
pub const FULL: u8 = 4;
/// The password is wrong or missing.
pub const PASSWORD: u8 = 5;
/// Rejected for another reason (the lobby ended, friends only, protocol error), or not hosting.
pub const REJECTED: u8 = 6;
/// The lobby did not answer, or the data channel did not open, in time.
pub const TIMEOUT: u8 = 7;

/// The exit code of a command that failed with `err`: the `join` codes above for a
/// [`JoinError`], else 1.
pub fn code_of(err: &anyhow::Error) -> u8 {
    err.downcast_ref::<JoinError>().map_or(1, join_code)
}

/// The exit code for a failed join.
pub fn join_code(err: &JoinError) -> u8 {
    match err {
        JoinError::Unreachable { .. } => UNREACHABLE,
        JoinError::Rejected(RejectReason::Full) => FULL,
        JoinError::Rejected(RejectReason::Password) => PASSWORD,
        JoinError::Rejected(_) | JoinError::NotHosting(_) => REJECTED,
        JoinError::Timeout(_) => TIMEOUT,
        _ => 1,
    }
}
