//! Opcodes, typed requests, and the encoding of every request and response body.
//!
//! The server decodes requests with [`decode_request`] and writes responses with
//! [`ResponseWriter`]; the client does the reverse with [`encode_request`] and
//! [`Response`]. One code path for both sides keeps them from drifting.

use bytes::{BufMut, Bytes, BytesMut};

use super::frame::{Header, HEADER_SIZE, MAGIC_REQUEST, MAGIC_RESPONSE, PROTOCOL_VERSION};
use super::status::Status;
use crate::constants::{
    BATCH_KEYS_MAX, FRAME_BODY_SIZE_MAX, KEY_SIZE_MAX, SCAN_COUNT_MAX, VALUE_SIZE_MAX,
};

/// Operation codes of protocol v1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Opcode {
    /// Liveness check; the value is echoed.
    Ping = 0x01,
    /// Version negotiation.
    Hello = 0x02,
    /// Read one key.
    Get = 0x10,
    /// Write one key.
    Set = 0x11,
    /// Write one key only if it is absent.
    Insert = 0x12,
    /// Write one key only if it is present.
    Update = 0x13,
    /// Delete one key.
    Delete = 0x14,
    /// Write or delete one key only if its version matches.
    Cas = 0x15,
    /// Read many keys.
    MGet = 0x16,
    /// Write many keys.
    MSet = 0x17,
    /// Set a key's time to live.
    Expire = 0x18,
    /// Remove a key's time to live.
    Persist = 0x19,
    /// Read a key's remaining time to live.
    Ttl = 0x1A,
    /// Add to a 64-bit counter.
    Incr = 0x1B,
    /// Subtract from a 64-bit counter.
    Decr = 0x1C,
    /// Iterate over the key space.
    Scan = 0x20,
    /// Node statistics.
    Stats = 0x30,
    /// Shard count, hash function and ports.
    Topology = 0x31,
}

impl Opcode {
    /// Decodes an opcode byte.
    pub fn from_u8(byte: u8) -> Option<Opcode> {
        use Opcode::*;
        Some(match byte {
            0x01 => Ping,
            0x02 => Hello,
            0x10 => Get,
            0x11 => Set,
            0x12 => Insert,
            0x13 => Update,
            0x14 => Delete,
            0x15 => Cas,
            0x16 => MGet,
            0x17 => MSet,
            0x18 => Expire,
            0x19 => Persist,
            0x1A => Ttl,
            0x1B => Incr,
            0x1C => Decr,
            0x20 => Scan,
            0x30 => Stats,
            0x31 => Topology,
            _ => return None,
        })
    }
}

/// Request flag: acknowledge only once the write is on disk, whatever the node's mode.
pub const FLAG_SYNC: u16 = 0x0001;
/// Request flag: acknowledge once the write is applied in memory, whatever the mode.
pub const FLAG_NO_SYNC: u16 = 0x0002;
/// Every flag bit this version defines; any other bit set is `INVALID`.
pub const FLAGS_KNOWN: u16 = FLAG_SYNC | FLAG_NO_SYNC;

/// Condition of a single-key write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetMode {
    /// Write whatever is stored.
    Always,
    /// Write only if the key is absent (`INSERT`).
    IfAbsent,
    /// Write only if the key is present (`UPDATE`).
    IfPresent,
}

