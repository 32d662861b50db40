//! Wire interop of `dat_social::hypercore` with JS hypercore 11.37.1 (compat mode).
//!
//! Needs node and the pinned packages: `npm ci --prefix tests/js`. The tests fail (not skip) when
//! either is missing.
//!
//! - `js_writer_vectors`: `node tests/js/vectors.js writer` builds a compat core from a fixed seed
//!   and answers a script of requests. We rebuild the same core, and check: key, discovery key,
//!   tree hash, signature and roots are identical; our answer to each request is byte-identical
//!   to JS's; our `missing_nodes` gives the `nodes` JS's replica asked for; and our replicas
//!   accept every JS answer and end up with the same blocks.
//! - `js_reader_accepts_our_proofs`: a fresh JS replica applies proofs our writer made for
//!   requests our replica made (block + upgrade, blocks, hashes), and rejects tampered ones.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

use dat_social::hypercore::encoding::CompactEncoding;
use dat_social::hypercore::messages::{Data, Request, RequestBlock, RequestUpgrade};
use dat_social::hypercore::{Core, Error};
use ed25519_dalek::SigningKey;
use serde_json::Value;
use support::js::js_dir;

const SEED: [u8; 32] = [7; 32];

/// Runs `node tests/js/vectors.js <mode>` with `stdin`, returning its JSON output.
fn run_node(mode: &str, stdin: Option<&str>) -> Value {
    let dir = js_dir();
    let mut child = Command::new("node")
        .arg(dir.join("vectors.js"))
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("`node` not found: install Node.js 20+ and run `npm ci --prefix tests/js`");
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "node vectors.js {mode} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("vectors.js printed invalid JSON")
}

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

