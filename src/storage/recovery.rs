//! Opening a log: read the hint if there is a good one, scan the segments after it, cut a
//! torn tail, skip damage, and hand every valid record to the shard.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Instant;

use super::disk::Disk;
use super::error::StorageError;
use super::format::{
    parse_segment_file_name, scanned_record, segment_file_name, HeaderBlock, Location, RecordKind,
    ScanCursor, ScanItem, SegmentHeader, Step,
};
use super::hint::{read_hint, Hint, HINT_FILE_NAME};
use super::limits::{
    align_down, align_up, BLOCK_SIZE, FLUSH_WRITE_SIZE_MAX, RECOVERY_READ_SIZE, SCAN_READ_SIZE,
    SEGMENTS_MAX, SEGMENT_DATA_START,
};
use super::log::{Inner, Log, LogOptions, Pending, Segment, State};

/// One record found by recovery, borrowed for the duration of the callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovered<'a> {
    /// Put, Delete or Touch (never Pad).
    pub kind: RecordKind,
    /// Sequence number.
    pub seq: u64,
    /// Expiry of the record, Unix ms, 0 = never.
    pub expiry_ms: u64,
    /// Key.
    pub key: &'a [u8],
    /// The value of a Put found by the scan; `None` for a Put taken from the hint (read
    /// it at `location` when needed) and for Delete/Touch.
    pub value: Option<&'a [u8]>,
    /// Where the record lives.
    pub location: Location,
}

/// What `Log::open_into` hands the recovered records to: the shard's index being
/// rebuilt.
pub trait RecoverySink {
    /// Called once before any record when a hint is used, with the number of records
    /// it lists: room to reserve for a bulk load.
    fn expect(&mut self, _records: u64) {}

    /// Called during a start without a hint, after each sealed segment: `done` of the
    /// `total` bytes of the sealed segments have been scanned. Room to reserve for the
    /// keys the rest will likely add, extrapolated from those found so far.
    fn scanned(&mut self, _done: u64, _total: u64) {}

    /// Folds one recovered record in; superseded records go to `garbage`.
    fn record(&mut self, record: &Recovered<'_>, garbage: &mut Garbage);

    /// Folds many records in, as `record` on each in turn would (the hint's entries and
    /// each read of a scan come this way).
    fn records(&mut self, records: &[Recovered<'_>], garbage: &mut Garbage) {
        for record in records {
            self.record(record, garbage);
        }
    }
}

/// A closure as a sink (`Log::open`).
struct EachRecord<F>(F);

impl<F: FnMut(&Recovered<'_>, &mut Garbage)> RecoverySink for EachRecord<F> {
    fn record(&mut self, record: &Recovered<'_>, garbage: &mut Garbage) {
        (self.0)(record, garbage)
    }
}

/// What `Log::open` found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments in the log after recovery.
    pub segments: u32,
    /// Segment files whose header could not be read (kept on disk, left out of the log).
    pub segments_unreadable: u32,
    /// Their ids.
    pub unreadable: Vec<u32>,
    /// Segment files shorter than their header says (their missing end holds nothing).
    pub segments_truncated: u32,
    /// Hint entries (live keys) in unreadable segments: lost.
    pub hint_entries_lost: u64,
    /// Unused preallocated segments (all-zero header) removed.
    pub segments_removed: u32,
    /// Records handed to the callback (hint entries included).
    pub records: u64,
    /// Of which came from the hint.
    pub hint_records: u64,
    /// The hint file was used (false: missing or rejected, full scan).
    pub hint_used: bool,
    /// Why a present hint file was rejected.
    pub hint_rejected: Option<String>,
    /// Bytes of torn tail cut (and zeroed) at the end of the last segment.
    pub bytes_cut: u64,
    /// Damaged records (or resynced regions) skipped in the middle of the log.
    pub corrupt_skipped: u64,
    /// Bytes they covered.
    pub corrupt_bytes: u64,
    /// Highest seq recovered; appends continue above it.
    pub last_seq: u64,
    /// Wall time of the recovery.
    pub duration_us: u64,
}

/// Reads a segment through a sliding, block-aligned window.
pub(super) struct Window<F> {
    file: F,
    start: u32,
    buf: Vec<u8>,
    limit: u32,
    /// Bytes one read asks for, at least.
    read_size: u32,
}

impl<F: Clone> Window<F> {
    pub(super) fn new(file: F, limit: u32) -> Window<F> {
        Window::with_read_size(file, limit, SCAN_READ_SIZE)
    }

