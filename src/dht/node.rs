//! A dht-rpc 6.27.0 node as a sans-IO state machine (`lib/io.js`, `index.js`): datagrams and
//! time in; datagrams, events and a timer out. It answers dht-rpc's own commands, keeps the
//! routing table, sends requests with retries, and runs iterative lookups.
//!
//! - Requests it answers: PING, PING_NAT (to the port asked), FIND_NODE (closer nodes),
//!   DOWN_HINT, DELAYED_PING (at most 10 s, at most [`MAX_DELAYED`] pending). Of hyperdht's
//!   commands a persistent node serves records and values from its [`Store`] (FIND_PEER,
//!   LOOKUP, ANNOUNCE, UNANNOUNCE, MUTABLE_PUT/GET, IMMUTABLE_PUT/GET); plugins, and every one
//!   on an ephemeral node, are answered `UNKNOWN_COMMAND`, as an ephemeral JS node does. A request
//!   whose token is not one we issued to its address gets `INVALID_TOKEN`.
//! - Replies carry our id when we are persistent ([`NodeConfig::id`]), the closer nodes when
//!   the request has a target, and (for `INVALID_TOKEN`; later hyperdht's commands) a token for
//!   the requester's address: BLAKE2b-256 of its host as text, keyed with a secret that rotates
//!   every [`TOKEN_ROTATION`] (the previous one still counts), as dht-rpc. dht-rpc's own
//!   commands are answered without a token, as JS does.
//! - Requests it sends time out after [`REQUEST_TIMEOUT`] and are sent [`RETRIES`] more times;
//!   a node that never answers leaves the table.
//! - Only nodes whose id is the hash of the address they answer from enter the table.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use super::messages::command as hyperdht;
use super::rpc::{command, error, node_id, Message, Request, Response};
use super::store::{PutOutcome, Store};
use super::table::{distance, Added, Node, Table, K};
use crate::hypercore::encoding::Decoder;
use crate::net::noise::keyed_hash32;

/// How long a request waits for its response before it is sent again: 1 s (dht-rpc's).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// Times a request is sent again before it fails: 3 (dht-rpc's `retries`).
pub const RETRIES: u32 = 3;
/// How often the token secret rotates: 7.5 s (dht-rpc: 10 ticks of 750 ms).
pub const TOKEN_ROTATION: Duration = Duration::from_millis(7_500);
/// Requests a lookup keeps in flight: 10 (dht-rpc's query concurrency).
pub const CONCURRENCY: usize = 10;
/// Most DELAYED_PING answers pending at once; more are dropped.
pub const MAX_DELAYED: usize = 64;
/// Longest DELAYED_PING delay honoured: 10 s (dht-rpc's `maxPingDelay`).
pub const MAX_PING_DELAY: Duration = Duration::from_secs(10);
/// Most requests of ours in flight at once (dht-rpc's congestion window allows 160).
pub const MAX_INFLIGHT: usize = 160;

/// How a [`RpcNode`] runs.
#[derive(Debug, Clone, Default)]
pub struct NodeConfig {
    /// Our id, when persistent: the hash of the address others reach us at
    /// ([`node_id`]). `None`: ephemeral (no id sent; others keep us out of their tables).
    pub id: Option<[u8; 32]>,
    /// 64 random bytes: the two token secrets.
    pub secrets: [[u8; 32]; 2],
}

/// An id of one of our lookups.
pub type QueryId = u64;

/// A lookup's answer from one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The node (id verified).
    pub node: Node,
    /// Its response.
    pub response: Response,
}

/// What the node reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// The response to a request of ours sent with [`RpcNode::request`].
    Response {
        /// The request's tid.
        tid: u16,
        /// Who answered.
        from: SocketAddrV4,
        /// The response.
        response: Response,
    },
    /// A request of ours went unanswered through every retry.
    Timeout {
        /// The request's tid.
        tid: u16,
        /// Where it went.
        to: SocketAddrV4,
    },
    /// A lookup finished: the closest nodes that answered, closest first (at most [`K`]).
    QueryDone {
        /// The lookup.
        query: QueryId,
        /// Their replies.
        closest: Vec<Reply>,
    },
}

