//! The lobby's signalling protocol as two sans-IO machines: [`HostHandshake`] (one per joiner,
//! at the host) and [`JoinHandshake`] (at the joiner). docs/PROTOCOL.md, "A join, step by step".
//!
//! The order, every message a sealed [`crate::signal::Signal`] in a signalling log:
//!
//! ```text
//! joiner (its own log)            host (the lobby log, addressed to the joiner's log key)
//! offer {sdp, identity, name, signature, pake?}
//!                                 [admission: full? friends-only?]   -> reject
//!                                 [protected] challenge {pake, mac}
//! [protected] confirm {mac}
//!                                 answer {sdp}  | reject {reason}
//! candidate*  (either way, after the offer)
//!                                 reject "ended" when the host ends the lobby before answering
//! ```
//!
//! The machines take signals, decisions and `now` in (`handle_*`), and give signals to write
//! ([`HostHandshake::poll_transmit`], [`JoinHandshake::poll_transmit`]) and requests and
//! outcomes ([`HostHandshake::poll_event`], [`JoinHandshake::poll_event`]) out. They hold no
//! sockets, timers or tasks: a waiting state has a deadline ([`HostHandshake::poll_timeout`])
//! that the driver turns into a wait and reports back with `handle_timeout(now)`. The drivers
//! are `host::serve` (reading the joiner's log, writing the lobby log) and [`super::join()`]
//! (the other way round); `tests` pumps the two machines into each other in memory.

mod host;
mod join;
#[cfg(test)]
mod tests;

pub(crate) use host::{Admission, HostEvent, HostHandshake};
pub(crate) use join::{JoinEvent, JoinHandshake, OfferParams};
