//! Frame encode/decode and shard get/set, the per-request CPU cost beneath the network.
//!
//! `cargo bench --bench codec`; figures and the machine they came from are in
//! `perf/README.md`.

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ringkv::proto::op::encode_response;
use ringkv::proto::{
    check, decode_request, encode_request, Request, SetMode, Status, MAGIC_REQUEST,
};
use ringkv::shard::{Command, Cond, Expiry, MemoryLog, Shard, SystemClock};

fn frames(c: &mut Criterion) {
    let set = Request::Set {
        key: Bytes::from_static(b"key:000012345"),
        value: Bytes::from(vec![7u8; 32]),
        ttl_ms: 0,
        mode: SetMode::Always,
    };
    let get = Request::Get {
        key: Bytes::from_static(b"key:000012345"),
    };
    let mut g = c.benchmark_group("frame");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode_set_32B", |b| {
        let mut out = BytesMut::with_capacity(1 << 16);
        b.iter(|| {
            out.clear();
            encode_request(&mut out, 1, 0, black_box(&set)).unwrap();
        })
    });
    let mut wire = BytesMut::new();
    encode_request(&mut wire, 1, 0, &get).unwrap();
    let wire = wire.freeze();
    g.bench_function("check_decode_get", |b| {
        b.iter(|| {
            let (h, _) = check(black_box(&wire), MAGIC_REQUEST).unwrap().unwrap();
            decode_request(&h, &wire).unwrap()
        })
    });
    let mut pipeline = BytesMut::new();
    for i in 0..16 {
        encode_request(&mut pipeline, i, 0, &get).unwrap();
    }
    let pipeline = pipeline.freeze();
    g.throughput(Throughput::Elements(16));
    g.bench_function("check_decode_16_pipelined", |b| {
        b.iter_batched(
            || BytesMut::from(&pipeline[..]),
            |mut buf| {
                while let Some((h, len)) = check(&buf, MAGIC_REQUEST).unwrap() {
                    let frame = buf.split_to(len).freeze();
                    black_box(decode_request(&h, &frame).unwrap());
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.throughput(Throughput::Elements(1));
    let value = vec![1u8; 32];
    g.bench_function("encode_get_response_32B", |b| {
        let mut out = BytesMut::with_capacity(1 << 16);
        b.iter(|| {
            out.clear();
            encode_response(&mut out, 0x10, 1, Status::Ok, 9, &[], black_box(&value));
        })
    });
    g.finish();
}

fn shard(c: &mut Criterion) {
    let keys: Vec<Bytes> = (0..100_000)
        .map(|i| Bytes::from(format!("key:{i:09}")))
        .collect();
    let mut shard = Shard::new(MemoryLog::default(), SystemClock);
    let value = Bytes::from(vec![7u8; 32]);
    for key in &keys {
        shard.apply(Command::Set {
            key: key.clone(),
            value: value.clone(),
            expiry: Expiry::Never,
            cond: Cond::Always,
            get_old: false,
        });
    }
    let mut g = c.benchmark_group("shard_100k_keys");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("get_hit", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            black_box(shard.apply(Command::Get {
                key: keys[i].clone(),
            }))
        })
    });
    g.bench_function("set_overwrite_32B", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            black_box(shard.apply(Command::Set {
                key: keys[i].clone(),
                value: value.clone(),
                expiry: Expiry::Never,
                cond: Cond::Always,
                get_old: false,
            }))
        })
    });
    g.finish();
}

criterion_group!(benches, frames, shard);
criterion_main!(benches);
