//! The shard log: synchronous appends into an in-memory write buffer, a flusher task that
//! writes the buffer with group commit, waiters for durability, and reads.
//!
//! State is shared between the shard's synchronous code and the flusher through one
//! `RefCell` that is never borrowed across an `.await`.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::disk::Disk;
use super::error::StorageError;
use super::format::{
    decode_record, encode_record, record_size, segment_file_name, Location, Record, RecordKind,
    SegmentHeader,
};
use super::limits::{
    align_down, align_up, BLOCK_SIZE, FLUSH_RETRY_INTERVAL_MS, FLUSH_WRITE_SIZE_MAX, KEY_SIZE_MAX,
    LAZY_FLUSH_BYTES, LAZY_FLUSH_INTERVAL_MS, RECORD_ALIGN, RECORD_HEADER_SIZE, SEGMENT_DATA_START,
    SEGMENT_SIZE_DEFAULT, SEGMENT_SIZE_MAX, SEGMENT_SIZE_MIN, VALUE_SIZE_MAX,
    WRITE_BUFFER_SIZE_MAX,
};

/// When appended records reach the disk and when `wait_durable` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// Group commit: the flusher writes as soon as there is work; records appended
    /// meanwhile go in the next write. On a write-through disk (`Disk::write_through`,
    /// how a node opens it) a completed write is durable; otherwise the flusher also
    /// fdatasyncs what was written, the next write overlapping the sync in flight.
    /// `wait_durable(seq)` returns once `seq` is durable.
    Sync,
    /// The flusher writes and fdatasyncs every `interval_ms`; `wait_durable` returns at
    /// once (a crash loses up to one interval of acknowledged writes).
    Periodic {
        /// Milliseconds between flushes.
        interval_ms: u64,
    },
    /// The flusher writes lazily (every `LAZY_FLUSH_INTERVAL_MS` or when
    /// `LAZY_FLUSH_BYTES` are buffered) and never fdatasyncs on its own.
    None,
}

/// How a log is opened.
#[derive(Clone, Debug)]
pub struct LogOptions {
    /// Size of every segment file (a multiple of `BLOCK_SIZE`).
    pub segment_size: u32,
    /// Durability mode.
    pub sync_mode: SyncMode,
    /// A sealed segment becomes a compaction victim once this percentage of its record
    /// bytes is garbage.
    pub compact_garbage_percent: u32,
    /// Seed of the per-segment nonces; `None` draws a random one (production). Tests fix
    /// it so runs replay.
    pub nonce_seed: Option<u64>,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_size: SEGMENT_SIZE_DEFAULT,
            sync_mode: SyncMode::Sync,
            compact_garbage_percent: 33,
            nonce_seed: None,
        }
    }
}

impl LogOptions {
    pub(super) fn validate(&self) -> Result<(), StorageError> {
        let size = self.segment_size;
        if !(SEGMENT_SIZE_MIN..=SEGMENT_SIZE_MAX).contains(&size) || size % BLOCK_SIZE != 0 {
            return Err(StorageError::InvalidArgument(
                "segment_size out of range or unaligned",
            ));
        }
        if self.compact_garbage_percent > 100 {
            return Err(StorageError::InvalidArgument(
                "compact_garbage_percent above 100",
            ));
        }
        if let SyncMode::Periodic { interval_ms: 0 } = self.sync_mode {
            return Err(StorageError::InvalidArgument("periodic interval of 0 ms"));
        }
        Ok(())
    }
}

/// A command to append.
#[derive(Clone, Copy, Debug)]
pub enum Op<'a> {
    /// Set `key` to `value`, expiring at `expiry_ms` (Unix ms, 0 = never).
    Put {
        /// Key (1..=KEY_SIZE_MAX bytes).
        key: &'a [u8],
        /// Value (up to VALUE_SIZE_MAX bytes).
        value: &'a [u8],
        /// Expiry, Unix ms, 0 = never.
        expiry_ms: u64,
    },
    /// Remove `key` (writes a tombstone).
    Delete {
        /// Key.
        key: &'a [u8],
    },
    /// Change the expiry of `key`'s current value.
    Touch {
        /// Key.
        key: &'a [u8],
        /// New expiry, Unix ms, 0 = never.
        expiry_ms: u64,
    },
}

impl<'a> Op<'a> {
    fn parts(self) -> (RecordKind, &'a [u8], &'a [u8], u64) {
        match self {
            Op::Put {
                key,
                value,
                expiry_ms,
            } => (RecordKind::Put, key, value, expiry_ms),
            Op::Delete { key } => (RecordKind::Delete, key, &[], 0),
            Op::Touch { key, expiry_ms } => (RecordKind::Touch, key, &[], expiry_ms),
        }
    }
}

/// Where an append went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The record's sequence number (a Put's seq is the value's version).
    pub seq: u64,
    /// Where the record lives, for the index.
    pub location: Location,
}

