//! What the CLI prints (human text, or one JSON object per line with `--json`), and the inputs it
//! waits on besides the network: stdin lines and shutdown signals.
//!
//! Every line reaches the terminal through [`Output`], which guarantees that no control
//! character (ESC, BEL, CR, ..., C1 controls) nor bidirectional-override character is written
//! raw, whoever forgot what: text built from other people's data wraps each value in
//! [`Untrusted`] (which also escapes line breaks, so a name can't forge a line), and
//! [`Output::event`] escapes whatever else slipped through except our own line breaks. JSON
//! lines (one [`Event`] each, the `--json` contract of [`crate::event`]) escape the same
//! characters as `\uXXXX`.
//!
//! A write to stdout that fails (a full disk, a closed pipe) is remembered: later events are
//! dropped, long-running commands end as on Ctrl-C, and [`Output::finish`] turns it into the exit
//! status (1 and a message on stderr; a closed pipe ends quietly).

use std::fmt;
use std::io::Write;
use std::pin::Pin;
use std::sync::Mutex;

use tokio::sync::{mpsc, Notify};

use crate::event::Event;

/// Whether `c` must not reach a terminal raw: C0 and C1 control characters and DEL
/// (`char::is_control`), and the Unicode bidirectional embeddings, overrides and isolates, which
/// reorder what the reader sees.
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Text from other people (a name, a chat line, a remote error message) to put into a line of
/// human output: its [`Display`](fmt::Display) escapes every control character, line breaks
/// included (`\u{1b}`, `\r`, `\n`), and bidirectional overrides, so that nobody can drive or
/// garble the reader's terminal. Honours width and alignment (`{:<20}`).
#[derive(Clone, Copy, Debug)]
pub struct Untrusted<'a>(pub &'a str);

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.0.chars().any(is_unsafe) {
            return f.pad(self.0);
        }
        f.pad(&escape(self.0, is_unsafe))
    }
}