#[test]
fn js_writer_vectors() {
    let js = run_node("writer", None);
    let blocks: Vec<Vec<u8>> = js["blocks"].as_array().unwrap().iter().map(unhex).collect();

    let mut writer = Core::in_memory(SigningKey::from_bytes(&SEED));
    let mut replicas: HashMap<String, Core> = HashMap::new();
    let mut requests_checked = 0;

    for step in js["steps"].as_array().unwrap() {
        if let Some(n) = step["append"].as_u64() {
            let start = writer.length() as usize;
            let batch: Vec<&[u8]> = blocks[start..start + n as usize]
                .iter()
                .map(|b| &b[..])
                .collect();
            writer.append(&batch).unwrap();
            assert_eq!(writer.length(), step["length"].as_u64().unwrap());
            continue;
        }
        let req = Request::from_bytes(&unhex(&step["request"])).unwrap();
        assert_eq!(
            req.to_bytes(),
            unhex(&step["request"]),
            "request re-encodes identically"
        );
        assert_eq!(writer.length(), step["writerLength"].as_u64().unwrap());
        let name = step["replica"].as_str().unwrap().to_owned();
        let replica = replicas
            .entry(name.clone())
            .or_insert_with(|| Core::in_memory_replica(writer.key()));
        assert_eq!(replica.length(), step["replicaLength"].as_u64().unwrap());

        // Our replica would have asked for the same number of nodes.
        if let Some(b) = &req.block {
            assert_eq!(
                replica.missing_nodes(2 * b.index).unwrap(),
                b.nodes,
                "{step}"
            );
        }
        if let Some(h) = &req.hash {
            assert_eq!(replica.missing_nodes(h.index).unwrap(), h.nodes, "{step}");
        }

        if step.get("error").is_some() {
            assert!(
                matches!(writer.create_proof(&req), Err(Error::InvalidRequest(_))),
                "JS refused {step}, so must we"
            );
            continue;
        }

        // Byte-identical answer.
        let ours = writer.create_proof(&req).unwrap().expect("we can answer");
        assert_eq!(
            hex::encode(ours.to_bytes()),
            step["data"].as_str().unwrap(),
            "answer to request {req:?} differs from JS"
        );

        // JS's answer verifies on our replica.
        let theirs = Data::from_bytes(&unhex(&step["data"])).unwrap();
        let applied = replica.verify_and_apply(&theirs).unwrap();
        assert_eq!(
            replica.length(),
            step["replicaLengthAfter"].as_u64().unwrap()
        );
        if let Some(b) = &theirs.block {
            assert_eq!(applied.block, Some(b.index));
            assert_eq!(
                replica.get(b.index).unwrap().unwrap(),
                blocks[b.index as usize]
            );
        }
        requests_checked += 1;
    }
    assert!(
        requests_checked >= 15,
        "script ran {requests_checked} requests"
    );

    assert_eq!(hex::encode(writer.key()), js["key"].as_str().unwrap());
    assert_eq!(
        hex::encode(writer.discovery_key()),
        js["discoveryKey"].as_str().unwrap()
    );
    assert_eq!(writer.length(), js["length"].as_u64().unwrap());
    assert_eq!(writer.byte_length(), js["byteLength"].as_u64().unwrap());
    assert_eq!(
        hex::encode(writer.tree_hash()),
        js["treeHash"].as_str().unwrap()
    );
    assert_eq!(
        hex::encode(writer.signature().unwrap()),
        js["signature"].as_str().unwrap()
    );
    let roots: Vec<(u64, u64, String)> = writer
        .roots()
        .iter()
        .map(|r| (r.index, r.size, hex::encode(r.hash)))
        .collect();
    let js_roots: Vec<(u64, u64, String)> = js["roots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["size"].as_u64().unwrap(),
                r["hash"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(roots, js_roots);
    for (i, b) in blocks.iter().enumerate() {
        assert_eq!(&writer.get(i as u64).unwrap().unwrap(), b);
    }
}

/// Request as a JS replicator in state `replica` would make it.
fn block_request(replica: &Core, id: u64, index: u64, upgrade_to: Option<u64>) -> Request {
    Request {
        id,
        block: Some(RequestBlock {
            index,
            nodes: replica.missing_nodes(2 * index).unwrap(),
        }),
        upgrade: upgrade_to.map(|to| RequestUpgrade {
            start: replica.length(),
            length: to - replica.length(),
        }),
        ..Default::default()
    }
}

#[test]
fn js_reader_accepts_our_proofs() {
    let mut writer = Core::in_memory(SigningKey::from_bytes(&[9; 32]));
    let blocks: Vec<Vec<u8>> = (0..37u32)
        .map(|i| {
            format!("entry {i} ")
                .repeat(i as usize % 4 + 1)
                .into_bytes()
        })
        .collect();
    for chunk in blocks.chunks(10) {
        let batch: Vec<&[u8]> = chunk.iter().map(|b| &b[..]).collect();
        writer.append(&batch).unwrap();
    }
    let mut replica = Core::in_memory_replica(writer.key());
    let mut messages = Vec::new();
    let mut expect_ok = Vec::new();
    let mut id = 0;
    let mut next = |r: &Core, index, up| {
        id += 1;
        block_request(r, id, index, up)
    };

    // First contact: block 17 with an upgrade from 0, as the JS replicator asks.
    let first = next(&replica, 17, Some(37));
    let mut order = vec![first];
    for i in (0..37).filter(|i| *i != 17) {
        let data = writer.create_proof(order.last().unwrap()).unwrap().unwrap();
        replica.verify_and_apply(&data).unwrap();
        messages.push(hex::encode(data.to_bytes()));
        expect_ok.push(true);
        order.push(next(&replica, i, None));
    }
    let data = writer.create_proof(order.last().unwrap()).unwrap().unwrap();
    replica.verify_and_apply(&data).unwrap();
    messages.push(hex::encode(data.to_bytes()));
    expect_ok.push(true);
    assert_eq!(replica.contiguous_length(), 37);

    // Tampered: a block value changed, and an upgrade with a flipped signature byte, each sent
    // to the JS replica's state at the end (it has everything; the upgrade repeats length 37).
    let mut bad_block = writer.create_proof(&order[5]).unwrap().unwrap();
    bad_block.block.as_mut().unwrap().value[0] ^= 1;
    messages.push(hex::encode(bad_block.to_bytes()));
    expect_ok.push(false);

    let fresh = Core::in_memory_replica(writer.key());
    let mut bad_sig = writer
        .create_proof(&block_request(&fresh, 99, 3, Some(37)))
        .unwrap()
        .unwrap();
    bad_sig.upgrade.as_mut().unwrap().signature[10] ^= 1;

    let js = run_node(
        "reader",
        Some(
            &serde_json::json!({
                "key": hex::encode(writer.key()),
                "messages": messages,
            })
            .to_string(),
        ),
    );
    let results = js["results"].as_array().unwrap();
    assert_eq!(results.len(), expect_ok.len());
    for (i, (r, ok)) in results.iter().zip(&expect_ok).enumerate() {
        assert_eq!(r["ok"].as_bool().unwrap(), *ok, "message {i}: {r}");
    }
    assert_eq!(js["length"].as_u64().unwrap(), 37);
    assert_eq!(js["byteLength"].as_u64().unwrap(), writer.byte_length());
    for (i, b) in js["blocks"].as_array().unwrap().iter().enumerate() {
        assert_eq!(unhex(b), blocks[i], "JS replica block {i}");
    }

    // A fresh JS replica must refuse an upgrade whose signature was tampered with.
    let js = run_node(
        "reader",
        Some(
            &serde_json::json!({
                "key": hex::encode(writer.key()),
                "messages": [hex::encode(bad_sig.to_bytes())],
            })
            .to_string(),
        ),
    );
    assert_eq!(js["results"][0]["ok"].as_bool(), Some(false), "{js}");
    assert_eq!(js["length"].as_u64(), Some(0));
}
