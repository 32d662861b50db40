//! `dat-social relay --cert FILE --key FILE` serves `wss://` (rustls on aws-lc-rs): the real npm
//! client `@hyperswarm/dht-relay` 0.4.3 (tests/js/relay-pair.js over the `ws` package) trusts a
//! self-signed certificate made here (rcgen, via `NODE_EXTRA_CA_CERTS`, so the certificate is
//! really verified) and two JS nodes reach each other through the relay, custodial and
//! non-custodial. A plain `ws://` client on the TLS port gets nowhere and the relay goes on;
//! unusable certificate files stop the relay at start with an error.
//! Needs node and `npm ci --prefix tests/js`; fails (never skips) without them.

mod relay_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use relay_support::{check_js_pair, RelayProc};

/// A self-signed certificate for `localhost` and 127.0.0.1, written as PEM files in `dir`.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("generate a certificate");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

fn start_tls(cert: &Path, key: &Path) -> RelayProc {
    let relay = RelayProc::start(&[
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    assert!(relay.ws.starts_with("wss://127.0.0.1:"), "{}", relay.ws);
    relay
}

#[test]
fn js_pairs_over_wss_with_a_verified_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let mut relay = start_tls(&cert, &key);
    let ca = cert.to_str().unwrap();
    let env = [("NODE_EXTRA_CA_CERTS", ca)];
    check_js_pair("ws", &relay.ws, true, &env);
    check_js_pair("ws", &relay.ws, false, &env);
    // The TCP transport is unchanged next to TLS WebSocket.
    check_js_pair("tcp", &relay.tcp, false, &[]);
    assert!(relay.is_running());
}

#[test]
fn plain_websocket_on_the_tls_port_fails_and_the_relay_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let mut relay = start_tls(&cert, &key);
    let plain = relay.ws.replacen("wss://", "ws://", 1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = rt.block_on(async {
        tokio::time::timeout(
            std::time::Duration::from_secs(15),
            tokio_tungstenite::connect_async(plain.as_str()),
        )
        .await
    });
    assert!(
        matches!(r, Ok(Err(_))),
        "a plain ws:// upgrade must fail on the TLS port"
    );
    assert!(relay.is_running());
    let env = [("NODE_EXTRA_CA_CERTS", cert.to_str().unwrap())];
    check_js_pair("ws", &relay.ws, false, &env);
}

#[test]
fn unusable_certificate_files_stop_the_relay_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = self_signed(dir.path());
    // A key that is not the certificate's, a file that is not PEM, a missing file.
    let other = tempfile::tempdir().unwrap();
    let (_, other_key) = self_signed(other.path());
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a key").unwrap();
    let missing = dir.path().join("missing.pem");
    for (key, expect) in [
        (&other_key, "certificate and key"),
        (&junk, "reading the key"),
        (&missing, "cannot read"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_dat-social"))
            .args(["relay", "--host", "127.0.0.1", "--port", "0", "--cert"])
            .arg(&cert)
            .arg("--key")
            .arg(key)
            .output()
            .expect("run dat-social relay");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{key:?}: {stderr}");
        assert!(stderr.contains(expect), "{key:?}: {stderr}");
    }
}
