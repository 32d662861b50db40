//! Fuzz targets: a core's on-disk files (src/hypercore/storage.rs) as `Core::open` reads them
//! after a crash, a bad disk or a hostile edit, and the archive read on top of them.
//!
//! - the record decoders on their own: [`Header::from_bytes`], [`decode_node`],
//!   [`Bitfield::from_bytes`];
//! - whole core directories: the files of a real archive at several lengths (so every header
//!   is genuinely signed), mixed across lengths (a header newer than the data, a tree from
//!   another length...), with one file mutated or replaced by random bytes, then opened as a
//!   reader, as a replica and as the writer, every block read, `verify_all` and
//!   `archive::read_files` run. Nothing may panic; an untouched directory opens and reads back
//!   its profile.

mod fuzz_common;

use std::path::Path;

use dat_social::archive;
use dat_social::hypercore::crypto::hash_batch;
use dat_social::hypercore::messages::TreeNode;
use dat_social::hypercore::storage::{decode_node, encode_node, Header, NODE_RECORD};
use dat_social::hypercore::Bitfield;
use dat_social::hypercore::Core;
use dat_social::keys::CoreKey;
use dat_social::schema::{Profile, Session};
use ed25519_dalek::SigningKey;
use fuzz_common::{fuzz, mutated, mutated_from, mutations, raw, Edit};
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

const FILES: [&str; 5] = ["header", "data", "index", "tree", "bitfield"];
const KEY: [u8; 32] = [11; 32];

/// The five files of a real archive after each commit (`snapshots[0]`: the header entry and the
/// first profile; then one `put` per commit), and the profile each one holds.
fn snapshots() -> (Vec<[Vec<u8>; 5]>, Vec<Profile>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("core");
    let mut core = Core::create(&path, SigningKey::from_bytes(&KEY)).unwrap();
    let mut out = Vec::new();
    let mut profiles = Vec::new();
    let read = |p: &Path| FILES.map(|f| std::fs::read(p.join(f)).unwrap_or_default());
    let profile = |n: usize| Profile {
        name: format!("user {n}"),
        created: 1_700_000_000_000 + n as u64,
        friends: vec![format!("dat://{}", "ab".repeat(32))],
    };
    archive::initialize(&mut core, &profile(0)).unwrap();
    core.flush().unwrap();
    out.push(read(&path));
    profiles.push(profile(0));
    for n in 1..5 {
        if n % 2 == 0 {
            archive::put_profile(&mut core, &profile(n)).unwrap();
        } else {
            let s = Session {
                name: format!("lobby {n}"),
                url: format!(
                    "dat://{}",
                    hex::encode(SigningKey::from_bytes(&KEY).verifying_key().to_bytes())
                ),
                last_update: 1_700_000_000_000,
                peers: 1,
                max_peers: 8,
                protected: false,
                heartbeat: Some(300_000),
                ended: None,
            };
            archive::put_session(&mut core, &s).unwrap();
        }
        core.flush().unwrap();
        out.push(read(&path));
        profiles.push(profile(n - n % 2));
    }
    (out, profiles)
}

/// A directory to open: for each file the snapshot it comes from, and one file's edit.
#[derive(Debug, Clone)]
struct Layout {
    from: [usize; 5],
    /// (file, edit): mutations, or random contents.
    edit: Option<(usize, Edit)>,
}

fn layout(n: usize) -> impl Strategy<Value = Layout> {
    let same = (0..n).prop_map(|k| [k; 5]);
    let mixed = prop::array::uniform5(0..n);
    let edit = prop_oneof![
        1 => Just(None),
        4 => (0usize..5, mutations()).prop_map(|(f, m)| Some((f, Edit::Mutate(m)))),
        1 => (0usize..5, raw(200)).prop_map(|(f, r)| Some((f, Edit::Replace(r)))),
    ];
    (prop_oneof![same, mixed], edit).prop_map(|(from, edit)| Layout { from, edit })
}

fn open_everything(dir: &Path, expect: Option<&Profile>) -> TestCaseResult {
    let key = SigningKey::from_bytes(&KEY);
    let public = key.verifying_key().to_bytes();
    // Last: a writer truncates what lies past the committed state.
    for how in 0..3 {
        let core = match how {
            0 => Core::open(dir, None),
            1 => Core::open_replica(dir, CoreKey::from_bytes(public)),
            _ => Core::open(dir, Some(key.clone())),
        };
        match core {
            Ok(core) => {
                for i in 0..core.length().min(64) {
                    let _ = core.get(i);
                }
                let verified = core.verify_all();
                let files = archive::read_files(&core);
                if let Some(p) = expect {
                    prop_assert!(verified.is_ok(), "{:?}", verified);
                    let files = files.map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(files.profile.as_ref(), Some(p));
                }
            }
            Err(e) => prop_assert!(expect.is_none(), "untouched core does not open: {}", e),
        }
    }
    Ok(())
}

