//! Frame transports under a [`super::Connection`]: whatever carries whole protomux frames.
//!
//! A [`Connection`](super::Connection) runs protomux, replication and app channels on top of
//! a [`FrameReader`] and a [`FrameWriter`]: one frame = one protomux message (an empty frame is a
//! keep-alive, as in JS protomux 3.12). Two kinds exist:
//! - [`SecretStreamReader`] / [`SecretStreamWriter`]: `@hyperswarm/secret-stream` 6.9.2 over a
//!   byte socket (uint24le length + libsodium secretstream records), what
//!   [`Connection::connect`](super::Connection::connect) uses after the Noise handshake;
//! - an already-authenticated, message-oriented stream such as a custodial
//!   `@hyperswarm/dht-relay` 0.4.3 stream (one relay `data` chunk = one frame), where the relay
//!   ran the Noise handshake: see `crate::relay::client`. JS `core.replicate(stream)` sits on
//!   exactly that (protomux straight on the relayed stream, no second secret-stream).

use std::future::Future;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::secret_stream::{Decryptor, Encryptor, FrameDecoder};
use super::NetError;

/// The receiving side of a frame transport.
pub trait FrameReader: Send + 'static {
    /// Waits for input and appends every whole frame it completes to `out` (in order). Returns
    /// `Ok(true)` when frames were appended, `Ok(false)` when the peer ended the stream.
    ///
    /// Must be cancel-safe: the [`Connection`](super::Connection) drops this future when
    /// something else happens first, and nothing received may be lost then.
    ///
    /// Errors: the transport failed or the peer sent undecodable bytes (the connection ends).
    fn read_frames<'a>(
        &'a mut self,
        out: &'a mut Vec<Vec<u8>>,
    ) -> impl Future<Output = Result<bool, NetError>> + Send + 'a;
}

/// The sending side of a frame transport.
pub trait FrameWriter: Send + 'static {
    /// Sends `frames` in order; returns once the transport took them (that is the
    /// connection's back-pressure: bytes not yet taken count against
    /// [`MAX_QUEUED_WRITE`](super::peer::MAX_QUEUED_WRITE)).
    ///
    /// Errors: the transport failed (the connection ends).
    fn write_frames<'a>(
        &'a mut self,
        frames: &'a [Vec<u8>],
    ) -> impl Future<Output = Result<(), NetError>> + Send + 'a;

    /// Ends the outgoing direction (TCP FIN, relay `end`), after everything was written.
    fn shutdown(&mut self) -> impl Future<Output = ()> + Send + '_;
}

/// Reads secret-stream records from a byte stream and decrypts them into frames.
pub struct SecretStreamReader<R> {
    read: R,
    frames: FrameDecoder,
    decryptor: Decryptor,
    buf: Vec<u8>,
}

impl<R> SecretStreamReader<R> {
    /// `rest`: bytes that arrived together with the end of the handshake (see
    /// [`super::secret_stream::handshake`]).
    pub fn new(read: R, decryptor: Decryptor, rest: &[u8]) -> Self {
        let mut frames = FrameDecoder::new();
        frames.push(rest);
        Self {
            read,
            frames,
            decryptor,
            buf: vec![0u8; 64 * 1024],
        }
    }
}

impl<R: AsyncRead + Send + Unpin + 'static> FrameReader for SecretStreamReader<R> {
    async fn read_frames<'a>(&'a mut self, out: &'a mut Vec<Vec<u8>>) -> Result<bool, NetError> {
        loop {
            // Complete records first (e.g. bytes left over from the handshake): no await
            // between taking a record and returning it, so cancelling never loses one.
            while let Some(record) = self.frames.next_frame() {
                out.push(self.decryptor.decrypt(&record)?);
            }
            if !out.is_empty() {
                return Ok(true);
            }
            let n = self.read.read(&mut self.buf).await?;
            if n == 0 {
                return Ok(false);
            }
            self.frames.push(&self.buf[..n]);
        }
    }
}

/// Encrypts frames into secret-stream records and writes them to a byte stream, one socket
/// write per batch.
pub struct SecretStreamWriter<W> {
    write: W,
    encryptor: Encryptor,
    buf: Vec<u8>,
}

impl<W> SecretStreamWriter<W> {
    /// A writer encrypting with `encryptor` (from the handshake).
    pub fn new(write: W, encryptor: Encryptor) -> Self {
        Self {
            write,
            encryptor,
            buf: Vec::new(),
        }
    }
}

impl<W: AsyncWrite + Send + Unpin + 'static> FrameWriter for SecretStreamWriter<W> {
    async fn write_frames<'a>(&'a mut self, frames: &'a [Vec<u8>]) -> Result<(), NetError> {
        self.buf.clear();
        for f in frames {
            self.encryptor.encrypt_into(f, &mut self.buf)?;
        }
        self.write.write_all(&self.buf).await?;
        Ok(())
    }

    async fn shutdown(&mut self) {
        let _ = self.write.shutdown().await;
    }
}
