//! MULTI/EXEC, WATCH and MSETNX: atomic within one shard, refused across shards
//! (with nothing applied), and WATCH aborts when another client writes.

mod common;

use common::resp::{bulk, error, simple, Resp};
use common::{key_on_shard, Node};
use ringkv::resp::Value;

fn key(shard: u32, tag: &str) -> String {
    String::from_utf8(key_on_shard(shard, 2, tag)).expect("ascii")
}

#[test]
fn transactions_on_one_shard_and_refusals_across() {
    let node = Node::start(2, &[]);
    let mut c = Resp::connect(node.resp_addr());
    let (a, b, other) = (key(0, "a"), key(0, "b"), key(1, "c"));

    // One shard: queued, then run together.
    assert_eq!(c.line("MULTI"), simple("OK"));
    assert_eq!(c.cmd(&["SET", &a, "1"]), simple("QUEUED"));
    assert_eq!(c.cmd(&["INCR", &a]), simple("QUEUED"));
    assert_eq!(c.cmd(&["APPEND", &b, "x"]), simple("QUEUED"));
    assert_eq!(
        c.line("EXEC"),
        Value::Array(vec![simple("OK"), Value::Integer(2), Value::Integer(1)])
    );

    // Across shards: refused at EXEC, and nothing ran.
    c.line("MULTI");
    c.cmd(&["SET", &a, "changed"]);
    c.cmd(&["SET", &other, "changed"]);
    let Value::Error(e) = c.line("EXEC") else {
        panic!("cross-shard EXEC is refused")
    };
    assert!(e.starts_with(b"CROSSSLOT"), "{e:?}");
    assert_eq!(c.cmd(&["GET", &a]), bulk("2"));
    assert_eq!(c.cmd(&["GET", &other]), Value::Null);
    // The connection is out of MULTI again.
    assert_eq!(c.line("EXEC"), error("ERR EXEC without MULTI"));

    // MSETNX: all or nothing on one shard, refused across.
    assert_eq!(c.cmd(&["MSETNX", &b, "1", &a, "1"]), Value::Integer(0));
    let Value::Error(e) = c.cmd(&["MSETNX", &a, "1", &other, "1"]) else {
        panic!("cross-shard MSETNX is refused")
    };
    assert!(e.starts_with(b"CROSSSLOT"), "{e:?}");
    assert_eq!(c.cmd(&["GET", &other]), Value::Null);

    // WATCH: another client's write aborts EXEC; an untouched key lets it run.
    let mut other_client = Resp::connect(node.resp_addr());
    assert_eq!(c.cmd(&["WATCH", &a]), simple("OK"));
    assert_eq!(other_client.cmd(&["SET", &a, "by-other"]), simple("OK"));
    c.line("MULTI");
    c.cmd(&["SET", &a, "mine"]);
    assert_eq!(c.line("EXEC"), Value::NullArray);
    assert_eq!(c.cmd(&["GET", &a]), bulk("by-other"));
    assert_eq!(c.cmd(&["WATCH", &a]), simple("OK"));
    c.line("MULTI");
    c.cmd(&["SET", &a, "mine"]);
    assert_eq!(c.line("EXEC"), Value::Array(vec![simple("OK")]));
    // A watched key on another shard than the transaction's keys: refused.
    c.cmd(&["WATCH", &other]);
    c.line("MULTI");
    c.cmd(&["SET", &a, "x"]);
    assert!(matches!(c.line("EXEC"), Value::Error(e) if e.starts_with(b"CROSSSLOT")));
    // KEYS cannot be queued; the transaction aborts, as after any refused command.
    c.line("MULTI");
    assert!(matches!(c.line("KEYS *"), Value::Error(_)));
    assert_eq!(
        c.line("EXEC"),
        error("EXECABORT Transaction discarded because of previous errors.")
    );
}

fn watch_args(keys: impl Iterator<Item = String>) -> Vec<String> {
    std::iter::once("WATCH".to_string()).chain(keys).collect()
}

