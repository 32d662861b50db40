//! LAN discovery with multicast DNS (RFC 6762) and DNS-based service discovery (RFC 6763): a
//! host announces that it serves the archive with a given 32-byte discovery key on a TCP port,
//! and other hosts on the same link find its addresses without any relay. Runs on the `mdns-sd`
//! crate (0.21), whose daemon is a thread of its own; this module adds the naming scheme, the
//! checks on what is heard, and a tokio-friendly API.
//!
//! # On the wire
//!
//! An announcement of discovery key `dk` on TCP port `port` is one DNS-SD service instance:
//!
//! - service type [`SERVICE_TYPE`] (`_dat-social._tcp.local.`): a PTR record from the type to
//!   the instance. Lookups browse the type (every dat-social announcer on the link answers) and
//!   keep the instances of the key looked for. There is no DNS-SD subtype per key: `mdns-sd`
//!   0.21 answers a subtype query with the parent type's PTR, which its own subtype browsers
//!   drop;
//! - instance name `<hex(dk[..16])>-<8 hex digits>` ([`instance_name`]): 41 bytes, within the
//!   63-byte DNS label limit. The 8 hex digits are random, new for every announcement, so that two
//!   announcers of one archive (two processes, two hosts) do not clash;
//! - SRV record: port `port`, target host `dat-social-<8 hex digits>.local.`, random and one per
//!   [`MdnsDiscovery`] (the machine's own host name is not published);
//! - A / AAAA records of that host: on each interface, the addresses of that interface
//!   (`mdns-sd` fills them in and follows address changes);
//! - TXT record: one string `dk=<64 lowercase hex digits>` ([`TXT_DISCOVERY_KEY`]), the whole
//!   discovery key.
//!
//! Nothing else is published: in particular never the archive's public key, which the discovery
//! key exists to hide (it is a keyed hash of the public key, see
//! [`crate::hypercore::crypto::discovery_key`]). Record lifetimes are `mdns-sd`'s defaults
//! (120 s for SRV/A/AAAA, 4500 s for PTR/TXT); stopping an announcement sends goodbye records
//! (TTL 0), after which listeners drop it within about a second.
//!
//! # What is accepted
//!
//! Everything heard is untrusted. A service instance counts as a peer for `dk` only if its TXT
//! `dk` value decodes to exactly `dk`, its name parses as above with the first 16 bytes of `dk`
//! ([`instance_matches`]), its port is not 0 and it has at least one usable address; anything
//! else is ignored (logged at debug level), never a panic. Announcements made by the same
//! [`MdnsDiscovery`] are left out of its own lookups.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent};
use tokio::sync::watch;
use tracing::{debug, trace};

use crate::sync::lock;

mod handles;
mod records;

pub use handles::{Announcement, MdnsWatch};
use records::{announcement_info, decode_resolved, Found};
pub use records::{
    instance_label, instance_matches, instance_name, parse_instance_name, parse_txt_value,
    txt_value, MdnsPeer,
};

/// The DNS-SD service type of dat-social archives (RFC 6763 section 7: `_<name>._tcp` under the
/// `local.` domain).
pub const SERVICE_TYPE: &str = "_dat-social._tcp.local.";

/// The TXT record key whose value is the full discovery key, 64 lowercase hex digits.
pub const TXT_DISCOVERY_KEY: &str = "dk";

/// How many leading bytes of the discovery key go into the instance name (16 bytes = 32 hex
/// digits).
pub const KEY_PREFIX_LEN: usize = 16;

/// Hex digits of the random part of an instance name.
const NONCE_HEX_LEN: usize = 8;

/// How long [`Announcement::stop`] and [`MdnsDiscovery::shutdown`] wait for the daemon thread.
const DAEMON_WAIT: Duration = Duration::from_secs(5);

/// How long a lookup keeps listening once it knows a peer (see [`MdnsDiscovery::lookup`]).
const LOOKUP_SETTLE: Duration = Duration::from_millis(250);

/// How often the thread that reads the browse's events checks whether anyone still watches.
const PUMP_POLL: Duration = Duration::from_secs(1);

/// Errors of LAN discovery.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MdnsError {
    /// The `mdns-sd` daemon refused an operation (`op` says which), e.g. its command queue was
    /// full or a name was invalid.
    #[error("mDNS daemon could not {op}: {source}")]
    Daemon {
        /// What was being done, e.g. "start", "register the announcement".
        op: &'static str,
        /// The daemon's error.
        #[source]
        source: mdns_sd::Error,
    },
    /// Port 0 cannot be announced (it is no TCP port one can connect to).
    #[error("port 0 cannot be announced")]
    InvalidPort,
    /// The daemon has shut down ([`MdnsDiscovery::shutdown`] was called or its thread ended).
    #[error("the mDNS daemon has stopped")]
    Stopped,
    /// The daemon thread did not answer within the given time.
    #[error("the mDNS daemon did not answer within {0:?}")]
    Timeout(Duration),
    /// The thread that follows lookups could not be started.
    #[error("could not start the mDNS watch thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Maps a daemon error, telling a stopped daemon apart.
