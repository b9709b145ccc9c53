//! The node's side of durability: which log a shard gets, how it is rebuilt at start,
//! the background work each core does for its log (flushing, compaction, hints,
//! counters), and the hint written at a clean shutdown.

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::core::Core;
use super::stats;
use crate::config::{Config, Durability, EvictionMode};
use crate::shard::{
    self, Appended, CachePolicy, Eviction, LogError, MemoryLog, Mutation, Shard, SystemClock,
};
use crate::storage::{self, DmaDisk, LogOptions, Op, RecordKind, StorageError, SyncMode};

/// Milliseconds between two rounds of maintenance (compaction, hints, counter refreshes)
/// on each core.
const MAINTENANCE_INTERVAL_MS: u64 = 100;

/// Compaction steps (each reads at most `COMPACT_STEP_BYTES` of a victim) one round may
/// run back to back while victims remain: up to 160 MiB/s per core when the core is
/// otherwise idle, so compaction keeps up with a log written at disk speed. The
/// background queue's low shares keep requests ahead of it on a busy core.
const COMPACT_STEPS_PER_ROUND: u32 = 16;

/// A periodic hint is also written, before its interval is up, once this many records
/// and half as many as the shard has keys were appended since the last one: a restart
/// after a crash then scans at most about half the live set again, and loading a shard
/// from empty writes hints at doubling sizes (their total stays within twice the last).
const HINT_TAIL_RECORDS_MIN: u64 = 100_000;

/// Index slots a hint visits between two chances for requests to run.
const HINT_SLICE_SLOTS: u32 = 4096;

/// The log a node's shard writes to.
pub enum NodeLog {
    /// The durable per-shard log on disk.
    Durable(storage::Log<DmaDisk>),
    /// Nothing on disk (the pure cache mode).
    Memory(MemoryLog),
}

impl NodeLog {
    /// The durable log, if there is one (a cheap `Rc` clone, to use outside borrows).
    pub fn durable(&self) -> Option<storage::Log<DmaDisk>> {
        match self {
            NodeLog::Durable(log) => Some(log.clone()),
            NodeLog::Memory(_) => None,
        }
    }
}

/// Maps a storage error to what the shard reports.
pub fn log_error(err: StorageError) -> LogError {
    match err {
        StorageError::NoSpace => LogError::NoSpace,
        StorageError::TooLarge { .. } | StorageError::InvalidArgument(_) => {
            LogError::Refused(err.to_string())
        }
        StorageError::Busy => LogError::Io("the log's write buffer is full; retry".into()),
        other => LogError::Io(other.to_string()),
    }
}

impl shard::Log for NodeLog {
    fn append(&mut self, mutation: Mutation<'_>) -> Result<Appended, LogError> {
        let log = match self {
            NodeLog::Memory(log) => return log.append(mutation),
            NodeLog::Durable(log) => log,
        };
        let op = match mutation {
            Mutation::Put {
                key,
                value,
                expire_at_ms,
            } => Op::Put {
                key,
                value,
                expiry_ms: expire_at_ms,
            },
            Mutation::Delete { key } => Op::Delete { key },
            Mutation::Touch { key, expire_at_ms } => Op::Touch {
                key,
                expiry_ms: expire_at_ms,
            },
        };
        if key_of(&mutation).is_empty() {
            return Err(LogError::Refused("empty keys cannot be stored".into()));
        }
        let appended = log.append(op).map_err(log_error)?;
        Ok(Appended {
            seq: appended.seq,
            location: Some(appended.location),
        })
    }

    fn mark_garbage(&mut self, location: storage::Location) {
        if let NodeLog::Durable(log) = self {
            log.mark_garbage(location);
        }
    }
}

fn key_of<'a>(m: &Mutation<'a>) -> &'a [u8] {
    match *m {
        Mutation::Put { key, .. } | Mutation::Delete { key } | Mutation::Touch { key, .. } => key,
    }
}

/// The shard type a node runs.
pub type NodeShard = Shard<NodeLog, SystemClock>;

fn log_options(config: &Config) -> LogOptions {
    LogOptions {
        segment_size: config.segment_size_mib.saturating_mul(1024 * 1024),
        sync_mode: match config.durability {
            Durability::Sync => SyncMode::Sync,
            Durability::Periodic => SyncMode::Periodic {
                interval_ms: config.flush_interval_ms,
            },
            Durability::None => SyncMode::None,
        },
        compact_garbage_percent: config.compact_garbage_percent,
        nonce_seed: None,
    }
}

