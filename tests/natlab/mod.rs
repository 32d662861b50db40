//! The NAT lab: home networks behind NAT routers and a public segment, built from Linux network
//! namespaces on this machine, for the end-to-end tests and the benchmark of NAT traversal
//! (issue 10; the commands and pitfalls are `../shared/reference/NAT.md` §3, verified here).
//!
//! ```text
//!  home 1: host 10.0.1.10 ─┐                                          ┌ relay / STUN / TURN
//!          host 10.0.1.11 ─┴ lan ─ router 1 (NAT kind) ─ wan 198.51.100.1 ─┐        │
//!                                                            public segment br0 198.51.100.100
//!  home 2: host 10.0.2.10 ── lan ─ router 2 (NAT kind) ─ wan 198.51.100.2 ─┘      + .101
//! ```
//!
//! - The public segment ([`Lab::public`]) is a bridge on 198.51.100.0/24 (TEST-NET-2, RFC 5737)
//!   with the server addresses [`SERVER_IP`] and [`SERVER_IP2`] (two, for RFC 5780 NAT
//!   discovery). Nothing routes out of the lab: the namespaces have no link to the machine's own
//!   network, and every address is inside 198.51.100.0/24 or a home's 10.0.i.0/24.
//! - A home ([`Lab::add_home`]) is a router namespace and one or more host namespaces on its LAN
//!   bridge; the router's [`NatKind`] says how it treats traffic (NAT.md §3.1's table). Every NAT
//!   kind drops unsolicited input on its WAN side as a real router does (NAT.md's "conntrack
//!   clash" pitfall: without it cone↔cone hole punching fails) and starts from an empty
//!   conntrack table.
//! - An optional delay per home ([`HomeOptions::delay`]) applies to both directions between the
//!   home and the public segment, never to traffic inside the home. The router's WAN link is then
//!   a [`wire::Wire`] (two TAP devices and a user-space copy with a delay) instead of a veth pair:
//!   this kernel has no `tc netem` (`CONFIG_NET_SCH_NETEM` is not set).
//!
//! Every namespace is named `natlab-<pid>-<lab>-<role>`, so parallel tests (nextest runs each in
//! its own process) never collide; [`Lab`]'s `Drop` kills what still runs inside them and deletes
//! them, also when a test panics, and [`Lab::new`] deletes those left by killed runs (whose pid
//! is gone). Needs root, iproute2 and nftables (`.ci/run` installs them): without them
//! [`Lab::new`] fails the test when `CI` is set and otherwise prints a note and returns `None`.
//!
//! Include with `mod support; mod natlab;` (the scenario part runs the binary through
//! `support`). The parts: this file (namespaces and routers), [`coturn`] (a coturn STUN/TURN
//! server on the public segment and its NAT discovery client), [`stun`] (a minimal STUN Binding
//! client for sockets the test owns), [`scenario`] (`dat-social relay`, `host` and `join` across
//! the lab, with structured results).

#![allow(dead_code)]

pub mod coturn;
pub mod scenario;
pub mod stun;
pub mod wire;

use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The first server address on the public segment (the relay, coturn's primary address).
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);
/// The second server address on the public segment (coturn's RFC 5780 alternate address).
pub const SERVER_IP2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 101);
/// Prefix of every namespace the lab creates.
const PREFIX: &str = "natlab-";
/// Bound on every command the lab runs to build or remove itself.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// How a home's router treats traffic between its LAN and the public segment (RFC 4787 terms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatKind {
    /// No NAT and no firewall: the home's hosts have public addresses on the public segment
    /// (the router only bridges).
    Open,
    /// Port-restricted cone: endpoint-independent mapping (the source port is kept when free),
    /// address-and-port-dependent filtering (nft `masquerade`).
    Cone,
    /// Full cone: endpoint-independent mapping and filtering. As `Cone`, plus every unsolicited
    /// inbound UDP datagram is forwarded to the home's first host on the same port (a DMZ host),
    /// so a mapping accepts datagrams from anyone.
    FullCone,
    /// Symmetric: address-and-port-dependent mapping (a random port per destination, nft
    /// `masquerade fully-random`), address-and-port-dependent filtering.
    Symmetric,
    /// A network that drops all UDP to the outside (TCP passes, through a `Cone` NAT).
    UdpBlocked,
}

