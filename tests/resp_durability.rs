//! Durability through the Redis protocol: every write a RESP client saw acknowledged
//! (SET, SET EX, APPEND, SETRANGE, INCRBY, INCRBYFLOAT, PEXPIRE, PERSIST, GETDEL, DEL,
//! MSET) survives a SIGKILL of a sync-mode node. After each restart on the same data
//! dir every key is read back over RESP and over the native protocol, and must hold
//! its last acknowledged value, or be absent if its last acknowledged write removed
//! it, with a TTL exactly when its last acknowledged expiry change gave it one.
//!
//! The model is built from the replies, so it holds only what was acknowledged: an
//! INCRBY's new value is the integer it answered, and a refused command (INCRBY of a
//! non-number) changes nothing.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::resp::Resp;
use common::{Node, Rng};
use ringkv::client::Client;
use ringkv::resp::Value;

const CORES: u32 = 2;
const ROUNDS: usize = 3;
const COMMANDS_PER_ROUND: usize = 600;
/// Commands written at once: acknowledged together, as a pipelining client sees.
const BATCH_MAX: u64 = 16;
const KEYS: u64 = 40;
/// TTLs long enough that nothing expires while the test runs.
const TTL_SECS: u64 = 3600;

/// A key's acknowledged state.
#[derive(Clone, Debug, PartialEq)]
struct Acked {
    value: Vec<u8>,
    ttl: bool,
}

type Model = BTreeMap<String, Acked>;

fn key(rng: &mut Rng) -> String {
    format!("dur:{}", rng.below(KEYS))
}

fn value(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => rng.range(0, 1000).to_string(),
        1 => format!("{}.5", rng.range(0, 99)),
        2 => "x".repeat(rng.range(0, 300) as usize),
        _ => format!("v{}", rng.next_u64()),
    }
}

/// One command, and how its reply changes the model.
fn command(rng: &mut Rng) -> Vec<String> {
    let k = key(rng);
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    match rng.below(12) {
        0 | 1 => s(&["SET", &k, &value(rng)]),
        2 => s(&["SET", &k, &value(rng), "EX", &TTL_SECS.to_string()]),
        3 => s(&["APPEND", &k, &value(rng)]),
        4 => s(&["SETRANGE", &k, &rng.range(0, 40).to_string(), &value(rng)]),
        5 => s(&["INCRBY", &k, &rng.range(0, 100).to_string()]),
        6 => s(&["INCRBYFLOAT", &k, "1.25"]),
        7 => s(&["PEXPIRE", &k, &(TTL_SECS * 1000).to_string()]),
        8 => s(&["PERSIST", &k]),
        9 => s(&["GETDEL", &k]),
        10 => s(&["DEL", &k, &key(rng)]),
        _ => {
            let mut args = s(&["MSET"]);
            for _ in 0..rng.range(1, 4) {
                args.push(key(rng));
                args.push(value(rng));
            }
            args
        }
    }
}

/// Applies an acknowledged reply to the model; panics on a reply that makes no sense.
fn apply(model: &mut Model, args: &[String], reply: &Value) {
    let bytes = |v: &str| v.as_bytes().to_vec();
    if let Value::Error(e) = reply {
        // Refused before anything changed (a number command on a non-number).
        let text = String::from_utf8_lossy(e);
        assert!(
            text.contains("not an integer") || text.contains("not a valid float"),
            "{args:?} -> {text}"
        );
        return;
    }
    let k = args[1].clone();
    match args[0].as_str() {
        "SET" => {
            let ttl = args.len() > 3;
            model.insert(
                k,
                Acked {
                    value: bytes(&args[2]),
                    ttl,
                },
            );
        }
        "APPEND" => {
            let entry = model.entry(k).or_insert(Acked {
                value: Vec::new(),
                ttl: false,
            });
            entry.value.extend_from_slice(args[2].as_bytes());
            assert_eq!(reply, &Value::Integer(entry.value.len() as i64), "{args:?}");
        }
        "SETRANGE" => {
            let offset: usize = args[2].parse().expect("offset");
            let patch = args[3].as_bytes();
            if patch.is_empty() {
                // Nothing written, and an absent key is not created (as in Redis).
                let len = model.get(&k).map_or(0, |a| a.value.len());
                assert_eq!(reply, &Value::Integer(len as i64), "{args:?}");
                return;
            }
            let entry = model.entry(k).or_insert(Acked {
                value: Vec::new(),
                ttl: false,
            });
            if entry.value.len() < offset + patch.len() {
                entry.value.resize(offset + patch.len(), 0);
            }
            entry.value[offset..offset + patch.len()].copy_from_slice(patch);
            assert_eq!(reply, &Value::Integer(entry.value.len() as i64), "{args:?}");
        }
        "INCRBY" | "INCRBYFLOAT" => {
            let new = match reply {
                Value::Integer(n) => n.to_string().into_bytes(),
                Value::Bulk(b) => b.to_vec(),
                other => panic!("{args:?} -> {other:?}"),
            };
            let ttl = model.get(&k).is_some_and(|a| a.ttl);
            model.insert(k, Acked { value: new, ttl });
        }
        "PEXPIRE" | "PERSIST" => {
            let changed = reply == &Value::Integer(1);
            assert!(changed || reply == &Value::Integer(0), "{args:?}");
            if changed {
                model.get_mut(&k).expect("changed a present key").ttl = args[0] == "PEXPIRE";
            }
        }
        "GETDEL" => {
            let was = model.remove(&k).map(|a| a.value);
            let got = match reply {
                Value::Bulk(b) => Some(b.to_vec()),
                _ => None,
            };
            assert_eq!(got, was, "{args:?}");
        }
        "DEL" => {
            let mut removed = 0;
            for k in &args[1..] {
                removed += i64::from(model.remove(k).is_some());
            }
            assert_eq!(reply, &Value::Integer(removed), "{args:?}");
        }
        "MSET" => {
            for pair in args[1..].chunks(2) {
                let acked = Acked {
                    value: bytes(&pair[1]),
                    ttl: false,
                };
                model.insert(pair[0].clone(), acked);
            }
        }
        other => panic!("unexpected command {other}"),
    }
}

