//! `dat-social friends add|remove|list`: the friend list and their replicas; and how to look for
//! friends and their live lobbies (shared with `sessions` and `join --friend/--quick`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use dat_social::endpoint::{Endpoint, EndpointOptions};
use dat_social::friends::{self, join_url, pick_quick, FriendStatus, LiveLobby, RefreshOptions};
use dat_social::home::Home;
use dat_social::identity::{DatUrl, Identity};
use dat_social::schema::now_ms;

use crate::event::{Event, FriendInfo, LobbyInfo};
use crate::output::{clean, Output, Untrusted};

/// The sub-commands of `dat-social friends`.
#[derive(Subcommand)]
pub enum FriendsCommand {
    /// Follow a user: add their dat:// URL to the friends of your profile.json.
    #[command(
        after_help = "Example:\n  dat-social friends add 'dat://<key>?peer=192.168.1.5:41234' --alias bob"
    )]
    Add {
        /// Their dat:// URL; its ?peer= and ?relay= hints are kept locally to find them.
        url: String,
        /// A local name for them (never published).
        #[arg(long)]
        alias: Option<String>,
    },
    /// Stop following a user (by alias, profile name or URL) and delete their replica.
    #[command(after_help = "Example:\n  dat-social friends remove bob")]
    Remove {
        /// Alias, profile name, or dat:// URL.
        friend: String,
    },
    /// Show every friend: name, online, when their archive last changed, hosting, mutual.
    #[command(after_help = "Example:\n  dat-social friends list --json")]
    List(LookArgs),
}

/// How to look for friends (shared by `friends list`, `sessions` and `join --friend/--quick`).
#[derive(Args, Clone)]
pub struct LookArgs {
    /// Also look for friends through this relay (ws://, wss://, tcp://).
    #[arg(long, value_name = "URL", env = "DAT_SOCIAL_RELAY")]
    pub relay: Option<String>,
    /// Seconds to spend reaching each friend (1-300).
    #[arg(
        long = "look-timeout",
        default_value_t = 5,
        value_name = "SECS",
        value_parser = clap::value_parser!(u64).range(1..=super::limits::MAX_LOOK_TIMEOUT_SECS)
    )]
    pub look_timeout: u64,
    /// Don't contact anyone: show the replicas on disk (writes nothing).
    #[arg(long)]
    pub offline: bool,
    /// Also look for friends on the local network (multicast DNS); they must host with --lan.
    #[arg(long, env = "DAT_SOCIAL_LAN")]
    pub lan: bool,
}

impl LookArgs {
    /// The endpoint to look through, as `identity`: hints, the relay (one session for every
    /// friend) and the LAN as asked; no listener. Errors: a bad relay URL.
    pub async fn endpoint(&self, identity: Identity) -> Result<Arc<Endpoint>> {
        let relay = self.relay.as_deref().map(str::parse).transpose()?;
        let options = EndpointOptions {
            relays: relay.into_iter().collect(),
            lan: self.lan,
            ..EndpointOptions::default()
        };
        Ok(Arc::new(Endpoint::bind(identity, options).await?))
    }

    /// Every friend's status: one look at them all, or with `--offline` what the replicas on
    /// disk say, read without writing anything (no notes, no lock, no replica repaired).
    async fn statuses(&self, home: &Home, identity: &Identity) -> Result<Vec<FriendStatus>> {
        if self.offline {
            return Ok(friends::read_offline(home, identity)?);
        }
        let options = RefreshOptions {
            timeout: Duration::from_secs(self.look_timeout),
            ..RefreshOptions::default()
        };
        let endpoint = self.endpoint(identity.clone()).await?;
        Ok(friends::refresh(home, &endpoint, &options).await?)
    }
}

/// Runs `friends add`, `remove` or `list` (one `friend` event per friend).
pub async fn run(home: &Home, command: FriendsCommand, out: &Output) -> Result<u8> {
    let identity = home.identity()?;
    match command {
        FriendsCommand::Add { url, alias } => {
            let url: DatUrl = url.parse()?;
            let friend = friends::add(home, &identity, &url, alias.as_deref())?;
            let text = format!("following {}", friend.url());
            let event = Event::FriendAdded {
                url: friend.url(),
                alias: friend.alias,
            };
            out.event(&event, &text);
        }
        FriendsCommand::Remove { friend } => {
            let friend = friends::remove(home, &identity, &friend)?;
            let text = format!("no longer following {}", friend.url());
            let event = Event::FriendRemoved {
                url: friend.url(),
                alias: friend.alias,
            };
            out.event(&event, &text);
        }
        FriendsCommand::List(look) => {
            let statuses = look.statuses(home, &identity).await?;
            if statuses.is_empty() {
                out.note("no friends yet: dat-social friends add <dat://url>");
            }
            for s in &statuses {
                print_friend(s, out);
            }
        }
    }
    Ok(0)
}

