//! Two network namespaces joined by a veth pair, for tests of what happens on a LAN (multicast
//! DNS): real multicast between separate network stacks on this machine, nothing sent outside.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `ip ARGS`, panicking with its stderr if it fails (these tests need root).
pub fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("iproute2's `ip` is needed for this test (apt-get install iproute2)");
    assert!(
        out.status.success(),
        "`ip {}` failed (these tests need root to create network namespaces): {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits (at most 10 s) until `dev` in namespace `ns` is operationally up.
fn wait_oper_up(ns: &str, dev: &str) {
    let path = format!("/sys/class/net/{dev}/operstate");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "cat", &path])
            .output()
            .expect("ip netns exec cat");
        let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if state == "up" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{dev} in {ns} is not up after 10 s (operstate {state:?})"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Two network namespaces joined by a veth pair with multicast on: `a` has `veth0` with
/// 10.77.0.1/24 and fd77::1/64, `b` has `veth1` with 10.77.0.2/24 and fd77::2/64; both have `lo`
/// up. Both namespaces (and so the pair) are deleted on drop, also when a test panics.
pub struct Lan {
    pub a: String,
    pub b: String,
}

impl Lan {
    pub fn new(tag: &str) -> Lan {
        let base = format!("dsm-{tag}-{}", std::process::id());
        let lan = Lan {
            a: format!("{base}-a"),
            b: format!("{base}-b"),
        };
        // Leftovers of an earlier run with the same pid would make `add` fail.
        lan.delete();
        ip(&["netns", "add", &lan.a]);
        ip(&["netns", "add", &lan.b]);
        ip(&[
            "-n", &lan.a, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns",
            &lan.b,
        ]);
        for (ns, dev, v4, v6) in [
            (&lan.a, "veth0", "10.77.0.1/24", "fd77::1/64"),
            (&lan.b, "veth1", "10.77.0.2/24", "fd77::2/64"),
        ] {
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "addr", "add", v4, "dev", dev]);
            ip(&["-n", ns, "addr", "add", v6, "dev", dev, "nodad"]);
            ip(&["-n", ns, "link", "set", dev, "multicast", "on"]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        // The kernel reports a veth as operationally up up to about a second after both ends are
        // set up, and the mDNS daemon only uses interfaces that are (it looks again every 5 s).
        for (ns, dev) in [(&lan.a, "veth0"), (&lan.b, "veth1")] {
            wait_oper_up(ns, dev);
        }
        lan
    }

    fn delete(&self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        self.delete();
    }
}
