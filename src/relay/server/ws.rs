//! The server side of WebSocket (RFC 6455) as the relay needs it: the HTTP upgrade, then
//! binary/text messages in (fragmented or not, client frames masked), binary messages, pongs
//! and a close frame out. No extensions, no subprotocol.
//!
//! The relay reads frames itself (rather than through tungstenite) so that the bytes of a
//! message being received are exactly what [`InputBuffer`] accounts for: they come out of the
//! session's allowance and the relay's [`super::Limits::input_budget`], a frame announced
//! larger than [`super::Limits::max_frame`] is refused from its header, and nothing of a large
//! message stays allocated once it is complete.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::input::InputBuffer;
use super::CloseReason;

/// Largest HTTP upgrade request accepted (request line and headers).
const MAX_REQUEST: usize = 8 << 10;

/// What the client asked for in its upgrade request.
#[derive(Debug, Default)]
pub(crate) struct Upgrade {
    /// The first address of `X-Forwarded-For`, if any.
    pub forwarded_for: Option<String>,
    /// Bytes received after the request (the client's first frames, if it did not wait).
    pub rest: Vec<u8>,
}

/// Reads the HTTP upgrade request from `io` and answers it: `101 Switching Protocols`, or `400`
/// / `426` (with the reason) for a request that is not a WebSocket version 13 upgrade.
///
/// Errors: a text saying what was wrong (for the log); the connection should be dropped.
pub(crate) async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
) -> Result<Upgrade, String> {
    let mut buf = Vec::with_capacity(1024);
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() >= MAX_REQUEST {
            refuse(io, "431 Request Header Fields Too Large", "").await;
            return Err(format!("upgrade request over {MAX_REQUEST} bytes"));
        }
        let mut chunk = [0u8; 1024];
        let want = chunk.len().min(MAX_REQUEST + 4 - buf.len());
        let n = io
            .read(&mut chunk[..want])
            .await
            .map_err(|e| format!("reading the upgrade request: {e}"))?;
        if n == 0 {
            return Err("the client closed before its upgrade request ended".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let rest = buf[end + 4..].to_vec();
    let head = match std::str::from_utf8(&buf[..end]) {
        Ok(h) => h,
        Err(_) => {
            refuse(io, "400 Bad Request", "").await;
            return Err("the upgrade request is not UTF-8".into());
        }
    };
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (method, version) = (parts.next(), parts.nth(1));
    if method != Some("GET") || version != Some("HTTP/1.1") {
        refuse(io, "400 Bad Request", "").await;
        return Err(format!("not a GET HTTP/1.1 request: {request_line:?}"));
    }
    let mut key = None;
    let (mut upgrade, mut connection, mut ws_version) = (false, false, None);
    let mut forwarded_for = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            refuse(io, "400 Bad Request", "").await;
            return Err(format!("malformed header line {line:?}"));
        };
        let value = value.trim();
        let has_token = |t: &str| value.split(',').any(|v| v.trim().eq_ignore_ascii_case(t));
        match name.trim().to_ascii_lowercase().as_str() {
            "upgrade" => upgrade |= has_token("websocket"),
            "connection" => connection |= has_token("upgrade"),
            "sec-websocket-version" => ws_version = Some(value.to_string()),
            "sec-websocket-key" => key = Some(value.to_string()),
            "x-forwarded-for" => {
                forwarded_for = value
                    .split(',')
                    .next()
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
            }
            _ => {}
        }
    }
    if ws_version.as_deref() != Some("13") {
        refuse(io, "426 Upgrade Required", "Sec-WebSocket-Version: 13\r\n").await;
        return Err(format!("WebSocket version {ws_version:?}, not 13"));
    }
    let key = match key {
        Some(k) if upgrade && connection && !k.is_empty() => k,
        _ => {
            refuse(io, "400 Bad Request", "").await;
            return Err("not a WebSocket upgrade request".into());
        }
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    io.write_all(response.as_bytes())
        .await
        .map_err(|e| format!("answering the upgrade request: {e}"))?;
    io.flush()
        .await
        .map_err(|e| format!("answering the upgrade request: {e}"))?;
    Ok(Upgrade {
        forwarded_for,
        rest,
    })
}

async fn refuse<S: AsyncWrite + Unpin>(io: &mut S, status: &str, headers: &str) {
    let r = format!("HTTP/1.1 {status}\r\n{headers}Connection: close\r\nContent-Length: 0\r\n\r\n");
    let _ = io.write_all(r.as_bytes()).await;
    let _ = io.shutdown().await;
}

/// What the client sent: a complete message, a ping to answer, or its close.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// One binary message (a text message's UTF-8 bytes, as JS `b4a.from(event.data)`).
    Message(Vec<u8>),
    /// A WebSocket ping with its payload: answer with a pong.
    Ping(Vec<u8>),
    /// A close frame, or the end of the stream.
    Closed,
}

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// A parsed frame header.
struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    /// Bytes of the header.
    size: usize,
    /// Bytes of the payload.
    len: usize,
}

