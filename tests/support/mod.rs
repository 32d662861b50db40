//! Runs the real `dat-social` binary as separate processes on loopback, reading their `--json`
//! event lines. Every wait is bounded ([`WAIT`] unless a caller gives its own bound), and a wait
//! that runs out panics naming the process and quoting its stderr so far.

#![allow(dead_code)]

pub mod js;
pub mod lan;
pub mod net;
pub mod relay;
pub mod stats;
pub mod sys;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Milliseconds since the epoch: the library's clock, the one `session.json` heartbeats use.
#[allow(unused_imports)]
pub use dat_social::schema::now_ms;

/// The binary under test (built by cargo for integration tests).
pub const BIN: &str = env!("CARGO_BIN_EXE_dat-social");

/// Default bound on any wait.
pub const WAIT: Duration = Duration::from_secs(20);

/// `dat-social dht-node` as the first node of a private network on loopback (any free port).
pub const DHT_BOOTSTRAPPER: &[&str] = &[
    "dht-node",
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--bootstrapper",
];

/// A user with a data directory of their own.
pub struct User {
    pub dir: tempfile::TempDir,
    pub name: String,
}

impl User {
    /// A new user, initialized with `dat-social init`.
    pub fn new(name: &str) -> User {
        let user = User {
            dir: tempfile::tempdir().expect("temp dir"),
            name: name.to_string(),
        };
        let out = user.run(&["init", "--name", name]);
        assert!(out.status.success(), "init failed: {}", out.stderr);
        user
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A command for this user with `--json`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("--data-dir")
            .arg(self.dir.path())
            .arg("--json")
            .args(args);
        cmd.env_remove("DAT_SOCIAL_HOME");
        cmd
    }

    /// A command for this user with `--json`, run inside network namespace `netns`.
    pub fn command_in(&self, netns: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", netns, BIN])
            .arg("--data-dir")
            .arg(self.dir.path())
            .arg("--json")
            .args(args);
        cmd.env_remove("DAT_SOCIAL_HOME");
        cmd
    }

    /// Starts a long-running command inside network namespace `netns`.
    pub fn spawn_in(&self, netns: &str, args: &[&str]) -> Proc {
        Proc::spawn(self.command_in(netns, args), args)
    }

