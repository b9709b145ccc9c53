//! Scenario tests of the log: over `SimDisk` (faults, crashes, compaction, truncation)
//! and one over real DMA files under /tmp.

use std::cell::RefCell;
use std::collections::BTreeMap;

use futures_lite::future::block_on;
use glommio::{LocalExecutorBuilder, Placement};

use super::limits::RECORD_HEADER_SIZE;
use super::*;

const SEG: u32 = 64 * 1024;

fn options(mode: SyncMode) -> LogOptions {
    LogOptions {
        segment_size: SEG,
        sync_mode: mode,
        compact_garbage_percent: 50,
        nonce_seed: Some(7),
    }
}

fn executor() -> glommio::LocalExecutor {
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(512 * 1024) // the locked-memory limit here is 8 MiB
        .make()
        .expect("glommio executor (locked-memory limit?)")
}

/// A deterministic generator for the randomized scenarios.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    value: Vec<u8>,
    seq: u64,
    loc: Location,
    expiry: u64,
    touch: Option<(u64, Location)>,
}

/// What a shard does with the log: the index these tests check recovery against.
#[derive(Clone, Default, Debug)]
struct Shard {
    keys: BTreeMap<Vec<u8>, Entry>,
}

impl Shard {
    /// Puts keys `{prefix}0` .. `{prefix}{count - 1}`, key `i` with `value(i, size)`.
    fn put_each(&mut self, log: &Log<SimDisk>, prefix: &str, count: u32, size: usize) {
        for i in 0..count {
            self.put(log, format!("{prefix}{i}").as_bytes(), &value(i, size), 0)
                .expect("put");
        }
    }

    fn put(
        &mut self,
        log: &Log<SimDisk>,
        key: &[u8],
        value: &[u8],
        expiry: u64,
    ) -> Result<Appended, StorageError> {
        let a = log.append(Op::Put {
            key,
            value,
            expiry_ms: expiry,
        })?;
        let entry = Entry {
            value: value.to_vec(),
            seq: a.seq,
            loc: a.location,
            expiry,
            touch: None,
        };
        if let Some(old) = self.keys.insert(key.to_vec(), entry) {
            Self::forget(log, &old);
        }
        Ok(a)
    }

    fn delete(&mut self, log: &Log<SimDisk>, key: &[u8]) -> Result<Appended, StorageError> {
        let a = log.append(Op::Delete { key })?;
        if let Some(old) = self.keys.remove(key) {
            Self::forget(log, &old);
        }
        Ok(a)
    }

    fn touch(
        &mut self,
        log: &Log<SimDisk>,
        key: &[u8],
        expiry: u64,
    ) -> Result<Option<Appended>, StorageError> {
        let Some(e) = self.keys.get_mut(key) else {
            return Ok(None);
        };
        let a = log.append(Op::Touch {
            key,
            expiry_ms: expiry,
        })?;
        if let Some((_, old)) = e.touch.replace((a.seq, a.location)) {
            log.mark_garbage(old);
        }
        e.expiry = expiry;
        Ok(Some(a))
    }

    fn forget(log: &Log<SimDisk>, old: &Entry) {
        log.mark_garbage(old.loc);
        if let Some((_, t)) = old.touch {
            log.mark_garbage(t);
        }
    }

    fn liveness(&self, c: &Candidate<'_>) -> Liveness {
        let Some(e) = self.keys.get(c.key) else {
            return Liveness::Dead;
        };
        if e.loc == c.location || e.touch.map(|t| t.1) == Some(c.location) {
            return Liveness::Live;
        }
        // After a start from a folded hint the Touch that set the expiry is not known
        // by place: keep it as a node does, by its seq and expiry.
        if e.touch.is_none()
            && c.kind == RecordKind::Touch
            && c.seq > e.seq
            && c.expiry_ms == e.expiry
        {
            return Liveness::Live;
        }
        let newest = e.touch.map_or(e.seq, |t| t.0.max(e.seq));
        if newest >= c.seq {
            Liveness::Superseded
        } else {
            Liveness::Dead
        }
    }

    fn relocate(&mut self, log: &Log<SimDisk>, r: &Relocation<'_>) {
        if let Some(e) = self.keys.get_mut(r.key) {
            if e.loc == r.from {
                e.loc = r.to;
                return;
            }
            if let Some(t) = e.touch.as_mut().filter(|t| t.1 == r.from) {
                t.1 = r.to;
                return;
            }
            if e.touch.is_none() && r.kind == RecordKind::Touch {
                return; // kept by seq and expiry (see `liveness`)
            }
        }
        if r.kind != RecordKind::Delete {
            log.mark_garbage(r.to);
        }
    }

    fn push_hint(&self, hint: &mut HintBuilder) {
        for (key, e) in &self.keys {
            hint.push(RecordKind::Put, e.seq, e.expiry, e.loc, key);
            if let Some((seq, loc)) = e.touch {
                hint.push(RecordKind::Touch, seq, e.expiry, loc, key);
            }
        }
    }

    /// A hint as a node writes it: its index keeps each key's expiry but not where the
    /// Touch that set it lies, so the expiry is folded into the Put's entry.
    fn push_hint_folded(&self, hint: &mut HintBuilder) {
        for (key, e) in &self.keys {
            hint.push(RecordKind::Put, e.seq, e.expiry, e.loc, key);
        }
    }

    /// Key -> (version, value, expiry, location): what a start from a folded hint must
    /// rebuild (it cannot know where each key's Touch lies).
    fn index(&self) -> BTreeMap<Vec<u8>, (u64, Vec<u8>, u64, Location)> {
        self.keys
            .iter()
            .map(|(k, e)| (k.clone(), (e.seq, e.value.clone(), e.expiry, e.loc)))
            .collect()
    }

    /// Key -> (version, value): what a client can observe.
    fn view(&self) -> BTreeMap<Vec<u8>, (u64, Vec<u8>)> {
        self.keys
            .iter()
            .map(|(k, e)| (k.clone(), (e.seq, e.value.clone())))
            .collect()
    }
}

/// Opens the log on `disk` and rebuilds a shard with `KeyState`.
async fn reopen(disk: &SimDisk, mode: SyncMode) -> (Log<SimDisk>, Shard, RecoveryReport) {
    let mut states: BTreeMap<Vec<u8>, (KeyState, Option<Vec<u8>>)> = BTreeMap::new();
    let (log, report) = Log::open(disk.clone(), 1, options(mode), |r, garbage| {
        let slot = states.entry(r.key.to_vec()).or_default();
        if slot.0.apply(r, garbage) {
            slot.1 = r.value.map(<[u8]>::to_vec);
        }
    })
    .await
    .expect("open");
    let mut shard = Shard::default();
    for (key, (state, value)) in states {
        let Some((seq, loc, expiry)) = state.live() else {
            continue;
        };
        let value = match value {
            Some(v) => v,
            None => log
                .read(loc)
                .await
                .expect("read a hinted value")
                .value
                .to_vec(),
        };
        // A Touch with no bytes is the hint's note of an expiry: no record to track.
        let touch = state
            .touch
            .filter(|t| t.0 > seq && t.1.length > 0)
            .map(|t| (t.0, t.1));
        shard.keys.insert(
            key,
            Entry {
                value,
                seq,
                loc,
                expiry,
                touch,
            },
        );
    }
    (log, shard, report)
}