impl NatKind {
    /// A short lowercase name for messages and namespace names.
    pub fn name(self) -> &'static str {
        match self {
            NatKind::Open => "open",
            NatKind::Cone => "cone",
            NatKind::FullCone => "fullcone",
            NatKind::Symmetric => "symmetric",
            NatKind::UdpBlocked => "udpblocked",
        }
    }
}

/// How to build a home beyond its kind.
#[derive(Clone, Copy, Debug)]
pub struct HomeOptions {
    /// Host namespaces behind the router (at least 1).
    pub hosts: usize,
    /// One-way delay added each way between the home and the public segment (a [`wire::Wire`]),
    /// so two homes with 20 ms each see 80 ms round trips between them.
    pub delay: Option<Duration>,
}

impl Default for HomeOptions {
    fn default() -> Self {
        HomeOptions {
            hosts: 1,
            delay: None,
        }
    }
}

/// A machine in a home: a namespace with one interface (`eth0`).
#[derive(Clone, Debug)]
pub struct Host {
    /// Its network namespace (for `ip netns exec`, [`Lab::command`], [`in_netns`]).
    pub netns: String,
    /// Its address: private (10.0.i.x) behind a NAT, public (198.51.100.x) in an `Open` home.
    pub ip: Ipv4Addr,
}

/// A home network: a router and its hosts.
#[derive(Clone, Debug)]
pub struct Home {
    /// 1-based, in the order homes were added; the LAN is 10.0.`index`.0/24.
    pub index: usize,
    /// How the router treats traffic.
    pub kind: NatKind,
    /// The router's namespace.
    pub router: String,
    /// The router's public address (what the home's hosts are seen as behind a NAT); `None` for
    /// `Open`, whose router only bridges.
    pub wan: Option<Ipv4Addr>,
    /// The hosts behind the router, in order.
    pub hosts: Vec<Host>,
}

impl Home {
    /// The first host.
    pub fn host(&self) -> &Host {
        &self.hosts[0]
    }

    /// The address the outside sees this home's first host as: the router's WAN address, or
    /// the host's own in an `Open` home.
    pub fn public_ip(&self) -> Ipv4Addr {
        self.wan.unwrap_or(self.hosts[0].ip)
    }
}

/// A lab: the public segment and the homes added to it. Removed on drop.
pub struct Lab {
    base: String,
    public: String,
    homes: Vec<Home>,
    /// Every namespace created, for removal.
    namespaces: Vec<String>,
    /// Last host byte handed out on 198.51.100.0/24 (routers' WAN and `Open` hosts).
    last_public: u8,
    /// The delayed WAN links, stopped before the namespaces are deleted.
    wires: Vec<wire::Wire>,
}

/// Labs created by this process so far (part of the namespace names).
static LABS: AtomicUsize = AtomicUsize::new(0);

impl Lab {
    /// The public segment alone; `None` (after a printed note) when this machine can't build
    /// labs and `CI` is not set. `tag` names the test in the namespaces (a few letters).
    pub fn new(tag: &str) -> Option<Lab> {
        if !available() {
            return None;
        }
        remove_stale();
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        let base = format!("{PREFIX}{}-{n}-{tag}", std::process::id());
        let mut lab = Lab {
            public: format!("{base}-pub"),
            base,
            homes: Vec::new(),
            namespaces: Vec::new(),
            last_public: 0,
            wires: Vec::new(),
        };
        let public = lab.public.clone();
        lab.add_netns(&public);
        lab.ip(&["-n", &public, "link", "add", "br0", "type", "bridge"]);
        for server in [SERVER_IP, SERVER_IP2] {
            let addr = format!("{server}/24");
            lab.ip(&["-n", &public, "addr", "add", &addr, "dev", "br0"]);
        }
        lab.ip(&["-n", &public, "link", "set", "br0", "up"]);
        Some(lab)
    }

