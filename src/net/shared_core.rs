//! [`SharedCore`]: one hypercore [`Core`] shared by the application and by every connection that
//! replicates it, with a change feed so that local appends wake replication at once and readers
//! can wait for new blocks.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use super::replication::ReplicaCore;
use crate::hypercore::messages::{Data, Request};
use crate::hypercore::{self, Core};
use crate::keys::{CoreKey, DiscoveryKey};

/// A snapshot of a core's state, published after every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CoreStatus {
    /// Signed length in blocks.
    pub length: u64,
    /// Fork id.
    pub fork: u64,
    /// Blocks `0..contiguous_length` are all stored locally.
    pub contiguous_length: u64,
    /// Bumped on every change (a block or an upgrade applied, an append).
    pub version: u64,
    /// Set when a peer proved a signed tree that differs from ours within this many blocks
    /// (the archive forked; see [`crate::hypercore::Error::Conflict`]). Readers waiting for
    /// blocks should stop and report it: the blocks they wait for will not come.
    pub forked: Option<u64>,
    /// Fork checks peers answered so far ([`Core::fork_checks`]).
    pub fork_checks: u64,
}

struct Inner {
    core: Mutex<Core>,
    key: CoreKey,
    discovery_key: DiscoveryKey,
    status: watch::Sender<CoreStatus>,
}

/// A [`Core`] behind a mutex plus a `watch` of its [`CoreStatus`]. Cheap to clone; all clones
/// share the same core. Hand one clone to [`super::Connection::replicate`] for every connection
/// that should replicate it.
#[derive(Clone)]
pub struct SharedCore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SharedCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCore")
            .field("key", &hex::encode(self.inner.key))
            .field("status", &*self.inner.status.borrow())
            .finish()
    }
}

impl SharedCore {
    /// Wraps a core (writable or a replica).
    pub fn new(core: Core) -> Self {
        let key = core.key();
        let discovery_key = core.discovery_key();
        let status = status_of(&core, 0);
        let (tx, _rx) = watch::channel(status);
        Self {
            inner: Arc::new(Inner {
                core: Mutex::new(core),
                key,
                discovery_key,
                status: tx,
            }),
        }
    }

    /// The core key.
    pub fn key(&self) -> CoreKey {
        self.inner.key
    }

    /// The discovery key (what replication channels are named by).
    pub fn discovery_key(&self) -> DiscoveryKey {
        self.inner.discovery_key
    }

    /// The latest published status.
    pub fn status(&self) -> CoreStatus {
        *self.inner.status.borrow()
    }