async fn assert_readable(log: &Log<SimDisk>, shard: &Shard) {
    for (key, e) in &shard.keys {
        let r = log.read(e.loc).await.expect("read");
        assert_eq!(
            (&r.key[..], &r.value[..], r.seq, r.kind),
            (&key[..], &e.value[..], e.seq, RecordKind::Put)
        );
    }
}

/// One compaction step, with the test shard answering liveness and taking relocations.
async fn compact_once(log: &Log<SimDisk>, shard: &RefCell<Shard>) -> Option<CompactProgress> {
    log.compact_step(
        |c| shard.borrow().liveness(c),
        |r| shard.borrow_mut().relocate(log, r),
    )
    .await
    .expect("compact")
}

fn value(i: u32, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
}

#[test]
fn append_read_and_recover_across_segments() {
    block_on(async {
        let disk = SimDisk::new(1);
        let (log, mut shard, report) = reopen(&disk, SyncMode::Sync).await;
        assert_eq!((report.records, report.segments), (0, 0));
        for i in 0..400u32 {
            let key = format!("key-{}", i % 50);
            match i % 7 {
                5 => {
                    shard.delete(&log, key.as_bytes()).expect("delete");
                }
                6 => {
                    shard
                        .touch(&log, key.as_bytes(), 1000 + u64::from(i))
                        .expect("touch");
                }
                _ => {
                    shard
                        .put(&log, key.as_bytes(), &value(i, (i as usize * 37) % 900), 0)
                        .expect("put");
                }
            }
            if i % 50 == 0 {
                log.sync().await.expect("sync");
            }
        }
        assert_readable(&log, &shard).await; // partly from the write buffer
        log.sync().await.expect("sync");
        assert_readable(&log, &shard).await; // from the disk
        let stats = log.stats();
        assert!(stats.segments >= 3, "{stats:?}");
        assert_eq!(
            (stats.durable_seq, stats.unwritten_bytes),
            (stats.last_seq, 0)
        );
        drop(log);

        let (log, recovered, report) = reopen(&disk, SyncMode::Sync).await;
        assert_eq!(recovered.keys, shard.keys);
        assert_eq!(
            (report.corrupt_skipped, report.bytes_cut, report.last_seq),
            (0, 0, stats.last_seq)
        );
        assert_eq!(
            log.append(Op::Delete { key: b"key-1" })
                .expect("append")
                .seq,
            stats.last_seq + 1
        );
    });
}

#[test]
fn damage_is_cut_at_the_tail_and_skipped_in_the_middle() {
    // (record index, byte of the record to flip, is the tail of the last segment)
    let cases = [
        (100usize, RECORD_HEADER_SIZE + 10, false),
        (150, 17, false),
        (200, 0, false),
        (299, 50, true),
    ];
    for (case, (victim, at, tail)) in cases.into_iter().enumerate() {
        block_on(async {
            let disk = SimDisk::new(case as u64);
            let (log, mut shard, _) = reopen(&disk, SyncMode::Sync).await;
            let mut appended = Vec::new();
            for i in 0..300u32 {
                let key = format!("k{i}");
                appended.push(
                    shard
                        .put(&log, key.as_bytes(), &value(i, 200 + i as usize % 300), 0)
                        .expect("put"),
                );
            }
            log.sync().await.expect("sync");
            drop(log);
            let loc = appended[victim].location;
            disk.corrupt(
                &segment_file_name(loc.segment),
                u64::from(loc.offset + at),
                &[0x10],
            );

            let (log, mut recovered, report) = reopen(&disk, SyncMode::Sync).await;
            let mut expected = shard.clone();
            expected.keys.remove(format!("k{victim}").as_bytes());
            assert_eq!(recovered.keys, expected.keys, "case {case}");
            if tail {
                assert!(
                    report.bytes_cut > 0 && report.corrupt_skipped == 0,
                    "{report:?}"
                );
            } else {
                assert_eq!(
                    (report.corrupt_skipped, report.bytes_cut),
                    (1, 0),
                    "{report:?}"
                );
            }
            // The cut was zeroed: records appended after it recover cleanly.
            recovered.put(&log, b"after", b"the cut", 0).expect("put");
            log.sync().await.expect("sync");
            drop(log);
            let (_, again, report2) = reopen(&disk, SyncMode::Sync).await;
            assert_eq!(again.keys, recovered.keys, "case {case}");
            assert_eq!(report2.bytes_cut, 0);
            assert_eq!(report2.corrupt_skipped, report.corrupt_skipped);
        });
    }
}

#[test]
fn zeroed_block_and_truncated_segment_lose_exactly_what_they_held() {
    block_on(async {
        let disk = SimDisk::new(11);
        let (log, mut shard, _) = reopen(&disk, SyncMode::Sync).await;
        let mut appended = BTreeMap::new();
        for i in 0..400u32 {
            let key = format!("k{i}").into_bytes();
            appended.insert(
                key.clone(),
                shard
                    .put(&log, &key, &value(i, 150 + i as usize % 400), 0)
                    .expect("put"),
            );
        }
        log.sync().await.expect("sync");
        let last = log.stats().segments;
        drop(log);
        // Zero block 3 of segment 2 (sealed), cut the last segment to 16 KiB.
        let name = segment_file_name(2);
        let bytes = disk.file_bytes(&name).expect("segment 2");
        let (zero_from, zero_to) = (3 * 4096u32, 4 * 4096u32);
        disk.corrupt(
            &name,
            u64::from(zero_from),
            &bytes[zero_from as usize..zero_to as usize],
        );
        let cut_to = 16 * 1024u32;
        disk.truncate_file(&segment_file_name(last), u64::from(cut_to));

        let (log, recovered, report) = reopen(&disk, SyncMode::Sync).await;
        let damaged = |l: Location| {
            (l.segment == 2 && l.offset < zero_to && l.offset + l.length > zero_from)
                || (l.segment == last && l.offset + l.length > cut_to)
        };
        let mut expected = shard.clone();
        expected.keys.retain(|k, _| !damaged(appended[k].location));
        assert!(expected.keys.len() < shard.keys.len() - 2);
        assert_eq!(recovered.keys, expected.keys);
        assert!(report.corrupt_skipped >= 1, "{report:?}");
        // The short last segment is not extended: appends continue, then roll.
        let mut recovered = recovered;
        for i in 0..50u32 {
            recovered
                .put(&log, format!("new{i}").as_bytes(), &value(i, 500), 0)
                .expect("put");
        }
        log.sync().await.expect("sync");
        assert_eq!(
            disk.file_bytes(&segment_file_name(last)).map(|b| b.len()),
            Some(cut_to as usize)
        );
        drop(log);
        let (_, again, _) = reopen(&disk, SyncMode::Sync).await;
        assert_eq!(again.keys, recovered.keys);
    });
}

