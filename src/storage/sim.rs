//! `SimDisk`: an in-memory [`Disk`] with injected faults, deterministic from a seed so a
//! failing test replays exactly.
//!
//! The model: each file has its current bytes and its durable bytes. A write changes the
//! current bytes at once and is remembered as unsynced; `sync` makes the file's unsynced
//! writes durable; `sync_dir` makes the directory's names durable. `crash()` throws away
//! everything not durable (optionally letting a random prefix of sectors of each lost
//! write land: a torn write), exactly what a power cut does to a device that honours
//! fdatasync and nothing more.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use super::disk::Disk;
use super::error::StorageError;
use super::limits::{BLOCK_SIZE, SECTOR_SIZE};

/// Faults to inject. Probabilities are per mille and drawn from the disk's seeded RNG.
#[derive(Clone, Debug, Default)]
pub struct SimFaults {
    /// Writes that land only a random prefix of their sectors, then fail with EIO.
    pub torn_write_per_mille: u32,
    /// Writes that land with one bit flipped, and report success.
    pub write_bit_flip_per_mille: u32,
    /// Reads that return one bit flipped (the stored bytes stay intact).
    pub read_bit_flip_per_mille: u32,
    /// Syncs that fail with EIO and make nothing durable.
    pub sync_error_per_mille: u32,
    /// Times each sync yields to the executor before completing: a slow fsync.
    pub sync_delay_polls: u32,
    /// Bytes the disk holds in all; a create beyond it fails with ENOSPC.
    pub capacity_bytes: Option<u64>,
    /// While set, every create and write fails with ENOSPC.
    pub no_space: bool,
    /// At `crash()`, unsynced writes that land a random prefix of their sectors.
    pub crash_torn_per_mille: u32,
}

/// Counters of what the simulated disk was asked to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Completed `write_at` calls.
    pub writes: u64,
    /// Completed `sync` calls.
    pub syncs: u64,
    /// Completed `sync_dir` calls.
    pub dir_syncs: u64,
    /// Files created.
    pub creates: u64,
    /// Files removed.
    pub removes: u64,
    /// Faults injected (torn writes, bit flips, sync errors).
    pub faults_injected: u64,
}

#[derive(Clone, Default)]
struct SimFile {
    data: Vec<u8>,
    durable: Vec<u8>,
    unsynced: Vec<(u64, Vec<u8>)>,
}

struct SimState {
    rng: u64,
    faults: SimFaults,
    files: BTreeMap<u64, SimFile>,
    names: BTreeMap<String, u64>,
    names_durable: BTreeMap<String, u64>,
    next_id: u64,
    stats: SimStats,
    write_through: bool,
}

impl SimState {
    fn next_u64(&mut self) -> u64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn chance(&mut self, per_mille: u32) -> bool {
        per_mille > 0 && self.next_u64() % 1000 < u64::from(per_mille)
    }

    fn chance_of(&mut self, pick: impl Fn(&SimFaults) -> u32) -> bool {
        let per_mille = pick(&self.faults);
        self.chance(per_mille)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    fn file(&mut self, id: u64) -> Result<&mut SimFile, StorageError> {
        self.files
            .get_mut(&id)
            .ok_or(StorageError::from_errno("sim file", libc::EBADF))
    }

    fn used_bytes(&self) -> u64 {
        let live: std::collections::BTreeSet<u64> = self
            .names
            .values()
            .chain(self.names_durable.values())
            .copied()
            .collect();
        live.iter()
            .filter_map(|id| self.files.get(id))
            .map(|f| f.data.len() as u64)
            .sum()
    }
}

fn apply(data: &mut Vec<u8>, pos: u64, bytes: &[u8]) {
    let pos = pos as usize;
    if data.len() < pos + bytes.len() {
        data.resize(pos + bytes.len(), 0);
    }
    data[pos..pos + bytes.len()].copy_from_slice(bytes);
}

/// The simulated disk. Clones share the same disk, so a test keeps one to crash it and
/// inspect it while the log owns another.
#[derive(Clone)]
pub struct SimDisk {
    state: Rc<RefCell<SimState>>,
}

impl SimDisk {
    /// An empty disk whose faults are drawn from `seed`.
    pub fn new(seed: u64) -> SimDisk {
        let state = SimState {
            rng: seed,
            faults: SimFaults::default(),
            files: BTreeMap::new(),
            names: BTreeMap::new(),
            names_durable: BTreeMap::new(),
            next_id: 1,
            stats: SimStats::default(),
            write_through: false,
        };
        SimDisk {
            state: Rc::new(RefCell::new(state)),
        }
    }

    /// Makes every completed write durable at once (a file opened with O_DSYNC).
    pub fn set_write_through(&self, on: bool) {
        self.state.borrow_mut().write_through = on;
    }

    /// Replaces the faults to inject from now on.
    pub fn set_faults(&self, faults: SimFaults) {
        self.state.borrow_mut().faults = faults;
    }

    /// Counters so far.
    pub fn stats(&self) -> SimStats {
        self.state.borrow().stats
    }

