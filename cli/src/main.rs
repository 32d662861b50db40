//! `dat-social`: the command-line program. One sub-command per user task; `--json` prints one JSON
//! object per line on stdout, each with an `"event"` field.

mod check;
mod friends;
mod output;
mod relay;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use dat_social::home::Home;
use dat_social::identity::DatUrl;
use dat_social::lobby::{self, HostOptions, JoinError, JoinOptions, LobbyEvent};
use dat_social::signal::RejectReason;
use output::{Output, Untrusted};

/// The ranges of the numeric options, in seconds (in `--help`, README.md and docs/SECURITY.md);
/// a value outside is a usage error (exit 2) naming the option.
mod limits {
    /// `show --timeout` and `join --timeout`: an hour at most.
    pub const MAX_TIMEOUT_SECS: u64 = 3600;
    /// `host --heartbeat`: a day at most (readers call a lobby gone after two heartbeats).
    pub const MAX_HEARTBEAT_SECS: u64 = 86_400;
    /// `--look-timeout` (`friends list`, `sessions`): five minutes per friend at most.
    pub const MAX_LOOK_TIMEOUT_SECS: u64 = 300;
}

/// Exit codes of `dat-social join` besides 0 (success), 1 (any other error) and 2 (usage).
mod exit {
    /// The host could not be reached (connection refused, timed out, or it vanished mid-handshake).
    pub const UNREACHABLE: u8 = 3;
    /// The lobby is full.
    pub const FULL: u8 = 4;
    /// The password is wrong or missing.
    pub const PASSWORD: u8 = 5;
    /// Rejected for another reason (the lobby ended, friends only, protocol error).
    pub const REJECTED: u8 = 6;
    /// The lobby did not answer, or the data channel did not open, in time.
    pub const TIMEOUT: u8 = 7;
}

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
    Init {
        /// Your display name (1 to 100 characters).
        #[arg(long)]
        name: String,
    },
    /// Print your dat:// URL and your profile.
    #[command(after_help = "Example:\n  dat-social whoami --json")]
    Whoami,
    /// Change your profile.
    #[command(
        subcommand,
        after_help = "Example:\n  dat-social profile set --name 'Alice B.'"
    )]
    Profile(ProfileCommand),
    /// Fetch and verify another user's archive and print their profile and lobby.
    #[command(
        after_help = "Example:\n  dat-social show 'dat://<key>?peer=192.168.1.5:41234' --json"
    )]
    Show {
        /// The user's dat:// URL, with a ?peer= hint or --peer.
        url: String,
        /// Their TCP address, if the URL has no peer hint.
        #[arg(long, value_name = "ADDR")]
        peer: Option<String>,
        /// Seconds to wait for the archive (1-3600).
        #[arg(
            long,
            default_value_t = 10,
            value_name = "SECS",
            value_parser = clap::value_parser!(u64).range(1..=limits::MAX_TIMEOUT_SECS)
        )]
        timeout: u64,
    },
    /// Host a game lobby until Ctrl-C; each line on stdin is a chat message to every player.
    #[command(
        after_help = "Example:\n  dat-social host --name 'friday game' --max-peers 8 --listen 0.0.0.0:41234"
    )]
    Host(HostArgs),
    /// Join a lobby; each line on stdin is a chat message to the lobby.
    #[command(
        after_help = "Example:\n  dat-social join 'dat://<host key>?peer=192.168.1.5:41234'\n\nExit codes: 3 host unreachable, 4 lobby full, 5 wrong password, 6 rejected, 7 timed out."
    )]
    Join(JoinArgs),
    /// Manage whom you follow: add, remove, list (with who is online and hosting).
    #[command(subcommand)]
    Friends(friends::FriendsCommand),
    /// List the live lobbies among your friends; --watch follows them as they change.
    #[command(
        after_help = "Examples:\n  dat-social sessions\n  dat-social sessions --watch --json\n\nA lobby is live while its host is reachable, it is not ended, and its last_update is no older\nthan twice its heartbeat."
    )]
    Sessions(friends::SessionsArgs),
    /// Verify your archive and your friends' replicas on disk; --repair mends what is safe.
    #[command(
        after_help = "Examples:\n  dat-social check\n  dat-social check --repair --json\n\nExit code 1 when something is (still) damaged."
    )]
    Check(check::CheckArgs),
    /// Run a @hyperswarm/dht-relay compatible relay (WebSocket, optionally TCP) until Ctrl-C.
    #[command(
        after_help = "Examples:\n  dat-social relay --port 49443 --tcp-port 49444 --json\n  dat-social relay --port 443 --cert fullchain.pem --key privkey.pem   (wss://)"
    )]
    Relay(relay::RelayArgs),
}

