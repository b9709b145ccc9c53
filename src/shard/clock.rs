//! Time as the shard sees it. The shard never reads the system clock directly, so
//! tests drive TTLs with a [`ManualClock`] and replay exactly.

use std::cell::Cell;
use std::rc::Rc;

/// A source of wall-clock time in milliseconds since the Unix epoch.
pub trait Clock {
    /// Now, in Unix milliseconds.
    fn now_ms(&self) -> u64;
}

/// The real clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to; clones share the same time.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    now: Rc<Cell<u64>>,
}

impl ManualClock {
    /// A clock that starts at `start_ms`.
    pub fn new(start_ms: u64) -> Self {
        ManualClock {
            now: Rc::new(Cell::new(start_ms)),
        }
    }

    /// Moves time forward.
    pub fn advance(&self, ms: u64) {
        self.now.set(self.now.get() + ms);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now.get()
    }
}
