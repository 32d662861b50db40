//! The driver's side of gathering: resolving and dialing the ICE servers (a short task, so the
//! offer or answer is never held up by DNS), the TCP streams to TURN servers, sending what the
//! [`Gatherer`](crate::rtc::gather::Gatherer) asks for, and turning what it finds into local
//! candidates (added to str0m and trickled to the application).

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant};

use str0m::Candidate;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::Driver;
use crate::ice::{IceServer, IceTransport};
use crate::rtc::gather::{GatherEvent, Out, ServerTarget, MAX_ALLOCATIONS};

/// Most URLs resolved and used per connection, over all servers.
const MAX_URLS: usize = 8;

/// Longest wait for one DNS lookup or TCP connect to an ICE server.
const DIAL_TIMEOUT: Duration = Duration::from_secs(3);

/// Most reasons kept for why servers gave nothing.
const MAX_FAILURES_KEPT: usize = 4;

/// Dialed servers, in batches: where to send, and the TCP streams to TURN servers.
pub(crate) struct Dialed {
    pub targets: Vec<ServerTarget>,
    pub streams: Vec<TcpStream>,
    /// URLs that could not be used, with why.
    pub failures: Vec<String>,
    /// No batch follows.
    pub last: bool,
}

/// A TCP stream to a TURN server.
pub(crate) struct TcpLink {
    stream: TcpStream,
    local: SocketAddr,
}

/// Resolves every `stun:`/`turn:` URL of `servers` (names with the system resolver, keeping
/// addresses of a family some host socket has) and sends the UDP ones at once, then connects
/// TCP for `?transport=tcp` and sends those: a TCP connect (one round trip to the server) must
/// not hold up the server-reflexive and UDP-relayed candidates, which the other side's checks
/// wait for. TLS URLs (`stuns:`, `turns:`) are skipped: not supported.
pub(crate) fn spawn_dial(
    servers: Vec<IceServer>,
    hosts: &[SocketAddr],
    timeout: Duration,
) -> mpsc::Receiver<Dialed> {
    let (tx, rx) = mpsc::channel(2);
    let (v4, v6) = (
        hosts.iter().any(|h| h.is_ipv4()),
        hosts.iter().any(|h| h.is_ipv6()),
    );
    let per_step = timeout.min(DIAL_TIMEOUT);
    tokio::spawn(async move {
        let mut urls = Vec::new();
        let mut failures = Vec::new();
        for s in servers.iter().take(crate::ice::server::MAX_ICE_SERVERS) {
            match s.parsed_urls() {
                Ok(list) => urls.extend(list.into_iter().map(|u| (u, s))),
                Err(e) => failures.push(format!("ICE server skipped: {e}")),
            }
        }
        urls.retain(|(u, _)| {
            let tls = u.scheme.is_tls();
            if tls {
                failures.push(format!("{u}: TLS (stuns:/turns:) is not supported"));
            }
            !tls
        });
        urls.truncate(MAX_URLS);
        let lookups = urls.into_iter().map(|(url, server)| async move {
            let found = tokio::time::timeout(per_step, tokio::net::lookup_host(url.authority()))
                .await
                .map_err(|_| format!("{url}: DNS lookup timed out"))?
                .map_err(|e| format!("{url}: {e}"))?
                .find(|a| (a.is_ipv4() && v4) || (a.is_ipv6() && v6))
                .ok_or_else(|| format!("{url}: no address of a family we have"))?;
            let turn = url.scheme.is_turn().then(|| {
                (
                    server.username.clone().unwrap_or_default(),
                    server.credential.clone().unwrap_or_default(),
                )
            });
            let tcp = turn.is_some() && url.transport == IceTransport::Tcp;
            Ok::<_, String>((url, found, turn, tcp))
        });
        let mut udp = Dialed {
            targets: Vec::new(),
            streams: Vec::new(),
            failures,
            last: false,
        };
        let mut tcp = Vec::new();
        for r in futures_util::future::join_all(lookups).await {
            match r {
                Ok((url, addr, turn, true)) => tcp.push((url, addr, turn)),
                Ok((_, addr, turn, false)) => udp.targets.push(ServerTarget {
                    addr,
                    turn,
                    tcp_local: None,
                }),
                Err(e) => udp.failures.push(e),
            }
        }
        udp.last = tcp.is_empty();
        if tx.send(udp).await.is_err() || tcp.is_empty() {
            return;
        }
        let connects = tcp.into_iter().map(|(url, addr, turn)| async move {
            let s = tokio::time::timeout(per_step, TcpStream::connect(addr))
                .await
                .map_err(|_| format!("{url}: TCP connect timed out"))?
                .map_err(|e| format!("{url}: TCP connect: {e}"))?;
            let _ = s.set_nodelay(true);
            Ok::<_, String>((addr, turn, s))
        });
        let mut streams = Dialed {
            targets: Vec::new(),
            streams: Vec::new(),
            failures: Vec::new(),
            last: true,
        };
        for r in futures_util::future::join_all(connects).await {
            match r {
                Ok((addr, turn, s)) => {
                    let Ok(local) = s.local_addr() else { continue };
                    if streams.streams.len() >= MAX_ALLOCATIONS {
                        continue;
                    }
                    streams.streams.push(s);
                    streams.targets.push(ServerTarget {
                        addr,
                        turn,
                        tcp_local: Some(local),
                    });
                }
                Err(e) => streams.failures.push(e),
            }
        }
        let _ = tx.send(streams).await;
    });
    rx
}

