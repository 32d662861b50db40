//! Lobby signalling on hypercore logs: sealed offers, answers, rejects and candidates, and the
//! SPAKE2 password exchange. See `docs/PROTOCOL.md` for the message flow.

pub mod message;
pub mod pake;
pub mod seal;

pub use message::{RejectReason, Signal, SignalError};