/// How a request is answered: `error` (0 none), `value`, a fresh `token` for the requester,
/// and the `closer` nodes to the target.
#[derive(Debug, Clone)]
struct Answer {
    error: u64,
    value: Option<Vec<u8>>,
    token: bool,
    closer: bool,
}

impl Default for Answer {
    /// A plain answer: no error, value or token; closer nodes when there is a target.
    fn default() -> Self {
        Answer {
            error: 0,
            value: None,
            token: false,
            closer: true,
        }
    }
}

impl Answer {
    fn error(code: u64) -> Answer {
        Answer {
            error: code,
            ..Answer::default()
        }
    }
}

/// A request to send ([`RpcNode::request`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Where to.
    pub to: SocketAddrV4,
    /// A dht-rpc command ([`command`]) rather than an application one.
    pub internal: bool,
    /// The command number.
    pub command: u64,
    /// The key it is about.
    pub target: Option<[u8; 32]>,
    /// Its argument.
    pub value: Option<Vec<u8>>,
    /// A token `to` gave us (writes need one).
    pub token: Option<[u8; 32]>,
}

impl Outgoing {
    /// dht-rpc's own `command` (PING, FIND_NODE...) to `to`, with no target, value or token.
    pub fn internal(to: SocketAddrV4, command: u64) -> Outgoing {
        Outgoing {
            to,
            internal: true,
            command,
            target: None,
            value: None,
            token: None,
        }
    }
}

/// What a request of ours is for.
#[derive(Debug, Clone, Copy)]
enum Purpose {
    User,
    Query(QueryId),
}

#[derive(Debug)]
struct Inflight {
    to: SocketAddrV4,
    bytes: Vec<u8>,
    sent_at: Instant,
    retries: u32,
    purpose: Purpose,
}

/// An iterative lookup toward `target`.
#[derive(Debug)]
struct Query {
    target: [u8; 32],
    command: u64,
    internal: bool,
    value: Option<Vec<u8>>,
    /// Addresses to ask, with the id their address implies; asked or not.
    candidates: Vec<([u8; 32], SocketAddrV4, bool)>,
    inflight: usize,
    replies: Vec<Reply>,
}

/// A dht-rpc node (see the module docs).
#[derive(Debug)]
pub struct RpcNode {
    config: NodeConfig,
    table: Table,
    secrets: [[u8; 32]; 2],
    rotated_at: Option<Instant>,
    next_tid: u16,
    inflight: HashMap<u16, Inflight>,
    queries: HashMap<QueryId, Query>,
    next_query: QueryId,
    delayed: Vec<(Instant, SocketAddrV4, Vec<u8>)>,
    transmits: VecDeque<(SocketAddrV4, Vec<u8>)>,
    events: VecDeque<NodeEvent>,
    /// What others announced here (persistent nodes only).
    store: Store,
    /// The clock's origin for [`Node::seen_ms`].
    epoch: Instant,
}

