//! The command line against odd input, end to end with the real binary: numeric options out of
//! range, other people's names that carry terminal escapes, a listing that must not write, a
//! stdout that can't be written, I/O errors, and `dat://` URLs with broken hints or keys.
//! The full-disk case needs root (a tmpfs in a mount namespace of its own, `unshare -m`), as CI
//! has; it fails, loudly, without it.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{host, User, BIN, WAIT};

/// A command for `user` without `--json` (human text, as on a terminal).
fn text_command(user: &User, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--data-dir").arg(user.data_dir()).args(args);
    cmd.env_remove("DAT_SOCIAL_HOME");
    cmd
}

/// Runs `cmd` to completion (bounded by [`WAIT`]) with stdin from /dev/null; returns the exit
/// code, stdout and stderr.
fn finish(mut cmd: Command, what: &str) -> (i32, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dat-social");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let (out, err) = (reader(Box::new(stdout)), reader(Box::new(stderr)));
    let status = wait_bounded(&mut child, what);
    (
        status.code().unwrap_or(-1),
        out.join().unwrap(),
        err.join().unwrap(),
    )
}

/// Waits for `child` at most [`WAIT`]; kills it and fails the test past that.
fn wait_bounded(child: &mut std::process::Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `text` holds a character that acts on a terminal (ESC, BEL, CR, another C0 or C1
/// control, DEL) other than the line breaks.
fn has_raw_control(text: &str) -> bool {
    text.chars().any(|c| c != '\n' && c.is_control())
}

const FAR: &str = "9223372036854775807";
const WRAPS_TO_384: &str = "18446744073709552";

#[test]
fn numeric_options_out_of_range_are_usage_errors_naming_the_option() {
    let bob = User::new("bob");
    let url = format!("dat://{}?peer=127.0.0.1:1", "ab".repeat(32));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["show", &url, "--timeout", FAR], "--timeout"),
        (vec!["show", &url, "--timeout", "0"], "--timeout"),
        (vec!["show", &url, "--timeout", "3601"], "--timeout"),
        (vec!["join", &url, "--timeout", FAR], "--timeout"),
        (vec!["join", &url, "--timeout", "0"], "--timeout"),
        (vec!["join", &url, "--timeout", "-1"], "--timeout"),
        (
            vec!["join", &url, "--timeout", "99999999999999999999999"],
            "--timeout",
        ),
        (
            vec!["host", "--listen", "127.0.0.1:0", "--heartbeat", FAR],
            "--heartbeat",
        ),
        (
            vec![
                "host",
                "--listen",
                "127.0.0.1:0",
                "--heartbeat",
                WRAPS_TO_384,
            ],
            "--heartbeat",
        ),
        (
            vec!["host", "--listen", "127.0.0.1:0", "--heartbeat", "86401"],
            "--heartbeat",
        ),
        (
            vec!["host", "--listen", "127.0.0.1:0", "--heartbeat", "0"],
            "--heartbeat",
        ),
        (
            vec!["host", "--listen", "127.0.0.1:0", "--max-peers", "257"],
            "--max-peers",
        ),
        (
            vec!["host", "--listen", "127.0.0.1:0", "--max-peers", FAR],
            "--max-peers",
        ),
        (
            vec!["friends", "list", "--look-timeout", FAR],
            "--look-timeout",
        ),
        (
            vec!["friends", "list", "--look-timeout", "0"],
            "--look-timeout",
        ),
        (
            vec!["sessions", "--look-timeout", WRAPS_TO_384],
            "--look-timeout",
        ),
        (vec!["sessions", "--look-timeout", "301"], "--look-timeout"),
        // Watching the replicas on disk would never show a change.
        (vec!["sessions", "--watch", "--offline"], "--offline"),
    ];
    for (args, option) in cases {
        let out = bob.run(&args);
        assert_eq!(out.code(), 2, "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains(option), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{args:?}: {}", out.stderr);
    }
    // The top of each range is accepted: these fail for want of a peer, not as usage errors.
    let out = bob.run(&["show", &url, "--timeout", "3600"]);
    assert_eq!(out.code(), 1, "{}", out.stderr);
    let out = bob.run(&["join", &url, "--timeout", "3600"]);
    assert_eq!(out.code(), 3, "{}", out.stderr);
    // And the help states the ranges.
    let (code, help, _) = finish(text_command(&bob, &["host", "--help"]), "host --help");
    assert_eq!(code, 0);
    assert!(help.contains("1-86400") && help.contains("1-256"), "{help}");
    let (_, help, _) = finish(text_command(&bob, &["join", "--help"]), "join --help");
    assert!(help.contains("1-3600"), "{help}");
    let (_, help, _) = finish(
        text_command(&bob, &["friends", "list", "--help"]),
        "friends list --help",
    );
    assert!(help.contains("1-300"), "{help}");
}

