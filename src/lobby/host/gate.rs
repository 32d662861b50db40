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

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(last: u8) -> Source {
        Source::of(&SocketAddr::from(([10, 0, 0, last], 1234)))
    }

    #[test]
    fn one_source_is_refused_past_its_limit_and_admission_frees_its_count() {
        let mut gate = Gate::default();
        for id in 0..MAX_UNADMITTED_PER_ADDRESS as u64 {
            assert_eq!(gate.decide(v4(1), id as usize), Decision::Accept);
            gate.track(id, v4(1), None);
        }
        assert_eq!(gate.decide(v4(1), 16), Decision::RefusePerSource);
        assert_eq!(gate.decide(v4(2), 16), Decision::Accept);
        // A connection that became a player stops counting against its address.
        assert!(gate.untrack(3).is_some());
        assert_eq!(gate.decide(v4(1), 16), Decision::Accept);
    }

    #[test]
    fn when_every_connection_is_taken_the_biggest_source_loses_its_oldest() {
        let mut gate = Gate::default();
        for id in 0..3 {
            gate.track(id, v4(1), None);
        }
        gate.track(10, v4(2), None);
        assert_eq!(gate.decide(v4(3), MAX_CONNECTIONS), Decision::Evict(0));
        // A source holding as many as the biggest but one gains nothing by evicting.
        gate.track(11, v4(2), None);
        assert_eq!(gate.decide(v4(2), MAX_CONNECTIONS), Decision::RefuseFull);
        gate.evict(0);
        gate.refuse(&Decision::RefuseFull);
        let summary = gate.report().expect("a summary");
        assert!(summary.contains("1 refused"), "{summary}");
        assert!(summary.contains("1 closed to make room"), "{summary}");
        assert_eq!(gate.report(), None, "counters reset");
    }

    #[test]
    fn ipv6_sources_are_slash_64s_and_mapped_ipv4_is_ipv4() {
        let a: SocketAddr = "[2001:db8:1:2::1]:1".parse().unwrap();
        let b: SocketAddr = "[2001:db8:1:2:ffff::9]:2".parse().unwrap();
        let c: SocketAddr = "[2001:db8:1:3::1]:1".parse().unwrap();
        assert_eq!(Source::of(&a), Source::of(&b));
        assert_ne!(Source::of(&a), Source::of(&c));
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:5".parse().unwrap();
        assert_eq!(Source::of(&mapped), v4(1));
    }
}
