//! CLIENT INFO / LIST and COMMAND INFO replies in both protocols: verbatim text in
//! RESP3 (a bulk string in RESP2), nulls for unknown commands, and CLIENT LIST's
//! filters over the one connection ringkv lists. The reply shapes are checked
//! against a real redis-server too when one is installed.

mod common;

use std::net::SocketAddr;

use common::resp::{require, RedisServer, Resp};
use common::Node;
use ringkv::resp::Value;

fn client_id(c: &mut Resp) -> i64 {
    match c.line("CLIENT ID") {
        Value::Integer(id) => id,
        other => panic!("CLIENT ID -> {other:?}"),
    }
}

/// The raw reply of one inline command.
fn raw(c: &mut Resp, line: &str) -> Vec<u8> {
    c.send_raw(format!("{line}\r\n").as_bytes());
    c.read_raw()
}

/// Checks the reply shapes `who` sends, in RESP2 and then RESP3.
fn shapes(addr: SocketAddr, who: &str) {
    let mut c = Resp::connect(addr);
    let id = client_id(&mut c);
    let line_of_id = format!("id={id} ");
    for command in ["CLIENT INFO", "CLIENT LIST"] {
        let reply = raw(&mut c, command);
        assert!(reply.starts_with(b"$"), "{who} RESP2 {command}: {reply:?}");
        let text = String::from_utf8_lossy(&reply);
        assert!(text.contains(&line_of_id), "{who}: {text}");
    }
    assert_eq!(
        raw(&mut c, "COMMAND INFO nosuch"),
        b"*1\r\n$-1\r\n",
        "{who}"
    );
    c.line("HELLO 3");
    for command in ["CLIENT INFO", "CLIENT LIST"] {
        let reply = raw(&mut c, command);
        let text = String::from_utf8_lossy(&reply).into_owned();
        let (head, body) = text.split_once("\r\n").expect("a length line");
        assert!(head.starts_with('='), "{who} RESP3 {command}: {text:?}");
        assert!(body.starts_with("txt:"), "{who} RESP3 {command}: {text:?}");
        let len: usize = head[1..].parse().expect("verbatim length");
        assert_eq!(len + 2, body.len(), "{who} RESP3 {command}: {text:?}");
        assert!(body.contains(&line_of_id), "{who}: {text}");
        assert!(body.contains("resp=3"), "{who}: {text}");
    }
    assert_eq!(raw(&mut c, "COMMAND INFO nosuch"), b"*1\r\n_\r\n", "{who}");
    assert_eq!(
        raw(&mut c, "CLIENT LIST TYPE pubsub"),
        b"=4\r\ntxt:\r\n",
        "{who}: an empty list is verbatim too"
    );
}

#[test]
fn client_and_command_replies_in_resp2_and_resp3() {
    let node = Node::start(2, &[]);
    shapes(node.resp_addr(), "ringkv");
    if require("redis-server") {
        let redis = RedisServer::start();
        shapes(redis.addr(), "redis-server");
    }
}

#[test]
fn client_list_filters_are_exact_for_this_connection() {
    let node = Node::start(2, &[]);
    let mut c = Resp::connect(node.resp_addr());
    let id = client_id(&mut c);
    let info = c.line("CLIENT INFO");
    let Value::Bulk(line) = &info else {
        panic!("CLIENT INFO -> {info:?}");
    };
    assert!(line.ends_with(b"\n"), "one line per client");
    assert_eq!(c.line("CLIENT LIST"), info);
    assert_eq!(c.line("CLIENT LIST TYPE normal"), info);
    assert_eq!(c.line("CLIENT LIST TYPE NORMAL"), info);
    assert_eq!(c.line(&format!("CLIENT LIST ID {id}")), info);
    assert_eq!(c.line(&format!("CLIENT LIST ID {} {id}", id + 1)), info);
    let twice = [&line[..], &line[..]].concat();
    assert_eq!(
        c.line(&format!("CLIENT LIST ID {id} {id}")),
        Value::Bulk(twice.into()),
        "a repeated ID is listed each time, as in Redis"
    );
    let empty = Value::Bulk(Vec::new().into());
    assert_eq!(c.line(&format!("CLIENT LIST ID {}", id + 1)), empty);
    assert_eq!(c.line("CLIENT LIST TYPE replica"), empty);
}
