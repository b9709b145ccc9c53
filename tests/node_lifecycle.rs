//! Start-up and shutdown: graceful drain on SIGTERM, the data-dir lock, bad settings.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::{temp_dir, Node};
use ringkv::client::Client;
use ringkv::proto::op::encode_request;
use ringkv::proto::{check, Request, Response, SetMode, Status, MAGIC_RESPONSE};

#[test]
fn sigterm_answers_requests_in_flight_then_exits_zero() {
    let mut node = Node::start(2, &[]);
    let mut s = TcpStream::connect(node.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = BytesMut::new();
    let n = 1000;
    for i in 0..n {
        let key = Bytes::from(format!("drain:{i}"));
        encode_request(
            &mut out,
            i,
            0,
            &Request::Set {
                key,
                value: Bytes::from_static(b"v"),
                ttl_ms: 0,
                mode: SetMode::Always,
            },
        )
        .unwrap();
    }
    s.write_all(&out).unwrap();
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 8192];
    // Wait until the node is answering, then SIGTERM while the pipeline is in flight.
    while buf.is_empty() {
        let k = s.read(&mut chunk).unwrap();
        buf.extend_from_slice(&chunk[..k]);
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(node.pid(), libc::SIGTERM) };
    let mut answered = 0;
    loop {
        while let Ok(Some((h, len))) = check(&buf, MAGIC_RESPONSE) {
            let r = Response::from_frame(h, buf.split_to(len).freeze());
            assert_eq!(r.status, Some(Status::Ok));
            answered += 1;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    }
    // Every request the node read before stopping was answered; none half-answered.
    assert!(buf.is_empty(), "no partial response");
    assert!(answered > 0, "requests read before the signal are answered");
    let status = node.terminate();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn second_node_on_the_same_data_dir_is_refused() {
    let node = Node::start(1, &[]);
    let err = match Node::start_in(&node.data_dir, 1, &[]) {
        Ok(_) => panic!("two nodes share a data dir"),
        Err(e) => e,
    };
    assert!(err.contains("in use by another ringkv process"), "{err}");
    let mut c = Client::connect(node.addr(), Duration::from_secs(5)).unwrap();
    c.ping().unwrap();
}

#[test]
fn bad_settings_fail_with_a_clear_message() {
    let dir = temp_dir();
    let err = Node::start_in(dir.path(), 0, &[])
        .err()
        .expect("zero cores refused");
    assert!(err.contains("cores must be between"), "{err}");
    let config = dir.path().join("node.toml");
    std::fs::write(&config, "prot = 1\n").unwrap();
    let err = Node::start_in(
        &dir.path().join("d"),
        1,
        &["--config", config.to_str().unwrap()],
    )
    .err()
    .expect("typo refused");
    assert!(err.contains("unknown field"), "{err}");
    // A config file whose keys mirror the flags works.
    std::fs::write(&config, "idle-timeout-secs = 30\nmax-connections = 5\n").unwrap();
    let node = Node::start_in(
        &dir.path().join("d2"),
        1,
        &["--config", config.to_str().unwrap()],
    )
    .unwrap();
    Client::connect(node.addr(), Duration::from_secs(5))
        .unwrap()
        .ping()
        .unwrap();
}
