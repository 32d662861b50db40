//! Trickle ICE on the signalling logs: while a WebRTC connection comes up, the local
//! candidates gathered after the offer or answer (server-reflexive, relayed) go to the other
//! side as [`Signal::Candidate`], and the other side's are added as they arrive, on both the
//! host and the joiner (docs/PROTOCOL.md: "candidate*, either way, after the offer").

use std::future::Future;

use tokio::time::Instant;

use super::signal_log::{LogError, Read, SignalLog};
use crate::rtc::Trickle;
use crate::signal::Signal;

/// What happened first while waiting.
pub(crate) enum Step {
    /// A local candidate (`None`: gathering is over).
    Local(Option<String>),
    /// A read of the other side's log.
    Read(Result<Read, LogError>),
}

/// Waits for the next local candidate (while `local_open`) or the next signal from the other
/// side (until `deadline`). Cancel-safe, and every borrow ends with the call, so the caller may
/// write to `signals` next.
pub(crate) async fn next_step(
    signals: &mut SignalLog,
    local: impl Future<Output = Option<String>>,
    local_open: bool,
    deadline: Instant,
) -> Step {
    tokio::select! {
        c = local, if local_open => Step::Local(c),
        r = signals.next_until(deadline) => Step::Read(r),
    }
}

/// Sends one local candidate to the other side. A candidate that cannot be written is logged:
/// the connection may still come up on the others.
pub(crate) fn send_candidate(signals: &SignalLog, candidate: String) {
    if let Err(e) = signals.send(&Signal::Candidate { candidate }) {
        tracing::debug!("a local candidate was not signalled: {e}");
    }
}

/// Runs `until` (the answer being applied, or the chat channel opening) to its end while
/// trickling both ways on `signals`: our candidates out, the other side's into `trickle`.
/// Reading stops at `deadline`; signals other than candidates are ignored (after the answer
/// both handshakes take nothing else).
pub(crate) async fn trickle_until<F: Future>(
    until: F,
    trickle: &mut Trickle,
    signals: &mut SignalLog,
    deadline: Instant,
) -> F::Output {
    tokio::pin!(until);
    let (mut local_open, mut reading) = (true, true);
    loop {
        let step = tokio::select! {
            out = &mut until => return out,
            c = trickle.next_local_candidate(), if local_open => Step::Local(c),
            r = signals.next_until(deadline), if reading => Step::Read(r),
        };
        match step {
            Step::Local(Some(candidate)) => send_candidate(signals, candidate),
            Step::Local(None) => local_open = false,
            Step::Read(Ok(Read::Signal(Signal::Candidate { candidate }))) => {
                if let Err(e) = trickle.add_remote_candidate(&candidate) {
                    tracing::debug!("a trickled candidate not added: {e}");
                }
            }
            Step::Read(Ok(Read::Signal(_) | Read::Malformed(_))) => {}
            Step::Read(Ok(Read::TimedOut) | Err(_)) => reading = false,
        }
    }
}
