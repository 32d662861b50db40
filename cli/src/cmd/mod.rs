//! One module per sub-command: its options (clap `Args`) and its `run`, which prints
//! [`Event`](crate::event::Event)s through [`Output`](crate::output::Output) and returns the
//! exit code. [`lobby`] holds what `host` and `join` share.

pub mod check;
pub mod dht_node;
pub mod friends;
pub mod host;
mod ice;
pub mod init;
pub mod join;
mod lobby;
pub mod profile;
pub mod relay;
pub mod sessions;
pub mod show;
pub mod whoami;

/// The ranges of the numeric options, in seconds (in `--help`, README.md and docs/SECURITY.md);
/// a value outside is a usage error (exit 2) naming the option.
pub mod limits {
    /// `show --timeout` and `join --timeout`: an hour at most.
    pub const MAX_TIMEOUT_SECS: u64 = 3600;
    /// `host --heartbeat`: a day at most (readers call a lobby gone after two heartbeats).
    pub const MAX_HEARTBEAT_SECS: u64 = 86_400;
    /// `--look-timeout` (`friends list`, `sessions`): five minutes per friend at most.
    pub const MAX_LOOK_TIMEOUT_SECS: u64 = 300;
}
