//! The tokio driver of UDX: one task owns a UDP socket and the [`Stream`] cores on it, feeds
//! them datagrams and time, and sends what they produce. Applications hold [`UdxStream`]
//! handles. Datagrams that are not UDX packets for a stream of this socket are ignored (on a
//! shared socket they belong to dht-rpc or are holepunch probes).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use std::future::Future;
use tokio::net::UdpSocket;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::header::Packet;
use super::stream::{Stream, StreamError, StreamEvent};

/// Bytes a stream may hold written but unacknowledged before [`UdxStream::write`] waits:
/// 256 KiB (libudx's `UDX_HIGH_WATERMARK`).
pub const HIGH_WATERMARK: usize = 256 * 1024;

/// Largest datagram read.
const MAX_DATAGRAM: usize = 2048;

/// What a [`UdxStream`] asks of the driver.
enum Command {
    Open {
        local_id: u32,
        events: mpsc::UnboundedSender<StreamEvent>,
    },
    Connect {
        local_id: u32,
        remote_id: u32,
        remote: SocketAddr,
    },
    Write {
        local_id: u32,
        data: Vec<u8>,
        /// Told once the stream's unacknowledged bytes are under [`HIGH_WATERMARK`].
        room: oneshot::Sender<()>,
    },
    End {
        local_id: u32,
    },
    Message {
        local_id: u32,
        data: Vec<u8>,
    },
    Destroy {
        local_id: u32,
    },
}

/// A UDP socket carrying UDX streams. Cheap to clone; the driver task stops when every clone
/// and every stream handle is dropped.
#[derive(Clone)]
pub struct UdxSocket {
    commands: mpsc::UnboundedSender<Command>,
    local_addr: SocketAddr,
}

/// One stream's handle: its events, or the stream as bytes (`AsyncRead` / `AsyncWrite`, e.g.
/// under secret-stream); [`UdxStream::writer`] writes, ends and sends datagrams from another
/// task while this one reads.
pub struct UdxStream {
    writer: UdxWriter,
    events: mpsc::UnboundedReceiver<StreamEvent>,
    /// As a byte stream ([`tokio::io::AsyncRead`]): what the last `Data` event left unread.
    unread: Vec<u8>,
    /// The stream ended or closed (reads give EOF).
    eof: bool,
    /// As a byte stream ([`tokio::io::AsyncWrite`]): told when the last write has room.
    room: Option<oneshot::Receiver<()>>,
}

/// The writing half of a [`UdxStream`]; clones write to the same stream.
#[derive(Clone)]
pub struct UdxWriter {
    local_id: u32,
    commands: mpsc::UnboundedSender<Command>,
}

/// The driver is gone (the socket failed or was dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the UDX socket is closed")]
pub struct SocketClosed;

