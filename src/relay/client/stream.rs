//! [`RelayStream`] (one relayed connection, message-oriented) and [`Listener`].

use std::net::IpAddr;

use tokio::sync::{mpsc, oneshot};

use super::Cmd;
use crate::net::transport::{FrameReader, FrameWriter};
use crate::net::{Connection, ConnectionConfig, NetError, SessionInfo};

/// What the client task hands a stream's reader.
pub(crate) enum StreamInput {
    /// `data` chunks, in order (each one protomux frame).
    Data(Vec<Vec<u8>>),
    /// The remote ended its side (`end`).
    End,
    /// The stream was destroyed (by the remote or the relay), or the relay session was lost.
    Error(String),
}

/// One relayed connection (custodial): the remote's public key and the Noise handshake hash
/// the relay reported (`open` / `connection`), and the stream's two halves. Each chunk written
/// is one relay `data` chunk, each chunk read is one the remote wrote: message boundaries are
/// kept, as protomux needs.
pub struct RelayStream {
    pub(crate) info: SessionInfo,
    pub(crate) local_ip: IpAddr,
    pub(crate) reader: RelayStreamReader,
    pub(crate) writer: RelayStreamWriter,
}

impl std::fmt::Debug for RelayStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayStream")
            .field(
                "remote_public_key",
                &hex::encode(self.info.remote_public_key),
            )
            .field("is_initiator", &self.info.is_initiator)
            .finish_non_exhaustive()
    }
}

impl RelayStream {
    /// The remote's ed25519 public key (authenticated by the relay's Noise handshake; in
    /// custodial mode you trust the relay for it).
    pub fn remote_public_key(&self) -> [u8; 32] {
        self.info.remote_public_key
    }

    /// The 64-byte Noise handshake hash the relay reported; both ends see the same.
    pub fn handshake_hash(&self) -> [u8; 64] {
        self.info.handshake_hash
    }

    /// True for the connecting side, false for the listening side.
    pub fn is_initiator(&self) -> bool {
        self.info.is_initiator
    }

    /// Both keys, the hash and the role, as [`Connection::from_frames`] takes them.
    pub fn info(&self) -> SessionInfo {
        self.info.clone()
    }

    /// The local IP address of the socket to the relay.
    pub fn local_ip(&self) -> IpAddr {
        self.local_ip
    }

    /// The two halves, a [`FrameReader`] and a [`FrameWriter`].
    pub fn split(self) -> (RelayStreamReader, RelayStreamWriter) {
        (self.reader, self.writer)
    }

    /// Runs a [`Connection`] (protomux, replication, app channels) directly on this stream,
    /// with no second secret-stream: what JS `core.replicate(relayedStream)` does.
    pub fn into_connection(self, config: ConnectionConfig) -> Connection {
        let info = self.info.clone();
        let (reader, writer) = self.split();
        Connection::from_frames(info, reader, writer, config)
    }
}

/// The receiving half of a [`RelayStream`]. Dropping it before the remote ended destroys the
/// stream at the relay.
pub struct RelayStreamReader {
    pub(crate) rx: mpsc::UnboundedReceiver<StreamInput>,
    pub(crate) cmd: mpsc::UnboundedSender<Cmd>,
    pub(crate) generation: u64,
    pub(crate) alias: u32,
    /// An end or error that arrived behind data, reported on the next call.
    pub(crate) after: Option<StreamInput>,
}

impl RelayStreamReader {
    fn finish(input: StreamInput) -> Result<bool, NetError> {
        match input {
            StreamInput::Data(_) | StreamInput::End => Ok(false),
            StreamInput::Error(e) => Err(NetError::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                e,
            ))),
        }
    }
}

impl FrameReader for RelayStreamReader {
    async fn read_frames<'a>(&'a mut self, out: &'a mut Vec<Vec<u8>>) -> Result<bool, NetError> {
        if let Some(input) = self.after.take() {
            self.after = Some(StreamInput::End);
            return Self::finish(input);
        }
        match self.rx.recv().await {
            None => Ok(false),
            Some(StreamInput::Data(chunks)) => {
                out.extend(chunks);
                // Take whatever else is queued, so protomux sees a burst at once.
                while let Ok(next) = self.rx.try_recv() {
                    match next {
                        StreamInput::Data(chunks) => out.extend(chunks),
                        other => {
                            self.after = Some(other);
                            break;
                        }
                    }
                }
                Ok(true)
            }
            Some(other) => {
                self.after = Some(StreamInput::End);
                Self::finish(other)
            }
        }
    }
}

impl Drop for RelayStreamReader {
    fn drop(&mut self) {
        let _ = self.cmd.send(Cmd::Dropped {
            generation: self.generation,
            alias: self.alias,
        });
    }
}

/// The sending half of a [`RelayStream`].
pub struct RelayStreamWriter {
    pub(crate) cmd: mpsc::UnboundedSender<Cmd>,
    pub(crate) generation: u64,
    pub(crate) alias: u32,
}

impl FrameWriter for RelayStreamWriter {
    async fn write_frames<'a>(&'a mut self, frames: &'a [Vec<u8>]) -> Result<(), NetError> {
        let (done, written) = oneshot::channel();
        self.cmd
            .send(Cmd::Data {
                generation: self.generation,
                alias: self.alias,
                chunks: frames.to_vec(),
                done,
            })
            .map_err(|_| NetError::Closed)?;
        // Resolves once the frame was written to the relay's socket: back-pressure.
        written.await.map_err(|_| NetError::Closed)
    }

    async fn shutdown(&mut self) {
        let _ = self.cmd.send(Cmd::End {
            generation: self.generation,
            alias: self.alias,
        });
    }
}

/// Incoming connections on a listened key. Dropping it stops listening (`close`).
pub struct Listener {
    pub(crate) rx: mpsc::UnboundedReceiver<RelayStream>,
    pub(crate) cmd: mpsc::UnboundedSender<Cmd>,
    pub(crate) alias: u32,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("alias", &self.alias)
            .finish()
    }
}

impl Listener {
    /// The next incoming connection (already accepted); `None` once the client stopped.
    pub async fn accept(&mut self) -> Option<RelayStream> {
        self.rx.recv().await
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.cmd.send(Cmd::Unlisten(self.alias));
    }
}
