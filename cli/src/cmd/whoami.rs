//! `dat-social whoami`: the user's URL, profile and lobby.

use anyhow::{Context, Result};
use dat_social::home::Home;

use crate::event::Event;
use crate::output::{Output, Untrusted};

/// Prints `whoami`.
pub fn run(home: &Home, out: &Output) -> Result<u8> {
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
    let event = Event::Whoami {
        url: identity.url().to_string(),
        profile,
        session: files.session,
    };
    out.event(&event, &text);
    Ok(0)
}
