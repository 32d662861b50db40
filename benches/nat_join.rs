//! Join latency across the NAT lab (tests/natlab), with real processes of the binary: the host
//! in one home, the player in another, `dat-social relay` on the public segment, and a delay on
//! every router's WAN link (default 20 ms each way, so 80 ms round trips between the homes; a
//! user-space wire, since this kernel has no `tc netem`). A bench, not a test: it measures and
//! prints, it asserts nothing about speed.
//!
//! `cargo bench --bench nat_join` (release build, root). Environment: `JOINS` sequential joins
//! (default 30), `DELAY_MS` one-way delay per router (default 20), `PATHS` the home kinds to
//! measure, comma-separated (default `open,cone,symmetric`), `TIMELINE=<dir>` to keep the last
//! join's and the host's stderr there (run with `RUST_LOG=dat_social=debug` for the timestamped
//! steps of both sides).
//!
//! Paths measured (signalling through the relay, as a player holding only the relay's URL
//! joins): `open` (both homes public: host candidates), `cone` (both behind cone NATs: the
//! join reports `connected` on the first pair ICE nominates, often the relayed one, and settles
//! on srflx after), `symmetric` (both behind symmetric NATs: the relay's TURN).

#[path = "../tests/natlab/mod.rs"]
mod natlab;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use natlab::scenario::{host_lobby, join_lobby, LabRelay};
use natlab::{HomeOptions, Lab, NatKind};
use support::stats::{env_or, summary};
use support::{User, WAIT};

/// Runs `joins` sequential joins (after one warm-up) from a `player` home to a host in a `host`
/// home, `delay` each way on both routers, with `join_args`; prints the `ms` each join reports
/// and the wall time from spawning it, p50 and p99.
fn measure(host: NatKind, player: NatKind, delay: Duration, joins: u64, join_args: &[&str]) {
    let Some(mut lab) = Lab::new("bench") else {
        return;
    };
    let options = HomeOptions {
        hosts: 1,
        delay: Some(delay),
    };
    let host_home = lab.add_home_with(host, options);
    let player_home = lab.add_home_with(player, options);
    let relay = LabRelay::start(&lab, &[]);
    let mut lobby = host_lobby(&relay, host_home.host(), &[]);
    let at = player_home.host();

    let (mut reported, mut wall) = (Vec::new(), Vec::new());
    for i in 0..=joins {
        let user = User::new(&format!("p{i}"));
        let started = Instant::now();
        let outcome = join_lobby(&lobby, at, user, join_args);
        let elapsed = started.elapsed();
        let Some(mut proc) = outcome.proc.filter(|_| outcome.joined) else {
            panic!(
                "join {i} failed: {:?} (exit {:?}); stderr: {}",
                outcome.error, outcome.exit_code, outcome.stderr
            );
        };
        if i > 0 {
            wall.push(elapsed.as_secs_f64() * 1e3);
            reported.push(outcome.connected.unwrap()["ms"].as_f64().unwrap());
        }
        proc.signal("INT");
        proc.wait_exit(WAIT);
        if let (Some(dir), true) = (std::env::var_os("TIMELINE"), i == joins) {
            save_timeline(
                std::path::Path::new(&dir),
                &proc.stderr(),
                &lobby.proc.stderr(),
            );
        }
        lobby.proc.expect("peer-left");
    }
    let label = format!("{}/{}", host.name(), player.name());
    summary(&format!("{label}, `ms` reported by join"), reported);
    summary(&format!("{label}, wall time from spawn to connected"), wall);
}

/// Writes the last join's stderr and the host's to `dir` (`join.log`, `host.log`): with
/// `RUST_LOG=dat_social=debug` their timestamped `join:`/`host:` steps are the join's timeline.
fn save_timeline(dir: &std::path::Path, join: &str, host: &str) {
    std::fs::create_dir_all(dir).expect("TIMELINE dir");
    std::fs::write(dir.join("join.log"), join).expect("join.log");
    std::fs::write(dir.join("host.log"), host).expect("host.log");
}

fn main() {
    // `cargo bench` passes `--bench`; a plain `cargo test` of benches passes nothing and we skip.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let joins = env_or("JOINS", 30);
    let delay = Duration::from_millis(env_or("DELAY_MS", 20));
    println!(
        "NAT lab joins through the relay, {} ms each way per router ({} ms RTT between homes)",
        delay.as_millis(),
        4 * delay.as_millis()
    );
    println!("| path | n | p50 ms | p99 ms | min ms | max ms |");
    println!("|---|---|---|---|---|---|");
    let paths = std::env::var("PATHS").unwrap_or_else(|_| "open,cone,symmetric".into());
    for path in paths.split(',') {
        let kind = match path.trim() {
            "open" => NatKind::Open,
            "cone" => NatKind::Cone,
            "symmetric" => NatKind::Symmetric,
            other => panic!("PATHS: unknown kind {other:?} (open, cone, symmetric)"),
        };
        measure(kind, kind, delay, joins, &[]);
    }
}
