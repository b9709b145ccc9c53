//! One store, two protocols: what one front-end writes, the other reads back
//! byte for byte, with the same expiry and counters.

mod common;

use std::time::Duration;

use common::resp::{bulk, simple, Resp};
use common::Node;
use ringkv::client::Client;
use ringkv::resp::Value;

const TIMEOUT: Duration = Duration::from_secs(5);

#[test]
fn values_cross_between_native_and_resp() {
    let node = Node::start(2, &[]);
    let mut native = Client::connect(node.addr(), TIMEOUT).expect("native");
    let mut resp = Resp::connect(node.resp_addr());
    let binary: Vec<u8> = (0..=255u8).chain(b"\r\n$-1\r\n".iter().copied()).collect();

    // Native writes, RESP reads.
    native.set(b"from-native", &binary, None).expect("set");
    assert_eq!(
        resp.cmd(&[&b"GET"[..], b"from-native"]),
        Value::Bulk(binary.clone().into())
    );
    // RESP writes, native reads.
    assert_eq!(
        resp.cmd(&[&b"SET"[..], b"from-resp", &binary]),
        simple("OK")
    );
    let (value, _) = native.get(b"from-resp").expect("get").expect("present");
    assert_eq!(&value[..], &binary[..]);

    // Multi-key writes on either side land on the same shards.
    assert_eq!(resp.line("MSET m0 a m1 b m2 c m3 d"), simple("OK"));
    let got = native
        .mget(&[&b"m0"[..], b"m1", b"m2", b"m3"])
        .expect("mget");
    let values: Vec<&[u8]> = got
        .iter()
        .map(|e| &e.as_ref().expect("present").0[..])
        .collect();
    assert_eq!(values, vec![&b"a"[..], b"b", b"c", b"d"]);

    // Counters and expiry are the same state.
    native.incr(b"n", 41).expect("incr");
    assert_eq!(resp.line("INCR n"), Value::Integer(42));
    assert_eq!(resp.line("EXPIRE n 100"), Value::Integer(1));
    let ttl = native
        .ttl(b"n")
        .expect("ttl")
        .expect("present")
        .expect("has ttl");
    assert!(ttl <= Duration::from_secs(100) && ttl > Duration::from_secs(98));
    native
        .set(b"short", b"v", Some(Duration::from_secs(50)))
        .expect("set");
    assert_eq!(resp.line("TTL short"), Value::Integer(50));
    // Deletes too.
    assert!(native.delete(b"from-resp").expect("delete"));
    assert_eq!(resp.line("EXISTS from-resp"), Value::Integer(0));
    assert_eq!(resp.line("DEL from-native"), Value::Integer(1));
    assert_eq!(native.get(b"from-native").expect("get"), None);
    assert_eq!(resp.line("GET m2"), bulk("c"));
}
