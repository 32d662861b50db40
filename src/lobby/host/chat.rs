//! The host's chat: relaying a player's line to the others and sending the host's own, with
//! back-pressure ([`HostChat::say`], [`deliver`]) or without ([`ChatTargets::send_now`]).

use tokio::sync::{mpsc, oneshot};

use super::task::{HostCommand, Report};
use super::CHAT_SEND_WAIT;
use crate::lobby::chat::chat_out;
use crate::lobby::{check_chat, ChatError};
use crate::rtc::{self, ChannelId, RtcSender};

/// Who gets a chat line: the sender's URL and name, and each recipient's URL, send handle and
/// chat channel.
pub(super) struct ChatTargets {
    /// The sender's identity URL.
    pub from: String,
    /// The sender's name.
    pub name: String,
    /// (player URL, its connection's sender, its chat channel).
    pub players: Vec<(String, RtcSender, ChannelId)>,
}

impl ChatTargets {
    /// Sends `text` to every target without waiting: a player whose send queue is full misses
    /// it. Returns a warning per player that missed it (a player gone meanwhile is not one:
    /// `PeerLeft` says so).
    pub(super) fn send_now(&self, text: &str) -> Vec<String> {
        let line = chat_out(&self.from, &self.name, text);
        let mut missed = Vec::new();
        for (url, sender, channel) in &self.players {
            if let Err(e) = sender.send_text(*channel, &line) {
                if !matches!(e, rtc::RtcError::Closed) {
                    missed.push(format!("chat line not delivered to {url}: {e}"));
                }
            }
        }
        missed
    }
}

/// Sends the host's chat lines to every player; cheap to clone, usable from any task (e.g.
/// one that reads stdin while another reads lobby events).
#[derive(Clone)]
pub struct HostChat {
    pub(super) commands: mpsc::UnboundedSender<HostCommand>,
    pub(super) reports: mpsc::UnboundedSender<Report>,
}

impl std::fmt::Debug for HostChat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostChat")
    }
}

impl HostChat {
    /// Sends one chat line to every player, waiting (up to [`CHAT_SEND_WAIT`] per player)
    /// while a player's send queue is full, so that a pasted burst is slowed down to what the
    /// network carries instead of dropped. A player still full after that, or gone meanwhile,
    /// misses the line: reported as a [`crate::lobby::HostEvent::Warning`].
    ///
    /// Errors: [`ChatError::TooLong`] above [`crate::lobby::MAX_CHAT_BYTES`] (nothing is
    /// sent), [`ChatError::Closed`] once the lobby has ended.
    pub async fn say(&self, text: &str) -> Result<(), ChatError> {
        check_chat(text)?;
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(HostCommand::Recipients { reply })
            .map_err(|_| ChatError::Closed)?;
        let targets = rx.await.map_err(|_| ChatError::Closed)?;
        deliver(&self.reports, targets, text).await;
        Ok(())
    }
}

/// Sends a chat line to `targets`, waiting (up to [`CHAT_SEND_WAIT`] per player) while a
/// player's send queue is full; a player that misses it is reported as a warning.
pub(super) async fn deliver(
    reports: &mpsc::UnboundedSender<Report>,
    targets: ChatTargets,
    text: &str,
) {
    let line = chat_out(&targets.from, &targets.name, text);
    for (url, sender, channel) in targets.players {
        let sent =
            tokio::time::timeout(CHAT_SEND_WAIT, sender.send_text_wait(channel, &line)).await;
        let problem = match sent {
            Ok(Ok(())) => continue,
            Ok(Err(rtc::RtcError::Closed)) => continue, // left meanwhile: PeerLeft says so
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("its send queue stayed full for {CHAT_SEND_WAIT:?}"),
        };
        let _ = reports.send(Report::Warning {
            message: format!("chat line not delivered to {url}: {problem}"),
        });
    }
}