/// Counters and positions, for metrics and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Flushes that wrote something.
    pub flushes: u64,
    /// fdatasync calls issued by flushes.
    pub syncs: u64,
    /// Bytes handed to the disk by flushes (tail blocks rewritten count again).
    pub bytes_written: u64,
    /// Microseconds flushes spent writing (until the device took the data; on a
    /// write-through disk, until it was durable).
    pub write_us: u64,
    /// Microseconds flushes spent in fdatasync.
    pub sync_us: u64,
    /// Highest seq appended.
    pub last_seq: u64,
    /// Highest seq written to the disk.
    pub written_seq: u64,
    /// Highest seq written and synced.
    pub durable_seq: u64,
    /// Segments in the log.
    pub segments: u32,
    /// Of which compaction found damaged (kept on disk, never compacted).
    pub damaged_segments: u32,
    /// Segment files recovery found unreadable (kept on disk, left out of the log).
    pub unreadable_segments: u32,
    /// Bytes appended but not yet written.
    pub unwritten_bytes: u64,
    /// The error the log is failed with, if any.
    pub failed: Option<StorageError>,
}

/// One segment's accounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Segment id.
    pub id: u32,
    /// End of the last record.
    pub data_end: u32,
    /// Bytes of records known to be garbage (reported dead, pads, damage).
    pub garbage_bytes: u32,
    /// No longer appended to.
    pub sealed: bool,
}

pub(super) struct Segment<F> {
    pub(super) file: Option<F>,
    /// Bytes of the segment usable for records' ends (the header's segment size, or less
    /// for a file found shorter).
    pub(super) size: u32,
    pub(super) nonce: u64,
    pub(super) data_end: u32,
    pub(super) garbage: u32,
    /// Lowest and highest seq of any record in the segment (MAX/0 when empty, 0/MAX when
    /// unknown), for the tombstone rule and truncation.
    pub(super) seq_min: u64,
    pub(super) seq_max: u64,
    pub(super) sealed: bool,
    /// Bytes compaction found damaged in it: a segment with damage is never deleted
    /// (what the damage held, a live value or a tombstone, cannot be known) and never
    /// picked again.
    pub(super) damaged_bytes: u64,
}

impl<F> Segment<F> {
    pub(super) fn new(file: Option<F>, nonce: u64, size: u32) -> Segment<F> {
        Segment {
            file,
            size,
            nonce,
            data_end: SEGMENT_DATA_START,
            garbage: 0,
            seq_min: u64::MAX,
            seq_max: 0,
            sealed: false,
            damaged_bytes: 0,
        }
    }

    pub(super) fn note_seq(&mut self, seq: u64) {
        self.seq_min = self.seq_min.min(seq);
        self.seq_max = self.seq_max.max(seq);
    }

    pub(super) fn add_garbage(&mut self, bytes: u32) {
        let data = self.data_end - SEGMENT_DATA_START;
        debug_assert!(
            self.garbage.saturating_add(bytes) <= data,
            "garbage beyond data"
        );
        self.garbage = self.garbage.saturating_add(bytes).min(data);
    }
}

/// Bytes of one segment not yet known to be written: `bytes[i]` belongs at `base + i`,
/// `base` is block-aligned, and the first `written` bytes are on the disk. The written
/// prefix of the last partial block stays, so the next flush rewrites that block whole.
pub(super) struct Pending {
    pub(super) segment: u32,
    pub(super) base: u32,
    pub(super) bytes: Vec<u8>,
    pub(super) written: usize,
}

pub(super) struct State<F> {
    pub(super) shard_id: u32,
    pub(super) segments: BTreeMap<u32, Segment<F>>,
    pub(super) head: u32,
    pub(super) next_segment_id: u32,
    pub(super) next_seq: u64,
    pub(super) written_seq: u64,
    pub(super) durable_seq: u64,
    pub(super) pending: Vec<Pending>,
    /// Segments written since their last fdatasync.
    pub(super) dirty: BTreeSet<u32>,
    /// A write phase (or a whole `flush`) runs: one at a time.
    pub(super) flushing: bool,
    /// An fdatasync phase runs: one at a time, possibly beside a write.
    pub(super) syncing: bool,
    /// The last write failed (cleared by a successful write).
    pub(super) write_failed: Option<StorageError>,
    /// The last fdatasync failed (cleared by a successful one).
    pub(super) sync_failed: Option<StorageError>,
    pub(super) spare: Option<(u32, F)>,
    pub(super) spare_creating: bool,
    pub(super) spare_error: Option<StorageError>,
    pub(super) closed: bool,
    /// A truncation is rewriting the tail: appends wait (Busy).
    pub(super) exclusive: bool,
    /// A compaction step is running.
    pub(super) compacting: bool,
    /// Someone waits for a write (`wait_written`): the flusher writes now, whatever the mode.
    pub(super) write_wanted: bool,
    /// `wait_durable` callers and the seq each waits for.
    pub(super) durable_waiters: Vec<(u64, Waker)>,
    /// `wait_written` callers and the seq each waits for.
    pub(super) written_waiters: Vec<(u64, Waker)>,
    pub(super) idle_waiters: Vec<Waker>,
    pub(super) flusher_waker: Option<Waker>,
    /// The sync stage of the flusher (mode `Sync`), waiting for written records.
    pub(super) syncer_waker: Option<Waker>,
    pub(super) spare_waker: Option<Waker>,
    pub(super) rng: u64,
    /// Highest seq the hint file on disk covers (0: none).
    pub(super) hint_seq: u64,
    /// Highest seq whose effect the hint on disk may hold: a hint built while the node
    /// serves can list an expiry changed after `hint_seq` (the Touch is after the hint's
    /// position). Cutting the log below this drops the hint.
    pub(super) hint_reach: u64,
    /// Size of `hint.dat` (0: none).
    pub(super) hint_bytes: u64,
    pub(super) compaction: Option<(u32, u32)>,
    pub(super) stats: LogStats,
}

