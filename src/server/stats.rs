//! Per-core connection counters.
//!
//! Each core writes only its own [`CoreCounters`]; `STATS` reads them all. They are
//! the one piece of memory cores share, and it is write-once-per-core, relaxed atomics:
//! counters, not state anything depends on.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Counters of one core's connections.
        #[derive(Debug, Default)]
        pub struct CoreCounters {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        impl CoreCounters {
            /// `(name, value)` for every counter, in declaration order.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters! {
    /// Connections open now.
    connections_current,
    /// Connections accepted since start.
    connections_total,
    /// Connections refused because `max-connections` was reached.
    connections_rejected,
    /// Connections closed for idling, stalling mid-frame, or not reading.
    connections_timed_out,
    /// Requests answered.
    requests,
    /// Requests executed on another core.
    requests_forwarded,
    /// Batches sent to other cores.
    forward_batches,
    /// Frames so malformed the connection was closed.
    frames_malformed,
    /// Requests refused with an error status (unknown opcode, invalid, too large).
    requests_refused,
    /// Batches that waited for their writes to reach the disk.
    durable_waits,
    /// Total microseconds those waits took (divide by `durable_waits` for the mean).
    durable_wait_us,
    /// Writes answered with an error because their flush failed.
    durable_failures,
    /// Writes the log refused before applying them (disk full at a segment roll, or the
    /// log failed after an I/O error): answered with an error, nothing changed.
    writes_refused,
    /// Values read back from the log because the cache had dropped them.
    value_fetches,
    /// Log flushes (gauge copied from the log).
    log_flushes,
    /// fdatasync calls issued by the log (gauge).
    log_syncs,
    /// Bytes the log has written (gauge).
    log_bytes_written,
    /// Microseconds flushes spent writing (gauge; per flush: divide by `log_flushes`).
    log_write_us,
    /// Microseconds flushes spent in fdatasync (gauge; per sync: divide by `log_syncs`).
    log_sync_us,
    /// Segment files (gauge).
    log_segments,
    /// Bytes of the log's files on disk: segments, the spare, the hint (gauge).
    disk_bytes,
    /// Bytes of records in the segments, live or not (gauge).
    log_data_bytes,
    /// Bytes of records known to be garbage (gauge).
    log_garbage_bytes,
    /// 1 while the log refuses writes after a failed flush (gauge).
    log_failed,
    /// Segments compaction found damaged, kept on disk and never compacted (gauge).
    log_damaged_segments,
    /// Segment files recovery could not read, kept on disk and left out of the log
    /// (gauge).
    log_unreadable_segments,
    /// Segments compaction has finished and deleted.
    compactions,
    /// Bytes of disk compaction has freed.
    compaction_bytes_freed,
    /// Hint files written (periodic and at shutdown).
    hints_written,
    /// Microseconds spent building and writing hints (per hint: divide by `hints_written`).
    hint_us,
    /// Storage errors outside a request (compaction, hint).
    storage_errors,
}

/// Adds one to a counter.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Adds `n` to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Subtracts one from a gauge.
pub fn drop_one(counter: &AtomicU64) {
    counter.fetch_sub(1, Ordering::Relaxed);
}
