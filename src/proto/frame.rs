//! The fixed 24-byte frame header and the check that a buffer holds a whole frame.
//!
//! ```text
//!  0        1        2        3        4                 6                 8
//! +--------+--------+--------+--------+--------+--------+--------+--------+
//! | magic  | proto  | opcode | extras |    key_len      |  flags/status   |
//! |        | version|        |  _len  |     (u16)       |     (u16)       |
//! +--------+--------+--------+--------+--------+--------+--------+--------+
//! |           body_len (u32)          |          request_id (u32)         |
//! +--------+--------+--------+--------+--------+--------+--------+--------+
//! |                          version (u64)                                |
//! +--------+--------+--------+--------+--------+--------+--------+--------+
//! | body: extras (extras_len) | key (key_len) | value (the rest)          |
//! ```
//!
//! All integers are little-endian. `body_len = extras_len + key_len + value_len`.

use crate::constants::{FRAME_BODY_SIZE_MAX, FRAME_HEADER_SIZE};

/// First byte of every request frame.
pub const MAGIC_REQUEST: u8 = 0x52; // 'R'
/// First byte of every response frame.
pub const MAGIC_RESPONSE: u8 = 0x72; // 'r'
/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u8 = 1;
/// Oldest protocol version this build speaks.
pub const PROTOCOL_VERSION_MIN: u8 = 1;

/// Header size as a `usize`, for slicing.
pub const HEADER_SIZE: usize = FRAME_HEADER_SIZE as usize;

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// `MAGIC_REQUEST` or `MAGIC_RESPONSE`.
    pub magic: u8,
    /// Protocol version of the frame.
    pub proto_version: u8,
    /// Operation code.
    pub opcode: u8,
    /// Length of the extras at the start of the body.
    pub extras_len: u8,
    /// Length of the key, after the extras.
    pub key_len: u16,
    /// Flags in a request, status in a response.
    pub flags_or_status: u16,
    /// Length of the whole body.
    pub body_len: u32,
    /// Opaque id chosen by the client and echoed in the response.
    pub request_id: u32,
    /// Expected version (CAS) in a request; the value's version in a response.
    pub version: u64,
}

/// Why a byte stream is not a valid sequence of frames. Every variant ends the
/// connection: after it the stream cannot be resynchronised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The first byte is not the expected magic.
    BadMagic(u8),
    /// The frame speaks a protocol version this build does not.
    BadVersion(u8),
    /// `body_len` is larger than `FRAME_BODY_SIZE_MAX`.
    TooLarge(u32),
    /// `extras_len + key_len` is larger than `body_len`.
    BadLengths,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::BadMagic(m) => write!(f, "bad magic byte 0x{m:02x}"),
            FrameError::BadVersion(v) => write!(
                f,
                "protocol version {v} not supported (supported: {PROTOCOL_VERSION_MIN}..={PROTOCOL_VERSION})"
            ),
            FrameError::TooLarge(n) => {
                write!(f, "frame body of {n} bytes exceeds the limit of {FRAME_BODY_SIZE_MAX}")
            }
            FrameError::BadLengths => write!(f, "extras_len + key_len exceeds body_len"),
        }
    }
}

impl std::error::Error for FrameError {}

impl Header {
    /// Decodes a header from its 24 bytes without validating it.
    pub fn decode(bytes: &[u8; HEADER_SIZE]) -> Header {
        let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let mut version = [0u8; 8];
        version.copy_from_slice(&bytes[16..24]);
        Header {
            magic: bytes[0],
            proto_version: bytes[1],
            opcode: bytes[2],
            extras_len: bytes[3],
            key_len: u16_at(4),
            flags_or_status: u16_at(6),
            body_len: u32_at(8),
            request_id: u32_at(12),
            version: u64::from_le_bytes(version),
        }
    }

