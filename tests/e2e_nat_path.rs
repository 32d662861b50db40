//! Issue 10's last point across the NAT lab (tests/natlab): a player whose path dies is seen as
//! gone within a documented bound (docs/NAT.md "When a path dies": `RtcConfig::idle_timeout`,
//! 5 s of silence, ICE consent checks every 1.25 s), and its slot is freed. Real processes:
//! `dat-social relay` on the public segment, `host --relay --max-peers 1` in one home, players
//! in others; the path dies either because the player's router starts dropping all its UDP and
//! TCP (Wi-Fi loss, a NAT that forgot its mappings: the player's process lives on) or because
//! the player's process is killed (SIGKILL: no goodbye). Needs root, iproute2 and nftables, as
//! CI has.
//!
//! The wall-clock bounds are generous (idle timeout + 10 s): this checks that the end comes
//! and frees the slot, not how fast; the machine running the tests is shared and loaded.

mod natlab;
mod support;

use std::time::{Duration, Instant};

use natlab::scenario::{self, JoinOutcome, LabHost, LabRelay};
use natlab::{Home, Lab, NatKind};
use support::{User, WAIT};

/// How long after its path dies a player may take to be reported gone: the idle timeout every
/// connection has (no option changes it), plus slack for a loaded machine.
fn bound() -> Duration {
    dat_social::rtc::RtcConfig::default().idle_timeout + Duration::from_secs(10)
}

/// A lab with the host in a cone home, the first player in a `first` home (whose path the test
/// kills) and a cone home for the second player; the relay; a lobby with one slot.
struct Game {
    lab: Lab,
    homes: Vec<Home>,
    _relay: LabRelay,
    lobby: LabHost,
}

fn game(tag: &str, first: NatKind) -> Option<Game> {
    let mut lab = Lab::new(tag)?;
    let homes = vec![
        lab.add_home(NatKind::Cone, 1),
        lab.add_home(first, 1),
        lab.add_home(NatKind::Cone, 1),
    ];
    let relay = LabRelay::start(&lab, &[]);
    let lobby = scenario::host_lobby_of(&relay, homes[0].host(), 1, &[]);
    Some(Game {
        lab,
        homes,
        _relay: relay,
        lobby,
    })
}

impl Game {
    /// `name` joins from home `home`; asserts it connected and the host saw it (`peers` 1),
    /// and that chat flows to the host.
    fn join(&mut self, home: usize, name: &str) -> JoinOutcome {
        let user = User::new(name);
        let mut outcome = scenario::join_lobby(&self.lobby, self.homes[home].host(), user, &[]);
        assert!(
            outcome.joined,
            "{name} did not join: code {:?}, {:?}; events {:#?}; stderr {}",
            outcome.exit_code, outcome.error, outcome.events, outcome.stderr
        );
        let joined = self.lobby.proc.expect_where(WAIT, "peer-joined", |e| {
            e["event"] == "peer-joined" && e["name"] == name
        });
        assert_eq!(joined["peers"], 1, "{joined}");
        let line = format!("hello from {name}");
        outcome.proc.as_mut().unwrap().say(&line);
        self.lobby
            .proc
            .expect_where(WAIT, "the player's line", |e| {
                e["event"] == "message" && e["text"] == line
            });
        outcome
    }

    /// Waits for the host's `peer-left` for `name` (at most [`bound`] after `since`) and
    /// asserts the lobby is empty again; how long it took.
    fn expect_left(&mut self, name: &str, since: Instant) -> Duration {
        let left = self.lobby.proc.expect_where(bound(), "peer-left", |e| {
            e["event"] == "peer-left" && e["name"] == name
        });
        let took = since.elapsed();
        assert!(took <= bound(), "peer-left after {took:?}: {left}");
        assert_eq!(left["peers"], 0, "{left}");
        took
    }

    /// The slot is free: a second player, in another home, joins the one-slot lobby (a full
    /// lobby would reject it with exit code 4) and chats both ways.
    fn second_player_joins(&mut self) {
        let mut second = self.join(2, "second");
        self.lobby.proc.say("welcome second");
        second
            .proc
            .as_mut()
            .unwrap()
            .expect_message("welcome second");
    }
}

/// The player's router drops everything mid-game (the player's process runs on): the host
/// reports `peer-left` within the bound and the slot is free again; the player, which hears
/// nothing from the host either, reports the host gone (`disconnected`) and exits with code 3
/// (host unreachable) and an error saying the connection was lost. The first player sits behind
/// a symmetric NAT, so its path is the relay's TURN: TURN refreshes and keepalives to the relay
/// must not keep a dead peer alive.
#[test]
fn a_player_whose_path_dies_is_seen_gone_and_its_slot_is_freed() {
    let Some(mut game) = game("cut", NatKind::Symmetric) else {
        return;
    };
    let mut first = game.join(1, "first");
    let path = &first.connected.as_ref().unwrap()["path"];
    assert_eq!(path["kind"], "relay", "{path}");

    scenario::cut_path(&game.lab, &game.homes[1]);
    let cut = Instant::now();
    let took = game.expect_left("first", cut);
    eprintln!("peer-left {took:?} after the path died");

    // The player's side: the host went silent too.
    let player = first.proc.as_mut().unwrap();
    player.expect_where(bound(), "disconnected", |e| e["event"] == "disconnected");
    let status = player.wait_exit(WAIT);
    let error = player.expect_where(WAIT, "error", |e| e["event"] == "error");
    assert_eq!(status.code(), Some(3), "{error}; {}", player.stderr());
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("lost the connection to the host"),
        "{message}"
    );

    game.second_player_joins();
}

/// The player's process is killed (SIGKILL: no goodbye on any channel): the host reports
/// `peer-left` within the bound and the slot is free again.
#[test]
fn a_killed_player_is_seen_gone_and_its_slot_is_freed() {
    let Some(mut game) = game("kill", NatKind::Cone) else {
        return;
    };
    let mut first = game.join(1, "first");
    let player = first.proc.as_mut().unwrap();
    player.signal("KILL");
    let killed = Instant::now();
    let status = player.wait_exit(WAIT);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "{status:?}"
    );
    let took = game.expect_left("first", killed);
    eprintln!("peer-left {took:?} after the kill");
    game.second_player_joins();
}

/// A join whose data channel can never open ends with the timeout exit code (7), as `--help`
/// and README.md say, not the generic 1: the player's home drops all UDP and the relay serves
/// no TURN (`--no-turn`), so the host and the player find each other and exchange the offer and
/// answer through the relay, but ICE has no pair that works. (Before the fix the WebRTC connect
/// timeout, `the connection did not open within …`, fell through to exit code 1.)
#[test]
fn a_join_whose_data_channel_never_opens_exits_with_the_timeout_code() {
    let Some(mut lab) = Lab::new("cto") else {
        return;
    };
    let host_home = lab.add_home(NatKind::Cone, 1);
    let player_home = lab.add_home(NatKind::UdpBlocked, 1);
    let relay = LabRelay::start(&lab, &["--no-turn"]);
    let lobby = scenario::host_lobby(&relay, host_home.host(), &[]);
    let outcome = scenario::join_lobby(
        &lobby,
        player_home.host(),
        User::new("player"),
        &["--timeout", "8"],
    );
    assert!(!outcome.joined, "{:#?}", outcome.events);
    let error = outcome.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("did not open"),
        "not a data-channel timeout: {error:?}; stderr {}",
        outcome.stderr
    );
    assert_eq!(
        outcome.exit_code,
        Some(7),
        "{error}; stderr {}",
        outcome.stderr
    );
}
