//! `dat-social`: the command-line program. One sub-command per user task, each in its own
//! module under [`cmd`]; this file parses the command line, sets up logging and the runtime, and
//! dispatches. `--json` prints one JSON object per line on stdout, each with an `"event"` field:
//! the contract is [`event::Event`].

mod cmd;
mod event;
mod exit;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use dat_social::home::Home;
use output::Output;

#[derive(Parser)]
#[command(
    name = "dat-social",
    version,
    about = "Dat-style identities and game lobbies: WebRTC signalling over hypercore logs",
    after_help = "Examples:\n  dat-social init --name alice\n  dat-social host --max-peers 8\n  dat-social join 'dat://<key>?peer=192.168.1.5:41234'\n\nExit codes: 0 ok, 1 error, 2 usage, 3 host unreachable, 4 lobby full, 5 wrong password,\n6 rejected (other reason), 7 timed out."
)]
struct Cli {
    /// Data directory (default: the platform data directory, e.g. ~/.local/share/dat-social).
    #[arg(long, global = true, env = "DAT_SOCIAL_HOME", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Print one JSON object per line on stdout, each with an "event" field.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create your identity (an ed25519 key pair) and your archive with profile.json.
    #[command(after_help = "Example:\n  dat-social init --name alice")]
    Init(cmd::init::InitArgs),
    /// Print your dat:// URL and your profile.
    #[command(after_help = "Example:\n  dat-social whoami --json")]
    Whoami,
    /// Change your profile.
    #[command(
        subcommand,
        after_help = "Example:\n  dat-social profile set --name 'Alice B.'"
    )]
    Profile(cmd::profile::ProfileCommand),
    /// Fetch and verify another user's archive and print their profile and lobby.
    #[command(
        after_help = "Example:\n  dat-social show 'dat://<key>?peer=192.168.1.5:41234' --json"
    )]
    Show(cmd::show::ShowArgs),
    /// Host a game lobby until Ctrl-C; each line on stdin is a chat message to every player.
    #[command(
        after_help = "Example:\n  dat-social host --name 'friday game' --max-peers 8 --listen 0.0.0.0:41234"
    )]
    Host(cmd::host::HostArgs),
    /// Join a lobby; each line on stdin is a chat message to the lobby.
    #[command(
        after_help = "Example:\n  dat-social join 'dat://<host key>?peer=192.168.1.5:41234'\n\nA connection to the host that goes silent for 5 s counts as lost (docs/NAT.md).\nExit codes: 3 host unreachable or lost, 4 lobby full, 5 wrong password, 6 rejected,\n7 timed out."
    )]
    Join(cmd::join::JoinArgs),
    /// Manage whom you follow: add, remove, list (with who is online and hosting).
    #[command(subcommand)]
    Friends(cmd::friends::FriendsCommand),
    /// List the live lobbies among your friends; --watch follows them as they change.
    #[command(
        after_help = "Examples:\n  dat-social sessions\n  dat-social sessions --watch --json\n\nA lobby is live while its host is reachable, it is not ended, and its last_update is no older\nthan twice its heartbeat."
    )]
    Sessions(cmd::sessions::SessionsArgs),
    /// Verify your archive and your friends' replicas on disk; --repair mends what is safe.
    #[command(
        after_help = "Examples:\n  dat-social check\n  dat-social check --repair --json\n\nExit code 1 when something is (still) damaged."
    )]
    Check(cmd::check::CheckArgs),
    /// Run a @hyperswarm/dht-relay compatible relay (WebSocket, optionally TCP) until Ctrl-C.
    #[command(
        after_help = "Examples:\n  dat-social relay --port 49443 --tcp-port 49444 --json\n  dat-social relay --port 443 --cert fullchain.pem --key privkey.pem   (wss://)"
    )]
    Relay(cmd::relay::RelayArgs),
    /// Run a persistent Hyperswarm DHT node until Ctrl-C (a bootstrap node for a private network).
    #[command(
        name = "dht-node",
        after_help = "Examples:\n  dat-social dht-node --host 203.0.113.5 --port 49737 --bootstrapper --json\n  dat-social dht-node --public-ip 203.0.113.6 --bootstrap 203.0.113.5:49737\n\nIt routes lookups and stores hyperdht's records and values; connections come next (docs/DHT.md)."
    )]
    DhtNode(cmd::dht_node::DhtNodeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            // turn-client-proto warns on every refused ChannelBind, which is normal: a TURN
            // server refuses to relay to the peer's private host candidates (ours does by
            // default), and ICE uses the other candidates. RUST_LOG still shows them.
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,turn_client_proto=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // Each followed friend online holds a socket and a replica's files: the common soft limit
    // of 1024 open files would cap `sessions --watch` at a few hundred friends.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::debug!("cannot raise the open-files limit: {e}");
    }
    let out = Output::new(cli.json);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let code = match runtime.block_on(run(cli, &out)) {
        Ok(code) => code,
        Err(err) => {
            out.error(&err);
            exit::code_of(&err)
        }
    };
    ExitCode::from(out.finish(code))
}

/// The data directory: `--data-dir` / `DAT_SOCIAL_HOME`, else the platform's.
fn home(cli: &Cli) -> Result<Home> {
    if let Some(dir) = &cli.data_dir {
        return Ok(Home::new(dir));
    }
    let dirs = directories::ProjectDirs::from("", "", "dat-social")
        .context("cannot find a home directory; pass --data-dir or set DAT_SOCIAL_HOME")?;
    Ok(Home::new(dirs.data_dir()))
}

/// Runs the command; its exit code, or the error that ended it.
async fn run(cli: Cli, out: &Output) -> Result<u8> {
    let home = home(&cli)?;
    match cli.command {
        Command::Init(args) => cmd::init::run(&home, args, out),
        Command::Whoami => cmd::whoami::run(&home, out),
        Command::Profile(command) => cmd::profile::run(&home, command, out),
        Command::Show(args) => cmd::show::run(&home, args, out).await,
        Command::Host(args) => cmd::host::run(&home, args, out).await,
        Command::Join(args) => cmd::join::run(&home, args, out).await,
        Command::Relay(args) => cmd::relay::run(args, out).await,
        Command::DhtNode(args) => cmd::dht_node::run(args, out).await,
        Command::Friends(command) => cmd::friends::run(&home, command, out).await,
        Command::Sessions(args) => cmd::sessions::run(&home, args, out).await,
        Command::Check(args) => cmd::check::run(&home, args, out),
    }
}