#[derive(Subcommand)]
enum ProfileCommand {
    /// Set fields of profile.json.
    #[command(after_help = "Example:\n  dat-social profile set --name 'Alice B.'")]
    Set {
        /// New display name.
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Args)]
struct HostArgs {
    /// The lobby's name (default: your profile name).
    #[arg(long)]
    name: Option<String>,
    /// Most players the lobby admits (1-256).
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
}

#[derive(Args)]
#[group(id = "target", required = true, args = ["url", "friend", "quick"])]
struct JoinArgs {
    /// The host's dat:// URL (an invite link, usually with ?peer=host:port).
    url: Option<String>,
    /// Join this friend's live lobby (alias, profile name or dat:// URL).
    #[arg(long, value_name = "NAME|URL", conflicts_with_all = ["url", "quick"])]
    friend: Option<String>,
    /// Join the live lobby among your friends with a free slot and the most players.
    #[arg(long, conflicts_with_all = ["url", "friend"])]
    quick: bool,
    /// The host's TCP address, if the URL has no peer hint.
    #[arg(long, value_name = "ADDR")]
    peer: Option<String>,
    /// Reach the host through this relay (ws://HOST:PORT or tcp://HOST:PORT) instead of the
    /// URL's hints. An invite's ?relay= is used without this flag. With --friend/--quick,
    /// friends are also looked for there.
    #[arg(long, value_name = "URL", env = "DAT_SOCIAL_RELAY")]
    relay: Option<String>,
    /// A file whose first line is the lobby password.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// With --friend/--quick: also look for friends on the local network (multicast DNS).
    #[arg(long, env = "DAT_SOCIAL_LAN")]
    lan: bool,
    /// Seconds to wait for the host and the data channel (1-3600).
    #[arg(
        long,
        default_value_t = 15,
        value_name = "SECS",
        value_parser = clap::value_parser!(u64).range(1..=limits::MAX_TIMEOUT_SECS)
    )]
    timeout: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
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
            exit_code(&err)
        }
    };
    ExitCode::from(out.finish(code))
}

fn exit_code(err: &anyhow::Error) -> u8 {
    match err.downcast_ref::<JoinError>() {
        Some(JoinError::Unreachable { .. }) => exit::UNREACHABLE,
        Some(JoinError::Rejected(RejectReason::Full)) => exit::FULL,
        Some(JoinError::Rejected(RejectReason::Password)) => exit::PASSWORD,
        Some(JoinError::Rejected(_)) | Some(JoinError::NotHosting(_)) => exit::REJECTED,
        Some(JoinError::Timeout(_)) => exit::TIMEOUT,
        _ => 1,
    }
}

fn home(cli: &Cli) -> Result<Home> {
    if let Some(dir) = &cli.data_dir {
        return Ok(Home::new(dir));
    }
    let dirs = directories::ProjectDirs::from("", "", "dat-social")
        .context("cannot find a home directory; pass --data-dir or set DAT_SOCIAL_HOME")?;
    Ok(Home::new(dirs.data_dir()))
}

async fn run(cli: Cli, out: &Output) -> Result<u8> {
    let home = home(&cli)?;
    match cli.command {
        Command::Init { name } => init(&home, &name, out),
        Command::Whoami => whoami(&home, out),
        Command::Profile(ProfileCommand::Set { name }) => profile_set(&home, name, out),
        Command::Show { url, peer, timeout } => show(&home, &url, peer, timeout, out).await,
        Command::Host(args) => host(&home, args, out).await,
        Command::Join(args) => join(&home, args, out).await,
        Command::Relay(args) => relay::relay(args, out).await,
        Command::Friends(command) => friends::friends(&home, command, out).await,
        Command::Sessions(args) => friends::sessions(&home, args, out).await,
        Command::Check(args) => check::check(&home, args, out),
    }
}

fn init(home: &Home, name: &str, out: &Output) -> Result<u8> {
    let (identity, profile) = home.init(name)?;
    out.event(
        "initialized",
        serde_json::json!({ "url": identity.url().to_string(), "profile": profile, "data_dir": home.root() }),
        &format!(
            "created identity {}\nname: {}",
            identity.url(),
            Untrusted(&profile.name)
        ),
    );
    Ok(0)
}

fn whoami(home: &Home, out: &Output) -> Result<u8> {
    let identity = home.identity()?;
    let files = home.files(&identity)?;
    let profile = files
        .profile
        .clone()
        .context("your archive has no profile.json")?;
    let mut text = format!(
        "{}\nname: {}\ncreated: {}\nfriends: {}",
        identity.url(),
        Untrusted(&profile.name),
        profile.created,
        profile.friends.len()
    );
    if let Some(s) = &files.session {
        let state = match s.ended {
            Some(_) => "ended",
            None => "hosting",
        };
        text += &format!(
            "\nlobby: \"{}\" {}/{} players ({state})",
            Untrusted(&s.name),
            s.peers,
            s.max_peers
        );
    }
    out.event(
        "whoami",
        serde_json::json!({
            "url": identity.url().to_string(), "profile": profile, "session": files.session,
        }),
        &text,
    );
    Ok(0)
}