/// `text` with each character for which `escape_it` holds written as its Rust escape.
fn escape(text: &str, escape_it: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if escape_it(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// [`Untrusted`] as an owned string.
pub fn clean(s: &str) -> String {
    Untrusted(s).to_string()
}

/// A line of our own human text, made terminal-safe as a last line of defence: every unsafe
/// character but the line breaks we put there is escaped (values from other people should
/// already have gone through [`Untrusted`], which escapes their line breaks too).
fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(|c| c != '\n' && is_unsafe(c)) {
        std::borrow::Cow::Owned(escape(text, |c| c != '\n' && is_unsafe(c)))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// `event` as one line of JSON (no line break: serde_json escapes those inside strings).
fn event_json(event: &Event) -> String {
    // Every field is a string, a number, a bool, null or a struct of those with string keys:
    // serializing cannot fail.
    serde_json::to_string(event).expect("an Event serializes to JSON")
}

/// A JSON line with the characters serde_json leaves raw but a terminal acts on (DEL, the C1
/// controls, bidirectional overrides) written as `\uXXXX`: the same JSON value, safe to show.
fn json_safe(line: String) -> String {
    if !line.chars().any(is_unsafe) {
        return line;
    }
    let mut out = String::with_capacity(line.len() + 16);
    for c in line.chars() {
        if is_unsafe(c) {
            // Inside a JSON string (serde_json already escaped the C0 controls, so these can
            // only be in strings); every such character is in the Basic Multilingual Plane.
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// An error and its causes on one line, `outer: cause: cause`, each cause once: a cause whose
/// text the previous message already contains (an error that prints its source and also
/// returns it from `source()`) is not repeated.
pub fn describe(err: &anyhow::Error) -> String {
    let mut message = String::new();
    let mut previous = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if text.is_empty() || previous.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
        previous = text;
    }
    message
}

/// Resolves [`shutdown_signal`] once stdout can't be written any more.
static STDOUT_GONE: Notify = Notify::const_new();

/// Where events go.
pub struct Output {
    json: bool,
    /// The first error writing stdout; nothing more is written after it.
    failed: Mutex<Option<std::io::Error>>,
}

impl Output {
    /// Output in JSON lines (`json`) or human text.
    pub fn new(json: bool) -> Self {
        Output {
            json,
            failed: Mutex::new(None),
        }
    }

    /// Whether events are printed as JSON lines.
    #[allow(dead_code)] // for commands that print something only in text mode
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Prints one event: with `--json` the [`Event`] as one JSON line, else `text` (our own
    /// words; other people's values in it wrapped in [`Untrusted`]).
    pub fn event(&self, event: &Event, text: &str) {
        let line = if self.json {
            json_safe(event_json(event))
        } else {
            terminal_safe(text).into_owned()
        };
        self.write_line(&line);
    }

    /// Prints a line of human text only (nothing with `--json`), e.g. "no friends yet".
    pub fn note(&self, text: &str) {
        if !self.json {
            self.write_line(&terminal_safe(text));
        }
    }

    /// Writes `line` and a newline to stdout, unless an earlier write failed. A failure is kept
    /// for [`Output::finish`] and ends long-running commands ([`shutdown_signal`]); it never
    /// panics (a closed pipe is an error like any other here).
    fn write_line(&self, line: &str) {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        if failed.is_some() {
            return;
        }
        let mut stdout = std::io::stdout().lock();
        let written = writeln!(stdout, "{line}").and_then(|_| stdout.flush());
        if let Err(e) = written {
            *failed = Some(e);
            STDOUT_GONE.notify_one();
        }
    }

    /// Prints an error: on stderr as one line of text (each cause once, control characters
    /// escaped as in [`Untrusted`]), and with `--json` also as an `error` event on stdout.
    pub fn error(&self, err: &anyhow::Error) {
        let message = describe(err);
        if self.json {
            self.event(
                &Event::Error {
                    message: message.clone(),
                },
                "",
            );
        }
        // A message may quote other people's data: escaped like it, on one line. A closed or
        // full stderr has nowhere left to report to: ignore it, never panic.
        let _ = writeln!(std::io::stderr().lock(), "error: {}", Untrusted(&message));
    }

    /// The exit status once the command is done with status `code`: `code`, unless writing
    /// stdout failed, in which case at least 1, with the reason on stderr (`cannot write to
    /// stdout: No space left on device`); a closed pipe (the reader went away, as `| head`
    /// does) is not an error of ours and ends quietly with `code`.
    pub fn finish(&self, code: u8) -> u8 {
        let failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        match &*failed {
            None => code,
            Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => code,
            Some(e) => {
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "error: cannot write to stdout: {e}"
                );
                code.max(1)
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

/// Resolves on Ctrl-C (SIGINT) or SIGTERM, or once stdout can't be written any more (nobody
/// reads what a lobby or a watch prints: end it as the user would).
///
/// The signal handlers are installed by this call, not when the future is first polled: call it
/// before printing the event that tells a script it may now signal us (`hosting`, `connected`,
/// `listening`, `watching`), so that a signal sent right after that event is never the default
/// action that kills the process. Must be called inside the tokio runtime.
pub fn shutdown_signal() -> Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        Box::pin(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
                _ = STDOUT_GONE.notified() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Box::pin(async {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = STDOUT_GONE.notified() => {}
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

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

    #[test]
    fn untrusted_text_has_no_raw_control_or_bidi_characters() {
        let evil = "a\u{1b}[2J\u{7}\r\n\u{9b}1m\u{202e}b";
        let shown = format!("<{:<4}>", Untrusted(evil));
        assert!(!shown.chars().any(is_unsafe), "{shown:?}");
        assert_eq!(shown, "<a\\u{1b}[2J\\u{7}\\r\\n\\u{9b}1m\\u{202e}b>");
        assert_eq!(format!("{:<4}|", Untrusted("ab")), "ab  |");
        // Our own line breaks survive the backstop; everything else unsafe is escaped.
        assert_eq!(terminal_safe("x\ny\u{1b}"), "x\ny\\u{1b}");
    }

    #[test]
    fn json_lines_escape_what_serde_json_leaves_raw_and_keep_the_value() {
        let name = "x\u{7f}\u{9b}\u{202e}y\u{1b}";
        let line = json_safe(json!({ "name": name }).to_string());
        assert!(!line.chars().any(is_unsafe), "{line:?}");
        let back: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["name"], name);
    }

    #[test]
    fn each_cause_of_an_error_is_described_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("archive.lock: {source}")]
        struct Wrapped {
            source: std::io::Error,
        }
        let io = std::io::Error::other("Is a directory");
        let err = anyhow::Error::new(Wrapped { source: io }).context("cannot update");
        assert_eq!(
            describe(&err),
            "cannot update: archive.lock: Is a directory"
        );
        let plain = anyhow::anyhow!("one").context("two");
        assert_eq!(describe(&plain), "two: one");
    }
}
