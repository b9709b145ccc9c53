//! EXISTS, TOUCH, TYPE and WATCH need only the index: whether a key is there, and
//! its version. They must not read a value back from disk (a node whose values are
//! not cached would pay a read per key), and a value that fails its checksum when
//! read must not make its key look absent while TTL and DBSIZE count it.

mod common;

use std::path::Path;
use std::time::Duration;

use common::resp::{bulk, simple, Resp};
use common::{node_stat, Node};
use ringkv::resp::Value;

const KEYS: usize = 20;
/// Durable, and a clean stop writes the hint, so the restart loads keys and
/// locations from it and caches no value.
const FLAGS: [&str; 2] = ["--durability", "sync"];

fn value(i: usize) -> String {
    format!("value-{i:02}-{}", "v".repeat(200))
}

/// Flips one byte in the middle of `needle`'s only copy in the shard's segments.
fn damage(data: &Path, needle: &[u8]) {
    let mut hits = 0;
    for entry in std::fs::read_dir(data.join("shard-0")).expect("shard dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "log") {
            continue;
        }
        let mut bytes = std::fs::read(&path).expect("read segment");
        let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) else {
            continue;
        };
        bytes[at + needle.len() / 2] ^= 0x5a;
        std::fs::write(&path, bytes).expect("write segment");
        hits += 1;
    }
    assert_eq!(hits, 1, "the value is written once");
}

/// Writes `KEYS` keys (one with a TTL), stops cleanly, damages key 0's value on disk
/// if asked, and restarts: every value is on disk only.
fn restarted_node(dir: &tempfile::TempDir, damaged: bool) -> Node {
    let data = dir.path().join("data");
    let mut node = Node::start_in(&data, 1, &FLAGS).expect("node starts");
    let mut c = Resp::connect(node.resp_addr());
    for i in 0..KEYS {
        assert_eq!(c.cmd(&["SET", &format!("k{i}"), &value(i)]), simple("OK"));
    }
    assert_eq!(c.line("EXPIRE k1 1000"), Value::Integer(1));
    drop(c);
    assert!(node.terminate().success(), "a clean stop writes the hint");
    if damaged {
        damage(&data, value(0).as_bytes());
    }
    Node::start_in(&data, 1, &FLAGS).expect("node restarts")
}

#[test]
fn existence_is_answered_from_the_index_without_reading_values() {
    let dir = common::temp_dir();
    let node = restarted_node(&dir, false);
    let mut c = Resp::connect(node.resp_addr());
    assert_eq!(node_stat(&node, "value_fetches"), 0, "no value read yet");
    let all: Vec<String> = (0..KEYS).map(|i| format!("k{i}")).collect();
    let mut exists = vec!["EXISTS".to_string()];
    exists.extend(all.iter().cloned());
    exists.push("nosuch".into());
    assert_eq!(c.cmd(&exists), Value::Integer(KEYS as i64));
    exists[0] = "TOUCH".into();
    assert_eq!(c.cmd(&exists), Value::Integer(KEYS as i64));
    for key in &all {
        assert_eq!(c.cmd(&["TYPE", key]), simple("string"), "{key}");
    }
    let mut watch = vec!["WATCH".to_string()];
    watch.extend(all.iter().cloned());
    assert_eq!(c.cmd(&watch), simple("OK"));
    assert_eq!(
        node_stat(&node, "value_fetches"),
        0,
        "EXISTS, TOUCH, TYPE and WATCH read no value from disk"
    );
    // A watched key whose value is on disk still has its version: EXEC runs.
    c.line("MULTI");
    c.line("SET k2 new");
    assert_eq!(c.line("EXEC"), Value::Array(vec![simple("OK")]));
    // GET does read it back.
    assert_eq!(c.line("GET k3"), bulk(&value(3)));
    assert!(node_stat(&node, "value_fetches") > 0);
}

#[test]
fn a_damaged_value_does_not_make_its_key_absent() {
    let dir = common::temp_dir();
    let node = restarted_node(&dir, true);
    let mut c = Resp::connect(node.resp_addr());
    // The value cannot be served...
    assert!(
        matches!(c.line("GET k0"), Value::Error(_)),
        "a value failing its checksum is refused"
    );
    // ...but the key is there, as TTL and DBSIZE say.
    assert_eq!(c.line("TTL k0"), Value::Integer(-1));
    assert_eq!(c.line("DBSIZE"), Value::Integer(KEYS as i64));
    assert_eq!(c.line("EXISTS k0"), Value::Integer(1));
    assert_eq!(c.line("EXISTS k0 k1 nosuch"), Value::Integer(2));
    assert_eq!(c.line("TYPE k0"), simple("string"));
    assert!(matches!(c.line("TTL k1"), Value::Integer(t) if t > 900));
    // WATCH records the key's version, so an untouched key lets EXEC run.
    assert_eq!(c.line("WATCH k0"), simple("OK"));
    c.line("MULTI");
    c.line("SET k5 x");
    assert_eq!(c.line("EXEC"), Value::Array(vec![simple("OK")]));
    // The native client sees the same key count.
    let mut native =
        ringkv::client::Client::connect(node.addr(), Duration::from_secs(5)).expect("connect");
    assert_eq!(common::stat(&mut native, "keys"), KEYS as u64);
}
