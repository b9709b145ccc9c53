//! The hint file: a checkpoint of every live record's metadata (key, seq, expiry,
//! location) and the log position it covers, so a restart reads the hint and scans only
//! the log after that position. Written atomically (temp file, fdatasync, rename, sync
//! dir); a missing or corrupt hint only costs a full scan.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

use super::disk::Disk;
use super::error::StorageError;
use super::format::{Location, RecordKind, FORMAT_VERSION};
use super::limits::{
    align_up, BLOCK_SIZE, FLUSH_WRITE_SIZE_MAX, HINT_SIZE_MAX, KEY_SIZE_MAX, RECORD_ALIGN,
    RECORD_HEADER_SIZE, RECORD_SIZE_MAX, SCAN_READ_SIZE, SEGMENT_DATA_START,
};
use super::log::Log;

/// Name of the hint file in the shard directory.
pub const HINT_FILE_NAME: &str = "hint.dat";
/// Name of the hint being written, renamed over `HINT_FILE_NAME` once durable.
pub const HINT_TEMP_FILE_NAME: &str = "hint.tmp";
/// First 8 bytes of a hint file.
pub const HINT_MAGIC: [u8; 8] = *b"RINGKVHT";

const HEADER_SIZE: usize = 64;
const ROW_SIZE: usize = 24;
const ENTRY_HEADER_SIZE: usize = 40;

/// What the hint knows of a segment it does not make recovery scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SegmentRow {
    pub(super) data_end: u32,
    pub(super) seq_min: u64,
    pub(super) seq_max: u64,
}

/// One live record in a hint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct HintEntry<'a> {
    pub(super) kind: RecordKind,
    pub(super) seq: u64,
    pub(super) expiry_ms: u64,
    pub(super) location: Location,
    pub(super) key: &'a [u8],
}

/// A decoded, verified hint.
pub(super) struct Hint {
    pub(super) last_seq: u64,
    pub(super) segment: u32,
    pub(super) offset: u32,
    pub(super) segments: BTreeMap<u32, SegmentRow>,
    bytes: Vec<u8>,
    entries_at: usize,
    entry_count: u64,
}

fn rd_u32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)?.try_into().ok().map(u32::from_le_bytes)
}

fn rd_u64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)?.try_into().ok().map(u64::from_le_bytes)
}

