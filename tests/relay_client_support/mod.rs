//! Shared by tests/relay_client.rs, tests/e2e_relay.rs and tests/relay_client_interop.rs:
//! `dat-social relay` as a real process on fixed loopback ports, so that a test can kill it
//! and start it again on the same ports.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `dat-social relay` on 127.0.0.1, killed (SIGKILL) on drop.
pub struct Relay {
    child: Child,
    pub ws_port: u16,
    pub tcp_port: u16,
}

impl Relay {
    /// Starts the relay on free ports and waits for its `listening` event.
    pub fn start() -> Relay {
        Relay::start_on(free_port(), free_port())
    }

    /// Starts the relay on these ports, retrying for up to 10 s while they are still taken
    /// (e.g. right after a kill).
    pub fn start_on(ws_port: u16, tcp_port: u16) -> Relay {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut child = Command::new(env!("CARGO_BIN_EXE_dat-social"))
                .args(["relay", "--json", "--host", "127.0.0.1"])
                .args(["--port", &ws_port.to_string()])
                .args(["--tcp-port", &tcp_port.to_string()])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn dat-social relay");
            let mut line = String::new();
            let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if v["event"] == "listening" {
                return Relay {
                    child,
                    ws_port,
                    tcp_port,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(
                Instant::now() < deadline,
                "the relay did not start on ports {ws_port}/{tcp_port}: {line:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `ws://127.0.0.1:PORT`
    pub fn ws(&self) -> String {
        format!("ws://127.0.0.1:{}", self.ws_port)
    }

    /// `tcp://127.0.0.1:PORT`
    pub fn tcp(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.tcp_port)
    }

    /// Kills the process (SIGKILL: no goodbye to its clients) and waits for it.
    pub fn kill(mut self) -> (u16, u16) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.ws_port, self.tcp_port)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
