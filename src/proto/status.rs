//! Response status codes of the native protocol.

/// The status carried in a response header's `flags/status` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Status {
    /// The operation succeeded.
    Ok = 0x0000,
    /// The key does not exist (or has expired).
    NotFound = 0x0001,
    /// INSERT found the key already present.
    Exists = 0x0002,
    /// CAS found another version; the header carries the current one.
    VersionMismatch = 0x0003,
    /// INCR/DECR on a value that is not a 64-bit decimal integer.
    NotANumber = 0x0004,
    /// INCR/DECR would overflow a signed 64-bit integer.
    Overflow = 0x0005,
    /// Malformed frame; the server closes the connection after this response.
    BadFrame = 0x0100,
    /// Unknown opcode; the connection stays open.
    UnknownOpcode = 0x0101,
    /// Unsupported protocol version; the value holds `[min, max]` supported and the
    /// server closes the connection.
    BadVersion = 0x0102,
    /// A key, value, batch, frame or response exceeds its limit.
    TooLarge = 0x0103,
    /// Extras or body do not fit the opcode (wrong sizes, bad arguments).
    Invalid = 0x0104,
    /// A limit on connections or in-flight work was hit; retry later.
    Busy = 0x0200,
    /// The node is shutting down.
    ShuttingDown = 0x0201,
    /// An I/O error: the write was not acknowledged (refused, or its flush failed).
    IoError = 0x0300,
    /// The disk is full: the write was not acknowledged (refused, or its flush failed).
    NoSpace = 0x0301,
    /// Reserved for replication: this node does not lead the key's shard.
    NotLeader = 0x0400,
}

impl Status {
    /// Decodes a status code; `None` for a code this build does not know.
    pub fn from_u16(code: u16) -> Option<Status> {
        use Status::*;
        Some(match code {
            0x0000 => Ok,
            0x0001 => NotFound,
            0x0002 => Exists,
            0x0003 => VersionMismatch,
            0x0004 => NotANumber,
            0x0005 => Overflow,
            0x0100 => BadFrame,
            0x0101 => UnknownOpcode,
            0x0102 => BadVersion,
            0x0103 => TooLarge,
            0x0104 => Invalid,
            0x0200 => Busy,
            0x0201 => ShuttingDown,
            0x0300 => IoError,
            0x0301 => NoSpace,
            0x0400 => NotLeader,
            _ => return None,
        })
    }

    /// True for the statuses that describe an outcome of the operation (found, not
    /// found, conflict) rather than a failure to perform it.
    pub fn is_outcome(self) -> bool {
        (self as u16) < 0x0100
    }

    /// Stable upper-case name, as used in the spec and CLI messages.
    pub fn name(self) -> &'static str {
        use Status::*;
        match self {
            Ok => "OK",
            NotFound => "NOT_FOUND",
            Exists => "EXISTS",
            VersionMismatch => "VERSION_MISMATCH",
            NotANumber => "NOT_A_NUMBER",
            Overflow => "OVERFLOW",
            BadFrame => "BAD_FRAME",
            UnknownOpcode => "UNKNOWN_OPCODE",
            BadVersion => "BAD_VERSION",
            TooLarge => "TOO_LARGE",
            Invalid => "INVALID",
            Busy => "BUSY",
            ShuttingDown => "SHUTTING_DOWN",
            IoError => "IO_ERROR",
            NoSpace => "NO_SPACE",
            NotLeader => "NOT_LEADER",
        }
    }
}