/// Runs one round of pipelined batches, acknowledging each reply into the model.
fn write_round(node: &Node, rng: &mut Rng, model: &mut Model) {
    let mut c = Resp::connect(node.resp_addr());
    let mut sent = 0;
    while sent < COMMANDS_PER_ROUND {
        let batch: Vec<Vec<String>> = (0..rng.range(1, BATCH_MAX)).map(|_| command(rng)).collect();
        for args in &batch {
            c.send(args);
        }
        for args in &batch {
            let reply = c.read();
            apply(model, args, &reply);
        }
        sent += batch.len();
    }
}

/// Every key of the model, and the keys it says are absent, read back both ways.
fn verify(node: &Node, model: &Model, round: usize, seed: u64) {
    let mut c = Resp::connect(node.resp_addr());
    let mut native = Client::connect(node.addr(), Duration::from_secs(5)).expect("connect");
    for i in 0..KEYS {
        let k = format!("dur:{i}");
        let want = model.get(&k);
        let ctx = format!("seed {seed}, round {round}, key {k}");
        // Values are ASCII and NUL padding, so a lossy string shows them exactly.
        let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        let want_value = want.map(|a| text(&a.value));
        let got = match c.cmd(&["GET", &k]) {
            Value::Bulk(b) => Some(text(&b)),
            Value::Null => None,
            other => panic!("{ctx}: GET -> {other:?}"),
        };
        assert_eq!(got, want_value, "{ctx}: RESP GET");
        let native_got = native.get(k.as_bytes()).expect("native GET");
        assert_eq!(
            native_got.map(|(v, _)| text(&v)),
            want_value,
            "{ctx}: native GET"
        );
        let ttl = c.cmd(&["TTL", &k]);
        match want {
            None => assert_eq!(ttl, Value::Integer(-2), "{ctx}: TTL of an absent key"),
            Some(a) if a.ttl => assert!(
                matches!(ttl, Value::Integer(t) if t > 0 && t <= TTL_SECS as i64),
                "{ctx}: TTL {ttl:?}, a TTL was acknowledged"
            ),
            Some(_) => assert_eq!(ttl, Value::Integer(-1), "{ctx}: no TTL was acknowledged"),
        }
        let native_ttl = native.ttl(k.as_bytes()).expect("native TTL");
        assert_eq!(
            native_ttl.map(|t| t.is_some()),
            want.map(|a| a.ttl),
            "{ctx}: native TTL"
        );
    }
    assert_eq!(
        c.line("DBSIZE"),
        Value::Integer(model.len() as i64),
        "seed {seed}, round {round}: DBSIZE"
    );
}

#[test]
fn acknowledged_resp_writes_survive_sigkill() {
    let seed = Rng::seed_from_env();
    println!("seed {seed} (RINGKV_SEED replays it)");
    let mut rng = Rng::new(seed);
    let dir = common::temp_dir();
    let data = dir.path().join("data");
    let flags = ["--durability", "sync"];
    let mut model = Model::new();
    let mut node = Node::start_in(&data, CORES, &flags).expect("node starts");
    for round in 0..ROUNDS {
        write_round(&node, &mut rng, &mut model);
        node.kill();
        node = Node::start_in(&data, CORES, &flags).expect("node restarts after SIGKILL");
        verify(&node, &model, round, seed);
    }
    assert!(
        !model.is_empty(),
        "seed {seed}: the workload left keys to check"
    );
}
