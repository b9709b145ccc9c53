//! The wire format, pinned: every request and response shape encodes to the bytes in
//! `proto-spec/vectors/native.txt`, and those bytes decode back to the same thing.
//! A second-language client checks itself against the same file.
//!
//! To regenerate after a deliberate format change: `RINGKV_BLESS=1 cargo test --test
//! golden_vectors`, then review the diff.

use bytes::{Bytes, BytesMut};
use ringkv::proto::op::{encode_response, FLAG_SYNC};
use ringkv::proto::{
    check, decode_request, encode_request, Request, SetMode, Status, Topology, MAGIC_REQUEST,
    MAGIC_RESPONSE,
};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/proto-spec/vectors/native.txt");

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn requests() -> Vec<(&'static str, u32, u16, Request)> {
    vec![
        ("ping", 1, 0, Request::Ping { payload: b("hi") }),
        ("hello v1", 2, 0, Request::Hello { min: 1, max: 1 }),
        ("get", 3, 0, Request::Get { key: b("key") }),
        (
            "set no ttl",
            4,
            0,
            Request::Set {
                key: b("key"),
                value: b("val"),
                ttl_ms: 0,
                mode: SetMode::Always,
            },
        ),
        (
            "set ttl 1000 ms, sync flag",
            5,
            FLAG_SYNC,
            Request::Set {
                key: b("key"),
                value: b("val"),
                ttl_ms: 1000,
                mode: SetMode::Always,
            },
        ),
        (
            "insert",
            6,
            0,
            Request::Set {
                key: b("k"),
                value: b("v"),
                ttl_ms: 0,
                mode: SetMode::IfAbsent,
            },
        ),
        (
            "update",
            7,
            0,
            Request::Set {
                key: b("k"),
                value: b("v"),
                ttl_ms: 0,
                mode: SetMode::IfPresent,
            },
        ),
        ("delete", 8, 0, Request::Delete { key: b("k") }),
        (
            "cas write expecting version 42",
            9,
            0,
            Request::Cas {
                key: b("k"),
                value: b("v2"),
                ttl_ms: 0,
                expected: 42,
                delete: false,
            },
        ),
        (
            "cas delete expecting version 43",
            10,
            0,
            Request::Cas {
                key: b("k"),
                value: Bytes::new(),
                ttl_ms: 0,
                expected: 43,
                delete: true,
            },
        ),
        (
            "mget two keys",
            11,
            0,
            Request::MGet {
                keys: vec![b("a"), b("bc")],
            },
        ),
        (
            "mset two pairs",
            12,
            0,
            Request::MSet {
                pairs: vec![(b("a"), b("1")), (b("bc"), b("22"))],
                ttl_ms: 0,
            },
        ),
        (
            "expire 5000 ms",
            13,
            0,
            Request::Expire {
                key: b("k"),
                ttl_ms: 5000,
            },
        ),
        ("persist", 14, 0, Request::Persist { key: b("k") }),
        ("ttl", 15, 0, Request::Ttl { key: b("k") }),
        (
            "incr by 5",
            16,
            0,
            Request::Incr {
                key: b("n"),
                delta: 5,
            },
        ),
        (
            "decr by 2",
            17,
            0,
            Request::Incr {
                key: b("n"),
                delta: -2,
            },
        ),
        (
            "scan from start, 100 keys, prefix user:",
            18,
            0,
            Request::Scan {
                cursor: 0,
                count: 100,
                prefix: b("user:"),
            },
        ),
        ("stats", 19, 0, Request::Stats),
        ("topology", 20, 0, Request::Topology),
    ]
}

