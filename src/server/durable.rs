//! The node's side of durability: which log a shard gets, how it is rebuilt at start,
//! the background work each core does for its log (flushing, compaction, counters),
//! and the hint written at a clean shutdown.

use std::rc::Rc;
use std::time::Duration;

use super::core::Core;
use super::stats;
use crate::config::{Config, Durability, EvictionMode};
use crate::shard::{
    self, Appended, CachePolicy, Eviction, LogError, MemoryLog, Mutation, Shard, SystemClock,
};
use crate::storage::{self, DmaDisk, LogOptions, Op, RecordKind, StorageError, SyncMode};

/// Milliseconds between two compaction steps (and counter refreshes) on each core.
const MAINTENANCE_INTERVAL_MS: u64 = 100;

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
    Ok(shard)
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
        while !core.stopping() {
            glommio::timer::sleep(Duration::from_millis(MAINTENANCE_INTERVAL_MS)).await;
            compact_once(&core, &log).await;
            publish_log_counters(&core, &log);
        }
    };
    if let Ok(task) = glommio::spawn_local_into(maintenance, background) {
        task.detach();
    }
}

/// One bounded compaction step, if a segment has enough garbage.
async fn compact_once(core: &Core, log: &storage::Log<DmaDisk>) {
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
    match step {
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
}

/// Copies the log's figures into the core's counters, for `STATS`.
fn publish_log_counters(core: &Core, log: &storage::Log<DmaDisk>) {
    use std::sync::atomic::Ordering::Relaxed;
    let c = core.counters();
    let s = log.stats();
    let segments = log.segments();
    let size = u64::from(core.config.segment_size_mib) * 1024 * 1024;
    let data: u64 = segments.iter().map(|g| u64::from(g.data_end)).sum();
    let garbage: u64 = segments.iter().map(|g| u64::from(g.garbage_bytes)).sum();
    c.log_flushes.store(s.flushes, Relaxed);
    c.log_syncs.store(s.syncs, Relaxed);
    c.log_bytes_written.store(s.bytes_written, Relaxed);
    c.log_write_us.store(s.write_us, Relaxed);
    c.log_sync_us.store(s.sync_us, Relaxed);
    c.log_segments.store(u64::from(s.segments), Relaxed);
    c.disk_bytes.store(segments.len() as u64 * size, Relaxed);
    c.log_data_bytes.store(data, Relaxed);
    c.log_garbage_bytes.store(garbage, Relaxed);
    c.log_failed.store(u64::from(s.failed.is_some()), Relaxed);
}

/// At a clean shutdown: write the hint (so the next start skips most of the scan) and
/// close the log.
pub async fn close_shard(core: &Core) {
    let Some(log) = core.shard.borrow().log().durable() else {
        return;
    };
    let mut hint = log.begin_hint();
    core.shard
        .borrow()
        .for_each_live(|key, version, expiry, location| {
            hint.push(RecordKind::Put, version, expiry, location, key);
        });
    if let Err(e) = log.commit_hint(hint).await {
        eprintln!(
            "ringkv: core {} could not write its hint (the next start scans the whole log): {e}",
            core.id
        );
    }
    if let Err(e) = log.close().await {
        eprintln!("ringkv: core {} closing its log: {e}", core.id);
    }
}
