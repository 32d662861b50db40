//! `dat-social relay --cert FILE --key FILE` serves `wss://` (rustls on aws-lc-rs): the real npm
//! client `@hyperswarm/dht-relay` 0.4.3 (tests/js/relay-pair.js over the `ws` package) trusts a
//! self-signed certificate made here (rcgen, via `NODE_EXTRA_CA_CERTS`, so the certificate is
//! really verified) and two JS nodes reach each other through the relay, custodial and
//! non-custodial. A plain `ws://` client on the TLS port gets nowhere and the relay goes on;
//! unusable certificate files stop the relay at start with an error.
//! Our own client ([`RelayClient`]) over `wss://`: with a private CA passed in
//! [`ClientOptions::extra_roots`] (or through `SSL_CERT_FILE`) a listener and a connecting client
//! reach each other through the relay; without that CA, or with a certificate for another host
//! name, the TLS handshake fails with a clear [`RelayClientError::Connect`] reason.
//! Needs node and `npm ci --prefix tests/js`; fails (never skips) without them.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use dat_social::keys::IdentityKey;
use dat_social::net::{FrameReader, FrameWriter};
use dat_social::relay::client::{
    load_pem_certificates, ClientOptions, RelayClient, RelayClientError, RelayState, RelayUrl,
};
use ed25519_dalek::SigningKey;
use support::relay::{check_js_pair, Relay};

/// A self-signed certificate for `localhost` and 127.0.0.1, written as PEM files in `dir`.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("generate a certificate");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

fn start_tls(cert: &Path, key: &Path) -> Relay {
    let relay = Relay::start_with(&[
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    assert!(relay.ws().starts_with("wss://127.0.0.1:"), "{}", relay.ws());
    relay
}

#[test]
fn js_pairs_over_wss_with_a_verified_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let mut relay = start_tls(&cert, &key);
    let ca = cert.to_str().unwrap();
    let env = [("NODE_EXTRA_CA_CERTS", ca)];
    check_js_pair("ws", &relay.ws(), true, &env);
    check_js_pair("ws", &relay.ws(), false, &env);
    // The TCP transport is unchanged next to TLS WebSocket.
    check_js_pair("tcp", &relay.tcp_addr(), false, &[]);
    assert!(relay.is_running());
}

#[test]
fn plain_websocket_on_the_tls_port_fails_and_the_relay_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let mut relay = start_tls(&cert, &key);
    let plain = relay.ws().replacen("wss://", "ws://", 1);
    let rt = support::sys::current_thread_runtime();
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
    check_js_pair("ws", &relay.ws(), false, &env);
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
            .args([
                "relay",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--turn-port",
                "0",
                "--cert",
            ])
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

/// The library's errors for the same files keep rustls's error as their source, and an empty
/// certificate file is its own error.
#[test]
fn unusable_pem_is_a_tls_error_with_its_cause() {
    use dat_social::relay::server::{RelayError, TlsConfig};
    use std::error::Error;
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = self_signed(dir.path());
    let other = tempfile::tempdir().unwrap();
    let (_, other_key) = self_signed(other.path());
    let cert = std::fs::read(cert).unwrap();
    let err = TlsConfig::from_pem(&cert, &std::fs::read(other_key).unwrap())
        .expect_err("a mismatched key is refused");
    let RelayError::Tls { what, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*what, "certificate and key");
    let source = err.source().expect("a source");
    assert!(
        source
            .downcast_ref::<tokio_rustls::rustls::Error>()
            .is_some(),
        "{source:?}"
    );
    assert!(
        err.to_string()
            .starts_with("relay: TLS: certificate and key: "),
        "{err}"
    );
    let err = TlsConfig::from_pem(b"no pem here", b"").expect_err("refused");
    assert!(matches!(err, RelayError::NoCertificate), "{err:?}");
}

/// PEM files of a private CA and a server certificate it signed for `names`: (CA certificate,
/// server chain = server certificate then CA, server key).
fn ca_signed(dir: &Path, names: &[&str]) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // A name of its own: two test CAs with one name would look like one CA with a bad signature.
    let ca_name = format!("dat-social test CA {}", dir.display());
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names.clone()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, &names[0]);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let (ca_file, chain, key_file) = (
        dir.join("ca.pem"),
        dir.join("chain.pem"),
        dir.join("server-key.pem"),
    );
    std::fs::write(&ca_file, ca.pem()).unwrap();
    std::fs::write(&chain, format!("{}{}", cert.pem(), ca.pem())).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    (ca_file, chain, key_file)
}

const WAIT: Duration = Duration::from_secs(20);

fn trusting(ca: &Path) -> ClientOptions {
    ClientOptions {
        extra_roots: load_pem_certificates(ca).expect("load the CA"),
        ..ClientOptions::default()
    }
}

