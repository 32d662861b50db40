//! The client's side of the relay transports (PROTOCOL.md §6): WebSocket (one binary message =
//! one protomux frame), plain (`ws://`) or over TLS (`wss://`, rustls on aws-lc-rs, server
//! certificate and host name verified against the system's CA certificates plus
//! [`ClientOptions::extra_roots`]), and TCP (`@hyperswarm/secret-stream` with a fresh random key
//! pair, as the JS `@hyperswarm/dht-relay/tcp` transport: encrypted, not authenticated).

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use ed25519_dalek::SigningKey;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use rand::rngs::OsRng;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;
use tracing::debug;

use super::{ws_host_port, ClientOptions, RelayClientError, RelayUrl};
use crate::net::secret_stream;
use crate::net::transport::{FrameReader, FrameWriter, SecretStreamReader, SecretStreamWriter};
use crate::net::NetError;

/// Largest frame accepted from the relay (the relay's own default limit).
const MAX_FRAME: usize = 4 << 20;

/// A byte stream under the WebSocket: plain TCP or TLS over TCP.
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Ws = WebSocketStream<Box<dyn Io>>;

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

/// Opens a transport to `url` within `options.connect_timeout`; returns it and the local IP
/// address it runs from.
pub(super) async fn open(
    url: &RelayUrl,
    options: &ClientOptions,
) -> Result<(Reader, Writer, IpAddr), RelayClientError> {
    let timeout = options.connect_timeout;
    let fail = |reason: String| RelayClientError::Connect {
        url: url.to_string(),
        reason,
    };
    let work = async {
        match url {
            RelayUrl::Ws(u) | RelayUrl::Wss(u) => {
                let tls = matches!(url, RelayUrl::Wss(_));
                let (host, port) =
                    ws_host_port(u).ok_or_else(|| fail("expected host[:port]".into()))?;
                let tcp = TcpStream::connect((host.as_str(), port))
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                let _ = tcp.set_nodelay(true);
                let local = tcp.local_addr().map_err(|e| fail(e.to_string()))?.ip();
                let io: Box<dyn Io> = if tls {
                    Box::new(
                        tls_connect(tcp, &host, &options.extra_roots)
                            .await
                            .map_err(fail)?,
                    )
                } else {
                    Box::new(tcp)
                };
                let config = WebSocketConfig::default()
                    .max_message_size(Some(MAX_FRAME))
                    .max_frame_size(Some(MAX_FRAME));
                let (ws, _) =
                    tokio_tungstenite::client_async_with_config(u.as_str(), io, Some(config))
                        .await
                        .map_err(|e| fail(format!("WebSocket upgrade failed: {e}")))?;
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

/// The system's CA certificates, read once per process (`rustls-native-certs`: the OS store,
/// or the files `SSL_CERT_FILE` / `SSL_CERT_DIR` name).
fn native_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            debug!(error = %e, "relay client: reading the system's CA certificates");
        }
        found.certs
    })
}

/// A TLS client configuration (aws-lc-rs, TLS 1.2 and 1.3) trusting the system's CA
/// certificates and `extra_roots`. Errors with a text if an extra certificate is unusable.
fn tls_config(
    extra_roots: &[CertificateDer<'static>],
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let (_, ignored) = roots.add_parsable_certificates(native_roots().iter().cloned());
    if ignored > 0 {
        debug!(
            ignored,
            "relay client: unusable system CA certificates skipped"
        );
    }
    for (i, cert) in extra_roots.iter().enumerate() {
        roots
            .add(cert.clone())
            .map_err(|e| format!("extra CA certificate #{} is unusable: {e}", i + 1))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Runs a TLS handshake over `tcp`, verifying the server's certificate chain and that it is
/// valid for `host` (a DNS name or an IP address).
async fn tls_connect(
    tcp: TcpStream,
    host: &str,
    extra_roots: &[CertificateDer<'static>],
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| format!("{host:?} is not a valid TLS server name: {e}"))?;
    let connector = TlsConnector::from(tls_config(extra_roots)?);
    connector.connect(name, tcp).await.map_err(|e| {
        format!(
            "TLS handshake failed: {e} (is the relay's certificate valid for {host} and issued \
             by a CA this client trusts? Add a private CA with ClientOptions::extra_roots)"
        )
    })
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
