//! What the tests and benches ask of the machine: tokio runtimes, free loopback ports and a
//! process's memory from `/proc`. Standalone (no `super`), so that a bench or the fuzz tests can
//! take it alone with `#[path = "…/support/sys.rs"] mod sys;`.

#![allow(dead_code)]

/// A multi-thread tokio runtime with 2 workers (the machine the tests were tuned on has 2
/// cores), I/O and timers enabled.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A current-thread tokio runtime, I/O and timers enabled.
pub fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`: resident memory now, `VmHWM`: its peak);
/// `None` once the process is gone or without the field.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// As [`status_kib`], failing the test when the field can't be read.
pub fn expect_status_kib(pid: u32, field: &str) -> u64 {
    status_kib(pid, field).unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}