/// Prints one friend's `friend` event.
fn print_friend(s: &FriendStatus, out: &Output) {
    let now = now_ms();
    let name = s.profile.as_ref().map(|p| p.name.clone());
    let lobby = s.live_lobby(now);
    let changed = s.friend.notes.changed;
    let label = s
        .friend
        .alias
        .clone()
        .or(name.clone())
        .unwrap_or_else(|| "?".into());
    let text = format!(
        "{:<20} {} {:<8} changed {:<10} {}{}{}",
        clean(&label),
        &s.friend.url()[..14],
        if s.online.is_some() {
            "online"
        } else {
            "offline"
        },
        changed
            .map(|c| ago(now, c))
            .unwrap_or_else(|| "never".into()),
        if s.mutual { "mutual" } else { "" },
        lobby
            .as_ref()
            .map(|l| format!(
                " hosting {:?} {}/{}",
                clean(&l.session.name),
                l.session.peers,
                l.session.max_peers
            ))
            .unwrap_or_default(),
        match (&s.profile, &s.error) {
            (None, Some(e)) => format!("  (never seen: {})", Untrusted(e)),
            _ => String::new(),
        },
    );
    let info = FriendInfo {
        url: s.friend.url(),
        alias: s.friend.alias.clone(),
        name,
        online: s.online.is_some(),
        route: s.online.as_ref().map(|r| r.address()),
        changed,
        seen: s.friend.notes.seen,
        length: s.length,
        mutual: s.mutual,
        hosting: lobby.as_ref().map(|l| LobbyInfo::of(l, now)),
        error: s.error.clone(),
        damaged: match &s.replica {
            friends::OpenState::Discarded(reason) => Some(reason.clone()),
            _ => s.damaged.clone(),
        },
    };
    out.event(&Event::Friend(Box::new(info)), &text);
}

/// The live lobbies among friends now, most players first.
pub async fn live_lobbies(home: &Home, look: &LookArgs) -> Result<Vec<LiveLobby>> {
    let identity = home.identity()?;
    let statuses = look.statuses(home, &identity).await?;
    let now = now_ms();
    let mut lobbies: Vec<LiveLobby> = statuses.iter().filter_map(|s| s.live_lobby(now)).collect();
    lobbies.sort_by(|a, b| {
        b.session
            .peers
            .cmp(&a.session.peers)
            .then(a.host.cmp(&b.host))
    });
    Ok(lobbies)
}

/// The URL to join for `join --friend WHO` (with the route that reached them as its hint).
pub async fn friend_lobby(home: &Home, who: &str, look: &LookArgs) -> Result<DatUrl> {
    let identity = home.identity()?;
    let friend = friends::resolve(home, &identity, who)?;
    let lobbies = live_lobbies(home, look).await?;
    match lobbies.iter().find(|l| l.host == friend.key) {
        Some(l) => Ok(join_url(l)),
        None => bail!(
            "{} ({}) is not hosting a live lobby that you can reach",
            Untrusted(who),
            friend.url()
        ),
    }
}

/// The URL to join for `join --quick`.
pub async fn quick_lobby(home: &Home, look: &LookArgs, out: &Output) -> Result<DatUrl> {
    let lobbies = live_lobbies(home, look).await?;
    let Some(best) = pick_quick(&lobbies) else {
        bail!(
            "no live lobby with a free slot among your friends ({} live, none open to you)",
            lobbies.len()
        );
    };
    out.event(
        &Event::Picked(LobbyInfo::of(best, now_ms())),
        &format!("joining {}", lobby_text(best)),
    );
    Ok(join_url(best))
}

/// A live lobby on one line of text.
pub fn lobby_text(l: &LiveLobby) -> String {
    format!(
        "{:?} by {} {}/{}{} heartbeat {} ago",
        clean(&l.session.name),
        clean(&l.host_name),
        l.session.peers,
        l.session.max_peers,
        if l.session.protected {
            " (password)"
        } else {
            ""
        },
        ago(now_ms(), l.session.last_update),
    )
}

/// `12s`, `3m`, `2h`, `5d` from `then` to `now` (ms).
fn ago(now: u64, then: u64) -> String {
    let s = now.saturating_sub(then) / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}