    /// Power cut: every write not covered by a sync is lost (or, with
    /// `crash_torn_per_mille`, lands a random prefix of its sectors), every name change not
    /// covered by `sync_dir` is undone.
    pub fn crash(&self) {
        let mut st = self.state.borrow_mut();
        let st = &mut *st;
        st.names = st.names_durable.clone();
        let ids: Vec<u64> = st.files.keys().copied().collect();
        for id in ids {
            let Some(mut file) = st.files.remove(&id) else {
                continue;
            };
            if !st.names_durable.values().any(|v| *v == id) {
                continue;
            }
            file.data = file.durable.clone();
            for (pos, bytes) in std::mem::take(&mut file.unsynced) {
                if st.chance_of(|f| f.crash_torn_per_mille) {
                    let sectors = bytes.len() as u64 / u64::from(SECTOR_SIZE);
                    let kept = (st.below(sectors) * u64::from(SECTOR_SIZE)) as usize;
                    apply(&mut file.data, pos, &bytes[..kept]);
                }
            }
            file.durable = file.data.clone();
            st.files.insert(id, file);
        }
    }

    /// Names currently in the directory.
    pub fn names(&self) -> Vec<String> {
        self.state.borrow().names.keys().cloned().collect()
    }

    /// Current bytes of a file.
    pub fn file_bytes(&self, name: &str) -> Option<Vec<u8>> {
        let st = self.state.borrow();
        st.names
            .get(name)
            .and_then(|id| st.files.get(id))
            .map(|f| f.data.clone())
    }

    /// Bytes held by files that exist now or would after a crash.
    pub fn used_bytes(&self) -> u64 {
        self.state.borrow().used_bytes()
    }

    /// Damage on the medium: XOR `mask` into the stored (and durable) bytes at `offset`.
    pub fn corrupt(&self, name: &str, offset: u64, mask: &[u8]) {
        self.edit(name, |data| {
            for (i, m) in mask.iter().enumerate() {
                if let Some(b) = data.get_mut(offset as usize + i) {
                    *b ^= m;
                }
            }
        });
    }

    /// Damage on the medium: cut a file to `len` bytes.
    pub fn truncate_file(&self, name: &str, len: u64) {
        self.edit(name, |data| data.truncate(len as usize));
    }

    fn edit(&self, name: &str, f: impl Fn(&mut Vec<u8>)) {
        let mut st = self.state.borrow_mut();
        let Some(id) = st.names.get(name).copied() else {
            return;
        };
        if let Some(file) = st.files.get_mut(&id) {
            f(&mut file.data);
            f(&mut file.durable);
        }
    }
}

fn check_aligned(pos: u64, len: usize) {
    assert!(
        pos % u64::from(BLOCK_SIZE) == 0 && len % BLOCK_SIZE as usize == 0,
        "unaligned I/O"
    );
}

impl Disk for SimDisk {
    type File = u64;

    async fn open(&self, name: &str) -> Result<u64, StorageError> {
        let st = self.state.borrow();
        st.names
            .get(name)
            .copied()
            .ok_or_else(|| StorageError::NotFound(name.to_string()))
    }

    async fn create(&self, name: &str, size: u64) -> Result<u64, StorageError> {
        check_aligned(size, 0);
        let mut st = self.state.borrow_mut();
        if st.names.contains_key(name) {
            return Err(StorageError::from_errno("create", libc::EEXIST));
        }
        let full = st
            .faults
            .capacity_bytes
            .is_some_and(|cap| st.used_bytes() + size > cap);
        if st.faults.no_space || full {
            return Err(StorageError::NoSpace);
        }
        let id = st.next_id;
        st.next_id += 1;
        let zero = vec![0u8; size as usize];
        st.files.insert(
            id,
            SimFile {
                data: zero.clone(),
                durable: zero,
                unsynced: Vec::new(),
            },
        );
        st.names.insert(name.to_string(), id);
        st.stats.creates += 1;
        Ok(id)
    }

    async fn file_size(&self, file: &u64) -> Result<u64, StorageError> {
        Ok(self.state.borrow_mut().file(*file)?.data.len() as u64)
    }

    async fn write_at(&self, file: &u64, pos: u64, data: &[u8]) -> Result<(), StorageError> {
        check_aligned(pos, data.len());
        let mut st = self.state.borrow_mut();
        if st.faults.no_space {
            return Err(StorageError::NoSpace);
        }
        let mut bytes = data.to_vec();
        let mut torn = None;
        if st.chance_of(|f| f.torn_write_per_mille) {
            let sectors = bytes.len() as u64 / u64::from(SECTOR_SIZE);
            torn = Some((st.below(sectors) * u64::from(SECTOR_SIZE)) as usize);
        } else if !bytes.is_empty() && st.chance_of(|f| f.write_bit_flip_per_mille) {
            let bit = st.below(bytes.len() as u64 * 8);
            bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
            st.stats.faults_injected += 1;
        }
        if let Some(kept) = torn {
            bytes.truncate(kept);
            st.stats.faults_injected += 1;
        }
        let write_through = st.write_through && torn.is_none();
        let f = st.file(*file)?;
        apply(&mut f.data, pos, &bytes);
        if write_through {
            apply(&mut f.durable, pos, &bytes);
        } else {
            f.unsynced.push((pos, bytes));
        }
        if torn.is_some() {
            return Err(StorageError::from_errno("write", libc::EIO));
        }
        st.stats.writes += 1;
        Ok(())
    }

