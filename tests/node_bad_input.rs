//! Hostile and broken clients: each gets a clear error and/or a clean close, is
//! counted in STATS, and never disturbs other connections.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::{eventually, node_stat, stat, Node};
use ringkv::client::Client;
use ringkv::constants::{FRAME_BODY_SIZE_MAX, KEY_SIZE_MAX, VALUE_SIZE_MAX};
use ringkv::proto::frame::{Header, HEADER_SIZE, MAGIC_REQUEST};
use ringkv::proto::op::encode_request;
use ringkv::proto::{check, Request, Response, Status, MAGIC_RESPONSE, PROTOCOL_VERSION};

const TIMEOUT: Duration = Duration::from_secs(5);

fn raw(node: &Node) -> TcpStream {
    let s = TcpStream::connect(node.addr()).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s
}

/// Reads responses until the server closes the connection (or the timeout hits).
fn read_until_close(s: &mut TcpStream) -> (Vec<Response>, bool) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let closed = loop {
        match s.read(&mut chunk) {
            Ok(0) => break true,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    let mut bytes = BytesMut::from(&buf[..]);
    let mut responses = Vec::new();
    while let Ok(Some((h, len))) = check(&bytes, MAGIC_RESPONSE) {
        responses.push(Response::from_frame(h, bytes.split_to(len).freeze()));
    }
    (responses, closed)
}

/// Reads exactly `n` responses.
fn read_n(s: &mut TcpStream, n: usize) -> Vec<Response> {
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 4096];
    let mut responses = Vec::new();
    while responses.len() < n {
        if let Some((h, len)) = check(&buf, MAGIC_RESPONSE).unwrap() {
            responses.push(Response::from_frame(h, buf.split_to(len).freeze()));
            continue;
        }
        let got = s.read(&mut chunk).unwrap();
        assert!(got > 0, "closed before {n} responses");
        buf.extend_from_slice(&chunk[..got]);
    }
    assert!(buf.is_empty(), "no more than {n} responses");
    responses
}

fn header(opcode: u8, key_len: u16, body_len: u32) -> Header {
    Header {
        magic: MAGIC_REQUEST,
        proto_version: PROTOCOL_VERSION,
        opcode,
        extras_len: 0,
        key_len,
        flags_or_status: 0,
        body_len,
        request_id: 9,
        version: 0,
    }
}

fn assert_healthy(node: &Node) {
    let mut c = Client::connect(node.addr(), TIMEOUT).unwrap();
    c.set(b"healthy", b"yes", None).unwrap();
    assert_eq!(c.get(b"healthy").unwrap().unwrap().0.as_ref(), b"yes");
}

#[test]
fn malformed_frames_get_an_error_and_a_close() {
    let node = Node::start(2, &[]);
    let cases: Vec<(&str, Vec<u8>, Status)> = vec![
        (
            "RESP on the native port",
            b"*1\r\n$4\r\nPING\r\n".to_vec(),
            Status::BadFrame,
        ),
        (
            "bad protocol version",
            {
                let mut h = header(0x01, 0, 0);
                h.proto_version = 77;
                h.encode().to_vec()
            },
            Status::BadVersion,
        ),
        (
            "oversized frame",
            header(0x11, 1, FRAME_BODY_SIZE_MAX + 1).encode().to_vec(),
            Status::BadFrame,
        ),
        (
            "key longer than body",
            header(0x10, 10, 3).encode().to_vec(),
            Status::BadFrame,
        ),
    ];
    for (name, bytes, status) in cases {
        let mut s = raw(&node);
        s.write_all(&bytes).unwrap();
        let (responses, closed) = read_until_close(&mut s);
        assert!(closed, "{name}: connection closed");
        assert_eq!(responses.len(), 1, "{name}: one error response");
        assert_eq!(responses[0].status, Some(status), "{name}");
        assert!(!responses[0].value.is_empty(), "{name}: the error says why");
    }
    let mut c = Client::connect(node.addr(), TIMEOUT).unwrap();
    assert_eq!(stat(&mut c, "frames_malformed"), 4);
    assert_healthy(&node);
}

