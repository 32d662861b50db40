//! The `--json` contract: every event the CLI prints on stdout with `--json`, as one JSON object
//! per line whose `"event"` field names it (`{"event":"peer-joined","peer":...}`).
//!
//! [`Event`] is the one definition of that output: commands build its variants and
//! [`Output::event`](crate::output::Output::event) serializes them, so no event is written by
//! hand. `schemas/events.schema.json` describes the same objects (JSON Schema 2020-12) for
//! readers outside Rust; `tests/schemas.rs` runs the binary and validates its real output
//! against that schema, and this module's tests validate one sample of every variant.
//!
//! Conventions, the same in every event:
//! - identity and archive URLs are `dat://<64 lowercase hex>` without hints (`invite` and `join`
//!   carry hints on purpose); a core's `key` in `check` is bare hex;
//! - instants are milliseconds since the Unix epoch; durations are milliseconds and say so in
//!   their name (`ms`, `age_ms`, `delay_ms`, `heartbeat`);
//! - a field that can be unknown is `null`, never absent; the only optional fields are
//!   `warning`'s `url` and the reconnect details of `relay` (present only when
//!   `state` is `"reconnecting"`);
//! - strings from other people (names, chat, their error messages) are passed through as they
//!   came; [`Output`](crate::output::Output) escapes the characters a terminal acts on as
//!   `\uXXXX`, which leaves the JSON value unchanged.

use dat_social::friends::{join_url, DownReason, LiveLobby};
use dat_social::ice::PathKind;
use dat_social::identity::DatUrl;
use dat_social::relay::client::RelayState;
use dat_social::rtc::SelectedPath;
use dat_social::schema::{Profile, Session};
use dat_social::signal::RejectReason;
use serde::Serialize;

