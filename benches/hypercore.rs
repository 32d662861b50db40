//! Speed of `dat_social::hypercore::Core`: appends to a disk core (fsync + header rename per
//! batch), get + hash check, and proof creation + verification. Run:
//! `cargo bench -p dat-social --bench hypercore`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dat_social::hypercore::messages::{Request, RequestBlock, RequestUpgrade};
use dat_social::hypercore::Core;
use ed25519_dalek::SigningKey;

fn entry(i: u64) -> Vec<u8> {
    format!(
        "{{\"seq\":{i},\"type\":\"offer\",\"sdp\":\"{}\"}}",
        "x".repeat(200)
    )
    .into_bytes()
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_disk");
    g.sample_size(20);
    for batch in [1u64, 100] {
        g.throughput(Throughput::Elements(batch));
        g.bench_function(format!("batch_{batch}"), |b| {
            let tmp = tempfile::tempdir().unwrap();
            let mut core =
                Core::create(&tmp.path().join("c"), SigningKey::from_bytes(&[1; 32])).unwrap();
            let blocks: Vec<Vec<u8>> = (0..batch).map(entry).collect();
            let refs: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
            b.iter(|| core.append(black_box(&refs)).unwrap());
        });
    }
    g.finish();
}

fn read_and_verify(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = Core::create(&tmp.path().join("w"), SigningKey::from_bytes(&[2; 32])).unwrap();
    let blocks: Vec<Vec<u8>> = (0..10_000).map(entry).collect();
    for chunk in blocks.chunks(1000) {
        let refs: Vec<&[u8]> = chunk.iter().map(|b| &b[..]).collect();
        w.append(&refs).unwrap();
    }
    let mut i = 0u64;
    c.bench_function("get_disk_10k", |b| {
        b.iter(|| {
            i = (i + 7919) % 10_000;
            black_box(w.get(i).unwrap().unwrap())
        })
    });

    // A replica that knows the signed tree, fetching blocks one by one as the replicator does.
    let mut r = Core::in_memory_replica(w.key());
    let up = Request {
        id: 1,
        upgrade: Some(RequestUpgrade {
            start: 0,
            length: w.length(),
        }),
        ..Default::default()
    };
    r.verify_and_apply(&w.create_proof(&up).unwrap().unwrap())
        .unwrap();
    let proofs: Vec<_> = (0..1000u64)
        .map(|k| {
            let index = (k * 7919) % 10_000;
            let req = Request {
                id: 2,
                block: Some(RequestBlock {
                    index,
                    nodes: r.missing_nodes(2 * index).unwrap(),
                }),
                ..Default::default()
            };
            (req.clone(), w.create_proof(&req).unwrap().unwrap())
        })
        .collect();
    let mut k = 0usize;
    c.bench_function("create_block_proof_disk_10k", |b| {
        b.iter(|| {
            k = (k + 1) % proofs.len();
            black_box(w.create_proof(&proofs[k].0).unwrap().unwrap())
        })
    });
    c.bench_function("verify_and_apply_block_proof_10k", |b| {
        b.iter(|| {
            k = (k + 1) % proofs.len();
            black_box(r.verify_and_apply(&proofs[k].1).unwrap())
        })
    });
}

criterion_group!(benches, append, read_and_verify);
criterion_main!(benches);