impl RpcNode {
    /// A node started at `now`; `table_id` places its routing table (our id when persistent,
    /// else random); `first_tid` is the first transaction id (random, as dht-rpc).
    pub fn new(now: Instant, config: NodeConfig, table_id: [u8; 32], first_tid: u16) -> RpcNode {
        RpcNode {
            store: Store::default(),
            epoch: now,
            table: Table::new(config.id.unwrap_or(table_id)),
            secrets: config.secrets,
            config,
            rotated_at: None,
            next_tid: first_tid,
            inflight: HashMap::new(),
            queries: HashMap::new(),
            next_query: 0,
            delayed: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The routing table.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The token for `addr`'s host under secret `i` (0 current, 1 previous).
    fn token(&self, addr: &SocketAddrV4, i: usize) -> [u8; 32] {
        keyed_hash32(&self.secrets[i], &[addr.ip().to_string().as_bytes()])
    }

    /// Handles one datagram from `from`. Datagrams that are not dht-rpc are ignored.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddrV4, bytes: &[u8]) {
        self.rotate(now);
        match Message::decode(bytes) {
            Ok(Message::Request(r)) => self.on_request(now, from, r),
            Ok(Message::Response(r)) => self.on_response(now, from, r),
            Err(_) => {}
        }
    }

    fn rotate(&mut self, now: Instant) {
        match self.rotated_at {
            None => self.rotated_at = Some(now),
            Some(at) if now.saturating_duration_since(at) >= TOKEN_ROTATION => {
                self.secrets[1] = self.secrets[0];
                self.secrets[0] = keyed_hash32(&self.secrets[0], &[b"rotate"]);
                self.rotated_at = Some(now);
            }
            Some(_) => {}
        }
    }

    /// Adds `from` to the table when `id` is the hash of its address.
    fn learn(&mut self, now: Instant, from: SocketAddrV4, id: Option<[u8; 32]>) {
        if let Some(id) = id.filter(|id| *id == node_id(&from)) {
            let seen_ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
            let _: Added = self.table.add(Node {
                id,
                addr: from,
                seen_ms,
            });
        }
    }

    fn on_request(&mut self, now: Instant, from: SocketAddrV4, r: Request) {
        if let Some(token) = r.token {
            if token != self.token(&from, 0) && token != self.token(&from, 1) {
                // With a fresh token, as dht-rpc, so that the requester can retry.
                let answer = Answer {
                    token: true,
                    ..Answer::error(error::INVALID_TOKEN)
                };
                self.reply(from, &r, answer);
                return;
            }
        }
        self.learn(now, from, r.id);
        if !r.internal {
            self.on_app_request(now, from, r);
            return;
        }
        match r.command {
            command::PING | command::FIND_NODE | command::DOWN_HINT => {
                self.reply(from, &r, Answer::default())
            }
            command::PING_NAT => {
                let port = r
                    .value
                    .as_deref()
                    .filter(|v| v.len() >= 2)
                    .map(|v| u16::from_le_bytes([v[0], v[1]]));
                if let Some(port) = port.filter(|p| *p != 0) {
                    self.reply(SocketAddrV4::new(*from.ip(), port), &r, Answer::default());
                }
            }
            command::DELAYED_PING => {
                let ms = r
                    .value
                    .as_deref()
                    .filter(|v| v.len() >= 4)
                    .map(|v| u32::from_le_bytes([v[0], v[1], v[2], v[3]]));
                let delay = Duration::from_millis(u64::from(ms.unwrap_or(0)));
                if delay <= MAX_PING_DELAY && self.delayed.len() < MAX_DELAYED {
                    let bytes = self.response(from, &r, Answer::default());
                    self.delayed.push((now + delay, from, bytes));
                }
            }
            _ => self.reply(from, &r, Answer::error(error::UNKNOWN_COMMAND)),
        }
    }

    /// hyperdht's commands: a persistent node serves its storage ones from the [`Store`];
    /// anything else, or an ephemeral node, answers `UNKNOWN_COMMAND`, as hyperdht does. A
    /// write without a target or token, or that does not verify, gets no answer (as JS).
    fn on_app_request(&mut self, now: Instant, from: SocketAddrV4, r: Request) {
        let (Some(id), Some(target)) = (self.config.id, r.target) else {
            self.reply(from, &r, Answer::error(error::UNKNOWN_COMMAND));
            return;
        };
        let read = |value| Answer {
            value,
            token: true,
            ..Answer::default()
        };
        match r.command {
            hyperdht::FIND_PEER => {
                let value = self.store.find_peer(now, &target);
                self.reply(from, &r, read(value));
            }
            hyperdht::LOOKUP => {
                let value = self.store.lookup(now, &target);
                self.reply(from, &r, read(value));
            }
            hyperdht::ANNOUNCE | hyperdht::UNANNOUNCE => {
                let (Some(token), Some(value)) = (r.token, r.value.as_deref()) else {
                    return;
                };
                let add = r.command == hyperdht::ANNOUNCE;
                if self
                    .store
                    .announce(now, add, &target, &id, &token, from, value)
                    .is_ok()
                {
                    let done = Answer {
                        closer: false,
                        ..Answer::default()
                    };
                    self.reply(from, &r, done);
                }
            }
            hyperdht::MUTABLE_GET => {
                let Some(seq) = r.value.as_deref().and_then(|v| Decoder::new(v).uint().ok()) else {
                    return;
                };
                let value = self.store.mutable_get(now, &target, seq);
                self.reply(from, &r, read(value));
            }
            hyperdht::IMMUTABLE_GET => {
                let value = self.store.immutable_get(now, &target);
                self.reply(from, &r, read(value));
            }
            hyperdht::MUTABLE_PUT | hyperdht::IMMUTABLE_PUT => {
                let (Some(_token), Some(value)) = (r.token, r.value.as_deref()) else {
                    return;
                };
                let outcome = if r.command == hyperdht::MUTABLE_PUT {
                    self.store.mutable_put(now, &target, value)
                } else if self.store.immutable_put(now, &target, value) {
                    PutOutcome::Stored
                } else {
                    PutOutcome::Ignored
                };
                match outcome {
                    PutOutcome::Stored => self.reply(from, &r, read(None)),
                    PutOutcome::Refused(code) => self.reply(from, &r, Answer::error(code)),
                    PutOutcome::Ignored => {}
                }
            }
            _ => self.reply(from, &r, Answer::error(error::UNKNOWN_COMMAND)),
        }
    }

    /// Our response to `r` from `to`.
    fn response(&self, to: SocketAddrV4, r: &Request, answer: Answer) -> Vec<u8> {
        let Answer {
            error,
            value,
            token,
            closer,
        } = answer;
        // As dht-rpc: closer nodes whenever the request has a target (errors included), unless
        // the handler says not (hyperdht's writes).
        let closer_nodes = match (&r.target, closer) {
            (Some(t), true) => self.table.closest(t, K).iter().map(|n| n.addr).collect(),
            _ => Vec::new(),
        };
        Response {
            tid: r.tid,
            to,
            id: self.config.id,
            token: token.then(|| self.token(&to, 0)),
            closer_nodes,
            error,
            value,
        }
        .encode()
    }

    fn reply(&mut self, to: SocketAddrV4, r: &Request, answer: Answer) {
        let bytes = self.response(to, r, answer);
        self.transmits.push_back((to, bytes));
    }

    fn on_response(&mut self, now: Instant, from: SocketAddrV4, r: Response) {
        // Matched by tid alone, as dht-rpc (a relayed reply comes from another node).
        let Some(req) = self.inflight.remove(&r.tid) else {
            return;
        };
        self.learn(now, from, r.id);
        match req.purpose {
            Purpose::User => self.events.push_back(NodeEvent::Response {
                tid: r.tid,
                from,
                response: r,
            }),
            Purpose::Query(q) => self.on_query_reply(now, q, from, r),
        }
    }

    /// Sends `req`; its response or timeout comes as an event with the returned tid. `None`
    /// when [`MAX_INFLIGHT`] requests are already in flight.
    pub fn request(&mut self, now: Instant, req: Outgoing) -> Option<u16> {
        self.send(now, req, Purpose::User)
    }

    fn send(&mut self, now: Instant, req: Outgoing, purpose: Purpose) -> Option<u16> {
        if self.inflight.len() >= MAX_INFLIGHT {
            return None;
        }
        let mut tid = self.next_tid;
        while self.inflight.contains_key(&tid) {
            tid = tid.wrapping_add(1);
        }
        self.next_tid = tid.wrapping_add(1);
        let to = req.to;
        let bytes = Request {
            tid,
            to,
            id: self.config.id,
            token: req.token,
            internal: req.internal,
            command: req.command,
            target: req.target,
            value: req.value,
        }
        .encode();
        self.transmits.push_back((to, bytes.clone()));
        self.inflight.insert(
            tid,
            Inflight {
                to,
                bytes,
                sent_at: now,
                retries: 0,
                purpose,
            },
        );
        Some(tid)
    }

    /// Starts an iterative lookup of `target` with `command` (FIND_NODE, internal, for a plain
    /// node lookup), from the table's closest nodes and `seeds` (e.g. bootstrap nodes).
    pub fn query(
        &mut self,
        now: Instant,
        target: [u8; 32],
        internal: bool,
        command: u64,
        value: Option<Vec<u8>>,
        seeds: &[SocketAddrV4],
    ) -> QueryId {
        let id = self.next_query;
        self.next_query += 1;
        let mut candidates: Vec<([u8; 32], SocketAddrV4, bool)> = self
            .table
            .closest(&target, K)
            .iter()
            .map(|n| (n.id, n.addr, false))
            .collect();
        for s in seeds {
            if !candidates.iter().any(|c| c.1 == *s) {
                candidates.push((node_id(s), *s, false));
            }
        }
        self.queries.insert(
            id,
            Query {
                target,
                command,
                internal,
                value,
                candidates,
                inflight: 0,
                replies: Vec::new(),
            },
        );
        self.advance(now, id);
        id
    }

    fn on_query_reply(&mut self, now: Instant, q: QueryId, from: SocketAddrV4, r: Response) {
        let own = self.config.id;
        let Some(query) = self.queries.get_mut(&q) else {
            return;
        };
        query.inflight -= 1;
        for addr in &r.closer_nodes {
            // Not ourselves (a persistent node knows its id), not twice.
            if own != Some(node_id(addr)) && !query.candidates.iter().any(|c| c.1 == *addr) {
                query.candidates.push((node_id(addr), *addr, false));
            }
        }
        if let Some(id) = r.id.filter(|id| *id == node_id(&from)) {
            let node = Node {
                id,
                addr: from,
                seen_ms: 0,
            };
            query.replies.push(Reply { node, response: r });
            let target = query.target;
            query
                .replies
                .sort_by_key(|reply| distance(&reply.node.id, &target));
            query.replies.truncate(K);
        }
        self.advance(now, q);
    }

    /// Sends the query's next requests, or finishes it.
    fn advance(&mut self, now: Instant, q: QueryId) {
        let Some(query) = self.queries.get_mut(&q) else {
            return;
        };
        let target = query.target;
        query.candidates.sort_by_key(|c| distance(&c.0, &target));
        // Stop at the K-th reply: nothing further out is worth asking.
        let bound =
            (query.replies.len() >= K).then(|| distance(&query.replies[K - 1].node.id, &target));
        let mut next = Vec::new();
        for c in query.candidates.iter_mut() {
            if query.inflight + next.len() >= CONCURRENCY {
                break;
            }
            if c.2 || bound.is_some_and(|b| distance(&c.0, &target) >= b) {
                continue;
            }
            c.2 = true;
            next.push(c.1);
        }
        let (internal, command, value) = (query.internal, query.command, query.value.clone());
        for to in next {
            let req = Outgoing {
                to,
                internal,
                command,
                target: Some(target),
                value: value.clone(),
                token: None,
            };
            if self.send(now, req, Purpose::Query(q)).is_some() {
                if let Some(query) = self.queries.get_mut(&q) {
                    query.inflight += 1;
                }
            }
        }
        if self
            .queries
            .get(&q)
            .is_some_and(|query| query.inflight == 0)
        {
            let query = self.queries.remove(&q).expect("present");
            self.events.push_back(NodeEvent::QueryDone {
                query: q,
                closest: query.replies,
            });
        }
    }

    /// Handles timers: retries, failed requests, delayed pings.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.rotate(now);
        let due: Vec<u16> = self
            .inflight
            .iter()
            .filter(|(_, r)| now.saturating_duration_since(r.sent_at) >= REQUEST_TIMEOUT)
            .map(|(tid, _)| *tid)
            .collect();
        for tid in due {
            let req = self.inflight.get_mut(&tid).expect("listed");
            if req.retries < RETRIES {
                req.retries += 1;
                req.sent_at = now;
                self.transmits.push_back((req.to, req.bytes.clone()));
                continue;
            }
            let req = self.inflight.remove(&tid).expect("listed");
            self.table.remove(&node_id(&req.to));
            match req.purpose {
                Purpose::User => self
                    .events
                    .push_back(NodeEvent::Timeout { tid, to: req.to }),
                Purpose::Query(q) => {
                    if let Some(query) = self.queries.get_mut(&q) {
                        query.inflight -= 1;
                    }
                    self.advance(now, q);
                }
            }
        }
        let (ready, later): (Vec<_>, Vec<_>) =
            self.delayed.drain(..).partition(|(at, _, _)| *at <= now);
        self.delayed = later;
        self.transmits
            .extend(ready.into_iter().map(|(_, to, bytes)| (to, bytes)));
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddrV4, Vec<u8>)> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<NodeEvent> {
        self.events.pop_front()
    }