/// A decoded native request.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// `PING`, echoing the payload.
    Ping {
        /// Echoed back verbatim.
        payload: Bytes,
    },
    /// `HELLO`: the client's supported protocol versions.
    Hello {
        /// Oldest version the client speaks.
        min: u8,
        /// Newest version the client speaks.
        max: u8,
    },
    /// `GET`.
    Get {
        /// Key.
        key: Bytes,
    },
    /// `SET`, `INSERT`, `UPDATE`.
    Set {
        /// Key.
        key: Bytes,
        /// Value.
        value: Bytes,
        /// Time to live in milliseconds; 0 = none.
        ttl_ms: u64,
        /// Condition.
        mode: SetMode,
    },
    /// `CAS`.
    Cas {
        /// Key.
        key: Bytes,
        /// New value (ignored when `delete`).
        value: Bytes,
        /// Time to live in milliseconds; 0 = none.
        ttl_ms: u64,
        /// The version the stored value must have.
        expected: u64,
        /// Delete instead of write.
        delete: bool,
    },
    /// `DELETE`.
    Delete {
        /// Key.
        key: Bytes,
    },
    /// `MGET`.
    MGet {
        /// Keys, answered in this order.
        keys: Vec<Bytes>,
    },
    /// `MSET`.
    MSet {
        /// Key-value pairs.
        pairs: Vec<(Bytes, Bytes)>,
        /// Time to live in milliseconds for every pair; 0 = none.
        ttl_ms: u64,
    },
    /// `EXPIRE`.
    Expire {
        /// Key.
        key: Bytes,
        /// Time to live in milliseconds from now; 0 expires the key at once.
        ttl_ms: u64,
    },
    /// `PERSIST`.
    Persist {
        /// Key.
        key: Bytes,
    },
    /// `TTL`.
    Ttl {
        /// Key.
        key: Bytes,
    },
    /// `INCR` (positive delta) and `DECR` (decoded as a negative delta).
    Incr {
        /// Key.
        key: Bytes,
        /// Amount added.
        delta: i64,
    },
    /// `SCAN`.
    Scan {
        /// 0 to start; the cursor returned by the previous page otherwise.
        cursor: u64,
        /// Most keys wanted in this page; 0 = default.
        count: u32,
        /// Only keys starting with this prefix.
        prefix: Bytes,
    },
    /// `STATS`.
    Stats,
    /// `TOPOLOGY`.
    Topology,
}

/// A request the server refuses without executing it; the connection stays usable
/// (framing was intact).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Status to answer with.
    pub status: Status,
    /// Human-readable reason, sent as the response value.
    pub message: String,
}

fn refuse<T>(status: Status, message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal {
        status,
        message: message.into(),
    })
}

/// Little-endian reader over a body that never panics on short input.
struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.bytes.split_at_checked(n)?;
        self.bytes = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).and_then(|b| b.first().copied())
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2)
            .and_then(|b| b.try_into().ok())
            .map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }
}

fn check_key(key: &Bytes) -> Result<(), Refusal> {
    if key.len() > KEY_SIZE_MAX as usize {
        return refuse(
            Status::TooLarge,
            format!(
                "key of {} bytes exceeds the limit of {KEY_SIZE_MAX}",
                key.len()
            ),
        );
    }
    Ok(())
}

fn check_value(value: &Bytes) -> Result<(), Refusal> {
    if value.len() > VALUE_SIZE_MAX as usize {
        return refuse(
            Status::TooLarge,
            format!(
                "value of {} bytes exceeds the limit of {VALUE_SIZE_MAX}",
                value.len()
            ),
        );
    }
    Ok(())
}

/// Extras of the SET family and MSET: none, or a u64 TTL in milliseconds.
fn ttl_extras(extras: &[u8]) -> Result<u64, Refusal> {
    match extras.len() {
        0 => Ok(0),
        8 => Ok(Cursor { bytes: extras }.u64().unwrap_or(0)),
        n => refuse(
            Status::Invalid,
            format!("extras must be 0 or 8 bytes (ttl_ms), got {n}"),
        ),
    }
}

fn no_extras(extras: &[u8], what: &str) -> Result<(), Refusal> {
    if !extras.is_empty() {
        return refuse(Status::Invalid, format!("{what} takes no extras"));
    }
    Ok(())
}

