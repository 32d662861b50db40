//! `dat-social sessions [--watch]`: the live lobbies among friends, once or as they change.

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use dat_social::friends::{FriendEvent, Watcher, WatcherOptions};
use dat_social::home::Home;
use dat_social::identity::DatUrl;
use dat_social::keys::IdentityKey;
use dat_social::schema::now_ms;

use super::friends::{live_lobbies, lobby_text, LookArgs};
use crate::event::{Event, LobbyInfo};
use crate::output::{self, clean, Output, Untrusted};

/// Options of `dat-social sessions`.
#[derive(Args)]
pub struct SessionsArgs {
    #[command(flatten)]
    look: LookArgs,
    /// Keep running and print lobbies as they go up, change and go down (Ctrl-C to stop).
    /// Not with --offline, which reads the replicas on disk once.
    #[arg(long, conflicts_with = "offline")]
    watch: bool,
}

/// Prints one `session` per live lobby; with `--watch`, `watching` and then the watcher's
/// events until Ctrl-C/SIGTERM.
pub async fn run(home: &Home, args: SessionsArgs, out: &Output) -> Result<u8> {
    let identity = home.identity()?;
    if !args.watch {
        let lobbies = live_lobbies(home, &args.look).await?;
        if lobbies.is_empty() {
            out.note("no live lobbies among your friends");
        }
        let now = now_ms();
        for l in &lobbies {
            out.event(&Event::Session(LobbyInfo::of(l, now)), &lobby_text(l));
        }
        return Ok(0);
    }
    let options = WatcherOptions {
        timeout: Duration::from_secs(args.look.look_timeout),
        ..WatcherOptions::default()
    };
    let endpoint = args.look.endpoint(identity).await?;
    let mut watcher = Watcher::start(home, endpoint, options).await?;
    let mut stop = output::shutdown_signal();
    out.event(
        &Event::Watching,
        "watching your friends' lobbies (Ctrl-C to stop)",
    );
    loop {
        tokio::select! {
            event = watcher.next_event() => match event {
                Some(event) => print_watch_event(&event, out),
                None => break,
            },
            _ = &mut stop => break,
        }
    }
    watcher.stop();
    Ok(0)
}

/// Prints one event of the watcher.
fn print_watch_event(event: &FriendEvent, out: &Output) {
    let (json, text) = watch_event(event);
    out.event(&json, &text);
}

/// A watcher's event as its `--json` [`Event`] and its line of text.
fn watch_event(event: &FriendEvent) -> (Event, String) {
    let url = |k: &IdentityKey| DatUrl::new(*k).base();
    match event {
        FriendEvent::SessionUp(l) => (
            Event::SessionUp(LobbyInfo::of(l, now_ms())),
            format!("+ {}", lobby_text(l)),
        ),
        FriendEvent::SessionChanged(l) => (
            Event::SessionChanged(LobbyInfo::of(l, now_ms())),
            format!("~ {}", lobby_text(l)),
        ),
        FriendEvent::SessionDown { key, reason } => (
            Event::SessionDown {
                host: url(key),
                reason: *reason,
            },
            format!(
                "- lobby of {} is gone ({})",
                url(key),
                crate::event::spelling(reason)
            ),
        ),
        FriendEvent::Online { key, route } => (
            Event::FriendOnline {
                url: url(key),
                route: route.address(),
            },
            format!("  {} is online", url(key)),
        ),
        FriendEvent::Offline { key, reason } => (
            Event::FriendOffline {
                url: url(key),
                reason: reason.clone(),
            },
            format!("  {} went offline", url(key)),
        ),
        FriendEvent::Profile {
            key,
            profile,
            mutual,
        } => (
            Event::FriendProfile {
                url: url(key),
                profile: profile.clone(),
                mutual: *mutual,
            },
            format!("  {} is {:?}", url(key), clean(&profile.name)),
        ),
        FriendEvent::Warning { key, message } => (
            Event::Warning {
                url: Some(url(key)),
                message: message.clone(),
            },
            format!("warning: {}: {}", url(key), Untrusted(message)),
        ),
    }
}
