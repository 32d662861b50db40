//! The exit codes of `dat-social` (in `--help`, README.md and the `rejected` event's doc): 0
//! success, 1 any other error, 2 usage (clap's), and one per way a `join` fails.

use dat_social::lobby::JoinError;
use dat_social::rtc::RtcError;
use dat_social::signal::RejectReason;

/// The host could not be reached (connection refused, timed out, or it vanished mid-handshake),
/// or a joined player lost its connection to the host ([`HostLost`]).
pub const UNREACHABLE: u8 = 3;
/// The lobby is full.
pub const FULL: u8 = 4;
/// The password is wrong or missing.
pub const PASSWORD: u8 = 5;
/// Rejected for another reason (the lobby ended, friends only, protocol error), or not hosting.
pub const REJECTED: u8 = 6;
/// The lobby did not answer, or the data channel did not open, in time.
pub const TIMEOUT: u8 = 7;

/// A joined player's connection to the host ended without the host closing it: nothing was
/// heard from the host for the idle timeout (its path died or it was killed; docs/NAT.md "When
/// a path dies"), or the connection failed. Exit code [`UNREACHABLE`].
#[derive(Debug, thiserror::Error)]
#[error("lost the connection to the host: {0}")]
pub struct HostLost(pub dat_social::rtc::DisconnectReason);

/// The exit code of a command that failed with `err`: the `join` codes above for a
/// [`JoinError`] or [`HostLost`], else 1.
pub fn code_of(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<HostLost>().is_some() {
        return UNREACHABLE;
    }
    err.downcast_ref::<JoinError>().map_or(1, join_code)
}

/// The exit code for a failed join. The data channel not opening within `--timeout` is a
/// timeout whichever layer noticed it: the lobby's wait ([`JoinError::Timeout`]) or WebRTC's
/// connect deadline ([`RtcError::ConnectTimeout`], ICE found no working pair).
pub fn join_code(err: &JoinError) -> u8 {
    match err {
        JoinError::Unreachable { .. } => UNREACHABLE,
        JoinError::Rejected(RejectReason::Full) => FULL,
        JoinError::Rejected(RejectReason::Password) => PASSWORD,
        JoinError::Rejected(_) | JoinError::NotHosting(_) => REJECTED,
        JoinError::Timeout(_) | JoinError::Rtc(RtcError::ConnectTimeout(_)) => TIMEOUT,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use dat_social::rtc::DisconnectReason;

    use super::*;

    #[test]
    fn a_webrtc_connect_timeout_is_the_timeout_code() {
        let err = JoinError::Rtc(RtcError::ConnectTimeout(Duration::from_secs(15)));
        assert_eq!(join_code(&err), TIMEOUT);
        assert_eq!(code_of(&anyhow::Error::from(err)), TIMEOUT);
        assert_eq!(join_code(&JoinError::Timeout("the host's answer")), TIMEOUT);
    }

    #[test]
    fn a_lost_host_is_unreachable_and_other_webrtc_errors_stay_generic() {
        let lost = anyhow::Error::from(HostLost(DisconnectReason::Timeout));
        assert_eq!(code_of(&lost), UNREACHABLE);
        assert_eq!(join_code(&JoinError::Rtc(RtcError::Closed)), 1);
    }
}
