//! Shared harness of the `tests/fuzz_*.rs` property-based fuzz targets (see docs/TESTING.md).
//!
//! Each target is one property run by [`fuzz`] for a number of random inputs:
//! - `DAT_FUZZ_CASES` (default: the target's small CI count): inputs per target;
//! - `DAT_FUZZ_SECONDS` (optional): stop a target early after this many seconds (the count run
//!   is printed, so a campaign records what really ran);
//! - `DAT_FUZZ_STATS` (optional): a file to which one line per finished target is appended:
//!   `target<TAB>inputs<TAB>seconds<TAB>inputs/s`.
//!
//! Inputs come in two kinds: raw random bytes, and *mutations* of valid encodings (a few bytes
//! overwritten, inserted, removed, bit-flipped, or the end cut off; a length prefix bumped) so
//! that inputs get past the first length or checksum check and reach the deeper parsing code.
//! A panic anywhere in a target fails it (proptest catches it and shrinks the input).

#![allow(dead_code)]

use std::fmt::Debug;
use std::io::Write;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseResult, TestRunner};

/// Runtimes and `/proc` readers shared with the other tests.
#[path = "../support/sys.rs"]
pub mod sys;

/// Inputs per [`TestRunner`] round, at first; a campaign runs as many rounds as it needs, each
/// with a fresh random seed, sized to take about [`ROUND_SECONDS`] so that `DAT_FUZZ_SECONDS` is
/// kept to within a few seconds.
const FIRST_ROUND: u64 = 200;
/// Target duration of one round, in seconds.
const ROUND_SECONDS: f64 = 5.0;

/// Inputs for one target: `DAT_FUZZ_CASES` if set, else `default` (kept small for CI).
pub fn cases(default: u64) -> u64 {
    match std::env::var("DAT_FUZZ_CASES")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        Some(v) => v
            .trim()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("DAT_FUZZ_CASES must be a number, got {v:?}")),
        None => default,
    }
}

fn budget() -> Option<Duration> {
    let v = std::env::var("DAT_FUZZ_SECONDS")
        .ok()
        .filter(|v| !v.trim().is_empty())?;
    let secs: f64 = v
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("DAT_FUZZ_SECONDS must be a number, got {v:?}"));
    Some(Duration::from_secs_f64(secs))
}

/// Runs `test` on inputs drawn from `strategy` until [`cases`]`(default)` inputs passed (or
/// `DAT_FUZZ_SECONDS` elapsed), then prints `fuzz-stats <name> inputs=N seconds=S rate=R/s`.
///
/// Panics (failing the test) with proptest's minimal failing input when `test` fails or panics.
pub fn fuzz<S, F>(name: &str, default: u64, strategy: S, test: F)
where
    S: Strategy,
    S::Value: Debug,
    F: Fn(S::Value) -> TestCaseResult,
{
    let total = cases(default);
    let budget = budget();
    let start = Instant::now();
    let mut done = 0u64;
    let mut round = FIRST_ROUND;
    while done < total {
        let n = (total - done).min(round);
        let mut runner = TestRunner::new(Config {
            cases: n as u32,
            // No regression files written into the repository; failures print their input.
            failure_persistence: None,
            max_shrink_iters: 10_000,
            ..Config::default()
        });
        if let Err(e) = runner.run(&strategy, &test) {
            panic!("fuzz target {name} failed after {done} passing inputs: {e}");
        }
        done += n;
        let elapsed = start.elapsed();
        if budget.is_some_and(|b| elapsed >= b) {
            break;
        }
        let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
        round = ((rate * ROUND_SECONDS) as u64).clamp(FIRST_ROUND, 1_000_000);
    }
    let secs = start.elapsed().as_secs_f64();
    let rate = done as f64 / secs.max(1e-9);
    eprintln!("fuzz-stats {name} inputs={done} seconds={secs:.1} rate={rate:.0}/s");
    if let Ok(path) = std::env::var("DAT_FUZZ_STATS") {
        let line = format!("{name}\t{done}\t{secs:.1}\t{rate:.0}\n");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("DAT_FUZZ_STATS {path}: {e}"));
        f.write_all(line.as_bytes()).unwrap();
    }
}

