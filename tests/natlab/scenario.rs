//! Issue 10's scenarios as its user runs them, across the lab: `dat-social relay` on the public
//! segment, `dat-social host --relay ws://…` in one home, `dat-social join <invite>` in others,
//! each player holding the invite `host` printed (`dat://<host>?peer=…&relay=ws://…&lobby=…`,
//! whose `peer=` address, inside the host's home, no other home can reach). Results come back as data ([`ScenarioResult`]: joined or not, exit code,
//! error, the `connected` event and its path, chat both ways, every event), so a test asserts on
//! exactly what it means and a failure message shows everything that happened.

use std::time::Duration;

use serde_json::Value;

use super::{Home, HomeOptions, Host, Lab, NatKind, SERVER_IP};
use crate::support::{Proc, User, WAIT};

/// The relay's WebSocket port on the public segment (the namespace is the lab's own, so a fixed
/// port is free).
pub const RELAY_WS_PORT: u16 = 49443;
/// The relay's TCP transport port.
pub const RELAY_TCP_PORT: u16 = 49444;
/// `join --timeout` in seconds (the CLI's default): how long a player waits for the host and
/// the data channel.
pub const JOIN_TIMEOUT_SECS: u64 = 15;

/// `dat-social relay --json` on the public segment, all addresses, killed on drop.
pub struct LabRelay {
    /// The process and its events.
    pub proc: Proc,
    /// Its `listening` event (the issue adds the TURN port to it).
    pub listening: Value,
    /// `ws://198.51.100.100:49443`: what `host --relay` and invites name.
    pub ws: String,
}

impl LabRelay {
    /// Starts the relay in the lab's public namespace with `extra` flags and waits for
    /// `listening`.
    pub fn start(lab: &Lab, extra: &[&str]) -> LabRelay {
        let (ws_port, tcp_port) = (RELAY_WS_PORT.to_string(), RELAY_TCP_PORT.to_string());
        let mut args = vec![
            "relay",
            "--json",
            "--host",
            "0.0.0.0",
            "--port",
            &ws_port,
            "--tcp-port",
            &tcp_port,
        ];
        args.extend_from_slice(extra);
        let mut cmd = lab.command(lab.public(), crate::support::BIN);
        cmd.args(&args).env("RUST_LOG", "dat_social=info");
        let mut proc = Proc::spawn(cmd, &args);
        let listening = proc.expect("listening");
        LabRelay {
            proc,
            listening,
            ws: format!("ws://{SERVER_IP}:{RELAY_WS_PORT}"),
        }
    }
}

/// A lobby hosted in a home through the lab's relay.
pub struct LabHost {
    /// The hosting user.
    pub user: User,
    /// `dat-social host` and its events.
    pub proc: Proc,
    /// Its `hosting` event.
    pub hosting: Value,
    /// The invite `host` printed, as its user passes it on:
    /// `dat://<host key>?peer=<its address in its home>&relay=ws://…&lobby=<lobby key>`. Across
    /// the NATs the `peer=` address is unreachable; a join tries the `relay=` route first.
    pub invite: String,
}

/// Starts `host --listen 0.0.0.0:0 --relay <relay> --name natlab` (plus `extra`) as a new user
/// on `at`, and waits for `hosting` and the relay's `connected`.
pub fn host_lobby(relay: &LabRelay, at: &Host, extra: &[&str]) -> LabHost {
    host_lobby_of(relay, at, 16, extra)
}

/// As [`host_lobby`], with `--max-peers max_peers` (e.g. 1, to see that a slot is freed).
pub fn host_lobby_of(relay: &LabRelay, at: &Host, max_peers: u32, extra: &[&str]) -> LabHost {
    let user = User::new("host");
    let max_peers = max_peers.to_string();
    let mut args = vec![
        "host",
        "--listen",
        "0.0.0.0:0",
        "--relay",
        &relay.ws,
        "--name",
        "natlab",
        "--max-peers",
        &max_peers,
    ];
    args.extend_from_slice(extra);
    let mut proc = user.spawn_in(&at.netns, &args);
    let hosting = proc.expect("hosting");
    proc.expect_where(WAIT, "relay connected", |e| {
        e["event"] == "relay" && e["state"] == "connected"
    });
    let invite = hosting["invite"]
        .as_str()
        .expect("the hosting event's invite")
        .to_string();
    assert!(
        invite.contains("relay=") && invite.contains("lobby="),
        "{invite}"
    );
    LabHost {
        user,
        proc,
        hosting,
        invite,
    }
}

