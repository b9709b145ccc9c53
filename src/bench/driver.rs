//! The protocols the generator speaks, behind one small interface: encode a GET or a
//! SET into an output buffer, and split one reply off the front of an input buffer.
//!
//! The drivers are plain functions over byte buffers (no I/O), so the async runner,
//! the blocking preload/verify passes and the unit tests share them. A reply that is
//! not complete yet is `Ok(None)`, never an error; an error means the stream cannot be
//! trusted any more and the connection is dropped.

use std::ops::Range;

use super::{memcache, native, resp};

/// Which protocol to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// ringkv's native binary protocol, routed to each key's core.
    Ringkv,
    /// RESP2 (Redis).
    Resp,
    /// memcached's text protocol.
    Memcache,
}

/// What a reply says, in the terms the generator counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Success carrying a value (native OK, RESP bulk string, memcache `VALUE`).
    Value(Range<usize>),
    /// Success without a value (RESP `+OK` or `:n`, memcache `STORED`).
    Done,
    /// The key does not exist (native NOT_FOUND, RESP nil, memcache bare `END`).
    Nil,
    /// The server refused or failed the request; `message` is a range of the buffer.
    Error {
        /// Short name of the failure (native status name, RESP/memcache error kind).
        kind: &'static str,
        /// The server's message, as a range of the input buffer.
        message: Range<usize>,
    },
    /// An array reply with this many elements (RESP only; not expected for GET/SET).
    Array(usize),
}

/// One reply split off the front of a buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The reply; ranges index the buffer that was parsed.
    pub reply: Reply,
    /// Bytes the reply takes.
    pub len: usize,
    /// The request id echoed by the server (native protocol only).
    pub id: Option<u32>,
}

impl Protocol {
    /// Appends a GET of `key` to `out`.
    pub fn encode_get(self, out: &mut Vec<u8>, id: u32, key: &[u8]) {
        match self {
            Protocol::Ringkv => native::encode_get(out, id, key),
            Protocol::Resp => resp::encode_get(out, key),
            Protocol::Memcache => memcache::encode_get(out, key),
        }
    }

    /// Appends a SET of `key` to `value` to `out`.
    pub fn encode_set(self, out: &mut Vec<u8>, id: u32, key: &[u8], value: &[u8]) {
        match self {
            Protocol::Ringkv => native::encode_set(out, id, key, value),
            Protocol::Resp => resp::encode_set(out, key, value),
            Protocol::Memcache => memcache::encode_set(out, key, value),
        }
    }

    /// Splits one reply off the front of `buf`: `Ok(None)` when more bytes are needed.
    pub fn parse(self, buf: &[u8]) -> Result<Option<Parsed>, String> {
        match self {
            Protocol::Ringkv => native::parse(buf),
            Protocol::Resp => resp::parse(buf),
            Protocol::Memcache => memcache::parse(buf),
        }
    }

    /// Whether the protocol echoes request ids (then replies are checked against them).
    pub fn has_ids(self) -> bool {
        self == Protocol::Ringkv
    }
}