    fn with_read_size(file: F, limit: u32, read_size: u32) -> Window<F> {
        Window {
            file,
            start: 0,
            buf: Vec::new(),
            limit,
            read_size,
        }
    }

    pub(super) fn get(&self, pos: u32, len: u32) -> Option<&[u8]> {
        let from = pos.checked_sub(self.start)? as usize;
        self.buf.get(from..from + len as usize)
    }

    /// Moves the window so that it holds `[pos, pos + len)`, keeping what it holds
    /// from `pos`'s block on; bytes before that may go.
    async fn advance<D: Disk<File = F>>(
        &mut self,
        disk: &D,
        pos: u32,
        len: u32,
    ) -> Result<(), StorageError> {
        let end = pos.saturating_add(len).min(self.limit);
        let have_end = self.start + self.buf.len() as u32;
        if pos < self.start || end > have_end {
            let keep_from = align_down(pos, BLOCK_SIZE);
            if keep_from < self.start || keep_from > have_end {
                self.start = keep_from;
                self.buf.clear();
            } else {
                self.buf.drain(..(keep_from - self.start) as usize);
                self.start = keep_from;
            }
            let read_end = align_up(self.limit, BLOCK_SIZE);
            while self.start + (self.buf.len() as u32) < end {
                let at = self.start + self.buf.len() as u32;
                let want = align_up(end - at, BLOCK_SIZE)
                    .max(self.read_size)
                    .min(read_end - at);
                let bytes = disk.read_at(&self.file, u64::from(at), want).await?;
                if bytes.len() < (end - at) as usize {
                    return Err(StorageError::Corrupt {
                        segment: 0,
                        offset: at,
                        what: "segment file shorter than expected",
                    });
                }
                self.buf.extend_from_slice(&bytes);
            }
        }
        if self.get(pos, len).is_none() {
            return Err(StorageError::Corrupt {
                segment: 0,
                offset: pos,
                what: "scan made no progress",
            });
        }
        Ok(())
    }