impl UdxSocket {
    /// Binds a UDP socket at `addr` and starts its driver. Requires a tokio runtime.
    ///
    /// Errors: the bind's I/O error.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<UdxSocket> {
        let socket = Arc::new(UdpSocket::bind(addr).await?);
        let local_addr = socket.local_addr()?;
        let (commands, rx) = mpsc::unbounded_channel();
        tokio::spawn(Driver::new(socket).run(rx));
        Ok(UdxSocket {
            commands,
            local_addr,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A new stream with id `local_id` on this socket (packets for it are taken from now on,
    /// before [`UdxStream::connect`] too).
    ///
    /// Errors: [`SocketClosed`].
    pub fn stream(&self, local_id: u32) -> Result<UdxStream, SocketClosed> {
        let (tx, events) = mpsc::unbounded_channel();
        self.commands
            .send(Command::Open {
                local_id,
                events: tx,
            })
            .map_err(|_| SocketClosed)?;
        Ok(UdxStream {
            writer: UdxWriter {
                local_id,
                commands: self.commands.clone(),
            },
            events,
            unread: Vec::new(),
            eof: false,
            room: None,
        })
    }
}

impl UdxStream {
    /// Connects to stream `remote_id` at `remote` (as [`UdxWriter::connect`]).
    ///
    /// Errors: [`SocketClosed`].
    pub fn connect(&self, remote_id: u32, remote: SocketAddr) -> Result<(), SocketClosed> {
        self.writer.connect(remote_id, remote)
    }

    /// A writer for this stream, to write from another task.
    pub fn writer(&self) -> UdxWriter {
        self.writer.clone()
    }

    /// The next event; `None` once the stream closed and every event was read.
    pub async fn next_event(&mut self) -> Option<StreamEvent> {
        self.events.recv().await
    }

    /// Reads until the stream closes: the bytes, the datagrams, and the close reason.
    pub async fn read_to_close(&mut self) -> (Vec<u8>, Vec<Vec<u8>>, Option<StreamError>) {
        let (mut data, mut messages) = (Vec::new(), Vec::new());
        while let Some(e) = self.next_event().await {
            match e {
                StreamEvent::Data(d) => data.extend_from_slice(&d),
                StreamEvent::Message(m) => messages.push(m),
                StreamEvent::End => {}
                StreamEvent::Closed(error) => return (data, messages, error),
            }
        }
        (data, messages, None)
    }
}

/// The stream as bytes (e.g. under secret-stream): datagrams are skipped, the remote's END
/// reads as EOF, a reset or timeout as an error (`ConnectionReset`, `TimedOut`).
impl tokio::io::AsyncRead for UdxStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        loop {
            if !self.unread.is_empty() {
                let n = self.unread.len().min(buf.remaining());
                buf.put_slice(&self.unread[..n]);
                self.unread.drain(..n);
                return Poll::Ready(Ok(()));
            }
            if self.eof {
                return Poll::Ready(Ok(()));
            }
            match std::task::ready!(self.events.poll_recv(cx)) {
                Some(StreamEvent::Data(d)) => self.unread = d,
                Some(StreamEvent::Message(_)) => {}
                Some(StreamEvent::End) | Some(StreamEvent::Closed(None)) | None => self.eof = true,
                Some(StreamEvent::Closed(Some(e))) => {
                    self.eof = true;
                    let kind = match e {
                        StreamError::Reset => std::io::ErrorKind::ConnectionReset,
                        StreamError::TimedOut => std::io::ErrorKind::TimedOut,
                    };
                    return Poll::Ready(Err(std::io::Error::new(kind, e)));
                }
            }
        }
    }
}

/// Writes are accepted whole and queued; the next write (or a flush) waits while more than
/// [`HIGH_WATERMARK`] bytes are unacknowledged. Shutdown ends this side (END).
impl tokio::io::AsyncWrite for UdxStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::ready!(self.as_mut().poll_flush(cx))?;
        let (room, wait) = oneshot::channel();
        let command = Command::Write {
            local_id: self.writer.local_id,
            data: data.to_vec(),
            room,
        };
        self.writer.send(command).map_err(closed)?;
        self.room = Some(wait);
        std::task::Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if let Some(wait) = self.room.as_mut() {
            let r = std::task::ready!(std::pin::Pin::new(wait).poll(cx));
            self.room = None;
            r.map_err(|_| closed(SocketClosed))?;
        }
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::ready!(self.as_mut().poll_flush(cx))?;
        std::task::Poll::Ready(self.writer.end().map_err(closed))
    }
}

fn closed(e: SocketClosed) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::BrokenPipe, e)
}

impl UdxWriter {
    /// Connects to stream `remote_id` at `remote`.
    ///
    /// Errors: [`SocketClosed`].
    pub fn connect(&self, remote_id: u32, remote: SocketAddr) -> Result<(), SocketClosed> {
        self.send(Command::Connect {
            local_id: self.local_id,
            remote_id,
            remote,
        })
    }

    /// Writes `data`; waits while more than [`HIGH_WATERMARK`] bytes are unacknowledged.
    ///
    /// Errors: [`SocketClosed`].
    pub async fn write(&self, data: &[u8]) -> Result<(), SocketClosed> {
        let (room, wait) = oneshot::channel();
        self.send(Command::Write {
            local_id: self.local_id,
            data: data.to_vec(),
            room,
        })?;
        wait.await.map_err(|_| SocketClosed)
    }

    /// Ends this side after what was written.
    ///
    /// Errors: [`SocketClosed`].
    pub fn end(&self) -> Result<(), SocketClosed> {
        self.send(Command::End {
            local_id: self.local_id,
        })
    }

    /// Sends one unreliable datagram on the stream.
    ///
    /// Errors: [`SocketClosed`].
    pub fn send_message(&self, data: &[u8]) -> Result<(), SocketClosed> {
        self.send(Command::Message {
            local_id: self.local_id,
            data: data.to_vec(),
        })
    }

