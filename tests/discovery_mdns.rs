//! LAN discovery (`dat_social::discovery::mdns`) over real multicast DNS between two network
//! namespaces joined by a veth pair (10.77.0.1 and 10.77.0.2, plus fd77::1 and fd77::2): each
//! side is a separate process, the `mdns_probe` example, started with `ip netns exec` and read as
//! JSON lines. Needs root and iproute2 (`ip netns`), as CI has; fails, loudly, without them.
//!
//! The probe is built by `cargo test` / `cargo nextest run` (they build the examples) next to
//! the test binaries: `target/<profile>/examples/mdns_probe`.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use support::lan::Lan;
use support::{Proc, WAIT};

/// How long a lookup that must find something may take (the probe's own bound).
const FIND_MS: &str = "15000";
/// How long a lookup that must find nothing listens.
const MISS_MS: &str = "3000";

/// The announcing side's addresses (namespace `a`, `veth0`).
const ADDR_A: &str = "10.77.0.1";
const ADDR6_A: &str = "[fd77::1]";

/// The probe binary, built by cargo with the examples of this package.
fn probe_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/discovery_mdns-<hash> -> target/<profile>/examples/mdns_probe
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary in target/<profile>/deps");
    let probe = profile_dir.join("examples").join("mdns_probe");
    assert!(
        probe.is_file(),
        "{} is missing: build the examples too (`cargo test` and `cargo nextest run` do; or \
         `cargo build --example mdns_probe` with the same profile)",
        probe.display()
    );
    probe
}

/// Starts `mdns_probe ARGS` inside network namespace `ns`, read as JSON event lines.
fn probe(ns: &str, args: &[&str]) -> Proc {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).arg(probe_bin()).args(args);
    Proc::spawn(cmd, args)
}

/// The addresses of `dev` in namespace `ns` (its IPv6 link-local one included).
fn addrs_of(ns: &str, dev: &str) -> Vec<IpAddr> {
    let out = Command::new("ip")
        .args(["-n", ns, "-o", "addr", "show", "dev", dev])
        .output()
        .expect("ip addr show");
    assert!(
        out.status.success(),
        "ip -n {ns} addr show dev {dev} failed"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let addrs: Vec<IpAddr> = text
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet" || *w == "inet6")?;
            words.next()?.split('/').next()?.parse().ok()
        })
        .collect();
    assert!(!addrs.is_empty(), "no addresses on {dev} in {ns}: {text}");
    addrs
}

/// Checks that `found` (a lookup's addresses) is not empty and that every address is one of
/// `owner`'s (the announcer's veth: 10.77.0.1, fd77::1 or its link-local address) with `port`.
fn assert_announcer(found: &[String], owner: &[IpAddr], port: u16) {
    assert!(!found.is_empty(), "the lookup found nothing");
    for text in found {
        let addr: SocketAddr = text
            .parse()
            .unwrap_or_else(|e| panic!("{text:?} is no socket address: {e}"));
        assert_eq!(addr.port(), port, "{text} in {found:?}");
        assert!(
            owner.contains(&addr.ip()),
            "{text} is not the announcer's ({owner:?}); found {found:?}"
        );
    }
}

