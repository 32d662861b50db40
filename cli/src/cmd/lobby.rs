//! What `host` and `join` share: the password file, chat lines typed on stdin, and printing
//! [`HostEvent`]s and [`PlayerEvent`]s.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use dat_social::lobby::{self, ChannelData, ChatMessage, HostEvent, PlayerEvent};
use dat_social::relay::client::RelayState;

use crate::event::{Event, PathInfo};
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

/// Prints an event of the lobby the user hosts. Names, chat, channel labels and warnings come
/// from other people: in text mode they go through [`Untrusted`].
pub fn print_host_event(event: &HostEvent, out: &Output) {
    let (json, text) = host_event(event);
    out.event(&json, &text);
}

/// Prints an event of the lobby the user joined (other people's text through [`Untrusted`]).
pub fn print_player_event(event: &PlayerEvent, out: &Output) {
    let (json, text) = player_event(event);
    out.event(&json, &text);
}

/// Prints a `warning` event (e.g. a chat line refused), host or player side.
pub fn print_warning(message: String, out: &Output) {
    let (json, text) = warning(message);
    out.event(&json, &text);
}

/// A host's lobby event as its `--json` [`Event`] and its line of text.
fn host_event(event: &HostEvent) -> (Event, String) {
    match event {
        HostEvent::PeerJoined {
            peer,
            name,
            peers,
            path,
        } => {
            let path = path.as_ref().map(PathInfo::from);
            let via = path.as_ref().map(|p| format!(", {}", p.text()));
            (
                Event::PeerJoined {
                    peer: peer.clone(),
                    name: name.clone(),
                    peers: *peers,
                    path,
                },
                format!(
                    "* {} joined ({peers} players{})",
                    Untrusted(name),
                    via.unwrap_or_default()
                ),
            )
        }
        HostEvent::PeerPath { peer, name, path } => {
            let path = PathInfo::from(path);
            let text = format!("* {} is now on {}", Untrusted(name), path.text());
            let event = Event::PathChanged {
                peer: Some(peer.clone()),
                name: Some(name.clone()),
                path,
            };
            (event, text)
        }
        HostEvent::PeerLeft { peer, name, peers } => (
            Event::PeerLeft {
                peer: peer.clone(),
                name: name.clone(),
                peers: *peers,
            },
            format!("* {} left ({peers} players)", Untrusted(name)),
        ),
        HostEvent::Rejected { peer, reason } => (
            Event::PeerRejected {
                peer: peer.clone(),
                reason: *reason,
            },
            format!("* turned away {}: {}", Untrusted(peer), reason.as_str()),
        ),
        HostEvent::Message(chat) => message(chat),
        HostEvent::Warning { message } => warning(message.clone()),
        HostEvent::Data(data) => channel_data(data),
        HostEvent::Relay { url, state } => relay(url, state),
    }
}

/// A player's lobby event as its `--json` [`Event`] and its line of text.
fn player_event(event: &PlayerEvent) -> (Event, String) {
    match event {
        PlayerEvent::Message(chat) => message(chat),
        PlayerEvent::Data(data) => channel_data(data),
        PlayerEvent::Path(path) => {
            let path = PathInfo::from(path);
            let text = format!("* the connection to the host is now on {}", path.text());
            let event = Event::PathChanged {
                peer: None,
                name: None,
                path,
            };
            (event, text)
        }
        PlayerEvent::Disconnected => (
            Event::Disconnected,
            "* disconnected from the lobby".to_string(),
        ),
    }
}

/// A chat line, on either side.
fn message(chat: &ChatMessage) -> (Event, String) {
    let ChatMessage { from, name, text } = chat;
    (
        Event::Message {
            from: from.clone(),
            name: name.clone(),
            text: text.clone(),
        },
        format!("<{}> {}", Untrusted(name), Untrusted(text)),
    )
}

/// Bytes on a game channel, on either side (only their count is printed).
fn channel_data(data: &ChannelData) -> (Event, String) {
    let ChannelData { from, label, data } = data;
    (
        Event::Data {
            from: from.clone(),
            label: label.clone(),
            bytes: data.len(),
        },
        format!("* {} bytes on {} from {from}", data.len(), Untrusted(label)),
    )
}

/// A warning that does not end the command.
fn warning(message: String) -> (Event, String) {
    let text = format!("! {}", Untrusted(&message));
    (Event::Warning { url: None, message }, text)
}

/// A change of the relay the host listens through.
fn relay(url: &str, state: &RelayState) -> (Event, String) {
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
        url: url.to_string(),
        state: state.into(),
    };
    (event, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(event: &Event) -> String {
        serde_json::to_string(event).unwrap()
    }

    #[test]
    fn chat_and_data_print_the_same_json_on_both_sides() {
        let chat = ChatMessage {
            from: "dat://ann".into(),
            name: "ann".into(),
            text: "hi".into(),
        };
        let (host, _) = host_event(&HostEvent::Message(chat.clone()));
        let (player, text) = player_event(&PlayerEvent::Message(chat));
        assert_eq!(host, player);
        assert_eq!(
            json(&host),
            r#"{"event":"message","from":"dat://ann","name":"ann","text":"hi"}"#
        );
        assert_eq!(text, "<ann> hi");
        let data = ChannelData {
            from: "dat://host".into(),
            label: "game".into(),
            data: vec![0; 3],
        };
        let (host, _) = host_event(&HostEvent::Data(data.clone()));
        let (player, _) = player_event(&PlayerEvent::Data(data));
        assert_eq!(host, player);
        assert_eq!(
            json(&host),
            r#"{"event":"data","from":"dat://host","label":"game","bytes":3}"#
        );
    }

    #[test]
    fn a_warning_has_no_url_and_disconnected_no_fields() {
        let (event, text) = warning("line refused".into());
        assert_eq!(
            json(&event),
            r#"{"event":"warning","message":"line refused"}"#
        );
        assert_eq!(text, "! line refused");
        let (event, _) = player_event(&PlayerEvent::Disconnected);
        assert_eq!(json(&event), r#"{"event":"disconnected"}"#);
    }
}