impl<F: Clone> State<F> {
    pub(super) fn new(shard_id: u32, seed: u64) -> State<F> {
        State {
            shard_id,
            segments: BTreeMap::new(),
            head: 0,
            next_segment_id: 1,
            next_seq: 1,
            written_seq: 0,
            durable_seq: 0,
            pending: Vec::new(),
            dirty: BTreeSet::new(),
            flushing: false,
            syncing: false,
            write_failed: None,
            sync_failed: None,
            spare: None,
            spare_creating: false,
            spare_error: None,
            closed: false,
            exclusive: false,
            compacting: false,
            write_wanted: false,
            durable_waiters: Vec::new(),
            written_waiters: Vec::new(),
            idle_waiters: Vec::new(),
            flusher_waker: None,
            syncer_waker: None,
            spare_waker: None,
            rng: seed,
            hint_seq: 0,
            hint_reach: 0,
            hint_bytes: 0,
            compaction: None,
            stats: LogStats::default(),
        }
    }

    pub(super) fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    fn next_nonce(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The error the log is failed with: appends are refused until the failed write or
    /// sync succeeds on retry.
    pub(super) fn failed(&self) -> Option<&StorageError> {
        self.write_failed.as_ref().or(self.sync_failed.as_ref())
    }

    pub(super) fn check_writable(&self) -> Result<(), StorageError> {
        if self.closed {
            return Err(StorageError::Closed);
        }
        if let Some(e) = self.failed() {
            return Err(e.clone());
        }
        if self.exclusive {
            return Err(StorageError::Busy);
        }
        Ok(())
    }

    pub(super) fn unwritten_bytes(&self) -> u64 {
        self.pending
            .iter()
            .map(|p| (p.bytes.len() - p.written) as u64)
            .sum()
    }

    /// Starts a new head segment in memory; its file is the spare, or is created by the
    /// next flush. Block 0 (the header) is the start of its write buffer.
    pub(super) fn roll(&mut self, segment_size: u32) -> Result<(), StorageError> {
        let (id, file) = match self.spare.take() {
            Some((id, file)) => (id, Some(file)),
            None => {
                if let Some(e) = &self.spare_error {
                    return Err(e.clone());
                }
                let id = self.next_segment_id;
                self.next_segment_id += 1;
                (id, None)
            }
        };
        assert!(
            self.segments.keys().all(|s| *s < id),
            "segment ids only grow"
        );
        let nonce = self.next_nonce();
        let header = SegmentHeader {
            shard_id: self.shard_id,
            segment_id: id,
            segment_size,
            first_seq: self.next_seq,
            nonce,
        };
        if let Some(old) = self.segments.get_mut(&self.head) {
            old.sealed = true;
        }
        // The old head's buffer keeps its partial last block until the segment is
        // sealed; once all of it is on disk nothing will flush it again, so drop it now
        // (a buffered segment is never a compaction victim).
        let old_head = self.head;
        self.pending
            .retain(|p| p.segment != old_head || p.written < p.bytes.len());
        self.segments
            .insert(id, Segment::new(file, nonce, segment_size));
        self.pending.push(Pending {
            segment: id,
            base: 0,
            bytes: header.encode_block(),
            written: 0,
        });
        self.head = id;
        if let Some(w) = self.spare_waker.take() {
            w.wake();
        }
        Ok(())
    }

    /// Encodes one record at the head. `seq` is fresh for appends, the original one for
    /// relocations.
    pub(super) fn append_record(
        &mut self,
        segment_size: u32,
        kind: RecordKind,
        seq: u64,
        expiry_ms: u64,
        key: &[u8],
        value: &[u8],
    ) -> Result<Location, StorageError> {
        if key.is_empty() {
            return Err(StorageError::InvalidArgument("empty key"));
        }
        let max = u64::from(KEY_SIZE_MAX);
        if key.len() as u64 > max {
            return Err(StorageError::TooLarge {
                size: key.len() as u64,
                max,
            });
        }
        let max = u64::from(VALUE_SIZE_MAX);
        if value.len() as u64 > max {
            return Err(StorageError::TooLarge {
                size: value.len() as u64,
                max,
            });
        }
        let size = record_size(key.len() as u32, value.len() as u32);
        let max = u64::from(segment_size - SEGMENT_DATA_START);
        if size > max {
            return Err(StorageError::TooLarge { size, max });
        }
        if self.unwritten_bytes() + size + u64::from(BLOCK_SIZE) > u64::from(WRITE_BUFFER_SIZE_MAX)
        {
            return Err(StorageError::Busy);
        }
        let size = size as u32;
        let head_full = self.segments.get(&self.head).is_none_or(|h| {
            h.sealed || u64::from(h.data_end) + u64::from(size) > u64::from(h.size)
        });
        if head_full {
            self.roll(segment_size)?;
        }
        let head_id = self.head;
        let head = self
            .segments
            .get_mut(&head_id)
            .ok_or(StorageError::Closed)?;
        let pending = self.pending.last_mut().ok_or(StorageError::Closed)?;
        assert_eq!(pending.segment, head_id);
        assert_eq!(
            pending.base as usize + pending.bytes.len(),
            head.data_end as usize
        );
        let written = encode_record(
            &mut pending.bytes,
            head.nonce,
            kind,
            seq,
            expiry_ms,
            key,
            value,
        );
        assert_eq!(written, size);
        let location = Location {
            segment: head_id,
            offset: head.data_end,
            length: size,
        };
        head.data_end += size;
        head.note_seq(seq);
        if let Some(w) = self.flusher_waker.take() {
            w.wake();
        }
        if let Some(w) = self.spare_waker.take() {
            w.wake();
        }
        Ok(location)
    }

    /// Wakes the waiters whose seq was reached, and all of them once the log is failed
    /// or closed (they return the error).
    fn wake_waiters(&mut self) {
        let all = self.failed().is_some() || self.closed;
        let written = self.written_seq.max(self.durable_seq);
        let durable = self.durable_seq;
        for (waiters, reached) in [
            (&mut self.written_waiters, written),
            (&mut self.durable_waiters, durable),
        ] {
            waiters.retain(|(seq, waker)| {
                let wake = all || *seq <= reached;
                if wake {
                    waker.wake_by_ref();
                }
                !wake
            });
        }
    }

    fn wake_idle(&mut self) {
        for w in self.idle_waiters.drain(..) {
            w.wake();
        }
    }
}

/// One segment's share of a flush.
struct Job<F> {
    segment: u32,
    file: Option<F>,
    base: u32,
    data: Vec<u8>,
    len: usize,
}

pub(super) struct Inner<D: Disk> {
    pub(super) disk: D,
    pub(super) options: LogOptions,
    pub(super) state: RefCell<State<D::File>>,
    /// A hint is being built or written (`begin_hint` until the builder is dropped).
    pub(super) hinting: Rc<std::cell::Cell<bool>>,
}

/// The durable log of one shard. A cheap handle (`Rc`): clone it out of the shard's
/// `RefCell` before awaiting anything.
pub struct Log<D: Disk> {
    pub(super) inner: Rc<Inner<D>>,
}

impl<D: Disk> Clone for Log<D> {
    fn clone(&self) -> Self {
        Log {
            inner: self.inner.clone(),
        }
    }
}

/// Holds `flushing` (a write phase) or `syncing` (an fdatasync phase) and releases it
/// when dropped, also when the future is dropped half-way.
struct PhaseGuard<'a, F: Clone> {
    state: &'a RefCell<State<F>>,
    sync: bool,
}

