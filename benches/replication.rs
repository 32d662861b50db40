//! Replication throughput between two of our peers over loopback TCP (criterion, release).
//! `live_appends_1000`: 1,000 appends one after another on the writer, timed until all are
//! verified on the replica. `initial_sync_5000`: a replica catching up on 5,000 blocks.
//! `tcp_connect_and_handshake`: loopback TCP connect + secret-stream handshake, both sides.
//! Run: `cargo bench --bench replication`.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dat_social::hypercore::Core;
use dat_social::net::{Connection, SharedCore};
use ed25519_dalek::SigningKey;
use tokio::net::{TcpListener, TcpStream};

#[path = "../tests/support/sys.rs"]
mod sys;

fn key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

async fn connected_pair() -> (Connection, Connection) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        tcp.set_nodelay(true).unwrap();
        Connection::connect(tcp, &key(), false).await.unwrap()
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let a = Connection::connect(tcp, &key(), true).await.unwrap();
    (a, server.await.unwrap())
}

async fn wait_contiguous(core: &SharedCore, n: u64) {
    let mut rx = core.subscribe();
    let wait = async {
        while rx.borrow_and_update().contiguous_length < n {
            rx.changed().await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(120), wait)
        .await
        .expect("replication stalled");
}

/// Time for `appends` live appends (after `initial` blocks synced) to all reach the replica.
async fn run(initial: u64, appends: u64) -> Duration {
    let writer = SharedCore::new(Core::in_memory(key()));
    let blocks: Vec<Vec<u8>> = (0..initial)
        .map(|i| format!("block-{i}").into_bytes())
        .collect();
    if !blocks.is_empty() {
        let refs: Vec<&[u8]> = blocks.iter().map(|b| b.as_slice()).collect();
        writer.append_batch(&refs).unwrap();
    }
    let reader = SharedCore::new(Core::in_memory_replica(writer.key()));
    let (a, b) = connected_pair().await;
    let t = Instant::now();
    a.replicate(writer.clone()).await.unwrap();
    b.replicate(reader.clone()).await.unwrap();
    wait_contiguous(&reader, initial).await;
    if appends == 0 {
        return t.elapsed();
    }
    let t = Instant::now();
    for i in initial..initial + appends {
        writer.append(format!("block-{i}").as_bytes()).unwrap();
    }
    wait_contiguous(&reader, initial + appends).await;
    t.elapsed()
}

fn bench(c: &mut Criterion) {
    let rt = sys::runtime();
    let mut g = c.benchmark_group("replication");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(1000));
    g.bench_function("live_appends_1000", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| rt.block_on(run(0, 1000))).sum())
    });
    g.throughput(Throughput::Elements(5000));
    g.bench_function("initial_sync_5000", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| rt.block_on(run(5000, 0))).sum())
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("tcp_connect_and_handshake", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let t = Instant::now();
                for _ in 0..iters {
                    let (a, b) = connected_pair().await;
                    drop((a, b));
                }
                t.elapsed()
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
