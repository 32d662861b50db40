//! `dat-social relay` against the npm `@hyperswarm/dht-relay` 0.4.3 relay, side by side in one
//! run, on the same loopback workload (a bench, not a test: it measures and prints a markdown
//! table, it asserts nothing about speed).
//!
//! `cargo bench --bench relay` (release build). Needs node and `npm ci --prefix tests/js`; it
//! fails (never skips) without them.
//!
//! - our relay: the `dat-social` binary (`RELAY_BIN` overrides the path),
//!   `relay --host 127.0.0.1 --port 0 --tcp-port 0 --json`;
//! - the JS relay: `node tests/js/bench-js-relay.js`, `relay(dht, stream)` on a 5-node
//!   `hyperdht/testnet` behind `ws` and TCP (secret-stream) servers, all in one node process;
//! - the workload: `node tests/js/bench-client.js` (npm relay client, custodial), the same against
//!   both. Every scenario gets a fresh relay process; the relay's memory is read from
//!   `/proc/<pid>/status` (VmRSS sampled every 20 ms, VmHWM).
//!
//! Environment: `CONNECTS` (50), `BYTES` (200,000,000), `IDLE` (1,000 sessions), `BIG_IDLE`
//! (10,000 sessions, our relay only; 0 to leave out), `BIG_PROCS` (4 client processes for it),
//! `HOLD_S` (20 s that the big idle set is held), `PAUSE_MS` (5,000 ms the slow reader stops
//! reading).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "../tests/support/js.rs"]
mod js;
#[path = "../tests/support/sys.rs"]
mod sys;

use js::js_dir;

/// What happened to relays outside the figures (a relay that exited on its own), printed under
/// the table.
static NOTES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Longest any one node client may run before it is killed.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest a relay may take to print `listening`.
const START_TIMEOUT: Duration = Duration::from_secs(60);

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// A field of /proc/PID/status in KiB (`VmRSS`, `VmHWM`), 0 once the process is gone.
fn proc_kib(pid: u32, field: &str) -> u64 {
    sys::status_kib(pid, field).unwrap_or(0)
}

/// This process's soft limit on open files (children inherit it), from /proc/self/limits.
fn nofile_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn loadavg() -> String {
    let l = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Ours,
    Js,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::Js => "JS",
        }
    }
}

/// A relay process on 127.0.0.1, killed on drop.
struct Relay {
    child: Child,
    kind: Kind,
    /// The scenario it serves, for notes.
    scenario: &'static str,
    ws: String,
    /// `127.0.0.1:PORT` of the TCP transport.
    tcp: String,
}