#[test]
fn other_peoples_names_are_escaped_in_every_text_output() {
    let evil = "mal\u{1b}]0;owned\u{7}\rlory\u{1b}[2J";
    let alice = User::new("alice");
    let out = alice.run(&["profile", "set", "--name", evil]);
    assert!(out.status.success(), "{}", out.stderr);
    let (mut lobby, hosting) = host(&alice, &["--name", "game\u{1b}[31m\u{7}\r"]);
    let invite = hosting["invite"].as_str().unwrap().to_string();
    let listen = hosting["listen"].as_str().unwrap().to_string();
    let bob = User::new("bob");

    // show: "name:" and the lobby line.
    let (code, shown, err) = finish(text_command(&bob, &["show", &invite]), "show");
    assert_eq!(code, 0, "{err}");
    assert!(!has_raw_control(&shown), "raw control in show: {shown:?}");
    assert!(
        shown.contains("mal\\u{1b}]0;owned\\u{7}\\rlory"),
        "{shown:?}"
    );

    // join: "joined ... hosted by ...".
    let mut player = text_command(&bob, &["join", &invite])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stdout = player.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + WAIT;
    let joined = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains("hosted by") => break line,
            Ok(_) => continue,
            Err(_) => {
                let _ = player.kill();
                panic!("join printed no 'hosted by' line within {WAIT:?}");
            }
        }
    };
    lobby.expect("peer-joined");
    let _ = player.kill();
    let _ = player.wait();
    assert!(!has_raw_control(&joined), "raw control in join: {joined:?}");
    assert!(
        joined.contains("hosted by mal\\u{1b}]0;owned"),
        "{joined:?}"
    );
    assert!(joined.contains("game\\u{1b}[31m\\u{7}\\r"), "{joined:?}");

    // friends list and sessions: the name, the lobby name.
    let with_hint = format!("{}?peer={listen}", alice.url());
    let out = bob.run(&["friends", "add", &with_hint]);
    assert!(out.status.success(), "{}", out.stderr);
    for args in [&["friends", "list"][..], &["sessions"][..]] {
        let (code, listed, err) = finish(text_command(&bob, args), "listing");
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(!has_raw_control(&listed), "{args:?}: {listed:?}");
        assert!(
            listed.contains("mal\\u{1b}]0;owned"),
            "{args:?}: {listed:?}"
        );
    }

    // whoami of a name with a C1 control (8-bit CSI) and a bidi override: escaped in text, and
    // in JSON written as \u escapes that decode to the same name.
    let name = "x\u{9b}31m\u{202e}y";
    let carol = User::new(name);
    let (code, text, _) = finish(text_command(&carol, &["whoami"]), "whoami");
    assert_eq!(code, 0);
    assert!(
        !has_raw_control(&text) && !text.contains('\u{202e}'),
        "{text:?}"
    );
    assert!(text.contains("x\\u{9b}31m\\u{202e}y"), "{text:?}");
    let out = carol.run(&["whoami"]);
    assert!(
        !has_raw_control(&out.stdout) && !out.stdout.contains('\u{202e}'),
        "{:?}",
        out.stdout
    );
    assert_eq!(out.events()[0]["profile"]["name"], name);
}