/// One edit of a byte string.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Overwrite the byte at (index mod len).
    Set(usize, u8),
    /// Flip one bit.
    Flip(usize, u8),
    /// Insert a byte.
    Insert(usize, u8),
    /// Remove a byte.
    Remove(usize),
    /// Cut the end off at (index mod (len + 1)).
    Truncate(usize),
    /// Add a small signed delta to a byte (bumps length prefixes and varints).
    Add(usize, i8),
    /// Overwrite with an "interesting" byte (0, 0xfc..0xff: the varint prefixes, 0x7f, 0x80).
    Interesting(usize, u8),
    /// Duplicate a slice (repeats a field or an element).
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> + Clone {
    const INTERESTING: [u8; 8] = [0, 1, 0x7f, 0x80, 0xfc, 0xfd, 0xfe, 0xff];
    prop_oneof![
        3 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        2 => (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        2 => any::<usize>().prop_map(Mutation::Remove),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        2 => (any::<usize>(), any::<i8>()).prop_map(|(i, d)| Mutation::Add(i, d)),
        2 => (any::<usize>(), 0..INTERESTING.len())
            .prop_map(|(i, k)| Mutation::Interesting(i, INTERESTING[k])),
        1 => (any::<usize>(), 1usize..16).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
    ]
}

/// Applies `mutations` to `bytes`, in order.
pub fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        match *m {
            Mutation::Set(i, b) | Mutation::Interesting(i, b) if len > 0 => bytes[i % len] = b,
            Mutation::Flip(i, bit) if len > 0 => bytes[i % len] ^= 1 << bit,
            Mutation::Insert(i, b) => bytes.insert(i % (len + 1), b),
            Mutation::Remove(i) if len > 0 => {
                bytes.remove(i % len);
            }
            Mutation::Truncate(i) => bytes.truncate(i % (len + 1)),
            Mutation::Add(i, d) if len > 0 => bytes[i % len] = bytes[i % len].wrapping_add(d as u8),
            Mutation::Duplicate(i, n) if len > 0 => {
                let at = i % len;
                let end = (at + n).min(len);
                let piece = bytes[at..end].to_vec();
                bytes.splice(at..at, piece);
            }
            _ => {}
        }
    }
    bytes
}

/// Random bytes, 0 to `max` long.
pub fn raw(max: usize) -> impl Strategy<Value = Vec<u8>> + Clone {
    prop::collection::vec(any::<u8>(), 0..=max)
}

/// One of `seeds` with 1 to 8 [`Mutation`]s applied.
pub fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> + Clone {
    assert!(!seeds.is_empty(), "no seed inputs");
    (
        prop::sample::select(seeds),
        prop::collection::vec(mutation(), 1..8),
    )
        .prop_map(|(seed, ms)| mutate(seed, &ms))
}

/// Mutations of `valid` values generated on the fly: `valid` builds a (random) valid encoding,
/// then 0 to 8 [`Mutation`]s are applied (0 keeps some inputs valid, reaching the code after a
/// successful decode).
pub fn mutated_from<S>(valid: S) -> impl Strategy<Value = Vec<u8>> + Clone
where
    S: Strategy<Value = Vec<u8>> + Clone,
{
    (valid, prop::collection::vec(mutation(), 0..8)).prop_map(|(seed, ms)| mutate(seed, &ms))
}

/// Half raw bytes (up to `max`), half mutations of `seeds`.
pub fn raw_or_mutated(max: usize, seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> + Clone {
    prop_oneof![raw(max), mutated(seeds)]
}

/// 1 to 7 [`Mutation`]s.
pub fn mutations() -> impl Strategy<Value = Vec<Mutation>> + Clone {
    prop::collection::vec(mutation(), 1..8)
}

/// How a man in the middle alters one message of a live exchange.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Apply these mutations to the message.
    Mutate(Vec<Mutation>),
    /// Replace it with these bytes.
    Replace(Vec<u8>),
}

impl Edit {
    /// The altered message.
    pub fn apply(&self, msg: Vec<u8>) -> Vec<u8> {
        match self {
            Edit::Mutate(ms) => mutate(msg, ms),
            Edit::Replace(b) => b.clone(),
        }
    }
}

/// An edit of the message number `at` (counting every message of the exchange from 0); `at`
/// past the last message means an untouched exchange.
#[derive(Debug, Clone)]
pub struct Tamper {
    /// Which message.
    pub at: usize,
    /// What is done to it.
    pub edit: Edit,
}

impl Tamper {
    /// `msg` as delivered if it is message number `index`, and whether it changed.
    pub fn apply(&self, index: usize, msg: Vec<u8>) -> (Vec<u8>, bool) {
        if index != self.at {
            return (msg, false);
        }
        let out = self.edit.apply(msg.clone());
        let changed = out != msg;
        (out, changed)
    }
}

/// A [`Tamper`] of one of the first `messages` messages (or none, one time in `messages + 1`),
/// replacing with random bytes of up to `max_raw`.
pub fn tamper(messages: usize, max_raw: usize) -> impl Strategy<Value = Tamper> + Clone {
    let edit = prop_oneof![
        3 => mutations().prop_map(Edit::Mutate),
        1 => raw(max_raw).prop_map(Edit::Replace),
    ];
    (0..=messages, edit).prop_map(|(at, edit)| Tamper { at, edit })
}
