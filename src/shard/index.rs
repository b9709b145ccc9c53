//! The shard's key index: a slab of fixed-size entries plus a hash table of slab
//! positions.
//!
//! ```text
//!  table: HashTable<u32>          slab: chunks of 65 536 slots, 48 B each
//!  ┌────┬────┬────┐               ┌──────────────────────────────────────────────┐
//!  │ 7  │ -  │ 2  │ ──slot──────▶ │ version │ location │ value_len │ cache │ key… │
//!  └────┴────┴────┘               └──────────────────────────────────────────────┘
//!                                   cache ──▶ value slab (a value <= 38 B, or a
//!                                             Bytes), or NONE
//!                                   key   ──▶ inline (<= 17 B) or the long-key slab
//!  expiry: slot -> Unix ms, only for the keys that have one
//! ```
//!
//! Entries live in slots that never move; the hash table holds only `u32` slot numbers
//! and hashes the key stored in the slot. Three things follow:
//! - a slot number is a stable cursor: `SCAN` walks slots in order, and a key present
//!   for the whole scan is returned exactly once, whatever is inserted or removed
//!   meanwhile (freed slots are reused, so new keys may or may not be seen);
//! - the table costs 4 bytes plus one control byte per bucket;
//! - a lookup of a short key touches its table bucket and one slot, and nothing else:
//!   the key is compared in place.
//!
//! What an entry does not need most of the time lives outside it: a cached value in
//! the value slab (a short value inside its 40-byte element, a longer one in a buffer
//! of its own; an entry of a key whose value was evicted holds only a `NONE`
//! handle), a long key in the long-key slab, an expiry in a side map (most keys have
//! none; a flag bit says whether to look). The slabs grow by whole chunks, never by
//! doubling, so a large index carries at most one partly used chunk of slack.
//!
//! With values not cached, a 16-byte key costs its 48-byte slot plus 5-10 bytes of
//! table (`perf/storage.md`, `memory-per-key`).

use std::collections::HashMap;

use bytes::Bytes;
use hashbrown::HashTable;

use crate::constants::KEY_SIZE_MAX;
use crate::storage::Location;

/// Keys up to this many bytes are stored inside their slot.
pub const KEY_INLINE_MAX: usize = 17;

/// Bytes of one slot; `ENTRY_OVERHEAD_BYTES` in the shard builds on it.
pub const SLOT_SIZE: usize = std::mem::size_of::<Slot>();

/// Cached values up to this size are copied out for a reply instead of shared. Sharing
/// a `Bytes` touches its reference count, in a header of its own (one more cache miss
/// per GET) with two atomic operations; a small copy is cheaper. Measured at pipeline
/// 16 with 32 B values: +20 % GETs/s per core; at 4 KiB no difference either way.
const VALUE_COPY_MAX: usize = 1024;

/// Cached values up to this size are kept inside their element of the value slab: no
/// allocation of their own, and a lookup reaches them with no further cache miss.
/// The element is 40 bytes either way (a `Bytes` is 32, plus the tag).
pub const VALUE_INLINE_MAX: usize = 38;

/// Bytes of one element of the value slab; `ENTRY_OVERHEAD_BYTES` builds on it.
pub const VALUE_HANDLE_SIZE: usize = std::mem::size_of::<Option<Cached>>();

const _: () = assert!(
    VALUE_HANDLE_SIZE == 40,
    "a value handle is meant to be 40 bytes"
);

const _: () = assert!(SLOT_SIZE == 48, "a slot is meant to fill 48 bytes exactly");
const _: () = assert!(
    KEY_SIZE_MAX as usize <= u16::MAX as usize,
    "key length is a u16"
);
const _: () = assert!(KEY_INLINE_MAX >= 4, "a long key's handle is stored inline");

/// Slots (and cached values) per chunk: 3 MiB of slots.
const CHUNK_SHIFT: u32 = 16;
const CHUNK_LEN: usize = 1 << CHUNK_SHIFT;
const CHUNK_MASK: u32 = (1 << CHUNK_SHIFT) - 1;

/// Handle of "no cached value".
const NONE: u32 = u32::MAX;

const LIVE: u8 = 1;
const REFERENCED: u8 = 1 << 1;
const HAS_EXPIRY: u8 = 1 << 2;
const HAS_LOCATION: u8 = 1 << 3;

/// One slot of the slab; `flags == 0` marks a free slot.
#[derive(Clone, Copy, Default)]
struct Slot {
    version: u64,
    segment: u32,
    offset: u32,
    length: u32,
    value_len: u32,
    /// Handle into the value slab, or `NONE`.
    cache: u32,
    key_len: u16,
    flags: u8,
    /// The key when it fits, else the long-key handle in its first 4 bytes.
    key: [u8; KEY_INLINE_MAX],
}