/// The header at the start of `b`: `Ok(None)` if incomplete (with the bytes still needed for
/// it), errors for what RFC 6455 forbids from a client.
fn parse_header(b: &[u8]) -> Result<Result<Header, usize>, CloseReason> {
    if b.len() < 2 {
        return Ok(Err(2 - b.len()));
    }
    let protocol = |m: &str| Err(CloseReason::Protocol(format!("WebSocket: {m}")));
    if b[0] & 0x70 != 0 {
        return protocol("reserved bits set (no extension was negotiated)");
    }
    if b[1] & 0x80 == 0 {
        return protocol("unmasked frame from a client");
    }
    let (ext, short) = match b[1] & 0x7f {
        126 => (2, None),
        127 => (8, None),
        n => (0, Some(n as u64)),
    };
    let size = 2 + ext + 4;
    if b.len() < size {
        return Ok(Err(size - b.len()));
    }
    let len = match short {
        Some(n) => n,
        None if ext == 2 => u64::from(u16::from_be_bytes([b[2], b[3]])),
        None => u64::from_be_bytes(b[2..10].try_into().expect("8 bytes")),
    };
    let mut mask = [0u8; 4];
    mask.copy_from_slice(&b[2 + ext..size]);
    Ok(Ok(Header {
        fin: b[0] & 0x80 != 0,
        opcode: b[0] & 0x0f,
        mask,
        size,
        // Saturates: anything above usize::MAX is over every limit anyway.
        len: usize::try_from(len).unwrap_or(usize::MAX),
    }))
}

/// The reading half of a server WebSocket: one message per [`Reader::read`].
pub(crate) struct Reader<R> {
    io: R,
    input: InputBuffer,
    /// The message being received in fragments, and whether it is text.
    message: Option<(Vec<u8>, bool)>,
    max_message: usize,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// Reads frames from `io` (after the upgrade; `input` holds what came with it). Messages
    /// above `max_message` bytes are refused.
    pub(super) fn new(io: R, input: InputBuffer, max_message: usize) -> Self {
        Self {
            io,
            input,
            message: None,
            max_message,
        }
    }

    fn fragments(&self) -> usize {
        self.message.as_ref().map_or(0, |(m, _)| m.len())
    }

    /// The next message, ping or close.
    ///
    /// Errors: [`CloseReason::Limit`] for a message above the limit (from its header),
    /// [`CloseReason::Protocol`] for a frame RFC 6455 forbids, [`CloseReason::ClientGone`] /
    /// [`CloseReason::Transport`] if reading fails.
    pub(super) async fn read(&mut self) -> Result<Incoming, CloseReason> {
        loop {
            let want = match parse_header(self.input.bytes())? {
                Err(more) => more,
                Ok(h) => {
                    self.check(&h)?;
                    let total = h.size.saturating_add(h.len);
                    if self.input.bytes().len() >= total {
                        if let Some(done) = self.take(h, total)? {
                            return Ok(done);
                        }
                        continue;
                    }
                    total - self.input.bytes().len()
                }
            };
            let extra = self.fragments();
            match self.input.fill(&mut self.io, want, extra).await {
                Ok(0) => return Ok(Incoming::Closed),
                Ok(_) => {}
                Err(e) => return Err(super::transport::io_error(e)),
            }
        }
    }

