//! The host's admission limits on connections that are not players yet: per source address
//! ([`MAX_UNADMITTED_PER_ADDRESS`], [`MAX_UNADMITTED_RELAYED`]), a total ([`MAX_CONNECTIONS`])
//! with eviction from the source holding the most, and the counters behind the one summary
//! warning per [`REFUSALS_REPORT_INTERVAL`] (docs/PROTOCOL.md, "What a host accepts from peers
//! it has not admitted").

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use tokio::task::AbortHandle;

use super::{
    MAX_CONNECTIONS, MAX_UNADMITTED_PER_ADDRESS, MAX_UNADMITTED_RELAYED, REFUSALS_REPORT_INTERVAL,
};

/// Where a connection comes from, for the per-source limits: an IPv4 address, an IPv6 /64
/// (one subscriber's usual allocation), or any relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Source {
    V4([u8; 4]),
    V6([u8; 8]),
    Relay,
}

impl Source {
    pub(super) fn of(addr: &SocketAddr) -> Source {
        match addr.ip() {
            IpAddr::V4(ip) => Source::V4(ip.octets()),
            IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4.octets()),
                None => {
                    let o = ip.octets();
                    Source::V6([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
                }
            },
        }
    }

    fn limit(self) -> usize {
        match self {
            Source::Relay => MAX_UNADMITTED_RELAYED,
            _ => MAX_UNADMITTED_PER_ADDRESS,
        }
    }
}

/// What the gate decided about a new connection.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Decision {
    /// Serve it.
    Accept,
    /// Serve it after closing this older unadmitted connection.
    Evict(u64),
    /// Its source already holds [`Source::limit`] unadmitted connections.
    RefusePerSource,
    /// Every slot is taken and its source holds as many as anyone.
    RefuseFull,
}

/// The connections that are not players yet (handshaking, signalling, readers), by source,
/// and the counters of what was refused: the host's defence against one client holding every
/// slot. Counts are reported as one warning every [`REFUSALS_REPORT_INTERVAL`].
#[derive(Default)]
pub(super) struct Gate {
    /// Unadmitted connections: id -> (source, abort handle).
    pub(super) open: HashMap<u64, (Source, Option<AbortHandle>)>,
    /// Unadmitted connection ids per source, oldest first.
    by_source: HashMap<Source, VecDeque<u64>>,
    refused_per_source: u64,
    refused_full: u64,
    evicted: u64,
    pub(super) failed_early: u64,
    pub(super) accept_errors: u64,
    pub(super) warnings: u32,
    pub(super) suppressed: u64,
}

impl Gate {
    pub(super) fn count(&self, source: Source) -> usize {
        self.by_source.get(&source).map_or(0, VecDeque::len)
    }

    /// Whether a new connection from `source` may be served while `total` are.
    pub(super) fn decide(&self, source: Source, total: usize) -> Decision {
        let mine = self.count(source);
        if mine >= source.limit() {
            return Decision::RefusePerSource;
        }
        if total < MAX_CONNECTIONS {
            return Decision::Accept;
        }
        let biggest = self
            .by_source
            .iter()
            .filter(|(_, ids)| !ids.is_empty())
            .max_by_key(|(_, ids)| ids.len());
        match biggest {
            Some((_, ids)) if ids.len() > mine + 1 => Decision::Evict(ids[0]),
            _ => Decision::RefuseFull,
        }
    }

    pub(super) fn track(&mut self, id: u64, source: Source, abort: Option<AbortHandle>) {
        self.open.insert(id, (source, abort));
        self.by_source.entry(source).or_default().push_back(id);
    }

    /// Stops counting `id` (it became a player, or ended); its abort handle if it was counted.
    pub(super) fn untrack(&mut self, id: u64) -> Option<Option<AbortHandle>> {
        let (source, abort) = self.open.remove(&id)?;
        if let Some(ids) = self.by_source.get_mut(&source) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.by_source.remove(&source);
            }
        }
        Some(abort)
    }

    /// Closes the unadmitted connection `id` to make room.
    pub(super) fn evict(&mut self, id: u64) {
        if let Some(Some(abort)) = self.untrack(id) {
            abort.abort();
        }
        self.evicted += 1;
    }

    pub(super) fn refuse(&mut self, decision: &Decision) {
        match decision {
            Decision::RefusePerSource => self.refused_per_source += 1,
            _ => self.refused_full += 1,
        }
    }

    /// The summary of the last interval, if anything happened; resets the counters.
    pub(super) fn report(&mut self) -> Option<String> {
        let mut parts = Vec::new();
        let mut part = |n: &mut u64, what: String| {
            if *n > 0 {
                parts.push(format!("{n} {what}"));
                *n = 0;
            }
        };
        part(
            &mut self.refused_per_source,
            format!(
                "refused (over {MAX_UNADMITTED_PER_ADDRESS} unadmitted connections from one address)"
            ),
        );
        part(
            &mut self.refused_full,
            format!("refused ({MAX_CONNECTIONS} connections open)"),
        );
        part(
            &mut self.evicted,
            "closed to make room (their address held the most unadmitted connections)".into(),
        );
        part(
            &mut self.failed_early,
            "failed before reaching the lobby (handshake, timeout, bad data)".into(),
        );
        part(&mut self.accept_errors, "accept errors".into());
        part(&mut self.suppressed, "more warnings not shown".into());
        self.warnings = 0;
        (!parts.is_empty()).then(|| {
            format!(
                "connections in the last {} s: {}",
                REFUSALS_REPORT_INTERVAL.as_secs(),
                parts.join(", ")
            )
        })
    }
}