/// How one `dat-social join` went.
pub struct JoinOutcome {
    /// The player's user.
    pub user: User,
    /// The join process while it is connected; `None` once it exited.
    pub proc: Option<Proc>,
    /// It printed `connected`.
    pub joined: bool,
    /// The `connected` event.
    pub connected: Option<Value>,
    /// Its exit code when it ended without joining (3 unreachable, 7 timeout, …: cli/src/exit.rs).
    pub exit_code: Option<i32>,
    /// The `error` event's message (e.g. "DTLS error: timeout: handshake"), or why no event came.
    pub error: Option<String>,
    /// Every event it printed (up to its exit, when it did not join).
    pub events: Vec<Value>,
    /// Its stderr.
    pub stderr: String,
}

/// Starts `join <lobby's invite>` (plus `extra`) as `user` on `at` and waits for `connected`,
/// `rejected` or `error` (at most the join timeout + 10 s).
pub fn join_lobby(lobby: &LabHost, at: &Host, user: User, extra: &[&str]) -> JoinOutcome {
    let proc = user.spawn_in(&at.netns, &join_args(lobby, extra));
    finish_join(user, proc)
}

fn join_args<'a>(lobby: &'a LabHost, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["join", lobby.invite.as_str()];
    args.extend_from_slice(extra);
    args
}

/// Waits for the outcome of a started join.
fn finish_join(user: User, mut proc: Proc) -> JoinOutcome {
    let bound = Duration::from_secs(JOIN_TIMEOUT_SECS + 10);
    let first = proc.wait_for(bound, |e| {
        matches!(
            e["event"].as_str(),
            Some("connected" | "rejected" | "error")
        )
    });
    if let Some(connected) = first.clone().filter(|e| e["event"] == "connected") {
        let events = vec![connected.clone()];
        let stderr = proc.stderr();
        return JoinOutcome {
            user,
            proc: Some(proc),
            joined: true,
            connected: Some(connected),
            exit_code: None,
            error: None,
            events,
            stderr,
        };
    }
    let exit_code = proc.wait_exit(WAIT).code();
    let events = proc.drain(Duration::from_secs(1));
    let error = match &first {
        Some(e) if e["event"] == "error" => e["message"].as_str().map(String::from),
        Some(e) => Some(format!("rejected: {}", e["reason"])),
        None => Some(format!(
            "no connected/rejected/error event within {bound:?}"
        )),
    };
    let stderr = proc.stderr();
    JoinOutcome {
        user,
        proc: None,
        joined: false,
        connected: None,
        exit_code,
        error,
        events: first.into_iter().chain(events).collect(),
        stderr,
    }
}

/// One player's part of a scenario.
#[derive(Debug)]
pub struct PlayerResult {
    /// The kind of the player's home.
    pub kind: NatKind,
    /// The player's home (1-based, [`Home::index`]).
    pub home: usize,
    /// It printed `connected`.
    pub joined: bool,
    /// `connected`'s `ms` (command start to open data channel).
    pub ms: Option<u64>,
    /// The path the connection settled on: the last `path-changed` event's (ICE may nominate a better
    /// pair after `connected`, e.g. `srflx` after `relay`), else `connected`'s (`host`, `srflx`,
    /// `prflx`, `relay` with the relay's address).
    pub path: Option<Value>,
    /// `connected`'s `path`: the first pair ICE nominated.
    pub first_path: Option<Value>,
    /// The exit code when it did not join.
    pub exit_code: Option<i32>,
    /// The error message when it did not join.
    pub error: Option<String>,
    /// Its line reached the host.
    pub chat_to_host: bool,
    /// The host's line reached it.
    pub chat_from_host: bool,
    /// Every event it printed.
    pub events: Vec<Value>,
    /// Its stderr.
    pub stderr: String,
}

/// How long a player on a `relay` path is given after the first chat for ICE to move it to a
/// direct pair (it did within ~200 ms in the lab; a pair's checks are at most the keepalive,
/// 1.25 s, apart). The move shows on the next traffic, so the player then chats once more.
const SETTLE: Duration = Duration::from_secs(2);

impl PlayerResult {
    /// The path kind the connection settled on (`host`, `srflx`, `prflx`, `relay`).
    pub fn path_kind(&self) -> Option<&str> {
        self.path.as_ref().and_then(|p| p["kind"].as_str())
    }
}