/// The next batch of dialed servers; the receiver is dropped after the last one (or when the
/// dialing task ended early).
pub(crate) async fn dialed(rx: &mut Option<mpsc::Receiver<Dialed>>) -> Option<Dialed> {
    let r = match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    };
    if r.as_ref().is_none_or(|d| d.last) {
        *rx = None;
    }
    r
}

/// Waits for bytes on any TCP stream: `(index, result)` with the byte count read into `buf`
/// (0 = closed).
pub(crate) async fn recv_tcp(links: &mut [TcpLink], buf: &mut [u8]) -> (usize, io::Result<usize>) {
    poll_fn(|cx| {
        for (i, l) in links.iter_mut().enumerate() {
            let mut rb = ReadBuf::new(buf);
            if let Poll::Ready(r) = Pin::new(&mut l.stream).poll_read(cx, &mut rb) {
                return Poll::Ready((i, r.map(|()| rb.filled().len())));
            }
        }
        Poll::Pending
    })
    .await
}

impl Driver {
    /// The servers are resolved: start gathering on them.
    pub(super) async fn on_dialed(&mut self, d: Option<Dialed>) {
        let Some(d) = d else {
            return;
        };
        for f in d.failures {
            self.gather_failed(f);
        }
        for stream in d.streams {
            if let Ok(local) = stream.local_addr() {
                self.tcp.push(TcpLink { stream, local });
            }
        }
        let now = Instant::now();
        if let Some(g) = &mut self.gather {
            g.start(&d.targets, &self.addrs, d.last, now);
        }
        self.pump_gather(now).await;
    }

    /// Bytes (or the end) on a TCP stream to a TURN server.
    pub(super) async fn on_tcp(&mut self, r: (usize, io::Result<usize>)) {
        let (i, res) = r;
        let now = Instant::now();
        let local = self.tcp[i].local;
        let n = match res {
            Ok(n) if n > 0 => n,
            other => {
                tracing::debug!("TURN TCP stream from {local} ended: {other:?}");
                self.tcp.remove(i);
                if let Some(g) = &mut self.gather {
                    g.stream_closed(local, now);
                }
                self.pump_gather(now).await;
                return;
            }
        };
        let relayed = match &mut self.gather {
            Some(g) => g.handle_stream(local, &self.tcp_buf[..n], now),
            None => Vec::new(),
        };
        self.pump_gather(now).await;
        for (relayed, peer, data) in relayed {
            self.receive(now, peer, relayed, &data).await;
        }
    }

    /// When the gatherer next wants time, never earlier than a millisecond from now (a client
    /// that keeps asking for `now` must not spin the task).
    pub(super) fn gather_timeout(&mut self) -> Option<Instant> {
        let now = Instant::now();
        let t = self.gather.as_mut()?.poll_timeout(now)?;
        Some(t.max(now + Duration::from_millis(1)))
    }

    pub(super) async fn gather_time(&mut self, now: Instant) {
        let Some(g) = &mut self.gather else {
            return;
        };
        g.handle_timeout(now);
        self.pump_gather(now).await;
    }