impl<'a, F: Clone> PhaseGuard<'a, F> {
    /// Waits until no phase of this kind runs, then takes it.
    async fn acquire(state: &'a RefCell<State<F>>, sync: bool) -> PhaseGuard<'a, F> {
        until(state, |st, waker| {
            let busy = if sync {
                &mut st.syncing
            } else {
                &mut st.flushing
            };
            if !*busy {
                *busy = true;
                return Some(());
            }
            st.idle_waiters.push(waker.clone());
            None
        })
        .await;
        PhaseGuard { state, sync }
    }
}

impl<F: Clone> Drop for PhaseGuard<'_, F> {
    fn drop(&mut self) {
        let mut st = self.state.borrow_mut();
        if self.sync {
            st.syncing = false;
        } else {
            st.flushing = false;
        }
        st.wake_idle();
    }
}

/// A future polling a closure over the state until it yields a value.
struct Until<'a, F, T, P>
where
    P: FnMut(&mut State<F>, &Waker) -> Option<T>,
{
    state: &'a RefCell<State<F>>,
    poll: P,
}

impl<F, T, P> Future for Until<'_, F, T, P>
where
    P: FnMut(&mut State<F>, &Waker) -> Option<T> + Unpin,
{
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = &mut *self;
        let mut st = this.state.borrow_mut();
        match (this.poll)(&mut st, cx.waker()) {
            Some(v) => Poll::Ready(v),
            None => Poll::Pending,
        }
    }
}

