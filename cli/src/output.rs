//! What the CLI prints (human text, or one JSON object per line with `--json`), and the inputs it
//! waits on besides the network: stdin lines and shutdown signals.

use std::io::Write;
use std::pin::Pin;

use dat_social::lobby::LobbyEvent;
use dat_social::relay::client::RelayState;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Text from other people (names, chat) with its control characters escaped, so that nobody
/// can drive the reader's terminal.
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Where events go.
pub struct Output {
    json: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Output { json }
    }

    /// Whether events are printed as JSON lines.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Prints one event: `{"event": name, ...fields}` with `--json`, else `text`.
    pub fn event(&self, name: &str, fields: Value, text: &str) {
        let mut stdout = std::io::stdout().lock();
        let line = if self.json {
            let mut obj = serde_json::Map::new();
            obj.insert("event".into(), json!(name));
            if let Value::Object(map) = fields {
                obj.extend(map);
            }
            Value::Object(obj).to_string()
        } else {
            text.to_string()
        };
        // A closed stdout (e.g. `| head`) must not panic the program.
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    }

    /// Prints an error: on stderr as text, and with `--json` also as an `error` event on stdout.
    pub fn error(&self, err: &anyhow::Error) {
        let message = format!("{err:#}");
        if self.json {
            self.event("error", json!({ "message": message }), "");
        }
        eprintln!("error: {message}");
    }

    /// Prints a lobby event. Names and chat come from other people: in text mode their control
    /// characters are escaped so that nobody can drive the reader's terminal.
    pub fn lobby_event(&self, event: &LobbyEvent) {
        match event {
            LobbyEvent::PeerJoined { peer, name, peers } => self.event(
                "peer-joined",
                json!({ "peer": peer, "name": name, "peers": peers }),
                &format!("* {} joined ({peers} players)", clean(name)),
            ),
            LobbyEvent::PeerLeft { peer, name, peers } => self.event(
                "peer-left",
                json!({ "peer": peer, "name": name, "peers": peers }),
                &format!("* {} left ({peers} players)", clean(name)),
            ),
            LobbyEvent::Rejected { peer, reason } => self.event(
                "peer-rejected",
                json!({ "peer": peer, "reason": reason }),
                &format!("* turned away {peer}: {}", reason.as_str()),
            ),
            LobbyEvent::Message { from, name, text } => self.event(
                "message",
                json!({ "from": from, "name": name, "text": text }),
                &format!("<{}> {}", clean(name), clean(text)),
            ),
            LobbyEvent::Warning { message } => self.event(
                "warning",
                json!({ "message": message }),
                &format!("! {message}"),
            ),
            LobbyEvent::Data { from, label, data } => self.event(
                "data",
                json!({ "from": from, "label": label, "bytes": data.len() }),
                &format!("* {} bytes on {label} from {from}", data.len()),
            ),
            LobbyEvent::Disconnected => {
                self.event("disconnected", json!({}), "* disconnected from the lobby")
            }
            LobbyEvent::Relay { url, state } => {
                let mut fields = json!({ "url": url, "state": state.name() });
                let text = match state {
                    RelayState::Reconnecting {
                        attempt,
                        delay,
                        error,
                    } => {
                        fields["attempt"] = json!(attempt);
                        fields["delay_ms"] = json!(delay.as_millis() as u64);
                        fields["error"] = json!(error);
                        format!(
                            "! relay {url} lost ({error}); reconnecting in {} ms (attempt {attempt})",
                            delay.as_millis()
                        )
                    }
                    _ => format!("* relay {url}: {}", state.name()),
                };
                self.event("relay", fields, &text)
            }
        }
    }
}

/// Lines typed on stdin, read on a blocking thread.
pub struct StdinLines {
    rx: Option<mpsc::Receiver<String>>,
}

impl StdinLines {
    /// The next line; `None` once, at end of input, then never resolves again, so that the
    /// program keeps running (until Ctrl-C) when stdin is closed or `/dev/null`.
    pub async fn next(&mut self) -> Option<String> {
        match &mut self.rx {
            Some(rx) => {
                let line = rx.recv().await;
                if line.is_none() {
                    self.rx = None;
                }
                line
            }
            None => std::future::pending().await,
        }
    }
}

/// Starts reading stdin lines.
pub fn stdin_lines() -> StdinLines {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    StdinLines { rx: Some(rx) }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
pub fn shutdown_signal() -> Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    })
}
