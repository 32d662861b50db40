//! Friends and matchmaking on loopback, with real processes of the binary (a bench: it measures
//! and prints, it asserts nothing about speed).
//!
//! `cargo bench --bench friends` (release build). Environment: `RUNS` (default 20), `FOLLOWED`
//! (default 1000).
//!
//! 1. Lobby appearance: a watcher runs `sessions --watch`; a friend starts `host` (reached through
//!    the address hint of their invite); time from spawning `host` to the watcher's
//!    `session-up`, then the host is stopped (Ctrl-C) and the watcher's `session-down` awaited.
//! 2. Following many archives: `FOLLOWED` archives served by one in-process peer (one loopback
//!    listener and key pair each); the follower's `friends list` (one refresh of all: wall time)
//!    and `sessions --watch` (time until every friend is online; its RSS and open files then).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use dat_social::archive;
use dat_social::friends::{LocalFriends, LocalStore};
use dat_social::home::Home;
use dat_social::hypercore::Core;
use dat_social::identity::Identity;
use dat_social::net::{Connection, SharedCore};
use dat_social::schema::{now_ms, Profile};
use support::sys::{free_port, status_kib};
use support::{User, WAIT};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if env_or("RUNS", 20) > 0 {
        appearance(env_or("RUNS", 20));
    }
    following(env_or("FOLLOWED", 1000));
}

fn appearance(runs: usize) {
    let alice = User::new("alice");
    let bob = User::new("bob");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let invite = format!("{}?peer={listen}", alice.url());
    assert!(bob.run(&["friends", "add", &invite]).status.success());
    let mut watcher = bob.spawn(&["sessions", "--watch"]);
    watcher.expect("watching");
    let mut times = Vec::new();
    let mut killed = Vec::new();
    for run in 0..runs {
        let started = Instant::now();
        let mut host = alice.spawn(&["host", "--listen", &listen, "--heartbeat", "5"]);
        watcher.expect_where(WAIT, "session-up", |v| v["event"] == "session-up");
        times.push(started.elapsed().as_secs_f64() * 1e3);
        host.expect("hosting");
        // Every other round the host dies without a word (SIGKILL, heartbeat 5 s): how soon
        // does the watcher drop the lobby?
        let kill = run % 2 == 1;
        let stopped = Instant::now();
        host.signal(if kill { "KILL" } else { "INT" });
        watcher.expect_where(WAIT, "session-down", |v| v["event"] == "session-down");
        if kill {
            killed.push(stopped.elapsed().as_secs_f64() * 1e3);
        }
        host.wait_exit(WAIT);
    }
    report("lobby appearance (host start -> watcher session-up)", times);
    report(
        "SIGKILLed host (heartbeat 5 s) -> watcher session-down",
        killed,
    );
}

fn report(what: &str, mut times: Vec<f64>) {
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{what}, {} runs: p50 {:.0} ms, p90 {:.0} ms, min {:.0} ms, max {:.0} ms",
        times.len(),
        percentile(&times, 50.0),
        percentile(&times, 90.0),
        times[0],
        times[times.len() - 1]
    );
}

/// Serves `count` archives, one identity and loopback listener each; returns (url, port) pairs.
fn serve_archives(runtime: &tokio::runtime::Runtime, count: usize) -> Vec<(String, u16)> {
    runtime.block_on(async {
        let mut out = Vec::new();
        for i in 0..count {
            let identity = Identity::generate();
            let mut core = Core::in_memory(identity.signing_key().clone());
            let profile = Profile {
                name: format!("friend{i}"),
                created: now_ms(),
                friends: Vec::new(),
            };
            archive::initialize(&mut core, &profile).unwrap();
            let archive = SharedCore::new(core);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let key = identity.signing_key().clone();
            tokio::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    let (key, archive) = (key.clone(), archive.clone());
                    tokio::spawn(async move {
                        let Ok(conn) = Connection::connect(tcp, &key, false).await else {
                            return;
                        };
                        let _ = conn.replicate(archive).await;
                        let _ = conn.closed().await;
                    });
                }
            });
            out.push((identity.url().base(), port));
        }
        out
    })
}

/// Writes `friends` into the user's profile and their address hints into `friends.json`
/// directly (the library calls `friends add` makes, without a process per friend).
fn follow_all(user: &User, friends: &[(String, u16)]) {
    let home = Home::new(user.data_dir());
    let identity = home.identity().unwrap();
    let _lock = home.lock_archive().unwrap();
    let mut core = home.open_archive(&identity).unwrap();
    let profile = archive::read_files(&core).unwrap().profile.unwrap();
    let urls = friends.iter().map(|(u, _)| u.clone()).collect();
    archive::put_profile(
        &mut core,
        &Profile {
            friends: urls,
            ..profile
        },
    )
    .unwrap();
    LocalStore::new(user.data_dir())
        .update(|notes: &mut LocalFriends| {
            for (url, port) in friends {
                let entry = notes.friends.entry(url[6..].to_string()).or_default();
                entry.peer = Some(format!("127.0.0.1:{port}"));
            }
            Ok(())
        })
        .unwrap();
}

fn following(count: usize) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let friends = serve_archives(&runtime, count);
    let carol = User::new("carol");
    follow_all(&carol, &friends);

    for round in ["first (empty replicas)", "second (replicas on disk)"] {
        let started = Instant::now();
        // Not `User::run`: its 20 s bound is for tests; this is bounded by --look-timeout.
        let out = carol
            .command(&["friends", "list", "--look-timeout", "30"])
            .output()
            .unwrap();
        let wall = started.elapsed().as_secs_f64();
        let online = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("\"online\":true"))
            .count();
        println!("friends list, {count} followed, {round}: {wall:.2} s, {online} online");
    }

    let started = Instant::now();
    let mut watcher = carol.spawn(&["sessions", "--watch"]);
    for _ in 0..count {
        watcher.expect_where(Duration::from_secs(120), "friend-online", |v| {
            v["event"] == "friend-online"
        });
    }
    let all_online = started.elapsed().as_secs_f64();
    let pid = watcher.pid();
    println!(
        "sessions --watch, {count} followed: all online after {all_online:.2} s; RSS {} KiB (peak {} KiB), {} open files",
        status_kib(pid, "VmRSS").unwrap_or(0),
        status_kib(pid, "VmHWM").unwrap_or(0),
        open_files(pid)
    );
}
