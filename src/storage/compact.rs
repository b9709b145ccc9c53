//! Compaction: rewrite the live records of a sealed, mostly-garbage segment at the head
//! of the log, keeping their seq and expiry, then delete the segment file. Work is done
//! in bounded steps so the foreground is never stalled; run them on a low-priority task
//! queue.
//!
//! Why a relocated copy is safe: recovery keeps, per key, the record with the highest
//! seq, and on equal seqs the later one in log order. A relocated copy has the same seq
//! as the original and a later position, so it wins while both exist, and nothing else
//! changes. What may be dropped is decided by [`Liveness`]; a record that is dead (key
//! deleted or expired) but might still shadow an older record elsewhere is rewritten as a
//! tombstone with the same seq, and a tombstone is dropped only once no other segment can
//! hold anything older.

use super::disk::Disk;
use super::error::StorageError;
use super::format::{
    scanned_record, segment_file_name, Location, RecordKind, ScanCursor, ScanItem,
};
use super::limits::{COMPACT_STEP_BYTES, COMPACT_UNWRITTEN_MAX, SEGMENT_DATA_START};
use super::log::Log;
use super::recovery::Window;

/// The shard's verdict on a record of a segment being compacted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// The index points at exactly this record (its location): rewrite it.
    Live,
    /// The index holds, for this key, a record with a seq at least this one's at another
    /// location (a newer write, or a copy already relocated): drop it.
    Superseded,
    /// The key has no live value that covers this record (deleted, expired). The log
    /// keeps a tombstone at this seq for as long as an older record may exist.
    Dead,
}

/// A record the shard is asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// Put, Delete or Touch.
    pub kind: RecordKind,
    /// Key.
    pub key: &'a [u8],
    /// Seq.
    pub seq: u64,
    /// Expiry of the record.
    pub expiry_ms: u64,
    /// Where it is now.
    pub location: Location,
}

/// A record rewritten by compaction. The shard points its index at `to` if the index
/// still points at `from`; otherwise it reports `to` with `mark_garbage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Relocation<'a> {
    /// Kind of the new copy (a dead Put or Touch becomes a Delete).
    pub kind: RecordKind,
    /// Key.
    pub key: &'a [u8],
    /// Seq, unchanged.
    pub seq: u64,
    /// Expiry, unchanged (0 for tombstones).
    pub expiry_ms: u64,
    /// The old location.
    pub from: Location,
    /// The new location.
    pub to: Location,
}

/// What one compaction step did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactProgress {
    /// The segment being compacted.
    pub segment: u32,
    /// Live records rewritten.
    pub relocated: u32,
    /// Tombstones kept (rewritten).
    pub tombstones: u32,
    /// Records and pads dropped.
    pub dropped: u32,
    /// The segment is done and its file deleted.
    pub finished: bool,
    /// Bytes of disk freed (the segment file) when finished.
    pub bytes_freed: u64,
    /// Bytes of the segment that hold no verifiable record, found by this step (or,
    /// when `kept_damaged`, by the whole pass).
    pub damaged_bytes: u64,
    /// The pass finished on a segment with damage: its live records were copied, the
    /// file is kept on disk and never picked again (the damage may have been a live
    /// value or a tombstone that still shadows an older record).
    pub kept_damaged: bool,
}

/// Compaction's view of its victim for one step.
struct Target<F> {
    id: u32,
    from: u32,
    file: F,
    nonce: u64,
    data_end: u32,
    size: u32,
    /// Lowest seq held by any other segment.
    others_seq_min: u64,
}