    /// The next scan item. Record bytes stay available through `get` until the next call.
    pub(super) async fn next<D: Disk<File = F>>(
        &mut self,
        disk: &D,
        cursor: &mut ScanCursor,
    ) -> Result<ScanItem, StorageError> {
        loop {
            match cursor.step(&self.buf, self.start) {
                Step::Item(item) => return Ok(item),
                Step::NeedBytes { pos, len } => self.advance(disk, pos, len).await?,
            }
        }
    }
}

/// Writes zeros over `[from, to)` of a segment, keeping the bytes before `from` in its
/// block, then fdatasyncs. Used to make a cut durable.
pub(super) async fn zero_range<D: Disk>(
    disk: &D,
    file: &D::File,
    from: u32,
    to: u32,
) -> Result<(), StorageError> {
    if to <= from {
        return Ok(());
    }
    let start = align_down(from, BLOCK_SIZE);
    let end = align_up(to, BLOCK_SIZE);
    let mut first = disk.read_at(file, u64::from(start), BLOCK_SIZE).await?;
    first.resize(BLOCK_SIZE as usize, 0);
    first.truncate((from - start) as usize);
    let mut pos = start;
    while pos < end {
        let len = (end - pos).min(FLUSH_WRITE_SIZE_MAX);
        let mut chunk = if pos == start {
            std::mem::take(&mut first)
        } else {
            Vec::new()
        };
        chunk.resize(len as usize, 0);
        disk.write_at(file, u64::from(pos), &chunk).await?;
        pos += len;
    }
    disk.sync(file).await
}

/// Reads `[align_down(end), end)` of a segment: the head's partial tail block.
pub(super) async fn tail_pending<D: Disk>(
    disk: &D,
    file: &D::File,
    segment: u32,
    end: u32,
) -> Result<Pending, StorageError> {
    let base = align_down(end, BLOCK_SIZE);
    let mut bytes = Vec::new();
    if end > base {
        bytes = disk.read_at(file, u64::from(base), BLOCK_SIZE).await?;
        if bytes.len() < (end - base) as usize {
            return Err(StorageError::Corrupt {
                segment,
                offset: base,
                what: "tail block short",
            });
        }
        bytes.truncate((end - base) as usize);
    }
    let written = bytes.len();
    Ok(Pending {
        segment,
        base,
        bytes,
        written,
    })
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

struct Opened<F> {
    id: u32,
    file: F,
    header: SegmentHeader,
    /// Bytes of the file that can hold records (short files are cut down).
    limit: u32,
}

/// Opens every segment and sorts them into readable, unused (zero header) and unreadable.
async fn open_segments<D: Disk>(
    disk: &D,
    shard_id: u32,
    report: &mut RecoveryReport,
) -> Result<(Vec<Opened<D::File>>, u32), StorageError> {
    let mut ids: Vec<u32> = disk
        .list()
        .await?
        .iter()
        .filter_map(|n| parse_segment_file_name(n))
        .collect();
    ids.sort_unstable();
    if ids.len() > SEGMENTS_MAX as usize {
        return Err(StorageError::InvalidArgument(
            "more segment files than SEGMENTS_MAX",
        ));
    }
    let next_id = ids.last().map_or(1, |id| id + 1);
    let mut opened = Vec::new();
    let mut zero_headers = Vec::new();
    for id in ids {
        let name = segment_file_name(id);
        let file = disk.open(&name).await?;
        let file_size = disk.file_size(&file).await?;
        let block = disk.read_at(&file, 0, BLOCK_SIZE).await?;
        match SegmentHeader::decode_block(&block) {
            HeaderBlock::Valid(header)
                if header.shard_id == shard_id && header.segment_id == id =>
            {
                let whole = file_size - file_size % u64::from(BLOCK_SIZE);
                if whole < u64::from(header.segment_size) {
                    report.segments_truncated += 1;
                }
                let limit = u64::from(header.segment_size).min(whole);
                opened.push(Opened {
                    id,
                    file,
                    header,
                    limit: limit as u32,
                });
            }
            HeaderBlock::Zero => zero_headers.push((id, file)),
            _ => report.unreadable.push(id),
        }
    }
    // Both header copies zero: a preallocated spare (also one a roll overtook, with a
    // lower id than the head, whose removal a crash cut short), or a segment whose
    // first write never landed. Neither holds anything after its header, since a
    // segment's first write (header included) completes before any later one starts
    // and records follow the header without gaps. A zero header with data after it was
    // destroyed on the medium: keep the file, report it.
    let mut removed = false;
    for (id, file) in zero_headers {
        let unused = data_is_zero(disk, &file).await?;
        if unused {
            disk.remove(&segment_file_name(id)).await?;
            report.segments_removed += 1;
            removed = true;
        } else {
            report.unreadable.push(id);
        }
    }
    report.unreadable.sort_unstable();
    report.segments_unreadable = report.unreadable.len() as u32;
    if removed {
        disk.sync_dir().await?;
    }
    Ok((opened, next_id))
}

/// Whether the first `FLUSH_WRITE_SIZE_MAX` bytes after a segment's header block are
/// zero: as far as the first write of a segment reaches.
async fn data_is_zero<D: Disk>(disk: &D, file: &D::File) -> Result<bool, StorageError> {
    let bytes = disk
        .read_at(file, u64::from(SEGMENT_DATA_START), FLUSH_WRITE_SIZE_MAX)
        .await?;
    Ok(bytes.iter().all(|b| *b == 0))
}

/// Why a verified hint cannot be used with these segments: a segment it lists is now
/// shorter than the data the hint says it held (a truncated file), so entries or the
/// scan position would point past the file's end.
fn hint_mismatch<F>(hint: &Hint, opened: &[Opened<F>]) -> Option<String> {
    opened.iter().find_map(|seg| {
        let row_end = hint.segments.get(&seg.id).map_or(0, |r| r.data_end);
        let position = if seg.id == hint.segment {
            hint.offset
        } else {
            0
        };
        let needed = row_end.max(position);
        (needed > seg.limit).then(|| {
            format!(
                "segment {} holds {} bytes, the hint needs {needed}",
                seg.id, seg.limit
            )
        })
    })
}

/// Per-segment facts collected by the scan.
struct Scanned {
    data_end: u32,
    garbage: u64,
    seq_min: u64,
    seq_max: u64,
    /// End of non-zero bytes (torn tail or damage) after `data_end`.
    dirty_end: u32,
    /// Damage after the last valid record (cut if last segment, else skipped).
    trailing_damage: (u64, u64),
}

async fn scan_segment<D: Disk>(
    disk: &D,
    seg: &Opened<D::File>,
    from: u32,
    report: &mut RecoveryReport,
    max_seq: &mut u64,
    sink: &mut impl RecoverySink,
    garbage: &mut Garbage,
) -> Result<Scanned, StorageError> {
    let mut win = Window::with_read_size(seg.file.clone(), seg.limit, RECOVERY_READ_SIZE);
    let mut cursor = ScanCursor::new(from, seg.limit, seg.header.nonce);
    let mut out = Scanned {
        data_end: from,
        garbage: 0,
        seq_min: u64::MAX,
        seq_max: 0,
        dirty_end: from,
        trailing_damage: (0, 0),
    };
    let mut damage = (0u64, 0u64);
    // Records read from the window and not yet handed to the sink: they go in one batch
    // before the window moves on, which is when their bytes would go.
    let mut batch: Vec<(u32, u32)> = Vec::new();
    loop {
        let item = match cursor.step(&win.buf, win.start) {
            Step::Item(item) => item,
            Step::NeedBytes { pos, len } => {
                hand_over(&win, seg, &batch, sink, garbage);
                batch.clear();
                win.advance(disk, pos, len).await?;
                continue;
            }
        };
        match item {
            ScanItem::Record { pos, size } => {
                let bytes = win.get(pos, size).ok_or(StorageError::Corrupt {
                    segment: seg.id,
                    offset: pos,
                    what: "scanned record is not in the read window",
                })?;
                let r = scanned_record(bytes, seg.header.nonce);
                report.corrupt_skipped += damage.0;
                report.corrupt_bytes += damage.1;
                out.garbage += damage.1;
                damage = (0, 0);
                out.data_end = pos + size;
                if r.kind == RecordKind::Pad {
                    out.garbage += u64::from(size);
                    continue;
                }
                out.seq_min = out.seq_min.min(r.seq);
                out.seq_max = out.seq_max.max(r.seq);
                *max_seq = (*max_seq).max(r.seq);
                report.records += 1;
                batch.push((pos, size));
            }
            ScanItem::Damaged { pos, size } => {
                damage.0 += 1;
                damage.1 += u64::from(size);
                out.dirty_end = pos + size;
            }
            ScanItem::End { nonzero_end, .. } => {
                hand_over(&win, seg, &batch, sink, garbage);
                out.dirty_end = out.dirty_end.max(nonzero_end).max(out.data_end);
                out.trailing_damage = damage;
                return Ok(out);
            }
        }
    }
}

/// Hands the scanned records at `batch` (positions in `win`, checked by the scan) to the
/// sink in one call: the shard files a batch in table order (`RecoverySink::records`).
fn hand_over<F: Clone>(
    win: &Window<F>,
    seg: &Opened<F>,
    batch: &[(u32, u32)],
    sink: &mut impl RecoverySink,
    garbage: &mut Garbage,
) {
    let records: Vec<Recovered<'_>> = batch
        .iter()
        .map(|&(pos, size)| {
            let bytes = win
                .get(pos, size)
                .expect("a batch is handed over before the window moves");
            let r = scanned_record(bytes, seg.header.nonce);
            Recovered {
                kind: r.kind,
                seq: r.seq,
                expiry_ms: r.expiry_ms,
                key: r.key,
                value: (r.kind == RecordKind::Put).then_some(r.value),
                location: Location {
                    segment: seg.id,
                    offset: pos,
                    length: size,
                },
            }
        })
        .collect();
    sink.records(&records, garbage);
}

impl<D: Disk> Log<D> {
    /// Opens (or creates) the log of `shard_id` on `disk` and recovers it: every valid
    /// record is passed to `on_record`, in log order, so the shard rebuilds its index.
    ///
    /// The shard applies records with the rule [`KeyState::apply`] implements (the one
    /// compaction relies on): per key, the Put or Delete with the highest seq wins, and
    /// on equal seqs the one seen later (a relocated copy); the Touch with the highest
    /// seq sets the expiry if it is newer than the winning Put. Records superseded this
    /// way are reported to the `Garbage` tally passed along.
    pub async fn open(
        disk: D,
        shard_id: u32,
        options: LogOptions,
        on_record: impl FnMut(&Recovered<'_>, &mut Garbage),
    ) -> Result<(Log<D>, RecoveryReport), StorageError> {
        Self::open_into(disk, shard_id, options, EachRecord(on_record)).await
    }

    /// `open`, handing the records to a sink that is also told, before them, how many
    /// the hint lists.
    pub async fn open_into(
        disk: D,
        shard_id: u32,
        options: LogOptions,
        mut sink: impl RecoverySink,
    ) -> Result<(Log<D>, RecoveryReport), StorageError> {
        options.validate()?;
        let started = Instant::now();
        let mut report = RecoveryReport::default();
        let mut st: State<D::File> =
            State::new(shard_id, options.nonce_seed.unwrap_or_else(random_seed));
        let (opened, next_id) = open_segments(&disk, shard_id, &mut report).await?;
        st.next_segment_id = next_id;

        let hint = match read_hint(&disk, shard_id).await {
            Ok(Some(h)) => match hint_mismatch(&h, &opened) {
                Some(why) => {
                    report.hint_rejected = Some(why);
                    None
                }
                None => Some(h),
            },
            Ok(None) => None,
            Err(why) => {
                report.hint_rejected = Some(why);
                None
            }
        };
        if hint.is_none() {
            // A rejected hint stays on disk until the next one replaces it: count it.
            if let Ok(file) = disk.open(HINT_FILE_NAME).await {
                st.hint_bytes = disk.file_size(&file).await.unwrap_or(0);
            }
        }
        let mut max_seq = 0u64;
        let mut garbage = Garbage::default();
        let mut live_bytes: BTreeMap<u32, u64> = BTreeMap::new();
        if let Some(hint) = &hint {
            report.hint_used = true;
            st.hint_seq = hint.last_seq;
            st.hint_bytes = hint.file_bytes();
            max_seq = hint.last_seq;
            sink.expect(hint.entry_count());
            yield_hint(
                hint,
                &opened,
                &mut report,
                &mut live_bytes,
                &mut sink,
                &mut garbage,
            )?;
        }

        let last_index = opened.len().checked_sub(1);
        // Without a hint, the sealed segments (all but the head, so nearly full) tell the
        // shard how far the scan has come, so its table grows once or twice rather
        // than doubling its way up to millions of keys.
        let sealed = &opened[..last_index.unwrap_or(0)];
        let sealed_total: u64 = sealed
            .iter()
            .map(|o| u64::from(o.limit.saturating_sub(SEGMENT_DATA_START)))
            .sum();
        let mut sealed_done = 0u64;
        for (i, seg) in opened.iter().enumerate() {
            let from = match &hint {
                Some(h) if seg.id < h.segment => None,
                Some(h) if seg.id == h.segment => Some(h.offset.max(SEGMENT_DATA_START)),
                _ => Some(SEGMENT_DATA_START),
            };
            let mut segment = Segment::new(Some(seg.file.clone()), seg.header.nonce, seg.limit);
            segment.sealed = true;
            let prefix_end = from.unwrap_or(seg.limit);
            let row = hint.as_ref().and_then(|h| h.segments.get(&seg.id).copied());
            if let Some(from) = from {
                let scanned = scan_segment(
                    &disk,
                    seg,
                    from,
                    &mut report,
                    &mut max_seq,
                    &mut sink,
                    &mut garbage,
                )
                .await?;
                if hint.is_none() && i < sealed.len() {
                    sealed_done += u64::from(seg.limit.saturating_sub(SEGMENT_DATA_START));
                    sink.scanned(sealed_done, sealed_total);
                }
                segment.data_end = scanned.data_end;
                segment.seq_min = scanned.seq_min;
                segment.seq_max = scanned.seq_max;
                segment.garbage = scanned.garbage.min(u64::from(u32::MAX)) as u32;
                if Some(i) == last_index && scanned.dirty_end > scanned.data_end {
                    // The torn tail of the last segment: never acknowledged, cut it and
                    // zero it so later appends cannot resurrect it.
                    zero_range(&disk, &seg.file, scanned.data_end, scanned.dirty_end).await?;
                    report.bytes_cut += u64::from(scanned.dirty_end - scanned.data_end);
                } else {
                    report.corrupt_skipped += scanned.trailing_damage.0;
                    report.corrupt_bytes += scanned.trailing_damage.1;
                }
            } else {
                segment.data_end = row.map_or(seg.limit, |r| r.data_end.min(seg.limit));
            }
            if from != Some(SEGMENT_DATA_START) {
                // Part of the segment was not scanned: its seq range comes from the hint's
                // table, or is unknown (the widest range keeps every rule conservative).
                let (lo, hi) = row.map_or((0, u64::MAX), |r| (r.seq_min, r.seq_max));
                segment.seq_min = segment.seq_min.min(lo);
                segment.seq_max = segment.seq_max.max(hi);
            }
            if hint.is_some() && from != Some(SEGMENT_DATA_START) {
                let prefix = u64::from(
                    prefix_end
                        .min(segment.data_end)
                        .saturating_sub(SEGMENT_DATA_START),
                );
                let live = live_bytes.get(&seg.id).copied().unwrap_or(0);
                let garbage = u64::from(segment.garbage) + prefix.saturating_sub(live);
                segment.garbage =
                    garbage.min(u64::from(segment.data_end - SEGMENT_DATA_START)) as u32;
            }
            st.segments.insert(seg.id, segment);
        }

        for (id, bytes) in &garbage.per_segment {
            if let Some(segment) = st.segments.get_mut(id) {
                segment.add_garbage(u32::try_from(*bytes).unwrap_or(u32::MAX));
            }
        }
        // The last segment stays the head: appends go on after its last valid record
        // (within its own size, which may differ from the configured one).
        if let Some(last) = opened.last() {
            if let Some(segment) = st.segments.get_mut(&last.id) {
                segment.sealed = false;
                let pending = tail_pending(&disk, &last.file, last.id, segment.data_end).await?;
                st.pending.push(pending);
                st.head = last.id;
            }
        }
        st.next_seq = max_seq + 1;
        if report.hint_used {
            // A periodic hint may reflect expiry changes the node made after its
            // last_seq while it was being built; which ones is not recorded, so cutting
            // any record of this log must drop it.
            st.hint_reach = max_seq;
        }
        st.written_seq = max_seq;
        st.durable_seq = max_seq;
        report.last_seq = max_seq;
        report.segments = st.segments.len() as u32;
        st.stats.unreadable_segments = report.segments_unreadable;
        report.duration_us = started.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
        let inner = Inner {
            disk,
            options,
            state: std::cell::RefCell::new(st),
            hinting: Rc::default(),
        };
        Ok((
            Log {
                inner: Rc::new(inner),
            },
            report,
        ))
    }
}

/// Hint entries handed to the sink at a time. The shard places a batch's keys in the
/// order they come and files them in table order (`RecoverySink::records`): the
/// larger the batch, the closer together its keys land in the table. 10 M keys
/// restarted in about the same time with 64 Ki, 256 Ki and 1 Mi (`perf/storage.md`);
/// the smallest holds the least memory meanwhile.
const HINT_BATCH: usize = 1 << 16;

/// Hands the hint's entries to the shard, a batch at a time. Entries in segments that
/// no longer exist were superseded by records the scan will find, so they are left out,
/// but for the expiry a Put's entry holds (see below).
fn yield_hint<F>(
    hint: &Hint,
    opened: &[Opened<F>],
    report: &mut RecoveryReport,
    live_bytes: &mut BTreeMap<u32, u64>,
    sink: &mut impl RecoverySink,
    garbage: &mut Garbage,
) -> Result<(), StorageError> {
    // Live bytes per opened segment, by its place in `opened`.
    let mut live = vec![0u64; opened.len()];
    let mut batch = Vec::with_capacity(HINT_BATCH);
    for entry in hint.entries() {
        let entry = entry.map_err(|what| StorageError::Corrupt {
            segment: u32::MAX,
            offset: 0,
            what,
        })?;
        let segment = entry.location.segment;
        let mut record = Recovered {
            kind: entry.kind,
            seq: entry.seq,
            expiry_ms: entry.expiry_ms,
            key: entry.key,
            value: None,
            location: entry.location,
        };
        match opened.binary_search_by_key(&segment, |o| o.id) {
            Ok(at) => live[at] += u64::from(entry.location.length),
            Err(_) if report.unreadable.binary_search(&segment).is_ok() => {
                // The entry is lost with its segment, and counted.
                report.hint_entries_lost += 1;
                continue;
            }
            // Compaction removed the segment after the hint and copied the Put past the
            // position, where the scan finds it with the expiry it was written with. A
            // node's hint folds a later EXPIRE or PERSIST into the Put's entry, and that
            // Touch may lie before the position, unscanned. So the expiry the hint saw
            // goes on as a Touch just above the Put (no other Put or Delete of the key
            // can have a seq up to the hint's): anything written after the hint
            // overrides it, and so does a real Touch the scan finds (the same expiry,
            // or a later one). It has no bytes of its own (length 0), so it never
            // counts as garbage.
            Err(_) if entry.kind == RecordKind::Put && entry.seq < hint.last_seq => {
                record.kind = RecordKind::Touch;
                record.seq += 1;
                record.location.length = 0;
            }
            // A moved Touch, or a Put with nothing after it: the scan finds it.
            Err(_) => continue,
        }
        report.records += 1;
        report.hint_records += 1;
        batch.push(record);
        if batch.len() == HINT_BATCH {
            sink.records(&batch, garbage);
            batch.clear();
        }
    }
    sink.records(&batch, garbage);
    for (o, bytes) in opened.iter().zip(live) {
        if bytes > 0 {
            *live_bytes.entry(o.id).or_default() += bytes;
        }
    }
    Ok(())
}

/// Garbage found while the shard rebuilds its index during recovery (the log does not
/// exist yet, so `Log::mark_garbage` cannot be called): tallied per segment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Garbage {
    per_segment: BTreeMap<u32, u64>,
}

impl Garbage {
    /// Reports a superseded record.
    pub fn mark(&mut self, location: Location) {
        *self.per_segment.entry(location.segment).or_default() += u64::from(location.length);
    }
}

/// The recovery rule for one key, folded from its records in any order. A reference
/// implementation for the shard's index, and what the tests rebuild with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyState {
    /// Winning Put or Delete: kind, seq, location, expiry.
    pub base: Option<(RecordKind, u64, Location, u64)>,
    /// Newest Touch: seq, location, expiry.
    pub touch: Option<(u64, Location, u64)>,
}

impl KeyState {
    /// Folds one record in. Returns true when it became the key's winning Put (keep its
    /// value). Superseded records go to `garbage`.
    pub fn apply(&mut self, r: &Recovered<'_>, garbage: &mut Garbage) -> bool {
        match r.kind {
            RecordKind::Put | RecordKind::Delete => {
                if self.base.is_some_and(|b| b.1 > r.seq) {
                    garbage.mark(r.location);
                    return false;
                }
                // Two Puts of one seq are a record and its copy (compaction's), or a
                // hint's entry and a copy the scan found: the later's place wins. A copy
                // holds the expiry the Put was written with, while a hint's entry holds
                // the key's expiry when the hint was made (a writer may fold an EXPIRE
                // or PERSIST into it, whose Touch the scan need not reach): the earlier
                // Put's expiry stays, as the hint is always handed over first.
                let expiry = match self.base {
                    Some((RecordKind::Put, seq, _, expiry))
                        if seq == r.seq && r.kind == RecordKind::Put =>
                    {
                        expiry
                    }
                    _ => r.expiry_ms,
                };
                if let Some(old) = self.base.replace((r.kind, r.seq, r.location, expiry)) {
                    garbage.mark(old.2);
                }
                if let Some(t) = self.touch.filter(|t| t.0 < r.seq) {
                    garbage.mark(t.1);
                    self.touch = None;
                }
                r.kind == RecordKind::Put
            }
            RecordKind::Touch => {
                let stale = self.touch.is_some_and(|t| t.0 > r.seq)
                    || self.base.is_some_and(|b| b.1 > r.seq);
                if stale {
                    garbage.mark(r.location);
                    return false;
                }
                if let Some(old) = self.touch.replace((r.seq, r.location, r.expiry_ms)) {
                    garbage.mark(old.1);
                }
                false
            }
            RecordKind::Pad => false,
        }
    }

    /// The live value: the winning Put's seq (the version), location and effective
    /// expiry. `None` when the key is deleted or never had a Put.
    pub fn live(&self) -> Option<(u64, Location, u64)> {
        let (kind, seq, location, expiry) = self.base?;
        if kind != RecordKind::Put {
            return None;
        }
        let expiry = self.touch.filter(|t| t.0 > seq).map_or(expiry, |t| t.2);
        Some((seq, location, expiry))
    }
}
