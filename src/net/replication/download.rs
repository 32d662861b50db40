//! The downloader half of the [`Replicator`]: which upgrade and block requests to issue, the
//! requests in flight, fork checks, and the `data` / `noData` answers.

use super::*;

impl Replicator {
    pub(super) fn on_data(
        &mut self,
        core: &mut dyn ReplicaCore,
        data: Data,
    ) -> Result<(), ReplicationError> {
        // Unsolicited data (JS "push") is ignored unless it answers one of our requests.
        let Some(kind) = self.inflight.remove(&data.request) else {
            return Ok(());
        };
        self.clear_inflight(kind);
        if kind == Inflight::Check {
            match core.check_conflict(&data) {
                Ok(Some(length)) => {
                    tracing::warn!(
                        key = %hex::encode(self.key),
                        length,
                        "the archive forked: the peer proved a different signed tree"
                    );
                    self.forked = Some(length);
                }
                Ok(None) => self.suspect = false,
                Err(e) => {
                    self.stats.data_invalid += 1;
                    self.invalid += 1;
                    tracing::debug!(error = %e, "invalid fork-check proof from peer");
                    if self.invalid >= MAX_INVALID {
                        return Err(ReplicationError::TooManyInvalid(self.invalid));
                    }
                }
            }
            self.update(core);
            return Ok(());
        }
        // Another connection may have brought the same upgrade or block meanwhile: a proof built
        // for our old length no longer fits and is no sign of a bad peer, so skip it uncounted.
        let stale_upgrade = data
            .upgrade
            .as_ref()
            .is_some_and(|u| u.start != core.length());
        let have_block = data.block.as_ref().is_some_and(|b| core.has(b.index));
        if stale_upgrade || (data.upgrade.is_none() && have_block) {
            self.stats.data_stale += 1;
            self.update(core);
            return Ok(());
        }
        match core.verify_and_apply(&data) {
            Ok(()) => self.stats.data_applied += 1,
            // Asked ahead of the upgrade (`request_ahead`), answered before it: no fault of
            // the peer; asked again once our length covers it.
            Err(_) if matches!(kind, Inflight::Block(i) if i >= core.length()) => {}
            Err(e) => {
                self.stats.data_invalid += 1;
                self.invalid += 1;
                tracing::debug!(error = %e, "invalid data from peer");
                self.suspect = true;
                if self.invalid >= MAX_INVALID {
                    return Err(ReplicationError::TooManyInvalid(self.invalid));
                }
                if let Inflight::Upgrade(block) = kind {
                    self.upgrade_refused_at = Some(self.remote.length);
                    self.unavailable.extend(block);
                }
                if let Inflight::Block(i) = kind {
                    self.unavailable.insert(i);
                }
            }
        }
        // The driver calls `on_local_change` for all peers after a change; still refill here so
        // a failed proof doesn't leave the pipeline empty.
        self.update(core);
        Ok(())
    }

    pub(super) fn on_no_data(&mut self, core: &mut dyn ReplicaCore, m: NoData) {
        let Some(kind) = self.inflight.remove(&m.request) else {
            return;
        };
        self.clear_inflight(kind);
        match kind {
            Inflight::Upgrade(block) => {
                self.upgrade_refused_at = Some(self.remote.length);
                self.unavailable.extend(block);
            }
            Inflight::Block(i) => {
                self.unavailable.insert(i);
            }
            Inflight::Check => core.fork_check_refused(),
        }
        self.update(core);
    }

    pub(super) fn clear_inflight(&mut self, kind: Inflight) {
        match kind {
            Inflight::Upgrade(block) => {
                self.upgrade_inflight = false;
                if let Some(i) = block {
                    self.blocks_inflight.remove(&i);
                }
            }
            Inflight::Block(i) => {
                self.blocks_inflight.remove(&i);
            }
            Inflight::Check => {}
        }
    }

    pub(super) fn next_request_id(&mut self) -> u64 {
        let id = self.next_id;
        // Ids are uints on the wire; wrap far before any limit, skipping 0 (JS "no request").
        self.next_id = if self.next_id >= u32::MAX as u64 {
            1
        } else {
            self.next_id + 1
        };
        id
    }

    /// Sends a fork check (see the module docs) when one is due: after a proof failed against
    /// our tree (once per remote length), or once per connection when a reader learns that the
    /// remote holds no more than it does; only while the remote has the block it would prove.
    pub(super) fn request_check(&mut self, core: &mut dyn ReplicaCore) {
        let (length, theirs) = (core.length(), self.remote.length);
        let at = length.min(theirs);
        let due = (self.suspect && self.checked_at != Some(theirs))
            || (!self.checked_once && theirs <= length && !core.writable());
        if !due
            || at == 0
            || !self.remote.synced
            || self.inflight.len() >= self.max_inflight
            || !self.remote.has(at - 1)
            || !core.has(at - 1)
        {
            return;
        }
        if self.suspect {
            self.checked_at = Some(theirs);
        }
        self.checked_once = true;
        let id = self.next_request_id();
        self.inflight.insert(id, Inflight::Check);
        self.push(
            msg_type::REQUEST,
            &Request {
                id,
                fork: core.fork(),
                block: Some(RequestBlock {
                    index: at - 1,
                    nodes: 0,
                }),
                upgrade: Some(RequestUpgrade {
                    start: 0,
                    length: theirs,
                }),
                ..Request::default()
            },
        );
    }