/// Decodes one request frame. `frame` is the whole frame (header included) as
/// returned by [`super::frame::check`]; key and value are zero-copy slices of it.
pub fn decode_request(header: &Header, frame: &Bytes) -> Result<Request, Refusal> {
    let opcode = match Opcode::from_u8(header.opcode) {
        Some(op) => op,
        None => {
            return refuse(
                Status::UnknownOpcode,
                format!("unknown opcode 0x{:02x}", header.opcode),
            )
        }
    };
    let flags = header.flags_or_status;
    if flags & !FLAGS_KNOWN != 0 || flags == FLAGS_KNOWN {
        return refuse(Status::Invalid, format!("invalid flags 0x{flags:04x}"));
    }
    let extras_end = HEADER_SIZE + header.extras_len as usize;
    let key_end = extras_end + header.key_len as usize;
    let extras = frame.get(HEADER_SIZE..extras_end).unwrap_or_default();
    let key = frame.slice(extras_end..key_end);
    let value = frame.slice(key_end..);
    check_key(&key)?;
    let req = match opcode {
        Opcode::Ping => Request::Ping { payload: value },
        Opcode::Hello => {
            let mut c = Cursor { bytes: &value };
            match (c.u8(), c.u8()) {
                (Some(min), Some(max)) if min <= max => Request::Hello { min, max },
                _ => {
                    return refuse(
                        Status::Invalid,
                        "HELLO value must be [min u8, max u8] with min <= max",
                    )
                }
            }
        }
        Opcode::Get | Opcode::Delete | Opcode::Persist | Opcode::Ttl => {
            no_extras(extras, "this opcode")?;
            match opcode {
                Opcode::Get => Request::Get { key },
                Opcode::Delete => Request::Delete { key },
                Opcode::Persist => Request::Persist { key },
                _ => Request::Ttl { key },
            }
        }
        Opcode::Set | Opcode::Insert | Opcode::Update => {
            let ttl_ms = ttl_extras(extras)?;
            check_value(&value)?;
            let mode = match opcode {
                Opcode::Set => SetMode::Always,
                Opcode::Insert => SetMode::IfAbsent,
                _ => SetMode::IfPresent,
            };
            Request::Set {
                key,
                value,
                ttl_ms,
                mode,
            }
        }
        Opcode::Cas => {
            let mut c = Cursor { bytes: extras };
            let (Some(ttl_ms), Some(mode), true) = (c.u64(), c.u8(), extras.len() == 9) else {
                return refuse(
                    Status::Invalid,
                    "CAS extras must be 9 bytes: ttl_ms u64, mode u8",
                );
            };
            if mode > 1 {
                return refuse(Status::Invalid, "CAS mode must be 0 (write) or 1 (delete)");
            }
            check_value(&value)?;
            Request::Cas {
                key,
                value,
                ttl_ms,
                expected: header.version,
                delete: mode == 1,
            }
        }
        Opcode::MGet => {
            no_extras(extras, "MGET")?;
            Request::MGet {
                keys: decode_key_list(&value)?,
            }
        }
        Opcode::MSet => {
            let ttl_ms = ttl_extras(extras)?;
            Request::MSet {
                pairs: decode_pair_list(&value)?,
                ttl_ms,
            }
        }
        Opcode::Expire => {
            let ttl_ms = match extras.len() {
                8 => Cursor { bytes: extras }.u64().unwrap_or(0),
                _ => return refuse(Status::Invalid, "EXPIRE extras must be 8 bytes (ttl_ms)"),
            };
            Request::Expire { key, ttl_ms }
        }
        Opcode::Incr | Opcode::Decr => {
            let amount = match extras.len() {
                0 => 1,
                8 => Cursor { bytes: extras }.u64().unwrap_or(0) as i64,
                _ => {
                    return refuse(
                        Status::Invalid,
                        "INCR/DECR extras must be 0 or 8 bytes (delta i64)",
                    )
                }
            };
            let delta = if opcode == Opcode::Decr {
                match amount.checked_neg() {
                    Some(d) => d,
                    None => return refuse(Status::Overflow, "DECR amount cannot be negated"),
                }
            } else {
                amount
            };
            Request::Incr { key, delta }
        }
        Opcode::Scan => {
            let mut c = Cursor { bytes: extras };
            let (Some(cursor), Some(count), true) = (c.u64(), c.u32(), extras.len() == 12) else {
                return refuse(
                    Status::Invalid,
                    "SCAN extras must be 12 bytes: cursor u64, count u32",
                );
            };
            if count > SCAN_COUNT_MAX {
                return refuse(
                    Status::TooLarge,
                    format!("SCAN count exceeds the limit of {SCAN_COUNT_MAX}"),
                );
            }
            Request::Scan {
                cursor,
                count,
                prefix: key,
            }
        }
        Opcode::Stats => Request::Stats,
        Opcode::Topology => Request::Topology,
    };
    Ok(req)
}