fn until<F, T, P>(state: &RefCell<State<F>>, poll: P) -> Until<'_, F, T, P>
where
    P: FnMut(&mut State<F>, &Waker) -> Option<T> + Unpin,
{
    Until { state, poll }
}

impl<D: Disk> Log<D> {
    /// Appends a record to the write buffer and returns its seq and location. Cheap and
    /// synchronous; the record is durable once `wait_durable(seq)` returns Ok.
    ///
    /// Fails with `NoSpace`/`Io` while the log is failed, `Busy` when the write buffer is
    /// full (or a truncation runs), `TooLarge`, `InvalidArgument`, or `Closed`.
    pub fn append(&self, op: Op<'_>) -> Result<Appended, StorageError> {
        let (kind, key, value, expiry_ms) = op.parts();
        let mut st = self.inner.state.borrow_mut();
        st.check_writable()?;
        let seq = st.next_seq;
        let location = st.append_record(
            self.inner.options.segment_size,
            kind,
            seq,
            expiry_ms,
            key,
            value,
        )?;
        st.next_seq += 1;
        st.stats.last_seq = seq;
        Ok(Appended { seq, location })
    }

    /// Resolves when `seq` is durable (mode `Sync`: needs the flusher task running, or a
    /// `sync()`), at once in the other modes. Returns
    /// the error of a failed flush covering `seq`: then the record is not acknowledged
    /// (it may still reach the disk when a retried flush succeeds).
    pub async fn wait_durable(&self, seq: u64) -> Result<(), StorageError> {
        let sync = self.inner.options.sync_mode == SyncMode::Sync;
        until(&self.inner.state, |st, waker| {
            let reached = if sync { st.durable_seq } else { u64::MAX };
            if seq <= reached {
                return Some(Ok(()));
            }
            if let Some(e) = st.failed() {
                return Some(Err(e.clone()));
            }
            if st.closed {
                return Some(Err(StorageError::Closed));
            }
            st.durable_waiters.push((seq, waker.clone()));
            None
        })
        .await
    }

    /// Resolves when `seq` has been written to the disk (synced or not): the wait for
    /// room after `Busy`.
    pub async fn wait_written(&self, seq: u64) -> Result<(), StorageError> {
        until(&self.inner.state, |st, waker| {
            if seq <= st.written_seq.max(st.durable_seq) {
                return Some(Ok(()));
            }
            if let Some(e) = st.failed() {
                return Some(Err(e.clone()));
            }
            if st.closed {
                return Some(Err(StorageError::Closed));
            }
            st.write_wanted = true;
            if let Some(w) = st.flusher_waker.take() {
                w.wake();
            }
            st.written_waiters.push((seq, waker.clone()));
            None
        })
        .await
    }

    /// Writes everything appended so far and fdatasyncs, whatever the mode. Used for
    /// shutdown, compaction and hints; waits for a flush in flight first.
    pub async fn sync(&self) -> Result<(), StorageError> {
        self.flush(true).await
    }

    /// Flushes, stops the flusher, refuses further appends.
    pub async fn close(&self) -> Result<(), StorageError> {
        let result = self.sync().await;
        let mut st = self.inner.state.borrow_mut();
        st.closed = true;
        st.wake_waiters();
        for w in [
            st.flusher_waker.take(),
            st.syncer_waker.take(),
            st.spare_waker.take(),
        ]
        .into_iter()
        .flatten()
        {
            w.wake();
        }
        result
    }

    /// The flusher: run it as a task on the shard's executor, in the latency task queue:
    /// `glommio::spawn_local_into(log.clone().run_flusher(), tq)?.detach()`. Returns when
    /// the log is closed. It also preallocates the next segment ahead of need.
    pub async fn run_flusher(self) {
        let spare = self.clone();
        futures_lite::future::zip(self.flush_loop(), spare.spare_loop()).await;
    }

