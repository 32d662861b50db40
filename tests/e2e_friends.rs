//! Friends and matchmaking end to end: ten users as separate `dat-social` processes on loopback,
//! finding each other only through a relay (`dat-social relay`); three host lobbies.

mod support;

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;
use support::relay::Relay;
use support::{Proc, User, WAIT};

/// Heartbeat of the hosts, seconds.
const HEARTBEAT: &str = "1";

/// Whom each user follows (by index). Hosts: 0 (2 slots), 3 and 6 (4 slots).
const FOLLOWS: [&[usize]; 10] = [
    &[1],
    &[0, 2],
    &[3],
    &[6],
    &[3, 6, 5],
    &[4],
    &[9],
    &[6, 0],
    &[0, 9],
    &[0, 3, 6],
];
const HOSTS: [(usize, &str); 3] = [(0, "2"), (3, "4"), (6, "4")];

struct World {
    relay: Relay,
    users: Vec<User>,
    urls: Vec<String>,
}

impl World {
    fn new() -> World {
        let relay = Relay::start();
        let users: Vec<User> = (0..10).map(|i| User::new(&format!("u{i}"))).collect();
        let urls: Vec<String> = users.iter().map(|u| u.url()).collect();
        for (i, follows) in FOLLOWS.iter().enumerate() {
            for &j in *follows {
                let out = users[i].run(&["friends", "add", &urls[j], "--alias", &format!("f{j}")]);
                assert!(out.status.success(), "friends add: {}", out.stderr);
                assert_eq!(out.events()[0]["url"], urls[j]);
            }
        }
        World { relay, users, urls }
    }

    fn host(&self, i: usize, max_peers: &str) -> Proc {
        let args = [
            "host",
            "--listen",
            "127.0.0.1:0",
            "--relay",
            &self.relay.ws(),
            "--heartbeat",
            HEARTBEAT,
            "--max-peers",
            max_peers,
        ];
        let mut proc = self.users[i].spawn(&args);
        proc.expect("hosting");
        proc.expect_where(WAIT, "relay connected", |v| {
            v["event"] == "relay" && v["state"] == "connected"
        });
        proc
    }

    fn look(&self, i: usize, args: &[&str]) -> Vec<Value> {
        let relay = self.relay.ws();
        let mut all = args.to_vec();
        all.extend_from_slice(&["--relay", &relay]);
        let out = self.users[i].run(&all);
        assert!(out.status.success(), "{args:?}: {}", out.stderr);
        out.events()
    }

    /// The hosts (indices) of the live lobbies `sessions` shows to user `i`.
    fn sessions(&self, i: usize) -> BTreeSet<usize> {
        self.look(i, &["sessions"])
            .iter()
            .filter(|e| e["event"] == "session")
            .map(|e| self.index_of(&e["host"]))
            .collect()
    }

    fn index_of(&self, url: &Value) -> usize {
        self.urls
            .iter()
            .position(|u| u == url)
            .unwrap_or_else(|| panic!("unknown host {url}"))
    }

    fn watch(&self, i: usize) -> Proc {
        let relay = self.relay.ws();
        let mut proc = self.users[i].spawn(&["sessions", "--watch", "--relay", &relay]);
        proc.expect("watching");
        proc
    }

    fn join(&self, i: usize, how: &[&str]) -> Proc {
        let relay = self.relay.ws();
        let mut args = vec!["join", "--relay", &relay];
        args.extend_from_slice(how);
        self.users[i].spawn(&args)
    }
}

/// The live lobbies each user should see, given which hosts run.
fn expected(i: usize, running: &[usize]) -> BTreeSet<usize> {
    FOLLOWS[i]
        .iter()
        .copied()
        .filter(|j| running.contains(j))
        .collect()
}

/// Waits for the watcher's next `session-*` event about `host` that satisfies `pred`.
fn expect_session(w: &mut Proc, event: &str, host: &str, pred: impl Fn(&Value) -> bool) -> Value {
    w.expect_where(WAIT, &format!("{event} of {host}"), |v| {
        v["event"] == event && v["host"] == host && pred(v)
    })
}

