//! The I/O seam: every file operation the log performs, behind one trait, implemented by
//! glommio DMA files ([`DmaDisk`]) and by an in-memory twin with injected faults
//! ([`super::SimDisk`]).
//!
//! A `Disk` is rooted at one shard directory and names files by their bare name.
//! Writes and reads are block-aligned (`BLOCK_SIZE`) in position and length: the log
//! never asks for anything else, and the DMA implementation could not serve it.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::{DmaFile, OpenOptions};

use super::error::StorageError;
use super::limits::{BLOCK_SIZE, FLUSH_WRITE_SIZE_MAX};

/// The file operations of one shard directory.
///
/// Everything runs on one executor thread, so the futures need not be `Send`.
#[allow(async_fn_in_trait)]
pub trait Disk {
    /// An open file. Cheap to clone; all clones are the same open file.
    type File: Clone;

    /// Opens an existing file for reading and writing.
    async fn open(&self, name: &str) -> Result<Self::File, StorageError>;

    /// Creates a new file (it must not exist) of `size` bytes, space reserved and every
    /// byte zero, and makes that content durable. The name itself is durable only after
    /// `sync_dir`.
    async fn create(&self, name: &str, size: u64) -> Result<Self::File, StorageError>;

    /// Creates a new file (it must not exist) of `size` bytes with its space reserved,
    /// for a caller that writes every byte of it and then syncs (the hint): the zeros
    /// `create` writes first would double its I/O. Its writes are never write-through.
    async fn create_unfilled(&self, name: &str, size: u64) -> Result<Self::File, StorageError> {
        self.create(name, size).await
    }

    /// Size of an open file in bytes.
    async fn file_size(&self, file: &Self::File) -> Result<u64, StorageError>;

    /// Writes `data` at `pos`. Both block-aligned. Durable only after `sync`, or when
    /// `write_through` is on, as soon as it returns Ok.
    async fn write_at(&self, file: &Self::File, pos: u64, data: &[u8]) -> Result<(), StorageError>;

    /// Reads `len` bytes at `pos`, both block-aligned; fewer at the end of the file.
    async fn read_at(&self, file: &Self::File, pos: u64, len: u32)
        -> Result<Vec<u8>, StorageError>;

    /// fdatasync: every completed write to `file` is durable when this returns Ok.
    async fn sync(&self, file: &Self::File) -> Result<(), StorageError>;

    /// Removes a name (open handles stay usable). Durable only after `sync_dir`.
    async fn remove(&self, name: &str) -> Result<(), StorageError>;

    /// Renames `from` to `to`, replacing `to`. Durable only after `sync_dir`.
    async fn rename(&self, from: &str, to: &str) -> Result<(), StorageError>;

    /// Makes every create, remove and rename so far durable.
    async fn sync_dir(&self) -> Result<(), StorageError>;

    /// Names of the files in the directory.
    async fn list(&self) -> Result<Vec<String>, StorageError>;

    /// Every completed `write_at` is already durable (O_DSYNC): the log acknowledges on
    /// write completion and needs no fdatasync of its own.
    fn write_through(&self) -> bool {
        false
    }
}

/// Name of the file `DmaDisk::open` uses to prime glommio's per-device iopoll probe.
pub const PROBE_FILE_NAME: &str = "probe.blk";

/// The real disk: glommio DMA (O_DIRECT) files in one directory. Needs a running
/// glommio executor.
pub struct DmaDisk {
    dir: PathBuf,
    /// Segment files are opened with O_DSYNC.
    write_through: bool,
}

fn io_err(op: &'static str) -> impl Fn(glommio::GlommioError<()>) -> StorageError {
    move |e| storage_error(op, e)
}