    /// The public segment's namespace (where servers run, on [`SERVER_IP`] and [`SERVER_IP2`]).
    pub fn public(&self) -> &str {
        &self.public
    }

    /// The homes added so far.
    pub fn homes(&self) -> &[Home] {
        &self.homes
    }

    /// Adds a home of `kind` with `hosts` hosts and no delay.
    pub fn add_home(&mut self, kind: NatKind, hosts: usize) -> Home {
        self.add_home_with(
            kind,
            HomeOptions {
                hosts,
                ..HomeOptions::default()
            },
        )
    }

    /// Adds a home: its router wired to the public segment, its hosts to the router's LAN, the
    /// router's rules for `kind`, and the delay.
    pub fn add_home_with(&mut self, kind: NatKind, options: HomeOptions) -> Home {
        assert!(options.hosts >= 1, "a home has at least one host");
        let index = self.homes.len() + 1;
        assert!(index <= 60, "the lab numbers at most 60 homes");
        let router = format!("{}-r{index}", self.base);
        self.add_netns(&router);
        // The router's WAN link (`wan`), its other end `h<index>` a port of the public bridge: a
        // veth pair, or a delayed wire.
        let port = format!("h{index}");
        match options.delay {
            None => self.ip(&[
                "-n",
                &router,
                "link",
                "add",
                "wan",
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                &self.public,
            ]),
            Some(delay) => {
                let wire = wire::Wire::new(&router, "wan", &self.public, &port, delay);
                self.wires.push(wire);
            }
        }
        self.ip(&["-n", &self.public, "link", "set", &port, "master", "br0"]);
        self.ip(&["-n", &self.public, "link", "set", &port, "up"]);
        // The LAN: a bridge in the router (addressed behind a NAT; with the WAN as a port when
        // Open, so the hosts sit on the public segment).
        self.ip(&["-n", &router, "link", "add", "lan", "type", "bridge"]);
        let wan = if kind == NatKind::Open {
            self.ip(&["-n", &router, "link", "set", "wan", "master", "lan"]);
            None
        } else {
            let wan = self.next_public();
            self.ip(&[
                "-n",
                &router,
                "addr",
                "add",
                &format!("{wan}/24"),
                "dev",
                "wan",
            ]);
            let gateway = format!("10.0.{index}.1/24");
            self.ip(&["-n", &router, "addr", "add", &gateway, "dev", "lan"]);
            Some(wan)
        };
        self.ip(&["-n", &router, "link", "set", "wan", "up"]);
        self.ip(&["-n", &router, "link", "set", "lan", "up"]);
        let hosts = (0..options.hosts)
            .map(|j| self.add_host(&router, index, j, kind))
            .collect();
        let home = Home {
            index,
            kind,
            router,
            wan,
            hosts,
        };
        if kind != NatKind::Open {
            self.sysctl(&home.router, "net.ipv4.ip_forward=1");
            self.nft(&home.router, &ruleset(&home));
            self.flush_conntrack(&home);
        }
        self.homes.push(home.clone());
        home
    }

    /// Host `j` of home `index`: a namespace with `eth0`, its peer `l<j>` a port of the
    /// router's LAN bridge.
    fn add_host(&mut self, router: &str, index: usize, j: usize, kind: NatKind) -> Host {
        let netns = format!("{}-h{index}x{j}", self.base);
        self.add_netns(&netns);
        let port = format!("l{j}");
        self.ip(&[
            "-n", router, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
            &netns,
        ]);
        self.ip(&["-n", router, "link", "set", &port, "master", "lan"]);
        self.ip(&["-n", router, "link", "set", &port, "up"]);
        let ip = if kind == NatKind::Open {
            self.next_public()
        } else {
            Ipv4Addr::new(10, 0, index as u8, 10 + j as u8)
        };
        self.ip(&[
            "-n",
            &netns,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            "eth0",
        ]);
        self.ip(&["-n", &netns, "link", "set", "eth0", "up"]);
        if kind != NatKind::Open {
            let gateway = format!("10.0.{index}.1");
            self.ip(&["-n", &netns, "route", "add", "default", "via", &gateway]);
        }
        Host { netns, ip }
    }

