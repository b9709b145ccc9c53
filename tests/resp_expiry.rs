//! Expiry over RESP behaves as in Redis: relative and absolute times, past times
//! delete, GT/LT treat "no expiry" as infinite, keys vanish when due (read or not).

mod common;

use std::time::Duration;

use common::resp::{bulk, simple, Resp};
use common::{eventually, Node};
use ringkv::resp::Value;

fn int(n: i64) -> Value {
    Value::Integer(n)
}

#[test]
fn expiry_semantics_match_redis() {
    let node = Node::start(2, &[]);
    let mut c = Resp::connect(node.resp_addr());
    // PX: gone once due, and TTL says -2.
    // Generous margins: each write waits for an fdatasync, which a busy disk stretches.
    assert_eq!(c.line("SET a v PX 1000"), simple("OK"));
    assert_eq!(c.line("GET a"), bulk("v"));
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(c.line("GET a"), Value::Null);
    assert_eq!(c.line("TTL a"), int(-2));
    // A time in the past deletes at once and answers 1.
    c.line("SET b v");
    assert_eq!(c.line("EXPIRE b -10"), int(1));
    assert_eq!(c.line("EXISTS b"), int(0));
    c.line("SET b v");
    assert_eq!(c.line("PEXPIREAT b 1"), int(1));
    assert_eq!(c.line("EXISTS b"), int(0));
    assert_eq!(c.line("SET b v EXAT 1"), simple("OK"));
    assert_eq!(c.line("GET b"), Value::Null);
    // GT / LT: no expiry counts as infinite.
    c.line("SET g v");
    assert_eq!(c.line("EXPIRE g 100 GT"), int(0));
    assert_eq!(c.line("EXPIRE g 100 LT"), int(1));
    assert_eq!(c.line("EXPIRE g 50 GT"), int(0));
    assert_eq!(c.line("EXPIRE g 200 GT"), int(1));
    assert_eq!(c.line("EXPIRE g 300 XX LT"), int(0));
    assert_eq!(c.line("EXPIRE g 100 NX"), int(0));
    assert_eq!(c.line("TTL g"), int(200));
    // KEEPTTL keeps it; a plain SET clears it; INCR and APPEND keep it.
    assert_eq!(c.line("SET g w KEEPTTL"), simple("OK"));
    assert_eq!(c.line("TTL g"), int(200));
    c.line("SET n 1 EX 100");
    c.line("INCR n");
    c.line("APPEND n 0");
    assert_eq!(c.line("TTL n"), int(100));
    assert_eq!(c.line("GET n"), bulk("20"));
    assert_eq!(c.line("SET g w"), simple("OK"));
    assert_eq!(c.line("TTL g"), int(-1));
    // PERSIST, EXPIRETIME, GETEX.
    c.line("SET p v EXAT 4102444800");
    assert_eq!(c.line("EXPIRETIME p"), int(4_102_444_800));
    assert_eq!(c.line("PEXPIRETIME p"), int(4_102_444_800_000));
    assert_eq!(c.line("PERSIST p"), int(1));
    assert_eq!(c.line("PERSIST p"), int(0));
    assert_eq!(c.line("EXPIRETIME p"), int(-1));
    assert_eq!(c.line("GETEX p PX 100"), bulk("v"));
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(c.line("GETEX p"), Value::Null);
    // Keys that are never read again still go (the sweeper), as Redis's active
    // expiry does.
    for i in 0..200 {
        c.line(&format!("SET swept:{i} v PX 50"));
    }
    // DBSIZE counts keys not reclaimed yet, so it drops only through the sweeper.
    assert!(eventually(Duration::from_secs(5), || c.line("DBSIZE") == int(2)));
}
