//! A probe for LAN discovery (`dat_social::discovery::mdns`), one side per process; the tests in
//! `tests/discovery_mdns.rs` run it inside network namespaces. Prints one JSON object per line on
//! stdout.
//!
//! ```text
//! mdns_probe announce <discovery key, 64 hex> <tcp port> [--self-lookup-ms N] [--iface NAME]...
//!     {"event":"announced","instance":"…","fullname":"…","port":…}
//!     {"event":"self-lookup","addrs":[…]}          (with --self-lookup-ms: own lookup, must be empty)
//!     then announces until stdin reaches end of file or a line `stop`:
//!     {"event":"stopped"}                          (goodbye sent, daemon shut down)
//! mdns_probe lookup <discovery key> <timeout ms> [--iface NAME]...
//!     {"event":"lookup","addrs":["10.0.0.1:4242",…],"peers":[{"instance":…,"host":…,"addrs":[…]}]}
//! mdns_probe watch <discovery key> <duration ms> [--iface NAME]...
//!     {"event":"peers","peers":[…]}                once at start and at every change, for N ms
//!     {"event":"done"}
//! ```
//!
//! Errors go to stderr with exit status 1 (bad arguments: 2).

use std::time::Duration;

use dat_social::discovery::mdns::{MdnsConfig, MdnsDiscovery, MdnsPeer};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

fn usage() -> ! {
    eprintln!(
        "usage: mdns_probe announce <dk hex> <port> [--self-lookup-ms N] [--iface NAME]...\n\
         \x20      mdns_probe lookup <dk hex> <timeout ms> [--iface NAME]...\n\
         \x20      mdns_probe watch <dk hex> <duration ms> [--iface NAME]..."
    );
    std::process::exit(2)
}

fn emit(value: Value) {
    println!("{value}");
}

fn peers_json(peers: &[MdnsPeer]) -> Value {
    peers
        .iter()
        .map(|p| {
            json!({
                "instance": p.instance,
                "host": p.host,
                "addrs": p.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            })
        })
        .collect()
}

struct Args {
    command: String,
    dk: [u8; 32],
    number: u64,
    self_lookup_ms: Option<u64>,
    config: MdnsConfig,
}

fn parse_args() -> Args {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        usage();
    }
    let mut dk = [0u8; 32];
    if hex::decode_to_slice(&args[1], &mut dk).is_err() {
        eprintln!("the discovery key must be 64 hex digits");
        usage();
    }
    let number = args[2].parse().unwrap_or_else(|_| usage());
    let mut parsed = Args {
        command: args[0].clone(),
        dk,
        number,
        self_lookup_ms: None,
        config: MdnsConfig::default(),
    };
    let mut rest = args[3..].iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--self-lookup-ms" => {
                parsed.self_lookup_ms = Some(value.parse().unwrap_or_else(|_| usage()))
            }
            "--iface" => parsed.config.interfaces.push(value.clone()),
            _ => usage(),
        }
    }
    parsed
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    if let Err(e) = run(args).await {
        eprintln!("mdns_probe: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let discovery = MdnsDiscovery::with_config(args.config.clone())?;
    match args.command.as_str() {
        "announce" => {
            let port = u16::try_from(args.number)?;
            let announcement = discovery.announce(args.dk, port)?;
            emit(json!({
                "event": "announced",
                "instance": announcement.instance(),
                "fullname": announcement.fullname(),
                "port": port,
            }));
            if let Some(ms) = args.self_lookup_ms {
                let addrs = discovery.lookup(args.dk, Duration::from_millis(ms)).await?;
                emit(json!({
                    "event": "self-lookup",
                    "addrs": addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                }));
            }
            // Until end of file or `stop` on stdin (the test closes it or kills the process).
            let mut lines = BufReader::new(tokio::io::stdin()).lines();
            while let Some(line) = lines.next_line().await? {
                if line.trim() == "stop" {
                    break;
                }
            }
            announcement.stop().await?;
            discovery.shutdown().await?;
            emit(json!({"event": "stopped"}));
        }
        "lookup" => {
            let peers = discovery
                .lookup_peers(args.dk, Duration::from_millis(args.number))
                .await?;
            let addrs: Vec<String> = peers
                .iter()
                .flat_map(|p| p.addrs.iter().map(|a| a.to_string()))
                .collect();
            emit(json!({"event": "lookup", "addrs": addrs, "peers": peers_json(&peers)}));
            discovery.shutdown().await?;
        }
        "watch" => {
            let mut watch = discovery.watch(args.dk)?;
            emit(json!({"event": "peers", "peers": peers_json(&watch.peers())}));
            let deadline = tokio::time::Instant::now() + Duration::from_millis(args.number);
            // Bounded by the deadline.
            while let Ok(changed) = tokio::time::timeout_at(deadline, watch.changed()).await {
                emit(json!({"event": "peers", "peers": peers_json(&changed?)}));
            }
            emit(json!({"event": "done"}));
            drop(watch);
            discovery.shutdown().await?;
        }
        _ => usage(),
    }
    Ok(())
}