    /// Empties the router's conntrack table: existing mappings survive rule changes (NAT.md
    /// pitfall), so call this between measurements that must start from fresh mappings.
    pub fn flush_conntrack(&self, home: &Home) {
        // conntrack exits 1 when the table is already empty; only a missing tool is an error.
        let out = run_bounded(
            Command::new("ip").args(["netns", "exec", &home.router, "conntrack", "-F"]),
            COMMAND_TIMEOUT,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() || stderr.contains("emptied") || stderr.trim().is_empty(),
            "conntrack -F in {} failed (install conntrack): {stderr}",
            home.router
        );
    }

    /// `ip netns exec NETNS PROGRAM`, to add arguments to and spawn (the program's own pid is
    /// the child's: `ip` execs it).
    pub fn command(&self, netns: &str, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", netns, program]);
        cmd
    }

    /// Runs `args` in `netns` to completion, killed after `timeout`; its output.
    pub fn exec(&self, netns: &str, args: &[&str], timeout: Duration) -> Output {
        let mut cmd = self.command(netns, args[0]);
        cmd.args(&args[1..]);
        run_bounded(&mut cmd, timeout)
    }

    /// A UDP socket bound to `0.0.0.0:port` (0: any) inside `netns`; usable from any thread.
    pub fn udp_socket(&self, netns: &str, port: u16) -> UdpSocket {
        let what = format!("bind UDP port {port} in {netns}");
        in_netns(netns, move || UdpSocket::bind(("0.0.0.0", port))).expect(&what)
    }

    /// A TCP connection from inside `netns` to `to`, within `timeout`.
    pub fn tcp_connect(
        &self,
        netns: &str,
        to: SocketAddr,
        timeout: Duration,
    ) -> std::io::Result<TcpStream> {
        in_netns(netns, move || TcpStream::connect_timeout(&to, timeout))
    }

    fn next_public(&mut self) -> Ipv4Addr {
        self.last_public += 1;
        assert!(self.last_public < 100, "public addresses used up");
        Ipv4Addr::new(198, 51, 100, self.last_public)
    }

    fn add_netns(&mut self, name: &str) {
        delete_netns(name); // a stale one from an earlier process with our pid
        self.ip(&["netns", "add", name]);
        self.namespaces.push(name.to_string());
        self.ip(&["-n", name, "link", "set", "lo", "up"]);
        // IPv4 only: no IPv6 link-local addresses, router solicitations or DAD in the lab.
        self.sysctl(name, "net.ipv6.conf.all.disable_ipv6=1");
        self.sysctl(name, "net.ipv6.conf.default.disable_ipv6=1");
    }

    fn ip(&self, args: &[&str]) {
        checked(Command::new("ip").args(args));
    }

    fn sysctl(&self, netns: &str, setting: &str) {
        checked(Command::new("ip").args(["netns", "exec", netns, "sysctl", "-qw", setting]));
    }

