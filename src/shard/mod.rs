//! The shard: one core's slice of the key space and the only code that changes it.
//!
//! A shard is plain synchronous code: [`Shard::apply`] takes a [`Command`] and returns
//! a [`Reply`]. It does no I/O of its own: every change goes through the [`Log`] seam
//! first (the durable log on a node, an in-memory twin in tests), and time comes from
//! a [`Clock`]. The server drives it from a glommio executor; tests and a future
//! deterministic simulation drive it directly. It must never await, never touch a
//! socket, and never be shared between cores.

pub mod clock;
pub mod command;
pub mod index;
pub mod ld;
pub mod recovery;

use bytes::{Bytes, BytesMut};

pub use clock::{Clock, ManualClock, SystemClock};
pub use command::{Command, Cond, ExpireCond, Expiry, Reply, ShardError, ShardStats};
use index::{Cached, Entry, Index, NewEntry, Removed};
use ld::Ld;
pub use recovery::Recovery;

use crate::constants::{SCAN_COUNT_DEFAULT, SCAN_COUNT_MAX, VALUE_SIZE_MAX};
pub use crate::storage::Location;
use crate::storage::{Candidate, Liveness, RecordKind, Relocation};

/// A change to the shard, as handed to the log before it is applied.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mutation<'a> {
    /// Store a value.
    Put {
        /// Key.
        key: &'a [u8],
        /// Value.
        value: &'a [u8],
        /// Expiry in Unix ms; 0 = never.
        expire_at_ms: u64,
    },
    /// Remove a key.
    Delete {
        /// Key.
        key: &'a [u8],
    },
    /// Change only a key's expiry.
    Touch {
        /// Key.
        key: &'a [u8],
        /// Expiry in Unix ms; 0 = never.
        expire_at_ms: u64,
    },
}

/// Why the log refused a mutation; the shard then leaves its state unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogError {
    /// The disk is full.
    NoSpace,
    /// Any other I/O failure.
    Io(String),
    /// The log cannot store this mutation (an empty key, a record too large).
    Refused(String),
}

/// Where an appended mutation went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Its position in the shard's log: strictly greater than every earlier one.
    pub seq: u64,
    /// Where the record can be read back (`None` for a log that keeps nothing).
    pub location: Option<Location>,
}

/// Where a shard's changes go before they are applied: the seam between the shard's
/// logic and its storage (and, later, replication).
pub trait Log {
    /// Records a mutation. The shard uses the returned sequence number as the version
    /// and the location to read an evicted value back.
    fn append(&mut self, mutation: Mutation<'_>) -> Result<Appended, LogError>;

    /// Tells the log that the record at `location` is no longer needed (overwritten,
    /// deleted, expired), so compaction can count its segment's garbage.
    fn mark_garbage(&mut self, _location: Location) {}
}

/// A log that keeps nothing: sequence numbers only. For a node without durability
/// (the pure cache mode) and for tests of the shard's logic.
#[derive(Debug, Default)]
pub struct MemoryLog {
    last_seq: u64,
}

impl Log for MemoryLog {
    fn append(&mut self, _mutation: Mutation<'_>) -> Result<Appended, LogError> {
        self.last_seq += 1;
        Ok(Appended {
            seq: self.last_seq,
            location: None,
        })
    }
}

/// Rough bytes of index memory per key beyond its key and value bytes, used to size the
/// pure cache mode (`Eviction::Keys`) against its budget: the key's slot, the value's
/// slot in the value cache (every value is cached in that mode) and ~8 bytes of hash
/// table (4 + 1 per bucket at 1/2 to 7/8 load). 96 bytes.
pub const ENTRY_OVERHEAD_BYTES: u64 = (index::SLOT_SIZE + index::VALUE_HANDLE_SIZE + 8) as u64;
const _: () = assert!(ENTRY_OVERHEAD_BYTES == 96);

/// What the shard drops when its memory budget is exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eviction {
    /// Cached values whose records are in the log; the keys stay and their values are
    /// read back from disk on the next access. The budget counts cached value bytes.
    Values,
    /// Whole keys, memcached-style: for a node that keeps nothing on disk. The budget
    /// counts key and value bytes plus `ENTRY_OVERHEAD_BYTES` per key.
    Keys,
}