/// The last path among `connected` and `path-changed` events.
fn last_path(events: &[Value]) -> Option<Value> {
    events
        .iter()
        .rev()
        .find(|e| e["event"] == "path-changed" || e["event"] == "connected")
        .and_then(|e| e.get("path"))
        .cloned()
}

/// A scenario's outcome.
#[derive(Debug)]
pub struct ScenarioResult {
    /// The kind of the host's home.
    pub host_kind: NatKind,
    /// Each player, in the order of the topology's homes.
    pub players: Vec<PlayerResult>,
    /// Every event the host printed (`peer-joined` carries the path once issue 10 lands).
    pub host_events: Vec<Value>,
}

impl ScenarioResult {
    /// Whether every player joined and chatted both ways with the host.
    pub fn all_connected_and_chatting(&self) -> bool {
        self.players
            .iter()
            .all(|p| p.joined && p.chat_to_host && p.chat_from_host)
    }
}

/// Where the players are: the host's home kind, then homes of players (a kind and how many
/// players share that router).
pub struct Topology<'a> {
    /// The host's home.
    pub host: NatKind,
    /// The players' homes: (kind, players behind it).
    pub homes: &'a [(NatKind, usize)],
    /// Delay each way between every home and the public segment ([`super::wire::Wire`]).
    pub delay: Option<Duration>,
    /// Extra flags for `dat-social relay`.
    pub relay_args: &'a [&'a str],
    /// Extra flags for `dat-social host`.
    pub host_args: &'a [&'a str],
    /// Extra flags for every `dat-social join`.
    pub join_args: &'a [&'a str],
}

