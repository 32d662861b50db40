//! `--ice-servers FILE` and `--ice-policy all|relay`, shared by `host` and `join`: the user's own
//! STUN/TURN servers (a JSON array of `RTCIceServer` objects, as browsers take them) and the
//! browser's `iceTransportPolicy`. The relay's own servers are added by the library.

use std::path::PathBuf;

use clap::Args;
use dat_social::ice::{IceConfig, IcePolicy, IceServer};

/// The ICE options of `host` and `join`.
#[derive(Args, Clone, Debug)]
pub struct IceArgs {
    /// Also use these STUN/TURN servers (e.g. your own coturn): a JSON array of RTCIceServer
    /// objects, as browsers take them: [{"urls": ["stun:HOST:3478",
    /// "turn:HOST:3478?transport=udp", "turn:HOST:3478?transport=tcp"], "username": "..",
    /// "credential": ".."}]. Your relay's servers are used without this.
    #[arg(long, value_name = "FILE", value_parser = parse_ice_servers)]
    ice_servers: Option<IceServers>,
    /// Which paths WebRTC may use: all (direct when possible, TURN only where nothing direct
    /// works) or relay (TURN only, to check that your TURN server works).
    #[arg(long, value_name = "POLICY", default_value_t = IcePolicy::All)]
    ice_policy: IcePolicy,
}

/// The servers read from an `--ice-servers` file.
#[derive(Clone, Debug)]
pub struct IceServers(Vec<IceServer>);

/// Reads and checks an `--ice-servers` file. The error (a usage error, exit 2) names the file
/// and what is wrong with it.
fn parse_ice_servers(path: &str) -> Result<IceServers, String> {
    let file = PathBuf::from(path);
    let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read {path}: {e}"))?;
    IceServer::parse_list(&text)
        .map(IceServers)
        .map_err(|e| format!("{path}: {e}"))
}

impl IceArgs {
    /// The library's [`IceConfig`]: the file's servers (none without it) and the policy.
    pub fn config(&self) -> IceConfig {
        IceConfig {
            servers: self
                .ice_servers
                .as_ref()
                .map(|s| s.0.clone())
                .unwrap_or_default(),
            policy: self.ice_policy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        ice: IceArgs,
    }

    fn parse(args: &[&str]) -> Result<IceConfig, clap::Error> {
        let argv = std::iter::once("t").chain(args.iter().copied());
        Cli::try_parse_from(argv).map(|c| c.ice.config())
    }

    #[test]
    fn a_good_file_and_policy_reach_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ice.json");
        std::fs::write(
            &file,
            r#"[{"urls": "stun:192.0.2.1:3478"},
                {"urls": ["turn:192.0.2.1:3478?transport=tcp"], "username": "u", "credential": "p"}]"#,
        )
        .unwrap();
        let file = file.to_str().unwrap();
        let config = parse(&["--ice-servers", file, "--ice-policy", "relay"]).unwrap();
        assert_eq!(config.policy, IcePolicy::Relay);
        assert_eq!(config.servers.len(), 2);
        assert_eq!(config.servers[1].username.as_deref(), Some("u"));
        assert_eq!(parse(&[]).unwrap(), IceConfig::default());
    }

    #[test]
    fn bad_files_and_policies_are_usage_errors_naming_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ice.json");
        std::fs::write(&file, r#"[{"urls": "turn:192.0.2.1:3478"}]"#).unwrap();
        let err = parse(&["--ice-servers", file.to_str().unwrap()]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("needs a username"), "{err}");
        let missing = dir.path().join("nope.json");
        let err = parse(&["--ice-servers", missing.to_str().unwrap()]).unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
        let err = parse(&["--ice-policy", "bogus"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("bogus"), "{err}");
    }
}
