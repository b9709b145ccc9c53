//! The on-disk format: segment header, record encoding, and the scan that walks a
//! segment's records and resyncs after damage. Pure code, no I/O; specified in
//! `proto-spec/log-format.md`, every integer little-endian.

use bytes::Bytes;

use super::limits::{
    BLOCK_SIZE, KEY_SIZE_MAX, RECORD_ALIGN, RECORD_HEADER_SIZE, RECORD_SIZE_MAX,
    SEGMENT_DATA_START, SEGMENT_HEADER_COPY_OFFSET, SEGMENT_HEADER_SIZE, SEGMENT_SIZE_MAX,
    SEGMENT_SIZE_MIN, VALUE_SIZE_MAX,
};

/// Version of the format described in `proto-spec/log-format.md`. Bumped by any change
/// to a layout, a checksum's coverage or seed, an alignment rule, or the meaning of a
/// field; a reader refuses segments and hints of a version it does not know.
pub const FORMAT_VERSION: u32 = 1;

/// First 8 bytes of every segment header.
pub const SEGMENT_MAGIC: [u8; 8] = *b"RINGKVSG";

/// Byte 8 of every record header.
pub const RECORD_MAGIC: u8 = 0xB7;

/// Where a record lives: what the index keeps to read a value back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    /// Segment id.
    pub segment: u32,
    /// Offset of the record's first byte in the segment (a multiple of 8).
    pub offset: u32,
    /// Encoded size of the record, padding included (a multiple of 8).
    pub length: u32,
}

/// What a record does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// Sets a key's value and expiry.
    Put,
    /// Removes a key (a tombstone).
    Delete,
    /// Changes the expiry of the key's current value, keeps the value.
    Touch,
    /// Fills space a truncation cut in the middle of live data; never yielded.
    Pad,
}

impl RecordKind {
    /// The byte stored on disk.
    pub fn code(self) -> u8 {
        match self {
            RecordKind::Put => 1,
            RecordKind::Delete => 2,
            RecordKind::Touch => 3,
            RecordKind::Pad => 4,
        }
    }

    /// The kind of an on-disk byte.
    pub fn from_code(code: u8) -> Option<RecordKind> {
        match code {
            1 => Some(RecordKind::Put),
            2 => Some(RecordKind::Delete),
            3 => Some(RecordKind::Touch),
            4 => Some(RecordKind::Pad),
            _ => None,
        }
    }
}

/// A decoded record header, already validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// Kind.
    pub kind: RecordKind,
    /// Sequence number (0 only for `Pad`).
    pub seq: u64,
    /// Expiry in Unix milliseconds, 0 = never.
    pub expiry_ms: u64,
    /// Key length.
    pub key_size: u32,
    /// Value length.
    pub value_size: u32,
    /// Whole record length, padding included.
    pub size: u32,
    /// crc32c of key then value.
    pub payload_crc: u32,
}

/// A record borrowed from a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Kind.
    pub kind: RecordKind,
    /// Sequence number.
    pub seq: u64,
    /// Expiry in Unix milliseconds, 0 = never.
    pub expiry_ms: u64,
    /// Key.
    pub key: &'a [u8],
    /// Value (empty unless `Put`).
    pub value: &'a [u8],
    /// Encoded size, padding included.
    pub size: u32,
}

/// A record read back from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Kind.
    pub kind: RecordKind,
    /// Sequence number.
    pub seq: u64,
    /// Expiry in Unix milliseconds, 0 = never.
    pub expiry_ms: u64,
    /// Key.
    pub key: Bytes,
    /// Value (empty unless `Put`).
    pub value: Bytes,
}

/// Why bytes do not decode as a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the header or the record needs.
    Short,
    /// The header fails its checksum or a field check: its length cannot be trusted.
    BadHeader,
    /// The header is good but the key/value fail their checksum: skip `size` bytes.
    BadPayload {
        /// Record size from the (trusted) header.
        size: u32,
    },
}

/// Encoded size of a record with this key and value.
pub fn record_size(key_size: u32, value_size: u32) -> u64 {
    let raw = u64::from(RECORD_HEADER_SIZE) + u64::from(key_size) + u64::from(value_size);
    let align = u64::from(RECORD_ALIGN);
    raw.div_ceil(align) * align
}

fn header_crc(nonce: u64, header_tail: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&nonce.to_le_bytes()), header_tail)
}

