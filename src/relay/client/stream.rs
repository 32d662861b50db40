//! [`RelayStream`] (one relayed connection, message-oriented) and [`Listener`].
//!
//! Custodial streams carry protomux frames as relay `data` chunks as they are. Non-custodial
//! streams carry our own `@hyperswarm/secret-stream` 6.9.2 byte stream (uint24le-framed
//! id+header, then encrypted records), cut into chunks wherever the relay or the peer cut it:
//! the reader reassembles and decrypts records, the writer encrypts each frame into one record.

use std::net::IpAddr;

use tokio::sync::{mpsc, oneshot};

use super::Cmd;
use crate::keys::IdentityKey;
use crate::net::secret_stream::{Decryptor, Encryptor, FrameDecoder, SecretStreamError};
use crate::net::transport::{FrameLimit, FrameReader, FrameWriter};
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

/// One relayed connection: the remote's public key, the Noise handshake hash, and the stream's
/// two halves, which carry whole messages (protomux frames) either way.
///
/// - Custodial: the relay ran the Noise handshake and reported the hash (`open` /
///   `connection`); each message is one relay `data` chunk, in plaintext to the relay.
/// - Non-custodial: we ran the Noise IK handshake through the relay (`noiseSend` /
///   `noiseReceive` / `noiseReply`), so the remote key is proven end to end, and each message
///   is a secret-stream record only the remote can read.
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
    /// The remote's ed25519 public key: proven by our own Noise IK handshake (non-custodial),
    /// or reported by the relay that ran the handshake (custodial: you trust the relay for it).
    pub fn remote_public_key(&self) -> IdentityKey {
        IdentityKey::from_bytes(self.info.remote_public_key)
    }

    /// The 64-byte Noise handshake hash (ours, or the one the relay reported in custodial
    /// mode); both ends see the same.
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
    /// with no further handshake: what JS `core.replicate(relayedStream)` does (on the
    /// relayed stream itself when custodial, on the client's secret-stream when not).
    ///
    /// [`ConnectionConfig::max_frame_bytes`] applies here as on a socket: a larger record
    /// (non-custodial: announced by its length prefix, refused before it is reassembled) or a
    /// larger chunk (custodial: one chunk is one message) ends the connection with
    /// [`SecretStreamError::FrameTooLarge`](crate::net::secret_stream::SecretStreamError).
    pub fn into_connection(self, config: ConnectionConfig) -> Connection {
        let info = self.info.clone();
        let limit = FrameLimit::new(config.max_frame_bytes);
        let (mut reader, writer) = self.split();
        reader.limit = limit.clone();
        Connection::from_frames(info, reader, writer, config).with_frame_limit(limit)
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
    /// Non-custodial: the secret-stream records being reassembled and decrypted.
    pub(crate) crypto: Option<Box<ReadCrypto>>,
    /// Largest record (non-custodial) or chunk (custodial) accepted, in bytes.
    pub(crate) limit: FrameLimit,
}

/// The receiving half of a non-custodial stream's secret-stream.
pub(crate) struct ReadCrypto {
    pub(crate) frames: FrameDecoder,
    pub(crate) decryptor: Decryptor,
}

