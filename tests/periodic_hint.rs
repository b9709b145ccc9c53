//! Periodic hints: a node that serves writes writes hints of its index while it runs
//! (`--hint-interval-secs`), so a restart after SIGKILL reads the latest hint and scans
//! only the log after it. The hints are built a slice of the index at a time while
//! writes, deletes and expiry changes go on; whatever raced with a hint must come back
//! exactly as acknowledged.
//!
//! Replay a failure with `RINGKV_SEED=<seed printed> cargo test --test periodic_hint`.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{node_stat, temp_dir, Node, Rng};
use ringkv::client::Client;

const KEYS: usize = 40_000;
const LOAD_BATCH: usize = 500;
/// Bounds of the mutation phase, by time and by count.
const WRITE_TIME: Duration = Duration::from_secs(4);
const WRITE_OPS_MAX: u64 = 200_000;
/// Long enough that no TTL set here runs out during the test.
const TTL: Duration = Duration::from_secs(3600);

/// What the client knows a key holds: value, version, and whether it has a TTL.
#[derive(Clone, Debug, PartialEq)]
struct Known {
    value: Vec<u8>,
    version: u64,
    ttl: bool,
}

fn key(i: usize) -> Vec<u8> {
    format!("hint-key:{i}").into_bytes()
}

fn value(i: usize, n: u64) -> Vec<u8> {
    let mut v = format!("{i}|{n}|").into_bytes();
    v.resize(24 + (n % 64) as usize, b'a' + (n % 26) as u8);
    v
}

#[test]
fn after_sigkill_recovery_reads_the_periodic_hint_and_loses_nothing() {
    let seed = Rng::seed_from_env();
    eprintln!("periodic_hint seed {seed}");
    let mut rng = Rng::new(seed);
    let dir = temp_dir();
    let data = dir.path().join("data");
    let flags = ["--durability", "sync", "--hint-interval-secs", "1"];
    let mut node = Node::start_in(&data, 2, &flags).expect("node starts");
    let mut client = Client::connect(node.addr(), Duration::from_secs(10)).expect("connect");

    let mut model: HashMap<usize, Option<Known>> = HashMap::new();
    for start in (0..KEYS).step_by(LOAD_BATCH) {
        let keys: Vec<_> = (start..start + LOAD_BATCH).map(key).collect();
        let values: Vec<_> = (start..start + LOAD_BATCH).map(|i| value(i, 0)).collect();
        let pairs: Vec<(&[u8], &[u8])> = keys
            .iter()
            .zip(&values)
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        let versions = client.mset(&pairs, None).expect("mset");
        for (i, version) in (start..).zip(versions) {
            let known = Known {
                value: value(i, 0),
                version,
                ttl: false,
            };
            model.insert(i, Some(known));
        }
    }

    // Writes of every kind while hints are built and written.
    let hints_before = node_stat(&node, "hints_written");
    let started = Instant::now();
    let mut ops = 0u64;
    while started.elapsed() < WRITE_TIME && ops < WRITE_OPS_MAX {
        ops += 1;
        let i = rng.below(KEYS as u64) as usize;
        let k = key(i);
        let entry = model.get_mut(&i).expect("every key is modelled");
        match rng.below(10) {
            0..=4 => {
                let v = value(i, ops);
                let version = client.set(&k, &v, None).expect("set");
                *entry = Some(Known {
                    value: v,
                    version,
                    ttl: false,
                });
            }
            5 => {
                client.delete(&k).expect("delete");
                *entry = None;
            }
            6 | 7 => {
                let found = client.expire(&k, TTL).expect("expire");
                assert_eq!(found, entry.is_some(), "EXPIRE of key {i}");
                if let Some(known) = entry {
                    known.ttl = true;
                }
            }
            _ => {
                let found = client.persist(&k).expect("persist");
                assert_eq!(found.is_some(), entry.is_some(), "PERSIST of key {i}");
                if let Some(known) = entry {
                    known.ttl = false;
                }
            }
        }
    }
    let hints_during = node_stat(&node, "hints_written") - hints_before;
    drop(client);
    node.kill();
    assert!(
        hints_during >= 2,
        "a 1 s hint interval wrote only {hints_during} hints during {ops} writes"
    );

    let node = Node::start_in(&data, 2, &flags).expect("node restarts");
    let lines = node.recovery_lines(2);
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        assert!(!line.contains("no usable hint"), "hint not used: {line}");
    }
    let mut client = Client::connect(node.addr(), Duration::from_secs(10)).expect("connect");
    let mut present = 0;
    for i in 0..KEYS {
        let k = key(i);
        let want = model.get(&i).expect("modelled");
        let got = client.get(&k).expect("get");
        match (want, got) {
            (None, None) => {}
            (Some(known), Some((v, version))) => {
                present += 1;
                assert_eq!(
                    (v.as_ref(), version),
                    (known.value.as_slice(), known.version),
                    "key {i} (seed {seed})"
                );
                let ttl = client.ttl(&k).expect("ttl").expect("present");
                assert_eq!(ttl.is_some(), known.ttl, "TTL of key {i} (seed {seed})");
            }
            (want, got) => panic!("key {i}: want {want:?}, got {got:?} (seed {seed})"),
        }
    }
    assert_eq!(node_stat(&node, "keys"), present as u64);
}