    async fn read_at(&self, file: &u64, pos: u64, len: u32) -> Result<Vec<u8>, StorageError> {
        check_aligned(pos, len as usize);
        let mut st = self.state.borrow_mut();
        let data = &st.file(*file)?.data;
        let from = (pos as usize).min(data.len());
        let to = (pos as usize + len as usize).min(data.len());
        let mut out = data[from..to].to_vec();
        if !out.is_empty() && st.chance_of(|f| f.read_bit_flip_per_mille) {
            let bit = st.below(out.len() as u64 * 8);
            out[(bit / 8) as usize] ^= 1 << (bit % 8);
            st.stats.faults_injected += 1;
        }
        Ok(out)
    }

    async fn sync(&self, file: &u64) -> Result<(), StorageError> {
        let delay = self.state.borrow().faults.sync_delay_polls;
        for _ in 0..delay {
            futures_lite::future::yield_now().await;
        }
        let mut st = self.state.borrow_mut();
        if st.chance_of(|f| f.sync_error_per_mille) {
            st.stats.faults_injected += 1;
            return Err(StorageError::from_errno("fdatasync", libc::EIO));
        }
        let f = st.file(*file)?;
        for (pos, bytes) in std::mem::take(&mut f.unsynced) {
            apply(&mut f.durable, pos, &bytes);
        }
        st.stats.syncs += 1;
        Ok(())
    }

    fn write_through(&self) -> bool {
        self.state.borrow().write_through
    }

    async fn remove(&self, name: &str) -> Result<(), StorageError> {
        let mut st = self.state.borrow_mut();
        st.names
            .remove(name)
            .ok_or_else(|| StorageError::NotFound(name.to_string()))?;
        st.stats.removes += 1;
        Ok(())
    }

    async fn rename(&self, from: &str, to: &str) -> Result<(), StorageError> {
        let mut st = self.state.borrow_mut();
        let id = st
            .names
            .remove(from)
            .ok_or_else(|| StorageError::NotFound(from.to_string()))?;
        st.names.insert(to.to_string(), id);
        Ok(())
    }

    async fn sync_dir(&self) -> Result<(), StorageError> {
        let mut st = self.state.borrow_mut();
        st.names_durable = st.names.clone();
        st.stats.dir_syncs += 1;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<String>, StorageError> {
        Ok(self.names())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;

    #[test]
    fn crash_keeps_exactly_the_synced_writes() {
        block_on(async {
            let disk = SimDisk::new(1);
            let f = disk.create("a", 8192).await.expect("create");
            disk.sync_dir().await.expect("sync dir");
            disk.write_at(&f, 0, &[1u8; 4096]).await.expect("write");
            disk.sync(&f).await.expect("sync");
            disk.write_at(&f, 4096, &[2u8; 4096]).await.expect("write");
            let g = disk.create("b", 4096).await.expect("create b");
            disk.write_at(&g, 0, &[3u8; 4096]).await.expect("write b");
            disk.sync(&g).await.expect("sync b");
            disk.crash();
            let bytes = disk.file_bytes("a").expect("a survives");
            assert!(bytes[..4096].iter().all(|b| *b == 1));
            assert!(bytes[4096..].iter().all(|b| *b == 0));
            assert_eq!(
                disk.names(),
                vec!["a".to_string()],
                "b's name was never synced"
            );
        });
    }

    #[test]
    fn torn_write_lands_a_prefix_and_fails() {
        block_on(async {
            let disk = SimDisk::new(7);
            let f = disk.create("a", 8192).await.expect("create");
            disk.set_faults(SimFaults {
                torn_write_per_mille: 1000,
                ..SimFaults::default()
            });
            let err = disk.write_at(&f, 0, &[9u8; 8192]).await.expect_err("torn");
            assert!(matches!(
                err,
                StorageError::Io {
                    errno: Some(libc::EIO),
                    ..
                }
            ));
            let bytes = disk.file_bytes("a").expect("a");
            let landed = bytes.iter().take_while(|b| **b == 9).count();
            assert_eq!(landed % SECTOR_SIZE as usize, 0);
            assert!(landed < 8192 && bytes[landed..].iter().all(|b| *b == 0));
        });
    }

    #[test]
    fn capacity_gives_enospc() {
        block_on(async {
            let disk = SimDisk::new(3);
            disk.set_faults(SimFaults {
                capacity_bytes: Some(8192),
                ..SimFaults::default()
            });
            disk.create("a", 8192).await.expect("fits");
            assert_eq!(disk.create("b", 4096).await, Err(StorageError::NoSpace));
        });
    }
}
