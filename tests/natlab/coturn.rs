//! coturn (`turnserver`, Debian's package) as the lab's reference STUN/TURN server on the public
//! segment, listening on both server addresses so that RFC 5780 NAT behaviour discovery works,
//! and `turnutils_natdiscovery` run from a home host to classify its router (NAT.md §3.1).

use std::net::{SocketAddr, SocketAddrV4};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::{stun, Lab, SERVER_IP, SERVER_IP2};

/// The long-term credential coturn accepts (`--user`), for TURN clients in tests.
pub const USER: &str = "natlab";
/// The password of [`USER`].
pub const PASSWORD: &str = "natlab-secret";
/// coturn's realm.
pub const REALM: &str = "natlab";

/// A coturn process on the public segment, killed on drop.
pub struct Coturn {
    child: Child,
    /// The STUN/TURN port on [`SERVER_IP`] and [`SERVER_IP2`] (UDP and TCP; RFC 5780's
    /// alternate port is `port + 1`).
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Coturn {
    /// Starts coturn on `port` in the lab's public namespace (STUN and TURN over UDP and TCP,
    /// no TLS, long-term credentials [`USER`]/[`PASSWORD`], relayed addresses on [`SERVER_IP`]
    /// ports 49152-49252) and waits (at most 10 s) until it answers a STUN Binding. `None`
    /// (after a note) when coturn is not installed and `CI` is not set.
    pub fn start(lab: &Lab, port: u16) -> Option<Coturn> {
        if !super::tool_available("turnserver") {
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let pidfile = dir.path().join("turnserver.pid");
        let log = dir.path().join("turnserver.log");
        let user = format!("{USER}:{PASSWORD}");
        let child = lab
            .command(lab.public(), "turnserver")
            .args(["-n", "--no-tls", "--no-dtls", "--no-cli", "--simple-log"])
            .args(["--lt-cred-mech", "--user", &user, "--realm", REALM])
            .args(["--listening-ip", &SERVER_IP.to_string()])
            .args(["--listening-ip", &SERVER_IP2.to_string()])
            .args(["--relay-ip", &SERVER_IP.to_string()])
            .args(["--listening-port", &port.to_string()])
            .args(["--min-port", "49152", "--max-port", "49252"])
            .arg("--pidfile")
            .arg(&pidfile)
            .arg("--log-file")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn turnserver");
        let coturn = Coturn {
            child,
            port,
            _dir: dir,
        };
        coturn.wait_ready(lab, &log);
        Some(coturn)
    }

    /// The primary STUN/TURN address, `198.51.100.100:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(SERVER_IP, self.port))
    }

    /// Polls with STUN Bindings from inside the public segment until one is answered.
    fn wait_ready(&self, lab: &Lab, log: &std::path::Path) {
        let server = self.addr();
        let public = lab.public().to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let socket = lab.udp_socket(&public, 0);
            if stun::mapped_udp(&socket, server, 1).is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "coturn did not answer STUN on {server} within 10 s; its log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `turnutils_natdiscovery -m -f` (RFC 5780 §4.3 and §4.4) concluded from a host.
#[derive(Debug)]
pub struct NatReport {
    /// The mapping verdict, e.g. "Endpoint Independent Mapping", "Address and Port Dependent
    /// Mapping", or "No NAT"; `None` if it never got an answer.
    pub mapping: Option<String>,
    /// The filtering verdict, e.g. "Address and Port Dependent Filtering", "Endpoint
    /// Independent Filtering"; `None` if it never got an answer.
    pub filtering: Option<String>,
    /// Every "UDP reflexive addr" coturn reported, in order.
    pub reflexive: Vec<SocketAddr>,
    /// The tool's whole output, for failure messages.
    pub output: String,
}

/// Runs `turnutils_natdiscovery -m -f` in `netns` against `coturn` (at most 30 s).
pub fn nat_discovery(lab: &Lab, netns: &str, coturn: &Coturn) -> NatReport {
    let port = coturn.port.to_string();
    let server = SERVER_IP.to_string();
    let args = ["turnutils_natdiscovery", "-m", "-f", "-p", &port, &server];
    let out = lab.exec(netns, &args, Duration::from_secs(30));
    let output =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let (mapping_part, filtering_part) = output
        .split_once("Filtering Behavior Discovery")
        .unwrap_or((&output, ""));
    NatReport {
        mapping: verdict(mapping_part),
        filtering: verdict(filtering_part),
        reflexive: output
            .lines()
            .filter_map(|l| l.split_once("UDP reflexive addr:"))
            .filter_map(|(_, addr)| addr.trim().parse().ok())
            .collect(),
        output,
    }
}

/// The line coturn prints between `====` rules with its conclusion: "NAT with X!" → "X",
/// "No NAT…" → as printed.
fn verdict(part: &str) -> Option<String> {
    part.lines().map(str::trim).find_map(|l| {
        if let Some(v) = l.strip_prefix("NAT with ") {
            Some(v.trim_end_matches('!').to_string())
        } else if l.starts_with("No NAT") {
            Some(l.trim_end_matches('!').to_string())
        } else {
            None
        }
    })
}

/// A host's mapped address as coturn sees a fresh UDP socket bound to `port` in `netns`.
pub fn mapped_from(lab: &Lab, netns: &str, port: u16, coturn: &Coturn) -> Option<SocketAddr> {
    let socket = lab.udp_socket(netns, port);
    stun::mapped_udp(&socket, coturn.addr(), 5)
}