    async fn flush_loop(self) {
        let mode = self.inner.options.sync_mode;
        if mode == SyncMode::Sync {
            // On a write-through disk a completed write is the commit: no sync stage.
            if self.inner.disk.write_through() {
                self.write_loop().await;
            } else {
                let syncer = self.clone();
                futures_lite::future::zip(self.write_loop(), syncer.sync_loop()).await;
            }
            return;
        }
        loop {
            match mode {
                SyncMode::Periodic { interval_ms } => {
                    glommio::timer::sleep(Duration::from_millis(interval_ms)).await
                }
                _ => {
                    let timer =
                        glommio::timer::sleep(Duration::from_millis(LAZY_FLUSH_INTERVAL_MS));
                    futures_lite::future::or(timer, self.work_ready(u64::from(LAZY_FLUSH_BYTES)))
                        .await
                }
            }
            if self.inner.state.borrow().closed {
                return;
            }
            if self.flush(mode != SyncMode::None).await.is_err() {
                glommio::timer::sleep(Duration::from_millis(FLUSH_RETRY_INTERVAL_MS)).await;
            }
        }
    }

    /// Group commit, first stage: writes whatever was appended, one write at a time.
    /// Records appended while a write is in flight go together in the next one.
    async fn write_loop(self) {
        loop {
            self.work_ready(1).await;
            if self.inner.state.borrow().closed {
                return;
            }
            if self.flush(false).await.is_err() {
                glommio::timer::sleep(Duration::from_millis(FLUSH_RETRY_INTERVAL_MS)).await;
            }
        }
    }

    /// Group commit, second stage: fdatasyncs what the writes put on the disk, one sync
    /// at a time, while the next write already runs. One sync acknowledges every record
    /// written before it started.
    async fn sync_loop(self) {
        loop {
            until(&self.inner.state, |st, waker| {
                if st.closed || !st.dirty.is_empty() {
                    return Some(());
                }
                st.syncer_waker = Some(waker.clone());
                None
            })
            .await;
            if self.inner.state.borrow().closed {
                return;
            }
            if self.sync_written().await.is_err() {
                glommio::timer::sleep(Duration::from_millis(FLUSH_RETRY_INTERVAL_MS)).await;
            }
        }
    }

    /// Resolves when at least `bytes` wait to be written, or the log is closed.
    async fn work_ready(&self, bytes: u64) {
        until(&self.inner.state, |st, waker| {
            let wanted = st.write_wanted && st.unwritten_bytes() > 0;
            if st.closed || wanted || st.unwritten_bytes() >= bytes {
                return Some(());
            }
            st.flusher_waker = Some(waker.clone());
            None
        })
        .await
    }

    async fn spare_loop(self) {
        loop {
            let id = until(&self.inner.state, |st, waker| {
                if st.closed {
                    return Some(None);
                }
                let half_full = st
                    .segments
                    .get(&st.head)
                    .is_none_or(|h| h.data_end > h.size / 2);
                if st.spare.is_none() && !st.spare_creating && half_full {
                    st.spare_creating = true;
                    let id = st.next_segment_id;
                    st.next_segment_id += 1;
                    return Some(Some(id));
                }
                st.spare_waker = Some(waker.clone());
                None
            })
            .await;
            let Some(id) = id else { return };
            let created = self.create_segment_file(id).await;
            let failed = {
                let mut st = self.inner.state.borrow_mut();
                st.spare_creating = false;
                match created {
                    Ok(file) if id > st.head => {
                        st.spare = Some((id, file));
                        st.spare_error = None;
                        None
                    }
                    Ok(_) => Some(None), // a roll overtook it: drop it
                    Err(e) => {
                        st.spare_error = Some(e);
                        Some(Some(()))
                    }
                }
            };
            if let Some(error) = failed {
                let _ = self.inner.disk.remove(&segment_file_name(id)).await;
                if error.is_some() {
                    glommio::timer::sleep(Duration::from_millis(FLUSH_RETRY_INTERVAL_MS)).await;
                }
            }
        }
    }

    /// Creates a segment file, preallocated and zeroed, and makes its name durable.
    pub(super) async fn create_segment_file(&self, id: u32) -> Result<D::File, StorageError> {
        let size = u64::from(self.inner.options.segment_size);
        let name = segment_file_name(id);
        let file = match self.inner.disk.create(&name, size).await {
            Ok(file) => file,
            Err(e) => {
                // A half-made file (ENOSPC while zeroing) would make every retry fail
                // with EEXIST: remove it. Never remove a file that existed before.
                if !matches!(
                    e,
                    StorageError::Io {
                        errno: Some(libc::EEXIST),
                        ..
                    }
                ) {
                    let _ = self.inner.disk.remove(&name).await;
                }
                return Err(e);
            }
        };
        self.inner.disk.sync_dir().await?;
        Ok(file)
    }

