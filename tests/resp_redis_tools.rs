//! The stock Redis tools against a two-core node: redis-cli (commands, pipes, INFO)
//! and redis-benchmark (SET, GET, INCR, MSET) finish without errors.
//! Without redis-tools the tests fail, unless RINGKV_SKIP_MISSING_TOOLS=1 (then they
//! print a note and pass); under CI=true they always require the tools.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::resp::require;
use common::Node;

fn cli(node: &Node, args: &[&str]) -> String {
    let port = node.resp_port.expect("resp").to_string();
    let out = Command::new("redis-cli")
        .args(["-p", &port])
        .args(args)
        .output()
        .expect("redis-cli runs");
    assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

#[test]
fn redis_cli_commands() {
    if !require("redis-cli") {
        return;
    }
    let node = Node::start(2, &[]);
    assert_eq!(cli(&node, &["PING"]), "PONG");
    assert_eq!(cli(&node, &["SET", "greeting", "hello world"]), "OK");
    assert_eq!(cli(&node, &["GET", "greeting"]), "hello world");
    assert_eq!(cli(&node, &["INCR", "counter"]), "1");
    assert_eq!(cli(&node, &["INCRBY", "counter", "41"]), "42");
    assert_eq!(cli(&node, &["MSET", "a", "1", "b", "2", "c", "3"]), "OK");
    assert_eq!(cli(&node, &["MGET", "a", "b", "nope"]), "1\n2");
    assert_eq!(cli(&node, &["DBSIZE"]), "5");
    assert_eq!(cli(&node, &["EXPIRE", "a", "100"]), "1");
    assert_eq!(cli(&node, &["TTL", "a"]), "100");
    assert_eq!(cli(&node, &["DEL", "a", "b", "c"]), "3");
    assert_eq!(cli(&node, &["--scan", "--pattern", "gre*"]), "greeting");
    let info = cli(&node, &["INFO", "server"]);
    assert!(info.contains("redis_version:7.0.15"), "{info}");
    assert!(info.contains("arch_bits:64"), "{info}");
    assert!(info.contains("cluster_enabled:0"), "{info}");
    let err = cli(&node, &["NOSUCH", "x"]);
    assert_eq!(
        err,
        // (trimmed: Redis's text ends with a space)
        "ERR unknown command 'NOSUCH', with args beginning with: 'x'"
    );
    // RESP3 through redis-cli -3 (which opens with HELLO 3).
    assert_eq!(cli(&node, &["-3", "GET", "nope"]), "");
    assert_eq!(cli(&node, &["-3", "INCR", "counter"]), "43");

    // Commands piped on stdin, as `cat cmds | redis-cli` does.
    let port = node.resp_port.expect("resp").to_string();
    let mut child = Command::new("redis-cli")
        .args(["-p", &port])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"SET piped 1\nINCR piped\nGET piped\n")
        .expect("write");
    let out = child.wait_with_output().expect("redis-cli exits");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "OK\n2\n2\n");
}

#[test]
fn redis_benchmark_runs_without_errors() {
    if !require("redis-benchmark") {
        return;
    }
    let node = Node::start(2, &[]);
    let port = node.resp_port.expect("resp").to_string();
    let out = Command::new("redis-benchmark")
        .args(["-p", &port, "-t", "set,get,incr,mset", "-n", "20000", "-q"])
        .output()
        .expect("redis-benchmark runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let lower = format!("{stdout}{stderr}").to_lowercase();
    assert!(!lower.contains("err"), "{stdout}\n{stderr}");
    for test in ["SET", "GET", "INCR", "MSET"] {
        assert!(
            stdout
                .split(['\r', '\n'])
                .any(|l| l.trim_start().starts_with(test) && l.contains("requests per second")),
            "{test} missing from:\n{stdout}"
        );
    }
}
