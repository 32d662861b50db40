//! `dat-social join`: joins a lobby (by URL, a friend's, or the best among friends'); stdin
//! lines are chat.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use dat_social::home::Home;
use dat_social::identity::DatUrl;
use dat_social::lobby::{self, JoinError, JoinOptions, PlayerEvent};
use dat_social::rtc::DisconnectReason;

use super::friends::{self, LookArgs};
use super::ice::IceArgs;
use super::limits;
use super::lobby::{print_player_event, print_warning, read_password, send_stdin_chat};
use crate::event::{Event, PathInfo};
use crate::exit;
use crate::output::{self, Output, Untrusted};

/// Options of `dat-social join`: a URL, `--friend` or `--quick`.
#[derive(Args)]
#[group(id = "target", required = true, args = ["url", "friend", "quick"])]
pub struct JoinArgs {
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
        // So that `--timeout -1` is refused by the range check, naming the option.
        allow_negative_numbers = true,
        value_parser = clap::value_parser!(u64).range(1..=limits::MAX_TIMEOUT_SECS)
    )]
    timeout: u64,
    #[command(flatten)]
    ice: IceArgs,
}

/// Joins, prints `connected` (or `rejected`, with its exit code), then the lobby's events
/// until the host disconnects or Ctrl-C/SIGTERM. A connection to the host lost rather than
/// closed by the host ends with [`exit::HostLost`] (exit code 3) after `disconnected`.
pub async fn run(home: &Home, args: JoinArgs, out: &Output) -> Result<u8> {
    let started = Instant::now();
    let identity = home.identity()?;
    let name = home
        .files(&identity)?
        .profile
        .map(|p| p.name)
        .unwrap_or_else(|| "anonymous".to_string());
    let look = LookArgs {
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
        ice: args.ice.config(),
    };
    let mut joined = match lobby::join(&identity, options).await {
        Ok(joined) => joined,
        Err(JoinError::Rejected(reason)) => {
            out.event(
                &Event::Rejected { reason },
                &format!("rejected by the host: {}", reason.as_str()),
            );
            return Ok(exit::join_code(&JoinError::Rejected(reason)));
        }
        Err(err) => return Err(err.into()),
    };
    let info = joined.info();
    let mut stop = output::shutdown_signal();
    let ms = started.elapsed().as_millis();
    let path = info.path.as_ref().map(PathInfo::from);
    let via = path.as_ref().map(|p| format!(", {}", p.text()));
    let text = format!(
        "joined \"{}\" hosted by {} ({ms} ms{})\n(type a line to chat, Ctrl-C to leave)",
        Untrusted(&info.lobby_name),
        Untrusted(&info.host_name),
        via.unwrap_or_default(),
    );
    let event = Event::Connected {
        peer: info.host,
        name: info.lobby_name,
        host_name: info.host_name,
        ms: ms as u64,
        path,
    };
    out.event(&event, &text);
    let chat = joined.chat();
    let mut refused = send_stdin_chat(move |text| {
        let chat = chat.clone();
        async move { chat.say(&text).await }
    });
    let mut lost = None;
    loop {
        tokio::select! {
            event = joined.next_event() => match event {
                Some(PlayerEvent::Disconnected) | None => {
                    print_player_event(&PlayerEvent::Disconnected, out);
                    lost = lost_reason(&mut joined).await;
                    break;
                }
                Some(event) => print_player_event(&event, out),
            },
            Some(message) = refused.recv() => print_warning(message, out),
            _ = &mut stop => break,
        }
    }
    joined.leave().await;
    match lost {
        Some(reason) => Err(exit::HostLost(reason).into()),
        None => Ok(0),
    }
}

/// How long the end of the connection to the host may take to be recorded once its chat
/// channel closed (a closing peer lingers 0.5 s for SCTP shutdown and DTLS close_notify).
const END_WAIT: Duration = Duration::from_secs(2);

/// Why the connection to the host ended, when the host did not close it: it went silent for
/// the idle timeout (its path died, or it was killed: docs/NAT.md "When a path dies") or the
/// connection failed. `None` when the host closed it (the lobby ended) or the reason is not
/// known within [`END_WAIT`]. Reads the connection's last events, so its end is recorded.
async fn lost_reason(joined: &mut lobby::Joined) -> Option<DisconnectReason> {
    let rest = async { while joined.next_event().await.is_some() {} };
    let _ = tokio::time::timeout(END_WAIT, rest).await;
    match joined.peer_connection().disconnect_reason()? {
        DisconnectReason::LocalClosed | DisconnectReason::RemoteClosed => None,
        reason => Some(reason),
    }
}