impl Slot {
    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    fn set(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }

    fn is_inline(&self) -> bool {
        usize::from(self.key_len) <= KEY_INLINE_MAX
    }

    fn long_handle(&self) -> u32 {
        let [a, b, c, d, ..] = self.key;
        u32::from_le_bytes([a, b, c, d])
    }

    fn location(&self) -> Option<Location> {
        self.has(HAS_LOCATION).then_some(Location {
            segment: self.segment,
            offset: self.offset,
            length: self.length,
        })
    }

    fn set_location(&mut self, location: Option<Location>) {
        (self.segment, self.offset, self.length) =
            location.map_or((0, 0, 0), |l| (l.segment, l.offset, l.length));
        self.set(HAS_LOCATION, location.is_some());
    }
}

/// Asks the CPU to start loading `item`'s cache lines (its first and its last byte: a
/// 40-byte element may straddle two lines).
#[inline]
fn prefetch_read<T>(item: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let first = (item as *const T).cast::<i8>();
        let last = first.wrapping_add(std::mem::size_of::<T>().saturating_sub(1));
        // SAFETY: a prefetch is only a hint; it never faults, even on a bad address.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(first);
            _mm_prefetch::<_MM_HINT_T0>(last);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = item;
}

/// A vector that grows by whole chunks of `CHUNK_LEN` and never moves an element.
struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: u32,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Chunked<T> {
    fn get(&self, i: u32) -> Option<&T> {
        self.chunks
            .get((i >> CHUNK_SHIFT) as usize)?
            .get((i & CHUNK_MASK) as usize)
    }

    fn get_mut(&mut self, i: u32) -> Option<&mut T> {
        self.chunks
            .get_mut((i >> CHUNK_SHIFT) as usize)?
            .get_mut((i & CHUNK_MASK) as usize)
    }

    fn push(&mut self, item: T) -> u32 {
        let at = self.len;
        let chunk = (at >> CHUNK_SHIFT) as usize;
        if chunk == self.chunks.len() {
            self.chunks.push(Vec::with_capacity(CHUNK_LEN));
        }
        self.chunks[chunk].push(item);
        self.len += 1;
        at
    }
}

/// Elements that are handed out by number and come back to a free list.
struct Pool<T> {
    items: Chunked<Option<T>>,
    free: Vec<u32>,
}

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Pool {
            items: Chunked::default(),
            free: Vec::new(),
        }
    }
}

impl<T> Pool<T> {
    fn add(&mut self, item: T) -> u32 {
        match self.free.pop() {
            Some(at) => {
                *self.items.get_mut(at).expect("free handles are in range") = Some(item);
                at
            }
            None => self.items.push(Some(item)),
        }
    }

    fn get(&self, at: u32) -> Option<&T> {
        self.items.get(at)?.as_ref()
    }

    fn take(&mut self, at: u32) -> Option<T> {
        let item = self.items.get_mut(at)?.take()?;
        self.free.push(at);
        Some(item)
    }
}

/// A value to cache. A short one is copied inside (see [`VALUE_INLINE_MAX`]); a longer
/// one lives in a buffer that holds exactly its bytes.
#[derive(Clone)]
pub struct Cached(Stored);

#[derive(Clone)]
enum Stored {
    Inline {
        len: u8,
        bytes: [u8; VALUE_INLINE_MAX],
    },
    Shared(Bytes),
}

impl Cached {
    /// A copy of `value`. For bytes borrowed from a larger buffer (a read buffer, a
    /// scan window): keeping a slice would pin the whole buffer for as long as the key
    /// lives.
    pub fn copy(value: &[u8]) -> Self {
        Self::inline(value).unwrap_or_else(|| Cached(Stored::Shared(Bytes::copy_from_slice(value))))
    }

    /// `value` itself, which must own its buffer (a value read back from the log), or
    /// an inline copy when it is short.
    pub fn owned(value: Bytes) -> Self {
        Self::inline(&value).unwrap_or(Cached(Stored::Shared(value)))
    }

    fn inline(value: &[u8]) -> Option<Self> {
        let mut bytes = [0; VALUE_INLINE_MAX];
        bytes.get_mut(..value.len())?.copy_from_slice(value);
        Some(Cached(Stored::Inline {
            len: value.len() as u8,
            bytes,
        }))
    }

    /// The value's bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Stored::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Stored::Shared(b) => b,
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// True for an empty value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value for a reply: a copy up to `VALUE_COPY_MAX` bytes, shared beyond.
    fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Stored::Shared(b) if b.len() > VALUE_COPY_MAX => b.clone(),
            _ => Bytes::copy_from_slice(self.as_slice()),
        }
    }
}

