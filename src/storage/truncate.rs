//! `truncate_after(seq)`: cut every record with a higher seq (an uncommitted Raft tail),
//! durably, without moving any record that stays.
//!
//! Records above `seq` sit at the end of the log in position order, except that
//! compaction may have relocated older records (seq below the cut) in between. So, per
//! affected segment, from the last one down: a cut record followed by a kept one has its
//! header overwritten by a pad header of the same length (kept records keep their
//! locations); the trailing run of cut records is zeroed. A segment left empty is removed.

use super::disk::Disk;
use super::error::StorageError;
use super::format::{
    decode_header, encode_pad, segment_file_name, RecordKind, ScanCursor, ScanItem,
};
use super::hint::HINT_FILE_NAME;
use super::limits::{align_down, align_up, BLOCK_SIZE, RECORD_HEADER_SIZE, SEGMENT_DATA_START};
use super::log::{Log, State};
use super::recovery::{tail_pending, zero_range, Window};

/// What `truncate_after` did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TruncateReport {
    /// Records removed.
    pub records_cut: u64,
    /// Of which were turned into pads (a kept record followed them).
    pub records_padded: u64,
    /// Segment files removed because nothing was left in them.
    pub segments_removed: u32,
}

/// What the scan of one segment found.
struct Record {
    pos: u32,
    size: u32,
    seq: u64,
    pad: bool,
}

/// Clears `exclusive`, and closes the log if the truncation failed half-way (its
/// in-memory view may no longer match the disk: reopen to recover).
struct Exclusive<'a, F: Clone> {
    state: &'a std::cell::RefCell<State<F>>,
    done: bool,
}

impl<F: Clone> Drop for Exclusive<'_, F> {
    fn drop(&mut self) {
        let mut st = self.state.borrow_mut();
        st.exclusive = false;
        if !self.done {
            st.closed = true;
        }
    }
}

