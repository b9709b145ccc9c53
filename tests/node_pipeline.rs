//! Pipelining and concurrency: thousands of requests in flight on one connection,
//! answered in order; many clients at once on both kinds of port.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{key_on_shard, stat, Node};
use ringkv::client::{Client, Conn};
use ringkv::proto::{Request, SetMode, Status};

const TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn thousands_of_pipelined_requests_come_back_in_order() {
    let node = Node::start(2, &[]);
    // Raw connection to the shared port: every other key is forwarded to the other core.
    let mut conn = Conn::connect(node.addr(), TIMEOUT).unwrap();
    let n = 5_000u32;
    let mut ids = Vec::new();
    for i in 0..n {
        let key = Bytes::from(format!("pipe:{i}"));
        let request = if i % 2 == 0 {
            Request::Set {
                key,
                value: Bytes::from(i.to_string()),
                ttl_ms: 0,
                mode: SetMode::Always,
            }
        } else {
            Request::Get {
                key: Bytes::from(format!("pipe:{}", i - 1)),
            }
        };
        ids.push(conn.queue(&request, 0).unwrap());
    }
    conn.flush().unwrap();
    for (i, id) in ids.into_iter().enumerate() {
        let r = conn.receive().unwrap();
        assert_eq!(r.header.request_id, id, "responses keep request order");
        assert_eq!(r.status, Some(Status::Ok));
        if i % 2 == 1 {
            assert_eq!(
                r.value.as_ref(),
                (i - 1).to_string().as_bytes(),
                "GET sees the SET queued before it"
            );
        }
    }
    let mut c = Client::connect(node.addr(), TIMEOUT).unwrap();
    assert!(
        stat(&mut c, "requests_forwarded") > 0,
        "the shared port forwards to the owner"
    );

    // The client's own pipelining, routed per core.
    let requests: Vec<Request> = (0..2_000)
        .map(|i| Request::Get {
            key: Bytes::from(format!("pipe:{}", i * 2)),
        })
        .collect();
    let responses = c.pipeline(&requests).unwrap();
    for (i, r) in responses.iter().enumerate() {
        assert_eq!(r.value.as_ref(), (i * 2).to_string().as_bytes());
    }
}

#[test]
fn per_core_ports_serve_their_own_keys_without_forwarding() {
    let node = Node::start(2, &[]);
    let mut c = Client::connect_unrouted(node.addr(), TIMEOUT).unwrap();
    // STATS itself asks the other core for its counters: one forward per call.
    let base = stat(&mut c, "requests_forwarded");
    for core in 0..2u32 {
        let mut c = Client::connect_unrouted(node.core_addr(core as usize), TIMEOUT).unwrap();
        for i in 0..100 {
            let key = key_on_shard(core, 2, &format!("own{i}"));
            c.set(&key, b"v", None).unwrap();
        }
    }
    assert_eq!(
        stat(&mut c, "requests_forwarded"),
        base + 1,
        "keys sent to their own core never hop"
    );
    // A key sent to the wrong core's port is still answered correctly.
    let mut wrong = Client::connect_unrouted(node.core_addr(1), TIMEOUT).unwrap();
    let key = key_on_shard(0, 2, "own0");
    assert!(wrong.get(&key).unwrap().is_some());
    assert_eq!(
        stat(&mut c, "requests_forwarded"),
        base + 3,
        "the key hopped once"
    );
}

#[test]
fn many_concurrent_clients_see_their_own_writes() {
    let node = Node::start(2, &[]);
    let addr = node.addr();
    let threads: Vec<_> = (0..32)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = if t % 2 == 0 {
                    Client::connect(addr, TIMEOUT)
                } else {
                    Client::connect_unrouted(addr, TIMEOUT)
                }
                .unwrap();
                for i in 0..200 {
                    let key = format!("c{t}:{i}");
                    let version = c.set(key.as_bytes(), key.as_bytes(), None).unwrap();
                    let (value, v) = c.get(key.as_bytes()).unwrap().unwrap();
                    assert_eq!((value.as_ref(), v), (key.as_bytes(), version));
                    c.incr(b"shared-counter", 1).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut c = Client::connect(addr, TIMEOUT).unwrap();
    assert_eq!(
        c.get(b"shared-counter").unwrap().unwrap().0.as_ref(),
        (32 * 200).to_string().as_bytes(),
        "no lost increments"
    );
    assert_eq!(stat(&mut c, "keys"), 32 * 200 + 1);
}