#[test]
fn bad_requests_are_refused_and_the_connection_stays_usable() {
    let node = Node::start(2, &[]);
    let mut s = raw(&node);
    // Unknown opcode, with a body the server must skip.
    let mut frame = header(0x7F, 0, 3).encode().to_vec();
    frame.extend_from_slice(b"abc");
    // Bad extras for SET (5 bytes).
    let mut set = header(0x11, 1, 6);
    set.extras_len = 5;
    frame.extend_from_slice(&set.encode());
    frame.extend_from_slice(b"12345k");
    // Unknown flag bits.
    let mut get = header(0x10, 1, 1);
    get.flags_or_status = 0x8000;
    frame.extend_from_slice(&get.encode());
    frame.push(b'k');
    // Too large key and value, encoded by hand past the client's own checks.
    let big_key = vec![b'k'; KEY_SIZE_MAX as usize + 1];
    frame.extend_from_slice(&header(0x10, big_key.len() as u16, big_key.len() as u32).encode());
    frame.extend_from_slice(&big_key);
    let big_value = vec![0u8; VALUE_SIZE_MAX as usize + 1];
    frame.extend_from_slice(&header(0x11, 1, 1 + big_value.len() as u32).encode());
    frame.push(b'k');
    frame.extend_from_slice(&big_value);
    // A truncated MGET key list.
    frame.extend_from_slice(&header(0x16, 0, 4).encode());
    frame.extend_from_slice(&[2, 0, 9, 0]);
    s.write_all(&frame).unwrap();
    let expect = [
        Status::UnknownOpcode,
        Status::Invalid,
        Status::Invalid,
        Status::TooLarge,
        Status::TooLarge,
        Status::Invalid,
    ];
    for (r, status) in read_n(&mut s, expect.len()).into_iter().zip(expect) {
        assert_eq!(
            r.status,
            Some(status),
            "{:?}",
            String::from_utf8_lossy(&r.value)
        );
        assert_eq!(r.header.request_id, 9);
    }
    // Same connection still works.
    let mut out = BytesMut::new();
    encode_request(
        &mut out,
        10,
        0,
        &Request::Ping {
            payload: Bytes::from_static(b"hi"),
        },
    )
    .unwrap();
    s.write_all(&out).unwrap();
    let r = read_n(&mut s, 1).remove(0);
    assert_eq!(
        (r.status, r.value.as_ref()),
        (Some(Status::Ok), b"hi".as_ref())
    );
    let mut c = Client::connect(node.addr(), TIMEOUT).unwrap();
    assert_eq!(stat(&mut c, "requests_refused"), 6);
}

#[test]
fn half_frame_stall_and_non_reader_are_timed_out_without_hurting_others() {
    let node = Node::start(2, &["--idle-timeout-secs", "1"]);
    // Half a frame, then silence.
    let mut stalled = raw(&node);
    stalled
        .write_all(&header(0x10, 3, 3).encode()[..10])
        .unwrap();
    // A client that pipelines many large GETs and never reads the answers.
    let mut c = Client::connect(node.addr(), TIMEOUT).unwrap();
    c.set(b"big", &vec![7u8; 1 << 20], None).unwrap();
    let mut hog = TcpStream::connect(node.addr()).unwrap();
    let mut out = BytesMut::new();
    for id in 0..200 {
        encode_request(
            &mut out,
            id,
            0,
            &Request::Get {
                key: Bytes::from_static(b"big"),
            },
        )
        .unwrap();
    }
    hog.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = hog.write_all(&out);
    // Meanwhile other clients are served promptly.
    let started = Instant::now();
    for i in 0..100 {
        c.set(format!("k{i}").as_bytes(), b"v", None).unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    let (_, closed) = read_until_close(&mut stalled);
    assert!(
        closed,
        "a stalled half frame is closed after the idle timeout"
    );
    assert!(
        eventually(Duration::from_secs(10), || node_stat(
            &node,
            "connections_timed_out"
        ) >= 2),
        "both are counted"
    );
    assert_healthy(&node);
}

#[test]
fn connections_over_the_limit_are_refused_with_busy() {
    let node = Node::start(2, &["--max-connections", "3"]);
    let mut held: Vec<Client> = (0..3)
        .map(|_| Client::connect_unrouted(node.addr(), TIMEOUT).unwrap())
        .collect();
    for c in &mut held {
        c.ping().unwrap();
    }
    let mut extra = raw(&node);
    let (responses, closed) = read_until_close(&mut extra);
    assert!(closed);
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].status, Some(Status::Busy));
    drop(held.pop());
    // A slot frees up once a connection closes.
    let mut fresh = None;
    assert!(eventually(Duration::from_secs(5), || {
        fresh = Client::connect_unrouted(node.addr(), TIMEOUT).ok();
        fresh.as_mut().is_some_and(|c| c.ping().is_ok())
    }));
    assert!(stat(&mut fresh.expect("connected"), "connections_rejected") >= 1);
    for c in &mut held {
        c.ping().unwrap();
    }
}

#[test]
fn header_constants_match_the_spec() {
    assert_eq!(HEADER_SIZE, 24);
}
