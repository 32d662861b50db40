//! The tokio driver of the secret-stream handshake: runs [`Handshake`] over any
//! `AsyncRead + AsyncWrite` with a deadline.

use std::time::Duration;

use ed25519_dalek::SigningKey;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{Decryptor, Encryptor, FrameDecoder, Handshake, SecretStreamError, SessionInfo};
use crate::net::noise::NoiseError;

/// Runs the whole secret-stream handshake on `io` with a deadline.
///
/// Returns the session info, the two transport halves, and any bytes that arrived after the
/// remote's header (the start of the first messages: feed them to a [`FrameDecoder`]).
///
/// Errors: [`SecretStreamError::Timeout`] after `timeout`; [`SecretStreamError::ClosedDuringHandshake`]
/// if the peer hangs up; handshake / header errors as [`Handshake::on_frame`]; socket errors.
pub async fn handshake<S>(
    io: &mut S,
    key: &SigningKey,
    is_initiator: bool,
    timeout: Duration,
) -> Result<(SessionInfo, Encryptor, Decryptor, Vec<u8>), SecretStreamError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(timeout, handshake_inner(io, key, is_initiator)).await {
        Ok(r) => r,
        Err(_) => Err(SecretStreamError::Timeout(timeout)),
    }
}

async fn handshake_inner<S>(
    io: &mut S,
    key: &SigningKey,
    is_initiator: bool,
) -> Result<(SessionInfo, Encryptor, Decryptor, Vec<u8>), SecretStreamError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut hs = Handshake::new(is_initiator, key)?;
    let mut frames = FrameDecoder::new();
    let mut buf = vec![0u8; 4096];
    loop {
        let out = hs.take_outgoing();
        if !out.is_empty() {
            io.write_all(&out).await?;
            io.flush().await?;
        }
        if hs.is_done() {
            break;
        }
        // Only handshake-sized frames are legal here: refuse to buffer a huge bogus frame.
        if frames.buffered() > 4096 {
            return Err(NoiseError::BadLength {
                step: 0,
                expected: 96,
                got: frames.buffered(),
            }
            .into());
        }
        let n = io.read(&mut buf).await?;
        if n == 0 {
            return Err(SecretStreamError::ClosedDuringHandshake);
        }
        frames.push(&buf[..n]);
        while !hs.is_done() {
            let Some(f) = frames.next_frame() else { break };
            hs.on_frame(&f)?;
        }
    }
    let rest = frames.take_rest();
    let (info, enc, dec) = hs
        .finish()
        .ok_or(SecretStreamError::ClosedDuringHandshake)?;
    tracing::debug!(
        remote = %hex::encode(info.remote_public_key),
        is_initiator,
        "secret-stream handshake done"
    );
    Ok((info, enc, dec, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    #[tokio::test]
    async fn async_handshake_over_duplex_and_peer_vanishing() {
        let ka = SigningKey::generate(&mut OsRng);
        let kb = SigningKey::generate(&mut OsRng);
        let (mut x, mut y) = tokio::io::duplex(1 << 16);
        let t = Duration::from_secs(5);
        let (ra, rb) = tokio::join!(
            handshake(&mut x, &ka, true, t),
            handshake(&mut y, &kb, false, t)
        );
        let (ia, ..) = ra.unwrap();
        let (ib, ..) = rb.unwrap();
        assert_eq!(ia.remote_public_key, kb.verifying_key().to_bytes());
        assert_eq!(ib.remote_public_key, ka.verifying_key().to_bytes());

        // Peer closes right after connecting.
        let (mut x, y) = tokio::io::duplex(1 << 16);
        drop(y);
        let r = handshake(&mut x, &ka, true, t).await;
        assert!(r.is_err());

        // Peer never answers: timeout.
        let (mut x, _y) = tokio::io::duplex(1 << 16);
        let r = handshake(&mut x, &ka, true, Duration::from_millis(50)).await;
        assert!(matches!(r, Err(SecretStreamError::Timeout(_))));
    }
}