/// The WATCH limit counts the distinct keys a connection watches: watching a key it
/// already watches, or naming a key twice, takes no more room.
#[test]
fn watch_limit_counts_distinct_keys() {
    let limit = ringkv::constants::RESP_WATCH_KEYS_MAX as usize;
    let node = Node::start(2, &[]);
    let mut c = Resp::connect(node.resp_addr());
    let first = limit * 3 / 5;
    let keys = |from: usize, to: usize| (from..to).map(|i| format!("w{i}"));
    assert_eq!(c.cmd(&watch_args(keys(0, first))), simple("OK"));
    assert_eq!(c.cmd(&watch_args(keys(0, first))), simple("OK"));
    assert_eq!(
        c.cmd(&watch_args(keys(0, first).chain(keys(0, first)))),
        simple("OK")
    );
    // One key past the limit is refused, and watches nothing of it.
    let over = watch_args(keys(0, limit + 1));
    assert!(matches!(c.cmd(&over), Value::Error(_)), "past the limit");
    assert_eq!(c.cmd(&watch_args(keys(0, limit))), simple("OK"));
    assert_eq!(c.cmd(&watch_args(keys(0, limit))), simple("OK"));
    assert!(matches!(c.cmd(&["WATCH", "one-more"]), Value::Error(_)));
    assert_eq!(c.line("UNWATCH"), simple("OK"));
    assert_eq!(c.cmd(&["WATCH", "one-more"]), simple("OK"));
}

/// Pipelined WATCHes are counted in order, each against the keys watched by those
/// before it, even when they are planned in one batch.
#[test]
fn pipelined_watches_are_limited_in_order() {
    let limit = ringkv::constants::RESP_WATCH_KEYS_MAX as usize;
    let node = Node::start(2, &[]);
    let mut c = Resp::connect(node.resp_addr());
    let first = limit - 24;
    assert_eq!(
        c.cmd(&watch_args((0..first).map(|i| format!("w{i}")))),
        simple("OK")
    );
    // Small commands in one write, so the node reads them in one batch.
    let pipeline = |commands: &[Vec<String>]| {
        let mut out = bytes::BytesMut::new();
        for args in commands {
            ringkv::resp::encode_command(&mut out, args);
        }
        out.to_vec()
    };
    let fill = watch_args((0..24).map(|i| format!("x{i}")));
    c.send_raw(&pipeline(&[
        fill.clone(),
        watch_args(std::iter::once("y".to_string())),
    ]));
    assert_eq!(c.read(), simple("OK"), "up to the limit");
    assert!(matches!(c.read(), Value::Error(_)), "one past the limit");
    c.send_raw(&pipeline(&[
        fill,
        watch_args(std::iter::once("w0".to_string())),
    ]));
    assert_eq!(c.read(), simple("OK"), "re-watching takes no room");
    assert_eq!(c.read(), simple("OK"), "re-watching takes no room");
    // An UNWATCH before a WATCH in the same batch makes room for it.
    let unwatch = vec!["UNWATCH".to_string()];
    let refill = watch_args((0..limit).map(|i| format!("z{i}")));
    c.send_raw(&pipeline(&[unwatch, refill]));
    assert_eq!(c.read(), simple("OK"));
    assert_eq!(c.read(), simple("OK"), "the UNWATCH before it ran first");
}

/// UNWATCH (and DISCARD) forget the WATCHes before them and only those, pipelined or
/// not: a write to a key watched then unwatched does not abort the next EXEC, and one
/// to a key watched again after an UNWATCH does, as in Redis.
#[test]
fn pipelined_unwatch_forgets_the_watch_before_it() {
    let node = Node::start(2, &[]);
    let mut c = Resp::connect(node.resp_addr());
    let mut other = Resp::connect(node.resp_addr());
    let a = key(0, "unwatched");
    for forget in ["UNWATCH", "MULTI\r\nDISCARD"] {
        c.send_raw(format!("WATCH {a}\r\n{forget}\r\n").as_bytes());
        for _ in 0..forget.split("\r\n").count() + 1 {
            assert_eq!(c.read(), simple("OK"), "{forget}");
        }
        assert_eq!(other.cmd(&["SET", &a, "by-other"]), simple("OK"));
        c.line("MULTI");
        c.cmd(&["SET", &a, "mine"]);
        assert_eq!(
            c.line("EXEC"),
            Value::Array(vec![simple("OK")]),
            "EXEC after a pipelined WATCH, {forget}"
        );
    }
    // Watched, then in one batch unwatched and watched again: still watched.
    assert_eq!(c.cmd(&["WATCH", &a]), simple("OK"));
    c.send_raw(format!("UNWATCH\r\nWATCH {a}\r\n").as_bytes());
    assert_eq!(c.read(), simple("OK"));
    assert_eq!(c.read(), simple("OK"));
    assert_eq!(other.cmd(&["SET", &a, "by-other-again"]), simple("OK"));
    c.line("MULTI");
    c.cmd(&["SET", &a, "mine"]);
    assert_eq!(c.line("EXEC"), Value::NullArray, "the second WATCH holds");
}
