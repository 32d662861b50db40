//! The JS reference side of the interop tests and benches: `tests/js` (scripts and the pinned npm
//! packages of `tests/js/package-lock.json`), checked once per process. Standalone (no `super`),
//! so that a bench can take it alone with `#[path = "../tests/support/js.rs"] mod js;`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// Every npm module a test or bench script loads.
const MODULES: &[&str] = &[
    "hypercore",
    "@hyperswarm/secret-stream",
    "protomux",
    "@hyperswarm/dht-relay",
    "ws",
    "hyperdht/testnet",
    "hyperdht/lib/messages.js",
    "dht-rpc",
    "udx-native",
];

/// `tests/js`, after checking (once) that node runs and resolves every pinned package there.
/// Fails (never skips) with what to run otherwise.
pub fn js_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| check_node(&dir));
    dir
}

/// Panics unless `node -e "require.resolve(…)"` finds every one of [`MODULES`] from `dir`.
fn check_node(dir: &Path) {
    let script: String = MODULES
        .iter()
        .map(|m| format!("require.resolve('{m}');"))
        .collect();
    match Command::new("node")
        .current_dir(dir)
        .args(["-e", &script])
        .output()
    {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "the npm packages are missing ({}): run `npm ci --prefix tests/js`",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .next()
                .unwrap_or("")
        ),
        Err(e) => panic!(
            "node (Node.js 20+) is not installed ({e}); install it, then run \
             `npm ci --prefix tests/js`"
        ),
    }
}

/// Runs `node tests/js/<script> args…` with extra environment `env` (killed after `timeout`)
/// and returns its last stdout line as JSON. Panics with its stderr if it fails.
pub fn run_js(
    script: &str,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> serde_json::Value {
    let dir = js_dir();
    let mut child = Command::new("node")
        .current_dir(&dir)
        .arg(script)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let deadline = std::time::Instant::now() + timeout;
    let mut timed_out = false;
    while child.try_wait().expect("try_wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            timed_out = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("node output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let how = if timed_out {
        format!("did not finish within {timeout:?}: killed")
    } else {
        format!("failed ({})", out.status)
    };
    assert!(
        !timed_out && out.status.success(),
        "node {script} {how}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().expect("a JSON line");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{script} printed {line:?}: {e}"))
}
