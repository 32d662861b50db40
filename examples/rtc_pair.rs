//! Opens N WebRTC pairs at once on loopback and prints how long each took to open.
//!
//! ```text
//! cargo run --release --example rtc_pair -- [pairs=1] [rounds=1]
//! ```
//!
//! Per pair: `offer` (create_offer), `answer` (accept_offer), `open` (accept_answer until the
//! joiner's channel is open), `host_open` (until the host sees the channel), `total` (offer
//! created to both sides open), all in ms. Per round: the wall time until every pair is open,
//! and the process RSS growth while they are open. Before the rounds: the one-time crypto
//! initialisation (`rtc::warm_up`) and one warm-up pair, timed but not counted. A measuring
//! tool, not a test.

use std::time::{Duration, Instant};

use dat_social::rtc::{self, Reliability, RtcConfig, RtcEvent};

struct Timing {
    offer: Duration,
    answer: Duration,
    open: Duration,
    host_open: Duration,
    total: Duration,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Resident set size of this process in KiB (Linux), or 0.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn one_pair(
    cfg: RtcConfig,
) -> Result<
    (Timing, rtc::PeerConnection, rtc::PeerConnection),
    Box<dyn std::error::Error + Send + Sync>,
> {
    let t0 = Instant::now();
    let (pending, offer) = rtc::create_offer(&cfg, &[("chat", Reliability::Reliable)]).await?;
    let offer_done = t0.elapsed();
    let (answer, mut host) = rtc::accept_offer(&cfg, &offer).await?;
    let answer_done = t0.elapsed();
    let joiner = pending.accept_answer(&answer).await?;
    let open_done = t0.elapsed();
    loop {
        match tokio::time::timeout(cfg.connect_timeout, host.next_event()).await {
            Ok(Some(RtcEvent::ChannelOpen { .. })) => break,
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return Err("host never saw the channel".into()),
        }
    }
    let total = t0.elapsed();
    Ok((
        Timing {
            offer: offer_done,
            answer: answer_done - offer_done,
            open: open_done - answer_done,
            host_open: total - answer_done,
            total,
        },
        joiner,
        host,
    ))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let pairs: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1);
    let cfg = RtcConfig::default();
    let t = Instant::now();
    rtc::warm_up();
    let warm = t.elapsed();
    let (first, j, h) = one_pair(cfg.clone()).await?;
    println!(
        "warm-up: crypto init {:.1} ms, first pair total {:.1} ms (not counted)",
        ms(warm),
        ms(first.total)
    );
    j.close().await;
    h.close().await;
    let mut totals = Vec::new();
    let mut opens = Vec::new();
    let mut walls = Vec::new();
    for round in 0..rounds {
        let rss_before = rss_kib();
        let start = Instant::now();
        let tasks: Vec<_> = (0..pairs)
            .map(|_| tokio::spawn(one_pair(cfg.clone())))
            .collect();
        let mut open = Vec::new();
        for (i, t) in tasks.into_iter().enumerate() {
            let (t, j, h) = t.await??;
            if rounds == 1 || pairs > 1 {
                println!(
                    "round {round} pair {i}: offer {:.1} answer {:.1} open {:.1} host_open {:.1} total {:.1} ms",
                    ms(t.offer),
                    ms(t.answer),
                    ms(t.open),
                    ms(t.host_open),
                    ms(t.total)
                );
            }
            totals.push(ms(t.total));
            opens.push(ms(t.open));
            open.push((j, h));
        }
        let wall = start.elapsed();
        walls.push(ms(wall));
        let rss_after = rss_kib();
        println!(
            "round {round}: {pairs} pairs all open in {:.1} ms; RSS +{} KiB ({:.0} KiB per connection)",
            ms(wall),
            rss_after.saturating_sub(rss_before),
            rss_after.saturating_sub(rss_before) as f64 / (2 * pairs) as f64
        );
        for (j, h) in open {
            j.close().await;
            h.close().await;
        }
    }
    for v in [&mut totals, &mut opens, &mut walls] {
        v.sort_by(|a, b| a.total_cmp(b));
    }
    println!(
        "{rounds} rounds x {pairs} pairs: per pair total p50 {:.1} p95 {:.1} max {:.1} ms; \
         open-after-answer p50 {:.1} max {:.1} ms; all-open wall p50 {:.1} max {:.1} ms",
        percentile(&totals, 0.5),
        percentile(&totals, 0.95),
        percentile(&totals, 1.0),
        percentile(&opens, 0.5),
        percentile(&opens, 1.0),
        percentile(&walls, 0.5),
        percentile(&walls, 1.0),
    );
    Ok(())
}