/// The memory budget of a shard and the state of its CLOCK hand.
#[derive(Clone, Copy, Debug)]
pub struct CachePolicy {
    /// Bytes the shard may hold, as counted by `eviction`.
    pub budget_bytes: u64,
    /// What goes when the budget is exceeded.
    pub eviction: Eviction,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            budget_bytes: u64::MAX,
            eviction: Eviction::Values,
        }
    }
}

/// Outcome of a read-modify-write on the current value.
enum Current {
    Absent,
    Present { slot: u32 },
}

/// One shard: index, log and clock.
pub struct Shard<L: Log, C: Clock> {
    index: Index,
    log: L,
    clock: C,
    stats: ShardStats,
    sweep_cursor: u32,
    rng: u64,
    cache: CachePolicy,
    /// Bytes counted against the budget (see [`Eviction`]).
    cached_bytes: u64,
    clock_hand: u32,
    last_seq: u64,
}

impl<L: Log, C: Clock> Shard<L, C> {
    /// An empty shard.
    pub fn new(log: L, clock: C) -> Self {
        Shard {
            index: Index::default(),
            log,
            clock,
            stats: ShardStats::default(),
            sweep_cursor: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
            cache: CachePolicy::default(),
            cached_bytes: 0,
            clock_hand: 0,
            last_seq: 0,
        }
    }

    /// An empty shard with a memory budget.
    pub fn with_cache(log: L, clock: C, cache: CachePolicy) -> Self {
        Shard {
            cache,
            ..Shard::new(log, clock)
        }
    }

    /// The highest sequence number this shard has appended (or recovered).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Bytes currently counted against the memory budget.
    pub fn cached_bytes(&self) -> u64 {
        self.cached_bytes
    }

    /// The log (for the server's durability waits and for tests).
    pub fn log(&self) -> &L {
        &self.log
    }

    /// Number of keys, expired ones not yet reclaimed included.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when the shard holds no key.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Executes one command.
    pub fn apply(&mut self, cmd: Command) -> Reply {
        let now = self.clock.now_ms();
        self.apply_at(cmd, now)
    }

    /// The shard's clock, in Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Executes one command at `now` (Unix ms, from [`Shard::now_ms`]): a batch applied
    /// in one go reads the clock once instead of once per command.
    pub fn apply_at(&mut self, cmd: Command, now: u64) -> Reply {
        let is_read = !cmd.is_write() && cmd.key().is_some();
        let reply = match cmd {
            Command::Get { key } => self.get(&key, now),
            Command::Exists { key, access } => match self.live(&key, now) {
                Current::Absent => Reply::NotFound,
                Current::Present { slot } => {
                    if access {
                        self.index.set_referenced(slot, true);
                    }
                    Reply::Exists {
                        version: self.entry(slot).version(),
                    }
                }
            },
            Command::GetEx { key, expiry } => self.get_ex(&key, expiry, now),
            Command::GetDel { key } => self.get_del(&key, now),
            Command::Set {
                key,
                value,
                expiry,
                cond,
                get_old,
            } => self.set(key, value, expiry, cond, get_old, now),
            Command::Delete { key, cond } => self.delete(&key, cond, now),
            Command::Expire { key, expiry, cond } => self.expire(&key, expiry, cond, now),
            Command::Ttl { key } => match self.live(&key, now) {
                Current::Absent => Reply::NotFound,
                Current::Present { slot } => {
                    let at = self.entry(slot).expire_at_ms();
                    Reply::Ttl((at != 0).then(|| at.saturating_sub(now)))
                }
            },
            Command::ExpireTime { key } => match self.live(&key, now) {
                Current::Absent => Reply::NotFound,
                Current::Present { slot } => {
                    let at = self.entry(slot).expire_at_ms();
                    Reply::ExpireAt((at != 0).then_some(at))
                }
            },
            Command::Transaction { watch, commands } => self.transaction(&watch, commands, now),
            Command::IncrBy { key, delta } => self.incr_by(key, delta, now),
            Command::IncrByFloat { key, delta } => self.incr_by_float(key, delta, now),
            Command::Append { key, value } => self.append(key, &value, now),
            Command::SetRange { key, offset, value } => self.set_range(key, offset, &value, now),
            Command::Scan {
                cursor,
                count,
                prefix,
            } => self.scan(cursor, count, &prefix, now),
            Command::Count => Reply::Count(self.index.len() as u64),
            Command::Flush => self.flush(),
            Command::RandomKey => self.random_key(now),
            Command::Stats => Reply::Stats(self.stats()),
        };
        if is_read {
            self.stats.reads += 1;
            match reply {
                Reply::NotFound => self.stats.misses += 1,
                Reply::Value { .. } | Reply::Exists { .. } | Reply::Ttl(_) => self.stats.hits += 1,
                _ => {}
            }
        }
        reply
    }