    /// When [`RpcNode::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let retries = self.inflight.values().map(|r| r.sent_at + REQUEST_TIMEOUT);
        let delayed = self.delayed.iter().map(|(at, _, _)| *at);
        retries.chain(delayed).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddrV4 {
        SocketAddrV4::new([127, 0, 0, 1].into(), port)
    }

    fn persistent(now: Instant, port: u16) -> RpcNode {
        let config = NodeConfig {
            id: Some(node_id(&addr(port))),
            secrets: [[port as u8; 32], [1; 32]],
        };
        RpcNode::new(now, config, [0; 32], port)
    }

    /// Delivers every datagram among `nodes` (by port) until none is left.
    fn pump(now: Instant, nodes: &mut [(u16, RpcNode)]) {
        for _ in 0..10_000 {
            let mut moved = false;
            for i in 0..nodes.len() {
                let from = addr(nodes[i].0);
                while let Some((to, bytes)) = nodes[i].1.poll_transmit() {
                    moved = true;
                    if let Some(j) = nodes.iter().position(|(p, _)| *p == to.port()) {
                        nodes[j].1.handle_datagram(now, from, &bytes);
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("did not settle");
    }

    #[test]
    fn a_lookup_walks_from_one_seed_to_every_node_and_fills_the_tables() {
        let now = Instant::now();
        let mut nodes: Vec<(u16, RpcNode)> = (1..=6).map(|p| (p, persistent(now, p))).collect();
        // Each node knows only the next one.
        for i in 0..5 {
            let next = addr(nodes[i + 1].0);
            nodes[i]
                .1
                .request(now, Outgoing::internal(next, command::PING));
        }
        pump(now, &mut nodes);
        let q = nodes[0]
            .1
            .query(now, [0x42; 32], true, command::FIND_NODE, None, &[]);
        pump(now, &mut nodes);
        let events: Vec<NodeEvent> = std::iter::from_fn(|| nodes[0].1.poll_event()).collect();
        let done = events.iter().find_map(|e| match e {
            NodeEvent::QueryDone { query, closest } if *query == q => Some(closest),
            _ => None,
        });
        let found: Vec<u16> = done
            .expect("finished")
            .iter()
            .map(|r| r.node.addr.port())
            .collect();
        assert_eq!(found.len(), 5, "every other node: {found:?}");
        assert!(!found.contains(&1), "not ourselves");
        assert_eq!(nodes[0].1.table().len(), 5);
    }

    #[test]
    fn tokens_are_checked_and_unanswered_requests_time_out_after_every_retry() {
        let mut now = Instant::now();
        let mut a = persistent(now, 1);
        let req = |token| Request {
            tid: 9,
            to: addr(1),
            id: None,
            token: Some(token),
            internal: true,
            command: command::PING,
            target: None,
            value: None,
        };
        for (token, ok) in [(a.token(&addr(2), 0), true), ([7; 32], false)] {
            a.handle_datagram(now, addr(2), &req(token).encode());
            let (to, bytes) = a.poll_transmit().unwrap();
            let Ok(Message::Response(r)) = Message::decode(&bytes) else {
                panic!()
            };
            assert_eq!(to, addr(2));
            assert_eq!(r.error == error::INVALID_TOKEN, !ok, "{r:?}");
        }
        let tid = a
            .request(now, Outgoing::internal(addr(3), command::PING))
            .unwrap();
        let mut sends = 0;
        while a.poll_event().is_none() {
            while a.poll_transmit().is_some() {
                sends += 1;
            }
            now = a.poll_timeout().expect("a retry is due");
            a.handle_timeout(now);
        }
        assert_eq!(sends, 1 + RETRIES as usize);
        let _ = tid;
    }
}