impl RelayStreamReader {
    /// Appends the messages `chunks` complete to `out`: the chunks themselves (custodial), or
    /// the records they complete, decrypted (non-custodial; the remote's id+header is checked
    /// and not handed out).
    fn take_chunks(
        &mut self,
        chunks: Vec<Vec<u8>>,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), NetError> {
        let max = self.limit.get();
        let too_large = |len: usize| SecretStreamError::FrameTooLarge { len, max };
        let Some(c) = self.crypto.as_mut() else {
            if let Some(chunk) = chunks.iter().find(|c| c.len() > max) {
                return Err(too_large(chunk.len()).into());
            }
            out.extend(chunks);
            return Ok(());
        };
        for chunk in chunks {
            c.frames.push(&chunk);
            // Refused before the record's body accumulates (it may span many chunks).
            if let Some(len) = c.frames.announced_len().filter(|len| *len > max) {
                return Err(too_large(len).into());
            }
            while let Some(record) = c.frames.next_frame() {
                let was_ready = c.decryptor.is_ready();
                let message = c.decryptor.decrypt(&record)?;
                if was_ready {
                    out.push(message);
                }
                if let Some(len) = c.frames.announced_len().filter(|len| *len > max) {
                    return Err(too_large(len).into());
                }
            }
        }
        Ok(())
    }

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
        loop {
            if let Some(input) = self.after.take() {
                self.after = Some(StreamInput::End);
                return Self::finish(input);
            }
            // The only await: whatever arrives is handled to the end before returning, so
            // cancelling this future loses nothing.
            match self.rx.recv().await {
                None => return Ok(false),
                Some(StreamInput::Data(chunks)) => {
                    self.take_chunks(chunks, out)?;
                    // Take whatever else is queued, so protomux sees a burst at once.
                    while let Ok(next) = self.rx.try_recv() {
                        match next {
                            StreamInput::Data(chunks) => self.take_chunks(chunks, out)?,
                            other => {
                                self.after = Some(other);
                                break;
                            }
                        }
                    }
                    // Custodial chunks are messages even when there are none (an empty `data`);
                    // non-custodial ones may have carried only part of a record.
                    if !out.is_empty() || self.crypto.is_none() {
                        return Ok(true);
                    }
                }
                Some(other) => {
                    self.after = Some(StreamInput::End);
                    return Self::finish(other);
                }
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
    /// Non-custodial: encrypts each message into one secret-stream record (the id+header was
    /// sent when the stream opened).
    pub(crate) encryptor: Option<Box<Encryptor>>,
}

impl FrameWriter for RelayStreamWriter {
    async fn write_frames<'a>(&'a mut self, frames: &'a [Vec<u8>]) -> Result<(), NetError> {
        let chunks = match self.encryptor.as_mut() {
            None => frames.to_vec(),
            Some(enc) => frames
                .iter()
                .map(|f| enc.encrypt(f))
                .collect::<Result<Vec<_>, _>>()?,
        };
        let (done, written) = oneshot::channel();
        self.cmd
            .send(Cmd::Data {
                generation: self.generation,
                alias: self.alias,
                chunks,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::noise::HandshakeOutcome;
    use crate::net::secret_stream::{self, frame};

    /// A reader as the driver builds it, fed by the returned sender, with both ends of a
    /// non-custodial secret-stream (`None`: custodial).
    fn reader(
        own_crypto: bool,
        max: usize,
    ) -> (
        RelayStreamReader,
        mpsc::UnboundedSender<StreamInput>,
        Option<secret_stream::Encryptor>,
        Vec<u8>,
    ) {
        let keys = |tx: [u8; 32], rx: [u8; 32]| HandshakeOutcome {
            tx,
            rx,
            handshake_hash: [7; 64],
            remote_public_key: [9; 32],
        };
        let (_, _, _, dec) = secret_stream::from_handshake(&keys([1; 32], [2; 32]), false, [0; 32]);
        let (_, enc, header, _) =
            secret_stream::from_handshake(&keys([2; 32], [1; 32]), true, [0; 32]);
        let (tx, rx) = mpsc::unbounded_channel();
        let (cmd, _) = mpsc::unbounded_channel();
        let crypto = own_crypto.then(|| {
            Box::new(ReadCrypto {
                frames: FrameDecoder::new(),
                decryptor: dec,
            })
        });
        let reader = RelayStreamReader {
            rx,
            cmd,
            generation: 0,
            alias: 1,
            after: None,
            crypto,
            limit: FrameLimit::new(max),
        };
        (reader, tx, own_crypto.then_some(enc), header)
    }

    fn too_large(result: Result<bool, NetError>) -> Option<usize> {
        match result {
            Err(NetError::SecretStream(SecretStreamError::FrameTooLarge { len, .. })) => Some(len),
            _ => None,
        }
    }

    #[tokio::test]
    async fn a_record_announced_over_the_limit_is_refused_before_its_body_arrives() {
        let (mut reader, tx, mut enc, header) = reader(true, 1024);
        let enc = enc.as_mut().unwrap();
        // A record within the limit passes.
        let small = enc.encrypt(b"hello").unwrap();
        tx.send(StreamInput::Data(vec![header, small])).unwrap();
        let mut out = Vec::new();
        assert!(reader.read_frames(&mut out).await.unwrap());
        assert_eq!(out, vec![b"hello".to_vec()]);
        // Only the length prefix of a 16 MiB record and a few bytes of it: refused at once,
        // without waiting for (and holding) the rest.
        let announced = secret_stream::MAX_FRAME;
        let mut start = vec![
            announced as u8,
            (announced >> 8) as u8,
            (announced >> 16) as u8,
        ];
        start.extend_from_slice(&[0; 100]);
        tx.send(StreamInput::Data(vec![start])).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            too_large(reader.read_frames(&mut out).await),
            Some(announced)
        );
    }

    #[tokio::test]
    async fn a_custodial_chunk_over_the_limit_is_refused() {
        let (mut reader, tx, _, _) = reader(false, 1024);
        tx.send(StreamInput::Data(vec![vec![1; 1024]])).unwrap();
        let mut out = Vec::new();
        assert!(reader.read_frames(&mut out).await.unwrap());
        tx.send(StreamInput::Data(vec![frame(&[2; 1025])])).unwrap();
        assert_eq!(too_large(reader.read_frames(&mut out).await), Some(1028));
    }
}