/// Opens (or creates) shard `id`'s log under the data dir and rebuilds its index from
/// it. Prints what recovery found. A node in cache mode gets an empty in-memory shard.
pub async fn open_shard(config: &Config, id: usize, cores: usize) -> Result<NodeShard, String> {
    let budget = config.cache_size_mib.saturating_mul(1024 * 1024) / cores as u64;
    let eviction = match config.eviction {
        EvictionMode::None => Eviction::Values,
        EvictionMode::Lru => Eviction::Keys,
    };
    let policy = CachePolicy {
        budget_bytes: budget,
        eviction,
    };
    if config.eviction == EvictionMode::Lru {
        return Ok(Shard::with_cache(
            NodeLog::Memory(MemoryLog::default()),
            SystemClock,
            policy,
        ));
    }
    let dir = config.data_dir.join(format!("shard-{id}"));
    let mut disk = DmaDisk::open(&dir)
        .await
        .map_err(|e| format!("shard {id}: cannot open {}: {e}", dir.display()))?;
    // Every write of a sync-mode log is a group commit that must reach stable storage:
    // let the kernel follow it with the cache flush (O_DSYNC) instead of a separate
    // fdatasync, one executor round trip less per commit.
    disk.set_write_through(config.durability == Durability::Sync);
    // Recovery hands records in any order; they are folded per key into the index.
    let mut recovery = shard::Recovery::new(budget);
    let (log, report) =
        storage::Log::open_into(disk, id as u32, log_options(config), &mut recovery)
            .await
            .map_err(|e| format!("shard {id}: recovery of {} failed: {e}", dir.display()))?;
    let (mut shard, expired) =
        Shard::recovered(NodeLog::Durable(log), SystemClock, policy, recovery);
    shard.recovered_to(report.last_seq);
    eprintln!(
        "ringkv: shard {id} recovered {} keys from {} segments ({} records, {} from the hint{}), \
         {} expired, {} bytes cut, {} corrupt records skipped, in {} ms",
        shard.len(),
        report.segments,
        report.records,
        report.hint_records,
        if report.hint_used {
            ""
        } else {
            ", no usable hint"
        },
        expired,
        report.bytes_cut,
        report.corrupt_skipped,
        report.duration_us / 1000,
    );
    for warning in recovery_warnings(&report) {
        eprintln!("ringkv: shard {id} WARNING: {warning}");
    }
    Ok(shard)
}

/// What recovery found damaged or could not use, one sentence each (none on a clean log).
fn recovery_warnings(report: &storage::RecoveryReport) -> Vec<String> {
    let mut out = Vec::new();
    if !report.unreadable.is_empty() {
        let keys = if report.hint_used {
            format!(
                "{} keys the hint placed in them are lost",
                report.hint_entries_lost
            )
        } else {
            "keys whose latest record they held are lost or show an older version".into()
        };
        out.push(format!(
            "segment files {:?} have no readable header; they are kept on disk and left out \
             of the log ({keys}; every tombstone is kept while they are there)",
            report.unreadable
        ));
    }
    if report.segments_truncated > 0 {
        out.push(format!(
            "{} segment files are shorter than their header says; what they lost is gone",
            report.segments_truncated
        ));
    }
    if let Some(why) = &report.hint_rejected {
        out.push(format!(
            "the hint file was not used ({why}); the whole log was scanned"
        ));
    }
    if report.corrupt_skipped > 0 {
        out.push(format!(
            "{} damaged records ({} bytes) were skipped and are not served",
            report.corrupt_skipped, report.corrupt_bytes
        ));
    }
    out
}

/// Starts the flusher (latency queue) and the compaction loop (background queue).
pub fn spawn_log_tasks(
    core: &Rc<Core>,
    latency: glommio::TaskQueueHandle,
    background: glommio::TaskQueueHandle,
) {
    let Some(log) = core.shard.borrow().log().durable() else {
        return;
    };
    if let Ok(task) = glommio::spawn_local_into(log.clone().run_flusher(), latency) {
        task.detach();
    }
    let core = core.clone();
    let maintenance = async move {
        let (mut last_hint, mut hint_failed) = (Instant::now(), false);
        while !core.stopping() {
            glommio::timer::sleep(Duration::from_millis(MAINTENANCE_INTERVAL_MS)).await;
            for _ in 0..COMPACT_STEPS_PER_ROUND {
                if !compact_once(&core, &log).await {
                    break;
                }
                glommio::yield_if_needed().await;
            }
            if hint_due(&core, &log, last_hint.elapsed(), hint_failed) {
                hint_failed = !write_hint(&core, &log, true).await;
                last_hint = Instant::now();
            }
            publish_log_counters(&core, &log);
        }
    };
    if let Ok(task) = glommio::spawn_local_into(maintenance, background) {
        task.detach();
    }
}

/// Whether the shard should write a periodic hint now: the log has grown since the
/// last one, and either `hint-interval-secs` have passed or the growth passes
/// `HINT_TAIL_RECORDS_MIN` and half the live keys. After a failed attempt (a full
/// disk), only the interval counts, so failures are not retried every tick.
fn hint_due(
    core: &Core,
    log: &storage::Log<DmaDisk>,
    since_last: Duration,
    last_failed: bool,
) -> bool {
    let interval = core.config.hint_interval_secs;
    if interval == 0 || log.hinting() {
        return false;
    }
    let tail = log.stats().last_seq.saturating_sub(log.hint_seq());
    let live = core.shard.borrow().len() as u64;
    tail > 0
        && (since_last >= Duration::from_secs(interval)
            || (!last_failed && tail >= HINT_TAIL_RECORDS_MIN.max(live / 2)))
}