fn daemon_err(op: &'static str) -> impl FnOnce(mdns_sd::Error) -> MdnsError {
    move |source| match source {
        mdns_sd::Error::DaemonShutdown => MdnsError::Stopped,
        source => MdnsError::Daemon { op, source },
    }
}

// ---------------------------------------------------------------------------------------------
// The daemon, announcements and watches
// ---------------------------------------------------------------------------------------------

/// Which interfaces LAN discovery uses.
#[derive(Debug, Clone, Default)]
pub struct MdnsConfig {
    /// Interface names (e.g. `"eth0"`, `"lo"`) to send and listen on; empty means every
    /// interface with an address, loopback included.
    pub interfaces: Vec<String>,
    /// Use IPv4 only (no IPv6 sockets, no AAAA records).
    pub ipv4_only: bool,
}

/// The per-process state shared by an [`MdnsDiscovery`] and its announcements and watches.
struct Inner {
    daemon: ServiceDaemon,
    /// SRV target of our announcements, `dat-social-<8 hex>.local.`.
    host_name: String,
    /// Instance labels (lowercase) announced through this daemon, left out of lookups.
    own: Mutex<HashSet<String>>,
    /// The live browse of [`SERVICE_TYPE`], if any. There is at most one: the daemon keeps one
    /// listener per browsed name, so all watches share it.
    browse: Mutex<Option<BrowseSlot>>,
    next_browse: AtomicU64,
}

struct BrowseSlot {
    id: u64,
    browse: Weak<Browse>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Sends goodbyes for anything still registered and ends the daemon thread; an error
        // means it has already stopped.
        let _ = self.daemon.shutdown();
    }
}

/// Every well-formed announcement heard, by lowercase full service name.
type Heard = BTreeMap<String, Found>;

/// The browse of [`SERVICE_TYPE`], shared by all watches; stops it when the last one is dropped.
struct Browse {
    inner: Arc<Inner>,
    id: u64,
    rx: watch::Receiver<Heard>,
}

impl Drop for Browse {
    fn drop(&mut self) {
        // Under the lock, so that a browse started meanwhile is not stopped by mistake.
        let mut slot = lock(&self.inner.browse);
        if slot.as_ref().is_some_and(|s| s.id == self.id) {
            *slot = None;
            if let Err(e) = self.inner.daemon.stop_browse(SERVICE_TYPE) {
                debug!(error = %e, "mDNS: stop_browse failed");
            }
        }
    }
}

/// LAN discovery through one `mdns-sd` daemon (a thread bound to UDP port 5353 on the selected
/// interfaces, joined to 224.0.0.251 and ff02::fb). Make one per process and clone it (clones
/// share the daemon); the daemon stops when the last clone, announcement and watch are dropped,
/// or at [`MdnsDiscovery::shutdown`].
///
/// The daemon uses the interfaces that are operationally up and have an address; it looks for
/// new or changed ones every 5 s, and announcements follow (their address records are filled in
/// per interface).
#[derive(Clone)]
pub struct MdnsDiscovery {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MdnsDiscovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MdnsDiscovery")
            .field("host_name", &self.inner.host_name)
            .finish_non_exhaustive()
    }
}

impl MdnsDiscovery {
    /// Starts a daemon on every interface with an address (see [`MdnsDiscovery::with_config`]).
    ///
    /// Errors: [`MdnsError::Daemon`] if the daemon thread cannot be created. Socket problems
    /// (port 5353 not bindable, multicast not permitted) surface later, as lookups that find
    /// nothing, and in the daemon's logs.
    pub fn new() -> Result<Self, MdnsError> {
        Self::with_config(MdnsConfig::default())
    }

