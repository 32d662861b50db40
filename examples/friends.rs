//! Game code's view of friends: follow every friend of a dat-social user and react to their
//! lobbies as typed events, as a game's "play with friends" screen would.
//!
//! ```text
//! cargo run --example friends -- ~/.local/share/dat-social [ws://relay:49443]
//! ```
//!
//! Runs until Ctrl-C; prints one line per event.

use std::sync::Arc;

use dat_social::endpoint::{Endpoint, EndpointOptions};
use dat_social::friends::{join_url, FriendEvent, Watcher, WatcherOptions};
use dat_social::home::Home;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: friends <data dir> [relay url]")?;
    let relay = args.next().map(|r| r.parse()).transpose()?;
    let home = Home::new(dir);
    let identity = home.identity()?;
    // One endpoint: every friend is looked up and reached through its one relay session.
    let options = EndpointOptions {
        relays: relay.into_iter().collect(),
        ..EndpointOptions::default()
    };
    let endpoint = Arc::new(Endpoint::bind(identity, options).await?);
    let mut watcher = Watcher::start(&home, endpoint, WatcherOptions::default()).await?;
    loop {
        let event = tokio::select! {
            event = watcher.next_event() => event,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(event) = event else { break };
        match event {
            FriendEvent::SessionUp(lobby) | FriendEvent::SessionChanged(lobby) => println!(
                "{} hosts {:?}: {}/{} players, join with {}",
                lobby.host_name,
                lobby.session.name,
                lobby.session.peers,
                lobby.session.max_peers,
                join_url(&lobby)
            ),
            FriendEvent::SessionDown { key, reason } => {
                println!("the lobby of {} is gone: {reason:?}", hex::encode(key))
            }
            FriendEvent::Profile {
                profile, mutual, ..
            } => {
                println!("friend {:?} (mutual: {mutual})", profile.name)
            }
            other => println!("{other:?}"),
        }
    }
    watcher.stop();
    Ok(())
}
