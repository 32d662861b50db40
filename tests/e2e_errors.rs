//! Bad input, end to end: every case gives a clear error and a non-zero exit, and a host keeps
//! serving its other players.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use dat_social::archive::Entry;
use dat_social::hypercore::Core;
use dat_social::identity::Identity;
use support::{host, User, WAIT};

#[test]
fn malformed_urls_and_missing_addresses_are_clear_errors() {
    let bob = User::new("bob");
    let out = bob.run(&["join", "dat://not-a-key"]);
    assert_eq!(out.code(), 1);
    assert!(out.stderr.contains("invalid dat URL"), "{}", out.stderr);
    assert!(out.events().iter().any(|e| e["event"] == "error"));

    let key = "ab".repeat(32);
    let out = bob.run(&["join", &format!("dat://{key}")]);
    assert_eq!(out.code(), 1);
    assert!(out.stderr.contains("--peer"), "{}", out.stderr);

    let out = bob.run(&[
        "join",
        &format!("dat://{key}?peer=127.0.0.1:1"),
        "--timeout",
        "3",
    ]);
    assert_eq!(out.code(), 3, "{}", out.stderr);
    assert!(out.stderr.contains("cannot reach"), "{}", out.stderr);
}

#[test]
fn init_never_overwrites_and_a_corrupt_key_file_is_reported() {
    let alice = User::new("alice");
    let url = alice.url();
    let out = alice.run(&["init", "--name", "mallory"]);
    assert_ne!(out.code(), 0);
    assert!(out.stderr.contains("already exists"), "{}", out.stderr);
    assert_eq!(alice.url(), url, "the identity changed");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(alice.data_dir().join("identity.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    std::fs::write(
        alice.data_dir().join("identity.key"),
        b"{\"public_key\": 12",
    )
    .unwrap();
    let out = alice.run(&["whoami"]);
    assert_eq!(out.code(), 1);
    assert!(out.stderr.contains("corrupt"), "{}", out.stderr);
    let out = alice.run(&["host"]);
    assert_eq!(out.code(), 1);
    assert!(out.stderr.contains("corrupt"), "{}", out.stderr);
}

#[test]
fn a_profile_that_breaks_the_schema_is_reported_not_shown() {
    let alice = User::new("alice");
    let identity = Identity::load(&alice.data_dir().join("identity.key")).unwrap();
    let mut core = Core::open(
        &alice.data_dir().join("archive"),
        Some(identity.signing_key().clone()),
    )
    .unwrap();
    let bad = Entry::Put {
        path: "profile.json".into(),
        value: r#"{"name":"","created":1,"friends":["http://x"]}"#.into(),
    };
    core.append(&[&bad.encode()]).unwrap();
    drop(core);
    let out = alice.run(&["whoami"]);
    assert_eq!(out.code(), 1);
    assert!(
        out.stderr.contains("profile.json") && out.stderr.contains("name"),
        "{}",
        out.stderr
    );
    let out = alice.run(&["host", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.code(), 1);
    assert!(out.stderr.contains("profile.json"), "{}", out.stderr);
}

#[test]
fn a_truncated_archive_on_disk_is_reported() {
    let alice = User::new("alice");
    for i in 0..5 {
        let out = alice.run(&["profile", "set", "--name", &format!("alice {i}")]);
        assert!(out.status.success(), "{}", out.stderr);
    }
    assert_eq!(alice.whoami()["profile"]["name"], "alice 4");
    let archive = alice.data_dir().join("archive");
    for file in ["data", "tree"] {
        let path = archive.join(file);
        let saved = std::fs::read(&path).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(saved.len() as u64 / 2).unwrap();
        drop(f);
        let out = alice.run(&["whoami"]);
        assert_eq!(out.code(), 1, "{file}: {}", out.stdout);
        assert!(
            out.stderr.contains("corrupt") || out.stderr.contains("truncated"),
            "{file}: {}",
            out.stderr
        );
        let out = alice.run(&["host", "--listen", "127.0.0.1:0"]);
        assert_eq!(out.code(), 1, "{file}");
        std::fs::write(&path, saved).unwrap();
    }
    assert_eq!(alice.whoami()["profile"]["name"], "alice 4");
}

#[test]
fn a_second_host_on_the_same_archive_is_refused() {
    let alice = User::new("alice");
    let (_lobby, _) = host(&alice, &[]);
    let out = alice.run(&["host", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.code(), 1);
    assert!(out.stderr.contains("in use"), "{}", out.stderr);
    let out = alice.run(&["profile", "set", "--name", "x"]);
    assert_eq!(out.code(), 1);
    assert!(out.stderr.contains("in use"), "{}", out.stderr);
}

#[test]
fn garbage_and_vanishing_peers_do_not_disturb_the_lobby() {
    let alice = User::new("alice");
    let (mut lobby, hosting) = host(&alice, &[]);
    let addr = hosting["listen"].as_str().unwrap().to_string();
    let bob = User::new("bob");
    let mut first = bob.spawn(&["join", hosting["invite"].as_str().unwrap()]);
    first.expect("connected");
    lobby.expect("peer-joined");

    // Garbage instead of a handshake.
    let mut tcp = TcpStream::connect(&addr).unwrap();
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let _ = tcp.write_all(&garbage);
    drop(tcp);
    // A peer that sends half a handshake frame and vanishes.
    let mut tcp = TcpStream::connect(&addr).unwrap();
    tcp.write_all(&[0x40, 0x00, 0x00, 0x01, 0x02]).unwrap();
    drop(tcp);
    // A peer that connects and says nothing, then goes.
    let silent = TcpStream::connect(&addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(silent);

    // The lobby still admits, and its players still chat.
    let carol = User::new("carol");
    let mut second = carol.spawn(&["join", hosting["invite"].as_str().unwrap()]);
    second.expect("connected");
    lobby.expect_where(WAIT, "carol", |e| {
        e["event"] == "peer-joined" && e["name"] == "carol"
    });
    first.say("still here");
    second.expect_message("still here");

    // A player killed outright (no goodbye) is noticed and its slot freed.
    first.signal("KILL");
    let left = lobby.expect_where(Duration::from_secs(30), "bob left", |e| {
        e["event"] == "peer-left" && e["name"] == "bob"
    });
    assert_eq!(left["peers"], 1);
}

#[test]
fn a_missing_password_file_is_a_clear_error() {
    let alice = User::new("alice");
    let out = alice.run(&["host", "--password-file", "/nonexistent/pw"]);
    assert_eq!(out.code(), 1);
    assert!(out.stderr.contains("password file"), "{}", out.stderr);
}

#[test]
fn control_characters_from_other_people_are_escaped_on_the_terminal() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let alice = User::new("alice");
    let mallory = User::new("mal\u{1b}[2Jlory");
    let mut hosting = Command::new(support::BIN)
        .arg("--data-dir")
        .arg(alice.data_dir())
        .args(["host", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(hosting.stdout.take().unwrap()).lines();
    let invite = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("invite: ").map(str::to_string))
        .expect("the host prints its invite");
    let mut player = mallory.spawn(&["join", &invite]);
    player.expect("connected");
    let joined = lines
        .map_while(Result::ok)
        .find(|l| l.contains("joined"))
        .unwrap();
    let _ = hosting.kill();
    let _ = hosting.wait();
    assert!(
        !joined.contains('\u{1b}'),
        "raw escape reached the terminal: {joined:?}"
    );
    assert!(joined.contains("mal\\u{1b}[2Jlory"), "{joined:?}");
}

#[test]
fn bad_ice_options_are_usage_errors_naming_the_problem() {
    let alice = User::new("alice");
    let file = alice.data_dir().join("ice.json");
    std::fs::write(&file, r#"[{"urls": ["turn:192.0.2.1:3478"]}]"#).unwrap();
    let out = alice.run(&["host", "--ice-servers", file.to_str().unwrap()]);
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(out.stderr.contains("--ice-servers"), "{}", out.stderr);
    assert!(out.stderr.contains("needs a username"), "{}", out.stderr);
    std::fs::write(&file, "{not json").unwrap();
    let key = "ab".repeat(32);
    let url = format!("dat://{key}?peer=127.0.0.1:1");
    let out = alice.run(&["join", &url, "--ice-servers", file.to_str().unwrap()]);
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(out.stderr.contains("not a JSON array"), "{}", out.stderr);
    let out = alice.run(&["join", &url, "--ice-policy", "bogus"]);
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(out.stderr.contains("bogus"), "{}", out.stderr);
}