#[test]
fn crash_loses_only_unsynced_writes_never_acknowledged_ones() {
    let damaged_runs = (0..40u64)
        .filter(|seed| run_crash_scenario(*seed, false) > 0)
        .count();
    assert!(
        damaged_runs > 5,
        "torn tails were exercised in only {damaged_runs} runs"
    );
}

#[test]
fn crash_of_a_write_through_disk_loses_nothing_written() {
    for seed in 0..20u64 {
        run_crash_scenario(seed, true);
    }
}

/// Random puts/deletes, syncs and unsynced writes, then crashes with torn writes; returns
/// the bytes recovery had to cut or skip. On a write-through disk every write counts as
/// acknowledged, synced or not.
fn run_crash_scenario(seed: u64, write_through: bool) -> u64 {
    {
        block_on(async {
            let disk = SimDisk::new(seed);
            disk.set_write_through(write_through);
            disk.set_faults(SimFaults {
                crash_torn_per_mille: 500,
                ..SimFaults::default()
            });
            let mut rng = Rng(seed);
            let mut cut = 0;
            for _life in 0..3 {
                let (log, mut shard, _) = reopen(&disk, SyncMode::Sync).await;
                // Seqs lost in a crash were never acknowledged and are reused: each life
                // starts its history from what was recovered.
                let mut history: History = shard
                    .keys
                    .iter()
                    .map(|(k, e)| (k.clone(), e.seq, Some(e.value.clone())))
                    .collect();
                let mut durable = log.stats().durable_seq;
                for round in 0..8u32 {
                    for _ in 0..rng.below(40) {
                        let key = format!("k{}", rng.below(25)).into_bytes();
                        if rng.below(5) == 0 {
                            let a = shard.delete(&log, &key).expect("delete");
                            history.push((key, a.seq, None));
                        } else {
                            let v = value(round, rng.below(1500) as usize);
                            let a = shard.put(&log, &key, &v, 0).expect("put");
                            history.push((key, a.seq, Some(v)));
                        }
                    }
                    match rng.below(3) {
                        0 => log.sync().await.expect("sync"),
                        1 => log.flush(false).await.expect("write without sync"),
                        _ => {}
                    }
                    durable = durable.max(log.stats().durable_seq);
                }
                disk.crash();
                let (_, recovered, report) = reopen(&disk, SyncMode::Sync).await;
                check_no_acknowledged_loss(&history, durable, &recovered);
                cut += report.bytes_cut + report.corrupt_bytes;
            }
            cut
        })
    }
}

/// Every key shows its last acknowledged state or a later one that was really written.
/// (key, seq, value or None for a delete), in append order.
type History = Vec<(Vec<u8>, u64, Option<Vec<u8>>)>;

fn check_no_acknowledged_loss(history: &History, durable: u64, recovered: &Shard) {
    let mut acked: BTreeMap<&[u8], (u64, &Option<Vec<u8>>)> = BTreeMap::new();
    for (key, seq, v) in history.iter().filter(|h| h.1 <= durable) {
        acked.insert(key, (*seq, v));
    }
    for (key, (seq, v)) in &acked {
        match recovered.keys.get(*key) {
            Some(e) => {
                assert!(
                    e.seq >= *seq,
                    "key {key:?} went back from {seq} to {}",
                    e.seq
                );
                let written = history
                    .iter()
                    .any(|h| &h.0[..] == *key && h.1 == e.seq && h.2.as_ref() == Some(&e.value));
                assert!(
                    written,
                    "key {key:?} holds a value never written at {}",
                    e.seq
                );
            }
            None => {
                let deleted_later = history
                    .iter()
                    .any(|h| &h.0[..] == *key && h.1 >= *seq && h.2.is_none());
                assert!(
                    v.is_none() || deleted_later,
                    "acknowledged key {key:?} lost"
                );
            }
        }
    }
}

#[test]
fn torn_write_fails_the_flush_and_a_retry_rewrites_it() {
    for crash_before_retry in [false, true] {
        block_on(async {
            let disk = SimDisk::new(21);
            let (log, mut shard, _) = reopen(&disk, SyncMode::Sync).await;
            shard.put_each(&log, "a", 50, 300);
            log.sync().await.expect("sync");
            let acked = shard.clone();
            disk.set_faults(SimFaults {
                torn_write_per_mille: 1000,
                ..SimFaults::default()
            });
            let mut last = 0;
            for i in 0..50u32 {
                last = shard
                    .put(&log, format!("b{i}").as_bytes(), &value(i, 300), 0)
                    .expect("put")
                    .seq;
            }
            let err = log.sync().await.expect_err("torn write");
            assert!(
                matches!(
                    err,
                    StorageError::Io {
                        errno: Some(libc::EIO),
                        ..
                    }
                ),
                "{err}"
            );
            assert_eq!(log.wait_durable(last).await, Err(err.clone()));
            assert_eq!(log.append(Op::Delete { key: b"a1" }).map(|_| ()), Err(err));
            assert_readable(&log, &shard).await; // still served from the buffer
            disk.set_faults(SimFaults::default());
            if crash_before_retry {
                disk.crash();
                let (_, recovered, _) = reopen(&disk, SyncMode::Sync).await;
                for (k, e) in &acked.keys {
                    assert_eq!(recovered.keys.get(k), Some(e), "acknowledged record lost");
                }
                assert!(recovered.keys.keys().all(|k| shard.keys.contains_key(k)));
                return;
            }
            log.sync().await.expect("the retry rewrites the tail");
            assert_eq!(log.wait_durable(last).await, Ok(()));
            shard
                .put(&log, b"c", b"after retry", 0)
                .expect("appends resume");
            log.sync().await.expect("sync");
            disk.crash();
            let (_, recovered, _) = reopen(&disk, SyncMode::Sync).await;
            assert_eq!(recovered.keys, shard.keys);
        });
    }
}

#[test]
fn no_space_fails_waiters_refuses_appends_and_recovers() {
    block_on(async {
        let disk = SimDisk::new(5);
        let (log, mut shard, _) = reopen(&disk, SyncMode::Sync).await;
        shard.put_each(&log, "a", 20, 1000);
        log.sync().await.expect("sync");
        disk.set_faults(SimFaults {
            no_space: true,
            ..SimFaults::default()
        });
        let mut seqs = Vec::new();
        for i in 0..100u32 {
            seqs.push(
                shard
                    .put(&log, format!("b{i}").as_bytes(), &value(i, 1000), 0)
                    .expect("put")
                    .seq,
            );
        }
        assert_eq!(log.sync().await, Err(StorageError::NoSpace));
        for seq in &seqs {
            assert_eq!(
                log.wait_durable(*seq).await,
                Err(StorageError::NoSpace),
                "seq {seq} acknowledged"
            );
        }
        assert_eq!(
            log.append(Op::Delete { key: b"a1" }).map(|_| ()),
            Err(StorageError::NoSpace)
        );
        assert_eq!(log.stats().durable_seq, 20);
        assert_readable(&log, &shard).await;
        disk.set_faults(SimFaults::default());
        log.sync().await.expect("retry once space is back");
        assert_eq!(log.wait_durable(seqs[99]).await, Ok(()));
        shard.delete(&log, b"a1").expect("appends resume");
        log.sync().await.expect("sync");
        disk.crash();
        let (_, recovered, _) = reopen(&disk, SyncMode::Sync).await;
        assert_eq!(recovered.keys, shard.keys);
    });
}

