//! Every operation of protocol v1 against a real two-core node, through the
//! shard-aware client (per-core ports) and through the shared port (forwarding).

mod common;

use std::time::Duration;

use common::{eventually, key_on_shard, stat, Node};
use ringkv::client::Client;
use ringkv::proto::Status;

const TIMEOUT: Duration = Duration::from_secs(5);

fn clients(node: &Node) -> [Client; 2] {
    [
        Client::connect(node.addr(), TIMEOUT).expect("routed"),
        Client::connect_unrouted(node.addr(), TIMEOUT).expect("unrouted"),
    ]
}

#[test]
fn single_key_operations_on_every_core_through_both_paths() {
    let node = Node::start(2, &[]);
    for (path, mut c) in clients(&node).into_iter().enumerate() {
        for shard in 0..2 {
            let key = key_on_shard(shard, 2, &format!("ops{path}"));
            let other = key_on_shard(shard, 2, &format!("other{path}"));
            assert_eq!(c.get(&key).unwrap(), None);
            let v1 = c.set(&key, b"one", None).unwrap();
            assert_eq!(c.get(&key).unwrap(), Some((b"one".as_slice().into(), v1)));

            // INSERT only if absent; UPDATE only if present.
            let err = c.insert(&key, b"x", None).unwrap_err();
            assert_eq!(err.status(), Some(Status::Exists));
            let v_ins = c.insert(&other, b"fresh", None).unwrap();
            assert!(v_ins > 0);
            let v2 = c.update(&key, b"two", None).unwrap();
            assert!(v2 > v1, "versions grow: {v1} then {v2}");
            assert_eq!(
                c.update(b"never-written", b"x", None).unwrap_err().status(),
                Some(Status::NotFound)
            );

            // CAS: write and delete only on a matching version.
            let err = c.cas(&key, b"three", v1, None).unwrap_err();
            assert_eq!(err.status(), Some(Status::VersionMismatch));
            assert!(matches!(err, ringkv::client::Error::Status { version, .. } if version == v2));
            let v3 = c.cas(&key, b"three", v2, None).unwrap();
            assert_eq!(c.get(&key).unwrap().unwrap().0.as_ref(), b"three");
            assert_eq!(
                c.cas_delete(&key, v2).unwrap_err().status(),
                Some(Status::VersionMismatch)
            );
            c.cas_delete(&key, v3).unwrap();
            assert_eq!(c.get(&key).unwrap(), None);
            assert_eq!(
                c.cas(&key, b"x", v3, None).unwrap_err().status(),
                Some(Status::NotFound)
            );

            // DELETE.
            assert!(c.delete(&other).unwrap());
            assert!(!c.delete(&other).unwrap());

            // Counters.
            assert_eq!(c.incr(&key, 5).unwrap(), 5);
            assert_eq!(c.incr(&key, -7).unwrap(), -2);
            c.set(&other, b"not a number", None).unwrap();
            assert_eq!(
                c.incr(&other, 1).unwrap_err().status(),
                Some(Status::NotANumber)
            );
            c.set(&other, i64::MAX.to_string().as_bytes(), None)
                .unwrap();
            assert_eq!(
                c.incr(&other, 1).unwrap_err().status(),
                Some(Status::Overflow)
            );
            assert_eq!(
                c.get(&other).unwrap().unwrap().0.as_ref(),
                i64::MAX.to_string().as_bytes(),
                "failed INCR changes nothing"
            );
        }
    }
}

#[test]
fn ttl_expire_persist() {
    let node = Node::start(2, &[]);
    let [mut c, _] = clients(&node);
    // Generous TTL: every write waits for an fdatasync, which a busy disk stretches.
    c.set(b"short", b"v", Some(Duration::from_millis(1500)))
        .unwrap();
    let ttl = c.ttl(b"short").unwrap().unwrap().unwrap();
    assert!(
        ttl <= Duration::from_millis(1500) && ttl > Duration::ZERO,
        "ttl {ttl:?}"
    );
    c.set(b"forever", b"v", None).unwrap();
    assert_eq!(c.ttl(b"forever").unwrap(), Some(None));
    assert_eq!(c.ttl(b"missing").unwrap(), None);

    assert!(c.expire(b"forever", Duration::from_secs(100)).unwrap());
    assert!(c.ttl(b"forever").unwrap().unwrap().is_some());
    assert_eq!(c.persist(b"forever").unwrap(), Some(true));
    assert_eq!(c.persist(b"forever").unwrap(), Some(false));
    assert_eq!(c.ttl(b"forever").unwrap(), Some(None));
    assert_eq!(c.persist(b"missing").unwrap(), None);
    assert!(!c.expire(b"missing", Duration::from_secs(1)).unwrap());

    // Lazy expiry on access.
    assert!(eventually(Duration::from_secs(5), || c
        .get(b"short")
        .unwrap()
        .is_none()));
    // Active expiry: a key nobody reads again still goes (counted by the sweeper).
    let before = stat(&mut c, "expired");
    for i in 0..50 {
        c.set(
            format!("swept:{i}").as_bytes(),
            b"v",
            Some(Duration::from_millis(100)),
        )
        .unwrap();
    }
    assert!(
        eventually(Duration::from_secs(5), || stat(&mut c, "expired")
            >= before + 50),
        "sweeper reclaims expired keys"
    );
    assert_eq!(stat(&mut c, "keys_with_ttl"), 0);
    // EXPIRE 0 removes the key at once.
    c.set(b"now", b"v", None).unwrap();
    assert!(c.expire(b"now", Duration::ZERO).unwrap());
    assert_eq!(c.get(b"now").unwrap(), None);
}