fn batch_size_ok(n: usize) -> Result<(), Refusal> {
    if n > BATCH_KEYS_MAX as usize {
        return refuse(
            Status::TooLarge,
            format!("batch of {n} keys exceeds the limit of {BATCH_KEYS_MAX}"),
        );
    }
    if n == 0 {
        return refuse(Status::Invalid, "batch is empty");
    }
    Ok(())
}

/// Takes `len` bytes from the cursor as a zero-copy slice of `whole`.
fn take_slice(whole: &Bytes, c: &mut Cursor<'_>, len: usize) -> Option<Bytes> {
    let start = whole.len() - c.bytes.len();
    c.take(len)?;
    Some(whole.slice(start..start + len))
}

/// Decodes `[u16 count] ([u16 key_len][key])*`.
pub fn decode_key_list(value: &Bytes) -> Result<Vec<Bytes>, Refusal> {
    let mut c = Cursor { bytes: value };
    let Some(count) = c.u16() else {
        return refuse(Status::Invalid, "missing key count");
    };
    batch_size_ok(count as usize)?;
    let mut keys = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let Some(key) = c
            .u16()
            .and_then(|len| take_slice(value, &mut c, len as usize))
        else {
            return refuse(Status::Invalid, "truncated key list");
        };
        check_key(&key)?;
        keys.push(key);
    }
    if !c.bytes.is_empty() {
        return refuse(Status::Invalid, "trailing bytes after key list");
    }
    Ok(keys)
}

/// Decodes `[u16 count] ([u16 key_len][key][u32 value_len][value])*`.
pub fn decode_pair_list(value: &Bytes) -> Result<Vec<(Bytes, Bytes)>, Refusal> {
    let mut c = Cursor { bytes: value };
    let Some(count) = c.u16() else {
        return refuse(Status::Invalid, "missing pair count");
    };
    batch_size_ok(count as usize)?;
    let mut pairs = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let key = c
            .u16()
            .and_then(|len| take_slice(value, &mut c, len as usize));
        let val = key
            .as_ref()
            .and(c.u32())
            .and_then(|len| take_slice(value, &mut c, len as usize));
        let (Some(key), Some(val)) = (key, val) else {
            return refuse(Status::Invalid, "truncated pair list");
        };
        check_key(&key)?;
        check_value(&val)?;
        pairs.push((key, val));
    }
    if !c.bytes.is_empty() {
        return refuse(Status::Invalid, "trailing bytes after pair list");
    }
    Ok(pairs)
}

// One argument per header field it fills: a struct here would only rename them.
#[allow(clippy::too_many_arguments)]
fn put_header(
    out: &mut BytesMut,
    magic: u8,
    opcode: u8,
    flags_or_status: u16,
    id: u32,
    version: u64,
    extras: &[u8],
    key: &[u8],
    value_len: usize,
) {
    let body_len = extras.len() + key.len() + value_len;
    let header = Header {
        magic,
        proto_version: PROTOCOL_VERSION,
        opcode,
        extras_len: extras.len() as u8,
        key_len: key.len() as u16,
        flags_or_status,
        body_len: body_len as u32,
        request_id: id,
        version,
    };
    out.reserve(HEADER_SIZE + body_len);
    out.put_slice(&header.encode());
    out.put_slice(extras);
    out.put_slice(key);
}

