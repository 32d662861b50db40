//! What [`MdnsDiscovery`](super::MdnsDiscovery) hands out: a live [`Announcement`] and a
//! [`MdnsWatch`] following the peers of one discovery key.

use std::sync::Arc;

use mdns_sd::UnregisterStatus;
use tokio::sync::watch;

use tracing::debug;

use super::{daemon_err, Browse, Heard, Inner, MdnsError, MdnsPeer, DAEMON_WAIT};
use crate::sync::lock;

/// A live announcement made by [`MdnsDiscovery::announce`](super::MdnsDiscovery::announce). Dropping it unregisters it (goodbye
/// records are sent by the daemon thread, without waiting); [`Announcement::stop`] does the
/// same and waits until the goodbye went out.
pub struct Announcement {
    pub(super) inner: Arc<Inner>,
    pub(super) instance: String,
    pub(super) fullname: String,
    pub(super) registered: bool,
}

impl std::fmt::Debug for Announcement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Announcement")
            .field("fullname", &self.fullname)
            .finish_non_exhaustive()
    }
}

impl Announcement {
    /// The instance name, `<32 hex>-<8 hex>` (see [`instance_name`](super::instance_name)).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The full service name, `<instance>._dat-social._tcp.local.`.
    pub fn fullname(&self) -> &str {
        &self.fullname
    }

    /// Unregisters: the daemon sends goodbye records (TTL 0) on every interface, and once more
    /// about a second later if it is still running. Waits at most 5 s for the first.
    ///
    /// Errors: [`MdnsError::Stopped`] if the daemon has stopped (its shutdown already said
    /// goodbye); [`MdnsError::Timeout`] if it does not confirm within 5 s; [`MdnsError::Daemon`]
    /// if its command queue is full.
    pub async fn stop(mut self) -> Result<(), MdnsError> {
        self.registered = false;
        let status = self
            .inner
            .daemon
            .unregister(&self.fullname)
            .map_err(daemon_err("unregister"))?;
        match tokio::time::timeout(DAEMON_WAIT, status.recv_async()).await {
            Ok(Ok(UnregisterStatus::OK)) => Ok(()),
            Ok(Ok(UnregisterStatus::NotFound)) => {
                // Not (or no longer) registered: nothing is announced, which is the goal.
                debug!(fullname = %self.fullname, "mDNS: unregister: not found");
                Ok(())
            }
            Ok(Err(_)) => Err(MdnsError::Stopped),
            Err(_) => Err(MdnsError::Timeout(DAEMON_WAIT)),
        }
    }
}

impl Drop for Announcement {
    fn drop(&mut self) {
        if self.registered {
            if let Err(e) = self.inner.daemon.unregister(&self.fullname) {
                debug!(error = %e, "mDNS: unregister on drop failed");
            }
        }
        lock(&self.inner.own).remove(&self.instance);
    }
}

/// Follows the peers announcing one discovery key ([`MdnsDiscovery::watch`](super::MdnsDiscovery::watch)); the daemon stops
/// browsing when the last watch is dropped.
pub struct MdnsWatch {
    pub(super) browse: Arc<Browse>,
    pub(super) rx: watch::Receiver<Heard>,
    pub(super) dk: [u8; 32],
    /// The peers last returned by [`MdnsWatch::changed`].
    pub(super) last: Vec<MdnsPeer>,
}

impl std::fmt::Debug for MdnsWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MdnsWatch")
            .field("discovery_key", &hex::encode(self.dk))
            .finish_non_exhaustive()
    }
}

impl MdnsWatch {
    /// The discovery key watched.
    pub fn discovery_key(&self) -> [u8; 32] {
        self.dk
    }

    /// The peers known now, ordered by full service name, without this daemon's own
    /// announcements. Empty if none (or once the daemon has stopped).
    pub fn peers(&self) -> Vec<MdnsPeer> {
        let own = lock(&self.browse.inner.own);
        self.rx
            .borrow()
            .values()
            .filter(|f| f.dk == self.dk && !own.contains(&f.peer.instance))
            .map(|f| f.peer.clone())
            .collect()
    }

    /// Waits until [`MdnsWatch::peers`] differs from what this method last returned (or, the
    /// first time, from the peers when the watch was made): a peer found, gone, or re-resolved
    /// with other addresses. Returns the new peers. Has no time bound of its own: wrap it in
    /// `tokio::time::timeout`.
    ///
    /// Errors: [`MdnsError::Stopped`] once the daemon has stopped.
    pub async fn changed(&mut self) -> Result<Vec<MdnsPeer>, MdnsError> {
        // Each turn waits for a change of what was heard (for any key); the caller bounds it.
        loop {
            self.rx.changed().await.map_err(|_| MdnsError::Stopped)?;
            let peers = self.peers();
            if peers != self.last {
                self.last.clone_from(&peers);
                return Ok(peers);
            }
        }
    }
}
