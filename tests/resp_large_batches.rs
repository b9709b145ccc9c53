//! Big requests stay correct across the bounds that split them: multi-key commands
//! larger than one forwarded batch, pipelines deeper than PIPELINE_DEPTH_MAX, the
//! largest value, replies larger than the output flush threshold.

mod common;

use common::resp::{simple, Resp};
use common::Node;
use ringkv::constants::{FORWARD_BATCH_MAX, PIPELINE_DEPTH_MAX, VALUE_SIZE_MAX};
use ringkv::resp::Value;

#[test]
fn large_commands_pipelines_and_values() {
    let node = Node::start(2, &[]);
    let mut c = Resp::connect(node.resp_addr());
    let n = 3 * FORWARD_BATCH_MAX as usize;
    let keys: Vec<String> = (0..n).map(|i| format!("big:{i}")).collect();

    let mut mset = vec!["MSET".to_string()];
    for (i, key) in keys.iter().enumerate() {
        mset.push(key.clone());
        mset.push(i.to_string());
    }
    assert_eq!(c.cmd(&mset), simple("OK"));
    let mut mget = vec!["MGET".to_string()];
    mget.extend(keys.iter().cloned());
    let Value::Array(values) = c.cmd(&mget) else {
        panic!("MGET answers an array")
    };
    let want: Vec<Value> = (0..n)
        .map(|i| Value::Bulk(i.to_string().into_bytes().into()))
        .collect();
    assert_eq!(values, want);

    // A pipeline deeper than one read batch, answered in order.
    let depth = 2 * PIPELINE_DEPTH_MAX as usize + 7;
    let mut pipeline = bytes::BytesMut::new();
    for i in 0..depth {
        ringkv::resp::encode_command(&mut pipeline, &["INCRBY", "pipelined", &i.to_string()]);
    }
    c.send_raw(&pipeline);
    let mut total = 0i64;
    for i in 0..depth {
        total += i as i64;
        assert_eq!(c.read(), Value::Integer(total));
    }

    // The largest value, through SET and GET, and a reply far above the output
    // flush threshold (MGET of it 8 times: 32 MiB).
    let value = vec![b'v'; VALUE_SIZE_MAX as usize];
    assert_eq!(c.cmd(&[&b"SET"[..], b"huge", &value]), simple("OK"));
    let Value::Array(copies) = c.cmd(&[
        "MGET", "huge", "huge", "huge", "huge", "huge", "huge", "huge", "huge",
    ]) else {
        panic!("MGET answers an array")
    };
    assert_eq!(copies.len(), 8);
    assert!(copies
        .iter()
        .all(|v| *v == Value::Bulk(value.clone().into())));

    let mut del = vec!["DEL".to_string()];
    del.extend(keys.iter().cloned());
    assert_eq!(c.cmd(&del), Value::Integer(n as i64));
    assert_eq!(c.line("DBSIZE"), Value::Integer(2));
}
