//! Idle timeout and shutdown for connections (both fronts), without a timer per read.
//!
//! glommio arms a timer for every pending read when a stream has a read timeout
//! (`set_read_timeout`): a clock read and a timer-wheel insert and removal per
//! request. Measured with redis-benchmark at pipeline depth 1, that cost a RESP
//! node two thirds of its throughput; the native front paid the same. Instead, one task per core ticks every
//! `IDLE_TICK_MS`: it counts ticks, and closes the [`Watch`] of every
//! connection that has not received a byte for `idle-timeout-secs` worth of ticks,
//! or of every connection once the node is stopping. A connection's read races its
//! watch, which costs nothing until the watch is closed.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::time::Duration;

use glommio::sync::Semaphore;

use crate::constants::IDLE_TICK_MS;
use crate::server::core::Core;

/// Why a watch was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Closed {
    /// The connection was silent for the idle timeout.
    Idle,
    /// The node is stopping.
    Stopping,
}

/// One connection's watch.
pub(crate) struct Watch {
    /// Tick of the last byte received.
    last_tick: Cell<u64>,
    /// Never has a permit; closed to wake the connection.
    bell: Semaphore,
    closed: Cell<Option<Closed>>,
    reaper: Rc<Reaper>,
}

impl Watch {
    /// Records that the connection received bytes.
    pub fn touch(&self) {
        self.last_tick.set(self.reaper.tick.get());
    }

    /// Resolves once the watch is closed, with the reason.
    pub async fn closed(&self) -> Closed {
        // A semaphore without permits: `acquire` only returns (with an error) once
        // it is closed.
        let _ = self.bell.acquire(1).await;
        self.closed.get().unwrap_or(Closed::Stopping)
    }
}

/// The per-core ticker.
struct Reaper {
    tick: Cell<u64>,
    watches: RefCell<Vec<Weak<Watch>>>,
}

thread_local! {
    static REAPER: RefCell<Option<Rc<Reaper>>> = const { RefCell::new(None) };
}

fn reaper(core: &Rc<Core>) -> Rc<Reaper> {
    REAPER.with(|cell| {
        let mut cell = cell.borrow_mut();
        if let Some(reaper) = cell.as_ref() {
            return reaper.clone();
        }
        let reaper = Rc::new(Reaper {
            tick: Cell::new(0),
            watches: RefCell::new(Vec::new()),
        });
        let (ticker, core) = (reaper.clone(), core.clone());
        let idle_ticks = (core.config.idle_timeout_secs.saturating_mul(1000) / IDLE_TICK_MS).max(1);
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(Duration::from_millis(IDLE_TICK_MS)).await;
                let now = ticker.tick.get() + 1;
                ticker.tick.set(now);
                let stopping = core.stopping();
                ticker.watches.borrow_mut().retain(|weak| {
                    let Some(watch) = weak.upgrade() else {
                        return false;
                    };
                    let why = if stopping {
                        Some(Closed::Stopping)
                    } else if now.saturating_sub(watch.last_tick.get()) >= idle_ticks {
                        Some(Closed::Idle)
                    } else {
                        None
                    };
                    match why {
                        Some(why) => {
                            watch.closed.set(Some(why));
                            watch.bell.close();
                            false
                        }
                        None => true,
                    }
                });
                if stopping {
                    break;
                }
            }
        })
        .detach();
        *cell = Some(reaper.clone());
        reaper
    })
}

/// A watch for a new connection on this core.
pub(crate) fn watch(core: &Rc<Core>) -> Rc<Watch> {
    let reaper = reaper(core);
    let watch = Rc::new(Watch {
        last_tick: Cell::new(reaper.tick.get()),
        bell: Semaphore::new(0),
        closed: Cell::new(None),
        reaper: reaper.clone(),
    });
    if core.stopping() {
        watch.closed.set(Some(Closed::Stopping));
        watch.bell.close();
    } else {
        reaper.watches.borrow_mut().push(Rc::downgrade(&watch));
    }
    watch
}
