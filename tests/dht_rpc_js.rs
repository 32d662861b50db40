//! Our dht-rpc node (`dat_social::dht::DhtNode`) among JS dht-rpc 6.27.0 nodes on loopback
//! (`tests/js/dht_rpc_peer.js`):
//!
//! - JS nodes bootstrap from ours alone: they find each other through it, their lookups walk
//!   through it, and its id (the hash of its address) is accepted by JS;
//! - ours joins a JS network: pings each node, and a FIND_NODE lookup returns them with ids
//!   verified; a node that is gone times out.
//!
//! Needs node and `npm ci --prefix tests/js`; fails (never skips) without them.

mod support;

use std::net::SocketAddrV4;
use std::time::Duration;

use dat_social::dht::rpc::node_id;
use dat_social::dht::{DhtError, DhtNode};
use serde_json::Value;
use support::js::run_js;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(60);

fn addrs(v: &Value) -> Vec<SocketAddrV4> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().parse().unwrap())
        .collect()
}

/// Our persistent node on loopback, and the report of `dht_rpc_peer.js` run in `mode` with it
/// as the only bootstrap node.
async fn js_through_ours(mode: &'static str) -> (DhtNode, Value) {
    let loopback = Some([127, 0, 0, 1].into());
    let ours = DhtNode::bind("127.0.0.1:0".parse().unwrap(), loopback, &[])
        .await
        .unwrap();
    let at = ours.local_addr().to_string();
    let out = tokio::task::spawn_blocking(move || {
        let env = [("MODE", mode), ("BOOTSTRAP", at.as_str())];
        run_js("dht_rpc_peer.js", &[], &env, WAIT)
    })
    .await
    .unwrap();
    (ours, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_nodes_bootstrap_from_ours_and_find_each_other() {
    let (ours, out) = js_through_ours("join").await;
    assert_eq!(
        out["ourId"],
        hex::encode(ours.id().unwrap()),
        "JS accepted our id: {out}"
    );
    let persistent = addrs(&out["persistent"]);
    // Both persistent JS nodes are in our table (they sent verified ids), and the lookup from
    // an ephemeral one, which knew only us, reached them.
    let table: Vec<SocketAddrV4> = ours.table().await.unwrap().iter().map(|n| n.addr).collect();
    for p in &persistent {
        assert!(table.contains(p), "{p} not in our table {table:?}");
    }
    let found = addrs(&out["found"]);
    for p in persistent.iter().chain([&ours.local_addr()]) {
        assert!(found.contains(p), "the JS lookup missed {p}: {found:?}");
    }
    // Every JS node's table holds us; the persistent ones hold each other too.
    let tables: Vec<u64> = serde_json::from_value(out["tables"].clone()).unwrap();
    assert!(tables.iter().all(|n| *n >= 1), "{out}");
    assert!(tables[..2].iter().all(|n| *n >= 2), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ours_joins_a_js_network_pings_and_looks_up() {
    let support::net::JsPeer {
        child: mut js,
        mut lines,
    } = support::net::JsPeer::spawn_env("dht_rpc_peer.js", &[], &[("MODE", "testnet")]);
    let first = timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let nodes = addrs(&serde_json::from_str::<Value>(&first).unwrap()["nodes"]);
    let ours = DhtNode::bind("127.0.0.1:0".parse().unwrap(), None, &nodes[..1])
        .await
        .unwrap();
    // The first node, bootstrapped from nobody, stays ephemeral (no id), as in hyperdht's
    // testnet; the others answer with the id of their address.
    for (i, n) in nodes.iter().enumerate() {
        let pong = timeout(WAIT, ours.ping(*n)).await.unwrap().unwrap();
        let id = (i > 0).then(|| node_id(n));
        assert_eq!(pong.id, id, "{n}");
        assert_eq!(pong.to.ip(), ours.local_addr().ip());
        assert_eq!(
            pong.to.port(),
            ours.local_addr().port(),
            "it sees us where we are"
        );
        assert_eq!(
            pong.token, None,
            "dht-rpc answers its own commands without a token"
        );
    }
    let replies = timeout(WAIT, ours.find_node([0x42; 32], &nodes[..1]))
        .await
        .unwrap()
        .unwrap();
    let found: Vec<SocketAddrV4> = replies.iter().map(|r| r.node.addr).collect();
    for n in &nodes[1..] {
        assert!(found.contains(n), "the lookup missed {n}: {found:?}");
    }
    // Closest first.
    let d: Vec<[u8; 32]> = replies
        .iter()
        .map(|r| std::array::from_fn(|i| r.node.id[i] ^ 0x42))
        .collect();
    assert!(d.windows(2).all(|w| w[0] <= w[1]));
    // A node that is gone: every retry unanswered.
    drop(js.stdin.take());
    let _ = timeout(WAIT, js.wait()).await;
    match timeout(WAIT, ours.ping(nodes[1])).await.unwrap() {
        Err(DhtError::Timeout(a)) => assert_eq!(a, nodes[1]),
        other => panic!("a stopped node answered: {other:?}"),
    }
}

/// `dat-social dht-node --bootstrapper` as a real process is the bootstrap node of a private
/// JS network: the JS nodes join through it alone and find each other; SIGTERM stops it with
/// `stopped`. Without an address to take its id from, it refuses to start (usage, exit 2).
#[test]
fn the_dht_node_command_bootstraps_a_private_js_network() {
    let user = support::User::new("node");
    let mut node = user.spawn(support::DHT_BOOTSTRAPPER);
    let started = node.expect("dht-node");
    assert_eq!(started["bootstrap"], serde_json::json!([]));
    let address = started["address"].as_str().unwrap().to_string();
    let at: SocketAddrV4 = address.parse().unwrap();
    assert_eq!(started["id"], hex::encode(node_id(&at)));
    let out = run_js(
        "dht_rpc_peer.js",
        &[],
        &[("MODE", "join"), ("BOOTSTRAP", &address)],
        WAIT,
    );
    assert_eq!(out["ourId"], started["id"], "{out}");
    let found = addrs(&out["found"]);
    for p in addrs(&out["persistent"]) {
        assert!(found.contains(&p), "the JS lookup missed {p}: {found:?}");
    }
    node.signal("TERM");
    node.expect("stopped");
    assert!(node.wait_exit(support::WAIT).success());
    let refused = user.run(&["dht-node", "--port", "0", "--bootstrapper"]);
    assert_eq!(refused.code(), 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("--public-ip"), "{}", refused.stderr);
}

/// hyperdht's records on our node: two JS hyperdht nodes whose only persistent peer is ours
/// announce a topic and a server's own key through it, find both (LOOKUP, FIND_PEER), no
/// longer find the topic after unannouncing it, and put and get an immutable and a mutable
/// value through it. Signatures and tokens are JS's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_hyperdht_announces_looks_up_and_stores_values_through_our_node() {
    let (_ours, out) = js_through_ours("hyperdht").await;
    let key = out["announced"].clone();
    assert_eq!(out["lookup"], serde_json::json!([key]), "{out}");
    assert_eq!(out["findPeer"], key, "{out}");
    assert_eq!(out["afterUnannounce"], serde_json::json!([]), "{out}");
    assert_eq!(out["immutable"], "an immutable value", "{out}");
    assert_eq!(
        out["mutable"],
        serde_json::json!({"seq": 2, "value": "mutable, seq 2"}),
        "{out}"
    );
}