impl std::fmt::Debug for Cached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Cached").field(&self.len()).finish()
    }
}

/// The slots and what they point at; the hash table's hasher reads keys from here.
#[derive(Default)]
struct Slab {
    slots: Chunked<Slot>,
    long_keys: Pool<Box<[u8]>>,
}

impl Slab {
    fn live(&self, slot: u32) -> Option<&Slot> {
        self.slots.get(slot).filter(|s| s.has(LIVE))
    }

    fn live_mut(&mut self, slot: u32) -> Option<&mut Slot> {
        self.slots.get_mut(slot).filter(|s| s.has(LIVE))
    }

    fn key_of<'a>(&'a self, s: &'a Slot) -> &'a [u8] {
        if s.is_inline() {
            &s.key[..usize::from(s.key_len)]
        } else {
            self.long_keys.get(s.long_handle()).map_or(&[], |k| &k[..])
        }
    }

    fn key(&self, slot: u32) -> &[u8] {
        self.live(slot).map_or(&[], |s| self.key_of(s))
    }

    fn key_eq(&self, slot: u32, key: &[u8]) -> bool {
        match self.slots.get(slot) {
            Some(s) if usize::from(s.key_len) == key.len() => self.key_of(s) == key,
            _ => false,
        }
    }
}

/// A read-only view of one live key.
#[derive(Clone, Copy)]
pub struct Entry<'a> {
    slot: &'a Slot,
    at: u32,
    index: &'a Index,
}

impl<'a> Entry<'a> {
    /// The key.
    pub fn key(&self) -> &'a [u8] {
        self.index.slab.key_of(self.slot)
    }

    /// The value, when it is cached in memory. `None` means: read it at `location`.
    pub fn value(&self) -> Option<&'a [u8]> {
        self.index.values.get(self.slot.cache).map(Cached::as_slice)
    }

    /// Bytes of the cached value (0 when none is cached).
    pub fn cached_len(&self) -> u64 {
        self.value().map_or(0, |v| v.len() as u64)
    }

    /// Version of the value: the log position of the write that stored it.
    pub fn version(&self) -> u64 {
        self.slot.version
    }

    /// Expiry in Unix milliseconds; 0 = never.
    pub fn expire_at_ms(&self) -> u64 {
        if !self.slot.has(HAS_EXPIRY) {
            return 0;
        }
        self.index.expiry.get(&self.at).copied().unwrap_or(0)
    }

    /// True when the entry has expired at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.slot.has(HAS_EXPIRY) && self.expire_at_ms() <= now_ms
    }

    /// Where the record holding the value lives in the shard's log (`None` without a
    /// durable log).
    pub fn location(&self) -> Option<Location> {
        self.slot.location()
    }

    /// Length of the value, cached or not.
    pub fn value_len(&self) -> u32 {
        self.slot.value_len
    }

    /// Set on every access; the cache's CLOCK hand clears it and evicts entries whose
    /// bit is already clear (an approximation of least-recently-used).
    pub fn referenced(&self) -> bool {
        self.slot.has(REFERENCED)
    }
}

/// A key to insert.
#[derive(Clone, Debug)]
pub struct NewEntry<'a> {
    /// The key: 1 to `KEY_SIZE_MAX` bytes.
    pub key: &'a [u8],
    /// The value, if it is to be cached.
    pub value: Option<Cached>,
    /// Version of the value.
    pub version: u64,
    /// Expiry in Unix milliseconds; 0 = never.
    pub expire_at_ms: u64,
    /// Where the value's record lives, if it has one.
    pub location: Option<Location>,
    /// Length of the value, cached or not.
    pub value_len: u32,
    /// The CLOCK bit to start with.
    pub referenced: bool,
}

/// What a removed key left behind.
#[derive(Clone, Debug)]
pub struct Removed {
    /// Length of its key.
    pub key_len: usize,
    /// Bytes of its cached value (0 when none was cached).
    pub cached_len: u64,
    /// Its version.
    pub version: u64,
    /// Its expiry (0 = never).
    pub expire_at_ms: u64,
    /// Its record, if it had one.
    pub location: Option<Location>,
}

/// Hash table of keys to slots.
pub struct Index {
    table: HashTable<u32>,
    slab: Slab,
    free: Vec<u32>,
    values: Pool<Cached>,
    /// Expiry of the slots whose `HAS_EXPIRY` flag is set.
    expiry: HashMap<u32, u64, ahash::RandomState>,
    hasher: ahash::RandomState,
    key_bytes: u64,
    value_bytes: u64,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            table: HashTable::new(),
            slab: Slab::default(),
            free: Vec::new(),
            values: Pool::default(),
            expiry: HashMap::default(),
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