fn payload_crc(key: &[u8], value: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(key), value)
}

fn put_header(out: &mut [u8], nonce: u64, h: &RecordHeader) {
    assert_eq!(out.len(), RECORD_HEADER_SIZE as usize);
    out[4..8].copy_from_slice(&h.payload_crc.to_le_bytes());
    out[8] = RECORD_MAGIC;
    out[9] = h.kind.code();
    out[10..12].copy_from_slice(&[0, 0]);
    out[12..16].copy_from_slice(&h.size.to_le_bytes());
    out[16..24].copy_from_slice(&h.seq.to_le_bytes());
    out[24..32].copy_from_slice(&h.expiry_ms.to_le_bytes());
    out[32..36].copy_from_slice(&h.key_size.to_le_bytes());
    out[36..40].copy_from_slice(&h.value_size.to_le_bytes());
    let crc = header_crc(nonce, &out[4..40]);
    out[0..4].copy_from_slice(&crc.to_le_bytes());
}

/// Appends one encoded record to `out` and returns its size. The caller has checked the
/// limits; breaking them is a programming error.
pub fn encode_record(
    out: &mut Vec<u8>,
    nonce: u64,
    kind: RecordKind,
    seq: u64,
    expiry_ms: u64,
    key: &[u8],
    value: &[u8],
) -> u32 {
    assert!(kind != RecordKind::Pad, "pads are written by encode_pad");
    assert!(seq > 0);
    assert!(!key.is_empty() && key.len() <= KEY_SIZE_MAX as usize);
    assert!(value.len() <= VALUE_SIZE_MAX as usize);
    assert!(kind == RecordKind::Put || value.is_empty());
    assert!(kind != RecordKind::Delete || expiry_ms == 0);
    let size = record_size(key.len() as u32, value.len() as u32) as u32;
    let start = out.len();
    out.resize(start + RECORD_HEADER_SIZE as usize, 0);
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    out.resize(start + size as usize, 0);
    let header = RecordHeader {
        kind,
        seq,
        expiry_ms,
        key_size: key.len() as u32,
        value_size: value.len() as u32,
        size,
        payload_crc: payload_crc(key, value),
    };
    put_header(
        &mut out[start..start + RECORD_HEADER_SIZE as usize],
        nonce,
        &header,
    );
    size
}

/// The header of a pad record covering `size` bytes (the body keeps whatever it held).
pub fn encode_pad(nonce: u64, size: u32) -> [u8; RECORD_HEADER_SIZE as usize] {
    assert!(size >= RECORD_HEADER_SIZE && size % RECORD_ALIGN == 0 && size <= RECORD_SIZE_MAX);
    let mut out = [0u8; RECORD_HEADER_SIZE as usize];
    let header = RecordHeader {
        kind: RecordKind::Pad,
        seq: 0,
        expiry_ms: 0,
        key_size: 0,
        value_size: 0,
        size,
        payload_crc: 0,
    };
    put_header(&mut out, nonce, &header);
    out
}

fn rd_u32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)?.try_into().ok().map(u32::from_le_bytes)
}

fn rd_u64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)?.try_into().ok().map(u64::from_le_bytes)
}

/// Decodes and validates a record header at the start of `bytes`.
pub fn decode_header(bytes: &[u8], nonce: u64) -> Result<RecordHeader, DecodeError> {
    let h = bytes
        .get(..RECORD_HEADER_SIZE as usize)
        .ok_or(DecodeError::Short)?;
    let bad = DecodeError::BadHeader;
    if h.get(8) != Some(&RECORD_MAGIC) {
        return Err(bad);
    }
    let tail = h.get(4..).ok_or(bad)?;
    if rd_u32(h, 0) != Some(header_crc(nonce, tail)) {
        return Err(bad);
    }
    let kind = RecordKind::from_code(*h.get(9).ok_or(bad)?).ok_or(bad)?;
    let header = RecordHeader {
        kind,
        payload_crc: rd_u32(h, 4).ok_or(bad)?,
        size: rd_u32(h, 12).ok_or(bad)?,
        seq: rd_u64(h, 16).ok_or(bad)?,
        expiry_ms: rd_u64(h, 24).ok_or(bad)?,
        key_size: rd_u32(h, 32).ok_or(bad)?,
        value_size: rd_u32(h, 36).ok_or(bad)?,
    };
    let reserved_zero = rd_u32(h, 8).map(|w| w >> 16) == Some(0);
    if reserved_zero && header_is_consistent(&header) {
        Ok(header)
    } else {
        Err(bad)
    }
}

