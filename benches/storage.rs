//! The durable per-shard log on the real disk: append throughput of one core (records/s
//! and bytes/s, `Sync` group commit and `None`), and the latency of reading back a value
//! that is no longer in memory (`Log::read`, one O_DIRECT read of the blocks holding it).
//!
//! `cargo bench --bench storage`; figures and the machine they came from are in
//! `perf/storage.md`. Data goes to a temp dir under /tmp (ext4 here; tmpfs has no
//! O_DIRECT), removed at the end.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use glommio::{LocalExecutor, LocalExecutorBuilder, Placement};
use ringkv::storage::{DmaDisk, Location, Log, LogOptions, Op, StorageError, SyncMode};

/// Appends per `wait_durable` in the sync benches: what group commit sees when many
/// connections write at once.
const BATCH: u64 = 256;

fn executor() -> LocalExecutor {
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(512 << 10) // the locked-memory limit here is 8 MiB
        .make()
        .expect("glommio executor (locked-memory limit?)")
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ringkv-bench-storage-")
        .tempdir_in("/tmp")
        .expect("tempdir under /tmp")
}

/// Opens an empty log in `dir`, the way a node does, and starts its flusher on `ex`.
fn open_log(ex: &LocalExecutor, dir: &std::path::Path, mode: SyncMode) -> Log<DmaDisk> {
    let path = dir.join("shard-0");
    ex.run(async move {
        let mut disk = DmaDisk::open(&path).await.expect("dma disk");
        // As a node opens it: O_DSYNC segments in sync mode.
        disk.set_write_through(mode == SyncMode::Sync);
        let options = LogOptions {
            sync_mode: mode,
            ..LogOptions::default()
        };
        let (log, _) = Log::open(disk, 0, options, |_, _| {})
            .await
            .expect("open log");
        glommio::spawn_local(log.clone().run_flusher()).detach();
        log
    })
}

/// Appends one record, waiting for the write buffer to drain when it is full.
async fn append(log: &Log<DmaDisk>, key: &[u8], value: &[u8]) -> u64 {
    loop {
        match log.append(Op::Put {
            key,
            value,
            expiry_ms: 0,
        }) {
            Ok(a) => return a.seq,
            Err(StorageError::Busy) => {
                let last = log.stats().last_seq;
                log.wait_written(last).await.expect("wait written");
            }
            Err(e) => panic!("append: {e}"),
        }
    }
}

/// Appends `iters * BATCH` records; in `Sync` each batch waits for its fdatasync, in
/// `None` the run ends when every record has been written (not synced).
fn append_run(
    ex: &LocalExecutor,
    log: &Log<DmaDisk>,
    next_key: &Cell<u64>,
    value: &[u8],
    iters: u64,
) -> Duration {
    ex.run(async {
        let start = Instant::now();
        let mut last = 0;
        for _ in 0..iters {
            for _ in 0..BATCH {
                let k = next_key.get() + 1;
                next_key.set(k);
                let key = format!("key:{k:012}");
                last = append(log, key.as_bytes(), value).await;
            }
            log.wait_durable(last).await.expect("wait durable");
        }
        log.wait_written(last).await.expect("wait written");
        start.elapsed()
    })
}

fn appends(c: &mut Criterion) {
    let ex = executor();
    let mut g = c.benchmark_group("storage_append");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (unit, size) in [("records", 256usize), ("bytes", 4096usize)] {
        for (name, mode) in [("sync", SyncMode::Sync), ("none", SyncMode::None)] {
            let dir = tempdir();
            let log = open_log(&ex, dir.path(), mode);
            let value = vec![0x5au8; size];
            let next_key = Cell::new(0u64);
            if unit == "records" {
                g.throughput(Throughput::Elements(BATCH));
            } else {
                g.throughput(Throughput::Bytes(BATCH * size as u64));
            }
            let id = format!("{name}_{size}B_x{BATCH}_per_wait_{unit}");
            g.bench_function(id, |b| {
                b.iter_custom(|iters| append_run(&ex, &log, &next_key, &value, iters))
            });
            ex.run(async { log.close().await.expect("close") });
        }
    }
    g.finish();
}

/// Reads of 1 KiB values that are on disk only (the write buffer long flushed), at
/// random places of a 64 MiB log: the cost of a value-cache miss beneath the network.
fn read_after_evict(c: &mut Criterion) {
    const RECORDS: u64 = 60_000;
    let ex = executor();
    let dir = tempdir();
    let log = open_log(&ex, dir.path(), SyncMode::Sync);
    let value = vec![0xa5u8; 1024];
    let locations: Rc<Vec<Location>> = Rc::new(ex.run(async {
        let mut locs = Vec::with_capacity(RECORDS as usize);
        for i in 0..RECORDS {
            let key = format!("key:{i:012}");
            let a = loop {
                match log.append(Op::Put {
                    key: key.as_bytes(),
                    value: &value,
                    expiry_ms: 0,
                }) {
                    Ok(a) => break a,
                    Err(StorageError::Busy) => {
                        let last = log.stats().last_seq;
                        log.wait_written(last).await.expect("wait written")
                    }
                    Err(e) => panic!("append: {e}"),
                }
            };
            locs.push(a.location);
        }
        log.sync().await.expect("sync");
        locs
    }));
    // Only the first 90 % are read: the tail may still sit in the write buffer.
    let readable = (RECORDS * 9 / 10) as usize;
    let mut g = c.benchmark_group("storage_read");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(1));
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    g.bench_function("read_after_evict_1KiB", |b| {
        b.iter_custom(|iters| {
            ex.run(async {
                let start = Instant::now();
                for _ in 0..iters {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let loc = locations[(rng % readable as u64) as usize];
                    let r = log.read(loc).await.expect("read");
                    black_box(r.value.len());
                }
                start.elapsed()
            })
        })
    });
    g.finish();
    ex.run(async { log.close().await.expect("close") });
}

criterion_group!(benches, appends, read_after_evict);
criterion_main!(benches);
