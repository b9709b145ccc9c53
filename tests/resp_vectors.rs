//! The golden RESP vectors (proto-spec/vectors/resp-commands.txt): every command and
//! error text, byte for byte, against a two-core ringkv node, and against a real
//! redis-server when one is installed, which keeps the vectors honest.

mod common;

use common::resp::{require, RedisServer, Resp};
use common::Node;

const VECTORS: &str = include_str!("../proto-spec/vectors/resp-commands.txt");

struct Case {
    line: usize,
    command: String,
    redis: Vec<u8>,
    ringkv: Vec<u8>,
}

fn unescape(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            match bytes[i + 1] {
                b'r' => out.push(b'\r'),
                b'n' => out.push(b'\n'),
                b'\\' => out.push(b'\\'),
                b'x' => {
                    let hex = std::str::from_utf8(&bytes[i + 2..i + 4]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 2;
                }
                other => panic!("bad escape \\{}", other as char),
            }
            i += 2;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn cases() -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    for (n, line) in VECTORS.lines().enumerate() {
        if let Some(command) = line.strip_prefix("> ") {
            cases.push(Case {
                line: n + 1,
                command: command.to_string(),
                redis: Vec::new(),
                ringkv: Vec::new(),
            });
        } else if let Some(reply) = line.strip_prefix("< ") {
            let case = cases.last_mut().expect("`<` after `>`");
            case.redis = unescape(reply);
            case.ringkv = case.redis.clone();
        } else if let Some(reply) = line.strip_prefix("= ") {
            cases.last_mut().expect("`=` after `<`").ringkv = unescape(reply);
        }
    }
    assert!(cases.len() > 200, "the vectors file is read");
    cases
}

fn run(addr: std::net::SocketAddr, ringkv: bool) {
    let mut c = Resp::connect(addr);
    c.send_raw(b"FLUSHALL\r\n");
    assert_eq!(c.read_raw(), b"+OK\r\n");
    let mut failures = Vec::new();
    for case in cases() {
        c.send_raw(format!("{}\r\n", case.command).as_bytes());
        let got = c.read_raw();
        let want = if ringkv { &case.ringkv } else { &case.redis };
        if &got != want {
            failures.push(format!(
                "line {}: {}\n   want {:?}\n    got {:?}",
                case.line,
                case.command,
                String::from_utf8_lossy(want),
                String::from_utf8_lossy(&got)
            ));
        }
    }
    let who = if ringkv { "ringkv" } else { "redis-server" };
    assert!(
        failures.is_empty(),
        "{who} differs:\n{}",
        failures.join("\n")
    );
}

#[test]
fn ringkv_answers_every_vector_exactly() {
    let node = Node::start(2, &[]);
    run(node.resp_addr(), true);
}

#[test]
fn redis_answers_every_vector_exactly() {
    if !require("redis-server") {
        return;
    }
    let redis = RedisServer::start();
    run(redis.addr(), false);
}
