//! The ICE configuration of one lobby connection: the user's own servers and policy
//! ([`super::HostOptions::ice`], [`super::JoinOptions::ice`]: `--ice-servers`, `--ice-policy`)
//! merged with the STUN/TURN servers the endpoint's relays give (`dat-social/ice/v1`, with
//! short-lived TURN credentials), read afresh for every connection so that a long-running host
//! never hands out expired credentials.

use crate::discovery::RelayPool;
use crate::endpoint::{Endpoint, ICE_SERVERS_WAIT};
use crate::ice::server::MAX_ICE_SERVERS;
use crate::ice::{IceConfig, IceServer};

/// Where a lobby connection's [`IceConfig`] comes from.
#[derive(Clone, Debug)]
pub(crate) struct LobbyIce {
    user: IceConfig,
    relays: RelayPool,
}

impl LobbyIce {
    /// The user's config `user`, and the relay sessions of `endpoint`.
    pub(crate) fn new(user: IceConfig, endpoint: &Endpoint) -> Self {
        Self {
            user,
            relays: endpoint.discovery().pool().clone(),
        }
    }

    /// The config for a connection starting now: the user's servers, then the relays' (waiting
    /// up to [`ICE_SERVERS_WAIT`] for a relay's first answer), and the user's policy.
    pub(crate) async fn config(&self) -> IceConfig {
        merge(&self.user, self.relays.ice_servers(ICE_SERVERS_WAIT).await)
    }
}

/// `user`'s servers first, then those of `relays` not already in it, at most
/// [`MAX_ICE_SERVERS`] in all; `user`'s policy.
pub(crate) fn merge(user: &IceConfig, relays: Vec<IceServer>) -> IceConfig {
    let mut servers = user.servers.clone();
    for s in relays {
        if servers.len() < MAX_ICE_SERVERS && !servers.contains(&s) {
            servers.push(s);
        }
    }
    IceConfig {
        servers,
        policy: user.policy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ice::IcePolicy;

    fn stun(port: u16) -> IceServer {
        IceServer {
            urls: vec![format!("stun:192.0.2.1:{port}")],
            username: None,
            credential: None,
        }
    }

    #[test]
    fn the_users_servers_come_first_and_the_list_stays_bounded() {
        let user = IceConfig {
            servers: vec![stun(1)],
            policy: IcePolicy::Relay,
        };
        let merged = merge(&user, vec![stun(2), stun(1), stun(3)]);
        assert_eq!(merged.servers, vec![stun(1), stun(2), stun(3)]);
        assert_eq!(merged.policy, IcePolicy::Relay);
        let many = (10..40).map(stun).collect();
        assert_eq!(merge(&user, many).servers.len(), MAX_ICE_SERVERS);
        assert_eq!(merge(&IceConfig::default(), vec![]), IceConfig::default());
    }
}
