//! `dat-social check [--repair]`: verifies the user's archive and every friend's replica on
//! disk, reports each, and with `--repair` mends what is safe to mend (see
//! [`dat_social::home::Home::check`]).

use anyhow::Result;
use clap::Args;
use dat_social::home::{CheckState, Home};

use crate::event::Event;
use crate::output::Output;

/// Options of `dat-social check`.
#[derive(Args)]
pub struct CheckArgs {
    /// Repair what can be repaired safely: restore your archive's newest signed state from its
    /// files (a damaged header slot), rebuild a damaged tree file from intact blocks, delete
    /// damaged replicas (they are fetched again). Never rolls your archive back.
    #[arg(long)]
    pub repair: bool,
}

/// Runs the check; exit code 0 when everything is sound (or was repaired), 1 when something
/// is still damaged.
pub fn run(home: &Home, args: CheckArgs, out: &Output) -> Result<u8> {
    let items = home.check(args.repair)?;
    let mut damaged = 0;
    for item in &items {
        let (reason, repaired) = match &item.state {
            CheckState::Ok => (None, None),
            CheckState::Damaged(r) | CheckState::Discarded(r) => (Some(r.as_str()), None),
            CheckState::Repaired(r, how) => (Some(r.as_str()), Some(how.as_str())),
        };
        if !item.state.is_sound() {
            damaged += 1;
        }
        let what = match item.kind {
            "archive" => "your archive".to_string(),
            _ => format!(
                "replica of dat://{}",
                item.key.as_deref().unwrap_or("(unknown key)")
            ),
        };
        let mut text = format!("{what} ({}): {}", item.path.display(), item.state.as_str());
        if item.state == CheckState::Ok {
            text += &format!(", {} blocks", item.length);
        }
        if let Some(r) = reason {
            text += &format!(": {r}");
        }
        if let Some(how) = repaired {
            text += &format!("\n  repaired: {how}");
        }
        if matches!(item.state, CheckState::Discarded(_)) {
            text += "\n  deleted: it is fetched again from the friend";
        }
        if !item.state.is_sound() && !args.repair {
            text += "\n  run `dat-social check --repair` to repair what can be repaired";
        }
        let event = Event::Check {
            kind: item.kind.to_string(),
            path: item.path.to_string_lossy().into_owned(),
            key: item.key.clone(),
            length: item.length,
            state: item.state.as_str().to_string(),
            reason: reason.map(str::to_string),
            repaired: repaired.map(str::to_string),
        };
        out.event(&event, &text);
    }
    Ok(if damaged == 0 { 0 } else { 1 })
}