#[test]
fn ten_users_see_exactly_their_friends_lobbies_as_they_fill_end_and_die() {
    let world = World::new();
    let mut hosts: HashMap<usize, Proc> = HOSTS
        .iter()
        .map(|&(i, max)| (i, world.host(i, max)))
        .collect();
    let running = [0, 3, 6];

    // One look: every user sees exactly the live lobbies of those they follow.
    for i in 0..10 {
        assert_eq!(world.sessions(i), expected(i, &running), "sessions of u{i}");
    }

    // Every user watches; each sees its friends' lobbies come up.
    let mut watchers: Vec<Proc> = (0..10).map(|i| world.watch(i)).collect();
    for (i, w) in watchers.iter_mut().enumerate() {
        for j in expected(i, &running) {
            let up = expect_session(w, "session-up", &world.urls[j], |_| true);
            assert_eq!(up["peers"], 0, "{up}");
        }
    }

    // u7 joins u6 by friend alias; u1 and u8 fill u0 (2 slots).
    let mut players = vec![world.join(7, &["--friend", "f6"])];
    players.push(world.join(1, &["--friend", "f0"]));
    players.push(world.join(8, &["--friend", &world.urls[0]]));
    for p in &mut players {
        p.expect("connected");
    }
    for &i in &[9usize, 1, 7, 8] {
        expect_session(&mut watchers[i], "session-changed", &world.urls[0], |v| {
            v["peers"] == 2
        });
    }
    for &i in &[9usize, 4, 7, 3] {
        expect_session(&mut watchers[i], "session-changed", &world.urls[6], |v| {
            v["peers"] == 1
        });
    }

    // Quick join: u4 sees u3 (0 players) and u6 (1 player): u6. u9 sees u0 full (2/2), u3 and u6:
    // u6 again, not the full lobby with the most players.
    let mut quick4 = world.join(4, &["--quick"]);
    let picked = quick4.expect("picked");
    assert_eq!(picked["host"], world.urls[6], "{picked}");
    quick4.expect("connected");
    let mut quick9 = world.join(9, &["--quick"]);
    let picked = quick9.expect("picked");
    assert_eq!(picked["host"], world.urls[6], "{picked}");
    quick9.expect("connected");
    // u8 follows only u0 (full) and u9 (not hosting): nothing to join, said clearly.
    let out = world.users[8].run(&["join", "--quick", "--relay", &world.relay.ws()]);
    assert_ne!(out.code(), 0);
    assert!(
        out.stderr.contains("no live lobby with a free slot"),
        "{}",
        out.stderr
    );

    // u3 ends its lobby (Ctrl-C): its watchers see it go down.
    let mut h3 = hosts.remove(&3).unwrap();
    h3.signal("INT");
    h3.wait_exit(WAIT);
    for &i in &[9usize, 2, 4] {
        let down = expect_session(&mut watchers[i], "session-down", &world.urls[3], |_| true);
        let reason = down["reason"].as_str().unwrap();
        assert!(reason == "ended" || reason == "offline", "{down}");
    }

    // u6 is killed: no goodbye, no `ended`; its watchers see the lobby go down when the
    // connection drops, well before the heartbeat would go stale.
    let h6 = hosts.remove(&6).unwrap();
    h6.signal("KILL");
    for &i in &[9usize, 4, 7, 3] {
        let down = expect_session(&mut watchers[i], "session-down", &world.urls[6], |_| true);
        assert_eq!(down["reason"], "offline", "{down}");
    }

    // Now a look shows only u0's lobby.
    drop(watchers);
    for i in 0..10 {
        assert_eq!(
            world.sessions(i),
            expected(i, &[0]),
            "sessions of u{i} after the ends"
        );
    }

    // Offline: u6 is gone, yet u9's friend list shows u6's last verified profile.
    let list = world.look(9, &["friends", "list"]);
    let u6 = list
        .iter()
        .find(|e| e["url"] == world.urls[6])
        .expect("u6 listed");
    assert_eq!(u6["online"], false, "{u6}");
    assert_eq!(u6["name"], "u6", "{u6}");
    let u0 = list
        .iter()
        .find(|e| e["url"] == world.urls[0])
        .expect("u0 listed");
    assert_eq!(u0["online"], true, "{u0}");
    assert_eq!(u0["mutual"], false, "{u0}");
    assert_eq!(u0["hosting"]["peers"], 2, "{u0}");
}