fn header_is_consistent(h: &RecordHeader) -> bool {
    let aligned = h.size % RECORD_ALIGN == 0 && h.size >= RECORD_HEADER_SIZE;
    if !aligned || h.size > RECORD_SIZE_MAX {
        return false;
    }
    if h.kind == RecordKind::Pad {
        return h.seq == 0
            && h.expiry_ms == 0
            && h.key_size == 0
            && h.value_size == 0
            && h.payload_crc == 0;
    }
    let sizes_ok = h.key_size >= 1 && h.key_size <= KEY_SIZE_MAX && h.value_size <= VALUE_SIZE_MAX;
    let kind_ok = match h.kind {
        RecordKind::Put => true,
        RecordKind::Delete => h.value_size == 0 && h.expiry_ms == 0,
        RecordKind::Touch => h.value_size == 0,
        RecordKind::Pad => false,
    };
    sizes_ok && kind_ok && h.seq > 0 && u64::from(h.size) == record_size(h.key_size, h.value_size)
}

/// Decodes a whole record at the start of `bytes`, checking both checksums and that the
/// padding is zero. Pads decode with an empty key and value (their body is not checked).
pub fn decode_record(bytes: &[u8], nonce: u64) -> Result<RecordRef<'_>, DecodeError> {
    let h = decode_header(bytes, nonce)?;
    let body = bytes.get(..h.size as usize).ok_or(DecodeError::Short)?;
    let bad = DecodeError::BadPayload { size: h.size };
    let key_start = RECORD_HEADER_SIZE as usize;
    let key_end = key_start + h.key_size as usize;
    let value_end = key_end + h.value_size as usize;
    let (key, value, padding) = if h.kind == RecordKind::Pad {
        (&[][..], &[][..], &[][..])
    } else {
        (
            body.get(key_start..key_end).ok_or(bad)?,
            body.get(key_end..value_end).ok_or(bad)?,
            body.get(value_end..).ok_or(bad)?,
        )
    };
    if payload_crc(key, value) != h.payload_crc || padding.iter().any(|b| *b != 0) {
        return Err(bad);
    }
    Ok(RecordRef {
        kind: h.kind,
        seq: h.seq,
        expiry_ms: h.expiry_ms,
        key,
        value,
        size: h.size,
    })
}

/// The record at the start of `bytes`, which a [`ScanCursor`] has just returned as
/// [`ScanItem::Record`]: the cursor decoded it with [`decode_record`], checksums and
/// all, so this only reads the fields back (a start from a full scan checksummed every
/// record twice before). Any other bytes go through `decode_record`.
pub(crate) fn scanned_record(bytes: &[u8], nonce: u64) -> RecordRef<'_> {
    debug_assert!(decode_record(bytes, nonce).is_ok());
    let _ = nonce;
    const CHECKED: &str = "the scan decoded this record";
    let u32_at = |at| rd_u32(bytes, at).expect(CHECKED);
    let u64_at = |at| rd_u64(bytes, at).expect(CHECKED);
    let kind = bytes
        .get(9)
        .and_then(|&c| RecordKind::from_code(c))
        .expect(CHECKED);
    let (key, value) = if kind == RecordKind::Pad {
        (&[][..], &[][..])
    } else {
        let key_start = RECORD_HEADER_SIZE as usize;
        let value_start = key_start + u32_at(32) as usize;
        let value_end = value_start + u32_at(36) as usize;
        (
            bytes.get(key_start..value_start).expect(CHECKED),
            bytes.get(value_start..value_end).expect(CHECKED),
        )
    };
    RecordRef {
        kind,
        seq: u64_at(16),
        expiry_ms: u64_at(24),
        key,
        value,
        size: u32_at(12),
    }
}

/// The fixed header of a segment, stored twice in block 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Shard owning the segment.
    pub shard_id: u32,
    /// Segment id (also in the file name).
    pub segment_id: u32,
    /// Size of the segment file.
    pub segment_size: u32,
    /// Next seq of the log when the segment was started: every record appended fresh
    /// into it has a seq at least this (relocated records keep older seqs).
    pub first_seq: u64,
    /// Random per-segment value seeding every record header checksum, so record images
    /// stored inside values or left by other segments never verify here.
    pub nonce: u64,
}

