//! [`ArchiveServer`]: the [`ProtocolHandler`] for `hypercore/alpha` that serves a node's cores
//! (its archive, and e.g. a host's lobby log) to every connection, to readers and joiners
//! alike.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::router::{HandlerTask, Inbound, ProtocolHandler};
use crate::net::{ChannelKey, NetError, SharedCore};

/// Serves `cores` over replication (`hypercore/alpha`, [`crate::net::replication::PROTOCOL`])
/// on every connection it is registered for: replication of each starts as the connection
/// opens, so a reader's first request is answered without waiting for its open, and runs
/// (live: local appends are announced at once) until the connection ends. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ArchiveServer {
    cores: Arc<Vec<SharedCore>>,
}

impl ArchiveServer {
    /// A server of `cores` (writable originals or replicas alike).
    pub fn new(cores: impl IntoIterator<Item = SharedCore>) -> Self {
        ArchiveServer {
            cores: Arc::new(cores.into_iter().collect()),
        }
    }

    /// Whether a core with `discovery_key` (32 bytes) is served.
    pub fn serves(&self, discovery_key: &[u8]) -> bool {
        self.cores
            .iter()
            .any(|core| core.discovery_key().as_bytes()[..] == *discovery_key)
    }
}

impl ProtocolHandler for ArchiveServer {
    fn on_connect<'a>(&'a self, inbound: &'a Inbound) -> BoxFuture<'a, Result<(), NetError>> {
        Box::pin(async move {
            for core in self.cores.iter() {
                inbound.connection.replicate(core.clone()).await?;
            }
            Ok(())
        })
    }

    /// A served core's channel pairs with the one opened in `on_connect` (the remote's open
    /// crossed ours): taken, nothing more to run. Any other core is declined: someone else on
    /// the connection may replicate it later (a lobby reads a joiner's logs).
    fn accept(&self, _inbound: &Inbound, channel: &ChannelKey) -> Option<HandlerTask> {
        let served = channel.id.as_deref().is_some_and(|id| self.serves(id));
        served.then(|| -> HandlerTask { Box::pin(async {}) })
    }
}