impl<'a> Topology<'a> {
    /// The host in a `host` home, players in `homes`, no delay, no extra flags.
    pub fn new(host: NatKind, homes: &'a [(NatKind, usize)]) -> Topology<'a> {
        Topology {
            host,
            homes,
            delay: None,
            relay_args: &[],
            host_args: &[],
            join_args: &[],
        }
    }
}

/// Builds a lab for `topology`, starts the relay and the host, has every player join at once,
/// and each joined player exchange a chat line with the host both ways (bounded waits); then
/// ends the lobby. `None` when the machine can't build labs and `CI` is not set.
pub fn run(tag: &str, topology: &Topology) -> Option<ScenarioResult> {
    let mut lab = Lab::new(tag)?;
    let options = |hosts| HomeOptions {
        hosts,
        delay: topology.delay,
    };
    let host_home = lab.add_home_with(topology.host, options(1));
    let homes: Vec<Home> = topology
        .homes
        .iter()
        .map(|&(kind, n)| lab.add_home_with(kind, options(n)))
        .collect();
    let relay = LabRelay::start(&lab, topology.relay_args);
    let mut lobby = host_lobby(&relay, host_home.host(), topology.host_args);

    // Everyone joins at once.
    let started: Vec<(&Home, User, Proc)> = homes
        .iter()
        .flat_map(|home| home.hosts.iter().map(move |host| (home, host)))
        .enumerate()
        .map(|(i, (home, host))| {
            let user = User::new(&format!("player{i}"));
            let proc = user.spawn_in(&host.netns, &join_args(&lobby, topology.join_args));
            (home, user, proc)
        })
        .collect();
    let mut outcomes: Vec<(&Home, JoinOutcome)> = started
        .into_iter()
        .map(|(home, user, proc)| (home, finish_join(user, proc)))
        .collect();

    // Each joined player's line reaches the host; the host's line reaches each of them.
    let mut to_host = Vec::new();
    for (i, (_, outcome)) in outcomes.iter_mut().enumerate() {
        let Some(proc) = outcome.proc.as_mut() else {
            to_host.push(false);
            continue;
        };
        let line = format!("hello from player{i}");
        proc.say(&line);
        to_host.push(
            lobby
                .proc
                .wait_for(WAIT, |e| e["event"] == "message" && e["text"] == line)
                .is_some(),
        );
    }
    lobby.proc.say("hello players");
    let mut players = Vec::new();
    for ((home, mut outcome), to_host) in outcomes.into_iter().zip(to_host) {
        let from_host = outcome.proc.as_mut().is_some_and(|proc| {
            proc.wait_for(WAIT, |e| {
                e["event"] == "message" && e["text"] == "hello players"
            })
            .is_some()
        });
        if let Some(proc) = outcome.proc.as_mut() {
            outcome
                .events
                .extend(proc.drain(Duration::from_millis(100)));
            let relayed = last_path(&outcome.events).is_some_and(|p| p["kind"] == "relay");
            if relayed {
                std::thread::sleep(SETTLE);
                let line = format!("still here, player{}", players.len());
                proc.say(&line);
                let _ = lobby
                    .proc
                    .wait_for(WAIT, |e| e["event"] == "message" && e["text"] == line);
                outcome
                    .events
                    .extend(proc.drain(Duration::from_millis(200)));
            }
            outcome.stderr = proc.stderr();
        }
        let connected = outcome.connected.as_ref();
        players.push(PlayerResult {
            kind: home.kind,
            home: home.index,
            joined: outcome.joined,
            ms: connected.and_then(|c| c["ms"].as_u64()),
            path: last_path(&outcome.events),
            first_path: connected.and_then(|c| c.get("path")).cloned(),
            exit_code: outcome.exit_code,
            error: outcome.error,
            chat_to_host: to_host,
            chat_from_host: from_host,
            events: outcome.events,
            stderr: outcome.stderr,
        });
    }
    lobby.proc.signal("INT");
    lobby.proc.wait_exit(WAIT);
    let host_events = lobby.proc.drain(Duration::from_secs(1));
    Some(ScenarioResult {
        host_kind: topology.host,
        players,
        host_events,
    })
}

/// One player in a `player` home joins a host in a `host` home.
pub fn pair(tag: &str, host: NatKind, player: NatKind) -> Option<ScenarioResult> {
    run(tag, &Topology::new(host, &[(player, 1)]))
}

/// Both homes `Open` (public addresses, no NAT): host candidates are public, so the path is
/// `host`.
pub fn open_open_scenario() -> Option<ScenarioResult> {
    pair("open", NatKind::Open, NatKind::Open)
}

/// Host and player each behind a port-restricted cone NAT: a direct pair through both NATs
/// (`srflx`, or `prflx`), from the relay's STUN; ICE may nominate the relayed pair first.
pub fn cone_cone_scenario() -> Option<ScenarioResult> {
    pair("cone", NatKind::Cone, NatKind::Cone)
}

/// Host behind a cone NAT, player behind a symmetric one: only the relay's TURN works
/// (NAT.md's hole-punch table).
pub fn cone_symmetric_scenario() -> Option<ScenarioResult> {
    pair("c-sym", NatKind::Cone, NatKind::Symmetric)
}

/// Both behind symmetric NATs: relay-to-relay through our TURN.
pub fn symmetric_symmetric_scenario() -> Option<ScenarioResult> {
    pair("sym", NatKind::Symmetric, NatKind::Symmetric)
}

/// The player's home drops all UDP to the outside: TURN over TCP to the relay's TURN port.
pub fn udp_blocked_scenario() -> Option<ScenarioResult> {
    pair("udpb", NatKind::Cone, NatKind::UdpBlocked)
}

/// Two players behind the same cone NAT, the host behind another: all three connect, the
/// players on direct pairs.
pub fn same_nat_scenario() -> Option<ScenarioResult> {
    run("same", &Topology::new(NatKind::Cone, &[(NatKind::Cone, 2)]))
}

/// A full lobby of 8 players spread over the kinds, the host behind a cone NAT: the open, cone
/// and full-cone homes on direct pairs (`srflx`/`prflx`: the host's side is behind its NAT),
/// the symmetric and UDP-blocked homes on `relay`.
pub fn full_lobby_scenario() -> Option<ScenarioResult> {
    run(
        "lobby",
        &Topology::new(
            NatKind::Cone,
            &[
                (NatKind::Open, 1),
                (NatKind::Cone, 2),
                (NatKind::FullCone, 1),
                (NatKind::Symmetric, 2),
                (NatKind::UdpBlocked, 2),
            ],
        ),
    )
}

/// Kills every path through `home`'s router, as a Wi-Fi loss or a NAT that forgot its mappings
/// does: an nftables rule at the head of the router's forward chain drops all UDP and TCP it
/// would pass between the home's hosts and the outside (both directions), established flows
/// included. The home's hosts and their processes live on, unaware.
pub fn cut_path(lab: &Lab, home: &Home) {
    assert!(
        home.wan.is_some(),
        "cut_path needs a routing home (not Open)"
    );
    let args = [
        "nft", "insert", "rule", "ip", "natlab", "forward", "meta", "l4proto", "{", "udp,", "tcp",
        "}", "drop",
    ];
    let out = lab.exec(&home.router, &args, Duration::from_secs(20));
    assert!(
        out.status.success(),
        "nft insert in {} failed: {}",
        home.router,
        String::from_utf8_lossy(&out.stderr)
    );
}
