//! Trickle ICE (RFC 8838) for a connection: the local candidates gathered after the offer or
//! answer was written, and the peer's trickled ones ([`Trickle`]); and what gathering found
//! ([`GatherStats`]).

use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use super::description;
use super::driver::{Command, Shared};
use super::RtcError;

/// Trickle ICE for one connection (RFC 8838): the local candidates gathered after the
/// offer/answer, to send to the peer, and the peer's, to add. Usable while
/// [`PendingOffer::accept_answer`] runs. Candidates are `candidate:...` strings.
#[derive(Debug)]
pub struct Trickle {
    pub(super) cmd: mpsc::UnboundedSender<Command>,
    pub(super) local: Option<mpsc::Receiver<String>>,
}

impl Trickle {
    /// The next local candidate (server-reflexive or relayed) to send to the peer; waits for
    /// it. `None` once gathering is over or the connection ended (at once without ICE servers,
    /// or when another handle took the candidates): stop asking then. Cancel-safe.
    pub async fn next_local_candidate(&mut self) -> Option<String> {
        let rx = self.local.as_mut()?;
        let c = rx.recv().await;
        if c.is_none() {
            self.local = None;
        }
        c
    }

    /// Adds a candidate the peer trickled (forms as [`PeerConnection::add_remote_candidate`]).
    /// Before the remote description is applied it is kept (at most
    /// [`super::MAX_REMOTE_CANDIDATES`]) and used with it.
    ///
    /// Errors: [`RtcError::InvalidCandidate`], [`RtcError::Closed`].
    pub fn add_remote_candidate(&self, candidate: &str) -> Result<(), RtcError> {
        let c = description::parse_candidate(candidate)?;
        self.cmd
            .send(Command::AddCandidate(c))
            .map_err(|_| RtcError::Closed)
    }
}

/// What gathering from the ICE servers found for one connection (counts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GatherStats {
    /// STUN Binding requests answered. On loopback or a public address the mapped address is
    /// the socket's own, so this shows a working STUN server even when no srflx candidate
    /// results.
    pub bindings_answered: u64,
    /// Server-reflexive candidates found (a mapped address differing from the socket's).
    pub srflx: u64,
    /// Relayed candidates (TURN allocations) made.
    pub relayed: u64,
}

impl GatherStats {
    pub(super) fn of(s: &Shared) -> Self {
        GatherStats {
            bindings_answered: s.bindings_answered.load(Ordering::Relaxed),
            srflx: s.srflx_found.load(Ordering::Relaxed),
            relayed: s.relayed_found.load(Ordering::Relaxed),
        }
    }
}