impl Relay {
    fn start(kind: Kind, scenario: &'static str) -> Relay {
        let mut cmd = match kind {
            Kind::Ours => {
                let bin = std::env::var("RELAY_BIN")
                    .unwrap_or_else(|_| env!("CARGO_BIN_EXE_dat-social").to_string());
                let mut c = Command::new(bin);
                c.args([
                    "relay",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--turn-port",
                    "0",
                ])
                .args(["--tcp-port", "0", "--json"]);
                c
            }
            Kind::Js => {
                let mut c = Command::new("node");
                c.current_dir(js_dir()).arg("bench-js-relay.js");
                c
            }
        };
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn the {} relay: {e}", kind.name()));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(START_TIMEOUT)
            .unwrap_or_else(|_| panic!("the {} relay did not print `listening`", kind.name()));
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{} relay printed {line:?}: {e}", kind.name()));
        assert_eq!(v["event"], "listening", "{v}");
        let ws = v["ws"].as_str().expect("ws address").to_string();
        let tcp = v["tcp"].as_str().expect("tcp address");
        let tcp = tcp.trim_start_matches("tcp://").to_string();
        // Let start-up allocations settle before any baseline is read.
        thread::sleep(Duration::from_millis(500));
        Relay {
            child,
            kind,
            scenario,
            ws,
            tcp,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn rss(&self) -> u64 {
        proc_kib(self.pid(), "VmRSS")
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Samples VmRSS every 20 ms until the returned guard is dropped; the guard holds the max.
    fn sampler(&self) -> Sampler {
        let (pid, stop, max) = (
            self.pid(),
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let (s, m) = (stop.clone(), max.clone());
        let handle = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                m.fetch_max(proc_kib(pid, "VmRSS"), Ordering::Relaxed);
                thread::sleep(Duration::from_millis(20));
            }
        });
        Sampler {
            stop,
            max,
            handle: Some(handle),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // A relay that exited before we stop it crashed, most likely while its clients closed
        // (the JS relay 0.4.3 dies when a relayed server's stream errors: FINDINGS.md).
        thread::sleep(Duration::from_millis(300));
        if let Ok(Some(status)) = self.child.try_wait() {
            let note = format!(
                "{} relay exited on its own ({status}) in `{}`",
                self.kind.name(),
                self.scenario
            );
            NOTES.lock().unwrap().push(note);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Sampler {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicU64>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Sampler {
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.max.load(Ordering::Relaxed)
    }
}

/// A running `node bench-client.js …`; its stdout lines arrive on `lines`.
struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Client {
    fn spawn(args: &[&str]) -> Client {
        let mut child = Command::new("node")
            .current_dir(js_dir())
            .arg("bench-client.js")
            .args(args)
            .env("TIMEOUT_S", CLIENT_TIMEOUT.as_secs().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn node bench-client.js");
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Client {
            child,
            stdin,
            lines,
        }
    }

    /// The next JSON line, or why there is none (exit, timeout, garbage).
    fn next(&mut self, timeout: Duration) -> Result<Value, String> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => serde_json::from_str(&line).map_err(|e| format!("{line:?}: {e}")),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(format!("no result in {timeout:?}")),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().map(|s| s.to_string());
                Err(format!("client exited ({})", status.unwrap_or_default()))
            }
        }
    }

    /// Closes stdin (the idle mode's signal to report and exit).
    fn close_stdin(&mut self) {
        if let Some(mut s) = self.stdin.take() {
            let _ = s.flush();
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one client to its result line.
fn run_client(args: &[&str]) -> Result<Value, String> {
    let mut c = Client::spawn(args);
    c.next(CLIENT_TIMEOUT)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// A measured figure, or why it could not be measured.
type Figure = Result<f64, String>;

struct ConnectFigures {
    p50: Figure,
    p95: Figure,
    session_p50: Figure,
}

fn bench_connect(kind: Kind, n: u64) -> ConnectFigures {
    let relay = Relay::start(kind, "connect");
    let r = run_client(&["connect", &relay.ws, &n.to_string()]);
    let get = |key: &str, p: f64| -> Figure {
        let v = r.as_ref().map_err(Clone::clone)?;
        let mut xs: Vec<f64> = v[key]
            .as_array()
            .ok_or_else(|| format!("no {key} in {v}"))?
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        xs.sort_by(|a, b| a.total_cmp(b));
        Ok(percentile(&xs, p))
    };
    ConnectFigures {
        p50: get("connect_ms", 50.0),
        p95: get("connect_ms", 95.0),
        session_p50: get("session_ms", 50.0),
    }
}

/// MB/s (10^6 bytes per second) of one relayed transfer over `transport`.
fn bench_throughput(kind: Kind, transport: &str, bytes: u64) -> (Figure, u64) {
    let mut relay = Relay::start(kind, "throughput");
    let address = if transport == "ws" {
        relay.ws.clone()
    } else {
        relay.tcp.clone()
    };
    let sampler = relay.sampler();
    let r = run_client(&["throughput", transport, &address, &bytes.to_string()]);
    let peak = sampler.finish();
    let fig = r.and_then(|v| v["mb_per_s"].as_f64().ok_or_else(|| format!("{v}")));
    let fig = if relay.alive() {
        fig
    } else {
        Err(format!(
            "relay died ({})",
            fig.map(|f| f.to_string()).unwrap_or_else(|e| e)
        ))
    };
    (fig, peak)
}

struct SlowFigures {
    baseline_kib: u64,
    peak_kib: u64,
    hwm_kib: u64,
    result: Result<Value, String>,
}

fn bench_slow(kind: Kind, bytes: u64, pause_ms: u64) -> SlowFigures {
    let relay = Relay::start(kind, "slow reader");
    let baseline_kib = relay.rss();
    let sampler = relay.sampler();
    let result = run_client(&[
        "slow",
        "ws",
        &relay.ws,
        &bytes.to_string(),
        &pause_ms.to_string(),
    ]);
    let peak_kib = sampler.finish();
    SlowFigures {
        baseline_kib,
        peak_kib,
        hwm_kib: proc_kib(relay.pid(), "VmHWM"),
        result,
    }
}

struct IdleFigures {
    sessions: u64,
    before_kib: u64,
    after_kib: u64,
    open_ms: f64,
    alive: Result<u64, String>,
    relay_alive: bool,
}

impl IdleFigures {
    fn per_session_kib(&self) -> f64 {
        (self.after_kib as f64 - self.before_kib as f64) / self.sessions as f64
    }
}

/// `sessions` idle sessions (half relayed servers, half clients connected to them, each with one
/// open stream) from `procs` node processes; RSS before and after, held for `hold_s`.
fn bench_idle(kind: Kind, sessions: u64, procs: u64, hold_s: u64) -> Result<IdleFigures, String> {
    let mut relay = Relay::start(kind, "idle sessions");
    let before_kib = relay.rss();
    let pairs = sessions / 2 / procs;
    let started = Instant::now();
    let hold = (hold_s + CLIENT_TIMEOUT.as_secs()).to_string();
    let mut clients: Vec<Client> = (0..procs)
        .map(|_| Client::spawn(&["idle", &relay.ws, &pairs.to_string(), &hold]))
        .collect();
    for c in &mut clients {
        let v = c.next(CLIENT_TIMEOUT)?;
        if v["event"] != "open" {
            return Err(format!("client said {v}"));
        }
    }
    let open_ms = started.elapsed().as_secs_f64() * 1e3;
    // Settle (allocator, pending writes), then read the relay's RSS with everything open.
    thread::sleep(Duration::from_secs(2));
    let after_kib = relay.rss();
    // Hold them open past at least one heartbeat round, then ask each client what survived.
    thread::sleep(Duration::from_secs(hold_s.saturating_sub(2)));
    let mut alive = Ok(0);
    for c in &mut clients {
        c.close_stdin();
        let v = c.next(Duration::from_secs(30));
        alive = match (alive, v) {
            (Ok(n), Ok(v)) => v["alive"]
                .as_u64()
                .map(|a| n + a)
                .ok_or_else(|| format!("client said {v}")),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
    }
    Ok(IdleFigures {
        sessions: pairs * 2 * procs,
        before_kib,
        after_kib,
        open_ms,
        alive,
        relay_alive: relay.alive(),
    })
}

fn fmt(f: &Figure, digits: usize) -> String {
    match f {
        Ok(v) => format!("{v:.digits$}"),
        Err(e) => format!("failed: {e}"),
    }
}

fn ratio(ours: &Figure, js: &Figure) -> String {
    match (ours, js) {
        (Ok(a), Ok(b)) if *b != 0.0 => format!("{:.2}×", a / b),
        _ => "—".into(),
    }
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "not measured",
    }
}

fn cmp(ours: &Figure, js: &Figure, pass: impl Fn(f64, f64) -> bool) -> Option<bool> {
    match (ours, js) {
        (Ok(a), Ok(b)) => Some(pass(*a, *b)),
        _ => None,
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and we do nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    // Fails (never skips) when node or the pinned npm packages are missing.
    js_dir();
    let connects = env_or("CONNECTS", 50);
    let bytes = env_or("BYTES", 200_000_000);
    let idle = env_or("IDLE", 1000);
    let big_idle = env_or("BIG_IDLE", 10_000);
    let big_procs = env_or("BIG_PROCS", 4).max(1);
    let hold_s = env_or("HOLD_S", 20);
    let pause_ms = env_or("PAUSE_MS", 5000);
    let kinds = [Kind::Ours, Kind::Js];
    let mut loads = vec![format!("start {}", loadavg())];

    // Ours first, then JS, scenario by scenario, so both see similar load.
    let connect: Vec<_> = kinds.iter().map(|&k| bench_connect(k, connects)).collect();
    loads.push(format!("after connect {}", loadavg()));
    let ws: Vec<_> = kinds
        .iter()
        .map(|&k| bench_throughput(k, "ws", bytes))
        .collect();
    let tcp: Vec<_> = kinds
        .iter()
        .map(|&k| bench_throughput(k, "tcp", bytes))
        .collect();
    loads.push(format!("after throughput {}", loadavg()));
    let idles: Vec<_> = kinds.iter().map(|&k| bench_idle(k, idle, 1, 3)).collect();
    loads.push(format!("after idle {}", loadavg()));
    let slow: Vec<_> = kinds
        .iter()
        .map(|&k| bench_slow(k, bytes, pause_ms))
        .collect();
    loads.push(format!("after slow reader {}", loadavg()));
    // The relay needs a descriptor per session (the clients share theirs among BIG_PROCS).
    let need = big_idle + 1024;
    let big = (big_idle > 0).then(|| match nofile_limit() {
        Some(n) if n < need => Err(format!(
            "not run: open files limit (ulimit -n) is {n}, it needs ≥ {need}"
        )),
        _ => bench_idle(Kind::Ours, big_idle, big_procs, hold_s),
    });
    loads.push(format!("end {}", loadavg()));

    println!();
    println!(
        "Relay vs @hyperswarm/dht-relay 0.4.3: {connects} connects, {bytes} B transfers in 64 KiB \
         writes, {idle} idle sessions, slow reader paused {pause_ms} ms"
    );
    println!("load average (1/5/15 min): {}", loads.join("; "));
    println!();
    println!("| measure | our relay | JS relay | ours / JS | target | |");
    println!("|---|---|---|---|---|---|");
    let (co, cj) = (&connect[0], &connect[1]);
    println!(
        "| connect → open p50, ms (WebSocket, new session each) | {} | {} | {} | p50 no slower | {} |",
        fmt(&co.p50, 1),
        fmt(&cj.p50, 1),
        ratio(&co.p50, &cj.p50),
        verdict(cmp(&co.p50, &cj.p50, |a, b| a <= b))
    );
    println!(
        "| connect → open p95, ms | {} | {} | {} | | |",
        fmt(&co.p95, 1),
        fmt(&cj.p95, 1),
        ratio(&co.p95, &cj.p95)
    );
    println!(
        "| new WebSocket → open p50, ms | {} | {} | {} | | |",
        fmt(&co.session_p50, 1),
        fmt(&cj.session_p50, 1),
        ratio(&co.session_p50, &cj.session_p50)
    );
    for (label, t) in [("WebSocket", &ws), ("TCP", &tcp)] {
        println!(
            "| throughput, {label}, MB/s | {} | {} | {} | ≥ 2× | {} |",
            fmt(&t[0].0, 1),
            fmt(&t[1].0, 1),
            ratio(&t[0].0, &t[1].0),
            verdict(cmp(&t[0].0, &t[1].0, |a, b| a >= 2.0 * b))
        );
        println!(
            "| relay peak RSS during it, MiB | {:.1} | {:.1} | | | |",
            mib(t[0].1),
            mib(t[1].1)
        );
    }
    let per: Vec<Figure> = idles
        .iter()
        .map(|r| {
            r.as_ref()
                .map(IdleFigures::per_session_kib)
                .map_err(Clone::clone)
        })
        .collect();
    println!(
        "| RSS per idle session at {idle}, KiB | {} | {} | {} | ≤ ¼ | {} |",
        fmt(&per[0], 1),
        fmt(&per[1], 1),
        ratio(&per[0], &per[1]),
        verdict(cmp(&per[0], &per[1], |a, b| a <= b / 4.0))
    );
    for (k, r) in kinds.iter().zip(&idles) {
        if let Ok(f) = r {
            println!(
                "| {} relay at {} idle sessions: RSS before → after, MiB; time to open | {:.1} → {:.1}; {:.1} s | | | | |",
                k.name(),
                f.sessions,
                mib(f.before_kib),
                mib(f.after_kib),
                f.open_ms / 1e3
            );
        }
    }
    let peak: Vec<Figure> = slow
        .iter()
        .map(|s| match &s.result {
            Ok(_) => Ok(mib(s.peak_kib.max(s.hwm_kib))),
            Err(e) => Err(format!(
                "{e} (peak {:.1} MiB)",
                mib(s.peak_kib.max(s.hwm_kib))
            )),
        })
        .collect();
    println!(
        "| peak RSS, slow reader ({bytes} B, reader paused {pause_ms} ms), MiB | {} | {} | {} | bounded | |",
        fmt(&peak[0], 1),
        fmt(&peak[1], 1),
        ratio(&peak[0], &peak[1])
    );
    println!(
        "| the same, RSS before the transfer, MiB | {:.1} | {:.1} | | | |",
        mib(slow[0].baseline_kib),
        mib(slow[1].baseline_kib)
    );
    for s in &slow {
        if let Ok(v) = &s.result {
            println!("<!-- slow reader: {v} -->");
        }
    }
    match big {
        None => println!(
            "| {big_idle} idle sessions (ours) | left out (BIG_IDLE=0) | | | held | not measured |"
        ),
        Some(Err(e)) => {
            println!("| {big_idle} idle sessions (ours) | failed: {e} | | | held | MISSED |")
        }
        Some(Ok(f)) => {
            let held = matches!(f.alive, Ok(a) if a == f.sessions) && f.relay_alive;
            println!(
                "| {} idle sessions on our relay ({big_procs} client processes): held after {hold_s} s | {} of {} open{} | | | held | {} |",
                f.sessions,
                f.alive.as_ref().map(u64::to_string).unwrap_or_else(Clone::clone),
                f.sessions,
                if f.relay_alive { "" } else { ", relay died" },
                verdict(Some(held))
            );
            println!(
                "| the same: RSS before → after, MiB; per session, KiB; time to open | {:.1} → {:.1}; {:.1}; {:.1} s | | | | |",
                mib(f.before_kib),
                mib(f.after_kib),
                f.per_session_kib(),
                f.open_ms / 1e3
            );
        }
    }
    let notes = NOTES.lock().unwrap();
    if !notes.is_empty() {
        println!();
    }
    for note in notes.iter() {
        println!("Note: {note}, before the bench stopped it.");
    }
}
