//! The one error type of the storage module.

use std::fmt;

/// Why a storage operation failed. `Clone` so one flush failure can be handed to every
/// waiter it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageError {
    /// The disk is full (ENOSPC from a write, a preallocation or a create). The log
    /// refuses appends until a retried flush succeeds.
    NoSpace,
    /// Any other operating-system error.
    Io {
        /// What the log was doing.
        op: &'static str,
        /// The OS error number, when there is one.
        errno: Option<i32>,
        /// The OS message.
        detail: String,
    },
    /// Bytes read back do not hold what the log wrote there.
    Corrupt {
        /// Segment id (`u32::MAX` for the hint file).
        segment: u32,
        /// Offset inside the segment.
        offset: u32,
        /// Which check failed.
        what: &'static str,
    },
    /// The write buffer is full: wait for `Log::wait_written` of the last seq, then retry.
    Busy,
    /// A key or value is larger than the format or the segment size allows.
    TooLarge {
        /// Encoded size asked for.
        size: u64,
        /// Largest accepted.
        max: u64,
    },
    /// An argument breaks the contract (empty key, location outside any record...).
    InvalidArgument(&'static str),
    /// A file or location does not exist (a compacted segment, for instance).
    NotFound(String),
    /// The log was closed.
    Closed,
}

impl StorageError {
    /// Maps an OS error: ENOSPC (and EDQUOT) become `NoSpace`, ENOENT becomes `NotFound`.
    pub fn from_io(op: &'static str, err: &std::io::Error) -> StorageError {
        match err.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => StorageError::NoSpace,
            Some(libc::ENOENT) => StorageError::NotFound(format!("{op}: {err}")),
            errno => StorageError::Io {
                op,
                errno,
                detail: err.to_string(),
            },
        }
    }

    /// An error carrying only an errno, as the simulated disk produces.
    pub fn from_errno(op: &'static str, errno: i32) -> StorageError {
        StorageError::from_io(op, &std::io::Error::from_raw_os_error(errno))
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::NoSpace => write!(f, "no space left on the log device"),
            StorageError::Io { op, errno, detail } => {
                write!(f, "i/o error during {op} (errno {errno:?}): {detail}")
            }
            StorageError::Corrupt {
                segment,
                offset,
                what,
            } => {
                write!(
                    f,
                    "corrupt log data in segment {segment} at offset {offset}: {what}"
                )
            }
            StorageError::Busy => write!(f, "log write buffer is full, retry after a flush"),
            StorageError::TooLarge { size, max } => {
                write!(f, "record of {size} bytes exceeds the limit of {max} bytes")
            }
            StorageError::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            StorageError::NotFound(what) => write!(f, "not found: {what}"),
            StorageError::Closed => write!(f, "log is closed"),
        }
    }
}

impl std::error::Error for StorageError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_maps_to_no_space() {
        assert_eq!(
            StorageError::from_errno("write", libc::ENOSPC),
            StorageError::NoSpace
        );
        assert!(matches!(
            StorageError::from_errno("open", libc::ENOENT),
            StorageError::NotFound(_)
        ));
        let eio = StorageError::from_errno("sync", libc::EIO);
        assert!(matches!(
            eio,
            StorageError::Io {
                errno: Some(libc::EIO),
                ..
            }
        ));
        assert!(eio.to_string().contains("sync"));
    }
}