    /// Loads `ruleset` with `nft -f` in `netns` (from a file, so that the run is bounded by
    /// [`COMMAND_TIMEOUT`] like every other command).
    fn nft(&self, netns: &str, ruleset: &str) {
        let file = tempfile::NamedTempFile::new().expect("a temp file for the ruleset");
        std::fs::write(file.path(), ruleset).expect("write the ruleset");
        let path = file.path().to_str().expect("a UTF-8 temp path");
        let out = run_bounded(
            Command::new("ip").args(["netns", "exec", netns, "nft", "-f", path]),
            COMMAND_TIMEOUT,
        );
        assert!(
            out.status.success(),
            "nft in {netns} failed: {}\n{ruleset}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // A TAP device's open file holds its namespace alive: close them first.
        self.wires.clear();
        for netns in self.namespaces.iter().rev() {
            delete_netns(netns);
        }
    }
}

/// The router's nftables ruleset for its kind (NAT.md §3.1; Firezone's `router.nft` does the
/// same): WAN input only for existing flows, forwarding from the WAN only for existing flows or
/// DNAT, masquerade on the WAN.
fn ruleset(home: &Home) -> String {
    let masquerade = match home.kind {
        NatKind::Symmetric => "masquerade fully-random",
        _ => "masquerade",
    };
    let udp_out = match home.kind {
        NatKind::UdpBlocked => "oifname \"wan\" meta l4proto udp drop",
        _ => "",
    };
    let dmz = match home.kind {
        NatKind::FullCone => format!(
            "iifname \"wan\" meta l4proto udp dnat to {}",
            home.host().ip
        ),
        _ => String::new(),
    };
    format!(
        "table ip natlab {{
  chain input {{ type filter hook input priority filter; policy accept;
    iifname \"wan\" ct state established,related accept
    iifname \"wan\" drop
  }}
  chain forward {{ type filter hook forward priority filter; policy accept;
    {udp_out}
    iifname \"wan\" ct state established,related accept
    iifname \"wan\" ct status dnat accept
    iifname \"wan\" drop
  }}
  chain prerouting {{ type nat hook prerouting priority dstnat; policy accept;
    {dmz}
  }}
  chain postrouting {{ type nat hook postrouting priority srcnat; policy accept;
    oifname \"wan\" {masquerade}
  }}
}}
"
    )
}

/// Runs `f` on a new thread inside network namespace `netns` (setns(2) on that thread only) and
/// returns its result. Sockets created there stay in that namespace when used elsewhere.
pub fn in_netns<T: Send + 'static>(netns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{netns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: setns(2) with a valid fd of a network namespace file moves only this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Whether this machine can build labs: root, `ip netns` and `nft`. When it can't, the test
/// fails if `CI` is set (CI must run it) and otherwise this prints a note and says no.
pub fn available() -> bool {
    let missing = if unsafe { libc::geteuid() } != 0 {
        Some("root (network namespaces)".to_string())
    } else {
        ["ip", "nft", "conntrack"]
            .into_iter()
            .find(|tool| !tool_runs(tool))
            .map(|tool| format!("`{tool}` (apt-get install iproute2 nftables conntrack)"))
    };
    require(missing)
}

/// Whether `program` can be run (it is on `PATH`); when not, as [`available`]: fails under
/// `CI`, else a note and `false`.
pub fn tool_available(program: &str) -> bool {
    let missing = (!tool_runs(program)).then(|| format!("`{program}`"));
    require(missing)
}

fn require(missing: Option<String>) -> bool {
    let Some(what) = missing else { return true };
    let note = format!("the NAT lab needs {what}; .ci/run installs it and CI runs as root");
    if std::env::var_os("CI").is_some() {
        panic!("{note} (CI is set, so this test must run)");
    }
    eprintln!("note: skipping: {note}");
    false
}

fn tool_runs(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Deletes namespaces of this prefix whose creating process is gone (a killed test run).
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            delete_netns(name);
        }
    }
}

/// Kills what runs inside `netns` (processes a lab test started there) and deletes it.
fn delete_netns(netns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", netns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).lines() {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                // SAFETY: kill(2) on a pid listed in our own namespace; no memory involved.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    let _ = Command::new("ip")
        .args(["netns", "del", netns])
        .stderr(Stdio::null())
        .status();
}

/// Runs `cmd`, panicking with its stderr when it fails or outlives [`COMMAND_TIMEOUT`].
fn checked(cmd: &mut Command) {
    let what = format!("{cmd:?}");
    let out = run_bounded(cmd, COMMAND_TIMEOUT);
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `cmd` to completion with its output captured, killing it after `timeout`.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let deadline = std::time::Instant::now() + timeout;
    // Pipes are read by threads so that a chatty child never blocks on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut buf);
        buf
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut buf);
        buf
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            // The caller's assertion on the status quotes the stderr; this says why it failed.
            eprintln!("{what} did not finish within {timeout:?}: killed");
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out_thread.join().unwrap(),
        stderr: err_thread.join().unwrap(),
    }
}
