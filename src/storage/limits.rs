//! Every limit of the shard log, in one place, with their relations checked at compile
//! time. Sizes that reach the disk are `u32`/`u64`, never `usize`.

/// Alignment and size unit of every write and read the log issues. The device here has
/// 512-byte logical blocks; the format assumes 4096 so files move between machines.
pub const BLOCK_SIZE: u32 = 4096;

/// Smallest unit a device writes atomically. Torn writes land whole sectors.
pub const SECTOR_SIZE: u32 = 512;

/// Every record starts at a multiple of this, so a scan can resync on a damaged header by
/// probing each aligned position.
pub const RECORD_ALIGN: u32 = 8;

/// Size of one copy of the segment header. Block 0 of a segment holds two copies, in
/// different sectors, and nothing else.
pub const SEGMENT_HEADER_SIZE: u32 = 64;

/// Offset of the second header copy in block 0.
pub const SEGMENT_HEADER_COPY_OFFSET: u32 = 2048;

/// Offset of the first record in a segment: records never share a block with the header,
/// so the header is written once and never rewritten.
pub const SEGMENT_DATA_START: u32 = BLOCK_SIZE;

/// Size of the fixed record header.
pub const RECORD_HEADER_SIZE: u32 = 40;

/// Largest key the log stores (matches `crate::constants::KEY_SIZE_MAX`).
pub const KEY_SIZE_MAX: u32 = 4 * 1024;

/// Largest value the log stores (matches `crate::constants::VALUE_SIZE_MAX`).
pub const VALUE_SIZE_MAX: u32 = 4 * 1024 * 1024;

/// Largest encoded record: header, largest key and value, padding.
pub const RECORD_SIZE_MAX: u32 = align_up(
    RECORD_HEADER_SIZE + KEY_SIZE_MAX + VALUE_SIZE_MAX,
    RECORD_ALIGN,
);

/// Default segment size.
pub const SEGMENT_SIZE_DEFAULT: u32 = 64 * 1024 * 1024;

/// Smallest segment size accepted (tests use small segments to exercise rolls). A record
/// that does not fit a segment of the configured size is refused with `TooLarge`.
pub const SEGMENT_SIZE_MIN: u32 = 64 * 1024;

/// Largest segment size: offsets inside a segment are `u32`.
pub const SEGMENT_SIZE_MAX: u32 = 1024 * 1024 * 1024;

/// Largest number of bytes appended but not yet written. An append beyond it fails with
/// `Busy` (backpressure) instead of growing memory.
pub const WRITE_BUFFER_SIZE_MAX: u32 = 16 * 1024 * 1024;

/// Largest single DMA write the flusher issues.
pub const FLUSH_WRITE_SIZE_MAX: u32 = 1024 * 1024;

/// Size of one read while scanning a segment (compaction, truncation).
pub const SCAN_READ_SIZE: u32 = 1024 * 1024;

/// Size of one read while recovery scans a segment. The records of one read go to the
/// shard as a batch that it files in table order: a 10 M-key full scan took 5.3-6.7 s
/// with 1 MiB reads, 4.7-5.7 s with 4 MiB and 5.2 s with 16 MiB (`perf/storage.md`).
pub const RECOVERY_READ_SIZE: u32 = 4 * 1024 * 1024;

/// Compaction appends relocated records only while the write buffer holds less than
/// this, so client writes always find room (`WRITE_BUFFER_SIZE_MAX` refuses them with
/// `Busy`); a step that meets it stops early and the next round resumes there.
pub const COMPACT_UNWRITTEN_MAX: u32 = WRITE_BUFFER_SIZE_MAX / 4;

/// Bytes of a victim segment one compaction step reads at most.
pub const COMPACT_STEP_BYTES: u32 = 1024 * 1024;

/// Milliseconds between retries of a failed flush (disk full, I/O error).
pub const FLUSH_RETRY_INTERVAL_MS: u64 = 1000;

/// In mode `None`, milliseconds between two lazy writes of the buffer.
pub const LAZY_FLUSH_INTERVAL_MS: u64 = 1000;

/// In mode `None`, buffered bytes that trigger a write before the interval.
pub const LAZY_FLUSH_BYTES: u32 = 1024 * 1024;

/// Largest number of segments a shard directory may hold (bounds the segment table).
pub const SEGMENTS_MAX: u32 = 1 << 20;

/// Largest hint file accepted on recovery.
pub const HINT_SIZE_MAX: u64 = 1 << 34;

/// Rounds `v` up to a multiple of `to` (a power of two).
pub const fn align_up(v: u32, to: u32) -> u32 {
    (v + (to - 1)) & !(to - 1)
}

/// Rounds `v` down to a multiple of `to` (a power of two).
pub const fn align_down(v: u32, to: u32) -> u32 {
    v & !(to - 1)
}

const _: () = assert!(BLOCK_SIZE.is_power_of_two() && SECTOR_SIZE.is_power_of_two());
const _: () = assert!(COMPACT_UNWRITTEN_MAX + RECORD_SIZE_MAX < WRITE_BUFFER_SIZE_MAX);
const _: () = assert!(BLOCK_SIZE % SECTOR_SIZE == 0);
const _: () = assert!(RECORD_ALIGN.is_power_of_two() && BLOCK_SIZE % RECORD_ALIGN == 0);
const _: () = assert!(RECORD_HEADER_SIZE % RECORD_ALIGN == 0);
// The two header copies sit in different sectors of block 0.
const _: () = assert!(SEGMENT_HEADER_SIZE <= SECTOR_SIZE);
const _: () = assert!(SEGMENT_HEADER_COPY_OFFSET % SECTOR_SIZE == 0);
const _: () = assert!(SEGMENT_HEADER_COPY_OFFSET + SEGMENT_HEADER_SIZE <= SEGMENT_DATA_START);
const _: () = assert!(SEGMENT_DATA_START % BLOCK_SIZE == 0);
// The largest record fits a default segment, and twice into the write buffer (one being
// written, one being appended).
const _: () = assert!(SEGMENT_DATA_START + RECORD_SIZE_MAX <= SEGMENT_SIZE_DEFAULT);
const _: () = assert!(2 * RECORD_SIZE_MAX <= WRITE_BUFFER_SIZE_MAX);
const _: () =
    assert!(SEGMENT_SIZE_MIN <= SEGMENT_SIZE_DEFAULT && SEGMENT_SIZE_DEFAULT <= SEGMENT_SIZE_MAX);
const _: () = assert!(SEGMENT_SIZE_MIN % BLOCK_SIZE == 0 && SEGMENT_SIZE_MAX % BLOCK_SIZE == 0);
const _: () = assert!(SEGMENT_SIZE_MIN > SEGMENT_DATA_START + RECORD_HEADER_SIZE);
// Offsets and lengths are u32 and sums of two of them must not overflow.
const _: () = assert!(SEGMENT_SIZE_MAX as u64 + RECORD_SIZE_MAX as u64 <= u32::MAX as u64);
const _: () = assert!(
    FLUSH_WRITE_SIZE_MAX % BLOCK_SIZE == 0
        && SCAN_READ_SIZE % BLOCK_SIZE == 0
        && RECOVERY_READ_SIZE % BLOCK_SIZE == 0
);
const _: () = assert!(LAZY_FLUSH_BYTES <= WRITE_BUFFER_SIZE_MAX);