    /// Runs a command to completion (bounded) and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn dat-social");
        let deadline = Instant::now() + WAIT;
        let mut timed_out = false;
        while child.try_wait().expect("wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                timed_out = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().expect("output");
        assert!(
            !timed_out,
            "dat-social {args:?} did not finish within {WAIT:?} (killed); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Output {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Starts a long-running command (host, join) with piped stdin.
    pub fn spawn(&self, args: &[&str]) -> Proc {
        Proc::spawn(self.command(args), args)
    }

    /// This user's `whoami --json` event.
    pub fn whoami(&self) -> Value {
        let out = self.run(&["whoami"]);
        assert!(out.status.success(), "whoami failed: {}", out.stderr);
        out.events()
            .into_iter()
            .find(|e| e["event"] == "whoami")
            .expect("whoami event")
    }

    /// The identity URL.
    pub fn url(&self) -> String {
        self.whoami()["url"].as_str().unwrap().to_string()
    }

    /// Writes a password file and returns its path.
    pub fn password_file(&self, password: &str) -> PathBuf {
        let path = self.dir.path().join(format!("pw-{}", password.len()));
        std::fs::write(&path, format!("{password}\n")).unwrap();
        path
    }
}

/// A finished command.
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The JSON events on stdout.
    pub fn events(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
            .collect()
    }

    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
}

/// A running process and its event lines.
pub struct Proc {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Value>,
    /// Events read but not yet taken by an `expect`.
    seen: Vec<Value>,
    what: String,
    stderr_path: tempfile::NamedTempFile,
}

impl Proc {
    /// Runs `cmd` (whose arguments were `args`, for messages) and reads its stdout as JSON
    /// event lines.
    pub fn spawn(mut cmd: Command, args: &[&str]) -> Proc {
        let stderr_path = tempfile::NamedTempFile::new().unwrap();
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr_path.reopen().unwrap())
            .spawn()
            .expect("spawn dat-social");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({"event": "non-json", "line": line}));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        Proc {
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            what: format!("{args:?}"),
            stderr_path,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr_path.path()).unwrap_or_default()
    }

    /// The first event (seen before or arriving within `timeout`) that satisfies `pred`.
    pub fn expect_where(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_for(timeout, pred).unwrap_or_else(|| {
            panic!(
                "{}: no {what} within {timeout:?}; events: {:?}; stderr: {}",
                self.what,
                self.seen,
                self.stderr()
            )
        })
    }

    /// As [`Proc::expect_where`], but `None` instead of a panic when no such event came within
    /// `timeout` (or stdout closed first), for callers that report a failure as a result.
    pub fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        if let Some(i) = self.seen.iter().position(&pred) {
            return Some(self.seen.remove(i));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) if pred(&v) => return Some(v),
                Ok(v) => self.seen.push(v),
                Err(_) => return None,
            }
            // A process that prints without pause must not hold the wait past its bound.
            if Instant::now() >= deadline {
                return None;
            }
        }
    }

    /// The first event named `event`.
    pub fn expect(&mut self, event: &str) -> Value {
        self.expect_where(WAIT, event, |v| v["event"] == event)
    }

    /// The first chat `message` event whose text is `text`.
    pub fn expect_message(&mut self, text: &str) -> Value {
        let what = format!("message {text:?}");
        self.expect_where(WAIT, &what, |e| {
            e["event"] == "message" && e["text"] == text
        })
    }

    /// Types a line on the process's stdin.
    pub fn say(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{text}").unwrap();
        stdin.flush().unwrap();
    }

    /// Takes the process's stdin, e.g. to write raw bytes (not UTF-8) or a large burst from
    /// another thread; `say` can't be used afterwards.
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.stdin.take().expect("stdin open")
    }

    /// Sends a signal (`INT`, `TERM`, `KILL`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "{} did not exit within {timeout:?}; stderr: {}",
                    self.what,
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// All remaining events until the process's stdout closes (bounded).
    pub fn drain(&mut self, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut all = std::mem::take(&mut self.seen);
        // Also bounded when the process never stops printing.
        while let Ok(v) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            all.push(v);
            if Instant::now() >= deadline {
                break;
            }
        }
        all
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `user` hosting on loopback with `extra` arguments; returns the process and its
/// `hosting` event.
pub fn host(user: &User, extra: &[&str]) -> (Proc, Value) {
    let mut args = vec!["host", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut proc = user.spawn(&args);
    let hosting = proc.expect("hosting");
    (proc, hosting)
}

/// The lobby scenario run over every transport: 8 users (`player0`..`player7`) join `invite` at
/// once and connect to the lobby `name` that `host` runs as `lobby`; a player's line reaches the
/// host and every other player with the sender's name; the host's line reaches everyone; a ninth
/// (`player8`) is turned away as full, with exit code 4. Returns the 9 users and the 8 players.
pub fn lobby_scenario(
    lobby: &mut Proc,
    invite: &str,
    host: &User,
    name: &str,
) -> (Vec<User>, Vec<Proc>) {
    let users: Vec<User> = (0..9).map(|i| User::new(&format!("player{i}"))).collect();
    // Eight join at once.
    let mut players: Vec<Proc> = users[..8]
        .iter()
        .map(|u| u.spawn(&["join", invite]))
        .collect();
    for p in players.iter_mut() {
        let connected = p.expect("connected");
        assert_eq!(connected["name"], name);
        assert_eq!(connected["peer"], host.url().as_str());
        assert!(connected["ms"].as_u64().is_some());
    }
    lobby.expect_where(WAIT, "peers 8", |e| {
        e["event"] == "peer-joined" && e["peers"] == 8
    });

    // A player's line reaches the host and every other player, with the sender's name.
    players[0].say("hello lobby");
    let msg = lobby.expect("message");
    assert_eq!(
        (msg["name"].as_str(), msg["text"].as_str()),
        (Some("player0"), Some("hello lobby"))
    );
    assert_eq!(msg["from"], users[0].url().as_str());
    for p in players[1..].iter_mut() {
        let m = p.expect("message");
        assert_eq!(
            (m["name"].as_str(), m["text"].as_str()),
            (Some("player0"), Some("hello lobby"))
        );
    }
    // The host's line reaches everyone.
    lobby.say("welcome all");
    for p in players.iter_mut() {
        p.expect_message("welcome all");
    }

    // The ninth is turned away as full, with the documented exit code.
    let ninth = users[8].run(&["join", invite]);
    assert_eq!(ninth.code(), 4, "stderr: {}", ninth.stderr);
    let rejected = ninth
        .events()
        .into_iter()
        .find(|e| e["event"] == "rejected")
        .unwrap();
    assert_eq!(rejected["reason"], "full");
    (users, players)
}
