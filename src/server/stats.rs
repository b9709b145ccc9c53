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