/// Why a request cannot be encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodeError(pub String);

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

/// Encodes a request frame with the given id and flags into `out`. Checks the limits a
/// server would refuse, so a client learns of a too-large key before sending it.
pub fn encode_request(
    out: &mut BytesMut,
    id: u32,
    flags: u16,
    req: &Request,
) -> Result<(), EncodeError> {
    let too_large = |what: &str, n: usize, max: u32| {
        if n > max as usize {
            Err(EncodeError(format!(
                "{what} of {n} bytes exceeds the limit of {max}"
            )))
        } else {
            Ok(())
        }
    };
    let simple = |out: &mut BytesMut,
                  op: Opcode,
                  version: u64,
                  extras: &[u8],
                  key: &[u8],
                  value: &[u8]|
     -> Result<(), EncodeError> {
        too_large("key", key.len(), KEY_SIZE_MAX)?;
        too_large("value", value.len(), VALUE_SIZE_MAX)?;
        put_header(
            out,
            MAGIC_REQUEST,
            op as u8,
            flags,
            id,
            version,
            extras,
            key,
            value.len(),
        );
        out.put_slice(value);
        Ok(())
    };
    match req {
        Request::Ping { payload } => simple(out, Opcode::Ping, 0, &[], &[], payload),
        Request::Hello { min, max } => simple(out, Opcode::Hello, 0, &[], &[], &[*min, *max]),
        Request::Get { key } => simple(out, Opcode::Get, 0, &[], key, &[]),
        Request::Set {
            key,
            value,
            ttl_ms,
            mode,
        } => {
            let op = match mode {
                SetMode::Always => Opcode::Set,
                SetMode::IfAbsent => Opcode::Insert,
                SetMode::IfPresent => Opcode::Update,
            };
            let ttl = ttl_ms.to_le_bytes();
            let extras: &[u8] = if *ttl_ms == 0 { &[] } else { &ttl };
            simple(out, op, 0, extras, key, value)
        }
        Request::Cas {
            key,
            value,
            ttl_ms,
            expected,
            delete,
        } => {
            let mut extras = [0u8; 9];
            extras[..8].copy_from_slice(&ttl_ms.to_le_bytes());
            extras[8] = u8::from(*delete);
            simple(out, Opcode::Cas, *expected, &extras, key, value)
        }
        Request::Delete { key } => simple(out, Opcode::Delete, 0, &[], key, &[]),
        Request::Persist { key } => simple(out, Opcode::Persist, 0, &[], key, &[]),
        Request::Ttl { key } => simple(out, Opcode::Ttl, 0, &[], key, &[]),
        Request::Expire { key, ttl_ms } => {
            simple(out, Opcode::Expire, 0, &ttl_ms.to_le_bytes(), key, &[])
        }
        Request::Incr { key, delta } => {
            // A negative delta goes as DECR of its magnitude, but for i64::MIN: DECR
            // refuses an amount it cannot negate, so that one goes as INCR of itself.
            let (op, amount) = match delta.checked_neg() {
                Some(magnitude) if *delta < 0 => (Opcode::Decr, magnitude as u64),
                _ => (Opcode::Incr, *delta as u64),
            };
            simple(out, op, 0, &amount.to_le_bytes(), key, &[])
        }
        Request::Scan {
            cursor,
            count,
            prefix,
        } => {
            let mut extras = [0u8; 12];
            extras[..8].copy_from_slice(&cursor.to_le_bytes());
            extras[8..].copy_from_slice(&count.to_le_bytes());
            simple(out, Opcode::Scan, 0, &extras, prefix, &[])
        }
        Request::Stats => simple(out, Opcode::Stats, 0, &[], &[], &[]),
        Request::Topology => simple(out, Opcode::Topology, 0, &[], &[], &[]),
        Request::MGet { keys } => {
            if keys.is_empty() || keys.len() > BATCH_KEYS_MAX as usize {
                return Err(EncodeError(format!("MGET takes 1..={BATCH_KEYS_MAX} keys")));
            }
            let mut body = BytesMut::new();
            body.put_u16_le(keys.len() as u16);
            for key in keys {
                too_large("key", key.len(), KEY_SIZE_MAX)?;
                body.put_u16_le(key.len() as u16);
                body.put_slice(key);
            }
            too_large("MGET body", body.len(), FRAME_BODY_SIZE_MAX)?;
            put_header(
                out,
                MAGIC_REQUEST,
                Opcode::MGet as u8,
                flags,
                id,
                0,
                &[],
                &[],
                body.len(),
            );
            out.put_slice(&body);
            Ok(())
        }
        Request::MSet { pairs, ttl_ms } => {
            if pairs.is_empty() || pairs.len() > BATCH_KEYS_MAX as usize {
                return Err(EncodeError(format!(
                    "MSET takes 1..={BATCH_KEYS_MAX} pairs"
                )));
            }
            let mut body = BytesMut::new();
            body.put_u16_le(pairs.len() as u16);
            for (key, value) in pairs {
                too_large("key", key.len(), KEY_SIZE_MAX)?;
                too_large("value", value.len(), VALUE_SIZE_MAX)?;
                body.put_u16_le(key.len() as u16);
                body.put_slice(key);
                body.put_u32_le(value.len() as u32);
                body.put_slice(value);
            }
            too_large("MSET body", body.len(), FRAME_BODY_SIZE_MAX)?;
            let ttl = ttl_ms.to_le_bytes();
            let extras: &[u8] = if *ttl_ms == 0 { &[] } else { &ttl };
            put_header(
                out,
                MAGIC_REQUEST,
                Opcode::MSet as u8,
                flags,
                id,
                0,
                extras,
                &[],
                body.len(),
            );
            out.put_slice(&body);
            Ok(())
        }
    }
}

