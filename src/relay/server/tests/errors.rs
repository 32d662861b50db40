//! The relay server's errors keep what caused them: a failed transport's IO error behind
//! [`CloseReason::Transport`], and a reset or broken pipe is the client going away.

use std::error::Error;
use std::io;

use super::super::transport::io_error;
use super::*;

#[test]
fn a_transport_failure_keeps_its_io_error() {
    let reason = io_error(io::Error::new(io::ErrorKind::TimedOut, "read timed out"));
    assert!(matches!(reason, CloseReason::Transport(_)), "{reason:?}");
    assert_eq!(reason.to_string(), "transport error: read timed out");
    let source = reason.source().expect("a source");
    let transport = source
        .downcast_ref::<TransportError>()
        .expect("a TransportError");
    let io = transport
        .get_ref()
        .downcast_ref::<io::Error>()
        .expect("the io::Error");
    assert_eq!(io.kind(), io::ErrorKind::TimedOut);
    // Clones are the same failure; another failure with the same text is not.
    assert_eq!(reason.clone(), reason);
    let other = io_error(io::Error::new(io::ErrorKind::TimedOut, "read timed out"));
    assert_ne!(other, reason);
}

#[test]
fn a_reset_connection_is_the_client_gone_not_a_transport_error() {
    for kind in [io::ErrorKind::ConnectionReset, io::ErrorKind::BrokenPipe] {
        assert_eq!(io_error(kind.into()), CloseReason::ClientGone);
    }
}