    /// Keys the table holds before it has to grow.
    pub fn capacity(&self) -> usize {
        self.table.capacity()
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
        self.slab.slots.len
    }

    /// The slot holding `key`.
    pub fn find(&self, key: &[u8]) -> Option<u32> {
        self.find_hashed(self.hash(key), key)
    }

    /// The hash this index files `key` under, for `find_hashed`, `insert_hashed` and
    /// `table_order`.
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// `find` with the key's `hash` already computed.
    pub fn find_hashed(&self, hash: u64, key: &[u8]) -> Option<u32> {
        let slab = &self.slab;
        self.table
            .find(hash, |&slot| slab.key_eq(slot, key))
            .copied()
    }

    /// Warms the caches for coming lookups of `keys`. Changes nothing.
    ///
    /// A lookup is a chain of dependent cache misses (table bucket, then slot, then the
    /// cached value's handle), and a loop of plain lookups overlaps little of it. So a
    /// group of keys goes through twice: the first pass walks each key's probe sequence
    /// and asks for every candidate slot without waiting for one (the tag match, no key
    /// comparison); by the second pass, which compares keys and asks for the value
    /// handles, the slots are arriving.
    pub fn prefetch<'k>(&self, keys: impl Iterator<Item = &'k [u8]>) {
        const GROUP: usize = 32;
        let mut group: [(u64, &[u8]); GROUP] = [(0, &[]); GROUP];
        let mut keys = keys.peekable();
        while keys.peek().is_some() {
            let mut n = 0;
            for (entry, key) in group.iter_mut().zip(keys.by_ref()) {
                let hash = self.hasher.hash_one(key);
                self.table.find(hash, |&at| {
                    if let Some(slot) = self.slab.slots.get(at) {
                        prefetch_read(slot);
                    }
                    false
                });
                *entry = (hash, key);
                n += 1;
            }
            for &(hash, key) in &group[..n] {
                let found = self
                    .table
                    .find(hash, |&at| self.slab.key_eq(at, key))
                    .and_then(|&at| self.slab.live(at));
                if let Some(item) = found.and_then(|s| self.values.items.get(s.cache)) {
                    prefetch_read(item);
                }
            }
        }
    }

    /// The entry in `slot`, if the slot is live.
    pub fn get(&self, at: u32) -> Option<Entry<'_>> {
        let slot = self.slab.live(at)?;
        Some(Entry {
            slot,
            at,
            index: self,
        })
    }

    fn live_mut(&mut self, slot: u32, what: &str) -> &mut Slot {
        match self.slab.live_mut(slot) {
            Some(s) => s,
            None => panic!("{what} on a free slot {slot}"),
        }
    }

    /// The cached value of a live slot (a copy up to `VALUE_COPY_MAX` bytes, shared
    /// beyond), marking the slot as recently used.
    pub fn read_value(&mut self, slot: u32) -> Option<Bytes> {
        let s = self.live_mut(slot, "read_value");
        s.set(REFERENCED, true);
        let cache = s.cache;
        self.values.get(cache).map(Cached::to_bytes)
    }

    /// Sets or clears the CLOCK bit of a live slot.
    pub fn set_referenced(&mut self, slot: u32, on: bool) {
        self.live_mut(slot, "set_referenced").set(REFERENCED, on);
    }

    /// Points a live slot at another copy of its record.
    pub fn set_location(&mut self, slot: u32, location: Option<Location>) {
        self.live_mut(slot, "set_location").set_location(location);
    }

    /// Replaces the value of a live slot, keeping the byte accounting right.
    pub fn set_value(
        &mut self,
        slot: u32,
        value: Cached,
        version: u64,
        expire_at_ms: u64,
        location: Option<Location>,
    ) {
        self.set_cached(slot, value);
        self.set_expiry(slot, expire_at_ms);
        let s = self.live_mut(slot, "set_value");
        s.version = version;
        s.set_location(location);
    }

    /// Caches a value loaded from the log, correcting the recorded length.
    pub fn set_cached(&mut self, slot: u32, value: Cached) {
        let len = value.len() as u32;
        let s = self.live_mut(slot, "set_cached");
        let old_len = s.value_len;
        s.value_len = len;
        s.set(REFERENCED, true);
        let cache = s.cache;
        match self.values.items.get_mut(cache) {
            Some(cached @ Some(_)) => *cached = Some(value),
            _ => {
                let handle = self.values.add(value);
                self.live_mut(slot, "set_cached").cache = handle;
            }
        }
        self.value_bytes = self.value_bytes - u64::from(old_len) + u64::from(len);
    }

    /// Sets what a live slot knows of its record, leaving any cached value alone.
    pub fn set_record(
        &mut self,
        slot: u32,
        version: u64,
        expire_at_ms: u64,
        location: Option<Location>,
    ) {
        self.set_expiry(slot, expire_at_ms);
        let s = self.live_mut(slot, "set_record");
        s.version = version;
        s.set_location(location);
    }

    /// Corrects the recorded value length of a live slot.
    pub fn set_value_len(&mut self, slot: u32, len: u32) {
        let s = self.live_mut(slot, "set_value_len");
        let old = std::mem::replace(&mut s.value_len, len);
        self.value_bytes = self.value_bytes - u64::from(old) + u64::from(len);
    }

    /// Drops the cached value of a live slot (the record stays readable in the log);
    /// returns its length (0 when none was cached).
    pub fn take_cached(&mut self, slot: u32) -> u64 {
        let s = self.live_mut(slot, "take_cached");
        let cache = std::mem::replace(&mut s.cache, NONE);
        self.values.take(cache).map_or(0, |v| v.len() as u64)
    }

    /// Changes only the expiry of a live slot.
    pub fn set_expiry(&mut self, slot: u32, expire_at_ms: u64) {
        let s = self.live_mut(slot, "set_expiry");
        let had = s.has(HAS_EXPIRY);
        s.set(HAS_EXPIRY, expire_at_ms != 0);
        if expire_at_ms != 0 {
            self.expiry.insert(slot, expire_at_ms);
        } else if had {
            // Keys without an expiry never touch the map.
            self.expiry.remove(&slot);
        }
    }

    /// Makes room in the table for `additional` more keys at once, so a bulk load
    /// (recovery from a hint) does not regrow it again and again: each rehash reads
    /// every key back from the slab, a cache miss per key.
    pub fn reserve(&mut self, additional: usize) {
        let (slab, hasher) = (&self.slab, &self.hasher);
        self.table
            .reserve(additional, |&s| hasher.hash_one(slab.key(s)));
    }

    /// Where a key of this `hash` sits in the table, roughly: keys inserted in
    /// ascending order of it fill the table front to back, so a bulk load in that order
    /// walks the table instead of missing the cache (and, on 4 KiB pages, the TLB) once
    /// or twice per key. Only an order: any value is correct, some are faster.
    pub fn table_order(&self, hash: u64) -> u64 {
        // The table has a power of two of buckets, 8/7 of its capacity or more, and
        // starts a key's probe at `hash` modulo that.
        let buckets = (self.table.capacity() as u64 + 1).next_power_of_two();
        hash & (buckets - 1)
    }

    /// Inserts a key that is not present and returns its slot.
    pub fn insert(&mut self, entry: NewEntry<'_>) -> u32 {
        self.insert_hashed(self.hash(entry.key), entry)
    }

    /// `insert` with the key's `hash` already computed.
    pub fn insert_hashed(&mut self, hash: u64, entry: NewEntry<'_>) -> u32 {
        debug_assert!(
            self.find(entry.key).is_none(),
            "insert of a key already present"
        );
        let slot = self.place(entry);
        self.file(hash, slot);
        slot
    }

    /// Stores an entry in a slot of its own without filing it in the table, so
    /// nothing finds it until `link` files it: a bulk load places entries in the order
    /// it reads them and files them in table order. A placed slot must be linked or
    /// discarded before the index is used for anything else.
    pub fn place(&mut self, entry: NewEntry<'_>) -> u32 {
        let key = entry.key;
        assert!(
            key.len() <= KEY_SIZE_MAX as usize,
            "key of {} bytes exceeds KEY_SIZE_MAX",
            key.len()
        );
        let mut s = Slot {
            version: entry.version,
            value_len: entry.value_len,
            cache: entry.value.map_or(NONE, |v| self.values.add(v)),
            key_len: key.len() as u16,
            flags: LIVE,
            ..Slot::default()
        };
        s.set(REFERENCED, entry.referenced);
        s.set(HAS_EXPIRY, entry.expire_at_ms != 0);
        s.set_location(entry.location);
        if let Some(inline) = s.key.get_mut(..key.len()) {
            inline.copy_from_slice(key);
        } else {
            let handle = self.slab.long_keys.add(key.into());
            s.key[..4].copy_from_slice(&handle.to_le_bytes());
        }
        let slot = match self.free.pop() {
            Some(slot) => {
                *self
                    .slab
                    .slots
                    .get_mut(slot)
                    .expect("free slots are in range") = s;
                slot
            }
            None => self.slab.slots.push(s),
        };
        if entry.expire_at_ms != 0 {
            self.expiry.insert(slot, entry.expire_at_ms);
        }
        self.key_bytes += key.len() as u64;
        self.value_bytes += u64::from(entry.value_len);
        slot
    }

    /// Files a `place`d slot under its key's `hash`, unless the key is filed already:
    /// then that key's slot comes back as the error and the placed slot stays unfiled,
    /// to be `discard`ed.
    pub fn link(&mut self, hash: u64, slot: u32) -> Result<(), u32> {
        if let Some(found) = self.find_hashed(hash, self.slab.key(slot)) {
            return Err(found);
        }
        self.file(hash, slot);
        Ok(())
    }

    /// Enters `slot` in the table under `hash`; its key must not be filed yet.
    fn file(&mut self, hash: u64, slot: u32) {
        let (slab, hasher) = (&self.slab, &self.hasher);
        self.table
            .insert_unique(hash, slot, |&s| hasher.hash_one(slab.key(s)));
    }

    /// Frees a `place`d slot that `link` did not file.
    pub fn discard(&mut self, slot: u32) {
        let s = *self.live_mut(slot, "discard");
        self.release(slot, s);
    }

    /// Removes the entry in a live slot and returns what it held.
    pub fn remove(&mut self, slot: u32) -> Removed {
        let s = *self.live_mut(slot, "remove");
        let hash = self.hasher.hash_one(self.slab.key_of(&s));
        match self.table.find_entry(hash, |&t| t == slot) {
            Ok(found) => {
                found.remove();
            }
            Err(_) => unreachable!("slot {slot} missing from the hash table"),
        }
        self.release(slot, s)
    }

    /// Frees slot `slot`, which held `s` and is filed nowhere now.
    fn release(&mut self, slot: u32, s: Slot) -> Removed {
        if !s.is_inline() {
            self.slab.long_keys.take(s.long_handle());
        }
        let expire_at_ms = if s.has(HAS_EXPIRY) {
            self.expiry.remove(&slot).unwrap_or(0)
        } else {
            0
        };
        *self
            .slab
            .slots
            .get_mut(slot)
            .expect("live slots are in range") = Slot::default();
        self.free.push(slot);
        self.key_bytes -= u64::from(s.key_len);
        self.value_bytes -= u64::from(s.value_len);
        Removed {
            key_len: usize::from(s.key_len),
            cached_len: self.values.take(s.cache).map_or(0, |v| v.len() as u64),
            version: s.version,
            expire_at_ms,
            location: s.location(),
        }
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

    fn entry(key: &[u8]) -> NewEntry<'_> {
        NewEntry {
            key,
            value: Some(Cached::copy(b"v")),
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
        let a = index.insert(entry(b"a"));
        let b = index.insert(entry(b"b"));
        assert_eq!(index.find(b"a"), Some(a));
        assert_eq!(index.find(b"b"), Some(b));
        assert_eq!(index.find(b"c"), None);
        index.remove(a);
        assert_eq!(index.find(b"a"), None);
        assert!(index.get(a).is_none(), "a removed slot reads as free");
        assert_eq!(index.len(), 1);
        let c = index.insert(entry(b"c"));
        assert_eq!(c, a, "a freed slot is reused");
        assert_eq!(index.find(b"c"), Some(c));
        assert_eq!(index.key_bytes(), 2);
    }

    #[test]
    fn many_keys_survive_growth() {
        let mut index = Index::default();
        // More than one chunk, so slot numbers cross a chunk boundary.
        let n = CHUNK_LEN as u32 + 1000;
        for i in 0..n {
            index.insert(entry(format!("k{i}").as_bytes()));
        }
        for i in (0..n).step_by(2) {
            let slot = index.find(format!("k{i}").as_bytes()).unwrap();
            index.remove(slot);
        }
        for i in 0..n {
            assert_eq!(index.find(format!("k{i}").as_bytes()).is_some(), i % 2 == 1);
        }
        let last = index.find(format!("k{}", n - 1).as_bytes()).unwrap();
        assert_eq!(last, n - 1, "slots are numbered in insertion order");
        assert_eq!(
            index.get(last).unwrap().key(),
            format!("k{}", n - 1).as_bytes()
        );
    }

    #[test]
    fn keys_at_the_inline_boundary_and_beyond() {
        let mut index = Index::default();
        let lengths = [
            1,
            KEY_INLINE_MAX - 1,
            KEY_INLINE_MAX,
            KEY_INLINE_MAX + 1,
            100,
            KEY_SIZE_MAX as usize,
        ];
        // Keys that share a prefix longer than the inline part, and differ after it.
        let key = |len: usize, tag: u8| {
            let mut k = vec![b'x'; len];
            *k.last_mut().unwrap() = tag;
            k
        };
        let mut slots = Vec::new();
        for &len in &lengths {
            for tag in [b'a', b'b'] {
                slots.push((key(len, tag), index.insert(entry(&key(len, tag)))));
            }
        }
        for (k, slot) in &slots {
            assert_eq!(index.find(k), Some(*slot), "key of {} bytes", k.len());
            assert_eq!(index.get(*slot).unwrap().key(), &k[..]);
        }
        assert_eq!(index.find(&key(KEY_INLINE_MAX + 1, b'c')), None);
        assert_eq!(index.find(&key(KEY_INLINE_MAX + 2, b'a')), None);
        let total: usize = lengths.iter().map(|l| 2 * l).sum();
        assert_eq!(index.key_bytes(), total as u64);

        // Removing long keys frees their storage for the next long key, and the keys
        // left are untouched.
        let (long_a, slot) = slots[6].clone();
        assert_eq!(long_a.len(), KEY_INLINE_MAX + 1);
        index.remove(slot);
        assert_eq!(index.find(&long_a), None);
        let other = key(200, b'z');
        let reused = index.insert(entry(&other));
        assert_eq!(reused, slot);
        assert_eq!(index.find(&other), Some(reused));
        assert_eq!(index.get(reused).unwrap().key(), &other[..]);
        assert_eq!(
            index.slab.long_keys.free.len(),
            0,
            "the long-key handle was reused"
        );
        for (k, s) in slots.iter().filter(|(_, s)| *s != slot) {
            assert_eq!(index.find(k), Some(*s));
        }
    }

    #[test]
    fn expiry_lives_beside_the_entry() {
        let mut index = Index::default();
        let plain = index.insert(entry(b"plain"));
        let timed = index.insert(NewEntry {
            expire_at_ms: 1_000,
            ..entry(b"timed")
        });
        assert_eq!(
            index.expiry.len(),
            1,
            "keys without expiry take no map entry"
        );
        let e = index.get(timed).unwrap();
        assert_eq!(e.expire_at_ms(), 1_000);
        assert!(!e.is_expired(999));
        assert!(e.is_expired(1_000));
        assert_eq!(index.get(plain).unwrap().expire_at_ms(), 0);
        assert!(!index.get(plain).unwrap().is_expired(u64::MAX));

        index.set_expiry(plain, 500);
        index.set_expiry(timed, 0);
        assert_eq!(index.get(plain).unwrap().expire_at_ms(), 500);
        assert!(!index.get(timed).unwrap().is_expired(u64::MAX));
        assert_eq!(index.expiry.len(), 1);

        // A removed key takes its expiry along; the slot's next key starts without.
        let removed = index.remove(plain);
        assert_eq!(removed.expire_at_ms, 500);
        assert!(index.expiry.is_empty());
        let next = index.insert(entry(b"next"));
        assert_eq!(next, plain);
        assert_eq!(index.get(next).unwrap().expire_at_ms(), 0);

        index.set_value(next, Cached::copy(b"w"), 7, 42, None);
        assert_eq!(index.get(next).unwrap().expire_at_ms(), 42);
        assert_eq!(index.get(next).unwrap().version(), 7);
    }

    #[test]
    fn cached_values_come_and_go_through_handles() {
        let mut index = Index::default();
        let location = Location {
            segment: 3,
            offset: 64,
            length: 48,
        };
        let a = index.insert(NewEntry {
            value: None,
            location: Some(location),
            value_len: 5,
            ..entry(b"a")
        });
        let b = index.insert(entry(b"b"));
        assert!(index.get(a).unwrap().value().is_none());
        assert_eq!(index.get(a).unwrap().location(), Some(location));
        assert_eq!(index.get(b).unwrap().location(), None);
        assert_eq!(index.read_value(b), Some(Bytes::from_static(b"v")));
        assert!(index.get(b).unwrap().referenced());
        assert_eq!(index.value_bytes(), 6);

        // Evicting b's value frees its handle; caching a's value takes it over, and
        // b stays without.
        assert_eq!(index.take_cached(b), 1);
        assert_eq!(index.take_cached(b), 0);
        assert_eq!(index.value_bytes(), 6, "an evicted value keeps its length");
        index.set_cached(a, Cached::copy(b"hello!"));
        assert_eq!(index.values.free.len(), 0, "the freed handle was reused");
        assert_eq!(index.read_value(a), Some(Bytes::from_static(b"hello!")));
        assert_eq!(index.read_value(b), None);
        assert_eq!(index.get(a).unwrap().value_len(), 6);
        assert_eq!(index.value_bytes(), 7);

        // Replacing a cached value keeps its handle.
        index.set_cached(a, Cached::copy(b"x"));
        assert_eq!(index.values.items.len, 1);
        assert_eq!(index.get(a).unwrap().cached_len(), 1);

        let removed = index.remove(a);
        assert_eq!(removed.cached_len, 1);
        assert_eq!(removed.location, Some(location));
        assert_eq!(index.values.free.len(), 1);
        assert_eq!(index.value_bytes(), 1);
    }

    #[test]
    fn referenced_and_location_change_in_place() {
        let mut index = Index::default();
        let a = index.insert(entry(b"a"));
        assert!(!index.get(a).unwrap().referenced());
        index.set_referenced(a, true);
        assert!(index.get(a).unwrap().referenced());
        index.set_referenced(a, false);
        assert!(!index.get(a).unwrap().referenced());
        let to = Location {
            segment: 1,
            offset: 8,
            length: 16,
        };
        index.set_location(a, Some(to));
        assert_eq!(index.get(a).unwrap().location(), Some(to));
        index.set_location(a, None);
        assert_eq!(index.get(a).unwrap().location(), None);
    }

    #[test]
    fn clear_drops_every_key() {
        let mut index = Index::default();
        for i in 0..1000 {
            index.insert(entry(format!("key:{i:012}").as_bytes()));
        }
        assert_eq!(index.find(b"key:000000000999"), Some(999));
        index.clear();
        assert!(index.is_empty());
        assert_eq!(index.slot_count(), 0);
        assert_eq!(index.find(b"key:000000000999"), None);
    }

    #[test]
    fn small_values_are_copied_out_large_ones_shared() {
        let mut index = Index::default();
        let small = Bytes::from(vec![7u8; VALUE_COPY_MAX]);
        let large = Bytes::from(vec![9u8; VALUE_COPY_MAX + 1]);
        let s = index.insert(NewEntry {
            value: Some(Cached::owned(small.clone())),
            value_len: small.len() as u32,
            ..entry(b"small")
        });
        let l = index.insert(NewEntry {
            value: Some(Cached::owned(large.clone())),
            value_len: large.len() as u32,
            ..entry(b"large")
        });
        let got = index.read_value(s).expect("cached");
        assert_eq!(got, small);
        assert_ne!(got.as_ptr(), small.as_ptr(), "a copy");
        let got = index.read_value(l).expect("cached");
        assert_eq!(got, large);
        assert_eq!(got.as_ptr(), large.as_ptr(), "the same buffer");
    }

    #[test]
    fn short_values_live_inside_their_handle() {
        for len in [
            0,
            1,
            VALUE_INLINE_MAX - 1,
            VALUE_INLINE_MAX,
            VALUE_INLINE_MAX + 1,
        ] {
            let value: Vec<u8> = (0..len as u8).collect();
            for cached in [
                Cached::copy(&value),
                Cached::owned(Bytes::from(value.clone())),
            ] {
                assert_eq!(cached.as_slice(), &value[..]);
                assert_eq!(cached.len(), len);
                assert_eq!(
                    matches!(cached.0, Stored::Inline { .. }),
                    len <= VALUE_INLINE_MAX,
                    "{len} bytes"
                );
            }
        }
        // A copy never points into the buffer it was taken from.
        let buffer = Bytes::from(vec![5u8; 4096]);
        let copy = Cached::copy(&buffer[100..1100]);
        assert_ne!(copy.as_slice().as_ptr(), buffer[100..].as_ptr());
        let mut index = Index::default();
        let slot = index.insert(NewEntry {
            value: Some(Cached::copy(b"short")),
            value_len: 5,
            ..entry(b"k")
        });
        assert_eq!(index.get(slot).unwrap().value(), Some(&b"short"[..]));
        assert_eq!(index.read_value(slot), Some(Bytes::from_static(b"short")));
    }

    #[test]
    fn prefetch_of_many_keys_changes_nothing() {
        let mut index = Index::default();
        for i in 0..100 {
            index.insert(entry(format!("key:{i}").as_bytes()));
        }
        // Present and absent keys, more than one group of them, and none at all.
        let keys: Vec<String> = (0..150).map(|i| format!("key:{}", i * 3)).collect();
        index.prefetch(keys.iter().map(|k| k.as_bytes()));
        index.prefetch(std::iter::empty());
        assert_eq!(index.len(), 100);
        for i in 0..100u32 {
            let slot = index.find(format!("key:{i}").as_bytes());
            assert_eq!(slot, Some(i));
            assert!(
                !index.get(i).unwrap().referenced(),
                "a prefetch is not an access"
            );
        }
    }

    #[test]
    fn reserve_keeps_every_key_findable() {
        let mut index = Index::default();
        for i in 0..1000 {
            index.insert(entry(format!("key:{i:012}").as_bytes()));
        }
        index.reserve(50_000);
        for i in 1000..50_000 {
            index.insert(entry(format!("key:{i:012}").as_bytes()));
        }
        for i in (0..50_000).step_by(7) {
            assert_eq!(index.find(format!("key:{i:012}").as_bytes()), Some(i));
        }
        assert_eq!(index.len(), 50_000);
    }
}