    /// Counters, with the gauges filled in.
    pub fn stats(&self) -> ShardStats {
        ShardStats {
            cached_bytes: self.cached_bytes,
            keys: self.index.len() as u64,
            key_bytes: self.index.key_bytes(),
            value_bytes: self.index.value_bytes(),
            ..self.stats.clone()
        }
    }

    /// Removes expired keys among the next `slots` slots, continuing where the last
    /// call stopped; returns how many it removed. The server calls it on a timer, so
    /// keys that are never read again still go away.
    pub fn sweep_expired(&mut self, slots: u32) -> u32 {
        let now = self.clock.now_ms();
        let end = self.index.slot_count();
        let mut removed = 0;
        for _ in 0..slots.min(end) {
            if self.sweep_cursor >= end {
                self.sweep_cursor = 0;
            }
            let slot = self.sweep_cursor;
            self.sweep_cursor += 1;
            if self.index.get(slot).is_some_and(|e| e.is_expired(now)) {
                self.expire_slot(slot);
                removed += 1;
            }
        }
        removed
    }

    /// Warms the caches for a batch about to be applied: looking its keys up one after
    /// the other lets their cache misses overlap, where `apply` would meet them one at
    /// a time between the work of each command.
    pub fn prefetch(&self, commands: &[Command]) {
        self.index
            .prefetch(commands.iter().filter_map(Command::key).map(|k| &k[..]));
    }

    /// The record to read before `cmd` can run: a command that reads a value whose
    /// cached copy was evicted. The server reads it ([`Shard::install`]) and asks
    /// again; no await happens between the last `needs_fetch` and `apply`.
    pub fn needs_fetch(&self, cmd: &Command) -> Option<Location> {
        let reads_value = match cmd {
            Command::Transaction { commands, .. } => {
                return commands.iter().find_map(|c| self.needs_fetch(c))
            }
            Command::Set { get_old, .. } => *get_old,
            Command::Get { .. }
            | Command::GetEx { .. }
            | Command::GetDel { .. }
            | Command::IncrBy { .. }
            | Command::IncrByFloat { .. }
            | Command::Append { .. }
            | Command::SetRange { .. } => true,
            _ => false,
        };
        let key = cmd.key().filter(|_| reads_value)?;
        let entry = self.index.get(self.index.find(key)?)?;
        if entry.value().is_some() || entry.is_expired(self.clock.now_ms()) {
            return None;
        }
        entry.location()
    }

    /// Puts a value read back from the log into the cache, if the key still points at
    /// that record.
    pub fn install(&mut self, key: &[u8], location: Location, value: Bytes) {
        let Some(slot) = self.index.find(key) else {
            return;
        };
        let current = self
            .index
            .get(slot)
            .is_some_and(|e| e.location() == Some(location) && e.value().is_none());
        if !current {
            return;
        }
        self.cached_bytes += value.len() as u64;
        self.index.set_cached(slot, Cached::owned(value));
        self.enforce_budget(Some(slot));
    }

    /// Sets the sequence number recovery ended at.
    pub fn recovered_to(&mut self, last_seq: u64) {
        self.last_seq = self.last_seq.max(last_seq);
    }

    /// Compaction's question: is this record still what the index points at?
    pub fn liveness(&self, c: &Candidate<'_>) -> Liveness {
        let entry = self.index.find(c.key).and_then(|slot| self.index.get(slot));
        let Some(entry) = entry.filter(|e| !e.is_expired(self.clock.now_ms())) else {
            return Liveness::Dead;
        };
        match c.kind {
            RecordKind::Put if entry.location() == Some(c.location) => Liveness::Live,
            // The newest Touch of the current value carries its expiry: keep it.
            RecordKind::Touch if c.seq > entry.version() && c.expiry_ms == entry.expire_at_ms() => {
                Liveness::Live
            }
            _ if entry.version() >= c.seq || c.kind == RecordKind::Touch => Liveness::Superseded,
            // A Delete or Put newer than the value the index holds cannot exist.
            _ => Liveness::Dead,
        }
    }