impl<D: Disk> Log<D> {
    fn compaction_target(&self) -> Result<Option<Target<D::File>>, StorageError> {
        let mut st = self.inner.state.borrow_mut();
        if st.closed {
            return Err(StorageError::Closed);
        }
        if st.exclusive || st.compacting {
            return Err(StorageError::Busy);
        }
        if st.unwritten_bytes() >= u64::from(COMPACT_UNWRITTEN_MAX) {
            // The flusher is behind: leave the buffer to client writes for now.
            return Ok(None);
        }
        let percent = u64::from(self.inner.options.compact_garbage_percent);
        let (id, from) = match st.compaction {
            Some(cursor) => cursor,
            None => {
                let victim = st
                    .segments
                    .iter()
                    .filter(|(id, s)| {
                        s.sealed
                            && s.damaged_bytes == 0
                            && **id != st.head
                            && s.file.is_some()
                            && !st.pending.iter().any(|p| p.segment == **id)
                    })
                    .filter_map(|(id, s)| {
                        let data = u64::from(s.data_end - SEGMENT_DATA_START);
                        let garbage = u64::from(s.garbage);
                        let ratio = (garbage * 1000).checked_div(data).unwrap_or(1000);
                        (garbage * 100 >= percent * data).then_some((ratio, u32::MAX - id))
                    })
                    .max();
                let Some((_, inverted)) = victim else {
                    return Ok(None);
                };
                (u32::MAX - inverted, SEGMENT_DATA_START)
            }
        };
        let Some(segment) = st.segments.get(&id) else {
            st.compaction = None;
            return Ok(None);
        };
        let Some(file) = segment.file.clone() else {
            return Ok(None);
        };
        let target = Target {
            id,
            from,
            file,
            nonce: segment.nonce,
            data_end: segment.data_end,
            size: segment.size,
            // An unreadable segment file may hold anything: while one is on disk, every
            // tombstone is kept (restoring its header must not bring deleted keys back).
            others_seq_min: if st.stats.unreadable_segments > 0 {
                0
            } else {
                st.segments
                    .iter()
                    .filter(|(i, _)| **i != id)
                    .map(|(_, s)| s.seq_min)
                    .min()
                    .unwrap_or(u64::MAX)
            },
        };
        st.compaction = Some((id, from));
        st.compacting = true;
        Ok(Some(target))
    }

