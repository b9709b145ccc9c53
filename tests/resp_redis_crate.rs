//! The `redis` crate (sync API) runs a scripted workload against a two-core node:
//! typed commands, pipelines, a MULTI/EXEC pipeline on one shard, and RESP3.

mod common;

use common::{key_on_shard, Node};
use redis::{Commands, RedisResult};

fn url(node: &Node, resp3: bool) -> String {
    let port = node.resp_port.expect("resp");
    if resp3 {
        format!("redis://127.0.0.1:{port}/?protocol=resp3")
    } else {
        format!("redis://127.0.0.1:{port}/")
    }
}

fn workload(node: &Node, resp3: bool) -> RedisResult<()> {
    let client = redis::Client::open(url(node, resp3))?;
    let mut c = client.get_connection()?;
    let () = redis::cmd("FLUSHALL").query(&mut c)?;
    let () = c.set("greeting", "hello")?;
    let got: String = c.get("greeting")?;
    assert_eq!(got, "hello");
    let missing: Option<String> = c.get("missing")?;
    assert_eq!(missing, None);
    let n: i64 = c.incr("counter", 5)?;
    assert_eq!(n, 5);
    let n: i64 = c.decr("counter", 2)?;
    assert_eq!(n, 3);
    let () = c.mset(&[("a", "1"), ("b", "2"), ("c", "3")])?;
    let values: Vec<Option<String>> = c.mget(&["a", "b", "nope", "c"])?;
    assert_eq!(
        values,
        vec![Some("1".into()), Some("2".into()), None, Some("3".into())]
    );
    let deleted: i64 = c.del(&["a", "b", "nope"])?;
    assert_eq!(deleted, 2);
    let exists: i64 = c.exists(&["c", "c", "nope"])?;
    assert_eq!(exists, 2);
    let () = c.set_ex("temp", "v", 100)?;
    let ttl: i64 = c.ttl("temp")?;
    assert_eq!(ttl, 100);
    let changed: bool = c.persist("temp")?;
    assert!(changed);
    let ttl: i64 = c.ttl("temp")?;
    assert_eq!(ttl, -1);
    let len: i64 = c.append("temp", "xyz")?;
    assert_eq!(len, 4);
    let range: String = c.getrange("temp", 1, -1)?;
    assert_eq!(range, "xyz");
    for i in 0..30 {
        let () = c.set(format!("it:{i}"), i)?;
    }
    let mut keys: Vec<String> = c.scan_match("it:*")?.collect::<RedisResult<_>>()?;
    keys.sort();
    let mut want: Vec<String> = (0..30).map(|i| format!("it:{i}")).collect();
    want.sort();
    assert_eq!(keys, want);

    // A plain pipeline: many commands, one round trip, replies in order.
    let mut pipe = redis::pipe();
    for i in 0..100 {
        pipe.set(format!("p:{i}"), i).ignore();
    }
    pipe.get("p:42").incr("p:42", 1);
    let (forty_two, incremented): (i64, i64) = pipe.query(&mut c)?;
    assert_eq!((forty_two, incremented), (42, 43));

    // MULTI/EXEC on keys of one shard.
    let a = String::from_utf8(key_on_shard(0, 2, "crate-tx")).expect("ascii");
    let (set_ok, value): (bool, i64) = redis::pipe()
        .atomic()
        .set(&a, 10)
        .incr(&a, 1)
        .query(&mut c)
        .map(|((), v): ((), i64)| (true, v))?;
    assert!(set_ok);
    assert_eq!(value, 11);

    // Errors come back with Redis's code and text.
    let err = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .arg("NX")
        .arg("XX")
        .query::<()>(&mut c)
        .expect_err("syntax error");
    assert_eq!(err.code(), Some("ERR"), "{err}");
    assert!(err.to_string().contains("syntax error"), "{err}");
    let info: String = redis::cmd("INFO").arg("server").query(&mut c)?;
    assert!(info.contains("redis_version:7.0.15"), "{info}");
    Ok(())
}

#[test]
fn redis_crate_workload_resp2() {
    let node = Node::start(2, &[]);
    workload(&node, false).expect("workload over RESP2");
}

#[test]
fn redis_crate_workload_resp3() {
    let node = Node::start(2, &[]);
    workload(&node, true).expect("workload over RESP3");
}