/// A listening client and a connecting one, both over `url` with `options`, reach each other
/// through the relay and exchange a message each way.
async fn pair_over(url: &str, options: &ClientOptions) {
    let url: RelayUrl = url.parse().expect("a wss:// URL");
    assert!(matches!(url, RelayUrl::Wss(_)), "{url}");
    let server_key = SigningKey::from_bytes(&[0x61; 32]);
    let server_pk = IdentityKey::from_bytes(server_key.verifying_key().to_bytes());
    let server = RelayClient::start(url.clone(), server_key, options.clone());
    let mut listener = server.listen().await.unwrap();
    server.wait_connected(WAIT).await.unwrap();
    let client = RelayClient::start(
        url.clone(),
        SigningKey::from_bytes(&[0x62; 32]),
        options.clone(),
    );
    client.wait_connected(WAIT).await.unwrap();

    let stream = tokio::time::timeout(WAIT, client.connect(server_pk))
        .await
        .expect("connect in time")
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    assert_eq!(stream.remote_public_key(), server_pk);
    let accepted = tokio::time::timeout(WAIT, listener.accept())
        .await
        .expect("accept in time")
        .expect("a stream");
    assert_eq!(accepted.handshake_hash(), stream.handshake_hash());
    let (mut cr, mut cw) = stream.split();
    let (mut sr, mut sw) = accepted.split();
    cw.write_frames(&[b"over wss".to_vec()]).await.unwrap();
    let mut frames = Vec::new();
    assert!(tokio::time::timeout(WAIT, sr.read_frames(&mut frames))
        .await
        .unwrap()
        .unwrap());
    assert_eq!(frames.concat(), b"over wss");
    sw.write_frames(&[b"and back".to_vec()]).await.unwrap();
    frames.clear();
    assert!(tokio::time::timeout(WAIT, cr.read_frames(&mut frames))
        .await
        .unwrap()
        .unwrap());
    assert_eq!(frames.concat(), b"and back");
}

/// The reason of the first failed attempt of a client of `url` with `options` (it must not
/// connect).
async fn first_failure(url: &str, options: ClientOptions) -> String {
    let client = RelayClient::start(
        url.parse().unwrap(),
        SigningKey::from_bytes(&[0x63; 32]),
        options,
    );
    let mut state = client.state();
    let failed = tokio::time::timeout(
        WAIT,
        state.wait_for(|s| matches!(s, RelayState::Reconnecting { .. } | RelayState::Connected)),
    )
    .await
    .expect("a state change in time")
    .unwrap()
    .clone();
    let RelayState::Reconnecting { error, .. } = failed else {
        panic!("{url}: the client connected, it must not");
    };
    // wait_connected reports the same reason.
    match client.wait_connected(Duration::from_millis(300)).await {
        Err(RelayClientError::NotConnected(why)) => {
            assert!(why.contains("TLS handshake failed"), "{why}")
        }
        other => panic!("{url}: {other:?}"),
    }
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_pairs_over_wss_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, chain, key) = ca_signed(dir.path(), &["localhost", "127.0.0.1"]);
    let relay = start_tls(&chain, &key);
    let options = trusting(&ca);
    // The certificate is verified for an IP address and for a DNS name.
    pair_over(&relay.ws(), &options).await;
    let by_name = relay.ws().replacen("127.0.0.1", "localhost", 1);
    pair_over(&by_name, &options).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_trust_the_ca_gets_a_clear_connect_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_, chain, key) = ca_signed(dir.path(), &["localhost", "127.0.0.1"]);
    let relay = start_tls(&chain, &key);
    let error = first_failure(&relay.ws(), ClientOptions::default()).await;
    assert!(
        error.starts_with(&format!("cannot reach the relay {}", relay.ws())),
        "{error}"
    );
    assert!(error.contains("TLS handshake failed"), "{error}");
    assert!(error.contains("UnknownIssuer"), "{error}");
    // A different CA does not help either.
    let other = tempfile::tempdir().unwrap();
    let (other_ca, _, _) = ca_signed(other.path(), &["localhost"]);
    let error = first_failure(&relay.ws(), trusting(&other_ca)).await;
    assert!(error.contains("UnknownIssuer"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_host_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, chain, key) = ca_signed(dir.path(), &["relay.invalid"]);
    let relay = start_tls(&chain, &key);
    let error = first_failure(&relay.ws(), trusting(&ca)).await;
    assert!(error.contains("TLS handshake failed"), "{error}");
    assert!(error.contains("not valid for name"), "{error}");
}

/// `SSL_CERT_FILE` replaces the system's CA store (rustls-native-certs), so a CA named there is
/// trusted without `extra_roots`. Sets the variable for this process only: nextest runs each
/// test in its own process.
#[test]
fn our_client_trusts_a_ca_named_by_ssl_cert_file() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, chain, key) = ca_signed(dir.path(), &["127.0.0.1"]);
    let relay = start_tls(&chain, &key);
    std::env::set_var("SSL_CERT_FILE", &ca);
    support::sys::runtime().block_on(pair_over(&relay.ws(), &ClientOptions::default()));
}

#[test]
fn unusable_ca_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "no certificate here").unwrap();
    let missing = dir.path().join("missing.pem");
    for (path, expect) in [(&junk, "no CERTIFICATE"), (&missing, "cannot read")] {
        match load_pem_certificates(path) {
            Err(e @ RelayClientError::BadCertificates { .. }) => {
                assert!(e.to_string().contains(expect), "{e}")
            }
            other => panic!("{path:?}: {other:?}"),
        }
    }
    let (ca, chain, _) = ca_signed(dir.path(), &["localhost"]);
    assert_eq!(load_pem_certificates(&ca).unwrap().len(), 1);
    assert_eq!(load_pem_certificates(&chain).unwrap().len(), 2);
}