/// Classifies a glommio error by its OS error. glommio turns an `EnhancedIoError` (what
/// its DMA operations return) into an `io::Error` *without* the errno, so going through
/// that conversion made ENOSPC from a preallocation a plain I/O error (`IO_ERROR` to
/// clients) instead of `NoSpace`.
fn storage_error(op: &'static str, e: glommio::GlommioError<()>) -> StorageError {
    if let glommio::GlommioError::EnhancedIoError { source, .. } = &e {
        if let Some(errno) = source.raw_os_error() {
            return match StorageError::from_io(op, source) {
                StorageError::Io { .. } => StorageError::Io {
                    op,
                    errno: Some(errno),
                    detail: e.to_string(),
                },
                other => other,
            };
        }
    }
    StorageError::from_io(op, &std::io::Error::from(e))
}

fn assert_aligned(pos: u64, len: usize) {
    assert!(pos % u64::from(BLOCK_SIZE) == 0, "unaligned position {pos}");
    assert!(len % BLOCK_SIZE as usize == 0, "unaligned length {len}");
}

impl DmaDisk {
    /// Opens (creating it if needed) the shard directory.
    ///
    /// Works around glommio's iopoll probe (glommio issues 605/670): the first DMA open of
    /// a device in a process probes polled I/O by reading block 0 of *that* file, and an
    /// empty file gives the wrong answer, after which every DMA read fails with
    /// EOPNOTSUPP. So before any other DMA open we write, with std::fs, a probe file
    /// holding one block and DMA-open it read-write. A fresh, empty directory is safe.
    pub async fn open(dir: impl AsRef<Path>) -> Result<DmaDisk, StorageError> {
        let dir = dir.as_ref().to_path_buf();
        let std_err = |op| move |e: std::io::Error| StorageError::from_io(op, &e);
        std::fs::create_dir_all(&dir).map_err(std_err("create shard dir"))?;
        let probe = dir.join(PROBE_FILE_NAME);
        let probe_len = std::fs::metadata(&probe).map(|m| m.len()).unwrap_or(0);
        if probe_len < u64::from(BLOCK_SIZE) {
            let block = vec![0u8; BLOCK_SIZE as usize];
            std::fs::write(&probe, &block).map_err(std_err("write probe"))?;
            std::fs::File::open(&probe)
                .and_then(|f| f.sync_all())
                .map_err(std_err("sync probe"))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(&probe)
            .await
            .map_err(io_err("open probe"))?;
        let read = file.read_at_aligned(0, BLOCK_SIZE as usize).await;
        file.close().await.map_err(io_err("close probe"))?;
        read.map_err(io_err("read probe"))?;
        Ok(DmaDisk {
            dir,
            write_through: false,
        })
    }

    /// Opens files from now on with O_DSYNC (or without): each write then reaches stable
    /// storage before it completes. On a device without FUA, such as this virtio disk,
    /// the kernel follows the write with a cache flush itself, which saves the log a
    /// second round trip through the executor per group commit.
    pub fn set_write_through(&mut self, on: bool) {
        self.write_through = on;
    }

    fn flags(&self) -> i32 {
        if self.write_through {
            libc::O_DSYNC
        } else {
            0
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates a new file with `flags` and reserves `size` bytes for it (fallocate:
    /// unwritten extents that read as zeros).
    async fn create_reserved(
        &self,
        name: &str,
        size: u64,
        flags: i32,
    ) -> Result<Rc<DmaFile>, StorageError> {
        assert_aligned(size, 0);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .custom_flags(flags)
            .dma_open(self.dir.join(name))
            .await
            .map_err(io_err("create"))?;
        file.pre_allocate(size, false)
            .await
            .map_err(io_err("preallocate"))?;
        Ok(Rc::new(file))
    }
}

impl Disk for DmaDisk {
    type File = Rc<DmaFile>;

    async fn open(&self, name: &str) -> Result<Self::File, StorageError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(self.flags())
            .dma_open(self.dir.join(name))
            .await
            .map_err(io_err("open"))?;
        Ok(Rc::new(file))
    }

    async fn create(&self, name: &str, size: u64) -> Result<Self::File, StorageError> {
        let file = self.create_reserved(name, size, self.flags()).await?;
        // fallocate leaves unwritten extents; writing zeros once makes later appends
        // plain overwrites, so their fdatasync has no extent conversion to journal.
        let mut pos = 0u64;
        while pos < size {
            let len = (size - pos).min(u64::from(FLUSH_WRITE_SIZE_MAX)) as usize;
            let mut buf = file.alloc_dma_buffer(len);
            buf.as_bytes_mut().fill(0);
            let n = file.write_at(buf, pos).await.map_err(io_err("zero fill"))?;
            if n != len {
                return Err(StorageError::Io {
                    op: "zero fill",
                    errno: None,
                    detail: format!("short write {n}/{len}"),
                });
            }
            pos += len as u64;
        }
        file.fdatasync().await.map_err(io_err("sync new file"))?;
        Ok(file)
    }

    async fn create_unfilled(&self, name: &str, size: u64) -> Result<Self::File, StorageError> {
        self.create_reserved(name, size, 0).await
    }

    async fn file_size(&self, file: &Self::File) -> Result<u64, StorageError> {
        file.file_size().await.map_err(io_err("stat"))
    }

    async fn write_at(&self, file: &Self::File, pos: u64, data: &[u8]) -> Result<(), StorageError> {
        assert_aligned(pos, data.len());
        let mut buf = file.alloc_dma_buffer(data.len());
        buf.as_bytes_mut().copy_from_slice(data);
        let n = file.write_at(buf, pos).await.map_err(io_err("write"))?;
        if n != data.len() {
            let detail = format!("short write {n}/{}", data.len());
            return Err(StorageError::Io {
                op: "write",
                errno: None,
                detail,
            });
        }
        Ok(())
    }

    async fn read_at(
        &self,
        file: &Self::File,
        pos: u64,
        len: u32,
    ) -> Result<Vec<u8>, StorageError> {
        assert_aligned(pos, len as usize);
        let read = file
            .read_at_aligned(pos, len as usize)
            .await
            .map_err(io_err("read"))?;
        Ok(read.to_vec())
    }

    async fn sync(&self, file: &Self::File) -> Result<(), StorageError> {
        file.fdatasync().await.map_err(io_err("fdatasync"))
    }

    fn write_through(&self) -> bool {
        self.write_through
    }

    async fn remove(&self, name: &str) -> Result<(), StorageError> {
        glommio::io::remove(self.dir.join(name))
            .await
            .map_err(io_err("remove"))
    }

    async fn rename(&self, from: &str, to: &str) -> Result<(), StorageError> {
        glommio::io::rename(self.dir.join(from), self.dir.join(to))
            .await
            .map_err(io_err("rename"))
    }

    async fn sync_dir(&self) -> Result<(), StorageError> {
        let dir = glommio::io::Directory::open(&self.dir)
            .await
            .map_err(io_err("open dir"))?;
        let synced = dir.sync().await.map_err(io_err("sync dir"));
        dir.close().await.map_err(io_err("close dir"))?;
        synced
    }

    async fn list(&self) -> Result<Vec<String>, StorageError> {
        let entries =
            std::fs::read_dir(&self.dir).map_err(|e| StorageError::from_io("list", &e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::from_io("list", &e))?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enhanced(errno: i32) -> glommio::GlommioError<()> {
        glommio::GlommioError::EnhancedIoError {
            source: std::io::Error::from_raw_os_error(errno),
            op: "Pre-allocate space",
            path: Some(PathBuf::from("shard-0/segment-0000000002.log")),
            fd: Some(14),
        }
    }

    /// Regression: ENOSPC from a glommio preallocation reached clients as `IO_ERROR`
    /// (found by tests/full_disk.rs).
    #[test]
    fn enospc_from_glommio_preallocate_is_no_space() {
        assert_eq!(
            storage_error("preallocate", enhanced(libc::ENOSPC)),
            StorageError::NoSpace
        );
        assert!(matches!(
            storage_error("write", enhanced(libc::EIO)),
            StorageError::Io {
                errno: Some(libc::EIO),
                ..
            }
        ));
    }
}
