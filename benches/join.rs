//! Join latency on loopback, with real processes of the binary (a bench, not a test: it
//! measures and prints, it asserts nothing about speed).
//!
//! `cargo bench --bench join` (release build). Environment: `JOINS` sequential joins (default
//! 40), `ROUNDS` rounds of 8 joiners at once (default 5).
//!
//! - one at a time: the `ms` each `join --json` reports (command start to open data channel),
//!   p50 and p99, and the wall time from spawning the process;
//! - 8 at once: wall time from spawning 8 joiners to the last `connected`, per round;
//! - the host's RSS with 8 players connected.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::stats::{env_or, summary};
use support::{host, User, WAIT};

fn rss_kib(pid: u32) -> u64 {
    support::sys::status_kib(pid, "VmRSS").unwrap_or(0)
}

fn main() {
    // `cargo bench` passes `--bench`; a plain `cargo test` of benches passes nothing and we skip.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let joins = env_or("JOINS", 40);
    let rounds = env_or("ROUNDS", 5);
    let alice = User::new("alice");
    let (mut lobby, hosting) = host(&alice, &["--max-peers", "8"]);
    let invite = hosting["invite"].as_str().unwrap().to_string();
    let players: Vec<User> = (0..8).map(|i| User::new(&format!("p{i}"))).collect();

    // Warm-up: page cache, the host's first allocations.
    let mut warm = players[0].spawn(&["join", &invite]);
    warm.expect("connected");
    warm.signal("INT");
    warm.wait_exit(WAIT);
    lobby.expect("peer-left");

    let (mut reported, mut wall) = (Vec::new(), Vec::new());
    for i in 0..joins {
        let started = Instant::now();
        let mut p = players[i % 8].spawn(&["join", &invite]);
        let connected = p.expect("connected");
        wall.push(started.elapsed().as_secs_f64() * 1e3);
        reported.push(connected["ms"].as_f64().unwrap());
        p.signal("INT");
        p.wait_exit(WAIT);
        lobby.expect("peer-left");
    }

    let mut at_once = Vec::new();
    let mut rss_at_8 = 0;
    for round in 0..rounds {
        let started = Instant::now();
        let mut procs: Vec<_> = players
            .iter()
            .map(|u| u.spawn(&["join", &invite]))
            .collect();
        for p in procs.iter_mut() {
            p.expect("connected");
        }
        at_once.push(started.elapsed().as_secs_f64() * 1e3);
        lobby.expect_where(WAIT, "8 players", |e| {
            e["event"] == "peer-joined" && e["peers"] == 8
        });
        if round == 0 {
            std::thread::sleep(Duration::from_millis(500));
            rss_at_8 = rss_kib(lobby.pid());
        }
        for p in procs.iter_mut() {
            p.signal("INT");
        }
        for p in procs.iter_mut() {
            p.wait_exit(WAIT);
        }
        lobby.expect_where(WAIT, "empty lobby", |e| {
            e["event"] == "peer-left" && e["peers"] == 0
        });
    }
    let idle_rss = rss_kib(lobby.pid());

    println!("| measure | n | p50 ms | p99 ms | min ms | max ms |");
    println!("|---|---|---|---|---|---|");
    summary("one join, `ms` reported by join", reported);
    summary("one join, wall time from process spawn", wall);
    summary("8 joiners at once, spawn to last connected", at_once);
    println!();
    println!(
        "host RSS with 8 players: {:.1} MiB; after they left: {:.1} MiB",
        rss_at_8 as f64 / 1024.0,
        idle_rss as f64 / 1024.0
    );
}