/// Every file and directory under `dir` with its inode, size and modification time.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, u64, std::time::SystemTime)> {
    use std::os::unix::fs::MetadataExt;
    let mut all = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                todo.push(entry.path());
            }
            all.push((
                entry.path(),
                meta.ino(),
                meta.len(),
                meta.modified().unwrap(),
            ));
        }
    }
    all.sort();
    all
}

/// `bob` following `alice`, with alice's replica on disk from one look while she hosted.
fn follower_with_a_replica() -> (User, User) {
    let alice = User::new("alice");
    let bob = User::new("bob");
    let (mut lobby, hosting) = host(&alice, &[]);
    let with_hint = format!(
        "{}?peer={}",
        alice.url(),
        hosting["listen"].as_str().unwrap()
    );
    assert!(bob.run(&["friends", "add", &with_hint]).status.success());
    let out = bob.run(&["friends", "list"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(out.events()[0]["online"], true, "{}", out.stdout);
    lobby.signal("INT");
    lobby.wait_exit(WAIT);
    (alice, bob)
}

#[test]
fn an_offline_listing_writes_nothing() {
    let (_alice, bob) = follower_with_a_replica();
    let before = snapshot(bob.data_dir());
    // Leave a tick for a rewrite to show in the mtime even on coarse clocks.
    std::thread::sleep(Duration::from_millis(20));
    for args in [
        &["friends", "list", "--offline"][..],
        &["sessions", "--offline"][..],
    ] {
        let out = bob.run(args);
        assert!(out.status.success(), "{args:?}: {}", out.stderr);
        assert_eq!(
            snapshot(bob.data_dir()),
            before,
            "{args:?} wrote to the data dir"
        );
    }
    let out = bob.run(&["friends", "list", "--offline"]);
    let friend = &out.events()[0];
    assert_eq!(friend["name"], "alice", "{friend}");
    assert_eq!(friend["online"], false, "{friend}");
}

/// Runs `script` with `sh` as root in a mount namespace of its own (mounts made there vanish
/// with it); returns its exit code, stdout and stderr.
fn in_mount_namespace(script: &str, env: &[(&str, &Path)]) -> (i32, String, String) {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", script]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env("BIN", BIN).env_remove("DAT_SOCIAL_HOME");
    finish(cmd, "unshare")
}

#[test]
fn on_a_full_disk_an_offline_listing_works() {
    let (_alice, bob) = follower_with_a_replica();
    let mnt = tempfile::tempdir().unwrap();
    // A 1 MiB tmpfs holding a copy of bob's data directory, then filled to the last page.
    let script = r#"set -e
mount -t tmpfs -o size=1m tmpfs "$MNT"
cp -a "$SRC/." "$MNT/"
dd if=/dev/zero of="$MNT/filler" bs=4096 2>/dev/null || true
if printf 'x' > "$MNT/probe" 2>/dev/null && [ -s "$MNT/probe" ]; then
  echo "the tmpfs is not full" >&2; exit 99
fi
rm -f "$MNT/probe"
"$BIN" --data-dir "$MNT" --json friends list --offline
"#;
    let (code, out, err) =
        in_mount_namespace(script, &[("MNT", mnt.path()), ("SRC", bob.data_dir())]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let friend: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(friend["name"], "alice", "{friend}");
}

#[test]
fn a_stdout_that_cannot_be_written_is_an_error_and_a_closed_pipe_ends_quietly() {
    let bob = User::new("bob");
    // A full device: exit 1 and the reason on stderr.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let mut cmd = bob.command(&["whoami"]);
    cmd.stdout(Stdio::from(full));
    let (code, _, err) = finish_with_stdout_set(cmd, "whoami > /dev/full");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot write to stdout"), "{err}");
    assert!(err.contains("No space left on device"), "{err}");

    // A pipe nobody reads any more (`| head` after it quit): no panic, no noise.
    for args in [&["friends", "list"][..], &["whoami"][..], &["sessions"][..]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut cmd = text_command(&bob, args);
        cmd.stdout(Stdio::from(writer));
        let (code, _, err) = finish_with_stdout_set(cmd, "a closed pipe");
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }

    // A host whose output nobody reads ends its lobby as on Ctrl-C, marking it ended.
    let alice = User::new("alice");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = alice.command(&["host", "--listen", "127.0.0.1:0"]);
    cmd.stdout(Stdio::from(writer));
    let (code, _, err) = finish_with_stdout_set(cmd, "host with a closed stdout");
    assert_eq!(code, 0, "{err}");
    let session = &alice.whoami()["session"];
    assert!(session["ended"].is_u64(), "{session}");
}

/// As [`finish`], for a command whose stdout is already set; returns code, "" and stderr.
fn finish_with_stdout_set(mut cmd: Command, what: &str) -> (i32, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dat-social");
    let mut stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let status = wait_bounded(&mut child, what);
    (
        status.code().unwrap_or(-1),
        String::new(),
        err.join().unwrap(),
    )
}

#[test]
fn io_errors_name_their_cause_once() {
    let alice = User::new("alice");
    // A directory where the archive's lock file should be.
    let lock = alice.data_dir().join("archive.lock");
    let _ = std::fs::remove_file(&lock);
    std::fs::create_dir(&lock).unwrap();
    let out = alice.run(&["profile", "set", "--name", "x"]);
    assert_eq!(out.code(), 1, "{}", out.stderr);
    assert_eq!(
        out.stderr.matches("Is a directory").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("archive.lock"), "{}", out.stderr);
    let error = out
        .events()
        .into_iter()
        .find(|e| e["event"] == "error")
        .expect("an error event");
    assert_eq!(
        error["message"]
            .as_str()
            .unwrap()
            .matches("Is a directory")
            .count(),
        1,
        "{error}"
    );

    // A directory where the key file should be.
    let bob = User::new("bob");
    let key = bob.data_dir().join("identity.key");
    std::fs::remove_file(&key).unwrap();
    std::fs::create_dir(&key).unwrap();
    let out = bob.run(&["whoami"]);
    assert_eq!(out.code(), 1, "{}", out.stderr);
    assert_eq!(
        out.stderr.matches("Is a directory").count(),
        1,
        "{}",
        out.stderr
    );
}

#[test]
fn friends_add_refuses_urls_with_broken_hints_or_keys() {
    let bob = User::new("bob");
    let key = User::new("alice").url();
    let long_host = "a".repeat(5000);
    let zero = format!("dat://{}", "00".repeat(32));
    let off_curve = format!("dat://{}", "ab".repeat(32));
    let cases = [
        (format!("{key}?peer=[::1"), "brackets"),
        (format!("{key}?peer=::1:4000"), "brackets"),
        (
            format!("{key}?peer={long_host}:80"),
            "at most 259 characters",
        ),
        (format!("{key}?peer=evil\u{1b}[2J:80"), "not a DNS name"),
        (format!("{key}?peer=host:0"), "1-65535"),
        (format!("{key}?relay=gopher://x"), "ws://, wss:// or tcp://"),
        (format!("{key}?relay=tcp://host"), "tcp://host:port"),
        (zero, "all zeros"),
        (off_curve, "not an ed25519 public key"),
    ];
    for (url, needle) in &cases {
        let out = bob.run(&["friends", "add", url]);
        assert_eq!(out.code(), 1, "{url:.80}: {}", out.stdout);
        assert!(out.stderr.contains(needle), "{url:.80}: {}", out.stderr);
        assert!(
            out.stderr.len() < 1000,
            "the error echoes the input: {}",
            out.stderr.len()
        );
        assert!(!has_raw_control(&out.stderr), "{:?}", out.stderr);
    }
    let out = bob.run(&["friends", "list", "--offline"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.events().is_empty(),
        "a bad URL was added: {}",
        out.stdout
    );

    // Good hints are accepted.
    let out = bob.run(&[
        "friends",
        "add",
        &format!("{key}?peer=[::1]:4000&relay=ws://127.0.0.1:49443"),
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(bob.run(&["friends", "remove", &key]).status.success());
    let out = bob.run(&[
        "friends",
        "add",
        &format!("{key}?peer=friend-1.example.org:4000"),
    ]);
    assert!(out.status.success(), "{}", out.stderr);
}
