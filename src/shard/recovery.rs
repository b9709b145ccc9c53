//! Rebuilding a shard's index from its log at start.
//!
//! The log hands its records over in batches: the hint's entries, then what the scan
//! reads, in log order. They are folded per key with the storage's rule
//! (`KeyState::apply`, which depends on the order only where seqs tie) straight into the
//! index the shard will use, so each key is hashed, stored and looked up in one table
//! only. Most keys are a single Put, whose state is exactly what the entry holds
//! (version, location, expiry); only keys that also met a Delete or a Touch keep their
//! full `KeyState` in a side map until the end.

use std::collections::HashMap;

use super::index::{Cached, Entry, Index, NewEntry};
use super::{CachePolicy, Clock, Log, Shard};
use crate::storage::limits::RECORD_HEADER_SIZE;
use crate::storage::{Garbage, KeyState, RecordKind, Recovered, RecoverySink};

/// An index being rebuilt from recovered records.
pub struct Recovery {
    index: Index,
    /// The full state of the keys whose state is not one plain Put (the entry of such a
    /// key has no location until the end).
    states: HashMap<u32, KeyState, ahash::RandomState>,
    budget_bytes: u64,
    cached_bytes: u64,
}

impl Recovery {
    /// An empty fold that keeps recovered values in memory while they fit
    /// `budget_bytes`; the rest are read back from disk on first access.
    pub fn new(budget_bytes: u64) -> Self {
        Recovery {
            index: Index::default(),
            states: HashMap::default(),
            budget_bytes,
            cached_bytes: 0,
        }
    }

    /// Keys seen so far, deleted ones included.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when no record has been folded in.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Folds one record in; superseded records go to `garbage`.
    pub fn apply(&mut self, rec: &Recovered<'_>, garbage: &mut Garbage) {
        self.apply_hashed(self.index.hash(rec.key), rec, garbage);
    }