/// Builds one response frame in place: header first, then the value in pieces, then
/// [`ResponseWriter::finish`] patches the lengths. Used for list-shaped values (MGET,
/// SCAN) so they are written once, straight into the connection's output buffer.
pub struct ResponseWriter<'a> {
    out: &'a mut BytesMut,
    start: usize,
}

impl<'a> ResponseWriter<'a> {
    /// Starts a response with the given extras (key is always empty in responses).
    pub fn start(
        out: &'a mut BytesMut,
        opcode: u8,
        id: u32,
        status: Status,
        version: u64,
        extras: &[u8],
    ) -> Self {
        let start = out.len();
        put_header(
            out,
            MAGIC_RESPONSE,
            opcode,
            status as u16,
            id,
            version,
            extras,
            &[],
            0,
        );
        ResponseWriter { out, start }
    }

    /// The buffer the value is appended to.
    pub fn value(&mut self) -> &mut BytesMut {
        self.out
    }

    /// Bytes of value written so far.
    pub fn value_len(&self) -> usize {
        let extras_len = self.out.get(self.start + 3).copied().unwrap_or(0) as usize;
        self.out.len() - self.start - HEADER_SIZE - extras_len
    }

    /// Patches `body_len` in the header.
    pub fn finish(self) {
        let body_len = (self.out.len() - self.start - HEADER_SIZE) as u32;
        let at = self.start + 8;
        self.out[at..at + 4].copy_from_slice(&body_len.to_le_bytes());
    }

    /// Abandons the frame, removing everything written since `start`.
    pub fn abandon(self) {
        self.out.truncate(self.start);
    }
}

/// Writes a complete response frame with a flat value.
pub fn encode_response(
    out: &mut BytesMut,
    opcode: u8,
    id: u32,
    status: Status,
    version: u64,
    extras: &[u8],
    value: &[u8],
) {
    put_header(
        out,
        MAGIC_RESPONSE,
        opcode,
        status as u16,
        id,
        version,
        extras,
        &[],
        value.len(),
    );
    out.put_slice(value);
}

