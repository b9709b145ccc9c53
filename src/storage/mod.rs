//! The per-shard durable log: the source of truth of one shard.
//!
//! # What it owns
//! - The segment files of one shard directory (`shard-N/segment-*.log`), the hint file
//!   (`hint.dat`) and the probe block (`probe.blk`); their format is specified in
//!   `proto-spec/log-format.md`, with golden vectors in `proto-spec/vectors/log/`.
//! - Sequence numbers: every record gets the next `seq` of the shard at `append`; a Put's
//!   seq is its value's version. After a restart seqs continue above the highest one
//!   recovered.
//! - Durability: group commit by one flusher task ([`Log::run_flusher`]), waiters
//!   ([`Log::wait_durable`]), and what happens when a flush fails (see below).
//! - Recovery ([`Log::open`]), hints ([`Log::begin_hint`]/[`Log::commit_hint`]),
//!   compaction steps ([`Log::compact_step`]) and tail truncation
//!   ([`Log::truncate_after`]).
//! - The I/O seam ([`Disk`]) with its two implementations: [`DmaDisk`] (glommio DMA,
//!   O_DIRECT) and [`SimDisk`] (in memory, seeded faults, `crash()`).
//!
//! # What it must never do
//! - Hold a `RefCell` borrow across an `.await`, or call back into the shard while
//!   borrowing its own state: the shard is synchronous code in a `RefCell` too.
//! - Acknowledge a record (`wait_durable` Ok in mode `Sync`) before the fdatasync covering
//!   it returned Ok, or delete a segment before the copies compaction made are durable.
//! - Extend a segment file: segments are preallocated and zeroed at creation.
//! - Write anything but whole 4096-byte blocks at 4096-aligned offsets, or write through
//!   anything but the [`Disk`] seam.
//! - Yield a record whose checksums fail, or panic on bytes read from disk.
//! - Know about keys' meaning, the index, caching, TTL clocks or the network: the shard
//!   tells it what is garbage and what is live.
//!
//! # Failure model of a flush
//! A flush that fails (ENOSPC, EIO on write or fdatasync) acknowledges nothing: every
//! waiter for a seq not yet durable gets the error, and the log enters a failed state in
//! which `append` returns that error. The records stay in the write buffer, readable.
//! The flusher retries every `FLUSH_RETRY_INTERVAL_MS`, rewriting the same bytes from
//! the last durable position; the first retry that succeeds clears the failed state (so
//! records that got an error may still become durable: the outcome of an errored write
//! is unknown, never a silent loss of an acknowledged one).
//!
//! # Using it from the shard
//! ```text
//! let disk = DmaDisk::open(data_dir.join(format!("shard-{shard_id}"))).await?;
//! let (log, report) = Log::open(disk, shard_id, options, |rec, garbage| index.apply(rec, garbage)).await?;
//! glommio::spawn_local_into(log.clone().run_flusher(), latency_tq)?.detach();
//! let appended = log.append(Op::Put { key, value, expiry_ms })?;   // sync, inside the shard borrow
//! log.wait_durable(appended.seq).await?;                            // outside any borrow
//! ```

mod compact;
mod disk;
mod error;
mod format;
mod hint;
pub mod limits;
mod log;
mod recovery;
mod sim;
mod truncate;

#[cfg(test)]
mod tests;

pub use self::compact::{Candidate, CompactProgress, Liveness, Relocation};
pub use self::disk::{Disk, DmaDisk, PROBE_FILE_NAME};
pub use self::error::StorageError;
pub use self::format::{
    decode_record, encode_record, fuzz_decode, segment_file_name, DecodeError, HeaderBlock,
    Location, Record, RecordKind, RecordRef, SegmentHeader, FORMAT_VERSION,
};
pub use self::hint::{fuzz_hint, HintBuilder, HINT_FILE_NAME, HINT_TEMP_FILE_NAME};
pub use self::log::{Appended, Log, LogOptions, LogStats, Op, SegmentInfo, SyncMode};
pub use self::recovery::{Garbage, KeyState, Recovered, RecoveryReport, RecoverySink};
pub use self::sim::{SimDisk, SimFaults, SimStats};
pub use self::truncate::TruncateReport;