    /// Points the index at a record compaction moved. Returns false when the index no
    /// longer points at the old copy (the caller then marks the new copy garbage).
    pub fn relocate(&mut self, r: &Relocation<'_>) -> bool {
        if r.kind != RecordKind::Put {
            return r.kind == RecordKind::Touch;
        }
        let Some(slot) = self.index.find(r.key) else {
            return false;
        };
        if self.index.get(slot).and_then(|e| e.location()) != Some(r.from) {
            return false;
        }
        self.index.set_location(slot, Some(r.to));
        true
    }

    /// Visits the live, unexpired keys in slots `from..from + count` with their version,
    /// expiry and location (for the hint file), and returns the slot to continue from,
    /// or `None` past the last one. Slots never move, so a walk in slices with other
    /// work between them visits every key present throughout exactly once; a key
    /// written meanwhile may show its new version or not be visited at all.
    pub fn for_each_live(
        &self,
        from: u32,
        count: u32,
        mut f: impl FnMut(&[u8], u64, u64, Location),
    ) -> Option<u32> {
        let now = self.clock.now_ms();
        let end = self.index.slot_count();
        let stop = from.saturating_add(count).min(end);
        for slot in from..stop {
            if let Some(e) = self.index.get(slot).filter(|e| !e.is_expired(now)) {
                if let Some(location) = e.location() {
                    f(e.key(), e.version(), e.expire_at_ms(), location);
                }
            }
        }
        (stop < end).then_some(stop)
    }