    /// Refuses a frame from its header alone.
    fn check(&self, h: &Header) -> Result<(), CloseReason> {
        let protocol = |m: String| Err(CloseReason::Protocol(format!("WebSocket: {m}")));
        match h.opcode {
            OP_CLOSE | OP_PING | OP_PONG => {
                if !h.fin || h.len > 125 {
                    return protocol("fragmented or oversized control frame".into());
                }
            }
            OP_TEXT | OP_BINARY if self.message.is_some() => {
                return protocol("a new message inside a fragmented one".into())
            }
            OP_CONTINUATION if self.message.is_none() => {
                return protocol("a continuation frame outside a message".into())
            }
            OP_TEXT | OP_BINARY | OP_CONTINUATION => {
                let size = self.fragments().saturating_add(h.len);
                if size > self.max_message {
                    return Err(super::transport::frame_too_large(size, self.max_message));
                }
            }
            op => return protocol(format!("reserved opcode {op:#x}")),
        }
        Ok(())
    }

    /// Takes the complete frame `h` (`total` bytes with its header) out of the buffer.
    fn take(&mut self, h: Header, total: usize) -> Result<Option<Incoming>, CloseReason> {
        let mut payload = self.input.bytes()[h.size..total].to_vec();
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= h.mask[i % 4];
        }
        let done = match h.opcode {
            OP_CLOSE => Some(Incoming::Closed),
            OP_PING => Some(Incoming::Ping(payload)),
            OP_PONG => None,
            OP_TEXT | OP_BINARY => {
                if h.fin {
                    Some(finish(payload, h.opcode == OP_TEXT)?)
                } else {
                    self.message = Some((payload, h.opcode == OP_TEXT));
                    None
                }
            }
            _ => {
                let (m, _) = self.message.as_mut().expect("checked: a message is open");
                m.extend_from_slice(&payload);
                if h.fin {
                    let (m, text) = self.message.take().expect("a message is open");
                    Some(finish(m, text)?)
                } else {
                    None
                }
            }
        };
        let extra = self.fragments();
        self.input.consume(total, extra);
        Ok(done)
    }
}

fn finish(message: Vec<u8>, text: bool) -> Result<Incoming, CloseReason> {
    if text && std::str::from_utf8(&message).is_err() {
        return Err(CloseReason::Protocol(
            "WebSocket: a text message that is not UTF-8".into(),
        ));
    }
    Ok(Incoming::Message(message))
}