/// What block 0 of a segment holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderBlock {
    /// A valid header (from either copy).
    Valid(SegmentHeader),
    /// Both copies are all zero: the segment was created but never started.
    Zero,
    /// Neither copy verifies.
    Corrupt,
}

impl SegmentHeader {
    fn encode_copy(&self, out: &mut [u8]) {
        assert_eq!(out.len(), SEGMENT_HEADER_SIZE as usize);
        out.fill(0);
        out[0..8].copy_from_slice(&SEGMENT_MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&self.shard_id.to_le_bytes());
        out[16..20].copy_from_slice(&self.segment_id.to_le_bytes());
        out[20..24].copy_from_slice(&self.segment_size.to_le_bytes());
        out[24..32].copy_from_slice(&self.first_seq.to_le_bytes());
        out[32..40].copy_from_slice(&self.nonce.to_le_bytes());
        out[40..44].copy_from_slice(&BLOCK_SIZE.to_le_bytes());
        let crc = crc32c::crc32c(&out[0..60]);
        out[60..64].copy_from_slice(&crc.to_le_bytes());
    }

    /// Block 0 of the segment: the header at offset 0 and again at 2048, zeros elsewhere.
    pub fn encode_block(&self) -> Vec<u8> {
        assert!(self.segment_size >= SEGMENT_SIZE_MIN && self.segment_size <= SEGMENT_SIZE_MAX);
        let mut block = vec![0u8; SEGMENT_DATA_START as usize];
        let size = SEGMENT_HEADER_SIZE as usize;
        self.encode_copy(&mut block[0..size]);
        let copy = SEGMENT_HEADER_COPY_OFFSET as usize;
        self.encode_copy(&mut block[copy..copy + size]);
        block
    }

    fn decode_copy(b: &[u8]) -> Option<SegmentHeader> {
        let b = b.get(..SEGMENT_HEADER_SIZE as usize)?;
        if b.get(0..8)? != SEGMENT_MAGIC || rd_u32(b, 60)? != crc32c::crc32c(b.get(0..60)?) {
            return None;
        }
        let header = SegmentHeader {
            shard_id: rd_u32(b, 12)?,
            segment_id: rd_u32(b, 16)?,
            segment_size: rd_u32(b, 20)?,
            first_seq: rd_u64(b, 24)?,
            nonce: rd_u64(b, 32)?,
        };
        let size_ok = header.segment_size >= SEGMENT_SIZE_MIN
            && header.segment_size <= SEGMENT_SIZE_MAX
            && header.segment_size % BLOCK_SIZE == 0;
        let fixed_ok = rd_u32(b, 8)? == FORMAT_VERSION && rd_u32(b, 40)? == BLOCK_SIZE;
        (size_ok && fixed_ok).then_some(header)
    }

    /// Decodes block 0 (at least the bytes holding both copies).
    pub fn decode_block(block: &[u8]) -> HeaderBlock {
        let copy = SEGMENT_HEADER_COPY_OFFSET as usize;
        let size = SEGMENT_HEADER_SIZE as usize;
        let first = block.get(..size);
        let second = block.get(copy..copy + size);
        for b in [first, second].into_iter().flatten() {
            if let Some(h) = SegmentHeader::decode_copy(b) {
                return HeaderBlock::Valid(h);
            }
        }
        let zero = |b: Option<&[u8]>| b.is_some_and(|b| b.iter().all(|x| *x == 0));
        if zero(first) && zero(second) {
            HeaderBlock::Zero
        } else {
            HeaderBlock::Corrupt
        }
    }
}

/// File name of a segment.
pub fn segment_file_name(id: u32) -> String {
    format!("segment-{id:010}.log")
}

/// Segment id of a file name, if it names a segment.
pub fn parse_segment_file_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("segment-")?.strip_suffix(".log")?;
    if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// One thing a scan finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScanItem {
    /// A record whose header and payload verify.
    Record { pos: u32, size: u32 },
    /// Bytes that hold no verifiable record, followed by a valid header (a bad payload
    /// skipped by its trusted length, or a region skipped by resync).
    Damaged { pos: u32, size: u32 },
    /// No valid header follows `pos`. Bytes up to `nonzero_end` are not all zero
    /// (`nonzero_end == pos`: a clean zero tail).
    End { pos: u32, nonzero_end: u32 },
}

