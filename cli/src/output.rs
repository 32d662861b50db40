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

/// One line read from stdin, without its line ending (`\n` or `\r\n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StdinLine {
    /// A line of at most the reader's limit. `lossy`: it was not valid UTF-8, and each invalid
    /// sequence was replaced with U+FFFD.
    Text { text: String, lossy: bool },
    /// A line longer than the reader's limit: skipped without being kept in memory.
    TooLong {
        /// Its length, in bytes.
        bytes: usize,
    },
}

/// Lines typed on stdin, read on a blocking thread. At most [`STDIN_QUEUE`] lines wait to be
/// taken; past that the thread stops reading, so a pasted burst waits in the pipe (back-pressure)
/// instead of piling up in memory or being dropped.
pub struct StdinLines {
    rx: Option<mpsc::Receiver<StdinLine>>,
}

/// Lines read ahead from stdin and not yet taken: 64.
pub const STDIN_QUEUE: usize = 64;

impl StdinLines {
    /// The next line; `None` once, at end of input, then never resolves again, so that the
    /// program keeps running (until Ctrl-C) when stdin is closed or `/dev/null`.
    pub async fn next(&mut self) -> Option<StdinLine> {
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

/// Starts reading stdin lines of up to `max_bytes` each (longer ones come as
/// [`StdinLine::TooLong`]; invalid UTF-8 is replaced, never the end of input). A read error
/// other than an interrupted call counts as the end of input.
pub fn stdin_lines(max_bytes: usize) -> StdinLines {
    let (tx, rx) = mpsc::channel(STDIN_QUEUE);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let _ = read_lines(&mut stdin.lock(), max_bytes, |line| {
            tx.blocking_send(line).is_ok()
        });
    });
    StdinLines { rx: Some(rx) }
}

/// Splits `input` into [`StdinLine`]s of at most `max_bytes` (a line ending in `\r\n`
/// counts without the `\r`), calling `each` until it returns `false`. Holds at most
/// `max_bytes + 1` bytes of a line. Errors: the read failed.
pub fn read_lines(
    input: &mut impl std::io::BufRead,
    max_bytes: usize,
    mut each: impl FnMut(StdinLine) -> bool,
) -> std::io::Result<()> {
    let mut line = Vec::new();
    let mut total = 0usize;
    let mut ends_in_cr = false;
    loop {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let eof = buf.is_empty();
        let (chunk, newline) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], true),
            None => (buf, false),
        };
        let used = chunk.len() + usize::from(newline);
        total += chunk.len();
        if let Some(last) = chunk.last() {
            ends_in_cr = *last == b'\r';
        }
        if total <= max_bytes + 1 {
            line.extend_from_slice(chunk);
        } else {
            line.clear();
        }
        input.consume(used);
        if !(newline || eof && total > 0) {
            if eof {
                return Ok(());
            }
            continue;
        }
        let mut bytes = std::mem::take(&mut total);
        if ends_in_cr {
            bytes -= 1;
            line.pop();
        }
        ends_in_cr = false;
        let out = if bytes > max_bytes {
            line.clear();
            StdinLine::TooLong { bytes }
        } else {
            match String::from_utf8(std::mem::take(&mut line)) {
                Ok(text) => StdinLine::Text { text, lossy: false },
                Err(e) => StdinLine::Text {
                    text: String::from_utf8_lossy(e.as_bytes()).into_owned(),
                    lossy: true,
                },
            }
        };
        if !each(out) || eof {
            return Ok(());
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<StdinLine> {
        let mut out = Vec::new();
        read_lines(&mut std::io::BufReader::with_capacity(7, input), max, |l| {
            out.push(l);
            true
        })
        .unwrap();
        out
    }

    fn text(t: &str, lossy: bool) -> StdinLine {
        StdinLine::Text {
            text: t.to_string(),
            lossy,
        }
    }

    #[test]
    fn invalid_utf8_is_replaced_and_later_lines_still_come() {
        let got = lines(b"ok\n\xff\xfe bad\r\nafter\nlast", 100);
        assert_eq!(
            got,
            vec![
                text("ok", false),
                text("\u{fffd}\u{fffd} bad", true),
                text("after", false),
                text("last", false)
            ]
        );
    }

    #[test]
    fn long_lines_are_reported_with_their_length_not_kept() {
        let mut input = b"0123456789\n".to_vec();
        input.extend(b"01234567890\r\n");
        input.extend(vec![b'x'; 5000]);
        input.extend(b"\nend\n");
        let got = lines(&input, 10);
        assert_eq!(
            got,
            vec![
                text("0123456789", false),
                StdinLine::TooLong { bytes: 11 },
                StdinLine::TooLong { bytes: 5000 },
                text("end", false)
            ]
        );
    }
}
