//! The client's side of the relay transports (PROTOCOL.md §6): WebSocket (one binary message =
//! one protomux frame) and TCP (`@hyperswarm/secret-stream` with a fresh random key pair, as the
//! JS `@hyperswarm/dht-relay/tcp` transport: encrypted, not authenticated).

use std::net::IpAddr;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use rand::rngs::OsRng;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{RelayClientError, RelayUrl};
use crate::net::secret_stream;
use crate::net::transport::{FrameReader, FrameWriter, SecretStreamReader, SecretStreamWriter};
use crate::net::NetError;

/// Largest frame accepted from the relay (the relay's own default limit).
const MAX_FRAME: usize = 4 << 20;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Reads relay protomux frames.
pub(super) enum Reader {
    Ws(SplitStream<Ws>),
    Tcp(SecretStreamReader<OwnedReadHalf>),
}

/// Writes relay protomux frames.
pub(super) enum Writer {
    Ws(SplitSink<Ws, WsMessage>),
    Tcp(SecretStreamWriter<OwnedWriteHalf>),
}

/// Opens a transport to `url` within `timeout`; returns it and the local IP address it runs
/// from.
pub(super) async fn open(
    url: &RelayUrl,
    timeout: Duration,
) -> Result<(Reader, Writer, IpAddr), RelayClientError> {
    let fail = |reason: String| RelayClientError::Connect {
        url: url.to_string(),
        reason,
    };
    let work = async {
        match url {
            RelayUrl::Ws(u) => {
                let config = WebSocketConfig::default()
                    .max_message_size(Some(MAX_FRAME))
                    .max_frame_size(Some(MAX_FRAME));
                let (ws, _) =
                    tokio_tungstenite::connect_async_with_config(u.as_str(), Some(config), true)
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                let local = match ws.get_ref() {
                    MaybeTlsStream::Plain(tcp) => tcp.local_addr().map(|a| a.ip()),
                    _ => Ok(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
                }
                .map_err(|e| fail(e.to_string()))?;
                let (sink, stream) = ws.split();
                Ok((Reader::Ws(stream), Writer::Ws(sink), local))
            }
            RelayUrl::Tcp(addr) => {
                let mut tcp = TcpStream::connect(addr.as_str())
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                let _ = tcp.set_nodelay(true);
                let local = tcp.local_addr().map_err(|e| fail(e.to_string()))?.ip();
                // A fresh key pair per connection, as the JS TCP transport does by default.
                let key = SigningKey::generate(&mut OsRng);
                let (_, enc, dec, rest) = secret_stream::handshake(&mut tcp, &key, true, timeout)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                let (read, write) = tcp.into_split();
                Ok((
                    Reader::Tcp(SecretStreamReader::new(read, dec, &rest)),
                    Writer::Tcp(SecretStreamWriter::new(write, enc)),
                    local,
                ))
            }
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| fail("timed out".into()))?
}

impl Reader {
    /// Appends the next frame(s) to `out`; `Ok(false)` when the relay closed the transport.
    /// Cancel-safe (see [`FrameReader::read_frames`]).
    pub(super) async fn read(&mut self, out: &mut Vec<Vec<u8>>) -> Result<bool, NetError> {
        match self {
            Reader::Ws(stream) => loop {
                match stream.next().await {
                    None => return Ok(false),
                    Some(Err(e)) => return Err(NetError::Io(std::io::Error::other(e))),
                    Some(Ok(WsMessage::Binary(b))) => {
                        out.push(b.to_vec());
                        return Ok(true);
                    }
                    Some(Ok(WsMessage::Text(t))) => {
                        out.push(t.as_bytes().to_vec());
                        return Ok(true);
                    }
                    Some(Ok(WsMessage::Close(_))) => return Ok(false),
                    Some(Ok(_)) => {} // WebSocket ping/pong: tungstenite answers
                }
            },
            Reader::Tcp(r) => r.read_frames(out).await,
        }
    }
}

impl Writer {
    /// Writes `frames` in order.
    pub(super) async fn write(&mut self, frames: &[Vec<u8>]) -> Result<(), NetError> {
        match self {
            Writer::Ws(sink) => {
                for f in frames {
                    sink.feed(WsMessage::Binary(f.clone().into()))
                        .await
                        .map_err(|e| NetError::Io(std::io::Error::other(e)))?;
                }
                sink.flush()
                    .await
                    .map_err(|e| NetError::Io(std::io::Error::other(e)))
            }
            Writer::Tcp(w) => w.write_frames(frames).await,
        }
    }

    /// Closes the transport (WebSocket close frame, TCP FIN).
    pub(super) async fn close(&mut self) {
        match self {
            Writer::Ws(sink) => {
                let _ = sink.close().await;
            }
            Writer::Tcp(w) => w.shutdown().await,
        }
    }
}
