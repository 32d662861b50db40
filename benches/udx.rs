//! UDX throughput on loopback, ours against udx-native 1.21.3 in the same run: `BYTES` (default
//! 64 MiB) one way, in 64 KiB writes, for each pair of ends:
//!
//! - rust → rust: two of our sockets in this process;
//! - rust → js and js → rust: our stream and `tests/js/udx_peer.js` (a node process);
//! - js → js: `tests/js/udx_bench.js`, two udx-native streams in one node process (the
//!   reference).
//!
//! Timed from the first write to the last byte read (for rust → js, to the JS stream's close,
//! which follows its last read by one ack). `ROUNDS` (default 3) rounds; prints each round's
//! MiB/s and the median. Needs node and `npm ci --prefix tests/js`; fails without them.
//!
//! Run: `cargo bench --bench udx`.

#[path = "../tests/support/js.rs"]
mod js;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use dat_social::udx::{StreamEvent, UdxSocket, UdxStream};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

const WRITE: usize = 64 * 1024;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn write_then_end(stream: &UdxStream, bytes: usize) {
    let chunk = vec![7u8; WRITE];
    let writer = stream.writer();
    let mut sent = 0;
    while sent < bytes {
        let n = WRITE.min(bytes - sent);
        writer.write(&chunk[..n]).await.unwrap();
        sent += n;
    }
    writer.end().unwrap();
}

/// Reads until `bytes` arrived; returns when they did.
async fn read_bytes(stream: &mut UdxStream, bytes: usize) -> Instant {
    let mut got = 0;
    while got < bytes {
        match stream.next_event().await {
            Some(StreamEvent::Data(d)) => got += d.len(),
            Some(StreamEvent::Closed(e)) => panic!("closed at {got} bytes: {e:?}"),
            Some(_) => {}
            None => panic!("stream gone at {got} bytes"),
        }
    }
    Instant::now()
}

async fn rust_to_rust(bytes: usize) -> Duration {
    let a = UdxSocket::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let b = UdxSocket::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let sa = a.stream(1).unwrap();
    let mut sb = b.stream(2).unwrap();
    sa.connect(2, b.local_addr()).unwrap();
    sb.connect(1, a.local_addr()).unwrap();
    let start = Instant::now();
    let (_, done) = tokio::join!(write_then_end(&sa, bytes), read_bytes(&mut sb, bytes));
    done - start
}

/// A JS stream: (child, its stdout lines, address, id).
async fn js_peer(
    env: &[(&str, String)],
) -> (
    tokio::process::Child,
    tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    SocketAddr,
    u32,
) {
    let mut child = Command::new("node")
        .current_dir(js::js_dir())
        .arg("udx_peer.js")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], first["port"].as_u64().unwrap() as u16));
    (child, lines, addr, first["id"].as_u64().unwrap() as u32)
}

/// Connects our stream 42 and the JS one; returns ours once JS says it is connected.
async fn connect_js(
    child: &mut tokio::process::Child,
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    addr: SocketAddr,
    id: u32,
) -> UdxStream {
    let socket = UdxSocket::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let stream = socket.stream(42).unwrap();
    stream.connect(id, addr).unwrap();
    let line = format!("{{\"id\":42,\"port\":{}}}\n", socket.local_addr().port());
    let stdin = child.stdin.as_mut().unwrap();
    stdin.write_all(line.as_bytes()).await.unwrap();
    stdin.flush().await.unwrap();
    lines.next_line().await.unwrap().expect("connected");
    stream
}

async fn rust_to_js(bytes: usize) -> Duration {
    let env = [("MODE", "transfer".to_string()), ("BYTES", "0".to_string())];
    let (mut child, mut lines, addr, id) = js_peer(&env).await;
    let stream = connect_js(&mut child, &mut lines, addr, id).await;
    let start = Instant::now();
    write_then_end(&stream, bytes).await;
    let report: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(report["received"], bytes as u64, "{report}");
    elapsed
}

async fn js_to_rust(bytes: usize) -> Duration {
    let env = [
        ("MODE", "transfer".to_string()),
        ("BYTES", bytes.to_string()),
        ("WRITE", WRITE.to_string()),
    ];
    let (mut child, mut lines, addr, id) = js_peer(&env).await;
    let mut stream = connect_js(&mut child, &mut lines, addr, id).await;
    // JS starts writing as it prints "connected"; the clock starts then.
    let start = Instant::now();
    let done = read_bytes(&mut stream, bytes).await;
    stream.writer().end().unwrap();
    done - start
}

async fn js_to_js(bytes: usize) -> Duration {
    let out = js::run_js(
        "udx_bench.js",
        &[],
        &[("BYTES", &bytes.to_string())],
        Duration::from_secs(120),
    );
    Duration::from_secs_f64(out["ms"].as_f64().unwrap() / 1000.0)
}

fn mib_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64()
}

fn main() {
    let bytes = env_or("BYTES", 64 * 1024 * 1024);
    let rounds = env_or("ROUNDS", 3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "UDX one way on loopback, {bytes} bytes in {WRITE}-byte writes, {rounds} rounds (MiB/s)"
    );
    println!("| ends | rounds | median |");
    println!("|---|---|---:|");
    for name in ["rust → rust", "rust → js", "js → rust", "js → js"] {
        let mut rates: Vec<f64> = (0..rounds)
            .map(|_| {
                let d = rt.block_on(async {
                    match name {
                        "rust → rust" => rust_to_rust(bytes).await,
                        "rust → js" => rust_to_js(bytes).await,
                        "js → rust" => js_to_rust(bytes).await,
                        _ => js_to_js(bytes).await,
                    }
                });
                mib_s(bytes, d)
            })
            .collect();
        let shown: Vec<String> = rates.iter().map(|r| format!("{r:.1}")).collect();
        rates.sort_by(|a, b| a.total_cmp(b));
        println!(
            "| {name} | {} | {:.1} |",
            shown.join(", "),
            rates[rates.len() / 2]
        );
    }
}
