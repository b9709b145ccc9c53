//! Disk use scenario: keys written, then almost half of them deleted. Every sealed
//! segment is left with about 45 % garbage, which a 50 % threshold would keep forever
//! (1.8x the live data). Once compaction has caught up, the node's files
//! (`disk_bytes`: segments, spare, hint) must stay within the documented bound: 1.5x
//! the live record bytes, plus the head segment being written, the preallocated spare
//! and the hint. `disk_bytes` must also be what the files in the shard dir hold.

mod common;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use common::{eventually, stat, Node};
use ringkv::client::Client;
use ringkv::proto::Request;

const KEYS: usize = 20_000;
const VALUE_SIZE: usize = 900;
/// Of every 20 keys, this many are deleted: 45 %.
const DELETED_OF_20: usize = 9;
const SEGMENT_BYTES: u64 = 1024 * 1024;
/// The default compaction threshold (33 %): sealed segments keep at most a third
/// garbage, so they hold at most 1.5x their live bytes.
const FLAGS: [&str; 4] = ["--durability", "sync", "--segment-size-mib", "1"];

/// Bytes of the files in one shard directory.
fn files_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("shard dir")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum()
}

fn key(i: usize) -> Bytes {
    Bytes::from(format!("key:{i}"))
}

#[test]
fn deleted_keys_give_their_disk_back_within_the_bound() {
    let mut node = Node::start(1, &FLAGS);
    let mut client = Client::connect(node.addr(), Duration::from_secs(5)).expect("connect");
    let ids: Vec<usize> = (0..KEYS).collect();
    // MSET batches and pipelined deletes: many records per commit, as under load.
    for batch in ids.chunks(100) {
        let pairs = batch
            .iter()
            .map(|i| {
                let mut value = format!("{i}/").into_bytes();
                value.resize(VALUE_SIZE, b'v');
                (key(*i), Bytes::from(value))
            })
            .collect();
        let r = client
            .call(&Request::MSet { pairs, ttl_ms: 0 })
            .expect("mset");
        ringkv::client::ok(r).expect("mset accepted");
    }
    let deletes: Vec<Request> = ids
        .iter()
        .filter(|i| *i % 20 < DELETED_OF_20)
        .map(|i| Request::Delete { key: key(*i) })
        .collect();
    for batch in deletes.chunks(200) {
        for r in client.pipeline(batch).expect("deletes") {
            ringkv::client::ok(r).expect("delete accepted");
        }
    }
    // The live records: each kept key's Put (40-byte header, key, value, 8-aligned).
    let kept = KEYS - KEYS / 20 * DELETED_OF_20;
    let live = (kept * (40 + VALUE_SIZE + 16)) as u64;
    // Head + spare, a hint of about 40 B + key per key, block rounding.
    let limit = live * 3 / 2 + 2 * SEGMENT_BYTES + (KEYS as u64) * 64 + 4096;
    let settled = eventually(Duration::from_secs(60), || {
        stat(&mut client, "disk_bytes") <= limit
    });
    let disk = stat(&mut client, "disk_bytes");
    println!(
        "live about {live} B (node: {} B), disk {disk} B, bound {limit} B, compactions {}",
        stat(&mut client, "log_live_bytes"),
        stat(&mut client, "compactions")
    );
    assert!(settled, "disk {disk} B above the bound {limit} B");
    // Once the node is idle (counters refresh every 100 ms), `disk_bytes` is what the
    // files hold, the probe block aside.
    let shard_dir = node.data_dir.join("shard-0");
    let agree = eventually(Duration::from_secs(10), || {
        files_bytes(&shard_dir) == stat(&mut client, "disk_bytes") + 4096
    });
    assert!(
        agree,
        "files hold {} B, disk_bytes says {} B",
        files_bytes(&shard_dir),
        stat(&mut client, "disk_bytes")
    );
    assert!(node.terminate().success());
}
