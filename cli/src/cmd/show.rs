//! `dat-social show URL`: fetches and verifies another user's archive and prints their profile
//! and lobby.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use dat_social::endpoint::Endpoint;
use dat_social::home::Home;
use dat_social::identity::DatUrl;

use super::limits;
use crate::event::Event;
use crate::output::{Output, Untrusted};

/// Options of `dat-social show`.
#[derive(Args)]
pub struct ShowArgs {
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
}

/// Reaches the user, reads their archive (checked against our replica of it, if any) and
/// prints `archive`.
pub async fn run(home: &Home, args: ShowArgs, out: &Output) -> Result<u8> {
    let identity = home.identity()?;
    let url: DatUrl = args.url.parse()?;
    let route = dat_social::remote::Route::pick(&url, args.peer, None)?
        .context("no address: the URL has no ?peer= or ?relay= hint; pass --peer HOST:PORT")?;
    let deadline = dat_social::time::deadline_after(Duration::from_secs(args.timeout));
    let endpoint = Endpoint::dialer(identity);
    let conn = endpoint
        .reach(&route, url.identity(), deadline)
        .await?
        .connection;
    let (files, fetched) =
        dat_social::remote::read_archive(&conn, url.identity(), deadline).await?;
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
    let event = Event::Archive {
        url: url.base(),
        length: files.length,
        profile: files.profile,
        session: files.session,
        live,
    };
    out.event(&event, &text);
    Ok(0)
}