#[test]
fn batches_scan_stats_topology() {
    let node = Node::start(2, &[]);
    let [mut c, mut unrouted] = clients(&node);
    let keys: Vec<Vec<u8>> = (0..300)
        .map(|i| format!("batch:{i}").into_bytes())
        .collect();
    let pairs: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (k.as_slice(), k.as_slice())).collect();
    let versions = c.mset(&pairs, None).unwrap();
    assert_eq!(versions.len(), 300);
    assert!(versions.iter().all(|&v| v > 0));
    let mut wanted: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
    wanted.push(b"batch:missing");
    let got = unrouted.mget(&wanted).unwrap();
    assert_eq!(got.len(), 301);
    for (i, entry) in got.iter().take(300).enumerate() {
        let (value, version) = entry.as_ref().expect("present");
        assert_eq!(value.as_ref(), keys[i].as_slice());
        assert_eq!(*version, versions[i]);
    }
    assert!(got[300].is_none());

    c.set(b"other:1", b"x", None).unwrap();
    let mut scanned: Vec<Vec<u8>> = c
        .scan_all(b"batch:")
        .unwrap()
        .into_iter()
        .map(|k| k.to_vec())
        .collect();
    scanned.sort();
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(
        scanned, expected,
        "SCAN returns every key with the prefix exactly once"
    );
    assert_eq!(c.scan_all(b"").unwrap().len(), 301);
    // Small pages walk both shards.
    let (mut cursor, mut n) = (0, 0);
    loop {
        let (next, page) = c.scan(cursor, 7, b"").unwrap();
        assert!(page.len() <= 7);
        n += page.len();
        if next == 0 {
            break;
        }
        cursor = next;
    }
    assert_eq!(n, 301);
    let bad = c.scan(99 << 40, 10, b"").unwrap_err();
    assert_eq!(bad.status(), Some(Status::Invalid));

    assert_eq!(stat(&mut c, "keys"), 301);
    assert_eq!(stat(&mut c, "cores"), 2);
    let topology = c.topology().unwrap().clone();
    assert_eq!(topology.shard_count, 2);
    assert_eq!(topology.shared_port, node.port);
    assert_eq!(topology.shard_ports, node.core_ports);
    c.ping().unwrap();
}

#[test]
fn cli_commands_and_exit_codes() {
    let node = Node::start(2, &[]);
    let addr = node.addr().to_string();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringkv"))
            .args(args)
            .args(["--addr", &addr])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    assert_eq!(run(&["set", "k", "hello"]).0, Some(0));
    assert_eq!(run(&["get", "k"]).1, "hello");
    let (code, _, err) = run(&["get", "absent"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not found"), "{err}");
    assert_eq!(run(&["incr", "n", "41"]).1, "41");
    assert_eq!(run(&["decr", "n"]).1, "40");
    let (code, _, err) = run(&["incr", "k"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("NOT_A_NUMBER"), "{err}");
    assert_eq!(run(&["mset", "a", "1", "b", "2"]).0, Some(0));
    assert_eq!(run(&["mget", "a", "zz", "b"]).1, "1\n(nil)\n2");
    assert_eq!(run(&["set", "t", "v", "--ttl", "100"]).0, Some(0));
    assert_eq!(run(&["ttl", "t"]).1, "100");
    assert_eq!(run(&["persist", "t"]).0, Some(0));
    assert_eq!(run(&["ttl", "t"]).1, "-1");
    assert_eq!(run(&["del", "t"]).0, Some(0));
    assert_eq!(run(&["del", "t"]).0, Some(1));
    assert!(run(&["stats"]).1.contains("keys 4"));
    assert!(run(&["topology"]).1.contains("shards 2"));
    let (code, _, err) = std::process::Command::new(env!("CARGO_BIN_EXE_ringkv"))
        .args(["ping", "--addr", "127.0.0.1:1"])
        .output()
        .map(|o| {
            (
                o.status.code(),
                (),
                String::from_utf8_lossy(&o.stderr).to_string(),
            )
        })
        .unwrap();
    assert_eq!(code, Some(2));
    assert!(err.contains("cannot connect"), "{err}");
}