fn responses() -> Vec<(&'static str, Vec<u8>)> {
    let frame = |opcode: u8, id: u32, status: Status, version: u64, extras: &[u8], value: &[u8]| {
        let mut out = BytesMut::new();
        encode_response(&mut out, opcode, id, status, version, extras, value);
        out.to_vec()
    };
    let mut topology = BytesMut::new();
    Topology {
        shard_count: 2,
        hash: 1,
        shared_port: 7878,
        shard_ports: vec![7879, 7880],
    }
    .encode(&mut topology);
    vec![
        (
            "get hit, version 7",
            frame(0x10, 3, Status::Ok, 7, &[], b"val"),
        ),
        ("get miss", frame(0x10, 3, Status::NotFound, 0, &[], &[])),
        (
            "insert refused, current version 9",
            frame(0x12, 6, Status::Exists, 9, &[], &[]),
        ),
        (
            "cas mismatch, current version 44",
            frame(0x15, 9, Status::VersionMismatch, 44, &[], &[]),
        ),
        (
            "incr result 7, version 12",
            frame(0x1B, 16, Status::Ok, 12, &7i64.to_le_bytes(), &[]),
        ),
        (
            "ttl none",
            frame(0x1A, 15, Status::Ok, 0, &(-1i64).to_le_bytes(), &[]),
        ),
        (
            "topology 2 shards",
            frame(0x31, 20, Status::Ok, 0, &[], &topology),
        ),
        (
            "unknown opcode refusal",
            frame(
                0x7F,
                21,
                Status::UnknownOpcode,
                0,
                &[],
                b"unknown opcode 0x7f",
            ),
        ),
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn render() -> String {
    let mut text = String::from(
        "# ringkv native protocol v1 golden vectors: `request|response <description>` then the frame in hex.\n\
         # Generated by tests/golden_vectors.rs; see proto-spec/protocol.md for the layout.\n",
    );
    for (name, id, flags, request) in requests() {
        let mut out = BytesMut::new();
        encode_request(&mut out, id, flags, &request).unwrap();
        text.push_str(&format!("\nrequest {name}\n{}\n", hex(&out)));
    }
    for (name, bytes) in responses() {
        text.push_str(&format!("\nresponse {name}\n{}\n", hex(&bytes)));
    }
    text
}

fn parse_file(text: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut lines = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty());
    while let (Some(name), Some(hex)) = (lines.next(), lines.next()) {
        let bytes = hex
            .split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect();
        out.push((name.to_string(), bytes));
    }
    out
}

#[test]
fn vectors_match_the_file() {
    let expected = render();
    if std::env::var_os("RINGKV_BLESS").is_some() {
        std::fs::write(PATH, &expected).unwrap();
    }
    let on_disk =
        std::fs::read_to_string(PATH).expect("vectors file; generate with RINGKV_BLESS=1");
    assert_eq!(
        on_disk, expected,
        "the wire format changed: review, then regenerate with RINGKV_BLESS=1"
    );
}

#[test]
fn vectors_decode_to_what_they_encode() {
    let text = std::fs::read_to_string(PATH).unwrap();
    let vectors = parse_file(&text);
    let requests = requests();
    assert_eq!(vectors.len(), requests.len() + responses().len());
    for ((name, bytes), (_, id, flags, request)) in vectors.iter().zip(requests) {
        let (header, len) = check(bytes, MAGIC_REQUEST).unwrap().expect("whole frame");
        assert_eq!(len, bytes.len(), "{name}");
        assert_eq!(
            (header.request_id, header.flags_or_status),
            (id, flags),
            "{name}"
        );
        assert_eq!(
            decode_request(&header, &Bytes::copy_from_slice(bytes)).unwrap(),
            request,
            "{name}"
        );
    }
    for (name, bytes) in vectors.iter().skip(20) {
        let (header, len) = check(bytes, MAGIC_RESPONSE).unwrap().expect("whole frame");
        assert_eq!(len, bytes.len(), "{name}");
        let r = ringkv::proto::Response::from_frame(header, Bytes::copy_from_slice(bytes));
        assert!(r.status.is_some(), "{name}");
        if name.contains("topology") {
            let t = Topology::decode(&r.value).unwrap();
            assert_eq!(t.shard_ports, vec![7879, 7880]);
        }
        if name.contains("incr") {
            assert_eq!(r.extras_i64(), Some(7));
        }
    }
}
