//! The lobby task: owns the [`Roster`] and the [`Gate`], accepts connections (TCP and relayed)
//! and spawns one `serve` task per connection (served by the host's [`Router`]), and takes [`HostCommand`]s from the user and
//! [`Report`]s from connection tasks. A connection's failure ends only that connection.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use super::chat::ChatTargets;
use super::gate::{Decision, Gate, Source};
use super::roster::{Member, Roster, RosterEvent};
use super::serve::serve;
use super::{
    write_session, Context, ENDED_GRACE, MAX_WARNINGS_PER_INTERVAL, REFUSALS_REPORT_INTERVAL,
};
use crate::discovery::Publication;
use crate::endpoint::{Accepted, Acceptor, Endpoint, Router};
use crate::home::ArchiveLock;
use crate::lobby::chat::ChannelLabels;
use crate::lobby::{check_chat, ChannelData, ChatMessage, HostEvent};
use crate::rtc::{ChannelId, RtcSender};
use crate::schema::now_ms;
use crate::signal::RejectReason;

/// What the host's user asks of the lobby ([`super::Host`], [`super::HostChat`]).
pub(super) enum HostCommand {
    /// The host's own chat line, sent without waiting ([`super::Host::say`]).
    Say {
        /// The line.
        text: String,
    },
    /// Who should get the host's chat line ([`super::HostChat::say`] sends it, waiting).
    Recipients {
        /// Where the targets go.
        reply: oneshot::Sender<ChatTargets>,
    },
    /// Game data from the host on data channels labelled `label`.
    Send {
        /// One player's identity URL, or `None` for every player.
        to: Option<String>,
        /// The channel label.
        label: String,
        /// The bytes.
        data: Vec<u8>,
    },
    /// End the lobby; `done` is told when it has.
    Shutdown {
        /// Told once `session.json` is marked ended and the connections are closed.
        done: oneshot::Sender<()>,
    },
}