    /// With the upgrade of an empty replica in flight (block 0 riding on it), asks for the
    /// remote's other blocks at once instead of a round trip later: each proved up to the root
    /// of the remote's tree that covers it, a node the upgrade brings. A peer answers in order
    /// (ours does); a block that arrives before the upgrade is asked again (see `on_data`).
    fn request_ahead(&mut self, core: &mut dyn ReplicaCore) {
        let theirs = self.remote.length;
        if theirs >= crate::hypercore::flat_tree::MAX_INDEX / 2 {
            return;
        }
        let roots = crate::hypercore::flat_tree::full_roots(2 * theirs);
        let end = theirs.min(self.max_inflight as u64 + 1);
        for index in 1..end {
            if self.inflight.len() >= self.max_inflight {
                break;
            }
            if core.has(index)
                || self.blocks_inflight.contains(&index)
                || self.unavailable.contains(&index)
                || !self.remote.has(index)
            {
                continue;
            }
            let leaf = 2 * index;
            let Some(&root) = roots.iter().find(|&&r| {
                let (left, right) = crate::hypercore::flat_tree::spans(r);
                left <= leaf && leaf <= right
            }) else {
                break;
            };
            let id = self.next_request_id();
            self.inflight.insert(id, Inflight::Block(index));
            self.blocks_inflight.insert(index);
            let nodes = crate::hypercore::flat_tree::depth(root) as u64;
            self.push(
                msg_type::REQUEST,
                &Request {
                    id,
                    fork: core.fork(),
                    block: Some(RequestBlock { index, nodes }),
                    ..Request::default()
                },
            );
        }
    }

    /// The downloader: issue the upgrade and block requests that are possible now.
    pub(super) fn update(&mut self, core: &mut dyn ReplicaCore) {
        if !self.remote.opened || !self.remote.uploading {
            return;
        }
        let (fork, length) = (core.fork(), core.length());
        if self.remote.fork != fork {
            return; // forks are not supported; don't ask for proofs that can't verify
        }
        if self.forked.is_some() {
            return; // a peer on another signed tree has nothing we can use
        }
        self.request_check(core);
        // JS `_shouldUpgrade`: one upgrade in flight; the remote must be longer, say it can
        // upgrade us and have acknowledged our length (else its proof would start elsewhere).
        if !self.upgrade_inflight
            && self.inflight.len() < self.max_inflight
            && self.remote.length > length
            && self.remote.can_upgrade
            && self.remote.length_acked == length
            && self.upgrade_refused_at != Some(self.remote.length)
        {
            let id = self.next_request_id();
            // An empty replica asks for block 0 with the upgrade (the shape of a fork check,
            // which a proof from length 0 serves): the reader's first block comes a round trip
            // sooner.
            let block = (length == 0
                && self.remote.has(0)
                && !core.has(0)
                && !self.blocks_inflight.contains(&0)
                && !self.unavailable.contains(&0))
            .then_some(0);
            self.inflight.insert(id, Inflight::Upgrade(block));
            self.blocks_inflight.extend(block);
            self.upgrade_inflight = true;
            self.push(
                msg_type::REQUEST,
                &Request {
                    id,
                    fork,
                    block: block.map(|index| RequestBlock { index, nodes: 0 }),
                    upgrade: Some(RequestUpgrade {
                        start: length,
                        length: self.remote.length - length,
                    }),
                    ..Request::default()
                },
            );
            if block.is_some() {
                self.request_ahead(core);
            }
        }
        // Blocks below our (verified) length that we miss and the remote announced.
        while self.cursor < length && core.has(self.cursor) {
            self.cursor += 1;
        }
        let mut index = self.cursor;
        // Bound the scan so a remote that announced little can't make every update O(length).
        let scan_end = length.min(
            self.cursor
                .saturating_add(4 * self.max_inflight as u64 + 1024),
        );
        while self.inflight.len() < self.max_inflight && index < scan_end {
            if !core.has(index)
                && !self.blocks_inflight.contains(&index)
                && !self.unavailable.contains(&index)
                && self.remote.has(index)
            {
                let id = self.next_request_id();
                self.inflight.insert(id, Inflight::Block(index));
                self.blocks_inflight.insert(index);
                let nodes = core.missing_nodes(index);
                self.push(
                    msg_type::REQUEST,
                    &Request {
                        id,
                        fork,
                        block: Some(RequestBlock { index, nodes }),
                        ..Request::default()
                    },
                );
            }
            index += 1;
        }
    }
}