fn parse_entry(b: &[u8], at: usize, last_seq: u64) -> Result<(HintEntry<'_>, usize), &'static str> {
    let bad = "hint entry malformed";
    let h = b.get(at..at + ENTRY_HEADER_SIZE).ok_or(bad)?;
    let kind = match h.first().copied().and_then(RecordKind::from_code) {
        Some(k @ (RecordKind::Put | RecordKind::Touch)) => k,
        _ => return Err("hint entry kind"),
    };
    let key_size = rd_u32(h, 4).ok_or(bad)?;
    let seq = rd_u64(h, 8).ok_or(bad)?;
    let location = Location {
        segment: rd_u32(h, 24).ok_or(bad)?,
        offset: rd_u32(h, 28).ok_or(bad)?,
        length: rd_u32(h, 32).ok_or(bad)?,
    };
    let zero = h.get(1..4) == Some(&[0, 0, 0][..]) && rd_u32(h, 36) == Some(0);
    let fields_ok = zero
        && (1..=KEY_SIZE_MAX).contains(&key_size)
        && (1..=last_seq).contains(&seq)
        && location.offset >= SEGMENT_DATA_START
        && location.offset % RECORD_ALIGN == 0
        && location.length % RECORD_ALIGN == 0
        && (RECORD_HEADER_SIZE..=RECORD_SIZE_MAX).contains(&location.length);
    if !fields_ok {
        return Err(bad);
    }
    let key_at = at + ENTRY_HEADER_SIZE;
    let key = b.get(key_at..key_at + key_size as usize).ok_or(bad)?;
    let next = key_at + align_up(key_size, RECORD_ALIGN) as usize;
    let entry = HintEntry {
        kind,
        seq,
        expiry_ms: rd_u64(h, 16).ok_or(bad)?,
        location,
        key,
    };
    Ok((entry, next))
}

impl Hint {
    /// Size of the hint file it was read from.
    pub(super) fn file_bytes(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Decodes and verifies a whole hint file.
    pub(super) fn decode(bytes: Vec<u8>, shard_id: u32) -> Result<Hint, &'static str> {
        let h = bytes
            .get(..HEADER_SIZE)
            .ok_or("hint shorter than its header")?;
        let bad = "hint header malformed";
        if h.get(0..8) != Some(&HINT_MAGIC[..]) {
            return Err("hint magic");
        }
        if rd_u32(h, 60) != h.get(0..60).map(crc32c::crc32c) {
            return Err("hint header checksum");
        }
        if rd_u32(h, 8) != Some(FORMAT_VERSION) || rd_u32(h, 12) != Some(shard_id) {
            return Err("hint version or shard");
        }
        let last_seq = rd_u64(h, 16).ok_or(bad)?;
        let segment = rd_u32(h, 24).ok_or(bad)?;
        let offset = rd_u32(h, 28).ok_or(bad)?;
        let segment_count = rd_u32(h, 32).ok_or(bad)? as usize;
        let entry_count = rd_u64(h, 40).ok_or(bad)?;
        let body_size = usize::try_from(rd_u64(h, 48).ok_or(bad)?).map_err(|_| bad)?;
        let body_end = HEADER_SIZE.checked_add(body_size).ok_or(bad)?;
        let body = bytes
            .get(HEADER_SIZE..body_end)
            .ok_or("hint body truncated")?;
        if rd_u32(&bytes, body_end) != Some(crc32c::crc32c(body)) {
            return Err("hint body checksum");
        }
        let mut segments = BTreeMap::new();
        for i in 0..segment_count {
            let at = HEADER_SIZE + i * ROW_SIZE;
            if at + ROW_SIZE > body_end {
                return Err("hint segment table truncated");
            }
            let row = SegmentRow {
                data_end: rd_u32(&bytes, at + 4).ok_or(bad)?,
                seq_min: rd_u64(&bytes, at + 8).ok_or(bad)?,
                seq_max: rd_u64(&bytes, at + 16).ok_or(bad)?,
            };
            segments.insert(rd_u32(&bytes, at).ok_or(bad)?, row);
        }
        let hint = Hint {
            last_seq,
            segment,
            offset,
            segments,
            entries_at: HEADER_SIZE + segment_count * ROW_SIZE,
            entry_count,
            bytes,
        };
        // Verify every entry now, so iterating later cannot fail half-way.
        let mut at = hint.entries_at;
        for _ in 0..entry_count {
            at = parse_entry(&hint.bytes, at, last_seq)?.1;
            if at > body_end {
                return Err("hint entries overrun the body");
            }
        }
        if at != body_end {
            return Err("hint body size disagrees with its entries");
        }
        Ok(hint)
    }

    /// Number of entries listed.
    pub(super) fn entry_count(&self) -> u64 {
        self.entry_count
    }

    /// The live records, in the order they were pushed.
    pub(super) fn entries(&self) -> impl Iterator<Item = Result<HintEntry<'_>, &'static str>> {
        let mut at = self.entries_at;
        (0..self.entry_count).map(move |_| {
            let (entry, next) = parse_entry(&self.bytes, at, self.last_seq)?;
            at = next;
            Ok(entry)
        })
    }
}

/// Reads the hint file: `Ok(None)` if there is none, `Err(why)` if it is unusable.
pub(super) async fn read_hint<D: Disk>(disk: &D, shard_id: u32) -> Result<Option<Hint>, String> {
    let file = match disk.open(HINT_FILE_NAME).await {
        Ok(f) => f,
        Err(StorageError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let size = disk.file_size(&file).await.map_err(|e| e.to_string())?;
    if size > HINT_SIZE_MAX || size % u64::from(BLOCK_SIZE) != 0 {
        return Err(format!("hint file size {size} invalid"));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    while (bytes.len() as u64) < size {
        let len = (size - bytes.len() as u64).min(u64::from(SCAN_READ_SIZE)) as u32;
        let chunk = disk
            .read_at(&file, bytes.len() as u64, len)
            .await
            .map_err(|e| e.to_string())?;
        if chunk.len() != len as usize {
            return Err("hint file short read".to_string());
        }
        bytes.extend_from_slice(&chunk);
    }
    Hint::decode(bytes, shard_id)
        .map(Some)
        .map_err(|why| why.to_string())
}

/// A hint being built: take it with `Log::begin_hint`, push the index's live records
/// into it (in one borrow of the shard, or in slices between awaits, skipping records
/// newer than `last_seq`), then `Log::commit_hint`. One hint is built at a time per log;
/// dropping the builder abandons it.
///
/// The file is assembled in one buffer, in place: header (filled in at commit), segment
/// table, entries. A hint of N keys holds about N x (40 + key) bytes of memory while it
/// is built and written.
pub struct HintBuilder {
    last_seq: u64,
    bytes: Vec<u8>,
    /// crc32c of the body so far, kept up as entries are pushed: a checksum of the whole
    /// body at commit would hold the executor for tens of milliseconds on a large hint.
    body_crc: u32,
    count: u64,
    busy: Rc<Cell<bool>>,
}

impl Drop for HintBuilder {
    fn drop(&mut self) {
        self.busy.set(false);
    }
}

impl HintBuilder {
    fn new(
        shard_id: u32,
        last_seq: u64,
        (segment, offset): (u32, u32),
        rows: &[(u32, SegmentRow)],
        busy: Rc<Cell<bool>>,
    ) -> HintBuilder {
        // The header's counts, sizes and checksum are filled in by `encode`.
        let mut bytes = Vec::with_capacity(HEADER_SIZE + rows.len() * ROW_SIZE);
        bytes.extend_from_slice(&HINT_MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&shard_id.to_le_bytes());
        bytes.extend_from_slice(&last_seq.to_le_bytes());
        bytes.extend_from_slice(&segment.to_le_bytes());
        bytes.extend_from_slice(&offset.to_le_bytes());
        bytes.extend_from_slice(&(rows.len() as u32).to_le_bytes());
        bytes.resize(HEADER_SIZE, 0);
        for (id, row) in rows {
            bytes.extend_from_slice(&id.to_le_bytes());
            bytes.extend_from_slice(&row.data_end.to_le_bytes());
            bytes.extend_from_slice(&row.seq_min.to_le_bytes());
            bytes.extend_from_slice(&row.seq_max.to_le_bytes());
        }
        HintBuilder {
            last_seq,
            body_crc: crc32c::crc32c(&bytes[HEADER_SIZE..]),
            bytes,
            count: 0,
            busy,
        }
    }

    /// The highest seq the hint covers: every record above it is in the log after the
    /// hint's position, so entries newer than this must not be pushed (the scan finds
    /// them).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Adds a live record: a Put holding a key's value, or the Touch that last changed
    /// its expiry (both must survive compaction, so both are listed).
    pub fn push(
        &mut self,
        kind: RecordKind,
        seq: u64,
        expiry_ms: u64,
        location: Location,
        key: &[u8],
    ) {
        assert!(
            matches!(kind, RecordKind::Put | RecordKind::Touch),
            "hints list live puts and touches"
        );
        assert!(!key.is_empty() && key.len() <= KEY_SIZE_MAX as usize);
        assert!(
            seq >= 1 && seq <= self.last_seq,
            "hint entry newer than the hint"
        );
        let e = &mut self.bytes;
        let start = e.len();
        e.push(kind.code());
        e.extend_from_slice(&[0, 0, 0]);
        e.extend_from_slice(&(key.len() as u32).to_le_bytes());
        e.extend_from_slice(&seq.to_le_bytes());
        e.extend_from_slice(&expiry_ms.to_le_bytes());
        e.extend_from_slice(&location.segment.to_le_bytes());
        e.extend_from_slice(&location.offset.to_le_bytes());
        e.extend_from_slice(&location.length.to_le_bytes());
        e.extend_from_slice(&0u32.to_le_bytes());
        e.extend_from_slice(key);
        e.resize(
            e.len() + (align_up(key.len() as u32, RECORD_ALIGN) as usize - key.len()),
            0,
        );
        self.body_crc = crc32c::crc32c_append(self.body_crc, &e[start..]);
        self.count += 1;
    }

    /// Entries pushed so far.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// No entries pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Completes the file in place: header, body checksum, padding to a whole block.
    fn encode(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.bytes);
        let body_size = (out.len() - HEADER_SIZE) as u64;
        out[40..48].copy_from_slice(&self.count.to_le_bytes());
        out[48..56].copy_from_slice(&body_size.to_le_bytes());
        let crc = crc32c::crc32c(&out[..60]);
        out[60..64].copy_from_slice(&crc.to_le_bytes());
        debug_assert_eq!(self.body_crc, crc32c::crc32c(&out[HEADER_SIZE..]));
        out.extend_from_slice(&self.body_crc.to_le_bytes());
        let padded = out.len().div_ceil(BLOCK_SIZE as usize) * BLOCK_SIZE as usize;
        out.resize(padded, 0);
        out
    }
}

impl<D: Disk> Log<D> {
    /// Starts a hint: captures the log position, the last seq and the segment table now.
    /// Fails with `Busy` while another hint is being built or the tail is being cut.
    pub fn begin_hint(&self) -> Result<HintBuilder, StorageError> {
        let st = self.inner.state.borrow();
        if st.closed {
            return Err(StorageError::Closed);
        }
        if self.inner.hinting.get() || st.exclusive {
            return Err(StorageError::Busy);
        }
        let position = match st.segments.get(&st.head) {
            Some(h) if !h.sealed => (st.head, h.data_end),
            // No open head: the next record goes to a segment above every current one.
            _ => (
                st.segments.keys().next_back().map_or(1, |id| id + 1),
                SEGMENT_DATA_START,
            ),
        };
        let rows: Vec<_> = st
            .segments
            .iter()
            .map(|(id, s)| {
                (
                    *id,
                    SegmentRow {
                        data_end: s.data_end,
                        seq_min: s.seq_min,
                        seq_max: s.seq_max,
                    },
                )
            })
            .collect();
        self.inner.hinting.set(true);
        Ok(HintBuilder::new(
            st.shard_id,
            st.last_seq(),
            position,
            &rows,
            self.inner.hinting.clone(),
        ))
    }

    /// A hint is being built or written.
    pub fn hinting(&self) -> bool {
        self.inner.hinting.get()
    }

    /// Highest seq covered by the hint on disk (0: none written or found).
    pub fn hint_seq(&self) -> u64 {
        self.inner.state.borrow().hint_seq
    }

    /// Makes the log durable up to the hint, then writes the hint atomically. Run it on
    /// a low-priority task queue; appends continue meanwhile.
    pub async fn commit_hint(&self, mut hint: HintBuilder) -> Result<(), StorageError> {
        // Every record the builder's walk could have seen is at or below this seq.
        let reach = self.inner.state.borrow().last_seq();
        self.sync().await?;
        let disk = &self.inner.disk;
        match disk.remove(HINT_TEMP_FILE_NAME).await {
            Ok(()) | Err(StorageError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let bytes = hint.encode();
        if bytes.len() as u64 > HINT_SIZE_MAX {
            return Err(StorageError::TooLarge {
                size: bytes.len() as u64,
                max: HINT_SIZE_MAX,
            });
        }
        let written = async {
            let file = disk
                .create_unfilled(HINT_TEMP_FILE_NAME, bytes.len() as u64)
                .await?;
            for (i, chunk) in bytes.chunks(FLUSH_WRITE_SIZE_MAX as usize).enumerate() {
                disk.write_at(&file, (i * FLUSH_WRITE_SIZE_MAX as usize) as u64, chunk)
                    .await?;
            }
            disk.sync(&file).await?;
            disk.rename(HINT_TEMP_FILE_NAME, HINT_FILE_NAME).await
        }
        .await;
        if let Err(e) = written {
            // Give the space back now (a full disk needs it for the log), not at the
            // next hint; the old hint, if any, is still in place.
            let _ = disk.remove(HINT_TEMP_FILE_NAME).await;
            return Err(e);
        }
        disk.sync_dir().await?;
        let mut st = self.inner.state.borrow_mut();
        st.hint_seq = st.hint_seq.max(hint.last_seq);
        st.hint_reach = st.hint_reach.max(reach);
        st.hint_bytes = bytes.len() as u64;
        Ok(())
    }
}

/// Feeds arbitrary bytes to the hint decoder: once as they are, once with the magic,
/// version, shard, body size and both checksums made right (random bytes would never
/// pass the checksums, and the structure behind them must hold too). It never panics,
/// and a hint it accepts yields every entry it counted. For a cargo-fuzz target.
pub fn fuzz_hint(data: &[u8]) {
    let _ = Hint::decode(data.to_vec(), 0);
    let Some(body_size) = data.len().checked_sub(HEADER_SIZE + 4) else {
        return;
    };
    let mut b = data.to_vec();
    b[0..8].copy_from_slice(&HINT_MAGIC);
    b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    b[12..16].copy_from_slice(&0u32.to_le_bytes());
    b[48..56].copy_from_slice(&(body_size as u64).to_le_bytes());
    let crc = crc32c::crc32c(&b[0..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    let body_end = HEADER_SIZE + body_size;
    let crc = crc32c::crc32c(&b[HEADER_SIZE..body_end]);
    b[body_end..body_end + 4].copy_from_slice(&crc.to_le_bytes());
    if let Ok(hint) = Hint::decode(b, 0) {
        let mut n = 0u64;
        for entry in hint.entries() {
            let entry = entry.expect("a verified hint's entries parse");
            assert!(entry.seq <= hint.last_seq && !entry.key.is_empty());
            n += 1;
        }
        assert_eq!(n, hint.entry_count());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder() -> HintBuilder {
        let row = SegmentRow {
            data_end: 8192,
            seq_min: 1,
            seq_max: 10,
        };
        HintBuilder::new(2, 10, (3, 8192), &[(3, row)], Rc::default())
    }

    #[test]
    fn hint_round_trips_and_rejects_damage() {
        let mut b = builder();
        let loc = Location {
            segment: 3,
            offset: 4096,
            length: 56,
        };
        b.push(RecordKind::Put, 4, 0, loc, b"alpha");
        b.push(
            RecordKind::Touch,
            9,
            77,
            Location {
                offset: 4152,
                ..loc
            },
            b"alpha",
        );
        let bytes = b.encode();
        assert_eq!(bytes.len() % BLOCK_SIZE as usize, 0);
        let hint = Hint::decode(bytes.clone(), 2).expect("decodes");
        assert_eq!((hint.last_seq, hint.segment, hint.offset), (10, 3, 8192));
        let entries: Vec<_> = hint.entries().map(|e| e.expect("entry")).collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            (
                entries[0].kind,
                entries[0].seq,
                entries[0].key,
                entries[0].location
            ),
            (RecordKind::Put, 4, &b"alpha"[..], loc)
        );
        assert_eq!(
            (entries[1].kind, entries[1].expiry_ms),
            (RecordKind::Touch, 77)
        );
        assert!(Hint::decode(bytes.clone(), 1).is_err(), "other shard");
        for at in [0, 20, 70, 120, 150] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            assert!(Hint::decode(bad, 2).is_err(), "flip at {at}");
        }
    }

    #[test]
    fn the_hint_fuzz_entry_survives_damaged_and_random_hints() {
        let mut b = builder();
        let loc = Location {
            segment: 3,
            offset: 4096,
            length: 56,
        };
        b.push(RecordKind::Put, 4, 0, loc, b"alpha");
        let bytes = b.encode();
        fuzz_hint(&bytes);
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        for len in [0, 10, 63, 64, 67, 68, 100, 200, 1000] {
            for _ in 0..50 {
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                fuzz_hint(&data);
            }
        }
        for at in 0..bytes.len().min(300) {
            let mut bad = bytes.clone();
            bad[at] ^= 0x81;
            fuzz_hint(&bad);
        }
    }
}