impl<D: Disk> Log<D> {
    /// Cuts every record with a seq above `seq`, durably; the next append gets `seq + 1`
    /// (cut seqs are reused, as Raft reuses the indexes of a truncated tail). Appends fail
    /// with `Busy` while it runs, and it fails with `Busy` while a compaction step runs or
    /// a hint is being built.
    /// If it fails half-way the log is closed; reopening recovers a consistent log that
    /// may still hold some of the cut records (call it again).
    pub async fn truncate_after(&self, seq: u64) -> Result<TruncateReport, StorageError> {
        let state = &self.inner.state;
        {
            let mut st = state.borrow_mut();
            if st.closed {
                return Err(StorageError::Closed);
            }
            if st.compacting || st.exclusive || self.inner.hinting.get() {
                return Err(StorageError::Busy);
            }
            if seq >= st.last_seq() {
                return Ok(TruncateReport::default());
            }
            st.exclusive = true;
            st.compaction = None;
        }
        let mut guard = Exclusive { state, done: false };
        self.sync().await?;
        let drop_hint = state.borrow().hint_reach > seq;
        if drop_hint {
            match self.inner.disk.remove(HINT_FILE_NAME).await {
                Ok(()) | Err(StorageError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
            self.inner.disk.sync_dir().await?;
            let mut st = state.borrow_mut();
            st.hint_seq = 0;
            st.hint_reach = 0;
            st.hint_bytes = 0;
        }
        let affected: Vec<(u32, D::File, u64, u32)> = {
            let st = state.borrow();
            st.segments
                .iter()
                .rev()
                .filter(|(_, s)| s.seq_max > seq)
                .filter_map(|(id, s)| Some((*id, s.file.clone()?, s.nonce, s.data_end)))
                .collect()
        };
        let mut report = TruncateReport::default();
        for (id, file, nonce, data_end) in affected {
            self.truncate_segment(id, &file, nonce, data_end, seq, &mut report)
                .await?;
        }
        let head = {
            let st = state.borrow();
            st.segments
                .iter()
                .next_back()
                .and_then(|(id, s)| Some((*id, s.file.clone()?, s.data_end)))
        };
        let pending = match &head {
            Some((id, file, end)) => Some(tail_pending(&self.inner.disk, file, *id, *end).await?),
            None => None,
        };
        let mut st = state.borrow_mut();
        st.pending.clear();
        st.head = 0;
        if let (Some((id, _, _)), Some(pending)) = (head, pending) {
            if let Some(segment) = st.segments.get_mut(&id) {
                segment.sealed = false;
            }
            st.head = id;
            st.pending.push(pending);
        }
        st.next_seq = seq + 1;
        st.written_seq = st.written_seq.min(seq);
        st.durable_seq = st.durable_seq.min(seq);
        st.stats.last_seq = seq;
        guard.done = true;
        Ok(report)
    }

    async fn truncate_segment(
        &self,
        id: u32,
        file: &D::File,
        nonce: u64,
        data_end: u32,
        seq: u64,
        report: &mut TruncateReport,
    ) -> Result<(), StorageError> {
        let disk = &self.inner.disk;
        let mut records = Vec::new();
        let mut win = Window::new(file.clone(), data_end);
        let mut cursor = ScanCursor::new(SEGMENT_DATA_START, data_end, nonce);
        loop {
            match win.next(disk, &mut cursor).await? {
                ScanItem::Record { pos, size } => {
                    let header = win.get(pos, size).map(|b| decode_header(b, nonce));
                    if let Some(Ok(h)) = header {
                        records.push(Record {
                            pos,
                            size,
                            seq: h.seq,
                            pad: h.kind == RecordKind::Pad,
                        });
                    }
                }
                ScanItem::Damaged { .. } => {}
                ScanItem::End { .. } => break,
            }
        }
        let kept = |r: &&Record| !r.pad && r.seq <= seq;
        let keep_end = records
            .iter()
            .filter(kept)
            .map(|r| r.pos + r.size)
            .max()
            .unwrap_or(SEGMENT_DATA_START);
        let cut: Vec<&Record> = records.iter().filter(|r| !r.pad && r.seq > seq).collect();
        let mut pad_bytes = 0u32;
        for r in cut.iter().filter(|r| r.pos < keep_end) {
            let start = align_down(r.pos, BLOCK_SIZE);
            let end = align_up(r.pos + RECORD_HEADER_SIZE, BLOCK_SIZE);
            let mut blocks = disk.read_at(file, u64::from(start), end - start).await?;
            let at = (r.pos - start) as usize;
            let Some(header) = blocks.get_mut(at..at + RECORD_HEADER_SIZE as usize) else {
                return Err(StorageError::Corrupt {
                    segment: id,
                    offset: r.pos,
                    what: "short read while padding",
                });
            };
            header.copy_from_slice(&encode_pad(nonce, r.size));
            disk.write_at(file, u64::from(start), &blocks).await?;
            pad_bytes += r.size;
            report.records_padded += 1;
        }
        report.records_cut += cut.len() as u64;
        zero_range(disk, file, keep_end, data_end).await?;
        disk.sync(file).await?;
        let empty = keep_end == SEGMENT_DATA_START;
        if empty {
            disk.remove(&segment_file_name(id)).await?;
            disk.sync_dir().await?;
            report.segments_removed += 1;
        }
        let mut st = self.inner.state.borrow_mut();
        if empty {
            st.segments.remove(&id);
            st.dirty.remove(&id);
        } else if let Some(segment) = st.segments.get_mut(&id) {
            segment.data_end = keep_end;
            segment.garbage = segment
                .garbage
                .saturating_add(pad_bytes)
                .min(keep_end - SEGMENT_DATA_START);
            let seqs = records.iter().filter(kept).map(|r| r.seq);
            segment.seq_min = seqs.clone().min().unwrap_or(u64::MAX);
            segment.seq_max = seqs.max().unwrap_or(0);
        }
        Ok(())
    }
}