/// A lookup run to completion inside `ns`: the addresses found, as strings.
fn lookup(ns: &str, dk: &[u8; 32], timeout_ms: &str) -> Vec<String> {
    let mut probe = probe(ns, &["lookup", &hex::encode(dk), timeout_ms]);
    let event = probe.expect("lookup");
    let status = probe.wait_exit(WAIT);
    assert!(
        status.success(),
        "[{ns}] lookup: {status}: {}",
        probe.stderr()
    );
    strings(&event["addrs"])
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

fn random_key() -> [u8; 32] {
    rand::random()
}

/// `dk` with its last byte changed: the same instance-name prefix, another key.
fn same_prefix(dk: &[u8; 32]) -> [u8; 32] {
    let mut k = *dk;
    k[31] ^= 0x01;
    k
}

#[test]
fn a_lookup_in_another_namespace_finds_the_announcer_and_only_for_its_key() {
    let lan = Lan::new("find");
    let dk = random_key();
    let mut announcer = probe(
        &lan.a,
        &[
            "announce",
            &hex::encode(dk),
            "4242",
            "--self-lookup-ms",
            MISS_MS,
        ],
    );
    let announced = announcer.expect("announced");
    let instance = announced["instance"].as_str().unwrap().to_string();
    assert!(instance.starts_with(&hex::encode(&dk[..16])), "{announced}");

    // The other namespace finds it at its veth address, with the announced port.
    // (IPv4, IPv6 or both: each family's answer comes on its own, so a lookup that returns
    // early may hold either; the watcher test waits for both.)
    let announcer_addrs = addrs_of(&lan.a, "veth0");
    let found = lookup(&lan.b, &dk, FIND_MS);
    assert_announcer(&found, &announcer_addrs, 4242);

    // Another process on the announcer's own host finds it too, but the announcing daemon's own
    // lookup leaves its announcement out.
    let same_host = lookup(&lan.a, &dk, FIND_MS);
    assert!(!same_host.is_empty(), "lookup from a found nothing");
    let own = announcer.expect("self-lookup");
    assert_eq!(strings(&own["addrs"]), Vec::<String>::new(), "{own}");

    // Other keys find nothing: one that differs only in its last byte (same instance-name
    // prefix, so only the TXT check tells them apart) and an unrelated one.
    let near = std::thread::spawn({
        let ns = lan.b.clone();
        move || lookup(&ns, &same_prefix(&dk), MISS_MS)
    });
    let far = lookup(&lan.b, &random_key(), MISS_MS);
    assert_eq!(far, Vec::<String>::new());
    assert_eq!(near.join().expect("lookup thread"), Vec::<String>::new());

    // A lookup made well after the announcement went out (answered by a query response, not by
    // the unsolicited announcement) finds it too.
    let later = lookup(&lan.b, &dk, FIND_MS);
    assert_announcer(&later, &announcer_addrs, 4242);

    // After a graceful stop, a new lookup finds nothing.
    announcer.say("stop");
    announcer.expect("stopped");
    let status = announcer.wait_exit(WAIT);
    assert!(status.success(), "{status}: {}", announcer.stderr());
    assert_eq!(lookup(&lan.b, &dk, MISS_MS), Vec::<String>::new());
}

#[test]
fn a_watcher_sees_two_announcers_of_one_key_and_their_goodbyes() {
    let lan = Lan::new("watch");
    let dk = random_key();
    let mut watcher = probe(&lan.b, &["watch", &hex::encode(dk), "40000"]);
    let first = watcher.expect("peers");
    assert_eq!(first["peers"], serde_json::json!([]), "{first}");

    let mut one = probe(&lan.a, &["announce", &hex::encode(dk), "4001"]);
    let mut two = probe(&lan.a, &["announce", &hex::encode(dk), "4002"]);
    let one_instance = one.expect("announced")["instance"]
        .as_str()
        .unwrap()
        .to_string();
    let two_instance = two.expect("announced")["instance"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(one_instance, two_instance, "two announcers must not clash");

    let has = |peers: &Value, instance: &str, addr: &str| {
        peers.as_array().is_some_and(|ps| {
            ps.iter().any(|p| {
                p["instance"] == instance
                    && p["addrs"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x == addr))
            })
        })
    };
    // Both, each with its IPv4 and its IPv6 address (they come in separate answers).
    let both = watcher.expect_where(WAIT, "both announcers", |e| {
        e["event"] == "peers"
            && has(&e["peers"], &one_instance, &format!("{ADDR_A}:4001"))
            && has(&e["peers"], &one_instance, &format!("{ADDR6_A}:4001"))
            && has(&e["peers"], &two_instance, &format!("{ADDR_A}:4002"))
            && has(&e["peers"], &two_instance, &format!("{ADDR6_A}:4002"))
    });
    assert_eq!(both["peers"].as_array().unwrap().len(), 2, "{both}");

    // The goodbye of the first removes it from the watcher's set; the second stays.
    one.say("stop");
    one.expect("stopped");
    let after = watcher.expect_where(WAIT, "the first announcer's goodbye", |e| {
        e["event"] == "peers" && !has(&e["peers"], &one_instance, &format!("{ADDR_A}:4001"))
    });
    assert!(
        has(&after["peers"], &two_instance, &format!("{ADDR_A}:4002")),
        "{after}"
    );
    assert_eq!(after["peers"].as_array().unwrap().len(), 1, "{after}");

    two.say("stop");
    two.expect("stopped");
    watcher.expect_where(WAIT, "an empty set after both goodbyes", |e| {
        e["event"] == "peers" && e["peers"] == serde_json::json!([])
    });
}

#[test]
fn a_killed_announcer_is_not_found_by_a_new_lookup() {
    let lan = Lan::new("kill");
    let dk = random_key();
    let mut announcer = probe(&lan.a, &["announce", &hex::encode(dk), "4343"]);
    announcer.expect("announced");
    let found = lookup(&lan.b, &dk, FIND_MS);
    assert_announcer(&found, &addrs_of(&lan.a, "veth0"), 4343);

    // SIGKILL: no goodbye is sent; nobody answers the new lookup's queries.
    announcer.signal("KILL");
    announcer.wait_exit(WAIT);
    assert_eq!(lookup(&lan.b, &dk, MISS_MS), Vec::<String>::new());
}
