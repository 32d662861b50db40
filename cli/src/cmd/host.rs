//! `dat-social host`: hosts a game lobby until Ctrl-C/SIGTERM; stdin lines are chat.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use dat_social::home::Home;
use dat_social::lobby::{self, HostNetwork, HostOptions};

use super::ice::IceArgs;
use super::limits;
use super::lobby::{print_host_event, print_warning, read_password, send_stdin_chat};
use crate::event::Event;
use crate::output::{self, Output};

/// Options of `dat-social host`.
#[derive(Args)]
pub struct HostArgs {
    /// The lobby's name (default: your profile name).
    #[arg(long)]
    name: Option<String>,
    /// Most players the lobby admits (1-256). A player whose connection goes silent for 5 s
    /// (its path died, or it crashed) is dropped (`peer-left`) and its slot freed.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    max_peers: u32,
    /// A file whose first line is the lobby password (the lobby is open without it).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// TCP address to accept players on.
    #[arg(long, default_value = "0.0.0.0:0", value_name = "ADDR")]
    listen: String,
    /// Seconds between heartbeats (rewrites of last_update in session.json), 1-86400.
    #[arg(
        long,
        default_value_t = 300,
        value_name = "SECS",
        value_parser = clap::value_parser!(u64).range(1..=limits::MAX_HEARTBEAT_SECS)
    )]
    heartbeat: u64,
    /// Also accept players through this @hyperswarm/dht-relay relay (ws://, wss:// or tcp://
    /// HOST:PORT), listening on your identity key; the invite carries it. Non-custodial: your
    /// secret key stays here, the relay only carries handshakes and ciphertext.
    #[arg(long, value_name = "URL")]
    relay: Option<String>,
    /// With --relay: custodial mode instead, for relays that need it (e.g. to be reached by
    /// @hyperswarm/dht-relay clients in their default custodial mode): the relay receives your
    /// identity secret key and runs the handshakes for you.
    #[arg(long, requires = "relay")]
    custodial: bool,
    /// Admit only mutual friends (players you follow who follow you); others are rejected with
    /// reason "friends-only".
    #[arg(long)]
    friends_only: bool,
    /// Announce your archive on the local network (multicast DNS), so that friends running
    /// `sessions --lan` find the lobby with no relay or address.
    #[arg(long, env = "DAT_SOCIAL_LAN")]
    lan: bool,
    #[command(flatten)]
    ice: IceArgs,
}

/// Starts the lobby, prints `hosting`, then its events until Ctrl-C/SIGTERM (or stdout gone),
/// and `ended` once `session.json` is marked ended.
pub async fn run(home: &Home, args: HostArgs, out: &Output) -> Result<u8> {
    let identity = home.identity()?;
    let (network, options) = host_options(args)?;
    let endpoint = std::sync::Arc::new(network.bind(identity).await?);
    let mut lobby = lobby::Host::start(home, endpoint, options).await?;
    let info = lobby.info();
    let mut stop = output::shutdown_signal();
    let text = format!(
        "hosting {:?} for up to {} players\ninvite: {}\n(type a line to chat, Ctrl-C to end)",
        info.name, info.max_peers, info.invite
    );
    let event = Event::Hosting {
        url: info.url.clone(),
        invite: info.invite.clone(),
        lobby: info.lobby.clone(),
        max_peers: info.max_peers,
        listen: info.listen.to_string(),
        relay: info.relay.clone(),
    };
    out.event(&event, &text);
    let chat = lobby.chat();
    let mut refused = send_stdin_chat(move |text| {
        let chat = chat.clone();
        async move { chat.say(&text).await }
    });
    loop {
        tokio::select! {
            event = lobby.next_event() => match event {
                Some(event) => print_host_event(&event, out),
                None => break,
            },
            Some(message) = refused.recv() => print_warning(message, out),
            _ = &mut stop => break,
        }
    }
    lobby.shutdown().await?;
    out.event(&Event::Ended, "lobby ended");
    Ok(0)
}

/// The library's options from the command line: where the lobby is reachable, and the lobby.
/// Errors: a bad relay URL, an unreadable password file.
fn host_options(args: HostArgs) -> Result<(HostNetwork, HostOptions)> {
    let relay = match args.relay {
        Some(url) => Some(lobby::HostRelay {
            url: url.parse()?,
            custodial: args.custodial,
            client: Default::default(),
        }),
        None => None,
    };
    let network = HostNetwork {
        listen: args.listen,
        relay,
        lan: args.lan,
    };
    let options = HostOptions {
        name: args.name,
        max_peers: args.max_peers,
        password: read_password(&args.password_file)?,
        heartbeat: Duration::from_secs(args.heartbeat),
        friends_only: args.friends_only,
        ice: args.ice.config(),
        ..HostOptions::default()
    };
    Ok((network, options))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use dat_social::ice::IcePolicy;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        host: HostArgs,
    }

    #[test]
    fn the_ice_options_reach_the_host_options() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ice.json");
        std::fs::write(&file, r#"[{"urls": "stun:192.0.2.1:3478"}]"#).unwrap();
        let argv = ["t", "--ice-servers", file.to_str().unwrap()];
        let (_, options) = host_options(Cli::try_parse_from(argv).unwrap().host).unwrap();
        assert_eq!(options.ice.servers.len(), 1);
        assert_eq!(options.ice.servers[0].urls, vec!["stun:192.0.2.1:3478"]);
        assert_eq!(options.ice.policy, IcePolicy::All);
        let argv = ["t", "--ice-policy", "relay"];
        let (_, options) = host_options(Cli::try_parse_from(argv).unwrap().host).unwrap();
        assert_eq!(options.ice.policy, IcePolicy::Relay);
        assert!(options.ice.servers.is_empty());
    }
}