/// A decoded response frame (client side).
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// The header as received.
    pub header: Header,
    /// Status, or `None` for a code this build does not know.
    pub status: Option<Status>,
    /// Extras (INCR result, TTL, SCAN cursor).
    pub extras: Bytes,
    /// Value (GET value, error message, list payloads).
    pub value: Bytes,
}

impl Response {
    /// Splits a complete response frame (as returned by [`super::frame::check`]).
    pub fn from_frame(header: Header, frame: Bytes) -> Response {
        let extras_end = HEADER_SIZE + header.extras_len as usize;
        let key_end = extras_end + header.key_len as usize;
        Response {
            header,
            status: Status::from_u16(header.flags_or_status),
            extras: frame.slice(HEADER_SIZE..extras_end),
            value: frame.slice(key_end..),
        }
    }

    /// The first 8 bytes of the extras as an i64 (INCR result, TTL in ms).
    pub fn extras_i64(&self) -> Option<i64> {
        Cursor {
            bytes: &self.extras,
        }
        .u64()
        .map(|v| v as i64)
    }

    /// Decodes an MGET value: one `Option<(value, version)>` per requested key.
    pub fn mget_entries(&self) -> Option<Vec<Option<(Bytes, u64)>>> {
        let mut c = Cursor { bytes: &self.value };
        let mut entries = Vec::new();
        while !c.bytes.is_empty() {
            let found = c.u8()?;
            let version = c.u64()?;
            let len = c.u32()? as usize;
            let start = self.value.len() - c.bytes.len();
            c.take(len)?;
            entries.push((found == 1).then(|| (self.value.slice(start..start + len), version)));
        }
        Some(entries)
    }

    /// Decodes an MSET value: the version of each written pair.
    pub fn mset_versions(&self) -> Option<Vec<u64>> {
        let mut c = Cursor { bytes: &self.value };
        let mut versions = Vec::new();
        while !c.bytes.is_empty() {
            versions.push(c.u64()?);
        }
        Some(versions)
    }

    /// Decodes a SCAN page: the next cursor and the keys.
    pub fn scan_page(&self) -> Option<(u64, Vec<Bytes>)> {
        let cursor = Cursor {
            bytes: &self.extras,
        }
        .u64()?;
        let mut c = Cursor { bytes: &self.value };
        let mut keys = Vec::new();
        while !c.bytes.is_empty() {
            let len = c.u16()? as usize;
            let start = self.value.len() - c.bytes.len();
            c.take(len)?;
            keys.push(self.value.slice(start..start + len));
        }
        Some((cursor, keys))
    }
}

/// What `TOPOLOGY` describes: enough for a client to route every key itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    /// Number of shards (one per core).
    pub shard_count: u16,
    /// Key-to-shard function id (`crate::hash::HASH_CRC32C_MOD`).
    pub hash: u8,
    /// The port every core accepts on.
    pub shared_port: u16,
    /// The port of each shard's own core, indexed by shard.
    pub shard_ports: Vec<u16>,
}

impl Topology {
    /// Encodes `[u16 shard_count][u8 hash][u16 shared_port][u16 port]*`.
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u16_le(self.shard_count);
        out.put_u8(self.hash);
        out.put_u16_le(self.shared_port);
        for port in &self.shard_ports {
            out.put_u16_le(*port);
        }
    }

    /// Decodes a `TOPOLOGY` response value.
    pub fn decode(value: &[u8]) -> Option<Topology> {
        let mut c = Cursor { bytes: value };
        let shard_count = c.u16()?;
        let hash = c.u8()?;
        let shared_port = c.u16()?;
        let shard_ports = (0..shard_count)
            .map(|_| c.u16())
            .collect::<Option<Vec<_>>>()?;
        (c.bytes.is_empty() && shard_count > 0).then_some(Topology {
            shard_count,
            hash,
            shared_port,
            shard_ports,
        })
    }
}
