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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::secret_stream::{Decryptor, Encryptor, FrameDecoder, SecretStreamError, MAX_FRAME};
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

/// Bytes read from the socket at once by a [`SecretStreamReader`] (its fixed buffer).
pub(crate) const READ_CHUNK: usize = 16 * 1024;

/// The largest secret-stream record (ciphertext frame body) a reader accepts, shared between a
/// [`Connection`](super::Connection) and its reader so that it can change while the
/// connection runs (e.g. a host raises it for a peer it admitted). A record is refused as soon
/// as its 3-byte length prefix announces more, before its body is buffered: a peer can make
/// the reader hold at most this many bytes (plus one [`READ_CHUNK`]).
#[derive(Clone, Debug)]
pub(crate) struct FrameLimit(Arc<AtomicUsize>);

impl FrameLimit {
    /// A limit of `bytes` (clamped to [`MAX_FRAME`], what the length prefix can express).
    pub(crate) fn new(bytes: usize) -> Self {
        FrameLimit(Arc::new(AtomicUsize::new(bytes.min(MAX_FRAME))))
    }

    /// The current limit, in bytes.
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    /// Changes the limit (clamped to [`MAX_FRAME`]); applies to the next record read.
    pub(crate) fn set(&self, bytes: usize) {
        self.0.store(bytes.min(MAX_FRAME), Ordering::Release);
    }
}

impl Default for FrameLimit {
    /// No limit beyond the format's own ([`MAX_FRAME`]).
    fn default() -> Self {
        FrameLimit::new(MAX_FRAME)
    }
}

/// Reads secret-stream records from a byte stream and decrypts them into frames.
pub(crate) struct SecretStreamReader<R> {
    read: R,
    frames: FrameDecoder,
    decryptor: Decryptor,
    buf: Vec<u8>,
    limit: FrameLimit,
}

impl<R> SecretStreamReader<R> {
    /// `rest`: bytes that arrived together with the end of the handshake (see
    /// [`super::secret_stream::handshake`]). Accepts records up to [`MAX_FRAME`]; see
    /// [`SecretStreamReader::with_limit`].
    pub(crate) fn new(read: R, decryptor: Decryptor, rest: &[u8]) -> Self {
        let mut frames = FrameDecoder::new();
        frames.push(rest);
        Self {
            read,
            frames,
            decryptor,
            buf: vec![0u8; READ_CHUNK],
            limit: FrameLimit::default(),
        }
    }

    /// Refuses records larger than `limit` (checked before each is buffered) with
    /// [`SecretStreamError::FrameTooLarge`].
    pub(crate) fn with_limit(mut self, limit: FrameLimit) -> Self {
        self.limit = limit;
        self
    }

    fn check_limit(&self) -> Result<(), SecretStreamError> {
        match self.frames.announced_len() {
            Some(len) if len > self.limit.get() => Err(SecretStreamError::FrameTooLarge {
                len,
                max: self.limit.get(),
            }),
            _ => Ok(()),
        }
    }
}

impl<R: AsyncRead + Send + Unpin + 'static> FrameReader for SecretStreamReader<R> {
    async fn read_frames<'a>(&'a mut self, out: &'a mut Vec<Vec<u8>>) -> Result<bool, NetError> {
        loop {
            // Complete records first (e.g. bytes left over from the handshake): no await
            // between taking a record and returning it, so cancelling never loses one.
            self.check_limit()?;
            while let Some(record) = self.frames.next_frame() {
                out.push(self.decryptor.decrypt(&record)?);
                self.check_limit()?;
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
pub(crate) struct SecretStreamWriter<W> {
    write: W,
    encryptor: Encryptor,
    buf: Vec<u8>,
}

impl<W> SecretStreamWriter<W> {
    /// A writer encrypting with `encryptor` (from the handshake).
    pub(crate) fn new(write: W, encryptor: Encryptor) -> Self {
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
