//! The shard's key index: a slab of entries plus a hash table of slab positions.
//!
//! Entries live in a `Vec` of slots that never move; the hash table holds only `u32`
//! slot numbers and hashes the key stored in the slot. Two things follow:
//! - a slot number is a stable cursor: `SCAN` walks slots in order, and a key present
//!   for the whole scan is returned exactly once, whatever is inserted or removed
//!   meanwhile (freed slots are reused, so new keys may or may not be seen);
//! - the table costs 4 bytes plus one control byte per bucket.

use bytes::Bytes;
use hashbrown::HashTable;

use crate::storage::Location;

/// One live key.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The key.
    pub key: Box<[u8]>,
    /// The value, when it is cached in memory. `None` means: read it at `location`.
    pub value: Option<Bytes>,
    /// Version of the value: the log position of the write that stored it.
    pub version: u64,
    /// Expiry in Unix milliseconds; 0 = never.
    pub expire_at_ms: u64,
    /// Where the record holding the value lives in the shard's log (`None` without a
    /// durable log).
    pub location: Option<Location>,
    /// Length of the value, cached or not.
    pub value_len: u32,
    /// Set on every access; the cache's CLOCK hand clears it and evicts entries whose
    /// bit is already clear (an approximation of least-recently-used).
    pub referenced: bool,
}

impl Entry {
    /// True when the entry has expired at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expire_at_ms != 0 && self.expire_at_ms <= now_ms
    }
}

/// Hash table of keys to slots.
pub struct Index {
    table: HashTable<u32>,
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    hasher: ahash::RandomState,
    key_bytes: u64,
    value_bytes: u64,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            table: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            hasher: ahash::RandomState::new(),
            key_bytes: 0,
            value_bytes: 0,
        }
    }
}

impl Index {
    /// Number of live keys (expired keys not yet reclaimed included).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when no key is stored.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Sum of key lengths.
    pub fn key_bytes(&self) -> u64 {
        self.key_bytes
    }

    /// Sum of value lengths (cached or not).
    pub fn value_bytes(&self) -> u64 {
        self.value_bytes
    }

    /// Number of slots (live or free): the end of the cursor space.
    pub fn slot_count(&self) -> u32 {
        self.slots.len() as u32
    }

    /// The slot holding `key`.
    pub fn find(&self, key: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        let slots = &self.slots;
        self.table
            .find(hash, |&slot| {
                slots
                    .get(slot as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|e| &*e.key == key)
            })
            .copied()
    }

    /// The entry in `slot`, if the slot is live.
    pub fn get(&self, slot: u32) -> Option<&Entry> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    /// The entry in a live slot, for changes that keep the value's length.
    pub fn get_mut(&mut self, slot: u32) -> Option<&mut Entry> {
        self.slots.get_mut(slot as usize).and_then(Option::as_mut)
    }

    /// Replaces the value of a live slot, keeping the byte accounting right.
    pub fn set_value(
        &mut self,
        slot: u32,
        value: Bytes,
        version: u64,
        expire_at_ms: u64,
        location: Option<Location>,
    ) {
        self.set_cached(slot, value);
        let entry = self.get_mut(slot).expect("set_value on a free slot");
        entry.version = version;
        entry.expire_at_ms = expire_at_ms;
        entry.location = location;
    }

    /// Caches a value loaded from the log, correcting the recorded length.
    pub fn set_cached(&mut self, slot: u32, value: Bytes) {
        let entry = self
            .slots
            .get_mut(slot as usize)
            .and_then(Option::as_mut)
            .expect("set_cached on a free slot");
        self.value_bytes = self.value_bytes - u64::from(entry.value_len) + value.len() as u64;
        entry.value_len = value.len() as u32;
        entry.value = Some(value);
        entry.referenced = true;
    }

    /// Changes only the expiry of a live slot.
    pub fn set_expiry(&mut self, slot: u32, expire_at_ms: u64) {
        let entry = self
            .slots
            .get_mut(slot as usize)
            .and_then(Option::as_mut)
            .expect("set_expiry on a free slot");
        entry.expire_at_ms = expire_at_ms;
    }

    /// Makes room for `additional` more keys at once, so a bulk load (recovery) does
    /// not regrow and rehash the table and slab again and again.
    pub fn reserve(&mut self, additional: usize) {
        self.slots.reserve(additional);
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.table.reserve(additional, |&s| {
            hasher.hash_one(
                slots
                    .get(s as usize)
                    .and_then(Option::as_ref)
                    .map(|e| &*e.key)
                    .unwrap_or_default(),
            )
        });
    }

    /// Inserts a key that is not present and returns its slot.
    pub fn insert(&mut self, entry: Entry) -> u32 {
        debug_assert!(
            self.find(&entry.key).is_none(),
            "insert of a key already present"
        );
        let hash = self.hasher.hash_one(&*entry.key);
        self.key_bytes += entry.key.len() as u64;
        self.value_bytes += u64::from(entry.value_len);
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(entry);
                slot
            }
            None => {
                self.slots.push(Some(entry));
                (self.slots.len() - 1) as u32
            }
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.table.insert_unique(hash, slot, |&s| {
            hasher.hash_one(
                slots
                    .get(s as usize)
                    .and_then(Option::as_ref)
                    .map(|e| &*e.key)
                    .unwrap_or_default(),
            )
        });
        slot
    }

    /// Removes the entry in a live slot and returns it.
    pub fn remove(&mut self, slot: u32) -> Entry {
        let entry = self
            .slots
            .get_mut(slot as usize)
            .and_then(Option::take)
            .expect("remove of a free slot");
        let hash = self.hasher.hash_one(&*entry.key);
        match self.table.find_entry(hash, |&s| s == slot) {
            Ok(found) => {
                found.remove();
            }
            Err(_) => unreachable!("slot {slot} missing from the hash table"),
        }
        self.key_bytes -= entry.key.len() as u64;
        self.value_bytes -= u64::from(entry.value_len);
        self.free.push(slot);
        entry
    }

    /// Drops every key.
    pub fn clear(&mut self) {
        *self = Index {
            hasher: self.hasher.clone(),
            ..Index::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str) -> Entry {
        Entry {
            key: key.as_bytes().into(),
            value: Some(Bytes::from_static(b"v")),
            location: None,
            value_len: 1,
            referenced: false,
            version: 1,
            expire_at_ms: 0,
        }
    }

    #[test]
    fn insert_find_remove_reuses_slots() {
        let mut index = Index::default();
        let a = index.insert(entry("a"));
        let b = index.insert(entry("b"));
        assert_eq!(index.find(b"a"), Some(a));
        assert_eq!(index.find(b"b"), Some(b));
        assert_eq!(index.find(b"c"), None);
        index.remove(a);
        assert_eq!(index.find(b"a"), None);
        assert_eq!(index.len(), 1);
        let c = index.insert(entry("c"));
        assert_eq!(c, a, "a freed slot is reused");
        assert_eq!(index.find(b"c"), Some(c));
        assert_eq!(index.key_bytes(), 2);
    }

    #[test]
    fn many_keys_survive_growth() {
        let mut index = Index::default();
        for i in 0..10_000 {
            index.insert(entry(&format!("k{i}")));
        }
        for i in (0..10_000).step_by(2) {
            let slot = index.find(format!("k{i}").as_bytes()).unwrap();
            index.remove(slot);
        }
        for i in 0..10_000 {
            assert_eq!(index.find(format!("k{i}").as_bytes()).is_some(), i % 2 == 1);
        }
    }
}