/// What a connection task (or a chat delivery) tells the lobby. `connection` is the id the
/// lobby gave the connection when it accepted it.
pub(super) enum Report {
    /// May this joiner start its data channel? Reserves a slot when yes (replacing `peer`'s
    /// own old slot if it is still a player).
    Admit {
        /// The joiner's connection.
        connection: u64,
        /// The joiner's identity URL.
        peer: String,
        /// Told whether a slot is reserved.
        reply: oneshot::Sender<bool>,
    },
    /// A reserved slot is not needed after all.
    Release,
    /// A player's data channel opened (its reserved slot becomes a player).
    Joined {
        /// The player, with the lobby's handle on its connection.
        member: Member<Link>,
    },
    /// A player's connection moved to another candidate pair.
    Path {
        /// The player's connection.
        connection: u64,
        /// The new path (boxed: it is large).
        path: Box<crate::rtc::SelectedPath>,
    },
    /// A player's data channel closed.
    Left {
        /// The player's connection.
        connection: u64,
    },
    /// Chat from a player: shown to the host; the reply says who else gets it (the player's
    /// connection task delivers it, waiting for room, which slows that player down rather
    /// than dropping lines).
    Chat {
        /// The player's connection.
        connection: u64,
        /// The line.
        text: String,
        /// Where the other players go.
        reply: oneshot::Sender<ChatTargets>,
    },
    /// A player opened another data channel.
    Channel {
        /// The player's connection.
        connection: u64,
        /// The channel's label.
        label: String,
        /// Its id.
        channel: ChannelId,
    },
    /// A message on a player's other data channel.
    Data {
        /// The player's connection.
        connection: u64,
        /// The channel's label.
        label: String,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A joiner was turned away.
    Rejected {
        /// The joiner's identity URL, or its address before a valid offer.
        peer: String,
        /// Why.
        reason: RejectReason,
    },
    /// A joiner's connection failed, a player sent something refused, or a chat line was not
    /// delivered.
    Warning {
        /// What happened.
        message: String,
    },
    /// A connection failed before it opened the lobby channel (counted, not logged).
    EarlyFailure,
}

/// The lobby task's handle on a player's connection.
pub(super) struct Link {
    /// Sends on the player's data channels.
    pub sender: RtcSender,
    /// The player's chat channel.
    pub chat: ChannelId,
    /// The player's other data channels (e.g. [`crate::lobby::GAME_LABEL`]).
    pub channels: ChannelLabels,
    /// Dropping it ends the player's connection task (a rejoin by the same identity).
    pub _kick: oneshot::Sender<()>,
}

/// The lobby task's state.
pub(super) struct LobbyTask {
    pub ctx: Arc<Context>,
    /// The handlers of every accepted connection (`super::listen::router`).
    pub router: Arc<Router>,
    pub roster: Roster<Link>,
    pub events: mpsc::UnboundedSender<HostEvent>,
    pub gate: Gate,
    /// The last `session.json` write failed (e.g. a full disk): retried at the next heartbeat,
    /// join or leave.
    pub session_unsaved: bool,
    pub _lock: ArchiveLock,
}

/// The receiving ends of the lobby task's inputs.
pub(super) struct Inputs {
    /// The host's endpoint (its relay sessions live as long as it does).
    pub endpoint: Arc<Endpoint>,
    /// Connections arriving over TCP and through the relay.
    pub acceptor: Acceptor,
    /// The archive's announcements (relay, LAN), withdrawn when the lobby ends.
    pub publications: Vec<Publication>,
    /// From the user.
    pub commands: mpsc::UnboundedReceiver<HostCommand>,
    /// From connection tasks.
    pub reports: mpsc::UnboundedReceiver<Report>,
    /// Set to tell connection tasks that the lobby ends.
    pub shutdown: watch::Sender<bool>,
    /// The `session.json` heartbeat period.
    pub heartbeat: Duration,
}

impl LobbyTask {
    pub(super) async fn run(mut self, inputs: Inputs) -> Result<(), crate::lobby::LobbyError> {
        let Inputs {
            endpoint,
            mut acceptor,
            publications,
            mut commands,
            mut reports,
            shutdown,
            heartbeat,
        } = inputs;
        let mut connections = JoinSet::new();
        let mut next_id = 0u64;
        let mut ticker =
            tokio::time::interval_at(crate::time::deadline_after(heartbeat), heartbeat);
        let mut report = tokio::time::interval_at(
            tokio::time::Instant::now() + REFUSALS_REPORT_INTERVAL,
            REFUSALS_REPORT_INTERVAL,
        );
        // A dropped `Host` (without `shutdown`) leaves the lobby running, as it always has.
        let mut users = true;
        let done = loop {
            tokio::select! {
                Some(accepted) = acceptor.next() => match accepted {
                    Accepted::Incoming(incoming) => {
                        // A refused TCP socket is closed, a refused relayed stream destroyed at
                        // the relay, by the drop.
                        let source = incoming.peer_addr().map_or(Source::Relay, |a| Source::of(&a));
                        if self.admit_connection(source, connections.len()) {
                            next_id += 1;
                            let abort = connections.spawn(serve(self.ctx.clone(), self.router.clone(), next_id, incoming));
                            self.gate.track(next_id, source, Some(abort));
                        }
                    }
                    Accepted::Relay { url, state } => self.emit(HostEvent::Relay { url, state }),
                    Accepted::RelayStopped { url } => {
                        self.warn(format!("the relay client for {url} stopped"));
                    }
                    Accepted::Failed(e) => {
                        // E.g. out of file descriptors: counted, and a pause so that a
                        // persistent error does not spin.
                        tracing::debug!("accept failed: {e}");
                        self.gate.accept_errors += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                },
                Some(ended) = connections.join_next(), if !connections.is_empty() => {
                    if let Ok(id) = ended {
                        self.gate.untrack(id);
                    }
                }
                _ = ticker.tick() => {
                    self.roster.heartbeat(now_ms());
                    self.apply_roster();
                }
                _ = report.tick() => {
                    if let Some(summary) = self.gate.report() {
                        self.warn(summary);
                    }
                }
                command = commands.recv(), if users => match command {
                    Some(HostCommand::Shutdown { done }) => break Some(done),
                    Some(command) => self.handle_command(command),
                    None => users = false,
                },
                Some(report) = reports.recv() => {
                    self.handle_report(report);
                    self.apply_roster();
                }
            }
        };
        // Mark the session ended first, while readers are still connected, and give live
        // replication a moment to carry that block to them before the connections close.
        let ended = self.roster.end(now_ms());
        let written = write_session(&self.ctx.archive, &ended);
        tokio::time::sleep(ENDED_GRACE).await;
        // Then tell every connection task to close its data channel and connection (a joiner
        // still waiting for its answer is told the lobby ended), and wait a little for them so
        // that players see a clean close rather than a timeout.
        let _ = shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        connections.abort_all();
        // Friends looking for the archive stop finding it (a LAN goodbye, a relay unannounce);
        // bounded, as a relay that is down would otherwise hold the end up.
        let withdraw = futures_util::future::join_all(publications.into_iter().map(|p| p.stop()));
        let _ = tokio::time::timeout(Duration::from_secs(2), withdraw).await;
        drop(endpoint);
        written?;
        if let Some(done) = done {
            let _ = done.send(());
        }
        Ok(())
    }

    /// Whether to serve a new connection from `source` (`total` being served): applies the
    /// gate's decision, evicting or counting a refusal.
    fn admit_connection(&mut self, source: Source, total: usize) -> bool {
        match self.gate.decide(source, total) {
            Decision::Accept => true,
            Decision::Evict(id) => {
                self.gate.evict(id);
                true
            }
            refused => {
                self.gate.refuse(&refused);
                false
            }
        }
    }

    fn handle_command(&mut self, command: HostCommand) {
        match command {
            HostCommand::Say { text } => {
                if let Err(e) = check_chat(&text) {
                    self.warn(format!("your {e}"));
                    return;
                }
                for message in self.host_targets().send_now(&text) {
                    self.connection_warning(message);
                }
            }
            HostCommand::Recipients { reply } => {
                let _ = reply.send(self.host_targets());
            }
            HostCommand::Send { to, label, data } => {
                let targets = self
                    .roster
                    .players()
                    .filter(|p| to.as_deref().is_none_or(|url| url == p.url));
                for player in targets {
                    if let Some(channel) = player.link.channels.channel(&label) {
                        if let Err(e) = player.link.sender.send(channel, &data) {
                            tracing::debug!(player = %player.url, "game data not sent: {e}");
                        }
                    }
                }
            }
            HostCommand::Shutdown { .. } => unreachable!("handled by run"),
        }
    }

    fn handle_report(&mut self, report: Report) {
        match report {
            Report::Admit {
                connection,
                peer,
                reply,
            } => {
                // A connection closed to make room meanwhile gets nothing.
                if !self.gate.open.contains_key(&connection) {
                    let _ = reply.send(false);
                    return;
                }
                let free = self.roster.admit(&peer, now_ms());
                if free {
                    // Admitted: no longer counted against its address, never evicted.
                    self.gate.untrack(connection);
                }
                if reply.send(free).is_err() && free {
                    self.roster.release();
                }
            }
            Report::Release => self.roster.release(),
            Report::Joined { member } => self.roster.joined(member, now_ms()),
            Report::Left { connection } => self.roster.left(connection, now_ms()),
            Report::Path { connection, path } => self.roster.path(connection, path),
            Report::Chat {
                connection,
                text,
                reply,
            } => {
                if let Some(player) = self.roster.player(connection) {
                    let (url, name) = (player.url.clone(), player.name.clone());
                    let players = self
                        .roster
                        .players()
                        .filter(|p| p.id != connection)
                        .map(|p| (p.url.clone(), p.link.sender.clone(), p.link.chat))
                        .collect();
                    let _ = reply.send(ChatTargets {
                        from: url.clone(),
                        name: name.clone(),
                        players,
                    });
                    self.emit(HostEvent::Message(ChatMessage {
                        from: url,
                        name,
                        text,
                    }));
                }
            }
            Report::Channel {
                connection,
                label,
                channel,
            } => {
                if let Some(player) = self.roster.player_mut(connection) {
                    player.link.channels.insert(channel, &label);
                }
            }
            Report::Data {
                connection,
                label,
                data,
            } => {
                if let Some(player) = self.roster.player(connection) {
                    self.emit(HostEvent::Data(ChannelData {
                        from: player.url.clone(),
                        label,
                        data,
                    }));
                }
            }
            Report::Rejected { peer, reason } => self.emit(HostEvent::Rejected { peer, reason }),
            Report::Warning { message } => self.connection_warning(message),
            Report::EarlyFailure => self.gate.failed_early += 1,
        }
    }

    /// Every player, as recipients of the host's own chat line.
    fn host_targets(&self) -> ChatTargets {
        ChatTargets {
            from: self.ctx.identity.url().base(),
            name: self.roster.session().name.clone(),
            players: self
                .roster
                .players()
                .map(|p| (p.url.clone(), p.link.sender.clone(), p.link.chat))
                .collect(),
        }
    }

    /// Carries out what the roster's changes ask: `session.json` writes and events, in order.
    /// A failed write (e.g. a full disk) does not end the lobby: it is reported and retried at
    /// the next heartbeat, join or leave.
    fn apply_roster(&mut self) {
        while let Some(event) = self.roster.poll_event() {
            match event {
                RosterEvent::Publish(session) => match write_session(&self.ctx.archive, &session) {
                    Ok(()) => {
                        if std::mem::take(&mut self.session_unsaved) {
                            tracing::info!("session.json written again");
                        }
                    }
                    Err(e) => {
                        self.session_unsaved = true;
                        self.warn(format!(
                                "cannot write session.json (the lobby goes on; retrying at the next heartbeat, join or leave): {e}"
                            ));
                    }
                },
                RosterEvent::Host(event) => self.emit(event),
            }
        }
    }

    fn emit(&self, event: HostEvent) {
        let _ = self.events.send(event);
    }

    fn warn(&self, message: String) {
        tracing::warn!("{message}");
        self.emit(HostEvent::Warning { message });
    }

    /// A warning about one connection or player: at most [`MAX_WARNINGS_PER_INTERVAL`] per
    /// interval are shown, the rest counted into the summary.
    fn connection_warning(&mut self, message: String) {
        if self.gate.warnings < MAX_WARNINGS_PER_INTERVAL {
            self.gate.warnings += 1;
            self.warn(message);
        } else {
            tracing::debug!("{message}");
            self.gate.suppressed += 1;
        }
    }
}