#[test]
fn hint_shortens_recovery_and_a_missing_or_corrupt_hint_falls_back() {
    block_on(async {
        let disk = SimDisk::new(9);
        let (log, mut shard, _) = reopen(&disk, SyncMode::Sync).await;
        for i in 0..300u32 {
            let key = format!("k{}", i % 60);
            match i % 9 {
                4 => {
                    shard
                        .touch(&log, key.as_bytes(), u64::from(i))
                        .expect("touch");
                }
                8 => {
                    shard.delete(&log, key.as_bytes()).expect("delete");
                }
                _ => {
                    shard
                        .put(&log, key.as_bytes(), &value(i, 400), 0)
                        .expect("put");
                }
            }
        }
        let mut hint = log.begin_hint().expect("begin a hint");
        shard.push_hint(&mut hint);
        log.commit_hint(hint).await.expect("hint");
        for i in 0..40u32 {
            shard
                .put(&log, format!("k{}", i % 80).as_bytes(), &value(i, 100), 0)
                .expect("put");
        }
        shard.delete(&log, b"k3").expect("delete");
        log.sync().await.expect("sync");
        drop(log);

        let (_, recovered, report) = reopen(&disk, SyncMode::Sync).await;
        assert!(report.hint_used && report.hint_records > 0, "{report:?}");
        assert!(
            report.records - report.hint_records <= 41,
            "scanned only after the hint: {report:?}"
        );
        assert_eq!(recovered.keys, shard.keys);

        let hint_bytes = disk.file_bytes(HINT_FILE_NAME).expect("hint");
        disk.corrupt(HINT_FILE_NAME, 100, &[1]);
        let (_, recovered, report) = reopen(&disk, SyncMode::Sync).await;
        assert!(
            !report.hint_used && report.hint_rejected.is_some(),
            "{report:?}"
        );
        assert_eq!(recovered.keys, shard.keys);

        assert!(hint_bytes.len() > 100);
        disk.remove(HINT_FILE_NAME).await.expect("remove hint");
        disk.sync_dir().await.expect("sync dir");
        let (_, recovered, report) = reopen(&disk, SyncMode::Sync).await;
        assert!(!report.hint_used && report.hint_rejected.is_none());
        assert_eq!(recovered.keys, shard.keys);
    });
}

#[test]
fn compaction_keeps_every_live_record_and_frees_disk() {
    block_on(async {
        let disk = SimDisk::new(13);
        let (log, shard, _) = reopen(&disk, SyncMode::Sync).await;
        let shard = RefCell::new(shard);
        for i in 0..900u32 {
            let mut s = shard.borrow_mut();
            if i % 10 == 0 {
                s.put(
                    &log,
                    format!("cold{i}").as_bytes(),
                    &value(i, 300),
                    u64::from(i) * 7,
                )
                .expect("put");
            } else if i % 10 == 1 && i > 200 {
                s.delete(&log, format!("cold{}", i - 201).as_bytes())
                    .expect("delete");
            } else if i % 10 == 2 {
                s.touch(
                    &log,
                    format!("cold{}", i / 20 * 10).as_bytes(),
                    u64::from(i),
                )
                .expect("touch");
            } else {
                s.put(&log, format!("hot{}", i % 7).as_bytes(), &value(i, 300), 0)
                    .expect("put");
            }
        }
        // A hint taken before compaction: its entries in compacted segments must be
        // superseded by the relocated copies, which lie after its position.
        let mut hint = log.begin_hint().expect("begin a hint");
        shard.borrow().push_hint(&mut hint);
        log.commit_hint(hint).await.expect("hint");
        for i in 0..30u32 {
            let mut s = shard.borrow_mut();
            s.delete(&log, format!("cold{}", i * 20).as_bytes())
                .expect("delete");
            s.put(&log, format!("hot{}", i % 7).as_bytes(), &value(i, 300), 0)
                .expect("put");
        }
        log.sync().await.expect("sync");
        let (used_before, segments_before) = (disk.used_bytes(), log.stats().segments);
        let mut finished = 0;
        let mut relocated = 0;
        let mut tombstones = 0;
        for _ in 0..10_000 {
            let step = compact_once(&log, &shard).await;
            let Some(p) = step else { break };
            relocated += p.relocated;
            tombstones += p.tombstones;
            finished += u32::from(p.finished);
        }
        // The victims are the oldest segments: dead records there shadow nothing and
        // are dropped, not kept as tombstones.
        assert!(
            finished >= 3 && relocated > 0 && tombstones == 0,
            "finished {finished}, relocated {relocated}, tombstones {tombstones}"
        );
        assert!(log.stats().segments < segments_before);
        assert!(
            disk.used_bytes() < used_before,
            "{} !< {used_before}",
            disk.used_bytes()
        );
        let shard = shard.into_inner();
        assert_readable(&log, &shard).await;
        disk.crash();
        let (_, recovered, report) = reopen(&disk, SyncMode::Sync).await;
        assert!(report.hint_used, "{report:?}");
        assert_eq!(recovered.keys, shard.keys);
        disk.remove(HINT_FILE_NAME).await.expect("remove hint");
        let (_, recovered, _) = reopen(&disk, SyncMode::Sync).await;
        assert_eq!(
            recovered.keys, shard.keys,
            "full scan: tombstones kept what they must"
        );
    });
}

#[test]
fn an_expiry_folded_into_a_hint_survives_compaction_of_its_put() {
    folded_expiry_and_compaction(false);
}

#[test]
fn an_expiry_folded_into_a_hint_survives_an_interrupted_compaction_of_its_put() {
    folded_expiry_and_compaction(true);
}

