//! `dat-social dht-node`: a persistent Hyperswarm DHT node (dht-rpc) until Ctrl-C: a bootstrap
//! node for a private network (`--bootstrapper`), or one more node of a network it joins.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use anyhow::{Context, Result};
use clap::Args;
use dat_social::dht::{DhtNode, DEFAULT_PORT, PUBLIC_BOOTSTRAP};

use crate::event::Event;
use crate::output::{self, Output};

/// Options of `dat-social dht-node`.
#[derive(Args)]
pub struct DhtNodeArgs {
    /// UDP port (0 picks a free one).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// IPv4 address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    host: Ipv4Addr,
    /// The IPv4 address other nodes reach this one at (its id is the hash of that address and
    /// the port). Default: --host, which must then be a specific address.
    #[arg(long, value_name = "IP")]
    public_ip: Option<Ipv4Addr>,
    /// A node to join the network through, HOST:PORT (IPv4; repeatable). Default: the public
    /// Hyperswarm bootstrap nodes.
    #[arg(
        long,
        value_name = "HOST:PORT",
        env = "DAT_SOCIAL_BOOTSTRAP",
        value_delimiter = ','
    )]
    bootstrap: Vec<SocketAddrV4>,
    /// Join no network: be the first node of a private one (others pass this node's address
    /// as their --bootstrap).
    #[arg(long, conflicts_with = "bootstrap")]
    bootstrapper: bool,
}

/// Starts the node, prints `dht-node`, and runs until Ctrl-C/SIGTERM, then prints `stopped`.
pub async fn run(args: DhtNodeArgs, out: &Output) -> Result<u8> {
    let public_ip = match (args.public_ip, args.host.is_unspecified()) {
        (Some(ip), _) => ip,
        (None, false) => args.host,
        // A usage error (exit 2), as clap's own.
        (None, true) => clap::Error::raw(
            clap::error::ErrorKind::MissingRequiredArgument,
            "a persistent node needs the address others reach it at: pass --public-ip, or a \
             specific --host\n",
        )
        .exit(),
    };
    let bootstrap: Vec<SocketAddrV4> = if args.bootstrapper {
        Vec::new()
    } else if args.bootstrap.is_empty() {
        PUBLIC_BOOTSTRAP
            .iter()
            .map(|a| a.parse().expect("constant"))
            .collect()
    } else {
        args.bootstrap
    };
    let bind = SocketAddr::from((args.host, args.port));
    let node = DhtNode::bind(bind, Some(public_ip), &bootstrap)
        .await
        .with_context(|| format!("cannot start the DHT node on {bind}"))?;
    let address = SocketAddrV4::new(public_ip, node.local_addr().port()).to_string();
    let id = node.id().map(hex::encode);
    let joined: Vec<String> = bootstrap.iter().map(ToString::to_string).collect();
    let text = match joined.is_empty() {
        true => format!("DHT node {address} (a bootstrapper: join with --bootstrap {address})"),
        false => format!("DHT node {address}, joining through {}", joined.join(", ")),
    };
    out.event(
        &Event::DhtNode {
            address,
            id,
            bootstrap: joined,
        },
        &text,
    );
    output::shutdown_signal().await;
    drop(node);
    out.event(&Event::Stopped, "stopped");
    Ok(0)
}