    /// Folds many records in, with the result of `apply` on each in turn. Meant for a
    /// bulk load (a hint, a scanned window of the log): each Put is placed in a slot of
    /// its own in record order, then the records are folded in the order of their
    /// keys' places in the table, placed Puts filed, so the load walks the table front
    /// to back where record order would miss the cache (and the TLB) at a random
    /// bucket per key. A placed key that turns out to be filed already (a second
    /// record of a key) is folded into that key's slot like any other record. One
    /// key's records keep their record order, so where seqs tie (copies of a record,
    /// or a Put and the Delete compaction made of it) the later wins, as in `apply`.
    /// A value counts against the budget once its Put is filed or wins a fold, and
    /// stays cached if it fits then: a value superseded within the batch never takes
    /// the room of another.
    pub fn apply_batch(&mut self, recs: &[Recovered<'_>], garbage: &mut Garbage) {
        // (place in the table, hash, placed slot or `NOT_PLACED`, index in `recs`)
        const NOT_PLACED: u32 = u32::MAX;
        let mut order: Vec<(u64, u64, u32, u32)> = Vec::with_capacity(recs.len());
        let mut copied = false;
        for (i, rec) in recs.iter().enumerate() {
            let hash = self.index.hash(rec.key);
            let i = u32::try_from(i).expect("a batch holds fewer than 2^32 records");
            let place = self.index.table_order(hash);
            if rec.kind != RecordKind::Put {
                // Folded in its turn below: a Delete or Touch may share its seq with a
                // Put of its key (compaction turns a dead Put into a Delete of its seq),
                // and then the one that comes later wins.
                order.push((place, hash, NOT_PLACED, i));
                continue;
            }
            // What `apply` leaves for a key whose only record is this Put. The value is
            // copied now, in record order, and kept if the Put is filed within budget.
            let value = self.cacheable(rec.value).map(Cached::copy);
            let value_len = value.as_ref().map_or(0, |v| v.len() as u32);
            copied |= value.is_some();
            let slot = self.index.place(NewEntry {
                key: rec.key,
                value,
                version: rec.seq,
                expire_at_ms: rec.expiry_ms,
                location: Some(rec.location),
                value_len,
                referenced: false,
            });
            order.push((place, hash, slot, i));
        }
        // One key's records stay in record order.
        order.sort_unstable_by_key(|&(place, _, _, i)| (place, i));
        for (_, hash, slot, i) in order {
            let rec = &recs[i as usize];
            if slot == NOT_PLACED {
                self.apply_hashed(hash, rec, garbage);
                continue;
            }
            match self.index.link(hash, slot) {
                Ok(()) if copied => {
                    let len = self.index.get(slot).map_or(0, |e| e.cached_len());
                    if self.cached_bytes + len <= self.budget_bytes {
                        self.cached_bytes += len;
                    } else {
                        self.index.take_cached(slot);
                    }
                }
                Ok(()) => {}
                Err(filed) => {
                    self.index.discard(slot);
                    self.fold(filed, rec, garbage);
                }
            }
        }
    }

    fn apply_hashed(&mut self, hash: u64, rec: &Recovered<'_>, garbage: &mut Garbage) {
        let slot = match self.index.find_hashed(hash, rec.key) {
            Some(slot) => slot,
            None => self.index.insert_hashed(
                hash,
                NewEntry {
                    key: rec.key,
                    value: None,
                    version: 0,
                    expire_at_ms: 0,
                    location: None,
                    value_len: 0,
                    referenced: false,
                },
            ),
        };
        self.fold(slot, rec, garbage);
    }

    /// Folds `rec` into the key of `slot`.
    fn fold(&mut self, slot: u32, rec: &Recovered<'_>, garbage: &mut Garbage) {
        let mut state = self.state(slot);
        let base = state.base;
        let wins = state.apply(rec, garbage);
        if wins || state.base != base {
            // A newer Put or Delete: the value cached so far is stale, and so is its
            // share of the budget.
            self.cached_bytes -= self.index.take_cached(slot);
        }
        if wins {
            let value = self.cacheable(rec.value).map(Cached::copy);
            if let Some(value) = value {
                self.cached_bytes += value.len() as u64;
                self.index.set_cached(slot, value);
            }
        }
        self.store(slot, state);
    }

    /// `value`, if it fits the budget beside the values cached so far.
    fn cacheable<'v>(&self, value: Option<&'v [u8]>) -> Option<&'v [u8]> {
        value.filter(|v| self.cached_bytes + v.len() as u64 <= self.budget_bytes)
    }

    fn state(&self, slot: u32) -> KeyState {
        match self.states.get(&slot) {
            Some(state) => *state,
            None => self.index.get(slot).map_or_else(KeyState::default, plain),
        }
    }

    fn store(&mut self, slot: u32, state: KeyState) {
        match state {
            KeyState {
                base: Some((RecordKind::Put, seq, location, expiry)),
                touch: None,
            } => {
                self.states.remove(&slot);
                self.index.set_record(slot, seq, expiry, Some(location));
            }
            _ => {
                self.states.insert(slot, state);
                self.index.set_record(slot, 0, 0, None);
            }
        }
    }
}

/// At most how many times the keys found so far a scan without a hint reserves room
/// for (`RecoverySink::scanned`).
const SCAN_RESERVE_GROWTH: u128 = 8;

impl RecoverySink for &mut Recovery {
    fn expect(&mut self, records: u64) {
        // A hint lists each key once (a Touch may add a second entry for a key).
        self.index
            .reserve(usize::try_from(records).unwrap_or(usize::MAX));
    }

    fn scanned(&mut self, done: u64, total: u64) {
        // Keys per byte so far, over the whole. A small first segment or denser ones
        // early on can make that far too much, and a reserved table is never given
        // back: only once a sixteenth is scanned, and never more than
        // `SCAN_RESERVE_GROWTH` times the keys found so far.
        if done == 0 || done < total / 16 || done >= total {
            return;
        }
        let found = self.index.len() as u128;
        let expected =
            (found * u128::from(total) / u128::from(done)).min(found * SCAN_RESERVE_GROWTH);
        let more = usize::try_from(expected - found).unwrap_or(usize::MAX);
        self.index.reserve(more);
    }