/// What a scan step needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// The next item.
    Item(ScanItem),
    /// Make `[pos, pos + len)` of the segment available, then step again.
    NeedBytes { pos: u32, len: u32 },
}

/// Walks records from `pos` to `limit`. Pure: the caller supplies bytes on demand, so the
/// same code scans a whole buffer (fuzzing) or a window over a file (recovery).
#[derive(Clone, Debug)]
pub(crate) struct ScanCursor {
    pub(crate) pos: u32,
    limit: u32,
    nonce: u64,
    /// While resyncing: the next probe position and the end of the last nonzero word.
    resync: Option<(u32, u32)>,
    done: bool,
}

impl ScanCursor {
    pub(crate) fn new(pos: u32, limit: u32, nonce: u64) -> ScanCursor {
        assert!(pos % RECORD_ALIGN == 0);
        let limit = limit.max(pos);
        ScanCursor {
            pos,
            limit: limit - limit % RECORD_ALIGN,
            nonce,
            resync: None,
            done: false,
        }
    }

    /// Advances with the bytes `view`, which start at segment offset `view_start`.
    pub(crate) fn step(&mut self, view: &[u8], view_start: u32) -> Step {
        let get = |pos: u32, len: u32| -> Option<&[u8]> {
            let from = pos.checked_sub(view_start)? as usize;
            view.get(from..from + len as usize)
        };
        loop {
            if self.done {
                return Step::Item(ScanItem::End {
                    pos: self.pos,
                    nonzero_end: self.pos,
                });
            }
            if let Some((q, nonzero_end)) = self.resync {
                if q + RECORD_ALIGN > self.limit {
                    self.done = true;
                    return Step::Item(ScanItem::End {
                        pos: self.pos,
                        nonzero_end,
                    });
                }
                let len = RECORD_HEADER_SIZE.min(self.limit - q);
                let Some(bytes) = get(q, len) else {
                    return Step::NeedBytes { pos: q, len };
                };
                let nonzero_end = if bytes.iter().take(8).any(|b| *b != 0) {
                    q + 8
                } else {
                    nonzero_end
                };
                let candidate = q > self.pos
                    && decode_header(bytes, self.nonce)
                        .is_ok_and(|h| u64::from(q) + u64::from(h.size) <= u64::from(self.limit));
                if candidate {
                    let item = ScanItem::Damaged {
                        pos: self.pos,
                        size: q - self.pos,
                    };
                    self.pos = q;
                    self.resync = None;
                    return Step::Item(item);
                }
                self.resync = Some((q + RECORD_ALIGN, nonzero_end));
                continue;
            }
            if self.pos + RECORD_HEADER_SIZE > self.limit {
                self.resync = Some((self.pos, self.pos));
                continue;
            }
            let Some(bytes) = get(self.pos, RECORD_HEADER_SIZE) else {
                return Step::NeedBytes {
                    pos: self.pos,
                    len: RECORD_HEADER_SIZE,
                };
            };
            let header = match decode_header(bytes, self.nonce) {
                Ok(h) if u64::from(self.pos) + u64::from(h.size) <= u64::from(self.limit) => h,
                _ => {
                    self.resync = Some((self.pos, self.pos));
                    continue;
                }
            };
            let Some(bytes) = get(self.pos, header.size) else {
                return Step::NeedBytes {
                    pos: self.pos,
                    len: header.size,
                };
            };
            let pos = self.pos;
            self.pos += header.size;
            return Step::Item(match decode_record(bytes, self.nonce) {
                Ok(_) => ScanItem::Record {
                    pos,
                    size: header.size,
                },
                Err(_) => ScanItem::Damaged {
                    pos,
                    size: header.size,
                },
            });
        }
    }
}

/// Nonce the fuzz target decodes with (besides 0).
pub const FUZZ_NONCE: u64 = 0x0123_4567_89ab_cdef;