/// Writes a hint of every live key. `sliced`: walk the index a slice at a time,
/// letting requests run in between (the node is serving); otherwise in one go.
/// A sliced walk gives up if the node starts stopping (the shutdown hint follows).
/// Returns false if the hint could not be written.
async fn write_hint(core: &Core, log: &storage::Log<DmaDisk>, sliced: bool) -> bool {
    let started = Instant::now();
    let mut hint = match log.begin_hint() {
        Ok(hint) => hint,
        Err(e) => {
            stats::bump(&core.counters().storage_errors);
            eprintln!("ringkv: core {} could not start a hint: {e}", core.id);
            return false;
        }
    };
    let covered = hint.last_seq();
    let mut next = Some(0);
    while let Some(from) = next {
        let count = if sliced { HINT_SLICE_SLOTS } else { u32::MAX };
        next = core
            .shard
            .borrow()
            .for_each_live(from, count, |key, version, expiry, location| {
                // A key written since the hint began is in the log after the hint's
                // position, where recovery scans: it must not be listed. (An expiry
                // change keeps the version, and its Touch record is after the position.)
                if version <= covered {
                    hint.push(RecordKind::Put, version, expiry, location, key);
                }
            });
        if sliced && next.is_some() {
            glommio::yield_if_needed().await;
            if core.stopping() {
                return true;
            }
        }
    }
    let keys = hint.len();
    let result = log.commit_hint(hint).await;
    let counters = core.counters();
    match result {
        Ok(()) => {
            let us = started.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
            stats::bump(&counters.hints_written);
            stats::add(&counters.hint_us, us);
            eprintln!(
                "ringkv: core {} wrote a hint of {keys} keys up to seq {covered} in {} ms",
                core.id,
                us / 1000
            );
            true
        }
        Err(e) => {
            stats::bump(&counters.storage_errors);
            eprintln!(
                "ringkv: core {} could not write its hint (a restart scans more of the log): {e}",
                core.id
            );
            false
        }
    }
}

/// One bounded compaction step, if a segment has enough garbage; whether it did one.
async fn compact_once(core: &Core, log: &storage::Log<DmaDisk>) -> bool {
    let step = log
        .compact_step(
            |candidate| core.shard.borrow().liveness(candidate),
            |relocation| {
                if !core.shard.borrow_mut().relocate(relocation)
                    && relocation.kind == RecordKind::Put
                {
                    log.mark_garbage(relocation.to);
                }
            },
        )
        .await;
    let counters = core.counters();
    let worked = matches!(step, Ok(Some(_)));
    match step {
        Ok(Some(progress)) if progress.kept_damaged => {
            eprintln!(
                "ringkv: core {} WARNING: segment {} holds {} bytes of damage; its live records \
                 were copied, and the file is kept on disk and no longer compacted",
                core.id, progress.segment, progress.damaged_bytes
            );
        }
        Ok(Some(progress)) if progress.finished => {
            stats::bump(&counters.compactions);
            stats::add(&counters.compaction_bytes_freed, progress.bytes_freed);
        }
        Ok(_) => {}
        Err(e) => {
            stats::bump(&counters.storage_errors);
            eprintln!("ringkv: core {} compaction step failed: {e}", core.id);
        }
    }
    worked
}

/// Copies the log's figures into the core's counters, for `STATS`.
fn publish_log_counters(core: &Core, log: &storage::Log<DmaDisk>) {
    use std::sync::atomic::Ordering::Relaxed;
    let c = core.counters();
    let s = log.stats();
    let segments = log.segments();
    let data: u64 = segments.iter().map(|g| u64::from(g.data_end)).sum();
    let garbage: u64 = segments.iter().map(|g| u64::from(g.garbage_bytes)).sum();
    c.log_flushes.store(s.flushes, Relaxed);
    c.log_syncs.store(s.syncs, Relaxed);
    c.log_bytes_written.store(s.bytes_written, Relaxed);
    c.log_write_us.store(s.write_us, Relaxed);
    c.log_sync_us.store(s.sync_us, Relaxed);
    c.log_segments.store(u64::from(s.segments), Relaxed);
    c.disk_bytes.store(log.disk_bytes(), Relaxed);
    c.log_data_bytes.store(data, Relaxed);
    c.log_garbage_bytes.store(garbage, Relaxed);
    c.log_failed.store(u64::from(s.failed.is_some()), Relaxed);
    c.log_damaged_segments
        .store(u64::from(s.damaged_segments), Relaxed);
    c.log_unreadable_segments
        .store(u64::from(s.unreadable_segments), Relaxed);
}

/// At a clean shutdown: write the hint (so the next start skips most of the scan) and
/// close the log. A periodic hint still being written is let finish first.
pub async fn close_shard(core: &Core) {
    let Some(log) = core.shard.borrow().log().durable() else {
        return;
    };
    while log.hinting() {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    write_hint(core, &log, false).await;
    if let Err(e) = log.close().await {
        eprintln!("ringkv: core {} closing its log: {e}", core.id);
    }
}