#[test]
fn a_tampered_replica_is_never_shown_and_is_fetched_again() {
    let relay = Relay::start();
    let alice = User::new("alice");
    let bob = User::new("bob");
    assert!(bob.run(&["friends", "add", &alice.url()]).status.success());
    assert!(alice.run(&["friends", "add", &bob.url()]).status.success());
    let mut host = alice.spawn(&["host", "--listen", "127.0.0.1:0", "--relay", &relay.ws()]);
    host.expect("hosting");
    let list = |args: &[&str]| -> Value {
        let mut all = vec!["friends", "list", "--relay"];
        let ws = relay.ws();
        all.push(&ws);
        all.extend_from_slice(args);
        let out = bob.run(&all);
        assert!(out.status.success(), "{}", out.stderr);
        out.events()
            .into_iter()
            .find(|e| e["event"] == "friend")
            .unwrap()
    };
    let first = list(&[]);
    assert_eq!(first["name"], "alice", "{first}");
    assert_eq!(first["online"], true, "{first}");
    assert_eq!(first["mutual"], true, "{first}");

    // Offline read of the replica on disk.
    let offline = list(&["--offline"]);
    assert_eq!(offline["name"], "alice", "{offline}");
    assert_eq!(offline["online"], false, "{offline}");

    // Flip one byte of the stored profile: the replica is not shown as valid...
    let key = alice.url().trim_start_matches("dat://").to_string();
    let data = bob.data_dir().join("replicas").join(&key).join("data");
    let mut bytes = std::fs::read(&data).unwrap();
    let at = bytes
        .windows(5)
        .position(|w| w == b"alice")
        .expect("name in the data file");
    bytes[at] = b'A';
    std::fs::write(&data, &bytes).unwrap();
    let tampered = list(&["--offline"]);
    assert_eq!(tampered["name"], Value::Null, "{tampered}");
    assert!(
        tampered["damaged"]
            .as_str()
            .unwrap()
            .contains("does not match"),
        "{tampered}"
    );
    // ...and the next look fetches it again from alice, verified.
    let again = list(&[]);
    assert_eq!(again["name"], "alice", "{again}");
    assert_eq!(again["online"], true, "{again}");
    let restored = std::fs::read(&data).unwrap();
    assert!(restored.windows(5).any(|w| w == b"alice"));
}

#[test]
fn friends_only_lobby_admits_mutual_friends_only() {
    let alice = User::new("alice");
    let bob = User::new("bob");
    let carol = User::new("carol");
    let dave = User::new("dave");
    for (who, whom) in [
        (&alice, &bob),
        (&bob, &alice),
        (&alice, &dave),
        (&carol, &alice),
    ] {
        assert!(who.run(&["friends", "add", &whom.url()]).status.success());
    }
    let (mut host, hosting) = support::host(&alice, &["--friends-only"]);
    let invite = hosting["invite"].as_str().unwrap().to_string();
    // bob: mutual friend.
    let mut b = bob.spawn(&["join", &invite]);
    b.expect("connected");
    host.expect("peer-joined");
    // carol follows alice, but alice doesn't follow carol; dave is followed but doesn't follow.
    for user in [&carol, &dave] {
        let out = user.run(&["join", &invite]);
        let rejected = out.events().into_iter().find(|e| e["event"] == "rejected");
        assert_eq!(
            rejected.as_ref().map(|e| e["reason"].clone()),
            Some(Value::from("friends-only")),
            "{}: {}",
            user.name,
            out.stderr
        );
    }
}

#[test]
fn bad_friend_input_gives_clear_errors() {
    let alice = User::new("alice");
    let out = alice.run(&["friends", "add", "dat://not-a-key"]);
    assert_eq!(out.code(), 1);
    assert!(out.stderr.contains("invalid dat URL"), "{}", out.stderr);
    let out = alice.run(&["friends", "add", &alice.url()]);
    assert!(out.stderr.contains("your own URL"), "{}", out.stderr);

    // A friend whose archive never appears: listed as never seen, within the look timeout.
    let ghost = format!("dat://{}?peer=127.0.0.1:9", "11".repeat(32));
    assert!(alice
        .run(&["friends", "add", &ghost, "--alias", "ghost"])
        .status
        .success());
    let out = alice.run(&["friends", "list", "--look-timeout", "2"]);
    assert!(out.status.success(), "{}", out.stderr);
    let ghost_entry = out
        .events()
        .into_iter()
        .find(|e| e["alias"] == "ghost")
        .unwrap();
    assert_eq!(ghost_entry["online"], false);
    assert_eq!(ghost_entry["name"], Value::Null);
    assert!(
        ghost_entry["error"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1:9"),
        "{ghost_entry}"
    );
    let out = alice.run(&["friends", "add", &ghost]);
    assert!(out.stderr.contains("already your friend"), "{}", out.stderr);
    let out = alice.run(&[
        "friends",
        "add",
        &format!("dat://{}", "cd".repeat(32)),
        "--alias",
        "ghost",
    ]);
    assert!(
        out.stderr.contains("another friend has it"),
        "{}",
        out.stderr
    );

    // Joining someone who is not a friend, or a friend who does not host.
    let out = alice.run(&["join", "--friend", "nobody"]);
    assert_eq!(out.code(), 1);
    assert!(
        out.stderr.contains("not one of your friends"),
        "{}",
        out.stderr
    );
    let out = alice.run(&["join", "--friend", "ghost"]);
    assert!(
        out.stderr.contains("not hosting a live lobby"),
        "{}",
        out.stderr
    );
    let out = alice.run(&["join", "--quick"]);
    assert!(out.stderr.contains("no live lobby"), "{}", out.stderr);

    // Remove by alias: gone from the list.
    assert!(alice.run(&["friends", "remove", "ghost"]).status.success());
    let out = alice.run(&["friends", "list", "--offline"]);
    assert!(out.events().iter().all(|e| e["alias"] != "ghost"));
}