/// Feeds arbitrary bytes to every decoder and asserts their invariants: no panic, every
/// decoded record re-encodes to the same bytes, a scan terminates with items that tile
/// the buffer in order. For a cargo-fuzz target.
pub fn fuzz_decode(data: &[u8]) {
    for nonce in [0, FUZZ_NONCE] {
        if let Ok(r) = decode_record(data, nonce) {
            assert!(r.size as usize <= data.len() && r.size % RECORD_ALIGN == 0);
            assert!(
                r.key.len() <= KEY_SIZE_MAX as usize && r.value.len() <= VALUE_SIZE_MAX as usize
            );
            if r.kind != RecordKind::Pad {
                let mut again = Vec::new();
                encode_record(
                    &mut again,
                    nonce,
                    r.kind,
                    r.seq,
                    r.expiry_ms,
                    r.key,
                    r.value,
                );
                assert_eq!(Some(&again[..]), data.get(..r.size as usize));
            }
        }
        let limit = data.len().min(SEGMENT_SIZE_MAX as usize) as u32;
        let mut cursor = ScanCursor::new(0, limit, nonce);
        let mut expected_pos = 0u32;
        loop {
            match cursor.step(data, 0) {
                Step::NeedBytes { .. } => panic!("a scan over a whole buffer never needs bytes"),
                Step::Item(
                    item @ (ScanItem::Record { pos, size } | ScanItem::Damaged { pos, size }),
                ) => {
                    assert_eq!(pos, expected_pos);
                    assert!(size > 0 && pos + size <= limit);
                    expected_pos = pos + size;
                    if matches!(item, ScanItem::Record { .. }) {
                        // What recovery and compaction read back without checking again.
                        let bytes = &data[pos as usize..expected_pos as usize];
                        assert_eq!(
                            Ok(scanned_record(bytes, nonce)),
                            decode_record(bytes, nonce)
                        );
                    }
                }
                Step::Item(ScanItem::End { pos, nonzero_end }) => {
                    assert_eq!(pos, expected_pos);
                    assert!(nonzero_end >= pos && nonzero_end <= limit);
                    break;
                }
            }
        }
    }
    if let HeaderBlock::Valid(h) = SegmentHeader::decode_block(data) {
        assert!(h.segment_size % BLOCK_SIZE == 0);
        let block = h.encode_block();
        assert_eq!(SegmentHeader::decode_block(&block), HeaderBlock::Valid(h));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/proto-spec/vectors/log");

    /// A vector file: `name: value` lines, then `hex:` and the bytes; `#` starts a comment.
    fn read_vector(name: &str) -> (BTreeMap<String, String>, Vec<u8>) {
        let text = std::fs::read_to_string(format!("{VECTORS}/{name}")).expect("vector file");
        let mut fields = BTreeMap::new();
        let mut hex = String::new();
        let mut in_hex = false;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if in_hex {
                hex.extend(line.chars().filter(|c| !c.is_whitespace()));
            } else if line == "hex:" {
                in_hex = true;
            } else if let Some((k, v)) = line.split_once(':') {
                fields.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        (fields, bytes)
    }

    fn num(fields: &BTreeMap<String, String>, k: &str) -> u64 {
        let v = &fields[k];
        match v.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).expect("hex number"),
            None => v.parse().expect("number"),
        }
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn golden_records_decode_and_reencode() {
        for name in ["record-put.hex", "record-delete.hex", "record-touch.hex"] {
            let (f, bytes) = read_vector(name);
            let nonce = num(&f, "nonce");
            let r = decode_record(&bytes, nonce).expect(name);
            let kind = match f["kind"].as_str() {
                "put" => RecordKind::Put,
                "delete" => RecordKind::Delete,
                "touch" => RecordKind::Touch,
                other => panic!("kind {other}"),
            };
            assert_eq!(r.kind, kind, "{name}");
            assert_eq!(r.seq, num(&f, "seq"), "{name}");
            assert_eq!(r.expiry_ms, num(&f, "expiry_ms"), "{name}");
            assert_eq!(r.key, &unhex(&f["key"])[..], "{name}");
            assert_eq!(
                r.value,
                &unhex(f.get("value").map_or("", |v| v.as_str()))[..],
                "{name}"
            );
            assert_eq!(r.size as usize, bytes.len(), "{name}");
            let mut again = Vec::new();
            encode_record(
                &mut again,
                nonce,
                r.kind,
                r.seq,
                r.expiry_ms,
                r.key,
                r.value,
            );
            assert_eq!(again, bytes, "{name}");
            // The same bytes under another segment's nonce do not verify.
            assert_eq!(
                decode_header(&bytes, nonce ^ 1),
                Err(DecodeError::BadHeader)
            );
        }
    }

    #[test]
    fn golden_pad_and_segment_header() {
        let (f, bytes) = read_vector("record-pad.hex");
        let nonce = num(&f, "nonce");
        assert_eq!(encode_pad(nonce, num(&f, "size") as u32)[..], bytes[..]);
        let h = decode_header(&bytes, nonce).expect("pad header");
        assert_eq!(
            (h.kind, u64::from(h.size)),
            (RecordKind::Pad, num(&f, "size"))
        );

        let (f, bytes) = read_vector("segment-header.hex");
        assert_eq!(bytes.len(), BLOCK_SIZE as usize);
        let expected = SegmentHeader {
            shard_id: num(&f, "shard_id") as u32,
            segment_id: num(&f, "segment_id") as u32,
            segment_size: num(&f, "segment_size") as u32,
            first_seq: num(&f, "first_seq"),
            nonce: num(&f, "nonce"),
        };
        assert_eq!(
            SegmentHeader::decode_block(&bytes),
            HeaderBlock::Valid(expected)
        );
        assert_eq!(expected.encode_block(), bytes);
        // Either copy alone is enough.
        let mut first_gone = bytes.clone();
        first_gone[0..64].fill(0xff);
        assert_eq!(
            SegmentHeader::decode_block(&first_gone),
            HeaderBlock::Valid(expected)
        );
        first_gone[2048 + 20] ^= 1;
        assert_eq!(
            SegmentHeader::decode_block(&first_gone),
            HeaderBlock::Corrupt
        );
        assert_eq!(SegmentHeader::decode_block(&[0u8; 4096]), HeaderBlock::Zero);
    }

    /// Rewrites the vector files from the encoder: `RINGKV_WRITE_VECTORS=1 cargo test`.
    /// Only for a deliberate format change (which bumps FORMAT_VERSION).
    #[test]
    fn write_vectors_when_asked() {
        if std::env::var_os("RINGKV_WRITE_VECTORS").is_none() {
            return;
        }
        let hex = |b: &[u8]| -> String {
            b.chunks(16)
                .map(|c| {
                    c.iter()
                        .map(|x| format!("{x:02x}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let h2 = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        type Case<'a> = (&'a str, RecordKind, u64, u64, &'a [u8], &'a [u8]);
        let cases: [Case<'_>; 3] = [
            (
                "put",
                RecordKind::Put,
                7,
                1_700_000_000_000,
                b"user:42",
                b"hello, ringkv",
            ),
            ("delete", RecordKind::Delete, 8, 0, b"user:42", b""),
            (
                "touch",
                RecordKind::Touch,
                9,
                1_800_000_000_000,
                b"user:7",
                b"",
            ),
        ];
        for (name, kind, seq, expiry, key, value) in cases {
            let mut b = Vec::new();
            encode_record(&mut b, FUZZ_NONCE, kind, seq, expiry, key, value);
            let text = format!(
                "# {name} record, layout in proto-spec/log-format.md (Record)\nnonce: 0x{FUZZ_NONCE:016x}\nkind: {name}\nseq: {seq}\nexpiry_ms: {expiry}\nkey: {}\nvalue: {}\nhex:\n{}\n",
                h2(key), h2(value), hex(&b)
            );
            std::fs::write(format!("{VECTORS}/record-{name}.hex"), text).expect("write");
        }
        let pad = encode_pad(FUZZ_NONCE, 64);
        let text = format!(
            "# pad header (40 bytes) for a 64-byte pad; the body keeps old bytes\nnonce: 0x{FUZZ_NONCE:016x}\nsize: 64\nhex:\n{}\n",
            hex(&pad)
        );
        std::fs::write(format!("{VECTORS}/record-pad.hex"), text).expect("write");
        let h = SegmentHeader {
            shard_id: 3,
            segment_id: 17,
            segment_size: 64 * 1024 * 1024,
            first_seq: 1000,
            nonce: FUZZ_NONCE,
        };
        let text = format!(
            "# segment block 0: header at 0 and at 2048, zeros elsewhere\nshard_id: 3\nsegment_id: 17\nsegment_size: {}\nfirst_seq: 1000\nnonce: 0x{FUZZ_NONCE:016x}\nhex:\n{}\n",
            64 * 1024 * 1024,
            hex(&h.encode_block())
        );
        std::fs::write(format!("{VECTORS}/segment-header.hex"), text).expect("write");
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(parse_segment_file_name(&segment_file_name(42)), Some(42));
        assert_eq!(parse_segment_file_name("segment-42.log"), None);
        assert_eq!(parse_segment_file_name("hint"), None);
    }

    #[test]
    fn bad_payload_is_skippable_by_length() {
        let mut b = Vec::new();
        let size = encode_record(&mut b, 5, RecordKind::Put, 1, 0, b"k", b"value");
        b[RECORD_HEADER_SIZE as usize + 2] ^= 0x10;
        assert_eq!(decode_record(&b, 5), Err(DecodeError::BadPayload { size }));
        b[13] ^= 0x01; // the size field: now the header fails
        assert_eq!(decode_record(&b, 5), Err(DecodeError::BadHeader));
    }

    #[test]
    fn a_scanned_record_reads_back_as_it_decodes() {
        let mut b = Vec::new();
        encode_record(&mut b, 3, RecordKind::Put, 1, 77, b"key", &[5; 100]);
        encode_record(&mut b, 3, RecordKind::Put, 2, 0, &[b'k'; 40], b"");
        encode_record(&mut b, 3, RecordKind::Touch, 3, 88, b"key", b"");
        encode_record(&mut b, 3, RecordKind::Delete, 4, 0, b"key", b"");
        let pad_at = b.len();
        b.resize(pad_at + 64, 0);
        b[pad_at..pad_at + RECORD_HEADER_SIZE as usize].copy_from_slice(&encode_pad(3, 64));
        let mut c = ScanCursor::new(0, b.len() as u32, 3);
        let mut seen = 0;
        while let Step::Item(ScanItem::Record { pos, size }) = c.step(&b, 0) {
            let bytes = &b[pos as usize..(pos + size) as usize];
            assert_eq!(
                scanned_record(bytes, 3),
                decode_record(bytes, 3).expect("valid")
            );
            seen += 1;
        }
        assert_eq!(seen, 5);
    }

    #[test]
    fn scan_resyncs_past_a_damaged_header() {
        let mut b = Vec::new();
        let mut sizes = Vec::new();
        for i in 1..=4u64 {
            sizes.push(encode_record(
                &mut b,
                9,
                RecordKind::Put,
                i,
                0,
                b"key",
                &[i as u8; 30],
            ));
        }
        b.resize(b.len() + 256, 0);
        b[sizes[0] as usize + 1] ^= 0xff; // header of record 2
        let mut c = ScanCursor::new(0, b.len() as u32, 9);
        let mut items = Vec::new();
        loop {
            match c.step(&b, 0) {
                Step::Item(ScanItem::End { pos, nonzero_end }) => {
                    items.push(ScanItem::End { pos, nonzero_end });
                    break;
                }
                Step::Item(i) => items.push(i),
                Step::NeedBytes { .. } => unreachable!(),
            }
        }
        let s = sizes[0];
        assert_eq!(items[0], ScanItem::Record { pos: 0, size: s });
        assert_eq!(items[1], ScanItem::Damaged { pos: s, size: s });
        assert_eq!(
            items[2],
            ScanItem::Record {
                pos: 2 * s,
                size: s
            }
        );
        assert_eq!(
            items[3],
            ScanItem::Record {
                pos: 3 * s,
                size: s
            }
        );
        assert_eq!(
            items[4],
            ScanItem::End {
                pos: 4 * s,
                nonzero_end: 4 * s
            }
        );
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            fuzz_decode(&data);
        }

        #[test]
        fn mutated_records_never_panic(
            seq in 1u64..1000,
            key in proptest::collection::vec(any::<u8>(), 1..40),
            value in proptest::collection::vec(any::<u8>(), 0..100),
            flips in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..4),
        ) {
            let mut b = Vec::new();
            encode_record(&mut b, FUZZ_NONCE, RecordKind::Put, seq, 0, &key, &value);
            encode_record(&mut b, FUZZ_NONCE, RecordKind::Touch, seq + 1, 5, &key, b"");
            let clean = b.clone();
            for (at, mask) in &flips {
                let i = *at as usize % b.len();
                b[i] ^= *mask;
            }
            fuzz_decode(&b);
            if b == clean {
                let r = decode_record(&b, FUZZ_NONCE).expect("clean record");
                prop_assert_eq!((r.seq, r.key, r.value), (seq, &key[..], &value[..]));
            }
        }
    }
}
