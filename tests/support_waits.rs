//! The test helpers' own bounds (tests/support): a wait for a process's event that runs out, or
//! a relay that does not start, fails the test at once with a message naming the process and
//! quoting its stderr so far, instead of hanging the run.

mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::time::{Duration, Instant};

use support::{Proc, WAIT};

/// The text of the panic `f` raises.
fn panic_message(f: impl FnOnce()) -> String {
    let err = catch_unwind(AssertUnwindSafe(f)).expect_err("the helper did not panic");
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn a_wait_that_runs_out_panics_with_the_process_stderr() {
    let script = "echo 'relay: no such flag' >&2; echo '{\"event\":\"other\"}'; sleep 30";
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    let mut proc = Proc::spawn(cmd, &["sh", "-c", script]);
    // Its stderr line is written before this event.
    proc.expect("other");
    let started = Instant::now();
    let message = panic_message(|| {
        proc.expect_where(Duration::from_millis(500), "listening", |e| {
            e["event"] == "listening"
        });
    });
    assert!(started.elapsed() < WAIT, "{:?}", started.elapsed());
    assert!(message.contains("no listening within"), "{message}");
    assert!(message.contains("relay: no such flag"), "{message}");
}

#[test]
fn a_relay_that_does_not_start_fails_with_its_stderr() {
    let message = panic_message(|| {
        support::relay::Relay::start_with(&["--no-such-flag"]);
    });
    assert!(message.contains("the relay printed"), "{message}");
    assert!(message.contains("--no-such-flag"), "{message}");
}