    /// One bounded compaction step: picks (or continues) a sealed segment whose garbage
    /// passes `compact_garbage_percent`, reads up to `COMPACT_STEP_BYTES` of it, asks
    /// `live` about each record, rewrites what must stay and reports each rewrite to
    /// `on_relocate`. The step that reaches the segment's end syncs the log and deletes
    /// the file. `Ok(None)`: nothing to compact.
    ///
    /// Both closures run synchronously with no log borrow held; they may borrow the
    /// shard and call `mark_garbage`, but must not hold a borrow across the step.
    pub async fn compact_step(
        &self,
        mut live: impl FnMut(&Candidate<'_>) -> Liveness,
        mut on_relocate: impl FnMut(&Relocation<'_>),
    ) -> Result<Option<CompactProgress>, StorageError> {
        let Some(t) = self.compaction_target()? else {
            return Ok(None);
        };
        let result = self.compact_range(&t, &mut live, &mut on_relocate).await;
        let (progress, next) = {
            let mut st = self.inner.state.borrow_mut();
            st.compacting = false;
            match result {
                Ok((progress, next)) => {
                    // A failed finish resumes at the end: nothing is relocated twice.
                    st.compaction = Some((t.id, next.unwrap_or(t.data_end)));
                    (progress, next)
                }
                Err((e, at)) => {
                    st.compaction = Some((t.id, at));
                    return Err(e);
                }
            }
        };
        if next.is_some() {
            return Ok(Some(progress));
        }
        self.finish_compaction(&t, progress).await.map(Some)
    }

    /// Scans one step's worth of the victim. Returns the progress and where to resume
    /// (`None`: the segment is done), or the error and where to resume.
    async fn compact_range(
        &self,
        t: &Target<D::File>,
        live: &mut impl FnMut(&Candidate<'_>) -> Liveness,
        on_relocate: &mut impl FnMut(&Relocation<'_>),
    ) -> Result<(CompactProgress, Option<u32>), (StorageError, u32)> {
        let mut progress = CompactProgress {
            segment: t.id,
            ..CompactProgress::default()
        };
        let mut win = Window::new(t.file.clone(), t.data_end);
        let mut cursor = ScanCursor::new(t.from, t.data_end, t.nonce);
        let budget_end = t.from.saturating_add(COMPACT_STEP_BYTES);
        let segment_size = self.inner.options.segment_size;
        loop {
            let at = cursor.pos;
            if at >= budget_end {
                return Ok((progress, Some(at)));
            }
            let (pos, size) = match win
                .next(&self.inner.disk, &mut cursor)
                .await
                .map_err(|e| (e, at))?
            {
                ScanItem::Record { pos, size } => (pos, size),
                ScanItem::Damaged { size, .. } => {
                    self.note_damage(t.id, size, &mut progress);
                    continue;
                }
                ScanItem::End { pos, nonzero_end } => {
                    if nonzero_end > pos {
                        self.note_damage(t.id, nonzero_end - pos, &mut progress);
                    }
                    return Ok((progress, None));
                }
            };
            let Some(r) = win.get(pos, size).map(|b| scanned_record(b, t.nonce)) else {
                self.note_damage(t.id, size, &mut progress);
                continue;
            };
            if r.kind == RecordKind::Pad {
                progress.dropped += 1;
                continue;
            }
            let from = Location {
                segment: t.id,
                offset: pos,
                length: size,
            };
            let candidate = Candidate {
                kind: r.kind,
                key: r.key,
                seq: r.seq,
                expiry_ms: r.expiry_ms,
                location: from,
            };
            let keep = match (r.kind, live(&candidate)) {
                (_, Liveness::Superseded) => None,
                (RecordKind::Put | RecordKind::Touch, Liveness::Live) => Some(r.kind),
                // Dead, or a tombstone: nothing older elsewhere means nothing to shadow.
                _ if t.others_seq_min > r.seq => None,
                _ => Some(RecordKind::Delete),
            };
            let Some(kind) = keep else {
                progress.dropped += 1;
                continue;
            };
            let (value, expiry_ms) = if kind == r.kind {
                (r.value, r.expiry_ms)
            } else {
                (&[][..], 0)
            };
            let to = {
                let mut st = self.inner.state.borrow_mut();
                let unwritten = st.unwritten_bytes();
                if unwritten > 0 && unwritten + u64::from(size) > u64::from(COMPACT_UNWRITTEN_MAX) {
                    // Resume at this record once the flusher has caught up (a record
                    // larger than the share still goes once the buffer is empty).
                    return Ok((progress, Some(pos)));
                }
                st.check_writable().map_err(|e| (e, at))?;
                let appended = st.append_record(segment_size, kind, r.seq, expiry_ms, r.key, value);
                appended.map_err(|e| (e, at))?
            };
            if kind == RecordKind::Delete {
                progress.tombstones += 1;
            } else {
                progress.relocated += 1;
            }
            on_relocate(&Relocation {
                kind,
                key: r.key,
                seq: r.seq,
                expiry_ms,
                from,
                to,
            });
        }
    }

    fn note_damage(&self, segment: u32, bytes: u32, progress: &mut CompactProgress) {
        progress.damaged_bytes += u64::from(bytes);
        if let Some(s) = self.inner.state.borrow_mut().segments.get_mut(&segment) {
            s.damaged_bytes += u64::from(bytes);
        }
    }

    async fn finish_compaction(
        &self,
        t: &Target<D::File>,
        mut progress: CompactProgress,
    ) -> Result<CompactProgress, StorageError> {
        // The copies must be durable before the originals go.
        self.sync().await?;
        let damaged = self
            .inner
            .state
            .borrow()
            .segments
            .get(&t.id)
            .map_or(0, |s| s.damaged_bytes);
        if damaged > 0 {
            self.inner.state.borrow_mut().compaction = None;
            progress.finished = true;
            progress.kept_damaged = true;
            progress.damaged_bytes = damaged;
            return Ok(progress);
        }
        let disk = &self.inner.disk;
        disk.remove(&segment_file_name(t.id)).await?;
        disk.sync_dir().await?;
        let mut st = self.inner.state.borrow_mut();
        st.segments.remove(&t.id);
        st.dirty.remove(&t.id);
        st.compaction = None;
        progress.finished = true;
        progress.bytes_freed = u64::from(t.size);
        Ok(progress)
    }
}
