//! The key-to-shard function as specified in proto-spec/protocol.md: the Rust code and
//! the independent reference in tools/shard_of.py agree on many keys.

use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn python_reference_agrees_with_the_node() {
    if Command::new("python3").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 is required in CI"
        );
        eprintln!("python3 not installed: skipping the cross-language check");
        return;
    }
    let keys: Vec<String> = (0..2000)
        .map(|i| format!("user:{i}:{}", i * 7919))
        .collect();
    for shards in [1u32, 2, 3, 8, 255] {
        let mut child = Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/shard_of.py"))
            .arg(shards.to_string())
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(keys.join("\n").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), keys.len());
        for (key, line) in keys.iter().zip(lines) {
            let shard: u32 = line.rsplit(' ').next().unwrap().parse().unwrap();
            assert_eq!(
                shard,
                ringkv::hash::shard_of(key.as_bytes(), shards),
                "key {key} with {shards} shards"
            );
        }
    }
}