    /// One flush: waits for a write phase in flight, snapshots the write buffer, writes
    /// it (rewriting the partial tail block whole), and if asked fdatasyncs everything
    /// written so far (after a sync in flight), then acknowledges.
    pub(super) async fn flush(&self, fsync: bool) -> Result<(), StorageError> {
        let state = &self.inner.state;
        let _write_phase = PhaseGuard::acquire(state, false).await;
        let (mut jobs, upto) = {
            let st = state.borrow();
            let jobs: Vec<Job<D::File>> = st
                .pending
                .iter()
                .filter(|p| p.written < p.bytes.len())
                .map(|p| {
                    let padded = align_up(p.bytes.len() as u32, BLOCK_SIZE) as usize;
                    let mut data = Vec::with_capacity(padded);
                    data.extend_from_slice(&p.bytes);
                    data.resize(padded, 0);
                    let file = st.segments.get(&p.segment).and_then(|s| s.file.clone());
                    Job {
                        segment: p.segment,
                        file,
                        base: p.base,
                        data,
                        len: p.bytes.len(),
                    }
                })
                .collect();
            (jobs, st.last_seq())
        };
        if !jobs.is_empty() || state.borrow().write_failed.is_some() {
            state.borrow_mut().write_wanted = false;
            let started = Instant::now();
            let result = self.write_jobs(&mut jobs).await;
            let mut st = state.borrow_mut();
            if let Err(e) = result {
                st.write_failed = Some(e.clone());
                st.wake_waiters();
                return Err(e);
            }
            st.stats.write_us += started.elapsed().as_micros() as u64;
            let write_through = self.inner.disk.write_through();
            for job in &jobs {
                if !write_through {
                    st.dirty.insert(job.segment);
                }
                st.stats.bytes_written += job.data.len() as u64;
                complete_pending(&mut st, job.segment, job.len);
            }
            st.written_seq = st.written_seq.max(upto);
            if write_through {
                st.durable_seq = st.durable_seq.max(upto);
            }
            st.stats.flushes += 1;
            st.write_failed = None;
            st.wake_waiters();
            if let Some(w) = st.syncer_waker.take() {
                w.wake();
            }
        }
        if fsync {
            self.sync_written().await?;
        }
        Ok(())
    }

    /// Writes the jobs (creating a segment file the spare did not provide).
    async fn write_jobs(&self, jobs: &mut [Job<D::File>]) -> Result<(), StorageError> {
        let disk = &self.inner.disk;
        for job in jobs.iter_mut() {
            let file = match &job.file {
                Some(f) => f.clone(),
                None => {
                    let f = self.create_segment_file(job.segment).await?;
                    if let Some(s) = self.inner.state.borrow_mut().segments.get_mut(&job.segment) {
                        s.file = Some(f.clone());
                    }
                    job.file = Some(f.clone());
                    f
                }
            };
            for (i, chunk) in job.data.chunks(FLUSH_WRITE_SIZE_MAX as usize).enumerate() {
                let pos = u64::from(job.base) + (i * FLUSH_WRITE_SIZE_MAX as usize) as u64;
                disk.write_at(&file, pos, chunk).await?;
            }
        }
        Ok(())
    }

    /// Fdatasyncs every segment written since its last sync (after a sync in flight),
    /// then marks durable every record those writes held.
    async fn sync_written(&self) -> Result<(), StorageError> {
        let state = &self.inner.state;
        let _sync_phase = PhaseGuard::acquire(state, true).await;
        let (ids, files, upto) = {
            let mut st = state.borrow_mut();
            let ids = std::mem::take(&mut st.dirty);
            let files: Vec<D::File> = ids
                .iter()
                .filter_map(|id| st.segments.get(id)?.file.clone())
                .collect();
            (ids, files, st.written_seq)
        };
        let started = Instant::now();
        let mut result = Ok(());
        for file in &files {
            result = self.inner.disk.sync(file).await;
            if result.is_err() {
                break;
            }
        }
        let mut st = state.borrow_mut();
        if let Err(e) = result {
            st.dirty.extend(ids);
            st.sync_failed = Some(e.clone());
            st.wake_waiters();
            return Err(e);
        }
        st.stats.syncs += files.len() as u64;
        st.stats.sync_us += started.elapsed().as_micros() as u64;
        st.durable_seq = st.durable_seq.max(upto);
        st.sync_failed = None;
        st.wake_waiters();
        Ok(())
    }