    /// Resets the stream (the remote sees [`StreamError::Reset`]).
    ///
    /// Errors: [`SocketClosed`].
    pub fn destroy(&self) -> Result<(), SocketClosed> {
        self.send(Command::Destroy {
            local_id: self.local_id,
        })
    }

    fn send(&self, c: Command) -> Result<(), SocketClosed> {
        self.commands.send(c).map_err(|_| SocketClosed)
    }
}

/// One stream in the driver.
struct Entry {
    core: Stream,
    remote: Option<SocketAddr>,
    events: mpsc::UnboundedSender<StreamEvent>,
    /// Writers waiting for room.
    waiting: Vec<oneshot::Sender<()>>,
}

struct Driver {
    socket: Arc<UdpSocket>,
    streams: HashMap<u32, Entry>,
}

impl Driver {
    fn new(socket: Arc<UdpSocket>) -> Driver {
        Driver {
            socket,
            streams: HashMap::new(),
        }
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut handles = true;
        loop {
            self.flush().await;
            if !handles && self.streams.is_empty() {
                return;
            }
            let timeout = self
                .streams
                .values()
                .filter_map(|e| e.core.poll_timeout())
                .min()
                .map(Instant::from_std);
            let sleep = async {
                match timeout {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, from)) => self.datagram(&buf[..n], from),
                    // ICMP errors (a port that is gone) surface here on Linux: keep going.
                    Err(e) => tracing::debug!("udx recv: {e}"),
                },
                c = commands.recv(), if handles => match c {
                    Some(c) => self.command(c),
                    None => handles = false,
                },
                _ = sleep => {
                    let now = std::time::Instant::now();
                    for e in self.streams.values_mut() {
                        e.core.handle_timeout(now);
                    }
                }
            }
        }
    }

    fn datagram(&mut self, bytes: &[u8], from: SocketAddr) {
        let Some(packet) = Packet::parse(bytes) else {
            return;
        };
        let Some(entry) = self.streams.get_mut(&packet.header.stream_id) else {
            return;
        };
        // Before connect, the first packet's source is where the remote is (libudx's firewall
        // hook adopts it the same way in hyperdht).
        entry.remote.get_or_insert(from);
        entry.core.handle_packet(std::time::Instant::now(), &packet);
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::Open { local_id, events } => {
                self.streams.insert(
                    local_id,
                    Entry {
                        core: Stream::new(local_id),
                        remote: None,
                        events,
                        waiting: Vec::new(),
                    },
                );
            }
            Command::Connect {
                local_id,
                remote_id,
                remote,
            } => {
                if let Some(e) = self.streams.get_mut(&local_id) {
                    e.remote = Some(remote);
                    e.core.connect(remote_id);
                }
            }
            Command::Write {
                local_id,
                data,
                room,
            } => {
                if let Some(e) = self.streams.get_mut(&local_id) {
                    if e.core.write(&data) < HIGH_WATERMARK {
                        let _ = room.send(());
                    } else {
                        e.waiting.push(room);
                    }
                }
            }
            Command::End { local_id } => {
                if let Some(e) = self.streams.get_mut(&local_id) {
                    e.core.end();
                }
            }
            Command::Message { local_id, data } => {
                if let Some(e) = self.streams.get_mut(&local_id) {
                    e.core.send_message(&data);
                }
            }
            Command::Destroy { local_id } => {
                if let Some(e) = self.streams.get_mut(&local_id) {
                    e.core.destroy();
                }
            }
        }
    }

    /// Sends what every stream has to send, hands out events, wakes writers, and forgets
    /// closed streams.
    async fn flush(&mut self) {
        let now = std::time::Instant::now();
        let mut closed = Vec::new();
        for (id, e) in self.streams.iter_mut() {
            while let Some(p) = e.core.poll_transmit(now) {
                if let Some(to) = e.remote {
                    if let Err(err) = self.socket.send_to(&p, to).await {
                        tracing::debug!("udx send to {to}: {err}");
                    }
                }
            }
            while let Some(ev) = e.core.poll_event() {
                let _ = e.events.send(ev);
            }
            if e.core.buffered() < HIGH_WATERMARK || e.core.is_closed() {
                for w in e.waiting.drain(..) {
                    let _ = w.send(());
                }
            }
            if e.core.is_closed() {
                closed.push(*id);
            }
        }
        for id in closed {
            self.streams.remove(&id);
        }
    }
}