    /// Sends what the gatherer has for its servers and acts on what it found.
    pub(super) async fn pump_gather(&mut self, now: Instant) {
        loop {
            let Some(g) = &mut self.gather else {
                return;
            };
            if let Some(out) = g.poll_transmit(now) {
                self.send_out(out).await;
                continue;
            }
            let Some(ev) = g.poll_event() else {
                break;
            };
            self.on_gather_event(ev).await;
        }
        self.sdp_ready().await;
    }

    async fn on_gather_event(&mut self, ev: GatherEvent) {
        match ev {
            GatherEvent::Mapped { mapped, base } => {
                self.shared
                    .bindings_answered
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!("STUN: {base} is seen as {mapped}");
                if mapped != base && !self.relay_only {
                    if let Ok(c) = Candidate::server_reflexive(mapped, base, "udp") {
                        self.shared.srflx_found.fetch_add(1, Ordering::Relaxed);
                        self.add_local(c).await;
                    }
                }
            }
            GatherEvent::Relayed {
                relayed,
                local,
                server,
            } => {
                tracing::debug!("TURN: {relayed} relayed by {server} for {local}");
                if let Ok(c) = Candidate::relayed(relayed, local, "udp") {
                    self.shared.relayed_found.fetch_add(1, Ordering::Relaxed);
                    self.add_local(c).await;
                }
            }
            GatherEvent::StreamUnused(local) => {
                tracing::debug!("TURN over TCP from {local} not needed: UDP works");
                self.tcp.retain(|l| l.local != local);
            }
            GatherEvent::Failed(why) => {
                tracing::debug!("gathering: {why}");
                self.gather_failed(why);
            }
            GatherEvent::Done => {
                tracing::debug!("gathering done");
                // Closing the channel tells the application no more candidates come.
                self.cand_tx = None;
            }
        }
    }

    fn gather_failed(&mut self, why: String) {
        if self.gather_failures.len() >= MAX_FAILURES_KEPT {
            self.gather_failures.remove(0);
        }
        self.gather_failures.push(why);
    }

    /// Adds a gathered candidate to str0m and trickles it.
    async fn add_local(&mut self, c: Candidate) {
        let line = self
            .rtc
            .add_local_candidate(c)
            .map(|added| added.to_sdp_string());
        self.drain().await;
        if let (Some(line), Some(tx)) = (line, &self.cand_tx) {
            if tx.try_send(line).is_err() {
                tracing::debug!("a local candidate was not trickled: nobody reads them");
            }
        }
    }

    /// Deletes our TURN allocations on their servers as the connection ends (a Refresh with
    /// lifetime 0 each, sent once, not awaited), so a relay's quota and ports are freed at once.
    pub(super) async fn release_allocations(&mut self) {
        let now = Instant::now();
        let Some(g) = &mut self.gather else {
            return;
        };
        g.release(now);
        while let Some(out) = self.gather.as_mut().and_then(|g| g.poll_transmit(now)) {
            self.send_out(out).await;
        }
    }

    /// Sends one message to a server: a UDP datagram from a host socket, or on a TCP stream.
    pub(super) async fn send_out(&mut self, out: Out) {
        if !out.tcp {
            if let Some(idx) = self.addrs.iter().position(|a| *a == out.from) {
                let _ = self.send_udp(idx, &out.data, out.to).await;
            }
            return;
        }
        let Some(link) = self.tcp.iter_mut().find(|l| l.local == out.from) else {
            return;
        };
        match link.stream.write_all(&out.data).await {
            Ok(()) => {
                self.shared
                    .bytes_sent
                    .fetch_add(out.data.len() as u64, Ordering::Relaxed);
            }
            Err(e) => tracing::debug!("send to TURN server {} over TCP failed: {e}", out.to),
        }
    }

    /// A remote candidate (from the peer's description or trickled): to str0m once the remote
    /// description is applied, and to every TURN allocation as a permission.
    pub(super) async fn add_remote(&mut self, c: Candidate) {
        self.remote_kinds.insert(c.addr(), c.kind());
        if let Some(g) = &mut self.gather {
            g.add_remote(c.addr(), Instant::now());
        }
        if !self.negotiated {
            if self.early_remote.len() < crate::rtc::MAX_REMOTE_CANDIDATES {
                self.early_remote.push(c);
            }
            return;
        }
        self.rtc.add_remote_candidate(c);
        self.drain().await;
        self.pump_gather(Instant::now()).await;
    }
}