/// The Put sits in a sealed segment, the EXPIRE's (or PERSIST's) Touch in the head
/// before the hint's position, and the hint folds the new expiry into the Put's entry.
/// Compaction then copies the Put past the position, where the scan finds it with the
/// expiry it was written with, and the Touch is not scanned. Either the Put's segment
/// is gone (the hint's entry is dropped) or, with `interrupted`, still there (a stop
/// between the copy and the removal: the entry and the copy tie on seq). The hint's
/// expiry must win both ways.
fn folded_expiry_and_compaction(interrupted: bool) {
    block_on(async {
        let disk = SimDisk::new(41);
        let (log, shard, _) = reopen(&disk, SyncMode::Sync).await;
        let shard = RefCell::new(shard);
        const EXPIRY: u64 = 1 << 50;
        const PERSISTED: u64 = 1 << 51;
        {
            let mut s = shard.borrow_mut();
            s.put(&log, b"ttl", &value(1, 400), 0).expect("put");
            s.put(&log, b"persist", &value(2, 400), PERSISTED)
                .expect("put");
            let mut i = 0;
            while log.stats().segments < 2 {
                s.put(&log, format!("f{i}").as_bytes(), &value(i, 900), 0)
                    .expect("put");
                i += 1;
            }
            for j in 0..i {
                s.delete(&log, format!("f{j}").as_bytes()).expect("delete");
            }
            s.touch(&log, b"ttl", EXPIRY).expect("touch");
            s.touch(&log, b"persist", 0).expect("touch");
        }
        log.sync().await.expect("sync");
        let first = log.segments()[0].id;
        let name = segment_file_name(first);
        let saved = disk.file_bytes(&name).expect("first segment");
        let mut hint = log.begin_hint().expect("begin a hint");
        shard.borrow().push_hint_folded(&mut hint);
        log.commit_hint(hint).await.expect("hint");
        let mut freed = false;
        for _ in 0..100 {
            if compact_once(&log, &shard).await.is_none() {
                break;
            }
            freed = log.segments().iter().all(|g| g.id != first);
        }
        assert!(freed, "the Put's segment was compacted away");
        log.sync().await.expect("sync");
        disk.crash();
        if interrupted {
            let file = disk
                .create(&name, saved.len() as u64)
                .await
                .expect("create");
            disk.write_at(&file, 0, &saved).await.expect("write");
            disk.sync(&file).await.expect("sync");
            disk.sync_dir().await.expect("sync dir");
        }
        let (_, recovered, report) = reopen(&disk, SyncMode::Sync).await;
        assert!(report.hint_used, "{report:?}");
        assert_eq!(report.segments, 1 + u32::from(interrupted), "{report:?}");
        let expiry = |k: &[u8]| recovered.keys.get(k).map(|e| e.expiry);
        assert_eq!(expiry(b"ttl"), Some(EXPIRY), "EXPIRE kept");
        assert_eq!(expiry(b"persist"), Some(0), "PERSIST kept");
    });
}

#[test]
fn segments_sealed_after_their_last_flush_are_compacted() {
    // Every write is flushed before the next one, as a node in sync mode does between
    // requests: the segment that fills up was completely written while it was the head.
    block_on(async {
        let disk = SimDisk::new(29);
        let (log, shard, _) = reopen(&disk, SyncMode::Sync).await;
        let shard = RefCell::new(shard);
        let mut i = 0u32;
        while log.stats().segments < 4 {
            shard
                .borrow_mut()
                .put(&log, format!("k{}", i % 5).as_bytes(), &value(i, 900), 0)
                .expect("put");
            log.sync().await.expect("sync");
            i += 1;
        }
        let step = compact_once(&log, &shard).await;
        assert!(
            step.is_some(),
            "no victim among {} segments",
            log.stats().segments
        );
    });
}

#[test]
fn truncate_after_cuts_the_tail_and_keeps_relocated_records() {
    block_on(async {
        let disk = SimDisk::new(17);
        let (log, shard, _) = reopen(&disk, SyncMode::Sync).await;
        let shard = RefCell::new(shard);
        for i in 0..300u32 {
            let key = if i % 5 == 0 {
                format!("cold{i}")
            } else {
                format!("hot{}", i % 3)
            };
            shard
                .borrow_mut()
                .put(&log, key.as_bytes(), &value(i, 400), 0)
                .expect("put");
        }
        let committed = shard.borrow().clone();
        // The uncommitted tail goes to fresh keys (Raft applies only committed entries, so
        // nothing committed was compacted away because of it).
        for i in 0..20u32 {
            shard
                .borrow_mut()
                .put(&log, format!("tail{i}").as_bytes(), &value(i, 100), 0)
                .expect("put");
        }
        log.sync().await.expect("sync");
        while let Some(p) = compact_once(&log, &shard).await {
            if p.finished {
                break;
            }
        }
        let report = log.truncate_after(300).await.expect("truncate");
        assert_eq!(report.records_cut, 20);
        assert!(
            report.records_padded > 0,
            "relocated records followed the tail: {report:?}"
        );
        assert_eq!(
            log.append(Op::Delete { key: b"none" }).expect("append").seq,
            301
        );
        log.sync().await.expect("sync");
        disk.crash();
        let (_, recovered, _) = reopen(&disk, SyncMode::Sync).await;
        assert_eq!(recovered.view(), committed.view());
    });
}

#[test]
fn one_hint_at_a_time_and_a_cut_below_what_it_saw_drops_it() {
    block_on(async {
        let disk = SimDisk::new(23);
        let (log, mut shard, _) = reopen(&disk, SyncMode::Sync).await;
        for i in 0..100u32 {
            let key = format!("k{i}");
            shard
                .put(&log, key.as_bytes(), &value(i, 100), 0)
                .expect("put");
        }
        let committed = shard.clone();
        let mut hint = log.begin_hint().expect("begin a hint");
        assert!(matches!(log.begin_hint(), Err(StorageError::Busy)));
        assert!(matches!(
            log.truncate_after(50).await,
            Err(StorageError::Busy)
        ));
        shard.push_hint(&mut hint);
        // Appends go on while a node builds its hint a slice at a time, and the walk may
        // see their effect on an expiry: the hint must not outlive a cut of them.
        shard.put_each(&log, "tail", 10, 50);
        log.commit_hint(hint).await.expect("hint");
        assert!(disk.file_bytes(HINT_FILE_NAME).is_some());
        assert_eq!(log.hint_seq(), 100);
        let abandoned = log
            .begin_hint()
            .expect("the committed hint released the lock");
        drop(abandoned);

        let report = log.truncate_after(105).await.expect("truncate");
        assert_eq!(report.records_cut, 5);
        assert!(
            disk.file_bytes(HINT_FILE_NAME).is_none(),
            "a hint built after seq 105 was appended is dropped by a cut to 105"
        );
        log.sync().await.expect("sync");
        disk.crash();
        let (_, recovered, report) = reopen(&disk, SyncMode::Sync).await;
        assert!(!report.hint_used, "{report:?}");
        assert_eq!(recovered.keys.len(), committed.keys.len() + 5);
    });
}