    /// Starts a daemon on the interfaces `config` selects.
    ///
    /// Errors: as [`MdnsDiscovery::new`]; [`MdnsError::Daemon`] also if the daemon's command
    /// queue refuses the interface selection.
    pub fn with_config(config: MdnsConfig) -> Result<Self, MdnsError> {
        let daemon = ServiceDaemon::new().map_err(daemon_err("start"))?;
        // From here on, dropping `inner` shuts the daemon down again, also on error.
        let inner = Arc::new(Inner {
            daemon,
            host_name: format!("dat-social-{:08x}.local.", rand::random::<u32>()),
            own: Mutex::new(HashSet::new()),
            browse: Mutex::new(None),
            next_browse: AtomicU64::new(0),
        });
        if !config.interfaces.is_empty() {
            // The daemon applies selections in order, the last match winning.
            inner
                .daemon
                .disable_interface(IfKind::All)
                .map_err(daemon_err("select interfaces"))?;
            let names: Vec<IfKind> = config
                .interfaces
                .iter()
                .map(|n| IfKind::Name(n.clone()))
                .collect();
            inner
                .daemon
                .enable_interface(names)
                .map_err(daemon_err("select interfaces"))?;
        }
        if config.ipv4_only {
            inner
                .daemon
                .disable_interface(IfKind::IPv6)
                .map_err(daemon_err("select interfaces"))?;
        }
        debug!(host = %inner.host_name, ?config, "mDNS daemon started");
        Ok(MdnsDiscovery { inner })
    }

    /// Advertises that this host serves the archive with discovery key `discovery_key` on TCP
    /// `port`, at its addresses on the selected interfaces (records as in the module docs). The
    /// daemon first probes the new name (about 750 ms, RFC 6762 section 8.1), then announces it
    /// and answers queries until the returned [`Announcement`] is stopped or dropped.
    ///
    /// Errors: [`MdnsError::InvalidPort`] for port 0; [`MdnsError::Stopped`] after shutdown;
    /// [`MdnsError::Daemon`] if the daemon refuses the registration.
    pub fn announce(&self, discovery_key: [u8; 32], port: u16) -> Result<Announcement, MdnsError> {
        if port == 0 {
            return Err(MdnsError::InvalidPort);
        }
        let nonce = rand::random::<u32>();
        let info = announcement_info(&discovery_key, nonce, &self.inner.host_name, port)?;
        let fullname = info.get_fullname().to_string();
        let instance = instance_name(&discovery_key, nonce);
        lock(&self.inner.own).insert(instance.clone());
        if let Err(e) = self.inner.daemon.register(info) {
            lock(&self.inner.own).remove(&instance);
            return Err(daemon_err("register the announcement")(e));
        }
        debug!(%fullname, port, "mDNS: announcing");
        Ok(Announcement {
            inner: self.inner.clone(),
            instance,
            fullname,
            registered: true,
        })
    }

    /// Follows the peers announcing `discovery_key` on the network (announcements of this
    /// [`MdnsDiscovery`] excluded) until the returned [`MdnsWatch`] is dropped. While any watch
    /// lives, the daemon browses [`SERVICE_TYPE`]: it sends queries (the first within 120 ms,
    /// then after 1 s, 2 s, 4 s, ... up to hourly), refreshes the records it holds before they
    /// expire, and listens to unsolicited announcements and goodbyes.
    ///
    /// Errors: [`MdnsError::Stopped`] after shutdown; [`MdnsError::Daemon`] if the daemon
    /// refuses the browse; [`MdnsError::Thread`] if the event thread cannot start.
    pub fn watch(&self, discovery_key: [u8; 32]) -> Result<MdnsWatch, MdnsError> {
        let browse = self.browse()?;
        let rx = browse.rx.clone();
        let mut watch = MdnsWatch {
            browse,
            rx,
            dk: discovery_key,
            last: Vec::new(),
        };
        watch.last = watch.peers();
        Ok(watch)
    }

    /// The addresses of the peers announcing `discovery_key`, returned soon after at least one
    /// peer is known, or empty when `timeout` passes first. "Soon after": once a peer is known,
    /// the lookup listens 250 ms more (never past `timeout`) because a responder answers over
    /// IPv4 and IPv6 separately, each answer carrying only that family's addresses and delayed
    /// by 20-120 ms at random (RFC 6762 section 6), and other peers may be answering too. The
    /// result lists all addresses of the peers known then: IPv4 then IPv6 per peer, each with
    /// the announced TCP port. Announcements of this [`MdnsDiscovery`] are left out. A peer that vanished without a goodbye may still
    /// be listed until its records expire (120 s): treat the result as hints and connect.
    ///
    /// Errors: as [`MdnsDiscovery::watch`]; [`MdnsError::Stopped`] if the daemon stops while
    /// waiting.
    pub async fn lookup(
        &self,
        discovery_key: [u8; 32],
        timeout: Duration,
    ) -> Result<Vec<SocketAddr>, MdnsError> {
        let peers = self.lookup_peers(discovery_key, timeout).await?;
        Ok(peers.into_iter().flat_map(|p| p.addrs).collect())
    }