#[test]
fn storage_core_directory() {
    let (snaps, profiles) = snapshots();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("core");
    fuzz("storage_core_directory", 300, layout(snaps.len()), |l| {
        std::fs::create_dir_all(&dir).unwrap();
        let mut untouched = l.from.iter().all(|k| *k == l.from[0]);
        for (f, name) in FILES.iter().enumerate() {
            let mut bytes = snaps[l.from[f]][f].clone();
            if let Some((ef, edit)) = &l.edit {
                if *ef == f {
                    let edited = edit.apply(bytes.clone());
                    untouched &= edited == bytes;
                    bytes = edited;
                }
            }
            std::fs::write(dir.join(name), &bytes).unwrap();
        }
        let expect = untouched.then(|| &profiles[l.from[0]]);
        open_everything(&dir, expect)
    });
}

fn header_bytes() -> impl Strategy<Value = Vec<u8>> + Clone {
    let node = (0u64..64, any::<u64>(), any::<[u8; 32]>())
        .prop_map(|(index, size, hash)| TreeNode { index, size, hash });
    (
        any::<[u8; 32]>(),
        (any::<u64>(), 0u64..100, any::<u64>()),
        prop_oneof![Just(vec![]), raw(64)],
        prop::collection::vec(node, 0..4),
    )
        .prop_map(|(key, (fork, length, byte_length), signature, roots)| {
            Header {
                key,
                fork,
                length,
                byte_length,
                signature,
                roots,
            }
            .to_bytes()
        })
}

/// Recomputes the header checksum after a mutation, so that the parser behind it is reached.
fn fix_checksum(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.len() >= 40 {
        let body = bytes.len() - 32;
        let sum = hash_batch(&[&bytes[..body]]);
        bytes[body..].copy_from_slice(&sum);
    }
    bytes
}

#[test]
fn storage_header_record() {
    let input = prop_oneof![
        raw(200),
        mutated_from(header_bytes()),
        mutated_from(header_bytes()).prop_map(fix_checksum),
    ];
    fuzz("storage_header_record", 2_000, input, |bytes| {
        if let Ok(h) = Header::from_bytes(&bytes, Path::new("header")) {
            prop_assert_eq!(
                Header::from_bytes(&h.to_bytes(), Path::new("header")).ok(),
                Some(h)
            );
        }
        Ok(())
    });
}

/// The record `encode_node` writes for random 40-byte contents at flat-tree `index`: `body`
/// read as size (8 bytes LE) and hash (32 bytes), then its checksum.
fn record_with_valid_checksum(body: &[u8], index: u64) -> Vec<u8> {
    encode_node(&TreeNode {
        index,
        size: u64::from_le_bytes(body[..8].try_into().unwrap()),
        hash: body[8..40].try_into().unwrap(),
    })
    .to_vec()
}

#[test]
fn storage_tree_and_bitfield_records() {
    let rec = NODE_RECORD as usize;
    let seeds: Vec<Vec<u8>> = (0..8u64)
        .map(|i| {
            encode_node(&TreeNode {
                index: i,
                size: i * 1000,
                hash: [i as u8; 32],
            })
            .to_vec()
        })
        .collect();
    let record = prop_oneof![
        prop::collection::vec(any::<u8>(), rec..=rec),
        mutated(seeds.clone()),
        // Valid checksum over random contents: decodes.
        (prop::collection::vec(any::<u8>(), 40..=40), 0u64..8)
            .prop_map(|(body, i)| record_with_valid_checksum(&body, i)),
    ];
    fuzz(
        "storage_tree_and_bitfield_records",
        2_000,
        (record, 0u64..8, raw(40), any::<u64>(), 0u64..400),
        |(bytes, index, bits, len, small_len)| {
            let mut r = [0u8; 48];
            let n = bytes.len().min(48);
            r[..n].copy_from_slice(&bytes[..n]);
            if let Ok(Some(node)) = decode_node(index, &r) {
                prop_assert_eq!(node.index, index);
                prop_assert_eq!(decode_node(index, &encode_node(&node)), Ok(Some(node)));
            }
            for len in [len, small_len] {
                let b = Bitfield::from_bytes(&bits, len);
                for i in 0..(bits.len() as u64 * 8).min(len) {
                    prop_assert_eq!(b.get(i), bits[(i / 8) as usize] >> (i % 8) & 1 == 1);
                }
                prop_assert!(!b.get(len));
            }
            Ok(())
        },
    );
}