#[test]
fn a_hint_that_fails_to_write_leaves_the_old_one_and_no_temp_file() {
    block_on(async {
        let disk = SimDisk::new(29);
        let (log, mut shard, _) = reopen(&disk, SyncMode::Sync).await;
        shard.put_each(&log, "k", 50, 100);
        let mut hint = log.begin_hint().expect("begin a hint");
        shard.push_hint(&mut hint);
        log.commit_hint(hint).await.expect("first hint");
        let first = disk.file_bytes(HINT_FILE_NAME).expect("hint written");
        log.sync().await.expect("nothing left to sync");
        // The log has nothing to sync, so the first failing step is the hint's own
        // fdatasync, after its temp file was created and written.
        let before = disk.stats();
        disk.set_faults(SimFaults {
            sync_error_per_mille: 1000,
            ..SimFaults::default()
        });
        let mut hint = log.begin_hint().expect("begin a hint");
        shard.push_hint(&mut hint);
        assert!(log.commit_hint(hint).await.is_err());
        disk.set_faults(SimFaults::default());
        let after = disk.stats();
        assert_eq!(
            after.creates,
            before.creates + 1,
            "the temp file was created"
        );
        assert!(!disk.names().iter().any(|n| n == HINT_TEMP_FILE_NAME));
        assert_eq!(disk.file_bytes(HINT_FILE_NAME), Some(first));
        assert!(
            log.begin_hint().is_ok(),
            "the failed hint released the lock"
        );
    });
}

/// One task per key, all started at once: append a one-byte Put, wait until it is
/// durable, return its seq.
fn durable_puts(
    log: &Log<SimDisk>,
    keys: impl Iterator<Item = String>,
) -> Vec<glommio::Task<Result<u64, StorageError>>> {
    keys.map(|key| {
        let log = log.clone();
        glommio::spawn_local(async move {
            let a = log.append(Op::Put {
                key: key.as_bytes(),
                value: b"v",
                expiry_ms: 0,
            })?;
            log.wait_durable(a.seq).await.map(|()| a.seq)
        })
    })
    .collect()
}

#[test]
fn group_commit_shares_one_fdatasync_among_many_waiters() {
    executor().run(async {
        let disk = SimDisk::new(3);
        disk.set_faults(SimFaults {
            sync_delay_polls: 20,
            ..SimFaults::default()
        });
        let (log, _) = Log::open(disk.clone(), 1, options(SyncMode::Sync), |_, _| {})
            .await
            .expect("open");
        glommio::spawn_local(log.clone().run_flusher()).detach();
        for t in durable_puts(&log, (0..200).map(|i| format!("k{i}"))) {
            let seq = t.await.expect("durable");
            assert!(seq <= log.stats().durable_seq);
        }
        let syncs = log.stats().syncs;
        assert!(
            (1..=10).contains(&syncs),
            "{syncs} fdatasyncs for 200 waiters"
        );
        assert!(disk.stats().syncs <= syncs + 1);
        log.close().await.expect("close");
        assert_eq!(
            log.append(Op::Delete { key: b"k" }).map(|_| ()),
            Err(StorageError::Closed)
        );
    });
}

#[test]
fn write_through_acknowledges_on_write_completion_without_fdatasync() {
    executor().run(async {
        let disk = SimDisk::new(7);
        disk.set_write_through(true);
        let (log, _) = Log::open(disk.clone(), 1, options(SyncMode::Sync), |_, _| {})
            .await
            .expect("open");
        glommio::spawn_local(log.clone().run_flusher()).detach();
        let mut last = 0;
        for round in 0..20u32 {
            for t in durable_puts(&log, (0..10).map(|i| format!("k{round}-{i}"))) {
                last = last.max(t.await.expect("durable"));
            }
        }
        let stats = log.stats();
        assert_eq!(stats.durable_seq, last);
        assert_eq!((stats.syncs, disk.stats().syncs), (0, 0));
        assert!(
            (1..=40).contains(&stats.flushes),
            "{} writes for 20 rounds of 10 waiters",
            stats.flushes
        );
        // What was acknowledged survives a power cut with no sync ever issued.
        disk.crash();
        let mut seen = 0;
        Log::open(disk, 1, options(SyncMode::Sync), |_, _| seen += 1)
            .await
            .expect("reopen");
        assert_eq!(seen, last);
    });
}

