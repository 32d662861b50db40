//! The two halves of a client transport, WebSocket (plain or TLS) or TCP secret-stream: the
//! reader yields one protomux frame per call, the writer sends a batch of frames, a pong or a
//! close.

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::net::secret_stream::{Decryptor, Encryptor, ABYTES};
use crate::relay::server::input::InputBuffer;
use crate::relay::server::ws::{self, Incoming};
use crate::relay::server::{CloseReason, TransportError};

/// A client's byte stream under the WebSocket: plain TCP or TLS over TCP.
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The reading half of a client transport: one protomux frame per call.
pub(super) enum Reader {
    Ws(ws::Reader<ReadHalf<Box<dyn Io>>>),
    Tcp {
        read: OwnedReadHalf,
        /// Received bytes not yet decrypted: at most one frame beyond a few KiB, bounded with
        /// the other sessions' by [`Limits::input_budget`](crate::relay::server::Limits::input_budget).
        input: InputBuffer,
        dec: Decryptor,
        max_body: usize,
    },
}

impl Reader {
    /// The next frame, a WebSocket ping to answer, or [`Incoming::Closed`] when the client
    /// closed the connection.
    pub(super) async fn read(&mut self) -> Result<Incoming, CloseReason> {
        match self {
            Reader::Ws(r) => r.read().await,
            Reader::Tcp {
                read,
                input,
                dec,
                max_body,
            } => loop {
                // `@hyperswarm/secret-stream` framing: uint24le length, then the body.
                let b = input.bytes();
                let want = if b.len() < 3 {
                    3 - b.len()
                } else {
                    let len = b[0] as usize | (b[1] as usize) << 8 | (b[2] as usize) << 16;
                    // A frame announced larger than the limit is refused before it is buffered.
                    if len > *max_body {
                        return Err(frame_too_large(len - ABYTES, *max_body - ABYTES));
                    }
                    if b.len() >= 3 + len {
                        let plain = dec
                            .decrypt(&b[3..3 + len])
                            .map_err(|e| CloseReason::Protocol(e.to_string()))?;
                        input.consume(3 + len, 0);
                        return Ok(Incoming::Message(plain));
                    }
                    3 + len - b.len()
                };
                match input.fill(read, want, 0).await {
                    Ok(0) => return Ok(Incoming::Closed),
                    Ok(_) => {}
                    Err(e) => return Err(io_error(e)),
                }
            },
        }
    }
}

/// The close reason for a failed read or write.
pub(in crate::relay::server) fn io_error(e: std::io::Error) -> CloseReason {
    match e.kind() {
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => {
            CloseReason::ClientGone
        }
        _ => CloseReason::Transport(TransportError::new(e)),
    }
}

/// The close reason for a frame of `size` bytes above the limit `max`.
pub(in crate::relay::server) fn frame_too_large(size: usize, max: usize) -> CloseReason {
    CloseReason::Limit(format!("frame of {size} bytes exceeds the limit of {max}"))
}

/// The writing half of a client transport.
pub(super) enum Writer {
    Ws(WriteHalf<Box<dyn Io>>),
    Tcp {
        write: OwnedWriteHalf,
        enc: Encryptor,
    },
}

impl Writer {
    pub(super) async fn write(&mut self, frames: Vec<Vec<u8>>) -> Result<(), CloseReason> {
        match self {
            Writer::Ws(io) => {
                let mut out = Vec::with_capacity(frames.iter().map(|f| f.len() + 10).sum());
                for f in frames {
                    ws::binary(&f, &mut out);
                }
                ws::write(io, &out).await.map_err(io_error)
            }
            Writer::Tcp { write, enc } => {
                let mut out = Vec::new();
                for f in frames {
                    enc.encrypt_into(&f, &mut out)
                        .map_err(|e| CloseReason::Transport(TransportError::new(e)))?;
                }
                write.write_all(&out).await.map_err(io_error)
            }
        }
    }

    /// Answers a WebSocket ping (nothing to do on TCP).
    pub(super) async fn pong(&mut self, payload: &[u8]) -> Result<(), CloseReason> {
        match self {
            Writer::Ws(io) => {
                let mut out = Vec::new();
                ws::pong(payload, &mut out);
                ws::write(io, &out).await.map_err(io_error)
            }
            Writer::Tcp { .. } => Ok(()),
        }
    }

    /// Ends the transport; a WebSocket gets a close frame carrying the reason.
    pub(super) async fn close(&mut self, reason: &CloseReason) {
        match self {
            Writer::Ws(io) => {
                // RFC 6455 §7.4.1: 1000 normal, 1001 going away, 1008 policy, 1011 error.
                let code = match reason {
                    CloseReason::ClientGone => 1000,
                    CloseReason::Shutdown | CloseReason::Idle(_) => 1001,
                    CloseReason::Limit(_)
                    | CloseReason::Protocol(_)
                    | CloseReason::Unsupported(_) => 1008,
                    CloseReason::Transport(_) => 1011,
                };
                let mut out = Vec::new();
                ws::close(code, &reason.to_string(), &mut out);
                let _ = ws::write(io, &out).await;
                let _ = io.shutdown().await;
            }
            Writer::Tcp { write, .. } => {
                let _ = write.shutdown().await;
            }
        }
    }
}