fn profile_set(home: &Home, name: Option<String>, out: &Output) -> Result<u8> {
    let Some(name) = name else {
        bail!("nothing to set: give --name NAME");
    };
    let identity = home.identity()?;
    let profile = home.update_profile(&identity, |profile| {
        profile.name = name;
        Ok::<(), anyhow::Error>(())
    })?;
    out.event(
        "profile",
        serde_json::json!({ "url": identity.url().to_string(), "profile": profile }),
        &format!("profile updated: name = {}", Untrusted(&profile.name)),
    );
    Ok(0)
}

async fn show(
    home: &Home,
    url: &str,
    peer: Option<String>,
    timeout: u64,
    out: &Output,
) -> Result<u8> {
    let identity = home.identity()?;
    let url: DatUrl = url.parse()?;
    let route = dat_social::remote::Route::pick(&url, peer, None)?
        .context("no address: the URL has no ?peer= or ?relay= hint; pass --peer HOST:PORT")?;
    let deadline = dat_social::time::deadline_after(Duration::from_secs(timeout));
    let (conn, _) = dat_social::remote::reach(&identity, &route, url.key, deadline).await?;
    let (files, fetched) = dat_social::remote::read_archive(&conn, url.key, deadline).await?;
    dat_social::remote::check_against_replica(home.root(), &fetched)?;
    let live = files
        .session
        .as_ref()
        .is_some_and(|s| s.is_live(dat_social::schema::now_ms()));
    let mut text = format!("{}\narchive length: {}", url.base(), files.length);
    if let Some(p) = &files.profile {
        text += &format!(
            "\nname: {}\nfriends: {}",
            Untrusted(&p.name),
            p.friends.len()
        );
    }
    if let Some(s) = &files.session {
        let state = if live { "live" } else { "not live" };
        text += &format!(
            "\nlobby: \"{}\" {}/{} players{} ({state})",
            Untrusted(&s.name),
            s.peers,
            s.max_peers,
            if s.protected { ", password" } else { "" }
        );
    }
    out.event(
        "archive",
        serde_json::json!({
            "url": url.base(), "length": files.length, "profile": files.profile,
            "session": files.session, "live": live,
        }),
        &text,
    );
    Ok(0)
}

fn read_password(path: &Option<PathBuf>) -> Result<Option<Vec<u8>>> {
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the password file {}", path.display()))?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        bail!("the password file {} is empty", path.display());
    }
    Ok(Some(line.as_bytes().to_vec()))
}

async fn host(home: &Home, args: HostArgs, out: &Output) -> Result<u8> {
    let identity = home.identity()?;
    let relay = match args.relay {
        Some(url) => Some(lobby::HostRelay {
            url: url.parse()?,
            custodial: args.custodial,
            client: Default::default(),
        }),
        None => None,
    };
    let options = HostOptions {
        name: args.name,
        max_peers: args.max_peers,
        password: read_password(&args.password_file)?,
        listen: args.listen,
        heartbeat: Duration::from_secs(args.heartbeat),
        relay,
        friends_only: args.friends_only,
        ..HostOptions::default()
    };
    let mut lobby = lobby::Host::start(home, identity, options).await?;
    let info = lobby.info();
    let lan = match args.lan {
        true => Some(announce_on_lan(&info)?),
        false => None,
    };
    let mut stop = output::shutdown_signal();
    out.event(
        "hosting",
        serde_json::json!({
            "url": info.url, "invite": info.invite, "lobby": info.lobby,
            "max_peers": info.max_peers, "listen": info.listen.to_string(),
            "relay": info.relay,
        }),
        &format!(
            "hosting {:?} for up to {} players\ninvite: {}\n(type a line to chat, Ctrl-C to end)",
            info.name, info.max_peers, info.invite
        ),
    );
    let chat = lobby.chat();
    let mut refused = send_stdin_chat(move |text| {
        let chat = chat.clone();
        async move { chat.say(&text).await }
    });
    loop {
        tokio::select! {
            event = lobby.next_event() => match event {
                Some(event) => out.lobby_event(&event),
                None => break,
            },
            Some(message) = refused.recv() => out.lobby_event(&LobbyEvent::Warning { message }),
            _ = &mut stop => break,
        }
    }
    lobby.shutdown().await?;
    if let Some(announcement) = lan {
        if let Err(e) = announcement.stop().await {
            tracing::debug!("LAN goodbye: {e}");
        }
    }
    out.event("ended", serde_json::json!({}), "lobby ended");
    Ok(0)
}

