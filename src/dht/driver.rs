//! The tokio driver of an [`RpcNode`]: one task owns a UDP socket and the node, feeds it
//! datagrams and time, and sends what it produces. [`DhtNode`] is the handle.

use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4};

use rand::RngCore;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::node::{NodeConfig, NodeEvent, Outgoing, QueryId, Reply, RpcNode};
use super::rpc::{command, node_id, Response};
use super::table::Node;

/// Largest datagram read.
const MAX_DATAGRAM: usize = 4096;

/// Why a DHT call failed.
#[derive(Debug, thiserror::Error)]
pub enum DhtError {
    /// The socket could not be bound.
    #[error("cannot bind the DHT socket: {0}")]
    Bind(#[source] std::io::Error),
    /// Only IPv4 is supported (as dht-rpc's `ipv4` addresses).
    #[error("the DHT speaks IPv4 only; {0} is not")]
    NotIpv4(SocketAddr),
    /// The node asked did not answer through every retry.
    #[error("{0} did not answer")]
    Timeout(SocketAddrV4),
    /// Too many requests in flight.
    #[error("too many requests in flight")]
    Busy,
    /// The node's task is gone.
    #[error("the DHT node stopped")]
    Stopped,
}

enum Command {
    Ping {
        to: SocketAddrV4,
        reply: oneshot::Sender<Result<Response, DhtError>>,
    },
    FindNode {
        target: [u8; 32],
        seeds: Vec<SocketAddrV4>,
        reply: oneshot::Sender<Vec<Reply>>,
    },
    Table {
        reply: oneshot::Sender<Vec<Node>>,
    },
}

/// A running dht-rpc node (see [`super::node`]). Dropping every handle stops it.
#[derive(Clone)]
pub struct DhtNode {
    commands: mpsc::UnboundedSender<Command>,
    local_addr: SocketAddrV4,
    id: Option<[u8; 32]>,
}

impl DhtNode {
    /// Binds `addr` (IPv4) and starts a node. `public_ip`: be persistent, with the id of
    /// `public_ip` and the bound port (others must reach us at exactly that address: a public
    /// IP, a private network, loopback); `None`: ephemeral. `bootstrap`: nodes to look
    /// ourselves up from at once (joining the network; empty for the first node of a private
    /// network). Requires a tokio runtime.
    ///
    /// Errors: [`DhtError::Bind`], [`DhtError::NotIpv4`].
    pub async fn bind(
        addr: SocketAddr,
        public_ip: Option<std::net::Ipv4Addr>,
        bootstrap: &[SocketAddrV4],
    ) -> Result<DhtNode, DhtError> {
        let SocketAddr::V4(_) = addr else {
            return Err(DhtError::NotIpv4(addr));
        };
        let socket = UdpSocket::bind(addr).await.map_err(DhtError::Bind)?;
        let local = match socket.local_addr().map_err(DhtError::Bind)? {
            SocketAddr::V4(a) => a,
            other => return Err(DhtError::NotIpv4(other)),
        };
        let mut rng = rand::rngs::OsRng;
        let mut secrets = [[0u8; 32]; 2];
        rng.fill_bytes(&mut secrets[0]);
        rng.fill_bytes(&mut secrets[1]);
        let mut table_id = [0u8; 32];
        rng.fill_bytes(&mut table_id);
        let id = public_ip.map(|ip| node_id(&SocketAddrV4::new(ip, local.port())));
        let now = std::time::Instant::now();
        let mut node = RpcNode::new(
            now,
            NodeConfig { id, secrets },
            table_id,
            rng.next_u32() as u16,
        );
        if !bootstrap.is_empty() {
            let target = id.unwrap_or(table_id);
            node.query(now, target, true, command::FIND_NODE, None, bootstrap);
        }
        let (commands, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(socket, node, rx));
        Ok(DhtNode {
            commands,
            local_addr: local,
            id,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.local_addr
    }

    /// Our id, when persistent.
    pub fn id(&self) -> Option<[u8; 32]> {
        self.id
    }

    /// Pings `to`; its response (its id, our address as it sees it, a token).
    ///
    /// Errors: [`DhtError::Timeout`], [`DhtError::Busy`], [`DhtError::Stopped`].
    pub async fn ping(&self, to: SocketAddrV4) -> Result<Response, DhtError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Ping { to, reply })
            .map_err(|_| DhtError::Stopped)?;
        rx.await.map_err(|_| DhtError::Stopped)?
    }

    /// An iterative FIND_NODE lookup of `target` from the table and `seeds`: the closest
    /// nodes that answered, closest first.
    ///
    /// Errors: [`DhtError::Stopped`].
    pub async fn find_node(
        &self,
        target: [u8; 32],
        seeds: &[SocketAddrV4],
    ) -> Result<Vec<Reply>, DhtError> {
        let (reply, rx) = oneshot::channel();
        let seeds = seeds.to_vec();
        self.commands
            .send(Command::FindNode {
                target,
                seeds,
                reply,
            })
            .map_err(|_| DhtError::Stopped)?;
        rx.await.map_err(|_| DhtError::Stopped)
    }

    /// The nodes in the routing table now.
    ///
    /// Errors: [`DhtError::Stopped`].
    pub async fn table(&self) -> Result<Vec<Node>, DhtError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Table { reply })
            .map_err(|_| DhtError::Stopped)?;
        rx.await.map_err(|_| DhtError::Stopped)
    }
}

/// The node's task.
async fn run(socket: UdpSocket, mut node: RpcNode, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut pings: HashMap<u16, oneshot::Sender<Result<Response, DhtError>>> = HashMap::new();
    let mut lookups: HashMap<QueryId, oneshot::Sender<Vec<Reply>>> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        while let Some((to, bytes)) = node.poll_transmit() {
            if let Err(e) = socket.send_to(&bytes, to).await {
                tracing::debug!("dht send to {to}: {e}");
            }
        }
        while let Some(event) = node.poll_event() {
            match event {
                NodeEvent::Response { tid, response, .. } => {
                    if let Some(p) = pings.remove(&tid) {
                        let _ = p.send(Ok(response));
                    }
                }
                NodeEvent::Timeout { tid, to } => {
                    if let Some(p) = pings.remove(&tid) {
                        let _ = p.send(Err(DhtError::Timeout(to)));
                    }
                }
                NodeEvent::QueryDone { query, closest } => {
                    if let Some(l) = lookups.remove(&query) {
                        let _ = l.send(closest);
                    }
                }
            }
        }
        let timeout = node.poll_timeout().map(Instant::from_std);
        let sleep = async {
            match timeout {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, SocketAddr::V4(from))) => {
                    node.handle_datagram(std::time::Instant::now(), from, &buf[..n]);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!("dht recv: {e}"),
            },
            c = commands.recv() => {
                let now = std::time::Instant::now();
                match c {
                    None => return,
                    Some(Command::Ping { to, reply }) => {
                        match node.request(now, Outgoing::internal(to, command::PING)) {
                            Some(tid) => { pings.insert(tid, reply); }
                            None => { let _ = reply.send(Err(DhtError::Busy)); }
                        }
                    }
                    Some(Command::FindNode { target, seeds, reply }) => {
                        let q = node.query(now, target, true, command::FIND_NODE, None, &seeds);
                        lookups.insert(q, reply);
                    }
                    Some(Command::Table { reply }) => {
                        let _ = reply.send(node.table().nodes().copied().collect());
                    }
                }
            }
            _ = sleep => node.handle_timeout(std::time::Instant::now()),
        }
    }
}