    fn record(&mut self, record: &Recovered<'_>, garbage: &mut Garbage) {
        self.apply(record, garbage);
    }

    fn records(&mut self, records: &[Recovered<'_>], garbage: &mut Garbage) {
        self.apply_batch(records, garbage);
    }
}

/// The state of a key whose entry holds it: one Put, or nothing yet.
fn plain(e: Entry<'_>) -> KeyState {
    KeyState {
        base: e
            .location()
            .map(|l| (RecordKind::Put, e.version(), l, e.expire_at_ms())),
        touch: None,
    }
}

impl<L: Log, C: Clock> Shard<L, C> {
    /// A shard over `log` whose index is the one `recovery` rebuilt. Deleted keys are
    /// dropped, and so are keys expired by now (their records go to the log's
    /// garbage). Returns the shard and the number of keys found expired.
    pub fn recovered(log: L, clock: C, cache: CachePolicy, recovery: Recovery) -> (Self, u64) {
        let mut shard = Shard::with_cache(log, clock, cache);
        let Recovery { index, states, .. } = recovery;
        shard.index = index;
        let now = shard.clock.now_ms();
        let mut expired = 0;
        for slot in 0..shard.index.slot_count() {
            let Some(entry) = shard.index.get(slot) else {
                continue;
            };
            let state = states.get(&slot).copied().unwrap_or_else(|| plain(entry));
            let Some((version, location, expiry)) = state.live() else {
                shard.index.remove(slot);
                continue;
            };
            if expiry != 0 && expiry <= now {
                shard.log.mark_garbage(location);
                shard.index.remove(slot);
                expired += 1;
                continue;
            }
            // Without the value in hand, its length is known to within the record's
            // padding (at most 7 bytes); loading the value sets it exactly.
            let key_len = entry.key().len() as u32;
            let value_len = entry.value().map_or_else(
                || location.length.saturating_sub(RECORD_HEADER_SIZE + key_len),
                |v| v.len() as u32,
            );
            shard
                .index
                .set_record(slot, version, expiry, Some(location));
            shard.index.set_value_len(slot, value_len);
            shard.index.set_referenced(slot, false);
            shard.count_ttl(false, expiry != 0);
            shard.cached_bytes += shard.charge_entry(slot);
        }
        // Recovered values were kept only while they fit the budget, so this evicts
        // nothing unless the budget counts more than values.
        shard.enforce_budget(None);
        (shard, expired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::{ManualClock, MemoryLog};
    use crate::storage::Location;

    const NOW_MS: u64 = 1_000_000;

    struct Record {
        kind: RecordKind,
        seq: u64,
        key: Vec<u8>,
        expiry_ms: u64,
        value: Option<Vec<u8>>,
    }

    impl Record {
        fn location(&self) -> Location {
            Location {
                segment: (self.seq % 3) as u32,
                offset: self.seq as u32 * 128,
                length: 128,
            }
        }

        fn recovered(&self) -> Recovered<'_> {
            Recovered {
                kind: self.kind,
                seq: self.seq,
                expiry_ms: self.expiry_ms,
                key: &self.key,
                value: self.value.as_deref(),
                location: self.location(),
            }
        }
    }

    /// Records for `keys` keys (some of them longer than an inline key), in a
    /// shuffled order, as the log hands them over.
    fn records(seed: u64, keys: u64, with_values: bool) -> Vec<Record> {
        let mut rng = seed | 1;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut out: Vec<Record> = (1..=keys * 4)
            .map(|seq| {
                let k = next(keys);
                let key = if k % 5 == 0 {
                    format!("a-rather-long-key-that-is-not-inline-{k}")
                } else {
                    format!("k{k}")
                };
                let kind = match next(6) {
                    0 => RecordKind::Delete,
                    1 => RecordKind::Touch,
                    _ => RecordKind::Put,
                };
                let expiry_ms = match next(4) {
                    0 => NOW_MS - 1,
                    1 => NOW_MS + 1,
                    _ => 0,
                };
                let value = (with_values && kind == RecordKind::Put)
                    .then(|| format!("value-{seq}").into_bytes());
                Record {
                    kind,
                    seq,
                    key: key.into_bytes(),
                    expiry_ms: if kind == RecordKind::Delete {
                        0
                    } else {
                        expiry_ms
                    },
                    value,
                }
            })
            .collect();
        for i in (1..out.len()).rev() {
            out.swap(i, next(i as u64 + 1) as usize);
        }
        out
    }

    /// Folds `records` both ways and checks the shard holds exactly the live keys of
    /// the reference fold, with the same garbage. The shard folds them one at a time
    /// (`batch` 0) or `batch` at a time in table order (`apply_batch`).
    fn check(records: &[Record], with_values: bool, batch: usize) {
        let mut expected: HashMap<&[u8], KeyState> = HashMap::new();
        let mut expected_garbage = Garbage::default();
        let mut recovery = Recovery::new(u64::MAX);
        let mut garbage = Garbage::default();
        for r in records {
            expected
                .entry(&r.key)
                .or_default()
                .apply(&r.recovered(), &mut expected_garbage);
            if batch == 0 {
                recovery.apply(&r.recovered(), &mut garbage);
            }
        }
        if batch > 0 {
            for chunk in records.chunks(batch) {
                let recs: Vec<Recovered<'_>> = chunk.iter().map(Record::recovered).collect();
                recovery.apply_batch(&recs, &mut garbage);
            }
        }
        assert_eq!(garbage, expected_garbage);
        assert_eq!(recovery.len(), expected.len());
        let (shard, expired) = Shard::recovered(
            MemoryLog::default(),
            ManualClock::new(NOW_MS),
            CachePolicy::default(),
            recovery,
        );
        let mut live = 0;
        let mut expired_expected = 0;
        let mut with_ttl = 0;
        for (key, state) in &expected {
            let found = shard.index.find(key).and_then(|slot| shard.index.get(slot));
            let Some((version, location, expiry)) = state.live() else {
                assert!(found.is_none(), "deleted key {key:?} is gone");
                continue;
            };
            if expiry != 0 && expiry <= NOW_MS {
                assert!(found.is_none(), "expired key {key:?} is gone");
                expired_expected += 1;
                continue;
            }
            let e = found.expect("live key present");
            live += 1;
            with_ttl += u64::from(expiry != 0);
            assert_eq!(e.version(), version);
            assert_eq!(e.location(), Some(location));
            assert_eq!(e.expire_at_ms(), expiry);
            assert!(!e.referenced());
            if with_values {
                let value = format!("value-{version}").into_bytes();
                assert_eq!(e.value(), Some(&value[..]));
                assert_eq!(e.value_len(), value.len() as u32);
            } else {
                assert!(e.value().is_none());
                assert_eq!(e.value_len(), 128 - RECORD_HEADER_SIZE - key.len() as u32);
            }
        }
        assert!(live > 0 && expired_expected > 0, "the mix exercises both");
        assert_eq!(shard.len(), live);
        assert_eq!(expired, expired_expected);
        assert_eq!(shard.stats().keys_with_ttl, with_ttl);
        let value_bytes: u64 = (0..shard.index.slot_count())
            .filter_map(|s| shard.index.get(s))
            .map(|e| u64::from(e.value_len()))
            .sum();
        assert_eq!(shard.stats().value_bytes, value_bytes);
    }

    #[test]
    fn folding_into_the_index_matches_the_key_state_rule() {
        for seed in 1..20 {
            check(&records(seed, 60, true), true, 0);
            check(&records(seed, 60, false), false, 0);
        }
    }

    #[test]
    fn folding_in_batches_in_table_order_matches_the_key_state_rule() {
        // A batch may hold several records of one key (a hint lists a Touch beside its
        // Put), and a key may come back in a later batch.
        for seed in 1..20 {
            for batch in [1, 7, 64, 10_000] {
                check(&records(seed, 60, true), true, batch);
                check(&records(seed, 60, false), false, batch);
            }
        }
    }

    /// A shard recovered from `records` with a cache budget of `budget_bytes`, one
    /// record at a time (`batch` 0) or `batch` at a time.
    fn recover_with_budget(
        records: &[Record],
        budget_bytes: u64,
        batch: usize,
    ) -> Shard<MemoryLog, ManualClock> {
        let mut recovery = Recovery::new(budget_bytes);
        let mut garbage = Garbage::default();
        if batch == 0 {
            for r in records {
                recovery.apply(&r.recovered(), &mut garbage);
            }
        } else {
            for chunk in records.chunks(batch) {
                let recs: Vec<Recovered<'_>> = chunk.iter().map(Record::recovered).collect();
                recovery.apply_batch(&recs, &mut garbage);
            }
        }
        let (shard, _) = Shard::recovered(
            MemoryLog::default(),
            ManualClock::new(NOW_MS),
            CachePolicy::default(),
            recovery,
        );
        shard
    }

    #[test]
    fn values_beyond_the_budget_are_left_on_disk() {
        for batch in [0, 1, 7, 64, 10_000] {
            let shard = recover_with_budget(&records(7, 200, true), 100, batch);
            let entries = || (0..shard.index.slot_count()).filter_map(|s| shard.index.get(s));
            let cached: u64 = entries().map(|e| e.cached_len()).sum();
            assert!(
                cached > 0 && cached <= 100,
                "batch {batch}: {cached} bytes cached"
            );
            assert_eq!(shard.cached_bytes(), cached);
            for e in entries() {
                if let Some(v) = e.value() {
                    assert_eq!(v, format!("value-{}", e.version()).as_bytes());
                }
            }
        }
    }

    #[test]
    fn a_superseded_value_gives_its_budget_back() {
        let record = |kind, seq, key: &str, value: Option<&str>| Record {
            kind,
            seq,
            key: key.into(),
            expiry_ms: 0,
            value: value.map(|v| v.into()),
        };
        let records = [
            record(RecordKind::Put, 1, "a", Some("0123456789")),
            record(RecordKind::Put, 2, "a", Some("abcdefghij")),
            record(RecordKind::Put, 3, "b", Some("ABCDEFGHIJ")),
            record(RecordKind::Delete, 4, "b", None),
            record(RecordKind::Put, 5, "c", Some("9876543210")),
        ];
        // Room for two values: the live ones, `a` (seq 2) and `c`. A batch places
        // `b` before it meets its Delete, so it must not take that room either.
        for batch in [0, 1, 2, 5] {
            let shard = recover_with_budget(&records, 20, batch);
            let value = |key: &[u8]| {
                let slot = shard.index.find(key).expect("live key");
                shard
                    .index
                    .get(slot)
                    .and_then(|e| e.value().map(<[u8]>::to_vec))
            };
            assert_eq!(value(b"a"), Some(b"abcdefghij".to_vec()), "batch {batch}");
            assert_eq!(value(b"c"), Some(b"9876543210".to_vec()), "batch {batch}");
            assert!(shard.index.find(b"b").is_none());
            assert_eq!(shard.cached_bytes(), 20);
        }
    }

    #[test]
    fn a_scan_without_a_hint_reserves_a_bounded_guess() {
        let mut recovery = Recovery::new(0);
        let mut garbage = Garbage::default();
        for k in 0..100u32 {
            let key = format!("k{k}");
            recovery.apply(
                &Recovered {
                    kind: RecordKind::Put,
                    seq: u64::from(k) + 1,
                    expiry_ms: 0,
                    key: key.as_bytes(),
                    value: None,
                    location: Location {
                        segment: 1,
                        offset: k * 64,
                        length: 64,
                    },
                },
                &mut garbage,
            );
        }
        let mut sink = &mut recovery;
        let before = sink.index.capacity();
        // A sliver of a large log: too little to guess from.
        sink.scanned(6400, 1 << 40);
        assert_eq!(sink.index.capacity(), before);
        // A sixteenth: 1 600 keys by the bytes, but at most 8 times the 100 found.
        sink.scanned(1 << 36, 1 << 40);
        let capacity = sink.index.capacity();
        assert!((800..1600).contains(&capacity), "capacity {capacity}");
    }

    #[test]
    fn records_of_one_seq_fold_in_record_order_in_a_batch() {
        // Compaction turns a dead Put or Touch into a Delete of the same seq; with a
        // copy of the Put left from an earlier pass, one segment may hold both. Every
        // order of such records, cut into batches of every size, must fold as it does
        // one record at a time.
        let record = |kind, offset| Recovered {
            kind,
            seq: 5,
            expiry_ms: if kind == RecordKind::Delete {
                0
            } else {
                NOW_MS + 9
            },
            key: b"key",
            value: (kind == RecordKind::Put).then_some(&b"value"[..]),
            location: Location {
                segment: 2,
                offset,
                length: 64,
            },
        };
        let kinds = [
            RecordKind::Put,
            RecordKind::Delete,
            RecordKind::Touch,
            RecordKind::Put,
        ];
        // Every order of the four: the numbers below 4^4 whose base-4 digits differ.
        let orders: Vec<Vec<usize>> = (0..256usize)
            .map(|n| (0..4).map(|d| (n >> (2 * d)) & 3).collect::<Vec<_>>())
            .filter(|o| (0..4).all(|k| o.contains(&k)))
            .collect();
        assert_eq!(orders.len(), 24);
        let state = |r: &Recovery| r.index.find(b"key").map(|slot| r.state(slot));
        for order in orders {
            let recs: Vec<Recovered<'_>> = order
                .iter()
                .enumerate()
                .map(|(at, &k)| record(kinds[k], at as u32 * 64))
                .collect();
            let mut one = Recovery::new(u64::MAX);
            let mut one_garbage = Garbage::default();
            recs.iter().for_each(|r| one.apply(r, &mut one_garbage));
            for batch in 1..=recs.len() {
                let mut many = Recovery::new(u64::MAX);
                let mut garbage = Garbage::default();
                for chunk in recs.chunks(batch) {
                    many.apply_batch(chunk, &mut garbage);
                }
                assert_eq!(state(&many), state(&one), "{order:?} in batches of {batch}");
                assert_eq!(garbage, one_garbage, "{order:?} in batches of {batch}");
            }
        }
    }

    #[test]
    fn copies_of_one_record_fold_alike_in_a_batch_and_one_at_a_time() {
        // Compaction that copied a record and crashed before freeing its source copies
        // it again: two copies with one seq, maybe in one segment. The one seen later
        // wins, and the other is garbage.
        let copy = |offset| Recovered {
            kind: RecordKind::Put,
            seq: 9,
            expiry_ms: 0,
            key: b"key",
            value: Some(b"value"),
            location: Location {
                segment: 4,
                offset,
                length: 64,
            },
        };
        let copies = [copy(0), copy(64), copy(128)];
        for batch in [0, 1, 2, 3] {
            let mut recovery = Recovery::new(u64::MAX);
            let mut garbage = Garbage::default();
            if batch == 0 {
                copies.iter().for_each(|c| recovery.apply(c, &mut garbage));
            } else {
                for chunk in copies.chunks(batch) {
                    recovery.apply_batch(chunk, &mut garbage);
                }
            }
            let slot = recovery.index.find(b"key").expect("filed");
            let entry = recovery.index.get(slot).expect("live");
            assert_eq!(entry.location(), Some(copy(128).location), "batch {batch}");
            assert_eq!(entry.value(), Some(&b"value"[..]));
            assert_eq!(recovery.cached_bytes, 5);
            let mut expected = Garbage::default();
            expected.mark(copy(0).location);
            expected.mark(copy(64).location);
            assert_eq!(garbage, expected, "batch {batch}");
        }
    }
}