    /// Encodes the header into its 24 bytes.
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut out = [0u8; HEADER_SIZE];
        out[0] = self.magic;
        out[1] = self.proto_version;
        out[2] = self.opcode;
        out[3] = self.extras_len;
        out[4..6].copy_from_slice(&self.key_len.to_le_bytes());
        out[6..8].copy_from_slice(&self.flags_or_status.to_le_bytes());
        out[8..12].copy_from_slice(&self.body_len.to_le_bytes());
        out[12..16].copy_from_slice(&self.request_id.to_le_bytes());
        out[16..24].copy_from_slice(&self.version.to_le_bytes());
        out
    }

    /// Checks the fields every frame must satisfy, whatever its opcode.
    pub fn validate(&self, expected_magic: u8) -> Result<(), FrameError> {
        if self.magic != expected_magic {
            return Err(FrameError::BadMagic(self.magic));
        }
        if !(PROTOCOL_VERSION_MIN..=PROTOCOL_VERSION).contains(&self.proto_version) {
            return Err(FrameError::BadVersion(self.proto_version));
        }
        if self.body_len > FRAME_BODY_SIZE_MAX {
            return Err(FrameError::TooLarge(self.body_len));
        }
        if u32::from(self.extras_len) + u32::from(self.key_len) > self.body_len {
            return Err(FrameError::BadLengths);
        }
        Ok(())
    }

    /// Length of the value part of the body.
    pub fn value_len(&self) -> u32 {
        self.body_len - u32::from(self.extras_len) - u32::from(self.key_len)
    }
}

/// Looks at the front of `buf` and says whether it holds one whole frame.
///
/// Returns `Ok(Some((header, frame_len)))` when the frame is complete, `Ok(None)` when
/// more bytes are needed (a half-received frame is never an error), and an error when
/// the header is invalid. It never allocates, so a stalled half frame costs nothing.
pub fn check(buf: &[u8], expected_magic: u8) -> Result<Option<(Header, usize)>, FrameError> {
    let Some(head) = buf.first_chunk::<HEADER_SIZE>() else {
        // Reject a wrong magic or version as soon as it is visible, so a client that
        // speaks another protocol (a RESP client on the native port) learns at once.
        if let Some(&magic) = buf.first() {
            if magic != expected_magic {
                return Err(FrameError::BadMagic(magic));
            }
        }
        if let Some(&v) = buf.get(1) {
            if !(PROTOCOL_VERSION_MIN..=PROTOCOL_VERSION).contains(&v) {
                return Err(FrameError::BadVersion(v));
            }
        }
        return Ok(None);
    };
    let header = Header::decode(head);
    header.validate(expected_magic)?;
    let frame_len = HEADER_SIZE + header.body_len as usize;
    if buf.len() < frame_len {
        return Ok(None);
    }
    Ok(Some((header, frame_len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            magic: MAGIC_REQUEST,
            proto_version: PROTOCOL_VERSION,
            opcode: 2,
            extras_len: 0,
            key_len: 3,
            flags_or_status: 0,
            body_len: 3,
            request_id: 7,
            version: 0,
        }
    }

    #[test]
    fn header_round_trip() {
        let h = Header {
            version: 0x0102_0304_0506_0708,
            ..header()
        };
        assert_eq!(Header::decode(&h.encode()), h);
    }

    #[test]
    fn check_needs_whole_frame() {
        let mut frame = header().encode().to_vec();
        frame.extend_from_slice(b"abc");
        for cut in 0..frame.len() {
            assert_eq!(
                check(&frame[..cut], MAGIC_REQUEST),
                Ok(None),
                "cut at {cut}"
            );
        }
        let (h, len) = check(&frame, MAGIC_REQUEST).unwrap().unwrap();
        assert_eq!(len, frame.len());
        assert_eq!(h.key_len, 3);
    }

    #[test]
    fn check_rejects_bad_headers() {
        assert_eq!(
            check(b"*1\r\n", MAGIC_REQUEST),
            Err(FrameError::BadMagic(b'*'))
        );
        assert_eq!(
            check(&[MAGIC_REQUEST, 9], MAGIC_REQUEST),
            Err(FrameError::BadVersion(9))
        );
        let big = Header {
            body_len: FRAME_BODY_SIZE_MAX + 1,
            ..header()
        };
        assert_eq!(
            check(&big.encode(), MAGIC_REQUEST),
            Err(FrameError::TooLarge(big.body_len))
        );
        let bad = Header {
            key_len: 4,
            ..header()
        };
        assert_eq!(
            check(&bad.encode(), MAGIC_REQUEST),
            Err(FrameError::BadLengths)
        );
    }
}