    /// Reads a record back: from the write buffer if it is still there, else by a DMA
    /// read of the blocks holding it, verifying both checksums and the length.
    pub async fn read(&self, location: Location) -> Result<Record, StorageError> {
        let (file, nonce) = {
            let st = self.inner.state.borrow();
            let segment = st
                .segments
                .get(&location.segment)
                .ok_or_else(|| StorageError::NotFound(format!("segment {}", location.segment)))?;
            let end = u64::from(location.offset) + u64::from(location.length);
            let valid = location.offset >= SEGMENT_DATA_START
                && location.offset % RECORD_ALIGN == 0
                && location.length >= RECORD_HEADER_SIZE
                && end <= u64::from(segment.data_end);
            if !valid {
                return Err(StorageError::InvalidArgument(
                    "location outside the segment's records",
                ));
            }
            let buffered = st.pending.iter().find(|p| {
                p.segment == location.segment
                    && location.offset >= p.base
                    && end <= u64::from(p.base) + p.bytes.len() as u64
            });
            if let Some(p) = buffered {
                let from = (location.offset - p.base) as usize;
                let bytes = p
                    .bytes
                    .get(from..from + location.length as usize)
                    .unwrap_or(&[]);
                return owned_record(Bytes::copy_from_slice(bytes), 0, segment.nonce, location);
            }
            let file = segment.file.clone().ok_or_else(|| {
                StorageError::NotFound(format!("file of segment {}", location.segment))
            })?;
            (file, segment.nonce)
        };
        let start = align_down(location.offset, BLOCK_SIZE);
        let end = align_up(location.offset + location.length, BLOCK_SIZE);
        let bytes = self
            .inner
            .disk
            .read_at(&file, u64::from(start), end - start)
            .await?;
        owned_record(
            Bytes::from(bytes),
            (location.offset - start) as usize,
            nonce,
            location,
        )
    }

    /// Tells the log a record became garbage (overwritten, deleted, expired), for the
    /// compaction accounting. A segment already compacted away is ignored. Each location
    /// must be reported at most once.
    pub fn mark_garbage(&self, location: Location) {
        let mut st = self.inner.state.borrow_mut();
        if let Some(segment) = st.segments.get_mut(&location.segment) {
            segment.add_garbage(location.length);
        }
    }

    /// Counters and positions.
    pub fn stats(&self) -> LogStats {
        let st = self.inner.state.borrow();
        let mut stats = st.stats.clone();
        stats.last_seq = st.last_seq();
        stats.written_seq = st.written_seq;
        stats.durable_seq = st.durable_seq;
        stats.segments = st.segments.len() as u32;
        stats.damaged_segments =
            st.segments.values().filter(|s| s.damaged_bytes > 0).count() as u32;
        stats.unwritten_bytes = st.unwritten_bytes();
        stats.failed = st.failed().cloned();
        stats
    }

    /// The log refuses appends now (a failed write or sync not yet retried, closed, or
    /// a truncation running).
    pub fn refuses_appends(&self) -> bool {
        self.inner.state.borrow().check_writable().is_err()
    }

    /// Bytes of the log's files on disk: every segment, the preallocated spare and the
    /// hint. (Segment files recovery could not read are left out; `LogStats` counts
    /// them.)
    pub fn disk_bytes(&self) -> u64 {
        let st = self.inner.state.borrow();
        let segments: u64 = st
            .segments
            .values()
            .filter(|s| s.file.is_some())
            .map(|s| u64::from(s.size))
            .sum();
        let spare = st
            .spare
            .as_ref()
            .map_or(0, |_| u64::from(self.inner.options.segment_size));
        segments + spare + st.hint_bytes
    }

    /// Accounting of every segment, in log order.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let st = self.inner.state.borrow();
        st.segments
            .iter()
            .map(|(id, s)| SegmentInfo {
                id: *id,
                data_end: s.data_end,
                garbage_bytes: s.garbage,
                sealed: s.sealed,
            })
            .collect()
    }

    /// The shard this log belongs to.
    pub fn shard_id(&self) -> u32 {
        self.inner.state.borrow().shard_id
    }
}

/// After `len` bytes of a segment's buffer were written: keep only the partial last block
/// (the head) or drop the buffer (a sealed segment, all written).
fn complete_pending<F: Clone>(st: &mut State<F>, segment: u32, len: usize) {
    let head = st.head;
    let Some(i) = st.pending.iter().position(|p| p.segment == segment) else {
        return;
    };
    let Some(p) = st.pending.get_mut(i) else {
        return;
    };
    p.written = p.written.max(len);
    if segment != head && p.written == p.bytes.len() {
        st.pending.remove(i);
        return;
    }
    let drop = align_down(p.written as u32, BLOCK_SIZE) as usize;
    p.bytes.drain(..drop);
    p.base += drop as u32;
    p.written -= drop;
}

fn owned_record(
    buf: Bytes,
    at: usize,
    nonce: u64,
    location: Location,
) -> Result<Record, StorageError> {
    let corrupt = |what| StorageError::Corrupt {
        segment: location.segment,
        offset: location.offset,
        what,
    };
    let slice = buf.get(at..).ok_or(corrupt("short read"))?;
    let r = decode_record(slice, nonce).map_err(|_| corrupt("record checksum"))?;
    if r.size != location.length || r.kind == RecordKind::Pad {
        return Err(corrupt("record length or kind differs from the location"));
    }
    let key_at = at + RECORD_HEADER_SIZE as usize;
    let value_at = key_at + r.key.len();
    let record = Record {
        kind: r.kind,
        seq: r.seq,
        expiry_ms: r.expiry_ms,
        key: buf.slice(key_at..value_at),
        value: buf.slice(value_at..value_at + r.value.len()),
    };
    Ok(record)
}
