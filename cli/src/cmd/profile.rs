//! `dat-social profile set`: changes fields of `profile.json`.

use anyhow::{bail, Result};
use clap::Subcommand;
use dat_social::home::Home;

use crate::event::Event;
use crate::output::{Output, Untrusted};

/// The sub-commands of `dat-social profile`.
#[derive(Subcommand)]
pub enum ProfileCommand {
    /// Set fields of profile.json.
    #[command(after_help = "Example:\n  dat-social profile set --name 'Alice B.'")]
    Set {
        /// New display name.
        #[arg(long)]
        name: Option<String>,
    },
}

/// Applies `command` to the profile and prints `profile`. Errors: nothing to set.
pub fn run(home: &Home, command: ProfileCommand, out: &Output) -> Result<u8> {
    let ProfileCommand::Set { name } = command;
    let Some(name) = name else {
        bail!("nothing to set: give --name NAME");
    };
    let identity = home.identity()?;
    let profile = home.update_profile(&identity, |profile| {
        profile.name = name;
        Ok::<(), anyhow::Error>(())
    })?;
    let text = format!("profile updated: name = {}", Untrusted(&profile.name));
    let event = Event::Profile {
        url: identity.url().to_string(),
        profile,
    };
    out.event(&event, &text);
    Ok(0)
}
