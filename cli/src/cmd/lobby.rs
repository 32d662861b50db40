//! What `host` and `join` share: the password file, chat lines typed on stdin, and printing
//! [`LobbyEvent`]s.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use dat_social::lobby::{self, LobbyEvent};
use dat_social::relay::client::RelayState;

use crate::event::Event;
use crate::output::{self, Output, Untrusted};

/// The lobby password: the first line of the file at `path` (`None`: no `--password-file`).
/// Errors: the file can't be read, or its first line is empty.
pub fn read_password(path: &Option<PathBuf>) -> Result<Option<Vec<u8>>> {
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the password file {}", path.display()))?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        bail!("the password file {} is empty", path.display());
    }
    Ok(Some(line.as_bytes().to_vec()))
}

/// Sends each stdin line as chat with `say`, one at a time (a line waits until the previous
/// one was queued: back-pressure down to stdin, nothing dropped). Returns the messages about
/// lines that were refused (too long, not sent) or altered (invalid UTF-8 replaced), each also
/// logged on stderr; the caller prints them as `warning` events.
pub fn send_stdin_chat<F, Fut>(say: F) -> tokio::sync::mpsc::UnboundedReceiver<String>
where
    F: Fn(String) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), lobby::ChatError>> + Send,
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stdin = output::stdin_lines(lobby::MAX_CHAT_BYTES);
        while let Some(line) = stdin.next().await {
            let problem = match line {
                output::StdinLine::Text { text, lossy } => {
                    let len = text.len();
                    match say(text).await {
                        Err(lobby::ChatError::Closed) => break,
                        Err(e) => Some(e.to_string()),
                        Ok(()) if lossy => Some(format!(
                            "a chat line ({len} bytes) was not valid UTF-8: sent with U+FFFD in place of the invalid bytes"
                        )),
                        Ok(()) => None,
                    }
                }
                output::StdinLine::TooLong { bytes } => Some(
                    lobby::ChatError::TooLong {
                        len: bytes,
                        max: lobby::MAX_CHAT_BYTES,
                    }
                    .to_string(),
                ),
            };
            if let Some(message) = problem {
                tracing::warn!("{message}");
                if tx.send(message).is_err() {
                    break;
                }
            }
        }
    });
    rx
}

/// Prints a lobby event. Names, chat, channel labels and warnings come from other people: in
/// text mode they go through [`Untrusted`].
pub fn print_lobby_event(event: &LobbyEvent, out: &Output) {
    let (json, text) = lobby_event(event);
    out.event(&json, &text);
}

/// A lobby event as its `--json` [`Event`] and its line of text.
fn lobby_event(event: &LobbyEvent) -> (Event, String) {
    match event {
        LobbyEvent::PeerJoined { peer, name, peers } => (
            Event::PeerJoined {
                peer: peer.clone(),
                name: name.clone(),
                peers: *peers,
            },
            format!("* {} joined ({peers} players)", Untrusted(name)),
        ),
        LobbyEvent::PeerLeft { peer, name, peers } => (
            Event::PeerLeft {
                peer: peer.clone(),
                name: name.clone(),
                peers: *peers,
            },
            format!("* {} left ({peers} players)", Untrusted(name)),
        ),
        LobbyEvent::Rejected { peer, reason } => (
            Event::PeerRejected {
                peer: peer.clone(),
                reason: *reason,
            },
            format!("* turned away {}: {}", Untrusted(peer), reason.as_str()),
        ),
        LobbyEvent::Message { from, name, text } => (
            Event::Message {
                from: from.clone(),
                name: name.clone(),
                text: text.clone(),
            },
            format!("<{}> {}", Untrusted(name), Untrusted(text)),
        ),
        LobbyEvent::Warning { message } => (
            Event::Warning {
                url: None,
                message: message.clone(),
            },
            format!("! {}", Untrusted(message)),
        ),
        LobbyEvent::Data { from, label, data } => (
            Event::Data {
                from: from.clone(),
                label: label.clone(),
                bytes: data.len(),
            },
            format!("* {} bytes on {} from {from}", data.len(), Untrusted(label)),
        ),
        LobbyEvent::Disconnected => (
            Event::Disconnected,
            "* disconnected from the lobby".to_string(),
        ),
        LobbyEvent::Relay { url, state } => {
            let text = match state {
                RelayState::Reconnecting {
                    attempt,
                    delay,
                    error,
                } => format!(
                    "! relay {url} lost ({}); reconnecting in {} ms (attempt {attempt})",
                    Untrusted(error),
                    delay.as_millis()
                ),
                _ => format!("* relay {url}: {}", state.name()),
            };
            let event = Event::Relay {
                url: url.clone(),
                state: state.into(),
            };
            (event, text)
        }
    }
}
