//! `dat-social init --name NAME`: creates the identity and the archive with `profile.json`.

use anyhow::Result;
use clap::Args;
use dat_social::home::Home;

use crate::event::Event;
use crate::output::{Output, Untrusted};

/// Options of `dat-social init`.
#[derive(Args)]
pub struct InitArgs {
    /// Your display name (1 to 100 characters).
    #[arg(long)]
    name: String,
}

/// Creates the identity (never overwriting one) and prints `initialized`.
pub fn run(home: &Home, args: InitArgs, out: &Output) -> Result<u8> {
    let (identity, profile) = home.init(&args.name)?;
    let text = format!(
        "created identity {}\nname: {}",
        identity.url(),
        Untrusted(&profile.name)
    );
    let event = Event::Initialized {
        url: identity.url().to_string(),
        profile,
        data_dir: home.root().to_string_lossy().into_owned(),
    };
    out.event(&event, &text);
    Ok(0)
}
