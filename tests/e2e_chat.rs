//! End to end: chat typed on stdin of the real `dat-social host` / `join` processes, with input
//! that used to be lost without a word: invalid UTF-8, lines over the 16 KiB limit (each way),
//! and a pasted burst of thousands of lines.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use support::{host, Proc, User, WAIT};

/// The documented chat limit (`dat_social::lobby::MAX_CHAT_BYTES`).
const MAX_CHAT_BYTES: usize = 16 * 1024;

/// A host (alice) and one connected player (bob).
fn lobby() -> (User, Proc, User, Proc) {
    let alice = User::new("alice");
    let (mut host_proc, hosting) = host(&alice, &["--max-peers", "2"]);
    let invite = hosting["invite"].as_str().unwrap().to_string();
    let bob = User::new("bob");
    let mut player = bob.spawn(&["join", &invite]);
    player.expect("connected");
    host_proc.expect_where(WAIT, "bob joined", |e| e["event"] == "peer-joined");
    (alice, host_proc, bob, player)
}

fn message_with(proc: &mut Proc, text: &str) -> serde_json::Value {
    proc.expect_where(WAIT, &format!("message {:.40?}", text), |e| {
        e["event"] == "message" && e["text"] == text
    })
}

#[test]
fn invalid_utf8_on_stdin_is_replaced_and_later_lines_still_go_both_ways() {
    let (_alice, mut host_proc, _bob, mut player) = lobby();
    let mut player_in = player.take_stdin();
    player_in
        .write_all(b"caf\xe9 \xff\xfe\nafter the bad line\n")
        .unwrap();
    player_in.flush().unwrap();
    message_with(&mut host_proc, "caf\u{fffd} \u{fffd}\u{fffd}");
    message_with(&mut host_proc, "after the bad line");
    let warning = player.expect("warning");
    assert!(
        warning["message"].as_str().unwrap().contains("UTF-8"),
        "{warning}"
    );

    let mut host_in = host_proc.take_stdin();
    host_in.write_all(b"\x80host bad\nhost after\n").unwrap();
    host_in.flush().unwrap();
    message_with(&mut player, "\u{fffd}host bad");
    message_with(&mut player, "host after");
}

#[test]
fn a_line_over_the_limit_is_refused_by_whoever_types_it_and_the_limit_line_passes() {
    let (_alice, mut host_proc, _bob, mut player) = lobby();
    // The player's 20 KiB line: refused by the player, with an event; the host never sees it.
    a_long_line_is_refused_by_its_typist(&mut player, &mut host_proc, "short after long");
    // The host's 20 KiB line: refused by the host the same way; the player never sees it.
    a_long_line_is_refused_by_its_typist(&mut host_proc, &mut player, "host short");
}

/// `typist` types a 20 KiB line: it refuses it with a warning naming both sizes, so `reader`
/// never sees it; then a line exactly at the limit and `short` reach `reader`, in order.
fn a_long_line_is_refused_by_its_typist(typist: &mut Proc, reader: &mut Proc, short: &str) {
    typist.say(&"p".repeat(20 * 1024));
    let warning = typist.expect("warning");
    let text = warning["message"].as_str().unwrap();
    assert!(
        text.contains("20480") && text.contains(&MAX_CHAT_BYTES.to_string()),
        "{text}"
    );
    typist.say(&"q".repeat(MAX_CHAT_BYTES));
    typist.say(short);
    let first = reader.expect("message");
    assert_eq!(first["text"].as_str().map(str::len), Some(MAX_CHAT_BYTES));
    assert_eq!(reader.expect("message")["text"], short);
}

/// Writes `count` numbered lines of about 1 KiB to `stdin` from a thread (the write blocks
/// while the reader applies back-pressure).
fn paste_burst(mut stdin: std::process::ChildStdin, count: usize) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut all = Vec::with_capacity(count * 1030);
        for i in 0..count {
            writeln!(all, "{i:05} {}", "x".repeat(1018)).unwrap();
        }
        // A failed write (the process died) shows as missing lines at the receiver.
        let _ = stdin.write_all(&all);
        let _ = stdin.flush();
    })
}

/// Every numbered line `0..count`, in order, as `message` events of `receiver`.
fn expect_burst(receiver: &mut Proc, count: usize, deadline: Duration) {
    let started = Instant::now();
    for i in 0..count {
        let left = deadline.saturating_sub(started.elapsed());
        let m = receiver.expect_where(left, &format!("burst line {i}"), |e| {
            e["event"] == "message"
        });
        let text = m["text"].as_str().unwrap();
        assert_eq!(&text[..5], format!("{i:05}"), "line {i} out of order");
        assert_eq!(text.len(), 1024);
    }
}

#[test]
fn a_pasted_burst_of_5000_lines_arrives_whole_each_way() {
    const LINES: usize = 5000;
    let (_alice, mut host_proc, _bob, mut player) = lobby();
    let writer = paste_burst(player.take_stdin(), LINES);
    expect_burst(&mut host_proc, LINES, Duration::from_secs(120));
    writer.join().unwrap();
    let writer = paste_burst(host_proc.take_stdin(), LINES);
    expect_burst(&mut player, LINES, Duration::from_secs(120));
    writer.join().unwrap();
    let warnings: Vec<_> = host_proc
        .drain(Duration::from_millis(200))
        .into_iter()
        .chain(player.drain(Duration::from_millis(200)))
        .filter(|e| e["event"] == "warning")
        .collect();
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn a_burst_relayed_by_the_host_reaches_another_player_whole() {
    const LINES: usize = 5000;
    let alice = User::new("alice");
    let (mut host_proc, hosting) = host(&alice, &["--max-peers", "2"]);
    let invite = hosting["invite"].as_str().unwrap().to_string();
    let (bob, carol) = (User::new("bob"), User::new("carol"));
    let mut sender = bob.spawn(&["join", &invite]);
    sender.expect("connected");
    let mut receiver = carol.spawn(&["join", &invite]);
    receiver.expect("connected");
    host_proc.expect_where(WAIT, "two players", |e| {
        e["event"] == "peer-joined" && e["peers"] == 2
    });
    let writer = paste_burst(sender.take_stdin(), LINES);
    expect_burst(&mut receiver, LINES, Duration::from_secs(120));
    writer.join().unwrap();
    expect_burst(&mut host_proc, LINES, Duration::from_secs(30));
    let warnings: Vec<_> = host_proc
        .drain(Duration::from_millis(200))
        .into_iter()
        .filter(|e| e["event"] == "warning")
        .collect();
    assert!(warnings.is_empty(), "{warnings:?}");
}