/// Appends an unmasked server frame (FIN set) with `opcode` and `payload` to `out`.
pub(crate) fn encode_frame(opcode: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.push(0x80 | opcode);
    match payload.len() {
        n @ 0..=125 => out.push(n as u8),
        n @ 126..=0xffff => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

/// A binary message frame.
pub(crate) fn binary(payload: &[u8], out: &mut Vec<u8>) {
    encode_frame(OP_BINARY, payload, out)
}

/// A pong answering a ping with `payload`.
pub(crate) fn pong(payload: &[u8], out: &mut Vec<u8>) {
    encode_frame(OP_PONG, payload, out)
}

/// A close frame with `code` and `reason` (cut to the 123 bytes a close frame allows, on a
/// character boundary).
pub(crate) fn close(code: u16, reason: &str, out: &mut Vec<u8>) {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    encode_frame(OP_CLOSE, &payload, out)
}

/// Writes `frames` (already encoded) to `io` and flushes.
pub(crate) async fn write<W: AsyncWrite + Unpin>(io: &mut W, frames: &[u8]) -> std::io::Result<()> {
    io.write_all(frames).await?;
    io.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::server::input::{InputBudget, SESSION_ALLOWANCE};

    /// A masked client frame.
    fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        let mask = [0x12, 0x34, 0x56, 0x78];
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | n as u8),
            n @ 126..=0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    fn reader(bytes: Vec<u8>, max: usize) -> Reader<std::io::Cursor<Vec<u8>>> {
        let budget = InputBudget::new(max.max(1 << 20));
        Reader::new(
            std::io::Cursor::new(bytes),
            InputBuffer::new(budget, Vec::new()),
            max,
        )
    }

    #[tokio::test]
    async fn messages_fragments_pings_and_close() {
        let big = vec![7u8; 70_000];
        let mut bytes = client_frame(0x82, b"one");
        bytes.extend(client_frame(0x02, b"tw"));
        bytes.extend(client_frame(0x89, b"p"));
        bytes.extend(client_frame(0x80, b"o"));
        bytes.extend(client_frame(0x81, "é".as_bytes()));
        bytes.extend(client_frame(0x82, &big));
        bytes.extend(client_frame(0x8A, b""));
        bytes.extend(client_frame(0x88, &[0x03, 0xe8]));
        let mut r = reader(bytes, 1 << 20);
        assert_eq!(r.read().await, Ok(Incoming::Message(b"one".to_vec())));
        assert_eq!(r.read().await, Ok(Incoming::Ping(b"p".to_vec())));
        assert_eq!(r.read().await, Ok(Incoming::Message(b"two".to_vec())));
        assert_eq!(r.read().await, Ok(Incoming::Message("é".into())));
        assert_eq!(r.read().await, Ok(Incoming::Message(big)));
        assert_eq!(r.read().await, Ok(Incoming::Closed));
        assert!(r.input.bytes().is_empty());
    }

    #[tokio::test]
    async fn oversized_and_forbidden_frames() {
        // Announced above the limit: refused from the header, before any payload arrives.
        let mut header = vec![0x82, 0x80 | 127];
        header.extend_from_slice(&(u64::MAX).to_be_bytes());
        header.extend_from_slice(&[0; 4]);
        let e = reader(header, 1000).read().await.unwrap_err();
        assert!(matches!(e, CloseReason::Limit(_)), "{e}");
        // Fragments adding up to more than the limit.
        let mut bytes = client_frame(0x02, &[0; 600]);
        bytes.extend(client_frame(0x80, &[0; 600]));
        let e = reader(bytes, 1000).read().await.unwrap_err();
        assert!(matches!(e, CloseReason::Limit(_)), "{e}");
        for bad in [
            vec![0x82, 0x01, b'x'],                                        // unmasked
            client_frame(0xC2, b"x"), // RSV1 (compression) not negotiated
            client_frame(0x83, b"x"), // reserved opcode
            client_frame(0x80, b"x"), // continuation outside a message
            client_frame(0x09, b"x"), // fragmented ping
            client_frame(0x89, &[0; 126]), // oversized ping
            client_frame(0x81, &[0xff, 0xfe]), // text that is not UTF-8
            [client_frame(0x02, b"a"), client_frame(0x82, b"b")].concat(), // interleaved
        ] {
            let e = reader(bad.clone(), 1000).read().await.unwrap_err();
            assert!(matches!(e, CloseReason::Protocol(_)), "{bad:x?}: {e}");
        }
        assert_eq!(SESSION_ALLOWANCE, 16 << 10);
    }

    #[tokio::test]
    async fn upgrade_request() {
        let (mut client, mut server) = tokio::io::duplex(64 << 10);
        let req = "GET /path HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\n\
                   Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                   X-Forwarded-For: 203.0.113.7, 10.0.0.1\r\n\r\nEARLY";
        client.write_all(req.as_bytes()).await.unwrap();
        let up = accept(&mut server).await.unwrap();
        assert_eq!(up.forwarded_for.as_deref(), Some("203.0.113.7"));
        assert_eq!(up.rest, b"EARLY");
        let mut resp = vec![0u8; 256];
        let n = client.read(&mut resp).await.unwrap();
        let resp = String::from_utf8_lossy(&resp[..n]);
        assert!(resp.starts_with("HTTP/1.1 101 "), "{resp}");
        // RFC 6455's example key.
        assert!(
            resp.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
            "{resp}"
        );

        let (mut client, mut server) = tokio::io::duplex(64 << 10);
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(accept(&mut server).await.is_err());
        let mut resp = String::new();
        client.read_to_string(&mut resp).await.unwrap();
        assert!(resp.starts_with("HTTP/1.1 426 "), "{resp}");

        let (mut client, mut server) = tokio::io::duplex(64 << 10);
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_REQUEST));
        client.write_all(long.as_bytes()).await.unwrap();
        assert!(accept(&mut server).await.is_err());
    }
}
