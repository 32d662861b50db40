//! Friends who publish hostile archives: a profile with 100,000 friends, a 10 MB name, an
//! archive of 70 MiB. A peer
//! built with the library serves such a signed archive over loopback; the real `dat-social`
//! binary follows it. The user gets a clear error for that friend, the others still show, and
//! nothing hangs or crashes.

mod support;

use std::time::Duration;

use dat_social::archive::{Entry, PROFILE};
use dat_social::hypercore::Core;
use dat_social::identity::Identity;
use dat_social::net::{Connection, SharedCore};
use serde_json::Value;
use support::User;

/// A signed archive of `identity` whose profile.json is `profile_json` (unchecked).
fn hostile_archive(identity: &Identity, profile_json: String) -> SharedCore {
    let mut core = Core::in_memory(identity.signing_key().clone());
    let put = Entry::Put {
        path: PROFILE.to_string(),
        value: profile_json,
    };
    core.append(&[&Entry::header().encode(), &put.encode()])
        .unwrap();
    SharedCore::new(core)
}

/// Serves `archive` to everyone who connects on a loopback port, until the runtime ends.
async fn serve(identity: Identity, archive: SharedCore) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        for _ in 0..32 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (key, archive) = (identity.signing_key().clone(), archive.clone());
            tokio::spawn(async move {
                let Ok(conn) = Connection::connect(tcp, &key, false).await else {
                    return;
                };
                let _ = conn.replicate(archive).await;
                let _ = tokio::time::timeout(Duration::from_secs(30), conn.closed()).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_profiles_are_refused_with_a_clear_error() {
    let many = Identity::generate();
    let friends: Vec<String> = (0..100_000u32)
        .map(|i| format!("dat://{:064x}", i))
        .collect();
    let many_json =
        serde_json::json!({"name": "many", "created": 1, "friends": friends}).to_string();
    let huge = Identity::generate();
    let huge_json =
        serde_json::json!({"name": "x".repeat(10 << 20), "created": 1, "friends": []}).to_string();
    // An archive of 70 MiB, over the 64 MiB a replica may hold: 70 blocks of 1 MiB after a
    // valid profile.
    let big = Identity::generate();
    let big_archive = hostile_archive(&big, r#"{"name":"big","created":1,"friends":[]}"#.into());
    let filler = vec![b' '; 1 << 20];
    let blocks: Vec<&[u8]> = (0..70).map(|_| &filler[..]).collect();
    big_archive.append_batch(&blocks).unwrap();
    let big_port = serve(big.clone(), big_archive).await;
    let many_port = serve(many.clone(), hostile_archive(&many, many_json)).await;
    let huge_port = serve(huge.clone(), hostile_archive(&huge, huge_json)).await;

    let alice = User::new("alice");
    let bob = User::new("bob");
    let (_host, hosting) = support::host(&bob, &[]);
    let bob_invite = hosting["invite"].as_str().unwrap().to_string();
    let outcome = tokio::task::spawn_blocking(move || {
        for url in [
            format!("{}?peer=127.0.0.1:{many_port}", many.url().base()),
            format!("{}?peer=127.0.0.1:{huge_port}", huge.url().base()),
            format!("{}?peer=127.0.0.1:{big_port}", big.url().base()),
            bob_invite,
        ] {
            let out = alice.run(&["friends", "add", &url]);
            assert!(out.status.success(), "{}", out.stderr);
        }
        let out = alice.run(&["friends", "list", "--look-timeout", "20"]);
        (
            out.status.success(),
            out.events(),
            out.stderr.clone(),
            many,
            huge,
            big,
        )
    })
    .await
    .unwrap();
    let (ok, events, stderr, many, huge, big) = outcome;
    assert!(ok, "{stderr}");
    let entry = |key: String| -> Value {
        events
            .iter()
            .find(|e| e["url"] == key)
            .cloned()
            .unwrap_or_else(|| panic!("{key} not listed: {events:?}"))
    };
    for hostile in [many.url().base(), huge.url().base()] {
        let e = entry(hostile);
        assert_eq!(e["name"], Value::Null, "{e}");
        let error = e["error"].as_str().unwrap_or_default();
        assert!(error.contains("larger than the limit"), "{e}");
    }
    let e = entry(big.url().base());
    let error = e["error"].as_str().unwrap_or_default();
    assert!(error.contains("over the limit of 67108864"), "{e}");
    // The honest friend still shows.
    let bob = events
        .iter()
        .find(|e| e["name"] == "bob")
        .expect("bob listed");
    assert_eq!(bob["online"], true, "{bob}");
}