/// One line of `--json` output. The variant's name in kebab-case is the `"event"` field; the
/// variant's fields follow it, in the order declared here.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// `init`: the identity and the archive with `profile.json` were created.
    Initialized {
        /// The new identity's URL.
        url: String,
        /// The `profile.json` written.
        profile: Profile,
        /// The data directory holding the identity and the archive (lossy UTF-8).
        data_dir: String,
    },
    /// `whoami`: the user's identity, profile and lobby.
    Whoami {
        /// The identity URL.
        url: String,
        /// The user's `profile.json`.
        profile: Profile,
        /// The user's `session.json` (hosting or ended), `null` if they never hosted.
        session: Option<Session>,
    },
    /// `profile set`: `profile.json` was updated.
    Profile {
        /// The identity URL.
        url: String,
        /// The `profile.json` now.
        profile: Profile,
    },
    /// `show`: another user's archive, fetched and verified.
    Archive {
        /// Their identity URL.
        url: String,
        /// Blocks in their archive.
        length: u64,
        /// Their `profile.json`, `null` if the archive has none.
        profile: Option<Profile>,
        /// Their `session.json`, `null` if they never hosted.
        session: Option<Session>,
        /// Whether that lobby is live now (not ended, heartbeat fresh).
        live: bool,
    },
    /// `host`: the lobby is up; a script may now send chat on stdin, or SIGINT/SIGTERM to end it.
    Hosting {
        /// The host's archive URL.
        url: String,
        /// The invite link: `url` with a `?peer=host:port` hint, and `&relay=` when listening
        /// through a relay.
        invite: String,
        /// The lobby log's URL (`session.json`'s `url`).
        lobby: String,
        /// Most players the lobby admits (1-256).
        max_peers: u32,
        /// The bound TCP address, `ip:port`.
        listen: String,
        /// The relay the host listens through, `null` without `--relay`.
        relay: Option<String>,
    },
    /// `host`: a player's data channel opened.
    PeerJoined {
        /// The player's identity URL.
        peer: String,
        /// The player's name, as their offer gave it.
        name: String,
        /// Players connected now, the host not counted.
        peers: u32,
        /// The path the player's connection took; absent if not known.
        #[serde(skip_serializing_if = "Option::is_none")]
        path: Option<PathInfo>,
    },
    /// `host`, `join`: a connection moved to another path after `peer-joined` / `connected`
    /// reported the first one (ICE settled on a better candidate pair, e.g. `srflx` after
    /// `relay` across two cone NATs, or the first pair failed).
    PathChanged {
        /// `host`: the player's identity URL; absent on `join` (the connection to the host).
        #[serde(skip_serializing_if = "Option::is_none")]
        peer: Option<String>,
        /// `host`: the player's name; absent on `join`.
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// The new path.
        path: PathInfo,
    },
    /// `host`: a player left or vanished.
    PeerLeft {
        /// The player's identity URL.
        peer: String,
        /// The player's name.
        name: String,
        /// Players connected now, the host not counted.
        peers: u32,
    },
    /// `host`: a joiner was turned away.
    PeerRejected {
        /// The joiner's identity URL, or their address (`ip:port`) if they never sent a valid
        /// offer.
        peer: String,
        /// Why.
        reason: RejectReason,
    },
    /// `host`, `join`: a chat line from another member of the lobby.
    Message {
        /// The sender's identity URL.
        from: String,
        /// The sender's name.
        name: String,
        /// The line, at most 16,384 bytes of UTF-8.
        text: String,
    },
    /// `host`, `join`: bytes on a data channel other than chat.
    Data {
        /// The sender's identity URL.
        from: String,
        /// The data channel's label.
        label: String,
        /// How many bytes arrived (the bytes themselves are not printed).
        bytes: usize,
    },
    /// `host --relay`: the relay the host listens through changed state.
    Relay {
        /// The relay URL.
        url: String,
        /// The new state (`state`, and the reconnect details).
        #[serde(flatten)]
        state: RelayStatus,
    },
    /// Something went wrong that does not end the command: a chat line refused or altered, one
    /// connection's failure (`host`, `join`), or one friend's (`sessions --watch`).
    Warning {
        /// The friend concerned (`sessions --watch` only; absent elsewhere).
        #[serde(skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        /// What happened.
        message: String,
    },
    /// `host`: the lobby ended (`session.json` marked ended); the last event.
    Ended,
    /// `join`: the data channel to the host is open; a script may now send chat on stdin.
    Connected {
        /// The host's identity URL.
        peer: String,
        /// The lobby's name.
        name: String,
        /// The host's profile name.
        host_name: String,
        /// Milliseconds from the start of the command to the open data channel.
        ms: u64,
        /// The path the connection to the host took; absent if not known.
        #[serde(skip_serializing_if = "Option::is_none")]
        path: Option<PathInfo>,
    },
    /// `join`: the host turned us away; the command exits with the reason's exit code (4 full,
    /// 5 password, 6 otherwise).
    Rejected {
        /// Why.
        reason: RejectReason,
    },
    /// `join`: the data channel to the host closed; the last lobby event. When the host did not
    /// close it (it went silent: its path died or it was killed), an `error` follows ("lost the
    /// connection to the host") and the exit code is 3.
    Disconnected,
    /// `join --quick`: the lobby chosen, before joining it.
    Picked(LobbyInfo),
    /// `friends add`: a user is now followed.
    FriendAdded {
        /// Their identity URL.
        url: String,
        /// The local alias, `null` without `--alias`.
        alias: Option<String>,
    },
    /// `friends remove`: a user is no longer followed (their replica is deleted).
    FriendRemoved {
        /// Their identity URL.
        url: String,
        /// The local alias they had, or `null`.
        alias: Option<String>,
    },
    /// `friends list`: one friend, one event each, in the order of `profile.json`'s `friends`.
    Friend(Box<FriendInfo>),
    /// `sessions`: one live lobby among friends, most players first.
    Session(LobbyInfo),
    /// `sessions --watch`: the watch is running; events follow as lobbies change.
    Watching,
    /// `sessions --watch`: a friend's lobby became live.
    SessionUp(LobbyInfo),
    /// `sessions --watch`: a live lobby changed (players, name, limits, protection).
    SessionChanged(LobbyInfo),
    /// `sessions --watch`: a lobby is no longer live.
    SessionDown {
        /// The host's identity URL.
        host: String,
        /// Why.
        reason: DownReason,
    },
    /// `sessions --watch`: a friend was reached.
    FriendOnline {
        /// The friend's identity URL.
        url: String,
        /// How: `host:port`, or `relay <url>`.
        route: String,
    },
    /// `sessions --watch`: the connection to a friend ended, or they could not be reached after
    /// being online.
    FriendOffline {
        /// The friend's identity URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// `sessions --watch`: a friend's verified profile, first seen or changed.
    FriendProfile {
        /// The friend's identity URL.
        url: String,
        /// Their `profile.json`.
        profile: Profile,
        /// They follow us back.
        mutual: bool,
    },
    /// `check`: the verdict on one core on disk, the user's archive first.
    Check {
        /// `archive` (the user's own) or `replica` (a friend's).
        kind: String,
        /// The core's directory (lossy UTF-8).
        path: String,
        /// The core's key, 64 hex digits, `null` when unknown.
        key: Option<String>,
        /// Its signed length in blocks (after a repair, the repaired length; 0 when unreadable).
        length: u64,
        /// `ok`, `damaged`, `repaired` or `discarded`.
        state: String,
        /// What is or was wrong, `null` when `ok`.
        reason: Option<String>,
        /// How it was repaired, `null` unless `repaired`.
        repaired: Option<String>,
    },
    /// `relay`: the relay accepts clients; a script may now connect, or SIGINT/SIGTERM to stop it.
    Listening {
        /// The WebSocket URL (`ws://` or `wss://ip:port`), `null` when not listening on WebSocket.
        ws: Option<String>,
        /// The TCP transport's URL (`tcp://ip:port`), `null` without `--tcp-port`.
        tcp: Option<String>,
        /// The STUN/TURN UDP listener (`ip:port`), `null` with `--no-turn`.
        turn_udp: Option<String>,
        /// The STUN/TURN TCP listener (`ip:port`, the same port), `null` with `--no-turn`.
        turn_tcp: Option<String>,
        /// The `stun:`/`turn:` URLs clients use (with `--external-ip` or the public address),
        /// `null` with `--no-turn`.
        turn_urls: Option<Vec<String>>,
    },
    /// `dht-node`: the node runs; others join through `address`.
    DhtNode {
        /// Where other nodes reach it, `ip:port`.
        address: String,
        /// Its node id (BLAKE2b-256 of the address), 64 hex digits; `null` when ephemeral.
        id: Option<String>,
        /// The nodes it joined through, `ip:port` (empty for a bootstrapper).
        bootstrap: Vec<String>,
    },
    /// `relay`, `dht-node`: it stopped; the last event.
    Stopped,
    /// Any command: it failed (the exit code says how); also written on stderr as text.
    Error {
        /// The error and its causes, `outer: cause: cause`.
        message: String,
    },
}