    /// As [`MdnsDiscovery::lookup`], with the peers' instance and host names.
    pub async fn lookup_peers(
        &self,
        discovery_key: [u8; 32],
        timeout: Duration,
    ) -> Result<Vec<MdnsPeer>, MdnsError> {
        let mut watch = self.watch(discovery_key)?;
        let deadline = crate::time::deadline_after(timeout);
        // Bounded by `deadline`: every turn waits for a change of what was heard.
        loop {
            if !watch.peers().is_empty() {
                let settle = deadline.min(tokio::time::Instant::now() + LOOKUP_SETTLE);
                // Bounded by `settle`: collects the answers that follow the first one.
                while let Ok(Ok(())) = tokio::time::timeout_at(settle, watch.rx.changed()).await {}
                let peers = watch.peers();
                if !peers.is_empty() {
                    return Ok(peers);
                }
            }
            match tokio::time::timeout_at(deadline, watch.rx.changed()).await {
                Err(_elapsed) => return Ok(Vec::new()),
                Ok(Err(_closed)) => return Err(MdnsError::Stopped),
                Ok(Ok(())) => {}
            }
        }
    }

    /// Stops the daemon: goodbyes for all announcements still registered, then the thread ends
    /// (waits at most 5 s for it). Announcements and watches of this daemon stop working
    /// ([`MdnsWatch::changed`] returns [`MdnsError::Stopped`]). Calling it again is a no-op.
    ///
    /// Errors: [`MdnsError::Timeout`] if the daemon thread does not confirm within 5 s;
    /// [`MdnsError::Daemon`] if its command queue is full.
    pub async fn shutdown(&self) -> Result<(), MdnsError> {
        let status = match self.inner.daemon.shutdown() {
            Ok(rx) => rx,
            Err(mdns_sd::Error::DaemonShutdown) => return Ok(()),
            Err(e) => return Err(daemon_err("shut down")(e)),
        };
        match tokio::time::timeout(DAEMON_WAIT, status.recv_async()).await {
            // A closed channel also means that the thread is gone.
            Ok(_) => Ok(()),
            Err(_) => Err(MdnsError::Timeout(DAEMON_WAIT)),
        }
    }

    /// The live browse, started if there is none.
    fn browse(&self) -> Result<Arc<Browse>, MdnsError> {
        let mut slot = lock(&self.inner.browse);
        if let Some(browse) = slot.as_ref().and_then(|s| s.browse.upgrade()) {
            return Ok(browse);
        }
        let events = self
            .inner
            .daemon
            .browse(SERVICE_TYPE)
            .map_err(daemon_err("browse"))?;
        let (tx, rx) = watch::channel(Heard::new());
        let spawned = std::thread::Builder::new()
            .name("mdns-watch".into())
            .spawn(move || pump(events, tx));
        if let Err(e) = spawned {
            let _ = self.inner.daemon.stop_browse(SERVICE_TYPE);
            return Err(MdnsError::Thread(e));
        }
        let id = self.inner.next_browse.fetch_add(1, Ordering::Relaxed);
        let browse = Arc::new(Browse {
            inner: self.inner.clone(),
            id,
            rx,
        });
        *slot = Some(BrowseSlot {
            id,
            browse: Arc::downgrade(&browse),
        });
        Ok(browse)
    }
}

/// Turns the browse's daemon events into the set of announcements heard. Ends when the daemon
/// drops the event sender (the browse was stopped or replaced, or the daemon shut down) or when
/// nobody watches any more; then empties the set and closes the channel.
fn pump(events: mdns_sd::Receiver<ServiceEvent>, tx: watch::Sender<Heard>) {
    loop {
        let event = match events.recv_timeout(PUMP_POLL) {
            Ok(event) => event,
            Err(mdns_sd::RecvTimeoutError::Timeout) if !tx.is_closed() => continue,
            Err(_) => break,
        };
        match event {
            ServiceEvent::ServiceResolved(rs) => {
                let name = rs.get_fullname().to_ascii_lowercase();
                match decode_resolved(&rs) {
                    Some(found) => {
                        trace!(%name, addrs = ?found.peer.addrs, "mDNS: heard");
                        tx.send_if_modified(|heard| {
                            heard.insert(name, found.clone()).as_ref() != Some(&found)
                        });
                    }
                    None => {
                        debug!(%name, port = rs.get_port(), "mDNS: ignoring a malformed instance");
                        tx.send_if_modified(|heard| heard.remove(&name).is_some());
                    }
                }
            }
            ServiceEvent::ServiceRemoved(_, fullname) => {
                let name = fullname.to_ascii_lowercase();
                trace!(%name, "mDNS: gone");
                tx.send_if_modified(|heard| heard.remove(&name).is_some());
            }
            other => trace!(?other, "mDNS: event"),
        }
    }
    tx.send_replace(Heard::new());
}

#[cfg(test)]
mod tests;