    fn entry(&self, slot: u32) -> Entry<'_> {
        self.index.get(slot).expect("slot from find is live")
    }

    /// Finds a key, reclaiming it first if it has expired.
    fn live(&mut self, key: &[u8], now: u64) -> Current {
        match self.index.find(key) {
            None => Current::Absent,
            Some(slot) if self.entry(slot).is_expired(now) => {
                self.expire_slot(slot);
                Current::Absent
            }
            Some(slot) => Current::Present { slot },
        }
    }

    /// Drops an expired key. Expiry needs no log record: the expiry time is in the
    /// record that set it, so recovery drops the key too.
    fn expire_slot(&mut self, slot: u32) {
        let entry = self.drop_entry(slot);
        self.stats.expired += 1;
        if entry.expire_at_ms != 0 {
            self.stats.keys_with_ttl -= 1;
        }
    }

    /// Removes an entry from the index, its memory from the budget and its record from
    /// the log's live data.
    fn drop_entry(&mut self, slot: u32) -> Removed {
        let entry = self.index.remove(slot);
        self.cached_bytes -= self.charge(entry.cached_len, entry.key_len);
        if let Some(location) = entry.location {
            self.log.mark_garbage(location);
        }
        entry
    }

    /// Bytes a key with `cached` bytes of value in memory counts against the budget.
    fn charge(&self, cached: u64, key_len: usize) -> u64 {
        match self.cache.eviction {
            Eviction::Values => cached,
            Eviction::Keys => cached + key_len as u64 + ENTRY_OVERHEAD_BYTES,
        }
    }

    /// What a live slot counts against the budget.
    fn charge_entry(&self, slot: u32) -> u64 {
        let e = self.entry(slot);
        self.charge(e.cached_len(), e.key().len())
    }

    /// The value of a live slot. The server loads evicted values before it applies a
    /// command that reads them (see [`Shard::needs_fetch`]), so a miss here is a bug in
    /// that order, answered with an error rather than a wrong value.
    fn value(&mut self, slot: u32) -> Result<Bytes, Reply> {
        self.index
            .read_value(slot)
            .ok_or_else(|| Reply::Error(ShardError::Io("value not loaded from disk".into())))
    }

    /// Drops cached values (or whole keys, in the pure cache mode) with the CLOCK
    /// algorithm until the shard is within its budget. `keep` is never evicted, so a
    /// value just loaded survives until the command that needs it has run.
    fn enforce_budget(&mut self, keep: Option<u32>) {
        let end = self.index.slot_count();
        let mut visited = 0u64;
        while self.cached_bytes > self.cache.budget_bytes
            && end > 0
            && visited < 2 * u64::from(end) + 2
        {
            visited += 1;
            if self.clock_hand >= end {
                self.clock_hand = 0;
            }
            let slot = self.clock_hand;
            self.clock_hand += 1;
            if Some(slot) == keep {
                continue;
            }
            let eviction = self.cache.eviction;
            let Some(entry) = self.index.get(slot) else {
                continue;
            };
            let evictable = match eviction {
                Eviction::Values => entry.value().is_some() && entry.location().is_some(),
                Eviction::Keys => true,
            };
            if !evictable {
                continue;
            }
            if entry.referenced() {
                self.index.set_referenced(slot, false);
                continue;
            }
            self.stats.evicted += 1;
            match eviction {
                Eviction::Values => {
                    self.cached_bytes -= self.index.take_cached(slot);
                }
                Eviction::Keys => {
                    let entry = self.drop_entry(slot);
                    self.count_ttl(entry.expire_at_ms != 0, false);
                }
            }
        }
    }

    fn log_error(err: LogError) -> Reply {
        Reply::Error(match err {
            LogError::NoSpace => ShardError::NoSpace,
            LogError::Io(message) => ShardError::Io(message),
            LogError::Refused(message) => ShardError::Invalid(message),
        })
    }

    /// Resolves an expiry against the current one; `None` means "already past".
    fn resolve(expiry: Expiry, current_at: u64, now: u64) -> Option<u64> {
        let at = match expiry {
            Expiry::Keep => return Some(current_at),
            Expiry::Never => return Some(0),
            Expiry::AtMs(at) => at,
            Expiry::AfterMs(ms) => (now as i64).saturating_add(ms),
        };
        (at > now as i64).then_some(at as u64)
    }

    /// Stores `value` under `key` (slot known or not); the common end of every write.
    ///
    /// The stored value is always a copy of exactly its own bytes ([`Cached::copy`]). A
    /// front-end hands the shard slices of its read buffer (zero-copy parsing), and
    /// keeping such a slice would pin the whole read chunk (16 KiB or more) for as
    /// long as the key lives: a million 32-byte values could hold gigabytes. One copy
    /// per write is the price; the values the shard builds itself (INCR, APPEND) pay
    /// it too.
    fn put(
        &mut self,
        key: Bytes,
        current: &Current,
        value: Bytes,
        expire_at_ms: u64,
    ) -> Result<u64, LogError> {
        let appended = self.log.append(Mutation::Put {
            key: &key,
            value: &value,
            expire_at_ms,
        })?;
        let version = appended.seq;
        self.last_seq = version;
        let value = Cached::copy(&value);
        self.stats.writes += 1;
        let slot = match *current {
            Current::Present { slot } => {
                let old = self.entry(slot);
                let (had_ttl, old_location, old_charge) = (
                    old.expire_at_ms() != 0,
                    old.location(),
                    self.charge_entry(slot),
                );
                if let Some(location) = old_location {
                    self.log.mark_garbage(location);
                }
                self.cached_bytes -= old_charge;
                self.count_ttl(had_ttl, expire_at_ms != 0);
                self.index
                    .set_value(slot, value, version, expire_at_ms, appended.location);
                slot
            }
            Current::Absent => {
                self.count_ttl(false, expire_at_ms != 0);
                self.index.insert(NewEntry {
                    key: &key,
                    value_len: value.len() as u32,
                    value: Some(value),
                    version,
                    expire_at_ms,
                    location: appended.location,
                    referenced: true,
                })
            }
        };
        self.cached_bytes += self.charge_entry(slot);
        self.enforce_budget(Some(slot));
        Ok(version)
    }

    fn remove(&mut self, key: &[u8], slot: u32) -> Result<(u64, Removed), LogError> {
        let appended = self.log.append(Mutation::Delete { key })?;
        self.last_seq = appended.seq;
        if let Some(location) = appended.location {
            // The tombstone counts as garbage at once: compaction asks the shard whether
            // it is still needed and keeps it while an older record may exist.
            self.log.mark_garbage(location);
        }
        self.stats.writes += 1;
        let entry = self.drop_entry(slot);
        self.count_ttl(entry.expire_at_ms != 0, false);
        Ok((appended.seq, entry))
    }

    fn count_ttl(&mut self, had: bool, has: bool) {
        match (had, has) {
            (false, true) => self.stats.keys_with_ttl += 1,
            (true, false) => self.stats.keys_with_ttl -= 1,
            _ => {}
        }
    }

    fn get(&mut self, key: &[u8], now: u64) -> Reply {
        match self.live(key, now) {
            Current::Absent => Reply::NotFound,
            Current::Present { slot } => match self.value(slot) {
                Ok(value) => Reply::Value {
                    value,
                    version: self.entry(slot).version(),
                },
                Err(reply) => reply,
            },
        }
    }

    fn get_ex(&mut self, key: &[u8], expiry: Expiry, now: u64) -> Reply {
        let reply = self.get(key, now);
        if let (Reply::Value { .. }, false) = (&reply, expiry == Expiry::Keep) {
            if let Reply::Error(e) = self.expire(key, expiry, ExpireCond::Always, now) {
                return Reply::Error(e);
            }
        }
        reply
    }

    fn get_del(&mut self, key: &[u8], now: u64) -> Reply {
        match self.live(key, now) {
            Current::Absent => Reply::NotFound,
            Current::Present { slot } => {
                let value = match self.value(slot) {
                    Ok(value) => value,
                    Err(reply) => return reply,
                };
                match self.remove(key, slot) {
                    Ok((_, entry)) => Reply::Value {
                        value,
                        version: entry.version,
                    },
                    Err(e) => Self::log_error(e),
                }
            }
        }
    }

    fn set(
        &mut self,
        key: Bytes,
        value: Bytes,
        expiry: Expiry,
        cond: Cond,
        get_old: bool,
        now: u64,
    ) -> Reply {
        let current = self.live(&key, now);
        let (cur_version, cur_at, old) = match current {
            Current::Absent => (None, 0, None),
            Current::Present { slot } => {
                let old = match get_old.then(|| self.value(slot)).transpose() {
                    Ok(old) => old,
                    Err(reply) => return reply,
                };
                let e = self.entry(slot);
                (Some(e.version()), e.expire_at_ms(), old)
            }
        };
        let allowed = match cond {
            Cond::Always => true,
            Cond::IfAbsent => cur_version.is_none(),
            Cond::IfPresent => cur_version.is_some(),
            Cond::IfVersion(v) => cur_version == Some(v),
        };
        if !allowed {
            return Reply::CondFailed {
                version: cur_version,
                old,
            };
        }
        let Some(expire_at_ms) = Self::resolve(expiry, cur_at, now) else {
            // An expiry already in the past: the write lands and vanishes at once,
            // which is what Redis does for SET with a past EXAT.
            return match current {
                Current::Absent => Reply::Done { version: 0, old },
                Current::Present { slot } => match self.remove(&key, slot) {
                    Ok((version, _)) => Reply::Done { version, old },
                    Err(e) => Self::log_error(e),
                },
            };
        };
        match self.put(key, &current, value, expire_at_ms) {
            Ok(version) => Reply::Done { version, old },
            Err(e) => Self::log_error(e),
        }
    }

    fn delete(&mut self, key: &[u8], cond: Cond, now: u64) -> Reply {
        let Current::Present { slot } = self.live(key, now) else {
            return Reply::NotFound;
        };
        let version = self.entry(slot).version();
        if let Cond::IfVersion(expected) = cond {
            if expected != version {
                return Reply::CondFailed {
                    version: Some(version),
                    old: None,
                };
            }
        }
        match self.remove(key, slot) {
            Ok((version, _)) => Reply::Done { version, old: None },
            Err(e) => Self::log_error(e),
        }
    }

    fn expire(&mut self, key: &[u8], expiry: Expiry, cond: ExpireCond, now: u64) -> Reply {
        let Current::Present { slot } = self.live(key, now) else {
            return Reply::NotFound;
        };
        let cur = self.entry(slot).expire_at_ms();
        let new = Self::resolve(expiry, cur, now);
        // For GT and LT no expiry counts as infinitely far; a past time as "now".
        let infinite = |at: u64| if at == 0 { u64::MAX } else { at };
        let new_cmp = new.map_or(now, infinite);
        let allowed = match cond {
            ExpireCond::Always => true,
            ExpireCond::Nx => cur == 0,
            ExpireCond::Xx => cur != 0,
            ExpireCond::Gt => new_cmp > infinite(cur),
            ExpireCond::Lt => new_cmp < infinite(cur),
            ExpireCond::XxLt => cur != 0 && new_cmp < cur,
        };
        if !allowed {
            return Reply::Applied(false);
        }
        match new {
            None => match self.remove(key, slot) {
                Ok(_) => Reply::Applied(true),
                Err(e) => Self::log_error(e),
            },
            Some(at) => {
                if at == cur {
                    // PERSIST on a key without expiry changes nothing (Redis answers 0).
                    return Reply::Applied(expiry != Expiry::Never);
                }
                match self.log.append(Mutation::Touch {
                    key,
                    expire_at_ms: at,
                }) {
                    Ok(appended) => self.last_seq = appended.seq,
                    Err(e) => return Self::log_error(e),
                }
                self.stats.writes += 1;
                self.count_ttl(cur != 0, at != 0);
                self.index.set_expiry(slot, at);
                Reply::Applied(true)
            }
        }
    }

    /// Runs `commands` only if every watched key still has the version it had when it
    /// was watched (`None`: still absent). Nothing else runs on this shard between the
    /// check and the last command, which is what makes a transaction atomic.
    fn transaction(
        &mut self,
        watch: &[(Bytes, Option<u64>)],
        commands: Vec<Command>,
        now: u64,
    ) -> Reply {
        for (key, expected) in watch {
            let version = match self.live(key, now) {
                Current::Absent => None,
                Current::Present { slot } => Some(self.entry(slot).version()),
            };
            if version != *expected {
                return Reply::Transaction(None);
            }
        }
        Reply::Transaction(Some(
            commands
                .into_iter()
                .map(|cmd| self.apply_at(cmd, now))
                .collect(),
        ))
    }

    /// Read-modify-write helper: the current value (or empty), its slot and expiry.
    fn current_value(&mut self, key: &[u8], now: u64) -> Result<(Current, Bytes, u64), Reply> {
        let current = self.live(key, now);
        match current {
            Current::Absent => Ok((current, Bytes::new(), 0)),
            Current::Present { slot } => {
                let at = self.entry(slot).expire_at_ms();
                let value = self.value(slot)?;
                Ok((current, value, at))
            }
        }
    }

    fn incr_by(&mut self, key: Bytes, delta: i64, now: u64) -> Reply {
        let (current, value, at) = match self.current_value(&key, now) {
            Ok(found) => found,
            Err(reply) => return reply,
        };
        let base = match current {
            Current::Absent => 0,
            Current::Present { .. } => match parse_i64(&value) {
                Some(n) => n,
                None => return Reply::Error(ShardError::NotInteger),
            },
        };
        let Some(result) = base.checked_add(delta) else {
            return Reply::Error(ShardError::Overflow);
        };
        let text = Bytes::from(result.to_string());
        match self.put(key, &current, text, at) {
            Ok(version) => Reply::Integer {
                value: result,
                version,
            },
            Err(e) => Self::log_error(e),
        }
    }

    fn incr_by_float(&mut self, key: Bytes, delta: Ld, now: u64) -> Reply {
        let (current, value, at) = match self.current_value(&key, now) {
            Ok(found) => found,
            Err(reply) => return reply,
        };
        // The stored value is checked first, as Redis does.
        let base = match current {
            Current::Absent => Ld::Zero { neg: false },
            Current::Present { .. } => match Ld::parse(&value) {
                Some(n) => n,
                None => return Reply::Error(ShardError::NotFloat),
            },
        };
        let result = match base.checked_add(delta) {
            Some(sum) if !sum.is_infinite() => sum,
            _ => return Reply::Error(ShardError::NanOrInfinity),
        };
        let text = Bytes::from(result.to_human());
        match self.put(key, &current, text.clone(), at) {
            Ok(version) => Reply::Value {
                value: text,
                version,
            },
            Err(e) => Self::log_error(e),
        }
    }

    fn append(&mut self, key: Bytes, tail: &[u8], now: u64) -> Reply {
        let (current, value, at) = match self.current_value(&key, now) {
            Ok(found) => found,
            Err(reply) => return reply,
        };
        let len = value.len() + tail.len();
        if len > VALUE_SIZE_MAX as usize {
            return Reply::Error(ShardError::ValueTooLarge);
        }
        let mut joined = BytesMut::with_capacity(len);
        joined.extend_from_slice(&value);
        joined.extend_from_slice(tail);
        match self.put(key, &current, joined.freeze(), at) {
            Ok(version) => Reply::Length {
                len: len as u64,
                version,
            },
            Err(e) => Self::log_error(e),
        }
    }

    fn set_range(&mut self, key: Bytes, offset: u32, patch: &[u8], now: u64) -> Reply {
        let (current, value, at) = match self.current_value(&key, now) {
            Ok(found) => found,
            Err(reply) => return reply,
        };
        if patch.is_empty() {
            // Redis: an empty patch changes nothing and creates nothing.
            let version = match current {
                Current::Present { slot } => self.entry(slot).version(),
                Current::Absent => 0,
            };
            return Reply::Length {
                len: value.len() as u64,
                version,
            };
        }
        let end = offset as usize + patch.len();
        if end > VALUE_SIZE_MAX as usize {
            return Reply::Error(ShardError::ValueTooLarge);
        }
        let mut out = BytesMut::from(&value[..]);
        if out.len() < end {
            out.resize(end, 0);
        }
        out[offset as usize..end].copy_from_slice(patch);
        let len = out.len() as u64;
        match self.put(key, &current, out.freeze(), at) {
            Ok(version) => Reply::Length { len, version },
            Err(e) => Self::log_error(e),
        }
    }

    fn scan(&mut self, cursor: u64, count: u32, prefix: &[u8], now: u64) -> Reply {
        let count = match count {
            0 => SCAN_COUNT_DEFAULT,
            n => n.min(SCAN_COUNT_MAX),
        } as usize;
        let end = u64::from(self.index.slot_count());
        // Bound the slots visited, so a rare prefix cannot make one call walk the
        // whole shard: like Redis, a page may come back short (even empty).
        let visit_max = (count as u64).saturating_mul(10);
        let mut slot = cursor;
        let mut keys = Vec::new();
        while slot < end && keys.len() < count && slot - cursor < visit_max {
            if let Some(e) = self.index.get(slot as u32) {
                if !e.is_expired(now) && e.key().starts_with(prefix) {
                    keys.push(Bytes::copy_from_slice(e.key()));
                }
            }
            slot += 1;
        }
        Reply::Keys {
            next: (slot < end).then_some(slot),
            keys,
        }
    }

    fn flush(&mut self) -> Reply {
        let removed = self.index.len() as u64;
        let mut slot = 0;
        while slot < self.index.slot_count() {
            if let Some(key) = self
                .index
                .get(slot)
                .map(|e| Bytes::copy_from_slice(e.key()))
            {
                if let Err(e) = self.remove(&key, slot) {
                    return Self::log_error(e);
                }
            }
            slot += 1;
        }
        self.index.clear();
        Reply::Count(removed)
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: enough to pick a slot, and deterministic for tests.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn random_key(&mut self, now: u64) -> Reply {
        let end = u64::from(self.index.slot_count());
        if self.index.is_empty() {
            return Reply::Key(None);
        }
        for _ in 0..64 {
            let slot = (self.next_random() % end) as u32;
            if let Some(e) = self.index.get(slot) {
                if !e.is_expired(now) {
                    return Reply::Key(Some(Bytes::copy_from_slice(e.key())));
                }
            }
        }
        // Sparse slab: fall back to a walk from a random start.
        let start = self.next_random() % end;
        (0..end)
            .map(|i| ((start + i) % end) as u32)
            .find_map(|slot| {
                self.index
                    .get(slot)
                    .filter(|e| !e.is_expired(now))
                    .map(|e| Bytes::copy_from_slice(e.key()))
            })
            .map_or(Reply::Key(None), |k| Reply::Key(Some(k)))
    }
}

/// Parses a decimal i64 the way Redis does: optional '-', no '+', no leading zeros,
/// no spaces.
pub fn parse_i64(bytes: &[u8]) -> Option<i64> {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let ok = match digits {
        [] => false,
        [b'0'] => digits.len() == bytes.len(),
        [first, rest @ ..] => (b'1'..=b'9').contains(first) && rest.iter().all(u8::is_ascii_digit),
    };
    if !ok || bytes.len() > 20 {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

#[cfg(test)]
mod tests;