/// Sends each stdin line as chat with `say`, one at a time (a line waits until the previous
/// one was queued: back-pressure down to stdin, nothing dropped). Returns the messages about
/// lines that were refused (too long, not sent) or altered (invalid UTF-8 replaced), each also
/// logged on stderr; the caller prints them as `warning` events.
fn send_stdin_chat<F, Fut>(say: F) -> tokio::sync::mpsc::UnboundedReceiver<String>
where
    F: Fn(String) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), lobby::ChatError>> + Send,
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stdin = output::stdin_lines(lobby::MAX_CHAT_BYTES);
        while let Some(line) = stdin.next().await {
            let problem = match line {
                output::StdinLine::Text { text, lossy } => {
                    let len = text.len();
                    match say(text).await {
                        Err(lobby::ChatError::Closed) => break,
                        Err(e) => Some(e.to_string()),
                        Ok(()) if lossy => Some(format!(
                            "a chat line ({len} bytes) was not valid UTF-8: sent with U+FFFD in place of the invalid bytes"
                        )),
                        Ok(()) => None,
                    }
                }
                output::StdinLine::TooLong { bytes } => Some(
                    lobby::ChatError::TooLong {
                        len: bytes,
                        max: lobby::MAX_CHAT_BYTES,
                    }
                    .to_string(),
                ),
            };
            if let Some(message) = problem {
                tracing::warn!("{message}");
                if tx.send(message).is_err() {
                    break;
                }
            }
        }
    });
    rx
}

/// Announces the host's archive (its discovery key) on the local network with its TCP port.
fn announce_on_lan(info: &lobby::HostingInfo) -> Result<dat_social::discovery::mdns::Announcement> {
    let url: DatUrl = info.url.parse()?;
    let topic = dat_social::hypercore::crypto::discovery_key(&url.key);
    let mdns = dat_social::discovery::mdns::MdnsDiscovery::new()?;
    Ok(mdns.announce(topic, info.listen.port())?)
}

async fn join(home: &Home, args: JoinArgs, out: &Output) -> Result<u8> {
    let started = Instant::now();
    let identity = home.identity()?;
    let name = home
        .files(&identity)?
        .profile
        .map(|p| p.name)
        .unwrap_or_else(|| "anonymous".to_string());
    let look = friends::LookArgs {
        relay: args.relay.clone(),
        look_timeout: 5,
        offline: false,
        lan: args.lan,
    };
    let (url, relay): (DatUrl, _) = match (&args.url, &args.friend) {
        (Some(url), _) => (url.parse()?, args.relay.map(|r| r.parse()).transpose()?),
        (None, Some(who)) => (friends::friend_lobby(home, who, &look).await?, None),
        (None, None) => (friends::quick_lobby(home, &look, out).await?, None),
    };
    let options = JoinOptions {
        url,
        peer: args.peer,
        relay,
        archive: Some(home.archive_reader(&identity)?),
        password: read_password(&args.password_file)?,
        name,
        timeout: Duration::from_secs(args.timeout),
    };
    let mut joined = match lobby::join(&identity, options).await {
        Ok(joined) => joined,
        Err(JoinError::Rejected(reason)) => {
            out.event(
                "rejected",
                serde_json::json!({ "reason": reason }),
                &format!("rejected by the host: {}", reason.as_str()),
            );
            return Ok(exit_code(&JoinError::Rejected(reason).into()));
        }
        Err(err) => return Err(err.into()),
    };
    let info = joined.info();
    let mut stop = output::shutdown_signal();
    out.event(
        "connected",
        serde_json::json!({
            "peer": info.host, "name": info.lobby_name, "host_name": info.host_name,
            "ms": started.elapsed().as_millis() as u64,
        }),
        &format!(
            "joined \"{}\" hosted by {} ({} ms)\n(type a line to chat, Ctrl-C to leave)",
            Untrusted(&info.lobby_name),
            Untrusted(&info.host_name),
            started.elapsed().as_millis()
        ),
    );
    let chat = joined.chat();
    let mut refused = send_stdin_chat(move |text| {
        let chat = chat.clone();
        async move { chat.say(&text).await }
    });
    loop {
        tokio::select! {
            event = joined.next_event() => match event {
                Some(LobbyEvent::Disconnected) | None => {
                    out.lobby_event(&LobbyEvent::Disconnected);
                    break;
                }
                Some(event) => out.lobby_event(&event),
            },
            Some(message) = refused.recv() => out.lobby_event(&LobbyEvent::Warning { message }),
            _ = &mut stop => break,
        }
    }
    joined.leave().await;
    Ok(0)
}