#[test]
fn flusher_hands_no_space_to_waiters_then_retries() {
    executor().run(async {
        let disk = SimDisk::new(4);
        let (log, _) = Log::open(disk.clone(), 1, options(SyncMode::Sync), |_, _| {})
            .await
            .expect("open");
        glommio::spawn_local(log.clone().run_flusher()).detach();
        let a = log
            .append(Op::Put {
                key: b"a",
                value: b"1",
                expiry_ms: 0,
            })
            .expect("append");
        log.wait_durable(a.seq).await.expect("durable");
        disk.set_faults(SimFaults {
            no_space: true,
            ..SimFaults::default()
        });
        let b = log
            .append(Op::Put {
                key: b"b",
                value: b"2",
                expiry_ms: 0,
            })
            .expect("append");
        assert_eq!(log.wait_durable(b.seq).await, Err(StorageError::NoSpace));
        disk.set_faults(SimFaults::default());
        // The flusher retries on its own; once it succeeds appends are accepted again.
        let c = loop {
            match log.append(Op::Put {
                key: b"c",
                value: b"3",
                expiry_ms: 0,
            }) {
                Ok(c) => break c,
                Err(e) => {
                    assert_eq!(e, StorageError::NoSpace);
                    glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        };
        log.wait_durable(c.seq).await.expect("durable after retry");
        assert_eq!(log.stats().durable_seq, c.seq);
        log.close().await.expect("close");
    });
}

#[test]
fn dma_log_on_a_fresh_directory_survives_reopen() {
    dma_log_survives_reopen(false);
}

#[test]
fn dma_log_with_write_through_survives_reopen() {
    dma_log_survives_reopen(true);
}

#[test]
fn write_through_opens_files_with_o_dsync_and_only_then() {
    use std::os::fd::AsRawFd;
    let dir = tempfile::Builder::new()
        .prefix("ringkv-storage-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let path = dir.path().join("shard-0");
    executor().run(async move {
        let mut disk = DmaDisk::open(&path).await.expect("dma disk");
        for (name, on) in [("plain.blk", false), ("dsync.blk", true)] {
            disk.set_write_through(on);
            let created = disk.create(name, 4096).await.expect("create");
            let opened = disk.open(name).await.expect("open");
            for file in [created, opened] {
                // SAFETY: F_GETFL only reads the flags of a descriptor we hold open.
                let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
                assert!(flags >= 0, "fcntl failed");
                assert_eq!(flags & libc::O_DSYNC != 0, on, "{name}: O_DSYNC set?");
            }
        }
    });
}

fn dma_log_survives_reopen(write_through: bool) {
    let dir = tempfile::Builder::new()
        .prefix("ringkv-storage-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let path = dir.path().join("shard-0");
    executor().run(async move {
        let opts = LogOptions {
            segment_size: 1 << 20,
            ..LogOptions::default()
        };
        let mut disk = DmaDisk::open(&path)
            .await
            .expect("dma disk on an empty dir");
        disk.set_write_through(write_through);
        let (log, report) = Log::open(disk, 0, opts.clone(), |_, _| {})
            .await
            .expect("open");
        assert_eq!(report.records, 0);
        glommio::spawn_local(log.clone().run_flusher()).detach();
        let mut appended = Vec::new();
        for i in 0..2000u32 {
            let key = format!("k{i}");
            let a = log
                .append(Op::Put {
                    key: key.as_bytes(),
                    value: &value(i, 700),
                    expiry_ms: 0,
                })
                .expect("append");
            appended.push(a);
        }
        let last = appended.last().map_or(0, |a| a.seq);
        log.wait_durable(last).await.expect("durable");
        for (i, a) in appended.iter().enumerate().step_by(97) {
            let r = log.read(a.location).await.expect("dma read");
            assert_eq!(
                (&r.key[..], &r.value[..]),
                (format!("k{i}").as_bytes(), &value(i as u32, 700)[..])
            );
        }
        let stats = log.stats();
        assert!(stats.segments >= 2);
        assert_eq!(
            stats.syncs == 0,
            write_through,
            "fdatasyncs: {}",
            stats.syncs
        );
        log.close().await.expect("close");

        let disk = DmaDisk::open(&path).await.expect("reopen dir");
        let mut seen = 0u64;
        let (log, report) = Log::open(disk, 0, opts, |r, _| seen += r.seq)
            .await
            .expect("reopen");
        assert_eq!(
            (report.records, report.bytes_cut, report.corrupt_skipped),
            (2000, 0, 0)
        );
        assert_eq!(seen, 2000 * 2001 / 2);
        let r = log
            .read(appended[1234].location)
            .await
            .expect("read after reopen");
        assert_eq!(&r.value[..], &value(1234, 700)[..]);
    });
}

#[test]
fn bit_flips_are_detected_never_returned() {
    block_on(async {
        let disk = SimDisk::new(23);
        let (log, mut shard, _) = reopen(&disk, SyncMode::Sync).await;
        shard.put_each(&log, "k", 200, 300);
        log.sync().await.expect("sync");
        disk.set_faults(SimFaults {
            read_bit_flip_per_mille: 1000,
            ..SimFaults::default()
        });
        let mut corrupt = 0;
        for (key, e) in &shard.keys {
            match log.read(e.loc).await {
                Ok(r) => assert_eq!((&r.key[..], &r.value[..]), (&key[..], &e.value[..])),
                Err(StorageError::Corrupt { .. }) => corrupt += 1,
                Err(other) => panic!("unexpected {other}"),
            }
        }
        assert!(corrupt > 10, "{corrupt} flips detected");
        // Flips on the way to the disk: recovery skips or cuts what they hit, nothing else.
        disk.set_faults(SimFaults {
            write_bit_flip_per_mille: 1000,
            ..SimFaults::default()
        });
        for i in 0..100u32 {
            shard
                .put(&log, format!("w{i}").as_bytes(), &value(i, 300), 0)
                .expect("put");
            log.sync().await.expect("sync");
        }
        disk.set_faults(SimFaults::default());
        drop(log);
        let (_, recovered, report) = reopen(&disk, SyncMode::Sync).await;
        assert!(report.corrupt_skipped + report.bytes_cut > 0, "{report:?}");
        for (key, e) in &recovered.keys {
            let original = &shard.keys[key];
            assert_eq!((&e.value, e.seq), (&original.value, original.seq));
        }
        assert!(
            recovered.keys.len() > 200,
            "{} recovered",
            recovered.keys.len()
        );
    });
}

#[test]
fn periodic_and_none_modes() {
    executor().run(async {
        let disk = SimDisk::new(8);
        let mode = SyncMode::Periodic { interval_ms: 5 };
        let (log, _) = Log::open(disk.clone(), 1, options(mode), |_, _| {})
            .await
            .expect("open");
        glommio::spawn_local(log.clone().run_flusher()).detach();
        let a = log
            .append(Op::Put {
                key: b"a",
                value: b"1",
                expiry_ms: 0,
            })
            .expect("append");
        log.wait_durable(a.seq).await.expect("returns at once");
        assert!(log.stats().durable_seq < a.seq);
        glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(
            log.stats().durable_seq,
            a.seq,
            "the timer flushed and synced"
        );
        log.close().await.expect("close");

        let disk = SimDisk::new(9);
        let (log, _) = Log::open(disk.clone(), 1, options(SyncMode::None), |_, _| {})
            .await
            .expect("open");
        glommio::spawn_local(log.clone().run_flusher()).detach();
        let b = log
            .append(Op::Put {
                key: b"b",
                value: b"2",
                expiry_ms: 0,
            })
            .expect("append");
        log.wait_durable(b.seq).await.expect("returns at once");
        log.wait_written(b.seq).await.expect("written on demand");
        assert_eq!(
            (
                log.stats().written_seq,
                log.stats().syncs,
                disk.stats().syncs
            ),
            (b.seq, 0, 0)
        );
        disk.crash();
        let (_, shard, _) = reopen(&disk, SyncMode::None).await;
        assert!(
            shard.keys.is_empty(),
            "mode None never synced: a crash loses the write"
        );
    });
}

#[test]
fn preallocation_enospc_refuses_the_roll_and_keeps_what_was_acknowledged() {
    executor().run(async {
        let disk = SimDisk::new(6);
        disk.set_faults(SimFaults {
            capacity_bytes: Some(2 * u64::from(SEG)),
            ..SimFaults::default()
        });
        let (log, _) = Log::open(disk.clone(), 1, options(SyncMode::Sync), |_, _| {})
            .await
            .expect("open");
        glommio::spawn_local(log.clone().run_flusher()).detach();
        let mut acked = 0u64;
        let err = loop {
            let key = format!("k{acked}");
            match log.append(Op::Put {
                key: key.as_bytes(),
                value: &[7; 1000],
                expiry_ms: 0,
            }) {
                Ok(a) => {
                    log.wait_durable(a.seq).await.expect("durable");
                    acked += 1;
                }
                Err(e) => break e,
            }
            assert!(acked < 1000, "never ran out of space");
        };
        assert_eq!(err, StorageError::NoSpace);
        assert!(
            acked > 100,
            "two segments hold about 120 records, {acked} acknowledged"
        );
        log.close().await.expect("nothing unwritten");
        disk.crash();
        let (_, shard, _) = reopen(&disk, SyncMode::Sync).await;
        assert_eq!(shard.keys.len() as u64, acked);
    });
}

#[test]
fn random_ops_compaction_hints_and_crashes_keep_the_synced_state() {
    let mut tombstones = 0;
    for seed in 0..24u64 {
        block_on(async {
            let disk = SimDisk::new(seed);
            let mut rng = Rng(seed ^ 0x5eed);
            let mut synced = Shard::default();
            // Odd seeds write hints as a node does, with each expiry folded into its
            // Put's entry.
            let folded = seed % 2 == 1;
            for _life in 0..3 {
                let (log, recovered, _) = reopen(&disk, SyncMode::Sync).await;
                if folded {
                    assert_eq!(recovered.index(), synced.index(), "seed {seed}");
                } else {
                    assert_eq!(recovered.keys, synced.keys, "seed {seed}");
                }
                let shard = RefCell::new(recovered);
                for step in 0..400u32 {
                    let key = format!("k{}", rng.below(40)).into_bytes();
                    match rng.below(20) {
                        0..=10 => {
                            let v = value(step, rng.below(700) as usize);
                            let expiry = rng.below(3) * 1000;
                            shard.borrow_mut().put(&log, &key, &v, expiry).expect("put");
                        }
                        11..=13 => {
                            shard.borrow_mut().delete(&log, &key).expect("delete");
                        }
                        14 | 15 => {
                            let expiry = rng.below(9999);
                            shard.borrow_mut().touch(&log, &key, expiry).expect("touch");
                        }
                        16 | 17 => {
                            let step = compact_once(&log, &shard).await;
                            tombstones += step.map_or(0, |p| p.tombstones);
                            if step.is_some_and(|p| p.finished) {
                                synced = shard.borrow().clone(); // finishing syncs the log
                            }
                        }
                        18 => {
                            let mut hint = log.begin_hint().expect("begin a hint");
                            if folded {
                                shard.borrow().push_hint_folded(&mut hint);
                            } else {
                                shard.borrow().push_hint(&mut hint);
                            }
                            log.commit_hint(hint).await.expect("hint");
                            synced = shard.borrow().clone();
                        }
                        _ => {
                            log.sync().await.expect("sync");
                            synced = shard.borrow().clone();
                        }
                    }
                }
                disk.crash();
            }
            // Without the hint, the full scan must agree (tombstones did their job).
            let _ = disk.remove(HINT_FILE_NAME).await;
            let (_, recovered, _) = reopen(&disk, SyncMode::Sync).await;
            assert_eq!(recovered.view(), synced.view(), "seed {seed}, full scan");
        });
    }
    // Victims here are mostly the oldest segments, where tombstones shadow nothing;
    // `compaction_keeps_tombstones_that_shadow_older_segments` makes sure of the rule.
    let _ = tombstones;
}

#[test]
fn compaction_keeps_tombstones_that_shadow_older_segments() {
    block_on(async {
        let disk = SimDisk::new(31);
        let (log, shard, _) = reopen(&disk, SyncMode::Sync).await;
        let shard = RefCell::new(shard);
        // Segment 1: cold keys that stay live, so it has little garbage.
        let mut i = 0u32;
        while log.stats().segments < 2 {
            let key = format!("cold{i}");
            shard
                .borrow_mut()
                .put(&log, key.as_bytes(), &value(i, 500), 0)
                .expect("put");
            i += 1;
        }
        // Segment 2: deletes of some cold keys among overwrites of one hot key, so it is
        // almost all garbage and becomes the victim while segment 1 still holds the
        // values the tombstones shadow.
        for d in 0..10u32 {
            shard
                .borrow_mut()
                .delete(&log, format!("cold{d}").as_bytes())
                .expect("delete");
        }
        let mut n = 0u32;
        while log.stats().segments < 4 {
            shard
                .borrow_mut()
                .put(&log, b"hot", &value(n, 700), 0)
                .expect("put");
            n += 1;
        }
        log.sync().await.expect("sync");
        let mut tombstones = 0;
        for _ in 0..100 {
            let step = compact_once(&log, &shard).await;
            let Some(p) = step else { break };
            tombstones += p.tombstones;
        }
        assert!(tombstones >= 10, "tombstones kept: {tombstones}");
        let shard = shard.into_inner();
        disk.crash();
        let _ = disk.remove(HINT_FILE_NAME).await;
        let (_, recovered, _) = reopen(&disk, SyncMode::Sync).await;
        assert_eq!(recovered.keys, shard.keys, "deleted keys stay deleted");
        assert!(!recovered.keys.contains_key(&b"cold3"[..]));
    });
}

#[test]
fn compaction_keeps_a_segment_whose_damage_it_cannot_read() {
    // Damage in a victim may have held a live value the index points at, or a tombstone
    // that still shadows an older record: deleting the file would lose the one or
    // resurrect the other. The segment's readable live records are copied, the file
    // stays, and it is never picked again.
    block_on(async {
        let disk = SimDisk::new(37);
        let (log, shard, _) = reopen(&disk, SyncMode::Sync).await;
        let shard = RefCell::new(shard);
        let mut n = 0u32;
        while log.stats().segments < 4 {
            let key = if n % 10 == 0 {
                format!("cold{n}")
            } else {
                "hot".to_string()
            };
            shard
                .borrow_mut()
                .put(&log, key.as_bytes(), &value(n, 700), 0)
                .expect("put");
            n += 1;
        }
        log.sync().await.expect("sync");
        let first = segment_file_name(1);
        // A flip inside a record a few kilobytes in (a hot overwrite or a cold value).
        disk.corrupt(&first, 4096 * 3 + 100, &[0x40]);
        let mut damaged = 0;
        let mut steps = 0;
        while let Some(p) = compact_once(&log, &shard).await {
            steps += 1;
            assert!(steps < 200, "compaction keeps picking the damaged segment");
            if p.segment == 1 {
                damaged += p.damaged_bytes;
            }
        }
        assert!(damaged > 0, "the damage was not noticed");
        assert!(
            disk.names().contains(&first),
            "the damaged segment was deleted"
        );
        // Everything the shard still holds that was readable is readable at its copy.
        let shard = shard.into_inner();
        for (key, e) in &shard.keys {
            if let Ok(r) = log.read(e.loc).await {
                assert_eq!((&r.key[..], &r.value[..]), (&key[..], &e.value[..]));
            } else {
                assert_eq!(e.loc.segment, 1, "only a record in the damage may fail");
            }
        }
    });
}

#[test]
fn compaction_leaves_the_write_buffer_to_client_writes() {
    // While the flusher is behind, compaction must not fill the write buffer: client
    // writes would then be refused with Busy.
    block_on(async {
        let disk = SimDisk::new(41);
        let (log, shard, _) = reopen(&disk, SyncMode::Sync).await;
        let shard = RefCell::new(shard);
        let mut n = 0u32;
        while log.stats().segments < 4 {
            shard
                .borrow_mut()
                .put(&log, b"hot", &value(n, 900), 0)
                .expect("put");
            n += 1;
        }
        log.sync().await.expect("sync");
        // No flusher runs: these stay in the buffer, past compaction's share of it.
        let share = u64::from(super::limits::COMPACT_UNWRITTEN_MAX);
        while log.stats().unwritten_bytes < share {
            shard
                .borrow_mut()
                .put(&log, format!("k{n}").as_bytes(), &value(n, 3000), 0)
                .expect("put");
            n += 1;
        }
        assert_eq!(
            compact_once(&log, &shard).await,
            None,
            "compaction ran with the buffer past its share"
        );
        shard
            .borrow_mut()
            .put(&log, b"client", b"still fits", 0)
            .expect("a client write finds room");
        log.sync().await.expect("sync");
        assert!(
            compact_once(&log, &shard).await.is_some(),
            "compaction resumes once the buffer is written"
        );
    });
}