/// The path a WebRTC connection took (docs/NAT.md): the `path` field of `peer-joined` and
/// `connected`, e.g. `{"kind":"host"}` or `{"kind":"relay","relay":"198.51.100.1:3478"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathInfo {
    /// `host`, `srflx`, `prflx` or `relay`.
    pub kind: PathKind,
    /// For `relay`: the TURN server we relay through, or the peer's relayed address (`ip:port`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay: Option<String>,
}

impl From<&SelectedPath> for PathInfo {
    fn from(p: &SelectedPath) -> Self {
        PathInfo {
            kind: p.kind,
            relay: p.relay.map(|a| a.to_string()),
        }
    }
}

impl PathInfo {
    /// The path for a line of text: `path host`, `path relay via 198.51.100.1:3478`.
    pub fn text(&self) -> String {
        match &self.relay {
            Some(relay) => format!("path {} via {relay}", self.kind),
            None => format!("path {}", self.kind),
        }
    }
}

/// The state of a relay the host listens through: the `state` field of the `relay` event, and
/// the reconnect details beside it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum RelayStatus {
    /// The first connection attempt is under way.
    Connecting,
    /// Reachable through the relay: the session is up and every listen confirmed.
    Connected,
    /// The relay session was lost (or could not be opened); the next attempt is due.
    Reconnecting {
        /// Failed attempts in a row (1 for the first).
        attempt: u32,
        /// Milliseconds until the next attempt.
        delay_ms: u64,
        /// What happened.
        error: String,
    },
}