    /// A receiver that wakes on every change (`changed().await`).
    pub fn subscribe(&self) -> watch::Receiver<CoreStatus> {
        self.inner.status.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, Core> {
        // A panic while holding the lock leaves the core as it was between operations; keep
        // serving rather than poisoning every connection.
        crate::sync::lock(&self.inner.core)
    }

    /// Runs `f` with the core locked, then publishes the new status if it changed (or if `f`
    /// says it changed something, via `mutated`). Keep `f` short: it blocks other users.
    pub fn with_core<R>(&self, f: impl FnOnce(&mut Core) -> R) -> R {
        self.with_core_flag(|c| (f(c), false))
    }

    pub(crate) fn with_core_flag<R>(&self, f: impl FnOnce(&mut Core) -> (R, bool)) -> R {
        let mut core = self.lock();
        let (r, mutated) = f(&mut core);
        let prev = *self.inner.status.borrow();
        let mut next = status_of(&core, prev.version);
        drop(core);
        if mutated
            || (next.length, next.fork, next.contiguous_length, next.forked)
                != (prev.length, prev.fork, prev.contiguous_length, prev.forked)
            || next.fork_checks != prev.fork_checks
        {
            next.version = prev.version + 1;
            self.inner.status.send_replace(next);
        }
        r
    }

    /// Appends blocks in one batch (one signature); returns the new length.
    ///
    /// Errors: whatever [`Core::append`] returns (not writable, storage errors).
    pub fn append_batch(&self, blocks: &[&[u8]]) -> hypercore::Result<u64> {
        self.with_core_flag(|c| {
            let r = c.append(blocks);
            let ok = r.is_ok();
            (r, ok)
        })
    }

    /// Appends one block; returns the new length. Connections replicating this core send the new
    /// length to their peers right away.
    ///
    /// Errors: whatever [`Core::append`] returns (not writable, storage errors).
    pub fn append(&self, block: &[u8]) -> hypercore::Result<u64> {
        self.with_core_flag(|c| {
            let r = c.append(&[block]);
            let ok = r.is_ok();
            (r, ok)
        })
    }

    /// Block `index` if stored locally (`Ok(None)` if not, yet).
    ///
    /// Errors: storage errors from [`Core::get`].
    pub fn get(&self, index: u64) -> hypercore::Result<Option<Vec<u8>>> {
        self.lock().get(index)
    }

    /// Waits until the core's length is at least `min_length`; returns that status.
    /// Never returns early; wrap it in `tokio::time::timeout` to bound it.
    pub async fn wait_for_length(&self, min_length: u64) -> CoreStatus {
        let mut rx = self.subscribe();
        loop {
            let s = *rx.borrow_and_update();
            if s.length >= min_length {
                return s;
            }
            if rx.changed().await.is_err() {
                // The sender lives in `self`, so this can't happen while we borrow it.
                return s;
            }
        }
    }

    /// Block `index`, waiting until replication brings it.
    ///
    /// Never returns early; see [`SharedCore::get_wait_timeout`] for a bounded wait.
    ///
    /// Errors: storage errors from [`Core::get`].
    pub async fn get_wait(&self, index: u64) -> hypercore::Result<Vec<u8>> {
        let mut rx = self.subscribe();
        loop {
            rx.borrow_and_update();
            if let Some(b) = self.get(index)? {
                return Ok(b);
            }
            if rx.changed().await.is_err() {
                return Err(hypercore::Error::Unsupported("core dropped".into()));
            }
        }
    }

    /// [`SharedCore::get_wait`] with a deadline: `Ok(None)` if the block did not arrive in time.
    pub async fn get_wait_timeout(
        &self,
        index: u64,
        timeout: Duration,
    ) -> hypercore::Result<Option<Vec<u8>>> {
        match tokio::time::timeout(timeout, self.get_wait(index)).await {
            Ok(r) => r.map(Some),
            Err(_) => Ok(None),
        }
    }
}

fn status_of(core: &Core, version: u64) -> CoreStatus {
    CoreStatus {
        length: core.length(),
        fork: core.fork(),
        contiguous_length: core.contiguous_length(),
        version,
        forked: core.conflict(),
        fork_checks: core.fork_checks(),
    }
}

/// The replication view of a [`Core`].
impl ReplicaCore for Core {
    fn key(&self) -> [u8; 32] {
        *Core::key(self).as_bytes()
    }
    fn fork(&self) -> u64 {
        Core::fork(self)
    }
    fn length(&self) -> u64 {
        Core::length(self)
    }
    fn contiguous_length(&self) -> u64 {
        Core::contiguous_length(self)
    }
    fn has(&self, index: u64) -> bool {
        Core::has(self, index)
    }
    fn missing_nodes(&self, index: u64) -> u64 {
        // JS `_send`: `missingNodes(2 * index, length)`, the leaf's flat index.
        Core::missing_nodes(self, 2 * index).unwrap_or(0)
    }
    fn create_proof(&mut self, request: &Request) -> Result<Option<Data>, hypercore::Error> {
        Core::create_proof(self, request).inspect_err(|e| {
            if let hypercore::Error::Corrupt { .. } = e {
                // Our own files are damaged: say so loudly, the peer only sees a refusal.
                tracing::error!(
                    "cannot serve core {}: {e}; run `dat-social check`",
                    hex::encode(Core::key(self))
                );
            }
        })
    }
    fn verify_and_apply(&mut self, data: &Data) -> Result<(), hypercore::Error> {
        Core::verify_and_apply(self, data).map(|_| ())
    }
    fn check_conflict(&mut self, data: &Data) -> Result<Option<u64>, hypercore::Error> {
        Core::check_conflict(self, data)
    }
    fn fork_check_refused(&mut self) {
        Core::note_fork_check_refused(self)
    }
    fn writable(&self) -> bool {
        Core::writable(self)
    }
}
