//! Cores, JS peers and timing for the replication tests (tests/replication_*.rs).

use std::process::Stdio;
use std::time::{Duration, Instant};

use dat_social::hypercore::Core;
use dat_social::net::SharedCore;
use ed25519_dalek::SigningKey;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use super::js::js_dir;

/// The bytes of block `i` in every test core (the JS script uses the same rule).
pub fn block(i: u64) -> Vec<u8> {
    format!("block-{i}").into_bytes()
}

/// A fresh random identity.
pub fn identity() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

/// An in-memory writable core holding blocks `0..n`, appended in batches of 1000.
pub fn writer_core(n: u64) -> SharedCore {
    let core = SharedCore::new(Core::in_memory(identity()));
    let mut i = 0;
    while i < n {
        let end = (i + 1000).min(n);
        let blocks: Vec<Vec<u8>> = (i..end).map(block).collect();
        let refs: Vec<&[u8]> = blocks.iter().map(|b| b.as_slice()).collect();
        core.append_batch(&refs).expect("append");
        i = end;
    }
    core
}

/// Checks that blocks `0..n` of `core` are present and hold `block(i)`.
pub fn assert_blocks(core: &SharedCore, n: u64) {
    for i in 0..n {
        let got = core
            .get(i)
            .expect("get")
            .unwrap_or_else(|| panic!("block {i} missing"));
        assert_eq!(got, block(i), "block {i} has wrong content");
    }
}

/// Waits until `core` holds blocks `0..n` contiguously, failing after `timeout`.
pub async fn wait_contiguous(core: &SharedCore, n: u64, timeout: Duration) {
    let mut rx = core.subscribe();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let s = *rx.borrow_and_update();
        if s.contiguous_length >= n {
            return;
        }
        if tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_err()
        {
            panic!("timed out after {timeout:?} waiting for {n} blocks; status {s:?}");
        }
    }
}

/// A running `node tests/js/<script> args...` with line-oriented stdout.
pub struct JsPeer {
    pub child: Child,
    pub lines: Lines<BufReader<ChildStdout>>,
}

impl JsPeer {
    /// Starts `node <script> <args>` in tests/js.
    pub fn spawn(script: &str, args: &[&str]) -> Self {
        Self::spawn_env(script, args, &[])
    }

    /// Starts `node <script> <args>` in tests/js with extra environment `env`.
    pub fn spawn_env(script: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = js_dir();
        let mut child = Command::new("node")
            .arg(dir.join(script))
            .args(args)
            .envs(env.iter().copied())
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn node");
        let stdout = child.stdout.take().expect("stdout");
        Self {
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// Reads lines until one equals `want` (or starts with it when `prefix`), failing on error
    /// lines from the script or after `timeout`. Returns the matching line.
    pub async fn wait_line(&mut self, want: &str, prefix: bool, timeout: Duration) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let line = match tokio::time::timeout_at(deadline, self.lines.next_line()).await {
                Err(_) => panic!("timed out after {timeout:?} waiting for JS line {want:?}"),
                Ok(Err(e)) => panic!("reading JS output: {e}"),
                Ok(Ok(None)) => panic!("JS peer exited before printing {want:?}"),
                Ok(Ok(Some(l))) => l,
            };
            if line.starts_with("bad ") || line.starts_with("error ") || line.contains("-error ") {
                panic!("JS peer reported: {line}");
            }
            if line == want || (prefix && line.starts_with(want)) {
                return line;
            }
        }
    }

    /// Waits for a line `<word> <n>` with n >= `at_least` (progress lines), as [`JsPeer::wait_line`].
    pub async fn wait_count(&mut self, word: &str, at_least: u64, timeout: Duration) -> u64 {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let line = self.wait_line(&format!("{word} "), true, left).await;
            let n: u64 = line[word.len() + 1..].trim().parse().expect("count");
            if n >= at_least {
                return n;
            }
        }
    }

    /// Sends one command line to the script's stdin.
    pub async fn send(&mut self, line: &str) {
        use tokio::io::AsyncWriteExt;
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write to JS stdin");
        stdin.flush().await.expect("flush JS stdin");
    }

    /// Waits for the process to exit (bounded) and returns its exit code.
    pub async fn exit_code(&mut self, timeout: Duration) -> i32 {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(s)) => s.code().unwrap_or(-1),
            Ok(Err(e)) => panic!("waiting for JS peer: {e}"),
            Err(_) => panic!("JS peer did not exit within {timeout:?}"),
        }
    }
}

/// Milliseconds since `t`, for the figures the tests print.
pub fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}