impl From<&RelayState> for RelayStatus {
    fn from(state: &RelayState) -> Self {
        match state {
            RelayState::Connecting => RelayStatus::Connecting,
            RelayState::Connected => RelayStatus::Connected,
            RelayState::Reconnecting {
                attempt,
                delay,
                error,
            } => RelayStatus::Reconnecting {
                attempt: *attempt,
                delay_ms: delay.as_millis() as u64,
                error: error.clone(),
            },
        }
    }
}

/// A friend's live lobby: the fields of `session`, `session-up`, `session-changed`, `picked`,
/// and `friend`'s `hosting`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LobbyInfo {
    /// The host's identity URL.
    pub host: String,
    /// The host's profile name (empty if unknown).
    pub host_name: String,
    /// The lobby's name.
    pub name: String,
    /// Players connected, the host not counted.
    pub peers: u32,
    /// Most players the lobby admits.
    pub max_peers: u32,
    /// Whether joining needs a password.
    pub protected: bool,
    /// Milliseconds since the host's last heartbeat (`session.json`'s `last_update`).
    pub age_ms: u64,
    /// The host's heartbeat period in milliseconds, `null` if its `session.json` has none.
    pub heartbeat: Option<u64>,
    /// How the host was reached: `host:port`, or `relay <url>`.
    pub route: String,
    /// The URL to join it with: the host's URL with the route as its hint.
    pub join: String,
}

impl LobbyInfo {
    /// The event fields of `lobby` as seen at `now_ms` (milliseconds since the epoch).
    pub fn of(lobby: &LiveLobby, now_ms: u64) -> Self {
        LobbyInfo {
            host: DatUrl::new(lobby.host).base(),
            host_name: lobby.host_name.clone(),
            name: lobby.session.name.clone(),
            peers: lobby.session.peers,
            max_peers: lobby.session.max_peers,
            protected: lobby.session.protected,
            age_ms: lobby.age_ms(now_ms),
            heartbeat: lobby.session.heartbeat,
            route: lobby.route.address(),
            join: join_url(lobby).to_string(),
        }
    }
}

/// One friend as `friends list` saw them: the fields of the `friend` event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FriendInfo {
    /// Their identity URL.
    pub url: String,
    /// The local alias, or `null`.
    pub alias: Option<String>,
    /// Their profile name, `null` if their profile was never seen.
    pub name: Option<String>,
    /// Whether they were reached during this look.
    pub online: bool,
    /// How they were reached (`host:port`, or `relay <url>`), `null` when not.
    pub route: Option<String>,
    /// When their archive was last seen to grow, ms since the epoch, or `null`.
    pub changed: Option<u64>,
    /// When they were last reached, ms since the epoch, or `null`.
    pub seen: Option<u64>,
    /// Blocks in the verified replica on disk.
    pub length: u64,
    /// They follow us back.
    pub mutual: bool,
    /// Their live lobby, or `null`.
    pub hosting: Option<LobbyInfo>,
    /// Why they could not be reached or read, or `null`.
    pub error: Option<String>,
    /// Why their replica on disk can't be trusted (discarded, or left as it is by `--offline`),
    /// or `null`.
    pub damaged: Option<String>,
}

/// How a unit variant of the library (e.g. [`DownReason::Offline`]) is spelled in `--json`
/// output (`"offline"`), for the text output to use the same word; empty for anything that is
/// not serialized as a string.
pub fn spelling(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests;
